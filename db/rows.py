"""What the results API's read methods return: small frozen rows, read by attribute.

    sweep = store.sweeps()[0]                               # SweepRow
    sweep.name, sweep.status, sweep.spec_yaml
    for c in store.counts(sweep.id):                        # ConfigurationCounts
        print(c.label, c.runs.done, c.runs.diverged, c.test_mean)
    finished = store.finished_scores(configuration_id)      # FinishedScores
    finished.scores, finished.counts.best_step_0
    for entry in store.sweep_seeds(experiment="table1_baseline"):   # SweepSeeds: what the
        entry.sweep.name, [c.configuration.label for c in entry.configurations]   # report reads

Each row holds what one query selects and nothing else, in the database's own units (test scores as
fractions, times as the stored datetimes). ``RunCounts`` is the one shape of "runs by status": every
status of ``db.models.RUN_STATUSES`` (zero when a configuration has none) and ``best_step_0``, how
many of its scored done runs have best step 0 (their starting point,
``orchestrator.score_text.best_step_0``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Mapping

from db.models import RUN_STATUSES     # also read from here: the statuses RunCounts holds


@dataclasses.dataclass(frozen=True)
class SweepRow:
    """One sweep as registered (``ResultsStore.sweeps``)."""

    id: int
    name: str
    experiment: str
    status: str
    created_at: dt.datetime | None
    finished_at: dt.datetime | None
    code_version: str | None
    spec_yaml: str


@dataclasses.dataclass(frozen=True)
class ConfigurationRow:
    """One configuration of a sweep (``ResultsStore.configurations``): its resolved config too."""

    id: int
    sweep_id: int
    label: str
    algorithm: str
    config: Mapping[str, Any]
    config_hash: str | None = None


@dataclasses.dataclass(frozen=True)
class RunCounts:
    """A configuration's runs by status, and how many scored done runs have best step 0."""

    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    diverged: int = 0
    best_step_0: int = 0

    @property
    def total(self) -> int:
        """Every run, whatever its status."""
        return sum(self.of(status) for status in RUN_STATUSES)

    def of(self, status: str) -> int:
        """The count of one run status (one of ``RUN_STATUSES``)."""
        if status not in RUN_STATUSES:
            raise ValueError(f"run status {status!r}; allowed: {', '.join(RUN_STATUSES)}")
        return getattr(self, status)


@dataclasses.dataclass(frozen=True)
class ConfigurationCounts:
    """One configuration's run counts and test score summary (``ResultsStore.counts``): mean,
    sample std (ddof 1; None below two scores) and max of its done runs' test scores, fractions."""

    sweep: str
    configuration_id: int
    label: str
    algorithm: str
    runs: RunCounts
    test_mean: float | None
    test_std: float | None
    test_max: float | None


@dataclasses.dataclass(frozen=True)
class FinishedScores:
    """A configuration's done runs' test scores (by seed) and its run counts
    (``ResultsStore.finished_scores``), as the MLflow tracker's parent summary takes them."""

    scores: tuple[float, ...]
    counts: RunCounts


@dataclasses.dataclass(frozen=True)
class RunRow:
    """One run of a configuration (``ResultsStore.runs_of``)."""

    id: int
    seed: int
    status: str
    attempts: int
    test_score: float | None
    best_val_score: float | None
    best_step: int | None
    wall_seconds: float | None
    error: str | None


@dataclasses.dataclass(frozen=True)
class RunDetail:
    """Everything stored about one run, with its sweep name and configuration label
    (``ResultsStore.run``)."""

    id: int
    configuration_id: int
    seed: int
    status: str
    attempts: int
    worker_host: str | None
    device: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    wall_seconds: float | None
    error: str | None
    best_step: int | None
    best_val_score: float | None
    test_score: float | None
    final_step: int | None
    diverged_step: int | None
    canary: str | None
    canary_deviation: float | None
    canary_seconds: float | None
    label: str
    sweep: str


@dataclasses.dataclass(frozen=True)
class SeedOutcome:
    """What the report reads of one run: its seed, status, test score and best step, and its
    wide-test score and graph count once ``gapsweep analyse wide-test`` has scored it."""

    seed: int
    status: str
    test_score: float | None
    best_step: int | None
    wide_test_score: float | None = None
    wide_test_graphs: int | None = None


@dataclasses.dataclass(frozen=True)
class ConfigurationSeeds:
    """A configuration with every one of its runs' outcomes, by seed."""

    configuration: ConfigurationRow
    runs: tuple[SeedOutcome, ...]


@dataclasses.dataclass(frozen=True)
class SweepSeeds:
    """A sweep with its configurations (registration order) and their runs
    (``ResultsStore.sweep_seeds``: the report's input, read in one transaction)."""

    sweep: SweepRow
    configurations: tuple[ConfigurationSeeds, ...]


@dataclasses.dataclass(frozen=True)
class SnapshotInfo:
    """Where a run's snapshot is and what it must hash to (``ResultsStore.snapshot_info``)."""

    run_id: int
    kind: str
    format: str
    byte_size: int
    sha256: str
    uri: str | None
