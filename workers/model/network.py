"""A CLRS-faithful GATv2 network in Flax, generated from the algorithm's probe table.

It computes what dm-clrs's ``BaselineModel`` with ``processor_type: gatv2`` computes (``nets.py``,
``encoders.py``, ``processors.GATv2``, ``decoders.py``), plus the paper's modifications as flags.
:class:`Step` is one message-passing step (encode → process → decode) as a Flax module; the unroll
over the trace (:func:`unroll`) is a plain ``lax.scan`` over ``Step.apply``, so the whole forward pass
is a pure function of a parameter pytree and can be vmapped over seeds.

Parameter names (the neural-compilation issue writes weights by these):

    encoders/<probe>            Dense(·→H) per input and (encoded) hint; edge pointers add <probe>_2
    processor/W_value, W_skip   Dense(2H→H): values and skip connection of z = [node_fts ‖ hidden]
    processor/W_p1, W_p2        Dense(2H→H): pre-attention terms of the sender j and the receiver i
    processor/W_edge, W_graph   Dense(H→H): pre-attention terms of e_ij and the graph features
    processor/a_<k>             Dense(H/heads→1): attention logits of head k
    processor/ln                LayerNorm (use_ln)
    processor/pre_att_bias      n × n (use_pre_att_bias)
    processor/W_info, W_reduce  Dense(H→H, no bias) (use_edge_info)
    decoders/<probe>/...        W_1, W_2, W_e, w_out (node pointers), W_1 (node scalar/mask/categorical),
                                W_n, W_g (graph), W_1, W_2 (simplify_decoders: H→n pointer heads)

Two edge paths compute the same function from the same parameters (``NetConfig.edge_path``):

- ``materialised``: dm-clrs's own order of work. ``edge_fts`` [B, n, n, H] is built, and every
  layer that reads it (``W_edge``, each node-pointer decoder's ``W_e``, ``W_info``) is an H × H
  matmul over all B·n² edges: ~85% of a hidden-128 step's FLOPs.
- ``low_rank``: ``edge_fts`` is a sum of rank-1 encodings of the algorithm's K edge channels
  (pointer hints and inputs, ``adj``, ``A``, …), ``edge_fts = Σ_p x_p w_p + b_p`` over the edge
  encoders p. So ``W'(edge_fts) = Σ_p x_p (w_p W') + b_p W' + b'``: K·H instead of H·H per edge
  (:class:`LowRankEdges`). The [B, n, n, H] work left (the pre-attention sum, leaky ReLU and
  logit dot; the decoders' max and ``w_out`` dot) is written as elementwise work feeding a
  reduction over H, which XLA can fuse into loops that never write the [B, n, n, H] tensor.

``auto`` (the default) takes the low-rank path where K < H.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from workers.data.probes import ProbeSpec
from workers import rules
from workers.errors import GapsweepError

Array = jax.Array


def haiku_linear_init(key, shape, dtype=jnp.float32):
    """hk.Linear's default weights: truncated normal (±2σ) with σ = 1/sqrt(fan_in)."""
    return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) / jnp.sqrt(shape[0]).astype(dtype)


def scaled_truncated_normal(stddev: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) * stddev
    return init


def dense(features: int, name: str, use_bias: bool = True, kernel_init=haiku_linear_init):
    return nn.Dense(features, name=name, use_bias=use_bias, kernel_init=kernel_init)


class DenseParams(nn.Module):
    """A Dense layer's parameters without applying it: the same names, shapes, initialisers and
    random keys as ``dense(features, name)`` on inputs of ``in_features``, for the low-rank path,
    which composes weights before touching any edge."""

    features: int
    in_features: int
    use_bias: bool = True
    kernel_init: object = haiku_linear_init

    @nn.compact
    def __call__(self):
        kernel = self.param("kernel", self.kernel_init, (self.in_features, self.features), jnp.float32)
        bias = (self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
                if self.use_bias else None)
        return kernel, bias


