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
import sys

from rich.logging import RichHandler

from gapsweep.commands import (analyse, compile, data, report, results, stack, sweep, train,
                               version)
from gapsweep.terminal import err_console
from workers.errors import GapsweepError

DEBUG_ENV = "GAPSWEEP_DEBUG"            # set (e.g. GAPSWEEP_DEBUG=1): tracebacks too, for bug reports
COMMAND_MODULES = (data, train, sweep, results, report, compile, stack, analyse, version)


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
    return str(original).strip().splitlines()[0] if str(original).strip() else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
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
    except KeyboardInterrupt:
        err_console.print("interrupted; finished cache entries are kept, partial ones discarded")
        return 130


if __name__ == "__main__":
    sys.exit(main())
