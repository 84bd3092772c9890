"""Faithfulness of a network to the algorithm's trace (paper Figs. 3-5, 12-15), per hint step.

- **Trace faithfulness**: per step t, each decoded hint against the true hint t + 1 (pointers by
  argmax, masks by threshold F1, scalars by squared error): dm-clrs's ``evaluate_hints`` along time,
  what training already records as ``test/hint_acc/<hint>``.
- **Attention faithfulness**: per step t, the share of nodes (of the graphs whose trace has that
  step) whose largest attention coefficient falls on the sender the algorithm selects: the node's
  pointer after the step (its parent, or itself), which is exactly what the compiled network
  attends to (``workers.compile``: attention accuracy 100%).

Both are computed for a stacked population of parameters at once (``vmap`` over seeds).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from workers.compile.algorithm_programs import program_for
from workers.scoring import hint_scores_along_time
from workers.model.forward import unroll
from workers.model.network import NetConfig

def selection_hint(algorithm: str) -> str:
    """The hint whose next value is the sender each node selects: the pointer of the algorithm's
    graph program (BFS, Bellman-Ford; others raise ProgramError)."""
    return program_for(algorithm).pointer.hint


def attention_agreement(attention, parents, lengths):
    """Per step, the share of live nodes whose top attention sender is their parent.

    ``attention [T - 1, B, heads, N, N]`` (receiver, sender); ``parents [T - 1, B, N]`` (the
    pointer hint from step 1 on); NaN where no graph has the step."""
    chosen = jnp.argmax(attention[:, :, 0], axis=-1)                       # [T - 1, B, N]
    live = (jnp.arange(parents.shape[0])[:, None] + 1 < lengths[None, :]).astype(jnp.float32)
    hits = jnp.sum((chosen == parents).astype(jnp.float32) * live[..., None], axis=(1, 2))
    total = jnp.sum(live, axis=1) * parents.shape[-1]
    return jnp.where(total > 0, hits / jnp.maximum(total, 1.0), jnp.nan)


@functools.partial(jax.jit, static_argnums=(0, 3))
def population_faithfulness(net_config: NetConfig, stacked_params, batch, pointer_hint: str):
    """For each seed of ``stacked_params`` ([S, …] leaves): ``attention`` [S, T - 1] and
    ``trace`` {hint: [S, T - 1]} on ``batch`` (evaluation mode, full float32 matmuls)."""
    parents = batch["hints"][pointer_hint][1:]

    def one(params):
        _, hints, attention = unroll(net_config, params, batch, jax.random.PRNGKey(0), train=False)
        return {"attention": attention_agreement(attention, parents, batch["lengths"]),
                "trace": hint_scores_along_time(net_config, hints, batch)}

    return jax.vmap(one)(stacked_params)


def faithfulness(net_config: NetConfig, stacked_params, data, algorithm: str) -> dict:
    """``population_faithfulness`` on a SplitData, as NumPy arrays."""
    batch = jax.tree_util.tree_map(jnp.asarray, data.as_batch())
    with jax.default_matmul_precision("float32"):
        result = population_faithfulness(net_config, stacked_params, batch, selection_hint(algorithm))
    return jax.tree_util.tree_map(np.asarray, result)


def chance_agreement(data, pointer_hint: str = "pi_h") -> np.ndarray:
    """Per step, the agreement expected from attention that picks a sender uniformly at random
    among a node's candidates (itself, its neighbours, its pointer): the mean of 1/|candidates|."""
    adj = data.inputs["adj"] > 0
    n = adj.shape[-1]
    steps = data.hints[pointer_hint].shape[0] - 1
    result = np.full(steps, np.nan)
    for t in range(steps):
        live = t + 1 < data.lengths
        if not live.any():
            continue
        pointer = np.eye(n, dtype=bool)[data.hints[pointer_hint][t][live]]   # the fed-in pointer
        candidates = (np.eye(n, dtype=bool) | adj[live] | np.swapaxes(adj[live], 1, 2)
                      | pointer | np.swapaxes(pointer, 1, 2))
        result[t] = float(np.mean(1.0 / candidates.sum(-1)))
    return result
