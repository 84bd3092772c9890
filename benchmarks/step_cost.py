"""One seed's training step, side by side: dm-clrs's BaselineModel, this project's network on the
materialised edge path and on the low-rank one (``workers/model/network.py``), plus population
throughput on both paths.

    python benchmarks/step_cost.py                                  # bfs, bellman_ford, dfs; hidden 128, 16, 4
    python benchmarks/step_cost.py --algorithms bfs --hidden 16,4 --reps 5 --population none
    python benchmarks/step_cost.py --population 1,4 --population-hidden 128 --population-steps 100
    python benchmarks/step_cost.py --data-only                      # build the cache entries, stop
    python benchmarks/step_cost.py --population none --train-data 1,8   # + fresh vs pool steps

In one process, per (algorithm, hidden): one batch (``--batch`` graphs, default 32, of the
``--n`` = 16 train pool, hints cut to the batch's longest trace, T hint steps) and one set of
weights (dm-clrs's init mapped with ``workers.model.clrs_params.from_dmclrs``; where ``import
clrs`` fails, e.g. on the GPU machine, the project's own init and no dm-clrs column). Each column
is the median wall time of ``--reps`` calls after warm-up, each blocked until its result is ready:

- dm-clrs: ``BaselineModel.feedback(rng, feedback)`` (its jitted loss, gradient and Adam update),
  the feedback already on the device;
- materialised / low-rank: ``jit`` of ``value_and_grad`` of the unrolled loss and the project's
  optimiser update (``workers.train.make_optimizer``) on that edge path.

Every step starts from the same weights, so the first call's loss is the same computation in
every column: the table prints the low-rank and dm-clrs losses' relative difference from the
materialised one ("ok" within 1e-5). ``--population`` (a comma list, or "none") then measures
population seed-steps/s of Table 9's BFS on both edge paths with ``benchmarks/population.py``
(``--population-hidden``, ``--population-steps``, ``--population-pool``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workers  # noqa: E402,F401  (sets the project's XLA flags before JAX starts)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from population import build_data, machine, population_table  # noqa: E402
from workers.config import TrainConfig  # noqa: E402
from workers.data import DataCache, make_request  # noqa: E402
from workers.model import make_net_config  # noqa: E402
from workers.model.clrs_params import from_dmclrs  # noqa: E402  (NumPy only: no dm-clrs)
from workers.model.forward import init_params, unroll  # noqa: E402
from workers.model.losses import total_loss  # noqa: E402
from workers.train import make_optimizer  # noqa: E402

AGREE = 1e-5        # relative loss difference the columns must stay within
POOL_SEED = 1       # the train pools' seed (TrainConfig.data_seed's default)
WARMUP = 2          # untimed calls after the compiling one


def load_batch(cache: DataCache, algorithm: str, n: int, batch: int, pool: int):
    """``batch`` graphs of the n-node train pool (``pool`` graphs, seed 1), hints cut to their
    longest trace."""
    data = cache.get(make_request(algorithm, "train", n, max(pool, batch), POOL_SEED))
    return data.take(np.arange(batch))


def import_clrs():
    """dm-clrs's module, or None (with the reason printed once) where it cannot be imported."""
    try:
        import clrs
        from clrs._src import probing
    except Exception as err:  # noqa: BLE001 - ImportError, or TensorFlow failing to load
        print(f"note: no dm-clrs column ({type(err).__name__}: {err}); the weights are the "
              "project's own init")
        return None
    return clrs, probing


def to_feedback(clrs_modules, data):
    """SplitData → dm-clrs Feedback (pointers as float indices, as its samplers give them), as in
    tests/test_model_parity.py."""
    clrs, probing = clrs_modules

    def points(group):
        return tuple(probing.DataPoint(
            name, data.probe_table[name].location, data.probe_table[name].type,
            np.asarray(x, np.float32 if data.probe_table[name].type == "categorical"
                       else np.float64)) for name, x in group.items())
    features = clrs.Features(points(data.inputs), points(data.hints),
                             data.lengths.astype(np.float64))
    return clrs.Feedback(features, points(data.outputs))


