"""Argument types and arguments shared by the ``gapsweep`` commands."""

from __future__ import annotations

import argparse

from workers import rules


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not rules.is_positive_integer(value):
        raise argparse.ArgumentTypeError(f"{value} is not allowed; {rules.POSITIVE_INTEGER}")
    return value


def bounded_int(high: int, low: int = 1):
    """An integer flag in [low, high], by the rule (``workers.rules``) of the setting it stands
    for, e.g. ``bounded_int(rules.MAX_STEPS)`` for ``--steps``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not rules.is_integer_in(value, low, high):
            raise argparse.ArgumentTypeError(f"{value} is not allowed; "
                                             f"{rules.integer_range(low, high)}")
        return value
    parse.__name__ = "integer"              # argparse names the type in its messages
    return parse


STEPS = bounded_int(rules.MAX_STEPS)                # --steps: train_steps' bound
SEED_COUNT = bounded_int(rules.MAX_RUNS)            # --max-seeds, --population: seeds' bound
STEPS_PER_DISPATCH = bounded_int(rules.MAX_STEPS_PER_DISPATCH)   # --steps-per-dispatch


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values:
        raise argparse.ArgumentTypeError("the list is empty")
    return values


def graph_sizes(text: str) -> tuple[int, ...]:
    sizes = int_list(text)
    if not all(rules.is_graph_size(n) for n in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: {rules.GRAPH_SIZES}, e.g. 16,64,256")
    return sizes


def gpu_count(text: str) -> float:
    """GPUs per task, by the sweep file's rule for ``resources.gpus``: 0 (CPU only), a fraction in
    (0, 1] or a whole number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not rules.is_gpu_count(value):
        raise argparse.ArgumentTypeError(f"{text} is not allowed; {rules.GPUS}")
    return value


def name_list(allowed):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(part.strip() for part in text.split(",") if part.strip())
        for name in names:
            if name not in allowed:
                raise argparse.ArgumentTypeError(
                    f"unknown value {name!r}; allowed: {', '.join(allowed)}")
        return names
    return parse


def seed_list(text: str) -> tuple[int, ...]:
    """``--seeds``: a range 0-127, a list 0,5,9 or a count 16, by the sweep file's rule for
    ``seeds`` (``workers.rules.seeds``)."""
    text = text.strip()
    try:
        if "," in text:
            value = [int(x) for x in text.split(",") if x.strip()]
        elif text.isdigit():
            value = int(text)
        else:
            value = text
    except ValueError:
        value = text
    try:
        return rules.seeds(value)
    except rules.SeedsError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


DB_HELP = ("results database URL (default: $GAPSWEEP_DB, else sqlite:///<run dir>/gapsweep.db, "
           "run dir = $GAPSWEEP_RUN_DIR or ./runs)")


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, metavar="URL", help=DB_HELP)


def positive_seconds(text: str) -> float:
    """A positive, finite number of seconds (a timeout)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text} is not allowed; give a positive number of seconds")
    return value
