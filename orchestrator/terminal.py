"""The consoles every command prints through: rich on a terminal; wide plain lines when piped or
logged (tables are not cut to 80 columns)."""

from __future__ import annotations

import sys

from rich.console import Console

PIPED_WIDTH = 200


def _console(stream) -> Console:
    return Console(file=stream, width=None if stream.isatty() else PIPED_WIDTH)


console = _console(sys.stdout)
err_console = _console(sys.stderr)
