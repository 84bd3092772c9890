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


def grid_axis(sweep: SweepReport):
    """The one numeric setting a sweep's grid varies, read from its labels (``bfs/compile_scale=
    0.25``): ``(key, {rest of the label: [(value, configuration), …] by value})``, or None when no
    single numeric key varies (or it takes fewer than three values)."""
    parsed = []
    for c in sweep.configurations:
        parts = [p for chunk in c.label.split("/") for p in chunk.split(",")]
        numeric = {}
        for part in parts:
            key, sep, value = part.partition("=")
            if sep:
                try:
                    numeric[key] = float(value)
                except ValueError:
                    pass
        parsed.append((c, parts, numeric))
    keys = {k for _, _, numeric in parsed for k in numeric}
    varying = [k for k in sorted(keys)
               if len({numeric.get(k) for _, _, numeric in parsed}) >= 3
               and all(k in numeric for _, _, numeric in parsed)]
    if len(varying) != 1:
        return None
    key = varying[0]
    groups: dict[str, list] = {}
    for c, parts, numeric in parsed:
        rest = "/".join(p for p in parts if not p.startswith(f"{key}=")) or "all"
        groups.setdefault(rest, []).append((numeric[key], c))
    return key, {g: sorted(v, key=lambda item: item[0]) for g, v in groups.items()}


def _draw_axis(axes, key: str, groups) -> None:
    """Each group's seeds (dots), mean ± std (line, band) against the grid value (log scale)."""
    rng = np.random.default_rng(0)
    for i, (group, points) in enumerate(groups.items()):
        colour = f"C{i % 10}"
        values = [v for v, c in points if c.scores_pct]
        means = [c.mean_pct for _, c in points if c.scores_pct]
        stds = [c.std_pct or 0.0 for _, c in points if c.scores_pct]
        for v, c in points:
            if c.scores_pct:
                jitter = np.exp(rng.uniform(-0.06, 0.06, size=len(c.scores_pct)))
                axes.scatter(v * jitter, c.scores_pct, s=10, color=colour, alpha=0.4,
                             linewidths=0)
        axes.plot(values, means, marker="o", color=colour, label=group)
        axes.fill_between(values, np.subtract(means, stds), np.add(means, stds), color=colour,
                          alpha=0.15, linewidth=0)
    axes.set_xscale("log")
    axes.set_xlabel(f"{key} (log scale)")
    axes.set_ylabel("test score (%)")
    axes.set_ylim(-2, 104)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="best")
    axes.set_title(f"against {key}: mean ± std, seeds as dots", fontsize=10)


