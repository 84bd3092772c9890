"""The README's SQL queries, run as written through the real ``sqlite3`` shell and ``psql`` against a
fixture sweep, return the numbers the fixture implies."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from db.store import ConfigurationEntry, Curve, ResultsStore, RunResult

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_queries() -> dict[str, str]:
    text = README.read_text()
    found = dict(re.findall(r"<!-- query: ([\w-]+) -->\s*```sql\n(.*?)```", text, re.S))
    assert set(found) == {"scores", "diverged", "curve", "edge-info"}, found.keys()
    return found


def fixture_sweep(url, tmp_path) -> dict:
    """quickstart: bfs seeds 0-2 done (90, 80, 70 %), seed 3 diverged at step 150;
    edge_info seeds 0-3 done (50, 60, 70, 80 %); bfs seed 0 has a 3-point validation curve."""
    with ResultsStore(url, snapshot_dir=tmp_path / "snaps") as store:
        sweep = store.register_sweep("quickstart", "quickstart", "name: quickstart\n", [
            ConfigurationEntry("bfs", {"algorithm": "bfs", "use_edge_info": False}, "a" * 64),
            ConfigurationEntry("edge_info", {"algorithm": "bfs", "use_edge_info": True}, "b" * 64)],
            range(4))
        # a second sweep whose rows the queries must not pick up
        other = store.register_sweep("other", "x", "", [ConfigurationEntry(
            "bfs", {"algorithm": "bfs", "use_edge_info": False}, "a" * 64)], range(2))
        runs = {(p.label, p.seed): p.run_id for p in store.pending(sweep.id)}
        other_runs = [p.run_id for p in store.pending(other.id)]
        store.claim(list(runs.values()) + other_runs)
        results = [RunResult(runs["bfs", s], "done", test_score=v)
                   for s, v in zip(range(3), (0.9, 0.8, 0.7))]
        results[0].curves = [Curve("val", "val_score", [0, 50, 100], [0.1, 0.5, 0.75])]
        results.append(RunResult(runs["bfs", 3], "diverged", diverged_step=150))
        results += [RunResult(runs["edge_info", s], "done", test_score=v)
                    for s, v in zip(range(4), (0.5, 0.6, 0.7, 0.8))]
        results[4].curves = [Curve("val", "val_score", [0, 50], [0.3, 0.2])]   # other run's curve
        store.record(results)
        store.record([RunResult(r, "done", test_score=0.1, diverged_step=None) for r in other_runs])
        return runs


def run_query(url: str, sql: str) -> list[list[str]]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        command = [shutil.which("sqlite3") or pytest.fail("the sqlite3 shell is not installed"),
                   "-batch", "-separator", "|", parsed.database]
    else:
        command = [shutil.which("psql") or pytest.fail("psql is not installed"), "-X", "-q", "-A",
                   "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
                   parsed.set(drivername="postgresql").render_as_string(hide_password=False)]
    out = subprocess.run(command, input=sql, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr, out.stderr
    return [line.split("|") for line in out.stdout.splitlines() if line.strip()]


def test_readme_queries(db_url, tmp_path):
    runs = fixture_sweep(db_url, tmp_path)
    queries = readme_queries()

    scores = run_query(db_url, queries["scores"])
    assert [row[0] for row in scores] == ["bfs", "edge_info"]
    assert [[float(x) for x in row[1:]] for row in scores] == [
        [3, 80.0, 10.0, 90.0], [4, 65.0, 12.91, 80.0]]

    assert run_query(db_url, queries["diverged"]) == [["bfs", "3", "150", str(runs["bfs", 3])]]

    curve = run_query(db_url, queries["curve"])
    assert [(int(step), float(value)) for step, value in curve] == [(0, 0.1), (50, 0.5), (100, 0.75)]

    edge = run_query(db_url, queries["edge-info"])
    assert [(row[0], row[1], row[2], int(row[3]), float(row[4])) for row in edge] == [
        ("quickstart", "edge_info", "bfs", 4, 0.8)]
