"""Run compiled (or any) parameters on CLRS data and check them pointer by pointer.

Besides the CLRS output score this counts every pointer of every graph, scores each hint over the
trace, and measures the **attention accuracy**: at each step, for each node, whether the attention's
largest coefficient falls on the parent the algorithm gives that node after the step. A compiled
network scores 1.0 on it; it is the reference a learned network's attention is compared against.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from workers.data import SplitData
from workers.scoring import hint_scores_along_time
from workers.model.forward import postprocess, unroll
from workers.model.network import NetConfig


@dataclasses.dataclass
class Evaluation:
    size: int
    graphs: int
    pointers_correct: int
    pointers_total: int
    hint_scores: dict[str, float]       # mean over steps of evaluate_hints' per-step scores
    attention_correct: int
    attention_total: int

    @property
    def score(self) -> float:
        """Output score in percent: the share of output pointers that are right."""
        return 100.0 * self.pointers_correct / max(self.pointers_total, 1)

    @property
    def attention_accuracy(self) -> float:
        return 100.0 * self.attention_correct / max(self.attention_total, 1)

    def to_json(self) -> dict:
        return {"size": self.size, "graphs": self.graphs, "score": self.score,
                "pointers_correct": self.pointers_correct, "pointers_total": self.pointers_total,
                "attention_accuracy": self.attention_accuracy, "hint_scores": self.hint_scores}


@dataclasses.dataclass
class Trace:
    """One batch stepped through in evaluation mode (soft hints fed back, as in testing). Per step
    t (entry t comes from step t, which predicts hint t + 1): the processor's output ``hidden
    [T - 1, B, N, H]``, the attention ``[T - 1, B, N, N]``, the hint logits ``[T - 1, B, …]``;
    and the output logits ``[B, …]``."""

    hidden: np.ndarray
    attention: np.ndarray
    hint_logits: dict[str, np.ndarray]
    output_logits: dict[str, np.ndarray]


_rollout = jax.jit(lambda net_config, params, batch: unroll(net_config, params, batch, jax.random.PRNGKey(0),
                                                     train=False, return_hidden=True),
                   static_argnums=0)


def run(net_config: NetConfig, params, data: SplitData) -> Trace:
    """Roll ``params`` out over ``data`` at full float32 matmul precision (GPUs would otherwise
    use TF32, whose 10-bit mantissa breaks the large constants of compiled weights)."""
    batch = jax.tree_util.tree_map(jnp.asarray, data.as_batch())
    with jax.default_matmul_precision("float32"):
        outputs, hints, attention, hidden = _rollout(net_config, params, batch)
    return Trace(hidden=np.asarray(hidden), attention=np.asarray(attention[:, :, 0]),
                 hint_logits={k: np.asarray(v) for k, v in hints.items()},
                 output_logits={k: np.asarray(v) for k, v in outputs.items()})


def evaluate(net_config: NetConfig, params, data: SplitData, pointer_hint: str = "pi_h",
             batch_size: int = 8) -> Evaluation:
    """Score ``params`` on every graph of ``data``, ``batch_size`` graphs at a time."""
    correct = total = att_correct = att_total = 0
    hint_steps: dict[str, list[float]] = {}
    for start in range(0, data.num_graphs, batch_size):
        part = data.take(np.arange(start, min(start + batch_size, data.num_graphs)))
        trace = run(net_config, params, part)
        hard = postprocess(net_config, trace.output_logits, hard=True)
        for name, truth in part.outputs.items():
            correct += int(np.sum(np.asarray(hard[name]) == truth))
            total += int(truth.size)
        scores = hint_scores_along_time(net_config, trace.hint_logits, part.as_batch())
        for name, per_step in scores.items():
            per_step = np.asarray(per_step)
            hint_steps.setdefault(name, []).extend(per_step[~np.isnan(per_step)].tolist())
        if pointer_hint in part.hints:
            parents = part.hints[pointer_hint][1:]                   # [T - 1, B, N]
            chosen = np.argmax(trace.attention, axis=-1)             # [T - 1, B, N]
            live = np.arange(parents.shape[0])[:, None] + 1 < part.lengths[None, :]
            live = np.broadcast_to(live[..., None], parents.shape)
            att_correct += int(np.sum((chosen == parents) & live))
            att_total += int(np.sum(live))
    return Evaluation(size=data.size, graphs=data.num_graphs, pointers_correct=correct,
                      pointers_total=total,
                      hint_scores={k: float(np.mean(v)) for k, v in hint_steps.items()},
                      attention_correct=att_correct, attention_total=att_total)
