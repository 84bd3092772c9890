"""`gapsweep plan`, and sweeps that must not start: invalid files, passwords in submitted URLs."""

from pathlib import Path

import pytest

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


BAD_SWEEPS = [      # (file text, the one error line after "error: FILE:")
    ("name: x\nseeds: 0-1000000000\n",
     "2: seeds: '0-1000000000' is 1,000,000,001 seeds; at most 1,000,000 are allowed"),
    ("name: x\nseeds: 2\nbase: {hidden_size: 1000000000}\n",
     "3: base.hidden_size: hidden_size = 1000000000 is not allowed; it must be an integer in "
     "[1, 4,096] (configuration 'x')"),
    ("name: x\nseeds: 2\nbase: {learning_rate: .nan}\n",
     "3: base.learning_rate: learning_rate = nan is not allowed; it must be a number in (0, 1] "
     "(configuration 'x')"),
    ("name: x\nseeds: 2\nresources: {cpus: 100000}\n",
     "3: resources.cpus: 100000.0 is not allowed; give a positive number of CPUs up to 1024"),
    ("name: x\nseeds: 2\nexperiment:\n  - &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"  - &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)),
     "3: experiment: the file expands to 1,234,567,906 YAML values (each alias counted as often "
     "as it is used); at most 100,000 are allowed (workers/rules.py: MAX_YAML_NODES); write the "
     "values out, or fewer of them"),
]


def test_bad_sweeps_are_one_error_line_and_create_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GAPSWEEP_RUN_DIR", str(tmp_path / "runs"))
    for index, (text, line) in enumerate(BAD_SWEEPS):
        bad = tmp_path / f"bad{index}.yaml"
        bad.write_text(text)
        for command in ("plan", "run"):
            assert main([command, str(bad)]) == 2
            captured = capsys.readouterr()
            assert captured.err.splitlines() == [f"error: {bad}:{line}"], captured.err
            assert captured.out == ""
    assert not (tmp_path / "runs").exists()              # no database, no MLflow store, no Ray


def test_plan_and_run_flags_have_the_settings_bounds(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GAPSWEEP_RUN_DIR", str(tmp_path / "runs"))
    for command, flag, value, allowed in (
            ("plan", "--steps", "10000001", "it must be an integer in [1, 10,000,000]"),
            ("run", "--steps", "0", "it must be an integer in [1, 10,000,000]"),
            ("plan", "--max-seeds", "1000000000000", "it must be an integer in [1, 1,000,000]"),
            ("run", "--population", "1000001", "it must be an integer in [1, 1,000,000]"),
            ("run", "--gpus", "1000", "give 0 (CPU only), a fraction in (0, 1] or a whole number of GPUs "
                                      "up to 64")):
        with pytest.raises(SystemExit) as exit_:
            main([command, str(QUICKSTART), flag, value])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {flag}: {value} is not allowed; {allowed}" in err, err
    assert not (tmp_path / "runs").exists()
