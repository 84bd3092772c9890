"""The ``gapsweep`` command. Thin: parses arguments, calls the library, prints for people."""

from __future__ import annotations

import argparse
import logging
import sys
import time

import numpy as np
from rich.logging import RichHandler
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from db.engine import DatabaseError
from db.snapshots import SnapshotError
from db.store import StoreError
from orchestrator import analyse_cli, compile_cli, report_cli, results_cli, stack_cli, sweep_cli
from orchestrator.arguments import int_list, positive_int
from orchestrator.schedule import SchedulingError
from orchestrator.spec import SpecError
from orchestrator.terminal import (best_step_0, best_step_0_cell, best_step_0_mark,
                                   best_step_0_note, console, err_console)
from workers import data as wdata
from workers.compile.program import ProgramError
from workers.config import ConfigError, TrainConfig


def _name_list(allowed):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(part.strip() for part in text.split(",") if part.strip())
        for name in names:
            if name not in allowed:
                raise argparse.ArgumentTypeError(
                    f"unknown value {name!r}; allowed: {', '.join(allowed)}")
        return names
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gapsweep",
        description="Experiment sweeps for neural algorithmic reasoning ('Mind The Gap' reproduction).")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="build and inspect the CLRS data cache")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    build = data_commands.add_parser(
        "build", help="generate (or verify) CLRS splits in the cache",
        description="Generate CLRS data as NumPy arrays into the content-addressed cache. "
                    "Entries already cached are verified against their checksums and reused.")
    which = build.add_mutually_exclusive_group(required=True)
    which.add_argument("--algorithm", "-a", type=_name_list(wdata.ALGORITHMS), action="extend",
                       metavar="NAME[,NAME]",
                       help=f"algorithm(s) to build; one of: {', '.join(wdata.ALGORITHMS)}")
    which.add_argument("--all", action="store_true", help="every algorithm")
    build.add_argument("--split", "-s", type=_name_list(wdata.SPLITS), action="extend",
                       metavar="SPLIT[,SPLIT]", help="train, val and/or test (default: all three)")
    build.add_argument("--train-lengths", type=int_list, default=wdata.DEFAULT_TRAIN_LENGTHS,
                       metavar="N,N,…", help="graph sizes of the train pools; the validation split "
                       "uses the largest (default: 4,7,11,13,16)")
    build.add_argument("--test-sizes", type=int_list, default=(64,), metavar="N,N,…",
                       help="graph sizes of the test split (default: 64, CLRS-30's; add 16 for "
                            "in-distribution testing)")
    build.add_argument("--pool-size", type=positive_int, default=None, metavar="GRAPHS",
                       help="graphs per train pool (default: %d, enough for 10,000 steps at "
                            "batch 32 to see each graph once)" % wdata.default_pool_size())
    build.add_argument("--processes", "-j", type=positive_int, default=None,
                       help="processes generating pools (default: all cores)")
    build.add_argument("--cache-dir", default=None,
                       help=f"cache directory (default: ${wdata.cache.CACHE_DIR_ENV} or "
                            f"{wdata.default_cache_dir()})")
    build.set_defaults(handler=cmd_data_build)

    train = commands.add_parser(
        "train", help="train one configuration's seeds locally and print a per-seed table",
        description="Train a population of seeds of one configuration (vmapped on one device). "
                    "Every training setting is a flag: --hidden-size 32, --learning-rate 0.001, "
                    "--train-lengths 4,7,16, --use-edge-info true …; defaults are the paper's "
                    "Table 9.")
    train.add_argument("--seeds", default="0-3", type=_seed_list, metavar="SEEDS",
                       help="a range 0-127, a list 0,5,9, or a count 16 (= 0-15); default 0-3")
    train.add_argument("--steps", type=positive_int, default=None,
                       help="training steps, eval_every scaled down with them to validate about "
                            "as often (unless --eval-every is given; --train-steps changes "
                            "train_steps alone)")
    train.add_argument("--json", default=None, metavar="PATH", help="write per-seed results here")
    train.add_argument("--population", type=positive_int, default=None, metavar="SEEDS",
                       help="at most this many seeds per vmapped chunk (default: as many as fit)")
    train.add_argument("--remat", action="store_true",
                       help="rematerialise the forward pass in the backward pass (less memory)")
    train.add_argument("--cache-dir", default=None, help="data cache directory")
    train.add_argument("--processes", "-j", type=positive_int, default=None,
                       help="processes generating missing data (default: all cores)")
    for key in TrainConfig.keys():
        train.add_argument("--" + key.replace("_", "-"), dest=f"config__{key}", default=None,
                           metavar="VALUE", help=argparse.SUPPRESS)
    train.set_defaults(handler=cmd_train)
    sweep_cli.add_commands(commands)
    results_cli.add_commands(commands)
    report_cli.add_commands(commands)
    compile_cli.add_commands(commands)
    stack_cli.add_commands(commands)
    analyse_cli.add_commands(commands)
    return parser


def _seed_list(text: str) -> tuple[int, ...]:
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


