"""CLRS scoring in JAX (so it vmaps over seeds): dm-clrs's ``evaluation.evaluate`` for outputs and
``evaluation.evaluate_hints``'s per-step accuracies for hints."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from workers.model.forward import postprocess
from workers.model.network import NetConfig


def _f1(pred, truth, weight):
    """evaluation._mask_fn: F1 of thresholded masks, with dm-clrs's conventions for empty cases."""
    valid = (truth != -1).astype(jnp.float32) * weight
    tp = jnp.sum((pred > 0.5) * (truth > 0.5) * valid)
    fp = jnp.sum((pred > 0.5) * (truth < 0.5) * valid)
    fn = jnp.sum((pred < 0.5) * (truth > 0.5) * valid)
    precision = jnp.where(tp + fp > 0, tp / jnp.maximum(tp + fp, 1e-12), 1.0)
    recall = jnp.where(tp + fn > 0, tp / jnp.maximum(tp + fn, 1e-12), 1.0)
    return jnp.where(precision + recall > 0,
                     2 * precision * recall / jnp.maximum(precision + recall, 1e-12), 0.0)


def probe_score(kind: str, pred, truth, weight):
    """Score of hard-postprocessed ``pred`` against ``truth`` over the graphs where ``weight`` [B]
    is 1: pointer / one-hot accuracy, mask F1, scalar mean squared error (as dm-clrs)."""
    w = weight.reshape(weight.shape + (1,) * (truth.ndim - 1)).astype(jnp.float32)
    if kind == "pointer":
        hits = (pred == truth).astype(jnp.float32)
        return jnp.sum(hits * w) / jnp.maximum(jnp.sum(jnp.broadcast_to(w, hits.shape)), 1e-12)
    if kind in ("mask_one", "categorical"):
        valid = jnp.all(truth != -1, axis=-1).astype(jnp.float32) * w[..., 0]
        hits = (jnp.argmax(pred, -1) == jnp.argmax(truth, -1)).astype(jnp.float32)
        return jnp.sum(hits * valid) / jnp.maximum(jnp.sum(valid), 1e-12)
    if kind == "mask":
        return _f1(pred, truth, w)
    if kind == "scalar":
        sq = (pred - truth) ** 2
        return jnp.sum(sq * w) / jnp.maximum(jnp.sum(jnp.broadcast_to(w, sq.shape)), 1e-12)
    raise ValueError(f"unsupported probe type {kind!r}")


def output_score(net_config: NetConfig, outputs, batch) -> jax.Array:
    """evaluation.evaluate's ``score``: each output's score over every graph, averaged over outputs."""
    return hard_output_score(net_config.probe_table, postprocess(net_config, outputs, hard=True),
                             batch["outputs"])


def hard_output_score(probe_table, hard, truth) -> jax.Array:
    """:func:`output_score` of hard-postprocessed outputs ``hard`` against ``truth`` (both by
    output name, graphs first): pooled over every graph given, so predictions gathered over
    several batches score as one evaluation (as dm-clrs's run.py concatenates them), not as a
    mean of per-batch scores."""
    b = next(iter(truth.values())).shape[0]
    scores = [probe_score(probe_table[k].type, hard[k], truth[k].astype(hard[k].dtype), jnp.ones(b))
              for k in truth]
    return sum(scores) / len(scores)


def hint_scores_along_time(net_config: NetConfig, hint_preds, batch) -> dict[str, jax.Array]:
    """Per hint, per step t, the score of prediction t against true hint t + 1 over the graphs whose
    trace has that step (t + 1 < length); NaN where no graph has it (evaluate_hints' along_time)."""
    probe_table = net_config.probe_table
    lengths = batch["lengths"]
    result = {}
    for name, preds in hint_preds.items():
        hard = jax.vmap(lambda p, name=name: postprocess(net_config, {name: p}, hard=True)[name])(preds)
        truth = batch["hints"][name][1:]
        steps = jnp.arange(preds.shape[0])

        def at(t, h, y, name=name):
            live = (t + 1 < lengths).astype(jnp.float32)
            score = probe_score(probe_table[name].type, h, y.astype(h.dtype), live)
            return jnp.where(jnp.any(live > 0), score, jnp.nan)

        result[name] = jax.vmap(at)(steps, hard, truth)
    return result
