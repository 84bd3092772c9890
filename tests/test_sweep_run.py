"""Sweeps end to end on a real local Ray: database rows, MLflow runs, resume, and faults."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from db.store import ResultsStore
from gapsweep.main import main
from orchestrator.events import ProgressEvents
from orchestrator.plan import make_plan
from orchestrator.schedule import SweepRunner
from orchestrator.spec import parse_spec
from workers import synthetic

TINY = """\
name: tiny
experiment: e2e-test
base:
  hidden_size: 4
  train_steps: 20
  eval_every: 10
  learning_rate: 0.003
  train_lengths: [4, 7]
  pool_size: 64
grid:
  algorithm: [bfs, bellman_ford]
seeds: 0-3
resources: {gpus: 0}
analyses: [faithfulness, landscape, wide_test]
wide_test: {graphs: 40}
"""


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # test trainers, by value
    yield
    ray.shutdown()


@pytest.fixture
def stores(tmp_path):
    return {"db": f"sqlite:///{tmp_path / 'results.db'}",
            "mlflow": f"sqlite:///{tmp_path / 'mlflow.db'}"}


def _leaves(tree):
    for value in tree.values():
        yield from (_leaves(value) if isinstance(value, dict) else [value])


def count(url, sql):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql)).scalar_one()
    engine.dispose()
    return value


def test_sweep_end_to_end_then_rerun_does_nothing(local_ray, stores, tmp_path, cache_dir, capsys):
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(TINY)
    args = ["run", str(sweep), "--db", stores["db"], "--mlflow", stores["mlflow"],
            "--cache-dir", str(cache_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "8 seed(s) recorded" in out and "algorithm=bfs" in out and "mlflow ui" in out

    db = stores["db"]
    assert count(db, "SELECT COUNT(*) FROM runs WHERE status IN ('done', 'diverged')") == 8
    assert count(db, "SELECT COUNT(*) FROM runs WHERE attempts = 1") == 8
    assert count(db, "SELECT COUNT(*) FROM snapshots WHERE kind = 'best'") == 8
    assert count(db, "SELECT COUNT(*) FROM metrics WHERE name = 'val_score'") == 8 * 2  # steps 0, 10
    assert count(db, "SELECT COUNT(*) FROM metrics WHERE name LIKE 'hint_acc/%'") > 0
    assert count(db, "SELECT status FROM sweeps") == "finished"
    assert count(db, "SELECT COUNT(*) FROM runs WHERE device = 'cpu' AND worker_host IS NOT NULL "
                     "AND wall_seconds > 0 AND test_score BETWEEN 0 AND 1") == 8
    # every task ran the numerical canary: passed, exact on XLA:CPU, its cost recorded
    assert count(db, "SELECT COUNT(*) FROM runs WHERE canary = 'passed' AND canary_deviation < 1e-5 "
                     "AND canary_seconds > 0 AND canary_seconds < wall_seconds") == 8
    with ResultsStore(db) as store:                      # a snapshot is a loadable parameter tree
        params = store.load_snapshot(1)
    leaves = [a for a in _leaves(params)]
    assert leaves and all(a.dtype == np.float32 for a in leaves)
    assert any(a.shape == (4, 4) for a in leaves)          # hidden 4 → 4 × 4 kernels

    client = MlflowClient(stores["mlflow"])
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("gapsweep.role") == "configuration"]
    children = [r for r in runs if r.data.tags.get("gapsweep.role") == "seed"]
    assert sorted(r.info.run_name for r in parents) == ["algorithm=bellman_ford", "algorithm=bfs"]
    assert len(children) == 8
    parent_ids = {r.info.run_id for r in parents}
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == parent_ids
    child = children[0]
    assert [m.step for m in client.get_metric_history(child.info.run_id, "val_score")] == [0, 10]
    assert "test_score" in child.data.metrics
    assert child.data.tags["gapsweep.canary"] == "passed"
    assert float(child.data.tags["gapsweep.canary_seconds"]) > 0
    assert [a.path for a in client.list_artifacts(child.info.run_id)] == ["best_params.npz"]
    assert all(r.data.metrics.get("n_done", 0) + r.data.metrics.get("n_diverged", 0) == 4
               for r in parents)

    # the sweep file's analyses ran once the seeds were recorded
    from db.engine import run_dir

    assert "analyses: faithfulness, landscape, wide_test" in out
    assert count(db, "SELECT COUNT(DISTINCT run_id) FROM metrics WHERE name = 'wide_test/score'"
                 ) == count(db, "SELECT COUNT(*) FROM runs WHERE status = 'done'")
    assert count(db, "SELECT COUNT(*) FROM metrics WHERE name = 'wide_test/graphs' "
                     "AND value = 40") == count(db, "SELECT COUNT(*) FROM runs WHERE status = 'done'")
    assert count(db, "SELECT COUNT(DISTINCT run_id) FROM metrics "
                     "WHERE name = 'attention_faithfulness'") == count(
        db, "SELECT COUNT(*) FROM runs WHERE status = 'done'")
    assert count(db, "SELECT COUNT(DISTINCT run_id) FROM metrics "
                     "WHERE name = 'landscape/learned/centre_loss'") == 2     # a seed per config
    figures = run_dir() / "analyses" / "tiny"
    assert (figures / "faithfulness-algorithm_bfs.png").exists()
    assert (figures / "landscape-algorithm_bellman_ford-seed0-initial-to-learned.npz").exists()
    analysed = {p.data.tags["gapsweep.label"]: client.list_artifacts(p.info.run_id, "analyses")
                for p in parents}
    assert "analyses/faithfulness-algorithm_bfs.png" in [a.path for a in analysed["algorithm=bfs"]]

    before = count(db, "SELECT COUNT(*) FROM metrics")
    assert main(args) == 0                               # the same sweep again: nothing to do
    out = capsys.readouterr().out
    assert "0 seed(s) recorded" in out and "8 already done" in out
    assert count(db, "SELECT COUNT(*) FROM metrics") == before
    assert count(db, "SELECT COUNT(*) FROM runs") == 8
    assert len(client.search_runs([experiment.experiment_id], max_results=100)) == 10


SLOW = """\
name: fault
base: {hidden_size: 4, train_steps: 400, eval_every: 100, train_lengths: [4], pool_size: 64,
       algorithm: bfs}
