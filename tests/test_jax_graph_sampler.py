"""The JAX graph sampler against dm-clrs's own samplers: two-sample statistical tests on 10,000
graphs a side at significance ALPHA (fixed seeds: deterministic), exact properties, and the JAX
contract (jit, vmap, keys, ``sample_graphs`` = ``sample_graph`` on folded keys).

dm-clrs's graphs are drawn by its sampler's own ``_sample_data`` (what ``Sampler._make_batch`` calls
once per graph) on a sampler built as ``workers.data.generate.make_sampler`` builds it, without
running the algorithm on each graph (that costs ~40 s for 10,000 graphs on two cores; the draws
take under a second). ``test_dmclrs_draws_are_make_samplers_graphs`` shows that path yields exactly
the graphs ``make_sampler(...).next()`` returns for the same seed.

Observations inside one graph are not independent (they share the graph's edge probability, and an
undirected graph's two triangles), so every test compares one value per graph (density, node 0's
degree, self-loop count, source, pos at one rank), or values that are independent given the graph
(edge weights, which dm-clrs draws independently of the edges).
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from workers.data import generate
from workers.data.jax_graph_sampler import (GRAPH_KINDS, WEIGHT_EPSILON, Graph, sample_graph,
                                            sample_graphs)
from workers.data.requests import PARENT_ALGORITHM, RUN_PY_EDGE_PROBABILITIES, DataError
from workers.data.trace_layout import default_pos
from clrs._src import samplers  # after workers.data.generate, which silences TensorFlow's start-up

ALPHA = 1e-3
N_GRAPHS = 10_000
N = 16
ALGORITHMS = tuple(GRAPH_KINDS)
P = RUN_PY_EDGE_PROBABILITIES
SMALL = 16   # graphs per call in the contract tests (one compiled shape: compiling dominates)

logging.getLogger("absl").setLevel(logging.ERROR)   # "Sampling dataset on-the-fly" warnings


# --- the two samples ---------------------------------------------------------------------------

def _dmclrs_sampler(algorithm: str, n: int, seed: int, num_samples: int = -1):
    """make_sampler's sampler; with num_samples = -1 it draws nothing at construction."""
    if num_samples > 0:
        return generate.make_sampler(algorithm, num_samples, n, seed, P)
    sampler_class, algorithm_fn, spec = generate._ALGORITHMS[algorithm]
    return sampler_class(algorithm_fn, spec, -1, seed=seed, track_max_steps=False, length=n,
                         p=tuple(P))


def _draw_dmclrs(sampler, count: int):
    """``count`` graphs from the sampler's own draw: (A float64 [count, n, n], s int [count] or
    None for samplers without a source)."""
    draws = [sampler._sample_data(*sampler._args, **sampler._kwargs) for _ in range(count)]
    A = np.stack([np.asarray(d[0], np.float64) for d in draws])
    s = np.array([d[1] for d in draws]) if len(draws[0]) > 1 else None
    return A, s


@functools.lru_cache(maxsize=None)
def dmclrs_graphs(algorithm: str, n: int = N, count: int = N_GRAPHS, seed: int = 20260):
    """dm-clrs's graphs for ``algorithm`` (its parent's sampler: the variants share it)."""
    return _draw_dmclrs(_dmclrs_sampler(PARENT_ALGORITHM[algorithm], n, seed), count)


@functools.lru_cache(maxsize=None)
def jax_graphs(algorithm: str, n: int = N, count: int = N_GRAPHS, seed: int | None = None,
               edge_probabilities=P, random_pos: bool = True) -> Graph:
    """The JAX sampler's graphs as NumPy arrays (a seed per algorithm unless given)."""
    seed = 1000 + ALGORITHMS.index(algorithm) if seed is None else seed
    graphs = sample_graphs(jax.random.key(seed), algorithm, n, count, edge_probabilities,
                           random_pos)
    return Graph(*(np.asarray(x) for x in graphs))