def _config_overrides(args: argparse.Namespace) -> dict:
    import yaml

    overrides = {}
    for name, raw in vars(args).items():
        if not name.startswith("config__") or raw is None:
            continue
        key = name[len("config__"):]
        value = yaml.safe_load(raw) if not (key == "train_lengths" and "," in raw) else \
            [yaml.safe_load(x) for x in raw.split(",") if x.strip()]
        overrides[key] = value
    return overrides


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The command line's TrainConfig: ``--steps N`` shortens it (``TrainConfig.shortened``:
    eval_every scaled down too) unless ``--eval-every`` is given, which then wins."""
    overrides = _config_overrides(args)
    if args.steps is None:
        return TrainConfig.from_dict(overrides, where="command line")
    if "eval_every" in overrides:
        return TrainConfig.from_dict({**overrides, "train_steps": args.steps}, where="command line")
    return TrainConfig.from_dict(overrides, where="command line").shortened(args.steps)


def cmd_train(args: argparse.Namespace) -> int:
    import json

    from workers.compile_cache import enable_compilation_cache
    from workers.train import TrainData, train_population

    enable_compilation_cache()
    config = _train_config(args)
    seeds = args.seeds
    console.print(f"[bold]train[/] {config.algorithm}: {len(seeds)} seed(s), "
                  f"{config.train_steps} steps (validation every {config.eval_every}), "
                  f"hidden {config.hidden_size}, "
                  f"lengths {list(config.train_lengths)}, test n = {config.test_size} "
                  f"(config {config.hash()[:12]})")
    data = TrainData.from_cache(config, wdata.DataCache(args.cache_dir),
                                args.processes or wdata.available_cores())
    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("seed-steps"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("train", total=len(seeds) * config.train_steps)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = train_population(config, data, seeds, max_population=args.population,
                                  remat=args.remat, progress=advance)
    table = Table(title=f"{config.algorithm}: per-seed results", title_justify="left")
    for column in ("seed", "status", "test score", "best val", "best step"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in result.per_seed():
        status = row["status"] if row["status"] == "done" else f"diverged@{row['diverged_step']}"
        table.add_row(str(row["seed"]), status, f"{100 * row['test_score']:.2f}%",
                      f"{100 * row['best_val_score']:.2f}%", best_step_0_cell(row["best_step"]))
    console.print(table)
    scores = result.test_score * 100
    flagged = sum(best_step_0(int(step)) for step in result.best_step)
    console.print(f"test score {scores.mean():.2f}% ± {scores.std(ddof=1) if len(scores) > 1 else 0:.2f}% "
                  f"(max {scores.max():.2f}%){best_step_0_mark(flagged)} over {len(scores)} "
                  f"seed(s); "
                  f"{result.wall_seconds:.1f}s with compilation "
                  f"({len(scores) * config.train_steps / result.wall_seconds:.0f} seed-steps/s)")
    if flagged:
        console.print(best_step_0_note(flagged, len(scores)), style="yellow")
    if result.canary is not None:
        console.print(f"numerical canary: {result.canary.summary()}")
    if args.json:
        rows = result.per_seed()
        for i, row in enumerate(rows):
            row["val_curve"] = {"steps": result.eval_steps.tolist(),
                                "scores": result.val_scores[i].tolist(),
                                "train_loss": [None if np.isnan(x) else float(x)
                                               for x in result.train_loss[i]]}
        with open(args.json, "w") as fh:
            json.dump({"config": config.to_dict(), "config_hash": config.hash(),
                       "wall_seconds": result.wall_seconds, "seeds": rows}, fh, indent=1)
        console.print(f"wrote {args.json}")
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    algorithms = tuple(wdata.ALGORITHMS) if args.all else tuple(dict.fromkeys(args.algorithm))
    splits = tuple(dict.fromkeys(args.split)) if args.split else wdata.SPLITS
    cache = wdata.DataCache(args.cache_dir)
    requests = [request for algorithm in algorithms
                for request in wdata.experiment_requests(
                    algorithm, args.train_lengths, args.pool_size, args.test_sizes, splits)]
    processes = args.processes or wdata.available_cores()
    console.print(f"[bold]data build[/]: {len(requests)} array set(s) for "
                  f"{', '.join(algorithms)} into {cache.directory} ({processes} process(es))")
    table = Table(title="CLRS data", title_justify="left")
    for column, justify in (("algorithm", "left"), ("split", "left"), ("n", "right"),
                            ("graphs", "right"), ("max T", "right"), ("mean T", "right"),
                            ("MiB", "right"), ("status", "left"), ("seconds", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    start = time.perf_counter()
    built = 0
    total_graphs = sum(r.count for r in requests)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("graphs"), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        overall = progress.add_task("all", total=total_graphs)
        for request in requests:
            task = progress.add_task(request.label, total=request.count)

            def advance(graphs: int, task=task) -> None:
                progress.advance(task, graphs)
                progress.advance(overall, graphs)

            fetched = cache.fetch(request, processes=processes, progress=advance)
            progress.remove_task(task)
            built += fetched.built
            d = fetched.data
            table.add_row(request.algorithm, request.split, str(request.size), str(d.num_graphs),
                          str(d.max_length), f"{d.lengths.mean():.1f}", f"{d.nbytes / 2**20:.1f}",
                          "built" if fetched.built else "cached", f"{fetched.seconds:.1f}")
    console.print(table)
    console.print(f"{built} built, {len(requests) - built} cached, "
                  f"{time.perf_counter() - start:.1f}s in all")
    return 0


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(console=err_console, show_path=False)])
    logging.getLogger("absl").setLevel(max(level, logging.WARNING))


def _db_error_text(err: Exception) -> str:
    """The driver's own first line, without SQLAlchemy's echo of statements and parameters (which
    may carry snapshot bytes) or any URL."""
    original = getattr(err, "orig", None) or err
    return str(original).strip().splitlines()[0] if str(original).strip() else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.handler(args)
    except (wdata.DataError, ConfigError, DatabaseError, SnapshotError, SpecError,
            SchedulingError, ProgramError, StoreError) as err:
        err_console.print(f"[bold red]error:[/] {err}")
        return 2
    except SQLAlchemyError as err:
        err_console.print(f"[bold red]database error:[/] {_db_error_text(err)}")
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted; finished cache entries are kept, partial ones discarded")
        return 130


if __name__ == "__main__":
    sys.exit(main())
