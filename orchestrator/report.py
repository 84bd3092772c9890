"""The aggregation report: each sweep's test scores beside the numbers the paper reports.

    from db.store import ResultsStore
    from orchestrator import report

    with ResultsStore(url) as store:
        result = report.build_report(store, experiment="table10_edge_info")
    print(report.to_markdown(result))                  # or to_text / to_csv / to_latex / to_json
    report.write_figures(result, Path("runs/reports"))  # one <sweep>.png per sweep

How sweeps meet the paper: a sweep's ``experiment`` is a key of ``tables`` in
``orchestrator/paper/reported_results.yaml`` (a copy of the project's shared transcription of the
paper's tables) and a configuration's ``label`` is a row key of that table. Configurations and
experiments without a paper counterpart are reported too, with empty paper columns. Several sweeps
may share an experiment (a scaled-down one and the full one): each sweep is its own table.

Conventions (``Conventions``, also stated under every formatted report):

- ours: the test scores of a configuration's runs with status ``done``, stored as fractions and
  reported in percent: mean ± sample std (ddof = 1; none below two scores) (max).
- seeds: done / planned, where planned counts every run of the configuration in the sweep; diverged
  and failed runs are counted apart. A sweep with pending, running or failed runs is *partial*: it
  reports what is done and says so.
- 95% CI of our mean: percentile bootstrap over seeds, 10,000 resamples drawn with
  ``numpy.random.default_rng(0)`` afresh for each configuration, so every interval is reproducible
  and independent of what else is in the report (it equals ``scipy.stats.bootstrap`` with
  ``method="percentile"`` and the same generator).
- Δ: (our mean − paper mean) / paper std, signed.
- best step 0: ``†N`` after our score says that N of its seeds kept the parameters of their first
  validation, after a single training step (their starting point; a note under the table says so);
  csv and json carry the count as ``n_best_step_0``.
- a sweep with exactly two configurations (an ablation) also gets Welch's t-test and the
  Mann–Whitney U test, both two-sided, of "other − reference" (the reference is the paper's
  first row, else the configuration registered first); the verdict on the paper's direction is
  Welch's at α = 0.05.

The report reads the results database only (SQLAlchemy, one transaction); writing figures and
logging them to MLflow are separate steps.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine, select

from db.engine import mask
from db.models import RUN_STATUSES, Configuration, Run, Sweep
from db.store import ResultsStore, StoreError
from orchestrator.score_text import best_step_0, best_step_0_mark, best_step_0_note, score_cell

PAPER_RESULTS_PATH = Path(__file__).parent / "paper" / "reported_results.yaml"

CI_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_RNG_SEED = 0
STD_DDOF = 1
ALPHA = 0.05

MLFLOW_REPORT_RUN_NAME = "report"
MLFLOW_REPORT_ARTIFACT_DIR = "report"
ROLE_REPORT = "report"              # value of the gapsweep.role tag of the report run

TABLE_HEADERS = ("configuration", "ours % mean ± std (max)", "95% CI of mean",
                 "seeds done/planned", "diverged", "failed", "paper % mean ± std (max)",
                 "Δ / paper std")

_FILE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"±": r"$\pm$", "Δ": r"$\Delta$", "α": r"$\alpha$", "−": "$-$", "—": "---",
                  "–": "--", "†": r"\dag{}"}


# -- the paper's numbers ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PaperCell:
    """One cell of a paper table: mean ± std (max) over seeds, in percent."""

    mean_pct: float
    std_pct: float
    max_pct: float


@dataclasses.dataclass(frozen=True)
class PaperTable:
    """One table of the paper, keyed like a sweep's ``experiment``."""

    experiment: str
    title: str
    seeds: int
    test_set: str | None                 # None: CLRS length generalisation, n = 64
    note: str | None
    rows: Mapping[str, PaperCell]        # configuration label → cell, in the paper's order


def load_paper_tables(path: str | Path = PAPER_RESULTS_PATH) -> dict[str, PaperTable]:
    """The ``tables`` of ``reported_results.yaml``, by experiment key."""
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    tables = {}
    for key, table in document["tables"].items():
        rows = {label: PaperCell(float(cell["mean"]), float(cell["std"]), float(cell["max"]))
                for label, cell in table["rows"].items()}
        tables[key] = PaperTable(key, table["title"], int(table["seeds"]), table.get("test"),
                                 table.get("note"), rows)
    return tables


