"""A slice of a paper sweep: one configuration of a sweep file, its seeds, the first few hundred
steps, trained with ``workers.train.train_population`` (no orchestrator, database or tracking).

    python benchmarks/table13_slice.py                        # Table 13's bfs_default, 1,024 seeds, 300 steps
    python benchmarks/table13_slice.py --seeds 8 --steps 100  # a CPU look
    python benchmarks/table13_slice.py --seeds 4 --steps 4 --eval-every 2       # seconds
    python benchmarks/table13_slice.py --data-only            # build (or check) the data, then stop

The configuration is the sweep's, resolved as the orchestrator resolves it (``base`` overlaid with
the named configuration, ``TrainConfig.from_dict``), with ``train_steps`` set to ``--steps`` and
the train pools (if the sweep trains on pools) sized for those steps (``TrainData.requests``); validation keeps the sweep's
``eval_every`` unless ``--eval-every`` is given. Seeds 0 … ``--seeds`` − 1 train in populations of
the sweep's ``population`` (``--population``), the numerical canary first. Prints the test score
(mean ± std, max) of the best-validation parameters, the wall time (data loading left out;
compilation and the canary included) and the seed-steps/s that gives.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))

import workers  # noqa: E402,F401  (sets the project's XLA flags before JAX starts)
import jax  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from population import machine  # noqa: E402  (benchmarks/population.py)
from workers.config import TrainConfig  # noqa: E402
from workers.data import DataCache  # noqa: E402
from workers.rules import EDGE_PATHS  # noqa: E402
from workers.train import TrainData, train_population  # noqa: E402

DEFAULT_SWEEP = REPO / "sweeps" / "table13_minimal.yaml"


def sweep_configuration(path: Path, label: str) -> tuple[TrainConfig, dict]:
    """The named configuration of a sweep file as a TrainConfig, and the sweep (parsed YAML)."""
    sweep = yaml.safe_load(Path(path).read_text())
    named = {entry["label"]: entry for entry in sweep.get("configurations") or ()}
    if label not in named:
        raise SystemExit(f"--label {label!r}: {path} names {', '.join(named) or 'no configuration'}")
    values = {**(sweep.get("base") or {}),
              **{k: v for k, v in named[label].items() if k != "label"}}
    return TrainConfig.from_dict(values, where=label), sweep


def slice_config(config: TrainConfig, steps: int, eval_every: int | None) -> TrainConfig:
    return config.replace(train_steps=steps,
                          eval_every=config.eval_every if eval_every is None else eval_every)


def train_data_text(config) -> str:
    """What the slice trains on: fresh batches, or a pool of so many graphs per length."""
    if config.train_data == "fresh":
        return "fresh data"
    return f"pool {TrainData.requests(config)[0].count}/length"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", default=str(DEFAULT_SWEEP), help="sweep file (Table 13's)")
    parser.add_argument("--label", default="bfs_default", help="its configuration")
    parser.add_argument("--seeds", type=int, default=1024, help="seeds 0 … SEEDS-1")
    parser.add_argument("--steps", type=int, default=300, help="training steps")
    parser.add_argument("--eval-every", type=int, default=None,
                        help="validation every this many steps (default: the sweep's)")
    parser.add_argument("--population", type=int, default=None,
                        help="seeds per vmapped population (default: the sweep's, else what fits)")
    parser.add_argument("--edge-path", default="auto", choices=EDGE_PATHS)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--data-only", action="store_true",
                        help="build or check the data-cache entries, then stop")
    args = parser.parse_args()
    base_config, sweep = sweep_configuration(Path(args.sweep), args.label)
    config = slice_config(base_config, args.steps, args.eval_every)
    cache = DataCache(args.cache_dir)
    data = TrainData.from_cache(config, cache)
    if args.data_only:
        return

    print(machine())
    population = args.population or sweep.get("population")
    seeds = np.arange(args.seeds)
    print(f"{Path(args.sweep).name}: {args.label} ({sweep.get('experiment', sweep.get('name'))}),"
          f" hidden {config.hidden_size}, train lengths {list(config.train_lengths)}, "
          f"{config.train_steps} of {base_config.train_steps} steps, eval every "
          f"{config.eval_every}, {train_data_text(config)}, test n = "
          f"{config.test_size}; seeds 0-{args.seeds - 1} in populations of "
          f"{population or 'what fits'}; edge path {args.edge_path}; {jax.default_backend()}",
          flush=True)
    start = time.perf_counter()
    result = train_population(config, data, seeds, max_population=population,
                              edge_path=args.edge_path)
    wall = time.perf_counter() - start
    scores = result.test_score
    done = np.array([s == "done" for s in result.status])
    if result.canary is not None:
        print(f"canary: {result.canary.summary()}")
    print(f"test score over {len(seeds)} seeds: {scores.mean():.4f} ± {scores.std():.4f} "
          f"(max {scores.max():.4f}, min {scores.min():.4f}); best validation "
          f"{result.best_val_score.mean():.4f} ± {result.best_val_score.std():.4f}; "
          f"{int((~done).sum())} diverged")
    print(f"wall {wall:.1f} s (training {result.wall_seconds:.1f} s; compilation and canary "
          f"included): {len(seeds) * config.train_steps / wall:,.1f} seed-steps/s")


if __name__ == "__main__":
    main()
