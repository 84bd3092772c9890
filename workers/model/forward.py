"""The unrolled forward pass and postprocessing: pure functions of (params, batch).

Mirrors dm-clrs's ``Net.__call__`` / ``_msg_passing_step``: step 0 runs on the true first hint, then
``T - 2`` scanned steps feed back the soft-decoded hint predictions (mixed with the true hints by
``hint_teacher_forcing`` during training); a graph's outputs are frozen once its trace has ended.

A batch is a dict ``{"inputs": {…}, "hints": {…}, "outputs": {…}, "lengths": [B]}`` of arrays in
SplitData's layout (pointers as integer node indices, hints time-major ``[T, B, …]``).
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp

from workers.model.network import NetConfig, Step

Batch = Mapping[str, Mapping[str, jax.Array] | jax.Array]


def nb_nodes(batch: Batch) -> int:
    for x in batch["inputs"].values():
        if x.ndim >= 2:
            return x.shape[1]
    raise ValueError("no node- or edge-level input to size the graph")


def as_features(net_config: NetConfig, group: Mapping[str, jax.Array], n: int) -> dict[str, jax.Array]:
    """Probe arrays as the encoders take them (encoders.preprocess): pointers one-hot over the
    nodes, everything else float32."""
    probe_table = net_config.probe_table
    return {name: (jax.nn.one_hot(x, n) if probe_table[name].type == "pointer" else x.astype(jnp.float32))
            for name, x in group.items()}


def postprocess(net_config: NetConfig, preds: Mapping[str, jax.Array], hard: bool) -> dict[str, jax.Array]:
    """decoders.postprocess: soft (sigmoid / softmax; pointers as distributions over nodes) or hard
    (threshold / one-hot argmax; pointers as node indices)."""
    probe_table = net_config.probe_table
    result = {}
    for name, x in preds.items():
        t = probe_table[name].type
        if t == "scalar":
            result[name] = jax.lax.stop_gradient(x) if hard else x
        elif t == "mask":
            result[name] = (x > 0.0).astype(jnp.float32) if hard else jax.nn.sigmoid(x)
        elif t in ("mask_one", "categorical"):
            result[name] = (jax.nn.one_hot(jnp.argmax(x, -1), x.shape[-1]) if hard
                            else jax.nn.softmax(x, axis=-1))
        elif t == "pointer":
            result[name] = jnp.argmax(x, -1) if hard else jax.nn.softmax(x, -1)
        else:
            raise ValueError(f"unsupported probe type {t!r}")
    return result


def not_done(lengths: jax.Array, i, like: jax.Array) -> jax.Array:
    """1.0 where step i is not yet a graph's last prediction step (lengths > i + 1)."""
    mask = (lengths > i + 1).astype(jnp.float32)
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def unroll(net_config: NetConfig, params, batch: Batch, key: jax.Array, train: bool,
           remat: bool = False, return_hidden: bool = False):
    """Run the network over the batch's (padded) trace of T steps.

    Returns ``(outputs, hint_preds, attention)``: output logits per output probe, hint logits stacked
    ``[T - 1, B, …]`` (entry t predicts hint t + 1) and attention coefficients
    ``[T - 1, B, heads, N, N]`` (those of the last message-passing step of each step). With
    ``remat`` each scanned step is recomputed in the backward pass instead of stored. With
    ``return_hidden`` a fourth result holds the processor's output after each step
    ``[T - 1, B, N, hidden]``."""
    step = Step(net_config)
    n = nb_nodes(batch)
    probe_table = net_config.probe_table
    inputs = as_features(net_config, batch["inputs"], n)
    hints, lengths = batch["hints"], batch["lengths"]
    steps = next(iter(hints.values())).shape[0]
    b = lengths.shape[0]
    hint_names = [name for name, _ in net_config.hints()]
    keys = jax.random.split(key, max(steps, 1))

    def true_hints(i):
        return as_features(net_config, {name: hints[name][i] for name in hint_names}, n)

    def one_step(cur_hints, hidden, rng):
        new_hidden, preds, coefs = step.apply({"params": params}, {**inputs, **cur_hints}, hidden,
                                              train, rngs={"dropout": rng})
        outputs = {k: v for k, v in preds.items() if probe_table[k].stage == "output"}
        hint_preds = {k: v for k, v in preds.items() if probe_table[k].stage == "hint"}
        return new_hidden, outputs, hint_preds, coefs

    hidden = jnp.zeros((b, n, net_config.hidden_size))
    hidden, outputs, hint_preds, coefs = one_step(true_hints(0), hidden, keys[0])

    def body(carry, i):
        hidden, outputs, prev_hint_preds = carry
        cur = true_hints(i)
        if net_config.decode_hints:
            decoded = postprocess(net_config, prev_hint_preds, hard=False)
            if not train:
                cur = decoded
            elif net_config.hint_teacher_forcing < 1.0:
                force = jax.random.bernoulli(jax.random.fold_in(keys[i], 1),
                                             net_config.hint_teacher_forcing, (b,))
                cur = {k: jnp.where(force.reshape((b,) + (1,) * (cur[k].ndim - 1)), cur[k],
                                    decoded[k]) for k in cur}
        hidden, candidates, new_hint_preds, coefs = one_step(cur, hidden, keys[i])
        outputs = {k: not_done(lengths, i, v) * v + (1.0 - not_done(lengths, i, v)) * outputs[k]
                   for k, v in candidates.items()}
        ys = (new_hint_preds, coefs, hidden) if return_hidden else (new_hint_preds, coefs)
        return (hidden, outputs, new_hint_preds), ys

    first_hidden = hidden
    (_, outputs, _), (tail_hints, tail_coefs, *tail_hidden) = jax.lax.scan(
        jax.checkpoint(body) if remat else body, (hidden, outputs, hint_preds), jnp.arange(1, max(1, steps - 1)))
    all_hints = {k: jnp.concatenate([hint_preds[k][None], tail_hints[k]]) for k in hint_preds}
    attention = jnp.concatenate([coefs[None], tail_coefs])
    if return_hidden:
        return outputs, all_hints, attention, jnp.concatenate([first_hidden[None], tail_hidden[0]])
    return outputs, all_hints, attention


def init_params(net_config: NetConfig, key: jax.Array, batch: Batch):
    """Fresh parameters for the network (shapes from the probe table and one batch's graph size)."""
    n = nb_nodes(batch)
    b = batch["lengths"].shape[0]
    probes = {**as_features(net_config, batch["inputs"], n),
              **as_features(net_config, {k: v[0] for k, v in batch["hints"].items()}, n)}
    variables = Step(net_config).init({"params": key, "dropout": key}, probes,
                               jnp.zeros((b, n, net_config.hidden_size)), False)
    return variables["params"]