# -- the report's data -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Conventions:
    """How the report's numbers are computed (see the module docstring)."""

    score_unit: str = "percent"
    std_ddof: int = STD_DDOF
    ci_level: float = CI_LEVEL
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES
    bootstrap_rng_seed: int = BOOTSTRAP_RNG_SEED
    alpha: float = ALPHA

    def sentence(self) -> str:
        return (f"ours: test score (%) of the seeds with status done, mean ± sample std "
                f"(ddof = {self.std_ddof}) (max); {100 * self.ci_level:g}% CI of the mean: "
                f"percentile bootstrap over seeds, {self.bootstrap_resamples:,} resamples, numpy "
                f"default_rng({self.bootstrap_rng_seed}); Δ = (ours − paper mean) / paper std; "
                "seeds: done/planned (planned = every run of the configuration); two-configuration "
                "sweeps: Welch's t-test and Mann–Whitney U, two-sided, verdict by Welch at "
                f"α = {self.alpha:g}. Paper cells as published (its std convention is not "
                "stated).")


@dataclasses.dataclass(frozen=True)
class ConfigurationResult:
    """One configuration of one sweep: its seeds' scores, run counts and the paper's cell."""

    label: str
    algorithm: str
    seeds: tuple[int, ...]               # done seeds with a test score, ascending
    scores_pct: tuple[float, ...]        # their test scores in percent, in the same order
    n_planned: int                       # every run of the configuration, whatever its status
    n_done: int
    n_diverged: int
    n_failed: int
    n_running: int
    n_pending: int
    n_best_step_0: int                   # scored seeds whose best step is 0 (their starting point)
    mean_pct: float | None               # None without scores
    std_pct: float | None                # sample std (ddof 1); None below two scores
    max_pct: float | None
    ci95_low_pct: float | None           # percentile bootstrap interval of the mean
    ci95_high_pct: float | None
    paper: PaperCell | None              # None: no paper counterpart
    difference_in_paper_std: float | None    # (mean − paper mean) / paper std

    @property
    def partial(self) -> bool:
        return self.n_pending + self.n_running + self.n_failed > 0


@dataclasses.dataclass(frozen=True)
class PairComparison:
    """The two configurations of an ablation: ``other`` − ``reference``."""

    reference: str
    other: str
    difference_pct: float | None         # other mean − reference mean, in points
    welch_t: float | None                # None: fewer than two scores on a side, or no variance
    welch_p: float | None
    mann_whitney_u: float | None         # U of ``other``; None: a side without scores
    mann_whitney_p: float | None
    paper_difference_pct: float | None   # the same difference in the paper; None: not in it
    verdict: str | None                  # supports | contradicts | inconclusive (on the paper's
                                         # direction, by Welch at ALPHA); None: nothing to judge

    def sentence(self) -> str:
        """The comparison in words, e.g. for the notes under a table."""
        head = f"{self.other} − {self.reference}: ours "
        if self.difference_pct is None:
            return head + "— (a configuration has no done seeds)"
        head += (f"{format_points(self.difference_pct)} (Welch p = {format_p(self.welch_p)}, "
                 f"Mann–Whitney p = {format_p(self.mann_whitney_p)})")
        if self.paper_difference_pct is None:
            return head + "; no paper numbers for this pair"
        head += f"; paper {format_points(self.paper_difference_pct)}"
        paper_higher = self.other if self.paper_difference_pct > 0 else self.reference
        ours_higher = self.other if self.difference_pct > 0 else self.reference
        if self.verdict == "supports":
            return head + (f": supports the paper ({paper_higher} higher, Welch p < "
                           f"{ALPHA:g})")
        if self.verdict == "contradicts":
            return head + (f": contradicts the paper ({ours_higher} higher here, Welch p < "
                           f"{ALPHA:g})")
        if self.verdict == "inconclusive":
            return head + (f": inconclusive (no significant difference at α = {ALPHA:g}; the "
                           f"paper has {paper_higher} higher)")
        if self.welch_p is None:
            return head + (": not enough done seeds for Welch's test (two per configuration, "
                           "with some variance)")
        return head + ": the paper has no difference to test"


