"""``gapsweep analyse``: faithfulness, loss landscapes and the wide test of a finished sweep's
stored parameters (``orchestrator.sweep_analyses`` does the work; this module is the command).

    gapsweep analyse faithfulness --sweep quickstart                # every configuration
    gapsweep analyse faithfulness --sweep table1_baseline --config bfs --json bfs.json
    gapsweep analyse landscape --sweep quickstart --config algorithm=bfs --seeds 4
    gapsweep analyse wide-test --sweep table13_minimal --graphs 1024
    gapsweep analyse faithfulness --sweep table1_baseline --address auto     # on the cluster's workers

The computation is a worker task per configuration (``workers.analysis.analysis_task``), vmapped over the
configuration's seeds: in this process by default, or with ``--address`` as Ray tasks on the
cluster's workers with the sweep's resources (its GPUs). ``gapsweep run`` runs a sweep file's
``analyses:`` the same way, as Ray tasks in the sweep's own Ray session.
"""

from __future__ import annotations

import json
from pathlib import Path

from gapsweep.arguments import add_db_argument, gpu_count, positive_int
from gapsweep.terminal import err_console

# The handlers import the results store and the analyses (NumPy, SQLAlchemy, the engine) when they
# run: building the parser, for `gapsweep --help` or any other command, loads none of them.


def add_commands(commands) -> None:
    analyse = commands.add_parser(
        "analyse", help="faithfulness, loss landscapes and the wide test of a sweep's stored "
                        "parameters",
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
    wide = kinds.add_parser(
        "wide-test", help="each seed scored on many more test graphs than CLRS-30's 32",
        description="Each done seed's best parameters scored on --graphs test graphs at its "
                    "configuration's test size, drawn as CLRS-30's test split is (one sampler, "
                    "fixed positions) with data seed --data-seed, pooled over the graphs. The "
                    "scores go to the database (metric test/wide_test/score); `gapsweep report` "
                    "then shows them beside the CLRS-30 scores and splits the seeds' variance "
                    "into seed variance and test-sample noise.")
    wide.add_argument("--graphs", type=positive_int, default=1024,
                      help="test graphs (default 1024)")
    wide.add_argument("--data-seed", type=int, default=4, metavar="SEED",
                      help="the data seed the graphs are drawn with (default 4; not 3, "
                           "CLRS-30's test split)")
    wide.add_argument("--chunk", type=positive_int, default=None, metavar="SEEDS",
                      help="seeds evaluated at once (default and cap: 64)")
    wide.add_argument("--json", metavar="PATH", help="write every seed's two scores here")
    for parser in (faith, land, wide):
        parser.add_argument("--sweep", required=True, metavar="NAME", help="the sweep")
        parser.add_argument("--config", action="append", metavar="LABEL",
                            help="only this configuration: its label, or a part of it that "
                                 "names it alone (bfs for algorithm=bfs); repeatable (default: "
                                 "every BFS and Bellman-Ford configuration for faithfulness, "
                                 "every configuration otherwise)")
        parser.add_argument("--cache-dir", default=None, help="data cache directory")
        parser.add_argument("--address", default=None,
                            help="compute on this Ray cluster's workers ('auto', HOST:6379 or "
                                 "ray://HOST:10001), one task per configuration with the sweep's "
                                 "resources (default: in this process)")
        parser.add_argument("--gpus", type=gpu_count, default=None, metavar="N",
                            help="with --address: GPUs per task instead of the sweep's "
                                 "resources.gpus (0: CPUs)")
        add_db_argument(parser)
    for parser in (faith, land):
        parser.add_argument("--figures", metavar="DIR",
                            help="where figures go (default: <run dir>/analyses/<sweep>)")
        parser.add_argument("--mlflow", metavar="URI",
                            help="also log the figures as artifacts of each configuration's "
                                 "MLflow parent run")
    faith.set_defaults(handler=cmd_faithfulness, interrupted=(
        "the configurations already analysed are stored (database and figures), the one in "
        "progress is not (--json is written only at the end)"))
    land.set_defaults(handler=cmd_landscape, interrupted=(
        "the configurations already analysed are stored (database and figures), the one in "
        "progress is not"))
    wide.set_defaults(handler=cmd_wide_test, interrupted=(
        "the configurations already scored are stored, the one in progress is not"))


def _figure_dir(args) -> Path:
    from orchestrator.sweep_analyses import figure_dir

    return Path(args.figures) if args.figures else figure_dir(args.sweep)


def _write_json(path: str, sweep: str, results) -> None:
    """--json: the sweep and each configuration's result (``to_json``)."""
    Path(path).write_text(json.dumps({"sweep": sweep,
                                      "configurations": [r.to_json() for r in results]},
                                     indent=1) + "\n")
    err_console.print(f"wrote {path}")


def cmd_faithfulness(args) -> int:
    from db.store import ResultsStore
    from gapsweep.progress import AnalysisView
    from orchestrator.sweep_analyses import analysis_workers, faithfulness_for_sweep

    with ResultsStore(args.db) as store, \
            analysis_workers(store, args.sweep, args.address, args.gpus) as workers:
        results = faithfulness_for_sweep(store, args.sweep, args.config, args.cache_dir,
                                         _figure_dir(args), args.mlflow, args.chunk, workers,
                                         AnalysisView())
    if not results:
        err_console.print(f"[bold red]error:[/] sweep {args.sweep!r} has no BFS or "
                          "Bellman-Ford configuration to analyse")
        return 2
    if args.json:
        _write_json(args.json, args.sweep, results)
    return 0


def cmd_landscape(args) -> int:
    from db.store import ResultsStore
    from gapsweep.progress import AnalysisView
    from orchestrator.sweep_analyses import analysis_workers, landscapes_for_sweep

    with ResultsStore(args.db) as store, \
            analysis_workers(store, args.sweep, args.address, args.gpus) as workers:
        landscapes_for_sweep(store, args.sweep, args.config, args.seed, args.cache_dir,
                             _figure_dir(args), args.mlflow, args.grid, args.span, args.graphs,
                             args.seeds, workers, AnalysisView())
    return 0


def cmd_wide_test(args) -> int:
    from db.store import ResultsStore
    from gapsweep.progress import AnalysisView
    from pydantic import ValidationError

    from orchestrator.spec import WideTest
    from orchestrator.sweep_analyses import analysis_workers, wide_test_for_sweep

    try:
        settings = WideTest(graphs=args.graphs, data_seed=args.data_seed)
    except ValidationError as error:       # say which flag and what is allowed, not the model
        first = error.errors()[0]
        flag = {"graphs": "--graphs", "data_seed": "--data-seed"}[first["loc"][0]]
        err_console.print(f"[bold red]error:[/] {flag} "
                          f"{first.get('ctx', {}).get('message', first['msg'])}")
        return 2
    with ResultsStore(args.db) as store, \
            analysis_workers(store, args.sweep, args.address, args.gpus) as workers:
        results = wide_test_for_sweep(store, args.sweep, args.config, settings.graphs,
                                      settings.data_seed, args.cache_dir, args.chunk, workers,
                                      AnalysisView())
    if args.json:
        _write_json(args.json, args.sweep, results)
    return 0
