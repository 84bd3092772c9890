"""``gapsweep plan / run / submit / logs`` and ``status --job``: sweeps from YAML to results."""

from __future__ import annotations

import argparse

from rich.table import Table

from gapsweep import INTERRUPTED_EXIT
from gapsweep.arguments import SEED_COUNT, STEPS, add_db_argument, gpu_count, positive_seconds
from gapsweep.interrupt import CACHE
from gapsweep.terminal import console, err_console
from orchestrator import jobs
from orchestrator.events import SubmitEvents

# The spec, the plan and the engine (pydantic, NumPy, SQLAlchemy, JAX through the trainer) are
# imported by the handlers that use them: building the parser loads none of them.

DB_WAIT_S = 1800.0        # db.retry.DEFAULT_MAX_WAIT_S (not imported: SQLAlchemy stays unloaded)
DB_WAIT_HELP = ("how long to wait for a results database that stops answering mid-sweep (a "
                "restarted server, a network cut) before failing, per outage; finished results "
                f"are held in memory meanwhile (default: {DB_WAIT_S:g}; 0: fail at once)")


def non_negative_seconds(text: str) -> float:
    """A finite number of seconds, 0 or more (``--db-wait``: 0 fails at once; ``--simulate``: 0 is
    a task that returns at once)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text} is not allowed; give a number of seconds ≥ 0")
    return value


JOB_ADDRESS_HELP = ("Ray dashboard address of the cluster's head, e.g. http://HEAD:8265 (default: "
                    "$RAY_ADDRESS when it is an http(s) address, else a running 'gapsweep stack')")


def _scaling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", metavar="SWEEP.yaml", help="the sweep file")
    parser.add_argument("--steps", type=STEPS, default=None,
                        help="train every configuration for this many steps instead, eval_every "
                             "scaled down to validate about as often (a quick look; recorded as "
                             "sweep '<name>-steps<N>')")
    parser.add_argument("--max-seeds", type=SEED_COUNT, default=None, metavar="N",
                        help="only the first N seeds of the sweep")
    parser.add_argument("--population", type=SEED_COUNT, default=None, metavar="SEEDS",
                        help="at most this many seeds per worker task (default: the sweep's "
                             "'population', else all of a configuration's seeds in one task)")


def _simulate_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--simulate", type=non_negative_seconds, default=None, metavar="SECONDS",
                        help="train nothing: each task sleeps SECONDS and records synthetic "
                             "results (device 'synthetic'), no data is built; exercises the "
                             "cluster and the stores (retries, lost nodes) at no training cost")


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
    run.add_argument("--db-wait", type=non_negative_seconds, default=DB_WAIT_S, metavar="SECONDS",
                     help=DB_WAIT_HELP)
    run.add_argument("--retry-failed", action="store_true", help="re-run seeds that failed before")
    run.add_argument("--gpus", type=gpu_count, default=None, metavar="N",
                     help="GPUs per task instead of the sweep's resources.gpus (0: train on CPUs)")
    run.add_argument("--cache-dir", default=None, help="data cache directory (local runs)")
    _simulate_argument(run)
    run.set_defaults(handler=cmd_run, interrupted=(
        "before the sweep was registered: nothing was recorded or trained"))

    submit = commands.add_parser(
        "submit", help="submit a sweep to a Ray cluster as a job (Ray Job Submission API)",
        description="First runs 'gapsweep version --json' on the cluster's head as a short check "
                    "job: a head that cannot run gapsweep (not on its PATH) or runs another "
                    "gapsweep version is refused and nothing is submitted. Then runs 'gapsweep run "
                    "SWEEP.yaml --address auto' there as a Ray job and prints its id and where its "
                    "results go; follow it with 'gapsweep status --job ID' and 'gapsweep logs ID', "
                    "read them with 'gapsweep runs --job ID'. Give --db without a password (use "
                    "PGPASSWORD or ~/.pgpass on the cluster): the job's command line is visible in "
                    "the Ray dashboard.")
    _scaling_arguments(submit)
    submit.add_argument("--address", default=None, help=JOB_ADDRESS_HELP)
    add_db_argument(submit)
    submit.add_argument("--mlflow", default=None, metavar="URI", help="MLflow tracking URI")
    submit.add_argument("--db-wait", type=non_negative_seconds, default=DB_WAIT_S, metavar="SECONDS",
                        help=DB_WAIT_HELP)
    submit.add_argument("--run-dir", default=jobs.DEFAULT_RUN_DIR,
                        help="run directory on the head for the default SQLite/MLflow stores "
                             "(default: $HOME/gapsweep/runs)")
    submit.add_argument("--check-timeout", type=positive_seconds, default=jobs.CHECK_TIMEOUT_S,
                        metavar="SECONDS",
                        help="how long the check job on the head may take (default: "
                             f"{jobs.CHECK_TIMEOUT_S:g})")
    submit.add_argument("--retry-failed", action="store_true")
    submit.add_argument("--gpus", type=gpu_count, default=None, metavar="N",
                        help="GPUs per task instead of the sweep's resources.gpus")
    _simulate_argument(submit)
    submit.set_defaults(handler=cmd_submit, interrupted=(
        "no job id came back: the job was not submitted, or was just before Ctrl-C (ray job "
        "list --address ADDRESS shows it)"))

    logs = commands.add_parser("logs", help="print (or --follow) a submitted sweep job's output")
    logs.add_argument("job_id", metavar="JOB_ID")
    logs.add_argument("--address", default=None, help=JOB_ADDRESS_HELP)
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    logs.set_defaults(handler=cmd_logs, interrupted=lambda args: (
        f"stopped printing; that does not stop job {args.job_id} (gapsweep status --job "
        f"{args.job_id} --address {args.address}; ray job stop {args.job_id} stops it)"))


def _plan(args):
    from orchestrator.plan import make_plan
    from orchestrator.spec import load_spec

    return make_plan(load_spec(args.sweep), steps=args.steps, max_seeds=args.max_seeds)


def cmd_plan(args) -> int:
    from orchestrator.plan import describe, seed_span

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


def cmd_run(args) -> int:
    from gapsweep.progress import LiveProgress, LogLines
    from orchestrator.engine import SweepSettings, run_sweep

    plan = _plan(args)                  # a Ctrl-C until run_sweep: the command's default message
    settings = SweepSettings(address=args.address, db=args.db, mlflow=args.mlflow,
                             track=not args.no_mlflow, retry_failed=args.retry_failed,
                             population=args.population, gpus=args.gpus, cache_dir=args.cache_dir,
                             db_wait=args.db_wait, simulate=args.simulate)
    view = LiveProgress() if console.is_terminal else LogLines()
    try:
        result = run_sweep(plan, settings, view)
    except KeyboardInterrupt:           # before training (data) or after it (analyses)
        err_console.print(f"interrupted {_interrupted_phase(view)}", soft_wrap=True)
        return INTERRUPTED_EXIT
    if result.outcome.interrupted:
        pending = sum(c.runs.pending + c.runs.running for c in result.counts)
        err_console.print(f"interrupted: {result.outcome.recorded} seed(s) recorded, {pending} left "
                          "pending; run the same command again to resume", soft_wrap=True)
    return result.exit_code


def _interrupted_phase(view) -> str:
    """Where ``run_sweep`` was when Ctrl-C came, from the events it had sent (``view.phase``)."""
    if view.phase == "analyses":
        return ("during the analyses: every seed is recorded; run the analyses with "
                "gapsweep analyse")
    if view.phase == "data":
        return f"while building data, before any training: {CACHE}; run the same command again"
    return "before any training: no seed was trained; run the same command again"


class _SubmitStatus(SubmitEvents):
    """The submit stages on a spinner line; a code-version difference as a printed note."""

    def __init__(self, status):
        self.status = status

    def agent_wait(self, error: str) -> None:
        self.status.update(f"waiting for the cluster's job agent ({error})")

    def check_start(self, address: str, job_id: str, timeout: float) -> None:
        self.status.update(f"checking that the cluster at {address} runs gapsweep (job {job_id}, "
                           f"up to {timeout:g} s)")

    def code_version_differs(self, here, there, host: str) -> None:
        console.print(f"note: the cluster ({host}) runs gapsweep code {there or 'unknown'}, this "
                      f"checkout {here or 'unknown'}; submitted anyway", style="yellow",
                      soft_wrap=True, highlight=False)

    def submitting(self, sweep_name: str) -> None:
        self.status.update(f"submitting {sweep_name}")


def cmd_submit(args) -> int:
    options = jobs.SweepJob(steps=args.steps, max_seeds=args.max_seeds, population=args.population,
                            gpus=args.gpus, db=args.db, mlflow=args.mlflow,
                            retry_failed=args.retry_failed, run_dir=args.run_dir,
                            db_wait=args.db_wait, simulate=args.simulate)
    address = jobs.dashboard_address(args.address)
    with console.status("connecting to the cluster's job server") as status:
        submitted = jobs.submit_sweep(args.sweep, address, options, events=_SubmitStatus(status),
                                      check_timeout=args.check_timeout)
    job = submitted.job_id
    for line in (f"submitted {submitted.sweep_name} as job {job} to {address}",
                 f"results: {submitted.db} on {submitted.host}",
                 f"mlflow: {submitted.mlflow or 'none'}",
                 f"follow it: gapsweep status --job {job} --address {address}; "
                 f"gapsweep logs {job} --address {address} --follow",
                 f"read its results: gapsweep runs --job {job} --address {address}"):
        console.print(line, soft_wrap=True, highlight=False)
    return 0


def cmd_logs(args) -> int:
    address = jobs.dashboard_address(args.address)
    if not args.follow:
        console.out(jobs.job_logs(args.job_id, address), end="")
        return 0
    for text in jobs.follow_logs(args.job_id, address):
        console.out(text, end="")
    return 0
