"""``gapsweep plan / run / submit / logs`` and ``status --job``: sweeps from YAML to results."""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import subprocess
import sys
import time
from pathlib import Path

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from gapsweep.arguments import add_db_argument, gpu_count, positive_int
from gapsweep.render import counts_score_cell, print_best_step_0_note
from gapsweep.terminal import console, err_console
from orchestrator import jobs
from orchestrator.plan import seed_span
from orchestrator.schedule import ProgressEvents, ray_session

log = logging.getLogger(__name__)
JOB_ADDRESS_HELP = "Ray dashboard address of the cluster's head, e.g. http://HEAD:8265"


def _scaling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", metavar="SWEEP.yaml", help="the sweep file")
    parser.add_argument("--steps", type=positive_int, default=None,
                        help="train every configuration for this many steps instead, eval_every "
                             "scaled down to validate about as often (a quick look; recorded as "
                             "sweep '<name>-steps<N>')")
    parser.add_argument("--max-seeds", type=positive_int, default=None, metavar="N",
                        help="only the first N seeds of the sweep")
    parser.add_argument("--population", type=positive_int, default=None, metavar="SEEDS",
                        help="at most this many seeds per worker task (default: the sweep's "
                             "'population', else all of a configuration's seeds in one task)")


def add_commands(commands) -> None:
    plan = commands.add_parser("plan", help="show a sweep's configurations, seeds and tasks; run nothing")
    _scaling_arguments(plan)
    plan.set_defaults(handler=cmd_plan)

    run = commands.add_parser(
        "run", help="run a sweep: local Ray by default, or --address a cluster",
        description="Register the sweep, train every pending seed as Ray tasks, record results in "
                    "the database and MLflow. Re-running skips what is done; Ctrl-C stops cleanly.")
    _scaling_arguments(run)
    run.add_argument("--address", default=None,
                     help="Ray cluster to attach to: 'auto', a head address HOST:6379 or ray://HOST:10001 "
                          "(default: an in-process local Ray on this machine's CPUs/GPUs)")
    add_db_argument(run)
    run.add_argument("--mlflow", default=None, metavar="URI",
                     help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                          "sqlite:///<run dir>/mlflow.db)")
    run.add_argument("--no-mlflow", action="store_true", help="record in the database only")
    run.add_argument("--retry-failed", action="store_true", help="re-run seeds that failed before")
    run.add_argument("--gpus", type=gpu_count, default=None, metavar="N",
                     help="GPUs per task instead of the sweep's resources.gpus (0: train on CPUs)")
    run.add_argument("--cache-dir", default=None, help="data cache directory (local runs)")
    run.set_defaults(handler=cmd_run)

    submit = commands.add_parser(
        "submit", help="submit a sweep to a Ray cluster as a job (Ray Job Submission API)",
        description="Runs 'gapsweep run SWEEP.yaml --address auto' on the cluster's head as a Ray "
                    "job and prints its id; follow it with 'gapsweep status --job ID' and "
                    "'gapsweep logs ID'. The cluster needs gapsweep installed. Give --db without a "
                    "password (use PGPASSWORD or ~/.pgpass on the cluster): the job's command line "
                    "is visible in the Ray dashboard.")
    _scaling_arguments(submit)
    submit.add_argument("--address", required=True, help=JOB_ADDRESS_HELP)
    add_db_argument(submit)
    submit.add_argument("--mlflow", default=None, metavar="URI", help="MLflow tracking URI")
    submit.add_argument("--run-dir", default=jobs.DEFAULT_RUN_DIR,
                        help="run directory on the head for the default SQLite/MLflow stores "
                             "(default: $HOME/gapsweep/runs)")
    submit.add_argument("--retry-failed", action="store_true")
    submit.add_argument("--gpus", type=gpu_count, default=None, metavar="N",
                        help="GPUs per task instead of the sweep's resources.gpus")
    submit.set_defaults(handler=cmd_submit)

    logs = commands.add_parser("logs", help="print (or --follow) a submitted sweep job's output")
    logs.add_argument("job_id", metavar="JOB_ID")
    logs.add_argument("--address", required=True, help=JOB_ADDRESS_HELP)
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    logs.set_defaults(handler=cmd_logs)


def _plan(args):
    from orchestrator.plan import make_plan
    from orchestrator.spec import load_spec

    return make_plan(load_spec(args.sweep), steps=args.steps, max_seeds=args.max_seeds)


