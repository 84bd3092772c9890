"""Figures of the aggregation report: a strip plot per sweep, and logging them to MLflow.

    from orchestrator import report, report_figures

    result = report.build_report(store)
    figures = report_figures.write_figures(result, Path("runs/reports"))   # sweep → <sweep>.png
    report_figures.log_figures_to_mlflow(tracking_uri, result, figures)    # sweep → MLflow run id

Matplotlib and MLflow are imported where they are used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np

from orchestrator.report import Report, SweepReport
from orchestrator.tracking import TAG_ROLE, TAG_SWEEP, SweepTracker, TrackingError

MLFLOW_REPORT_RUN_NAME = "report"
MLFLOW_REPORT_ARTIFACT_DIR = "report"
ROLE_REPORT = "report"              # value of the gapsweep.role tag of the report run

_FILE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


def figure_file_name(sweep: str) -> str:
    return (_FILE_NAME_CHARACTERS.sub("_", sweep).strip("._") or "sweep") + ".png"


def write_figure(sweep: SweepReport, path: Path) -> Path:
    """A strip plot of the seeds' scores per configuration (jittered, ``default_rng(0)``), our
    mean as a black bar, the paper's mean ± std as an orange line and band where it has one."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    count = max(len(sweep.configurations), 1)
    figure = Figure(figsize=(max(4.5, 1.6 * count + 2), 4.8), layout="constrained")
    axes = figure.add_subplot()
    rng = np.random.default_rng(0)
    for x, c in enumerate(sweep.configurations):
        if c.paper is not None:
            low, high = c.paper.mean_pct - c.paper.std_pct, c.paper.mean_pct + c.paper.std_pct
            axes.fill_between([x - 0.4, x + 0.4], low, high, color="tab:orange", alpha=0.2,
                              linewidth=0)
            axes.hlines(c.paper.mean_pct, x - 0.4, x + 0.4, color="tab:orange", linewidth=2)
        if c.scores_pct:
            jitter = rng.uniform(-0.22, 0.22, size=len(c.scores_pct))
            axes.scatter(x + jitter, c.scores_pct, s=14 if len(c.scores_pct) > 200 else 24,
                         color="tab:blue", alpha=0.55, linewidths=0)
            axes.hlines(c.mean_pct, x - 0.3, x + 0.3, color="black", linewidth=2)
    axes.set_xticks(range(len(sweep.configurations)),
                    [f"{c.label}\n{c.n_done}/{c.n_planned} seeds" for c in sweep.configurations],
                    fontsize=8)
    axes.set_xlim(-0.6, count - 0.4)
    axes.set_ylim(-2, 104)
    axes.set_ylabel("test score (%)")
    axes.grid(axis="y", alpha=0.3)
    title = f"{sweep.sweep} — {sweep.experiment}"
    axes.set_title(f"{title}\n{sweep.paper.title}" if sweep.paper else title, fontsize=10)
    handles = [Line2D([], [], marker="o", linestyle="", color="tab:blue", alpha=0.55,
                      label="ours: one seed"),
               Line2D([], [], color="black", linewidth=2, label="ours: mean")]
    if any(c.paper for c in sweep.configurations):
        handles.append(Patch(facecolor="tab:orange", alpha=0.4, edgecolor="tab:orange",
                             label="paper: mean ± std"))
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8,
                  frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def write_figures(report: Report, directory: str | Path) -> dict[str, Path]:
    """``<directory>/<sweep>.png`` for every sweep; returns sweep name → file."""
    directory = Path(directory)
    return {s.sweep: write_figure(s, directory / figure_file_name(s.sweep)) for s in report.sweeps}


# -- MLflow ----------------------------------------------------------------------------------------

def log_figures_to_mlflow(tracking_uri: str, report: Report,
                          figures: Mapping[str, Path]) -> dict[str, str]:
    """Each sweep's figure as the artifact ``report/<sweep>.png`` of a run named ``report`` (tags
    ``gapsweep.sweep``, ``gapsweep.role=report``) in the sweep's MLflow experiment, created on
    first use and reused (the artifact replaced) after. Returns sweep name → MLflow run id."""
    run_ids = {}
    for sweep in report.sweeps:
        if sweep.sweep not in figures:
            continue
        if "'" in sweep.sweep:
            raise TrackingError(f"sweep {sweep.sweep!r}: a name with a quote (') cannot be "
                                "searched for in MLflow")
        with SweepTracker(tracking_uri, sweep.mlflow_experiment, sweep.sweep,
                          log_processes=1) as tracker:
            client = tracker.client
            found = tracker.find_run(ROLE_REPORT)
            if found is not None:
                run_id = found.info.run_id
            else:
                run_id = client.create_run(
                    tracker.experiment_id, run_name=MLFLOW_REPORT_RUN_NAME,
                    tags={TAG_SWEEP: sweep.sweep, TAG_ROLE: ROLE_REPORT}).info.run_id
            client.log_artifact(run_id, str(figures[sweep.sweep]), MLFLOW_REPORT_ARTIFACT_DIR)
            client.set_terminated(run_id, status="FINISHED")
        run_ids[sweep.sweep] = run_id
    return run_ids
