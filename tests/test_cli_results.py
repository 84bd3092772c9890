"""`gapsweep db upgrade / db current / status / runs / snapshot export` on both backends."""


import numpy as np
import sqlalchemy as sa

from db.local_postgres import free_port
from db.snapshots import trees_equal
from db.store import ConfigurationEntry, Curve, ResultsStore, RunResult
from gapsweep.main import main
from gapsweep.progress import print_outcome
from orchestrator.schedule import SweepOutcome

PARAMS = {"processor": {"W_value": {"kernel": np.arange(12, dtype=np.float32).reshape(3, 4)}}}


def test_db_commands(db_url, capsys):
    assert main(["db", "current", "--db", db_url]) == 0
    assert "revision none (empty)" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert "upgraded empty → 0004" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert "already at head (0004); nothing to do" in capsys.readouterr().out
    assert main(["db", "current", "--db", db_url]) == 0
    assert "revision 0004, head 0004 (up to date)" in capsys.readouterr().out


def test_status_runs_and_export(db_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GAPSWEEP_DB", db_url)           # the default for --db
    monkeypatch.setenv("GAPSWEEP_SNAPSHOT_DIR", str(tmp_path / "snaps"))
    with ResultsStore() as store:
        sweep = store.register_sweep("demo", "table1_baseline", "", [
            ConfigurationEntry("bfs", {"algorithm": "bfs"}, "a" * 64),
            ConfigurationEntry("dfs", {"algorithm": "dfs"}, "b" * 64)], range(3))
        todo = store.pending(sweep.id)
        store.claim([p.run_id for p in todo[:4]])
        store.record([RunResult(p.run_id, "done", test_score=0.5 + 0.1 * p.seed,
                                best_step=0 if p.seed == 1 else 50,
                                curves=[Curve("val", "val_score", [0], [0.5])],
                                snapshots={"best": PARAMS}) for p in todo[:3]])
        store.mark_failed([todo[3].run_id], "RuntimeError: out of memory\n(while training)")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "table1_baseline" in out
    # recorded without a tracker: the three wait in the outbox, and status says what logs them
    assert "not in MLflow yet" in out and "demo 3 run(s); 'gapsweep track sync' logs them" in out
    assert main(["runs", "demo"]) == 0
    out = capsys.readouterr().out
    assert "60.00 ± 10.00 (70.00) †1" in out         # bfs: 50, 60, 70 %; seed 1 at best step 0
    assert "† 1 of 3 seed(s) have best step 0: their best validation was the first" in out
    assert main(["runs", "demo", "--config", "bfs"]) == 0
    out = capsys.readouterr().out
    assert [line.split("│")[7].strip() for line in out.splitlines()
            if line.startswith("│") and "done" in line] == ["50", "0 †", "50"]
    assert "† 1 of 3 seed(s) have best step 0" in out
    with ResultsStore(db_url) as store:
        counts = store.counts(sweep.id)
    print_outcome(SweepOutcome(sweep.id, "demo", recorded=3), counts, None)
    out = capsys.readouterr().out                    # what `gapsweep run` prints at the end
    assert "60.00 ± 10.00 (70.00) †1" in out and "† 1 of 3 seed(s) have best step 0" in out
    assert main(["runs", "demo", "--config", "dfs"]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "(while training)" in out and "pending" in out
    assert main(["runs", "demo", "--config", "nope"]) == 2
    assert "has no configuration 'nope'; it has: bfs, dfs" in capsys.readouterr().err
    target = tmp_path / "out.npz"
    assert main(["snapshot", "export", str(todo[0].run_id), "-o", str(target)]) == 0
    assert "verified" in capsys.readouterr().out
    with np.load(target, allow_pickle=False) as npz:
        loaded = {"processor": {"W_value": {"kernel": npz["processor/W_value/kernel"]}}}
    assert trees_equal(loaded, PARAMS)
    assert main(["snapshot", "export", str(todo[0].run_id), "--kind", "final"]) == 2
    assert "has no 'final' snapshot; it has: best" in capsys.readouterr().err
    assert main(["snapshot", "export", "99999"]) == 2
    assert "no 'best' snapshot" in capsys.readouterr().err


def test_errors_name_the_fix_and_hide_passwords(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with ResultsStore(url) as store:
        with store.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM alembic_version"))
    assert main(["status", "--db", url]) == 2
    assert "run: gapsweep db upgrade --db" in capsys.readouterr().err
    dead = f"postgresql://alice:s3cret@127.0.0.1:{free_port()}/results"
    assert main(["status", "--db", dead]) == 2
    err = capsys.readouterr().err
    assert "database error" in err and "s3cret" not in err


def test_runs_shows_the_newest_sweep_and_takes_a_short_config(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GAPSWEEP_DB", f"sqlite:///{tmp_path / 'results.db'}")
    assert main(["runs"]) == 2                           # an empty database: say so, and what to do
    assert "no sweeps in sqlite:///" in capsys.readouterr().err
    with ResultsStore() as store:
        for name, grid in (("older", ("bfs", "dfs")), ("grid", ("bfs", "bellman_ford"))):
            sweep = store.register_sweep(name, "x", "", [
                ConfigurationEntry(f"baseline/algorithm={a}", {"algorithm": a}, f"{name}{a}" * 4)
                for a in grid], range(2))
        todo = store.pending(sweep.id, labels=["baseline/algorithm=bfs"])
        store.claim([p.run_id for p in todo])
        store.record([RunResult(p.run_id, "done", test_score=0.5) for p in todo])
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("grid (the newest sweep) in sqlite:///")
    assert "baseline/algorithm=bellman_ford" in out and "algorithm=dfs" not in out
    assert "50.00 ± 0.00 (50.00)" in out
    assert main(["runs", "older"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("older in sqlite:///") and "algorithm=dfs" in out
    for short in ("bfs", "algorithm=bfs", "baseline/algorithm=bfs"):
        assert main(["runs", "--config", short]) == 0
        assert "grid (the newest sweep) / baseline/algorithm=bfs: runs" in capsys.readouterr().out
    assert main(["runs", "older", "--config", "dfs", "--status", "pending"]) == 0
    out = capsys.readouterr().out
    assert "older / baseline/algorithm=dfs: runs (pending)" in out and out.count("pending") == 3
    assert main(["runs", "--status", "pending"]) == 0    # no --config: every configuration's
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "grid (the newest sweep): runs (pending)"
    rows = [line for line in out.splitlines() if "pending" in line][1:]
    assert len(rows) == 2 and all("baseline/algorithm=bellman_ford" in r for r in rows), out
    assert main(["runs", "--status", "failed"]) == 0
    assert "no such runs" in capsys.readouterr().out
    assert main(["runs", "--config", "baseline"]) == 2   # both labels have it
    err = capsys.readouterr().err
    assert ("error: 'baseline' names 2 configurations of sweep 'grid' (baseline/algorithm=bfs, "
            "baseline/algorithm=bellman_ford); give one of its labels") in err
    assert len(err.strip().splitlines()) == 1
    assert main(["runs", "--config", "dfs"]) == 2        # dfs is in the older sweep only
    err = capsys.readouterr().err
    assert ("sweep 'grid' has no configuration 'dfs'; it has: baseline/algorithm=bfs, "
            "baseline/algorithm=bellman_ford (give a configuration's label") in err
    assert main(["runs", "nope"]) == 2
    assert "no sweep named 'nope' in sqlite:///" in (err := capsys.readouterr().err)
    assert "known: older, grid" in err
