"""The layout every JAX trace function returns (``workers.data.jax_traces_*``): one graph's inputs,
hints and outputs under dm-clrs's probe names, in the storage dtypes of ``workers.data.probes``, so
that a batch of traces (``jax.vmap`` over graphs) is a SplitData batch: inputs [B, …], hints
[max_steps, B, …] (after moving the time axis first), outputs [B, …], lengths [B].

Nothing here imports dm-clrs or TensorFlow.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from workers.data.probes import pointer_dtype


# Hint-time lengths batches are padded to: each batch is cut to its longest trace and rounded up to
# the next rung, so a graph size costs a handful of compilations, not one per batch.
LADDER = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


def ladder_rung(longest: int) -> int:
    """The first rung of :data:`LADDER` at or above ``longest`` (past it, multiples of 256)."""
    for rung in LADDER:
        if rung >= longest:
            return rung
    return -(-longest // 256) * 256


class Trace(NamedTuple):
    """One graph's algorithm run, as a SplitData row.

    - ``inputs``/``outputs``: {probe name: array without a batch axis}.
    - ``hints``: {probe name: [max_steps, …]}; rows at and past ``length`` are zeros (dm-clrs pads
      batched hints with zeros).
    - ``length``: int32 scalar, the true number of hint steps. Where a trace function can know it
      beyond ``max_steps`` it reports it (so ``length > max_steps`` flags a trace cut short);
      functions that cannot require ``max_steps`` to cover their bound.
    """

    inputs: dict
    hints: dict
    outputs: dict
    length: jax.Array


def mask_one(i, n: int) -> jax.Array:
    """dm-clrs's ``probing.mask_one``: int8 [n], 1 at ``i``."""
    return (jnp.arange(n) == i).astype(jnp.int8)


def graph_probe(A) -> jax.Array:
    """dm-clrs's ``probing.graph``: int8 [n, n], 1 where ``A + I`` is nonzero."""
    n = A.shape[0]
    return ((A + jnp.eye(n, dtype=A.dtype)) != 0).astype(jnp.int8)


def pointers(x, n: int) -> jax.Array:
    """Node indices in the stored pointer dtype for graphs of ``n`` nodes."""
    return jnp.asarray(x).astype(pointer_dtype(n))


def default_pos(n: int) -> np.ndarray:
    """dm-clrs's ``pos`` input before ``process_random_pos``: ``arange(n) * 1.0 / n`` in float64,
    stored as float32 (a constant: the same bits as NumPy's)."""
    return (np.arange(n) * 1.0 / n).astype(np.float32)


def one_hot(x, classes: int) -> jax.Array:
    """dm-clrs's ``probing.array_cat``: int8 one-hot [..., classes]."""
    return (jnp.asarray(x)[..., None] == jnp.arange(classes)).astype(jnp.int8)


def batch_time_major(trace: Trace) -> Trace:
    """A vmapped Trace (every leaf [B, …]) with its hints moved to [T, B, …], as SplitData holds
    them."""
    return trace._replace(hints={k: jnp.moveaxis(v, 0, 1) for k, v in trace.hints.items()})
