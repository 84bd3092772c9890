"""The weight mapping between dm-clrs's BaselineModel (Haiku, ``processor_type: gatv2``) and this
project's network, used by the parity tests and to import dm-clrs checkpoints.

=====================================================================  ==========================
dm-clrs (Haiku module path, ``w`` / ``b``)                             here (``kernel`` / ``bias``)
=====================================================================  ==========================
``net/~_construct_encoders_decoders/algo_0_<probe>_enc_linear``        ``encoders/<probe>``
``…/algo_0_<probe>_enc_linear_1`` (edge pointers)                      ``encoders/<probe>_2``
``net/gatv2_aggr_clrs_processor/linear``   (m: values)                 ``processor/W_value``
``…/linear_1``                             (skip)                      ``processor/W_skip``
``…/linear_2``                             (w_1: sender j)             ``processor/W_p1``
``…/linear_3``                             (w_2: receiver i)           ``processor/W_p2``
``…/linear_4``                             (w_e: edge)                 ``processor/W_edge``
``…/linear_5``                             (w_g: graph)                ``processor/W_graph``
``…/linear_6`` … ``linear_{5+H}``          (a_heads)                   ``processor/a_0`` … ``a_{H-1}``
``…/layer_norm`` ``scale`` / ``offset``                                ``processor/ln`` ``scale`` / ``bias``
``…/algo_0_<probe>_dec_linear[_1,_2,_3]``  node pointer                ``decoders/<probe>/W_1, W_2, W_e, w_out``
``…/algo_0_<probe>_dec_linear``            node scalar/mask/categorical ``decoders/<probe>/W_1``
``…/algo_0_<probe>_dec_linear[_1]``        graph scalar/mask/categorical ``decoders/<probe>/W_n, W_g``
=====================================================================  ==========================
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from workers.model.network import NetConfig

_PROCESSOR = "net/gatv2_aggr_clrs_processor"
_ENCDEC = "net/~_construct_encoders_decoders"
_PROCESSOR_ORDER = ("W_value", "W_skip", "W_p1", "W_p2", "W_edge", "W_graph")


def _dense(haiku: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"kernel": np.asarray(haiku["w"]), "bias": np.asarray(haiku["b"])}


def _decoder_names(row) -> tuple[str, ...]:
    if row.location == "node" and row.type == "pointer":
        return ("W_1", "W_2", "W_e", "w_out")
    if row.location == "node":
        return ("W_1",)
    if row.location == "graph":
        return ("W_n", "W_g")
    raise NotImplementedError(f"no mapping for a {row.location} {row.type} decoder")


def from_dmclrs(net_config: NetConfig, haiku_params: Mapping[str, Mapping[str, np.ndarray]],
                algo_index: int = 0) -> dict:
    """dm-clrs BaselineModel parameters → this project's parameter pytree."""
    prefix = f"{_ENCDEC}/algo_{algo_index}_"
    processor = {name: _dense(haiku_params[f"{_PROCESSOR}/linear" + (f"_{i}" if i else "")])
                 for i, name in enumerate(_PROCESSOR_ORDER)}
    for k in range(net_config.nb_heads):
        processor[f"a_{k}"] = _dense(haiku_params[f"{_PROCESSOR}/linear_{6 + k}"])
    if net_config.use_ln:
        ln = haiku_params[f"{_PROCESSOR}/layer_norm"]
        processor["ln"] = {"scale": np.asarray(ln["scale"]), "bias": np.asarray(ln["offset"])}
    encoders = {}
    for name, row in net_config.encoded():
        encoders[name] = _dense(haiku_params[f"{prefix}{name}_enc_linear"])
        if row.location == "edge" and row.type == "pointer":
            encoders[f"{name}_2"] = _dense(haiku_params[f"{prefix}{name}_enc_linear_1"])
    decoders = {}
    for name, row in net_config.decoded():
        decoders[name] = {
            ours: _dense(haiku_params[f"{prefix}{name}_dec_linear" + (f"_{i}" if i else "")])
            for i, ours in enumerate(_decoder_names(row))}
    return {"encoders": encoders, "processor": processor, "decoders": decoders}
