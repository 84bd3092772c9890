"""The consoles every command prints through: rich on a terminal; wide plain lines when piped or
logged (tables are not cut to 80 columns). They write to whatever sys.stdout/sys.stderr are at the
time of printing. The engine below never prints: what it has to say reaches these through the
events objects the commands hand it (``gapsweep.progress``).
"""

from __future__ import annotations

import sys

from rich.console import Console

PIPED_WIDTH = 200


def _width(stream) -> int | None:
    try:
        return None if stream.isatty() else PIPED_WIDTH
    except (AttributeError, ValueError):
        return PIPED_WIDTH


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))

