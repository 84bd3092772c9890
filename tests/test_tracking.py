"""orchestrator.tracking against a real MLflow SQLite store in tmp_path (no mocks)."""

import dataclasses
import datetime as dt
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from db import snapshots
from db.store import ConfigurationEntry, Curve, ResultsStore, RunResult
from orchestrator.tracking import (BEST_PARAMS_ARTIFACT, CONFIG_ARTIFACT, MAX_PARAM_VALUE_LENGTH,
                                   ROLE_CONFIGURATION, TAG_BEST_STEP_0,
                                   SweepTracker, TrackingError, default_tracking_uri, ui_command)

CONFIGS = {
    "bfs": ({"algorithm": "bfs", "hidden": 128, "modifications": ["gate", "no_hint"],
             "optimizer": {"name": "adam", "lr": 0.001}}, "a" * 64),
    "dfs": ({"algorithm": "dfs", "hidden": 64, "modifications": [],
             "optimizer": {"name": "adam", "lr": 0.0005}}, "b" * 64),
}


def make_result(run_id: int, seed: int, status: str = "done", points: int = 20) -> RunResult:
    """A seed's result with val/train curves, a hint-accuracy curve and a "best" snapshot.

    A diverged seed has no test score and ends its train-loss curve with NaN.
    """
    rng = np.random.default_rng(seed)
    steps = np.arange(points) * 50
    started = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    train_loss = rng.random(points)
    if status == "diverged":
        train_loss[-1] = np.nan
    return RunResult(
        run_id, status, test_score=None if status == "diverged" else float(rng.random()),
        best_val_score=float(rng.random()), best_step=int(steps[points // 2]),
        final_step=int(steps[-1]), diverged_step=int(steps[-1]) if status == "diverged" else None,
        wall_seconds=12.5, worker_host="host", device="cpu", started_at=started,
        finished_at=started + dt.timedelta(seconds=12.5),
        curves=[Curve("val", "val_score", steps, rng.random(points)),
                Curve("train", "train_loss", steps, train_loss),
                Curve("test", "hint_acc/pi_h", np.arange(5), rng.random(5))],
        snapshots={"best": {"params": {"w": rng.standard_normal((4, 3)).astype(np.float32),
                                       "b": np.arange(3, dtype=np.int32)}}})


def seed_records(label: str, seeds, **kwargs) -> list[tuple[int, RunResult]]:
    offset = 1000 if label == "dfs" else 0
    return [(seed, make_result(offset + seed, seed, "diverged" if seed == 2 else "done", **kwargs))
            for seed in seeds]


def summarise(tracker: SweepTracker, label: str, records) -> None:
    tracker.update_summary(label, [r.test_score for _, r in records if r.status == "done"],
                           {"done": sum(r.status == "done" for _, r in records),
                            "diverged": sum(r.status == "diverged" for _, r in records),
                            "failed": 1})


def children_of(client: MlflowClient, experiment_id: str, parent_run_id: str):
    return client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'")


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_sweep_layout_and_resume(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)     # anything MLflow put in the current directory would show here
    tracker = SweepTracker(store, "exp-table1", "table1", {"gapsweep.spec": "sweeps/table1.yaml"})
    parent_ids = {label: tracker.configuration(label, config, config_hash)
                  for label, (config, config_hash) in CONFIGS.items()}
    records = {label: seed_records(label, range(4), points=600 if label == "bfs" else 20)
               for label in CONFIGS}
    for label in CONFIGS:
        assert tracker.log_seeds(label, records[label]) == 4
        summarise(tracker, label, records[label])
    tracker.close()

    client = MlflowClient(store)
    experiment = client.get_experiment(tracker.experiment_id)
    assert experiment.name == "exp-table1"
    assert experiment.tags["gapsweep.spec"] == "sweeps/table1.yaml"
    assert experiment.artifact_location == (tmp_path / "mlartifacts" / "exp-table1").as_uri()
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags["gapsweep.role"] == "configuration"]
    children = [r for r in runs if r.data.tags["gapsweep.role"] == "seed"]
    assert len(runs) == 10 and len(parents) == 2 and len(children) == 8

    for parent in parents:
        label = parent.info.run_name
        config, config_hash = CONFIGS[label]
        assert parent.info.run_id == parent_ids[label]
        assert parent.info.status == "FINISHED"
        assert {k: parent.data.tags[k] for k in ("gapsweep.sweep", "gapsweep.config_hash",
                                                 "gapsweep.label", "gapsweep.spec")} == {
            "gapsweep.sweep": "table1", "gapsweep.config_hash": config_hash,
            "gapsweep.label": label, "gapsweep.spec": "sweeps/table1.yaml"}
        assert parent.data.params == {
            "algorithm": config["algorithm"], "hidden": str(config["hidden"]),
            "modifications": str(config["modifications"]).replace("'", '"'),
            "optimizer.name": "adam", "optimizer.lr": str(config["optimizer"]["lr"])}
        config_path = client.download_artifacts(parent.info.run_id, CONFIG_ARTIFACT,
                                                str(tmp_path / f"config-{label}"))
        assert json.loads(Path(config_path).read_text()) == config

        scores = [r.test_score for _, r in records[label] if r.status == "done"]
        metrics = parent.data.metrics
        assert metrics["test_mean"] == pytest.approx(statistics.mean(scores))
        assert metrics["test_std"] == pytest.approx(statistics.stdev(scores))
        assert metrics["test_max"] == pytest.approx(max(scores))
        assert (metrics["n_done"], metrics["n_diverged"], metrics["n_failed"]) == (3, 1, 1)
        assert [m.step for m in client.get_metric_history(parent.info.run_id, "n_done")] == [5]

        mine = children_of(client, experiment.experiment_id, parent.info.run_id)
        assert sorted(r.info.run_name for r in mine) == [f"{label}/seed={s}" for s in range(4)]

    for child in children:
        tags = child.data.tags
        label, seed = tags["gapsweep.label"], int(tags["gapsweep.seed"])
        result = dict(records[label])[seed]
        assert tags["mlflow.parentRunId"] == parent_ids[label]
        assert tags["gapsweep.sweep"] == "table1"
        assert tags["gapsweep.config_hash"] == CONFIGS[label][1]
        assert tags["gapsweep.db_run_id"] == str(result.run_id)
        assert tags["gapsweep.status"] == result.status
        assert child.info.status == ("FAILED" if result.status == "diverged" else "FINISHED")
        assert child.info.start_time == int(result.started_at.timestamp() * 1000)
        assert child.info.end_time == int(result.finished_at.timestamp() * 1000)
        assert child.data.params == {"seed": str(seed)}
        for curve in result.curves:
            history = sorted(client.get_metric_history(child.info.run_id, curve.name),
                             key=lambda m: m.step)
            assert [m.step for m in history] == list(curve.steps)
            np.testing.assert_allclose([m.value for m in history], curve.values)
        for name in ("best_val_score", "best_step", "final_step", "wall_seconds"):
            assert child.data.metrics[name] == pytest.approx(getattr(result, name))
        if result.status == "done":
            assert child.data.metrics["test_score"] == pytest.approx(result.test_score)
            assert "diverged_step" not in child.data.metrics
        else:
            assert "test_score" not in child.data.metrics
            assert child.data.metrics["diverged_step"] == result.diverged_step

        assert [a.path for a in client.list_artifacts(child.info.run_id)] == [BEST_PARAMS_ARTIFACT]
        path = client.download_artifacts(child.info.run_id, BEST_PARAMS_ARTIFACT,
                                         str(tmp_path / f"download-{child.info.run_id}"))
        assert Path(path).read_bytes() == snapshots.encode(result.snapshots["best"])
        with np.load(path, allow_pickle=False) as archive:
            np.testing.assert_array_equal(archive["params/w"],
                                          result.snapshots["best"]["params"]["w"])
    assert child.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    assert not (tmp_path / "mlruns").exists()

    # Resume: a new tracker finds the experiment and parents, skips logged seeds, adds new ones.
    again = SweepTracker(store, "exp-table1", "table1")
    assert again.experiment_id == tracker.experiment_id
    for label, (config, config_hash) in CONFIGS.items():
        assert again.configuration(label, config, config_hash) == parent_ids[label]
        assert again.log_seeds(label, records[label]) == 0
    assert client.get_run(parent_ids["bfs"]).info.status == "RUNNING"
    assert again.log_seeds("bfs", seed_records("bfs", [4]) + records["bfs"][:1]) == 1
    again.close()
    assert len(client.search_runs([experiment.experiment_id])) == 11
    assert client.get_run(parent_ids["bfs"]).info.status == "FINISHED"


def test_seeds_before_their_configuration_are_refused(store):
    tracker = SweepTracker(store, "sweep", "sweep")
    with pytest.raises(TrackingError, match=r"configuration\('bfs'"):
        tracker.log_seeds("bfs", seed_records("bfs", [0]))
    with pytest.raises(TrackingError, match="unknown"):
        tracker.update_summary("bfs", [0.5], {"done": 1})
    tracker.configuration("bfs", *CONFIGS["bfs"])
    with pytest.raises(TrackingError, match="one label, one configuration"):
        tracker.configuration("bfs", CONFIGS["bfs"][0], "c" * 64)
    tracker.close()



def test_find_run_is_the_one_parent_run_search(store):
    tracker = SweepTracker(store, "sweep", "sweep", log_processes=1)
    assert tracker.find_run(ROLE_CONFIGURATION, label="bfs") is None
    parent = tracker.configuration("bfs", *CONFIGS["bfs"])
    tracker.configuration("dfs", *CONFIGS["dfs"])
    assert tracker.find_run(ROLE_CONFIGURATION, label="bfs").info.run_id == parent
    assert tracker.find_run(ROLE_CONFIGURATION, config_hash=CONFIGS["bfs"][1]).info.run_id == parent
    assert tracker.find_run(ROLE_CONFIGURATION, label="bfs", config_hash="b" * 64) is None
    assert tracker.find_run("report") is None
    with pytest.raises(TrackingError, match="quote"):
        tracker.find_run(ROLE_CONFIGURATION, label="it's")
    tracker.close()
    other = SweepTracker(store, "sweep", "other-sweep", log_processes=1)
    assert other.find_run(ROLE_CONFIGURATION, label="bfs") is None     # another sweep's parent
    other.close()


def test_best_step_0_is_tagged_and_counted(store, tmp_path):
    """Seeds whose best step is 0 are tagged; the parent counts the done ones, from the results
    database's ``finished_scores`` as the driver passes them on."""
    config, config_hash = CONFIGS["bfs"]
    with ResultsStore(f"sqlite:///{tmp_path / 'results.db'}",
                      snapshot_dir=tmp_path / "snapshots") as results:
        sweep = results.register_sweep("short", "short", "", [
            ConfigurationEntry("bfs", config, config_hash)], range(3))
        run_ids = {p.seed: p.run_id for p in results.pending(sweep.id)}
        results.claim(list(run_ids.values()))
        # seed 0 done and seed 2 diverged at best step 0; seed 1 done at best step 500
        records = [(seed, dataclasses.replace(r, run_id=run_ids[seed],
                                              best_step=r.best_step if seed == 1 else 0))
                   for seed, r in seed_records("bfs", range(3))]
        results.record([r for _, r in records])
        finished = results.finished_scores(sweep.configuration_ids["bfs"])
    assert finished.counts.best_step_0 == 1
    tracker = SweepTracker(store, "short", "short", log_processes=1)
    parent = tracker.configuration("bfs", config, config_hash)
    assert tracker.log_seeds("bfs", records) == 3
    tracker.update_summary("bfs", finished.scores, finished.counts)
    tracker.close()
    client = MlflowClient(store)
    assert {int(r.data.tags["gapsweep.seed"]): r.data.tags[TAG_BEST_STEP_0]
            for r in children_of(client, tracker.experiment_id, parent)} == {
        0: "true", 1: "false", 2: "true"}
    metrics = client.get_run(parent).data.metrics
    assert (metrics["n_best_step_0"], metrics["n_done"], metrics["n_diverged"]) == (1, 2, 1)


def test_parallel_logging_and_an_interrupted_run(store):
    """Enough seeds to use the worker processes; a child run left RUNNING is redone."""
    tracker = SweepTracker(store, "sweep", "sweep", log_processes=2)
    parent = tracker.configuration("bfs", *CONFIGS["bfs"])
    records = seed_records("bfs", range(20), points=5)
    assert tracker.log_seeds("bfs", records) == 20
    assert tracker.log_seeds("bfs", records) == 0
    tracker.close()

    client = MlflowClient(store)
    children = children_of(client, tracker.experiment_id, parent)
    assert sorted(int(r.data.tags["gapsweep.seed"]) for r in children) == list(range(20))
    assert all(len(client.get_metric_history(r.info.run_id, "val_score")) == 5 for r in children)

    # A driver cut off after creating seed 20's run, before finishing it:
    interrupted = client.create_run(tracker.experiment_id, run_name="bfs/seed=20", tags={
        "mlflow.parentRunId": parent, "gapsweep.role": "seed", "gapsweep.seed": "20"})
    resumed = SweepTracker(store, "sweep", "sweep", log_processes=1)
    resumed.configuration("bfs", *CONFIGS["bfs"])
    assert resumed.log_seeds("bfs", records + seed_records("bfs", [20], points=5)) == 1
    resumed.close()
    assert client.get_run(interrupted.info.run_id).info.lifecycle_stage == "deleted"
    seed_20 = [r for r in children_of(client, tracker.experiment_id, parent)
               if r.data.tags["gapsweep.seed"] == "20"]
    assert len(seed_20) == 1 and seed_20[0].info.status == "FINISHED"


def test_large_configs_are_chunked_and_cut_to_mlflow_limits(store):
    config = {f"key_{i:03d}": i for i in range(250)}
    config["long"] = "x" * (MAX_PARAM_VALUE_LENGTH + 100)
    config["odd key!"] = {"nested?": True}
    tracker = SweepTracker(store, "sweep", "sweep")
    run_id = tracker.configuration("wide", config, "d" * 64)
    tracker.close()
    params = MlflowClient(store).get_run(run_id).data.params
    assert len(params) == 252
    assert params["long"] == "x" * MAX_PARAM_VALUE_LENGTH
    assert params["odd key_.nested_"] == "True"


def test_default_store_lives_in_the_run_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAPSWEEP_RUN_DIR", str(tmp_path / "runs"))
    uri = default_tracking_uri()
    assert uri == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    tracker = SweepTracker(None, "", "quick sweep")
    tracker.configuration("bfs", *CONFIGS["bfs"])
    tracker.log_seeds("bfs", seed_records("bfs", [0], points=3))
    tracker.close()
    assert (tmp_path / "runs" / "mlflow.db").is_file()
    artifacts = list((tmp_path / "runs" / "mlartifacts").rglob(BEST_PARAMS_ARTIFACT))
    assert len(artifacts) == 1 and artifacts[0].parts[-4] == "quick_sweep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]

    command = ui_command(uri)
    assert command == (f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri "
                       f"{uri} --default-artifact-root {tmp_path / 'runs' / 'mlartifacts'} "
                       "--host 127.0.0.1 --port 5000 --workers 1")
    assert ui_command("http://mlflow.example:5000") == "http://mlflow.example:5000"
    assert ui_command("postgresql://db/mlflow") == (
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri "
        "postgresql://db/mlflow --host 127.0.0.1 --port 5000 --workers 1")
