"""The network (Flax), its unrolled forward pass, losses, and the dm-clrs weight mapping."""

from __future__ import annotations

import dataclasses

from typing import Mapping

from workers.config import TrainConfig
from workers.data.probes import ProbeSpec
from workers.model.network import NetConfig


def net_config(config: TrainConfig, spec: Mapping[str, ProbeSpec]) -> NetConfig:
    """The network a training configuration builds for an algorithm's spec table: every NetConfig
    field of the same name is taken from the TrainConfig; the rest are derived."""
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(NetConfig)
              if f.name not in ("spec", "encode_hints", "decode_hints", "tied_size")}
    return NetConfig(spec=tuple((name, ProbeSpec(*row)) for name, row in spec.items()),
                     encode_hints=config.encode_hints, decode_hints=config.decode_hints,
                     tied_size=config.tied_size, **shared)
