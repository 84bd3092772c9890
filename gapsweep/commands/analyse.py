"""``gapsweep analyse``: faithfulness and loss landscapes of a finished sweep's stored parameters
(``orchestrator.analysis`` does the work; this module is the command).

    gapsweep analyse faithfulness --sweep quickstart                # every configuration
    gapsweep analyse faithfulness --sweep table1_baseline --config bfs --json bfs.json
    gapsweep analyse landscape --sweep quickstart --config algorithm=bfs --seeds 4
    gapsweep analyse faithfulness --sweep table1_baseline --address auto     # on the cluster's workers

The computation is a worker task per configuration (``workers.analysis.analysis_task``), vmapped over the
configuration's seeds: in this process by default, or with ``--address`` as Ray tasks on the
cluster's workers with the sweep's resources (its GPUs). ``gapsweep run`` runs a sweep file's
``analyses:`` the same way, as Ray tasks in the sweep's own Ray session.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gapsweep.arguments import add_db_argument, gpu_count, positive_int
from gapsweep.terminal import console, err_console
from orchestrator.schedule import WorkerCall, run_here


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
    faith.add_argument("--chunk", type=positive_int, default=None, metavar="SEEDS",
                       help="seeds evaluated at once (default and cap: 16 on CPUs, 64 on GPUs)")
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
    which = land.add_mutually_exclusive_group()
    which.add_argument("--seed", type=int, action="append", metavar="SEED",
                       help="a seed to analyse (repeatable)")
    which.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                       help="analyse the first N done seeds of each configuration (default 1)")
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
        parser.add_argument("--address", default=None,
                            help="compute on this Ray cluster's workers ('auto', HOST:6379 or "
                                 "ray://HOST:10001), one task per configuration with the sweep's "
                                 "resources (default: in this process)")
        parser.add_argument("--gpus", type=gpu_count, default=None, metavar="N",
                            help="with --address: GPUs per task instead of the sweep's "
                                 "resources.gpus (0: CPUs)")
        add_db_argument(parser)
    faith.set_defaults(handler=cmd_faithfulness)
    land.set_defaults(handler=cmd_landscape)


def _figure_dir(args) -> Path:
    from db.engine import run_dir

    return Path(args.figures) if args.figures else run_dir() / "analyses" / args.sweep


def _sweep_row(store, name: str) -> dict:
    store.sweep_id(name)     # the error that lists the known sweeps
    return next(s for s in store.sweeps() if s["name"] == name)


def _task_resources(args, store) -> tuple[float, float]:
    """(cpus, gpus) of one analysis task on a cluster: the sweep's resources, ``--gpus`` first."""
    from orchestrator.spec import SpecError, parse_spec

    try:
        resources = parse_spec(_sweep_row(store, args.sweep)["spec_yaml"] or "").resources
        cpus, gpus = resources.cpus, resources.gpus
    except SpecError:
        cpus, gpus = 1.0, 0.0                   # a sweep registered without a full sweep file
    return cpus, gpus if args.gpus is None else args.gpus


def _with_ray(args, store, work) -> int:
    """``work(workers)``: with :func:`run_here`, or with ``--address`` inside a Ray session on that
    cluster with a ``run_on_workers`` that asks for the sweep's resources (checked against the
    cluster's GPUs)."""
    if not args.address:
        return work(run_here)
    import functools

    import ray

    from orchestrator.schedule import ray_session, run_on_workers

    cpus, gpus = _task_resources(args, store)
    with ray_session(args.address):
        available = ray.cluster_resources().get("GPU", 0)
        if gpus > available:
            err_console.print(f"[bold red]error:[/] each analysis task asks for {gpus:g} GPU(s) "
                              f"(resources.gpus of the sweep, or --gpus) but the cluster has "
                              f"{available:g}; pass --gpus 0 to analyse on CPUs")
            return 2
        return work(functools.partial(run_on_workers, cpus=cpus, gpus=gpus))