@dataclasses.dataclass(frozen=True)
class SweepReport:
    """One sweep's table: its configurations beside the paper's table for its experiment."""

    sweep: str
    experiment: str
    status: str
    mlflow_experiment: str               # the sweep file's tracking.experiment, else the sweep name
    paper: PaperTable | None
    configurations: tuple[ConfigurationResult, ...]   # paper order first, then registration order
    paper_rows_missing: tuple[str, ...]  # paper rows with no configuration in this sweep
    comparison: PairComparison | None    # exactly two configurations only

    @property
    def title(self) -> str:
        title = f"{self.sweep} — {self.experiment}"
        return f"{title}: {self.paper.title}" if self.paper else title

    def count(self, status: str) -> int:
        """Runs of the sweep with ``status`` (a run status, "planned" for all of them, or
        "best_step_0" for scored seeds at best step 0)."""
        return sum(getattr(c, f"n_{status}") for c in self.configurations)

    @property
    def partial(self) -> bool:
        return any(c.partial for c in self.configurations)

    def notes(self) -> list[str]:
        """What to read under the table: partial state, the paper's setting, the comparison."""
        notes = []
        if self.partial:
            rest = ", ".join(f"{self.count(s)} {s}" for s in ("running", "pending", "failed",
                                                               "diverged") if self.count(s))
            notes.append(f"partial: {self.count('done')}/{self.count('planned')} done ({rest}); "
                         "the table reports the done seeds")
        if self.paper is None:
            notes.append(f"experiment {self.experiment!r} has no table in the paper: paper "
                         "columns empty")
        else:
            setting = f"{self.paper.seeds} seeds, test {self.paper.test_set or 'n = 64'}"
            notes.append(f"paper ({self.paper.experiment}): {setting}"
                         + (f"; {self.paper.note}" if self.paper.note else ""))
            if unmatched := [c.label for c in self.configurations if c.paper is None]:
                notes.append(f"not in the paper's table: {', '.join(unmatched)}")
            if self.paper_rows_missing:
                notes.append(f"paper rows not in this sweep: {', '.join(self.paper_rows_missing)}")
        if self.comparison is not None:
            notes.append(self.comparison.sentence())
        if self.count("best_step_0"):
            notes.append(best_step_0_note(self.count("best_step_0"), self.count("done")))
        return notes


@dataclasses.dataclass(frozen=True)
class Report:
    """Every sweep asked for, in registration order."""

    database: str                        # the database URL, password masked
    sweeps: tuple[SweepReport, ...]
    conventions: Conventions = Conventions()


# -- statistics ------------------------------------------------------------------------------------

