"""Graph programs: the paper's small language (appendix A, Listings 1-2) for algorithms that one
GATv2 step executes exactly.

A program describes one round of a node-parallel algorithm:

- ``inputs``: node inputs read every step (``idx`` ← the ``pos`` probe: the node's id as a position;
  ``source`` ← ``s``) and ``edges``: edge inputs (``w`` ← ``A``).
- ``state``: named scalar components of each node's state, each carried between steps by a hint
  probe (``visit`` ← ``reach_h``); a ``pointer`` component holds the ``idx`` of the node it points at
  (``pi`` ← ``pi_h``, decoded to the output ``pi``).
- ``select``: every node (``self``) picks one ``other`` among itself and its neighbours,
  lexicographically: first where ``mask(other)`` is 1, then (when ``prefer_pointer`` holds for
  ``self``) the node ``self``'s pointer points at, then the smallest ``minimize(other, edge)``, then
  (``tie_break="pointer"``) the pointer again, then the smallest index.
- ``update(self, other, init, edge)``: each state component's new value, a linear expression of the
  selected ``other``, ``self``, ``self``'s inputs (``init``) and the selected edge; ``unless(value,
  condition)`` is 0 where the 0/1 ``condition`` holds. Values are non-negative (the processor's ReLU).

The same Python functions serve two readers: :func:`interpret` runs them on NumPy arrays (the
reference semantics, checked against dm-clrs's traces), and the compiler traces them with symbolic
:class:`Expr` arguments to read off the weights.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

from workers.errors import GapsweepError


class ProgramError(GapsweepError, ValueError):
    """A graph program that is malformed or cannot be compiled; the message says which part."""


# -- symbolic linear expressions --------------------------------------------------------------


class Expr:
    """A linear expression over scoped variables (``("other", "dist")``) plus a constant."""

    __slots__ = ("terms", "const")

    def __init__(self, terms: Mapping[tuple[str, str], float] | None = None, const: float = 0.0):
        self.terms = {k: float(v) for k, v in (terms or {}).items() if v != 0}
        self.const = float(const)

    @staticmethod
    def of(value) -> "Expr":
        if isinstance(value, Expr):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return Expr(const=value)
        raise ProgramError(f"{value!r} is not a number or a linear expression")

    def __add__(self, other):
        other = Expr.of(other)
        terms = dict(self.terms)
        for key, coef in other.terms.items():
            terms[key] = terms.get(key, 0.0) + coef
        return Expr(terms, self.const + other.const)

    __radd__ = __add__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-Expr.of(other))

    def __rsub__(self, other):
        return Expr.of(other) + (-self)

    def __mul__(self, factor):
        if isinstance(factor, Expr):
            if factor.terms:
                raise ProgramError("a product of two variables is not linear; graph programs "
                                   "combine variables with +, - and constant factors only")
            factor = factor.const
        return Expr({k: v * float(factor) for k, v in self.terms.items()}, self.const * float(factor))

    __rmul__ = __mul__

    def scopes(self) -> set[str]:
        return {scope for scope, _ in self.terms}

    def __repr__(self) -> str:
        parts = [f"{c:+g}·{s}.{n}" for (s, n), c in sorted(self.terms.items())]
        if self.const or not parts:
            parts.append(f"{self.const:+g}")
        return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class Unless:
    """``value`` where ``condition`` is 0, else 0 (``condition`` is a 0/1 expression)."""

    value: Expr
    condition: Expr


def unless(value, condition):
    """``value`` unless the 0/1 ``condition`` holds (then 0); symbolic or on NumPy arrays."""
    if isinstance(value, Expr) or isinstance(condition, Expr):
        return Unless(Expr.of(value), Expr.of(condition))
    return np.where(np.asarray(condition) >= 0.5, 0.0, np.maximum(value, 0.0))


class View:
    """A node's (``self``, ``other``, ``init``) or an edge's variables, by attribute."""

    def __init__(self, scope: str, values: Mapping):
        object.__setattr__(self, "_scope", scope)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str):
        values = object.__getattribute__(self, "_values")
        if name not in values:
            scope = object.__getattribute__(self, "_scope")
            raise ProgramError(f"{scope}.{name} is not defined; {scope} has: "
                               f"{', '.join(sorted(values)) or 'nothing'}")
        return values[name]


def symbolic(scope: str, names) -> View:
    return View(scope, {name: Expr({(scope, name): 1.0}) for name in names})


# -- programs ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pointer:
    """A state component that points at a node: its value is that node's ``target`` input."""

    name: str
    hint: str
    output: str
    target: str = "idx"