_HIGHEST = jax.lax.Precision.HIGHEST
_UNROLLED_CHANNELS = 16     # up to this many edge channels are summed as broadcasts (fusible)


def _group_slices(groups: tuple[int, ...]):
    start = 0
    for size in groups:
        yield slice(start, start + size)
        start += size


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _expand(groups: tuple[int, ...], channels: Array, weights: Array, offsets: Array) -> Array:
    """``Σ_p (channels_p @ weights_p + offsets_p)`` [B, n, n, O], the encoder groups p of
    ``groups`` channels each.

    Forward: broadcast multiply-adds, each group's term formed before the terms are summed (see
    :class:`LowRankEdges`), which XLA fuses into the consumer. Backward: every reduction over the
    B·n² edges is a matrix product (``channels^T g``, ``1^T g``). XLA:CPU's column reductions (a
    sum over leading axes into a short vector) are ~10× slower than the same sum as a dot, and
    fused with the elementwise work that feeds them they cost more than the matmuls the low-rank
    path removes (``benchmarks/RESULTS.md``)."""
    total = None
    for p, part in enumerate(_group_slices(groups)):
        if part.stop - part.start > _UNROLLED_CHANNELS:
            term = jnp.einsum("bijk,ko->bijo", channels[..., part], weights[part],
                              precision=_HIGHEST)
        else:
            term = channels[..., part.start, None] * weights[part.start]
            for c in range(part.start + 1, part.stop):
                term = term + channels[..., c, None] * weights[c]
        term = term + offsets[p]
        total = term if total is None else total + term
    return total


def _expand_forward(groups, channels, weights, offsets):
    return _expand(groups, channels, weights, offsets), (channels, weights)


def _expand_backward(groups, residuals, g):
    channels, weights = residuals
    rows = g.reshape(-1, g.shape[-1])                                      # [B·n², O]
    d_channels = jnp.matmul(g, weights.T, precision=_HIGHEST)
    d_weights = jnp.matmul(channels.reshape(-1, channels.shape[-1]).T, rows, precision=_HIGHEST)
    d_offset = jnp.matmul(jnp.ones((rows.shape[0],), rows.dtype), rows, precision=_HIGHEST)
    return d_channels, d_weights, jnp.broadcast_to(d_offset, (len(groups), rows.shape[1]))


_expand.defvjp(_expand_forward, _expand_backward)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _spread(x: Array, axis: int, size: int) -> Array:
    """``x`` [B, N, F] broadcast along a new ``axis`` (1 or 2) of ``size``; its gradient (the sum
    along that axis) is fenced off (``optimization_barrier``) so that XLA does not fuse it with
    the layer's own bias sum into one [B, N, N, F] → [F] column reduction, which XLA:CPU emits as
    a slow strided loop."""
    return jnp.broadcast_to(jnp.expand_dims(x, axis), x.shape[:axis] + (size,) + x.shape[axis:])


def _spread_forward(x, axis, size):
    return _spread(x, axis, size), None


def _spread_backward(axis, size, _, g):
    return (jax.lax.optimization_barrier(g.sum(axis)),)


_spread.defvjp(_spread_forward, _spread_backward)


@functools.partial(jax.checkpoint, static_argnums=(0,))
def _edge_logits(groups, sender, receiver, channels, weights, offsets, a_kernel, a_bias,
                 pre_att_bias):
    """GATv2's logits [B, heads, N, N] on the low-rank path: pre-attention
    ``sender_j + receiver_i + Σ_p x_p,ij weights_p + offsets_p`` (+ ``pre_att_bias`` [N, N]),
    leaky ReLU, and per head the dot with ``a_kernel[:, k]`` plus ``a_bias[k]``. Rematerialised:
    the backward pass recomputes the [B, N, N, H] pre-attention from these small inputs instead of
    keeping it for every step of the trace."""
    n = sender.shape[1]
    pre_att = (_spread(sender, 1, n) + _spread(receiver, 2, n)
               + _expand(groups, channels, weights, offsets))
    if pre_att_bias is not None:
        pre_att = pre_att + pre_att_bias[None, :, :, None]
    heads = a_kernel.shape[1]
    head_size = pre_att.shape[-1] // heads
    logits = [jnp.matmul(jax.nn.leaky_relu(pre_att[..., k * head_size:(k + 1) * head_size]
                                          if heads > 1 else pre_att), a_kernel[:, k]) + a_bias[k]
              for k in range(heads)]        # the dot as a matrix product: its gradients are too
    return jnp.stack(logits, axis=1)


