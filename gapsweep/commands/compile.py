"""``gapsweep compile``: compile an algorithm's graph program into network weights, check them
on CLRS data pointer by pointer, show them, save them.

    gapsweep compile bfs                                   # hidden 4, CLRS test split (n = 64)
    gapsweep compile bellman_ford --sizes 16,64,256 --json bf.json
    gapsweep compile bfs --hidden-size 128 --snapshot bfs128.npz
    gapsweep compile bfs --show --png figures/bfs          # the weight matrices, as text and PNGs
    gapsweep compile bellman_ford --certify                # margins up to n = 1,024, every graph n <= 4
    gapsweep compile bfs --style paper --scale 0.5         # the paper's magnitudes, halved
    gapsweep compile dfs --sizes 16,64                     # compiled DFS (hidden 128, four heads)
    gapsweep compile dfs_light                             # why it cannot be compiled: the witness
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
from rich.table import Table

from gapsweep.arguments import bounded_int, graph_sizes, positive_int
from gapsweep.interrupt import CACHE
from workers import rules
from gapsweep.terminal import console, err_console
from orchestrator.interrupts import interruptible
from workers.compile.algorithm_programs import PROGRAMS
from workers.data.requests import CLRS30_TEST


def add_commands(commands) -> None:
    compile_ = commands.add_parser(
        "compile", help="compile BFS / Bellman-Ford / DFS into exact network weights and check them",
        description="Compile the algorithm's graph program (for dfs: the hand-built four-head "
                    "network) into a complete parameter set of the "
                    "network (no training), run it on CLRS test-recipe graphs at each size "
                    "(edge probability 0.5, fixed positions; n = 64 with the default seed and "
                    "count is CLRS-30's test split) and print, per size, the share of output "
                    "pointers that are right, the attention accuracy (attention on the parent the "
                    "algorithm picks, every step) and the hint scores.")
    compile_.add_argument("algorithm", choices=COMPILE_CHOICES, metavar="ALGORITHM",
                          help=f"one of: {', '.join(COMPILE_CHOICES)} (dfs: a hand-built "
                               "four-head network, compiled per graph size; dfs_light: runs the "
                               "experiment showing that no network of this architecture "
                               "executes it, docs/compiled_dfs.md; exit status 1)")
    compile_.add_argument("--hidden-size", type=bounded_int(rules.MAX_HIDDEN_SIZE), default=4,
                          help="hidden size; the program fills its first units, the rest are zero "
                               "(default: 4, the paper's ~500-parameter network; dfs: 128, at least "
                               "76)")
    compile_.add_argument("--sizes", type=graph_sizes, default=(CLRS30_TEST["size"],), metavar="N,N,…",
                          help="graph sizes to evaluate at (default: 64)")
    compile_.add_argument("--graphs", type=positive_int, default=CLRS30_TEST["count"],
                          help=f"graphs per size (default: {CLRS30_TEST['count']})")
    compile_.add_argument("--seed", type=int, default=CLRS30_TEST["seed"],
                          help=f"data seed (default: {CLRS30_TEST['seed']}, CLRS-30's test seed)")
    compile_.add_argument("--style", choices=("exact", "paper"), default="exact",
                          help="the constants: exact (powers of two up to 2^35, saturated: zero "
                               "loss and gradient) or paper (the paper's moderate magnitudes, "
                               "powers of ten, pointer decoder c' = 1e3); default exact")
    compile_.add_argument("--scale", type=float, default=1.0, metavar="S",
                          help="multiply every constant of the style by S (compile_scale; "
                               "default 1)")
    compile_.add_argument("--pre-att-bias", action="store_true",
                          help="compile into the network with the n × n pre-attention bias "
                               "(size-tied: compiled per size)")
    compile_.add_argument("--simplify-decoders", action="store_true",
                          help="compile into the network with n-way pointer heads (size-tied: "
                               "compiled per size, for positions j / n)")
    compile_.add_argument("--json", metavar="PATH", help="write per-size results here")
    compile_.add_argument("--snapshot", metavar="PATH",
                          help="write the compiled parameters as a snapshot (.npz, the results "
                               "database's format; for size-tied networks give one size)")
    compile_.add_argument("--show", action="store_true",
                          help="print every weight matrix by name, rows and columns labelled")
    compile_.add_argument("--png", metavar="DIR", help="write a heat-map PNG per weight matrix here")
    compile_.add_argument("--certify", action="store_true",
                          help="also measure how far the network is from a wrong answer: the "
                               "smallest attention and pointer-logit margins on fresh graphs at "
                               "n = 16, 32, … up to --certify-up-to, and every graph dm-clrs can "
                               "draw up to --exhaustive-up-to nodes from every source; with the "
                               "pointer decoder's closed-form margin c'/n and the largest n at "
                               "which its soft pointer is one-hot in float32")
    compile_.add_argument("--certify-up-to", type=graph_size_power_of_two, default=1024,
                          metavar="N", help="largest size the certificate measures (a power of "
                                            "two, 16 … 1024; default 1024)")
    compile_.add_argument("--exhaustive-up-to", type=bounded_int(5, 2), default=4, metavar="N",
                          help="check every graph up to N nodes (2 … 5; default 4; 5 takes about "
                               "a minute: 163,840 graphs)")
    compile_.add_argument("--cache-dir", default=None, help="data cache directory")
    compile_.set_defaults(handler=cmd_compile, interrupted=(
        f"nothing was written (--json, --snapshot and --png are written at the end); {CACHE}"))


COMPILE_CHOICES = (*sorted(PROGRAMS), "dfs", "dfs_light")
DFS_HIDDEN_SIZE = 128
CERTIFY_SEED = 11                     # the certificate's fresh graphs (test recipe, another seed)


def graph_size_power_of_two(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 16 or value > 1024 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"{value} is not allowed; give a power of two in "
                                         "[16, 1024]")
    return value


def certify_sizes(up_to: int) -> list[tuple[int, int]]:
    """(n, graphs) the certificate measures: 16, 32, … ``up_to``, fewer graphs as n grows."""
    sizes, n = [], 16
    while n <= up_to:
        sizes.append((n, 32 if n <= 64 else 4 if n <= 256 else 1))
        n *= 2
    return sizes


def cmd_compile(args) -> int:
    # JAX and the compiler: only when compiling (gapsweep --help stays light)
    from db import snapshots
    from workers.compile.compiler import compile_program, count_parameters, layout
    from workers.compile.verify import evaluate
    from workers.compile.graph_program import ProgramError
    from workers.compile.algorithm_programs import program_for
    from workers.config import TrainConfig
    from workers.data import DataCache, make_request
    from workers.model import make_net_config

    from workers.compile.styles import style_named

    if args.algorithm == "dfs_light":
        return _dfs_light_witness(args)
    if args.algorithm == "dfs":
        return _compile_dfs(args)
    program = program_for(args.algorithm)
    style = style_named(args.style, args.scale)
    if args.hidden_size < program.minimum_hidden_size:
        raise ProgramError(f"cannot compile {args.algorithm} at hidden_size {args.hidden_size}: it "
                           f"needs at least {program.minimum_hidden_size} units")
    tied = args.pre_att_bias or args.simplify_decoders
    if tied and args.certify:
        err_console.print("[bold red]error:[/] --certify covers the default network, not "
                          "--pre-att-bias or --simplify-decoders (their heads are compiled per "
                          "size)")
        return 2
    if tied and args.snapshot and len(args.sizes) > 1:
        err_console.print("[bold red]error:[/] --snapshot with a size-tied network needs one size "
                          f"(--sizes N), not {','.join(map(str, args.sizes))}")
        return 2
    cache = DataCache(args.cache_dir)
    rows, params, net_config = [], None, None
    for size in args.sizes:
        config = TrainConfig.from_dict(
            {"algorithm": args.algorithm, "hidden_size": args.hidden_size, "use_ln": False,
             "use_edge_info": program.reads_edges_in_update,
             "use_pre_att_bias": args.pre_att_bias, "simplify_decoders": args.simplify_decoders,
             **({"train_lengths": [size], "length_generalize": False} if tied else {})},
            where="compile")
        request = make_request(args.algorithm, "test", size, args.graphs, args.seed)
        with console.status(f"data: {request.label}"):
            data = cache.get(request, processes=1)
        if net_config is None or tied:
            net_config = make_net_config(config, data.probe_table)
            params = compile_program(program, net_config, nb_nodes=size, style=style)
        start = time.perf_counter()
        with console.status(f"running the compiled network on {data.num_graphs} graphs of "
                            f"{size} nodes"):
            result = interruptible(evaluate, net_config, params, data)    # Ctrl-C mid-XLA
        rows.append((result, time.perf_counter() - start))
    scale = f" × {args.scale:g}" if args.scale != 1.0 else ""
    table = Table(title=f"compiled {args.algorithm} ({args.style} style{scale}): hidden size "
                        f"{args.hidden_size}, {count_parameters(params):,} parameters",
                  title_justify="left")
    for column in ("n", "graphs", "pointers right", "score", "attention", *program_hints(rows)):
        table.add_column(column, justify="right", no_wrap=True)
    for result, seconds in rows:
        table.add_row(str(result.size), str(result.graphs),
                      f"{result.pointers_correct}/{result.pointers_total}", f"{result.score:.2f}%",
                      f"{result.attention_accuracy:.2f}%",
                      *(_hint_cell(net_config.probe_table[name].type, result.hint_scores[name])
                        for name in program_hints(rows)))
    console.print(table)
    certificate = _certify(args, net_config, params, cache, style) if args.certify else None
    if args.show:
        _show(params, layout(program, net_config), net_config)
    if args.png:
        written = write_heatmaps(params, layout(program, net_config), net_config, Path(args.png))
        err_console.print(f"wrote {len(written)} heat-map(s) to {args.png}")
    if args.snapshot:
        payload = snapshots.encode(params)
        Path(args.snapshot).write_bytes(payload)
        err_console.print(f"wrote {args.snapshot} (sha256 {snapshots.digest(payload)[:16]}…)")
    if args.json:
        doc = {"algorithm": args.algorithm, "hidden_size": args.hidden_size,
               "style": args.style, "scale": args.scale,
               "parameters": count_parameters(params), "seed": args.seed,
               "network": {"use_edge_info": net_config.use_edge_info, "use_pre_att_bias": args.pre_att_bias,
                           "simplify_decoders": args.simplify_decoders, "use_ln": False},
               "results": [dict(r.to_json(), seconds=round(s, 3)) for r, s in rows]}
        if certificate is not None:
            doc["certificate"] = certificate
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        err_console.print(f"wrote {args.json}")
    exact = all(r.pointers_correct == r.pointers_total for r, _ in rows)
    if certificate is not None:
        exact &= all(m["exact"] for m in certificate["measured"] + certificate["exhaustive"])
    return 0 if exact else 1


def _certify(args, net_config, params, cache, style) -> dict:
    """The certificate's table and lines; returns what --json writes under "certificate"."""
    from workers.compile.certify import (ATTENTION_UNDERFLOW, bfs_selection_largest_n, measure,
                                         pointer_decoder_largest_n, pointer_decoder_margin)
    from workers.data import make_request
    from workers.data.generate import every_undirected_graph, sampler_weights, split_of_graphs

    measured, exhaustive = [], []
    for n, graphs in certify_sizes(args.certify_up_to):
        data = cache.get(make_request(args.algorithm, "test", n, graphs, CERTIFY_SEED), processes=1)
        with console.status(f"certificate: margins on {graphs} graph(s) of {n} nodes"):
            measured.append(interruptible(measure, net_config, params, data))
    for n in range(2, args.exhaustive_up_to + 1):
        with console.status(f"certificate: every graph of {n} nodes, every source"):
            rng = np.random.default_rng(n)
            adjacency = every_undirected_graph(n)
            if args.algorithm == "bellman_ford":    # weights drawn per graph, as the sampler does
                adjacency = sampler_weights(adjacency, rng)
            data = split_of_graphs(args.algorithm, [[g, s] for g in adjacency for s in range(n)])
            exhaustive.append(interruptible(measure, net_config, params, data, batch_size=8192))
    table = Table(title=f"certificate of compiled {args.algorithm} (float32): smallest margins",
                  title_justify="left")
    for column in ("n", "graphs", "attention margin", "ties", "output pointer", "hint pointer",
                   "c'/n", "exact"):
        table.add_column(column, justify="right", no_wrap=True)
    for kind, margins in [("fresh", m) for m in measured] + [("every", m) for m in exhaustive]:
        attention = (f"≥ {ATTENTION_UNDERFLOW:.1f}" if margins.attention >= ATTENTION_UNDERFLOW
                     else f"{margins.attention:.2f}")
        table.add_row(str(margins.size), f"{margins.graphs:,}" + (" (all)" if kind == "every" else ""),
                      attention, str(margins.attention_ties), f"{margins.output_pointer:.6g}",
                      f"{margins.hint_pointer:.6g}", f"{pointer_decoder_margin(margins.size, style):.6g}",
                      "yes" if margins.exact else "NO")
    console.print(table)
    largest = max((m.size for m in measured if m.exact), default=None)
    bound = pointer_decoder_largest_n(style)
    console.print(f"pointer decoder (closed form): logits −c'·|v − j/n| with c' = "
                  f"{style.pointer_sharpness:g}, margin "
                  f"c'/n at an exact position; its soft pointer is one-hot to float32 precision "
                  f"((n − 1)·exp(−c'/n) < 2^-24) up to n = {bound:,}")
    console.print(f"largest n measured exact: {largest if largest else 'none'} (of "
                  f"{', '.join(str(n) for n, _ in certify_sizes(args.certify_up_to))}); every "
                  f"graph up to {args.exhaustive_up_to} nodes: "
                  f"{'exact' if all(m.exact for m in exhaustive) else 'NOT exact'}")
    console.print(f"attention: margin 1.01·min(c·Δkey, τ) for the key gap Δkey between the best "
                  f"and the runner-up candidate (not fixed by the constants: an exact tie between "
                  f"two new parents has none); ≥ {ATTENTION_UNDERFLOW:.1f} means every other "
                  "softmax weight underflowed to 0")
    selection = None
    if args.algorithm == "bfs":
        selection = bfs_selection_largest_n(style)
        console.print(f"BFS selection (closed form): P·leak(n) < c/n, the soft pointer's leak onto "
                      f"an index-neighbour against the one-position key gap, holds up to "
                      f"n = {selection:,} (sufficient for exactness)")
    return {"style": style.name, "constants": style.describe(),
            "bfs_selection_exact_up_to": selection,
            "measured": [m.to_json() for m in measured],
            "exhaustive": [m.to_json() for m in exhaustive],
            "pointer_decoder_one_hot_up_to": bound, "largest_n_measured_exact": largest,
            "attention_underflow_margin": ATTENTION_UNDERFLOW}


