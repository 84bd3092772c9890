"""What one worker task runs: get the configuration's data, train a population, return plain arrays.

A task knows nothing of Ray, databases or MLflow: it takes a config as a dict and a list of seeds,
and returns a ``TaskOutput`` (NumPy arrays and strings only) for the driver to record. Data comes
from the node's content-addressed cache; a node that lacks an entry builds it once (the cache's
per-key lock makes concurrent tasks on one node wait for the first builder).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from typing import Callable

import jax

from workers.xla_cache import enable_compilation_cache
from workers.config import TrainConfig
from workers.data import DataCache
from workers.task_output import TaskOutput  # noqa: F401 - run_task's result, defined there
from workers.train import TrainData, train_population


def device_description() -> str:
    device = jax.devices()[0]
    return device.platform if device.platform == "cpu" else f"{device.platform}:{device.device_kind}"


def run_task(config: dict, seeds: list[int], *, population: int | None = None,
             cache_dir: str | None = None, processes: int = 1,
             progress: Callable[[int, int], None] | None = None,
             steps_per_dispatch: int = 1, edge_path: str = "auto") -> TaskOutput:
    """Train ``seeds`` of ``config``; ``population`` caps the seeds vmapped at once,
    ``steps_per_dispatch`` training steps run per compiled call, ``edge_path`` is how the
    network computes (``workers.model.network``)."""
    started = dt.datetime.now(dt.timezone.utc)
    enable_compilation_cache()
    train_config = TrainConfig.from_dict(config)
    t0 = time.perf_counter()
    data = TrainData.from_cache(train_config, DataCache(cache_dir), processes)
    t1 = time.perf_counter()
    result = train_population(train_config, data, seeds, max_population=population,
                              progress=progress, steps_per_dispatch=steps_per_dispatch,
                              edge_path=edge_path)
    t2 = time.perf_counter()
    return TaskOutput(result=result, host=socket.gethostname(), device=device_description(),
                      pid=os.getpid(), started_at=started,
                      finished_at=dt.datetime.now(dt.timezone.utc),
                      data_seconds=t1 - t0, train_seconds=t2 - t1)