@dataclasses.dataclass(frozen=True)
class Select:
    mask: Callable                      # other -> 0/1
    minimize: Callable                  # (other, edge) -> number
    prefer_pointer: bool | Callable = False   # True, False, or self -> 0/1
    tie_break: str | None = None        # None or "pointer"


@dataclasses.dataclass(frozen=True)
class GraphProgram:
    algorithm: str
    inputs: Mapping[str, str]           # node input name -> input probe
    state: Mapping[str, str]            # state component -> hint probe carrying it
    pointer: Pointer
    select: Select
    update: Callable                    # (self, other, init, edge) -> {component: value}
    edges: Mapping[str, str] = dataclasses.field(default_factory=dict)   # edge input -> probe
    bounds: Mapping[str, float] = dataclasses.field(default_factory=dict)  # scalar upper bounds

    @property
    def node_names(self) -> list[str]:
        return [*self.inputs, *self.state, self.pointer.name]

    @property
    def minimum_hidden_size(self) -> int:
        """Units the compiled network needs: the widest of its node channels (inputs and state),
        edge channels (edge inputs, pointer, not-an-edge), processor outputs (state and pointer),
        pre-attention units (2, or 4 with a conditional pointer preference) and the pointer
        decoder's 3."""
        return max(len(self.inputs) + len(self.state), len(self.edges) + 2, len(self.state) + 1,
                   4 if callable(self.select.prefer_pointer) else 2, 3)

    @property
    def reads_edges_in_update(self) -> bool:
        return any((u.value if isinstance(u, Unless) else u).scopes() & {"edge"}
                   for u in self.trace_update().values())

    def probes(self) -> set[str]:
        return {*self.inputs.values(), *self.state.values(), *self.edges.values(),
                self.pointer.hint, self.pointer.output}

    def trace_update(self) -> dict[str, Expr | Unless]:
        """The update traced with symbolic arguments: component -> expression."""
        node = [*self.inputs, *self.state]
        out = self.update(symbolic("self", node), symbolic("other", node),
                          symbolic("self", self.inputs), symbolic("edge", self.edges))
        expected = {*self.state, self.pointer.name}
        if set(out) != expected:
            raise ProgramError(f"{self.algorithm}: update must give exactly {sorted(expected)}, "
                               f"it gives {sorted(out)}")
        return {k: v if isinstance(v, Unless) else Expr.of(v) for k, v in out.items()}

    def trace_select(self) -> dict[str, Expr | None]:
        node = [*self.inputs, *self.state]
        other, edge = symbolic("other", node), symbolic("edge", self.edges)
        prefer = self.select.prefer_pointer
        traced = {"mask": Expr.of(self.select.mask(other)),
                  "minimize": Expr.of(self.select.minimize(other, edge)),
                  "prefer_pointer": (Expr.of(prefer(symbolic("self", node))) if callable(prefer)
                                     else None)}
        if traced["mask"].scopes() - {"other"}:
            raise ProgramError(f"{self.algorithm}: select.mask may read only other.*")
        if traced["minimize"].scopes() - {"other", "edge"}:
            raise ProgramError(f"{self.algorithm}: select.minimize may read only other.* and edge.*")
        if traced["prefer_pointer"] is not None and traced["prefer_pointer"].scopes() - {"self"}:
            raise ProgramError(f"{self.algorithm}: select.prefer_pointer may read only self.*")
        if self.select.tie_break not in (None, "pointer"):
            raise ProgramError(f"{self.algorithm}: select.tie_break = {self.select.tie_break!r}; "
                               "allowed: None, 'pointer'")
        return traced


