"""Rendering shared by several commands (no command module imports another; they share this)."""

from __future__ import annotations

from gapsweep.terminal import console
from orchestrator.score_text import best_step_0_mark, best_step_0_note, score_cell


def counts_score_cell(counts: dict) -> str:
    """A ``ResultsStore.counts()`` row's test score as ``mean ± std (max)`` in percent, marked
    `` †N`` when N of its done seeds have best step 0."""
    if counts["test_mean"] is None:
        return "—"
    return (score_cell(100 * counts["test_mean"], 100 * (counts["test_std"] or 0),
                       100 * counts["test_max"]) + best_step_0_mark(counts["best_step_0"]))


def print_best_step_0_note(counts: list[dict]) -> None:
    """Under a table of ``counts_score_cell``s: what its marks mean, when it has any."""
    flagged = sum(c["best_step_0"] for c in counts)
    if flagged:
        console.print(best_step_0_note(flagged, sum(c["done"] for c in counts)), style="yellow")
