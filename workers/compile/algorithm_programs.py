"""The paper's graph programs for BFS and Bellman-Ford, written in the language of ``graph_program.py``."""

from __future__ import annotations

from workers.compile.graph_program import GraphProgram, Pointer, ProgramError, Select, unless

# BFS (dm-clrs's ``bfs``): every round, a node not yet reached takes as parent its reached
# neighbour of smallest index; reached nodes keep their parent (the source points at itself).
BFS = GraphProgram(
    algorithm="bfs",
    inputs={"idx": "pos"},
    state={"visit": "reach_h"},
    pointer=Pointer("pi", hint="pi_h", output="pi", target="idx"),
    select=Select(
        mask=lambda other: other.visit,             # only reached nodes pass the parent on
        prefer_pointer=True,                        # a node keeps its parent (default: itself)
        minimize=lambda other, edge: other.idx,     # else the reached neighbour of smallest index
    ),
    update=lambda self, other, init, edge: {
        "visit": other.visit,
        "pi": other.idx,
    },
)

# Bellman-Ford (dm-clrs's ``bellman_ford``): every round, each node takes the reached neighbour
# minimising distance + edge weight; the source and unreached nodes keep themselves; on a tie the
# current parent stays.
BELLMAN_FORD = GraphProgram(
    algorithm="bellman_ford",
    inputs={"idx": "pos", "source": "s"},
    edges={"w": "A"},
    state={"dist": "d", "visit": "msk"},
    pointer=Pointer("pi", hint="pi_h", output="pi", target="idx"),
    select=Select(
        mask=lambda other: other.visit,
        prefer_pointer=lambda self: self.source + (1 - self.visit),
        minimize=lambda other, edge: other.dist + edge.w,
        tie_break="pointer",
    ),
    update=lambda self, other, init, edge: {
        "dist": unless(other.dist + edge.w, init.source + (1 - other.visit)),
        "visit": other.visit,
        "pi": other.idx,
    },
    bounds={"dist": 8.0, "w": 1.0},
)

PROGRAMS = {p.algorithm: p for p in (BFS, BELLMAN_FORD)}


def program_for(algorithm: str) -> GraphProgram:
    try:
        return PROGRAMS[algorithm]
    except KeyError:
        raise ProgramError(f"no graph program for {algorithm!r}; compilable algorithms: "
                           f"{', '.join(PROGRAMS)}") from None


# The hand-built DFS network's shape (workers/compile/dfs_compiler.py, which needs JAX; kept here
# so that validating a configuration does not import it; tests/test_compile_dfs.py checks both)
COMPILED_DFS = {"nb_heads": 4, "minimum_hidden_size": 76}


def _compiled_dfs_problems(config) -> list[str]:
    problems = []
    if config.use_ln:
        problems.append("use_ln: false")
    if config.hint_mode != "encoded_decoded":
        problems.append("hint_mode: encoded_decoded")
    if config.nb_heads != COMPILED_DFS["nb_heads"]:
        problems.append(f"nb_heads: {COMPILED_DFS['nb_heads']}")
    if config.nb_msg_passing_steps != 1:
        problems.append("nb_msg_passing_steps: 1")
    if config.hidden_size < COMPILED_DFS["minimum_hidden_size"] or config.hidden_size % 4:
        problems.append(f"hidden_size >= {COMPILED_DFS['minimum_hidden_size']}, a multiple of 4")
    if not config.use_edge_info:
        problems.append("use_edge_info: true")
    if len(set(config.train_lengths)) != 1 or config.length_generalize:
        problems.append("one train length and length_generalize: false (compiled DFS is "
                        "compiled for one graph size)")
    if config.compile_style != "exact" or config.compile_scale != 1.0:
        problems.append("no compile_style or compile_scale (compiled DFS has one construction)")
    return problems


def compiled_init_problems(config) -> list[str]:
    """What a TrainConfig must change to start from compiled parameters (empty: nothing)."""
    if config.algorithm == "dfs":
        return _compiled_dfs_problems(config)
    if config.algorithm not in PROGRAMS:
        return [f"an algorithm with a graph program ({', '.join(PROGRAMS)}) or dfs, not "
                f"{config.algorithm!r}"]
    program = PROGRAMS[config.algorithm]
    problems = []
    if config.use_ln:
        problems.append("use_ln: false")
    if config.hint_mode != "encoded_decoded":
        problems.append("hint_mode: encoded_decoded")
    if config.nb_heads != 1:
        problems.append("nb_heads: 1")
    if config.nb_msg_passing_steps != 1:
        problems.append("nb_msg_passing_steps: 1")
    if config.hidden_size < program.minimum_hidden_size:
        problems.append(f"hidden_size >= {program.minimum_hidden_size}")
    if program.reads_edges_in_update and not config.use_edge_info:
        problems.append("use_edge_info: true (its update reads the selected edge's weight)")
    return problems
