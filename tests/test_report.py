"""`orchestrator.report` and `gapsweep report`: every number of the aggregation report, in every
format, against values computed here independently (NumPy and SciPy on the fixture's scores, the
paper's numbers read straight from the YAML), plus figures, MLflow logging and the command."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from db.store import ConfigurationEntry, ResultsStore, RunResult, StoreError
from gapsweep.commands import report as report_cli
from orchestrator import report, report_figures, report_formats
from workers.errors import GapsweepError

PACKAGED_YAML = Path(report.__file__).parent / "paper" / "reported_results.yaml"
SHARED_YAML = Path(__file__).resolve().parents[2] / "shared" / "paper" / "reported_results.yaml"
PAPER = yaml.safe_load(PACKAGED_YAML.read_text(encoding="utf-8"))["tables"]

_rng = np.random.default_rng(2025)


def _scores(mean: float, std: float, n: int) -> list[float]:
    return [round(float(s), 4) for s in np.clip(_rng.normal(mean, std, n), 0, 1)]


# Per sweep: experiment, spec YAML, seeds, and per configuration (in registration order) its
# algorithm and what became of its seeds: done {seed: score}, diverged, failed, running (the rest
# stay pending); best_step_0: done seeds whose best step is 0 (the other done seeds' is 100;
# diverged seeds' is 0, which the report must not count: they have no score).
SWEEPS = {
    "table10-small": dict(
        experiment="table10_edge_info", seeds=range(12),
        spec_yaml="name: table10-small\nexperiment: table10_edge_info\n"
                  "tracking: {experiment: edge-ablation}\n",
        configurations={   # edge_info registered first: the report puts the paper's order first
            "edge_info": dict(algorithm="bellman_ford",
                              done=dict(enumerate(_scores(0.92, 0.015, 9))),
                              diverged=[9], failed=[10], running=[11]),
            "default_no_edge_info": dict(algorithm="bellman_ford",
                                         done=dict(enumerate(_scores(0.86, 0.05, 12)))),
        }),
    "table10-reversed": dict(
        experiment="table10_edge_info", seeds=range(6), spec_yaml="",
        configurations={
            "default_no_edge_info": dict(algorithm="bellman_ford",
                                         done=dict(enumerate(_scores(0.93, 0.01, 6)))),
            "edge_info": dict(algorithm="bellman_ford",
                              done=dict(enumerate(_scores(0.85, 0.01, 6)))),
        }),
    "table1_baseline-steps100": dict(
        experiment="table1_baseline", seeds=range(4), spec_yaml="",
        configurations={
            "dfs_regularised": dict(algorithm="dfs", done={0: 0.2031, 3: 0.1875}),
            "dfs": dict(algorithm="dfs", done={0: 0.1250}, diverged=[1], best_step_0=[0]),
            "bfs": dict(algorithm="bfs", done={0: 0.9, 1: 0.8125, 2: 0.9531, 3: 0.8594},
                        best_step_0=[1, 3]),
        }),
    "quickstart": dict(
        experiment="quickstart", seeds=range(3), spec_yaml="name: quickstart\n",
        configurations={
            "algorithm=bfs": dict(algorithm="bfs", done={0: 0.61, 1: 0.64, 2: 0.70}),
            "algorithm=bellman_ford": dict(algorithm="bellman_ford",
                                           done={0: 0.41, 1: 0.47, 2: 0.40}),
        }),
}


def _populate(store: ResultsStore) -> None:
    for name, sweep in SWEEPS.items():
        entries = [ConfigurationEntry(label, {"algorithm": c["algorithm"], "label": label},
                                      hashlib.sha256(f"{name}/{label}".encode()).hexdigest())
                   for label, c in sweep["configurations"].items()]
        registered = store.register_sweep(name, sweep["experiment"], sweep["spec_yaml"], entries,
                                          sweep["seeds"])
        run_id = {(p.label, p.seed): p.run_id for p in store.pending(registered.id)}
        for label, c in sweep["configurations"].items():
            started = [*c["done"], *c.get("diverged", []), *c.get("failed", []),
                       *c.get("running", [])]
            store.claim([run_id[label, seed] for seed in started])
            store.record([RunResult(run_id[label, seed], "done", test_score=score,
                                    best_step=0 if seed in c.get("best_step_0", []) else 100)
                          for seed, score in c["done"].items()]
                         + [RunResult(run_id[label, seed], "diverged", best_step=0)
                            for seed in c.get("diverged", [])])
            store.mark_failed([run_id[label, seed] for seed in c.get("failed", [])], "OOM")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    directory = tmp_path_factory.mktemp("report")
    with ResultsStore(f"sqlite:///{directory}/r.db", snapshot_dir=directory / "snaps") as store:
        _populate(store)
        yield store


@pytest.fixture(scope="module")
def full_report(store):
    return report.build_report(store)


# -- what every number should be, computed here ---------------------------------------------------

def expected_configuration(sweep: str, label: str) -> dict:
    spec = SWEEPS[sweep]
    c = spec["configurations"][label]
    seeds = sorted(c["done"])
    scores = 100 * np.array([c["done"][s] for s in seeds])
    counts = {"done": len(c["done"]), "diverged": len(c.get("diverged", [])),
              "failed": len(c.get("failed", [])), "running": len(c.get("running", []))}
    counts["pending"] = len(spec["seeds"]) - sum(counts.values())
    paper = PAPER.get(spec["experiment"], {}).get("rows", {}).get(label)
    if len(scores) == 1:                  # every resample of one seed is that seed
        ci = (scores[0], scores[0])
    else:
        interval = stats.bootstrap((scores,), np.mean, n_resamples=10_000, method="percentile",
                                   confidence_level=0.95,
                                   rng=np.random.default_rng(0)).confidence_interval
        ci = (interval.low, interval.high)
    return {"label": label, "algorithm": c["algorithm"], "seeds": seeds, "scores": scores,
            "planned": len(spec["seeds"]), **counts, "best_step_0": len(c.get("best_step_0", [])),
            "mean": scores.mean(), "std": scores.std(ddof=1) if len(scores) > 1 else None,
            "max": scores.max(), "ci": ci, "paper": paper,
            "delta": (scores.mean() - paper["mean"]) / paper["std"] if paper else None}


def expected_order(sweep: str) -> list[str]:
    spec = SWEEPS[sweep]
    paper_rows = list(PAPER.get(spec["experiment"], {}).get("rows", {}))
    labels = list(spec["configurations"])
    return ([label for label in paper_rows if label in labels]
            + [label for label in labels if label not in paper_rows])


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Welch's t of b − a and its two-sided p, from the textbook formulas."""
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t = (b.mean() - a.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    return t, 2 * stats.t.sf(abs(t), df)


def expected_comparison(sweep: str) -> dict | None:
    order = expected_order(sweep)
    if len(order) != 2:
        return None
    a, b = (expected_configuration(sweep, label) for label in order)
    t, p = welch(a["scores"], b["scores"])
    u = sum(1.0 if y > x else 0.5 if y == x else 0.0 for y in b["scores"] for x in a["scores"])
    paper_difference = (b["paper"]["mean"] - a["paper"]["mean"]) if a["paper"] else None
    return {"reference": order[0], "other": order[1],
            "difference": b["mean"] - a["mean"], "welch_t": t, "welch_p": p, "u": u,
            "u_p": stats.mannwhitneyu(b["scores"], a["scores"], alternative="two-sided").pvalue,
            "paper_difference": paper_difference}


EXPECTED_VERDICTS = {"table10-small": "supports", "table10-reversed": "contradicts",
                     "table1_baseline-steps100": None, "quickstart": None}


def cell(mean, std, best) -> str:
    return f"{mean:.2f} ± {'—' if std is None else f'{std:.2f}'} ({best:.2f})"


def expected_cells(sweep: str, label: str) -> list[str]:
    e = expected_configuration(sweep, label)
    paper = e["paper"]
    flag = f" †{e['best_step_0']}" if e["best_step_0"] else ""
    return [label, cell(e["mean"], e["std"], e["max"]) + flag,
            f"[{e['ci'][0]:.2f}, {e['ci'][1]:.2f}]",
            f"{e['done']}/{e['planned']}", str(e["diverged"]), str(e["failed"]),
            cell(paper["mean"], paper["std"], paper["max"]) if paper else "",
            f"{e['delta']:+.2f}" if paper else ""]


def expected_note_fragments(sweep: str) -> list[str]:
    fragments = []
    flagged = [expected_configuration(sweep, label) for label in SWEEPS[sweep]["configurations"]]
    if sum(e["best_step_0"] for e in flagged):
        fragments.append(f"† {sum(e['best_step_0'] for e in flagged)} of "
                         f"{sum(e['done'] for e in flagged)} seed(s) have best step 0: their best "
                         "validation was the first, after a single training step")
    comparison = expected_comparison(sweep)
    if comparison:
        fragments += [f"{comparison['other']} − {comparison['reference']}: ours "
                      f"{comparison['difference']:+.2f} points",
                      f"Welch p = {comparison['welch_p']:.2g}",
                      f"Mann–Whitney p = {comparison['u_p']:.2g}"]
        if comparison["paper_difference"] is not None:
            fragments.append(f"paper {comparison['paper_difference']:+.2f} points: "
                             f"{EXPECTED_VERDICTS[sweep]} the paper")
    return fragments


def approx(value):
    return pytest.approx(value, rel=1e-12, abs=1e-12)


# -- the data --------------------------------------------------------------------------------------

def test_every_number_matches_independent_computation(full_report):
    assert [s.sweep for s in full_report.sweeps] == list(SWEEPS)        # registration order
    for sweep in full_report.sweeps:
        spec = SWEEPS[sweep.sweep]
        assert sweep.experiment == spec["experiment"]
        assert sweep.status == "registered"
        paper = PAPER.get(spec["experiment"])
        assert (sweep.paper is None) == (paper is None)
        if paper:
            assert sweep.paper.title == paper["title"] and sweep.paper.seeds == paper["seeds"]
            assert sweep.title == f"{sweep.sweep} — {sweep.experiment}: {paper['title']}"
        assert [c.label for c in sweep.configurations] == expected_order(sweep.sweep)
        for c in sweep.configurations:
            e = expected_configuration(sweep.sweep, c.label)
            assert c.algorithm == e["algorithm"]
            assert list(c.seeds) == e["seeds"]
            assert c.scores_pct == approx(list(e["scores"]))
            assert (c.n_planned, c.n_done, c.n_diverged, c.n_failed, c.n_running, c.n_pending) == (
                e["planned"], e["done"], e["diverged"], e["failed"], e["running"], e["pending"])
            assert c.mean_pct == approx(e["mean"])
            assert c.std_pct == (None if e["std"] is None else approx(e["std"]))
            assert c.max_pct == approx(e["max"])
            assert (c.ci95_low_pct, c.ci95_high_pct) == approx(e["ci"])
            if e["paper"]:
                assert dataclasses.astuple(c.paper) == (e["paper"]["mean"], e["paper"]["std"],
                                                        e["paper"]["max"])
                assert c.difference_in_paper_std == approx(e["delta"])
            else:
                assert c.paper is None and c.difference_in_paper_std is None
        expected = expected_comparison(sweep.sweep)
        if expected is None:
            assert sweep.comparison is None
            continue
        got = sweep.comparison
        assert (got.reference, got.other) == (expected["reference"], expected["other"])
        assert got.difference_pct == approx(expected["difference"])
        assert got.welch_t == pytest.approx(expected["welch_t"], rel=1e-9)
        assert got.welch_p == pytest.approx(expected["welch_p"], rel=1e-9)
        assert got.mann_whitney_u == expected["u"]
        assert got.mann_whitney_p == approx(expected["u_p"])
        assert got.paper_difference_pct == (None if expected["paper_difference"] is None
                                            else approx(expected["paper_difference"]))
        assert got.verdict == EXPECTED_VERDICTS[sweep.sweep]


def test_partial_sweeps_say_so(full_report):
    by_name = {s.sweep: s for s in full_report.sweeps}
    small = by_name["table10-small"]
    assert small.partial and small.count("done") == 21 and small.count("planned") == 24
    assert small.notes()[0] == ("partial: 21/24 done (1 running, 1 failed, 1 diverged); the "
                                "table reports the done seeds")
    baseline = by_name["table1_baseline-steps100"]
    assert baseline.notes()[0].startswith("partial: 7/12 done (4 pending, 1 diverged)")
    assert "not in the paper's table: dfs_regularised" in baseline.notes()
    assert "paper rows not in this sweep: bellman_ford" in baseline.notes()
    assert baseline.paper_rows_missing == ("bellman_ford",)
    assert not by_name["quickstart"].partial
    assert by_name["quickstart"].notes()[0] == ("experiment 'quickstart' has no table in the "
                                                "paper: paper columns empty")
    assert by_name["table10-reversed"].notes()[:3] == [
        "paper (table10_edge_info): 128 seeds, test n = 64",
        by_name["table10-reversed"].comparison.sentence(),
        "± is the sample std over seeds (ddof = 1), not an s.e.m.; [..] are 95% bootstrap "
        "(Wilson for rates) intervals"]


def test_verdicts_and_degenerate_comparisons(full_report):
    small = {s.sweep: s for s in full_report.sweeps}["table10-small"]
    assert small.comparison.welch_p < 0.05 and small.comparison.difference_pct > 0
    reference, other = small.configurations
    same = dataclasses.replace(other, scores_pct=reference.scores_pct)
    assert report.compare_pair(reference, same).verdict == "inconclusive"
    assert "inconclusive (no significant difference at α = 0.05; the paper has edge_info higher)" \
        in report.compare_pair(reference, same).sentence()
    lonely = dataclasses.replace(other, scores_pct=other.scores_pct[:1])
    one_seed = report.compare_pair(reference, lonely)
    assert one_seed.welch_p is None and one_seed.verdict is None
    assert one_seed.mann_whitney_p == approx(stats.mannwhitneyu(
        lonely.scores_pct, reference.scores_pct, alternative="two-sided").pvalue)
    assert "not enough done seeds for Welch's test" in one_seed.sentence()
    empty = report.compare_pair(reference, dataclasses.replace(other, scores_pct=()))
    assert empty.difference_pct is None and empty.mann_whitney_p is None
    assert empty.sentence().endswith("— (a configuration has no done seeds)")


def test_selection_by_sweep_or_experiment(store):
    one = report.build_report(store.engine, sweep="quickstart")            # an Engine works too
    assert [s.sweep for s in one.sweeps] == ["quickstart"]
    shared = report.build_report(store, experiment="table10_edge_info")
    assert [s.sweep for s in shared.sweeps] == ["table10-small", "table10-reversed"]
    with pytest.raises(StoreError, match=r"no sweep 'nope' in sqlite.*known sweeps: "
                                         r"table10-small \(table10_edge_info\)"):
        report.build_report(store, sweep="nope")
    with pytest.raises(StoreError, match="no experiment 'table99'"):
        report.build_report(store, experiment="table99")


def test_mlflow_experiment_comes_from_the_sweep_file(full_report):
    assert {s.sweep: s.mlflow_experiment for s in full_report.sweeps} == {
        "table10-small": "edge-ablation", "table10-reversed": "table10-reversed",
        "table1_baseline-steps100": "table1_baseline-steps100", "quickstart": "quickstart"}


def test_shipped_paper_numbers_are_the_shared_copy():
    if not SHARED_YAML.exists():
        pytest.skip(f"{SHARED_YAML} is not in this checkout")
    assert PACKAGED_YAML.read_bytes() == SHARED_YAML.read_bytes()
    tables = report.load_paper_tables()
    assert tables["table13_minimal"].seeds == 1024
    assert tables["table11_pre_attention_bias"].test_set == "in-distribution (n = 16)"
    assert list(tables["table13_minimal"].rows)[1] == "bellman_ford_arch_modify"
    assert tables["table10_edge_info"].rows["edge_info"] == report.PaperCell(90.67, 1.40, 92.72)


# -- the formats -----------------------------------------------------------------------------------

def check_csv(text: str) -> None:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(report_formats.CSV_COLUMNS)
    rows = [r for r in rows if r["row"] == "configuration"]      # comparisons: test_report_stats
    assert [(r["sweep"], r["label"]) for r in rows] == [
        (name, label) for name in SWEEPS for label in expected_order(name)]
    for r in rows:
        e = expected_configuration(r["sweep"], r["label"])
        number = lambda key: None if r[key] == "" else float(r[key])    # noqa: E731
        assert r["experiment"] == SWEEPS[r["sweep"]]["experiment"]
        assert r["algorithm"] == e["algorithm"]
        assert [int(r[f"n_{s}"]) for s in ("planned", "done", "diverged", "failed", "running",
                                            "pending", "best_step_0")] == [
            e["planned"], e["done"], e["diverged"], e["failed"], e["running"], e["pending"],
            e["best_step_0"]]
        assert number("mean_pct") == approx(e["mean"])
        assert number("std_pct") == (None if e["std"] is None else approx(e["std"]))
        assert number("max_pct") == approx(e["max"])
        assert (number("ci95_low_pct"), number("ci95_high_pct")) == approx(e["ci"])
        paper = e["paper"]
        assert [number(f"paper_{k}_pct") for k in ("mean", "std", "max")] == (
            [paper["mean"], paper["std"], paper["max"]] if paper else [None] * 3)
        assert number("paper_seeds") == (PAPER[r["experiment"]]["seeds"] if paper else None)
        assert number("difference_in_paper_std") == (approx(e["delta"]) if paper else None)
        scores = np.asarray(e["scores"], dtype=float)        # the distribution table's numbers
        assert number("iqm_pct") == approx(stats.trim_mean(scores, 0.25))
        assert number("q50_pct") == approx(float(np.median(scores)))
        assert int(r["exact_hits"]) == int(np.sum(scores >= 100 - 1e-9))
        assert int(r["success_hits"]) == int(np.sum(scores >= 95 - 1e-9))
        assert number("expected_max_1_pct") == approx(scores.mean())
        if len(scores) >= 3:
            triples = [max(t) for t in itertools.combinations(scores, 3)]
            assert number("expected_max_3_pct") == approx(float(np.mean(triples)))
        else:
            assert r["expected_max_3_pct"] == ""
        comparison = expected_comparison(r["sweep"])
        if comparison is None or r["label"] != comparison["other"]:
            assert r["compared_with"] == r["welch_p"] == r["verdict"] == ""
            continue
        assert r["compared_with"] == comparison["reference"]
        assert number("difference_vs_compared_pct") == approx(comparison["difference"])
        assert number("welch_t") == pytest.approx(comparison["welch_t"], rel=1e-9)
        assert number("welch_p") == pytest.approx(comparison["welch_p"], rel=1e-9)
        assert number("mann_whitney_u") == comparison["u"]
        assert number("mann_whitney_p") == approx(comparison["u_p"])
        assert number("paper_difference_vs_compared_pct") == (
            None if comparison["paper_difference"] is None
            else approx(comparison["paper_difference"]))
        assert r["verdict"] == (EXPECTED_VERDICTS[r["sweep"]] or "")


def check_json(text: str) -> None:
    document = json.loads(text)
    assert {k: document["conventions"][k] for k in (
        "score_unit", "std_ddof", "ci_level", "bootstrap_resamples", "bootstrap_rng_seed",
        "alpha")} == {"score_unit": "percent", "std_ddof": 1, "ci_level": 0.95,
                      "bootstrap_resamples": 10_000, "bootstrap_rng_seed": 0, "alpha": 0.05}
    assert [s["sweep"] for s in document["sweeps"]] == list(SWEEPS)
    for s in document["sweeps"]:
        name = s["sweep"]
        expected = [expected_configuration(name, label) for label in expected_order(name)]
        assert s["n_planned"] == sum(e["planned"] for e in expected)
        assert s["n_done"] == sum(e["done"] for e in expected)
        assert s["partial"] == any(e["pending"] + e["running"] + e["failed"] for e in expected)
        for c, e in zip(s["configurations"], expected, strict=True):
            assert c["label"] == e["label"] and c["seeds"] == e["seeds"]
            assert c["scores_pct"] == approx(list(e["scores"]))
            assert [c[f"n_{k}"] for k in ("planned", "done", "diverged", "failed", "running",
                                          "pending", "best_step_0")] == [
                e["planned"], e["done"], e["diverged"], e["failed"], e["running"], e["pending"],
                e["best_step_0"]]
            assert c["mean_pct"] == approx(e["mean"])
            assert c["std_pct"] == (None if e["std"] is None else approx(e["std"]))
            assert c["max_pct"] == approx(e["max"])
            assert [c["ci95_low_pct"], c["ci95_high_pct"]] == approx(list(e["ci"]))
            assert c["paper"] == (None if e["paper"] is None else {
                "mean_pct": e["paper"]["mean"], "std_pct": e["paper"]["std"],
                "max_pct": e["paper"]["max"]})
            assert c["difference_in_paper_std"] == (None if e["delta"] is None
                                                    else approx(e["delta"]))
            scores = np.asarray(e["scores"], dtype=float)
            assert c["statistics"]["iqm_pct"] == approx(stats.trim_mean(scores, 0.25))
            assert c["statistics"]["quantiles_pct"] == approx(
                list(np.percentile(scores, [5, 25, 50, 75, 95])))
            assert c["statistics"]["expected_max"][-1]["value_pct"] == approx(scores.max())
        for fragment in expected_note_fragments(name):
            assert any(fragment in note for note in s["notes"])
        comparison = expected_comparison(name)
        if comparison is None:
            assert s["comparison"] is None
            continue
        got = s["comparison"]
        assert (got["reference"], got["other"]) == (comparison["reference"], comparison["other"])
        assert got["difference_pct"] == approx(comparison["difference"])
        assert got["welch_t"] == pytest.approx(comparison["welch_t"], rel=1e-9)
        assert got["welch_p"] == pytest.approx(comparison["welch_p"], rel=1e-9)
        assert got["mann_whitney_u"] == comparison["u"]
        assert got["mann_whitney_p"] == approx(comparison["u_p"])
        assert got["verdict"] == EXPECTED_VERDICTS[name]
        for fragment in expected_note_fragments(name):
            assert fragment in got["sentence"]


def _table_rows(text: str, kind: str) -> dict[str, list[str]]:
    """The rows of the first table of a text/markdown/latex report section (the scores beside
    the paper's; the distribution and comparison tables follow it), as cell lists by first
    cell."""
    rows = {}
    for line in text.splitlines():
        ended = {"text": line.startswith("└"), "markdown": rows and not line.startswith("|"),
                 "latex": line.startswith(r"\bottomrule")}[kind]
        if ended:
            break
        if kind == "text" and line.startswith("│"):
            cells = line.strip().strip("│").split("│")
        elif kind == "markdown" and line.startswith("| "):
            cells = line.strip()[1:-1].split(" | ")
        elif kind == "latex" and line.endswith(r" \\"):
            cells = line[:-3].split(" & ")
        else:
            continue
        cells = [c.strip() for c in cells]
        rows[cells[0]] = cells
    return rows


def _latex_cell(text: str) -> str:
    return (text.replace("_", r"\_").replace("±", r"$\pm$").replace("—", "---")
            .replace("−", "$-$").replace("–", "--").replace("†", r"\dag{}"))


def check_tables(text: str, kind: str) -> None:
    local = _latex_cell if kind == "latex" else str
    titles = {name: text.index(local(f"{name} — ")) for name in SWEEPS}
    for name, start in titles.items():
        # several sweeps share labels: check each sweep's section on its own
        section = text[start:min((t for t in titles.values() if t > start), default=len(text))]
        rows = _table_rows(section, kind)
        assert [label for label in rows if label != "configuration"] == [
            local(label) for label in expected_order(name)]
        for label in expected_order(name):
            assert rows[local(label)] == [local(c) for c in expected_cells(name, label)]
        for fragment in expected_note_fragments(name):
            assert local(fragment) in section
        assert local(f"{name}: the seeds' distribution") in section
        scores = np.asarray(expected_configuration(name, expected_order(name)[0])["scores"])
        assert local(f"{stats.trim_mean(scores, 0.25):.2f} [") in section      # its IQM cell
        assert (local(f"{name}: every pair of rows") in section) == (len(expected_order(name)) > 1)
    assert "sample std (ddof = 1)" in text and "10,000 resamples" in text


def check_format(kind: str, text: str) -> None:
    {"csv": check_csv, "json": check_json}.get(kind, lambda t: check_tables(t, kind))(text)


@pytest.mark.parametrize("kind", report_cli.FORMATS)
def test_formats_carry_every_number(full_report, kind):
    check_format(kind, report_formats.FORMATTERS[kind](full_report))


def test_seeds_at_best_step_0_are_flagged(store):
    """A short run: two of bfs's four done seeds and dfs's one kept their step-0 parameters; dfs's
    diverged seed (best step 0, no score) is not counted."""
    short = report.build_report(store, sweep="table1_baseline-steps100")
    text = report_formats.to_text(short)
    rows = _table_rows(text, "text")
    assert rows["bfs"][1].endswith("(95.31) †2") and rows["dfs"][1] == "12.50 ± — (12.50) †1"
    assert "†" not in rows["dfs_regularised"][1]
    assert ("† 3 of 7 seed(s) have best step 0: their best validation was the first, after a "
            "single training step, so their parameters and test scores are essentially their "
            "starting point's (an untrained network's; with init: compiled, the compiled "
            "network's), not training's; train longer or validate more often (lower eval_every)"
            ) in " ".join(text.split())
    document = json.loads(report_formats.to_json(short))["sweeps"][0]
    assert {c["label"]: c["n_best_step_0"] for c in document["configurations"]} == {
        "bfs": 2, "dfs": 1, "dfs_regularised": 0}
    assert any(n.startswith("† 3 of 7 seed(s) have best step 0") for n in document["notes"])
    quickstart = report_formats.to_text(report.build_report(store, sweep="quickstart"))
    assert "†" not in quickstart and "best step 0" not in quickstart


def test_empty_database_reports_no_sweeps(tmp_path):
    with ResultsStore(f"sqlite:///{tmp_path}/empty.db", snapshot_dir=tmp_path) as store:
        empty = report.build_report(store)
    assert empty.sweeps == ()
    assert "no sweeps in sqlite" in report_formats.to_text(empty)
    assert json.loads(report_formats.to_json(empty))["sweeps"] == []
    assert report_formats.to_csv(empty).strip() == ",".join(report_formats.CSV_COLUMNS)


# -- figures, MLflow, the command -----------------------------------------------------------------

def check_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
    pixels = imread(path)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 400
    assert pixels[..., :3].std() > 0.05                     # not a blank canvas
    assert ((pixels[..., 2] - pixels[..., 0]) > 0.2).sum() > 50    # the seeds' (blue) points


def test_figures(full_report, tmp_path):
    figures = report_figures.write_figures(full_report, tmp_path / "figs")
    assert figures == {name: tmp_path / "figs" / f"{name}.png" for name in SWEEPS}
    for path in figures.values():
        check_png(path)
    assert report_figures.figure_file_name("a/b c") == "a_b_c.png"


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gapsweep")
    report_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.mark.parametrize("kind", report_cli.FORMATS)
def test_command_writes_each_format(store, tmp_path, kind):
    output = tmp_path / "out" / f"report.{kind}"
    assert _run(["report", "--db", str(store.url),
                 "--format", kind, "--output", str(output)]) == 0
    check_format(kind, output.read_text(encoding="utf-8"))
    for name in SWEEPS:                                     # figures go next to --output
        assert (output.parent / f"{name}.png").exists()


def test_command_prints_and_selects(store, tmp_path, capsys, monkeypatch):
    db = str(store.url)
    monkeypatch.setenv("GAPSWEEP_RUN_DIR", str(tmp_path / "runs"))
    assert _run(["report", "--db", db, "--format", "json"]) == 0
    captured = capsys.readouterr()
    check_json(captured.out)                                # stdout holds the report only
    assert f"wrote figure {tmp_path / 'runs' / 'reports' / 'quickstart.png'}" in \
        captured.err.replace("\n", "")
    assert _run(["report", "--db", db, "--format", "csv", "--all", "--no-figures"]) == 0
    check_csv(capsys.readouterr().out)
    assert _run(["report", "--db", db, "--experiment", "table1_baseline",
                 "--figures", str(tmp_path / "f")]) == 0
    out = capsys.readouterr().out
    assert "table1_baseline-steps100 — table1_baseline" in out and "quickstart" not in out
    assert [p.name for p in (tmp_path / "f").iterdir()] == ["table1_baseline-steps100.png"]
    assert _run(["report", "--db", db, "--sweep", "quickstart", "--format", "markdown",
                 "--no-figures"]) == 0
    assert capsys.readouterr().out.startswith("### quickstart — quickstart\n")
    with pytest.raises(StoreError, match="no sweep 'nope'"):
        _run(["report", "--db", db, "--sweep", "nope"])
    with pytest.raises(GapsweepError, match="drop --no-figures"):
        _run(["report", "--db", db, "--no-figures", "--mlflow", "sqlite:///x.db"])
    with pytest.raises(SystemExit):
        _run(["report", "--db", db, "--sweep", "quickstart", "--all"])
    capsys.readouterr()


def test_command_logs_figures_to_mlflow(store, tmp_path):
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    db = str(store.url)
    for _ in range(2):                                      # idempotent: one report run
        assert _run(["report", "--db", db, "--sweep", "table10-small", "--format", "csv",
                     "--output", str(tmp_path / "r.csv"), "--mlflow", uri]) == 0
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("edge-ablation")   # the sweep file's choice
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "report" and run.info.status == "FINISHED"
    assert run.data.tags["gapsweep.sweep"] == "table10-small"
    assert run.data.tags["gapsweep.role"] == "report"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "report")] == [
        "report/table10-small.png"]
    check_png(Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="report/table10-small.png",
        dst_path=str(tmp_path / "download"), tracking_uri=uri)))


