"""Faults on a real multi-node cluster: a stack (PostgreSQL, MLflow server, a Ray head that runs no
task, three worker nodes of one CPU and one fake GPU each) runs simulated sweeps (``--simulate``:
each task sleeps, then records synthetic results) submitted as Ray jobs, while a worker node's
raylet or the job's driver is killed. Every seed must end up recorded exactly once, in the
database and in MLflow."""

import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from gapsweep.main import main
from orchestrator import jobs, stack

NODES = 3
SEEDS = 12
OUTAGE_S = 25        # longer than MLflow's retries of a call to a server whose database is gone
LONG_SEEDS = 24      # the outage tests: tasks keep finishing for ~35 s on two nodes after the first
SIMULATE_S = 3
LABELS = ("algorithm=bfs", "algorithm=bellman_ford")
# worker processes of a node that run no task of a sweep
IDLE_TITLES = ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent")


@pytest.fixture(scope="module")
def cluster():
    """A stack with a head of 0 CPUs and ``NODES`` worker nodes; the test process talks to it
    through the stack's environment."""
    # as root, PostgreSQL runs as the postgres user, who must reach the directory
    path = Path(tempfile.mkdtemp(prefix="gapsweep-cluster-", dir="/tmp"))
    path.chmod(0o755)
    directory = path / "stack"
    try:
        with pytest.MonkeyPatch.context() as patch:
            state, started = stack.up(directory, cpus=0, nodes=NODES, node_cpus=1, node_gpus=1)
            assert started and len(state.node_pids) == NODES
            for key, value in state.environment().items():
                patch.setenv(key, value)
            yield state
    finally:
        stack.down(directory)
        shutil.rmtree(path, ignore_errors=True)


def _sweep_file(state, name: str, gpus: int = 0, seeds: int = SEEDS) -> Path:
    path = Path(state.root).parent / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