@functools.partial(jax.checkpoint, static_argnums=(0,))
def _pointer_logits(groups, receiver, candidate, channels, weights, offsets, out_kernel, out_bias):
    """A node-pointer decoder's logits [B, i, j] on the low-rank path:
    ``w_out · max(receiver_i, candidate_j + Σ_p x_p,ji weights_p + offsets_p) + b``,
    rematerialised like :func:`_edge_logits`."""
    n = receiver.shape[1]
    edge = _expand(groups, jnp.swapaxes(channels, 1, 2), weights, offsets)   # [B, i, j, H]: e_ji
    best = jnp.maximum(_spread(receiver, 2, n), _spread(candidate, 1, n) + edge)
    return jnp.matmul(best, out_kernel)[..., 0] + out_bias[0]


@dataclasses.dataclass(frozen=True)
class LowRankEdges:
    """Edge features kept factored, never materialised by the low-rank path: the sum over the
    edge encoders p of ``x_p @ w_p + b_p``, with ``channels`` [B, n, n, K] (every encoder's input
    values side by side, ``groups`` of them per encoder), ``kernel`` [K, H] (the encoders' weights
    stacked) and ``biases`` [P, H] (one bias per encoder).

    A layer W applied to them is ``Σ_p (x_p @ (w_p W) + b_p W)``: each encoder's term is formed
    on its own before the terms are summed, as ``(x_p w_p + b_p) W`` would be. Folding the biases
    into one offset first would be the same function but not the same arithmetic: a compiled
    network's ``not_edge`` channel (``1 - adj``, scaled by 2^35) is exactly 0 on an edge, whereas
    ``adj · 2^35 + … - 2^35`` rounds away the small terms summed in between."""

    channels: Array
    kernel: Array
    biases: Array
    groups: tuple[int, ...]

    def through(self, kernel: Array) -> tuple[Array, Array]:
        """The composed map of a Dense layer's ``kernel`` [H, O] applied to these features (its
        own bias is the caller's to add): per-channel weights [K, O] and per-encoder offsets
        [P, O], ``layer(edge_fts) = Σ_p x_p @ weights_p + offsets_p + bias``."""
        return (jnp.matmul(self.kernel, kernel, precision=_HIGHEST),
                jnp.matmul(self.biases, kernel, precision=_HIGHEST))

    def expand(self, weights: Array, offsets: Array, transpose: bool = False) -> Array:
        """``Σ_p x_p @ weights_p + offsets_p`` [B, n, n, O] (``transpose``: edge (i, j) reads the
        channels of (j, i)); see :func:`_expand` for how it is computed and differentiated."""
        channels = jnp.swapaxes(self.channels, 1, 2) if transpose else self.channels
        return _expand(self.groups, channels, weights, offsets)

    def attend(self, coefs: Array, weights: Array, offsets: Array) -> Array:
        """``Σ_j coefs[b, h, i, j] · layer(e_ij)`` per head [B, heads, N, O / heads] without
        forming ``layer(e_ij)``: per encoder, ``(Σ_j coefs_ij x_p,ij) @ weights_p`` plus
        ``(Σ_j coefs_ij) offsets_p``."""
        heads = coefs.shape[1]
        mixed = jnp.einsum("bhij,bijk->bhik", coefs, self.channels, precision=_HIGHEST)
        mass = coefs.sum(-1)                                              # [B, heads, N]
        total = None
        for p, part in enumerate(_group_slices(self.groups)):
            w = weights[part].reshape(part.stop - part.start, heads, -1)
            term = (jnp.einsum("bhik,khf->bhif", mixed[..., part], w, precision=_HIGHEST)
                    + mass[..., None] * offsets[p].reshape(heads, -1)[None, :, None, :])
            total = term if total is None else total + term
        return total



