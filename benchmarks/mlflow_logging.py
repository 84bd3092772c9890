"""Time to mirror a 1,024-seed sweep into MLflow through orchestrator.tracking, on the local store.

Each seed gets a child run with a 200-point validation curve, a 200-point train-loss curve, the
scalars and a "best" parameter snapshot of about 4 KB (the artifact ``best_params.npz``); the seeds
are spread over --configurations parent runs and logged in populations of --population, with the
parent summary updated after each, as the driver does. The store is the default layout
(``sqlite:///<run dir>/mlflow.db``, artifacts in ``<run dir>/mlartifacts``) in a temporary run
directory, with the tracker's default of two log worker processes (--processes 1: all in the
driver). A second pass logs the same seeds again to time the resume path (everything skipped).
Target: under 60 s.

    python benchmarks/mlflow_logging.py [--runs 1024] [--points 200] [--configurations 4]
                                        [--population 256] [--snapshot 4] [--processes 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db.engine import ENV_RUN_DIR  # noqa: E402
from db.store import Curve, RunResult  # noqa: E402
from orchestrator.tracking import (DEFAULT_LOG_PROCESSES, SweepTracker,  # noqa: E402
                                   default_tracking_uri)


def make_results(args, rng: np.random.Generator) -> dict[str, list[tuple[int, RunResult]]]:
    steps = np.arange(args.points) * 50
    leaves = max(1, args.snapshot * 1024 // 4)
    per_config = args.runs // args.configurations
    results = {}
    for c in range(args.configurations):
        label = f"config{c}"
        results[label] = [(seed, RunResult(
            c * per_config + seed, "done" if seed % 16 else "diverged",
            test_score=float(rng.random()), best_val_score=float(rng.random()),
            best_step=int(steps[-1]), final_step=int(steps[-1]), wall_seconds=1.0,
            curves=[Curve("val", "val_score", steps, rng.random(args.points)),
                    Curve("train", "train_loss", steps, rng.random(args.points))],
            snapshots={"best": {"params": {"w": rng.standard_normal(leaves).astype(np.float32)}}}
            if args.snapshot else {})) for seed in range(per_config)]
    return results


def log_sweep(tracking_uri: str, results, args) -> tuple[float, float, int]:
    """(seconds to create the tracker and parents, seconds for seeds + summaries, runs created)."""
    t0 = time.perf_counter()
    tracker = SweepTracker(tracking_uri, "bench", "bench", {"gapsweep.bench": "1"},
                           log_processes=args.processes)
    for label in results:
        tracker.configuration(label, {"algorithm": "bfs", "label": label,
                                      "hidden": 128, "modifications": ["a", "b"]}, label * 8)
    t_setup = time.perf_counter() - t0
    created = 0
    t0 = time.perf_counter()
    for label, records in results.items():
        finished: list[tuple[int, RunResult]] = []
        for start in range(0, len(records), args.population):
            population = records[start:start + args.population]
            created += tracker.log_seeds(label, population)
            finished += population
            tracker.update_summary(
                label, [r.test_score for _, r in finished if r.status == "done"],
                {"done": sum(r.status == "done" for _, r in finished),
                 "diverged": sum(r.status == "diverged" for _, r in finished), "failed": 0})
    tracker.close()
    return t_setup, time.perf_counter() - t0, created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1024)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--configurations", type=int, default=4)
    parser.add_argument("--population", type=int, default=256)
    parser.add_argument("--snapshot", type=int, default=4,
                        help="KB of parameters per run (0: none)")
    parser.add_argument("--processes", type=int, default=DEFAULT_LOG_PROCESSES,
                        help="log worker processes (1: log in the driver)")
    args = parser.parse_args()
    import mlflow

    print(f"# {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"MLflow {mlflow.__version__}")
    print(f"# {args.runs} seed runs in {args.configurations} configurations × 2 curves × "
          f"{args.points} points, populations of {args.population}, {args.snapshot} KB artifact "
          f"each, {args.processes} log process(es)")
    results = make_results(args, np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[ENV_RUN_DIR] = tmp
        uri = default_tracking_uri()
        setup, seeds, created = log_sweep(uri, results, args)
        assert created == args.runs, created
        print(f"first pass: store + experiment + {args.configurations} parents {setup:.2f} s, "
              f"{created} seed runs {seeds:.2f} s ({created / seeds:.0f} runs/s), "
              f"total {setup + seeds:.2f} s")
        setup, seeds, created = log_sweep(uri, results, args)
        assert created == 0, created
        print(f"resume pass (all {args.runs} seeds already logged): {setup + seeds:.2f} s")
        artifacts = sum(1 for _ in Path(tmp, "mlartifacts").rglob("best_params.npz"))
        size = Path(tmp, "mlflow.db").stat().st_size
        print(f"store: mlflow.db {size / 2**20:.1f} MiB, {artifacts} best_params.npz under "
              f"{Path(tmp, 'mlartifacts').relative_to(tmp)}/")


if __name__ == "__main__":
    main()
