"""The ``gapsweep`` command layer: argument parsing, printing and the one error reporter, on top
of the library (``orchestrator`` → ``workers`` / ``db``), which never imports it.

    gapsweep run sweeps/quickstart.yaml      # the console script: gapsweep.main:main
    python -m gapsweep run sweeps/quickstart.yaml
"""

import os
import signal

INTERRUPTED_EXIT = 130                           # 128 + SIGINT, what a shell reports for Ctrl-C


def _exit_now(signum, frame):
    os.write(2, b"interrupted while starting; nothing was done\n")
    os._exit(INTERRUPTED_EXIT)


def exit_on_interrupt_while_starting() -> None:
    """Ctrl-C while the command's modules import exits at once (130): nothing has been done yet.
    A KeyboardInterrupt raised inside an importing library can be swallowed by it, or crash a
    native module half-initialised; ``gapsweep.main.main`` restores Python's handler."""
    signal.signal(signal.SIGINT, _exit_now)
