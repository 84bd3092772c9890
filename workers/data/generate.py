"""Generate SplitData with dm-clrs's samplers (CPU side only: importing this imports dm-clrs and
with it TensorFlow; training code reads the cache instead).

Test splits are drawn exactly as dm-clrs's dataset builder draws them (one sampler seeded with the
split's seed, every sample at once, fixed positions). Train pools and validation splits follow
``examples/run.py`` (edge probability drawn per graph from 0.1…0.9, randomised positions through
``clrs.process_random_pos``), in chunks of ``CHUNK_SIZE`` graphs whose seeds derive from
(seed, size, chunk index), so the result is the same whether one process or many built it.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import logging
import os
import sys
import threading
from typing import Callable

import numpy as np



@contextlib.contextmanager
def _native_stderr_silenced():
    """dm-clrs imports TensorFlow, whose C++ start-up notes (oneDNN, no CUDA) bypass Python logging
    and every environment switch: hide file descriptor 2 while it loads. Python errors still raise."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with _native_stderr_silenced():
    from clrs._src import algorithms as clrs_algorithms
    from clrs._src import samplers, specs

    from workers.data.variants import BFS_SEQ_SPEC, DFS_LIGHT_SPEC, bfs_seq, dfs_light
from workers.data.probes import ProbeSpec, storage_dtype  # noqa: E402
from workers.data.requests import CHUNK_SIZE, SplitRequest  # noqa: E402
from workers.data.split_data import SplitData  # noqa: E402
from workers.processes import SPAWN_WITHOUT_SIGINT, kill_workers  # noqa: E402

log = logging.getLogger(__name__)

# algorithm -> (sampler class, algorithm function, dm-clrs spec)
_ALGORITHMS = {
    "bfs": (samplers.BfsSampler, clrs_algorithms.bfs, specs.SPECS["bfs"]),
    "dfs": (samplers.DfsSampler, clrs_algorithms.dfs, specs.SPECS["dfs"]),
    "bellman_ford": (samplers.BellmanFordSampler, clrs_algorithms.bellman_ford,
                     specs.SPECS["bellman_ford"]),
    "bfs_seq": (samplers.BfsSampler, bfs_seq, BFS_SEQ_SPEC),
    "dfs_light": (samplers.DfsSampler, dfs_light, DFS_LIGHT_SPEC),
}
# run.py's permutation and pred-as-input rewrites touch only these; none of our algorithms has them.
_REWRITTEN_TYPES = {specs.Type.SHOULD_BE_PERMUTATION, specs.Type.PERMUTATION_POINTER}
for _name, (_, _, _spec) in _ALGORITHMS.items():
    assert not any(row[2] in _REWRITTEN_TYPES for row in _spec.values()) and "pred_h" not in _spec


def make_sampler(algorithm: str, num_samples: int, length: int, seed: int,
                 edge_probabilities) -> samplers.Sampler:
    """A dm-clrs sampler drawing ``num_samples`` graphs of ``length`` nodes at construction."""
    sampler_class, algorithm_fn, spec = _ALGORITHMS[algorithm]
    return sampler_class(algorithm_fn, spec, num_samples, seed=seed, length=length,
                         p=tuple(edge_probabilities))


def chunk_plan(request: SplitRequest) -> list[int]:
    """The graph count of each chunk the request is generated in."""
    if request.exact_clrs_recipe:
        return [request.count]
    full, rest = divmod(request.count, CHUNK_SIZE)
    return [CHUNK_SIZE] * full + ([rest] if rest else [])


def chunk_rng(request: SplitRequest, index: int) -> np.random.RandomState:
    state = np.random.SeedSequence([request.seed, request.size, index]).generate_state(1)[0]
    return np.random.RandomState(int(state))


def generate_chunk(request: SplitRequest, index: int, count: int) -> SplitData:
    """Chunk ``index`` of a request as SplitData (hints padded to the chunk's longest trace)."""
    if request.exact_clrs_recipe:
        sampler = make_sampler(request.algorithm, count, request.size, request.seed,
                               request.edge_probabilities)
        feedback = sampler.next()
    else:
        rng = chunk_rng(request, index)
        sampler = make_sampler(request.algorithm, count, request.size, rng.randint(2**32),
                               request.edge_probabilities)
        feedback = sampler.next()
        if request.random_pos:
            feedback = next(samplers.process_random_pos(iter([feedback]), rng))
    return feedback_to_split(request, feedback)


def feedback_to_split(request: SplitRequest, feedback: samplers.Feedback) -> SplitData:
    """dm-clrs's Feedback → SplitData in storage dtypes, checking that nothing is lost."""
    spec_rows = _ALGORITHMS[request.algorithm][2]
    n = request.size
    groups: dict[str, dict[str, np.ndarray]] = {"input": {}, "hint": {}, "output": {}}
    probe_table: dict[str, ProbeSpec] = {}
    for stage, points in (("input", feedback.features.inputs), ("hint", feedback.features.hints),
                          ("output", feedback.outputs)):
        for dp in points:
            stage_, location, type_ = spec_rows[dp.name]
            assert stage_ == stage, (dp.name, stage_, stage)
            array = np.asarray(dp.data)
            stored = array.astype(storage_dtype(type_, n))
            if type_ != "scalar" and not np.array_equal(stored, array):
                raise AssertionError(f"{request.label}: {dp.name} does not fit {stored.dtype}")
            groups[stage][dp.name] = stored
            classes = n if type_ == "pointer" else array.shape[-1] if type_ == "categorical" else None
            probe_table[dp.name] = ProbeSpec(stage, location, type_, classes)
    lengths = np.asarray(feedback.features.lengths)
    assert np.array_equal(lengths, lengths.astype(np.int32))
    return SplitData(request.algorithm, request.split, n, groups["input"], groups["hint"],
                     groups["output"], lengths.astype(np.int32), probe_table)


