"""``gapsweep version [--json]``: which gapsweep this is and where its results would go here
(``orchestrator.version``). ``gapsweep submit`` runs ``gapsweep version --json`` on a cluster's
head to check that it runs gapsweep, and the same version, before it submits a sweep."""

from __future__ import annotations

import json

from gapsweep.terminal import console
from orchestrator.version import version_report


def add_commands(commands) -> None:
    version = commands.add_parser(
        "version", help="this gapsweep's version, code commit, and default results stores",
        description="The installed gapsweep's version, the git commit of its code, Python, the "
                    "host, and where 'gapsweep run' records by default on this machine: the "
                    "results database ($GAPSWEEP_DB, else SQLite under $GAPSWEEP_RUN_DIR) and "
                    "the MLflow tracking URI ($MLFLOW_TRACKING_URI, else SQLite there).")
    version.add_argument("--json", action="store_true",
                         help="one JSON object on one line (what 'gapsweep submit' reads)")
    version.set_defaults(handler=cmd_version)


def cmd_version(args) -> int:
    report = version_report()
    if args.json:
        console.out(json.dumps(report, sort_keys=True), highlight=False)
        return 0
    console.print(f"gapsweep {report['gapsweep']} (code {report['code_version'] or 'unknown'}, "
                  f"Python {report['python']}, host {report['host']}); results: {report['db']}; "
                  f"MLflow: {report['mlflow']}", soft_wrap=True, highlight=False)
    return 0
