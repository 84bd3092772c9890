"""``gapsweep track sync``: bring MLflow up to the results database.

    gapsweep track sync                        # every sweep whose tracking outbox has runs
    gapsweep track sync table1 --mlflow http://mlflow:5000 --db postgresql://…

The results database is the source of truth and MLflow a projection of it: every recorded run
waits in the database's tracking outbox until MLflow shows it (``orchestrator.tracking_sync``).
A tracking server that was down, a driver killed between the two, or ``--no-mlflow`` leaves runs
there; this command logs them (what MLflow already has is never logged twice). The next
``gapsweep run`` of a sweep does the same for that sweep before it trains.
"""

from __future__ import annotations

from gapsweep.arguments import add_db_argument
from gapsweep.terminal import console, err_console


def add_commands(commands) -> None:
    track = commands.add_parser(
        "track", help="MLflow as a projection of the results database (track sync)")
    actions = track.add_subparsers(dest="action", required=True, metavar="ACTION")
    sync = actions.add_parser(
        "sync", help="log to MLflow what the database recorded and MLflow lacks",
        description="Replays the results database's tracking outbox into MLflow: the seeds "
                    "recorded while the tracking server was down, by a driver killed between "
                    "the database and MLflow, or with --no-mlflow. Seeds MLflow already has are "
                    "skipped, so running it again logs nothing twice.")
    sync.add_argument("sweep", nargs="?", default=None, metavar="SWEEP",
                      help="only this sweep (default: every sweep with runs in the outbox)")
    add_db_argument(sync)
    sync.add_argument("--mlflow", default=None, metavar="URI",
                      help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                           "sqlite:///<run dir>/mlflow.db)")
    sync.set_defaults(handler=cmd_sync, interrupted=(
        "what was logged is logged and out of the outbox; run it again for the rest"))


def cmd_sync(args) -> int:
    from db.store import ResultsStore
    from orchestrator.probes import probe_mlflow
    from orchestrator.tracking import default_tracking_uri
    from orchestrator.tracking_sync import sync_sweep

    tracking_uri = args.mlflow or default_tracking_uri()
    with ResultsStore(args.db) as store:
        waiting = store.outbox_counts()
        names = [args.sweep] if args.sweep is not None else list(waiting)
        if args.sweep is not None:
            store.sweep(args.sweep)                 # an unknown name: the store's error
        if not names or not any(waiting.get(n) for n in names):
            console.print(f"MLflow is up to date with {store.display_url}: no recorded run is "
                          "waiting to be logged", soft_wrap=True)
            return 0
        probe_mlflow(tracking_uri)
        for name in names:
            def said(label: str, n: int, name=name) -> None:
                err_console.print(f"{name}/{label}: {n} seed(s) logged", soft_wrap=True)

            done = sync_sweep(store, name, tracking_uri, said)
            how = ("child runs per seed" if done.per_seed_runs
                   else "configuration runs with seeds.csv")
            console.print(f"{name}: {done.caught_up} seed(s) MLflow lacked logged to experiment "
                          f"{done.experiment!r} at {tracking_uri} ({how}); {done.in_outbox} "
                          "run(s) were waiting in the outbox", soft_wrap=True)
    return 0
