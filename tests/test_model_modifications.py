"""The paper's modifications change the computation as specified, and only when switched on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workers.config import ConfigError, TrainConfig
from workers.data import make_request
from workers.model import make_net_config
from workers.model.forward import init_params, unroll
from workers.model.losses import total_loss
from workers.model.network import Decoder

KEY = jax.random.PRNGKey(3)


@pytest.fixture(scope="module")
def batch(cache):
    data = cache.get(make_request("bellman_ford", "train", 16, 64, seed=9)).take(np.arange(8))
    return data.probe_table, jax.tree_util.tree_map(jnp.asarray, data.as_batch())


def build(spec, batch, **flags):
    settings = dict(algorithm="bellman_ford", hidden_size=16, train_lengths=(16,),
                    length_generalize=False)
    config = TrainConfig(**{**settings, **flags})
    net_config = make_net_config(config, spec)
    return net_config, init_params(net_config, KEY, batch)


def forward(net_config, params, batch):
    return unroll(net_config, params, batch, KEY, train=False)


def test_edge_info_with_zero_w_info_equals_the_default_model(batch):
    spec, b = batch
    base_cfg, base = build(spec, b)
    net_config, params = build(spec, b, use_edge_info=True)
    assert params["processor"]["W_info"]["kernel"].shape == (16, 16)
    assert "bias" not in params["processor"]["W_info"] and "bias" not in params["processor"]["W_reduce"]
    shared = jax.tree_util.tree_map(lambda x: x, params)
    for name, value in base["processor"].items():
        shared["processor"][name] = value
    shared["encoders"], shared["decoders"] = base["encoders"], base["decoders"]
    shared["processor"]["W_info"]["kernel"] = jnp.zeros_like(params["processor"]["W_info"]["kernel"])
    out, hints, _ = forward(net_config, shared, b)
    ref_out, ref_hints, _ = forward(base_cfg, base, b)
    np.testing.assert_allclose(out["pi"], ref_out["pi"], atol=1e-6)
    np.testing.assert_allclose(hints["d"], ref_hints["d"], atol=1e-6)
    # A non-zero W_info changes the result: E_mid = W_info E enters the aggregated values.
    shared["processor"]["W_info"]["kernel"] = params["processor"]["W_info"]["kernel"]
    changed, _, _ = forward(net_config, shared, b)
    assert not np.allclose(changed["pi"], ref_out["pi"], atol=1e-3)


def test_pre_attention_bias_reaches_the_attention_logits(batch):
    spec, b = batch
    base_cfg, base = build(spec, b)
    net_config, params = build(spec, b, use_pre_att_bias=True)
    bias = params["processor"]["pre_att_bias"]
    assert bias.shape == (16, 16) and not np.any(bias)  # zero at init: starts as the default model
    _, _, att0 = forward(net_config, params, b)
    _, _, ref = forward(base_cfg, {**params, "processor": {k: v for k, v in params["processor"].items()
                                                             if k != "pre_att_bias"}}, b)
    np.testing.assert_allclose(att0, ref, atol=1e-6)
    # A large bias on receiver 0's self-edge (its sign along the logit weights a_0, since it passes
    # a LeakyReLU and then a_0) pulls node 0's attention onto itself, in every graph.
    direction = np.sign(float(params["processor"]["a_0"]["kernel"].sum()))
    params["processor"]["pre_att_bias"] = bias.at[0, 0].set(1e4 * direction)
    _, _, att = forward(net_config, params, b)
    assert np.all(np.asarray(att)[:, :, 0, 0, 0] > 0.99)
    assert not np.allclose(att, att0, atol=1e-3)


def test_simplified_pointer_decoder_formula(batch):
    spec, b = batch
    net_config, _ = build(spec, b, simplify_decoders=True)
    h_t = jax.random.normal(KEY, (2, 16, 48))
    decoder = Decoder(net_config, spec["pi"])
    variables = decoder.init(KEY, h_t, None, None)
    logits = decoder.apply(variables, h_t, None, None)
    p = variables["params"]
    w1 = h_t @ p["W_1"]["kernel"] + p["W_1"]["bias"]
    w2 = h_t @ p["W_2"]["kernel"] + p["W_2"]["bias"]
    assert p["W_1"]["kernel"].shape == (48, 16)  # maps to n outputs
    np.testing.assert_allclose(logits, -1000.0 * np.maximum(w1, w2), rtol=1e-5)


def test_regularization_adds_the_l1_norm_of_all_parameters(batch):
    spec, b = batch
    net_config, params = build(spec, b)
    out, hints, _ = unroll(net_config, params, b, KEY, train=True)
    plain = total_loss(net_config, b, out, hints, params)
    l1 = sum(float(jnp.abs(x).sum()) for x in jax.tree_util.tree_leaves(params))
    regular = total_loss(net_config, b, out, hints, params, regularization_weight=1e-3)
    np.testing.assert_allclose(regular - plain, 1e-3 * l1, rtol=1e-4)


@pytest.mark.parametrize("hint_mode", ["decoded_only", "none"])
def test_hint_modes(batch, hint_mode):
    spec, b = batch
    net_config, params = build(spec, b, hint_mode=hint_mode)
    assert not any(name in params["encoders"] for name in ("pi_h", "d", "msk"))
    assert ("pi_h" in params["decoders"]) == (hint_mode == "decoded_only")
    out, hints, _ = unroll(net_config, params, b, KEY, train=True)
    assert np.isfinite(float(total_loss(net_config, b, out, hints)))
    assert (len(hints) > 0) == (hint_mode == "decoded_only")


def test_minimal_hidden_size_four(batch):
    spec, b = batch
    net_config, params = build(spec, b, hidden_size=4)
    count = sum(x.size for x in jax.tree_util.tree_leaves(params))
    assert count < 1000, count  # the paper's minimal network has ~500 parameters
    out, _, _ = forward(net_config, params, b)
    assert out["pi"].shape == (8, 16, 16)


@pytest.mark.parametrize("flag", ["use_pre_att_bias", "simplify_decoders"])
def test_size_tied_flags_reject_mixed_sizes(flag):
    with pytest.raises(ConfigError, match=rf"{flag} tie parameter shapes.*train_lengths must hold one"):
        TrainConfig.from_dict({flag: True, "train_lengths": [4, 16], "length_generalize": False})
    with pytest.raises(ConfigError, match=r"test split has n = 64.*length_generalize: false"):
        TrainConfig.from_dict({flag: True, "train_lengths": [16]})
    assert TrainConfig.from_dict({flag: True, "train_lengths": [16],
                                  "length_generalize": False}).tied_size == 16


def test_unknown_and_mistyped_keys_are_named():
    with pytest.raises(ConfigError, match="unknown key.*'hiden_size'"):
        TrainConfig.from_dict({"hiden_size": 4})
    with pytest.raises(ConfigError, match="learning_rate = 'fast' has the wrong type"):
        TrainConfig.from_dict({"learning_rate": "fast"})
    with pytest.raises(ConfigError, match="hint_mode = 'some'.*encoded_decoded, decoded_only, none"):
        TrainConfig.from_dict({"hint_mode": "some"})


def test_config_hash_is_canonical():
    a = TrainConfig.from_dict({"hidden_size": 4, "algorithm": "bfs"})
    b = TrainConfig.from_dict({"algorithm": "bfs", "hidden_size": 4})
    assert a.hash() == b.hash() != TrainConfig().hash()
