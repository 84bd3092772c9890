"""Fresh training batches, generated on the device: the JAX samplers (``jax_graph_sampler``) and
traces (``jax_traces_rounds``, ``jax_traces_dfs``) put together into the batches a training step
reads, as pure functions of a PRNG key (``jit``/``vmap``-able, no dm-clrs, no TensorFlow).

This is dm-clrs's ``examples/run.py`` protocol (train samplers with multiplier −1: every batch
freshly sampled, edge probability per graph from {0.1, …, 0.9}, random positions). Keys:

- :func:`batch_key` ``(data_seed, seed, step)``: a seed's batch at a step depends on nothing else
  (not its population, not the configuration), so seed k sees the same graphs in every
  configuration of a sweep with the same algorithm and train lengths: paired designs.
- graph i of a batch is drawn from ``fold_in(batch_key, i)``: batch 64 extends batch 32.

Hints are padded to a static length per (algorithm, n), :func:`trace_cap`: where every trace has
the same length (3n for dfs, 2n + 1 for dfs_light) that length; else run.py's own rule
(``samplers.py``: ``track_max_steps``): the longest of 1,000 graphs sampled up front (never above
the proven bound, n, for bfs and bellman_ford). A trace longer than its cap is reported
(``FreshBatch.longest``) so that the trainer can grow the cap, as run.py's sampler grows its own.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from workers.data.jax_graph_sampler import sample_graphs
from workers.data.jax_traces_dfs import TRACE_BOUND as DFS_BOUNDS
from workers.data.jax_traces_dfs import dfs, dfs_light
from workers.data.jax_traces_rounds import TRACE_BOUND as ROUNDS_BOUNDS
from workers.data.jax_traces_rounds import bellman_ford, bfs, bfs_seq, bfs_seq_length
from workers.data.probes import ProbeSpec
from workers.data.requests import RUN_PY_EDGE_PROBABILITIES, DataError, check_algorithm
from workers.data.split_data import SplitData
from workers.data.trace_layout import batch_time_major, ladder_rung

# graph i -> trace; dfs-like algorithms have no source
_TRACES = {
    "bfs": lambda g, steps: bfs(g.A, g.s, g.pos, steps),
    "bellman_ford": lambda g, steps: bellman_ford(g.A, g.s, g.pos, steps),
    "bfs_seq": lambda g, steps: bfs_seq(g.A, g.s, g.pos, steps),
    "dfs": lambda g, steps: dfs(g.A, g.pos, steps),
    "dfs_light": lambda g, steps: dfs_light(g.A, g.pos, steps),
}
_BOUNDS = {**ROUNDS_BOUNDS, **DFS_BOUNDS}

# run.py's estimate of the longest trace (samplers.py: 1,000 samples when sampling on the fly)
CALIBRATION_GRAPHS = 1000
_CALIBRATION_SEED = 0xCA1B
_DATA_STREAM = 2          # the PRNG stream of training data (0: init, 1: dropout; workers.train)

def _probe_tables() -> dict[str, dict[str, tuple]]:
    """dm-clrs's specs of the five algorithms as data (stage, location, type, classes-or-None;
    ``"n"`` stands for the graph size), checked against dm-clrs's own in the tests."""
    graph_inputs = {"pos": ("input", "node", "scalar", None), "A": ("input", "edge", "scalar", None),
                    "adj": ("input", "edge", "mask", None)}
    sourced = {"pos": graph_inputs["pos"], "s": ("input", "node", "mask_one", None),
               "A": graph_inputs["A"], "adj": graph_inputs["adj"]}
    pi = {"pi": ("output", "node", "pointer", "n")}
    bfs_rows = {**sourced, "reach_h": ("hint", "node", "mask", None),
                "pi_h": ("hint", "node", "pointer", "n"), **pi}
    dfs_light_rows = {**graph_inputs, "pi_h": ("hint", "node", "pointer", "n"),
                      "color": ("hint", "node", "categorical", 3), **pi}
    dfs_rows = {**graph_inputs, "pi_h": ("hint", "node", "pointer", "n"),
                "color": ("hint", "node", "categorical", 3), "d": ("hint", "node", "scalar", None),
                "f": ("hint", "node", "scalar", None), "s_prev": ("hint", "node", "pointer", "n"),
                **{k: ("hint", "node", "mask_one", None) for k in ("s", "u", "v", "s_last")},
                "time": ("hint", "graph", "scalar", None), **pi}
    bf_rows = {**sourced, "pi_h": ("hint", "node", "pointer", "n"),
               "d": ("hint", "node", "scalar", None), "msk": ("hint", "node", "mask", None), **pi}
    return {"bfs": bfs_rows, "bfs_seq": bfs_rows, "dfs": dfs_rows, "dfs_light": dfs_light_rows,
            "bellman_ford": bf_rows}


_PROBE_TABLES = _probe_tables()


def probe_table(algorithm: str, n: int) -> dict[str, ProbeSpec]:
    """The probe table of ``algorithm`` at graph size ``n``, in dm-clrs's order, without dm-clrs."""
    check_algorithm(algorithm)
    return {name: ProbeSpec(stage, location, type_, n if classes == "n" else classes)
            for name, (stage, location, type_, classes) in _PROBE_TABLES[algorithm].items()}