def _refused_options(algorithm: str, args, allowed: tuple[str, ...], why: str) -> bool:
    """Print an error naming the compile options given (not at their defaults) that
    ``algorithm`` does not take, and ``why``; True if there were any."""
    defaults = {"--hidden-size": (args.hidden_size, 4), "--style": (args.style, "exact"),
                "--scale": (args.scale, 1.0), "--certify": (args.certify, False),
                "--show": (args.show, False), "--png": (args.png, None),
                "--snapshot": (args.snapshot, None), "--pre-att-bias": (args.pre_att_bias, False),
                "--simplify-decoders": (args.simplify_decoders, False)}
    changed = [flag for flag, (value, default) in defaults.items()
               if flag not in allowed and value != default]
    if changed:
        err_console.print(f"[bold red]error:[/] {', '.join(changed)} "
                          f"{'does' if len(changed) == 1 else 'do'} not apply to {algorithm}: {why}")
    return bool(changed)


def _compile_dfs(args) -> int:
    """``gapsweep compile dfs``: the hand-built DFS network (``workers/compile/dfs_compiler.py``),
    compiled for each size and checked on the test recipe's graphs there."""
    from db import snapshots
    from workers.compile.dfs_compiler import compile_dfs
    from workers.compile.verify import evaluate
    from workers.compile.compiler import count_parameters
    from workers.config import TrainConfig
    from workers.data import DataCache, make_request
    from workers.model import make_net_config

    if _refused_options("dfs", args, ("--hidden-size", "--snapshot"),
                        "its network is built by hand (no styles, certificate or inspection yet)"):
        return 2
    if args.snapshot and len(args.sizes) > 1:
        err_console.print("[bold red]error:[/] --snapshot needs one size (--sizes N): compiled "
                          "DFS is compiled per graph size")
        return 2
    hidden = DFS_HIDDEN_SIZE if args.hidden_size == 4 else args.hidden_size
    cache = DataCache(args.cache_dir)
    config = TrainConfig.from_dict({"algorithm": "dfs", "hidden_size": hidden, "nb_heads": 4,
                                    "use_ln": False, "use_edge_info": True}, where="compile")
    rows, params, net_config = [], None, None
    for size in args.sizes:
        request = make_request("dfs", "test", size, args.graphs, args.seed)
        with console.status(f"data: {request.label}"):
            data = cache.get(request, processes=1)
        net_config = make_net_config(config, data.probe_table)
        params = compile_dfs(net_config, size)
        start = time.perf_counter()
        with console.status(f"running the compiled network on {data.num_graphs} graphs of "
                            f"{size} nodes"):
            result = interruptible(evaluate, net_config, params, data)
        rows.append((result, time.perf_counter() - start))
    table = Table(title=f"compiled dfs: hidden size {hidden}, 4 heads, "
                        f"{count_parameters(params):,} parameters (compiled per size)",
                  title_justify="left")
    hints = program_hints(rows)
    for column in ("n", "graphs", "pointers right", "score", *hints):
        table.add_column(column, justify="right", no_wrap=True)
    for result, _ in rows:
        table.add_row(str(result.size), str(result.graphs),
                      f"{result.pointers_correct}/{result.pointers_total}", f"{result.score:.2f}%",
                      *(_hint_cell(net_config.probe_table[name].type, result.hint_scores[name])
                        for name in hints))
    console.print(table)
    if args.snapshot:
        payload = snapshots.encode(params)
        Path(args.snapshot).write_bytes(payload)
        err_console.print(f"wrote {args.snapshot} (sha256 {snapshots.digest(payload)[:16]}…)")
    if args.json:
        doc = {"algorithm": "dfs", "hidden_size": hidden, "nb_heads": 4,
               "parameters": count_parameters(params), "seed": args.seed,
               "results": [{**{k: v for k, v in r.to_json().items()
                               if not k.startswith("attention")}, "seconds": round(s, 3)}
                           for r, s in rows]}
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        err_console.print(f"wrote {args.json}")
    exact = all(r.pointers_correct == r.pointers_total
                and all(v == 1.0 if net_config.probe_table[k].type != "scalar" else v < 1e-10
                        for k, v in r.hint_scores.items()) for r, _ in rows)
    return 0 if exact else 1


