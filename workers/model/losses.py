"""Losses as dm-clrs computes them (losses.output_loss, losses.hint_loss), summed as
``BaselineModel._loss`` sums them, plus the paper's optional L1 regularisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from workers.model.forward import Batch, nb_nodes
from workers.model.network import NetConfig

EPS = 1e-12


def output_loss(kind: str, truth, pred, n: int):
    if kind == "scalar":
        return jnp.mean((pred - truth) ** 2)
    if kind == "mask":
        loss = jnp.maximum(pred, 0) - pred * truth + jnp.log1p(jnp.exp(-jnp.abs(pred)))
        mask = (truth != -1).astype(jnp.float32)
        return jnp.sum(loss * mask) / jnp.sum(mask)
    if kind in ("mask_one", "categorical"):
        masked_truth = truth * (truth != -1).astype(jnp.float32)
        return -jnp.sum(masked_truth * jax.nn.log_softmax(pred)) / jnp.sum(truth == 1)
    if kind == "pointer":
        return jnp.mean(-jnp.sum(jax.nn.one_hot(truth, n) * jax.nn.log_softmax(pred), axis=-1))
    raise ValueError(f"unsupported output type {kind!r}")


def hint_loss(kind: str, truth, preds, lengths, n: int):
    """truth: the full hint ``[T, B, …]``; preds: ``[T - 1, B, …]`` predicting truth[1:]."""
    truth = truth[1:].astype(jnp.float32) if kind != "pointer" else truth[1:]
    mask = None
    if kind == "scalar":
        loss = (preds - truth) ** 2
    elif kind == "mask":
        loss = jnp.maximum(preds, 0) - preds * truth + jnp.log1p(jnp.exp(-jnp.abs(preds)))
        mask = (truth != -1).astype(jnp.float32)
    elif kind == "mask_one":
        loss = -jnp.sum(truth * jax.nn.log_softmax(preds), axis=-1, keepdims=True)
    elif kind == "categorical":
        loss = -jnp.sum(truth * jax.nn.log_softmax(preds), axis=-1)
        mask = jnp.any(truth == 1, axis=-1).astype(jnp.float32)
    elif kind == "pointer":
        loss = -jnp.sum(jax.nn.one_hot(truth, n) * jax.nn.log_softmax(preds), axis=-1)
    else:
        raise ValueError(f"unsupported hint type {kind!r}")
    if mask is None:
        mask = jnp.ones_like(loss)
    alive = (lengths[None, :] > jnp.arange(loss.shape[0])[:, None] + 1).astype(jnp.float32)
    mask = mask * alive.reshape(alive.shape + (1,) * (loss.ndim - 2))
    return jnp.sum(loss * mask) / jnp.maximum(jnp.sum(mask), EPS)


def total_loss(net_config: NetConfig, batch: Batch, outputs, hint_preds, params=None,
               regularization_weight: float = 0.0):
    n = nb_nodes(batch)
    probe_table = net_config.probe_table
    loss = 0.0
    for name, truth in batch["outputs"].items():
        loss = loss + output_loss(probe_table[name].type, truth, outputs[name], n)
    if net_config.decode_hints:
        for name, truth in batch["hints"].items():
            loss = loss + hint_loss(probe_table[name].type, truth, hint_preds[name], batch["lengths"], n)
    if regularization_weight:
        l1 = sum(jnp.sum(jnp.abs(p)) for p in jax.tree_util.tree_leaves(params))
        loss = loss + regularization_weight * l1
    return loss
