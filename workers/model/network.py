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
  (pointer hints and inputs, ``adj``, ``A``, …), ``edge_fts = X W + b`` with X [B, n, n, K]. So
  ``edge_fts W' + b' = X (W W') + (b W' + b')``: K·H instead of H·H per edge (:class:`LowRankEdges`).
  The [B, n, n, H] work left (the pre-attention sum, leaky ReLU and logit dot; the decoders'
  max and ``w_out`` dot) is written as elementwise work feeding a reduction over H, which XLA
  fuses into one loop that never writes the [B, n, n, H] tensor.

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


EDGE_PATHS = ("auto", "low_rank", "materialised")
_HIGHEST = jax.lax.Precision.HIGHEST
_UNROLLED_CHANNELS = 16     # up to this many edge channels are summed as broadcasts (fusible)


@dataclasses.dataclass(frozen=True)
class LowRankEdges:
    """Edge features ``channels @ kernel + bias`` kept factored: ``channels`` [B, n, n, K] (the
    encoded edge probes' values), ``kernel`` [K, H] (their encoders' weights stacked), ``bias``
    [H] (their biases summed). Never materialised by the low-rank path."""

    channels: Array
    kernel: Array
    bias: Array

    def through(self, kernel: Array, bias: Array | None = None) -> tuple[Array, Array]:
        """The composed map of a Dense layer applied to these features: per-channel weights
        [K, O] and offset [O], so ``layer(edge_fts) = channels @ weights + offset``."""
        weights = jnp.matmul(self.kernel, kernel, precision=_HIGHEST)
        offset = jnp.matmul(self.bias, kernel, precision=_HIGHEST)
        return weights, offset if bias is None else offset + bias

    def expand(self, weights: Array, transpose: bool = False) -> Array:
        """``channels @ weights`` [B, n, n, O] (``transpose``: edge (i, j) reads channel (j, i)),
        as broadcast multiply-adds that XLA fuses into whatever consumes them."""
        channels = jnp.swapaxes(self.channels, 1, 2) if transpose else self.channels
        k = channels.shape[-1]
        if k > _UNROLLED_CHANNELS:
            return jnp.einsum("bijk,ko->bijo", channels, weights, precision=_HIGHEST)
        total = channels[..., 0, None] * weights[0]
        for c in range(1, k):
            total = total + channels[..., c, None] * weights[c]
        return total

    def materialise(self) -> Array:
        return self.expand(self.kernel) + self.bias


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
    edge_path: str = "auto"      # EDGE_PATHS: how layers reading edge features compute (above)

    def __post_init__(self):
        if self.edge_path not in EDGE_PATHS:
            raise GapsweepError(f"edge_path: {self.edge_path!r} is not allowed; allowed: "
                                f"{', '.join(EDGE_PATHS)}")

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
        channels, kernels, biases = [], [], []    # the low-rank path's edge channels
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
                else:
                    channels.append(x)
                    kernels.append(kernel)
                    biases.append(bias)
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
                                functools.reduce(jnp.add, biases))
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
        """The attention logits [B, heads, N, N] without forming ``W_edge(edge_fts)``: per head,
        leaky_relu(p1_j + p2_i + X_ij (W W_edge) + c) · a + a_b, one fused loop over the edges."""
        out, heads = self.net_config.hidden_size, self.net_config.nb_heads
        edge_kernel, edge_bias = DenseParams(out, out, name="W_edge")()
        weights, offset = edges.through(edge_kernel, edge_bias)
        offset = offset + dense(out, "W_graph")(graph_fts)                # [B, out]
        pre_att = (dense(out, "W_p1")(z)[:, None, :, :] + dense(out, "W_p2")(z)[:, :, None, :]
                   + edges.expand(weights) + offset[:, None, None, :])
        if self.net_config.use_pre_att_bias:
            pre_att = pre_att + self._pre_att_bias()[None, :, :, None]
        logits = []
        for k in range(heads):
            a_kernel, a_bias = DenseParams(1, head_size, name=f"a_{k}")()
            head = jax.nn.leaky_relu(pre_att[..., k * head_size:(k + 1) * head_size])
            logits.append(jnp.sum(head * a_kernel[:, 0], axis=-1) + a_bias[0])
        return jnp.stack(logits, axis=1)

    def _low_rank_edge_info(self, coefs, edges: LowRankEdges, head_size: int):
        """Σ_j coefs_ij W_info(e_ij) [B, N, out] as Σ_k (Σ_j coefs_ij x_ijk) (w_k W_info) plus
        (Σ_j coefs_ij) (b W_info): contractions over the K channels, no [B, N, N, out] tensor."""
        out, heads = self.net_config.hidden_size, self.net_config.nb_heads
        b, n = coefs.shape[0], coefs.shape[2]
        info_kernel, _ = DenseParams(out, out, use_bias=False, name="W_info")()
        weights, offset = edges.through(info_kernel)                      # [K, out], [out]
        k = weights.shape[0]
        mixed = jnp.einsum("bhij,bijk->bhik", coefs, edges.channels, precision=_HIGHEST)
        agg = (jnp.einsum("bhik,khf->bihf", mixed, weights.reshape(k, heads, head_size),
                          precision=_HIGHEST)
               + jnp.einsum("bhi,hf->bihf", coefs.sum(-1), offset.reshape(heads, head_size)))
        return agg.reshape(b, n, out)


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
        ``W_e(edge_fts)``: one fused loop over the edges reduced over H."""
        h = self.net_config.hidden_size
        edge_kernel, edge_bias = DenseParams(h, h, name="W_e")()
        weights, offset = edges.through(edge_kernel, edge_bias)
        out_kernel, out_bias = DenseParams(1, h, name="w_out")()
        candidates = p_2[:, None, :, :] + edges.expand(weights, transpose=True) + offset  # [B, i, j, H]
        return jnp.sum(jnp.maximum(p_1[:, :, None, :], candidates) * out_kernel[:, 0], axis=-1) \
            + out_bias[0]


class Step(nn.Module):
    """One step of dm-clrs's ``Net._one_step_pred``: encode, process, dropout, decode."""

    net_config: NetConfig

    @nn.compact
    def __call__(self, probes: Mapping[str, Array], hidden: Array, train: bool):
        b, n = hidden.shape[:2]
        node, edge, graph, adj = Encoders(self.net_config, name="encoders")(probes, b, n)
        processor = GATv2(self.net_config, name="processor")
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
