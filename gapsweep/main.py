"""The ``gapsweep`` command: one parser over the command modules, and the one error reporter.

Each command module (``gapsweep.commands.*``) adds its sub-commands with ``add_commands`` and
handles them as parse → one library call → render; none imports another. Every error gapsweep
raises on purpose derives from ``workers.errors.GapsweepError`` and is reported here, once: one
line, exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

import gapsweep

if os.path.basename(sys.argv[0]) == "gapsweep":     # the console script: Ctrl-C while importing
    gapsweep.exit_on_interrupt_while_starting()

from rich.logging import RichHandler  # noqa: E402

from gapsweep.commands import (analyse, compile, data, report, results, stack, sweep,  # noqa: E402
                               track, train, version)
from gapsweep import interrupt  # noqa: E402
from gapsweep.interrupt import interrupted_message  # noqa: E402
from orchestrator.interrupts import abandoned  # noqa: E402
from gapsweep.terminal import err_console  # noqa: E402
from workers.errors import GapsweepError, first_line  # noqa: E402

DEBUG_ENV = "GAPSWEEP_DEBUG"            # set (e.g. GAPSWEEP_DEBUG=1): tracebacks too, for bug reports
COMMAND_MODULES = (data, train, sweep, results, report, compile, stack, track, analyse, version)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gapsweep",
        description="Experiment sweeps for neural algorithmic reasoning ('Mind The Gap' reproduction).")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_commands(commands)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=err_console, show_path=False)])
    logging.getLogger("absl").setLevel(max(level, logging.WARNING))


def _db_error_text(err: Exception) -> str:
    """The driver's own first line, without SQLAlchemy's echo of statements and parameters (which
    may carry snapshot bytes) or any URL."""
    original = getattr(err, "orig", None) or err
    return first_line(original)


def main(argv: list[str] | None = None) -> int:
    """The command; ``argv`` None: this process is the command (``sys.argv``), and after Ctrl-C
    (exit code 130) it ends at once (``interrupt.exit_now``), never in a slow teardown."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, interrupt.on_ctrl_c)   # Ctrl-C: KeyboardInterrupt, never lost
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    code = _handle(args)
    if code == gapsweep.INTERRUPTED_EXIT and (argv is None or abandoned()):
        interrupt.exit_now(code)
    return code


def _handle(args) -> int:
    try:
        return args.handler(args)
    except GapsweepError as err:
        if os.environ.get(DEBUG_ENV):
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {err}", soft_wrap=True)     # one line, never cut
        return 2
    except Exception as err:
        # a database error; SQLAlchemy is imported only by commands that open a database
        database_errors = sys.modules.get("sqlalchemy.exc")
        if database_errors is None or not isinstance(err, database_errors.SQLAlchemyError):
            raise
        err_console.print(f"[bold red]database error:[/] {_db_error_text(err)}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:                   # what is true depends on the command (its default)
        err_console.print(interrupted_message(args), soft_wrap=True)
        return gapsweep.INTERRUPTED_EXIT


if __name__ == "__main__":
    sys.exit(main())
