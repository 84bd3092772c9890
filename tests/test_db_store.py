"""The results API on SQLite and a real PostgreSQL server: idempotent registration, run life cycle,
atomic population records, concurrent writers."""

import dataclasses
import multiprocessing as mp

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from db.rows import RunCounts, SeedOutcome
from db.store import ConfigurationEntry, Curve, ResultsStore, RunResult, StoreError

CONFIGS = [ConfigurationEntry("bfs", {"algorithm": "bfs", "hidden_size": 4, "use_edge_info": False},
                              "a" * 64),
           ConfigurationEntry("edge_info", {"algorithm": "bfs", "hidden_size": 4,
                                            "use_edge_info": True}, "b" * 64)]


@pytest.fixture
def store(db_url, tmp_path):
    with ResultsStore(db_url, snapshot_dir=tmp_path / "snapshots", inline_limit=1024) as s:
        yield s


def rows(store, table):
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def result(run_id, score=0.5, points=5, params=None, status="done", host="w1"):
    steps = np.arange(points) * 50
    return RunResult(
        run_id, status, test_score=score, best_val_score=score, best_step=int(steps[-1]),
        final_step=int(steps[-1]), wall_seconds=1.5, worker_host=host, device="cpu",
        curves=[Curve("val", "val_score", steps, np.linspace(0, score, points)),
                Curve("train", "train_loss", steps, np.linspace(1, 0, points))],
        snapshots={"best": params if params is not None else {"w": np.full(3, run_id, np.float32)}})


def test_register_is_idempotent_and_extends(store):
    first = store.register_sweep("s", "table1_baseline", "name: s\n", CONFIGS, range(4),
                                 code_version="abc123")
    again = store.register_sweep("s", "table1_baseline", "name: s\n", CONFIGS, range(4))
    assert first.created and not again.created
    assert first.configuration_ids == again.configuration_ids
    assert (rows(store, "sweeps"), rows(store, "configurations"), rows(store, "runs")) == (1, 2, 8)
    more = store.register_sweep("s", "table1_baseline", "name: s\n", CONFIGS[:1], range(6))
    assert more.id == first.id and rows(store, "runs") == 10
    with store.engine.connect() as conn:
        flags = dict(conn.execute(sa.text(
            "SELECT label, use_edge_info FROM configurations ORDER BY label")).all())
        sweep = conn.execute(sa.text("SELECT code_version, submitted_by FROM sweeps")).one()
    assert flags == {"bfs": False, "edge_info": True}
    assert sweep.code_version == "abc123" and sweep.submitted_by


def test_register_refuses_conflicts(store):
    store.register_sweep("s", "e", "", CONFIGS, range(2))
    changed = ConfigurationEntry("bfs", {"algorithm": "bfs", "hidden_size": 8}, "c" * 64)
    with pytest.raises(StoreError, match="already has a configuration 'bfs' with a different config"):
        store.register_sweep("s", "e", "", [changed], range(2))
    relabelled = ConfigurationEntry("baseline", CONFIGS[0].config, CONFIGS[0].config_hash)
    with pytest.raises(StoreError, match="'baseline' is the same config as the registered 'bfs'"):
        store.register_sweep("s", "e", "", [relabelled], range(2))
    with pytest.raises(StoreError, match="duplicate configuration label"):
        store.register_sweep("t", "e", "", [CONFIGS[0], CONFIGS[0]], range(2))
    assert rows(store, "configurations") == 2 and rows(store, "sweeps") == 1


def test_run_life_cycle(store):
    sweep = store.register_sweep("s", "e", "", CONFIGS, range(3))
    todo = store.pending(sweep.id)
    assert [(p.label, p.seed, p.status) for p in todo] == [
        ("bfs", 0, "pending"), ("bfs", 1, "pending"), ("bfs", 2, "pending"),
        ("edge_info", 0, "pending"), ("edge_info", 1, "pending"), ("edge_info", 2, "pending")]
    ids = [p.run_id for p in todo]
    assert store.claim(ids[:4], worker_host="w1") == sorted(ids[:4])
    assert store.claim(ids[:4]) == []                      # already running: nobody claims twice
    assert [(p.label, p.seed) for p in store.pending(sweep.id)] == [("edge_info", 1), ("edge_info", 2)]
    assert store.record([result(ids[0], 0.9), result(ids[1], 0.2, status="diverged")]) == ids[:2]
    store.release([ids[2]], error="worker lost")            # back to pending, attempt counted
    store.mark_failed([ids[3]], "out of memory at population 1")
    left = {p.run_id: p for p in store.pending(sweep.id)}
    assert set(left) == {ids[2], ids[4], ids[5]} and left[ids[2]].attempts == 1
    assert {p.run_id for p in store.pending(sweep.id, retry_failed=True)} == {
        ids[2], ids[3], ids[4], ids[5]}
    assert store.claim([ids[3]]) == []                      # failed is retried only on request
    assert store.claim([ids[3]], retry_failed=True) == [ids[3]]
    store.claim([ids[4]])
    assert store.reset_running(sweep.id) == 2               # a dead driver's runs: pending again
    counts = {c.label: c for c in store.counts(sweep.id)}
    assert (counts["bfs"].runs.done, counts["bfs"].runs.diverged,
            counts["bfs"].runs.pending) == (1, 1, 1)
    assert counts["bfs"].test_mean == pytest.approx(0.9) and counts["bfs"].test_std is None
    with store.engine.connect() as conn:
        attempts = dict(conn.execute(sa.text("SELECT id, attempts FROM runs")).all())
    assert attempts[ids[3]] == 2 and attempts[ids[0]] == 1
    store.finish_sweep(sweep.id)
    assert store.sweeps()[0].status == "finished"



