"""CLRS traces of ``dfs`` (dm-clrs ``clrs/_src/algorithms/graphs.py``) and ``dfs_light`` (the
paper's variant, ``workers.data.variants.dfs_light``) as pure JAX functions of one graph.

Each returns a :class:`workers.data.trace_layout.Trace` whose arrays equal, bit for bit and dtype
for dtype, what ``workers.data.generate.feedback_to_split`` makes of dm-clrs's own run on the same
graph (``tests/test_jax_traces_dfs.py`` checks it). They are jit- and vmap-able: the graph size and
``max_steps`` are static, everything else is traced, and there is no data-dependent Python control
flow (one ``lax.scan`` whose every iteration is one dm-clrs ``probing.push``).

How long a DFS trace is: dm-clrs pushes one hint when it takes a root, one when it discovers a node
(``color[u] == 0 or d[u] == 0.0``), one per tree edge (the first white successor of ``u``, pushed on
the ``s_prev``/``s_last`` linked stack) and one when it finishes a node. Every node is either a
root or reached by exactly one tree edge, and is discovered once and finished once, so the trace
is exactly ``3 n`` steps for every graph. The ``dfs_light`` cut keeps step 0 (the first root), every
discovery of a root (white to grey), every tree edge (a new parent, a node turning grey) and every
finish (grey to black), and drops the discoveries of non-roots (already grey, nothing changes) and
the pushes of later roots (the state of the finish before them): exactly ``2 n + 1`` steps.

Nothing here imports dm-clrs or TensorFlow.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from workers.data.trace_layout import Trace, graph_probe, mask_one, one_hot, pointers

TRACE_BOUND = {"dfs": lambda n: 3 * n, "dfs_light": lambda n: 2 * n + 1}

_LIGHT_HINTS = ("pi_h", "color")


@functools.lru_cache(maxsize=None)
def _time_table(increments: int) -> np.ndarray:
    """float32 [increments + 1]: entry k is dm-clrs's ``time`` after k increments of ``+= 0.01``,
    the float64 running sum (not ``k * 0.01``) rounded once to float32, as the stored hint is.
    (Measured: the two float64 sequences differ from k = 6 on, but their float32 roundings agree for
    every k <= 2048, i.e. every n <= 1024; the running sum is kept as the faithful one.)"""
    table = np.zeros(increments + 1, dtype=np.float64)
    time = 0.0
    for k in range(1, increments + 1):
        time += 0.01
        table[k] = time
    return table.astype(np.float32)


def _check_steps(name: str, n: int, max_steps: int) -> None:
    bound = TRACE_BOUND[name](n)
    if max_steps < bound:
        raise ValueError(f"{name} on {n} nodes needs max_steps >= {bound}; got {max_steps}")


def _dfs_scan(A, steps: int):
    """dm-clrs's dfs run for ``steps`` loop iterations on one graph.

    Returns ``(hints, length, pi)``: hints {name: [steps, …]} in storage dtypes, where row t is the
    t-th push and rows past the last push are zeros; ``length`` (int32) the number of pushes made;
    ``pi`` (int32 [n]) the final parents. ``steps >= 3 n`` runs it to the end.
    """
    n = A.shape[0]
    table = jnp.asarray(_time_table(2 * n))
    nodes = jnp.arange(n, dtype=jnp.int32)
    edges = A != 0

    state = dict(
        color=jnp.zeros(n, jnp.int32), pi=nodes, d=jnp.zeros(n, jnp.float32),
        f=jnp.zeros(n, jnp.float32), s_prev=nodes, tick=jnp.int32(0), s=jnp.int32(0),
        s_last=jnp.int32(0), u=jnp.int32(0), v=jnp.int32(0), need_root=jnp.bool_(True),
    )

    def step(st, _):
        color, pi, d, f, s_prev = st["color"], st["pi"], st["d"], st["f"], st["s_prev"]
        tick, s, s_last, u, v, need_root = (st["tick"], st["s"], st["s_last"], st["u"], st["v"],
                                            st["need_root"])
        white = color == 0
        # The outer "for s": the next root is the first white node (all before it are coloured).
        root = need_root & white.any()
        finished = need_root & ~white.any()
        discover = ~need_root & ((color[u] == 0) | (d[u] == 0.0))
        search = ~need_root & ~discover
        # The inner "for v": the first white successor of u.
        candidates = edges[u] & white
        child = jnp.argmax(candidates).astype(jnp.int32)
        tree = search & candidates.any()
        finish = search & ~candidates.any()

        root_node = jnp.argmax(white).astype(jnp.int32)
        s = jnp.where(root, root_node, s)
        u = jnp.where(root, root_node, u)
        s_last = jnp.where(root, root_node, jnp.where(tree, child, s_last))
        # After a "for v" that found nothing, Python leaves v at n - 1.
        v = jnp.where(root, root_node, jnp.where(tree, child, jnp.where(finish, n - 1, v)))
        tick = tick + (discover | finish).astype(jnp.int32)
        now = table[tick]
        d = jnp.where(discover & (nodes == u), now, d)
        f = jnp.where(finish & (nodes == u), now, f)
        color = jnp.where(discover & (nodes == u), 1, color)
        color = jnp.where(tree & (nodes == child), 1, color)
        color = jnp.where(finish & (nodes == u), 2, color)
        pi = jnp.where(tree & (nodes == child), u, pi)
        s_prev = jnp.where(tree & (nodes == child), st["s_last"], s_prev)

        emit = ~finished
        row = {
            "pi_h": pointers(pi, n), "color": one_hot(color, 3), "d": d, "f": f,
            "s_prev": pointers(s_prev, n), "s": mask_one(s, n), "u": mask_one(u, n),
            "v": mask_one(v, n), "s_last": mask_one(s_last, n), "time": now,
        }
        row = {k: jnp.where(emit, x, jnp.zeros_like(x)) for k, x in row.items()}

        # After the push: a tree edge descends to the child; a finish either ends the tree
        # (u was the bottom of the stack) or pops u and resumes at the node below it.
        ends_tree = finish & (s_prev[u] == u)
        pops = finish & ~ends_tree
        below = s_prev[s_last]
        s_prev = jnp.where(pops & (nodes == s_last), nodes, s_prev)
        s_last = jnp.where(pops, below, s_last)
        u = jnp.where(tree | pops, s_last, u)
        need_root = (need_root & ~root) | ends_tree

        new = dict(color=color, pi=pi, d=d, f=f, s_prev=s_prev, tick=tick, s=s, s_last=s_last,
                   u=u, v=v, need_root=need_root)
        return new, (row, emit)

    final, (hints, emitted) = jax.lax.scan(step, state, None, length=steps)
    return hints, jnp.sum(emitted, dtype=jnp.int32), final["pi"]


def _pad(hints: dict, max_steps: int) -> dict:
    return {k: jnp.pad(x, [(0, max_steps - x.shape[0])] + [(0, 0)] * (x.ndim - 1))
            for k, x in hints.items()}


def _inputs(A, pos) -> dict:
    return {"pos": jnp.asarray(pos, jnp.float32), "A": A.astype(jnp.float32),
            "adj": graph_probe(A)}


def dfs(A, pos, max_steps: int) -> Trace:
    """dm-clrs's ``dfs`` on the directed graph ``A`` (float [n, n], nonzero = edge).

    Returns a Trace: inputs ``pos`` (float32 [n], as given), ``A`` (float32), ``adj`` (int8);
    hints ``pi_h``, ``s_prev`` (pointer indices), ``color`` (int8 one-hot [·, n, 3]), ``d``, ``f``
    (float32 [·, n]), ``s``, ``u``, ``v``, ``s_last`` (int8 mask_one), ``time`` (float32 [·]), each
    [max_steps, …] zero-padded past ``length``; output ``pi``; ``length`` = 3 n (int32).
    ``max_steps`` (static) must be at least ``TRACE_BOUND["dfs"](n)`` = 3 n.
    """
    A = jnp.asarray(A)
    n = A.shape[0]
    _check_steps("dfs", n, max_steps)
    hints, length, pi = _dfs_scan(A, TRACE_BOUND["dfs"](n))
    return Trace(_inputs(A, pos), _pad(hints, max_steps), {"pi": pointers(pi, n)}, length)


def dfs_light(A, pos, max_steps: int) -> Trace:
    """The paper's simplified DFS: dm-clrs's ``dfs`` trace cut to ``pi_h`` and ``color``, keeping
    step 0 and every step whose ``pi_h`` or ``color`` differs from the step before, kept rows moved
    to the front in order.

    Returns a Trace with ``dfs``'s inputs and output, hints ``pi_h`` and ``color`` only
    ([max_steps, …], zeros past ``length``), and ``length`` = the number of kept steps (2 n + 1).
    ``max_steps`` (static) must be at least ``TRACE_BOUND["dfs_light"](n)`` = 2 n + 1.
    """
    A = jnp.asarray(A)
    n = A.shape[0]
    _check_steps("dfs_light", n, max_steps)
    steps = TRACE_BOUND["dfs"](n)
    full, length, pi = _dfs_scan(A, steps)
    full = {k: full[k] for k in _LIGHT_HINTS}
    # changed[t]: row t differs from row t - 1 in pi_h or color (row 0 has no predecessor).
    changed = jnp.zeros(steps, bool)
    for x in full.values():
        differs = jnp.any((x[1:] != x[:-1]).reshape(steps - 1, -1), axis=1)
        changed = changed | jnp.concatenate([jnp.zeros(1, bool), differs])
    keep = changed.at[0].set(True) & (jnp.arange(steps) < length)
    # Kept row t goes to slot (number kept before it); dropped rows go past the end (discarded).
    slot = jnp.where(keep, jnp.cumsum(keep) - 1, max_steps)
    hints = {k: jnp.zeros((max_steps,) + x.shape[1:], x.dtype).at[slot].set(x, mode="drop")
             for k, x in full.items()}
    return Trace(_inputs(A, pos), hints, {"pi": pointers(pi, n)},
                 jnp.sum(keep, dtype=jnp.int32))
