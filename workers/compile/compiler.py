"""Compile a graph program into a complete parameter pytree of this project's network.

How one GATv2 step executes one round of the program (``H`` = hidden size):

- Encoders write one feature channel per program variable: node inputs and state components
  (``node``), edge inputs, the pointer hint (one-hot: "j is i's pointer") and "not an edge"
  (``edge``). 0/1 state components are carried complemented (``not_visit``), so every masking and
  gating term is exactly 0 on reached nodes and the values that pass through stay exact.
- Attention realises the selection. The pre-attention units hold the logit
  ``x = -C·(1 - mask) + P·pointer·[prefer] - c·minimize + τ·pointer·[tie] - E·not_edge``
  twice, as ``leaky(x)`` and ``leaky(-x)`` (their difference is 1.01·x: linear), plus, for a
  conditional preference ``g(self)``, ``leaky(K·(pointer + g - 1)) - leaky(K·(pointer - 1))``
  (K·pointer where g = 1, nothing where g = 0). The scales are far apart (C ≫ P ≫ c·range ≫ τ),
  so the softmax is one-hot: min / argmin and masks by large constants. Their magnitudes are a
  style's (``styles.py``: ``exact``, powers of two up to 2^35; ``paper``, powers of ten with the
  paper's pointer decoder c' = 1e3), times ``compile_scale``.
- Values (``W_value``: other's variables), edge information (``W_info``/``W_reduce``: the selected
  edge's variables), the skip connection (``W_skip``: self's variables and constants) sum to each
  component's update; ``unless`` subtracts ``M·condition`` before the processor's ReLU.
- Decoders: 0/1 components as ±1024 logits, scalars as they are, pointers by matching the stored
  ``idx`` against every node's ``idx``: ``-c'·|v_i - idx_j| = -c'·(2·max(v_i, idx_j) - v_i - idx_j)``
  (paper eq. 20), three units of the pointer decoder's ``max``.

A program compiles for any hidden size that holds its channels (4 for BFS and Bellman-Ford); larger
sizes get the same weights with the remaining units zero. Size-tied parameters (``pre_att_bias``,
``simplify_decoders``' n-way heads) are compiled for one graph size with positions ``j / n``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from workers.compile.graph_program import Expr, GraphProgram, ProgramError, Unless
from workers.compile.styles import EXACT_STYLE, CompileStyle
from workers.model.forward import as_features
from workers.model.network import NetConfig, Step

LEAKY_SLOPE = 0.01           # jax.nn.leaky_relu's default, which the processor uses


@dataclasses.dataclass(frozen=True)
class Layout:
    """Which variable each channel holds (for ``--show`` and the hidden-state checks)."""

    node: tuple[str, ...]        # node-feature channels
    edge: tuple[str, ...]        # edge-feature channels
    hidden: tuple[str, ...]      # processor output units (the program's state)
    attention: tuple[str, ...]   # pre-attention units


def layout(program: GraphProgram, net_config: NetConfig) -> Layout:
    probe_table = net_config.probe_table
    node = [*program.inputs] + [f"not_{name}" if _is_flag(probe_table[probe].type) else name
                               for name, probe in program.state.items()]
    edge = [*program.edges, "pointer", "not_edge"]
    hidden = [*program.state, program.pointer.name]
    attention = ["x", "-x"] + (["pointer_if", "pointer"] if callable(program.select.prefer_pointer)
                               else [])
    return Layout(tuple(node), tuple(edge), tuple(hidden), tuple(attention))


def _is_flag(probe_type: str) -> bool:
    return probe_type in ("mask", "mask_one")


def check_compilable(program: GraphProgram, net_config: NetConfig) -> None:
    """Raise ProgramError naming what stands in the way of compiling ``program`` into ``net_config``."""
    probe_table = net_config.probe_table
    problems = []
    missing = sorted(p for p in program.probes() if p not in probe_table)
    if missing:
        problems.append(f"the spec table of {program.algorithm} has no probe(s) {missing}")
    if net_config.use_ln:
        problems.append("use_ln must be false (layer norm would mix the state components)")
    if not (net_config.encode_hints and net_config.decode_hints):
        problems.append("hint_mode must be encoded_decoded (the state travels in the hints)")
    if net_config.nb_heads != 1 or net_config.nb_msg_passing_steps != 1:
        problems.append("nb_heads and nb_msg_passing_steps must be 1")
    if problems:
        raise ProgramError(f"cannot compile {program.algorithm}: " + "; ".join(problems))
    if net_config.hidden_size < program.minimum_hidden_size:
        raise ProgramError(f"cannot compile {program.algorithm} at hidden_size {net_config.hidden_size}: "
                           f"it needs at least {program.minimum_hidden_size} units")
    if program.reads_edges_in_update and not net_config.use_edge_info:
        raise ProgramError(f"cannot compile {program.algorithm}: its update reads the selected "
                           "edge, which needs use_edge_info: true (W_info / W_reduce)")
    for name, probe in program.state.items():
        if probe_table[probe].type not in ("scalar", "mask", "mask_one") or probe_table[probe].location != "node":
            raise ProgramError(f"state {name!r} rides on {probe!r}, a {probe_table[probe].location} "
                               f"{probe_table[probe].type} probe; only node scalars and masks carry state")
    if probe_table[program.pointer.hint].type != "pointer" or probe_table[program.pointer.output].type != "pointer":
        raise ProgramError(f"the pointer {program.pointer.name!r} must ride on pointer probes")


def _range(program: GraphProgram, net_config: NetConfig, expr: Expr) -> tuple[float, float]:
    """Bounds of a linear expression from the variables' bounds (flags and idx lie in [0, 1])."""
    probe_table = net_config.probe_table
    lo = hi = expr.const
    for (scope, name), coef in expr.terms.items():
        probe = {**program.inputs, **program.state, **program.edges}[name]
        if _is_flag(probe_table[probe].type) or name == program.pointer.target:
            top = 1.0
        elif name in program.bounds:
            top = float(program.bounds[name])
        else:
            raise ProgramError(f"{program.algorithm}: {scope}.{name} is minimised but has no bound; "
                               f"add bounds={{'{name}': …}} to the program")
        lo, hi = lo + min(0.0, coef * top), hi + max(0.0, coef * top)
    return lo, hi