def cmd_plan(args) -> int:
    from orchestrator.plan import describe

    plan = _plan(args)
    spec = plan.spec
    table = Table(title=f"sweep {plan.sweep_name} ({spec.experiment}): {len(plan.configurations)} "
                        f"configuration(s) × {len(plan.seeds)} seed(s)", title_justify="left")
    rows = describe(plan, population=args.population)
    for column in ("configuration", "algorithm", "hidden", "steps", "seeds", "tasks", "seed-steps"):
        table.add_column(column, justify="left" if column in ("configuration", "algorithm")
                         else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
    console.print(table)
    population = args.population or spec.population
    console.print(f"seeds {seed_span(plan.seeds)}; {sum(r[5] for r in rows)} task(s) of at most "
                  f"{population or 'all'} seed(s), each with {spec.resources.gpus:g} GPU(s) and "
                  f"{spec.resources.cpus:g} CPU(s); {plan.seed_steps:,} seed-steps in all; "
                  f"up to {spec.max_attempts} attempt(s) per task")
    return 0


def code_version() -> str | None:
    """The git commit of this checkout (with '+dirty' when it has uncommitted changes), if any."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


class LiveProgress(ProgressEvents):
    """A rich live view: a bar per configuration (seeds) and one for seed-steps with speed/ETA."""

    def __init__(self):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[extra]}"), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=console, transient=False)
        self.rows: dict[str, TaskID] = {}
        self.start_time = time.perf_counter()

    def start(self, plan, todo, done):
        self.progress.start()
        self.overall = self.progress.add_task("seed-steps", total=None, extra="")
        for c in plan.configurations:
            self.rows[c.label] = self.progress.add_task(
                c.label, total=len(plan.seeds), completed=done.get(c.label, 0), extra="")
        self.done_before = dict(done)

    def update(self, label, finished, failed):
        self.progress.update(self.rows[label], completed=self.done_before.get(label, 0) + finished,
                             extra=f"[red]{failed} failed[/]" if failed else "")

    def seed_steps(self, done, total):
        elapsed = time.perf_counter() - self.start_time
        self.progress.update(self.overall, completed=done, total=total,
                             extra=f"{done / elapsed:,.0f} seed-steps/s" if elapsed > 0 else "")

    def message(self, text):
        self.progress.console.print(f"[yellow]{text}[/]")

    def stop(self):
        self.progress.stop()


class LogLines(ProgressEvents):
    """Plain log lines for pipes and log files: each finished population, and every 30 s."""

    EVERY_S = 30.0

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.last = 0.0
        self.first: tuple[float, int] | None = None
        self.reported_total = False

    def _say(self, text):
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {text}", file=self.stream, flush=True)

    def start(self, plan, todo, done):
        self.total = len(plan.seeds)
        self.done_before = dict(done)
        self._say(f"{sum(todo.values())} seed(s) to train in {len(plan.configurations)} "
                  f"configuration(s); {sum(done.values())} already done")

    def update(self, label, finished, failed):
        self._say(f"{label}: {self.done_before.get(label, 0) + finished}/{self.total} seeds done"
                  + (f", {failed} failed" if failed else ""))

    def seed_steps(self, done, total):
        now = time.perf_counter()
        if self.first is None and done > 0:
            self.first = (now, done)                    # rates count from the first step: not compiling
        finished = done >= total
        if finished and self.reported_total or (not finished and now - self.last < self.EVERY_S):
            return
        self.last = now
        self.reported_total = finished
        text = f"{done:,}/{total:,} seed-steps"
        if self.first is not None and now > self.first[0] and done > self.first[1]:
            rate = (done - self.first[1]) / (now - self.first[0])
            text += f" ({rate:,.0f}/s"
            if not finished and done >= 0.05 * total:
                text += f", ETA {time.strftime('%H:%M:%S', time.gmtime((total - done) / rate))}"
            text += ")"
        elif not finished:
            text += " (compiling)" if done == 0 else ""
        self._say(text)

    def message(self, text):
        self._say(text)


def cmd_run(args) -> int:
    from db.store import ResultsStore
    from orchestrator.schedule import SweepRunner
    from workers.data import DataCache

    plan = _plan(args)
    spec = plan.spec
    version = code_version()                       # before JAX starts threads (git forks)
    store = ResultsStore(args.db)
    tracker = None
    if not args.no_mlflow:
        from orchestrator.tracking import SweepTracker, default_tracking_uri

        tracking_uri = args.mlflow or default_tracking_uri()
        tracker = SweepTracker(tracking_uri, spec.tracking.experiment or plan.sweep_name,
                               plan.sweep_name, {"gapsweep.experiment": spec.experiment})
    cache_dir = None
    if args.address is None:                       # local: build missing data here, once, first
        cache = DataCache(args.cache_dir)
        cache_dir = str(cache.directory)
        _prepare_data(plan, cache)
    console.print(f"[bold]run[/] {plan.sweep_name}: {len(plan.configurations)} configuration(s) × "
                  f"{len(plan.seeds)} seed(s) on {args.address or 'a local Ray'}; results in "
                  f"{store.display_url}" + (f", MLflow {tracking_uri}" if tracker else ""))
    events = LiveProgress() if console.is_terminal else LogLines()
    runner = SweepRunner(plan, store, tracker, address=args.address, cache_dir=cache_dir,
                         retry_failed=args.retry_failed, population=args.population,
                         events=events, code_version=version, gpus=args.gpus)
    # with analyses: one Ray session for the training and the analysis tasks after it
    with ray_session(args.address) if spec.analyses else contextlib.nullcontext():
        try:
            outcome = runner.run()
        finally:
            store.close()
        _print_outcome(outcome, args, tracker)
        if spec.analyses and outcome.recorded and not outcome.interrupted:
            _run_analyses(plan, args, cache_dir, tracking_uri if tracker else None, runner.gpus)
    if outcome.interrupted:
        err_console.print("interrupted: finished populations are recorded; run the same command "
                          "again to continue")
        return 130
    return 1 if outcome.failed else 0


def _run_analyses(plan, args, cache_dir: str | None, tracking_uri: str | None,
                  gpus: float) -> None:
    """The sweep file's ``analyses:`` as Ray tasks with the sweep's resources, one per
    configuration, vmapped over its seeds."""
    from db.store import ResultsStore
    from gapsweep.commands.analyse import run_sweep_analyses
    from orchestrator.schedule import run_on_workers

    spec = plan.spec
    console.print(f"analyses: {', '.join(spec.analyses)}")
    with ResultsStore(args.db) as store:
        run_sweep_analyses(store, plan.sweep_name, spec.analyses, cache_dir, tracking_uri,
                           functools.partial(run_on_workers, cpus=spec.resources.cpus, gpus=gpus))


def _prepare_data(plan, cache) -> None:
    from workers.data import available_cores
    from workers.train import TrainData

    requests = list(dict.fromkeys(r for c in plan.configurations
                                  for r in TrainData.requests(c.config)))
    missing = [r for r in requests if not cache.contains(r)]
    if not missing:
        return
    console.print(f"building {len(missing)} missing data set(s) into {cache.directory}")
    processes = available_cores()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("graphs"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        for request in missing:
            task = progress.add_task(request.label, total=request.count)
            cache.fetch(request, processes=processes,
                        progress=lambda n, task=task: progress.advance(task, n))
            progress.remove_task(task)


def _print_outcome(outcome, args, tracker) -> None:
    from db.store import ResultsStore

    with ResultsStore(args.db) as store:
        counts = store.counts(outcome.sweep_id)
    table = Table(title=f"{outcome.sweep_name}: test score (%) over finished seeds",
                  title_justify="left")
    for column in ("configuration", "algorithm", "seeds", "mean ± std (max)", "diverged",
                   "failed", "pending"):
        table.add_column(column, justify="left" if column in ("configuration", "algorithm")
                         else "right", no_wrap=True)
    for c in counts:
        score = counts_score_cell(c)
        table.add_row(c.label, c.algorithm, str(c.runs.done), score, str(c.runs.diverged),
                      str(c.runs.failed), str(c.runs.pending + c.runs.running))
    console.print(table)
    print_best_step_0_note(counts)
    console.print(f"{outcome.recorded} seed(s) recorded ({outcome.diverged} diverged), "
                  f"{outcome.failed} failed, {outcome.retries} retried task(s), {outcome.skipped} "
                  f"already done; {outcome.seconds:.1f}s")
    if tracker is not None:
        from orchestrator.tracking import ui_command

        console.print(f"browse in MLflow: {ui_command(tracker.tracking_uri)}")


def cmd_submit(args) -> int:
    options = jobs.SweepJob(steps=args.steps, max_seeds=args.max_seeds, population=args.population,
                            gpus=args.gpus, db=args.db, mlflow=args.mlflow,
                            retry_failed=args.retry_failed, run_dir=args.run_dir)
    with console.status("waiting for the cluster's job agent") as status:
        job_id, sweep_name = jobs.submit_sweep(
            args.sweep, args.address, options,
            on_wait=lambda error: status.update(f"waiting for the cluster's job agent ({error})"))
    console.print(f"submitted {sweep_name} as job [bold]{job_id}[/]")
    console.print(f"follow it: gapsweep status --job {job_id} --address {args.address}; "
                  f"gapsweep logs {job_id} --address {args.address} --follow")
    return 0


def cmd_logs(args) -> int:
    if not args.follow:
        console.out(jobs.job_logs(args.job_id, args.address), end="")
        return 0
    for text in jobs.follow_logs(args.job_id, args.address):
        console.out(text, end="")
    return 0
