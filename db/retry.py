"""Waiting out a results database that stops answering: ``RetryingStore``.

    store = RetryingStore(ResultsStore(url), on_wait=events.message, max_wait_s=1800)
    store.record(results)          # blocks while PostgreSQL restarts, then records once

The sweep driver (``orchestrator.engine.run_sweep``) holds every finished population in memory
until it is recorded, so a database server that is restarted, failed over or briefly cut off
mid-sweep costs time, not results: each store call that fails because the database cannot be
reached is tried again, with a back-off of 1 s doubling to 30 s, for up to ``max_wait_s`` seconds
per outage; then the last error is raised as a ``db.engine.DatabaseError`` saying what was tried,
for how long, and where (the masked URL). ``on_wait`` hears when the wait starts, about once a
minute while it lasts, and when the database answers again.

Only a lost or refused connection is retried (see ``is_unreachable``): a refused request
(``StoreError``), a constraint or SQL error is raised at once. A retried call must be safe to
repeat, and every ``ResultsStore`` write is (each is one transaction, rolled back when its
connection is lost): registration is idempotent, ``record`` skips finished runs, ``release`` /
``mark_failed`` / ``reset_running`` / ``finish_sweep`` set a status. Two calls whose commit may
have gone through just before the connection dropped are retried so that the caller sees what
that commit did: ``claim`` is retried with ``reclaim_running=True`` (the runs it moved to running
count as claimed), and a retried ``record`` returns every run id it was given (each one is
finished in the database once the retry returns, by this call or the lost attempt: right for the
driver, which records only runs it claimed).
"""

from __future__ import annotations

import functools
import math
import time
from typing import Callable

from db.engine import DatabaseError, mask
from workers.errors import first_line

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
REPORT_EVERY_S = 60.0
DEFAULT_MAX_WAIT_S = 1800.0


def is_unreachable(error: BaseException) -> bool:
    """True when ``error`` says the database could not be reached or the connection was lost
    (worth waiting for), False for anything a retry would only repeat.

    Retried: SQLAlchemy's ``OperationalError`` / ``InterfaceError``, any ``DBAPIError`` that
    invalidated its connection, and psycopg's own ``OperationalError`` / ``InterfaceError``
    (``ResultsStore`` writes curves with psycopg's COPY, which SQLAlchemy does not wrap). Not
    retried: integrity and programming errors, ``StoreError``, and SQLite's errors (a local file
    is never "unreachable"; its locks already wait ``SQLITE_BUSY_TIMEOUT_S``)."""
    from sqlalchemy import exc

    if isinstance(error, DatabaseError):                 # StoreError and our own give-up
        return False
    if isinstance(error, exc.DBAPIError):
        if _is_sqlite_error(error.orig):
            return False
        return bool(error.connection_invalidated) or isinstance(
            error, (exc.OperationalError, exc.InterfaceError))
    try:
        import psycopg
    except ImportError:                                  # SQLite-only installs
        return False
    return isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError))


def _is_sqlite_error(error) -> bool:
    import sqlite3

    return isinstance(error, sqlite3.Error)


