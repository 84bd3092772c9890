"""``gapsweep analyse``: faithfulness and loss landscapes of a finished sweep's stored parameters
(``orchestrator.analysis`` does the work; this module is the command).

    gapsweep analyse faithfulness --sweep quickstart                # every configuration
    gapsweep analyse faithfulness --sweep table1_baseline --config bfs --json bfs.json
    gapsweep analyse landscape --sweep quickstart --config algorithm=bfs --seed 0
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.arguments import positive_int
from orchestrator.results_cli import add_db_argument
from orchestrator.terminal import console, err_console


def add_commands(commands) -> None:
    analyse = commands.add_parser(
        "analyse", help="faithfulness and loss landscapes of a sweep's stored parameters",
        description="Analyses of a finished sweep, on each done run's best parameters from the "
                    "results database, vmapped over seeds. Results go back to the database "
                    "(metric curves), to figures and arrays under <run dir>/analyses/<sweep>/, and "
                    "with --mlflow to each configuration's MLflow parent run.")
    kinds = analyse.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    faith = kinds.add_parser(
        "faithfulness", help="trace and attention faithfulness per hint step",
        description="Per configuration and hint step: each decoded hint's accuracy against the "
                    "true trace and the share of nodes whose top attention sender is the one the "
                    "algorithm (and the compiled network) selects, mean ± std over seeds; and "
                    "across seeds, attention faithfulness against the test score (Pearson and "
                    "Spearman correlations). BFS and Bellman-Ford configurations.")
    faith.add_argument("--chunk", type=positive_int, default=8, metavar="SEEDS",
                       help="seeds evaluated at once (default: 8)")
    faith.add_argument("--json", metavar="PATH", help="write the results here")
    land = kinds.add_parser(
        "landscape", help="loss landscapes around learned, initial and compiled parameters",
        description="The training objective on a fixed batch (the first --graphs validation "
                    "graphs) over 2-D planes: around the seed's learned (best) parameters, its "
                    "initial ones and the compiled ones (when the configuration can hold the "
                    "program), along filter-normalised random directions; and the plane through "
                    "the compiled (else initial) and the learned parameters. Contour PNGs and "
                    "the arrays (.npz) go to the figures directory; each landscape's centre loss "
                    "and sharpness go to the database.")
    land.add_argument("--seed", type=int, action="append", metavar="SEED",
                      help="the seed(s) to analyse (repeatable; default: the configuration's "
                           "first done seed)")
    land.add_argument("--grid", type=positive_int, default=21, help="points per axis (default 21)")
    land.add_argument("--span", type=float, default=1.0,
                      help="the planes around a point reach ±SPAN direction lengths (default 1)")
    land.add_argument("--graphs", type=positive_int, default=16,
                      help="validation graphs in the fixed batch (default 16)")
    for parser in (faith, land):
        parser.add_argument("--sweep", required=True, metavar="NAME", help="the sweep")
        parser.add_argument("--config", action="append", metavar="LABEL",
                            help="only this configuration (repeatable; default: every BFS and "
                                 "Bellman-Ford configuration)")
        parser.add_argument("--figures", metavar="DIR",
                            help="where figures go (default: <run dir>/analyses/<sweep>)")
        parser.add_argument("--mlflow", metavar="URI",
                            help="also log the figures as artifacts of each configuration's "
                                 "MLflow parent run")
        parser.add_argument("--cache-dir", default=None, help="data cache directory")
        add_db_argument(parser)
    faith.set_defaults(handler=cmd_faithfulness)
    land.set_defaults(handler=cmd_landscape)


def _figure_dir(args) -> Path:
    from db.engine import run_dir

    return Path(args.figures) if args.figures else run_dir() / "analyses" / args.sweep


def _sweep_row(store, name: str) -> dict:
    store.sweep_id(name)     # the error that lists the known sweeps
    return next(s for s in store.sweeps() if s["name"] == name)


def cmd_faithfulness(args) -> int:
    from db.store import ResultsStore
    from workers.data import DataCache

    with ResultsStore(args.db) as store:
        results = faithfulness_for_sweep(store, args.sweep, args.config, DataCache(args.cache_dir),
                                         _figure_dir(args), args.mlflow, args.chunk)
    if not results:
        err_console.print(f"[bold red]error:[/] sweep {args.sweep!r} has no BFS or "
                          "Bellman-Ford configuration to analyse")
        return 2
    if args.json:
        Path(args.json).write_text(json.dumps({"sweep": args.sweep,
                                               "configurations": [r.to_json() for r in results]},
                                              indent=1) + "\n")
        err_console.print(f"wrote {args.json}")
    return 0


def faithfulness_for_sweep(store, sweep_name: str, labels, cache, figures: Path,
                           mlflow_uri: str | None = None, chunk: int = 8) -> list:
    """Faithfulness of each configuration (default: every BFS / Bellman-Ford one): stored, plotted,
    printed and, with ``mlflow_uri``, logged. What ``gapsweep analyse faithfulness`` and a sweep's
    ``analyses: [faithfulness]`` run."""
    from orchestrator import analysis
    from orchestrator.report import mlflow_experiment
    from workers.compile.programs import PROGRAMS

    sweep = _sweep_row(store, sweep_name)
    configs = store.configurations(sweep["id"])
    labels = labels or [c["label"] for c in configs if c["algorithm"] in PROGRAMS]
    results = []
    for label in labels:
        population = analysis.load_population(store, sweep["id"], label)
        with Progress(TextColumn(f"{label}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("seeds"), TimeElapsedColumn(), console=console,
                      transient=True) as progress:
            task = progress.add_task(label, total=len(population.seeds))
            result = analysis.faithfulness_of(
                population, cache, chunk,
                progress=lambda done, total: progress.update(task, completed=done))
        analysis.store_faithfulness(store, population, result)
        path = analysis.plot_faithfulness(
            result, figures / f"faithfulness-{_slug(label)}.png", f"{sweep_name} / {label}")
        _print_result(result)
        err_console.print(f"wrote {path}; stored test/{analysis.ATTENTION_CURVE} for "
                          f"{len(population.run_ids)} run(s)")
        if mlflow_uri:
            run_id = analysis.log_artifacts_to_mlflow(
                mlflow_uri, mlflow_experiment(sweep_name, sweep["spec_yaml"]), sweep_name, label,
                [path])
            err_console.print(f"logged it to MLflow run {run_id}")
        results.append(result)
    return results


def _slug(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)


def _print_result(result) -> None:
    steps = result.attention.shape[1]
    shown = list(range(min(steps, 12)))
    table = Table(title=f"{result.label} ({result.algorithm}): faithfulness per hint step, mean ± "
                        f"std over {len(result.seeds)} seed(s)", title_justify="left")
    table.add_column("", no_wrap=True)
    for t in shown:
        table.add_column(f"t={t + 1}", justify="right", no_wrap=True)

    def cells(values):
        with np.errstate(all="ignore"):
            mean, std = np.nanmean(values, 0), np.nanstd(values, 0)
        return [("-" if not np.isfinite(mean[t]) else f"{mean[t]:.2f}±{std[t]:.2f}") for t in shown]

    table.add_row("attention", *cells(result.attention))
    table.add_row("chance", *[("-" if not np.isfinite(result.chance[t]) else
                               f"{result.chance[t]:.2f}") for t in shown])
    for hint, values in sorted(result.trace.items()):
        table.add_row(f"hint {hint}" + (" (mse)" if hint == "d" else ""), *cells(values))
    console.print(table)
    r, p = result.pearson
    rho, p_rho = result.spearman
    console.print(f"attention faithfulness vs test score across seeds: Pearson r = {r:.3f} "
                  f"(p = {p:.3g}), Spearman ρ = {rho:.3f} (p = {p_rho:.3g})"
                  + (f"; {steps - len(shown)} later step(s) in the figure and JSON"
                     if steps > len(shown) else ""))


def cmd_landscape(args) -> int:
    from db.store import ResultsStore
    from workers.data import DataCache

    with ResultsStore(args.db) as store:
        landscapes_for_sweep(store, args.sweep, args.config, args.seed, DataCache(args.cache_dir),
                             _figure_dir(args), args.mlflow, args.grid, args.span, args.graphs)
    return 0


def landscapes_for_sweep(store, sweep_name: str, labels, seeds, cache, figures: Path,
                         mlflow_uri: str | None = None, grid: int = 21, span: float = 1.0,
                         graphs: int = 16) -> None:
    """Loss landscapes of each configuration (default: all) at the given seeds (default: its first
    done seed): stored, written, printed and, with ``mlflow_uri``, logged."""
    from orchestrator import analysis
    from orchestrator.report import mlflow_experiment

    sweep = _sweep_row(store, sweep_name)
    for label in labels or [c["label"] for c in store.configurations(sweep["id"])]:
        done = store.runs_of(sweep["id"], label, status="done")
        for seed in seeds or [done[0]["seed"] if done else 0]:   # none done: loading says so
            with console.status(f"{label}, seed {seed}: {grid}×{grid} losses per landscape"):
                result = analysis.landscapes_of(store, sweep["id"], label, seed, cache, grid, span,
                                                graphs)
            analysis.store_landscapes(store, result)
            files = analysis.write_landscapes(result, figures,
                                              f"{sweep_name} / {label} / seed {seed}")
            table = Table(title=f"{label}, seed {seed}: loss landscapes", title_justify="left")
            for column in ("plane", "centre loss", "mean rise", "max rise"):
                table.add_column(column, justify="left" if column == "plane" else "right")
            for name, landscape in result.landscapes.items():
                summary = analysis.landscape_summary(landscape)
                table.add_row(name, *(f"{summary[k]:.4g}" for k in
                                      ("centre_loss", "mean_rise", "max_rise")))
            console.print(table)
            err_console.print(f"wrote {len(files)} file(s) to {figures}")
            if mlflow_uri:
                run_id = analysis.log_artifacts_to_mlflow(
                    mlflow_uri, mlflow_experiment(sweep_name, sweep["spec_yaml"]), sweep_name,
                    label, files)
                err_console.print(f"logged them to MLflow run {run_id}")


def run_sweep_analyses(store, sweep_name: str, analyses, cache, mlflow_uri: str | None) -> None:
    """A sweep file's ``analyses:``, run by ``gapsweep run`` once its seeds are recorded."""
    from db.engine import run_dir

    figures = run_dir() / "analyses" / sweep_name
    if "faithfulness" in analyses:
        faithfulness_for_sweep(store, sweep_name, None, cache, figures, mlflow_uri)
    if "landscape" in analyses:
        landscapes_for_sweep(store, sweep_name, None, None, cache, figures, mlflow_uri)
