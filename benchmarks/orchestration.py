"""What orchestration costs: a 1,024-seed sweep of a trivially cheap trainer on a local Ray.

The trainer (``workers/synthetic.py``) returns well-formed populations (200-point validation and
loss curves, a small parameter snapshot per seed) in microseconds, so the wall time is all
overhead: Ray scheduling, converting results, database writes (SQLite) and MLflow logging (local
SQLite store). With ``--task-seconds T`` each task also sleeps T seconds, emulating training, and
the overhead is measured as a share of that sweep's wall time: (wall − ideal) / wall, where ideal
is the emulated training time spread over the available CPU slots.

    python benchmarks/orchestration.py [--seeds 1024] [--population 32] [--task-seconds 0]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db.store import ResultsStore  # noqa: E402
from orchestrator.plan import make_plan  # noqa: E402
from orchestrator.schedule import SweepRunner  # noqa: E402
from orchestrator.spec import parse_spec  # noqa: E402
from orchestrator.tracking import SweepTracker  # noqa: E402
from workers.synthetic import run_synthetic_task  # noqa: E402

SWEEP = """\
name: overhead
base: {{algorithm: bfs, hidden_size: 4, train_steps: 10000, eval_every: 50}}
seeds: {seeds}
population: {population}
resources: {{gpus: 0, cpus: 1}}
"""


def make_trainer(task_seconds: float):
    def trainer(config, seeds, **kwargs):
        if task_seconds:
            time.sleep(task_seconds)
        return run_synthetic_task(config, seeds, **kwargs)
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1024)
    parser.add_argument("--population", type=int, default=32)
    parser.add_argument("--task-seconds", type=float, default=0.0)
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args()
    import ray

    cpus = os.cpu_count() or 1
    spec = parse_spec(SWEEP.format(seeds=args.seeds, population=args.population), "overhead.yaml")
    plan = make_plan(spec)
    tasks = math.ceil(args.seeds / args.population)
    print(f"# {platform.node()}: {cpus} cores, Python {platform.python_version()}, Ray {ray.__version__}")
    print(f"# {args.seeds} seeds in {tasks} tasks of {args.population}; 2 × 200-point curves and a "
          f"4×4 snapshot per seed; {args.task_seconds:g} s emulated training per task")
    with tempfile.TemporaryDirectory() as tmp:
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False)
        ray.get([ray.remote(lambda: None).remote() for _ in range(cpus)])   # workers up
        store = ResultsStore(f"sqlite:///{tmp}/results.db", snapshot_dir=f"{tmp}/snapshots")
        tracker = None if args.no_mlflow else SweepTracker(f"sqlite:///{tmp}/mlflow.db", "overhead",
                                                           "overhead")
        runner = SweepRunner(plan, store, tracker, trainer=make_trainer(args.task_seconds))
        start = time.perf_counter()
        outcome = runner.run()
        wall = time.perf_counter() - start
        ray.shutdown()
        store.close()
    assert outcome.recorded == args.seeds, outcome
    t = outcome.timings
    rest = wall - sum(t.values())
    ideal = math.ceil(tasks / cpus) * args.task_seconds
    print(f"wall {wall:.1f} s: database {t['database']:.1f} s, MLflow {t['mlflow']:.1f} s, "
          f"converting results {t['convert']:.1f} s, Ray scheduling and the rest {rest:.1f} s")
    print(f"driver overhead per seed: {1000 * (wall - ideal) / args.seeds:.1f} ms")
    if args.task_seconds:
        print(f"emulated training {ideal:.1f} s of {wall:.1f} s wall: overhead "
              f"{100 * (wall - ideal) / wall:.1f}% of wall time")


if __name__ == "__main__":
    main()