@dataclasses.dataclass(frozen=True)
class NetConfig:
    """The static shape of a network: the probe table and the architecture flags."""

    probe_rows: tuple[tuple[str, ProbeSpec], ...]   # the probe table, as hashable rows
    hidden_size: int = 128
    nb_heads: int = 1
    nb_msg_passing_steps: int = 1
    use_ln: bool = True
    encode_hints: bool = True
    decode_hints: bool = True
    encoder_init: str = "xavier_on_scalars"
    dropout_prob: float = 0.0
    hint_teacher_forcing: float = 0.0
    use_edge_info: bool = False
    use_pre_att_bias: bool = False
    simplify_decoders: bool = False
    tied_size: int | None = None
    edge_path: str = "auto"      # rules.EDGE_PATHS: how layers reading edge features compute (above)
    attention: str = "graph"     # rules.ATTENTION_SCOPES: "graph" (dm-clrs gatv2) or "full" (gatv2_full)

    def __post_init__(self):
        if self.edge_path not in rules.EDGE_PATHS:
            raise GapsweepError(f"edge_path: {self.edge_path!r} is not allowed; allowed: "
                                f"{', '.join(rules.EDGE_PATHS)}")
        if self.attention not in rules.ATTENTION_SCOPES:
            raise GapsweepError(f"attention: {self.attention!r} is not allowed; allowed: "
                                f"{', '.join(rules.ATTENTION_SCOPES)}")

    @property
    def probe_table(self) -> dict[str, ProbeSpec]:
        return dict(self.probe_rows)

    @property
    def edge_channels(self) -> int:
        """K: how many scalar channels the encoded probes write into the edge features (a node
        pointer or an edge scalar / mask one, an edge pointer two, an edge categorical one per
        class)."""
        k = 0
        for _, row in self.encoded():
            if row.location == "node" and row.type == "pointer":
                k += 1
            elif row.location == "edge":
                k += 2 if row.type == "pointer" else \
                    (row.num_classes if row.type == "categorical" else 1)
        return k

    @property
    def low_rank_edges(self) -> bool:
        """Whether this network takes the low-rank edge path (``auto``: where K < H)."""
        if self.edge_path == "auto":
            return 0 < self.edge_channels < self.hidden_size
        return self.edge_path == "low_rank"

    def encoded(self) -> list[tuple[str, ProbeSpec]]:
        return [(n, r) for n, r in self.probe_rows
                if r.stage == "input" or (r.stage == "hint" and self.encode_hints)]

    def decoded(self) -> list[tuple[str, ProbeSpec]]:
        return [(n, r) for n, r in self.probe_rows
                if r.stage == "output" or (r.stage == "hint" and self.decode_hints)]

    def hints(self) -> list[tuple[str, ProbeSpec]]:
        return [(n, r) for n, r in self.probe_rows if r.stage == "hint"]


