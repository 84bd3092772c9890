"""How the commands show the engine's progress: ``orchestrator.events`` subclasses that print.

``AnalysisView`` shows analyses (a bar per analysis, a table per configuration); ``SweepView``
adds what ``gapsweep run`` shows around training (data being built, the run's header, the
outcome table); ``LiveProgress`` (a rich live view, on a terminal) and ``LogLines`` (time-stamped
lines, for pipes and log files) show training itself.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from gapsweep.render import counts_score_cell, print_best_step_0_note
from gapsweep.terminal import console, err_console
from orchestrator import sweep_analyses
from orchestrator.events import SweepEvents
from orchestrator.tracking import runs_page_url, ui_command


class DataView(SweepEvents):
    """Data being built: a transient bar per data set (and one for ``all`` graphs, with
    ``overall``), removed when the set is in the cache."""

    overall = False

    def __init__(self, overall: bool = False):
        self.overall = overall

    def data_start(self, requests, directory):
        self.data_bars = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("graphs"), TimeElapsedColumn(),
                                  TimeRemainingColumn(), console=console, transient=True)
        self.data_bars.start()
        self.data_all = (self.data_bars.add_task("all", total=sum(r.count for r in requests))
                         if self.overall else None)
        self.data_tasks: dict = {}

    def data_progress(self, request, graphs):
        if request not in self.data_tasks:
            self.data_tasks[request] = self.data_bars.add_task(request.label, total=request.count)
        self.data_bars.advance(self.data_tasks[request], graphs)
        if self.data_all is not None:
            self.data_bars.advance(self.data_all, graphs)

    def data_done(self, request, fetched):
        if request in self.data_tasks:
            self.data_bars.remove_task(self.data_tasks.pop(request))

    def data_stop(self):
        self.data_bars.stop()


class AnalysisView(SweepEvents):
    """Analyses: a transient bar over configurations, then per configuration its table and a line
    on stderr saying where it ran and what was written."""

    analysis_bars: Progress | None = None      # not `progress`: LiveProgress's training bars

    def analysis_start(self, kind, configurations, detail=""):
        what = {"faithfulness": "faithfulness", "landscapes": f"landscapes ({detail})",
                "wide_test": f"wide test ({detail})"}.get(kind, kind)
        self.analysis_bars = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("configurations"), TimeElapsedColumn(),
                                 console=console, transient=True)
        self.analysis_bars.start()
        self.analysis_task = self.analysis_bars.add_task(kind, total=configurations)

    def faithfulness_done(self, population, result, arrays, figure, mlflow_run):
        self.analysis_bars.console.print(_result_table(result))
        self.analysis_bars.console.print(_correlation_line(result))
        err_console.print(f"{population.label}: {len(population.seeds)} seed(s) on "
                          f"{arrays.device} in {arrays.seconds:.1f} s; wrote {figure}; stored "
                          f"test/{sweep_analyses.ATTENTION_CURVE} for {len(population.run_ids)} "
                          "run(s)")
        if mlflow_run:
            err_console.print(f"logged it to MLflow run {mlflow_run}")
        self.analysis_bars.advance(self.analysis_task)

    def landscapes_done(self, population, result, arrays, files, directory, mlflow_run):
        self.analysis_bars.console.print(_landscape_table(result))
        err_console.print(f"{population.label}: {len(population.seeds)} seed(s) on "
                          f"{arrays.device} in {arrays.seconds:.1f} s; wrote {len(files)} "
                          f"file(s) to {directory}")
        if mlflow_run:
            err_console.print(f"logged them to MLflow run {mlflow_run}")
        self.analysis_bars.advance(self.analysis_task)

    def wide_test_done(self, population, result, arrays):
        self.analysis_bars.console.print(_wide_test_line(result))
        err_console.print(f"{population.label}: {len(population.seeds)} seed(s) on "
                          f"{arrays.device} in {arrays.seconds:.1f} s; stored "
                          f"test/{sweep_analyses.WIDE_TEST_SCORE} for {len(population.run_ids)} "
                          "run(s)")
        self.analysis_bars.advance(self.analysis_task)

    def analysis_stop(self, kind):
        if self.analysis_bars is not None:
            self.analysis_bars.stop()
            self.analysis_bars = None


class SweepView(DataView, AnalysisView):
    """What ``gapsweep run`` shows around training: data being built, the header, the outcome.
    ``phase`` is where the run is: 'data', 'starting', 'training', 'trained' or 'analyses'
    (what ``gapsweep run`` says on Ctrl-C)."""

    phase = "starting"

    def data_start(self, requests, directory):
        self.phase = "data"
        console.print(f"building {len(requests)} missing data set(s) into {directory}")
        super().data_start(requests, directory)

    def data_stop(self):
        super().data_stop()
        self.phase = "starting"

    def run_start(self, plan, where, store_url, tracking_uri):
        console.print(f"[bold]run[/] {plan.sweep_name}: {len(plan.configurations)} "
                      f"configuration(s) × {len(plan.seeds)} seed(s) on {where}; results in "
                      f"{store_url}" + (f", MLflow {tracking_uri}" if tracking_uri else ""))

    def trained(self, outcome, counts, tracking_uri, experiment_id=None):
        self.phase = "trained"
        print_outcome(outcome, counts, tracking_uri, experiment_id)

    def analyses_start(self, names):
        self.phase = "analyses"
        console.print(f"analyses: {', '.join(names)}")


def print_outcome(outcome, counts, tracking_uri, experiment_id=None) -> None:
    """The table ``gapsweep run`` ends with: per configuration, the test score over finished
    seeds and the run counts; then the totals and where to browse them: the command that starts
    the MLflow UI on a store, and the page of the sweep's runs (never wrapped: copyable)."""
    table = Table(title=f"{outcome.sweep_name}: test score (%) over finished seeds",
                  title_justify="left")
    for column in ("configuration", "algorithm", "seeds", "mean ± std (max)", "diverged",
                   "failed", "pending"):
        table.add_column(column, justify="left" if column in ("configuration", "algorithm")
                         else "right", no_wrap=True)
    for c in counts:
        score = counts_score_cell(c)
        table.add_row(c.label, c.algorithm, str(c.runs.done), score, str(c.runs.diverged),
                      str(c.runs.failed), str(c.runs.pending + c.runs.running))
    console.print(table)
    print_best_step_0_note(counts)
    console.print(f"{outcome.recorded} seed(s) recorded ({outcome.diverged} diverged), "
                  f"{outcome.failed} failed, {outcome.retries} retried task(s), {outcome.skipped} "
                  f"already done; {outcome.seconds:.1f}s")
    if outcome.tracking_error is not None:
        console.print(f"MLflow failed during the run ({outcome.tracking_error}): "
                      f"{outcome.untracked} seed(s) are in the database but not in MLflow; once "
                      f"MLflow answers, 'gapsweep track sync {outcome.sweep_name}' (or the same "
                      "command again) logs them", style="yellow",
                      markup=False, highlight=False, soft_wrap=True)
    if tracking_uri is None:
        return
    page = runs_page_url(tracking_uri, experiment_id) if experiment_id is not None else None
    if tracking_uri.startswith(("http://", "https://")):
        console.print(f"browse in MLflow: {page or tracking_uri}", soft_wrap=True)
        return
    console.print(f"browse in MLflow: {ui_command(tracking_uri)}", soft_wrap=True)
    if page is not None:
        console.print(f"then open: {page}", soft_wrap=True)


