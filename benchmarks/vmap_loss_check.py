"""Checks that the training loss vmapped over a population equals each seed's own loss.

On jax/jaxlib 0.10.2 with XLA:CPU this found `jit(vmap(loss))` wrong from the 25th lane on at a
population of 64 (the pointer-hint term: off by up to 1.5 nats), while `vmap` without `jit`, `jit`
per seed and populations of up to 32 agree. The trainer therefore vmaps at most
``workers.train.CPU_POPULATION_LIMIT`` seeds at once on the CPU, and the landscape analysis at most
``workers.analysis.landscape.DEFAULT_CHUNK`` networks. Run it on any backend:

    python benchmarks/vmap_loss_check.py            # prints the largest difference per population
"""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.config import TrainConfig  # noqa: E402
from workers.data import DataCache, make_request  # noqa: E402
from workers.model import net_config  # noqa: E402
from workers.model.forward import init_params, unroll  # noqa: E402
from workers.model.losses import total_loss  # noqa: E402


def main() -> None:
    data = DataCache().get(make_request("bfs", "test", 16, 16, 301))
    cfg = net_config(TrainConfig(algorithm="bfs", hidden_size=16), data.spec)
    batch = jax.tree_util.tree_map(jnp.asarray, data.as_batch())
    example = data.take(np.arange(2)).as_batch()

    def loss(params):
        outputs, hints, _ = unroll(cfg, params, batch, jax.random.PRNGKey(0), train=True)
        return total_loss(cfg, batch, outputs, hints)

    params = jax.vmap(lambda k: init_params(cfg, k, example))(
        jax.random.split(jax.random.PRNGKey(3), 64))
    single = jax.jit(loss)
    alone = np.array([float(single(jax.tree_util.tree_map(lambda x: x[i], params)))
                      for i in range(64)])
    print(f"backend {jax.default_backend()}, jax {jax.__version__}")
    for population in (8, 16, 24, 32, 48, 64):
        together = np.asarray(jax.jit(jax.vmap(loss))(
            jax.tree_util.tree_map(lambda x: x[:population], params)))
        diff = np.abs(together - alone[:population])
        bad = np.flatnonzero(diff > 1e-3)
        print(f"population {population:3d}: largest |vmapped - alone| {diff.max():.3g}"
              + (f"; wrong from seed {bad[0]} on ({len(bad)} seeds)" if bad.size else ""))


if __name__ == "__main__":
    main()
