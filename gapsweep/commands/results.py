"""``gapsweep`` commands that read or maintain the results database:
``db upgrade``, ``db current``, ``status``, ``runs``, ``snapshot export``."""

from __future__ import annotations

import os
from pathlib import Path

from rich.table import Table

from db.engine import make_engine, mask, resolve_url
from gapsweep.arguments import add_db_argument
from gapsweep.render import counts_score_cell, print_best_step_0_note
from gapsweep.terminal import console
from orchestrator.score_text import best_step_0, best_step_0_cell, best_step_0_note

# The handlers import the results store (SQLAlchemy, NumPy) and, for --job, the job client (Ray)
# when they run: `gapsweep --help` and the commands of other modules load neither.

JOB_ADDRESS_HELP = ("the cluster's Ray dashboard address, for --job (default: $RAY_ADDRESS when "
                    "it is an http(s) address, else a running 'gapsweep stack')")


def add_commands(commands) -> None:
    db = commands.add_parser("db", help="maintain the results database")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_commands.add_parser(
        "upgrade", help="create or migrate the database schema to this version's head",
        description="Apply the Alembic migrations the database has not had yet (idempotent).")
    add_db_argument(upgrade)
    upgrade.set_defaults(handler=cmd_db_upgrade)
    current = db_commands.add_parser("current", help="show the database's schema revision")
    add_db_argument(current)
    current.set_defaults(handler=cmd_db_current)

    status = commands.add_parser(
        "status", help="list sweeps and their run counts by status, or a submitted job's state")
    add_db_argument(status)
    status.add_argument("--job", metavar="JOB_ID",
                        help="a job from 'gapsweep submit': its state, then its sweep's counts "
                             "from the database the job records in")
    status.add_argument("--address", help=JOB_ADDRESS_HELP)
    status.set_defaults(handler=cmd_status)

    runs = commands.add_parser(
        "runs", help="per-configuration run counts and scores of a sweep, or its runs one by one",
        description="The sweep named, or else the newest. Without --config: one line per "
                    "configuration (run counts by status, test score mean ± std (max) over "
                    "finished seeds). With --config: one line per run.")
    runs.add_argument("sweep", nargs="?", help="sweep name (default: the newest sweep)")
    runs.add_argument("--config", metavar="LABEL",
                      help="list this configuration's runs: its label, or a part of it that "
                           "names it alone (bfs for algorithm=bfs)")
    runs.add_argument("--status", choices=("pending", "running", "done", "failed", "diverged"),
                      help="one line per run with this status: of --config's configuration, "
                           "else of every configuration")
    add_db_argument(runs)
    runs.add_argument("--job", metavar="JOB_ID",
                      help="a job from 'gapsweep submit': its sweep, from the database the job "
                           "records in (instead of --db)")
    runs.add_argument("--address", help=JOB_ADDRESS_HELP)
    runs.set_defaults(handler=cmd_runs)

    snapshot = commands.add_parser("snapshot", help="parameter snapshots")
    snapshot_commands = snapshot.add_subparsers(dest="snapshot_command", required=True,
                                                metavar="ACTION")
    export = snapshot_commands.add_parser(
        "export", help="write a run's parameter snapshot (.npz, checksum verified) to a file",
        description="Write a run's parameters as .npz (numpy.load(path) reads it; one array per "
                    "parameter, named by its path such as params/gat/W_value/kernel). The "
                    "recorded sha256 is checked first: a damaged or altered snapshot is refused.")
    export.add_argument("run_id", type=int, metavar="RUN_ID", help="runs.id of the seed")
    export.add_argument("--kind", default="best", choices=("best", "final", "init", "compiled"))
    export.add_argument("--output", "-o", default=None, metavar="PATH",
                        help="file to write (default: run-<id>-<kind>.npz)")
    add_db_argument(export)
    export.set_defaults(handler=cmd_snapshot_export)


def _store(args, check_schema: bool = True):
    from db.store import ResultsStore

    return ResultsStore(args.db, check_schema=check_schema)


def cmd_db_upgrade(args) -> int:
    from db.migrate import head_revision, upgrade     # alembic: only the db commands load it

    url = resolve_url(args.db)
    engine = make_engine(url)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"{mask(url)}: already at head ({after}); nothing to do")
    else:
        console.print(f"{mask(url)}: upgraded {before or 'empty'} → {after} (head {head_revision()})")
    return 0