def _dfs_light_witness(args) -> int:
    """``gapsweep compile dfs_light``: the indistinguishability experiment instead of weights."""
    from workers.compile.dfs_light_witness import WATCHED_NODE, witness_table

    if _refused_options("dfs_light", args, (),
                        "nothing is compiled; it runs the witness of docs/compiled_dfs.md "
                        "(--json writes its results)"):
        return 2
    with console.status("running both witness graphs through each architecture"):
        rows = witness_table()
    colours = ("white", "grey", "black")
    table = Table(title=f"dfs_light witness: node {WATCHED_NODE} of 'early' (no edges) and "
                        "'late' (edge 0 → 2), n = 3, true hints fed back; random parameters",
                  title_justify="left")
    for column in ("architecture", "seed", "max |Δ logit| rows 1–3", "row 3 predicted",
                   "row 3 truth", "both right"):
        table.add_column(column, justify="left" if column == "architecture" else "right")
    for label, seed, run in rows:
        predicted = " / ".join(colours[c] for c in run.predicted[-1])
        truth = " / ".join(colours[c] for c in run.truth[-1])
        table.add_row(label, str(seed), f"{run.largest_difference:.3g}", predicted, truth,
                      "yes" if run.both_right else "no")
    console.print(table)
    blind = [run for label, _, run in rows if run.architecture["attention"] == "graph"]
    console.print(f"dfs_light cannot be compiled into this architecture: on every graph-attention "
                  f"network above node {WATCHED_NODE}'s logits are identical in both graphs "
                  f"(largest difference {max(r.largest_difference for r in blind):g}) up to row "
                  f"{blind[0].diverges}, where the truths differ (grey / white): one graph is "
                  "always wrong, whatever the parameters. dm-clrs's gatv2_full removes the "
                  "obstruction (the logits differ). The argument: docs/compiled_dfs.md.")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"algorithm": "dfs_light", "compiled": False, "graphs": {"early": [], "late": [[0, 2]]},
             "watched_node": WATCHED_NODE,
             "runs": [dict(r.to_json(), label=label, seed=seed) for label, seed, r in rows]},
            indent=1, default=str) + "\n")
        err_console.print(f"wrote {args.json}")
    return 1


