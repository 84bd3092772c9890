"""Ray fan-out of a sweep: one task per (configuration, chunk of seeds); the driver records.

    outcome = SweepRunner(plan, store, tracker).run()

The driver registers the sweep (idempotently), takes the runs still pending, claims them, and
submits one Ray task per (configuration, seed chunk) with the sweep's resources. Each finished
population is recorded in the database (one transaction) and then in MLflow, by the driver alone:
workers never see credentials. Failures:

- a worker process or node that dies, or Ray's memory monitor killing a task: the task is retried,
  up to ``max_attempts`` attempts in all;
- out of memory on the device (XLA ``RESOURCE_EXHAUSTED``) or host: retried with half the
  population per vmapped chunk, down to one seed;
- an exception in the training code: its seeds are marked failed at once with the traceback
  (deterministic errors do not go away on retry; ``--retry-failed`` re-runs them); a failed
  numerical canary (``workers.canary``) is such an error: never retried, never a result;
- a diverged seed is a result (status ``diverged``), never retried.

Ctrl-C cancels the tasks in flight and puts their runs back to pending; finished populations are
already recorded. Re-running the sweep picks up exactly what is left.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import traceback
from collections import defaultdict
from typing import Callable

from db.store import ConfigurationEntry, ResultsStore
from orchestrator.cluster import SchedulingError, check_cpus, check_gpus, ray_session, submit
from orchestrator.events import ProgressEvents
from orchestrator.interrupts import interrupts_held
from orchestrator.plan import PlannedTask, SweepPlan, seed_span
from orchestrator.records import run_results
from orchestrator.tracking_sync import TrackingSync
from workers.errors import first_line

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5


@dataclasses.dataclass
class TaskState:
    key: int
    task: PlannedTask
    run_ids: dict[int, int]                 # seed → runs.id
    population: int | None
    attempt: int = 1
    ref: object = None


@dataclasses.dataclass
class SweepOutcome:
    sweep_id: int
    sweep_name: str
    recorded: int = 0
    diverged: int = 0
    failed: int = 0
    retries: int = 0
    skipped: int = 0                        # seeds already finished before this run
    interrupted: bool = False
    seconds: float = 0.0
    seed_steps: int = 0
    # MLflow stopped answering during the run: its error (the database has every result; the
    # next run logs the seeds MLflow missed), and how many seeds it missed
    tracking_error: str | None = None
    untracked: int = 0
    caught_up: int = 0                      # seeds recorded earlier that this run logged to MLflow
    # where the driver's time went: database writes, MLflow logging, converting results
    timings: dict[str, float] = dataclasses.field(
        default_factory=lambda: {"database": 0.0, "mlflow": 0.0, "convert": 0.0})


def _classify(error: BaseException) -> str:
    """'oom', 'lost' (worker/node died: retry) or 'error' (the training code raised)."""
    import ray.exceptions as rex

    text = str(error)
    if isinstance(error, getattr(rex, "OutOfMemoryError", ())) or "RESOURCE_EXHAUSTED" in text \
            or "Out of memory" in text or "out of memory" in text:
        return "oom"
    if isinstance(error, rex.RayTaskError):
        return "error"
    return "lost"


class SweepRunner:
    def __init__(self, plan: SweepPlan, store: ResultsStore, tracker=None, *,
                 address: str | None = None, cache_dir: str | None = None,
                 retry_failed: bool = False, population: int | None = None,
                 trainer: Callable | None = None, events: ProgressEvents | None = None,
                 code_version: str | None = None, gpus: float | None = None):
        self.plan = plan
        self.store = store
        self.tracker = tracker
        self.address = address
        self.cache_dir = cache_dir
        self.retry_failed = retry_failed
        self.population = population if population is not None else plan.spec.population
        self.trainer = trainer
        self.events = events or ProgressEvents()
        self.code_version = code_version
        self.gpus = plan.spec.resources.gpus if gpus is None else gpus     # per task
        self.sync: TrackingSync | None = None          # the tracker's outbox replay, once registered
        self.active_pids: dict[int, int] = {}          # task key → worker pid (as reported)
        self._configuration_ids: dict[str, int] = {}

    # -- set-up --------------------------------------------------------------------------------

    def register(self):
        spec = self.plan.spec
        entries = [ConfigurationEntry(c.label, c.config.to_dict(), c.config_hash)
                   for c in self.plan.configurations]
        sweep = self.store.register_sweep(self.plan.sweep_name, spec.experiment, spec.source_text,
                                          entries, self.plan.seeds, code_version=self.code_version)
        self._configuration_ids = sweep.configuration_ids
        self._sweep_id = sweep.id
        reset = self.store.reset_running(sweep.id)
        if reset:
            self.events.message(f"{reset} run(s) left running by an earlier driver are pending again")
        return sweep

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> SweepOutcome:
        """Register, train what is pending, record; in the current Ray session, else in one of
        its own (``cluster.ray_session``) for the time the tasks run."""
        start = time.perf_counter()
        sweep = self.register()
        outcome = SweepOutcome(sweep.id, self.plan.sweep_name)
        pending = self.store.pending(sweep.id, retry_failed=self.retry_failed)
        by_label: dict[str, dict[int, int]] = defaultdict(dict)
        for p in pending:
            by_label[p.label][p.seed] = p.run_id
        total_seeds = len(self.plan.seeds)
        done_before = {c.label: total_seeds - len(by_label.get(c.label, {}))
                       for c in self.plan.configurations}
        outcome.skipped = sum(done_before.values())
        tasks = self.plan.tasks({label: sorted(seeds) for label, seeds in by_label.items()},
                                population=self.population) if pending else []
        self.events.start(self.plan, {k: len(v) for k, v in by_label.items()}, done_before)
        if self.tracker is not None:
            t0 = time.perf_counter()
            self._tracked(outcome, self._track_configurations, outcome)
            outcome.timings["mlflow"] += time.perf_counter() - t0
        if not tasks:
            self.events.stop()
            self.store.finish_sweep(sweep.id, "finished")
            outcome.seconds = time.perf_counter() - start
            return outcome

        trained = False
        try:
            with ray_session(self.address):
                check_gpus(self.gpus, "each training task")
                check_cpus(self.plan.spec.resources.cpus, "each training task")
                self.store.finish_sweep(sweep.id, "running")
                self._train(sweep, tasks, by_label, outcome, start)
                trained = True
        except KeyboardInterrupt:           # while Ray starts or stops: no task holds a run
            if not (trained or outcome.interrupted):
                outcome.interrupted = True
                with interrupts_held():
                    self.events.stop()
                    self.store.finish_sweep(sweep.id, "interrupted")
                outcome.seconds = time.perf_counter() - start
        return outcome

    def _train(self, sweep, tasks, by_label, outcome: SweepOutcome, start: float) -> None:
        import ray

        reporter = _progress_actor().remote()
        steps_total = sum(len(t.seeds) * t.config.train_steps for t in tasks)
        steps_done_final = 0
        finished = defaultdict(int)
        failed = defaultdict(int)
        states: dict[object, TaskState] = {}
        try:
            for key, task in enumerate(tasks):
                state = TaskState(key, task, {s: by_label[task.label][s] for s in task.seeds},
                                  self.population)
                self._submit(state, reporter, states)
            last_poll = 0.0
            while states:
                refs = list(states)
                ready, _ = ray.wait(refs, num_returns=1, timeout=PROGRESS_INTERVAL_S)
                if ready and len(refs) > 1:       # every task done by now, in one call
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                for ref in ready:
                    state = states.pop(ref)
                    self.active_pids.pop(state.key, None)
                    try:
                        output = ray.get(ref)
                    except Exception as error:  # noqa: BLE001 - classified below
                        n_failed = self._failed(state, error, reporter, states, outcome)
                        if n_failed:
                            failed[state.task.label] += n_failed
                            self.events.update(state.task.label, finished[state.task.label],
                                               failed[state.task.label])
                        continue
                    recorded, diverged = self._record(state, output, outcome)
                    outcome.recorded += recorded
                    outcome.diverged += diverged
                    finished[state.task.label] += len(state.task.seeds)
                    steps_done_final += len(state.task.seeds) * state.task.config.train_steps
                    self.events.update(state.task.label, finished[state.task.label],
                                       failed[state.task.label])
                if time.monotonic() - last_poll >= PROGRESS_INTERVAL_S and states:
                    last_poll = time.monotonic()
                    in_flight = ray.get(reporter.snapshot.remote())
                    live = {s.key for s in states.values()}
                    self.active_pids = {k: v[2] for k, v in in_flight.items() if k in live}
                    running = sum(v[0] for k, v in in_flight.items() if k in live)
                    self.events.seed_steps(steps_done_final + running, steps_total)
            self.events.seed_steps(steps_done_final, steps_total)
        except KeyboardInterrupt:
            outcome.interrupted = True
            with interrupts_held():
                for ref, state in states.items():
                    ray.cancel(ref, force=True)
                    self.store.release(list(state.run_ids.values()), error="interrupted")
                states.clear()
        finally:
            with interrupts_held():
                self.events.stop()
                outcome.failed = sum(failed.values())
                outcome.seed_steps = steps_done_final
                status = ("interrupted" if outcome.interrupted else
                          "failed" if outcome.failed else "finished")
                self.store.finish_sweep(sweep.id, status)
                if self.tracker is not None:
                    t0 = time.perf_counter()
                    self._tracked(outcome, self._close_tracking, outcome.interrupted)
                    outcome.timings["mlflow"] += time.perf_counter() - t0
                outcome.seconds = time.perf_counter() - start

    # -- MLflow: a mirror of the database, never a reason to lose a result ------------------------

    def _tracked(self, outcome: SweepOutcome, call, *args, **kwargs) -> bool:
        """``call(*args, **kwargs)`` on the tracker; True when it worked. MLflow failing (a server
        that stopped answering, a full disk) ends tracking for this run, not the run: the results
        keep going to the database, the error is in ``outcome.tracking_error`` and reported once,
        and the next run of the sweep logs the seeds MLflow missed (``_track_configurations``)."""
        try:
            call(*args, **kwargs)
            return True
        except Exception as error:          # noqa: BLE001 - any MLflow failure, reported below
            text = first_line(error)[:300]
            outcome.tracking_error = f"{type(error).__name__}: {text}"
            tracker, self.tracker, self.sync = self.tracker, None, None
            tracker.abandon()
            self.events.message(
                f"MLflow at {tracker.tracking_uri} failed ({outcome.tracking_error}); results "
                "keep going to the database, and the next run of this sweep (or 'gapsweep track "
                "sync') logs to MLflow the seeds it missed")
            return False

    def _track_configurations(self, outcome: SweepOutcome) -> None:
        """A parent run per configuration; then what the tracking outbox holds (seeds the
        database recorded and MLflow lacks: a tracking server that failed during an earlier run, a
        driver killed in between, ``--no-mlflow``) is logged (``tracking_sync``)."""
        self.sync = TrackingSync(self.store, self.tracker, self._sweep_id,
                                 self._configuration_ids)
        self.sync.configure((c.label, c.config.to_dict(), c.config_hash)
                            for c in self.plan.configurations)

        def said(label: str, n: int) -> None:
            self.events.message(f"{label}: logged {n} seed(s) to MLflow that an earlier run "
                                "recorded in the database only")

        outcome.caught_up += self.sync.replay(said)

    def _close_tracking(self, interrupted: bool) -> None:
        if self.sync is not None:
            self.sync.flush()
        self.tracker.close(interrupted=interrupted)

    def _submit(self, state: TaskState, reporter, states: dict) -> None:

        spec = self.plan.spec
        claimed = self.store.claim(list(state.run_ids.values()), retry_failed=self.retry_failed)
        if len(claimed) != len(state.run_ids):
            raise SchedulingError(
                f"{state.task.label}: {len(state.run_ids) - len(claimed)} run(s) were claimed by "
                "another driver; is this sweep already running elsewhere?")
        state.ref = submit(
            _train_remote, (state.task.config.to_dict(), list(state.task.seeds), state.population,
                            self.cache_dir, reporter, state.key, self.trainer,
                            spec.steps_per_dispatch, spec.edge_path),
            name=f"{self.plan.sweep_name}/{state.task.label}/{min(state.task.seeds)}",
            cpus=spec.resources.cpus, gpus=self.gpus)
        states[state.ref] = state

    def _record(self, state: TaskState, output, outcome: SweepOutcome) -> tuple[int, int]:
        t0 = time.perf_counter()
        records = run_results(output, state.run_ids)
        t1 = time.perf_counter()
        recorded = set(self.store.record([r for _, r in records]))
        fresh = [(seed, r) for seed, r in records if r.run_id in recorded]
        label = state.task.label
        t2 = time.perf_counter()
        if self.sync is not None and fresh:
            if not self._tracked(outcome, self.sync.recorded, label, fresh):
                outcome.untracked += len(fresh)
        elif fresh and outcome.tracking_error is not None:
            outcome.untracked += len(fresh)
        outcome.timings["convert"] += t1 - t0
        outcome.timings["database"] += t2 - t1
        outcome.timings["mlflow"] += time.perf_counter() - t2
        return len(fresh), sum(r.status == "diverged" for _, r in fresh)

    def _failed(self, state: TaskState, error: BaseException, reporter, states,
                outcome: SweepOutcome) -> int:
        """Retry or give up; returns the number of seeds marked failed."""
        kind = _classify(error)
        label, seeds = state.task.label, state.task.seeds
        run_ids = list(state.run_ids.values())
        summary = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
        attempts = self.plan.spec.max_attempts
        if kind == "error" or state.attempt >= attempts:
            why = "the training code raised" if kind == "error" else f"{attempts} attempt(s) failed"
            self.store.mark_failed(run_ids, "".join(traceback.format_exception(error))[-8000:])
            self.events.message(f"{label} seeds {seed_span(seeds)} failed ({why}): {summary}")
            return len(seeds)
        population = state.population
        if kind == "oom":
            current = population or len(seeds)
            if current <= 1:
                self.store.mark_failed(run_ids, f"out of memory with one seed per chunk: {summary}")
                self.events.message(f"{label} seeds {seed_span(seeds)} failed: out of memory at "
                                    "population 1")
                return len(seeds)
            population = max(1, current // 2)
        self.store.release(run_ids, error=summary)
        outcome.retries += 1
        self.events.message(
            f"{label} seeds {seed_span(seeds)}: {'out of memory' if kind == 'oom' else 'worker lost'} "
            f"({summary}); retry {state.attempt + 1}/{attempts}"
            + (f" with population {population}" if kind == "oom" else ""))
        retry = TaskState(state.key, state.task, state.run_ids, population, state.attempt + 1)
        self._submit(retry, reporter, states)
        return 0


def _train_remote(config: dict, seeds: list[int], population: int | None, cache_dir: str | None,
                  reporter, key: int, trainer: Callable | None, steps_per_dispatch: int = 1,
                  edge_path: str = "auto"):
    """The body of a Ray task (runs on a worker). ``steps_per_dispatch`` and ``edge_path`` (the
    sweep file's) go to the trainer only when they are not the defaults, so trainers that do not
    train (tests' fakes, ``workers.synthetic``) need not take them."""
    pid = os.getpid()
    reporter.report.remote(key, 0, 0, pid)
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0 or done == total:
            last[0] = now
            reporter.report.remote(key, done, total, pid)

    if trainer is None:
        from workers.training_task import run_task as trainer   # JAX: on the worker only
    extra = {**({"steps_per_dispatch": steps_per_dispatch} if steps_per_dispatch != 1 else {}),
             **({"edge_path": edge_path} if edge_path != "auto" else {})}
    return trainer(config, seeds, population=population, cache_dir=cache_dir, progress=progress,
                   **extra)


_ACTOR = None


def _progress_actor():
    """A tiny actor that holds each task's latest (seed-steps done, total, pid)."""
    global _ACTOR
    if _ACTOR is None:
        import ray

        @ray.remote(num_cpus=0)
        class ProgressReporter:
            def __init__(self):
                self.state: dict[int, tuple[int, int, int]] = {}

            def report(self, key: int, done: int, total: int, pid: int) -> None:
                self.state[key] = (done, total, pid)

            def snapshot(self) -> dict[int, tuple[int, int, int]]:
                return dict(self.state)

        _ACTOR = ProgressReporter
    return _ACTOR