class Encoders(nn.Module):
    """Linear encoders summed into node, edge and graph features; the adjacency matrix as CLRS
    builds it (identity, `adj`-style edge masks and pointer edges, symmetrised). On the low-rank
    path the edge features come back as :class:`LowRankEdges` (the same sum, kept factored)."""

    net_config: NetConfig

    @nn.compact
    def __call__(self, probes: Mapping[str, Array], batch: int, n: int):
        h = self.net_config.hidden_size
        low_rank = self.net_config.low_rank_edges
        node = jnp.zeros((batch, n, h))
        edge = jnp.zeros((batch, n, n, h))
        channels, kernels, biases, groups = [], [], [], []    # the low-rank path's edges
        graph = jnp.zeros((batch, h))
        adj = jnp.broadcast_to(jnp.eye(n), (batch, n, n))
        for name, row in self.net_config.encoded():
            data = probes[name]  # pointers arrive one-hot (or soft) over the last axis
            if self.net_config.encoder_init == "xavier_on_scalars" and row.stage == "hint" \
                    and row.type == "scalar":
                init = scaled_truncated_normal(1.0 / jnp.sqrt(h))
            else:
                init = haiku_linear_init
            is_pointer = row.type == "pointer"
            # adjacency (encoders.accum_adj_mat)
            if row.location == "node" and is_pointer:
                adj = adj + ((data + jnp.swapaxes(data, 1, 2)) > 0.5)
            elif row.location == "edge" and row.type == "mask":
                adj = adj + ((data + jnp.swapaxes(data, 1, 2)) > 0.0)
            adj = (adj > 0.0).astype(jnp.float32)
            x = data if row.type == "categorical" else data[..., None]
            writes_edges = row.location == "edge" or (row.location == "node" and is_pointer)
            if low_rank and writes_edges:
                kernel, bias = DenseParams(h, x.shape[-1], name=name, kernel_init=init)()
                if row.location == "edge" and is_pointer:   # the means of x ⊗ w + b, below
                    second, second_bias = DenseParams(h, 1, name=f"{name}_2", kernel_init=init)()
                    channels += [jnp.mean(data, axis=1)[..., None], jnp.mean(data, axis=2)[..., None]]
                    kernels += [kernel, second]
                    biases += [bias, second_bias]
                    groups += [1, 1]
                else:
                    channels.append(x)
                    kernels.append(kernel)
                    biases.append(bias)
                    groups.append(x.shape[-1])
                continue
            encoding = dense(h, name, kernel_init=init)(x)
            # features (encoders.accum_edge_fts / accum_node_fts / accum_graph_fts)
            if row.location == "node" and is_pointer:
                edge = edge + encoding
            elif row.location == "edge":
                if is_pointer:
                    second = dense(h, f"{name}_2", kernel_init=init)(data[..., None])
                    edge = edge + jnp.mean(encoding, axis=1) + jnp.mean(second, axis=2)
                else:
                    edge = edge + encoding
            elif (row.location == "node" and not is_pointer) or \
                    (row.location == "graph" and is_pointer):
                node = node + encoding
            elif row.location == "graph":
                graph = graph + encoding
        if low_rank:
            edge = LowRankEdges(jnp.concatenate(channels, axis=-1), jnp.concatenate(kernels),
                                jnp.stack(biases), tuple(groups))
        return node, edge, graph, adj


