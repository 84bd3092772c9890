"""The network (Flax), its unrolled forward pass, losses, and the dm-clrs weight mapping."""

from __future__ import annotations

import dataclasses

from typing import Mapping

from workers.config import TrainConfig
from workers.data.probes import ProbeSpec
from workers.model.network import NetConfig


def make_net_config(config: TrainConfig, probe_table: Mapping[str, ProbeSpec],
                    edge_path: str = "auto") -> NetConfig:
    """The network a training configuration builds for an algorithm's probe table: every NetConfig
    field of the same name is taken from the TrainConfig; the rest are derived. ``edge_path``
    (``workers.rules.EDGE_PATHS``) changes how, never what, the network computes, so it is
    not a training setting: ``auto`` takes the low-rank edge path where it saves work."""
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(NetConfig)
              if f.name not in ("probe_rows", "encode_hints", "decode_hints", "tied_size",
                                "edge_path", "attention")}
    return NetConfig(probe_rows=tuple((name, ProbeSpec(*row)) for name, row in probe_table.items()),
                     encode_hints=config.encode_hints, decode_hints=config.decode_hints,
                     tied_size=config.tied_size, edge_path=edge_path, **shared)
