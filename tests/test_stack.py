"""``gapsweep stack``: the cluster path end to end without Docker. The stack's PostgreSQL, MLflow
server and Ray head start as processes; the quickstart sweep goes to the head as a Ray job; its
results land in the stack's PostgreSQL and its runs in the stack's MLflow server; ``down`` leaves no
process behind."""

import os
import re
import tempfile
import time
from pathlib import Path

import pytest

from orchestrator import stack
from gapsweep.main import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stack_dir():
    # as root, PostgreSQL runs as the postgres user, who must reach the directory (pytest's own
    # temporary directories are closed to other users)
    path = Path(tempfile.mkdtemp(prefix="gapsweep-stack-", dir="/tmp"))
    path.chmod(0o755)
    yield path / "stack"
    stack.down(path / "stack")
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def test_local_runs_ignore_a_cluster_address_left_on_this_machine():
    """`ray start` leaves its address in Ray's temporary directory, and a plain ray.init() joins
    it; a local sweep must start its own instance even when that cluster is gone. (First in this
    file: the end-to-end test then runs in a process that has used a local Ray, as in the suite.)"""
    import ray
    from ray._common.utils import get_ray_address_file

    from orchestrator.cluster import start_local_ray

    path = Path(get_ray_address_file(None))
    before = path.read_text() if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("127.0.0.1:9")                     # nothing listens there
    try:
        start_local_ray()
        assert ray.is_initialized() and ray.cluster_resources().get("CPU", 0) >= 1
    finally:
        ray.shutdown()
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(before)


