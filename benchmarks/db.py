"""Time to record a 1,024-seed sweep in the results database, on SQLite and PostgreSQL.

Each run gets a 200-point validation curve and a 200-point train-loss curve; with --snapshot KB,
also a "best" parameter snapshot of about that size (inline below the store's threshold).
Results are recorded as the orchestrator does: populations of --population runs, one transaction
each. PostgreSQL runs on a throwaway local server (db/local_postgres.py). Target: under 10 s.

    python benchmarks/db.py [--runs 1024] [--points 200] [--population 256] [--snapshot 4]
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

from db.local_postgres import LocalPostgres  # noqa: E402
from db.store import ConfigurationEntry, Curve, ResultsStore, RunResult  # noqa: E402


def bench(url: str, snapshot_dir: str, args) -> dict:
    store = ResultsStore(url, snapshot_dir=snapshot_dir)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    sweep = store.register_sweep("bench", "benchmark", "name: bench\n",
                                 [ConfigurationEntry("bfs", {"algorithm": "bfs"}, "b" * 64)],
                                 range(args.runs))
    pending = store.pending(sweep.id)
    store.claim([p.run_id for p in pending])
    t_register = time.perf_counter() - t0
    steps = np.arange(args.points) * 50
    leaves = max(1, args.snapshot * 1024 // 4)
    t_record = 0.0
    for start in range(0, len(pending), args.population):
        chunk = pending[start:start + args.population]
        results = [RunResult(
            p.run_id, "done", test_score=float(rng.random()), best_val_score=float(rng.random()),
            best_step=int(steps[-1]), final_step=int(steps[-1]), wall_seconds=1.0,
            worker_host="bench", device="cpu",
            curves=[Curve("val", "val_score", steps, rng.random(args.points)),
                    Curve("train", "train_loss", steps, rng.random(args.points))],
            snapshots={"best": {"params": {"w": rng.standard_normal(leaves).astype(np.float32)}}}
            if args.snapshot else {}) for p in chunk]
        t = time.perf_counter()
        store.record(results)
        t_record += time.perf_counter() - t
    counts = store.counts(sweep.id)[0]
    assert counts.runs.done == args.runs, counts
    store.close()
    return {"register_claim_s": t_register, "record_s": t_record,
            "total_s": t_register + t_record,
            "metric_rows": args.runs * args.points * 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1024)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--population", type=int, default=256)
    parser.add_argument("--snapshot", type=int, default=4, help="KB of parameters per run (0: none)")
    args = parser.parse_args()
    print(f"# {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# {args.runs} runs × 2 curves × {args.points} points, populations of "
          f"{args.population}, {args.snapshot} KB snapshot each")
    with tempfile.TemporaryDirectory() as tmp:
        figures = {"sqlite": bench(f"sqlite:///{tmp}/bench.db", f"{tmp}/snaps-sqlite", args)}
        with LocalPostgres() as pg:
            figures["postgresql"] = bench(pg.create_database("bench"), f"{tmp}/snaps-pg", args)
    for backend, f in figures.items():
        print(f"{backend:>10}: register+claim {f['register_claim_s']:.2f} s, record "
              f"{f['record_s']:.2f} s, total {f['total_s']:.2f} s ({f['metric_rows']:,} metric rows, "
              f"{f['metric_rows'] / f['record_s']:,.0f} rows/s)")


if __name__ == "__main__":
    main()