class RetryingStore:
    """A ``ResultsStore`` whose calls wait for an unreachable database instead of failing.

    Every attribute is the wrapped store's; its methods are wrapped so that a call failing with
    ``is_unreachable`` is tried again (1 s, 2 s, 4 s … at most 30 s apart) until it succeeds or
    ``max_wait_s`` seconds have passed since it first failed (0: never wait), then raises
    ``DatabaseError``. ``on_wait(message)`` hears the wait start, every ``REPORT_EVERY_S`` while
    it lasts, and its end. ``waited_s`` is the seconds waited in all, ``outages`` how many waits
    there were. After a Ctrl-C during a wait (``interrupted``) it waits no more: the clean-up
    that follows fails at once instead of holding the command up. ``sleep`` and ``clock`` are ``time.sleep`` and ``time.monotonic`` unless a test
    gives its own."""

    def __init__(self, store, on_wait: Callable[[str], None] = lambda message: None,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        max_wait_s = float(max_wait_s)
        if not (0 <= max_wait_s < math.inf):
            raise DatabaseError(f"max_wait_s = {max_wait_s!r} is not allowed; give a number of "
                                "seconds ≥ 0 (0: do not wait for an unreachable database)")
        # set through __dict__: __getattr__ must never see these missing
        self.__dict__.update(store=store, on_wait=on_wait, max_wait_s=max_wait_s, sleep=sleep,
                             clock=clock, waited_s=0.0, outages=0, interrupted=False)

    def __repr__(self) -> str:
        return f"RetryingStore({self.store!r}, max_wait_s={self.max_wait_s:g})"

    def __getattr__(self, name: str):
        value = getattr(self.store, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def retrying(*args, **kwargs):
            return self._call(name, value, args, kwargs)

        return retrying

    def __enter__(self) -> "RetryingStore":
        return self

    def __exit__(self, *exc) -> None:
        self.store.close()

    @property
    def _url(self) -> str:
        url = getattr(self.store, "url", None)
        return mask(url) if url is not None else repr(self.store)

    def _call(self, name: str, method, args: tuple, kwargs: dict):
        try:
            return method(*args, **kwargs)
        except Exception as error:          # noqa: BLE001 - sorted by is_unreachable
            if not is_unreachable(error):
                raise
            first = error
        if name == "claim":                 # the lost commit may have claimed them: count them
            kwargs = {**kwargs, "reclaim_running": True}
        result = self._wait(name, method, args, kwargs, first)
        if name == "record":                # every given run is finished now (see module doc)
            results = args[0] if args else kwargs["results"]
            return [r.run_id for r in results]
        return result

    def _wait(self, name: str, method, args: tuple, kwargs: dict, error: BaseException):
        """Retry ``method`` after ``error`` until it answers or ``max_wait_s`` is spent."""
        url = self._url
        start = self.clock()
        if self.max_wait_s <= 0 or self.interrupted:
            why = "after Ctrl-C" if self.interrupted else "(database wait 0 s)"
            raise DatabaseError(f"results database {url} unreachable during {name} "
                                f"({first_line(error)}); not waiting {why}") from error
        self.outages += 1
        self.on_wait(f"results database {url} unreachable ({first_line(error)}); retrying for up "
                     f"to {self.max_wait_s:.0f} s — results are held in memory, nothing is lost")
        try:
            result = self._retry(name, method, args, kwargs, error, url, start)
        except KeyboardInterrupt:
            # Ctrl-C while waiting: the bookkeeping after it (runs back to pending, the sweep's
            # status) must not wait again; it fails at once, and the next run resets the runs
            self.__dict__["interrupted"] = True
            raise
        finally:
            self.waited_s += self.clock() - start
        self.on_wait(f"results database {url} reachable again after {self.clock() - start:.0f} s")
        return result

    def _retry(self, name: str, method, args: tuple, kwargs: dict, error: BaseException, url: str,
               start: float):
        delay = FIRST_DELAY_S
        attempts = 1
        next_report = start + REPORT_EVERY_S
        while True:
            elapsed = self.clock() - start
            if elapsed >= self.max_wait_s:
                raise DatabaseError(
                    f"results database {url} still unreachable after {elapsed:.0f} s: {name} was "
                    f"tried {attempts} time(s) over {elapsed:.0f} s (the wait allowed is "
                    f"{self.max_wait_s:.0f} s, --db-wait); last error: {first_line(error)}. "
                    "Start the database (or fix the network to it) and run the same command "
                    "again: recorded results are kept, the rest resumes") from error
            self.sleep(min(delay, self.max_wait_s - elapsed))
            delay = min(2 * delay, MAX_DELAY_S)
            attempts += 1
            try:
                return method(*args, **kwargs)
            except Exception as again:      # noqa: BLE001 - sorted by is_unreachable
                if not is_unreachable(again):
                    raise
                error = again
            now = self.clock()
            if now >= next_report and now - start < self.max_wait_s:
                self.on_wait(f"results database {url} still unreachable after {now - start:.0f} s "
                             f"({first_line(error)}); retrying for up to {self.max_wait_s:.0f} s "
                             "in all")
                while next_report <= now:
                    next_report += REPORT_EVERY_S