def program_hints(rows) -> list[str]:
    return sorted(rows[0][0].hint_scores) if rows else []


def _hint_cell(probe_type: str, value: float) -> str:
    """Scalar hints score as mean squared error (dm-clrs's convention), the rest as accuracy."""
    return f"{value:.2e} mse" if probe_type == "scalar" else f"{100 * value:.2f}%"


# -- inspection -----------------------------------------------------------------------------------


def _flat(tree, prefix=""):
    for key in sorted(tree):
        value = tree[key]
        path = f"{prefix}/{key}" if prefix else key
        if isinstance(value, dict):
            yield from _flat(value, path)
        else:
            yield path, np.asarray(value)


def _names(names, width, prefix=""):
    return [prefix + (names[i] if i < len(names) else str(i)) for i in range(width)]


def labels(path: str, shape, lay, net_config) -> tuple[list[str], list[str]]:
    """Row and column names of a weight matrix (biases are one row)."""
    h = net_config.hidden_size
    probe_table = net_config.probe_table
    parts = path.split("/")
    rows = cols = None
    leaf = parts[-1]
    module = parts[-2] if len(parts) >= 2 else ""
    z = _names(lay.node, h, "node.") + _names(lay.hidden, h, "hid.")
    if parts[0] == "encoders":
        probe = module.removesuffix("_2")
        row = probe_table.get(probe)
        to_edge = row is not None and (row.location == "edge" or row.type == "pointer")
        cols = _names(lay.edge if to_edge else lay.node, h, "edge." if to_edge else "node.")
        rows = ["x"] if leaf == "kernel" and shape[0] == 1 else [str(i) for i in range(shape[0])]
    elif parts[0] == "processor":
        att = _names(lay.attention, h, "att.")
        out = _names(lay.hidden, h, "new.")
        edge = _names(lay.edge, h, "edge.")
        rows, cols = {
            "W_p1": (z, att), "W_p2": (z, att), "W_edge": (edge, att), "W_graph": (None, att),
            "W_value": (z, out), "W_skip": (z, out), "W_info": (edge, _names(lay.hidden, h, "e.")),
            "W_reduce": (_names(lay.hidden, h, "e."), out), "a_0": (att, ["logit"]),
        }.get(module, (None, None))
    elif parts[0] == "decoders":
        h_t = z + _names(lay.hidden, h, "new.")
        if module in ("W_1", "W_2"):
            rows = h_t
        elif module == "W_e":
            rows = _names(lay.edge, h, "edge.")
    if leaf == "bias":
        rows = ["bias"]
    n_rows, n_cols = (1, shape[0]) if len(shape) == 1 else shape[:2]
    rows = rows if rows and len(rows) == n_rows else [str(i) for i in range(n_rows)]
    cols = cols if cols and len(cols) == n_cols else [str(i) for i in range(n_cols)]
    return rows, cols


