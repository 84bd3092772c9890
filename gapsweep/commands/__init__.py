"""One module per group of commands; each is ``add_commands(subparsers)`` and its handlers."""
