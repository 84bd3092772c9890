"""Checks that the training loss and its gradient, vmapped over a population, equal each seed's own.

This found XLA:CPU's YNNPACK reduction fusion (jaxlib 0.8.1+, measured on 0.10.2) miscomputing the
vmapped pointer-hint loss once the vmapped reduction covers more than about 2^15 rows: on a 2-core
AMD EPYC, DFS at n = 16 was wrong from the 2nd or 3rd seed of a population. The project turns
the fusion off (``workers/xla_flags.py``); this prints the agreement with that default, or with
whatever ``XLA_FLAGS`` names, on any backend:

    python benchmarks/vmap_loss_check.py                        # BFS, DFS, bfs_seq; populations 8-64
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=reduce python benchmarks/vmap_loss_check.py
    python benchmarks/vmap_loss_check.py --algorithms dfs --populations 4,8 --graphs 32
    python benchmarks/vmap_loss_check.py --data-only       # build (or check) the data, then stop

Per algorithm: a batch of train graphs at n = 16 (bfs_seq: the test recipe at n = 32, whose traces
are 744 hint steps long), hidden 16, seeds' parameters from their own keys; for each population
the largest relative difference of the loss and of the gradient norm between a lane of
``jit(vmap(value_and_grad(loss)))`` and the same seed's ``jit(value_and_grad(loss))``, and the
first wrong lane (relative difference > 1e-5) if any. bfs_seq checks the loss alone: gradients
through 744 steps for 64 seeds need more memory than a laptop has.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workers  # noqa: E402,F401  (sets the project's XLA flags before JAX starts)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from workers.canary import cpu_model  # noqa: E402
from workers.config import TrainConfig  # noqa: E402
from workers.data import DataCache, make_request  # noqa: E402
from workers.model import make_net_config  # noqa: E402
from workers.model.forward import init_params, unroll  # noqa: E402
from workers.model.losses import total_loss  # noqa: E402

WRONG = 1e-5
SPLITS = {"bfs": ("train", 16), "dfs": ("train", 16), "bellman_ford": ("train", 16),
          "bfs_seq": ("test", 32), "dfs_light": ("train", 16)}


def request(algorithm: str, graphs: int):
    """The cache entry the check of ``algorithm`` draws its ``graphs`` graphs from."""
    split, size = SPLITS[algorithm]
    return (make_request(algorithm, split, size, max(graphs, 32), 301) if split == "train"
            else make_request(algorithm, split, size))


def check(algorithm: str, populations: list[int], graphs: int, hidden: int) -> None:
    split, size = SPLITS[algorithm]
    gradients = algorithm != "bfs_seq"
    data = DataCache().get(request(algorithm, graphs)).take(np.arange(graphs))
    net_config = make_net_config(TrainConfig(algorithm=algorithm, hidden_size=hidden), data.probe_table)
    batch = jax.tree_util.tree_map(jnp.asarray, data.as_batch())
    example = data.take(np.arange(2)).as_batch()

    def loss_and_norm(params):
        def loss(p):
            outputs, hints, _ = unroll(net_config, p, batch, jax.random.PRNGKey(0), train=True)
            return total_loss(net_config, batch, outputs, hints)
        if not gradients:
            return loss(params), jnp.float32(1.0)
        value, grads = jax.value_and_grad(loss)(params)
        return value, optax.tree.norm(grads)

    largest = max(populations)
    params = jax.vmap(lambda k: init_params(net_config, k, example))(
        jax.random.split(jax.random.PRNGKey(3), largest))
    single = jax.jit(loss_and_norm)
    start = time.perf_counter()
    alone = np.array([[float(x) for x in single(jax.tree_util.tree_map(lambda x: x[i], params))]
                      for i in range(largest)])
    vmapped = jax.jit(jax.vmap(loss_and_norm))
    print(f"{algorithm}: n = {size} ({split}), {graphs} graphs, {data.max_length} hint steps, "
          f"hidden {hidden}")
    for population in populations:
        together = np.stack([np.asarray(x) for x in vmapped(
            jax.tree_util.tree_map(lambda x: x[:population], params))], axis=1)
        diff = np.abs(together - alone[:population]) / np.maximum(np.abs(alone[:population]), 1e-30)
        bad = np.flatnonzero(diff.max(axis=1) > WRONG)
        print(f"  population {population:4d}: largest relative difference loss "
              f"{diff[:, 0].max():.2g}"
              + (f", gradient norm {diff[:, 1].max():.2g}" if gradients else "")
              + (f"; WRONG from lane {bad[0]} on ({len(bad)} of {population} lanes)"
                 if bad.size else "; every lane agrees"))
    print(f"  ({time.perf_counter() - start:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", default="bfs,dfs,bfs_seq")
    parser.add_argument("--populations", default="8,16,24,32,48,64")
    parser.add_argument("--graphs", type=int, default=16, help="graphs in the batch (default 16)")
    parser.add_argument("--hidden-size", type=int, default=16)
    parser.add_argument("--data-only", action="store_true",
                        help="build or check the data-cache entries, then stop")
    args = parser.parse_args()
    if args.data_only:
        for algorithm in args.algorithms.split(","):
            DataCache().get(request(algorithm, args.graphs))
        return
    device = jax.devices()[0]
    kind = cpu_model() if device.platform == "cpu" else device.device_kind
    print(f"backend {jax.default_backend()} ({kind}), jax {jax.__version__}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    for algorithm in args.algorithms.split(","):
        check(algorithm, [int(p) for p in args.populations.split(",")], args.graphs,
              args.hidden_size)


if __name__ == "__main__":
    main()
