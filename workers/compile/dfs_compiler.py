"""Compiled DFS: the parameters of a GATv2 network (four heads, one message-passing step per hint
step) that reproduces dm-clrs's ``dfs`` hints and output, built by hand from the facts of
``dfs_trace_facts.py`` (``docs/compiled_dfs.md`` explains each part).

The network is this project's own (``workers/model/network.py``): hidden size ≥ 128, 4 heads,
``use_edge_info``, no layer norm, hints encoded and decoded. The weights depend on the graph size
n in three places (the self test of the child head, node n - 1's test, the index scale of the
child match), so they are compiled per size, like the paper's size-tied modifications; positions
must be ``j / n`` (dm-clrs's fixed positions, as the validation and test splits have).

How the state travels: the hints carry colour, ``d``, ``f``, the four ``mask_one`` flags and the
time; the hidden state carries what a node has learnt one and two rows ahead (whether it will
search, whether it has a white successor, its smallest white successor), its pointers' targets as
offsets from its own index, a time token (ticks, an integer), a step counter and node n - 1's FIN
count. Each unit is
one ReLU of one head's attention output plus a linear function of the node's own features and
hidden state; every condition is a 0/1 value folded in with a large constant before the ReLU.
"""

from __future__ import annotations

import math

import numpy as np

from workers.compile.compiler import LEAKY_SLOPE, param_shapes
from workers.compile.graph_program import ProgramError
from workers.model.network import NetConfig

HEADS = ("search", "child", "grey_child", "u_holder")
NODE = ("idx", "white", "grey", "black", "d", "f", "s", "u", "v", "s_last")
EDGE = ("A", "adj", "pi_h", "s_prev")
# hidden units, by the head whose attention output they take (None: no attention output)
UNITS = {
    "search": ("ch", "hw", "vs_a", "vs_b"),
    "child": ("chosen", "dp_plus", "dp_minus", "ds_plus", "ds_minus"),
    "grey_child": ("cf", "vs_c"),
    "u_holder": ("tk_1", "tk_2", "tk_f", "tk_3", "tk_root"),
    None: ("kn_a", "kn_b", "count", "count_next", "started", "finisher", "ends", "last", "sf_1",
           "sf_2", "cv", "r_1", "r_2", "r_3", "fin_v"),
}
KNOW = ("kn_a", "kn_b", "cf")        # "I search in the row after next" (a sum of exclusive units)
VALID = ("vs_a", "vs_b", "vs_c")     # … and have a white successor then
TOKEN = ("tk_1", "tk_2", "tk_3")     # the time, at the u node

# decoder levels (mask_one softmaxes over nodes): movers > keepers > node n - 1 > white > rest
WHITE_LEVEL, INDEX_SCALE = 2.0 ** 16, 2.0 ** 15
LAST_LEVEL, KEEP_LEVEL = 2.0 ** 18, 2.0 ** 20
MOVE_LEVEL, MOVE_LEVEL_2 = 2.0 ** 22, 2.0 ** 21
DROP_AT_FIN, DROP_AT_END = 1147904.0, 180224.0     # node n - 1: v kept at a FIN, left at a ROOT
COLOUR_SCALE = 64.0
POINTER_SHARPNESS = 2.0 ** 15
TIME_STEP = 0.01


def minimum_hidden_size() -> int:
    return 4 * max(len(UNITS["search"]) + len(UNITS[None]), 8)


def check_network(net_config: NetConfig) -> None:
    problems = []
    if net_config.hidden_size < minimum_hidden_size() or net_config.hidden_size % 4:
        problems.append(f"hidden_size must be a multiple of 4, at least {minimum_hidden_size()}")
    if net_config.nb_heads != 4:
        problems.append("nb_heads must be 4")
    if net_config.nb_msg_passing_steps != 1:
        problems.append("nb_msg_passing_steps must be 1")
    if net_config.use_ln:
        problems.append("use_ln must be false")
    if not net_config.use_edge_info:
        problems.append("use_edge_info must be true (the search reads the selected edge)")
    if not (net_config.encode_hints and net_config.decode_hints):
        problems.append("hint_mode must be encoded_decoded")
    if net_config.attention != "graph":
        problems.append("attention must be 'graph'")
    if set(net_config.probe_table) != {"pos", "A", "adj", "pi_h", "color", "d", "f", "s_prev",
                                       "s", "u", "v", "s_last", "time", "pi"}:
        problems.append("the probe table must be dfs's")
    if problems:
        raise ProgramError("cannot compile dfs: " + "; ".join(problems))