class LiveProgress(SweepView):
    """A rich live view: a bar per configuration (seeds) and one for seed-steps with speed/ETA."""

    def __init__(self):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[extra]}"), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=console, transient=False)
        self.rows: dict[str, TaskID] = {}

    def start(self, plan, todo, done):
        self.progress.start()
        self.overall = self.progress.add_task("seed-steps", total=None, extra="")
        for c in plan.configurations:
            self.rows[c.label] = self.progress.add_task(
                c.label, total=len(plan.seeds), completed=done.get(c.label, 0), extra="")
        self.done_before = dict(done)

    def update(self, label, finished, failed):
        self.progress.update(self.rows[label], completed=self.done_before.get(label, 0) + finished,
                             extra=f"[red]{failed} failed[/]" if failed else "")

    first: tuple[float, int] | None = None

    def seed_steps(self, done, total):
        """The rate counts from the first step seen, so compilation does not read as 0/s."""
        now = time.perf_counter()
        if self.first is None and done > 0:
            self.first = (now, done)
        if self.first is None:
            extra = "compiling"
        elif now > self.first[0] and done > self.first[1]:
            extra = f"{rate_text((done - self.first[1]) / (now - self.first[0]))} seed-steps/s"
        else:
            extra = ""
        self.progress.update(self.overall, completed=done, total=total, extra=extra)

    def message(self, text):
        self.progress.console.print(f"[yellow]{text}[/]")

    def stop(self):
        self.progress.stop()


