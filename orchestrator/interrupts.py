"""Ctrl-C within a second: work that native code would hold up, and clean-up that must finish.

    result = interruptible(train_population, config, data, seeds)   # Ctrl-C even mid-XLA-compile
    with interrupts_held():                                          # one more Ctrl-C waits
        store.release(run_ids)

Python runs a signal handler only between bytecodes of the main thread, so a long XLA compile
(seconds to minutes in native code) would hold Ctrl-C back until it returns. ``interruptible``
runs such work in a worker thread the main thread waits on in short steps; on Ctrl-C the thread
is left behind (``abandoned()``): the process must then end without waiting for it (the command
layer's exit does). Only for work that writes nothing itself, whose result the caller writes.
"""

from __future__ import annotations

import contextlib
import signal
import threading

_abandoned = False


def abandoned() -> bool:
    """Whether Ctrl-C left an ``interruptible`` worker thread running in this process."""
    return _abandoned


def interruptible(function, *args, **kwargs):
    """``function(*args, **kwargs)``, in a worker thread when called from the main thread; its
    result, or its exception re-raised. Ctrl-C raises KeyboardInterrupt here within 0.1 s."""
    global _abandoned
    if threading.current_thread() is not threading.main_thread():
        return function(*args, **kwargs)
    box: dict = {}

    def work():
        try:
            box["result"] = function(*args, **kwargs)
        except BaseException as error:          # noqa: BLE001 - re-raised in the main thread
            box["error"] = error

    thread = threading.Thread(target=work, name=getattr(function, "__name__", "work"), daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        _abandoned = True
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


@contextlib.contextmanager
def interrupts_held():
    """The bookkeeping after Ctrl-C (tasks cancelled, their runs back to pending, the sweep's
    status) runs to its end: one more Ctrl-C meanwhile is held back (people press it twice); a
    third interrupts it after all. Only in the main thread (where Python handles signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = []

    def hold(signum, frame):
        presses.append(signum)
        if len(presses) >= 2:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
