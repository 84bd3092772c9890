"""``gapsweep run --simulate SECONDS``: a sweep that exercises the cluster and the stores only
(each task sleeps, then records ``workers/synthetic.py`` results; no data is built). Kept apart
from ``test_cluster_faults.py``, whose module-wide stack environment would point a local Ray at
the stack's head."""

import time

import pytest

from gapsweep.main import main
from orchestrator import jobs

LABELS = ("algorithm=bfs", "algorithm=bellman_ford")


def test_a_simulated_local_run_builds_no_data_and_records_synthetic_results(tmp_path, capsys,
                                                                              monkeypatch):
    """``gapsweep run --simulate``: no data set is built (the cache stays empty), each task
    sleeps, and the results are recorded as device 'synthetic', said in the run's output."""
    from db.store import ResultsStore

    monkeypatch.setenv("GAPSWEEP_CACHE_DIR", str(tmp_path / "cache"))
    sweep = tmp_path / "simulated.yaml"
    sweep.write_text("name: simulated\nbase: {hidden_size: 4, train_steps: 20, eval_every: 10}\n"
                     "grid: {algorithm: [bfs, bellman_ford]}\nseeds: 2\npopulation: 1\n")
    db = f"sqlite:///{tmp_path / 'results.db'}"
    started = time.monotonic()
    assert main(["run", str(sweep), "--simulate", "1.5", "--db", db, "--no-mlflow",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert time.monotonic() - started >= 1.5                 # the tasks did sleep
    out = capsys.readouterr().out
    assert "simulated: no training; each task sleeps 1.5 s" in out, out
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    with ResultsStore(db) as store:
        sweep_id = store.sweep_id("simulated")
        runs = [r for label in LABELS for r in store.runs_of(sweep_id, label)]
        assert len(runs) == 4 and {r.status for r in runs} == {"done"}
        assert {store.run(r.id).device for r in runs} == {"synthetic"}
    assert "--simulate 3" in jobs.SweepJob(simulate=3).entrypoint("x.yaml")
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(sweep), "--simulate", "-1"])
    assert exit_.value.code == 2 and "give a number of seconds ≥ 0" in capsys.readouterr().err
