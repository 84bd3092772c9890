"""What Ctrl-C leaves behind, said per command: ``gapsweep.main`` prints ``interrupted_message``.

A command states its own sentence with ``parser.set_defaults(interrupted=...)``: a string, or a
function of the parsed arguments; without one, the line says only that it was interrupted.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

CACHE = ("the data sets already built are kept in the cache, the one being built is discarded "
         "(entries are written whole or not at all)")


def interrupted_message(args) -> str:
    said = getattr(args, "interrupted", None)
    if callable(said):
        said = said(args)
    return f"interrupted: {said}" if said else "interrupted"


abandoned = False          # set when Ctrl-C left a worker thread running: exit without waiting


def interruptible(function, *args, **kwargs):
    """``function(*args, **kwargs)`` in a worker thread that this (the main) thread waits on in
    short steps, so that Ctrl-C acts within a fraction of a second even while the function sits
    in native code that never returns to Python (a long XLA compile). On Ctrl-C the thread is
    abandoned (``abandoned``: ``gapsweep.main`` then exits at once, never waiting on it); use it
    only for work that writes nothing, whose result the caller alone would write."""
    global abandoned
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
        abandoned = True
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


def exit_now(code: int) -> None:
    """End the process after Ctrl-C without the interpreter's teardown of every imported module
    (seconds with TensorFlow, JAX and Ray loaded): the exit handlers still run (data pools, Ray,
    logging), the streams are flushed, then ``os._exit``. Every file gapsweep writes is closed
    by then (written whole, by ``with`` blocks or atomic renames). With ``abandoned`` work the
    exit handlers are skipped: they could wait on the thread still in native code."""
    try:
        if not abandoned:
            atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
