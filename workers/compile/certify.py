"""How far a compiled network is from being wrong: margins measured on data, and what the
constants guarantee in closed form (``gapsweep compile ALG --certify``).

Margins (measured, float32, as the network runs in evaluation):

- **attention**: at every live step and node, ln(coefficient of the sender the algorithm selects)
  − ln(the largest other coefficient), i.e. the logit margin. Where every other coefficient
  underflows to 0 the margin is at least ``ATTENTION_UNDERFLOW`` (softmax's exp below float32's
  smallest subnormal), reported as that lower bound.
- **pointer** (output and hint): the true target's decoder logit minus the largest other logit;
  negative means a wrong argmax.

The pointer decoder in closed form (the compiler's construction, ``workers.compile.compiler``):
its logits are ``−c'·|v_i − idx_j|`` with ``c'`` the style's ``pointer_sharpness`` and positions ``idx_j = j/n``,
so where the stored value ``v_i`` is a position exactly, the runner-up (a neighbouring position,
``1/n`` away) trails by ``c'/n``. The decoded soft pointer that the next step reads is one-hot to
float32 precision while the n − 1 others' mass ``(n − 1)·exp(−c'/n)`` stays below 2⁻²⁴ (half an
ulp of 1.0): :func:`pointer_decoder_largest_n` is the largest such n. Beyond it decoding still
picks the right argmax, but the soft hint fed back is no longer exact. The attention's margin is
not fixed by the constants alone: it is ``1.01·min(c·Δkey, τ)`` for the gap Δkey between the best
and the runner-up candidate's key (BFS: positions, Δkey ≥ 1/n; Bellman-Ford: distance + weight,
as small as the data makes it, 0 at an exact tie between two new parents), which is why it is
measured.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from workers.compile.styles import EXACT_STYLE, CompileStyle
from workers.data import SplitData
from workers.model.network import NetConfig

# softmax weights below float32's smallest subnormal (2^-149) are 0: a margin of at least this
ATTENTION_UNDERFLOW = 149 * math.log(2)
FLOAT32_HALF_ULP_OF_ONE = 2.0 ** -24


@dataclasses.dataclass(frozen=True)
class Margins:
    """The smallest margins over every graph, live step and node of one data set."""

    size: int
    graphs: int
    attention: float              # ≥ ATTENTION_UNDERFLOW means "every other weight underflowed"
    attention_ties: int           # (step, node) pairs whose margin is 0: an exact tie
    output_pointer: float
    hint_pointer: float
    exact: bool                   # every output pointer and pointer hint right

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _logit_margin(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """logits[..., target] − max over the other entries, per leading index."""
    chosen = np.take_along_axis(logits, target[..., None], axis=-1)[..., 0]
    others = logits.copy()
    np.put_along_axis(others, target[..., None], -np.inf, axis=-1)
    return chosen - others.max(axis=-1)


def measure(net_config: NetConfig, params, data: SplitData, pointer_output: str = "pi",
            pointer_hint: str = "pi_h", batch_size: int = 64) -> Margins:
    """The margins of ``params`` on every graph of ``data``."""
    from workers.compile.verify import run

    attention = output = hint = math.inf
    ties = 0
    exact = True
    for start in range(0, data.num_graphs, batch_size):
        part = data.take(np.arange(start, min(start + batch_size, data.num_graphs)))
        trace = run(net_config, params, part)
        out = _logit_margin(np.asarray(trace.output_logits[pointer_output], np.float64),
                            part.outputs[pointer_output].astype(np.int64))
        output = min(output, float(out.min()))
        exact &= bool(np.all(out > 0))
        parents = part.hints[pointer_hint][1:].astype(np.int64)             # [T - 1, B, N]
        live = (np.arange(parents.shape[0])[:, None] + 1 < part.lengths[None, :])
        live = np.broadcast_to(live[..., None], parents.shape)
        if live.any():
            h = _logit_margin(np.asarray(trace.hint_logits[pointer_hint], np.float64), parents)
            hint = min(hint, float(h[live].min()))
            exact &= bool(np.all(h[live] > 0))
            coefs = np.asarray(trace.attention, np.float64)                   # [T - 1, B, N, N]
            with np.errstate(divide="ignore"):
                logs = np.log(coefs)
            a = _logit_margin(logs, parents)[live]
            a = np.where(np.isnan(a), ATTENTION_UNDERFLOW, np.minimum(a, ATTENTION_UNDERFLOW))
            attention = min(attention, float(a.min()))
            ties += int(np.sum(a == 0))
    return Margins(data.size, data.num_graphs, attention, ties, output, hint, exact)


def pointer_decoder_margin(n: int, style: CompileStyle = EXACT_STYLE) -> float:
    """The decoder's logit margin at an exact position: c'/n."""
    return style.pointer_sharpness / n


def pointer_decoder_largest_n(style: CompileStyle = EXACT_STYLE) -> int:
    """The largest n with (n − 1)·exp(−c'/n) < 2⁻²⁴: the soft pointer fed back is one-hot to
    float32 precision up to here."""
    n = 2
    while (n) * math.exp(-style.pointer_sharpness / (n + 1)) < FLOAT32_HALF_ULP_OF_ONE:
        n += 1
    return n


def soft_pointer_leak(n: int, style: CompileStyle = EXACT_STYLE) -> float:
    """The mass the decoded soft pointer puts off its target at an exact position j/n: the
    neighbours k positions away carry exp(−k·c'/n) each, on both sides,
    at most 2·q/(1 − q) with q = exp(−c'/n)."""
    q = math.exp(-style.pointer_sharpness / n)
    return 2.0 * q / (1.0 - q)


def bfs_selection_largest_n(style: CompileStyle = EXACT_STYLE, up_to: int = 1 << 20) -> int:
    """The largest n up to which BFS's selection provably survives its own soft pointers.

    The attention adds P·(pointer channel) to every candidate, so a candidate whose position is
    next to the node's pointer's gains P·leak(n) (:func:`soft_pointer_leak`), while the right
    candidate (the reached neighbour of smallest index) leads any other by at least c·(1/n)
    with c = key_budget (positions span [0, 1)). Sufficient for exactness:
    P·leak(n) < key_budget / n. Beyond it a failure needs a reached index-neighbour of the pointer
    among the node's candidates, so measurement can still find exact graphs."""
    c = style.key_budget if not style.pow2 else 2.0 ** math.floor(math.log2(style.key_budget))
    n = 2
    while n < up_to and style.pointer_preference * soft_pointer_leak(n + 1, style) < c / (n + 1):
        n += 1
    return n