class GATv2(nn.Module):
    """dm-clrs's GATv2 processor (processors.GATv2) with the paper's optional modifications."""

    net_config: NetConfig

    @nn.compact
    def __call__(self, node_fts, edge_fts, graph_fts, adj, hidden):
        net_config = self.net_config
        b, n, _ = node_fts.shape
        out, heads = net_config.hidden_size, net_config.nb_heads
        head_size = out // heads
        z = jnp.concatenate([node_fts, hidden], axis=-1)
        bias_mat = jnp.transpose(jnp.repeat(((adj - 1.0) * 1e9)[..., None], heads, -1),
                                 (0, 3, 1, 2))                            # [B, H, N, N]
        values = dense(out, "W_value")(z).reshape(b, n, heads, head_size)
        values = jnp.transpose(values, (0, 2, 1, 3))                       # [B, H, N, F]
        if isinstance(edge_fts, LowRankEdges):
            logits = self._low_rank_logits(z, edge_fts, graph_fts, head_size)
        else:
            pre_att = (dense(out, "W_p1")(z)[:, None, :, :]                   # sender j
                       + dense(out, "W_p2")(z)[:, :, None, :]                 # receiver i
                       + dense(out, "W_edge")(edge_fts)                       # e_ij
                       + dense(out, "W_graph")(graph_fts)[:, None, None, :])  # [B, N, N, out]
            if net_config.use_pre_att_bias:
                pre_att = pre_att + self._pre_att_bias()[None, :, :, None]
            pre_att = jnp.transpose(pre_att.reshape(b, n, n, heads, head_size), (0, 3, 1, 2, 4))
            logits = jnp.stack(
                [dense(1, f"a_{k}")(jax.nn.leaky_relu(pre_att[:, k]))[..., 0] for k in range(heads)],
                axis=1)                                                       # [B, H, N, N]
        coefs = jax.nn.softmax(logits + bias_mat, axis=-1)
        ret = jnp.matmul(coefs, values)                                   # [B, H, N, F]
        ret = jnp.transpose(ret, (0, 2, 1, 3)).reshape(b, n, out)
        if net_config.use_edge_info:  # paper eq. 15-16
            if isinstance(edge_fts, LowRankEdges):
                agg = self._low_rank_edge_info(coefs, edge_fts, head_size)
            else:
                e_mid = dense(out, "W_info", use_bias=False)(edge_fts).reshape(b, n, n, heads, head_size)
                agg = jnp.einsum("bhij,bijhf->bihf", coefs, e_mid).reshape(b, n, out)
            ret = ret + dense(out, "W_reduce", use_bias=False)(agg)
        ret = ret + dense(out, "W_skip")(z)
        ret = jax.nn.relu(ret)
        if net_config.use_ln:
            ret = nn.LayerNorm(epsilon=1e-5, use_fast_variance=False, name="ln")(ret)
        return ret, coefs

    def _pre_att_bias(self):
        size = self.net_config.tied_size
        return self.param("pre_att_bias", nn.initializers.zeros, (size, size))

    def _low_rank_logits(self, z, edges: LowRankEdges, graph_fts, head_size: int):
        """The attention logits [B, heads, N, N] without forming ``W_edge(edge_fts)``:
        leaky_relu(p1_j + p2_i + c + Σ_p x_p,ij (w_p W_edge) + b_p W_edge) · a_k + b_k per head
        (:func:`_edge_logits`)."""
        out, heads = self.net_config.hidden_size, self.net_config.nb_heads
        edge_kernel, edge_bias = DenseParams(out, out, name="W_edge")()
        weights, offsets = edges.through(edge_kernel)
        offset = edge_bias + dense(out, "W_graph")(graph_fts)            # [B, out]
        receiver = dense(out, "W_p2")(z) + offset[:, None, :]             # [B, N, out]
        sender = dense(out, "W_p1")(z)
        a = [DenseParams(1, head_size, name=f"a_{k}")() for k in range(heads)]
        a_kernel = jnp.concatenate([k for k, _ in a], axis=1)             # [F, heads]
        a_bias = jnp.concatenate([b for _, b in a])                       # [heads]
        pre_att_bias = self._pre_att_bias() if self.net_config.use_pre_att_bias else None
        return _edge_logits(edges.groups, sender, receiver, edges.channels, weights, offsets,
                            a_kernel, a_bias, pre_att_bias)

    def _low_rank_edge_info(self, coefs, edges: LowRankEdges, head_size: int):
        """Σ_j coefs_ij W_info(e_ij) [B, N, out] from contractions over the K edge channels
        (``LowRankEdges.attend``), no [B, N, N, out] tensor."""
        out = self.net_config.hidden_size
        b, n = coefs.shape[0], coefs.shape[2]
        info_kernel, _ = DenseParams(out, out, use_bias=False, name="W_info")()
        agg = edges.attend(coefs, *edges.through(info_kernel))           # [B, heads, N, F]
        return jnp.transpose(agg, (0, 2, 1, 3)).reshape(b, n, out)