def test_rows_sharing_fresh_data_are_compared_seed_by_seed(full_report):
    """Pairs with equal shared_data keys (train_data fresh, same algorithm, lengths, batch, data
    seed) get the paired analysis over their shared seeds; others, and pooled data, unpaired;
    Holm's correction spans the table."""
    fresh = {"algorithm": "bfs", "train_data": "fresh"}
    key = report.shared_data_key(fresh)
    assert key == ("bfs", (4, 7, 11, 13, 16), 32, 1)
    assert report.shared_data_key({"algorithm": "bfs"}) is None                  # pool
    assert report.shared_data_key({**fresh, "batch_size": 16}) != key
    assert report.shared_data_key({"algorithm": "bfs", "bogus_key": 1}) is None   # unreadable
    base = {s.sweep: s for s in full_report.sweeps}["table1_baseline-steps100"].configurations[0]
    seeds = tuple(range(12))
    ref_scores = tuple(float(v) for v in _rng.normal(60, 10, 12))
    other_scores = tuple(v + 1.0 + float(e) for v, e in zip(ref_scores, _rng.normal(0, 0.3, 12)))
    ref = dataclasses.replace(base, label="a", seeds=seeds, scores_pct=ref_scores, shared_data=key)
    other = dataclasses.replace(base, label="b", seeds=seeds[2:] + (40, 41),
                                scores_pct=other_scores[2:] + (70.0, 71.0), shared_data=key)
    apart = dataclasses.replace(other, label="c", shared_data=None)
    rows = report.compare_rows([ref, other, apart])
    assert [(r.reference, r.other, r.result.paired) for r in rows] == [
        ("a", "b", True), ("a", "c", False), ("b", "c", False)]
    paired = rows[0]
    assert paired.result.n_x == paired.result.n_y == 10 and "10 shared seeds" in paired.design
    x, y = np.array(other_scores[2:]), np.array(ref_scores[2:])
    assert paired.result.p_value == approx(stats.wilcoxon(x, y).pvalue)
    assert rows[1].result.p_value == approx(stats.mannwhitneyu(
        other.scores_pct, ref.scores_pct, alternative="two-sided").pvalue)
    ps = [r.result.p_value for r in rows]
    order = np.argsort(ps)
    expected = np.maximum.accumulate([min(1.0, (3 - i) * ps[j]) for i, j in enumerate(order)])
    assert [rows[j].holm_p for j in order] == approx(list(expected))