def dm_model(clrs_modules, data, config: TrainConfig, seed: int):
    """dm-clrs's BaselineModel for ``config`` (GATv2), initialised with ``seed``, and the batch as
    its Feedback."""
    clrs, _ = clrs_modules
    feedback = to_feedback(clrs_modules, data)
    spec = {name: (row.stage, row.location, row.type) for name, row in data.probe_table.items()}
    factory = clrs.get_processor_factory("gatv2", use_ln=config.use_ln, nb_triplet_fts=0,
                                         nb_heads=config.nb_heads)
    model = clrs.models.BaselineModel(
        spec=[spec], dummy_trajectory=[feedback], processor_factory=factory,
        hidden_dim=config.hidden_size, encode_hints=config.encode_hints,
        decode_hints=config.decode_hints, encoder_init=config.encoder_init,
        learning_rate=config.learning_rate, grad_clip_max_norm=config.grad_clip_max_norm,
        hint_teacher_forcing=config.hint_teacher_forcing, hint_repred_mode="soft")
    model.init([feedback.features], seed)
    return model, feedback


def project_step(net_config, optimizer):
    """The project's jitted training step of one seed: (params, opt_state, batch, key) →
    (params, opt_state, loss)."""
    def loss_fn(params, batch, key):
        outputs, hints, _ = unroll(net_config, params, batch, key, train=True)
        return total_loss(net_config, batch, outputs, hints)

    @jax.jit
    def step(params, opt_state, batch, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss
    return step


def timed(call, reps: int) -> tuple[float, float]:
    """(first call's loss, median ms of ``reps`` calls after ``WARMUP`` more); ``call()`` runs one
    step and returns its loss, which is blocked on."""
    first = float(jax.block_until_ready(call()))
    for _ in range(WARMUP):
        jax.block_until_ready(call())
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
    return first, 1e3 * statistics.median(times)


def measure(cache, clrs_modules, algorithm: str, hidden: int, args) -> dict:
    data = load_batch(cache, algorithm, args.n, args.batch, args.pool)
    config = TrainConfig(algorithm=algorithm, hidden_size=hidden)
    nets = {path: make_net_config(config, data.probe_table, edge_path=path)
            for path in ("materialised", "low_rank")}
    batch = jax.device_put(jax.tree_util.tree_map(jnp.asarray, data.as_batch()))
    key = jax.random.PRNGKey(0)
    row = {"algorithm": algorithm, "hidden": hidden, "T": data.max_length,
           "K": nets["low_rank"].edge_channels}
    if clrs_modules is not None:
        model, feedback = dm_model(clrs_modules, data, config, args.seed)
        params = jax.tree_util.tree_map(jnp.asarray, from_dmclrs(nets["materialised"],
                                                                 model.params))
        feedback = jax.device_put(feedback)
        row["dm_clrs_loss"], row["dm_clrs_ms"] = timed(lambda: model.feedback(key, feedback),
                                                       args.reps)
    else:
        params = init_params(nets["materialised"], jax.random.PRNGKey(args.seed), batch)
    optimizer = make_optimizer(config)
    for path, net_config in nets.items():
        step = project_step(net_config, optimizer)
        state = [params, optimizer.init(params)]

        def call():
            state[0], state[1], loss = step(state[0], state[1], batch, key)
            return loss
        row[f"{path}_loss"], row[f"{path}_ms"] = timed(call, args.reps)
    return row


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def print_table(rows, with_dm: bool) -> bool:
    """The step-cost table; returns whether every loss agreed within AGREE."""
    head = f"{'algorithm':<13}{'hidden':>6}{'T':>4}{'K':>3}"
    head += (f"{'dm-clrs ms':>12}" if with_dm else "") + f"{'mater. ms':>11}{'low-rank ms':>13}"
    head += (f"{'dm/low':>8}" if with_dm else "") + f"{'mat/low':>9}"
    head += f"{'loss (mater.)':>15}{'low-rank rel':>14}" + (f"{'dm-clrs rel':>13}" if with_dm else "")
    print(head)
    agree = True
    for r in rows:
        low, mat = r["low_rank_ms"], r["materialised_ms"]
        diffs = [relative(r["low_rank_loss"], r["materialised_loss"])]
        line = f"{r['algorithm']:<13}{r['hidden']:>6}{r['T']:>4}{r['K']:>3}"
        line += (f"{r['dm_clrs_ms']:>12.2f}" if with_dm else "") + f"{mat:>11.2f}{low:>13.2f}"
        line += (f"{r['dm_clrs_ms'] / low:>7.2f}x" if with_dm else "") + f"{mat / low:>8.2f}x"
        line += f"{r['materialised_loss']:>15.6g}{diffs[0]:>14.1e}"
        if with_dm:
            diffs.append(relative(r["dm_clrs_loss"], r["materialised_loss"]))
            line += f"{diffs[1]:>13.1e}"
        ok = max(diffs) <= AGREE
        agree &= ok
        print(line + ("  ok" if ok else f"  DIFFERS (> {AGREE:g})"), flush=True)
    return agree


def parse_ints(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"{flag} {text!r}: give a comma list of integers") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", default="bfs,bellman_ford,dfs")
    parser.add_argument("--hidden", default="128,16,4", help="hidden sizes (comma list)")
    parser.add_argument("--batch", type=int, default=32, help="graphs in the batch (default 32)")
    parser.add_argument("--n", type=int, default=16, help="graph size of the train pool (16)")
    parser.add_argument("--pool", type=int, default=32,
                        help="graphs in the train pool the batch is the first of (default 32)")
    parser.add_argument("--reps", type=int, default=20, help="timed calls per column (median)")
    parser.add_argument("--seed", type=int, default=0, help="the weights' init seed")
    parser.add_argument("--population", default="1,4",
                        help="populations for seed-steps/s on both edge paths, or 'none'")
    parser.add_argument("--population-hidden", type=int, default=128)
    parser.add_argument("--population-steps", type=int, default=100)
    parser.add_argument("--population-eval-every", type=int, default=50)
    parser.add_argument("--population-pool", type=int, default=512,
                        help="graphs per train length of the population runs")
    parser.add_argument("--train-data", default="none", metavar="POPULATIONS",
                        help="populations for the fresh-vs-pool step table "
                             "(benchmarks/fresh_step.py; hidden --population-hidden), or 'none'")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--data-only", action="store_true",
                        help="build or check the data-cache entries, then stop")
    args = parser.parse_args()
    algorithms = [a for a in args.algorithms.split(",") if a]
    hiddens = parse_ints(args.hidden, "--hidden")
    populations = ([] if args.population.strip().lower() in ("", "none")
                   else parse_ints(args.population, "--population"))
    cache = DataCache(args.cache_dir)
    grid = [(args.population_hidden, populations)] if populations else []
    if args.data_only:
        for algorithm in algorithms:
            load_batch(cache, algorithm, args.n, args.batch, args.pool)
        build_data(grid, args.population_steps, args.population_pool,
                   args.population_eval_every, args.cache_dir)
        return

    print(machine())
    clrs_modules = import_clrs()
    print(f"one seed's training step: batch {args.batch} of the n = {args.n} train pool, "
          f"median of {args.reps} calls after {1 + WARMUP} untimed; T hint steps, K edge channels")
    rows = []
    for algorithm in algorithms:
        for hidden in hiddens:
            rows.append(measure(cache, clrs_modules, algorithm, hidden, args))
    agree = print_table(rows, clrs_modules is not None)
    print("losses agree: the columns time the same computation" if agree else
          f"WARNING: a loss differs by more than {AGREE:g} relative (see DIFFERS above)")
    if grid:
        print()
        population_table(grid, args.population_steps, args.population_pool,
                         ("materialised", "low_rank"), args.population_eval_every,
                         args.cache_dir, out=lambda line: print(line, flush=True))
    if args.train_data.strip().lower() not in ("", "none"):
        from fresh_step import fresh_table

        print()
        fresh_args = argparse.Namespace(n=args.n, batch=args.batch, pool=args.population_pool,
                                        reps=args.reps, cache_dir=args.cache_dir)
        fresh_table(algorithms, args.population_hidden, parse_ints(args.train_data, "--train-data"),
                    fresh_args, out=lambda line: print(line, flush=True),
                    with_pool=clrs_modules is not None)

if __name__ == "__main__":
    main()
