"""``gapsweep train``: one configuration's seeds, vmapped on this machine, as a per-seed table."""

from __future__ import annotations

import argparse

import numpy as np
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from gapsweep.arguments import SEED_COUNT, STEPS, STEPS_PER_DISPATCH, positive_int, seed_list
from gapsweep.interrupt import CACHE
from gapsweep.terminal import console
from orchestrator.interrupts import interruptible
from orchestrator.score_text import (best_step_0, best_step_0_cell, best_step_0_mark,
                                     best_step_0_note)
from workers import data as wdata
from workers import rules
from workers.config import TrainConfig


def add_commands(commands) -> None:
    train = commands.add_parser(
        "train", help="train one configuration's seeds locally and print a per-seed table",
        description="Train a population of seeds of one configuration (vmapped on one device). "
                    "Every training setting is a flag: --hidden-size 32, --learning-rate 0.001, "
                    "--train-lengths 4,7,16, --use-edge-info true …; defaults are the paper's "
                    "Table 9.")
    train.add_argument("--seeds", default="0-3", type=seed_list, metavar="SEEDS",
                       help="a range 0-127, a list 0,5,9, or a count 16 (= 0-15); default 0-3")
    train.add_argument("--steps", type=STEPS, default=None,
                       help="training steps, eval_every scaled down with them to validate about "
                            "as often (unless --eval-every is given; --train-steps changes "
                            "train_steps alone)")
    train.add_argument("--json", default=None, metavar="PATH", help="write per-seed results here")
    train.add_argument("--population", type=SEED_COUNT, default=None, metavar="SEEDS",
                       help="at most this many seeds per vmapped chunk (default: as many as fit)")
    train.add_argument("--steps-per-dispatch", type=STEPS_PER_DISPATCH, default=1, metavar="K",
                       help="training steps per compiled call (default 1; the same results, less "
                            "dispatch overhead for tiny models)")
    train.add_argument("--edge-path", choices=rules.EDGE_PATHS, default="auto",
                       help="how layers reading edge features compute (the same function): "
                            "low_rank composes them with the edge encoders, materialised is "
                            "dm-clrs's order of work; auto (default) takes low_rank where the "
                            "algorithm's edge channels are fewer than the hidden units")
    train.add_argument("--remat", action="store_true",
                       help="rematerialise the forward pass in the backward pass (less memory)")
    train.add_argument("--cache-dir", default=None, help="data cache directory")
    train.add_argument("--processes", "-j", type=positive_int, default=None,
                       help="processes generating missing data (default: all cores)")
    for key in TrainConfig.keys():
        train.add_argument("--" + key.replace("_", "-"), dest=f"config__{key}", default=None,
                           metavar="VALUE", help=argparse.SUPPRESS)
    train.set_defaults(handler=cmd_train, interrupted=_interrupted)


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


def _interrupted(args) -> str:
    return ("no seed's result was kept (training results are printed"
            + (f" and written to {args.json}" if args.json else "") + f" only at the end); {CACHE}")


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

    # JAX: only when training (gapsweep --help stays light)
    from workers.xla_cache import enable_compilation_cache
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

        result = interruptible(train_population, config, data, seeds,       # Ctrl-C even while
                               max_population=args.population, remat=args.remat,  # XLA compiles
                               progress=advance, steps_per_dispatch=args.steps_per_dispatch,
                               edge_path=args.edge_path)
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
