"""The probe table that travels with the data: plain strings, no dm-clrs import.

A probe table (dm-clrs calls it a spec) maps each probe name to where it lives in the
algorithm's dataflow, in dm-clrs's own vocabulary (``clrs.Stage``, ``clrs.Location``,
``clrs.Type`` are plain strings with these values), so the model can be generated from it
without importing dm-clrs or TensorFlow.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np

STAGES = ("input", "output", "hint")
LOCATIONS = ("node", "edge", "graph")
TYPES = ("scalar", "categorical", "mask", "mask_one", "pointer")


class ProbeSpec(NamedTuple):
    """One row of a probe table.

    ``num_classes`` is the number of classes for ``categorical`` probes (stored one-hot, as dm-clrs
    stores them) and the number of nodes for ``pointer`` probes (stored as integer node indices);
    ``None`` for scalars and masks.
    """

    stage: str
    location: str
    type: str
    num_classes: int | None = None


ProbeTable = Mapping[str, ProbeSpec]


def probe_table_to_json(probe_table: ProbeTable) -> dict[str, list]:
    return {name: list(row) for name, row in probe_table.items()}


def probe_table_from_json(raw: Mapping[str, list]) -> dict[str, ProbeSpec]:
    probe_table = {name: ProbeSpec(*row) for name, row in raw.items()}
    for name, row in probe_table.items():
        if row.stage not in STAGES or row.location not in LOCATIONS or row.type not in TYPES:
            raise ValueError(f"spec row {name!r} = {tuple(row)} is not a valid (stage, location, type)")
    return probe_table


def pointer_dtype(nb_nodes: int) -> np.dtype:
    """The smallest signed integer type that holds every node index of a graph of ``nb_nodes``."""
    for dtype in (np.int8, np.int16, np.int32):
        if nb_nodes - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def storage_dtype(probe_type: str, nb_nodes: int) -> np.dtype:
    """How a probe of this type is stored: pointers as integer indices, masks and one-hot categories
    as int8 (their values are 0, 1 or -1), scalars as float32 (what the model computes in)."""
    if probe_type == "pointer":
        return pointer_dtype(nb_nodes)
    if probe_type in ("mask", "mask_one", "categorical"):
        return np.dtype(np.int8)
    if probe_type == "scalar":
        return np.dtype(np.float32)
    raise ValueError(f"unknown probe type {probe_type!r}; known: {', '.join(TYPES)}")