experiment: cluster-faults
base: {{hidden_size: 4, train_steps: 20, eval_every: 10}}
grid: {{algorithm: [bfs, bellman_ford]}}
seeds: {seeds}
population: 2
max_attempts: 3
resources: {{gpus: {gpus}, cpus: 1}}
""")
    return path


def _submit(state, sweep: Path, capsys) -> str:
    capsys.readouterr()
    assert main(["submit", str(sweep), "--address", state.ray_address, "--simulate",
                 str(SIMULATE_S), "--run-dir", str(Path(state.root).parent / "runs")]) == 0
    return re.search(r"as job (\S+)", capsys.readouterr().out).group(1)


def _recorded(state, name: str) -> int:
    from db.store import ResultsStore

    with ResultsStore(state.db_url) as store:
        try:
            sweep = store.sweep_id(name)
        except Exception:  # noqa: BLE001 - not registered yet
            return 0
        return sum(c.runs.done for c in store.counts(sweep))


def _wait_until(what: str, check, timeout: float, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(poll)
    raise AssertionError(f"no {what} within {timeout:g} s")


def _wait_for_job(state, job_id: str, timeout: float = 150.0) -> str:
    status = _wait_until(f"end of job {job_id}", lambda: (
        s if (s := str(jobs.job_info(job_id, state.ray_address).status.value)) in jobs.TERMINAL
        else None), timeout, poll=1.0)
    return status


def _runs(state, name: str) -> list:
    from db.store import ResultsStore

    with ResultsStore(state.db_url) as store:
        sweep = store.sweep_id(name)
        return [(label, run) for label in LABELS for run in store.runs_of(sweep, label)]


def _assert_every_seed_once(state, name: str, seeds: int = SEEDS) -> list:
    """Each (configuration, seed) has one run, done, recorded by a synthetic task; MLflow has one
    seed run per (configuration, seed). Returns the runs."""
    from db.store import ResultsStore

    runs = _runs(state, name)
    assert sorted((label, r.seed) for label, r in runs) == sorted(
        (label, seed) for label in LABELS for seed in range(seeds))
    assert {r.status for _, r in runs} == {"done"}, [(label, r.seed, r.status) for label, r in runs]
    with ResultsStore(state.db_url) as store:
        assert {store.run(r.id).device for _, r in runs} == {"synthetic"}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(state.mlflow_url)
    experiment = client.get_experiment_by_name(name)
    found = client.search_runs([experiment.experiment_id], "tags.`gapsweep.role` = 'seed'",
                               max_results=1000)
    logged = sorted((r.data.tags["gapsweep.label"], int(r.data.tags["gapsweep.seed"]))
                    for r in found)
    assert logged == sorted((label, seed) for label in LABELS for seed in range(seeds)), logged
    return runs


def _worker_titles(raylet_pid: int) -> dict[int, str]:
    """pid → process title (``ray::…``) of each worker process of the node of ``raylet_pid``."""
    import psutil

    titles = {}
    try:
        children = psutil.Process(raylet_pid).children()
    except psutil.Error:
        return {}
    for child in children:
        try:
            title = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if title.startswith("ray::"):
            titles[child.pid] = title
    return titles


def _busy(title: str) -> bool:
    return not title.startswith(IDLE_TITLES)


def test_the_stack_lists_its_nodes_and_restarts_its_stores(cluster, capsys):
    assert main(["stack", "status", "--dir", cluster.root]) == 0
    out = capsys.readouterr().out
    for index in range(NODES):
        assert re.search(rf"ray-node-{index}\s+{cluster.node_pids[index]}\s+healthy", out), out
        assert stack.node_raylet_pid(cluster, index) is not None
    gpus = sum(n["resources_total"].get("GPU", 0) for n in stack.alive_nodes(cluster))
    assert gpus == NODES            # fake GPUs: what check_gpus counts

    assert stack.stop_part("mlflow", cluster.root)
    assert not stack.status(cluster.root)["mlflow"]["healthy"]
    assert main(["stack", "restart", "mlflow", "--dir", cluster.root]) == 0
    assert "restarted mlflow" in capsys.readouterr().out
    health = stack.status(cluster.root)
    assert health["mlflow"]["healthy"] and health["mlflow"]["pid"] != cluster.mlflow_pid
    assert stack.load_state(Path(cluster.root)).mlflow_port == cluster.mlflow_port

    assert stack.stop_part("postgres", cluster.root)
    assert not stack.status(cluster.root)["postgres"]["running"]
    stack.restart("postgres", cluster.root)
    assert stack.status(cluster.root)["postgres"]["healthy"]
    with pytest.raises(stack.StackError, match="no stack part 'ray'"):
        stack.restart("ray", cluster.root)


@pytest.mark.timeout(240)
def test_a_worker_node_dies_mid_sweep(cluster, capsys):
    name = "faults-node"
    job_id = _submit(cluster, _sweep_file(cluster, name, gpus=1), capsys)   # on the fake GPUs
    _wait_until("recorded run", lambda: _recorded(cluster, name) > 0, 120)

    raylets = [stack.node_raylet_pid(cluster, index) for index in range(NODES)]
    seen: dict[int, dict[int, str]] = {}

    def fresh_task():
        """A node whose worker has just started a sweep task (idle, or not there, at the last
        look: seconds of the task are left), and that does not hold the progress actor."""
        for index, raylet in enumerate(raylets):
            titles, before = _worker_titles(raylet), seen.get(index)
            seen[index] = titles
            if before is None or any("ProgressReporter" in t for t in titles.values()):
                continue
            if any(_busy(t) and not _busy(before.get(pid, "ray::IDLE"))
                   for pid, t in titles.items()):
                return index, raylet
        return None

    index, raylet = _wait_until("task starting on a worker node", fresh_task, 60, poll=0.05)
    os.kill(raylet, signal.SIGKILL)
    assert _wait_for_job(cluster, job_id) == "SUCCEEDED", jobs.job_logs(job_id, cluster.ray_address)
    logs = jobs.job_logs(job_id, cluster.ray_address)
    assert "simulated: no training" in logs
    assert re.search(r"worker lost .*; retry 2/3", logs), logs[-3000:]
    runs = _assert_every_seed_once(cluster, name)
    assert max(r.attempts for _, r in runs) >= 2, [(label, r.seed, r.attempts) for label, r in runs]
    assert not stack.status(cluster.root)[f"ray-node-{index}"]["running"]


def _driver(sweep: Path):
    """The job's ``gapsweep run`` process: the one whose command line has the sweep file."""
    import psutil

    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if sweep.name in cmdline and "run" in cmdline and "--simulate" in cmdline \
                and not os.path.basename(cmdline[0]).endswith("sh"):
            return proc
    return None


@pytest.mark.timeout(240)
def test_the_driver_dies_and_the_sweep_is_resubmitted(cluster, capsys):
    name = "faults-driver"
    sweep = _sweep_file(cluster, name)
    first = _submit(cluster, sweep, capsys)
    _wait_until("recorded run", lambda: _recorded(cluster, name) > 0, 120)
    driver = _wait_until("driver process", lambda: _driver(sweep), 10)
    driver.send_signal(signal.SIGKILL)
    assert _wait_for_job(cluster, first) == "FAILED"
    left = [r for _, r in _runs(cluster, name) if r.status == "running"]
    assert left and _recorded(cluster, name) < len(LABELS) * SEEDS

    second = _submit(cluster, sweep, capsys)
    assert _wait_for_job(cluster, second) == "SUCCEEDED", jobs.job_logs(second, cluster.ray_address)
    logs = jobs.job_logs(second, cluster.ray_address)
    assert f"{len(left)} run(s) left running by an earlier driver are pending again" in logs, logs
    runs = _assert_every_seed_once(cluster, name)
    # a seed run by both drivers would have two attempts; only those left running were rerun
    rerun = {r.id for r in left}
    assert {r.id for _, r in runs if r.attempts >= 2} == rerun



