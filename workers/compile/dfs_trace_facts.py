"""Facts about dm-clrs's ``dfs`` traces that a network executing DFS one hint step at a time can
rely on, each checked on real traces (``tests/test_compile_dfs.py``; ``docs/compiled_dfs.md``
says what each is for).

Every row of a dfs trace is one of four pushes: ``ROOT`` (the next root r, still white), ``DISC``
(u turns grey, ``d[u]`` = time), ``TREE`` (u's first white successor c turns grey, ``pi[c]`` = u)
and ``FIN`` (u turns black, ``f[u]`` = time). The facts:

- ``local_row_type``: a row's type is visible at the node holding ``u`` from its own hints:
  white → ROOT, black → FIN, grey and ``s_last`` = u → DISC, ``s_last`` ≠ u → TREE (then
  ``s_last`` is the new child c, which sees ``s_last`` without ``u``).
- ``tree_child``: at TREE, c is the smallest white (in the row before) successor of u, and
  ``pi[c]`` = ``s_prev[c]`` = u: both pointers of the child point at the node that searched.
- ``root_time``: at ROOT, every earlier tree is complete: the row is 3m (m nodes done) and
  ``time`` is the table's entry 2m, so a new root knows the time from the step count alone.
- ``time_step``: every DISC and FIN adds 0.01 to ``time`` (float32 ``time + 0.01``, to within
  ``TIME_TOLERANCE``), and writes the new time into ``d`` or ``f`` of the node.
- ``last_node_counts``: node n − 1 sees every FIN (it holds ``v`` from each FIN on, and at a FIN
  of another node it holds ``v`` without ``u`` or ``s_last``), and from that alone it knows when a
  tree ends: pushes come as pairs of non-FIN rows, so after a FIN the stack is empty exactly
  when (non-FIN rows so far) = 2 · (FIN rows so far). That is where the next ROOT must take
  ``v`` away from n − 1 (which is, in general, joined to nothing that knows).

- ``search_known_two_rows_ahead``, ``child_knows_in_time``, ``finisher_knows_in_time``
  (:func:`look_ahead`): one hop of message passing per hint step is enough for the search,
  because every node can know *two rows ahead* that it will be the search node (``u`` of a TREE
  or FIN row). It is discovered next (its own hints say so), or its grey child finishes next
  (which that child knew a step earlier, one hop away). The same knowledge a step later, with
  the node's smallest white successor computed on the row before (no node turns white-to-grey
  in between, except the ``u`` node of a ROOT, which the selection leaves out), tells the chosen
  child in time, and the finishing node too.

``FactCounts.cascades`` counts the TREE rows that follow two FIN rows: the case in which the
one-message-passing-step pipeline of the docs needs a second hop within one step.

Nothing here imports dm-clrs or TensorFlow; arrays are SplitData's (hints time-major, pointers
as indices).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from workers.data.jax_traces_dfs import _time_table

ROOT, DISC, TREE, FIN = "ROOT", "DISC", "TREE", "FIN"
WHITE, GREY, BLACK = 0, 1, 2
TIME_TOLERANCE = 1e-6          # float32 time + 0.01 against dm-clrs's float64 running sum


def row_types(hints: dict, g: int, length: int) -> list[str]:
    """The truth, from what each row changes against the row before (row 0 is the first ROOT)."""
    types = [ROOT]
    for k in range(1, length):
        changed = [name for name, kind in (("d", DISC), ("f", FIN), ("pi_h", TREE))
                   if np.any(hints[name][k, g] != hints[name][k - 1, g])]
        if len(changed) > 1:
            raise ValueError(f"graph {g} row {k} changes {changed}: not one dfs push")
        types.append({"d": DISC, "f": FIN, "pi_h": TREE}[changed[0]] if changed else ROOT)
    return types


def local_type(hints: dict, g: int, k: int) -> str:
    """The row's type as the ``u`` node reads it from its own hints."""
    u = int(np.argmax(hints["u"][k, g]))
    colour = int(np.argmax(hints["color"][k, g, u]))
    if colour == WHITE:
        return ROOT
    if colour == BLACK:
        return FIN
    return DISC if int(np.argmax(hints["s_last"][k, g])) == u else TREE


@dataclasses.dataclass
class FactCounts:
    """Per fact: (rows where it was checked, rows where it held)."""

    checked: dict = dataclasses.field(default_factory=dict)
    held: dict = dataclasses.field(default_factory=dict)
    largest_time_error: float = 0.0
    cascades: int = 0          # TREE rows right after two FIN rows (see docs/compiled_dfs.md)
    trees: int = 0

    def add(self, fact: str, ok: bool) -> None:
        self.checked[fact] = self.checked.get(fact, 0) + 1
        self.held[fact] = self.held.get(fact, 0) + int(bool(ok))

    def add_many(self, fact: str, ok: np.ndarray) -> None:
        self.checked[fact] = self.checked.get(fact, 0) + int(ok.size)
        self.held[fact] = self.held.get(fact, 0) + int(np.sum(ok))

    @property
    def all_hold(self) -> bool:
        return all(self.held[f] == self.checked[f] for f in self.checked)


