"""How long the MLflow UI's runs page takes to load at the largest sweep logged seed by seed.

``tracking: {per_seed_runs: auto}`` logs a child run per seed up to
``orchestrator.tracking.PER_SEED_RUNS_AUTO_MAX`` (4,096) seed-runs. This logs such a sweep (4
configurations × 1,024 seeds of ``workers/synthetic.py`` results, 200-point curves each, through
``SweepTracker`` into a local SQLite store, as ``gapsweep run`` does), then a small one (4 × 3)
beside it, serves the store with the command ``gapsweep`` prints (``tracking.ui_command``: one
worker, no job runner) and, for each experiment, measures:

- the runs search the page makes (``/ajax-api/2.0/mlflow/runs/search``, 100 runs, sorted by run
  name as ``runs_page_url`` asks), median of 5;
- headless Chromium opening ``runs_page_url`` until its DOM is dumped with the first runs listed
  (``/usr/bin/chromium``; wall time of the whole browser process, start-up included), median of 3.

    python benchmarks/mlflow_ui_load.py [--seeds 1024] [--configurations 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"


def cpu_model() -> str:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_sweep(uri: str, name: str, configurations: int, seeds: int) -> tuple[str, float]:
    """A sweep's runs as the driver logs them; (experiment id, seconds)."""
    from orchestrator.records import run_results
    from orchestrator.tracking import SweepTracker
    from workers.synthetic import run_synthetic_task

    config = {"algorithm": "bfs", "train_steps": 10000, "eval_every": 50}
    tracker = SweepTracker(uri, name, name)
    t0 = time.perf_counter()
    run_id = 0
    for c in range(configurations):
        label = f"learning_rate={1e-4 * (c + 1):.6g}"
        tracker.configuration(label, {**config, "learning_rate": 1e-4 * (c + 1)}, f"hash{c}")
        for start in range(0, seeds, 64):
            population = list(range(start, min(seeds, start + 64)))
            ids = {s: (run_id := run_id + 1) for s in population}
            records = run_results(run_synthetic_task(config, population), ids)
            tracker.log_seeds(label, records)
        tracker.update_summary(label, [0.5] * seeds, {"done": seeds})
    tracker.close()
    return tracker.experiment_id, time.perf_counter() - t0


def search_seconds(url: str, experiment_id: str) -> float:
    body = json.dumps({"experiment_ids": [experiment_id], "max_results": 100,
                       "order_by": ["tags.`mlflow.runName` ASC"],
                       "run_view_type": "ACTIVE_ONLY"}).encode()
    times = []
    for _ in range(5):
        request = urllib.request.Request(f"{url}/ajax-api/2.0/mlflow/runs/search", data=body,
                                         headers={"Content-Type": "application/json"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(request, timeout=120) as response:
            runs = json.load(response).get("runs", [])
        times.append(time.perf_counter() - t0)
        assert len(runs) == min(100, len(runs)) and runs, "the search returned no runs"
    return statistics.median(times)


def page_seconds(page: str, expect: str, profile: Path) -> float:
    times = []
    for attempt in range(3):
        t0 = time.perf_counter()
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}-{attempt}", "--virtual-time-budget=20000", "--dump-dom",
             page], capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - t0)
        assert done.returncode == 0 and expect in done.stdout, \
            f"{page}: {expect!r} not in the page ({done.stderr[-500:]})"
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configurations", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=1024, help="seeds per configuration")
    args = parser.parse_args()
    if not Path(CHROMIUM).is_file():
        sys.exit(f"{CHROMIUM} is missing (bash tests/install_system_packages.sh installs it)")
    from orchestrator.tracking import runs_page_url, ui_command

    print(f"# {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        large, seconds = log_sweep(uri, "large", args.configurations, args.seeds)
        n = args.configurations * args.seeds
        print(f"logged {n:,} seed runs (+{args.configurations} configuration runs) in "
              f"{seconds:.1f} s ({1000 * seconds / n:.1f} ms a seed)")
        small, _ = log_sweep(uri, "small", args.configurations, 3)
        words = shlex.split(ui_command(uri))
        env = dict(os.environ)
        while "=" in words[0]:
            key, value = words.pop(0).split("=", 1)
            env[key] = value
        port = free_port()
        words[words.index("--port") + 1] = str(port)
        server = subprocess.Popen([sys.executable, "-m", "mlflow", *words[1:]], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        sys.exit("the MLflow UI did not start")
                    time.sleep(0.3)
            for name, experiment, runs in (("small", small, args.configurations * 4),
                                           ("large", large, n + args.configurations)):
                search = search_seconds(url, experiment)
                page = page_seconds(runs_page_url(url, experiment), "learning_rate=0.0001",
                                    Path(tmp) / f"chrome-{name}")
                print(f"{name} experiment ({runs:,} runs): runs search {1000 * search:.0f} ms; "
                      f"runs page in headless Chromium {page:.1f} s")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