def write_figure(sweep: SweepReport, path: Path) -> Path:
    """Three panels, four where the sweep's grid varies one numeric setting (:func:`grid_axis`:
    the scores against it, one line per configuration group). Left, a strip plot of the seeds' scores per configuration (jittered,
    ``default_rng(0)``), our mean as a black bar, the paper's mean ± std as an orange line and
    band where it has one, other papers' numbers (published anchors) as green diamonds with their
    std. Middle, each configuration's ECDF (the share of seeds scoring at most x: a performance
    profile read from the right; dashed: the same seeds on the wide test). Right, the expected
    best of k seeds against k with its 95% interval, the paper's max at its seed count as a
    marker."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    count = max(len(sweep.configurations), 1)
    axis = grid_axis(sweep)
    widths = [max(4.5, 1.6 * count + 2), 4.5, 4.5] + ([5.5] if axis else [])
    figure = Figure(figsize=(sum(widths), 4.8), layout="constrained")
    panels = figure.subplots(1, len(widths), gridspec_kw={"width_ratios": widths})
    axes, ecdf_axes, max_axes = panels[:3]
    if axis:
        _draw_axis(panels[3], *axis)
    rng = np.random.default_rng(0)
    colours = [f"C{i % 10}" for i in range(count)]
    for x, c in enumerate(sweep.configurations):
        if c.paper is not None:
            low, high = c.paper.mean_pct - c.paper.std_pct, c.paper.mean_pct + c.paper.std_pct
            axes.fill_between([x - 0.4, x + 0.4], low, high, color="tab:orange", alpha=0.2,
                              linewidth=0)
            axes.hlines(c.paper.mean_pct, x - 0.4, x + 0.4, color="tab:orange", linewidth=2)
        for k, a in enumerate(c.anchors):       # other papers: mean ± std (s.e.m. converted)
            offset = 0.32 + 0.05 * k
            axes.errorbar([x + offset], [a.mean_pct], yerr=[a.std_pct], fmt="D", ms=4,
                          color="tab:green", capsize=2, linewidth=1)
        if c.scores_pct:
            jitter = rng.uniform(-0.22, 0.22, size=len(c.scores_pct))
            axes.scatter(x + jitter, c.scores_pct, s=14 if len(c.scores_pct) > 200 else 24,
                         color="tab:blue", alpha=0.55, linewidths=0)
            axes.hlines(c.mean_pct, x - 0.3, x + 0.3, color="black", linewidth=2)
            values = np.sort(np.asarray(c.scores_pct))
            shares = np.arange(1, values.size + 1) / values.size
            ecdf_axes.step(np.r_[values[0], values], np.r_[0.0, shares], where="post",
                           color=colours[x], label=c.label)
        if c.wide_test_scores_pct:
            wide = np.sort(np.asarray(c.wide_test_scores_pct))
            shares = np.arange(1, wide.size + 1) / wide.size
            ecdf_axes.step(np.r_[wide[0], wide], np.r_[0.0, shares], where="post",
                           color=colours[x], linestyle="--",
                           label=f"{c.label}: wide test ({c.wide_test.graphs:,} graphs)"
                           if c.wide_test else f"{c.label}: wide test")
        if c.statistics is not None and c.statistics.expected_max:
            ks = [e.k for e in c.statistics.expected_max]
            max_axes.plot(ks, [e.value_pct for e in c.statistics.expected_max], marker="o",
                          ms=3, color=colours[x], label=c.label)
            max_axes.fill_between(ks, [e.low_pct for e in c.statistics.expected_max],
                                  [e.high_pct for e in c.statistics.expected_max],
                                  color=colours[x], alpha=0.15, linewidth=0)
        if c.paper is not None and sweep.paper is not None:
            max_axes.scatter([sweep.paper.seeds], [c.paper.max_pct], marker="*", s=90,
                             color=colours[x], edgecolors="tab:orange", zorder=3)
    axes.set_xticks(range(len(sweep.configurations)),
                    [f"{c.label}\n{c.n_done}/{c.n_planned} seeds" for c in sweep.configurations],
                    fontsize=8)
    axes.set_xlim(-0.6, count - 0.4)
    axes.set_ylim(-2, 104)
    axes.set_ylabel("test score (%)")
    axes.grid(axis="y", alpha=0.3)
    title = f"{sweep.sweep} — {sweep.experiment}"
    axes.set_title(f"{title}\n{sweep.paper.title}" if sweep.paper else title, fontsize=10)
    ecdf_axes.set_xlabel("test score x (%)")
    ecdf_axes.set_ylabel("share of seeds scoring ≤ x")
    ecdf_axes.set_xlim(-2, 102)
    ecdf_axes.set_ylim(0, 1.02)
    ecdf_axes.grid(alpha=0.3)
    ecdf_axes.set_title("distribution of seeds (ECDF)", fontsize=10)
    max_axes.set_xscale("log")
    max_axes.set_xlabel("k seeds (log scale)")
    max_axes.set_ylabel("expected best of k seeds (%)")
    max_axes.grid(alpha=0.3)
    max_axes.set_title("what a study of k seeds reports as its max", fontsize=10)
    if sweep.configurations and any(c.scores_pct for c in sweep.configurations):
        ecdf_axes.legend(fontsize=6, loc="best")
    handles = [Line2D([], [], marker="o", linestyle="", color="tab:blue", alpha=0.55,
                      label="ours: one seed"),
               Line2D([], [], color="black", linewidth=2, label="ours: mean")]
    if any(c.paper for c in sweep.configurations):
        handles.append(Patch(facecolor="tab:orange", alpha=0.4, edgecolor="tab:orange",
                             label="paper: mean ± std"))
        handles.append(Line2D([], [], marker="*", linestyle="", color="gray",
                              markeredgecolor="tab:orange", markersize=10,
                              label="paper: max over its seeds"))
    if any(c.anchors for c in sweep.configurations):
        handles.append(Line2D([], [], marker="D", linestyle="", color="tab:green", markersize=4,
                              label="published elsewhere: mean ± std"))
    handles.append(Patch(facecolor="gray", alpha=0.3, label="95% interval of E[max of k]"))
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