seeds: 0-3
population: 2
resources: {gpus: 0}
max_attempts: 3
"""


def test_killed_worker_is_retried_and_every_seed_recorded_once(local_ray, stores, cache_dir):
    plan = make_plan(parse_spec(SLOW, "fault.yaml"))
    store = ResultsStore(stores["db"])
    runner = SweepRunner(plan, store, None, cache_dir=str(cache_dir))
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(result=runner.run()))
    thread.start()
    deadline = time.monotonic() + 240
    killed = None
    while killed is None and time.monotonic() < deadline and thread.is_alive():
        pids = dict(runner.active_pids)
        if pids:
            killed = pids[min(pids)]
            time.sleep(1.0)                              # let it get into training
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    thread.join(600)
    assert killed is not None, "no worker reported its pid"
    result = outcome["result"]
    assert result.retries >= 1 and result.failed == 0
    assert count(stores["db"], "SELECT COUNT(*) FROM runs WHERE status IN ('done', 'diverged')") == 4
    assert count(stores["db"], "SELECT COUNT(*) FROM snapshots") == 4
    assert count(stores["db"], "SELECT COUNT(*) FROM metrics WHERE name = 'val_score'") == 4 * 4
    assert count(stores["db"], "SELECT MAX(attempts) FROM runs") == 2
    store.close()


def oom_unless_single(config, seeds, *, population=None, **kwargs):
    """Fails as XLA does on a full device unless vmapping one seed at a time."""
    if population is None or population > 1:
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8.00GiB")
    return synthetic.run_synthetic_task(config, seeds, **kwargs)


def broken(config, seeds, **kwargs):
    raise ValueError("a bug in the training code")


QUICK = """\
name: {name}
base: {{hidden_size: 4, train_steps: 100, eval_every: 50, algorithm: bfs}}
seeds: 0-3
max_attempts: 3
"""


def test_out_of_memory_halves_the_population(local_ray, stores):
    plan = make_plan(parse_spec(QUICK.format(name="oom"), "oom.yaml"))
    with ResultsStore(stores["db"]) as store:
        outcome = SweepRunner(plan, store, None, trainer=oom_unless_single).run()
    # 4 seeds → population 2 → 1: two retries, then success
    assert (outcome.recorded, outcome.failed, outcome.retries) == (4, 0, 2)
    assert count(stores["db"], "SELECT MAX(attempts) FROM runs") == 3


def test_training_errors_fail_fast_and_retry_failed_reruns(local_ray, stores):
    plan = make_plan(parse_spec(QUICK.format(name="bug"), "bug.yaml"))
    with ResultsStore(stores["db"]) as store:
        outcome = SweepRunner(plan, store, None, trainer=broken).run()
        assert (outcome.recorded, outcome.failed, outcome.retries) == (0, 4, 0)
        assert store.sweeps()[0].status == "failed"
        assert "a bug in the training code" in count(stores["db"], "SELECT MIN(error) FROM runs")
        again = SweepRunner(plan, store, None, trainer=synthetic.run_synthetic_task).run()
        assert again.recorded == 0                       # failed seeds wait for --retry-failed
        fixed = SweepRunner(plan, store, None, trainer=synthetic.run_synthetic_task,
                            retry_failed=True).run()
        assert fixed.recorded == 4 and store.sweeps()[0].status == "finished"
    assert count(stores["db"], "SELECT COUNT(*) FROM runs WHERE error IS NOT NULL") == 0
    np.testing.assert_equal(count(stores["db"], "SELECT MAX(attempts) FROM runs"), 2)


def mismatching_lane(config, seeds, **kwargs):
    """The real trainer and canary, with a miscompile injected: the vmapped step's last lane
    comes out 1% off (as XLA:CPU's YNNPACK fusion made lanes 2+ of DFS's step)."""
    import workers.train
    from workers.canary import compare_lanes
    from workers.training_task import run_task

    def miscompiled(program, shape, together, alone, seconds, labels=None):
        together = {**together, "loss": together["loss"] * np.r_[np.ones(len(seeds) - 1), 1.01]}
        return compare_lanes(program, shape, together, alone, seconds, labels)

    workers.train.compare_lanes = miscompiled
    return run_task(config, seeds, **kwargs)


def test_a_failed_numerical_canary_fails_the_task_at_once_and_records_nothing(local_ray, stores,
                                                                               cache_dir):
    spec = parse_spec("name: canary\n"
                      "base: {hidden_size: 4, train_steps: 4, eval_every: 2, algorithm: bfs,\n"
                      "       train_lengths: [4], pool_size: 64}\n"
                      "seeds: 0-3\n", "canary.yaml")
    with ResultsStore(stores["db"]) as store:
        outcome = SweepRunner(make_plan(spec), store, None, cache_dir=str(cache_dir),
                              trainer=mismatching_lane).run()
        assert (outcome.recorded, outcome.failed, outcome.retries) == (0, 4, 0)
        assert store.sweeps()[0].status == "failed"
    db = stores["db"]
    assert count(db, "SELECT COUNT(*) FROM runs WHERE status = 'failed' AND attempts = 1 "
                     "AND test_score IS NULL AND canary IS NULL") == 4
    error = count(db, "SELECT MIN(error) FROM runs")
    assert "NumericalCanaryError: numerical canary failed: the vmapped training step" in error
    assert "seed 3 (lane 3) loss" in error and "backend cpu" in error
    assert count(db, "SELECT COUNT(*) FROM metrics") == 0
    assert count(db, "SELECT COUNT(*) FROM snapshots") == 0


def sleepy(config, seeds, **kwargs):
    """Seeds 0 and 1 finish at once; 2 and 3 take long enough to be interrupted."""
    time.sleep(0.2 if 0 in seeds else 60)
    return synthetic.run_synthetic_task(config, seeds, **kwargs)


def test_ctrl_c_keeps_finished_populations_and_leaves_the_rest_pending(local_ray, stores,
                                                                       monkeypatch):
    plan = make_plan(parse_spec(QUICK.format(name="interrupt") + "population: 2\n", "i.yaml"))
    with ResultsStore(stores["db"]) as store:
        runner = SweepRunner(plan, store, None, trainer=sleepy)
        original = runner._record
        pressed = threading.Event()
        real_wait = ray.wait

        def record_then_interrupt(*args):                # Ctrl-C right after the first population
            result = original(*args)
            pressed.set()
            return result

        def wait(*args, **kwargs):                       # ... arrives while the driver waits
            if pressed.is_set():
                raise KeyboardInterrupt
            return real_wait(*args, **kwargs)

        runner._record = record_then_interrupt
        monkeypatch.setattr(ray, "wait", wait)
        outcome = runner.run()
        assert outcome.interrupted and outcome.recorded == 2
        assert store.sweeps()[0].status == "interrupted"
        assert [(p.seed, p.status) for p in store.pending(outcome.sweep_id)] == [
            (2, "pending"), (3, "pending")]
        monkeypatch.undo()                               # the same sweep again: the rest
        resumed = SweepRunner(plan, store, None, trainer=synthetic.run_synthetic_task).run()
        assert (resumed.recorded, resumed.skipped) == (2, 2)


def test_more_cpus_per_task_than_the_cluster_has_is_refused_not_left_waiting(local_ray, stores):
    """Ray keeps a task that asks for more CPUs than the cluster has waiting for ever (infeasible):
    the runner refuses it first, naming the key, the value and what the cluster has."""
    from orchestrator.cluster import SchedulingError

    text = QUICK.format(name="greedy") + "resources: {gpus: 0, cpus: 64}\n"
    plan = make_plan(parse_spec(text, "greedy.yaml"))
    assert plan.spec.resources.cpus == 64
    with ResultsStore(stores["db"]) as store:
        with pytest.raises(SchedulingError) as err:
            SweepRunner(plan, store, None, trainer=synthetic.run_synthetic_task).run()
        assert str(err.value) == (
            "each training task asks for 64 CPU(s) (resources.cpus of the sweep) but the Ray "
            "cluster has 2; lower resources.cpus to at most 2, or run on a larger cluster")
        assert count(stores["db"], "SELECT COUNT(*) FROM runs WHERE status != 'pending'") == 0


class _KillAfterFirstPopulation(ProgressEvents):
    """Kills the MLflow server once the first population is recorded."""

    def __init__(self, server):
        self.server, self.messages = server, []

    def update(self, label, finished, failed):
        if self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()

    def message(self, text):
        self.messages.append(text)


def _mlflow_server(store_uri: str, artifacts: Path, log: Path):
    from test_mlflow_ui import free_port, wait_until_up

    port = free_port()
    with log.open("ab") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri,
             "--default-artifact-root", str(artifacts), "--host", "127.0.0.1", "--port",
             str(port), "--workers", "1"], stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/health", server, log)
    return server, url


def test_a_tracking_server_that_dies_mid_run_loses_no_result_and_the_next_run_logs_the_rest(
        local_ray, stores, tmp_path, monkeypatch):
    from orchestrator.tracking import SweepTracker

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")     # fail fast here
    plan = make_plan(parse_spec(QUICK.format(name="dies") + "population: 1\n", "d.yaml"))
    store_uri = f"sqlite:///{tmp_path / 'server.db'}"
    server, url = _mlflow_server(store_uri, tmp_path / "artifacts", tmp_path / "server.log")
    try:
        events = _KillAfterFirstPopulation(server)
        with ResultsStore(stores["db"]) as store:
            tracker = SweepTracker(url, "dies", "dies")
            outcome = SweepRunner(plan, store, tracker, trainer=synthetic.run_synthetic_task,
                                  events=events).run()
            assert outcome.recorded == 4 and outcome.failed == 0      # every seed in the database
            assert outcome.tracking_error is not None and outcome.untracked >= 1
            assert store.sweeps()[0].status == "finished"
            failed = [m for m in events.messages if m.startswith(f"MLflow at {url} failed (")]
            assert len(failed) == 1 and ("the next run of this sweep (or 'gapsweep track sync') "
                                         "logs to MLflow") in failed[0]
            experiment = MlflowClient(store_uri).get_experiment_by_name("dies").experiment_id
            logged = MlflowClient(store_uri).search_runs([experiment], "tags.`gapsweep.role` = 'seed'")
            assert len(logged) == 4 - outcome.untracked
            # the database holds what MLflow lacks: the outbox, one row per seed it missed
            assert len(store.outbox(outcome.sweep_id)) == outcome.untracked

            server, url = _mlflow_server(store_uri, tmp_path / "artifacts", tmp_path / "server.log")
            again = SweepRunner(plan, store, SweepTracker(url, "dies", "dies"),
                                trainer=synthetic.run_synthetic_task).run()
            assert (again.recorded, again.skipped, again.caught_up) == (0, 4, outcome.untracked)
            assert again.tracking_error is None and store.outbox(outcome.sweep_id) == []
            scores = {r.seed: r.test_score for r in store.runs_of(outcome.sweep_id, "dies")}
        seeds = MlflowClient(store_uri).search_runs([experiment], "tags.`gapsweep.role` = 'seed'")
        assert {int(r.data.tags["gapsweep.seed"]): r.data.metrics["test_score"] for r in seeds} \
            == pytest.approx(scores)
        assert all(r.info.status == "FINISHED" for r in seeds)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