def test_the_wide_test_separates_seed_variance_from_test_split_noise(tmp_path):
    """Seeds with a stored wide-test score (as `gapsweep analyse wide-test` stores it): the
    report's wide-test numbers against NumPy here, the simulated truth recovered, every format
    carrying them; a seed scored on another graph count is left out."""
    from db.store import Curve
    from scipy.stats import pearsonr

    n, graphs = 200, 1024
    rng = np.random.default_rng(7)
    mu = rng.normal(0.80, 0.03, n)                      # each seed's true score
    test = np.clip(mu + 0.01 + rng.normal(0, 0.04, n), 0, 1)   # 32 fixed graphs: noisy, shifted
    wide = np.clip(mu + rng.normal(0, 0.04 * math.sqrt(32 / graphs), n), 0, 1)
    with ResultsStore(f"sqlite:///{tmp_path}/w.db", snapshot_dir=tmp_path / "snaps") as store:
        sweep = store.register_sweep("wide", "wide", "", [ConfigurationEntry(
            "bfs", {"algorithm": "bfs"}, "h" * 64)], range(n + 1))
        ids = {p.seed: p.run_id for p in store.pending(sweep.id)}
        store.claim(list(ids.values()))
        store.record([RunResult(ids[s], "done", test_score=float(test[s]) if s < n else 0.5,
                                best_step=100) for s in range(n + 1)])
        store.replace_metrics({ids[s]: [
            Curve("test", "wide_test/score", [0], [float(wide[s]) if s < n else 0.1]),
            Curve("test", "wide_test/graphs", [0], [float(graphs if s < n else 64)])]
            for s in range(n + 1)})
        result = report.build_report(store, "wide")
    [c] = result.sweeps[0].configurations
    t = c.wide_test
    x, w = 100 * test, 100 * wide
    assert (t.seeds, t.graphs, t.test_graphs) == (n, graphs, 32)
    assert c.wide_test_seeds == tuple(range(n)) and c.wide_test_scores_pct == approx(list(w))
    assert (t.test_mean, t.test_std) == approx((x.mean(), x.std(ddof=1)))
    assert (t.wide_mean, t.wide_std) == approx((w.mean(), w.std(ddof=1)))
    cov = np.sum((x - x.mean()) * (w - w.mean())) / (n - 1)
    assert t.seed_std == approx(math.sqrt(cov))
    assert t.test_noise_std == approx(math.sqrt(x.var(ddof=1) - cov))
    assert t.seed_share == approx(cov / x.var(ddof=1))
    assert t.correlation == approx(pearsonr(x, w).statistic)
    assert t.shift == approx(np.mean(x - w))
    assert t.shift_low < t.shift < t.shift_high and t.seed_share_low < t.seed_share < t.seed_share_high
    # the simulated truth: seed std 3, test-split noise std 4, shift +1 point (within the CIs)
    assert t.shift_low < 1.0 < t.shift_high
    assert t.seed_share_low < 9 / 25 < t.seed_share_high
    assert 2.5 < t.seed_std < 3.5 and 3.5 < t.test_noise_std < 4.5
    # a seed-paired bootstrap of the shift, here, with the report's generator and resamples
    idx = np.random.default_rng(0).integers(0, n, size=(10_000, n))
    assert (t.shift_low, t.shift_high) == approx(tuple(np.percentile((x - w)[idx].mean(1),
                                                                     [2.5, 97.5])))
    text = report_formats.to_text(result)
    assert "wide: the wide test against the CLRS-30 test split" in text
    assert f"{t.wide_mean:.2f} ± {t.wide_std:.2f}" in text
    assert (f"bfs: wide test (1,024 graphs, {n} seeds) {t.wide_mean:.2f} ± {t.wide_std:.2f}%; "
            f"seed variance is {100 * t.seed_share:.0f}%") in text
    assert f"{100 * t.seed_share:.0f}% [{100 * t.seed_share_low:.0f}, " in report_formats.to_markdown(result)
    assert "the wide test against the CLRS" in report_formats.to_latex(result)
    [row] = list(csv.DictReader(io.StringIO(report_formats.to_csv(result))))
    assert float(row["seed_share"]) == approx(t.seed_share)
    assert float(row["wide_test_shift_ci95_low_pct"]) == approx(t.shift_low)
    assert int(row["wide_test_graphs"]) == graphs and int(row["wide_test_seeds"]) == n
    entry = json.loads(report_formats.to_json(result))["sweeps"][0]["configurations"][0]
    assert entry["wide_test"]["seed_std"] == approx(t.seed_std)
    assert entry["wide_test_scores_pct"] == approx(list(w))
    check_png(report_figures.write_figure(result.sweeps[0], tmp_path / "wide.png"))


