"""``gapsweep submit`` checks that the cluster runs gapsweep (the same version) before it submits
a sweep, says where the job's results go, and ``status``/``runs --job`` read them there. Two real
Ray heads in subprocesses: one started with a PATH without gapsweep (refused, nothing of the sweep
submitted), one with this installation on its PATH (a one-seed sweep runs as a job and its results
are read back through the job). Then the address defaults and the metadata → URL rules, fast."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from db.local_postgres import free_port
from gapsweep.main import main
from orchestrator import jobs, stack
from orchestrator.version import package_version

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "sweeps" / "quickstart.yaml")
VENV_BIN = str(Path(sys.executable).parent)
ONE_SEED = """\
name: jobcheck
experiment: submit-check
base:
  hidden_size: 4
  train_steps: 10
  eval_every: 5
  learning_rate: 0.003
  train_lengths: [4]
  length_generalize: false
  pool_size: 32
grid:
  algorithm: [bfs]
seeds: 0-0
resources: {gpus: 0}
"""


class Head:
    """A real ``ray start --head --block`` in its own session, with token auth, on loopback
    ports; ``path`` is the PATH its jobs get."""

    def __init__(self, root: Path, path: str, cache_dir: Path):
        self.root = root
        self.token = root / "token"
        self.token.write_text(secrets.token_hex(16))
        self.dashboard_port = free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.temp_dir = tempfile.mkdtemp(prefix="gs-ray-")       # short: Ray's socket paths
        env = {key: value for key, value in os.environ.items()
               if key not in ("RAY_ADDRESS", "GAPSWEEP_DB", "MLFLOW_TRACKING_URI")}
        env.update(PATH=path, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token),
                   PYTHONPATH=str(ROOT),                  # the head's gapsweep is this checkout
                   GAPSWEEP_CACHE_DIR=str(cache_dir), RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
        self.log = root / "ray-head.log"
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [str(Path(VENV_BIN) / "ray"), "start", "--head", "--block",
                 "--disable-usage-stats", f"--port={free_port()}", "--node-ip-address=127.0.0.1",
                 "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
                 f"--temp-dir={self.temp_dir}", "--num-cpus=2",
                 # ports with fixed defaults: another Ray on this machine may hold them
                 f"--dashboard-agent-listen-port={free_port()}",
                 f"--ray-client-server-port={free_port()}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)

    def wait(self) -> None:
        stack._wait("the Ray head", lambda: stack._http_ok(f"{self.address}/api/version",
                                                           token_path=self.token),
                    self.process.pid, self.log)

    def env(self, **extra: str) -> dict[str, str]:
        """What a shell that talks to this head has."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token), **extra}

    def client(self, monkeypatch):
        for key, value in self.env().items():
            monkeypatch.setenv(key, value)
        return jobs.job_client(self.address)

    def stop(self) -> None:
        stack._stop_ray(self.process.pid, self.temp_dir)     # this head only; never `ray stop`