def test_reads_return_frozen_rows(store):
    sweep = store.register_sweep("s", "e", "name: s\n", CONFIGS, range(3), code_version="abc")
    ids = {(p.label, p.seed): p.run_id for p in store.pending(sweep.id)}
    store.claim([ids["bfs", 0], ids["bfs", 1], ids["bfs", 2]])
    store.record([result(ids["bfs", 0], 0.6), dataclasses.replace(result(ids["bfs", 1], 0.8),
                                                                   best_step=0)])
    store.mark_failed([ids["bfs", 2]], "OOM")
    (row,) = store.sweeps()
    assert (row.name, row.experiment, row.status, row.code_version, row.spec_yaml) == (
        "s", "e", "registered", "abc", "name: s\n")
    assert store.sweeps(name="nope") == [] and store.sweeps(experiment="e") == [row]
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.status = "finished"
    configurations = store.configurations(sweep.id)
    assert [(c.label, c.algorithm, c.sweep_id) for c in configurations] == [
        ("bfs", "bfs", sweep.id), ("edge_info", "bfs", sweep.id)]
    assert configurations[1].config["use_edge_info"] is True
    bfs = {c.label: c for c in store.counts(sweep.id)}["bfs"]
    assert bfs.runs == RunCounts(done=2, failed=1, best_step_0=1) and bfs.runs.total == 3
    assert bfs.runs.of("failed") == 1 and bfs.configuration_id == sweep.configuration_ids["bfs"]
    assert (bfs.test_mean, bfs.test_max) == (pytest.approx(0.7), pytest.approx(0.8))
    finished = store.finished_scores(sweep.configuration_ids["bfs"])
    assert finished.scores == (pytest.approx(0.6), pytest.approx(0.8))
    assert finished.counts == bfs.runs
    runs = store.runs_of(sweep.id, "bfs")
    assert [(r.seed, r.status, r.attempts) for r in runs] == [(0, "done", 1), (1, "done", 1),
                                                              (2, "failed", 1)]
    assert runs[2].error == "OOM" and runs[1].best_step == 0
    detail = store.run(ids["bfs", 1])
    assert (detail.sweep, detail.label, detail.seed, detail.device) == ("s", "bfs", 1, "cpu")



def test_sweep_seeds_reads_the_reports_input(store):
    first = store.register_sweep("s", "e", "", CONFIGS, range(2))
    store.register_sweep("t", "f", "", CONFIGS[:1], range(1))
    ids = {(p.label, p.seed): p.run_id for p in store.pending(first.id)}
    store.claim([ids["edge_info", 1]])
    store.record([result(ids["edge_info", 1], 0.25)])
    assert [s.sweep.name for s in store.sweep_seeds()] == ["s", "t"]
    (entry,) = store.sweep_seeds(experiment="e")
    assert [c.configuration.label for c in entry.configurations] == ["bfs", "edge_info"]
    assert entry.configurations[1].runs == (SeedOutcome(0, "pending", None, None),
                                            SeedOutcome(1, "done", 0.25, 200))
    assert [s.sweep.name for s in store.sweep_seeds(name="t")] == ["t"]
    with pytest.raises(StoreError, match=r"no sweep 'u' in .*; known sweeps: s \(e\), t \(f\)"):
        store.sweep_seeds(name="u")
    with pytest.raises(StoreError, match="no experiment 'g' in"):
        store.sweep_seeds(experiment="g")


def test_record_is_stored_once(store):
    sweep = store.register_sweep("s", "e", "", CONFIGS[:1], range(2))
    ids = [p.run_id for p in store.pending(sweep.id)]
    store.claim(ids)
    assert store.record([result(ids[0], 0.7)]) == [ids[0]]
    # the same population arriving again (a retried task that also finished) adds nothing
    assert store.record([result(ids[0], 0.1), result(ids[1], 0.6)]) == [ids[1]]
    assert rows(store, "metrics") == 2 * 2 * 5 and rows(store, "snapshots") == 2
    assert store.run(ids[0]).test_score == pytest.approx(0.7)
    steps, values = store.curve(ids[1], "val_score", "val")
    assert steps.tolist() == [0, 50, 100, 150, 200]
    np.testing.assert_allclose(values, np.linspace(0, 0.6, 5))