class _Layout:
    def __init__(self, h: int):
        self.h, self.size = h, h // 4
        self.node = {name: i for i, name in enumerate(NODE)}
        self.edge = {name: i for i, name in enumerate(EDGE)}
        self.unit = {}
        for head, names in UNITS.items():
            start = (HEADS.index(head) if head else 0) * self.size
            offset = len(UNITS["search"]) if head is None else 0
            for k, name in enumerate(names):
                self.unit[name] = start + offset + k

    def z(self, name: str) -> int:
        """Row of ``z = [node | hidden]`` (W_value, W_skip, W_p1, W_p2) holding ``name``."""
        return self.node[name] if name in self.node else self.h + self.unit[name]

    def att(self, head: str, k: int) -> int:
        return HEADS.index(head) * self.size + k


def compile_dfs(net_config: NetConfig, nb_nodes: int) -> dict:
    """The parameters (NumPy float32) with which ``net_config``'s network executes dfs on graphs
    of ``nb_nodes`` nodes with positions ``j / nb_nodes``."""
    check_network(net_config)
    n = int(nb_nodes)
    h = net_config.hidden_size
    lay = _Layout(h)
    import jax

    params = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, np.float32),
                                    param_shapes(net_config, n))
    enc, proc, dec = params["encoders"], params["processor"], params["decoders"]

    # -- encoders ------------------------------------------------------------------------------
    enc["pos"]["kernel"][0, lay.node["idx"]] = 1.0
    for k, colour in enumerate(("white", "grey", "black")):
        enc["color"]["kernel"][k, lay.node[colour]] = 1.0
    for probe in ("d", "f", "s", "u", "v", "s_last"):
        enc[probe]["kernel"][0, lay.node[probe]] = 1.0
    for probe in EDGE:
        enc[probe]["kernel"][0, lay.edge[probe]] = 1.0
    enc["time"]["kernel"][0, 0] = 1.0

    p1, p2 = proc["W_p1"], proc["W_p2"]
    w_edge = proc["W_edge"]["kernel"]
    value, skip = proc["W_value"], proc["W_skip"]

    def sender(head, k, terms, bias=0.0):
        for name, coef in terms.items():
            p1["kernel"][lay.z(name), lay.att(head, k)] += coef
        p1["bias"][lay.att(head, k)] += bias

    def receiver(head, k, terms):
        for name, coef in terms.items():
            p2["kernel"][lay.z(name), lay.att(head, k)] += coef

    def attend(head, k, weight):
        proc[f"a_{HEADS.index(head)}"]["kernel"][k, 0] = weight

    def linear_logit(head, senders, bias, edges=None, offset=0):
        """Units ``offset``, ``offset + 1`` hold x and -x: together the logit 1.01·x."""
        for k, sign in ((offset, 1.0), (offset + 1, -1.0)):
            sender(head, k, {name: sign * c for name, c in senders.items()}, sign * bias)
            for name, c in (edges or {}).items():
                w_edge[lay.edge[name], lay.att(head, k)] += sign * c
            attend(head, k, sign)

    def unit(name, values=None, skips=None, bias=0.0, edge_info=None, value_bias=0.0):
        u = lay.unit[name]
        value["bias"][u] = value_bias
        for src, coef in (values or {}).items():
            value["kernel"][lay.z(src), u] += coef
        for src, coef in (skips or {}).items():
            skip["kernel"][lay.z(src), u] += coef
        skip["bias"][u] += bias
        for src, coef in (edge_info or {}).items():
            proc["W_info"]["kernel"][lay.edge[src], u] += coef
            proc["W_reduce"]["kernel"][u, u] = 1.0

    def each(names, coef):
        return {name: coef for name in names}

    # -- head "search": every node's smallest successor that is white and not u ----------------
    big = 2.0 ** 20
    linear_logit("search", {"white": big, "u": -big, "idx": -INDEX_SCALE}, -2 * big,
                 edges={"A": big})
    unit("ch", values={"idx": 1.0})
    hw = {"white": 1.0, "u": -1.0}                          # + A of the selected edge - 1
    unit("hw", values=hw, bias=-1.0, edge_info={"A": 1.0})
    unit("vs_a", values=hw, skips={"s_last": 1.0, "u": -1.0}, bias=-2.0, edge_info={"A": 1.0})
    unit("vs_b", values=hw, skips={"u": 1.0, "white": 1.0}, bias=-3.0, edge_info={"A": 1.0})

    # -- head "child": a node whose searching neighbour chose it -----------------------------------
    k_match = 1024.0 * n
    m_gate, c_valid, threshold = 4 * k_match, 64 * k_match, 512.0
    self_bonus = (1 + LEAKY_SLOPE) * c_valid - 2 * LEAKY_SLOPE * m_gate - threshold
    linear_logit("child", each(VALID, c_valid), -c_valid)
    for k, sign in ((2, 1.0), (3, -1.0)):      # -0.99 K |ch_j - idx_i| for valid searchers j
        sender("child", k, {"ch": sign * k_match, **each(VALID, m_gate)}, -m_gate)
        receiver("child", k, {"idx": -sign * k_match})
        attend("child", k, -1.0)
    for k, (sign, shift) in enumerate(((1.0, 0.0), (-1.0, 0.0), (1.0, -1.0), (-1.0, -1.0)), 4):
        sender("child", k, {"idx": sign * n}, shift)         # the self test on |idx_j - idx_i|
        receiver("child", k, {"idx": -sign * n})
        attend("child", k, (-1.0 if shift == 0.0 else 1.0) * self_bonus / (1 - LEAKY_SLOPE))
    unit("chosen", values=each(VALID, 1.0), skips=each(KNOW, -2.0))
    for name, sign in (("dp_plus", 1.0), ("dp_minus", -1.0)):
        unit(name, values={"idx": sign}, skips={"idx": -sign, name: 1.0})
    for name, sign in (("ds_plus", 1.0), ("ds_minus", -1.0)):
        unit(name, values={"idx": sign}, skips={"idx": -sign, name: 1.0, "finisher": -4.0})

    # -- head "grey_child": the grey successor discovered right after me (my stack child) --------
    huge, descendant, by_time = 2.0 ** 24, 2.0 ** 20, 2.0 ** 15
    linear_logit("grey_child", {"grey": huge, "d": -by_time}, -2 * huge, edges={"A": huge})
    for k, shift in ((2, 0.0), (3, -1.0)):                 # step(d_j - d_i): 0.01 or 1
        sender("grey_child", k, {"d": 100.0}, shift)
        receiver("grey_child", k, {"d": -100.0})
        attend("grey_child", k, descendant if shift == 0.0 else -descendant)
    # a node that finishes next itself has no child that does (and would read itself, through
    # a self-loop, when it has no grey successor discovered after it): its own finish gates
    finishes = {**each(KNOW, 1.0), **each(VALID, -1.0), "grey": 1.0}
    not_finishing = {**each(KNOW, -2.0), **each(VALID, 2.0), "grey": 1.0}
    unit("cf", values=finishes, skips=not_finishing, bias=-3.0, edge_info={"A": 1.0})
    unit("vs_c", values=finishes, skips={**not_finishing, "hw": 1.0}, bias=-4.0,
         edge_info={"A": 1.0})

    # -- head "u_holder": the time token -----------------------------------------------------------
    # The token counts ticks (DISCs and FINs so far), an integer, exact in float32; the decoders
    # turn it into dm-clrs's time with one product, 0.01 · tick. The +1 of a DISC or FIN rides
    # on the value's bias (every node attends with total weight 1); the gates are powers of two
    # that cancel exactly.
    gate = 2.0 ** math.ceil(math.log2(2 * n + 2))
    linear_logit("u_holder", {"u": big}, -big)
    unit("tk_1", values=each(TOKEN, 1.0), value_bias=1.0,
         skips={**each(KNOW, gate), **each(VALID, -1.0)}, bias=-gate)
    unit("tk_2", values=each(TOKEN, 1.0), value_bias=1.0,
         skips={"s_last": gate, "u": -gate}, bias=-gate)
    unit("tk_f", values=each(TOKEN, 1.0), value_bias=1.0,
         skips={**each(KNOW, gate), **each(VALID, -gate)}, bias=-gate)
    # a new root (the u node, white) attends to itself: after m complete trees, at row 3m, the
    # tick is 2m (dfs_trace_facts.root_time); + 1 for its discovery
    unit("tk_3", values={"count": 2.0 / 3.0}, value_bias=1.0,
         skips={"u": gate, "white": gate}, bias=-2 * gate)
    # the tick of a ROOT row (time unchanged), at the root that just finished (s, u and black;
    # it attends to itself): row k + 1 = 3m has tick 2m = (2/3)(k + 1)
    unit("tk_root", values={"count_next": 2.0 / 3.0},
         skips={"s": gate, "u": gate, "black": gate}, bias=-3 * gate)

    # -- units of the node alone ------------------------------------------------------------------
    unit("kn_a", skips={"s_last": 1.0, "u": -1.0})
    unit("kn_b", skips={"u": 1.0, "white": 1.0}, bias=-1.0)
    unit("count", skips={"count": 1.0}, bias=1.0)              # k at step k
    unit("count_next", skips={"count": 1.0}, bias=2.0)         # k + 1 at step k >= 1
    unit("started", bias=1.0)
    unit("finisher", skips={**each(KNOW, 1.0), **each(VALID, -1.0)})
    unit("ends", skips={"s": 1.0, "u": 1.0, "black": 1.0}, bias=-2.0)
    unit("last", skips={"idx": float(n)}, bias=2.0 - n)
    unit("sf_1", skips={"v": 1.0, "u": -1.0, "s_last": -1.0, "last": 1.0}, bias=-1.0)
    unit("sf_2", skips={"u": 1.0, "black": 1.0, "last": 1.0}, bias=-2.0)
    count = {"cv": 1.0, "started": 1.0, "sf_1": -3.0, "sf_2": -3.0}
    unit("cv", skips=count)
    only_last = 2.0 ** math.ceil(math.log2(3 * n + 4))     # the FIN count is n - 1's alone
    for a in (1, 2, 3):
        unit(f"r_{a}", skips={**count, "last": only_last}, bias=-float(a) - only_last)
    unit("fin_v", skips={**each(KNOW, 1.0), **each(VALID, -1.0), "last": -1.0})

    # -- decoders: h_t = [node | hidden before | hidden after] ------------------------------------
    def before(name):
        return lay.z(name)                 # node rows and hidden_k rows of h_t are z's rows

    def after(name):
        return 2 * h + lay.unit[name]

    def logit(probe, terms, column=0):
        for row, coef in terms:
            dec[probe]["W_1"]["kernel"][row, column] += coef

    white, index = [(before("white"), WHITE_LEVEL)], [(before("idx"), -INDEX_SCALE)]
    know_now = [(before(name), 1.0) for name in KNOW]

    def scaled(terms, c):
        return [(row, c * w) for row, w in terms]

    logit("u", scaled([(after("kn_a"), 1.0), (after("kn_b"), 1.0)] + know_now, MOVE_LEVEL)
          + white + index)
    logit("s", [(before("s"), KEEP_LEVEL), (after("ends"), -KEEP_LEVEL)] + white + index)
    logit("s_last", [(after("chosen"), MOVE_LEVEL)] + scaled(know_now, MOVE_LEVEL_2)
          + [(before("s_last"), KEEP_LEVEL), (after("ends"), -KEEP_LEVEL)] + white + index)
    logit("v", [(after("chosen"), MOVE_LEVEL), (before("v"), KEEP_LEVEL),
                (after("fin_v"), -KEEP_LEVEL), (after("last"), LAST_LEVEL),
                (after("sf_1"), -DROP_AT_FIN), (after("sf_2"), -DROP_AT_FIN),
                (after("r_1"), -DROP_AT_END), (after("r_2"), 2 * DROP_AT_END),
                (after("r_3"), -DROP_AT_END)] + white + index)
    turns_grey = [(after("kn_b"), 1.0), (after("chosen"), 1.0)]
    turns_black = [(after("finisher"), 1.0)]
    c = COLOUR_SCALE
    logit("color", [(before("white"), 4 * c)] + scaled(turns_grey, -8 * c), 0)
    logit("color", [(before("grey"), 4 * c)] + scaled(turns_grey, 8 * c)
          + scaled(turns_black, -8 * c), 1)
    logit("color", [(before("black"), 4 * c)] + scaled(turns_black, 8 * c), 2)
    logit("d", [(before("d"), 1.0), (after("tk_2"), TIME_STEP), (after("tk_3"), TIME_STEP)])
    logit("f", [(before("f"), 1.0), (after("tk_f"), TIME_STEP)])
    # time: 0.01 · the new u node's tick (one unit of one node is non-zero), or a ROOT row's
    for name in ("tk_1", "tk_2", "tk_3", "tk_root"):
        dec["time"]["W_n"]["kernel"][after(name), 0] = TIME_STEP
    far = 4.0
    for probe, plus, minus in (("pi_h", "dp_plus", "dp_minus"), ("pi", "dp_plus", "dp_minus"),
                               ("s_prev", "ds_plus", "ds_minus")):
        p = dec[probe]
        for col in (0, 1):                                  # v_i = idx_i + plus - minus
            p["W_1"]["kernel"][before("idx"), col] = 1.0
            p["W_1"]["kernel"][after(plus), col] = 1.0
            p["W_1"]["kernel"][after(minus), col] = -1.0
        p["W_1"]["bias"][2] = -far
        p["W_2"]["kernel"][before("idx"), 0] = p["W_2"]["kernel"][before("idx"), 2] = 1.0
        p["W_2"]["bias"][1] = -far
        p["w_out"]["kernel"][:3, 0] = -POINTER_SHARPNESS * np.array([2.0, -1.0, -1.0])
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), params)
