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
from orchestrator.report import (ConfigurationResult, Report, SweepReport, format_p,
                                 seed_share_text)
from orchestrator.seed_stats import EXPECTED_MAX_KS, QUANTILES
from orchestrator.score_text import best_step_0_mark, score_cell

TABLE_HEADERS = ("configuration", "ours % mean ± std (max)", "95% CI of mean",
                 "seeds done/planned", "diverged", "failed", "paper % mean ± std (max)",
                 "Δ / paper std")

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"≥": r"$\geq$", "≈": r"$\approx$", "±": r"$\pm$", "Δ": r"$\Delta$", "α": r"$\alpha$", "−": "$-$", "—": "---",
                  "–": "--", "†": r"\dag{}"}


def format_ci(low: float | None, high: float | None) -> str:
    return "—" if low is None else f"[{low:.2f}, {high:.2f}]"


def distribution_headers(sweep: SweepReport, threshold_pct: float) -> tuple[str, ...]:
    """The headers of a sweep's second table: what its seeds' distribution shows."""
    k = _paper_k(sweep)
    return ("configuration", "IQM [95% CI]", "quantiles 5/25/50/75/95", "exact (100%)",
            f"≥ {threshold_pct:g}%", "E[max of 3]", "E[max of 10]",
            f"E[max of {k:,}]" if k else "E[max of n]", "modes")


def _paper_k(sweep: SweepReport) -> int | None:
    return sweep.paper.seeds if sweep.paper else None


def _rate(rate) -> str:
    if rate is None:
        return "—"
    return (f"{100 * rate.rate:.1f}% ({rate.hits}/{rate.n}) "
            f"[{100 * rate.low:.1f}, {100 * rate.high:.1f}]")


def _expected_max(statistics, k: int | None) -> str:
    if statistics is None or k is None:
        return "—"
    found = statistics.expected_max_at(k)
    return "—" if found is None else (f"{found.value_pct:.2f} "
                                      f"[{found.low_pct:.2f}, {found.high_pct:.2f}]")


def distribution_cells(sweep: SweepReport, c: ConfigurationResult) -> tuple[str, ...]:
    """One row of the distribution table, in the order of ``distribution_headers``."""
    st = c.statistics
    if st is None:
        return (c.label, *["—"] * 8)
    m = st.modes
    modes = (f"bimodal: {100 * m.low_fraction:.0f}% ≈{m.low_mean:.1f}, "
             f"{100 * m.high_fraction:.0f}% ≈{m.high_mean:.1f}") if m.bimodal else "one"
    k = _paper_k(sweep) or len(c.scores_pct)
    return (c.label, f"{st.iqm_pct:.2f} [{st.iqm_low_pct:.2f}, {st.iqm_high_pct:.2f}]",
            " / ".join(f"{q:.1f}" for q in st.quantiles_pct), _rate(st.exact), _rate(st.success),
            _expected_max(st, 3), _expected_max(st, 10), _expected_max(st, k), modes)


COMPARISON_HEADERS = ("other vs reference", "design", "P(other > ref) [95% CI]",
                      "ΔIQM points [95% CI]", "test", "p", "p (Holm)", "seeds for 80% power")


def comparison_cells(r) -> tuple[str, ...]:
    x = r.result
    power = ("—" if x.seeds_for_power is None else
             f"{x.seeds_for_power:,}" + (" pairs" if x.paired else " per row"))
    return (f"{r.other} vs {r.reference}", "paired" if x.paired else "unpaired",
            f"{x.probability_of_improvement:.2f} [{x.poi_low:.2f}, {x.poi_high:.2f}]",
            f"{x.iqm_difference:+.2f} [{x.iqm_difference_low:+.2f}, {x.iqm_difference_high:+.2f}]",
            x.test, format_p(x.p_value), format_p(r.holm_p), power)


WIDE_TEST_HEADERS = ("configuration", "seeds", "wide graphs", "test % mean ± std",
                     "wide % mean ± std", "shift test − wide [95% CI]", "r", "seed std",
                     "test-split noise std", "seed share [95% CI]")


