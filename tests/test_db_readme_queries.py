"""The README's SQL queries, run as written through the real ``sqlite3`` shell and ``psql`` against a
fixture sweep with the quickstart's labels, return the numbers the fixture implies.
(tests/test_readme_examples.py runs them on the README's own quick look.)"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from db.store import ConfigurationEntry, Curve, ResultsStore, RunResult

README = Path(__file__).resolve().parents[1] / "README.md"
QUERIES = {"scores", "seeds", "final", "curve", "bellman-ford"}
BFS, BF = "algorithm=bfs", "algorithm=bellman_ford"


def readme_queries() -> dict[str, str]:
    text = README.read_text()
    found = dict(re.findall(r"<!-- query: ([\w-]+) -->\s*```sql\n(.*?)```", text, re.S))
    assert set(found) == QUERIES, found.keys()
    return found


def _entries(hidden_size: int) -> list[ConfigurationEntry]:
    return [ConfigurationEntry(label, {"algorithm": algorithm, "hidden_size": hidden_size,
                                       "train_steps": 300}, f"{algorithm}{hidden_size}".ljust(64, "0"))
            for label, algorithm in ((BFS, "bfs"), (BF, "bellman_ford"))]


def fixture_sweep(url, tmp_path) -> dict:
    """An older sweep 'older' (hidden 4, seeds 0-1 done: bfs 10 %, Bellman-Ford 20, 30 %), then
    the newest, 'quickstart' (hidden 16): bfs seeds 0-2 done (90, 80, 70 %), seed 3 diverged at
    step 150; Bellman-Ford seeds 0-3 done (50, 60, 70, 80 %); bfs seed 0 has a 3-point
    validation curve."""
    with ResultsStore(url, snapshot_dir=tmp_path / "snaps") as store:
        # registered first: the queries that read the newest sweep must not pick up its rows
        older = store.register_sweep("older", "x", "", _entries(4), range(2))
        sweep = store.register_sweep("quickstart", "quickstart", "name: quickstart\n",
                                     _entries(16), range(4))
        runs = {(p.label, p.seed): p.run_id for p in store.pending(sweep.id)}
        older_runs = {(p.label, p.seed): p.run_id for p in store.pending(older.id)}
        store.claim(list(runs.values()) + list(older_runs.values()))
        results = [RunResult(runs[BFS, s], "done", test_score=v, best_step=50 * s)
                   for s, v in zip(range(3), (0.9, 0.8, 0.7))]
        results[0].curves = [Curve("val", "val_score", [0, 50, 100], [0.1, 0.5, 0.75])]
        results.append(RunResult(runs[BFS, 3], "diverged", diverged_step=150))
        results += [RunResult(runs[BF, s], "done", test_score=v, best_step=100)
                    for s, v in zip(range(4), (0.5, 0.6, 0.7, 0.8))]
        results[4].curves = [Curve("val", "val_score", [0, 50], [0.3, 0.2])]   # another run's curve
        store.record(results)
        store.record([RunResult(older_runs[BFS, s], "done", test_score=0.1) for s in range(2)]
                     + [RunResult(older_runs[BF, s], "done", test_score=v)
                        for s, v in zip(range(2), (0.2, 0.3))])
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
    assert [row[0] for row in scores] == [BF, BFS]
    assert [[float(x) for x in row[1:]] for row in scores] == [
        [4, 65.0, 12.91, 80.0], [3, 80.0, 10.0, 90.0]]

    seeds = run_query(db_url, queries["seeds"])
    assert [(label, int(seed), status) for label, seed, status, *_ in seeds] == [
        *((BF, s, "done") for s in range(4)), *((BFS, s, "done") for s in range(3)),
        (BFS, 3, "diverged")]
    assert [(row[3], row[4], row[6]) for row in seeds if row[0] == BFS] == [
        ("0", "", str(runs[BFS, 0])), ("50", "", str(runs[BFS, 1])),
        ("100", "", str(runs[BFS, 2])), ("", "150", str(runs[BFS, 3]))]
    assert [float(row[5]) for row in seeds if row[5]] == [50.0, 60.0, 70.0, 80.0, 90.0, 80.0, 70.0]

    final = run_query(db_url, queries["final"])     # the two runs with a curve: their last points
    assert [(row[0], int(row[1]), float(row[2]), row[3]) for row in final] == [
        (BF, 1, 20.0, ""), (BFS, 1, 75.0, "")]

    curve = run_query(db_url, queries["curve"])
    assert [(int(step), float(value)) for step, value in curve] == [(0, 0.1), (50, 0.5), (100, 0.75)]

    bellman_ford = run_query(db_url, queries["bellman-ford"])
    assert [(row[0], row[1], int(row[2]), int(row[3]), int(row[4]), float(row[5]))
            for row in bellman_ford] == [("older", BF, 4, 300, 2, 0.3),
                                         ("quickstart", BF, 16, 300, 4, 0.8)]
