"""Why no network of this architecture reproduces ``dfs``'s ``v`` hint exactly when node positions
are random, as in CLRS's training data (``docs/compiled_dfs.md``, "Random positions").

After a search that finds no white successor, dm-clrs leaves ``v`` at index n - 1, the node
with the largest position. When positions are ``j / n``, that node can tell it is last from its
own position; the compiled DFS network does (``dfs_compiler``). When they are sorted uniform
draws, it cannot. The witness, on 5 nodes:

- ``chain``: edges 0 → 1 → 2, positions (0.1, 0.2, 0.3, a, b). Row 6 finishes node 2, so
  ``v`` goes to node 4 (position b).
- ``empty``: no edges, positions (0.1, 0.2, a, b, 0.9). Row 6 makes node 2 (position a) a root,
  so ``v`` goes to node 2.

In both graphs the nodes at positions a and b are isolated, white and hold no flag before row 6,
so at the step that predicts row 6 each one's ``v`` logit is the same function F of its position
in both graphs. ``chain`` needs F(b) > F(a) and ``empty`` needs F(a) > F(b). One of them is
always wrong. (Positions are drawn at random, so such pairs, and pairs close to them where
continuity forces the same error, have positive probability.)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from workers.compile import dfs_light_witness as light
from workers.compile.dfs_light_witness import _init, _unroll, stacked_batch
from workers.data.jax_traces_dfs import TRACE_BOUND, dfs
from workers.model.network import NetConfig

N = 5
ROW = 6                  # the row whose v the two graphs disagree on
A_POS, B_POS = 0.5, 0.6
# (graph, the node at position a, the node at position b, the node v goes to at ROW)
WITNESS = (("chain", 3, 4, 4), ("empty", 2, 3, 2))


def witness_graphs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    chain = np.zeros((N, N))
    chain[0, 1] = chain[1, 2] = 1.0
    return {"chain": (chain, np.array([0.1, 0.2, 0.3, A_POS, B_POS])),
            "empty": (np.zeros((N, N)), np.array([0.1, 0.2, A_POS, B_POS, 0.9]))}


def witness_batch() -> dict:
    steps = TRACE_BOUND["dfs"](N)
    return stacked_batch([dfs(jnp.asarray(a, jnp.float32), pos, steps)
                          for a, pos in witness_graphs().values()])


def net_config_for(**architecture) -> NetConfig:
    return light.net_config_for(N, "dfs", **architecture)


@dataclasses.dataclass(frozen=True)
class PositionWitnessRun:
    """The ``v`` logits [2 graphs, 2] of the nodes at positions a and b at the step predicting
    ``ROW``, and which graph needs which order."""

    logits: np.ndarray
    truth: tuple[int, int]                  # v at ROW in chain, empty

    @property
    def largest_difference(self) -> float:
        """max |logit(chain) − logit(empty)| at the same position: 0 up to float rounding (the
        two nodes sit at different indices, so XLA's sums run in another order)."""
        return float(np.max(np.abs(self.logits[0] - self.logits[1])))

    @property
    def both_right(self) -> bool:
        """chain needs logit(b) > logit(a), empty logit(a) > logit(b)."""
        return bool(self.logits[0, 1] > self.logits[0, 0] and self.logits[1, 0] > self.logits[1, 1])


def run_witness(params, net_config: NetConfig) -> PositionWitnessRun:
    batch = witness_batch()
    forced = dataclasses.replace(net_config, hint_teacher_forcing=1.0, dropout_prob=0.0)
    _, hints, _ = _unroll(forced, params, batch, jax.random.PRNGKey(0), True)
    v = np.asarray(hints["v"])[ROW - 1]                     # [2 graphs, N]: predicts row ROW
    logits = np.array([[v[g, at_a], v[g, at_b]] for g, (_, at_a, at_b, _) in enumerate(WITNESS)])
    truth = tuple(int(np.argmax(np.asarray(batch["hints"]["v"])[ROW, g])) for g in range(2))
    return PositionWitnessRun(logits, truth)


def random_params(net_config: NetConfig, seed: int):
    return _init(net_config, jax.random.PRNGKey(seed), witness_batch())
