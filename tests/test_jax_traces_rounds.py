"""workers.data.jax_traces_rounds against dm-clrs, bit for bit: on graphs drawn by dm-clrs's own
samplers (run.py's edge probabilities) and on edge cases, every input, hint, output and length of
the JAX traces equals what dm-clrs's algorithm (bfs, bellman_ford; the project's bfs_seq variant)
produces, converted to storage dtypes by ``generate.feedback_to_split``, dtypes included."""

from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from clrs._src import probing, samplers

from workers.data import jax_traces_rounds as jt
from workers.data.generate import _ALGORITHMS, feedback_to_split, make_sampler
from workers.data.requests import RUN_PY_EDGE_PROBABILITIES, SplitRequest
from workers.data.trace_layout import batch_time_major, default_pos

TRACE_FUNCTIONS = {"bfs": jt.bfs, "bellman_ford": jt.bellman_ford, "bfs_seq": jt.bfs_seq}
# Graphs per size: 2,100 per round-based algorithm, 1,240 for bfs_seq (slow in dm-clrs at n = 64).
SAMPLED = {
    "bfs": {4: 400, 5: 400, 7: 400, 11: 300, 16: 300, 33: 200, 64: 100},
    "bellman_ford": {4: 400, 5: 400, 7: 400, 11: 300, 16: 300, 33: 200, 64: 100},
    "bfs_seq": {4: 300, 5: 300, 7: 250, 11: 150, 16: 120, 33: 80, 64: 40},
}


def _request(algorithm, n, count, seed=0):
    return SplitRequest(algorithm, "train", n, count, seed, RUN_PY_EDGE_PROBABILITIES, False)


def _input(feedback, name):
    return next(dp.data for dp in feedback.features.inputs if dp.name == name)


@lru_cache(maxsize=None)
def _sampled(algorithm, n, count, seed=0):
    """dm-clrs's data for ``count`` graphs from its sampler: (SplitData, float64 A, int32 s). The
    unweighted samplers' A is int64 (0/1): converted exactly; bellman_ford's is float64."""
    feedback = make_sampler(algorithm, count, n, seed, RUN_PY_EDGE_PROBABILITIES).next()
    split = feedback_to_split(_request(algorithm, n, count, seed), feedback)
    A = _input(feedback, "A")
    assert A.dtype == (np.float64 if algorithm == "bellman_ford" else np.int64)
    A = A.astype(np.float64)
    return split, A, np.argmax(_input(feedback, "s"), axis=1).astype(np.int32)


def _reference(algorithm, graphs):
    """dm-clrs's data for hand-made graphs [(A, s)]: the algorithm run per graph, batched with
    dm-clrs's own _batch_io/_batch_hints as its sampler does, then feedback_to_split."""
    _, algorithm_fn, spec = _ALGORITHMS[algorithm]
    inputs, outputs, hints = [], [], []
    for A, s in graphs:
        _, probes = algorithm_fn(np.asarray(A, np.float64), int(s))
        i, o, h = probing.split_stages(probes, spec)
        inputs.append(i)
        outputs.append(o)
        hints.append(h)
    batched_hints, lengths = samplers._batch_hints(hints, 0)
    feedback = samplers.Feedback(
        samplers.Features(samplers._batch_io(inputs), batched_hints, lengths),
        samplers._batch_io(outputs))
    n = graphs[0][0].shape[0]
    return feedback_to_split(_request(algorithm, n, len(graphs)), feedback)


@lru_cache(maxsize=None)
def _batched(algorithm, max_steps):
    """One jitted, vmapped trace function per (algorithm, max_steps); pos shared by the batch."""
    fn = partial(TRACE_FUNCTIONS[algorithm], max_steps=max_steps)
    return jax.jit(jax.vmap(fn, in_axes=(0, 0, None)))


def _ours(algorithm, A, s, max_steps, x64=True):
    """Our traces for a batch, time-major as SplitData holds them, as NumPy."""
    n = A.shape[1]
    fn = _batched(algorithm, max_steps)
    if x64:
        with jax.enable_x64(True):
            trace = fn(A, s, default_pos(n))
    else:
        trace = fn(A, s, default_pos(n))
    return jax.tree_util.tree_map(np.asarray, batch_time_major(trace))