def cmd_faithfulness(args) -> int:
    from db.store import ResultsStore

    with ResultsStore(args.db) as store:
        results = []

        def work(workers):
            results.extend(faithfulness_for_sweep(
                store, args.sweep, args.config, args.cache_dir, _figure_dir(args), args.mlflow,
                args.chunk, workers))
            return 0

        code = _with_ray(args, store, work)
    if code:
        return code
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


def _progress(total: int, what: str) -> Progress:
    return Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(),
                    TextColumn("configurations"), TimeElapsedColumn(), console=console,
                    transient=True)


def faithfulness_for_sweep(store, sweep_name: str, labels, cache_dir: str | None, figures: Path,
                           mlflow_uri: str | None = None, chunk: int | None = None,
                           workers=run_here) -> list:
    """Faithfulness of each configuration (default: every BFS / Bellman-Ford one): one worker
    task per configuration (``workers``: :func:`run_here` or a ``run_on_workers`` partial), then
    stored, plotted, printed and, with ``mlflow_uri``, logged. What ``gapsweep analyse
    faithfulness`` and a sweep's ``analyses: [faithfulness]`` run."""
    from orchestrator import analysis
    from orchestrator.report import mlflow_experiment
    from workers.analysis.analysis_task import faithfulness_task
    from workers.compile.algorithm_programs import PROGRAMS

    sweep = _sweep_row(store, sweep_name)
    configs = store.configurations(sweep["id"])
    labels = labels or [c["label"] for c in configs if c["algorithm"] in PROGRAMS]
    populations = [analysis.load_population(store, sweep["id"], label) for label in labels]
    calls = [WorkerCall(f"{sweep_name}/{p.label}/faithfulness", faithfulness_task,
                        (p.config.to_dict(), p.params),
                        {"cache_dir": cache_dir, "chunk": chunk}) for p in populations]
    results: list = [None] * len(populations)
    with _progress(len(calls), "faithfulness") as progress:
        task = progress.add_task("faithfulness", total=len(calls))
        for index, arrays in workers(calls):
            population = populations[index]
            result = analysis.faithfulness_result(population, arrays)
            analysis.store_faithfulness(store, population, result)
            path = analysis.plot_faithfulness(
                result, figures / f"faithfulness-{analysis.slug(population.label)}.png",
                f"{sweep_name} / {population.label}")
            progress.console.print(_result_table(result))
            progress.console.print(_correlation_line(result))
            err_console.print(f"{population.label}: {len(population.seeds)} seed(s) on "
                              f"{arrays.device} in {arrays.seconds:.1f} s; wrote {path}; stored "
                              f"test/{analysis.ATTENTION_CURVE} for {len(population.run_ids)} "
                              "run(s)")
            if mlflow_uri:
                run_id = analysis.log_artifacts_to_mlflow(
                    mlflow_uri, mlflow_experiment(sweep_name, sweep["spec_yaml"]), sweep_name,
                    population.label, [path])
                err_console.print(f"logged it to MLflow run {run_id}")
            results[index] = result
            progress.advance(task)
    return results


def _result_table(result) -> Table:
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
    return table


def _correlation_line(result) -> str:
    steps = result.attention.shape[1]
    shown = min(steps, 12)
    r, p = result.pearson
    rho, p_rho = result.spearman
    return (f"attention faithfulness vs test score across seeds: Pearson r = {r:.3f} "
            f"(p = {p:.3g}), Spearman ρ = {rho:.3f} (p = {p_rho:.3g})"
            + (f"; {steps - shown} later step(s) in the figure and JSON" if steps > shown else ""))


def cmd_landscape(args) -> int:
    from db.store import ResultsStore

    def work(workers) -> int:
        landscapes_for_sweep(store, args.sweep, args.config, args.seed, args.cache_dir,
                             _figure_dir(args), args.mlflow, args.grid, args.span, args.graphs,
                             args.seeds, workers)
        return 0

    with ResultsStore(args.db) as store:
        return _with_ray(args, store, work)


