"""The README's results examples, verbatim, against what the README's own commands produce: its
quick look (``gapsweep run sweeps/quickstart.yaml --steps 50 --max-seeds 2``, read from the README)
runs once in a fresh directory; then every SQL query of "Querying results" runs as written through
``sqlite3 runs/gapsweep.db``, and every line of the results CLI block (``<!-- results-cli -->``)
through ``bash -c``, and what they print is checked against ``db.store.ResultsStore``'s reads of
the same database. Nothing is copied out of the README, so the examples cannot drift from it."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from db.store import ResultsStore
from test_db_readme_queries import BF, BFS, readme_queries

pytestmark = pytest.mark.timeout(1800)           # the module's first test runs the quick look

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# the settings a user's shell may carry that would send the commands elsewhere than ./runs
LEAVE_OUT = ("GAPSWEEP_RUN_DIR", "GAPSWEEP_DB", "GAPSWEEP_SNAPSHOT_DIR", "MLFLOW_TRACKING_URI",
             "RAY_ADDRESS")


def quick_look_command() -> tuple[str, str]:
    """The README's quick-look line (in "Sweeps": the one commented "a quick look (sweep NAME)")
    and the sweep name it says it makes."""
    found = re.findall(r"^(gapsweep run .*# a quick look \(sweep '([\w.-]+)'\))$", README, re.M)
    assert len(found) == 1, found
    return found[0]


def results_cli_lines() -> list[str]:
    block = re.search(r"<!-- results-cli -->\s*```bash\n(.*?)```", README, re.S)
    assert block, "README: no ```bash block after <!-- results-cli -->"
    return [line for line in block.group(1).splitlines() if line.strip()]


@dataclasses.dataclass(frozen=True)
class QuickLook:
    home: Path                    # the directory the README's commands run in
    sweep: str
    env: dict
    output: str

    @property
    def url(self) -> str:
        return f"sqlite:///{self.home / 'runs' / 'gapsweep.db'}"

    def bash(self, line: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", line], cwd=self.home, env=self.env,
                              capture_output=True, text=True, timeout=1500)

    def sqlite3(self, sql: str) -> list[list[str]]:
        """A query as the README says to run it: ``sqlite3 runs/gapsweep.db`` here (with the
        shell's batch mode and a '|' separator, to read its rows)."""
        assert "`sqlite3 runs/gapsweep.db`" in README
        sqlite3 = shutil.which("sqlite3") or pytest.fail("the sqlite3 shell is not installed")
        out = subprocess.run([sqlite3, "-batch", "-separator", "|", "runs/gapsweep.db"],
                             input=sql, cwd=self.home, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and not out.stderr, out.stderr
        return [line.split("|") for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def quick_look(tmp_path_factory, cache_dir) -> QuickLook:
    """The README's quick look, run verbatim by bash in a new directory holding ``sweeps`` (a link
    to the checkout's), with the checkout's code, the venv's ``gapsweep`` on PATH and the session's
    data and XLA caches. With empty caches: 2 min 56 s on a 2-core AMD EPYC, 4-7 min
    there with the cores shared with other test runs."""
    command, sweep = quick_look_command()
    home = tmp_path_factory.mktemp("readme-quick-look")
    (home / "sweeps").symlink_to(ROOT / "sweeps")
    env = {key: value for key, value in os.environ.items() if key not in LEAVE_OUT}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # the checkout under test, whichever checkout the venv's editable install points at
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["GAPSWEEP_CACHE_DIR"] = str(cache_dir)
    env["GAPSWEEP_XLA_CACHE_DIR"] = os.environ["GAPSWEEP_XLA_CACHE_DIR"]    # conftest's
    assert shutil.which("gapsweep", path=env["PATH"]), "no gapsweep beside sys.executable"
    look = QuickLook(home, sweep, env, "")
    proc = look.bash(command)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, (
        f"{command}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return dataclasses.replace(look, output=proc.stdout)


@pytest.fixture(scope="module")
def store(quick_look):
    with ResultsStore(quick_look.url) as results:
        yield results


def test_the_quick_look_makes_the_sweep_the_readme_names(quick_look, store):
    newest = store.sweep()
    assert newest.name == quick_look.sweep == "quickstart-steps50"
    counts = store.counts(newest.id)
    assert [(c.label, c.runs.done, c.runs.total) for c in counts] == [(BFS, 2, 2), (BF, 2, 2)]
    assert "4 seed(s) recorded" in quick_look.output


def test_readme_queries_verbatim_on_the_quick_look(quick_look, store):
    queries = readme_queries()
    sweep = store.sweep()
    rows = {name: quick_look.sqlite3(sql) for name, sql in queries.items()}
    assert all(rows.values()), {name: len(found) for name, found in rows.items()}

    counts = {c.label: c for c in store.counts(sweep.id)}
    assert [row[0] for row in rows["scores"]] == sorted(counts)
    for label, seeds, mean, std, best in rows["scores"]:
        c = counts[label]
        assert int(seeds) == c.runs.done == 2
        for shown, value in ((mean, c.test_mean), (std, c.test_std), (best, c.test_max)):
            assert float(shown) == pytest.approx(100 * value, abs=0.0051), (label, shown, value)

    expected = []
    for label in sorted(counts):
        for run in store.runs_of(sweep.id, label):
            detail = store.run(run.id)
            expected.append((label, run.seed, run.status, run.best_step, detail.diverged_step,
                             round(100 * run.test_score, 2), run.id))
    assert [(label, int(seed), status, int(best_step) if best_step else None,
             int(diverged) if diverged else None, float(test_pct), int(run_id))
            for label, seed, status, best_step, diverged, test_pct, run_id in rows["seeds"]] == [
        (*row[:5], pytest.approx(row[5], abs=0.0051), row[6]) for row in expected]

    for label, seeds, final, std in rows["final"]:
        lasts = [store.curve(r.id, "val_score", "val")[1][-1] for r in store.runs_of(sweep.id, label)
                 if r.status == "done"]
        assert int(seeds) == len(lasts) == 2
        assert float(final) == pytest.approx(100 * np.mean(lasts), abs=0.0051), label
        assert float(std) == pytest.approx(100 * np.std(lasts, ddof=1), abs=0.0051), label

    bfs_0 = next(r for r in store.runs_of(sweep.id, BFS) if r.seed == 0)
    steps, values = store.curve(bfs_0.id, "val_score", "val")
    assert [int(step) for step, _ in rows["curve"]] == steps.tolist() == list(range(0, 50, 8))
    assert [float(value) for _, value in rows["curve"]] == pytest.approx(values.tolist(), rel=1e-12)

    every = [c for c in store.counts() if c.algorithm == "bellman_ford"]
    configs = {(c.sweep_id, c.label): c.config for s in store.sweeps()
               for c in store.configurations(s.id)}
    sweep_ids = {s.name: s.id for s in store.sweeps()}
    assert [(row[0], row[1], int(row[2]), int(row[3]), int(row[4]), float(row[5]))
            for row in rows["bellman-ford"]] == [
        (c.sweep, c.label, configs[sweep_ids[c.sweep], c.label]["hidden_size"],
         configs[sweep_ids[c.sweep], c.label]["train_steps"], c.runs.done,
         pytest.approx(c.test_max, rel=1e-12)) for c in every]
    assert [row[2:4] for row in rows["bellman-ford"]] == [["16", "50"]]


def _table_rows(out: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("│")[1:-1]]
            for line in out.splitlines() if line.startswith("│")]


def _check_status(out, store, look, line):
    assert out.splitlines()[0].startswith(f"sweeps in {store.display_url}")
    assert [row[:5] for row in _table_rows(out)] == [[look.sweep, "quickstart", "finished", "2", "4"]]


def _check_runs(out, store, look, line):
    title = out.splitlines()[0]
    assert title.startswith(look.sweep) and title.endswith(": configurations"), title
    counts = {c.label: c for c in store.counts(store.sweep().id)}
    assert {row[0]: row[2] for row in _table_rows(out)} == {
        label: str(c.runs.done) for label, c in counts.items()}


def _check_runs_of_bfs(out, store, look, line):
    title = out.splitlines()[0]
    assert title.startswith(look.sweep) and f"/ {BFS}: runs" in title, title
    runs = store.runs_of(store.sweep().id, BFS, status="done")
    assert [(row[0], row[1], row[2]) for row in _table_rows(out)] == [
        (str(r.id), str(r.seed), "done") for r in runs] and len(runs) == 2


def _check_export(out, store, look, line):
    path = look.home / re.search(r"-o (\S+)", line).group(1)
    assert f"wrote {path.name}" in out and "verified" in out
    detail = store.run(1)            # the README: run 1 is the first sweep's algorithm=bfs seed 0
    assert (detail.label, detail.seed, detail.sweep) == (BFS, 0, look.sweep)
    with np.load(path, allow_pickle=False) as npz:
        arrays = dict(npz)
    params = store.load_snapshot(1, "best")

    def flat(tree, prefix=""):
        for key, value in tree.items():
            yield from (flat(value, f"{prefix}{key}/") if isinstance(value, dict)
                        else [(f"{prefix}{key}", value)])

    expected = dict(flat(params))
    assert sorted(arrays) == sorted(expected) and arrays
    assert all(arrays[k].dtype == v.dtype and np.array_equal(arrays[k], v)
               for k, v in expected.items())


# each line of the block and what it must show; a line the block gains needs a check here
CLI_CHECKS = [
    (re.compile(r"gapsweep status\s*(#|$)"), _check_status),
    (re.compile(r"gapsweep runs\s*(#|$)"), _check_runs),
    (re.compile(r"gapsweep runs .*--config (algorithm=)?bfs\b"), _check_runs_of_bfs),
    (re.compile(r"gapsweep snapshot export 1 "), _check_export),
]


@pytest.mark.parametrize("line", results_cli_lines())
def test_readme_results_cli_verbatim_on_the_quick_look(quick_look, store, line):
    checks = [check for pattern, check in CLI_CHECKS if pattern.match(line)]
    assert len(checks) == 1, f"README line without a check in CLI_CHECKS: {line}"
    proc = quick_look.bash(line)
    assert proc.returncode == 0, f"{line}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr and "error:" not in proc.stderr, proc.stderr
    checks[0](proc.stdout, store, quick_look, line)


def test_readme_results_cli_block_needs_no_placeholder_host():
    # `gapsweep db upgrade --db postgresql://me@dbhost/gapsweep` stays outside the block: every
    # line in it runs here as written
    assert not [line for line in results_cli_lines() if re.search(r"@dbhost|\bHEAD\b", line)]
    assert "gapsweep db upgrade --db postgresql://me@dbhost/gapsweep" in README
    used = {check for pattern, check in CLI_CHECKS for line in results_cli_lines()
            if pattern.match(line)}
    assert used == {check for _, check in CLI_CHECKS}       # each check is a line's
