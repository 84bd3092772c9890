"""What data to build: algorithms, splits and their defaults, validated, with a stable cache key.

Nothing here imports dm-clrs: a request can be made, checked and looked up in the cache anywhere.
The defaults follow dm-clrs's ``examples/run.py`` pipeline (see each split below).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

from workers import rules
from workers.errors import GapsweepError

# The algorithms the paper trains on. The two variants are the paper's own (Table 2); each shares
# its parent's inputs, outputs and graph distribution.
ALGORITHMS: dict[str, str] = {
    "bfs": "breadth-first search (dm-clrs)",
    "dfs": "depth-first search (dm-clrs)",
    "bellman_ford": "Bellman-Ford shortest paths (dm-clrs)",
    "bfs_seq": "sequential BFS: bfs with one hint step per examined edge (paper Table 2)",
    "dfs_light": "simplified DFS: dfs with only the pi_h and color hints (paper Table 2)",
}
PARENT_ALGORITHM = {"bfs": "bfs", "dfs": "dfs", "bellman_ford": "bellman_ford",
                    "bfs_seq": "bfs", "dfs_light": "dfs"}

SPLITS = ("train", "val", "test")

# run.py draws each graph's edge probability from these (create_samplers: 0.1 + 0.1 * i, i < 9).
RUN_PY_EDGE_PROBABILITIES: tuple[float, ...] = tuple(0.1 + 0.1 * i for i in range(9))
# The samplers' own default, which the CLRS-30 test split uses (its sampler gets no `p`).
SAMPLER_DEFAULT_EDGE_PROBABILITIES: tuple[float, ...] = (0.5,)

DEFAULT_TRAIN_LENGTHS = (4, 7, 11, 13, 16)
CLRS30_TEST = {"size": 64, "count": 32, "seed": 3}   # clrs.CLRS30['test'], multiplier 1 here
VAL_COUNT = 64                                       # run.py: CLRS30 val num_samples (32) × 2
VAL_SEED = 2                                         # clrs.CLRS30['val']['seed']
TRAIN_SEED = 1                                       # clrs.CLRS30['train']['seed']

# Training batches come from a pool per (algorithm, length): by default large enough that a
# 10,000-step run at batch 32, cycling over the 5 train lengths as run.py does, sees each graph once.
DEFAULT_TRAIN_STEPS = 10_000
DEFAULT_BATCH_SIZE = 32

# Pools are generated in fixed-size chunks, each seeded from (seed, size, chunk index), so the
# data does not depend on how many processes built it. Changing this changes the data: it is part
# of the cache key.
CHUNK_SIZE = 512

# Bump when the generated arrays change for the same request (layout, dtypes, variant semantics).
DATA_FORMAT_VERSION = 1


class DataError(GapsweepError, ValueError):
    """Bad input to the data layer; the message says which value and what is allowed."""


def available_cores() -> int:
    """Cores this process may run on (the default number of generating processes)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_pool_size(train_lengths=DEFAULT_TRAIN_LENGTHS, train_steps: int = DEFAULT_TRAIN_STEPS,
                      batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Graphs per train length so that a run sees each pooled graph about once."""
    nb_lengths = max(1, len(tuple(train_lengths)))
    return -(-train_steps * batch_size // nb_lengths)


def check_algorithm(algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise DataError(f"unknown algorithm {algorithm!r}; allowed: {', '.join(ALGORITHMS)}")
    return algorithm


def check_train_lengths(lengths) -> tuple[int, ...]:
    lengths = tuple(lengths)
    if not lengths:
        raise DataError("train lengths are empty; give at least one graph size >= 2")
    for n in lengths:
        if not rules.is_graph_size(n):
            raise DataError(f"train length {n!r} is not allowed; {rules.GRAPH_SIZES}")
    return lengths


@dataclasses.dataclass(frozen=True)
class SplitRequest:
    """One array set: an algorithm's split at one graph size. Build with :func:`make_request`."""

    algorithm: str
    split: str
    size: int
    count: int
    seed: int
    edge_probabilities: tuple[float, ...]
    random_pos: bool

    def key(self, dmclrs_version: str) -> dict[str, Any]:
        """Everything the generated arrays depend on."""
        key = dataclasses.asdict(self)
        key["edge_probabilities"] = [round(p, 12) for p in self.edge_probabilities]
        key.update(format=DATA_FORMAT_VERSION, dmclrs=dmclrs_version,
                   chunk_size=None if self.exact_clrs_recipe else CHUNK_SIZE)
        return key

    def key_hash(self, dmclrs_version: str) -> str:
        canonical = json.dumps(self.key(dmclrs_version), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def exact_clrs_recipe(self) -> bool:
        """Test splits are regenerated exactly as dm-clrs's dataset builder makes them: one sampler
        seeded with ``seed``, all samples drawn at once, fixed positions."""
        return self.split == "test"

    @property
    def label(self) -> str:
        return f"{self.algorithm}/{self.split} n={self.size} ×{self.count} seed={self.seed}"


def make_request(algorithm: str, split: str, size: int | None = None, count: int | None = None,
                 seed: int | None = None, random_pos: bool | None = None) -> SplitRequest:
    """A validated request with run.py's defaults filled in.

    - ``test``: CLRS-30's test split, n = 64, 32 graphs, seed 3, edge probability 0.5, fixed
      positions. Other sizes (e.g. n = 16 for ``length_generalize: false``) use the same recipe.
    - ``val``: n = max(train lengths) (default 16), 64 graphs, random positions, p ∈ {0.1, …, 0.9}.
    - ``train``: a pool at one train length, p ∈ {0.1, …, 0.9}, random positions; ``count`` defaults
      to :func:`default_pool_size`.

    ``random_pos`` (train and val only; a training configuration's ``random_pos``, as dm-clrs's
    run.py applies its flag to the train and validation samplers): ``False`` keeps dm-clrs's
    fixed positions ``j / n``.
    """
    check_algorithm(algorithm)
    if random_pos is not None and split == "test":
        raise DataError("random_pos applies to the train and val splits; the test split always "
                        "has fixed positions")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if split == "test":
        size = CLRS30_TEST["size"] if size is None else size
        count = CLRS30_TEST["count"] if count is None else count
        seed = CLRS30_TEST["seed"] if seed is None else seed
        probabilities, random_pos = SAMPLER_DEFAULT_EDGE_PROBABILITIES, False
    elif split == "val":
        size = max(DEFAULT_TRAIN_LENGTHS) if size is None else size
        count = VAL_COUNT if count is None else count
        seed = VAL_SEED if seed is None else seed
        probabilities = RUN_PY_EDGE_PROBABILITIES
    else:
        if size is None:
            raise DataError("a train split needs a size: one of the train lengths, e.g. 16")
        count = default_pool_size() if count is None else count
        seed = TRAIN_SEED if seed is None else seed
        probabilities = RUN_PY_EDGE_PROBABILITIES
    if split != "test":
        random_pos = True if random_pos is None else bool(random_pos)
    if not rules.is_graph_size(size):
        raise DataError(f"graph size {size!r} for {algorithm}/{split} is not allowed; "
                        f"{rules.GRAPH_SIZES}")
    if not rules.is_integer_in(count, 1, rules.MAX_POOL_SIZE):
        what = "pool size" if split == "train" else "sample count"
        raise DataError(f"{what} {count!r} for {algorithm}/{split} is not allowed; "
                        f"{rules.integer_range(1, rules.MAX_POOL_SIZE)}")
    if not rules.is_integer_in(seed, 0, rules.MAX_SEED):
        raise DataError(f"data seed {seed!r} is not allowed; "
                        f"{rules.integer_range(0, rules.MAX_SEED)}")
    return SplitRequest(algorithm, split, size, count, seed, probabilities, random_pos)


def experiment_requests(algorithm: str, train_lengths=DEFAULT_TRAIN_LENGTHS,
                        pool_size: int | None = None, test_sizes=(CLRS30_TEST["size"],),
                        splits=SPLITS) -> list[SplitRequest]:
    """Every array set one training configuration needs: a pool per train length, the validation
    split at the largest train length and the test split at each test size."""
    check_algorithm(algorithm)
    lengths = check_train_lengths(train_lengths)
    requests = []
    if "train" in splits:
        requests += [make_request(algorithm, "train", n, pool_size) for n in lengths]
    if "val" in splits:
        requests.append(make_request(algorithm, "val", max(lengths)))
    if "test" in splits:
        requests += [make_request(algorithm, "test", n) for n in test_sizes]
    return requests