# -- the reference semantics ------------------------------------------------------------------


@dataclasses.dataclass
class Rollout:
    """One graph's interpretation: per step t (t = 0 is the initial state, from the first hint)
    each state component ``[T, n]``, the pointer as node indices ``[T, n]`` and the node each node
    selected to get there ``[T - 1, n]``."""

    state: dict[str, np.ndarray]
    pointer: np.ndarray
    selected: np.ndarray


def attention_adjacency(adj: np.ndarray, pointer: np.ndarray) -> np.ndarray:
    """Who attends to whom: the node itself, its graph neighbours and pointer edges, symmetrised
    (what the network's encoders build)."""
    n = adj.shape[0]
    ptr = np.zeros((n, n), bool)
    ptr[np.arange(n), pointer] = True
    return np.eye(n, dtype=bool) | (adj > 0) | (adj.T > 0) | ptr | ptr.T


def interpret(program: GraphProgram, inputs: Mapping[str, np.ndarray],
              first_hints: Mapping[str, np.ndarray], steps: int) -> Rollout:
    """Run ``program`` on one graph for ``steps`` rounds from the first hint (float64)."""
    edge_adj = next(v for k, v in inputs.items() if k == "adj")
    node_in = {name: np.asarray(inputs[probe], np.float64) for name, probe in program.inputs.items()}
    edge_in = {name: np.asarray(inputs[probe], np.float64) for name, probe in program.edges.items()}
    state = {name: np.asarray(first_hints[probe], np.float64)
             for name, probe in program.state.items()}
    pointer = np.asarray(first_hints[program.pointer.hint]).astype(np.int64)
    n = pointer.shape[0]
    target = node_in[program.pointer.target]
    history = {name: [v] for name, v in state.items()}
    pointers, chosen = [pointer], []
    for _ in range(steps):
        nodes = {**node_in, **state}
        other = View("other", {k: v[None, :] for k, v in nodes.items()})   # [receiver, candidate]
        me = View("self", {k: v[:, None] for k, v in nodes.items()})
        edge = View("edge", edge_in)
        is_ptr = np.zeros((n, n))
        is_ptr[np.arange(n), pointer] = 1.0
        mask = np.broadcast_to(program.select.mask(other), (n, n))
        key = np.broadcast_to(program.select.minimize(other, edge), (n, n))
        prefer = program.select.prefer_pointer
        pref = (np.broadcast_to(prefer(me), (n, n)) if callable(prefer)
                else np.full((n, n), float(bool(prefer))))
        tie = is_ptr if program.select.tie_break == "pointer" else np.zeros((n, n))
        allowed = attention_adjacency(edge_adj, pointer)
        sel = np.empty(n, np.int64)
        for i in range(n):
            cand = np.flatnonzero(allowed[i])
            order = np.lexsort((cand, -tie[i, cand], key[i, cand], -(pref[i, cand] * is_ptr[i, cand]),
                                -mask[i, cand]))
            sel[i] = cand[order[0]]
        picked = View("other", {k: v[sel] for k, v in nodes.items()})
        me_flat = View("self", nodes)
        new = program.update(me_flat, picked, View("self", node_in),
                             View("edge", {k: v[np.arange(n), sel] for k, v in edge_in.items()}))
        state = {k: np.maximum(np.broadcast_to(np.asarray(new[k], np.float64), (n,)), 0.0)
                 for k in program.state}
        value = np.broadcast_to(np.asarray(new[program.pointer.name], np.float64), (n,))
        pointer = np.array([int(np.argmin(np.abs(target - v))) for v in value])
        for k in state:
            history[k].append(state[k])
        pointers.append(pointer)
        chosen.append(sel)
    return Rollout({k: np.stack(v) for k, v in history.items()}, np.stack(pointers),
                   np.stack(chosen) if chosen else np.zeros((0, n), np.int64))
