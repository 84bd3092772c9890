"""What the numerical canary (``workers/canary.py``) costs a training task, against the task itself.

For each algorithm at the Table 9 settings (hidden 128, batch 32, train lengths 4-16): the canary's
wall time for a population (the largest-shape step for the population, compiled, then that step
compiled for one seed and run for the first and last seed alone), the population's mean training
step (its lengths cycling, validation included; timed on a second run, compiled), and the canary
as a share of a 10,000-step task (10,000 × that step; compilation left out of the task, so the
share is an upper bound):

    python benchmarks/canary_cost.py                     # bfs, bellman_ford; population 4
    python benchmarks/canary_cost.py --algorithms dfs --population 2
    python benchmarks/canary_cost.py --algorithms bfs --population 2 --steps 2 --hidden 4   # seconds

``--hidden`` and ``--pool-size`` (graphs per train length, default 512) shrink the run;
``--data-only`` builds (or checks) the data-cache entries it needs and stops.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workers  # noqa: E402,F401  (sets the project's XLA flags before JAX starts)
import jax  # noqa: E402
import numpy as np  # noqa: E402

from workers.canary import cpu_model  # noqa: E402
from workers.config import TrainConfig  # noqa: E402
from workers.data import DataCache  # noqa: E402
from workers.train import TrainData, make_train  # noqa: E402

TASK_STEPS = 10_000


def canary_config(algorithm: str, steps: int, hidden: int = 128, pool_size: int = 512):
    return TrainConfig(algorithm=algorithm, hidden_size=hidden, pool_size=pool_size,
                       train_steps=steps, eval_every=max(1, steps // 2))


def measure(algorithm: str, population: int, steps: int, hidden: int = 128,
            pool_size: int = 512) -> None:
    config = canary_config(algorithm, steps, hidden, pool_size)
    data = TrainData.from_cache(config, DataCache(), 2)
    trainer = make_train(config, data)
    seeds = np.arange(population)
    start = time.perf_counter()
    report = trainer.canary(seeds)
    canary_seconds = time.perf_counter() - start
    trainer(seeds)                            # compiles every shape of these steps
    start = time.perf_counter()
    trainer(seeds)
    step_seconds = (time.perf_counter() - start) / steps
    task = TASK_STEPS * step_seconds
    print(f"{algorithm:12s} population {population}: canary {canary_seconds:6.1f} s "
          f"({report.shape}; deviation {report.max_deviation:.1g}); a training step "
          f"{step_seconds * 1e3:6.0f} ms (mean of {steps}, validation included), so a "
          f"{TASK_STEPS:,}-step task takes ≥ {task / 60:5.1f} min: the canary is "
          f"{100 * canary_seconds / task:.2f}% of it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", default="bfs,bellman_ford")
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20, help="steps timed (default 20)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size (Table 9: 128)")
    parser.add_argument("--pool-size", type=int, default=512, help="graphs per train length")
    parser.add_argument("--data-only", action="store_true",
                        help="build or check the data-cache entries, then stop")
    args = parser.parse_args()
    if args.data_only:
        for algorithm in args.algorithms.split(","):
            TrainData.from_cache(canary_config(algorithm, args.steps, args.hidden,
                                               args.pool_size), DataCache(), 2)
        return
    device = jax.devices()[0]
    print(f"backend {jax.default_backend()} "
          f"({cpu_model() if device.platform == 'cpu' else device.device_kind}), "
          f"jax {jax.__version__}")
    for algorithm in args.algorithms.split(","):
        measure(algorithm, args.population, args.steps, args.hidden, args.pool_size)


if __name__ == "__main__":
    main()