def _fmt(x: float) -> str:
    if x == 0:
        return "·"
    k = math.log2(abs(x))
    if abs(x) >= 256 and k == int(k):
        return f"{'-' if x < 0 else ''}2^{int(k)}"
    return f"{x:.4g}".replace("e+0", "e").replace("e+", "e")


def matrices(params, lay, net_config):
    """(name, matrix, row labels, column labels) per module: its kernel with the bias as a last
    row; leaves that are not kernel / bias (pre_att_bias, layer norm) on their own."""
    leaves = dict(_flat(params))
    for path, value in leaves.items():
        if path.endswith("/bias") and path[:-len("bias")] + "kernel" in leaves:
            continue
        rows, cols = labels(path, value.shape, lay, net_config)
        matrix = value.reshape(1, -1) if value.ndim == 1 else value.reshape(value.shape[0], -1)
        name = path
        if path.endswith("/kernel"):
            name = path[:-len("/kernel")]
            bias = leaves.get(name + "/bias")
            if bias is not None:
                matrix = np.vstack([matrix, bias.reshape(1, -1)])
                rows = rows + ["bias"]
        yield name, matrix, rows, cols


def _nonzero(matrix):
    return np.flatnonzero(np.any(matrix != 0, axis=1)), np.flatnonzero(np.any(matrix != 0, axis=0))