@functools.lru_cache(maxsize=None)
def dmclrs_random_pos(n: int = N, count: int = N_GRAPHS, seed: int = 20261) -> np.ndarray:
    """dm-clrs's pos after ``process_random_pos`` (as generate_chunk applies it) for ``count``
    graphs, stored as float32: a real bfs feedback's default pos rows, repeated to ``count``."""
    feedback = _dmclrs_sampler("bfs", n, seed, num_samples=4).next()
    pos, = [dp for dp in feedback.features.inputs if dp.name == "pos"]
    assert np.array_equal(pos.data, np.tile(np.arange(n) * 1.0 / n, (4, 1)))
    pos.data = np.tile(pos.data[:1], (count, 1))
    feedback = next(samplers.process_random_pos(iter([feedback]), np.random.RandomState(seed)))
    pos, = [dp for dp in feedback.features.inputs if dp.name == "pos"]
    return np.asarray(pos.data).astype(np.float32)


# --- statistics --------------------------------------------------------------------------------

def _merged_bins(counts: np.ndarray, min_count: float) -> list[np.ndarray]:
    """Adjacent bins (indices) merged left to right until each group's ``counts`` reach
    ``min_count``; a short last group joins the one before."""
    groups, current, total = [], [], 0.0
    for i, c in enumerate(counts):
        current.append(i)
        total += c
        if total >= min_count:
            groups.append(np.array(current))
            current, total = [], 0.0
    if current:
        if groups:
            groups[-1] = np.concatenate([groups[-1], current])
        else:
            groups.append(np.array(current))
    return groups


def chi2_two_sample(a, b, bins: int) -> float:
    """p-value of the chi-square test that integer samples ``a`` and ``b`` (values in
    [0, bins)) share one distribution; sparse bins merged so each pooled group has >= 20."""
    ca, cb = np.bincount(a, minlength=bins), np.bincount(b, minlength=bins)
    groups = _merged_bins(ca + cb, 20)
    if len(groups) < 2:
        return 1.0
    table = np.array([[ca[g].sum() for g in groups], [cb[g].sum() for g in groups]])
    return stats.chi2_contingency(table, correction=False).pvalue


def chi2_goodness(a, pmf: np.ndarray) -> float:
    """p-value of the chi-square test that integer sample ``a`` follows ``pmf`` (bins merged so
    each has an expected count >= 5)."""
    expected = pmf / pmf.sum() * len(a)
    observed = np.bincount(a, minlength=len(pmf))
    assert len(observed) == len(pmf), "values outside the pmf's support"
    groups = _merged_bins(expected, 5)
    return stats.chisquare([observed[g].sum() for g in groups],
                           [expected[g].sum() for g in groups]).pvalue


def density(A) -> np.ndarray:
    """Per graph, the fraction of the n² entries that are edges (self-loops included)."""
    return (A != 0).mean(axis=(-2, -1))


def node0_degree(E, direction: str = "out") -> np.ndarray:
    """Per graph, node 0's out- (row) or in- (column) degree in edge masks E [count, n, n]."""
    return (E[:, 0, :] if direction == "out" else E[:, :, 0]).sum(-1)


def mixture_binomial_pmf(trials: int, probabilities) -> np.ndarray:
    """pmf over 0..trials of Binomial(trials, p) with p uniform over ``probabilities``."""
    k = np.arange(trials + 1)
    return np.mean([stats.binom.pmf(k, trials, p) for p in probabilities], axis=0)


# --- dm-clrs's side is what make_sampler produces -------------------------------------------------

@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_dmclrs_draws_are_make_samplers_graphs(algorithm):
    """The sampler's ``_sample_data`` loop (used for the big samples here) gives exactly the graphs
    and sources of ``make_sampler(algorithm, ...).next()`` with the same seed; the variants' sampler
    is their parent's class."""
    parent = PARENT_ALGORITHM[algorithm]
    assert generate._ALGORITHMS[algorithm][0] is generate._ALGORITHMS[parent][0]
    count, seed = 64, 77
    feedback = _dmclrs_sampler(algorithm, N, seed, num_samples=count).next()
    inputs = {dp.name: np.asarray(dp.data) for dp in feedback.features.inputs}
    A, s = _draw_dmclrs(_dmclrs_sampler(parent, N, seed), count)
    np.testing.assert_array_equal(inputs["A"], A)
    if GRAPH_KINDS[algorithm].has_source:
        np.testing.assert_array_equal(inputs["s"], np.eye(N)[s])
    else:
        assert s is None and "s" not in inputs
    np.testing.assert_array_equal(inputs["pos"].astype(np.float32), np.tile(default_pos(N), (count, 1)))


