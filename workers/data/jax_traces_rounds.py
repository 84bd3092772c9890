"""dm-clrs's round-based graph traces as pure JAX functions of one graph: ``bfs`` and
``bellman_ford`` (clrs/_src/algorithms/graphs.py) and the paper's ``bfs_seq``
(``workers.data.variants.bfs_seq``), each returning a ``workers.data.trace_layout.Trace`` whose
arrays are bit for bit what ``workers.data.generate.feedback_to_split`` makes of dm-clrs's run on
the same graph (with ``pos = trace_layout.default_pos(n)``).

Every function takes ``A`` (float [n, n], edge i -> j where ``A[i, j]`` is an edge weight), ``s``
(int32 scalar, the source), ``pos`` (float32 [n], stored as the ``pos`` input) and a static
``max_steps`` (the hint rows returned). They are jit/vmap-able: no data-dependent Python control
flow, loops are ``lax`` loops over at most n rounds, and ``length`` is always the true trace length
(hints past ``max_steps`` are cut off, never the length). Nothing here imports dm-clrs or TensorFlow.

BFS's rounds in closed form. dm-clrs's BFS round r (r = 1, 2, …) reaches every node j with an edge
``A[i, j] > 0`` from a node i reached after round r - 1, so after r rounds the reached set is
{j : dist(j) <= r}, dist being the hop distance from s. Within a round, j's parent is set by the
first (smallest) such i while ``pi[j] == j``: a node j != s gets its parent in the round that
first reaches it, to the smallest i with an edge to j and dist(i) < dist(j) (any such i has
dist(i) = dist(j) - 1), and keeps it (self-loops never re-set a parent: a reached j != s already
has ``pi[j] != j``). The rounds stop after the first round that reaches nothing new.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from workers.data.trace_layout import Trace, graph_probe, mask_one, pointers


def _check_steps(max_steps) -> int:
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive Python int (static), got {max_steps!r}")
    return max_steps


def _fit_rows(rows: jax.Array, max_steps: int) -> jax.Array:
    """``rows`` [T, …] cut or zero-padded along time to [max_steps, …]."""
    steps = rows.shape[0]
    if steps >= max_steps:
        return rows[:max_steps]
    return jnp.pad(rows, [(0, max_steps - steps)] + [(0, 0)] * (rows.ndim - 1))


def _inputs(A, s, pos) -> dict:
    """The bfs / bellman_ford inputs: pos (float32), s (mask_one int8), A (float32), adj (int8)."""
    n = A.shape[0]
    return {"pos": jnp.asarray(pos).astype(jnp.float32), "s": mask_one(s, n),
            "A": jnp.asarray(A).astype(jnp.float32), "adj": graph_probe(A)}


def bfs_distances(edges: jax.Array, s) -> jax.Array:
    """int32 [n]: hop distance from ``s`` along ``edges`` (bool [n, n], i -> j), ``n`` where
    unreachable. A node at distance k is reached in BFS round k; k <= n - 1, so n - 1 rounds
    settle every distance."""
    n = edges.shape[0]
    nodes = jnp.arange(n, dtype=jnp.int32)
    start = jnp.where(nodes == s, 0, n).astype(jnp.int32)

    def one_round(k, dist):
        reached = dist < k                       # reached within the first k - 1 rounds
        hit = jnp.any(reached[:, None] & edges, axis=0)
        return jnp.where(hit & (dist == n), k, dist).astype(jnp.int32)

    return lax.fori_loop(1, n, one_round, start)


def bfs_parents(edges: jax.Array, dist: jax.Array) -> jax.Array:
    """int32 [n]: dm-clrs's final BFS ``pi``: for a reached node j other than the source, the
    smallest i with an edge i -> j and dist(i) < dist(j); j itself otherwise."""
    n = edges.shape[0]
    nodes = jnp.arange(n, dtype=jnp.int32)
    closer = edges & (dist[:, None] < dist[None, :])          # [i, j]
    first = jnp.argmax(closer, axis=0).astype(jnp.int32)      # first True along i
    return jnp.where(jnp.any(closer, axis=0), first, nodes)


def _bfs_rounds_length(dist: jax.Array) -> jax.Array:
    """int32: dm-clrs's BFS trace length. Round r reaches the nodes at distance r; with e the
    largest finite distance, rounds 1…e reach something and round e + 1 does not, so the loop pushes
    e + 1 hint steps (one before each round). e <= n - 1 (a shortest path visits distinct nodes),
    hence at most n steps."""
    n = dist.shape[0]
    return (jnp.max(jnp.where(dist < n, dist, 0)) + 1).astype(jnp.int32)


def bfs(A, s, pos, max_steps: int) -> Trace:
    """dm-clrs's ``bfs`` on one graph: a Trace with inputs pos/s/A/adj, hints reach_h (int8) and
    pi_h (pointer dtype) [max_steps, n] — row t is the state after t rounds, rows at and past the
    length zero — output pi, and the true length (at most n, see ``_bfs_rounds_length``)."""
    max_steps = _check_steps(max_steps)
    A = jnp.asarray(A)
    n = A.shape[0]
    edges = A > 0
    nodes = jnp.arange(n, dtype=jnp.int32)
    dist = bfs_distances(edges, s)
    pi = bfs_parents(edges, dist)
    length = _bfs_rounds_length(dist)
    t = jnp.arange(max_steps, dtype=jnp.int32)[:, None]
    live = t < length
    settled = dist[None, :] <= t                                # reached after t rounds
    reach_h = (live & settled).astype(jnp.int8)
    pi_h = jnp.where(live, jnp.where(settled, pi[None, :], nodes[None, :]), 0)
    return Trace(_inputs(A, s, pos), {"reach_h": reach_h, "pi_h": pointers(pi_h, n)},
                 {"pi": pointers(pi, n)}, length)


def bellman_ford(A, s, pos, max_steps: int) -> Trace:
    """dm-clrs's ``bellman_ford`` on one graph: a Trace with inputs pos/s/A/adj, hints pi_h
    (pointer dtype), d (float32) and msk (int8) [max_steps, n] — row t is the state after t rounds,
    rows at and past the length zero — output pi, and the true length.

    The relaxation runs in float64 (``jax.enable_x64``, also inside an outer jit without x64) as
    dm-clrs's NumPy does. One round, for each v, over the u reached before the round with
    ``A[u, v] != 0`` in increasing u, with candidates c_u = d_prev[u] + A[u, v]: a v not yet reached
    takes the first candidate and then any strictly smaller one, a reached v any candidate strictly
    below its d. So d[v] becomes min c_u (or keeps d[v] if that is not smaller) and pi[v] the
    smallest u reaching the minimum.

    Length bound: with the nonnegative weights dm-clrs samples (edges are the nonzero entries, so
    positive), d after k rounds is the least float64 weight, summed left to right, of the walks from
    s with at most k edges (induction: rounding is monotone, so min and ``+ A[u, v]`` commute).
    Dropping a cycle from a walk never raises that weight (adding a positive weight never lowers a
    rounded sum, and the later additions are monotone in it), so simple paths, of at most n - 1
    edges, attain it: d stops changing by round n - 1, round n changes nothing (a round that leaves
    d unchanged reaches no new node, whose d would turn from 0 to a positive sum, and moves no
    parent), and dm-clrs stops at the first round leaving d unchanged: at most n hint steps.
    The rounds here are exact for any weights; were round n still to change d (only possible with
    negative weights, where dm-clrs may never stop), the length reported is n + 1.

    Only min(n, max_steps + 1) rounds run (the rows kept, and one more to see whether the trace goes
    on): a trace longer than ``max_steps`` reports a length above ``max_steps`` (at least
    max_steps + 1, not necessarily its true length) and its output is not computed."""
    max_steps = _check_steps(max_steps)
    A = jnp.asarray(A)
    n = A.shape[0]
    with jax.enable_x64(True):
        weights = A.astype(jnp.float64)
        edges = weights != 0
        nodes = jnp.arange(n, dtype=jnp.int32)
        start = (jnp.zeros(n, jnp.float64), nodes, nodes == s)

        def one_round(state, _):
            d, pi, msk = state
            valid = msk[:, None] & edges                                   # [u, v]
            candidates = jnp.where(valid, d[:, None] + weights, jnp.inf)
            best = jnp.min(candidates, axis=0)
            # The first u reaching the minimum. Not jnp.argmin: under an outer jit without x64 its
            # float64 reduction is lowered with a float32 initial value and fails to compile.
            first = jnp.min(jnp.where(valid & (candidates == best[None, :]), nodes[:, None], n),
                            axis=0).astype(jnp.int32)
            offered = jnp.any(valid, axis=0)
            take = offered & (~msk | (best < d))
            new = (jnp.where(take, best, d), jnp.where(take, first, pi), msk | offered)
            return new, new

        rounds = min(n, max_steps + 1)
        _, (ds, pis, msks) = lax.scan(one_round, start, None, length=rounds)
        ds = jnp.concatenate([start[0][None], ds])           # [rounds + 1, n]: after 0…rounds
        pis = jnp.concatenate([start[1][None], pis])
        msks = jnp.concatenate([start[2][None], msks])
        changed = jnp.any(ds[1:] != ds[:-1], axis=1)         # round r = 1…rounds changed d
        length = (1 + jnp.sum(jnp.cumprod(changed.astype(jnp.int32)))).astype(jnp.int32)
        pi = pis[jnp.minimum(length, rounds)]                # after the round that stopped it
        d_rows = ds.astype(jnp.float32)
    live = (jnp.arange(rounds + 1, dtype=jnp.int32) < length)[:, None]
    hints = {"pi_h": pointers(jnp.where(live, pis, 0), n),
             "d": jnp.where(live, d_rows, jnp.float32(0)),
             "msk": (live & msks).astype(jnp.int8)}
    hints = {k: _fit_rows(v, max_steps) for k, v in hints.items()}
    return Trace(_inputs(A, s, pos), hints, {"pi": pointers(pi, n)}, length)


def _seq_schedule(A, s):
    """bfs_seq's schedule in closed form: (edges, dist, round_ends, length).

    Step 0 is the start state; round r (r = 1…R, R = e + 1 BFS rounds, the last reaching nothing
    new) then pushes one step per examined edge, i.e. per edge (i, j) with ``A[i, j] > 0`` and
    dist(i) <= r - 1: count_r = sum of the out-degrees of those i. ``round_ends[r - 1]`` =
    1 + count_1 + … + count_r is the first step after round r (r = 1…n; rounds past R count 0), and
    ``length`` = round_ends[-1], all int32."""
    A = jnp.asarray(A)
    n = A.shape[0]
    edges = A > 0
    dist = bfs_distances(edges, s)
    out_degree = jnp.sum(edges, axis=1, dtype=jnp.int32)
    rounds = _bfs_rounds_length(dist)                              # R
    r = jnp.arange(1, n + 1, dtype=jnp.int32)[:, None]             # [n, 1]
    counts = jnp.sum(jnp.where(dist[None, :] <= r - 1, out_degree[None, :], 0), axis=1,
                     dtype=jnp.int32)
    counts = jnp.where(r[:, 0] <= rounds, counts, 0)
    round_ends = (1 + jnp.cumsum(counts)).astype(jnp.int32)
    return edges, dist, round_ends, round_ends[-1]


def bfs_seq_length(A, s) -> jax.Array:
    """int32 scalar: the true length of ``bfs_seq``'s trace (1 + the examined edges of all
    rounds), without building hints."""
    return _seq_schedule(A, s)[3]


def bfs_seq(A, s, pos, max_steps: int) -> Trace:
    """The paper's sequential BFS (``workers.data.variants.bfs_seq``) on one graph: a Trace with
    bfs's inputs and output, hints reach_h (int8) and pi_h (pointer dtype) [max_steps, n], one row
    per examined edge after the start row, rows at and past the length zero, and the TRUE length
    even where it exceeds ``max_steps`` (the hints then hold its first max_steps rows).

    Vectorised over time: step t lies in round rho(t) + 1, where rho(t) counts the rounds ending
    at or before t, and its reach_h is BFS's reach after rho(t) rounds ({j : dist(j) <= rho(t)}).
    A node j != s reached at distance k gets its parent p (``bfs_parents``) at the step of edge
    (p, j) in round k: that round's first step plus the edges examined before (p, j) in dm-clrs's
    order (i, then j), i.e. the out-degrees of the i < p with dist(i) < k plus the edges (p, j')
    with j' < j; pi_h[t, j] is p from that step on and j before."""
    max_steps = _check_steps(max_steps)
    A = jnp.asarray(A)
    n = A.shape[0]
    edges, dist, round_ends, length = _seq_schedule(A, s)
    nodes = jnp.arange(n, dtype=jnp.int32)
    pi = bfs_parents(edges, dist)
    out_degree = jnp.sum(edges, axis=1, dtype=jnp.int32)
    round_starts = jnp.concatenate([jnp.ones(1, jnp.int32), round_ends[:-1]])   # round r: [r - 1]
    # Position of edge (pi[j], j) within j's round.
    before_rows = (nodes[None, :] < pi[:, None]) & (dist[None, :] < dist[:, None])   # [j, i]
    skipped_rows = jnp.sum(jnp.where(before_rows, out_degree[None, :], 0), axis=1, dtype=jnp.int32)
    before_cols = edges[pi] & (nodes[None, :] < nodes[:, None])                      # [j, j']
    skipped_cols = jnp.sum(before_cols, axis=1, dtype=jnp.int32)
    gets_parent = (dist < n) & (nodes != s)
    set_at = jnp.where(gets_parent,
                       round_starts[jnp.clip(dist - 1, 0, n - 1)] + skipped_rows + skipped_cols,
                       0)
    t = jnp.arange(max_steps, dtype=jnp.int32)[:, None]
    live = t < length
    rounds_done = jnp.sum(round_ends[None, :] <= t, axis=1, dtype=jnp.int32)[:, None]   # rho(t)
    reach_h = (live & (dist[None, :] <= rounds_done)).astype(jnp.int8)
    pi_h = jnp.where(live, jnp.where(t >= set_at[None, :], pi[None, :], nodes[None, :]), 0)
    return Trace(_inputs(A, s, pos), {"reach_h": reach_h, "pi_h": pointers(pi_h, n)},
                 {"pi": pointers(pi, n)}, length)


# The longest trace each round-based algorithm can have at n nodes (see the length proofs above);
# bfs_seq has none worth a static bound (1 + n^3 at most): use bfs_seq_length.
TRACE_BOUND = {"bfs": lambda n: n, "bellman_ford": lambda n: n}
