"""Rendering shared by several commands (no command module imports another; they share this)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from gapsweep.terminal import console
from orchestrator.score_text import best_step_0_mark, best_step_0_note, score_cell

if TYPE_CHECKING:
    from db.rows import ConfigurationCounts


def counts_score_cell(counts: "ConfigurationCounts") -> str:
    """A ``ResultsStore.counts()`` row's test score as ``mean ± std (max)`` in percent, marked
    `` †N`` when N of its done seeds have best step 0."""
    if counts.test_mean is None:
        return "—"
    return (score_cell(100 * counts.test_mean, 100 * (counts.test_std or 0),
                       100 * counts.test_max) + best_step_0_mark(counts.runs.best_step_0))


def print_best_step_0_note(counts: Sequence["ConfigurationCounts"]) -> None:
    """Under a table of ``counts_score_cell``s: what its marks mean, when it has any."""
    flagged = sum(c.runs.best_step_0 for c in counts)
    if flagged:
        console.print(best_step_0_note(flagged, sum(c.runs.done for c in counts)), style="yellow")
