"""workers.data.jax_traces_dfs against dm-clrs: on the same graphs, every input, hint, output and
length of the JAX traces equals, bit for bit and dtype for dtype, what feedback_to_split makes of
dm-clrs's dfs (and of workers.data.variants.dfs_light): graphs drawn by dm-clrs's own DfsSampler
with run.py's edge probabilities at n = 4 … 64, plus hand-made edge cases."""

import functools

import jax
import numpy as np
import pytest

from workers.data.generate import _ALGORITHMS, feedback_to_split, make_sampler
from workers.data.jax_traces_dfs import TRACE_BOUND, _dfs_scan, dfs, dfs_light
from workers.data.requests import RUN_PY_EDGE_PROBABILITIES, SplitRequest
from workers.data.trace_layout import batch_time_major, default_pos

from clrs._src import probing, samplers

TRACES = {"dfs": dfs, "dfs_light": dfs_light}
# Graphs per size, per algorithm: 2,350 each. dm-clrs's Python run dominates the test's time.
SAMPLED = {4: 600, 5: 500, 7: 450, 11: 350, 16: 250, 33: 130, 64: 70}


@functools.lru_cache(maxsize=None)
def _batched(algorithm: str, n: int, max_steps: int):
    """The trace function jitted once per (algorithm, n, max_steps), vmapped over graphs."""
    fn = functools.partial(TRACES[algorithm], max_steps=max_steps)
    return jax.jit(jax.vmap(fn, in_axes=(0, None)))


def _jax_split(algorithm, A, max_steps=None):
    """The JAX traces of graphs ``A`` [B, n, n] as numpy (hints time-major)."""
    n = A.shape[-1]
    max_steps = TRACE_BOUND[algorithm](n) if max_steps is None else max_steps
    trace = batch_time_major(_batched(algorithm, n, max_steps)(A, default_pos(n)))
    return jax.tree_util.tree_map(np.asarray, trace)


def _clrs_split(algorithm, graphs):
    """dm-clrs's run on each graph, batched as its samplers batch it, then feedback_to_split."""
    _, algorithm_fn, spec = _ALGORITHMS[algorithm]
    inputs, outputs, hints = [], [], []
    for A in graphs:
        _, probes = algorithm_fn(np.asarray(A, dtype=np.float64))
        inp, outp, hint = probing.split_stages(probes, spec)
        inputs.append(inp)
        outputs.append(outp)
        hints.append(hint)
    hints, lengths = samplers._batch_hints(hints, 0)
    feedback = samplers.Feedback(
        samplers.Features(samplers._batch_io(inputs), hints, lengths), samplers._batch_io(outputs))
    return feedback_to_split(_request(algorithm, graphs[0].shape[0], len(graphs)), feedback)


def _request(algorithm, n, count):
    """A request naming the algorithm and size, all that feedback_to_split reads."""
    return SplitRequest(algorithm, "test", n, count, 0, (0.5,), False)


def _assert_same(ours, theirs):
    """Every array of the JAX Trace equals the SplitData's, dtypes included; our hints may be
    padded further than dm-clrs's (to max_steps), with zeros."""
    for group, ref in (("inputs", theirs.inputs), ("hints", theirs.hints),
                       ("outputs", theirs.outputs)):
        got = getattr(ours, group)
        assert set(got) == set(ref), (group, sorted(got), sorted(ref))
        for name in ref:
            a, b = got[name], ref[name]
            assert a.dtype == b.dtype, (group, name, a.dtype, b.dtype)
            if group == "hints":
                assert a.shape[0] >= b.shape[0], (name, a.shape, b.shape)
                assert not a[b.shape[0]:].any(), name
                a = a[: b.shape[0]]
            assert a.shape == b.shape, (group, name, a.shape, b.shape)
            if not np.array_equal(a, b):
                bad = np.argwhere(a != b)[:5]
                raise AssertionError(f"{group}/{name} differs at {bad.tolist()}")
    assert ours.length.dtype == theirs.lengths.dtype == np.int32
    np.testing.assert_array_equal(ours.length, theirs.lengths)