def wide_test_cells(c: ConfigurationResult) -> tuple[str, ...]:
    t = c.wide_test
    share = seed_share_text(t) or "—"
    return (c.label, str(t.seeds), f"{t.graphs:,}",
            f"{t.test_mean:.2f} ± {t.test_std:.2f}", f"{t.wide_mean:.2f} ± {t.wide_std:.2f}",
            f"{t.shift:+.2f} [{t.shift_low:+.2f}, {t.shift_high:+.2f}]",
            "—" if t.correlation is None else f"{t.correlation:.2f}", f"{t.seed_std:.2f}",
            f"{t.test_noise_std:.2f}", share)


def sweep_tables(sweep: SweepReport, threshold_pct: float) -> list[tuple[str, tuple, list]]:
    """A sweep's tables as (title, headers, rows of cells): the scores beside the paper's, the
    seeds' distribution, (two rows or more) the comparisons and (once scored) the wide test."""
    tables = [(sweep.title, TABLE_HEADERS, [table_cells(c) for c in sweep.configurations]),
              (f"{sweep.sweep}: the seeds' distribution",
               distribution_headers(sweep, threshold_pct),
               [distribution_cells(sweep, c) for c in sweep.configurations])]
    if sweep.comparisons:
        tables.append((f"{sweep.sweep}: every pair of rows", COMPARISON_HEADERS,
                       [comparison_cells(r) for r in sweep.comparisons]))
    if widely := [c for c in sweep.configurations if c.wide_test is not None]:
        tables.append((f"{sweep.sweep}: the wide test against the CLRS-30 test split",
                       WIDE_TEST_HEADERS, [wide_test_cells(c) for c in widely]))
    return tables


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


def _rich_table(title: str, headers: tuple, rows: list) -> Table:
    table = Table(title=Text(title), title_justify="left")
    # headers as Text, not markup: "E[max of 3]" is not a style tag; on a narrow terminal cells
    # wrap at spaces, labels fold
    for i, header in enumerate(headers):
        table.add_column(Text(header), justify="left" if i == 0 else "right", overflow="fold")
    for cells in rows:
        table.add_row(*(Text(cell) for cell in cells))
    return table


