"""Graph samplers as pure JAX functions of a PRNG key, drawing from the distribution dm-clrs's
samplers draw under ``examples/run.py``'s settings (``clrs/_src/samplers.py``: ``_random_er_graph``,
``BfsSampler``, ``DfsSampler``, ``BellmanFordSampler``, ``process_random_pos``), so that training
graphs can be generated on the accelerator inside a jitted step.

Per graph of ``n`` nodes, as dm-clrs does:

- an edge probability ``p`` drawn uniformly from ``edge_probabilities``;
- ``mat`` = Bernoulli(p) on [n, n], the diagonal included (self-loops happen);
- undirected kinds (bfs, bfs_seq, bellman_ford): ``mat *= mat.T`` (so an off-diagonal edge has
  probability p², a self-loop p); directed kinds (dfs, dfs_light): ``mat`` as is (not acyclic);
- bellman_ford: ``w = U(0, 1)`` [n, n], ``w *= w.T``, ``w = sqrt(w + 1e-3)``, ``A = mat * w``;
- the source node uniform over the n nodes (bfs, bfs_seq, bellman_ford);
- ``pos``: sorted uniforms (``process_random_pos`` on a graph without splits), or without
  ``random_pos`` dm-clrs's ``arange(n) * 1.0 / n`` (``trace_layout.default_pos``).

Only the distribution matches dm-clrs, not the draws (NumPy's RandomState cannot be reproduced).
Everything is float32 on uniform draws (``uniform < p`` rather than a binomial sampler), with no
Python loop over nodes. Nothing here imports dm-clrs or TensorFlow.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from workers.data.requests import RUN_PY_EDGE_PROBABILITIES, DataError
from workers.data.trace_layout import default_pos


class Graph(NamedTuple):
    """One sampled graph (or, from :func:`sample_graphs`, a stack of them along a leading axis).

    - ``A``: float32 [n, n]; 0/1 for bfs, bfs_seq, dfs, dfs_light; edge weights for bellman_ford.
    - ``s``: int32 scalar, the source node (bfs, bfs_seq, bellman_ford); 0 for dfs and dfs_light.
    - ``pos``: float32 [n], dm-clrs's ``pos`` input (sorted uniforms, or ``arange(n) / n``).
    """

    A: jax.Array
    s: jax.Array
    pos: jax.Array


class GraphKind(NamedTuple):
    """How an algorithm's dm-clrs sampler draws its graph."""

    directed: bool     # False: mat *= mat.T
    weighted: bool     # True: A = mat * sqrt(w * w.T + 1e-3)
    has_source: bool   # True: a source node uniform over the nodes


# The variants share their parent's sampler (workers.data.generate uses the same sampler class).
GRAPH_KINDS: dict[str, GraphKind] = {
    "bfs": GraphKind(directed=False, weighted=False, has_source=True),
    "bfs_seq": GraphKind(directed=False, weighted=False, has_source=True),
    "dfs": GraphKind(directed=True, weighted=False, has_source=False),
    "dfs_light": GraphKind(directed=True, weighted=False, has_source=False),
    "bellman_ford": GraphKind(directed=False, weighted=True, has_source=True),
}

# dm-clrs adds this before the square root "to protect underflow".
WEIGHT_EPSILON = 1e-3


def graph_kind(algorithm: str) -> GraphKind:
    """The GraphKind of ``algorithm``; DataError naming it and the allowed ones if unknown."""
    if algorithm not in GRAPH_KINDS:
        raise DataError(f"unknown algorithm {algorithm!r} for the JAX graph sampler; "
                        f"allowed: {', '.join(GRAPH_KINDS)}")
    return GRAPH_KINDS[algorithm]


def _check_static(n, edge_probabilities) -> tuple[float, ...]:
    """Validate the static arguments; returns the edge probabilities as a tuple of floats."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataError(f"graph size n must be a positive int, got {n!r}")
    probabilities = tuple(float(p) for p in edge_probabilities)
    if not probabilities:
        raise DataError("edge_probabilities is empty; give at least one probability in [0, 1]")
    for p in probabilities:
        if not 0.0 <= p <= 1.0:
            raise DataError(f"edge probability {p!r} is outside [0, 1]")
    return probabilities


def _draw(key, kind: GraphKind, n: int, probabilities: tuple[float, ...],
          random_pos: bool) -> Graph:
    """One graph of ``kind`` drawn from ``key`` (traceable; static arguments already checked)."""
    k_p, k_mat, k_w, k_s, k_pos = jax.random.split(key, 5)
    p = jnp.asarray(probabilities, jnp.float32)[
        jax.random.randint(k_p, (), 0, len(probabilities))]
    mat = jax.random.uniform(k_mat, (n, n), jnp.float32) < p
    if not kind.directed:
        mat = mat & mat.T
    A = mat.astype(jnp.float32)
    if kind.weighted:
        w = jax.random.uniform(k_w, (n, n), jnp.float32)
        if not kind.directed:
            w = jnp.sqrt(w * w.T + jnp.float32(WEIGHT_EPSILON))
        A = A * w
    if kind.has_source:
        s = jax.random.randint(k_s, (), 0, n, jnp.int32)
    else:
        s = jnp.zeros((), jnp.int32)
    if random_pos:
        pos = jnp.sort(jax.random.uniform(k_pos, (n,), jnp.float32))
    else:
        pos = jnp.asarray(default_pos(n))
    return Graph(A, s, pos)


@functools.partial(jax.jit, static_argnames=("kind", "n", "probabilities", "random_pos"))
def _sample_one(key, kind, n, probabilities, random_pos) -> Graph:
    return _draw(key, kind, n, probabilities, random_pos)


@functools.partial(jax.jit, static_argnames=("kind", "n", "count", "probabilities", "random_pos"))
def _sample_many(key, kind, n, count, probabilities, random_pos) -> Graph:
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(count, dtype=jnp.uint32))
    return jax.vmap(lambda k: _draw(k, kind, n, probabilities, random_pos))(keys)


def sample_graph(key, algorithm: str, n: int,
                 edge_probabilities=RUN_PY_EDGE_PROBABILITIES, random_pos: bool = True) -> Graph:
    """One graph of ``n`` nodes for ``algorithm``, drawn from ``key`` with dm-clrs's distribution.

    Returns a :class:`Graph` (A float32 [n, n], s int32 [], pos float32 [n]). ``algorithm``, ``n``,
    ``edge_probabilities`` and ``random_pos`` are static Python values; ``key`` may be traced, so
    this works under ``jax.jit`` and ``jax.vmap``. The same key gives the same graph.
    """
    kind = graph_kind(algorithm)
    probabilities = _check_static(n, edge_probabilities)
    return _sample_one(key, kind, n, probabilities, bool(random_pos))


def sample_graphs(key, algorithm: str, n: int, count: int,
                  edge_probabilities=RUN_PY_EDGE_PROBABILITIES, random_pos: bool = True) -> Graph:
    """``count`` graphs stacked along a leading axis: graph i is exactly
    ``sample_graph(jax.random.fold_in(key, i), algorithm, n, edge_probabilities, random_pos)``.

    Returns a :class:`Graph` with A [count, n, n], s [count], pos [count, n].
    """
    kind = graph_kind(algorithm)
    probabilities = _check_static(n, edge_probabilities)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise DataError(f"count must be an int >= 0, got {count!r}")
    return _sample_many(key, kind, n, count, probabilities, bool(random_pos))