def concatenate(parts: list[SplitData]) -> SplitData:
    """Join chunks along the batch axis, padding hints with zeros to the longest trace of all."""
    first = parts[0]
    steps = max(p.max_length for p in parts)

    def pad(array):
        return np.pad(array, [(0, steps - array.shape[0])] + [(0, 0)] * (array.ndim - 1))

    return SplitData(
        first.algorithm, first.split, first.size,
        {k: np.concatenate([p.inputs[k] for p in parts]) for k in first.inputs},
        {k: np.concatenate([pad(p.hints[k]) for p in parts], axis=1) for k in first.hints},
        {k: np.concatenate([p.outputs[k] for p in parts]) for k in first.outputs},
        np.concatenate([p.lengths for p in parts]),
        first.probe_table,
    )


def _worker_init() -> None:
    logging.getLogger("absl").setLevel(logging.ERROR)


_pools: dict[int, concurrent.futures.ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def _process_pool(processes: int) -> concurrent.futures.ProcessPoolExecutor:
    """One spawned pool per size, kept for a batch of fetches (``stop_generation_workers``): each
    worker pays dm-clrs's (TensorFlow's) import once, not once per split. Its workers never see
    Ctrl-C (``workers.processes``): the parent stops them."""
    with _pools_lock:
        pool = _pools.get(processes)
        if pool is None:
            pool = _pools[processes] = concurrent.futures.ProcessPoolExecutor(
                processes, mp_context=SPAWN_WITHOUT_SIGINT, initializer=_worker_init)
        return pool


def _discard_pool(processes: int) -> None:
    """Stop a pool's workers now (Ctrl-C, an error): they only compute, the parent writes the
    cache, so killing them leaves nothing half-written; the pool is not reused."""
    with _pools_lock:
        pool = _pools.pop(processes, None)
    if pool is not None:
        kill_workers(pool)


@atexit.register
def shutdown_pools() -> None:
    """Stop every pool's workers (idle between fetches: nothing is lost)."""
    for processes in list(_pools):
        _discard_pool(processes)


def generate(request: SplitRequest, processes: int = 1,
             progress: Callable[[int], None] | None = None) -> SplitData:
    """Generate a whole request. ``processes`` > 1 spreads chunks over that many processes (spawned,
    so TensorFlow's threads are never forked); ``progress(k)`` is called as k more graphs are done."""
    plan = chunk_plan(request)
    processes = max(1, min(processes, len(plan)))
    log.info("generating %s in %d chunk(s) on %d process(es)", request.label, len(plan), processes)
    parts: list[SplitData | None] = [None] * len(plan)
    if processes == 1:
        for index, count in enumerate(plan):
            parts[index] = generate_chunk(request, index, count)
            if progress:
                progress(count)
    else:
        pool = _process_pool(processes)
        futures = {pool.submit(generate_chunk, request, index, count): index
                   for index, count in enumerate(plan)}
        try:
            for future in concurrent.futures.as_completed(futures):
                index = futures[future]
                parts[index] = future.result()
                if progress:
                    progress(plan[index])
        except BaseException:
            _discard_pool(processes)       # its futures fail as the pool breaks: never cancelled
            raise
    data = concatenate(parts) if len(parts) > 1 else parts[0]
    data.validate()
    return data


def split_of_graphs(algorithm: str, graphs, split: str = "test") -> SplitData:
    """dm-clrs's algorithm run on given graphs instead of sampled ones: ``graphs`` is a list of
    ``_sample_data`` results (for bfs and bellman_ford ``[adjacency or weight matrix, source]``),
    all of one size, in order; fixed positions, as a test split has. For exhaustive checks
    (every graph of a small size), with dm-clrs's own probes and trace lengths."""
    from workers.data.requests import make_request

    graphs = list(graphs)
    if not graphs:
        raise ValueError("no graphs given")
    size = int(np.asarray(graphs[0][0]).shape[0])
    sampler_class, algorithm_fn, spec = _ALGORITHMS[algorithm]
    given = iter(graphs)

    class GivenGraphs(sampler_class):
        def _sample_data(self, length, *args, **kwargs):
            graph = next(given)
            if np.asarray(graph[0]).shape != (length, length):
                raise ValueError(f"a graph of shape {np.asarray(graph[0]).shape} among graphs "
                                 f"of {length} nodes")
            return list(graph)

    with _native_stderr_silenced():
        sampler = GivenGraphs(algorithm_fn, spec, len(graphs), seed=0, length=size)
    request = make_request(algorithm, split, size, len(graphs), 0)
    data = feedback_to_split(request, sampler.next())
    data.validate()
    return data


def every_undirected_graph(n: int) -> np.ndarray:
    """Every symmetric 0/1 adjacency matrix on ``n`` nodes, self-loops included (everything
    dm-clrs's undirected Erdős–Rényi sampler can draw): 2^(n(n+1)/2) of them, [G, n, n]."""
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    bits = (np.arange(2 ** len(pairs))[:, None] >> np.arange(len(pairs))) & 1
    graphs = np.zeros((len(bits), n, n))
    for k, (i, j) in enumerate(pairs):
        graphs[:, i, j] = graphs[:, j, i] = bits[:, k]
    return graphs


def sampler_weights(adjacency: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bellman-Ford weights on ``adjacency`` ([G, n, n]) as dm-clrs's undirected weighted sampler
    draws them (``_random_er_graph``: uniform [0, 1), symmetrised as sqrt(w·wᵀ + 10⁻³))."""
    w = rng.uniform(0, 1, adjacency.shape)
    return adjacency * np.sqrt(w * np.swapaxes(w, -1, -2) + 1e-3)