def rate_text(per_second: float) -> str:
    """A rate as people read it: 1,234 / 56 / 3.4 / 0.25 (never a bare 0 for a slow start)."""
    if per_second >= 10:
        return f"{per_second:,.0f}"
    return f"{per_second:.1f}" if per_second >= 1 else f"{per_second:.2f}"


def duration_text(seconds: float) -> str:
    """HH:MM:SS, with days in front past 24 hours (a 1,024-seed sweep on one CPU: weeks)."""
    days, rest = divmod(int(round(seconds)), 86_400)
    clock = time.strftime("%H:%M:%S", time.gmtime(rest))
    return f"{days}d {clock}" if days else clock


class LogLines(SweepView):
    """Plain log lines for pipes and log files: each finished population, and every 30 s."""

    EVERY_S = 30.0

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.last = 0.0
        self.first: tuple[float, int] | None = None
        self.reported_total = False

    def _say(self, text):
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {text}", file=self.stream, flush=True)

    def start(self, plan, todo, done):
        self.total = len(plan.seeds)
        self.done_before = dict(done)
        self._say(f"{sum(todo.values())} seed(s) to train in {len(plan.configurations)} "
                  f"configuration(s); {sum(done.values())} already done")

    def update(self, label, finished, failed):
        self._say(f"{label}: {self.done_before.get(label, 0) + finished}/{self.total} seeds done"
                  + (f", {failed} failed" if failed else ""))

    def seed_steps(self, done, total):
        now = time.perf_counter()
        if self.first is None and done > 0:
            self.first = (now, done)                    # rates count from the first step: not compiling
        finished = done >= total
        if finished and self.reported_total or (not finished and now - self.last < self.EVERY_S):
            return
        self.last = now
        self.reported_total = finished
        text = f"{done:,}/{total:,} seed-steps"
        if self.first is not None and now > self.first[0] and done > self.first[1]:
            rate = (done - self.first[1]) / (now - self.first[0])
            text += f" ({rate_text(rate)}/s"
            if not finished and done >= 0.05 * total:
                text += f", ETA {duration_text((total - done) / rate)}"
            text += ")"
        elif not finished:
            text += " (compiling)" if done == 0 else ""
        self._say(text)

    def message(self, text):
        self._say(text)


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


def _wide_test_line(result) -> str:
    """A configuration's wide test in one line: both scores' mean ± std over seeds (%)."""
    def spread(values):
        values = 100 * np.asarray(values, float)
        std = f" ± {np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
        return f"{np.mean(values):.2f}{std}"

    return (f"{result.label}: wide test ({result.graphs:,} graphs at n = {result.size}, data "
            f"seed {result.data_seed}) {spread(result.wide_scores)} %, the 32-graph test split "
            f"{spread(result.test_scores)} % over {len(result.seeds)} seed(s); `gapsweep report` "
            "separates seed and test-sample variance")


def _landscape_table(result) -> Table:
    table = Table(title=f"{result.label}: loss landscapes", title_justify="left")
    for column in ("seed", "plane", "centre loss", "mean rise", "max rise"):
        table.add_column(column, justify="left" if column in ("seed", "plane") else "right")
    rows = [(str(seed), name, landscape) for seed, landscapes in zip(result.seeds, result.per_seed)
            for name, landscape in landscapes.items()]
    rows += [("-", name, landscape) for name, landscape in result.shared.items()]
    for seed, name, landscape in rows:
        summary = sweep_analyses.landscape_summary(landscape)
        table.add_row(seed, name, *(f"{summary[k]:.4g}" for k in
                                    ("centre_loss", "mean_rise", "max_rise")))
    return table
