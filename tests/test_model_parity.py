"""Parity with dm-clrs's BaselineModel (gatv2): same weights, same batch → same predictions, loss
and, after 5 Adam steps, the same parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import clrs
from clrs._src import probing
from workers.config import TrainConfig
from workers.data import make_request
from workers.model import make_net_config
from workers.model.clrs_params import from_dmclrs
from workers.model.forward import unroll
from workers.model.losses import total_loss

HIDDEN = 16


def to_feedback(data):
    """SplitData → dm-clrs Feedback (pointers as float indices, as its samplers give them)."""
    def points(group):
        return tuple(probing.DataPoint(name, data.probe_table[name].location, data.probe_table[name].type,
                                       np.asarray(x, np.float64 if data.probe_table[name].type != "categorical"
                                                  else np.float32))
                     for name, x in group.items())
    features = clrs.Features(points(data.inputs), points(data.hints), data.lengths.astype(np.float64))
    return clrs.Feedback(features, points(data.outputs))


def to_batch(data):
    return jax.tree_util.tree_map(jnp.asarray, data.as_batch())


def dm_model(spec, feedback, config):
    factory = clrs.get_processor_factory("gatv2", use_ln=True, nb_triplet_fts=0, nb_heads=config.nb_heads)
    return clrs.models.BaselineModel(
        spec=[spec], dummy_trajectory=[feedback], processor_factory=factory, hidden_dim=config.hidden_size,
        encode_hints=True, decode_hints=True, encoder_init="xavier_on_scalars",
        learning_rate=config.learning_rate, grad_clip_max_norm=config.grad_clip_max_norm,
        hint_teacher_forcing=0.0, hint_repred_mode="soft")


def close(a, b, tol, what):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=tol, rtol=tol, err_msg=what)


@pytest.mark.parametrize("algorithm", ["bfs", "dfs", "bellman_ford"])
def test_parity_with_dm_clrs(cache, algorithm):
    pool = cache.get(make_request(algorithm, "train", 7, 64, seed=4))
    spec = {name: (row.stage, row.location, row.type) for name, row in pool.probe_table.items()}
    config = TrainConfig(algorithm=algorithm, hidden_size=HIDDEN, learning_rate=1e-3)
    net_config = make_net_config(config, pool.probe_table)
    batches = [pool.take(np.arange(i * 8, (i + 1) * 8)) for i in range(6)]
    model = dm_model(spec, to_feedback(batches[0]), config)
    model.init([to_feedback(batches[0]).features], 7)
    params = from_dmclrs(net_config, model.params)
    key = jax.random.PRNGKey(0)

    # Predictions (evaluation mode: decoded hints fed back) and loss (training mode).
    feedback, batch = to_feedback(batches[0]), to_batch(batches[0])
    dm_out, dm_hints = model.net_fn.apply(model.params, key, [feedback.features], repred=True,
                                          algorithm_index=0, return_hints=True, return_all_outputs=False)
    out, hints, _ = unroll(net_config, params, batch, key, train=False)
    for name in out:
        close(out[name], dm_out[name], 1e-4, f"output {name}")
    assert len(dm_hints) == batch["hints"]["pi_h"].shape[0] - 1
    for name in hints:
        close(hints[name], np.stack([h[name] for h in dm_hints]), 1e-4, f"hint {name}")
    dm_loss = model._loss(model.params, key, feedback, 0)
    out, hints, _ = unroll(net_config, params, batch, key, train=True)
    close(total_loss(net_config, batch, out, hints), dm_loss, 1e-4, "loss")

    # Five Adam steps after global-norm clipping, on five different batches.
    opt = optax.chain(optax.clip_by_global_norm(config.grad_clip_max_norm), optax.scale_by_adam(),
                      optax.scale(-config.learning_rate))
    state = opt.init(params)

    @jax.jit
    def step(params, state, batch):
        def loss_fn(p):
            o, h, _ = unroll(net_config, p, batch, key, train=True)
            return total_loss(net_config, batch, o, h)
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    for b in batches[1:]:
        dm_step_loss = model.feedback(key, to_feedback(b))
        params, state, loss = step(params, state, to_batch(b))
        close(loss, dm_step_loss, 1e-4, "step loss")
    expected = from_dmclrs(net_config, model.params)
    for path, value in jax.tree_util.tree_leaves_with_path(params):
        ref = expected
        for k in path:
            ref = ref[k.key]
        close(value, ref, 1e-3, jax.tree_util.keystr(path))
