"""The aggregation report as text: plain text and rich renderables, markdown, csv, latex and json.

    from orchestrator import report, report_formats

    result = report.build_report(store, sweep="table1")
    print(report_formats.FORMATTERS["markdown"](result))   # or to_text / to_csv / to_latex / to_json
    console.print(Group(*report_formats.text_renderables(result)))

Every format shows the same table per sweep (``TABLE_HEADERS``, cells from ``table_cells``: scores
through ``orchestrator.score_text``), the sweep's notes under it and the conventions at the end;
csv and json carry every number at full precision instead. The numbers themselves are
``orchestrator.report``'s: nothing here computes.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from db.rows import RUN_STATUSES
from orchestrator.report import ConfigurationResult, Report, SweepReport
from orchestrator.score_text import best_step_0_mark, score_cell

TABLE_HEADERS = ("configuration", "ours % mean ± std (max)", "95% CI of mean",
                 "seeds done/planned", "diverged", "failed", "paper % mean ± std (max)",
                 "Δ / paper std")

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"±": r"$\pm$", "Δ": r"$\Delta$", "α": r"$\alpha$", "−": "$-$", "—": "---",
                  "–": "--", "†": r"\dag{}"}


def format_ci(low: float | None, high: float | None) -> str:
    return "—" if low is None else f"[{low:.2f}, {high:.2f}]"


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
