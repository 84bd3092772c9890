"""Population-training throughput: seed-steps/s of the vmapped trainer by population size.

    python benchmarks/population.py                       # the issue's grid (meant for a GPU)
    python benchmarks/population.py --grid 128:1,8 --grid 4:1,128 --steps 100   # a small CPU run

The paper's default configuration (Table 9) on BFS at train lengths 4, 7, 11, 13, 16, batch 32,
validation every 50 steps and the final test included: each figure is population × steps / wall
time of a whole ``trainer(seeds)`` call, measured after a first identical call compiled everything.
"ratio" is the population's rate over population 1's (training the seeds one after another).
"""

from __future__ import annotations

import argparse
import time

import jax

from workers.config import TrainConfig
from workers.data import DataCache
from workers.train import TrainData, make_train

DEFAULT_GRID = ("128:1,8,32,128,256", "4:1,128,1024")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", action="append", default=None, metavar="HIDDEN:POP,POP,…",
                        help="hidden size and population sizes (repeatable); default: "
                             + " and ".join(DEFAULT_GRID))
    parser.add_argument("--steps", type=int, default=200, help="training steps per measurement")
    parser.add_argument("--pool-size", type=int, default=4096, help="graphs per train length")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    device = jax.devices()[0]
    print(f"device: {device.platform} {device.device_kind}; jax {jax.__version__}")
    print(f"BFS, Table 9 defaults, train lengths 4-16, {args.steps} steps, eval every 50, "
          f"pool {args.pool_size}/length\n")
    print(f"{'hidden':>6}{'population':>12}{'wall s':>10}{'seed-steps/s':>15}{'ratio':>8}")
    for item in args.grid or DEFAULT_GRID:
        hidden, pops = item.split(":")
        config = TrainConfig(algorithm="bfs", hidden_size=int(hidden), train_steps=args.steps,
                             pool_size=args.pool_size)
        data = TrainData.from_cache(config, DataCache(args.cache_dir))
        trainer = make_train(config, data)
        base = None
        for population in (int(p) for p in pops.split(",")):
            seeds = list(range(population))
            trainer(seeds)  # compile every shape this population meets
            start = time.perf_counter()
            trainer(seeds)
            wall = time.perf_counter() - start
            rate = population * args.steps / wall
            base = base or (rate if population == 1 else None)
            ratio = f"{rate / base:.1f}x" if base else "-"
            print(f"{hidden:>6}{population:>12}{wall:>10.1f}{rate:>15.1f}{ratio:>8}", flush=True)


if __name__ == "__main__":
    main()