def text_renderables(report: Report) -> list:
    """The report as rich renderables (tables and notes), for printing on a console."""
    if not report.sweeps:
        return [Text(f"no sweeps in {report.database}")]
    parts: list = []
    for sweep in report.sweeps:
        parts.extend(_rich_table(*table)
                     for table in sweep_tables(sweep, report.conventions.success_threshold_pct))
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
        tables = sweep_tables(sweep, report.conventions.success_threshold_pct)
        for index, (title, headers, rows) in enumerate(tables):
            lines += [f"### {_markdown_cell(title)}" if index == 0 else
                      f"*{_markdown_cell(title)}*", "",
                      "| " + " | ".join(_markdown_cell(h) for h in headers) + " |",
                      "|" + "|".join(":---" if i == 0 else "---:"
                                     for i in range(len(headers))) + "|"]
            lines += ["| " + " | ".join(_markdown_cell(cell) for cell in cells) + " |"
                      for cells in rows]
            lines.append("")
        lines += [f"- {_markdown_cell(note)}" for note in sweep.notes()] + [""]
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
        tables = sweep_tables(sweep, report.conventions.success_threshold_pct)
        lines += [r"\begin{table}[ht]", r"\centering", rf"\caption{{{_latex(sweep.title)}}}"]
        for index, (title, headers, rows) in enumerate(tables):
            if index:
                lines += [r"\par\medskip", rf"\textit{{{_latex(title)}}}\par\smallskip"]
            lines += [r"\begin{tabular}{l" + "r" * (len(headers) - 1) + "}", r"\toprule",
                      " & ".join(_latex(h) for h in headers) + r" \\", r"\midrule"]
            lines += [" & ".join(_latex(cell) for cell in cells) + r" \\" for cells in rows]
            lines += [r"\bottomrule", r"\end{tabular}"]
        lines += [r"\par\smallskip\footnotesize"]
        lines += [_latex(note) + r"\par" for note in sweep.notes()]
        lines += [r"\end{table}", ""]
    lines.append(r"\noindent{\footnotesize " + _latex(report.conventions.sentence()) + "}")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("row", "sweep", "experiment", "sweep_status", "paper_title", "label", "algorithm",
               "n_planned", "n_done", "n_diverged", "n_failed", "n_running", "n_pending",
               "n_best_step_0", "mean_pct", "std_pct", "max_pct", "ci95_low_pct", "ci95_high_pct",
               "paper_mean_pct", "paper_std_pct", "paper_max_pct", "paper_seeds",
               "difference_in_paper_std", "compared_with", "difference_vs_compared_pct",
               "welch_t", "welch_p", "mann_whitney_u", "mann_whitney_p",
               "paper_difference_vs_compared_pct", "verdict",
               "iqm_pct", "iqm_ci95_low_pct", "iqm_ci95_high_pct",
               *(f"q{q:02d}_pct" for q in QUANTILES),
               "exact_hits", "exact_rate", "exact_ci95_low", "exact_ci95_high",
               "success_threshold_pct", "success_hits", "success_rate", "success_ci95_low",
               "success_ci95_high",
               *(f"expected_max_{k}{part}_pct" for k in EXPECTED_MAX_KS
                 for part in ("", "_ci95_low", "_ci95_high")),
               "bimodality_coefficient", "bimodal_dip", "bimodal", "low_mode_mean_pct",
               "low_mode_fraction",
               "high_mode_mean_pct", "high_mode_fraction",
               "shared_data",
               "design", "paired", "probability_of_improvement", "poi_ci95_low", "poi_ci95_high",
               "iqm_difference_pct", "iqm_difference_ci95_low_pct",
               "iqm_difference_ci95_high_pct", "test", "p_value", "p_holm", "effect_size",
               "seeds_for_power",
               "wide_test_seeds", "wide_test_graphs", "wide_test_mean_pct", "wide_test_std_pct",
               "wide_test_shift_pct", "wide_test_shift_ci95_low_pct",
               "wide_test_shift_ci95_high_pct", "wide_test_correlation", "seed_std_pct",
               "test_noise_std_pct", "seed_share", "seed_share_ci95_low", "seed_share_ci95_high",
               "anchor_source", "anchor_model", "anchor_test_size", "anchor_mean_pct",
               "anchor_std_pct", "anchor_error_pct", "anchor_error_kind", "anchor_seeds")


def _statistics_columns(c: ConfigurationResult) -> dict:
    row: dict = {}
    st = c.statistics
    if st is not None:
        row |= {"iqm_pct": st.iqm_pct, "iqm_ci95_low_pct": st.iqm_low_pct,
                "iqm_ci95_high_pct": st.iqm_high_pct}
        row |= {f"q{q:02d}_pct": v for q, v in zip(QUANTILES, st.quantiles_pct)}
        for name, rate in (("exact", st.exact), ("success", st.success)):
            row |= {f"{name}_hits": rate.hits, f"{name}_rate": rate.rate,
                    f"{name}_ci95_low": rate.low, f"{name}_ci95_high": rate.high}
        row["success_threshold_pct"] = st.success.threshold
        for e in st.expected_max:
            if e.k in EXPECTED_MAX_KS:
                row |= {f"expected_max_{e.k}_pct": e.value_pct,
                        f"expected_max_{e.k}_ci95_low_pct": e.low_pct,
                        f"expected_max_{e.k}_ci95_high_pct": e.high_pct}
        m = st.modes
        row |= {"bimodality_coefficient": m.coefficient, "bimodal_dip": m.dip,
                "bimodal": m.bimodal,
                "low_mode_mean_pct": m.low_mean, "low_mode_fraction": m.low_fraction,
                "high_mode_mean_pct": m.high_mean, "high_mode_fraction": m.high_fraction}
    if c.shared_data is not None:
        row["shared_data"] = json.dumps(list(c.shared_data))
    if (t := c.wide_test) is not None:
        row |= {"wide_test_seeds": t.seeds, "wide_test_graphs": t.graphs,
                "wide_test_mean_pct": t.wide_mean, "wide_test_std_pct": t.wide_std,
                "wide_test_shift_pct": t.shift, "wide_test_shift_ci95_low_pct": t.shift_low,
                "wide_test_shift_ci95_high_pct": t.shift_high,
                "wide_test_correlation": t.correlation, "seed_std_pct": t.seed_std,
                "test_noise_std_pct": t.test_noise_std, "seed_share": t.seed_share,
                "seed_share_ci95_low": t.seed_share_low, "seed_share_ci95_high": t.seed_share_high}
    return row


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else value