@pytest.fixture(scope="module", params=sorted(SAMPLED))
def sampled(request):
    """(n, graphs [B, n, n], {algorithm: dm-clrs SplitData}) for graphs drawn by DfsSampler."""
    n = request.param
    count = SAMPLED[n]
    splits = {}
    for algorithm in TRACES:
        sampler = make_sampler(algorithm, count, n, seed=1000 + n,
                               edge_probabilities=RUN_PY_EDGE_PROBABILITIES)
        splits[algorithm] = feedback_to_split(_request(algorithm, n, count), sampler.next())
    graphs = splits["dfs"].inputs["A"]
    # Same seed, same sampler class: the variant saw the same graphs.
    np.testing.assert_array_equal(splits["dfs_light"].inputs["A"], graphs)
    return n, graphs, splits


@pytest.mark.parametrize("algorithm", sorted(TRACES))
def test_sampled_graphs_match_dmclrs(sampled, algorithm):
    n, graphs, splits = sampled
    assert len({g.tobytes() for g in graphs}) > len(graphs) // 2   # not one graph many times
    _assert_same(_jax_split(algorithm, graphs), splits[algorithm])


def test_sampled_trace_lengths(sampled):
    """The docstring's claims: dfs is 3 n steps and dfs_light 2 n + 1 on every graph."""
    n, _, splits = sampled
    assert np.all(splits["dfs"].lengths == 3 * n)
    assert np.all(splits["dfs_light"].lengths == 2 * n + 1)


def _edge_cases(n):
    """Named hand-made graphs on n nodes (0/1, directed)."""
    chain = np.eye(n, k=1)
    star_out = np.zeros((n, n))
    star_out[0, 1:] = 1
    half = n // 2
    two_components = np.zeros((n, n))
    two_components[:half, :half] = 1
    two_components[half:, half:] = 1
    last_to_all = np.zeros((n, n))
    last_to_all[n - 1] = 1
    return {
        "no edges": np.zeros((n, n)),
        "complete with self-loops": np.ones((n, n)),
        "self-loops only": np.eye(n),
        "chain": chain,
        "reversed chain (every node a root)": chain.T,
        "cycle": np.roll(np.eye(n), 1, axis=1),
        "star out of node 0": star_out,
        "star into node 0": star_out.T,
        "two components": two_components,
        "from the last node to all": last_to_all,
    }


# n = 1 is left out: the project's graph sizes start at 2, and dm-clrs's finalize squeezes a
# one-node graph's inputs to scalars, so there is no [n] layout to compare with.
@pytest.mark.parametrize("n", [2, 3, 4, 5, 16, 64])
@pytest.mark.parametrize("algorithm", sorted(TRACES))
def test_edge_cases_match_dmclrs(algorithm, n):
    cases = _edge_cases(n)
    graphs = np.stack(list(cases.values()))
    ours = _jax_split(algorithm, graphs)
    theirs = _clrs_split(algorithm, list(graphs))
    try:
        _assert_same(ours, theirs)
    except AssertionError as error:   # positions are [graph, …] or [step, graph, …]
        raise AssertionError(f"{algorithm}, n={n}, cases {list(cases)}: {error}") from None


@pytest.mark.parametrize("algorithm", sorted(TRACES))
def test_longer_max_steps_pads_with_zeros(algorithm):
    n = 7
    sampler = make_sampler(algorithm, 40, n, seed=5, edge_probabilities=RUN_PY_EDGE_PROBABILITIES)
    theirs = feedback_to_split(_request(algorithm, n, 40), sampler.next())
    ours = _jax_split(algorithm, theirs.inputs["A"], max_steps=3 * n + 9)
    assert all(h.shape[0] == 3 * n + 9 for h in ours.hints.values())
    _assert_same(ours, theirs)


@pytest.mark.parametrize("algorithm", sorted(TRACES))
def test_max_steps_below_bound_is_refused(algorithm):
    with pytest.raises(ValueError, match="max_steps"):
        TRACES[algorithm](np.zeros((5, 5)), default_pos(5), TRACE_BOUND[algorithm](5) - 1)


@pytest.mark.parametrize("n", [4, 16])
def test_bound_is_enough(n):
    """Run past 3 n loop iterations: nothing more is pushed (the search has ended)."""
    sampler = make_sampler("dfs", 64, n, seed=9, edge_probabilities=RUN_PY_EDGE_PROBABILITIES)
    graphs = sampler.next().features.inputs[0].data
    run = jax.jit(jax.vmap(lambda A: _dfs_scan(A, 3 * n + 4)))
    hints, length, _ = run(np.asarray(graphs))
    np.testing.assert_array_equal(length, np.full(len(graphs), 3 * n))
    for name, x in hints.items():
        assert not np.asarray(x)[:, 3 * n:].any(), name
