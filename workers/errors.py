"""The one root of every error gapsweep raises on purpose: ``GapsweepError``.

Each package's errors derive from it (``ConfigError``, ``DataError``, ``ProgramError``,
``NumericalCanaryError`` here; ``DatabaseError``, ``StoreError``, ``SnapshotError`` in ``db``;
``SpecError``, ``SchedulingError``, ``JobError``, ``StackError``, ``TrackingError`` in
``orchestrator``), so the command layer reports them all in one place: one line, the message as
written where the error was raised, exit code 2. A ``GapsweepError``'s message is written for the
person at the keyboard: which key or value, what is allowed, what to do.

It lives here, in the lowest package, because ``db`` and ``orchestrator`` may import ``workers``
and nothing imports upwards. This module imports nothing (``db`` imports only it from
``workers``; JAX is never loaded by it).
"""


class GapsweepError(Exception):
    """An error of gapsweep's own, with a message meant for the user (no traceback needed)."""


def first_line(error: BaseException) -> str:
    """An error's first line of text, or its type's name when it has none: how a message quotes
    the error it wraps."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