class Decoder(nn.Module):
    """One probe's decoder (decoders.construct_decoders / _decode_*_fts) for this project's types."""

    net_config: NetConfig
    row: ProbeSpec

    @nn.compact
    def __call__(self, h_t, edge_fts, graph_fts):
        h, row = self.net_config.hidden_size, self.row
        if row.location == "node":
            if row.type in ("scalar", "mask", "mask_one"):
                return dense(1, "W_1")(h_t)[..., 0]
            if row.type == "categorical":
                return dense(row.num_classes, "W_1")(h_t)
            if row.type == "pointer":
                if self.net_config.simplify_decoders:
                    n = self.net_config.tied_size
                    return -1000.0 * jnp.maximum(dense(n, "W_1")(h_t), dense(n, "W_2")(h_t))
                p_1 = dense(h, "W_1")(h_t)                                # receiver i
                p_2 = dense(h, "W_2")(h_t)                                # candidate j
                if isinstance(edge_fts, LowRankEdges):
                    return self._low_rank_pointer(p_1, p_2, edge_fts)
                p_3 = dense(h, "W_e")(edge_fts)
                p_e = p_2[:, :, None, :] + p_3                            # [B, j, i, H] = p2_j + e_ji
                p_m = jnp.maximum(p_1[:, :, None, :], jnp.transpose(p_e, (0, 2, 1, 3)))
                return dense(1, "w_out")(p_m)[..., 0]                    # [B, i, j]
        if row.location == "graph" and row.type in ("scalar", "mask", "mask_one", "categorical"):
            out = 1 if row.type != "categorical" else row.num_classes
            pred = dense(out, "W_n")(jnp.max(h_t, axis=-2)) + dense(out, "W_g")(graph_fts)
            return pred if row.type == "categorical" else pred[..., 0]
        raise NotImplementedError(f"no decoder for a {row.location} {row.type} probe ({row})")

    def _low_rank_pointer(self, p_1, p_2, edges: LowRankEdges):
        """Node-pointer logits [B, i, j] = w_out · max(p1_i, p2_j + W_e(e_ji)) + b without forming
        ``W_e(edge_fts)`` (:func:`_pointer_logits`)."""
        h = self.net_config.hidden_size
        edge_kernel, edge_bias = DenseParams(h, h, name="W_e")()
        out_kernel, out_bias = DenseParams(1, h, name="w_out")()
        weights, offsets = edges.through(edge_kernel)
        return _pointer_logits(edges.groups, p_1, p_2 + edge_bias, edges.channels, weights,
                               offsets, out_kernel, out_bias)


class Step(nn.Module):
    """One step of dm-clrs's ``Net._one_step_pred``: encode, process, dropout, decode."""

    net_config: NetConfig

    @nn.compact
    def __call__(self, probes: Mapping[str, Array], hidden: Array, train: bool):
        b, n = hidden.shape[:2]
        node, edge, graph, adj = Encoders(self.net_config, name="encoders")(probes, b, n)
        processor = GATv2(self.net_config, name="processor")
        if self.net_config.attention == "full":     # dm-clrs's GATv2Full: every pair attends
            adj = jnp.ones_like(adj)
        nxt = hidden
        for _ in range(self.net_config.nb_msg_passing_steps):
            nxt, coefs = processor(node, edge, graph, adj, nxt)
        if train and self.net_config.dropout_prob > 0:
            nxt = nn.Dropout(self.net_config.dropout_prob, deterministic=False)(nxt)
        h_t = jnp.concatenate([node, hidden, nxt], axis=-1)
        preds = Decoders(self.net_config, name="decoders")(h_t, edge, graph)
        return nxt, preds, coefs


class Decoders(nn.Module):
    """Every decoded probe's decoder, named after the probe."""

    net_config: NetConfig

    @nn.compact
    def __call__(self, h_t, edge, graph):
        return {name: Decoder(self.net_config, row, name=name)(h_t, edge, graph)
                for name, row in self.net_config.decoded()}