def _pow2_floor(x: float) -> float:
    return 2.0 ** math.floor(math.log2(x))


def _pow2_ceil(x: float) -> float:
    return 2.0 ** math.ceil(math.log2(max(x, 1e-30)))


class _Lowering:
    """Linear expressions → weight rows over the node / edge channels."""

    def __init__(self, program: GraphProgram, net_config: NetConfig, lay: Layout):
        self.program, self.net_config, self.lay = program, net_config, lay
        self.flags = {name for name, probe in program.state.items()
                      if _is_flag(net_config.probe_table[probe].type)}

    def node(self, expr: Expr, scope: str) -> tuple[np.ndarray, float]:
        """The weight row of ``expr``'s ``scope`` variables and the constant that complemented
        flags add (``expr.const`` itself is the caller's to add, once)."""
        row, const = np.zeros(self.net_config.hidden_size), 0.0
        for (s, name), coef in expr.terms.items():
            if s != scope:
                continue
            if name in self.flags:      # coef · x = coef - coef · not_x
                row[self.lay.node.index(f"not_{name}")] -= coef
                const += coef
            else:
                row[self.lay.node.index(name)] += coef
        return row, const

    def edge(self, expr: Expr) -> np.ndarray:
        row = np.zeros(self.net_config.hidden_size)
        for (s, name), coef in expr.terms.items():
            if s == "edge":
                row[self.lay.edge.index(name)] += coef
        return row


def param_shapes(net_config: NetConfig, nb_nodes: int):
    """The parameter pytree's shapes for graphs of ``nb_nodes`` (only size-tied leaves depend on it)."""
    probes = {}
    for name, row in net_config.probe_rows:
        shape = {"node": (1, nb_nodes), "edge": (1, nb_nodes, nb_nodes), "graph": (1,)}[row.location]
        if row.type == "categorical":
            shape = shape + (row.num_classes,)
        probes[name] = jnp.zeros(shape, jnp.int32 if row.type == "pointer" else jnp.float32)
    feats = as_features(net_config, probes, nb_nodes)
    hidden = jnp.zeros((1, nb_nodes, net_config.hidden_size))
    variables = jax.eval_shape(lambda: Step(net_config).init(
        {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)}, feats, hidden, False))
    return variables["params"]