# algorithms whose every trace at n nodes has the same length (proven in jax_traces_dfs)
_FIXED_LENGTH = ("dfs", "dfs_light")


@functools.lru_cache(maxsize=None)
def trace_cap(algorithm: str, n: int) -> int:
    """The hint-time length fresh batches of ``algorithm`` at ``n`` nodes start padded to: the
    length of every trace where all have one (dfs, dfs_light), else the longest trace of
    :data:`CALIBRATION_GRAPHS` graphs drawn from a fixed key (run.py's own estimate), at most the
    proven bound where there is one (bfs, bellman_ford: n), at least 2."""
    check_algorithm(algorithm)
    if algorithm in _FIXED_LENGTH:
        return max(2, int(_BOUNDS[algorithm](n)))
    key = jax.random.fold_in(jax.random.PRNGKey(_CALIBRATION_SEED), n)
    longest = int(_calibration_longest(key, algorithm, n))
    if algorithm in _BOUNDS:
        longest = min(longest, int(_BOUNDS[algorithm](n)))
    return max(2, longest)


def grown_cap(algorithm: str, n: int, longest: int) -> int:
    """The cap after a trace of ``longest`` steps exceeded the current one: its ladder rung (so
    a cap grows a few times at most), at most the proven bound where there is one."""
    cap = ladder_rung(longest)
    return min(cap, max(2, int(_BOUNDS[algorithm](n)))) if algorithm in _BOUNDS else cap


def cap_covers_every_trace(algorithm: str, n: int, cap: int) -> bool:
    """Whether no trace of ``algorithm`` at ``n`` nodes can be longer than ``cap`` (a proven bound
    at or below it), so that a trainer need not check."""
    return algorithm in _BOUNDS and cap >= _BOUNDS[algorithm](n)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _calibration_longest(key, algorithm: str, n: int):
    graphs = sample_graphs(key, algorithm, n, CALIBRATION_GRAPHS, RUN_PY_EDGE_PROBABILITIES, True)
    if algorithm == "bfs_seq":
        return jnp.max(jax.vmap(bfs_seq_length)(graphs.A, graphs.s))
    bound = int(_BOUNDS[algorithm](n))             # the true lengths need the bound's rounds
    lengths = jax.vmap(lambda g: _TRACES[algorithm](g, bound).length)(graphs)
    return jnp.max(lengths)


def batch_key(data_seed, seed, step) -> jax.Array:
    """The key of seed ``seed``'s training batch at ``step`` (all traceable integers)."""
    key = jax.random.fold_in(jax.random.PRNGKey(data_seed), _DATA_STREAM)
    return jax.random.fold_in(jax.random.fold_in(key, seed), step)


class FreshBatch(NamedTuple):
    """A generated batch: ``batch`` is what the model reads (inputs [B, …], hints [T, B, …] with T
    = ``max_steps``, outputs [B, …], lengths [B] clipped to T); ``longest`` (int32 scalar) is the
    batch's longest true trace, above T where a trace was cut short."""

    batch: dict
    longest: jax.Array


def generate_batch(key, algorithm: str, n: int, batch_size: int, max_steps: int,
                   edge_probabilities=RUN_PY_EDGE_PROBABILITIES,
                   random_pos: bool = True) -> FreshBatch:
    """``batch_size`` graphs of ``n`` nodes and their ``algorithm`` traces, padded to
    ``max_steps`` hint steps (every argument but ``key`` static)."""
    check_algorithm(algorithm)
    graphs = sample_graphs(key, algorithm, n, batch_size, tuple(edge_probabilities), random_pos)
    trace = batch_time_major(jax.vmap(lambda g: _TRACES[algorithm](g, max_steps))(graphs))
    lengths = trace.length.astype(jnp.int32)
    batch = {"inputs": dict(trace.inputs), "hints": dict(trace.hints),
             "outputs": dict(trace.outputs), "lengths": jnp.minimum(lengths, max_steps)}
    return FreshBatch(batch, jnp.max(lengths))


def fresh_split(key, algorithm: str, n: int, count: int, max_steps: int | None = None,
                split: str = "train", edge_probabilities=RUN_PY_EDGE_PROBABILITIES,
                random_pos: bool = True) -> SplitData:
    """``count`` fresh graphs as host-side SplitData (tests, benchmarks, inspection), hints padded
    to ``max_steps`` (default :func:`trace_cap`); a trace longer than that is an error."""
    max_steps = trace_cap(algorithm, n) if max_steps is None else max_steps
    generated = jax.jit(generate_batch, static_argnums=(1, 2, 3, 4, 5, 6))(
        key, algorithm, n, count, max_steps, tuple(edge_probabilities), random_pos)
    if int(generated.longest) > max_steps:
        raise DataError(f"{algorithm} n={n}: a trace has {int(generated.longest)} steps, more than "
                        f"max_steps = {max_steps}; pass a larger max_steps")
    batch = jax.tree_util.tree_map(np.asarray, generated.batch)
    return SplitData(algorithm, split, n, batch["inputs"], batch["hints"], batch["outputs"],
                     batch["lengths"], probe_table(algorithm, n))
