"""The network (Flax), its unrolled forward pass, losses, and the dm-clrs weight mapping."""

from __future__ import annotations

from typing import Mapping

from workers.config import TrainConfig
from workers.data.probes import ProbeSpec
from workers.model.network import NetConfig


def net_config(config: TrainConfig, spec: Mapping[str, ProbeSpec]) -> NetConfig:
    """The network a training configuration builds for an algorithm's spec table."""
    return NetConfig(
        spec=tuple((name, ProbeSpec(*row)) for name, row in spec.items()),
        hidden_size=config.hidden_size,
        nb_heads=config.nb_heads,
        nb_msg_passing_steps=config.nb_msg_passing_steps,
        use_ln=config.use_ln,
        encode_hints=config.encode_hints,
        decode_hints=config.decode_hints,
        encoder_init=config.encoder_init,
        dropout_prob=config.dropout_prob,
        hint_teacher_forcing=config.hint_teacher_forcing,
        use_edge_info=config.use_edge_info,
        use_pre_att_bias=config.use_pre_att_bias,
        simplify_decoders=config.simplify_decoders,
        tied_size=config.tied_size,
    )