def _assert_same(trace, split, max_steps):
    """Inputs, outputs, lengths equal; our first min(T, max_steps) hint rows equal dm-clrs's
    (T: its padded length), the rows past T zero; every dtype equal."""
    for ours, ref, stage in ((trace.inputs, split.inputs, "input"),
                             (trace.outputs, split.outputs, "output")):
        assert set(ours) == set(ref), stage
        for name in ref:
            assert ours[name].dtype == ref[name].dtype, (stage, name, ours[name].dtype)
            assert np.array_equal(ours[name], ref[name]), (stage, name)
    assert trace.length.dtype == np.int32
    assert np.array_equal(trace.length, split.lengths)
    assert set(trace.hints) == set(split.hints)
    rows = min(split.max_length, max_steps)
    for name, ref in split.hints.items():
        ours = trace.hints[name]
        assert ours.dtype == ref.dtype, (name, ours.dtype, ref.dtype)
        assert ours.shape == (max_steps,) + ref.shape[1:], name
        assert np.array_equal(ours[:rows], ref[:rows]), name
        assert not np.any(ours[rows:]), name


@pytest.mark.parametrize("algorithm,n", [(a, n) for a in ("bfs", "bellman_ford") for n in SAMPLED[a]])
def test_round_algorithms_match_dmclrs_on_sampled_graphs(algorithm, n):
    split, A, s = _sampled(algorithm, n, SAMPLED[algorithm][n])
    max_steps = jt.TRACE_BOUND[algorithm](n)
    assert split.max_length <= max_steps and split.lengths.max() <= max_steps
    _assert_same(_ours(algorithm, A, s, max_steps), split, max_steps)


@pytest.mark.parametrize("n", list(SAMPLED["bfs_seq"]))
def test_bfs_seq_matches_dmclrs_on_sampled_graphs(n):
    split, A, s = _sampled("bfs_seq", n, SAMPLED["bfs_seq"][n])
    max_steps = split.max_length + 3            # room past the longest trace: zero rows there
    _assert_same(_ours("bfs_seq", A, s, max_steps), split, max_steps)
    with jax.enable_x64(True):
        lengths = jax.jit(jax.vmap(jt.bfs_seq_length))(A, s)
    assert lengths.dtype == jnp.int32 and np.array_equal(np.asarray(lengths), split.lengths)


@pytest.mark.parametrize("n", [16, 33])
def test_bfs_seq_reports_true_length_beyond_max_steps(n):
    split, A, s = _sampled("bfs_seq", n, SAMPLED["bfs_seq"][n])
    max_steps = int(np.median(split.lengths))
    assert np.sum(split.lengths > max_steps) > 0 and np.sum(split.lengths < max_steps) > 0
    trace = _ours("bfs_seq", A, s, max_steps)
    _assert_same(trace, split, max_steps)      # first max_steps rows, true lengths (> max_steps)
    assert trace.length.max() > max_steps


@pytest.mark.parametrize("algorithm", ["bfs", "bellman_ford"])
def test_round_algorithms_cut_short_keep_true_length(algorithm):
    split, A, s = _sampled(algorithm, 16, SAMPLED[algorithm][16])
    assert split.lengths.max() > 2
    if algorithm == "bfs":
        _assert_same(_ours(algorithm, A, s, 2), split, 2)
        return
    # bellman_ford runs max_steps + 1 rounds: a longer trace says so (length > max_steps), its
    # first max_steps rows exact; the traces that fit are exact, output included
    trace = _ours(algorithm, A, s, 2)
    short = split.lengths <= 2
    assert short.any() and (~short).any()
    np.testing.assert_array_equal(trace.length[short], split.lengths[short])
    assert np.all(trace.length[~short] > 2)
    np.testing.assert_array_equal(trace.outputs["pi"][short], split.outputs["pi"][short])
    for name, ref in split.hints.items():
        np.testing.assert_array_equal(trace.hints[name], ref[:2], err_msg=name)