@pytest.mark.timeout(1500)
def test_stack_runs_the_quickstart_sweep_as_a_job_and_stops_cleanly(stack_dir, cache_dir,
                                                                    monkeypatch, capsys):
    monkeypatch.setenv("GAPSWEEP_CACHE_DIR", str(cache_dir))     # the head's jobs inherit it
    assert main(["stack", "up", "--dir", str(stack_dir), "--cpus", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("healthy") == 3, out
    state = stack.load_state(stack_dir)
    assert main(["stack", "up", "--dir", str(stack_dir)]) == 0          # idempotent
    assert "already running" in capsys.readouterr().out
    assert main(["stack", "status", "--dir", str(stack_dir)]) == 0
    capsys.readouterr()
    assert main(["stack", "env", "--dir", str(stack_dir)]) == 0
    exports = dict(re.findall(r"^export (\w+)=(\S+)$", capsys.readouterr().out, re.M))
    assert exports["RAY_AUTH_MODE"] == "token" and exports["GAPSWEEP_DB"] == state.db_url
    assert exports["MLFLOW_TRACKING_URI"] == state.mlflow_url
    for key, value in exports.items():
        monkeypatch.setenv(key, value.strip("'"))
    for port in (state.postgres_port, state.mlflow_port, state.dashboard_port):
        assert _listens_on_loopback_only(port), port

    # submit the quickstart sweep to the head as a job, as a researcher would
    assert main(["submit", str(ROOT / "sweeps" / "quickstart.yaml"), "--address",
                 state.ray_address, "--run-dir", str(stack_dir.parent / "runs")]) == 0
    job_id = re.search(r"as job (\S+)", capsys.readouterr().out).group(1)
    from ray.job_submission import JobStatus

    from orchestrator.jobs import job_client as _job_client

    client = _job_client(state.ray_address)      # sends the token from the stack's environment
    deadline = time.monotonic() + 1200
    while client.get_job_status(job_id) not in (JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                JobStatus.STOPPED):
        assert time.monotonic() < deadline, client.get_job_logs(job_id)[-3000:]
        time.sleep(5)
    logs = client.get_job_logs(job_id)
    assert client.get_job_status(job_id) == JobStatus.SUCCEEDED, logs[-3000:]
    assert f"results in postgresql+psycopg://gapsweep@127.0.0.1:{state.postgres_port}" in logs

    # the results are in the stack's PostgreSQL ...
    from db.store import ResultsStore

    with ResultsStore(state.db_url) as store:
        sweep = store.sweep_id("quickstart")
        runs = [run for label in ("algorithm=bfs", "algorithm=bellman_ford")
                for run in store.runs_of(sweep, label)]
        assert len(runs) == 8 and {r.status for r in runs} == {"done"}
        assert all(0.0 <= r.test_score <= 1.0 for r in runs)
    # ... and the runs in its MLflow server: a parent per configuration, a child per seed
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(state.mlflow_url)
    experiment = mlflow.get_experiment_by_name("quickstart")
    found = mlflow.search_runs([experiment.experiment_id], max_results=100)
    roles = sorted(r.data.tags.get("gapsweep.role") for r in found)
    assert roles.count("seed") == 8 and roles.count("configuration") == 2, roles

    pids = [state.mlflow_pid, state.ray_pid,
            stack._postgres(stack_dir, state.postgres_port).pid]
    assert main(["stack", "down", "--dir", str(stack_dir)]) == 0
    assert "stopped Ray head, MLflow server, PostgreSQL" in capsys.readouterr().out
    assert not any(stack._alive(pid) for pid in pids)
    assert not stack.leftover_processes(str(stack_dir)) and not stack.leftover_processes(
        state.ray_temp_dir)
    assert main(["stack", "status", "--dir", str(stack_dir)]) == 2
    assert "no stack in" in capsys.readouterr().err
    assert (stack_dir / "postgres" / "data" / "PG_VERSION").exists()     # the data stays


def _listens_on_loopback_only(port: int) -> bool:
    import psutil

    addresses = {c.laddr.ip for c in psutil.net_connections("inet")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
    return bool(addresses) and addresses <= {"127.0.0.1"}


def test_stack_commands_explain_a_missing_stack(tmp_path, capsys):
    assert main(["stack", "status", "--dir", str(tmp_path / "none")]) == 2
    assert "no stack in" in capsys.readouterr().err
    assert main(["stack", "env", "--dir", str(tmp_path / "none")]) == 2
    assert main(["stack", "down", "--dir", str(tmp_path / "none")]) == 0
    assert "nothing was running" in capsys.readouterr().out
    assert not os.path.exists(tmp_path / "none" / "stack.json")



def test_submit_waits_while_a_new_head_has_no_job_agent_yet():
    from orchestrator.jobs import submit_job

    class Head:                                     # what a just-started head answers, twice
        def __init__(self, error="No available agent to submit job, please try again later."):
            self.calls, self.error = 0, error

        def submit_job(self, **job):
            self.calls += 1
            if self.calls <= 2:
                raise RuntimeError(f"Request failed with status code 500: {self.error}.")
            return f"raysubmit_{job['entrypoint']}"

    head = Head()
    assert submit_job(head, entrypoint="x") == "raysubmit_x" and head.calls == 3
    other = Head(error="Internal Server Error")     # anything else is raised at once
    with pytest.raises(RuntimeError, match="Internal Server Error"):
        submit_job(other, entrypoint="x")
    assert other.calls == 1
    with pytest.raises(RuntimeError, match="No available agent"):   # and not waited for forever
        submit_job(Head(), wait=0.5, entrypoint="x")


@pytest.mark.timeout(300)
def test_stack_up_with_worker_nodes_lists_and_stops_them(stack_dir, capsys):
    assert main(["stack", "up", "--dir", str(stack_dir), "--cpus", "1", "--nodes", "1",
                 "--node-cpus", "1", "--node-gpus", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("healthy") == 4 and "ray-node-0" in out, out
    state = stack.load_state(stack_dir)
    assert len(state.node_pids) == 1 and (stack_dir / "logs" / "ray-node-0.log").exists()
    [node] = [n for n in stack.alive_nodes(state) if "gapsweep-node-0" in n["resources_total"]]
    assert node["resources_total"]["GPU"] == 1 and node["resources_total"]["CPU"] == 1
    raylet = stack.node_raylet_pid(state, 0)
    assert raylet is not None and stack._alive(raylet)
    with pytest.raises(stack.StackError, match="there is no node 1"):
        stack.node_raylet_pid(state, 1)
    assert main(["stack", "down", "--dir", str(stack_dir)]) == 0
    assert "stopped 1 Ray node(s), Ray head, MLflow server, PostgreSQL" in capsys.readouterr().out
    assert not stack._alive(state.node_pids[0]) and not stack._alive(raylet)
    assert not stack.leftover_processes(state.ray_temp_dir)


def test_a_stack_state_file_without_nodes_still_loads(tmp_path):
    """stack.json of a stack started before worker nodes existed has no node_pids."""
    import json

    (tmp_path / "stack.json").write_text(json.dumps({
        "root": str(tmp_path), "postgres_port": 1, "mlflow_port": 2, "ray_port": 3,
        "dashboard_port": 4, "mlflow_pid": 0, "ray_pid": 0, "ray_temp_dir": "/nonexistent",
        "started_at": 0.0}))
    assert stack.load_state(tmp_path).node_pids == []