def test_comparison_rows_rates_and_modes_in_every_format(tmp_path):
    """A sweep of three rows (one that works or collapses, one steady, one often exact): the
    bimodal flag and per-mode means, the Wilson bounds of the success rates, and every pair's
    comparison row (P(X > Y) by brute force, Mann–Whitney by SciPy, Holm by hand) in csv, json
    and the text formats."""
    rng = np.random.default_rng(11)
    rows = {"collapse": np.r_[rng.uniform(0.02, 0.08, 10), rng.uniform(0.92, 0.99, 10)],
            "steady": rng.uniform(0.55, 0.65, 20),
            "often_exact": np.r_[np.ones(7), rng.uniform(0.90, 0.97, 13)]}
    rows = {k: np.round(v, 4) for k, v in rows.items()}
    with ResultsStore(f"sqlite:///{tmp_path}/m.db", snapshot_dir=tmp_path / "snaps") as store:
        sweep = store.register_sweep("modes", "modes", "", [ConfigurationEntry(
            label, {"algorithm": "dfs"}, hashlib.sha256(label.encode()).hexdigest())
            for label in rows], range(20))
        ids = {(p.label, p.seed): p.run_id for p in store.pending(sweep.id)}
        store.claim(list(ids.values()))
        store.record([RunResult(ids[label, s], "done", test_score=float(v[s]), best_step=10)
                      for label, v in rows.items() for s in range(20)])
        result = report.build_report(store, "modes")
    [s] = result.sweeps
    by_label = {c.label: c for c in s.configurations}
    scores = {k: 100 * v for k, v in rows.items()}

    m = by_label["collapse"].statistics.modes
    assert m.bimodal and not by_label["steady"].statistics.modes.bimodal
    low, high = np.sort(scores["collapse"])[:10], np.sort(scores["collapse"])[10:]
    assert (m.low_mean, m.high_mean, m.low_fraction, m.high_fraction) == approx(
        (low.mean(), high.mean(), 0.5, 0.5))
    x = scores["collapse"]
    skew, kurt = stats.skew(x, bias=False), stats.kurtosis(x, bias=False)
    assert m.coefficient == pytest.approx((skew ** 2 + 1) / (kurt + 3 * 19 ** 2 / (18 * 17)))

    def wilson(k, n, z=stats.norm.ppf(0.975)):
        centre = (k + z * z / 2) / (n + z * z)
        half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
        return centre - half, centre + half

    st = by_label["often_exact"].statistics
    reaching = int(np.sum(scores["often_exact"] >= 95))
    assert 7 < reaching < 20
    assert (st.exact.hits, st.exact.n) == (7, 20) and (st.success.hits, st.success.n) == (reaching, 20)
    assert (st.exact.low, st.exact.high) == pytest.approx(wilson(7, 20), rel=1e-9)
    assert (st.success.low, st.success.high) == pytest.approx(wilson(reaching, 20), rel=1e-9)

    pairs = [("collapse", "steady"), ("collapse", "often_exact"), ("steady", "often_exact")]
    assert [(r.reference, r.other) for r in s.comparisons] == pairs
    ps = [stats.mannwhitneyu(scores[o], scores[r], alternative="two-sided").pvalue
          for r, o in pairs]
    order = np.argsort(ps)
    holm = np.empty(3)
    holm[order] = np.maximum.accumulate([min(1.0, (3 - i) * ps[j]) for i, j in enumerate(order)])
    poi = [np.mean([(a > b) + 0.5 * (a == b) for a in scores[o] for b in scores[r]])
           for r, o in pairs]
    csv_rows = [r for r in csv.DictReader(io.StringIO(report_formats.to_csv(result)))
                if r["row"] == "comparison"]
    document = json.loads(report_formats.to_json(result))["sweeps"][0]["comparisons"]
    for (ref, other), p, adjusted, expected_poi, row, entry in zip(
            pairs, ps, holm, poi, csv_rows, document, strict=True):
        assert (row["compared_with"], row["label"], row["paired"]) == (ref, other, "false")
        assert (entry["reference"], entry["other"]) == (ref, other)
        assert float(row["probability_of_improvement"]) == approx(expected_poi)
        assert entry["result"]["probability_of_improvement"] == approx(expected_poi)
        assert float(row["p_value"]) == approx(p) and entry["result"]["p_value"] == approx(p)
        assert float(row["p_holm"]) == approx(adjusted) and entry["holm_p"] == approx(adjusted)
        iqm_difference = stats.trim_mean(scores[other], 0.25) - stats.trim_mean(scores[ref], 0.25)
        assert float(row["iqm_difference_pct"]) == approx(iqm_difference)
        assert row["test"] == "Mann–Whitney U" and "unpaired" in row["design"]
    [csv_collapse] = [r for r in csv.DictReader(io.StringIO(report_formats.to_csv(result)))
                      if r["row"] == "configuration" and r["label"] == "collapse"]
    assert csv_collapse["bimodal"] == "true"
    assert float(csv_collapse["low_mode_mean_pct"]) == approx(low.mean())
    for kind in ("text", "markdown", "latex"):
        text = report_formats.FORMATTERS[kind](result)
        local = report_formats._latex if kind == "latex" else str
        assert local(f"collapse: bimodal (Sarle's coefficient {m.coefficient:.2f}): 50% of "
                     f"seeds around {low.mean():.2f}%") in text
        assert local(f"{holm[2]:.2g}") in text
        if kind == "text":             # rich wraps wide cells; headers are text, not markup
            assert "E[max of 3]" in text or "E[max of" in text
            continue
        assert local(f"35.0% (7/20) [{100 * wilson(7, 20)[0]:.1f}, "
                     f"{100 * wilson(7, 20)[1]:.1f}]") in text