def cmd_db_current(args) -> int:
    from db.migrate import current_revision, head_revision   # alembic, as above

    url = resolve_url(args.db)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            revision = current_revision(conn)
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if revision == head else "run: gapsweep db upgrade"
    console.print(f"{mask(url)}: revision {revision or 'none (empty)'}, head {head} ({state})")
    return 0


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def cmd_status(args) -> int:
    only = None
    if args.job:
        from orchestrator import jobs

        if args.db is not None:
            jobs.results_location(args.job, None, db=args.db)       # refused: the job says where
        info = jobs.job_info(args.job, jobs.dashboard_address(args.address))
        console.print(f"job {args.job}: {info.status}" + (f" — {info.message}" if info.message
                                                          else ""), soft_wrap=True)
        try:
            only, args.db = jobs.results_location(args.job, info.metadata)
        except (jobs.NoResultsYet, jobs.NoResultsMetadata) as why:
            console.print(str(why), soft_wrap=True)
            return 0
    with _store(args) as store:
        sweeps = [s for s in store.sweeps() if only is None or s.name == only]
        counts = store.counts()
        untracked = store.outbox_counts()
    if not sweeps:
        console.print(f"no sweeps in {store.display_url}" if only is None else
                      f"no sweep {only} in {store.display_url} yet", soft_wrap=True)
        return 0
    table = Table(title=f"sweeps in {store.display_url}", title_justify="left")
    for column in ("sweep", "experiment", "status", "configs", "done", "diverged", "failed",
                   "running", "pending", "created (UTC)"):
        table.add_column(column, justify="left" if column in ("sweep", "experiment", "status")
                         else "right", no_wrap=True)
    for sweep in sweeps:
        mine = [c for c in counts if c.sweep == sweep.name]
        total = {s: sum(c.runs.of(s) for c in mine) for s in ("done", "diverged", "failed",
                                                              "running", "pending")}
        table.add_row(sweep.name, sweep.experiment, sweep.status, str(len(mine)),
                      *(str(total[s]) for s in total),
                      sweep.created_at.strftime("%Y-%m-%d %H:%M") if sweep.created_at else "")
    console.print(table)
    behind = {s.name: untracked[s.name] for s in sweeps if untracked.get(s.name)}
    if behind:
        console.print("not in MLflow yet (recorded while it was down or with --no-mlflow): "
                      + ", ".join(f"{name} {n} run(s)" for name, n in behind.items())
                      + "; 'gapsweep track sync' logs them", soft_wrap=True, highlight=False)
    return 0


def cmd_runs(args) -> int:
    if args.job:
        from orchestrator import jobs

        _, sweep, args.db = jobs.job_results(args.job, jobs.dashboard_address(args.address),
                                             args.db)
        args.sweep = args.sweep or sweep
    with _store(args) as store:
        sweep = store.sweep(args.sweep)            # without a name: the newest sweep
        shown = sweep.name if args.sweep else f"{sweep.name} (the newest sweep)"
        if args.config or args.status:          # one line per run: of a configuration, or of all
            labels = ([store.configuration_label(sweep.id, args.config)] if args.config else
                      [c.label for c in store.configurations(sweep.id)])
            rows = [(label, r) for label in labels
                    for r in store.runs_of(sweep.id, label, status=args.status)]
            what = f"{shown} / {labels[0]}" if args.config else shown
            console.print(f"{what}: runs" + (f" ({args.status})" if args.status else ""),
                          soft_wrap=True, highlight=False)
            _print_runs(rows, with_label=not args.config)
            return 0
        counts = store.counts(sweep.id)
    console.print(f"{shown} in {store.display_url}: configurations", soft_wrap=True,
                  highlight=False)                  # the header: one line, never cut
    table = Table()
    for column in ("configuration", "algorithm", "done", "diverged", "failed", "running",
                   "pending", "test % mean ± std (max)"):
        table.add_column(column, justify="left" if column in ("configuration", "algorithm")
                         else "right", no_wrap=True)
    for c in counts:
        score = counts_score_cell(c)
        table.add_row(c.label, c.algorithm, str(c.runs.done), str(c.runs.diverged),
                      str(c.runs.failed), str(c.runs.running), str(c.runs.pending), score)
    console.print(table)
    print_best_step_0_note(counts)
    return 0


def _print_runs(rows, with_label: bool) -> None:
    """One line per run (``(label, RunRow)`` pairs); the configuration column when they mix."""
    table = Table()
    columns = (("configuration",) if with_label else ()) + (
        "run id", "seed", "status", "attempts", "test %", "best val %", "best step", "wall s",
        "error")
    for column in columns:
        table.add_column(column, justify="left" if column in ("configuration", "status", "error")
                         else "right", no_wrap=column != "error")
    for label, r in rows:
        table.add_row(*((label,) if with_label else ()), str(r.id), str(r.seed), r.status,
                      str(r.attempts), _pct(r.test_score), _pct(r.best_val_score),
                      best_step_0_cell(r.best_step),
                      "—" if r.wall_seconds is None else f"{r.wall_seconds:.1f}",
                      (r.error or "").splitlines()[-1][:80] if r.error else "")
    console.print(table)
    if not rows:
        console.print("no such runs")
    if flagged := sum(best_step_0(r.best_step) for _, r in rows):
        console.print(best_step_0_note(flagged, sum(r.best_step is not None for _, r in rows)),
                      style="yellow")


def cmd_snapshot_export(args) -> int:
    with _store(args) as store:
        payload = store.snapshot_bytes(args.run_id, args.kind)
        info = store.snapshot_info(args.run_id, args.kind)
    path = Path(args.output or f"run-{args.run_id}-{args.kind}.npz")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
    console.print(f"wrote {path} ({info.byte_size:,} bytes, sha256 {info.sha256[:16]}…, "
                  f"verified)")
    return 0