def compile_program(program: GraphProgram, net_config: NetConfig, nb_nodes: int | None = None,
                    style: CompileStyle = EXACT_STYLE) -> dict:
    """The parameters (NumPy float32, the network's own pytree) that execute ``program``, built
    with ``style``'s constants (``styles.py``).

    ``nb_nodes`` is needed only for size-tied parameters (``net_config.tied_size`` is used if set)."""
    check_compilable(program, net_config)
    block = pattern_block(program)
    if style.tile and not net_config.tied_size and net_config.hidden_size >= 2 * block:
        small = dataclasses.replace(net_config, hidden_size=block)
        return tile_pattern(compile_program(program, small, nb_nodes, style), block,
                            net_config.hidden_size)
    n = nb_nodes or net_config.tied_size or 16
    if net_config.tied_size and n != net_config.tied_size:
        raise ProgramError(f"this network's size-tied parameters are for n = {net_config.tied_size}, "
                           f"not {n}")
    lay = layout(program, net_config)
    low = _Lowering(program, net_config, lay)
    h = net_config.hidden_size
    params = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, np.float32), param_shapes(net_config, n))

    # -- encoders: one channel per variable ------------------------------------------------
    enc = params["encoders"]
    adj_probe = next((name for name, row in net_config.probe_rows if row.stage == "input"
                      and row.location == "edge" and row.type == "mask"), None)
    if adj_probe is None:
        raise ProgramError(f"{program.algorithm} has no edge-mask input (adj) to mark edges with")
    for name, probe in program.inputs.items():
        enc[probe]["kernel"][0, lay.node.index(name)] = 1.0
    for name, probe in program.state.items():
        if name in low.flags:
            enc[probe]["kernel"][0, lay.node.index(f"not_{name}")] = -1.0
            enc[probe]["bias"][lay.node.index(f"not_{name}")] = 1.0
        else:
            enc[probe]["kernel"][0, lay.node.index(name)] = 1.0
    for name, probe in program.edges.items():
        enc[probe]["kernel"][0, lay.edge.index(name)] = 1.0
    enc[program.pointer.hint]["kernel"][0, lay.edge.index("pointer")] = 1.0
    enc[adj_probe]["kernel"][0, lay.edge.index("not_edge")] = -1.0
    enc[adj_probe]["bias"][lay.edge.index("not_edge")] = 1.0

    # -- attention: the selection ------------------------------------------------------------
    proc = params["processor"]
    sel = program.trace_select()
    lo, hi = _range(program, net_config, sel["minimize"])
    c = style.key_budget / max(hi - lo, 1e-6)
    if style.pow2:
        c = _pow2_floor(c)
    x_sender, x_edge, x_bias = np.zeros(h), np.zeros(h), 0.0
    for expr in (sel["mask"] * style.mask - style.mask, sel["minimize"] * -c):   # -C·(1 - mask) - c·key
        row, const = low.node(expr, "other")
        x_sender += row
        x_bias += const + expr.const
    x_edge += low.edge(sel["minimize"] * -c)
    pointer = lay.edge.index("pointer")
    if program.select.prefer_pointer is True:
        x_edge[pointer] += style.pointer_preference
    if program.select.tie_break == "pointer":
        x_edge[pointer] += style.tie
    x_edge[lay.edge.index("not_edge")] -= style.not_edge
    for unit, sign in ((0, 1.0), (1, -1.0)):
        proc["W_p1"]["kernel"][:h, unit] = sign * x_sender
        proc["W_p1"]["bias"][unit] = sign * x_bias
        proc["W_edge"]["kernel"][:, unit] = sign * x_edge
        proc["a_0"]["kernel"][unit, 0] = sign
    if sel["prefer_pointer"] is not None:
        # leaky(K (pointer + g - 1)) - leaky(K (pointer - 1)) = K·pointer·g, up to a per-receiver
        # constant; K so that it matches P on the 1.01·x scale of the linear units
        k = style.pointer_preference * (1 + LEAKY_SLOPE) / (1 - LEAKY_SLOPE)
        g = sel["prefer_pointer"] * k
        row, const = low.node(g, "self")
        proc["W_p2"]["kernel"][:h, 2] = row
        proc["W_p1"]["bias"][2] = const + g.const - k
        proc["W_edge"]["kernel"][pointer, 2] = k
        proc["W_p1"]["bias"][3] = -k
        proc["W_edge"]["kernel"][pointer, 3] = k
        proc["a_0"]["kernel"][2, 0] = 1.0
        proc["a_0"]["kernel"][3, 0] = -1.0

    # -- values, edge information and skip: the update ------------------------------------------
    for name, update in program.trace_update().items():
        unit = lay.hidden.index(name)
        value = update.value if isinstance(update, Unless) else update
        if isinstance(update, Unless):
            top = _range(program, net_config, value)[1] if value.terms else value.const
            gate = _pow2_ceil(2.0 * max(top, 1.0))
            value = value - update.condition * gate
        if value.scopes() - {"self", "other", "edge"}:
            raise ProgramError(f"update of {name!r} reads {value.scopes()}")
        row, const_other = low.node(value, "other")
        proc["W_value"]["kernel"][:h, unit] = row
        row, const_self = low.node(value, "self")
        proc["W_skip"]["kernel"][:h, unit] = row
        proc["W_skip"]["bias"][unit] = value.const + const_other + const_self
        edge_row = low.edge(value)
        if edge_row.any():
            proc["W_info"]["kernel"][:, unit] = edge_row
            proc["W_reduce"]["kernel"][unit, unit] = 1.0

    # -- decoders ---------------------------------------------------------------------------------
    dec = params["decoders"]
    nxt = 2 * h                                    # h_t = [node features | hidden | new hidden]
    target = lay.node.index(program.pointer.target)
    for probe in (program.pointer.hint, program.pointer.output):
        if probe not in dec:
            continue
        p = dec[probe]
        v = nxt + lay.hidden.index(program.pointer.name)
        if net_config.simplify_decoders:
            # -1000 · max(s (v_i - pos_j), s (pos_j - v_i)) with the positions of size n
            pos = np.arange(n) / n
            s = style.simple_pointer_sharpness / 1000.0
            p["W_1"]["kernel"][v, :] = s
            p["W_1"]["bias"][:] = -s * pos
            p["W_2"]["kernel"][v, :] = -s
            p["W_2"]["bias"][:] = s * pos
            continue
        far = 4.0
        p["W_1"]["kernel"][v, 0] = p["W_1"]["kernel"][v, 1] = 1.0     # v_i, v_i, -far
        p["W_1"]["bias"][2] = -far
        p["W_2"]["kernel"][target, 0] = p["W_2"]["kernel"][target, 2] = 1.0   # idx_j, -far, idx_j
        p["W_2"]["bias"][1] = -far
        p["w_out"]["kernel"][:3, 0] = -style.pointer_sharpness * np.array([2.0, -1.0, -1.0])
    for name, probe in program.state.items():
        if probe not in dec:
            continue
        unit = nxt + lay.hidden.index(name)
        if name in low.flags:
            dec[probe]["W_1"]["kernel"][unit, 0] = 2.0 * style.mask_logit
            dec[probe]["W_1"]["bias"][0] = -style.mask_logit
        else:
            dec[probe]["W_1"]["kernel"][unit, 0] = 1.0
    undecoded = [name for name, _ in net_config.decoded()
                 if name not in (program.pointer.hint, program.pointer.output)
                 and name not in program.state.values()]
    if undecoded:
        raise ProgramError(f"{program.algorithm}'s program produces no value for {undecoded}")
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), params)