def _show(params, lay, net_config) -> None:
    """Print each non-zero matrix (its non-zero rows and columns), named by what they hold."""
    zero = []
    for name, matrix, rows, cols in matrices(params, lay, net_config):
        if not np.any(matrix):
            zero.append(name)
            continue
        keep_r, keep_c = _nonzero(matrix)
        console.print(f"[bold]{name}[/] {matrix.shape[0] - (rows[-1] == 'bias')}×{matrix.shape[1]}"
                      f"{' + bias' if rows[-1] == 'bias' else ''}")
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        table.add_column("")
        for j in keep_c:
            table.add_column(cols[j], justify="right", no_wrap=True)
        for i in keep_r:
            table.add_row(rows[i], *(_fmt(float(matrix[i, j])) for j in keep_c))
        console.print(table)
        console.print()
    console.print(f"all zero: {', '.join(zero)}" if zero else "no all-zero matrices")


def write_heatmaps(params, lay, net_config, directory: Path) -> list[Path]:
    """A PNG per non-zero matrix: sign(w)·log2(1 + |w|), labelled rows and columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for path, matrix, rows, cols in matrices(params, lay, net_config):
        if not np.any(matrix):
            continue
        keep_r, keep_c = _nonzero(matrix)
        shown = matrix[np.ix_(keep_r, keep_c)]
        scaled = np.sign(shown) * np.log2(1.0 + np.abs(shown))
        fig, ax = plt.subplots(figsize=(2.4 + 0.9 * len(keep_c), 1.4 + 0.45 * len(keep_r)))
        limit = max(float(np.abs(scaled).max()), 1e-9)
        image = ax.imshow(scaled, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(len(keep_c)), [cols[j] for j in keep_c], rotation=60, ha="right",
                      fontsize=7)
        ax.set_yticks(range(len(keep_r)), [rows[i] for i in keep_r], fontsize=7)
        if shown.size <= 64:
            for (i, j), w in np.ndenumerate(shown):
                ax.text(j, i, _fmt(float(w)), ha="center", va="center", fontsize=6)
        ax.set_title(path, fontsize=8)
        fig.colorbar(image, ax=ax, label="sign · log2(1 + |w|)")
        fig.tight_layout()
        out = directory / (path.replace("/", "__") + ".png")
        fig.savefig(out, dpi=110)
        plt.close(fig)
        written.append(out)
    return written
