"""``gapsweep report``: each sweep's test scores beside the paper's numbers
(``orchestrator.report`` builds the report, ``orchestrator.report_formats`` and
``orchestrator.report_figures`` write it; this module is the command).

    gapsweep report                                    # every sweep, text, figures in runs/reports
    gapsweep report --experiment table10_edge_info --format markdown --output t10.md
    gapsweep report --sweep table1 --format json --no-figures
    gapsweep report --sweep table1 --mlflow sqlite:///runs/mlflow.db   # figure → MLflow too

The report goes to stdout (or ``--output``); what was written besides it goes to stderr, so that
``--format csv > report.csv`` stays clean.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Group

from db.engine import run_dir
from gapsweep.arguments import add_db_argument
from gapsweep.terminal import console, err_console
from workers.errors import GapsweepError

# cmd_report imports the store, the report's statistics and its writers (NumPy, SciPy,
# SQLAlchemy, matplotlib) when it runs: building the parser loads none of them.

FORMATS = ("text", "markdown", "csv", "latex", "json")


def add_commands(commands) -> None:
    report = commands.add_parser(
        "report", help="per-sweep tables of our scores beside the paper's, with figures",
        description="One table per sweep: per configuration, our test score mean ± std (max) "
                    "over done seeds (sample std), a 95%% bootstrap CI of the mean, seeds "
                    "done/planned, diverged and failed, the paper's mean ± std (max) and the "
                    "difference in paper stds; two-configuration sweeps add Welch's t-test and "
                    "Mann–Whitney U. A second table gives what many seeds show: the "
                    "interquartile mean with its CI, quantiles, success rates (exact and ≥ τ), "
                    "the expected best of k seeds, and a bimodality flag; a third "
                    "compares every pair of rows (P(X > Y), ΔIQM, paired where seeds share "
                    "their fresh data, Holm-adjusted p, seeds for 80%% power). Partial sweeps "
                    "report what is done and say so. A figure per sweep (<sweep>.png): the "
                    "seeds' scores against the paper's band, ECDFs, expected max of k.")
    which = report.add_mutually_exclusive_group()
    which.add_argument("--sweep", metavar="NAME", help="only this sweep")
    which.add_argument("--experiment", metavar="ID",
                       help="every sweep of this experiment (e.g. table1_baseline)")
    which.add_argument("--all", action="store_true", help="every sweep (the default)")
    report.add_argument("--format", choices=FORMATS, default="text",
                        help="output format (default: text)")
    report.add_argument("--success-threshold", metavar="PCT", type=_threshold,
                        default=95.0,
                        help="τ of the success rate column '≥ τ%%' (default: 95; exact, 100%%, "
                             "is always shown)")
    report.add_argument("--output", "-o", metavar="PATH", default=None,
                        help="write the report to this file instead of printing it")
    report.add_argument("--figures", metavar="DIR", default=None,
                        help="directory for the figures (default: the directory of --output, "
                             "else <run dir>/reports)")
    report.add_argument("--no-figures", action="store_true", help="write no figures")
    report.add_argument("--mlflow", metavar="URI", default=None,
                        help="also log each figure as the artifact report/<sweep>.png of a run "
                             "named 'report' in the sweep's MLflow experiment (default: don't)")
    add_db_argument(report)
    report.add_argument("--job", metavar="JOB_ID",
                        help="a job from 'gapsweep submit': report its sweep (unless --sweep or "
                             "--experiment), from the database the job records in (instead of "
                             "--db)")
    report.add_argument("--address",
                        help="the cluster's Ray dashboard address, for --job (default: "
                             "$RAY_ADDRESS when it is an http(s) address, else a running "
                             "'gapsweep stack')")
    report.set_defaults(handler=cmd_report)


def _threshold(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a percentage in "
                                         "(0, 100], e.g. 95") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not allowed; give a percentage in (0, 100], "
                                         "e.g. 95")
    return value


def _figure_directory(args) -> Path:
    if args.figures:
        return Path(args.figures)
    if args.output:
        return Path(args.output).parent
    return run_dir() / "reports"


def cmd_report(args) -> int:
    from db.store import ResultsStore
    from orchestrator import jobs
    from orchestrator import report as report_module
    from orchestrator import report_figures, report_formats

    if args.mlflow and args.no_figures:
        raise GapsweepError("report: --mlflow logs the figures to MLflow; drop --no-figures, or "
                            "--mlflow")
    if args.job:
        _, sweep, args.db = jobs.job_results(args.job, jobs.dashboard_address(args.address),
                                             args.db)
        if not (args.sweep or args.experiment):
            args.sweep = sweep
    with ResultsStore(args.db) as store:
        report = report_module.build_report(store, sweep=args.sweep, experiment=args.experiment,
                                             success_threshold_pct=args.success_threshold)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(report_formats.FORMATTERS[args.format](report), encoding="utf-8")
        os.replace(tmp, path)
        err_console.print(f"wrote {path} ({args.format})")
    elif args.format == "text":
        console.print(Group(*report_formats.text_renderables(report)))
    else:
        console.out(report_formats.FORMATTERS[args.format](report), end="", highlight=False)
    if args.no_figures or not report.sweeps:
        return 0
    figures = report_figures.write_figures(report, _figure_directory(args))
    for figure in figures.values():
        err_console.print(f"wrote figure {figure}", highlight=False)
    if args.mlflow:
        runs = report_figures.log_figures_to_mlflow(args.mlflow, report, figures)
        for sweep, run_id in runs.items():
            err_console.print(f"logged {sweep}'s figure to MLflow run {run_id} ({args.mlflow})",
                              highlight=False)
    return 0
