"""Population-training throughput: seed-steps/s of the vmapped trainer by population size.

    python benchmarks/population.py                       # the issue's grid (meant for a GPU)
    python benchmarks/population.py --grid 128:1,8 --grid 4:1,128 --steps 100   # a small CPU run
    python benchmarks/population.py --grid 128:1,4 --edge-path materialised,low_rank
    python benchmarks/population.py --grid 4:1,2 --steps 4 --eval-every 2 --pool-size 32  # seconds

The paper's default configuration (Table 9) on BFS at train lengths 4, 7, 11, 13, 16, batch 32,
validation every 50 steps (``--eval-every``) and the final test included: each figure is
population × steps / wall time of a whole ``trainer(seeds)`` call, measured after a first identical
call compiled everything. "ratio" is the population's rate over population 1's (training the seeds
one after another). ``--edge-path`` (a comma list of auto, low_rank, materialised; default auto)
measures each population on each edge path of the network (``workers/model/network.py``); each
other path's "speed-up" is its rate over the first path's. ``--data-only`` builds (or checks) the
data-cache entries the run needs and stops.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workers  # noqa: E402,F401  (sets the project's XLA flags before JAX starts)
import jax  # noqa: E402

from workers.canary import cpu_model  # noqa: E402
from workers.config import TrainConfig  # noqa: E402
from workers.data import DataCache  # noqa: E402
from workers.rules import EDGE_PATHS  # noqa: E402
from workers.train import TrainData, make_train  # noqa: E402

DEFAULT_GRID = ("128:1,8,32,128,256", "4:1,128,1024")


def machine() -> str:
    """The device this process computes on, and the JAX version."""
    device = jax.devices()[0]
    kind = cpu_model() if device.platform == "cpu" else device.device_kind
    return f"device: {device.platform} ({kind}); jax {jax.__version__}"


def bfs_config(hidden: int, steps: int, pool_size: int, eval_every: int = 50) -> TrainConfig:
    """Table 9's BFS configuration at ``hidden``, trained ``steps`` steps."""
    return TrainConfig(algorithm="bfs", hidden_size=hidden, train_steps=steps,
                       eval_every=eval_every, pool_size=pool_size)


def seed_steps_per_second(trainer, population: int, steps: int) -> tuple[float, float]:
    """(wall seconds, seed-steps/s) of ``trainer(seeds)`` for ``population`` seeds, timed on a
    second call after a first one compiled every shape it meets."""
    seeds = list(range(population))
    trainer(seeds)
    start = time.perf_counter()
    trainer(seeds)
    wall = time.perf_counter() - start
    return wall, population * steps / wall


def population_table(grid, steps: int, pool_size: int, edge_paths=("auto",),
                     eval_every: int = 50, cache_dir=None, out=print) -> list[dict]:
    """Measure every (hidden, population) of ``grid`` (pairs ``(hidden, [populations])``) on each
    edge path; prints the table row by row through ``out`` and returns the rows."""
    paths = list(edge_paths)
    out(f"BFS, Table 9 defaults, train lengths 4-16, {steps} steps, eval every {eval_every}, "
        f"pool {pool_size}/length")
    head = f"{'hidden':>6}{'population':>12}"
    for path in paths:
        head += f"{path + ' s':>16}{'seed-steps/s':>14}{'ratio':>8}"
    for other in paths[1:]:
        head += f"{other + ' speed-up':>22}"
    out(head)
    rows = []
    for hidden, populations in grid:
        config = bfs_config(hidden, steps, pool_size, eval_every)
        data = TrainData.from_cache(config, DataCache(cache_dir))
        trainers = {path: make_train(config, data, edge_path=path) for path in paths}
        base = {}
        for population in populations:
            row = {"hidden": hidden, "population": population}
            line = f"{hidden:>6}{population:>12}"
            for path in paths:
                wall, rate = seed_steps_per_second(trainers[path], population, steps)
                if population == 1:
                    base[path] = rate
                ratio = f"{rate / base[path]:.1f}x" if path in base else "-"
                row[path] = {"wall_s": wall, "seed_steps_per_s": rate}
                line += f"{wall:>16.2f}{rate:>14.1f}{ratio:>8}"
            for other in paths[1:]:
                speed = row[other]["seed_steps_per_s"] / row[paths[0]]["seed_steps_per_s"]
                line += f"{speed:>21.2f}x"
            out(line)
            rows.append(row)
    return rows


def build_data(grid, steps: int, pool_size: int, eval_every: int = 50, cache_dir=None) -> None:
    """Build (or load and verify) the cache entries :func:`population_table` reads."""
    for hidden, _ in grid:
        TrainData.from_cache(bfs_config(hidden, steps, pool_size, eval_every), DataCache(cache_dir))


def parse_grid(items) -> list[tuple[int, list[int]]]:
    grid = []
    for item in items:
        hidden, _, pops = item.partition(":")
        try:
            grid.append((int(hidden), [int(p) for p in pops.split(",")]))
        except ValueError:
            raise SystemExit(f"--grid {item!r}: give HIDDEN:POP,POP,… (e.g. 128:1,8)") from None
    return grid


def parse_edge_paths(text: str) -> list[str]:
    paths = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in paths if p not in EDGE_PATHS]
    if not paths or bad:
        raise SystemExit(f"--edge-path {text!r}: give one or more of {', '.join(EDGE_PATHS)}")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", action="append", default=None, metavar="HIDDEN:POP,POP,…",
                        help="hidden size and population sizes (repeatable); default: "
                             + " and ".join(DEFAULT_GRID))
    parser.add_argument("--steps", type=int, default=200, help="training steps per measurement")
    parser.add_argument("--eval-every", type=int, default=50,
                        help="validation every this many steps (Table 9: 50; below --steps)")
    parser.add_argument("--pool-size", type=int, default=4096, help="graphs per train length")
    parser.add_argument("--edge-path", default="auto",
                        help="comma list of " + ", ".join(EDGE_PATHS) + " (default auto)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--data-only", action="store_true",
                        help="build or check the data-cache entries, then stop")
    args = parser.parse_args()
    grid = parse_grid(args.grid or DEFAULT_GRID)
    paths = parse_edge_paths(args.edge_path)
    if args.data_only:
        build_data(grid, args.steps, args.pool_size, args.eval_every, args.cache_dir)
        return
    print(machine())
    population_table(grid, args.steps, args.pool_size, paths, args.eval_every, args.cache_dir,
                     out=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
