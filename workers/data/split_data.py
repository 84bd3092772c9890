"""SplitData: one (algorithm, split, size) as plain NumPy arrays plus its probe table."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Mapping

import numpy as np

from workers.data.probes import ProbeSpec, probe_table_from_json, probe_table_to_json

_STAGE_PREFIX = {"input": "input__", "hint": "hint__", "output": "output__"}
_META_KEY = "__meta__"


@dataclasses.dataclass(frozen=True, eq=False)
class SplitData:
    """Inputs ``[B, …]``, hints ``[T, B, …]`` (time-major, zero-padded to the longest trace),
    outputs ``[B, …]`` and the true trace ``lengths`` ``[B]`` of one algorithm's split at one graph
    size. Pointers are integer node indices, categorical probes one-hot, as in dm-clrs."""

    algorithm: str
    split: str
    size: int
    inputs: Mapping[str, np.ndarray]
    hints: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]
    lengths: np.ndarray
    probe_table: Mapping[str, ProbeSpec]

    @property
    def num_graphs(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def max_length(self) -> int:
        """The padded length of the hint-time axis."""
        return int(next(iter(self.hints.values())).shape[0]) if self.hints else 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays().values())

    def take(self, indices, trim: bool = True) -> "SplitData":
        """The graphs at ``indices`` (in that order). With ``trim``, the hint-time axis is cut to the
        longest trace among them, so short batches do not pay for the pool's longest trace."""
        indices = np.asarray(indices)
        lengths = self.lengths[indices]
        steps = int(lengths.max()) if trim and len(indices) else self.max_length
        return dataclasses.replace(
            self,
            inputs={k: v[indices] for k, v in self.inputs.items()},
            hints={k: v[:steps, indices] for k, v in self.hints.items()},
            outputs={k: v[indices] for k, v in self.outputs.items()},
            lengths=lengths,
        )

    def as_batch(self) -> dict:
        """The dict the model's forward pass takes: {"inputs", "hints", "outputs", "lengths"}."""
        return {"inputs": dict(self.inputs), "hints": dict(self.hints),
                "outputs": dict(self.outputs), "lengths": self.lengths}

    # -- serialisation (flat arrays, no pickle) -------------------------------------------------

    def meta(self) -> dict:
        return {"algorithm": self.algorithm, "split": self.split, "size": self.size,
                "spec": probe_table_to_json(self.probe_table)}

    def arrays(self) -> dict[str, np.ndarray]:
        flat = {"lengths": self.lengths}
        for stage, group in (("input", self.inputs), ("hint", self.hints), ("output", self.outputs)):
            flat.update({_STAGE_PREFIX[stage] + name: array for name, array in group.items()})
        return flat

    @classmethod
    def from_arrays(cls, meta: Mapping, flat: Mapping[str, np.ndarray]) -> "SplitData":
        groups: dict[str, dict[str, np.ndarray]] = {stage: {} for stage in _STAGE_PREFIX}
        for key, array in flat.items():
            if key in ("lengths", _META_KEY):
                continue
            for stage, prefix in _STAGE_PREFIX.items():
                if key.startswith(prefix):
                    groups[stage][key[len(prefix):]] = array
                    break
            else:
                raise ValueError(f"unexpected array {key!r} in split data")
        probe_table = probe_table_from_json(meta["spec"])
        data = cls(meta["algorithm"], meta["split"], int(meta["size"]), groups["input"],
                   groups["hint"], groups["output"], np.asarray(flat["lengths"]), probe_table)
        data.validate()
        return data

    def save(self, path) -> None:
        """Write an ``.npz`` (uncompressed, no pickle) holding the arrays and the metadata."""
        with open(path, "wb") as fh:
            np.savez(fh, **self.arrays(), **{_META_KEY: np.array(json.dumps(self.meta()))})

    @classmethod
    def load(cls, path) -> "SplitData":
        with np.load(path, allow_pickle=False) as npz:
            flat = {key: npz[key] for key in npz.files}
        meta = json.loads(str(flat.pop(_META_KEY)))
        return cls.from_arrays(meta, flat)

    def content_hash(self) -> str:
        """sha256 over every array's name, dtype, shape and bytes, and the metadata: equal for equal
        data however the file was written."""
        digest = hashlib.sha256(json.dumps(self.meta(), sort_keys=True).encode())
        for key, array in sorted(self.arrays().items()):
            array = np.ascontiguousarray(array)
            digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def validate(self) -> None:
        """Check that arrays and probe table agree; raises ValueError naming the first mismatch."""
        names = {"input": set(self.inputs), "hint": set(self.hints), "output": set(self.outputs)}
        for name, row in self.probe_table.items():
            if name not in names[row.stage]:
                raise ValueError(f"{self.algorithm}/{self.split}: spec names {row.stage} {name!r}, "
                                 "which the data lacks")
        for stage, present in names.items():
            extra = present - {n for n, r in self.probe_table.items() if r.stage == stage}
            if extra:
                raise ValueError(f"{self.algorithm}/{self.split}: {stage} arrays {sorted(extra)} "
                                 "are not in the spec table")
        b, t = self.num_graphs, self.max_length
        for name, array in list(self.inputs.items()) + list(self.outputs.items()):
            if array.shape[:1] != (b,):
                raise ValueError(f"{name}: batch axis {array.shape[:1]} != ({b},)")
        for name, array in self.hints.items():
            if array.shape[:2] != (t, b):
                raise ValueError(f"hint {name}: leading axes {array.shape[:2]} != ({t}, {b})")
        if b and (self.lengths.min() < 1 or self.lengths.max() > max(t, 1)):
            raise ValueError(f"trace lengths outside [1, {t}]")
