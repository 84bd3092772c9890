"""What Ctrl-C leaves behind, said per command: ``gapsweep.main`` prints ``interrupted_message``.

A command states its own sentence with ``parser.set_defaults(interrupted=...)``: a string, or a
function of the parsed arguments; without one, the line says only that it was interrupted.
"""

from __future__ import annotations

import atexit
import os
import sys

from orchestrator.interrupts import abandoned

CACHE = ("the data sets already built are kept in the cache, the one being built is discarded "
         "(entries are written whole or not at all)")


# Where a KeyboardInterrupt raised by the handler would be printed as "Exception ignored in" and
# lost: garbage-collector callbacks (JAX registers one, which runs during `import jax`) and
# finalisers. A Ctrl-C that lands there is sent again once they are over.
_SWALLOWING_FRAMES = frozenset({"_xla_gc_callback", "__del__"})
_RESEND_AFTER_S = 0.01


def on_ctrl_c(signum, frame) -> None:
    """SIGINT → KeyboardInterrupt, as Python's own handler does, unless the signal landed where
    the exception would be swallowed (see ``_SWALLOWING_FRAMES``): then the signal is sent again
    a moment later, from a timer thread, and lands in ordinary code."""
    here = frame
    while here is not None:
        if here.f_code.co_name in _SWALLOWING_FRAMES:
            import threading

            timer = threading.Timer(_RESEND_AFTER_S, os.kill, (os.getpid(), signum))
            timer.daemon = True
            timer.start()
            return
        here = here.f_back
    raise KeyboardInterrupt


def interrupted_message(args) -> str:
    said = getattr(args, "interrupted", None)
    if callable(said):
        said = said(args)
    return f"interrupted: {said}" if said else "interrupted"


def exit_now(code: int) -> None:
    """End the process after Ctrl-C without the interpreter's teardown of every imported module
    (seconds with TensorFlow, JAX and Ray loaded): the exit handlers still run (data pools, Ray,
    logging), the streams are flushed, then ``os._exit``. Every file gapsweep writes is closed
    by then (written whole, by ``with`` blocks or atomic renames). With ``abandoned`` work the
    exit handlers are skipped (``orchestrator.interrupts``): they could wait on the thread
    still in native code."""
    try:
        if not abandoned():
            atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
