"""Published numbers from other papers, beside ours (``paper/published_anchors.yaml``).

    anchors = load_anchors()                      # validated, in file order
    anchors_for(anchors, "bfs", 64)               # what to show beside a BFS row tested at n = 64

Each anchor keeps the paper's own number and error convention and says it in ours: a standard
error of the mean becomes the seeds' std (s.e.m. × √seeds), so a reader compares spreads with
spreads. Only numbers checked against their source belong in the file (its header says how).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import yaml

from workers.data.requests import ALGORITHMS
from workers.errors import GapsweepError

ANCHORS_PATH = Path(__file__).parent / "paper" / "published_anchors.yaml"
ERROR_KINDS = ("sem", "std")
_KEYS = ("source", "model", "algorithm", "test", "mean", "error", "error_kind", "seeds", "checked")


class AnchorError(GapsweepError, ValueError):
    """A malformed anchors file; the message says which entry, which key and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Anchor:
    """One published cell: mean ± error over ``seeds`` seeds, in percent, as printed."""

    source: str
    model: str
    algorithm: str
    test: int
    mean_pct: float
    error_pct: float
    error_kind: str                      # "sem" or "std", the paper's convention
    seeds: int
    checked: str

    @property
    def std_pct(self) -> float:
        """The spread of the paper's seeds in our convention (sample std over seeds)."""
        return self.error_pct * math.sqrt(self.seeds) if self.error_kind == "sem" else self.error_pct

    @property
    def label(self) -> str:
        converted = (f"s.e.m. {self.error_pct:g} × √{self.seeds}" if self.error_kind == "sem"
                     else "std as printed")
        return (f"{self.model} ({self.source}): {self.mean_pct:.2f} ± {self.std_pct:.2f} "
                f"({converted}; {self.seeds} seeds, n = {self.test})")


def _entry(index: int, raw) -> Anchor:
    where = f"anchors[{index}]"
    if not isinstance(raw, dict):
        raise AnchorError(f"{where}: {raw!r} is not a mapping of {', '.join(_KEYS)}")
    missing = [k for k in _KEYS if k not in raw]
    unknown = [k for k in raw if k not in _KEYS]
    if missing or unknown:
        raise AnchorError(f"{where}: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else [])
            + ([f"unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(_KEYS)}"]
               if unknown else [])))
    for key in ("source", "model", "checked"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise AnchorError(f"{where}.{key}: {raw[key]!r} is not allowed; give non-empty text")
    if raw["algorithm"] not in ALGORITHMS:
        raise AnchorError(f"{where}.algorithm: {raw['algorithm']!r} is not allowed; one of "
                          f"{', '.join(ALGORITHMS)}")
    if raw["error_kind"] not in ERROR_KINDS:
        raise AnchorError(f"{where}.error_kind: {raw['error_kind']!r} is not allowed; one of "
                          f"{', '.join(ERROR_KINDS)}")
    for key, low, high in (("mean", 0.0, 100.0), ("error", 0.0, 100.0)):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise AnchorError(f"{where}.{key}: {value!r} is not allowed; a percentage in "
                              f"[{low:g}, {high:g}]")
    for key in ("test", "seeds"):
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise AnchorError(f"{where}.{key}: {value!r} is not allowed; a positive integer")
    return Anchor(raw["source"], raw["model"], raw["algorithm"], raw["test"], float(raw["mean"]),
                  float(raw["error"]), raw["error_kind"], raw["seeds"], raw["checked"])


def load_anchors(path: str | Path = ANCHORS_PATH) -> tuple[Anchor, ...]:
    """Every anchor of the file, validated, in file order."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise AnchorError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("anchors"), list):
        raise AnchorError(f"{path}: expected a mapping with a list under 'anchors'")
    try:
        return tuple(_entry(i, raw) for i, raw in enumerate(document["anchors"]))
    except AnchorError as error:
        raise AnchorError(f"{path}: {error}") from None


def anchors_for(anchors, algorithm: str, test_size: int) -> tuple[Anchor, ...]:
    """The anchors of ``algorithm`` measured on test graphs of ``test_size`` nodes."""
    return tuple(a for a in anchors if a.algorithm == algorithm and a.test == test_size)