def bootstrap_mean_ci(scores: Sequence[float], level: float = CI_LEVEL,
                      resamples: int = BOOTSTRAP_RESAMPLES,
                      rng_seed: int = BOOTSTRAP_RNG_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: ``resamples`` draws of len(scores) seeds with
    replacement from ``numpy.random.default_rng(rng_seed)``."""
    values = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(rng_seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def compare_pair(reference: ConfigurationResult, other: ConfigurationResult) -> PairComparison:
    """Welch's t-test and Mann–Whitney U (two-sided) of ``other`` − ``reference``, and the
    verdict on the paper's direction."""
    from scipy import stats

    a = np.asarray(reference.scores_pct, dtype=float)
    b = np.asarray(other.scores_pct, dtype=float)
    difference = welch_t = welch_p = u = u_p = None
    if a.size and b.size:
        difference = float(b.mean() - a.mean())
        mann_whitney = stats.mannwhitneyu(b, a, alternative="two-sided")
        u, u_p = _finite(mann_whitney.statistic), _finite(mann_whitney.pvalue)
    if a.size >= 2 and b.size >= 2 and a.var(ddof=1) + b.var(ddof=1) > 0:
        welch = stats.ttest_ind(b, a, equal_var=False)
        welch_t, welch_p = _finite(welch.statistic), _finite(welch.pvalue)
    paper_difference = (other.paper.mean_pct - reference.paper.mean_pct
                        if reference.paper and other.paper else None)
    verdict = None
    if paper_difference and welch_p is not None:
        if welch_p >= ALPHA:
            verdict = "inconclusive"
        else:
            verdict = "supports" if (difference > 0) == (paper_difference > 0) else "contradicts"
    return PairComparison(reference.label, other.label, difference, welch_t, welch_p, u, u_p,
                          paper_difference, verdict)


def _configuration_result(label: str, algorithm: str, runs: Sequence[Any],
                          paper: PaperCell | None) -> ConfigurationResult:
    counts = {status: sum(r.status == status for r in runs) for status in RUN_STATUSES}
    scored = [r for r in runs if r.status == "done" and r.test_score is not None]
    scores = np.asarray([100.0 * r.test_score for r in scored], dtype=float)
    mean = std = best = low = high = difference = None
    if scores.size:
        mean, best = float(scores.mean()), float(scores.max())
        low, high = bootstrap_mean_ci(scores)
        if paper is not None and paper.std_pct > 0:
            difference = (mean - paper.mean_pct) / paper.std_pct
    if scores.size >= 2:
        std = float(scores.std(ddof=STD_DDOF))
    return ConfigurationResult(
        label, algorithm, tuple(int(r.seed) for r in scored), tuple(float(s) for s in scores),
        len(runs), counts["done"], counts["diverged"], counts["failed"], counts["running"],
        counts["pending"], sum(best_step_0(r.best_step) for r in scored), mean, std, best, low,
        high, paper, difference)


def mlflow_experiment(sweep_name: str, spec_yaml: str | None) -> str:
    """The MLflow experiment ``gapsweep run`` logs a sweep to: its file's tracking.experiment,
    else the sweep name."""
    try:
        spec = yaml.safe_load(spec_yaml or "")
    except yaml.YAMLError:
        return sweep_name
    tracking = spec.get("tracking") if isinstance(spec, dict) else None
    chosen = tracking.get("experiment") if isinstance(tracking, dict) else None
    return chosen if isinstance(chosen, str) and chosen.strip() else sweep_name


# -- building the report ---------------------------------------------------------------------------

def build_report(store_or_engine: ResultsStore | Engine, sweep: str | None = None,
                 experiment: str | None = None,
                 paper_tables: Mapping[str, PaperTable] | None = None) -> Report:
    """The report of one sweep (``sweep``), of every sweep of one ``experiment``, or of all sweeps.

    ``paper_tables``: the paper's numbers (default: the packaged ``reported_results.yaml``).
    Raises ``StoreError`` for a sweep name or experiment the database does not have.
    """
    engine = getattr(store_or_engine, "engine", store_or_engine)
    tables = load_paper_tables() if paper_tables is None else paper_tables
    sweep_query = select(Sweep.id, Sweep.name, Sweep.experiment, Sweep.status,
                         Sweep.spec_yaml).order_by(Sweep.id)
    if sweep is not None:
        sweep_query = sweep_query.where(Sweep.name == sweep)
    if experiment is not None:
        sweep_query = sweep_query.where(Sweep.experiment == experiment)
    with engine.begin() as conn:
        sweeps = conn.execute(sweep_query).all()
        if not sweeps and (sweep is not None or experiment is not None):
            known = conn.execute(select(Sweep.name, Sweep.experiment).order_by(Sweep.id)).all()
            asked = f"sweep {sweep!r}" if sweep is not None else f"experiment {experiment!r}"
            listing = ", ".join(f"{s.name} ({s.experiment})" for s in known) or "none"
            raise StoreError(f"no {asked} in {mask(engine.url)}; known sweeps: {listing}")
        sweep_ids = [s.id for s in sweeps]
        configurations = conn.execute(
            select(Configuration.id, Configuration.sweep_id, Configuration.label,
                   Configuration.algorithm)
            .where(Configuration.sweep_id.in_(sweep_ids)).order_by(Configuration.id)).all()
        runs = conn.execute(
            select(Run.configuration_id, Run.seed, Run.status, Run.test_score, Run.best_step)
            .join(Configuration, Run.configuration_id == Configuration.id)
            .where(Configuration.sweep_id.in_(sweep_ids))
            .order_by(Run.configuration_id, Run.seed)).all()
    runs_of: dict[int, list] = {}
    for run in runs:
        runs_of.setdefault(run.configuration_id, []).append(run)
    reports = []
    for row in sweeps:
        paper = tables.get(row.experiment)
        paper_rows = paper.rows if paper else {}
        mine = [c for c in configurations if c.sweep_id == row.id]
        paper_order = list(paper_rows)
        mine.sort(key=lambda c: (paper_order.index(c.label) if c.label in paper_rows
                                 else len(paper_order), c.id))
        results = tuple(_configuration_result(c.label, c.algorithm, runs_of.get(c.id, []),
                                              paper_rows.get(c.label)) for c in mine)
        labels = {c.label for c in mine}
        reports.append(SweepReport(
            row.name, row.experiment, row.status, mlflow_experiment(row.name, row.spec_yaml),
            paper, results, tuple(label for label in paper_rows if label not in labels),
            compare_pair(*results) if len(results) == 2 else None))
    return Report(mask(engine.url), tuple(reports))


# -- formatting ------------------------------------------------------------------------------------

def format_ci(low: float | None, high: float | None) -> str:
    return "—" if low is None else f"[{low:.2f}, {high:.2f}]"


def format_points(value: float) -> str:
    return f"{value:+.2f} points"


def format_p(p: float | None) -> str:
    return "—" if p is None else f"{p:.2g}"


def table_cells(configuration: ConfigurationResult) -> tuple[str, ...]:
    """One table row as text, in the order of ``TABLE_HEADERS``; paper columns empty without a
    paper counterpart."""
    c = configuration
    paper = (score_cell(c.paper.mean_pct, c.paper.std_pct, c.paper.max_pct)
             if c.paper else "")
    difference = "" if c.difference_in_paper_std is None else f"{c.difference_in_paper_std:+.2f}"
    return (c.label,
            score_cell(c.mean_pct, c.std_pct, c.max_pct) + best_step_0_mark(c.n_best_step_0),
            format_ci(c.ci95_low_pct, c.ci95_high_pct), f"{c.n_done}/{c.n_planned}",
            str(c.n_diverged), str(c.n_failed), paper, difference)


def _rich_table(sweep: SweepReport) -> Table:
    table = Table(title=Text(sweep.title), title_justify="left")
    for header in TABLE_HEADERS:       # on a narrow terminal cells wrap at spaces, labels fold
        table.add_column(header, justify="left" if header == "configuration" else "right",
                         overflow="fold")
    for configuration in sweep.configurations:
        table.add_row(*(Text(cell) for cell in table_cells(configuration)))
    return table


def text_renderables(report: Report) -> list:
    """The report as rich renderables (tables and notes), for printing on a console."""
    if not report.sweeps:
        return [Text(f"no sweeps in {report.database}")]
    parts: list = []
    for sweep in report.sweeps:
        parts.append(_rich_table(sweep))
        parts.extend(Text(f"  {note}") for note in sweep.notes())
        parts.append(Text(""))
    parts.append(Text(report.conventions.sentence()))
    return parts


def to_text(report: Report, width: int = 200) -> str:
    """Plain text: aligned tables with the notes under each, conventions at the end."""
    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, force_terminal=False,
            soft_wrap=True).print(Group(*text_renderables(report)))
    return buffer.getvalue()


