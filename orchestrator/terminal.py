"""The consoles every command prints through: rich on a terminal; wide plain lines when piped or
logged (tables are not cut to 80 columns). They write to whatever sys.stdout/sys.stderr are at the
time of printing.

Also the flag every output puts on a result whose best step is 0 (``best_step_0``): a seed's best
step reads ``0 †``, a score over seeds ``… †N`` (N of them at best step 0), explained by
``best_step_0_note``.
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


BEST_STEP_0_MARK = "†"


def best_step_0(best_step: int | None) -> bool:
    """Whether a result is flagged: best step 0 means its best validation was the first, after a
    single training step, so its parameters (and test score) are essentially its starting point's
    (untrained, or the compiled network with init: compiled)."""
    return best_step == 0


def best_step_0_cell(best_step: int | None) -> str:
    """A seed's best step in a table: ``0 †`` when flagged, ``—`` when it has none."""
    if best_step is None:
        return "—"
    return f"{best_step} {BEST_STEP_0_MARK}" if best_step_0(best_step) else str(best_step)


def best_step_0_mark(count: int) -> str:
    """What follows a score over seeds, ``count`` of them at best step 0: `` †2``; '' for none."""
    return f" {BEST_STEP_0_MARK}{count}" if count else ""


def best_step_0_note(count: int, of: int) -> str:
    """The sentence under a table with marks: ``count`` of ``of`` seeds are at best step 0."""
    return (f"{BEST_STEP_0_MARK} {count} of {of} seed(s) have best step 0: their best validation "
            "was the first, after a single training step, so their parameters and test scores are "
            "essentially their starting point's (an untrained network's; with init: compiled, the "
            "compiled network's), not training's; train longer or validate more often (lower "
            "eval_every)")