def _outbox(state, name: str) -> int:
    from db.store import ResultsStore

    with ResultsStore(state.db_url) as store:
        return len(store.outbox(store.sweep_id(name)))


def _track_sync(state, name: str, capsys) -> str:
    capsys.readouterr()
    assert main(["track", "sync", name, "--db", state.db_url, "--mlflow", state.mlflow_url]) == 0
    return capsys.readouterr().out


@pytest.mark.timeout(300)
def test_the_database_is_unreachable_for_a_while(cluster, capsys):
    """PostgreSQL stops mid-sweep and starts again 25 s later: the driver waits with a message,
    loses no finished population (the tasks that finished meanwhile are recorded once it
    answers), and says how long it waited. The MLflow server keeps its runs in the same
    PostgreSQL: what it missed meanwhile is in the outbox, and ``track sync`` logs it."""
    name = "faults-db"
    job_id = _submit(cluster, _sweep_file(cluster, name, seeds=LONG_SEEDS), capsys)
    _wait_until("recorded run", lambda: _recorded(cluster, name) > 0, 120)
    assert stack.stop_part("postgres", cluster.root)
    # Tasks finish meanwhile and wait in Ray's object store. The MLflow server keeps its runs in
    # this PostgreSQL too: the driver's MLflow call in flight fails after its retries (~14 s),
    # tracking stops for the run, and the next database call finds the database gone.
    time.sleep(OUTAGE_S)
    stack.restart("postgres", cluster.root)
    assert _wait_for_job(cluster, job_id) == "SUCCEEDED", jobs.job_logs(job_id, cluster.ray_address)
    logs = jobs.job_logs(job_id, cluster.ray_address)
    assert re.search(r"results database \S+ unreachable .*retrying for up to 1800 s", logs), logs
    waited = re.search(r"results database \S+ reachable again after (\d+) s", logs)
    assert waited and int(waited.group(1)) >= 3, logs[-3000:]
    assert re.search(r"waited \d+ s in all for the results database \(1 outage\(s\)\)", logs), logs
    runs = _runs(cluster, name)
    assert sorted((label, r.seed) for label, r in runs) == sorted(
        (label, seed) for label in LABELS for seed in range(LONG_SEEDS))
    assert {r.status for _, r in runs} == {"done"} and {r.attempts for _, r in runs} == {1}
    _track_sync(cluster, name, capsys)                 # whatever MLflow missed meanwhile
    _assert_every_seed_once(cluster, name, LONG_SEEDS)
    assert _outbox(cluster, name) == 0


@pytest.mark.timeout(300)
def test_mlflow_is_down_and_tracking_catches_up_later(cluster, capsys):
    """The MLflow server stops mid-sweep: training and the database go on, the job succeeds,
    and the seeds MLflow missed wait in the results database's outbox; once the server is back,
    ``gapsweep track sync`` logs them, and again logs nothing twice."""
    name = "faults-mlflow"
    job_id = _submit(cluster, _sweep_file(cluster, name, seeds=LONG_SEEDS), capsys)
    _wait_until("recorded run", lambda: _recorded(cluster, name) > 0, 120)
    assert stack.stop_part("mlflow", cluster.root)
    try:
        assert _wait_for_job(cluster, job_id) == "SUCCEEDED", \
            jobs.job_logs(job_id, cluster.ray_address)
        logs = jobs.job_logs(job_id, cluster.ray_address)
        assert re.search(r"MLflow at \S+ failed .*'gapsweep track sync'", logs), logs[-3000:]
        assert _recorded(cluster, name) == len(LABELS) * LONG_SEEDS   # all in the database
        missed = _outbox(cluster, name)
        assert missed > 0
    finally:
        stack.restart("mlflow", cluster.root)
    out = _track_sync(cluster, name, capsys)
    assert re.search(rf"{name}: (\d+) seed\(s\) MLflow lacked logged", out), out
    assert f"{missed} run(s) were waiting in the outbox" in out
    _assert_every_seed_once(cluster, name, LONG_SEEDS)
    assert _outbox(cluster, name) == 0
    assert "MLflow is up to date" in _track_sync(cluster, name, capsys)
    _assert_every_seed_once(cluster, name, LONG_SEEDS)