# --- distribution tests ----------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_edge_density_per_graph(algorithm):
    p = stats.ks_2samp(density(jax_graphs(algorithm).A), density(dmclrs_graphs(algorithm)[0])).pvalue
    assert p > ALPHA, p


@pytest.mark.parametrize("algorithm", ["bfs", "dfs"])   # bellman_ford's edges are bfs's
def test_edge_density_per_graph_n64(algorithm):
    ours = jax_graphs(algorithm, n=64)
    theirs, _ = dmclrs_graphs(algorithm, n=64)
    p = stats.ks_2samp(density(ours.A), density(theirs)).pvalue
    assert p > ALPHA, p


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_degree_histogram(algorithm):
    """Node 0's out-degree (and in-degree for directed graphs), self-loop counted, one per graph:
    a chi-square on the pooled histograms (every node has the same law: node 0 stands for all)."""
    ours, theirs = jax_graphs(algorithm).A != 0, dmclrs_graphs(algorithm)[0] != 0
    for direction in (("out", "in") if GRAPH_KINDS[algorithm].directed else ("out",)):
        p = chi2_two_sample(node0_degree(ours, direction), node0_degree(theirs, direction), N + 1)
        assert p > ALPHA, (direction, p)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_self_loops(algorithm):
    """Self-loops per graph: the same law on both sides, and (both sides) the law dm-clrs's code
    implies: Binomial(n, p), p uniform over run.py's set (mat *= mat.T keeps the diagonal's p)."""
    ours = np.diagonal(jax_graphs(algorithm).A != 0, axis1=1, axis2=2).sum(-1)
    theirs = np.diagonal(dmclrs_graphs(algorithm)[0] != 0, axis1=1, axis2=2).sum(-1)
    p = chi2_two_sample(ours, theirs, N + 1)
    assert p > ALPHA, p
    pmf = mixture_binomial_pmf(N, P)
    for name, sample in (("jax", ours), ("dm-clrs", theirs)):
        p = chi2_goodness(sample, pmf)
        assert p > ALPHA, (name, p)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_symmetry(algorithm):
    """Undirected kinds are exactly symmetric (as dm-clrs's); directed ones are not forced to be:
    their asymmetric-pair counts per graph match dm-clrs's."""
    ours, theirs = jax_graphs(algorithm).A, dmclrs_graphs(algorithm)[0]
    if not GRAPH_KINDS[algorithm].directed:
        assert np.array_equal(ours, np.swapaxes(ours, 1, 2))
        assert np.array_equal(theirs, np.swapaxes(theirs, 1, 2))
        return
    upper = np.triu_indices(N, 1)

    def asymmetric(A):
        E = A != 0
        return (E != np.swapaxes(E, 1, 2))[:, upper[0], upper[1]].sum(-1)

    assert (asymmetric(ours) > 0).mean() > 0.9
    p = stats.ks_2samp(asymmetric(ours), asymmetric(theirs)).pvalue
    assert p > ALPHA, p


def _edge_weights(A):
    """Bellman-Ford weights on edges: (off-diagonal ones above the diagonal, self-loop ones)."""
    upper = np.triu_indices(A.shape[-1], 1)
    off = A[:, upper[0], upper[1]]
    diagonal = np.diagonal(A, axis1=1, axis2=2)
    return off[off != 0], diagonal[diagonal != 0]


