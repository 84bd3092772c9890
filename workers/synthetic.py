"""A trivially cheap stand-in for ``workers.training_task.run_task``: same signature, same ``TaskOutput``
shape, no data and no training. It exists to measure what orchestration itself costs (Ray
scheduling, database writes, MLflow logging: ``benchmarks/orchestration.py``) and to drive the
scheduler's failure paths in tests. Its numbers are a deterministic function of (config, seed) and
mean nothing; nothing in a real sweep uses it. ``gapsweep run/submit --simulate SECONDS`` runs a
sweep on it, each task taking ``seconds`` (to exercise a cluster: lost nodes, a killed driver);
its results say device "synthetic", so nobody takes them for trained ones.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time

import numpy as np

from workers.task_output import TaskOutput
from workers.task_output import PopulationResult

SLICE_S = 0.25      # run_synthetic_task's sleep between progress reports


def synthetic_result(config: dict, seeds: list[int], hidden: int = 4) -> PopulationResult:
    steps = int(config.get("train_steps", 10_000))
    every = int(config.get("eval_every", 50))
    eval_steps = np.arange(0, steps, every)
    s = np.asarray(seeds, dtype=np.int64)
    rng = np.random.default_rng(s.sum() + steps)
    noise = 0.05 * rng.random((len(s), len(eval_steps)))
    val = np.clip(np.linspace(0.2, 0.9, len(eval_steps))[None] + noise, 0, 1)
    return PopulationResult(
        seeds=s, status=["done"] * len(s), diverged_step=np.full(len(s), -1),
        test_score=val[:, -1] * 0.9, best_val_score=val.max(1), best_step=eval_steps[val.argmax(1)],
        final_step=steps, eval_steps=eval_steps, val_scores=val,
        train_loss=1.0 - val, hint_accuracy={},
        wall_seconds=0.0,
        best_params={"params": {"w": rng.standard_normal((len(s), hidden, hidden)).astype(np.float32)}})


def run_synthetic_task(config: dict, seeds: list[int], *, population: int | None = None,
                       cache_dir: str | None = None, processes: int = 1,
                       progress=None, seconds: float = 0.0) -> TaskOutput:
    """Synthetic results for ``seeds`` after sleeping ``seconds`` (in slices of at most
    ``SLICE_S``, reporting seed-steps done in proportion to the time passed)."""
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    total = len(seeds) * int(config.get("train_steps", 1))   # seed-steps, as train_population
    while (left := seconds - (time.perf_counter() - t0)) > 0:
        time.sleep(min(SLICE_S, left))
        if progress:
            progress(min(total, int(total * (time.perf_counter() - t0) / seconds)), total)
    result = synthetic_result(config, seeds)
    if progress:
        progress(total, total)
    return TaskOutput(result=result, host=socket.gethostname(), device="synthetic", pid=os.getpid(),
                      started_at=started, finished_at=dt.datetime.now(dt.timezone.utc),
                      data_seconds=0.0, train_seconds=time.perf_counter() - t0)
