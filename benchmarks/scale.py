"""A 100-configuration × 1,024-seed sweep (102,400 seed-runs) end to end, on a simulated cluster.

Every stage a real sweep goes through, timed: planning the sweep file, registering it in the
results database, scheduling its tasks on a multi-node Ray cluster with fake GPUs
(``ray.cluster_utils.Cluster``: ``--nodes`` nodes of ``--gpus``/``--nodes`` GPUs each, so that
``--gpus`` tasks run at once), recording every population (SQLite by default, ``--postgres`` a
real local PostgreSQL), tracking in MLflow (a local SQLite store, the default ``gapsweep run``
uses; the sweep's ``tracking.per_seed_runs`` default: beyond 4,096 seed-runs, one run per
configuration with ``seeds.csv``), and ``gapsweep report`` on the result. The trainer is
``workers/synthetic.py`` (populations with 200-point validation and loss curves and a 4×4
snapshot per seed, as a 10,000-step run evaluated every 50 steps records), sleeping
``--task-seconds`` per task to stand in for training.

It prints, per stage, seconds and rates; the driver's busy time per seed-run by part (database,
MLflow, converting; the rest is Ray and the loop); the wall-time overhead (wall − ideal, ideal =
waves of ``--gpus`` tasks × ``--task-seconds``) per seed-run and as a share of the wall time;
database rows, rows/s and size; how the cost of recording a population moved from the first
tenth of the sweep to the last (a ratio near 1 is linear growth); and the checks that every
seed-run is recorded exactly once in the database and once in MLflow.

    python benchmarks/scale.py                              # 100 × 1,024, 64 GPUs, tasks of 64
    python benchmarks/scale.py --configurations 4 --seeds 256 --task-seconds 2   # a quick look
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SWEEP = """\
name: scale
base: {{algorithm: bfs, hidden_size: 4, train_steps: 10000, eval_every: 50}}
grid: {{learning_rate: [{rates}]}}
seeds: 0-{last_seed}
population: {population}
resources: {{gpus: 1, cpus: 1}}
"""


def make_trainer(task_seconds: float):
    """``workers.synthetic.run_synthetic_task`` sleeping ``task_seconds`` per task (what
    ``--simulate`` runs)."""
    import functools

    from workers.synthetic import run_synthetic_task

    return functools.partial(run_synthetic_task, seconds=task_seconds)


class TimedStore:
    """The store, with the seconds of each ``record`` call kept in order (growth over the run)."""

    def __init__(self, store):
        self._store = store
        self.record_seconds: list[float] = []

    def record(self, results):
        t0 = time.perf_counter()
        try:
            return self._store.record(results)
        finally:
            self.record_seconds.append(time.perf_counter() - t0)

    def __getattr__(self, name):
        return getattr(self._store, name)


def plain_ray_wall(plan, population: int, trainer) -> float:
    """Seconds for the plan's tasks on the current cluster, submitted as the driver submits them
    (``cluster.submit`` of the same task body) and fetched with ``ray.get``, nothing recorded."""
    import ray

    from orchestrator.cluster import submit
    from orchestrator.schedule import _progress_actor, _train_remote

    spec = plan.spec
    reporter = _progress_actor().remote()
    tasks = plan.tasks({c.label: list(plan.seeds) for c in plan.configurations},
                       population=population)
    t0 = time.perf_counter()
    refs = [submit(_train_remote, (task.config.to_dict(), list(task.seeds), population, None,
                                   reporter, key, trainer), name=f"baseline/{key}",
                   cpus=spec.resources.cpus, gpus=spec.resources.gpus)
            for key, task in enumerate(tasks)]
    while refs:
        ready, refs = ray.wait(refs, num_returns=1)
        ray.get(ready)
    wall = time.perf_counter() - t0
    ray.kill(reporter)
    return wall


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def growth(seconds: list[float]) -> str:
    tenth = max(1, len(seconds) // 10)
    first, last = statistics.median(seconds[:tenth]), statistics.median(seconds[-tenth:])
    return (f"median {1000 * first:.1f} ms in the first tenth, {1000 * last:.1f} ms in the last "
            f"(×{last / first:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configurations", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=1024, help="seeds per configuration")
    parser.add_argument("--population", type=int, default=64, help="seeds per task")
    parser.add_argument("--gpus", type=int, default=64, help="fake GPUs in the cluster")
    parser.add_argument("--nodes", type=int, default=4, help="Ray nodes besides the head")
    parser.add_argument("--task-seconds", type=float, default=0.0)
    parser.add_argument("--postgres", action="store_true",
                        help="record in a local PostgreSQL (default: SQLite)")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--baseline", action="store_true",
                        help="first run the same tasks on the same cluster with a plain Ray loop "
                             "that records nothing (what Ray and this machine cost on their own)")
    parser.add_argument("--baseline-only", action="store_true",
                        help="only the plain Ray loop (--baseline), no sweep run")
    parser.add_argument("--profile", metavar="FILE", default=None,
                        help="write a cProfile of the driver's sweep run here")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="write the stores here and keep them (default: a temporary directory)")
    args = parser.parse_args()
    if args.gpus % args.nodes:
        parser.error(f"--gpus {args.gpus} must divide over --nodes {args.nodes}")

    import ray
    from ray.cluster_utils import Cluster

    from db.store import ResultsStore
    from orchestrator.plan import make_plan
    from orchestrator.schedule import SweepRunner
    from orchestrator.spec import parse_spec
    from orchestrator.tracking import SEEDS_TABLE_ARTIFACT, SweepTracker, per_seed_runs

    seed_runs = args.configurations * args.seeds
    tasks = args.configurations * math.ceil(args.seeds / args.population)
    print(f"# {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
          f"Ray {ray.__version__}")
    print(f"# {args.configurations} configurations × {args.seeds} seeds = {seed_runs:,} seed-runs "
          f"in {tasks:,} tasks of {args.population}; {args.gpus} fake GPUs on {args.nodes} nodes; "
          f"{args.task_seconds:g} s per task; {'PostgreSQL' if args.postgres else 'SQLite'}")
    work = Path(args.keep or tempfile.mkdtemp(prefix="gapsweep-scale-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)                  # a PostgreSQL run as user postgres must reach it

    rates = ", ".join(f"{1e-4 * (1 + i):.6g}" for i in range(args.configurations))
    text = SWEEP.format(rates=rates, last_seed=args.seeds - 1, population=args.population)
    t0 = time.perf_counter()
    plan = make_plan(parse_spec(text, "scale.yaml"))
    planning = time.perf_counter() - t0
    print(f"planning: {planning:.2f} s ({len(plan.configurations)} configurations, "
          f"{len(plan.seeds)} seeds)")

    postgres = None
    if args.postgres:
        from db.local_postgres import LocalPostgres, free_port

        postgres = LocalPostgres(port=free_port(), root=work / "postgres", durable=True)
        postgres.start()
        postgres.create_database("scale", exist_ok=True)
        db_url = postgres.url("scale")
    else:
        db_url = f"sqlite:///{work / 'results.db'}"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
    per_node = args.gpus // args.nodes
    for _ in range(args.nodes):
        cluster.add_node(num_cpus=per_node, num_gpus=per_node)
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    cluster.wait_for_nodes()

    @ray.remote(num_gpus=1, num_cpus=1)
    def warm():                       # a worker per GPU slot, with the task body's imports
        import orchestrator.schedule  # noqa: F401
        import workers.synthetic  # noqa: F401
        time.sleep(0.5)
        return os.getpid()

    from orchestrator.cluster import worker_env

    t0 = time.perf_counter()              # the sweep's tasks' runtime env: the same worker pool
    ray.get([warm.options(runtime_env={"env_vars": worker_env(1)}).remote()
             for _ in range(args.gpus)])
    print(f"cluster: {len(ray.nodes())} nodes, {ray.cluster_resources().get('GPU', 0):g} GPUs; "
          f"{args.gpus} workers up in {time.perf_counter() - t0:.1f} s")

    baseline = None
    if args.baseline or args.baseline_only:
        baseline = plain_ray_wall(plan, args.population, make_trainer(args.task_seconds))
        waves = math.ceil(tasks / args.gpus)
        print(f"plain Ray, nothing recorded: wall {baseline:.1f} s for the same {tasks:,} tasks "
              f"({waves} waves, ideal {waves * args.task_seconds:.1f} s)")
        if args.baseline_only:
            ray.shutdown()
            cluster.shutdown()
            if postgres is not None:
                postgres.stop()
            if not args.keep:
                import shutil

                shutil.rmtree(work, ignore_errors=True)
            return
    try:
        store = TimedStore(ResultsStore(db_url, snapshot_dir=work / "snapshots"))
        tracker = None
        if not args.no_mlflow:
            tracker = SweepTracker(f"sqlite:///{work / 'mlflow.db'}", "scale", "scale",
                                   per_seed_runs=per_seed_runs("auto", seed_runs))
        runner = SweepRunner(plan, store, tracker, trainer=make_trainer(args.task_seconds))
        t0 = time.perf_counter()
        runner.register()
        registering = time.perf_counter() - t0
        print(f"registering: {registering:.2f} s ({seed_runs / registering:,.0f} runs/s)")
        profile = None
        if args.profile:
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        t0 = time.perf_counter()
        outcome = runner.run()
        wall = time.perf_counter() - t0
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
        store.close()
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert outcome.recorded == seed_runs, outcome

    t = outcome.timings
    busy = sum(t.values())
    waves = math.ceil(tasks / args.gpus)
    ideal = waves * args.task_seconds
    print(f"sweep run: wall {wall:.1f} s for {seed_runs:,} seed-runs ({seed_runs / wall:,.0f} "
          f"seed-runs/s); {waves} waves of {args.gpus} tasks, ideal {ideal:.1f} s")
    print(f"driver busy per seed-run: database {1000 * t['database'] / seed_runs:.3f} ms, MLflow "
          f"{1000 * t['mlflow'] / seed_runs:.3f} ms, converting {1000 * t['convert'] / seed_runs:.3f}"
          f" ms; Ray and the loop {1000 * (wall - busy - ideal) / seed_runs:.3f} ms"
          if not args.task_seconds else
          f"driver busy per seed-run: database {1000 * t['database'] / seed_runs:.3f} ms, MLflow "
          f"{1000 * t['mlflow'] / seed_runs:.3f} ms, converting {1000 * t['convert'] / seed_runs:.3f}"
          " ms (while tasks train)")
    print(f"wall overhead: {1000 * (wall - ideal) / seed_runs:.3f} ms per seed-run"
          + (f", {100 * (wall - ideal) / wall:.2f}% of the wall time" if ideal else ""))
    if baseline is not None:
        print(f"against plain Ray on the same cluster: wall {wall:.1f} s / {baseline:.1f} s = "
              f"{wall / baseline:.3f}×; the driver adds {1000 * (wall - baseline) / seed_runs:.3f} "
              f"ms per seed-run, {100 * (wall - baseline) / wall:.2f}% of the wall time")
    print(f"recording a population: {growth(store.record_seconds)}")

    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        runs, distinct, done = conn.execute(sa.text(
            "SELECT COUNT(*), COUNT(DISTINCT configuration_id * 100000 + seed), "
            "SUM(CASE WHEN status = 'done' THEN 1 ELSE 0 END) FROM runs")).one()
        attempts = conn.execute(sa.text("SELECT MAX(attempts) FROM runs")).scalar_one()
        metrics = conn.execute(sa.text("SELECT COUNT(*) FROM metrics")).scalar_one()
        snapshots = conn.execute(sa.text("SELECT COUNT(*) FROM snapshots")).scalar_one()
        outbox = conn.execute(sa.text("SELECT COUNT(*) FROM tracking_outbox")).scalar_one()
        size = (conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
                if args.postgres else None)
    engine.dispose()
    if size is None:
        size = sum(p.stat().st_size for p in work.glob("results.db*"))
    rows = runs + metrics + snapshots
    print(f"database: {runs:,} runs ({distinct:,} distinct (configuration, seed), {done:,} done, "
          f"at most {attempts} attempt(s)), {metrics:,} metric rows, {snapshots:,} snapshots; "
          f"{rows / t['database']:,.0f} rows/s while recording; {size / 1e6:,.0f} MB "
          f"({size / seed_runs / 1e3:.1f} kB per seed-run); outbox {outbox}")
    assert runs == distinct == done == seed_runs
    assert outbox == (seed_runs if args.no_mlflow else 0)    # without MLflow, all wait for it

    if tracker is not None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("scale").experiment_id
        parents = client.search_runs([experiment], "tags.`gapsweep.role` = 'configuration'",
                                     max_results=10_000)
        children = client.search_runs([experiment], "tags.`gapsweep.role` = 'seed'",
                                      max_results=50_000)
        tabled = 0
        if not tracker.per_seed_runs:
            for parent in parents:
                path = client.download_artifacts(parent.info.run_id, SEEDS_TABLE_ARTIFACT,
                                                 str(work / "tables"))
                tabled += sum(1 for row in csv.DictReader(io.StringIO(Path(path).read_text()))
                              if row["status"] == "done")
        mlflow_size = sum(p.stat().st_size for p in work.glob("mlflow.db*"))
        print(f"MLflow: {len(parents)} configuration runs, {len(children):,} seed runs, "
              f"{tabled:,} seeds in seeds.csv tables; {t['mlflow']:.1f} s of the driver's time; "
              f"store {mlflow_size / 1e6:,.0f} MB")
        assert len(parents) == args.configurations
        assert (len(children) if tracker.per_seed_runs else tabled) == seed_runs

    for name, extra in (("text", ["--no-figures"]), ("text + figures",
                                                     ["--figures", str(work / "figures")])):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gapsweep", "report", "--sweep", "scale", "--db",
                        db_url, *extra], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        print(f"gapsweep report ({name}): {time.perf_counter() - t0:.1f} s")
    if postgres is not None:
        postgres.stop()
    if args.keep:
        print(f"# stores in {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
