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

POSITIVE_INTEGER = "it must be a positive integer"
GRAPH_SIZES = "graph sizes must be integers >= 2"
GPUS = "give 0 (CPU only), a fraction in (0, 1] or a whole number of GPUs"
SEED_FORMS = ("a positive count (8 means seeds 0-7), a range A-B such as 0-7, "
              "or a list of distinct non-negative integers")
SEED_RANGE = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")


def is_integer(value: Any) -> bool:
    """An ``int`` that is not a ``bool`` (YAML's ``true`` is no count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_positive_integer(value: Any) -> bool:
    return is_integer(value) and value > 0


def is_graph_size(value: Any) -> bool:
    return is_integer(value) and value >= 2


def is_gpu_count(value: float) -> bool:
    """GPUs per task: 0 (CPU only), a fraction in (0, 1] (tasks share a card) or whole cards."""
    return math.isfinite(value) and value >= 0 and (value <= 1 or float(value).is_integer())


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
        if value <= 0:
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
        return tuple(range(first, last + 1))
    if isinstance(value, list):
        if not value:
            raise SeedsError(f"[] is empty; give {SEED_FORMS}")
        first_index: dict[int, int] = {}
        for index, seed in enumerate(value):
            if not is_integer(seed) or seed < 0:
                raise SeedsError(f"{show_value(seed)} is not allowed; seeds are non-negative integers",
                                 index)
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