def test_population_is_all_or_nothing(store, tmp_path):
    sweep = store.register_sweep("s", "e", "", CONFIGS[:1], range(3))
    ids = [p.run_id for p in store.pending(sweep.id)]
    store.claim(ids)
    big = {"w": np.arange(4096, dtype=np.float32)}           # > inline limit: goes to a file
    broken = result(ids[2])
    broken.curves.append(Curve("val", "bad", [0, 50], [1.0]))  # fails after rows were written
    with pytest.raises(StoreError, match="2 steps but 1 values"):
        store.record([result(ids[0], params=big), result(ids[1]), broken])
    assert rows(store, "metrics") == 0 and rows(store, "snapshots") == 0
    assert {p.status for p in store.pending(sweep.id)} == set()
    with store.engine.connect() as conn:
        assert set(conn.execute(sa.text("SELECT status FROM runs")).scalars()) == {"running"}
    assert not list((tmp_path / "snapshots").rglob("*.npz"))  # the file written for it is gone
    with pytest.raises(StoreError, match=r"unknown run id\(s\) \[999\]"):
        store.record([result(ids[0]), result(999)])
    assert rows(store, "metrics") == 0
    # the database itself refuses what the API would never write: metrics of a missing run
    with pytest.raises(IntegrityError):
        with store.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO metrics (run_id, split, name, step, value) "
                                 "VALUES (12345, 'val', 'val_score', 0, 1.0)"))
    assert store.record([result(i) for i in ids]) == ids


def test_non_finite_values_are_null(store):
    sweep = store.register_sweep("s", "e", "", CONFIGS[:1], range(1))
    (run,) = [p.run_id for p in store.pending(sweep.id)]
    store.claim([run])
    r = result(run, status="diverged")
    r.test_score = float("nan")
    r.curves = [Curve("train", "train_loss", [0, 50, 100], [0.5, np.inf, np.nan])]
    store.record([r])
    steps, values = store.curve(run, "train_loss", "train")
    assert steps.tolist() == [0, 50, 100] and values[0] == 0.5 and np.isnan(values[1:]).all()
    assert store.run(run).test_score is None


def test_curve_points_are_stored_exactly(store):
    """Every curve point reads back bit for bit (SQLite receives a curve as one JSON array of
    Python's shortest round-trip repr of each double; PostgreSQL as COPY text), over float32
    values as training curves have them, doubles across the exponent range, and large steps."""
    sweep = store.register_sweep("exact", "e", "", CONFIGS[:1], range(1))
    (run,) = [p.run_id for p in store.pending(sweep.id)]
    store.claim([run])
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.random(3000).astype(np.float32).astype(np.float64),
                             rng.standard_normal(3000) * 10.0 ** rng.integers(-300, 300, 3000),
                             [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 0.1]])
    steps = np.arange(values.size, dtype=np.int64) * 1000
    steps[-1] = 2**31 - 1                              # the largest step the column holds
    r = result(run)
    r.curves = [Curve("val", "val_score", steps, values)]
    store.record([r])
    got_steps, got = store.curve(run, "val_score", "val")
    assert got_steps.tolist() == steps.tolist()
    assert got.view(np.uint64).tolist() == values.view(np.uint64).tolist() or \
        np.array_equal(got, values)                 # -0.0 may come back as 0.0: equal values


def _record_half(url, snapshot_dir, run_ids, worker):
    store = ResultsStore(url, snapshot_dir=snapshot_dir)
    for start in range(0, len(run_ids), 8):
        chunk = run_ids[start:start + 8]
        store.claim(chunk, worker_host=worker)
        store.record([result(i, 0.5, points=20, host=worker) for i in chunk])
    store.close()


def test_two_processes_recording_concurrently_lose_nothing(store, db_url, tmp_path):
    sweep = store.register_sweep("s", "e", "", CONFIGS, range(48))
    ids = [p.run_id for p in store.pending(sweep.id)]
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_record_half,
                           args=(db_url, str(tmp_path / "snapshots"), ids[k::2], f"w{k}"))
               for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert sum(c.runs.done for c in store.counts(sweep.id)) == len(ids) == 96
    assert rows(store, "metrics") == 96 * 2 * 20 and rows(store, "snapshots") == 96
    with store.engine.connect() as conn:
        hosts = dict(conn.execute(sa.text("SELECT worker_host, COUNT(*) FROM runs "
                                          "GROUP BY worker_host")).all())
    assert hosts == {"w0": 48, "w1": 48}