def _markdown_cell(text: str) -> str:
    return text.replace("|", r"\|")


def to_markdown(report: Report) -> str:
    """A section per sweep: heading, pipe table, notes as a list; conventions at the end."""
    if not report.sweeps:
        return f"No sweeps in {report.database}.\n"
    lines = []
    for sweep in report.sweeps:
        lines += [f"### {_markdown_cell(sweep.title)}", "",
                  "| " + " | ".join(TABLE_HEADERS) + " |",
                  "|" + "|".join(":---" if h == "configuration" else "---:"
                                 for h in TABLE_HEADERS) + "|"]
        lines += ["| " + " | ".join(_markdown_cell(cell) for cell in table_cells(c)) + " |"
                  for c in sweep.configurations]
        lines += [""] + [f"- {_markdown_cell(note)}" for note in sweep.notes()] + [""]
    lines.append(f"*{report.conventions.sentence()}*")
    return "\n".join(lines) + "\n"


def _latex(text: str) -> str:
    escaped = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    return "".join(_LATEX_UNICODE.get(ch, ch) for ch in escaped)


def to_latex(report: Report) -> str:
    """A ``table`` environment per sweep (booktabs rules), notes under the tabular."""
    lines = ["% gapsweep report; needs \\usepackage{booktabs}"]
    if not report.sweeps:
        return "\n".join(lines + [f"% no sweeps in {report.database}"]) + "\n"
    for sweep in report.sweeps:
        lines += [r"\begin{table}[ht]", r"\centering", rf"\caption{{{_latex(sweep.title)}}}",
                  r"\begin{tabular}{l" + "r" * (len(TABLE_HEADERS) - 1) + "}", r"\toprule",
                  " & ".join(_latex(h) for h in TABLE_HEADERS) + r" \\", r"\midrule"]
        lines += [" & ".join(_latex(cell) for cell in table_cells(c)) + r" \\"
                  for c in sweep.configurations]
        lines += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip\footnotesize"]
        lines += [_latex(note) + r"\par" for note in sweep.notes()]
        lines += [r"\end{table}", ""]
    lines.append(r"\noindent{\footnotesize " + _latex(report.conventions.sentence()) + "}")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("sweep", "experiment", "sweep_status", "paper_title", "label", "algorithm",
               "n_planned", "n_done", "n_diverged", "n_failed", "n_running", "n_pending",
               "n_best_step_0", "mean_pct", "std_pct", "max_pct", "ci95_low_pct", "ci95_high_pct",
               "paper_mean_pct", "paper_std_pct", "paper_max_pct", "paper_seeds",
               "difference_in_paper_std", "compared_with", "difference_vs_compared_pct",
               "welch_t", "welch_p", "mann_whitney_u", "mann_whitney_p",
               "paper_difference_vs_compared_pct", "verdict")


