"""MLflow is a projection of the results database: the tracking outbox and ``gapsweep track sync``.

Every recorded run waits in the database's outbox until MLflow shows it; whatever kept MLflow from
hearing of it (``--no-mlflow`` here, a server down or a driver killed elsewhere) is replayed by
``gapsweep track sync`` or the sweep's next run, and nothing is ever logged twice. Sweeps beyond
``PER_SEED_RUNS_AUTO_MAX`` seed-runs (or with ``per_seed_runs: false``) are logged as one run per
configuration with ``seeds.csv`` and summary metrics.
"""

import csv
import io
import sys

import pytest
import ray
from mlflow.tracking import MlflowClient

from db.store import ResultsStore
from gapsweep.main import main
from orchestrator.plan import make_plan
from orchestrator.schedule import SweepRunner
from orchestrator.spec import parse_spec
from orchestrator.tracking import (PER_SEED_RUNS_AUTO_MAX, SEEDS_TABLE_ARTIFACT, SweepTracker,
                                   TrackingError, per_seed_runs)
from workers import synthetic

SWEEP = """\
name: {name}
base: {{hidden_size: 4, train_steps: 100, eval_every: 50}}
grid: {{algorithm: [bfs, dfs]}}
seeds: 0-5
population: 2
{extra}"""


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


@pytest.fixture
def stores(tmp_path):
    return {"db": f"sqlite:///{tmp_path / 'results.db'}",
            "mlflow": f"sqlite:///{tmp_path / 'mlflow.db'}"}


def _seed_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], "tags.`gapsweep.role` = 'seed'") \
        if found else []


def _parents(uri: str, experiment: str) -> dict:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return {r.data.tags["gapsweep.label"]: r for r in client.search_runs(
        [found.experiment_id], "tags.`gapsweep.role` = 'configuration'")}


def _untracked_sweep(name: str, db: str, extra: str = ""):
    """A sweep trained and recorded with --no-mlflow (no tracker): every run in the outbox."""
    plan = make_plan(parse_spec(SWEEP.format(name=name, extra=extra), f"{name}.yaml"))
    with ResultsStore(db) as store:
        outcome = SweepRunner(plan, store, None, trainer=synthetic.run_synthetic_task).run()
        assert outcome.recorded == 12
        assert len(store.outbox(outcome.sweep_id)) == 12 and store.outbox_counts() == {name: 12}
    return plan, outcome


def test_per_seed_runs_auto_counts_seed_runs():
    assert per_seed_runs("auto", PER_SEED_RUNS_AUTO_MAX) is True
    assert per_seed_runs("auto", PER_SEED_RUNS_AUTO_MAX + 1) is False
    assert per_seed_runs(True, 10**6) is True and per_seed_runs(False, 1) is False
    with pytest.raises(TrackingError, match="allowed: true, false, auto"):
        per_seed_runs("sometimes", 1)
    with pytest.raises(Exception, match="per_seed_runs"):
        parse_spec(SWEEP.format(name="x", extra="tracking: {per_seed_runs: sometimes}\n"))


def test_track_sync_logs_what_the_database_recorded_once(local_ray, stores, capsys):
    _, outcome = _untracked_sweep("offline", stores["db"])
    assert _seed_runs(stores["mlflow"], "offline") == []
    assert main(["track", "sync", "--db", stores["db"], "--mlflow", stores["mlflow"]]) == 0
    out = capsys.readouterr().out
    assert "offline: 12 seed(s) MLflow lacked logged" in out and "child runs per seed" in out
    seeds = _seed_runs(stores["mlflow"], "offline")
    with ResultsStore(stores["db"]) as store:
        scores = {(c.label, r.seed): r.test_score for c in store.configurations(outcome.sweep_id)
                  for r in store.runs_of(outcome.sweep_id, c.label)}
        assert store.outbox(outcome.sweep_id) == []
    assert {(r.data.tags["gapsweep.label"], int(r.data.tags["gapsweep.seed"])):
            r.data.metrics["test_score"] for r in seeds} == pytest.approx(scores)
    parents = _parents(stores["mlflow"], "offline")
    assert sorted(parents) == ["algorithm=bfs", "algorithm=dfs"]
    assert all(p.data.metrics["n_done"] == 6 and p.data.tags["gapsweep.per_seed_runs"] == "true"
               for p in parents.values())

    # again: nothing waits, nothing is logged twice
    assert main(["track", "sync", "--db", stores["db"], "--mlflow", stores["mlflow"]]) == 0
    assert "MLflow is up to date" in capsys.readouterr().out
    assert len(_seed_runs(stores["mlflow"], "offline")) == 12

    # an outbox row whose seed MLflow already has (a driver killed after logging, before it
    # emptied the outbox) is taken out without a second run
    with ResultsStore(stores["db"]) as store:
        run_id = store.runs_of(outcome.sweep_id, "algorithm=bfs")[0].id
        with store.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO tracking_outbox (run_id, created_at) VALUES "
                                 f"({run_id}, '2026-12-03')")
    assert main(["track", "sync", "offline", "--db", stores["db"], "--mlflow",
                 stores["mlflow"]]) == 0
    assert "offline: 0 seed(s) MLflow lacked logged" in capsys.readouterr().out
    assert len(_seed_runs(stores["mlflow"], "offline")) == 12


def test_a_tracked_run_replays_the_outbox_before_it_trains(local_ray, stores):
    plan, _ = _untracked_sweep("later", stores["db"])
    with ResultsStore(stores["db"]) as store:
        again = SweepRunner(plan, store, SweepTracker(stores["mlflow"], "later", "later"),
                            trainer=synthetic.run_synthetic_task).run()
        assert (again.recorded, again.skipped, again.caught_up) == (0, 12, 12)
        assert store.outbox(again.sweep_id) == []
    assert len(_seed_runs(stores["mlflow"], "later")) == 12


def test_without_per_seed_runs_a_configuration_run_holds_the_seeds_table(local_ray, stores,
                                                                          capsys):
    _, outcome = _untracked_sweep("table", stores["db"], "tracking: {per_seed_runs: false}\n")
    assert main(["track", "sync", "table", "--db", stores["db"], "--mlflow",
                 stores["mlflow"]]) == 0
    assert "configuration runs with seeds.csv" in capsys.readouterr().out
    assert _seed_runs(stores["mlflow"], "table") == []
    parents = _parents(stores["mlflow"], "table")
    client = MlflowClient(stores["mlflow"])
    with ResultsStore(stores["db"]) as store:
        assert store.outbox(outcome.sweep_id) == []
        for label, parent in parents.items():
            assert parent.data.tags["gapsweep.per_seed_runs"] == "false"
            assert parent.data.metrics["n_done"] == 6
            path = client.download_artifacts(parent.info.run_id, SEEDS_TABLE_ARTIFACT)
            rows = list(csv.DictReader(io.StringIO(open(path).read())))
            runs = store.runs_of(outcome.sweep_id, label)
            assert [(int(r["seed"]), r["status"], float(r["test_score"]), int(r["db_run_id"]))
                    for r in rows] == [(r.seed, r.status, pytest.approx(r.test_score), r.id)
                                       for r in runs]
            scores = [r.test_score for r in runs]
            assert parent.data.metrics["test_mean"] == pytest.approx(sum(scores) / len(scores))


def test_track_sync_names_an_unknown_sweep(stores, capsys):
    _ = ResultsStore(stores["db"]).close()
    assert main(["track", "sync", "nope", "--db", stores["db"], "--mlflow", stores["mlflow"]]) == 2
    assert "no sweep named 'nope'" in capsys.readouterr().err