def test_bellman_ford_weights():
    """Weights on edges (independent of the edges, in dm-clrs and here): the same law off the
    diagonal (sqrt(u1 u2 + 1e-3)) and on it (sqrt(u² + 1e-3)); within dm-clrs's bounds."""
    ours, theirs = jax_graphs("bellman_ford").A, dmclrs_graphs("bellman_ford")[0]
    for a, b, name in zip(_edge_weights(ours), _edge_weights(theirs), ("off-diagonal", "diagonal")):
        assert len(a) > 10_000 and len(b) > 10_000
        p = stats.ks_2samp(a, b).pvalue
        assert p > ALPHA, (name, p)
    edges = ours[ours != 0]
    lo, hi = np.float32(np.sqrt(WEIGHT_EPSILON)), np.float32(np.sqrt(1 + WEIGHT_EPSILON))
    assert edges.min() >= lo and edges.max() <= hi
    assert ours.dtype == np.float32


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_source(algorithm):
    ours, (_, theirs) = jax_graphs(algorithm).s, dmclrs_graphs(algorithm)
    assert ours.dtype == np.int32
    if not GRAPH_KINDS[algorithm].has_source:
        assert theirs is None and np.all(ours == 0)
        return
    uniform = np.full(N, 1.0 / N)
    for name, sample in (("jax", ours), ("dm-clrs", theirs)):
        p = chi2_goodness(sample, uniform)
        assert p > ALPHA, (name, p)
    p = chi2_two_sample(ours, theirs, N)
    assert p > ALPHA, p


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_random_pos(algorithm):
    """pos is ascending in [0, 1]; at every rank its law matches dm-clrs's process_random_pos
    (KS per rank, Bonferroni: ALPHA / n each)."""
    ours, theirs = jax_graphs(algorithm).pos, dmclrs_random_pos()
    assert ours.dtype == np.float32 and ours.shape == theirs.shape == (N_GRAPHS, N)
    assert np.all(np.diff(ours, axis=1) >= 0) and ours.min() >= 0 and ours.max() <= 1
    for rank in range(N):
        p = stats.ks_2samp(ours[:, rank], theirs[:, rank]).pvalue
        assert p > ALPHA / N, (rank, p)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_fixed_pos(algorithm):
    graphs = sample_graphs(jax.random.key(5), algorithm, N, SMALL, random_pos=False)
    expected = np.tile(default_pos(N), (SMALL, 1))
    assert graphs.pos.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(graphs.pos), expected)
    # the bits dm-clrs's float64 arange(n) * 1.0 / n stores as
    np.testing.assert_array_equal(expected[0], (np.arange(N) * 1.0 / N).astype(np.float32))


# --- the tests have power --------------------------------------------------------------------------

def test_wrong_edge_probabilities_are_rejected():
    """A sampler with p fixed at 0.5 (same mean density for directed graphs) is rejected by the
    density and degree tests."""
    for algorithm in ("bfs", "dfs"):
        wrong = jax_graphs(algorithm, seed=7, edge_probabilities=(0.5,)).A
        theirs = dmclrs_graphs(algorithm)[0]
        assert stats.ks_2samp(density(wrong), density(theirs)).pvalue < ALPHA
        assert chi2_two_sample(node0_degree(wrong != 0), node0_degree(theirs != 0), N + 1) < ALPHA


def test_other_mistakes_are_rejected():
    """An undirected graph where a directed one is due, weights without the square root, a source
    that never is the last node, and unsorted positions are each rejected."""
    theirs_dfs = dmclrs_graphs("dfs")[0]
    assert stats.ks_2samp(density(jax_graphs("bfs").A), density(theirs_dfs)).pvalue < ALPHA

    A = jax_graphs("bellman_ford").A
    squared = np.where(A != 0, A**2 - np.float32(WEIGHT_EPSILON), 0)
    off_wrong, _ = _edge_weights(squared)
    off_theirs, _ = _edge_weights(dmclrs_graphs("bellman_ford")[0])
    assert stats.ks_2samp(off_wrong, off_theirs).pvalue < ALPHA

    short_source = np.asarray(jax.random.randint(jax.random.key(3), (N_GRAPHS,), 0, N - 1))
    assert chi2_goodness(short_source, np.full(N, 1.0 / N)) < ALPHA
    assert chi2_two_sample(short_source, dmclrs_graphs("bfs")[1], N) < ALPHA

    unsorted = np.asarray(jax.random.uniform(jax.random.key(4), (N_GRAPHS, N)))
    theirs = dmclrs_random_pos()
    assert min(stats.ks_2samp(unsorted[:, r], theirs[:, r]).pvalue for r in range(N)) < ALPHA / N


