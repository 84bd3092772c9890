"""A researcher's first hour: a wrong address is one ``error:`` line within the connect timeout,
and nothing is registered (a Ray head, a Ray dashboard, an MLflow server that are not there);
every command refuses a wrong argument with an ``error:`` line and exit code 2, never a
traceback; a command the CLI prints for copying is one line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from db.local_postgres import free_port
from gapsweep.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "sweeps" / "quickstart.yaml")


def _gapsweep(*args: str, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gapsweep", *args], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "GAPSWEEP_RUN_DIR": str(tmp_path / "runs"), **env})
    return proc, time.monotonic() - start


def _one_error_line(proc: subprocess.CompletedProcess, starts: str) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(starts), proc.stderr[-3000:]
    return lines[0]


def test_run_with_no_ray_head_there_says_so_and_registers_nothing(tmp_path):
    port = free_port()                          # nothing listens there
    proc, seconds = _gapsweep("run", QUICKSTART, "--address", f"127.0.0.1:{port}", "--no-mlflow",
                              tmp_path=tmp_path)
    line = _one_error_line(proc, f"error: no Ray cluster at --address 127.0.0.1:{port}")
    assert "gapsweep stack up" in line and "leave --address out" in line
    assert seconds < 60
    assert not (tmp_path / "runs" / "gapsweep.db").exists()      # no sweep registered


def test_a_ray_client_address_is_probed_too_and_the_wait_is_stated(tmp_path):
    port = free_port()
    proc, _ = _gapsweep("run", QUICKSTART, "--address", f"ray://127.0.0.1:{port}", "--no-mlflow",
                        tmp_path=tmp_path, GAPSWEEP_CONNECT_TIMEOUT="1")
    line = _one_error_line(proc, f"error: no Ray cluster at --address ray://127.0.0.1:{port}")
    assert "waiting up to 1 s, $GAPSWEEP_CONNECT_TIMEOUT" in line


def test_run_with_no_mlflow_server_there_says_so_and_registers_nothing(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    proc, _ = _gapsweep("run", QUICKSTART, "--mlflow", uri, tmp_path=tmp_path)
    assert "--no-mlflow" in _one_error_line(proc, f"error: no MLflow tracking server at {uri}")
    assert not (tmp_path / "runs" / "gapsweep.db").exists()


@pytest.mark.parametrize("command", [
    ["submit", QUICKSTART, "--address", "ADDRESS"],
    ["status", "--job", "raysubmit_x", "--address", "ADDRESS"],
    ["logs", "raysubmit_x", "--address", "ADDRESS"],
])
def test_job_commands_with_no_dashboard_there_say_so(tmp_path, command):
    address = f"http://127.0.0.1:{free_port()}"
    proc, seconds = _gapsweep(*[address if part == "ADDRESS" else part for part in command],
                              tmp_path=tmp_path)
    assert "http://HEAD:8265" in _one_error_line(proc, f"error: no Ray dashboard at --address "
                                                       f"{address}")
    assert seconds < 60


def test_analyse_with_no_mlflow_server_there_says_so_before_computing(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    proc, _ = _gapsweep("analyse", "faithfulness", "--sweep", "quickstart", "--mlflow", uri,
                        tmp_path=tmp_path)
    _one_error_line(proc, f"error: no MLflow tracking server at {uri}")


def test_a_bad_connect_timeout_and_the_debug_switch(tmp_path):
    proc, _ = _gapsweep("logs", "x", "--address", "127.0.0.1:1", tmp_path=tmp_path,
                        GAPSWEEP_CONNECT_TIMEOUT="soon")
    _one_error_line(proc, "error: GAPSWEEP_CONNECT_TIMEOUT = 'soon' is not allowed; give a "
                          "positive number of seconds")
    proc, _ = _gapsweep("logs", "x", "--address", "127.0.0.1:1", tmp_path=tmp_path,
                        GAPSWEEP_DEBUG="1")
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "error: no Ray dashboard" in \
        proc.stderr


def _subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every leaf command as its words, e.g. ('db', 'upgrade'), with its parser."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield prefix, parser
        return
    for name, sub in actions[0].choices.items():
        yield from _subcommands(sub, prefix + (name,))


LEAVES = list(_subcommands(build_parser()))


def test_the_walk_sees_every_command():
    names = {" ".join(words) for words, _ in LEAVES}
    assert {"run", "submit", "report", "db upgrade", "stack up", "analyse landscape",
            "analyse wide-test",
            "snapshot export", "data build", "train", "compile", "track sync",
            "stack restart"} <= names
    assert len(LEAVES) == 23          # a new command joins the walk by itself; say so here


@pytest.mark.parametrize("words", [words for words, _ in LEAVES], ids=" ".join)
def test_every_command_refuses_a_wrong_argument_in_one_line(words, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*words, "--no-such-option", "1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    assert any(what in errors[0] for what in ("unrecognized arguments: --no-such-option",
                                              "required", "invalid choice: '1'")), err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["run", QUICKSTART, "--gpus", "1.5"], "1.5 is not allowed; give 0 (CPU only)"),
    (["plan", QUICKSTART, "--steps", "0"], "0 is not allowed; it must be an integer in [1, 10,000,000]"),
    (["train", "--seeds", "3-1"], "a range A-B needs A <= B"),
    (["compile", "bfs", "--sizes", "1"], "graph sizes must be integers in [2, 1,024]"),
    (["runs", "--status", "lost"], "invalid choice: 'lost'"),
    (["data", "build", "-a", "bfz"], "unknown value 'bfz'"),
    (["report", "--format", "pdf"], "invalid choice: 'pdf'"),
    (["analyse", "landscape", "--sweep", "s", "--grid", "zero"], "'zero' is not an integer"),
    (["stack", "up", "--cpus", "-2"], "-2 is not allowed; it must be a positive integer"),
])
def test_wrong_values_name_the_value_and_what_is_allowed(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err and "error:" in err, err


def test_printed_commands_are_never_wrapped(capsys, tmp_path):
    from gapsweep.progress import print_outcome
    from orchestrator.schedule import SweepOutcome
    from orchestrator.tracking import runs_page_url, ui_command

    uri = f"sqlite:///{tmp_path}/{'a-very-long-directory-name/' * 12}mlflow.db"   # > 300 chars
    print_outcome(SweepOutcome(1, "demo", recorded=0), [], uri, "7")
    lines = capsys.readouterr().out.splitlines()
    assert f"browse in MLflow: {ui_command(uri)}" in lines
    assert f"then open: {runs_page_url(uri, '7')}" in lines

    server = f"http://{'mlflow-' * 20}.example:5000"
    print_outcome(SweepOutcome(1, "demo", recorded=0), [], server, "7")
    lines = capsys.readouterr().out.splitlines()
    assert f"browse in MLflow: {runs_page_url(server, '7')}" in lines
    assert runs_page_url(server, "7") == (
        f"{server}/#/experiments/7/runs?workflowType=machine_learning"
        "&orderByKey=tags.%60mlflow.runName%60&orderByAsc=true")


def test_slow_rates_and_long_etas_read_as_numbers(monkeypatch):
    """A rate below one seed-step a second is not printed as 0/s (the first minutes of a CPU run),
    and an ETA past a day keeps its days."""
    import io

    from gapsweep import progress
    from gapsweep.progress import LogLines, duration_text, rate_text

    assert [rate_text(r) for r in (0.004, 0.53, 3.44, 56.2, 1234.0)] == [
        "0.00", "0.53", "3.4", "56", "1,234"]
    assert duration_text(59) == "00:00:59" and duration_text(3 * 86_400 + 3_723) == "3d 01:02:03"

    stream = io.StringIO()
    view = LogLines(stream)
    view.first = (0.0, 4)                                    # 4 seed-steps seen at t = 0 ...
    monkeypatch.setattr(progress.time, "perf_counter", lambda: 40.0)   # ... 24 at t = 40 s
    view.seed_steps(24, 200)
    assert "24/200 seed-steps (0.50/s, ETA 00:05:52)" in stream.getvalue(), stream.getvalue()


def test_the_run_summary_says_what_mlflow_missed(capsys):
    from gapsweep.progress import print_outcome
    from orchestrator.schedule import SweepOutcome

    outcome = SweepOutcome(1, "demo", recorded=4, tracking_error="MlflowException: [Errno 111]",
                           untracked=3)
    print_outcome(outcome, [], None)
    lines = capsys.readouterr().out.splitlines()
    assert ("MLflow failed during the run (MlflowException: [Errno 111]): 3 seed(s) are in the "
            "database but not in MLflow; once MLflow answers, 'gapsweep track sync demo' (or the "
            "same command again) logs them") in lines