@pytest.fixture(scope="module")
def heads(cache_dir):
    """Two heads, started together: 'bare' (no gapsweep on its PATH) and 'ready'."""
    root = Path(tempfile.mkdtemp(prefix="gapsweep-submit-check-"))
    bare_path = os.pathsep.join(part for part in os.environ.get("PATH", "/usr/bin:/bin").split(
        os.pathsep) if part and not (Path(part) / "gapsweep").exists())
    (root / "bare").mkdir()
    (root / "ready").mkdir()
    started = {}
    try:
        started["bare"] = Head(root / "bare", bare_path, cache_dir)
        started["ready"] = Head(root / "ready", f"{VENV_BIN}{os.pathsep}{bare_path}", cache_dir)
        for head in started.values():
            head.wait()
        yield started
    finally:
        for head in started.values():
            head.stop()
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def _gapsweep(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items()
             if key not in ("RAY_ADDRESS", "GAPSWEEP_DB", "MLFLOW_TRACKING_URI")}
    return subprocess.run([sys.executable, "-m", "gapsweep", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd,
                          env={**clean, "PYTHONPATH": str(ROOT), "COLUMNS": "80",
                               "GAPSWEEP_RUN_DIR": str(cwd / "local-runs"), **env})


def test_submit_refuses_a_head_without_gapsweep_and_submits_nothing(heads, tmp_path, monkeypatch):
    head = heads["bare"]
    sweep = tmp_path / "jobcheck.yaml"
    sweep.write_text(ONE_SEED)
    proc = _gapsweep("submit", str(sweep), "--address", head.address, "--run-dir",
                     str(tmp_path / "runs"), cwd=tmp_path, **head.env())
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    line = errors[0]
    assert line.startswith(f"error: the Ray cluster at --address {head.address} cannot run "
                           "gapsweep: the check job "), line
    assert "gapsweep: not found" in line, line                   # what the job printed
    assert "source .venv/bin/activate" in line and "PATH=$PWD/.venv/bin:$PATH ray start" in line
    assert "nothing was submitted" in line and "submitted jobcheck" not in proc.stdout
    found = head.client(monkeypatch).list_jobs()                  # only the check job ran there
    assert len(found) == 1 and found[0].metadata == {"gapsweep_check": "gapsweep version --json"}
    assert found[0].entrypoint.endswith("gapsweep version --json")
    assert not (tmp_path / "runs").exists()


def test_submit_checks_a_ready_head_and_status_runs_read_the_jobs_results(heads, tmp_path,
                                                                          monkeypatch):
    head = heads["ready"]
    sweep = tmp_path / "jobcheck.yaml"
    sweep.write_text(ONE_SEED)
    runs = tmp_path / "runs"
    proc = _gapsweep("submit", str(sweep), "--run-dir", str(runs), cwd=tmp_path,
                     **head.env(RAY_ADDRESS=head.address))        # --address from $RAY_ADDRESS
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    job_id = re.search(rf"^submitted jobcheck as job (\S+) to {re.escape(head.address)}$", out,
                       re.M).group(1)
    database = f"sqlite:///{runs / 'gapsweep.db'}"
    assert f"\nresults: {database} on {socket.gethostname()}\n" in out, out
    assert f"\nmlflow: sqlite:///{runs / 'mlflow.db'}\n" in out, out
    assert f"read its results: gapsweep runs --job {job_id} --address {head.address}" in out

    client = head.client(monkeypatch)
    info = client.get_job_info(job_id)
    assert info.metadata["gapsweep_db"] == database and info.metadata["gapsweep_sweep"] == "jobcheck"
    assert info.metadata["gapsweep_host"] == socket.gethostname()
    check = info.metadata["gapsweep_check_job"]                  # the check ran first, and passed
    assert client.get_job_info(check).status == "SUCCEEDED"
    report = json.loads(client.get_job_logs(check).strip().splitlines()[-1])
    assert report["gapsweep"] == package_version() and report["db"] == database

    deadline = time.monotonic() + 600
    while (status := str(client.get_job_status(job_id).value)) not in jobs.TERMINAL:
        assert time.monotonic() < deadline, client.get_job_logs(job_id)[-3000:]
        time.sleep(2)
    assert status == "SUCCEEDED", client.get_job_logs(job_id)[-3000:]

    proc = _gapsweep("status", "--job", job_id, "--address", head.address, cwd=tmp_path,
                     **head.env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"job {job_id}: SUCCEEDED" in proc.stdout and str(runs / "gapsweep.db") in proc.stdout
    row = next(line for line in proc.stdout.splitlines() if "jobcheck" in line)
    assert re.search(r"jobcheck[│ ]+submit-check[│ ]+finished[│ ]+1[│ ]+(1[│ ]+0|0[│ ]+1)"
                     r"[│ ]+0[│ ]+0[│ ]+0[│ ]", row), row

    proc = _gapsweep("runs", "--job", job_id, cwd=tmp_path,       # address from $RAY_ADDRESS
                     **head.env(RAY_ADDRESS=head.address))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "algorithm=bfs" in line)
    assert re.search(r"algorithm=bfs[│ ]+bfs[│ ]+(1[│ ]+0|0[│ ]+1)[│ ]+0[│ ]+0[│ ]+0[│ ]", row), row
    assert proc.stdout.splitlines()[0].startswith("jobcheck "), proc.stdout   # the sweep shown

    proc = _gapsweep("report", "--job", job_id, "--format", "json", "--no-figures", cwd=tmp_path,
                     **head.env(RAY_ADDRESS=head.address))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert [sweep["sweep"] for sweep in report["sweeps"]] == ["jobcheck"], report
    assert report["database"].endswith(str(runs / "gapsweep.db")), report["database"]


def test_a_check_that_does_not_finish_in_time_is_stopped_and_nothing_submitted(heads, tmp_path,
                                                                             monkeypatch):
    head = heads["ready"]
    client = head.client(monkeypatch)
    before = {job.submission_id for job in client.list_jobs()}
    proc = _gapsweep("submit", QUICKSTART, "--address", head.address, "--run-dir",
                     str(tmp_path / "runs"), "--check-timeout", "0.5", cwd=tmp_path, **head.env())
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    line = errors[0]
    assert re.fullmatch(rf"error: the check job (\S+) \('gapsweep version --json'\) on the Ray "
                        rf"cluster at --address {re.escape(head.address)} did not finish within "
                        r"0.5 s \(it is (PENDING|RUNNING); .*--check-timeout SECONDS; nothing was "
                        r"submitted", line), line
    new = [job for job in client.list_jobs() if job.submission_id not in before]
    assert len(new) == 1 and new[0].metadata == {"gapsweep_check": "gapsweep version --json"}
    deadline = time.monotonic() + 60
    while str(client.get_job_status(new[0].submission_id).value) not in jobs.TERMINAL:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert str(client.get_job_status(new[0].submission_id).value) in ("STOPPED", "FAILED")


@pytest.mark.parametrize("argv", [["status", "--job", "raysubmit_nope"],
                                  ["logs", "raysubmit_nope"], ["logs", "raysubmit_nope", "--follow"],
                                  ["runs", "--job", "raysubmit_nope"]])
def test_an_unknown_job_is_one_error_line(argv, heads, tmp_path):
    head = heads["ready"]
    proc = _gapsweep(*argv, "--address", head.address, cwd=tmp_path, **head.env())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: no job 'raysubmit_nope' on the Ray cluster at --address {head.address} ("), errors
    assert errors[0].endswith(f"its jobs: ray job list --address {head.address}"), errors


# --- fast: no Ray head ------------------------------------------------------------------------

def test_the_dashboard_address_defaults_to_ray_address_then_a_running_stack(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("GAPSWEEP_RUN_DIR", str(tmp_path / "runs"))
    assert jobs.dashboard_address("http://given:8265") == "http://given:8265"
    with pytest.raises(jobs.JobError) as error:
        jobs.dashboard_address(None)
    assert str(error.value) == (f"no Ray dashboard address: $RAY_ADDRESS is not set and no local "
                                f"stack runs in {(tmp_path / 'runs' / 'stack').resolve()}; give "
                                "--address http://HEAD:8265 (or export "
                                "RAY_ADDRESS=http://HEAD:8265)")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")             # a GCS address: not for jobs
    with pytest.raises(jobs.JobError, match=r"\$RAY_ADDRESS is '10.0.0.5:6379', not a dashboard"):
        jobs.dashboard_address(None)
    # a stack whose Ray head process lives (this process stands in for it)
    state = stack.StackState(str(tmp_path / "runs" / "stack"), 1, 2, 3, 48265, os.getpid(),
                             os.getpid(), str(tmp_path / "ray"), time.time())
    (tmp_path / "runs" / "stack").mkdir(parents=True)
    (tmp_path / "runs" / "stack" / "stack.json").write_text(json.dumps(state.__dict__))
    assert jobs.dashboard_address(None) == "http://127.0.0.1:48265"
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)           # its token goes with it
    state.token_path.write_text("stack-token\n")
    assert jobs._token("http://127.0.0.1:48265") == "stack-token"
    assert jobs._token("http://elsewhere:8265") is None
    monkeypatch.setenv("RAY_ADDRESS", "https://head.example:8265")
    assert jobs.dashboard_address(None) == "https://head.example:8265"


@pytest.mark.parametrize("argv", [["logs", "raysubmit_x"], ["status", "--job", "raysubmit_x"],
                                  ["runs", "--job", "raysubmit_x"], ["report", "--job", "raysubmit_x"],
                                  ["submit", QUICKSTART]])
def test_job_commands_without_an_address_say_how_to_give_one(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("GAPSWEEP_RUN_DIR", str(tmp_path / "runs"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no Ray dashboard address: $RAY_ADDRESS is not set") and \
        "give --address http://HEAD:8265" in err and len(err.strip().splitlines()) == 1, err


def test_the_jobs_metadata_says_where_its_results_are(tmp_path):
    here = socket.gethostname()
    database = tmp_path / "gapsweep.db"
    sqlite = {"gapsweep_sweep": "s", "gapsweep_db": f"sqlite:///{database}", "gapsweep_host": here}
    with pytest.raises(jobs.NoResultsYet, match=f"{database} does not exist"):
        jobs.results_location("raysubmit_1", sqlite)             # the job has not written yet
    database.touch()
    assert jobs.results_location("raysubmit_1", sqlite) == ("s", f"sqlite:///{database}")
    with pytest.raises(jobs.JobError) as error:                  # the head is another machine
        jobs.results_location("raysubmit_1", {**sqlite, "gapsweep_host": "gpu-head-7"})
    assert str(error.value) == (
        f"job raysubmit_1's results are in the SQLite file {database} on host gpu-head-7, not on "
        f"this machine ({here}); read them there (gapsweep runs s --db sqlite:///{database}), or "
        "submit with --db postgresql://USER@DBHOST/gapsweep, a database both machines reach")
    server = {"gapsweep_sweep": "s", "gapsweep_host": "gpu-head-7",
              "gapsweep_db": "postgresql+psycopg://me:***@db.example:5432/gapsweep"}
    assert jobs.results_location("raysubmit_2", server) == (   # masked password: use PGPASSWORD
        "s", "postgresql+psycopg://me@db.example:5432/gapsweep")
    with pytest.raises(jobs.NoResultsMetadata, match="give --db URL and the sweep's name"):
        jobs.results_location("raysubmit_3", {"gapsweep_check": "gapsweep version --json"})
    with pytest.raises(jobs.JobError, match="give --job or --db, not both"):
        jobs.results_location("raysubmit_1", sqlite, db="sqlite:///other.db")


def _shell(command: str, path: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": path, "PYTHONPATH": str(ROOT), **env})


def test_the_check_reads_what_the_head_printed(tmp_path):
    address = "http://HEAD:8265"
    missing = _shell(jobs.SweepJob(run_dir=str(tmp_path)).check_entrypoint(), "/usr/bin:/bin")
    assert missing.returncode == 127
    with pytest.raises(jobs.JobError) as error:
        jobs.read_check("raysubmit_c", address, "FAILED", missing.stdout + missing.stderr)
    assert "gapsweep: not found" in str(error.value) and "ray start --head" in str(error.value)

    ran = _shell(jobs.SweepJob(run_dir=str(tmp_path / "r")).check_entrypoint(),
                 f"{VENV_BIN}{os.pathsep}/usr/bin:/bin")
    assert ran.returncode == 0, ran.stderr
    check = jobs.read_check("raysubmit_c", address, "SUCCEEDED", ran.stdout)
    assert check.db == f"sqlite:///{(tmp_path / 'r' / 'gapsweep.db').resolve()}"
    assert check.host == socket.gethostname() and check.version == package_version()
    with pytest.raises(jobs.JobError) as error:                  # another version is refused
        jobs.read_check("raysubmit_c", address, "SUCCEEDED", ran.stdout, local_version="9.9.9")
    assert str(error.value) == (
        f"the Ray cluster at --address {address} ({socket.gethostname()}) runs gapsweep "
        f"{package_version()}, this machine 9.9.9; install gapsweep 9.9.9 on the cluster (or "
        f"submit from a {package_version()} installation); nothing was submitted")
    secret = _shell("gapsweep version --json", f"{VENV_BIN}{os.pathsep}/usr/bin:/bin",
                    GAPSWEEP_DB="postgresql://me:s3cret@db.example/gapsweep")
    assert json.loads(secret.stdout)["db"] == "postgresql+psycopg://me:***@db.example/gapsweep"
    older = "usage: gapsweep [-h]\ngapsweep: error: argument COMMAND: invalid choice: 'version'"
    with pytest.raises(jobs.JobError, match="runs an older gapsweep without 'gapsweep version'"):
        jobs.read_check("raysubmit_c", address, "FAILED", older)


def test_submit_refuses_results_places_the_job_could_not_be_found_again(capsys):
    assert main(["submit", QUICKSTART, "--address", "http://127.0.0.1:1",
                 "--db", "sqlite:///runs/results.db"]) == 2
    assert "--db sqlite:///runs/results.db is a relative path" in capsys.readouterr().err
    assert main(["submit", QUICKSTART, "--address", "http://127.0.0.1:1", "--run-dir", "runs"]) == 2
    assert "--run-dir runs is relative" in capsys.readouterr().err