def landscapes_for_sweep(store, sweep_name: str, labels, seeds, cache_dir: str | None,
                         figures: Path, mlflow_uri: str | None = None, grid: int = 21,
                         span: float = 1.0, graphs: int = 16, first: int = 1,
                         workers=run_here) -> list:
    """Loss landscapes of each configuration (default: all) at the given seeds (default: its
    ``first`` done seeds): one worker task per configuration, vmapped over its seeds; then stored,
    written, printed and, with ``mlflow_uri``, logged."""
    from orchestrator import analysis
    from orchestrator.report import mlflow_experiment
    from workers.analysis.analysis_task import landscape_task

    sweep = _sweep_row(store, sweep_name)
    populations = []
    for label in labels or [c["label"] for c in store.configurations(sweep["id"])]:
        wanted = seeds or [r["seed"] for r in store.runs_of(sweep["id"], label, status="done")
                           ][:first] or None                   # none done: loading says so
        populations.append(analysis.load_population(store, sweep["id"], label, seeds=wanted))
    calls = [WorkerCall(f"{sweep_name}/{p.label}/landscape", landscape_task,
                        (p.config.to_dict(), p.seeds, p.params),
                        {"cache_dir": cache_dir, "grid": grid, "span": span, "graphs": graphs})
             for p in populations]
    results: list = [None] * len(populations)
    with _progress(len(calls), f"landscapes ({grid}×{grid})") as progress:
        task = progress.add_task("landscapes", total=len(calls))
        for index, arrays in workers(calls):
            population = populations[index]
            result = analysis.landscape_set(population, arrays)
            analysis.store_landscapes(store, result)
            files = analysis.write_landscapes(result, figures,
                                              f"{sweep_name} / {population.label}")
            progress.console.print(_landscape_table(result))
            err_console.print(f"{population.label}: {len(population.seeds)} seed(s) on "
                              f"{arrays.device} in {arrays.seconds:.1f} s; wrote {len(files)} "
                              f"file(s) to {figures}")
            if mlflow_uri:
                run_id = analysis.log_artifacts_to_mlflow(
                    mlflow_uri, mlflow_experiment(sweep_name, sweep["spec_yaml"]), sweep_name,
                    population.label, files)
                err_console.print(f"logged them to MLflow run {run_id}")
            results[index] = result
            progress.advance(task)
    return results


def _landscape_table(result) -> Table:
    from orchestrator import analysis

    table = Table(title=f"{result.label}: loss landscapes", title_justify="left")
    for column in ("seed", "plane", "centre loss", "mean rise", "max rise"):
        table.add_column(column, justify="left" if column in ("seed", "plane") else "right")
    rows = [(str(seed), name, landscape) for seed, landscapes in zip(result.seeds, result.per_seed)
            for name, landscape in landscapes.items()]
    rows += [("-", name, landscape) for name, landscape in result.shared.items()]
    for seed, name, landscape in rows:
        summary = analysis.landscape_summary(landscape)
        table.add_row(seed, name, *(f"{summary[k]:.4g}" for k in
                                    ("centre_loss", "mean_rise", "max_rise")))
    return table


def run_sweep_analyses(store, sweep_name: str, analyses, cache_dir: str | None,
                       mlflow_uri: str | None, workers=run_here) -> None:
    """A sweep file's ``analyses:``, run by ``gapsweep run`` once its seeds are recorded."""
    from db.engine import run_dir

    figures = run_dir() / "analyses" / sweep_name
    if "faithfulness" in analyses:
        faithfulness_for_sweep(store, sweep_name, None, cache_dir, figures, mlflow_uri,
                               workers=workers)
    if "landscape" in analyses:
        landscapes_for_sweep(store, sweep_name, None, None, cache_dir, figures, mlflow_uri,
                             workers=workers)
