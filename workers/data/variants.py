"""The paper's two algorithm variants, written on dm-clrs's probing machinery (imports dm-clrs).

- ``bfs_seq`` (sequential BFS): BFS's inputs, output and answer, but one hint step per examined
  edge, so the trace is artificially long while the semantics stay BFS's.
- ``dfs_light`` (simplified DFS): DFS with only the ``pi_h`` and ``color`` hints; dm-clrs's DFS trace
  restricted to those two probes, keeping only the steps where one of them changed.
"""

from __future__ import annotations

import types

import numpy as np
from clrs._src import algorithms as clrs_algorithms
from clrs._src import probing, specs

Stage, Location, Type = specs.Stage, specs.Location, specs.Type

BFS_SEQ_SPEC = types.MappingProxyType(dict(specs.SPECS["bfs"]))

DFS_LIGHT_HINTS = ("pi_h", "color")
DFS_LIGHT_SPEC = types.MappingProxyType({
    name: row for name, row in specs.SPECS["dfs"].items()
    if row[0] != Stage.HINT or name in DFS_LIGHT_HINTS
})


def bfs_seq(A: np.ndarray, s: int):
    """Sequential BFS. The first hint step is the start state (only the source reached, every node
    its own parent). Then, round after round, every edge (i, j) with i reached in the previous round
    is examined in dm-clrs's order (i, then j) and yields one step: ``pi_h`` after j's update (j gets
    i as parent if it has none yet) and ``reach_h`` as it stood after the previous round. Rounds
    repeat until a round reaches nothing new, exactly as dm-clrs's ``bfs``."""
    probes = probing.initialize(BFS_SEQ_SPEC)
    n = A.shape[0]
    probing.push(probes, Stage.INPUT, next_probe={
        "pos": np.arange(n) * 1.0 / n,
        "s": probing.mask_one(s, n),
        "A": np.copy(A),
        "adj": probing.graph(np.copy(A)),
    })
    reach = np.zeros(n)
    pi = np.arange(n)
    reach[s] = 1
    probing.push(probes, Stage.HINT, next_probe={"reach_h": np.copy(reach), "pi_h": np.copy(pi)})
    while True:
        prev_reach = np.copy(reach)
        for i in range(n):
            if prev_reach[i] != 1:
                continue
            for j in range(n):
                if A[i, j] > 0:
                    if pi[j] == j and j != s:
                        pi[j] = i
                    reach[j] = 1
                    probing.push(probes, Stage.HINT,
                                 next_probe={"reach_h": np.copy(prev_reach), "pi_h": np.copy(pi)})
        if np.all(reach == prev_reach):
            break
    probing.push(probes, Stage.OUTPUT, next_probe={"pi": np.copy(pi)})
    probing.finalize(probes)
    return pi, probes


def dfs_light(A: np.ndarray):
    """Simplified DFS: dm-clrs's ``dfs`` run as is, its trace cut to ``pi_h`` and ``color`` and to
    the steps that differ from the step before them."""
    pi, full = clrs_algorithms.dfs(A)
    node_hints = full[Stage.HINT][Location.NODE]
    pi_h, color = node_hints["pi_h"]["data"], node_hints["color"]["data"]
    keep = [0] + [t for t in range(1, pi_h.shape[0])
                  if not (np.array_equal(pi_h[t], pi_h[t - 1])
                          and np.array_equal(color[t], color[t - 1]))]
    probes = probing.initialize(DFS_LIGHT_SPEC)
    node_inputs = full[Stage.INPUT][Location.NODE]
    edge_inputs = full[Stage.INPUT][Location.EDGE]
    probing.push(probes, Stage.INPUT, next_probe={
        "pos": node_inputs["pos"]["data"],
        "A": edge_inputs["A"]["data"],
        "adj": edge_inputs["adj"]["data"],
    })
    for t in keep:
        probing.push(probes, Stage.HINT, next_probe={"pi_h": pi_h[t], "color": color[t]})
    probing.push(probes, Stage.OUTPUT, next_probe={"pi": np.copy(pi)})
    probing.finalize(probes)
    return pi, probes