# --- the JAX contract ------------------------------------------------------------------------------

def _equal(a: Graph, b: Graph) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


def test_unknown_algorithm_and_bad_arguments():
    key = jax.random.key(0)
    with pytest.raises(DataError, match=r"'dijkstra'.*bfs, bfs_seq, dfs, dfs_light, bellman_ford"):
        sample_graph(key, "dijkstra", N)
    with pytest.raises(DataError, match="'dijkstra'"):
        sample_graphs(key, "dijkstra", N, 4)
    with pytest.raises(DataError, match="size"):
        sample_graph(key, "bfs", 0)
    with pytest.raises(DataError, match="empty"):
        sample_graph(key, "bfs", N, edge_probabilities=())
    with pytest.raises(DataError, match="outside"):
        sample_graph(key, "bfs", N, edge_probabilities=(1.5,))
    with pytest.raises(DataError, match="count"):
        sample_graphs(key, "bfs", N, -1)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_shapes_and_dtypes(algorithm):
    g = sample_graph(jax.random.key(1), algorithm, N)
    assert g.A.shape == (N, N) and g.A.dtype == jnp.float32
    assert g.s.shape == () and g.s.dtype == jnp.int32
    assert g.pos.shape == (N,) and g.pos.dtype == jnp.float32
    gs = sample_graphs(jax.random.key(1), algorithm, N, SMALL)
    assert gs.A.shape == (SMALL, N, N) and gs.s.shape == (SMALL,) and gs.pos.shape == (SMALL, N)
    if not GRAPH_KINDS[algorithm].weighted:
        assert set(np.unique(np.asarray(gs.A))) <= {0.0, 1.0}
    if algorithm == "bfs":
        assert sample_graphs(jax.random.key(1), algorithm, N, 0).A.shape == (0, N, N)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_sample_graphs_is_sample_graph_on_folded_keys(algorithm):
    key = jax.random.key(42)
    graphs = sample_graphs(key, algorithm, N, SMALL)
    for i in range(SMALL):
        one = sample_graph(jax.random.fold_in(key, i), algorithm, N)
        assert _equal(Graph(*(x[i] for x in graphs)), one), i


def test_jit_vmap_and_keys():
    key = jax.random.key(9)
    direct = sample_graph(key, "bellman_ford", N)
    jitted = jax.jit(lambda k: sample_graph(k, "bellman_ford", N))(key)
    assert _equal(direct, jitted)
    assert _equal(direct, sample_graph(key, "bellman_ford", N))          # same key, same graph

    keys = jax.random.split(key, 8)
    batched = jax.jit(jax.vmap(lambda k: sample_graph(k, "dfs", N)))(keys)
    for i in range(8):
        assert _equal(Graph(*(x[i] for x in batched)), sample_graph(keys[i], "dfs", N))
    # different keys, different graphs (pairwise)
    flat = np.asarray(batched.A).reshape(8, -1)
    assert len({row.tobytes() for row in flat}) == 8
    assert len({row.tobytes() for row in np.asarray(batched.pos)}) == 8

    raw = jax.random.PRNGKey(9)                                           # legacy uint32 keys work
    assert _equal(sample_graph(raw, "bfs", N), jax.jit(lambda k: sample_graph(k, "bfs", N))(raw))
    assert not _equal(sample_graph(raw, "bfs", N), sample_graph(jax.random.PRNGKey(10), "bfs", N))


def test_variants_share_their_parents_graphs():
    """bfs_seq and dfs_light draw their parent's graph from the same key."""
    key = jax.random.key(13)
    for variant in ("bfs_seq", "dfs_light"):
        assert _equal(sample_graphs(key, variant, N, SMALL),
                      sample_graphs(key, PARENT_ALGORITHM[variant], N, SMALL))
