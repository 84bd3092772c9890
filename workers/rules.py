"""The rules a value must follow, each written once and used wherever the value is read: the
sweep file (``orchestrator.spec``), the command line (``gapsweep.arguments``), the plan, the
training config and the data requests. A rule is a predicate and the phrase that says what is
allowed; each caller words its own message around them (which key, which file, which flag).

It imports only the error root: ``db``, ``orchestrator`` and ``gapsweep`` may all use it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from workers.errors import GapsweepError

# -- bounds: what a sweep may ask for (README "Sweeps"); each is checked before anything runs ----

MAX_SPEC_CHARACTERS = 1 << 18     # a sweep file's size (PyYAML composes ~90,000 characters/s on a 2-core EPYC)
MAX_YAML_NODES = 100_000          # values in a sweep file, each alias counted as often as it is used
MAX_YAML_DEPTH = 32               # lists and mappings nested in a sweep file
MAX_CONFIGURATIONS = 10_000       # configurations a sweep expands to (named × grid points)
MAX_RUNS = 1_000_000              # configurations × seeds
MAX_SEED = 2**32 - 1              # seeds are uint32 PRNG keys
MAX_GRAPH_SIZE = 1024             # nodes per graph (train lengths, test sizes)
MAX_TRAIN_LENGTHS = 32            # distinct train lengths (a data pool and a compilation each)
MAX_STEPS = 10_000_000            # train_steps, eval_every, test_every, --steps (paper: <= 50,000)
MAX_HIDDEN_SIZE = 4096            # hidden_size (paper: 128; compiled: 4)
MAX_BATCH_SIZE = 4096             # batch_size (paper: 32)
MAX_MSG_PASSING_STEPS = 64        # nb_msg_passing_steps (paper: 1)
MAX_POOL_SIZE = 1_000_000         # pool_size: graphs per train length (default at most 64,000)
MAX_LEARNING_RATE = 1.0           # learning_rate in (0, 1] (paper: 1e-4)
MAX_ATTEMPTS = 100                # max_attempts per task
MAX_STEPS_PER_DISPATCH = 1024     # training steps one compiled call runs (steps_per_dispatch)
MAX_CPUS = 1024                   # resources.cpus per task
MAX_GPUS = 64                     # resources.gpus per task
MAX_NAME_LENGTH = 160             # a sweep's name (the database keeps 200 characters, and
                                  # --steps appends '-steps<N>')
MAX_TEXT_LENGTH = 200             # experiment names and configuration labels (database columns)

# how the network computes layers that read edge features (workers/model/network.py); never what
EDGE_PATHS = ("auto", "low_rank", "materialised")
# which node pairs the processor's attention may join: "graph" (dm-clrs's gatv2: the node itself,
# graph edges and pointer edges, symmetrised) or "full" (dm-clrs's gatv2_full: every pair; the
# graph stays visible in the edge features). Not a training key: the DFS expressibility witness
# (workers/compile/dfs_light_witness.py) builds networks with it directly.
ATTENTION_SCOPES = ("graph", "full")

POSITIVE_INTEGER = "it must be a positive integer"
GRAPH_SIZES = f"graph sizes must be integers in [2, {MAX_GRAPH_SIZE:,}]"
GPUS = f"give 0 (CPU only), a fraction in (0, 1] or a whole number of GPUs up to {MAX_GPUS}"
CPUS = f"give a positive number of CPUs up to {MAX_CPUS}"
SEED_FORMS = (f"a positive count up to {MAX_RUNS:,} (8 means seeds 0-7), a range A-B such as 0-7, "
              f"or a list of distinct integers in [0, {MAX_SEED}]")
SEED_RANGE = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")


def integer_range(low: int, high: int) -> str:
    """What ``is_integer_in(value, low, high)`` allows, as a message says it."""
    return f"it must be an integer in [{low:,}, {high:,}]"


def is_integer_in(value: Any, low: int, high: int) -> bool:
    return is_integer(value) and low <= value <= high


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    """An ``int`` that is not a ``bool`` (YAML's ``true`` is no count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_positive_integer(value: Any) -> bool:
    return is_integer(value) and value > 0


def is_graph_size(value: Any) -> bool:
    return is_integer_in(value, 2, MAX_GRAPH_SIZE)


def is_gpu_count(value: float) -> bool:
    """GPUs per task: 0 (CPU only), a fraction in (0, 1] (tasks share a card) or whole cards, at
    most ``MAX_GPUS``."""
    return (is_finite_number(value) and 0 <= value <= MAX_GPUS
            and (value <= 1 or float(value).is_integer()))


def is_cpu_count(value: float) -> bool:
    return is_finite_number(value) and 0 < value <= MAX_CPUS


class SeedsError(GapsweepError, ValueError):
    """Seeds not in one of ``SEED_FORMS``; ``index`` is the offending list item's, if any."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


def show_value(value: Any) -> str:
    """A value as a message shows it: YAML spelling for scalars, repr otherwise, kept short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def seeds(value: Any) -> tuple[int, ...]:
    """The seeds a count (``8``: 0-7), a range (``"0-7"``) or a list (``[0, 5, 9]``) stands for;
    :class:`SeedsError` says what is wrong otherwise."""
    if is_integer(value):
        if not 0 < value <= MAX_RUNS:
            raise SeedsError(f"{value} is not allowed; give {SEED_FORMS}")
        return tuple(range(value))
    if isinstance(value, str):
        match = SEED_RANGE.fullmatch(value)
        if not match:
            raise SeedsError(f"{value!r} is not a seed range; give {SEED_FORMS}")
        first, last = int(match[1]), int(match[2])
        if first > last:
            raise SeedsError(f"{value!r} is not allowed; a range A-B needs A <= B, "
                             f"e.g. {last}-{first}")
        if last > MAX_SEED:
            raise SeedsError(f"{value!r} is not allowed; seeds are integers in [0, {MAX_SEED}]")
        if last - first + 1 > MAX_RUNS:
            raise SeedsError(f"{value!r} is {last - first + 1:,} seeds; at most {MAX_RUNS:,} "
                             "are allowed")
        return tuple(range(first, last + 1))
    if isinstance(value, list):
        if not value:
            raise SeedsError(f"[] is empty; give {SEED_FORMS}")
        if len(value) > MAX_RUNS:
            raise SeedsError(f"a list of {len(value):,} seeds is not allowed; at most {MAX_RUNS:,}")
        first_index: dict[int, int] = {}
        for index, seed in enumerate(value):
            if not is_integer_in(seed, 0, MAX_SEED):
                raise SeedsError(f"{show_value(seed)} is not allowed; seeds are integers in "
                                 f"[0, {MAX_SEED}]", index)
            if seed in first_index:
                raise SeedsError(f"{seed} is repeated (first at seeds[{first_index[seed]}]); "
                                 "seeds must be distinct", index)
            first_index[seed] = index
        return tuple(value)
    raise SeedsError(f"{show_value(value)} is not allowed; give {SEED_FORMS}")


LABEL_FORMS = ("a configuration's label, or a part of one that names it alone: a grid value "
               "(bfs for algorithm=bfs), a grid point (algorithm=bfs) or a named label (baseline)")


def label_parts(label: str) -> set[str]:
    """What can name a configuration label (``orchestrator.spec``'s form ``named/axis=value,…``):
    the label, each ``/`` part (the named label, the grid point), each ``axis=value`` and each
    value."""
    parts = {label}
    for segment in label.split("/"):
        parts.add(segment)
        for item in segment.split(","):
            parts.add(item)
            if "=" in item:
                parts.add(item.split("=", 1)[1])
    return parts


def labels_named_by(value: str, labels: list[str] | tuple[str, ...]) -> list[str]:
    """The labels ``value`` names: the one equal to it if there is one, else every label that has
    it as a part (``label_parts``): ``bfs`` names ``algorithm=bfs``, not ``algorithm=bellman_ford``.
    One label is an answer; none or several are for the caller to word (with ``LABEL_FORMS``)."""
    if value in labels:
        return [value]
    return [label for label in labels if value in label_parts(label)]