ANCHORS_YAML = """\
anchors:
  - {source: "A et al. 2022, Table 2", model: M1, algorithm: bfs, test: 64, mean: 99.5,
     error: 0.05, error_kind: sem, seeds: 10, checked: "fixture"}
  - {source: "B et al. 2023, Table 1", model: M2, algorithm: bfs, test: 64, mean: 90.0,
     error: 2.0, error_kind: std, seeds: 3, checked: "fixture"}
  - {source: "C 2024", model: M3, algorithm: bfs, test: 16, mean: 80.0, error: 1.0,
     error_kind: std, seeds: 5, checked: "fixture"}
  - {source: "D 2024", model: M4, algorithm: dfs, test: 64, mean: 50.0, error: 1.0,
     error_kind: sem, seeds: 4, checked: "fixture"}
"""


def test_published_anchors_are_validated_converted_and_shown(tmp_path):
    """Anchors: s.e.m. converted to the seeds' std (× √seeds), std kept; shown beside the rows
    of the same algorithm and test size only, in the notes, csv (row = anchor) and json; a
    malformed file names the entry, the key and what is allowed; the shipped file loads."""
    from orchestrator.published_anchors import AnchorError, load_anchors

    assert load_anchors() == ()                  # shipped: none checked against a source yet
    path = tmp_path / "anchors.yaml"
    path.write_text(ANCHORS_YAML)
    anchors = load_anchors(path)
    assert [a.model for a in anchors] == ["M1", "M2", "M3", "M4"]
    assert anchors[0].std_pct == pytest.approx(0.05 * math.sqrt(10))
    assert anchors[1].std_pct == 2.0
    for text, message in (
            ("anchors: [{model: M}]\n", r"anchors\[0\]: missing source"),
            (ANCHORS_YAML.replace("error_kind: sem, seeds: 10", "error_kind: sd, seeds: 10"),
             r"anchors\[0\].error_kind: 'sd' is not allowed; one of sem, std"),
            (ANCHORS_YAML.replace("mean: 90.0", "mean: 190.0"),
             r"anchors\[1\].mean: 190.0 is not allowed; a percentage in \[0, 100\]"),
            (ANCHORS_YAML.replace("algorithm: dfs", "algorithm: quicksort"),
             r"anchors\[3\].algorithm: 'quicksort' is not allowed"),
            ("anchors: {}\n", "a list under 'anchors'")):
        path.write_text(text)
        with pytest.raises(AnchorError, match=message):
            load_anchors(path)

    with ResultsStore(f"sqlite:///{tmp_path}/a.db", snapshot_dir=tmp_path / "snaps") as store:
        sweep = store.register_sweep("anchored", "anchored", "", [
            ConfigurationEntry("bfs", {"algorithm": "bfs"}, "a" * 64),
            ConfigurationEntry("bfs_n16", {"algorithm": "bfs", "train_lengths": [16],
                                           "length_generalize": False}, "b" * 64),
            ConfigurationEntry("bellman_ford", {"algorithm": "bellman_ford"}, "c" * 64)],
            range(3))
        ids = {(p.label, p.seed): p.run_id for p in store.pending(sweep.id)}
        store.claim(list(ids.values()))
        store.record([RunResult(i, "done", test_score=0.9, best_step=5) for i in ids.values()])
        result = report.build_report(store, "anchored", anchors=anchors)
    by_label = {c.label: c for c in result.sweeps[0].configurations}
    assert [a.model for a in by_label["bfs"].anchors] == ["M1", "M2"]      # bfs at n = 64
    assert [a.model for a in by_label["bfs_n16"].anchors] == ["M3"]        # bfs at n = 16
    assert by_label["bellman_ford"].anchors == ()
    text = report_formats.to_text(result)
    assert (f"bfs, published: M1 (A et al. 2022, Table 2): 99.50 ± {0.05 * math.sqrt(10):.2f} "
            "(s.e.m. 0.05 × √10; 10 seeds, n = 64); M2 (B et al. 2023, Table 1): 90.00 ± 2.00 "
            "(std as printed; 3 seeds, n = 64)") in text
    rows = [r for r in csv.DictReader(io.StringIO(report_formats.to_csv(result)))
            if r["row"] == "anchor"]
    assert [(r["label"], r["anchor_model"]) for r in rows] == [("bfs", "M1"), ("bfs", "M2"),
                                                               ("bfs_n16", "M3")]
    assert float(rows[0]["anchor_std_pct"]) == pytest.approx(0.05 * math.sqrt(10))
    assert rows[0]["anchor_error_kind"] == "sem" and int(rows[0]["anchor_seeds"]) == 10
    entry = json.loads(report_formats.to_json(result))["sweeps"][0]["configurations"][0]
    assert [a["model"] for a in entry["anchors"]] == ["M1", "M2"]
    assert entry["anchors"][0]["std_pct"] == pytest.approx(0.05 * math.sqrt(10))
    check_png(report_figures.write_figure(result.sweeps[0], tmp_path / "anchored.png"))