def pattern_block(program: GraphProgram) -> int:
    """The units one copy of a program's pattern takes: its minimum hidden size rounded up to a
    power of two (so that dividing by the copies is exact in binary)."""
    return 1 << (program.minimum_hidden_size - 1).bit_length()


def tile_pattern(params: dict, block: int, hidden_size: int) -> dict:
    """``params`` of a network of hidden size ``block`` extended to ``hidden_size``: every hidden
    unit repeated ``copies = hidden_size // block`` times (the rest zero), every layer that reads
    hidden units divided by ``copies``, so that the network computes the same function with every
    unit in use. Encoders' kernels read a probe (axis 0), every other kernel's axis 0 reads one
    or more blocks of hidden units (z = [node features ‖ hidden], h_t = [… ‖ hidden ‖ new]); an
    axis 1 or a bias of ``block`` entries writes them. Not for size-tied networks."""
    copies = hidden_size // block

    def spread(x: np.ndarray, axis: int, divide: bool) -> np.ndarray:
        pieces = []
        for part in np.split(x, x.shape[axis] // block, axis=axis):
            pad = list(part.shape)
            pad[axis] = hidden_size - copies * block
            pieces += [part / copies if divide else part] * copies + [np.zeros(pad, x.dtype)]
        return np.concatenate(pieces, axis=axis)

    def tile(path, x):
        keys = [getattr(k, "key", None) for k in path]
        x = np.asarray(x)
        if keys[-1] == "bias":
            return spread(x, 0, False) if x.shape[0] == block else x
        if keys[0] != "encoders" and x.shape[0] % block == 0:
            x = spread(x, 0, True)
        return spread(x, 1, False) if x.shape[1] == block else x

    tiled = jax.tree_util.tree_map_with_path(tile, params)
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), tiled)


def count_parameters(params) -> int:
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))
