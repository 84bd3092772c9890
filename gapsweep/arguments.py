"""Argument types and arguments shared by the ``gapsweep`` commands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not allowed; it must be a positive integer")
    return value


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
    if any(n < 2 for n in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: graph sizes must be >= 2, e.g. 16,64,256")
    return sizes


def gpu_count(text: str) -> float:
    """GPUs per task, by the sweep file's rule for ``resources.gpus``: 0 (CPU only), a fraction in
    (0, 1] or a whole number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value >= 0 and value != float("inf") and (value <= 1 or value.is_integer())):
        raise argparse.ArgumentTypeError(
            f"{text} is not allowed; give 0 (CPU only), a fraction in (0, 1] or a whole number "
            "of GPUs")
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
    try:
        if "-" in text.strip("-"):
            lo, hi = (int(x) for x in text.split("-", 1))
            if hi < lo:
                raise ValueError
            return tuple(range(lo, hi + 1))
        if "," in text:
            return tuple(int(x) for x in text.split(",") if x.strip())
        count = int(text)
        if count <= 0:
            raise ValueError
        return tuple(range(count))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a seed range (0-127), list (0,5,9) or positive count (16)") from None


DB_HELP = ("results database URL (default: $GAPSWEEP_DB, else sqlite:///<run dir>/gapsweep.db, "
           "run dir = $GAPSWEEP_RUN_DIR or ./runs)")


def add_db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, metavar="URL", help=DB_HELP)