def _edge_cases(n, rng):
    """(A, s) pairs: no edges, complete with self-loops, paths (undirected, directed), an isolated
    source, a star, a source with only a self-loop, directed random graphs, and weights that tie
    (equal weights; exact binary fractions; a diamond; 0.1 + 0.2 against its float64 sum and the
    next float64 above it)."""
    ones, empty = np.ones((n, n)), np.zeros((n, n))
    path = np.eye(n, k=1) + np.eye(n, k=-1)
    isolated = ones.copy()
    isolated[1, :] = isolated[:, 1] = 0
    star = np.zeros((n, n))
    star[0, 1:] = star[1:, 0] = 1
    loop = np.zeros((n, n))
    loop[2, 2] = 1
    loop[0, 1] = loop[1, 0] = 1
    directed = (rng.random((n, n)) < 0.3).astype(float)
    binary = np.triu((rng.random((n, n)) < 0.6) * rng.choice([0.25, 0.5, 0.75], (n, n)))
    binary = binary + binary.T
    integers = (rng.random((n, n)) < 0.5) * rng.integers(1, 4, (n, n)).astype(float)
    rounding = np.zeros((n, n))
    rounding[0, 1] = rounding[1, 0] = 0.1
    rounding[1, 2] = rounding[2, 1] = 0.2
    rounding[0, 2] = rounding[2, 0] = 0.1 + 0.2          # == the float64 path sum: a tie
    rounding_strict = rounding.copy()                    # the path sum is just below it in
    rounding_strict[0, 2] = rounding_strict[2, 0] = np.nextafter(0.1 + 0.2, 1)  # float64 only
    diamond = np.zeros((n, n))
    diamond[[0, 0, 1, 2], [1, 2, 3, 3]] = diamond[[1, 2, 3, 3], [0, 0, 1, 2]] = 0.5
    return [
        (empty, 0), (empty, n - 1), (ones, 0), (ones, n // 2), (0.5 * ones, n - 1),
        (path, 0), (path, n - 1), (path, n // 2), (0.5 * path, 0), (np.eye(n, k=1), 0),
        (np.eye(n, k=1), n - 1), (isolated, 1), (star, 0), (star, n - 1), (loop, 2), (loop, 0),
        (directed, 0), (directed, 1), (binary, 0), (binary, n - 1), (integers, 0),
        (integers, n // 2), (rounding, 0), (rounding, 2), (rounding_strict, 0),
        (diamond, 0), (diamond, 3),
    ]


@pytest.mark.parametrize("algorithm", list(TRACE_FUNCTIONS))
@pytest.mark.parametrize("n", [4, 7, 16])
def test_edge_cases_match_dmclrs(algorithm, n):
    graphs = _edge_cases(n, np.random.default_rng(n))
    split = _reference(algorithm, graphs)
    if algorithm == "bfs_seq":
        max_steps = split.max_length + 2
    else:
        max_steps = jt.TRACE_BOUND[algorithm](n)
        assert split.max_length <= max_steps
        if algorithm == "bfs":      # the directed path from 0 takes the bound itself
            assert split.lengths[9] == n
    A = np.stack([a for a, _ in graphs])
    s = np.array([s for _, s in graphs], np.int32)
    _assert_same(_ours(algorithm, A, s, max_steps), split, max_steps)


def test_bellman_ford_ties_resolve_as_dmclrs():
    """The tie cases do tie, and resolve as dm-clrs does (strict <, first u), in float64."""
    graphs = _edge_cases(4, np.random.default_rng(4))
    split = _reference("bellman_ford", graphs)
    pi = _ours("bellman_ford", np.stack([a for a, _ in graphs]),
               np.array([s for _, s in graphs], np.int32), 4).outputs["pi"]
    assert np.array_equal(pi, split.outputs["pi"])
    # rounding from 0: round 2 offers node 2 0.1 + 0.2 via 1, equal to its direct edge: kept.
    assert pi[22][2] == 0
    # rounding_strict: the path is shorter in float64 only (in float32 it ties: the parent would
    # stay 0).
    assert pi[24][2] == 1 and np.float32(0.1) + np.float32(0.2) == np.float32(graphs[24][0][0, 2])
    # diamond: node 3 (from 0) and node 0 (from 3) are offered 1.0 by both 1 and 2: the first wins.
    assert pi[25][3] == 1 and pi[26][0] == 1


def test_float32_graphs_under_jit_without_x64():
    """The project's sampler feeds float32 A under an outer jit without x64: bellman_ford still
    relaxes in float64 (dm-clrs on the same float32 values), bfs and bfs_seq are unchanged."""
    assert not jax.config.jax_enable_x64
    for algorithm in TRACE_FUNCTIONS:
        _, A, s = _sampled(algorithm, 11, SAMPLED[algorithm][11])
        A32 = A.astype(np.float32)
        split = _reference(algorithm, list(zip(A32.astype(np.float64), s)))
        max_steps = split.max_length
        trace = _ours(algorithm, A32, s, max_steps, x64=False)
        _assert_same(trace, split, max_steps)


def test_max_steps_must_be_a_positive_static_int():
    A, s, pos = jnp.zeros((4, 4)), jnp.int32(0), default_pos(4)
    for fn in TRACE_FUNCTIONS.values():
        for bad in (0, -1, 2.0, None):
            with pytest.raises(ValueError, match="max_steps"):
                fn(A, s, pos, bad)
