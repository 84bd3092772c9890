"""Process pools whose workers leave Ctrl-C to their parent (data generation, MLflow logging).

A terminal sends Ctrl-C's SIGINT to the whole foreground process group: spawned pool workers
would each die with a KeyboardInterrupt traceback, in the middle of their work, while the parent
is still deciding what to do. Workers started from ``SPAWN_WITHOUT_SIGINT`` have SIGINT blocked
from birth (the signal mask survives the exec), so only the parent sees it; it then stops them
itself (``kill_workers``).

    pool = ProcessPoolExecutor(2, mp_context=SPAWN_WITHOUT_SIGINT)
    ...
    kill_workers(pool)          # on Ctrl-C: at once, never waiting on their work
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing.context
import signal
import threading


class _SigintBlockedProcess(multiprocessing.context.SpawnProcess):
    def start(self):
        if threading.current_thread() is not threading.main_thread():
            return super().start()
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)   # a pending SIGINT fires now


class _SpawnContext(multiprocessing.context.SpawnContext):
    Process = _SigintBlockedProcess


SPAWN_WITHOUT_SIGINT = _SpawnContext()


def kill_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """SIGKILL a pool's worker processes and shut it down without waiting: its futures fail as
    the pool breaks (never cancelled here: Python 3.11's manager thread would then raise on
    them). Only for work whose results the parent alone would have written."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.kill()
    pool.shutdown(wait=False)
