"""A results database that stops answering mid-sweep: ``db.retry.RetryingStore`` waits for it.

Unit tests on a fake clock, then a real PostgreSQL server stopped and restarted under a store
call, and under a real sweep on a local Ray."""

import functools
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
import ray
import sqlalchemy as sa
from sqlalchemy import exc

from db.engine import DatabaseError
from db.local_postgres import LocalPostgres
from db.retry import RetryingStore, is_unreachable
from db.store import ConfigurationEntry, Curve, ResultsStore, RunResult, StoreError
from orchestrator.engine import SweepSettings, run_sweep
from orchestrator.events import SweepEvents
from orchestrator.jobs import SweepJob
from orchestrator.plan import make_plan
from orchestrator.spec import parse_spec
from workers import synthetic

URL = "postgresql+psycopg://gapsweep:secret@db.example:5432/results"


def refused():
    return exc.OperationalError("SELECT 1", {}, psycopg.OperationalError(
        'connection to server at "db.example" (10.0.0.5), port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?"))


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky:
    """A store whose ``pending`` fails with ``error()`` while the fake clock is before ``until``."""

    url = sa.engine.make_url(URL)

    def __init__(self, clock, until, error=refused):
        self.clock, self.until, self.error = clock, until, error
        self.calls = []

    def pending(self, sweep_id, **kwargs):
        self.calls.append((self.clock(), kwargs))
        if self.clock() < self.until:
            raise self.error()
        return [f"run of sweep {sweep_id}"]

    def claim(self, run_ids, **kwargs):
        self.calls.append((self.clock(), kwargs))
        if self.clock() < self.until:
            raise self.error()
        return list(run_ids)


def retrying(store, clock, **kwargs):
    messages = []
    return RetryingStore(store, on_wait=messages.append, sleep=clock.sleep, clock=clock,
                         **kwargs), messages


def test_waits_with_backoff_then_answers():
    clock = FakeClock()
    store, messages = retrying(Flaky(clock, until=6), clock)
    assert store.pending(7) == ["run of sweep 7"]
    assert clock.sleeps == [1, 2, 4]                         # 1 s doubling
    assert store.waited_s == 7 and store.outages == 1
    assert len(messages) == 2
    assert messages[0].startswith("results database postgresql+psycopg://gapsweep:***@db.example"
                                  ":5432/results unreachable (")
    assert "Connection refused" in messages[0] and "secret" not in messages[0]
    assert "retrying for up to 1800 s" in messages[0] and "nothing is lost" in messages[0]
    assert messages[1] == ("results database postgresql+psycopg://gapsweep:***@db.example:5432/"
                           "results reachable again after 7 s")
    assert store.pending(8) == ["run of sweep 8"]           # answering: no wait, no message
    assert store.waited_s == 7 and store.outages == 1 and len(messages) == 2
    assert store.url == Flaky.url                           # attributes are the store's


def test_says_so_about_every_minute_and_sums_the_outages():
    clock = FakeClock()
    flaky = Flaky(clock, until=130)
    store, messages = retrying(flaky, clock)
    store.pending(1)
    assert clock.sleeps == [1, 2, 4, 8, 16, 30, 30, 30, 30]   # capped at 30 s
    where = "results database postgresql+psycopg://gapsweep:***@db.example:5432/results"
    assert [m.split(" (")[0] for m in messages] == [
        f"{where} unreachable", f"{where} still unreachable after 61 s",
        f"{where} still unreachable after 121 s", f"{where} reachable again after 151 s"]
    flaky.until = clock.now + 2                              # a second outage
    store.pending(1)
    assert store.outages == 2 and store.waited_s == 151 + 3
    assert messages[-1].endswith("reachable again after 3 s")


def test_gives_up_after_max_wait_with_a_clear_error():
    clock = FakeClock()
    store, messages = retrying(Flaky(clock, until=float("inf")), clock, max_wait_s=100)
    with pytest.raises(DatabaseError) as raised:
        store.pending(3)
    text = str(raised.value)
    assert clock.now == 100 and clock.sleeps[-1] == 9       # the last try is at the deadline
    assert "postgresql+psycopg://gapsweep:***@db.example:5432/results still unreachable after " \
           "100 s" in text and "secret" not in text
    assert "pending was tried 9 time(s) over 100 s" in text and "Connection refused" in text
    assert "--db-wait" in text and "run the same command again" in text
    assert isinstance(raised.value.__cause__, exc.OperationalError)
    assert store.waited_s == 100 and store.outages == 1
    assert "reachable again" not in messages[-1]


def test_zero_wait_fails_at_once():
    clock = FakeClock()
    store, messages = retrying(Flaky(clock, until=1), clock, max_wait_s=0)
    with pytest.raises(DatabaseError, match="unreachable during pending .*not waiting"):
        store.pending(1)
    assert clock.sleeps == [] and messages == []
    with pytest.raises(DatabaseError, match="max_wait_s = -1.0 is not allowed"):
        RetryingStore(Flaky(clock, 0), max_wait_s=-1)


@pytest.mark.parametrize("error", [
    lambda: exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key")),
    lambda: exc.ProgrammingError("SELECT", {}, psycopg.errors.UndefinedTable("no table runs")),
    lambda: StoreError("run 3: status 'running' is not a result"),
    lambda: exc.OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: runs")),
    lambda: ValueError("a bug"),
], ids=["integrity", "programming", "store", "sqlite", "other"])
def test_other_errors_are_not_retried(error):
    clock = FakeClock()
    flaky = Flaky(clock, until=1, error=error)
    store, messages = retrying(flaky, clock)
    with pytest.raises(type(error())):
        store.pending(1)
    assert len(flaky.calls) == 1 and clock.sleeps == [] and messages == []
    assert store.outages == 0 and not is_unreachable(error())


def test_connection_errors_are_retried():
    assert is_unreachable(refused())
    assert is_unreachable(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert is_unreachable(exc.InterfaceError("SELECT", {}, psycopg.InterfaceError("closed")))
    lost = exc.DBAPIError("SELECT", {}, psycopg.Error("lost"), connection_invalidated=True)
    assert is_unreachable(lost)


def test_a_retried_claim_counts_the_runs_its_lost_commit_claimed():
    clock = FakeClock()
    flaky = Flaky(clock, until=2)
    store, _ = retrying(flaky, clock)
    assert store.claim([4, 5], retry_failed=True) == [4, 5]
    assert [kwargs for _, kwargs in flaky.calls] == [
        {"retry_failed": True}, {"retry_failed": True, "reclaim_running": True},
        {"retry_failed": True, "reclaim_running": True}]


def _register(store, seeds=range(4)):
    entry = ConfigurationEntry("algorithm=bfs", {"algorithm": "bfs"}, "h" * 64)
    sweep = store.register_sweep("wait", "e", "name: wait\n", [entry], seeds)
    return sweep, [p.run_id for p in store.pending(sweep.id)]


def test_claim_reclaim_running(tmp_path):
    with ResultsStore(f"sqlite:///{tmp_path / 'r.db'}", snapshot_dir=tmp_path / "s") as store:
        sweep, ids = _register(store)
        assert store.claim(ids[:2]) == ids[:2]
        assert store.claim(ids[:3]) == [ids[2]]                    # plain: running is not ours
        assert store.claim(ids, reclaim_running=True) == ids       # a retry: running counts
        assert [r.attempts for r in store.runs_of(sweep.id, "algorithm=bfs")] == [1, 1, 1, 1]


@pytest.fixture(scope="module")
def restartable_postgres():
    """A real PostgreSQL that keeps its data across stop and start (as root it runs as the
    postgres user, who must reach the directory: under a world-readable /tmp directory)."""
    top = Path(tempfile.mkdtemp(prefix="gapsweep-dbwait-", dir="/tmp"))
    top.chmod(0o755)
    server = LocalPostgres(root=top / "pg", durable=True)
    server.start()
    yield server
    server.stop()
    import shutil

    shutil.rmtree(top, ignore_errors=True)


def restart_later(server, seconds):
    """Start ``server`` again after ``seconds``, in a thread; returns the thread."""
    def restart():
        time.sleep(seconds)
        server.start()

    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    return thread


def count(url, sql):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(sa.text(sql)).scalar_one()
    engine.dispose()
    return value


def test_a_restarted_postgres_server_is_waited_for(restartable_postgres, tmp_path):
    server = restartable_postgres
    url = server.create_database("store_wait")
    messages = []
    with ResultsStore(url, snapshot_dir=tmp_path / "snapshots") as plain:
        store = RetryingStore(plain, on_wait=messages.append, max_wait_s=120)
        sweep, ids = _register(store)
        assert store.claim(ids) == ids
        results = [RunResult(run_id, "done", test_score=0.5, best_step=10, final_step=20,
                             curves=[Curve("val", "val_score", [0, 10], [0.1, 0.5])])
                   for run_id in ids[:2]]
        server.stop()                                # the pool's connections now point nowhere
        thread = restart_later(server, 4)
        t0 = time.monotonic()
        assert store.record(results) == ids[:2]
        assert time.monotonic() - t0 >= 3 and store.waited_s >= 3 and store.outages == 1
        thread.join()
        assert len(messages) == 2
        assert "unreachable (" in messages[0] and "retrying for up to 120 s" in messages[0]
        assert messages[1].startswith(f"results database {plain.display_url} reachable again "
                                      "after ")
        assert int(messages[1].split("after ")[1].split()[0]) >= 3

        server.stop()                                # a read waits too
        thread = restart_later(server, 4)
        assert [p.run_id for p in store.pending(sweep.id)] == []    # all are running or done
        thread.join()
        assert store.outages == 2 and store.waited_s >= 6
    assert count(url, "SELECT COUNT(*) FROM runs WHERE status = 'done'") == 2       # once each
    assert count(url, "SELECT COUNT(*) FROM metrics WHERE name = 'val_score'") == 2 * 2
    assert count(url, "SELECT COUNT(*) FROM runs WHERE status = 'running'") == 2


SLOW_SWEEP = """\
name: dbwait
base: {hidden_size: 4, train_steps: 10, eval_every: 5, train_lengths: [4], pool_size: 16,
       length_generalize: false}
grid:
  algorithm: [bfs]
seeds: 0-7
population: 2
resources: {gpus: 0}
"""


def slow_synthetic(config, seeds, *, delay=1.5, **kwargs):
    """The synthetic trainer, taking ``delay`` seconds (so tasks are still running when the
    database stops)."""
    time.sleep(delay)
    return synthetic.run_synthetic_task(config, seeds, **kwargs)


class StopAfterFirstPopulation(SweepEvents):
    """Stops the PostgreSQL server once the first population is recorded; starts it again
    ``restart_s`` seconds later."""

    def __init__(self, server, restart_s):
        self.server, self.restart_s = server, restart_s
        self.messages = []
        self.thread = None

    def update(self, label, finished, failed):
        if self.thread is None:
            self.server.stop()
            self.thread = restart_later(self.server, self.restart_s)

    def message(self, text):
        self.messages.append(text)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # the test trainer
    yield
    ray.shutdown()


def test_a_sweep_waits_for_a_restarted_database_and_loses_nothing(restartable_postgres, local_ray,
                                                                   cache_dir):
    server = restartable_postgres
    url = server.create_database("sweep_wait")
    plan = make_plan(parse_spec(SLOW_SWEEP, "dbwait.yaml"))
    events = StopAfterFirstPopulation(server, restart_s=5)
    result = run_sweep(plan, SweepSettings(db=url, track=False, cache_dir=str(cache_dir),
                                           db_wait=120),
                       events, trainer=functools.partial(slow_synthetic, delay=1.5))
    events.thread.join()
    assert result.exit_code == 0 and result.outcome.recorded == 8
    assert result.db_wait_seconds > 0 and result.db_outages >= 1
    waits = [m for m in events.messages if "results database" in m]
    assert any("unreachable (" in m and "nothing is lost" in m for m in waits), waits
    assert any("reachable again after" in m for m in waits), waits
    assert waits[-1] == (f"waited {result.db_wait_seconds:.0f} s in all for the results database "
                         f"({result.db_outages} outage(s))")
    assert count(url, "SELECT COUNT(*) FROM runs WHERE status IN ('done', 'diverged')") == 8
    assert count(url, "SELECT COUNT(DISTINCT seed) FROM runs") == 8
    assert count(url, "SELECT MAX(attempts) FROM runs") == 1
    assert count(url, "SELECT COUNT(*) FROM metrics") == count(
        url, "SELECT COUNT(DISTINCT (run_id, split, name, step)) FROM metrics")   # none twice
    assert count(url, "SELECT status FROM sweeps") == "finished"


def test_db_wait_reaches_the_submitted_job():
    command = SweepJob(db_wait=600).entrypoint("s.yaml")
    assert command.endswith("gapsweep run s.yaml --address auto --db-wait 600")
    assert "--db-wait" not in SweepJob().entrypoint("s.yaml")


def test_a_stopped_postgres_server_is_given_up_on_after_the_wait(restartable_postgres, tmp_path):
    server = restartable_postgres
    url = server.create_database("store_gives_up")
    messages = []
    with ResultsStore(url, snapshot_dir=tmp_path / "snapshots") as plain:
        store = RetryingStore(plain, on_wait=messages.append, max_wait_s=2)
        sweep, _ = _register(store)
        server.stop()
        try:
            with pytest.raises(DatabaseError) as raised:
                store.pending(sweep.id)
        finally:
            server.start()
        assert store.pending(sweep.id)                       # answers again once started
    text = str(raised.value)
    assert text.startswith(f"results database {plain.display_url} still unreachable after 2 s: "
                           "pending was tried 3 time(s) over 2 s"), text
    assert len(messages) == 1 and store.waited_s >= 2


def test_db_wait_flags():
    from gapsweep.main import build_parser

    parser = build_parser()
    assert parser.parse_args(["run", "s.yaml"]).db_wait == 1800
    assert parser.parse_args(["run", "s.yaml", "--db-wait", "60"]).db_wait == 60
    assert parser.parse_args(["submit", "s.yaml", "--db-wait", "0"]).db_wait == 0
    for bad in ("-1", "inf", "soon"):
        with pytest.raises(SystemExit):
            parser.parse_args(["run", "s.yaml", "--db-wait", bad])


def test_after_ctrl_c_during_a_wait_nothing_waits_again():
    clock = FakeClock()

    def interrupted_sleep(seconds):
        clock.sleep(seconds)
        raise KeyboardInterrupt

    messages = []
    store = RetryingStore(Flaky(clock, until=float("inf")), on_wait=messages.append,
                          sleep=interrupted_sleep, clock=clock)
    with pytest.raises(KeyboardInterrupt):
        store.pending(1)
    assert store.interrupted and store.waited_s == 1 and len(messages) == 1
    with pytest.raises(DatabaseError, match="unreachable during claim .*not waiting after Ctrl-C"):
        store.claim([1])                             # the release after Ctrl-C: at once
    assert clock.now == 1 and len(messages) == 1
