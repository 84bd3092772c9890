"""The MLflow UI shows a tracked sweep: a real server, browsed with headless Chromium.

The sweep is logged to the default local layout (``<run dir>/mlflow.db`` + ``mlartifacts``), the
server is started with exactly the command ``ui_command`` gives users (on a free port), one more
seed is logged through the server's REST API, and Chromium renders three pages:

- the page ``gapsweep run`` prints (``runs_page_url``): the runs list in the model-training view
  (``workflowType=machine_learning``; MLflow 3 otherwise opens its GenAI view, an empty Traces
  overview, which the test checks too), sorted by run name
  (``orderByKey=tags.`mlflow.runName`&orderByAsc=true``). In its default order (creation time)
  the MLflow 3 UI nests child runs under collapsed parents, and only "bfs" and "dfs" are in the
  DOM; sorted by anything else it lists every run flat, each seed under its configuration;
- a seed's run page (parent link, status, metrics, tags);
- a seed's artifacts tab (``best_params.npz`` served from the run directory).

Chromium is required: without it the test fails (the README's test command installs it:
tests/install_system_packages.sh).
"""

import html
import os
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.tracking import (SweepTracker, default_tracking_uri, runs_page_url,
                                   ui_command)
from test_tracking import CONFIGS, seed_records

CHROMIUM = "/usr/bin/chromium"
SERVER_START_TIMEOUT_S = 90
EXPERIMENT = "ui-sweep"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_command(command: str, port: int) -> tuple[list[str], dict[str, str]]:
    """``ui_command``'s shell line → (argv run by this Python, environment), on ``port``."""
    words = shlex.split(command)
    env = dict(os.environ)
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    assert words[0] == "mlflow", command
    words[words.index("--port") + 1] = str(port)
    return [sys.executable, "-m", "mlflow", *words[1:]], env


def wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    """Wait until ``url`` answers HTTP 200; fail with the server's log if it never does."""
    start = time.monotonic()
    while time.monotonic() - start < SERVER_START_TIMEOUT_S:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"mlflow server not answering {url} after {SERVER_START_TIMEOUT_S} s:\n"
                f"{log.read_text()}")


def chromium(url: str, profile: Path, *options: str) -> str:
    """Headless Chromium on ``url`` with ``options``; returns its stdout."""
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=20000",
         *options, url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"chromium failed on {url}:\n{done.stderr[-3000:]}"
    return done.stdout


def visible_text(dom: str) -> list[str]:
    """The text nodes of a dumped DOM, scripts and styles left out."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return [html.unescape(t).strip() for t in re.split(r"<[^>]*>", dom) if t.strip()]


@pytest.fixture
def sweep_store(tmp_path, monkeypatch):
    """A sweep of two configurations × three seeds in the default layout under tmp_path/runs."""
    monkeypatch.setenv("GAPSWEEP_RUN_DIR", str(tmp_path / "runs"))
    uri = default_tracking_uri()
    tracker = SweepTracker(uri, EXPERIMENT, EXPERIMENT)
    for label, (config, config_hash) in CONFIGS.items():
        tracker.configuration(label, config, config_hash)
        records = seed_records(label, range(3))
        tracker.log_seeds(label, records)
        tracker.update_summary(label, [r.test_score for _, r in records if r.test_score],
                               {"done": 2, "diverged": 1})
    tracker.close()
    return uri


@pytest.fixture
def mlflow_ui(sweep_store, tmp_path):
    """The users' ``mlflow ui`` command on a free loopback port; stopped (process group) after."""
    port = free_port()
    argv, env = server_command(ui_command(sweep_store), port)
    log = tmp_path / "mlflow-server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/health", server, log)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_the_ui_shows_configuration_and_seed_runs(mlflow_ui, sweep_store, tmp_path, capfd):
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium "
                    "(apt-get install chromium fonts-liberation) to run the MLflow UI test")

    # A tracking server is a tracking URI like any other: log one more seed through it.
    remote = SweepTracker(mlflow_ui, EXPERIMENT, EXPERIMENT)
    remote.configuration("bfs", *CONFIGS["bfs"])
    assert remote.log_seeds("bfs", seed_records("bfs", range(4))) == 1
    remote.close()
    assert "View run" not in capfd.readouterr().out

    client = MlflowClient(sweep_store)
    experiment_id = remote.experiment_id
    seed_run = client.search_runs([experiment_id], "attributes.run_name = 'bfs/seed=1'")[0]
    expected = ["bfs", "dfs", *(f"bfs/seed={s}" for s in range(4)),
                *(f"dfs/seed={s}" for s in range(3))]

    # the page `gapsweep run` prints: every run, seeds sorted under their configuration
    runs_url = runs_page_url(mlflow_ui, experiment_id)
    runs_page = visible_text(chromium(runs_url, tmp_path / "chrome-runs", "--dump-dom"))
    missing = [name for name in expected if name not in runs_page]
    assert not missing, f"runs {missing} not on {runs_url}; its text: {runs_page}"
    assert [t for t in runs_page if t in expected] == sorted(expected)

    # why the page names its view: MLflow 3 opens an experiment in its GenAI view, an empty
    # Traces overview without the runs (the view is the browser's choice, not the experiment's)
    genai_page = visible_text(chromium(f"{mlflow_ui}/#/experiments/{experiment_id}",
                                       tmp_path / "chrome-experiment", "--dump-dom"))
    assert "Traces" in genai_page and "bfs/seed=1" not in genai_page, genai_page

    run_url = f"{mlflow_ui}/#/experiments/{experiment_id}/runs/{seed_run.info.run_id}"
    run_page = visible_text(chromium(run_url, tmp_path / "chrome-run", "--dump-dom"))
    for text in ("bfs/seed=1", "Parent run", "bfs", "Finished", "val_score", "train_loss",
                 "test_score", "gapsweep.db_run_id", "seed"):
        assert text in run_page, f"{text!r} not on {run_url}; its text: {run_page}"

    artifacts_page = visible_text(chromium(f"{run_url}/artifacts", tmp_path / "chrome-artifacts",
                                           "--dump-dom"))
    assert "best_params.npz" in artifacts_page, artifacts_page

    screenshot = tmp_path / "mlflow.png"
    chromium(runs_url, tmp_path / "chrome-shot", f"--screenshot={screenshot}",
             "--window-size=1400,900", "--hide-scrollbars")
    png = screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    assert struct.unpack(">II", png[16:24]) == (1400, 900)
    assert len(png) > 20_000, f"{screenshot}: {len(png)} bytes, too small for a rendered page"
