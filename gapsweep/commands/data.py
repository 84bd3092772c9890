"""``gapsweep data build``: CLRS splits into the content-addressed cache (``workers.data``)."""

from __future__ import annotations

import argparse
import time

from rich.table import Table

from gapsweep import arguments
from gapsweep.arguments import int_list, name_list, positive_int
from gapsweep.interrupt import CACHE
from gapsweep.terminal import console
from workers import data as wdata
from workers import rules


def add_commands(commands) -> None:
    data = commands.add_parser("data", help="build and inspect the CLRS data cache")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    build = data_commands.add_parser(
        "build", help="generate (or verify) CLRS splits in the cache",
        description="Generate CLRS data as NumPy arrays into the content-addressed cache. "
                    "Entries already cached are verified against their checksums and reused.")
    which = build.add_mutually_exclusive_group(required=True)
    which.add_argument("--algorithm", "-a", type=name_list(wdata.ALGORITHMS), action="extend",
                       metavar="NAME[,NAME]",
                       help=f"algorithm(s) to build; one of: {', '.join(wdata.ALGORITHMS)}")
    which.add_argument("--all", action="store_true", help="every algorithm")
    build.add_argument("--split", "-s", type=name_list(wdata.SPLITS), action="extend",
                       metavar="SPLIT[,SPLIT]", help="train, val and/or test (default: all three)")
    build.add_argument("--train-lengths", type=int_list, default=wdata.DEFAULT_TRAIN_LENGTHS,
                       metavar="N,N,…", help="graph sizes of the train pools; the validation split "
                       "uses the largest (default: 4,7,11,13,16)")
    build.add_argument("--test-sizes", type=int_list, default=(64,), metavar="N,N,…",
                       help="graph sizes of the test split (default: 64, CLRS-30's; add 16 for "
                            "in-distribution testing)")
    build.add_argument("--pool-size", type=arguments.bounded_int(rules.MAX_POOL_SIZE), default=None, metavar="GRAPHS",
                       help="graphs per train pool (default: %d, enough for 10,000 steps at "
                            "batch 32 to see each graph once)" % wdata.default_pool_size())
    build.add_argument("--processes", "-j", type=positive_int, default=None,
                       help="processes generating pools (default: all cores)")
    build.add_argument("--cache-dir", default=None,
                       help=f"cache directory (default: ${wdata.cache.CACHE_DIR_ENV} or "
                            f"{wdata.default_cache_dir()})")
    build.set_defaults(handler=cmd_data_build,
                       interrupted=f"{CACHE}; run the same command again to build the rest")


def cmd_data_build(args: argparse.Namespace) -> int:
    from gapsweep.progress import DataView          # the engine: kept off `gapsweep --help`
    from orchestrator.engine import build_data

    algorithms = tuple(wdata.ALGORITHMS) if args.all else tuple(dict.fromkeys(args.algorithm))
    splits = tuple(dict.fromkeys(args.split)) if args.split else wdata.SPLITS
    cache = wdata.DataCache(args.cache_dir)
    requests = [request for algorithm in algorithms
                for request in wdata.experiment_requests(
                    algorithm, args.train_lengths, args.pool_size, args.test_sizes, splits)]
    processes = args.processes or wdata.available_cores()
    console.print(f"[bold]data build[/]: {len(requests)} array set(s) for "
                  f"{', '.join(algorithms)} into {cache.directory} ({processes} process(es))")
    start = time.perf_counter()
    fetched = build_data(requests, cache, processes, DataView(overall=True))
    table = Table(title="CLRS data", title_justify="left")
    for column, justify in (("algorithm", "left"), ("split", "left"), ("n", "right"),
                            ("graphs", "right"), ("max T", "right"), ("mean T", "right"),
                            ("MiB", "right"), ("status", "left"), ("seconds", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    for request, one in zip(requests, fetched):
        d = one.data
        table.add_row(request.algorithm, request.split, str(request.size), str(d.num_graphs),
                      str(d.max_length), f"{d.lengths.mean():.1f}", f"{d.nbytes / 2**20:.1f}",
                      "built" if one.built else "cached", f"{one.seconds:.1f}")
    console.print(table)
    built = sum(one.built for one in fetched)
    console.print(f"{built} built, {len(requests) - built} cached, "
                  f"{time.perf_counter() - start:.1f}s in all")
    return 0