def to_csv(report: Report) -> str:
    """One row per configuration, numbers at full precision (empty: none). An ablation's second
    configuration carries the comparison with the first (``compared_with``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for sweep in report.sweeps:
        comparison = sweep.comparison
        for c in sweep.configurations:
            row = {"sweep": sweep.sweep, "experiment": sweep.experiment,
                   "sweep_status": sweep.status,
                   "paper_title": sweep.paper.title if sweep.paper else None,
                   "label": c.label, "algorithm": c.algorithm, "n_planned": c.n_planned,
                   "n_done": c.n_done, "n_diverged": c.n_diverged, "n_failed": c.n_failed,
                   "n_running": c.n_running, "n_pending": c.n_pending,
                   "n_best_step_0": c.n_best_step_0, "mean_pct": c.mean_pct,
                   "std_pct": c.std_pct, "max_pct": c.max_pct, "ci95_low_pct": c.ci95_low_pct,
                   "ci95_high_pct": c.ci95_high_pct,
                   "paper_mean_pct": c.paper.mean_pct if c.paper else None,
                   "paper_std_pct": c.paper.std_pct if c.paper else None,
                   "paper_max_pct": c.paper.max_pct if c.paper else None,
                   "paper_seeds": sweep.paper.seeds if c.paper else None,
                   "difference_in_paper_std": c.difference_in_paper_std}
            if comparison is not None and c.label == comparison.other:
                row |= {"compared_with": comparison.reference,
                        "difference_vs_compared_pct": comparison.difference_pct,
                        "welch_t": comparison.welch_t, "welch_p": comparison.welch_p,
                        "mann_whitney_u": comparison.mann_whitney_u,
                        "mann_whitney_p": comparison.mann_whitney_p,
                        "paper_difference_vs_compared_pct": comparison.paper_difference_pct,
                        "verdict": comparison.verdict}
            writer.writerow({key: "" if value is None else repr(value)
                             if isinstance(value, float) else value for key, value in row.items()})
    return buffer.getvalue()


def report_to_dict(report: Report) -> dict:
    """Every number of the report, JSON-ready (None for what is missing)."""
    def configuration(c: ConfigurationResult) -> dict:
        return {**dataclasses.asdict(c), "partial": c.partial}

    return {
        "database": report.database,
        "conventions": dataclasses.asdict(report.conventions),
        "sweeps": [{
            "sweep": s.sweep, "experiment": s.experiment, "status": s.status,
            "mlflow_experiment": s.mlflow_experiment, "title": s.title, "partial": s.partial,
            **{f"n_{status}": s.count(status) for status in ("planned", *RUN_STATUSES)},
            "paper": (None if s.paper is None else
                      {k: v for k, v in dataclasses.asdict(s.paper).items() if k != "rows"}),
            "configurations": [configuration(c) for c in s.configurations],
            "paper_rows_missing": list(s.paper_rows_missing),
            "comparison": None if s.comparison is None else {
                **dataclasses.asdict(s.comparison), "sentence": s.comparison.sentence()},
            "notes": s.notes(),
        } for s in report.sweeps],
    }


def to_json(report: Report) -> str:
    return json.dumps(report_to_dict(report), indent=1, allow_nan=False,
                      ensure_ascii=False) + "\n"


FORMATTERS = {"text": to_text, "markdown": to_markdown, "csv": to_csv, "latex": to_latex,
              "json": to_json}


# -- figures ---------------------------------------------------------------------------------------

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
    from orchestrator.tracking import TAG_ROLE, TAG_SWEEP, SweepTracker, TrackingError

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
