"""How a score is written, everywhere it is written: ``mean ± std (max)`` in percent, and the flag
on a result whose best step is 0 (a seed's best step reads ``0 †``, a score over seeds ``… †N``,
N of them at best step 0, explained by ``best_step_0_note``).

Plain strings, no printing: the report's formats, the MLflow summaries and the command layer's
tables all build their text from these.
"""

from __future__ import annotations

BEST_STEP_0_MARK = "†"


def score_cell(mean: float | None, std: float | None, best: float | None) -> str:
    """``mean ± std (max)`` with two decimals (already in percent); ``—`` for what is missing
    (no mean: no scored seed; no std: fewer than two)."""
    if mean is None:
        return "—"
    spread = "—" if std is None else f"{std:.2f}"
    return f"{mean:.2f} ± {spread} ({best:.2f})"


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