def to_csv(report: Report) -> str:
    """One row per configuration (``row`` = configuration), numbers at full precision (empty:
    none), then one per published anchor beside a configuration (``row`` = anchor), then one per
    pair of rows (``row`` = comparison: ``label`` against ``compared_with``).
    An ablation's second configuration also carries Welch's comparison with the first."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for sweep in report.sweeps:
        comparison = sweep.comparison
        head = {"sweep": sweep.sweep, "experiment": sweep.experiment,
                "sweep_status": sweep.status,
                "paper_title": sweep.paper.title if sweep.paper else None}
        for c in sweep.configurations:
            row = {"row": "configuration", **head,
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
                   "difference_in_paper_std": c.difference_in_paper_std,
                   **_statistics_columns(c)}
            if comparison is not None and c.label == comparison.other:
                row |= {"compared_with": comparison.reference,
                        "difference_vs_compared_pct": comparison.difference_pct,
                        "welch_t": comparison.welch_t, "welch_p": comparison.welch_p,
                        "mann_whitney_u": comparison.mann_whitney_u,
                        "mann_whitney_p": comparison.mann_whitney_p,
                        "paper_difference_vs_compared_pct": comparison.paper_difference_pct,
                        "verdict": comparison.verdict}
            writer.writerow({key: _csv_value(value) for key, value in row.items()})
        for c in sweep.configurations:
            for a in c.anchors:
                row = {"row": "anchor", **head, "label": c.label, "algorithm": a.algorithm,
                       "anchor_source": a.source, "anchor_model": a.model,
                       "anchor_test_size": a.test, "anchor_mean_pct": a.mean_pct,
                       "anchor_std_pct": a.std_pct, "anchor_error_pct": a.error_pct,
                       "anchor_error_kind": a.error_kind, "anchor_seeds": a.seeds}
                writer.writerow({key: _csv_value(value) for key, value in row.items()})
        for r in sweep.comparisons:
            x = r.result
            row = {"row": "comparison", **head, "label": r.other, "compared_with": r.reference,
                   "difference_vs_compared_pct": x.mean_difference, "design": r.design,
                   "paired": x.paired, "probability_of_improvement": x.probability_of_improvement,
                   "poi_ci95_low": x.poi_low, "poi_ci95_high": x.poi_high,
                   "iqm_difference_pct": x.iqm_difference,
                   "iqm_difference_ci95_low_pct": x.iqm_difference_low,
                   "iqm_difference_ci95_high_pct": x.iqm_difference_high, "test": x.test,
                   "p_value": x.p_value, "p_holm": r.holm_p, "effect_size": x.effect_size,
                   "seeds_for_power": x.seeds_for_power}
            writer.writerow({key: _csv_value(value) for key, value in row.items()})
    return buffer.getvalue()


def report_to_dict(report: Report) -> dict:
    """Every number of the report, JSON-ready (None for what is missing)."""
    def configuration(c: ConfigurationResult) -> dict:
        return {**dataclasses.asdict(c), "partial": c.partial,
                "anchors": [{**dataclasses.asdict(a), "std_pct": a.std_pct, "label": a.label}
                            for a in c.anchors]}

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
            "comparisons": [{**dataclasses.asdict(r), "sentence": r.sentence()}
                            for r in s.comparisons],
            "notes": s.notes(),
        } for s in report.sweeps],
    }


def to_json(report: Report) -> str:
    return json.dumps(report_to_dict(report), indent=1, allow_nan=False,
                      ensure_ascii=False) + "\n"


FORMATTERS = {"text": to_text, "markdown": to_markdown, "csv": to_csv, "latex": to_latex,
              "json": to_json}
