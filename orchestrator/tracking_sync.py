"""MLflow as a projection of the results database: the tracking outbox and its replay.

The database is the source of truth. ``ResultsStore.record`` puts every recorded run in the
outbox (``tracking_outbox``) in the same transaction as its result; a run leaves the outbox once
MLflow shows it: its seed's child run exists (per-seed runs), or its configuration's summary
metrics and ``seeds.csv`` were written after it was recorded (without per-seed runs). So whatever
stops MLflow (a server down, a full disk, ``--no-mlflow``, a driver killed between the database
and MLflow) leaves rows behind, and replaying them later logs exactly what MLflow lacks:

    sync = TrackingSync(store, tracker, sweep_id, configuration_ids)
    sync.replay()                   # at a driver's start, or ``gapsweep track sync``
    sync.recorded(label, records)   # after each population the driver records
    sync.flush()                    # at the end: summaries and tables still owed

Nothing is logged twice: a seed that already has a child run is skipped (``SweepTracker`` searches
a configuration's child runs once), and summaries and ``seeds.csv`` are rewritten, not appended
to. A configuration's summary is written at most every ``SUMMARY_INTERVAL_S`` per configuration
while a sweep runs (each write reads the configuration's scores: after every population it would
cost the driver time quadratic in the seeds) and always at the end.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from typing import Callable, Iterable, Sequence

from db.store import ResultsStore, RunResult
from orchestrator.tracking import SweepTracker, default_tracking_uri, per_seed_runs

SUMMARY_INTERVAL_S = 30.0
REPLAY_CHUNK = 256                 # seeds read back from the database (with curves) at a time


class TrackingSync:
    """Keeps one sweep's MLflow runs in step with its database rows (see the module docstring)."""

    def __init__(self, store: ResultsStore, tracker: SweepTracker, sweep_id: int,
                 configuration_ids: dict[str, int], *,
                 summary_interval_s: float = SUMMARY_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.tracker = tracker
        self.sweep_id = sweep_id
        self.configuration_ids = dict(configuration_ids)
        self.summary_interval_s = summary_interval_s
        self.clock = clock
        self._owed: dict[str, list[int]] = {}        # label → recorded run ids MLflow's summary lacks
        self._summarised_at: dict[str, float] = {}

    @property
    def per_seed_runs(self) -> bool:
        return self.tracker.per_seed_runs

    def configure(self, configurations: Iterable[tuple[str, dict, str]]) -> None:
        """The parent run of each (label, config, config hash): found, else created."""
        for label, config, config_hash in configurations:
            self.tracker.configuration(label, config, config_hash)

    def recorded(self, label: str, records: Sequence[tuple[int, RunResult]]) -> None:
        """A population just recorded in the database: its seeds' child runs (per-seed runs),
        then the configuration's summary if it is due."""
        if not records:
            return
        run_ids = [r.run_id for _, r in records]
        if self.per_seed_runs:
            self.tracker.log_seeds(label, list(records))
            self.store.outbox_done(run_ids)
        self._owed.setdefault(label, []).extend(run_ids)
        if self.clock() - self._summarised_at.get(label, -math.inf) >= self.summary_interval_s:
            self._summarise(label)

    def replay(self, on_label: Callable[[str, int], None] | None = None) -> int:
        """Log what the outbox holds for this sweep; returns the seeds MLflow lacked (child runs
        made, or seeds that only the new ``seeds.csv`` shows). ``on_label(label, n)`` hears each
        configuration that had any."""
        by_label: dict[str, list] = defaultdict(list)
        for entry in self.store.outbox(self.sweep_id):
            by_label[entry.label].append(entry)
        caught_up = 0
        for label, entries in by_label.items():
            if label not in self.configuration_ids:
                continue                              # a configuration this run does not have
            if self.per_seed_runs:
                run_of = {e.seed: e.run_id for e in entries}
                missing = self.tracker.missing_seeds(label, run_of)
                for start in range(0, len(missing), REPLAY_CHUNK):
                    seeds = missing[start:start + REPLAY_CHUNK]
                    results = self.store.recorded_results([run_of[s] for s in seeds])
                    self.tracker.log_seeds(label, list(zip(seeds, results)))
                self.store.outbox_done([e.run_id for e in entries])
                n = len(missing)
            else:
                n = len(entries)
            self._owed.setdefault(label, []).extend(e.run_id for e in entries)
            self._summarise(label)
            caught_up += n
            if n and on_label is not None:
                on_label(label, n)
        return caught_up

    def flush(self) -> None:
        """Every summary (and ``seeds.csv``) still owed, now."""
        for label in list(self._owed):
            self._summarise(label)

    def _summarise(self, label: str) -> None:
        finished = self.store.finished_scores(self.configuration_ids[label])
        self.tracker.update_summary(label, finished.scores, finished.counts)
        owed = self._owed.pop(label, [])
        if not self.per_seed_runs:
            self.tracker.log_seed_table(label, self.store.runs_of(self.sweep_id, label))
            self.store.outbox_done(owed)
        self._summarised_at[label] = self.clock()


@dataclasses.dataclass(frozen=True)
class SweepSync:
    """What ``sync_sweep`` did for one sweep."""

    sweep: str
    experiment: str
    per_seed_runs: bool
    caught_up: int                 # seeds MLflow lacked
    in_outbox: int                 # runs that were in the outbox


def sync_sweep(store: ResultsStore, sweep_name: str, tracking_uri: str | None = None,
               on_label: Callable[[str, int], None] | None = None) -> SweepSync:
    """Replay one sweep's tracking outbox into MLflow (``gapsweep track sync``): the experiment
    and parent runs the sweep file names (found, else created), then what MLflow lacks."""
    from orchestrator.spec import parse_spec

    sweep = store.sweep(sweep_name)
    spec = parse_spec(sweep.spec_yaml, f"<sweep {sweep.name} in {store.display_url}>")
    configurations = store.configurations(sweep.id)
    counts = store.counts(sweep.id)
    seed_runs = sum(c.runs.total for c in counts)
    in_outbox = store.outbox_counts().get(sweep.name, 0)
    per_seed = per_seed_runs(spec.tracking.per_seed_runs, seed_runs)
    experiment = spec.tracking.experiment or sweep.name
    with SweepTracker(tracking_uri or default_tracking_uri(), experiment, sweep.name,
                      {"gapsweep.experiment": sweep.experiment}, per_seed_runs=per_seed) as tracker:
        sync = TrackingSync(store, tracker, sweep.id, {c.label: c.id for c in configurations})
        sync.configure((c.label, dict(c.config), c.config_hash) for c in configurations)
        caught_up = sync.replay(on_label)
    return SweepSync(sweep.name, experiment, per_seed, caught_up, in_outbox)
