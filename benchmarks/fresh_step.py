"""The training step on fresh data vs on a pool, side by side, and what generating the data costs.

    python benchmarks/fresh_step.py [--algorithms bfs,bellman_ford,dfs] [--hidden 128] [--population 1,8]
    python benchmarks/step_cost.py --train-data 1,8     # the same table after step_cost's own

Per (algorithm, population P): Table 9's configuration at one train length (``--n``, default 16),
``--batch`` graphs per seed, trained by ``workers.train.Trainer``:

- pool: ``train_step`` on batches the trainer draws from the n-node pool (``--pool`` graphs), each
  padded to its ladder rung, as training pays it;
- fresh: ``fresh_step`` (``train_data: fresh``): each seed's batch generated inside the step,
  hints padded to ``trace_cap``;
- generation: the fresh step's data alone (jit of the vmapped generator, the same batches).

Each column is the median of ``--reps`` calls (consecutive steps) after every shape has compiled,
each blocked until ready; "T" is the hint steps (pool: the rungs seen; fresh: the cap).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workers  # noqa: E402,F401  (sets the project's XLA flags before JAX starts)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from workers.config import TrainConfig  # noqa: E402
from workers.data import DataCache  # noqa: E402
from workers.train import TrainData, _BatchOrder, make_train  # noqa: E402


def _median_ms(calls) -> float:
    times = []
    for call in calls:
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def data_configs(algorithm: str, hidden: int, args, with_pool: bool) -> list[TrainConfig]:
    """The fresh configuration measured, and the pool one (``with_pool``)."""
    base = TrainConfig(algorithm=algorithm, hidden_size=hidden, train_lengths=(args.n,),
                       batch_size=args.batch, train_steps=max(2, args.reps + 1),
                       eval_every=1, learning_rate=1e-4)
    return [base.replace(train_data="fresh")] + ([base.replace(pool_size=args.pool)]
                                                  if with_pool else [])


def measure(algorithm: str, hidden: int, population: int, args, cache: DataCache,
            with_pool: bool = True) -> dict:
    fresh_config, *pool_config = data_configs(algorithm, hidden, args, with_pool)
    seeds = np.arange(population)
    seeds_dev = jnp.asarray(seeds, jnp.uint32)
    row = {"algorithm": algorithm, "hidden": hidden, "population": population}

    fresh = make_train(fresh_config, TrainData.from_cache(fresh_config, cache))
    cap = fresh.pool_caps[0]
    state = fresh.start(seeds).training
    step = fresh.fresh_step(0, population)
    state = jax.block_until_ready(step(state, seeds_dev, jnp.uint32(0)))[0]
    box = {"state": state}

    def fresh_call(i):
        def call():
            box["state"], loss, _, _ = step(box["state"], seeds_dev, jnp.uint32(i + 1))
            return loss
        return call

    row["fresh_ms"] = _median_ms(fresh_call(i) for i in range(args.reps))
    generate = jax.jit(jax.vmap(lambda seed, s: fresh._fresh_batch(seed, s, 0, cap),
                                in_axes=(0, None)))
    jax.block_until_ready(generate(seeds_dev, jnp.uint32(0)))
    row["generate_ms"] = _median_ms((lambda i=i: generate(seeds_dev, jnp.uint32(i + 1)))
                                    for i in range(args.reps))
    row["fresh_T"] = str(cap)
    if not with_pool:
        return row

    pool = make_train(pool_config[0], TrainData.from_cache(pool_config[0], cache))
    order = _BatchOrder(seeds, args.batch)
    batches = [pool._batch(0, order.block(1)[:, 0]) for _ in range(args.reps)]
    state = pool.start(seeds).training
    for steps in sorted({b[2] for b in batches}):          # compile every rung first
        state = pool.train_step(0, steps, population)(
            state, jnp.asarray(batches[0][1], jnp.int32), seeds_dev, jnp.uint32(0), pool.pools[0])[0]
    jax.block_until_ready(state)
    box["state"] = state

    def pool_call(i):
        _, idx, steps = batches[i]
        def call():
            box["state"], loss, _ = pool.train_step(0, steps, population)(
                box["state"], jnp.asarray(idx, jnp.int32), seeds_dev, jnp.uint32(i + 1),
                pool.pools[0])
            return loss
        return call

    row["pool_ms"] = _median_ms(pool_call(i) for i in range(args.reps))
    rungs = sorted({b[2] for b in batches})
    row["pool_T"] = ",".join(map(str, rungs))
    return row


def _columns(with_pool: bool):
    """(header, row formatter) of the table."""
    head = f"{'algorithm':<13}{'hidden':>7}{'P':>4}"
    head += f"{'pool ms':>10}{'T pool':>12}" if with_pool else ""
    head += f"{'fresh ms':>10}{'T fresh':>9}" + (f"{'fresh/pool':>12}" if with_pool else "")
    head += f"{'generate ms':>13}{'of fresh':>10}"

    def line(r: dict) -> str:
        text = f"{r['algorithm']:<13}{r['hidden']:>7}{r['population']:>4}"
        text += f"{r['pool_ms']:>10.1f}{r['pool_T']:>12}" if with_pool else ""
        text += f"{r['fresh_ms']:>10.1f}{r['fresh_T']:>9}"
        text += f"{r['fresh_ms'] / r['pool_ms']:>11.2f}×" if with_pool else ""
        return text + f"{r['generate_ms']:>13.2f}{100 * r['generate_ms'] / r['fresh_ms']:>9.1f}%"

    return head, line


def fresh_table(algorithms, hidden: int, populations, args, out=print,
                with_pool: bool = True) -> list[dict]:
    """Measure and print each row as it is done; returns the rows."""
    cache = DataCache(args.cache_dir)
    out(f"training step, fresh vs pool: n = {args.n}, batch {args.batch} per seed, pool "
        f"{args.pool} graphs; median of {args.reps} steps after compiling")
    head, line = _columns(with_pool)
    out(head)
    out("-" * len(head))
    rows = []
    for algorithm in algorithms:
        for population in populations:
            rows.append(measure(algorithm, hidden, population, args, cache, with_pool))
            out(line(rows[-1]))
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=16, help="the train length (default 16)")
    parser.add_argument("--batch", type=int, default=32, help="graphs per seed (default 32)")
    parser.add_argument("--pool", type=int, default=512, help="graphs in the pool (default 512)")
    parser.add_argument("--reps", type=int, default=10, help="timed steps (median)")
    parser.add_argument("--cache-dir", default=None)


def main() -> None:
    from population import machine

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", default="bfs,bellman_ford,dfs")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--population", default="1,8", help="populations (comma list)")
    parser.add_argument("--fresh-only", action="store_true",
                        help="no pool column (where dm-clrs cannot build the pools)")
    parser.add_argument("--data-only", action="store_true",
                        help="build or check the data-cache entries, then stop")
    add_arguments(parser)
    args = parser.parse_args()
    if args.data_only:
        cache = DataCache(args.cache_dir)
        for algorithm in [a for a in args.algorithms.split(",") if a]:
            for config in data_configs(algorithm, args.hidden, args, not args.fresh_only):
                TrainData.from_cache(config, cache)
        return
    print(machine())
    fresh_table([a for a in args.algorithms.split(",") if a], args.hidden,
                [int(p) for p in args.population.split(",") if p], args,
                with_pool=not args.fresh_only)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