def test_a_grid_over_one_number_gets_a_panel_against_it(tmp_path):
    """A sweep whose grid varies one numeric setting (labels ``bfs/compile_scale=0.25``, as the
    plan writes them): the figure's fourth panel plots each group's scores against it;
    grid_axis finds the key and the groups, and no axis where no single number varies."""
    from types import SimpleNamespace

    values = [0.25, 1.0, 4.0]
    entries = [ConfigurationEntry(f"{alg}/compile_scale={v}", {"algorithm": alg}, f"{alg}{v}".ljust(64, "h"))
               for alg in ("bfs", "bellman_ford") for v in values]
    with ResultsStore(f"sqlite:///{tmp_path}/g.db", snapshot_dir=tmp_path / "snaps") as store:
        sweep = store.register_sweep("scale", "scale", "", entries, range(4))
        pending = store.pending(sweep.id)
        store.claim([p.run_id for p in pending])
        store.record([RunResult(p.run_id, "done", test_score=0.5 + 0.1 * p.seed, best_step=10)
                      for p in pending])
        result = report.build_report(store, "scale")
    key, groups = report_figures.grid_axis(result.sweeps[0])
    assert key == "compile_scale" and set(groups) == {"bfs", "bellman_ford"}
    assert [v for v, _ in groups["bfs"]] == values
    assert [c.label for _, c in groups["bellman_ford"]] == [f"bellman_ford/compile_scale={v}"
                                                            for v in values]
    check_png(report_figures.write_figure(result.sweeps[0], tmp_path / "scale.png"))
    def sweep_of(*labels):
        return SimpleNamespace(configurations=[SimpleNamespace(label=label) for label in labels])
    assert report_figures.grid_axis(sweep_of("a/x=1", "a/x=2")) is None          # two values
    assert report_figures.grid_axis(sweep_of("a/x=1,y=1", "a/x=2,y=2", "a/x=3,y=3")) is None
    assert report_figures.grid_axis(sweep_of("bfs", "dfs", "bellman_ford")) is None
    assert report_figures.grid_axis(sweep_of("k=a", "k=b", "k=c")) is None      # not numbers