def check_facts(inputs: dict, hints: dict, lengths, via_children: bool = True) -> FactCounts:
    """Every fact on every row of every graph (``inputs``/``hints`` in SplitData's layout).
    ``via_children=False`` drops the look-ahead's second source (a grey child about to finish),
    to show that it is needed."""
    counts = FactCounts()
    n = hints["u"].shape[2]
    table = _time_table(2 * n)
    for g in range(len(lengths)):
        length = int(lengths[g])
        types = row_types(hints, g, length)
        A = inputs["A"][g]
        last, non_fin, fins = n - 1, 0, 0
        for k in range(length):
            flag = {name: hints[name][k, g] for name in ("u", "v", "s_last")}
            u = int(np.argmax(flag["u"]))
            counts.add("local_row_type", local_type(hints, g, k) == types[k])
            if types[k] == TREE:
                counts.trees += 1
                counts.cascades += int(k >= 2 and types[k - 1] == types[k - 2] == FIN)
                c = int(np.argmax(flag["s_last"]))
                white = np.argmax(hints["color"][k - 1, g], -1) == WHITE
                successors = np.flatnonzero((A[u] != 0) & white)
                counts.add("tree_child", len(successors) and c == successors[0]
                           and hints["pi_h"][k, g, c] == u and hints["s_prev"][k, g, c] == u)
            if types[k] == ROOT:
                counts.add("root_time", k % 3 == 0
                           and hints["time"][k, g] == table[2 * k // 3])
            if types[k] in (DISC, FIN):
                expected = np.float32(hints["time"][k - 1, g]) + np.float32(0.01)
                written = hints["d" if types[k] == DISC else "f"][k, g, u]
                error = max(abs(float(hints["time"][k, g]) - float(expected)),
                            abs(float(written) - float(expected)))
                counts.largest_time_error = max(counts.largest_time_error, error)
                counts.add("time_step", error <= TIME_TOLERANCE)
            # node n - 1's own view: does it hold v without u and s_last, or finish itself?
            black = int(np.argmax(hints["color"][k, g, last])) == BLACK
            sees_fin = bool((flag["v"][last] and not flag["u"][last] and not flag["s_last"][last])
                            or (flag["u"][last] and black))
            counts.add("last_node_sees_fins", sees_fin == (types[k] == FIN))
            if sees_fin:
                fins += 1
                tree_ends = non_fin == 2 * fins
                next_is_root = k + 1 == length or types[k + 1] == ROOT
                counts.add("last_node_counts", tree_ends == next_is_root)
            else:
                non_fin += 1
        look_ahead(inputs, hints, g, length, types, counts, via_children)
    return counts


def smallest_white_successor(A: np.ndarray, white: np.ndarray, u_flag: np.ndarray):
    """Per node: its smallest successor that is white and not the ``u`` node (-1 if none)."""
    allowed = (A != 0) & (white & (u_flag == 0))[None, :]
    return np.where(allowed.any(1), np.argmax(allowed, 1), -1)


def look_ahead(inputs: dict, hints: dict, g: int, length: int, types: list[str],
               counts: FactCounts, via_children: bool = True) -> None:
    """What each node can know at step k (which computes row k + 1 from row k) with one hop per
    step: ``know[k, i]`` = "i is the search node of row k + 2", from i's own row-k hints (it is
    discovered in row k + 1) or from its grey child x (``pi[x]`` = i) having known at step
    k - 1 that it is the search node of row k + 1 with no white successor in row k - 1."""
    n = hints["u"].shape[2]
    A = inputs["A"][g]
    colour = np.argmax(hints["color"][:length, g], -1)                     # [T, n]
    flags = {name: hints[name][:length, g].astype(bool) for name in ("u", "s_last")}
    pi = hints["pi_h"][:length, g]
    nodes = np.arange(n)
    search = np.zeros((length + 2, n), bool)      # truth: i is u of a TREE or FIN row
    for k in range(length):
        if types[k] in (TREE, FIN):
            search[k, int(np.argmax(hints["u"][k, g]))] = True
    choice = np.stack([smallest_white_successor(A, colour[k] == WHITE, hints["u"][k, g])
                       for k in range(length)])                          # on row k's colours
    know = np.zeros((length, n), bool)
    for k in range(length):
        discovered_next = ((flags["s_last"][k] & ~flags["u"][k])
                           | (flags["u"][k] & (colour[k] == WHITE)))
        child_finishes_next = np.zeros(n, bool)
        if k >= 1 and via_children:
            finishing = (colour[k] == GREY) & know[k - 1] & (choice[k - 1] < 0) & (pi[k] != nodes)
            child_finishes_next[pi[k][finishing]] = True
        know[k] = discovered_next | child_finishes_next
        if k + 2 < length:
            counts.add_many("search_known_two_rows_ahead", know[k] == search[k + 2])
        if k >= 1 and k + 1 < length:
            # step k emits row k + 1: the chosen child and the finishing node must know now
            searcher = know[k - 1]
            chosen = np.zeros(n, bool)
            chosen[choice[k - 1][searcher & (choice[k - 1] >= 0)]] = True
            truth = np.zeros(n, bool)
            if types[k + 1] == TREE:
                truth[int(np.argmax(hints["s_last"][k + 1, g]))] = True
            counts.add_many("child_knows_in_time", chosen == truth)
            finisher = searcher & (choice[k - 1] < 0)
            truth = np.zeros(n, bool)
            if types[k + 1] == FIN:
                truth[int(np.argmax(hints["u"][k + 1, g]))] = True
            counts.add_many("finisher_knows_in_time", finisher == truth)
