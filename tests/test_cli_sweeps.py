"""`gapsweep plan`, and sweeps that must not start: invalid files, passwords in submitted URLs."""

from pathlib import Path

from gapsweep.main import main

QUICKSTART = Path(__file__).resolve().parents[1] / "sweeps" / "quickstart.yaml"


def test_plan_prints_configurations_tasks_and_seed_steps(capsys):
    assert main(["plan", str(QUICKSTART)]) == 0
    out = capsys.readouterr().out
    assert "algorithm=bfs" in out and "algorithm=bellman_ford" in out
    assert "2,400 seed-steps in all" in out and "2 task(s)" in out
    assert main(["plan", str(QUICKSTART), "--steps", "50", "--max-seeds", "2",
                 "--population", "1"]) == 0
    out = capsys.readouterr().out
    assert "quickstart-steps50" in out and "200 seed-steps in all" in out and "4 task(s)" in out


def test_invalid_sweeps_start_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GAPSWEEP_RUN_DIR", str(tmp_path / "runs"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(QUICKSTART.read_text().replace("seeds: 0-3", "seeds: 3-0"))
    assert main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:" in err and "seeds" in err
    assert not (tmp_path / "runs").exists()              # no database, no MLflow store, no Ray
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_submit_refuses_a_password_in_the_database_url(capsys):
    assert main(["submit", str(QUICKSTART), "--address", "http://127.0.0.1:1",
                 "--db", "postgresql://me:s3cret@db/gapsweep"]) == 2
    err = capsys.readouterr().err
    assert "PGPASSWORD" in err and "s3cret" not in err
