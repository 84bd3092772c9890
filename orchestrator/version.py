"""Which gapsweep this is, and where its results would go on this machine (``gapsweep version``).

    version_report()   # {"gapsweep": "0.1.0", "code_version": "…", "python": "3.11.9",
                       #  "host": "…", "db": "sqlite:////…/runs/gapsweep.db", "mlflow": "…"}

``gapsweep submit`` runs ``gapsweep version --json`` on a cluster's head as a short check job
before it submits a sweep (``orchestrator.jobs``): the report says whether gapsweep runs there, in
which version, and where the sweep's results would land. Light on purpose: no JAX, no Ray.
"""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path

from db.engine import mask, resolve_url

PACKAGE = "gapsweep"


def package_version() -> str:
    """The installed gapsweep's version (``importlib.metadata``), or 'unknown' when it is not
    installed (run from a checkout without ``pip install``)."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def code_version() -> str | None:
    """The git commit of this checkout (with '+dirty' when it has uncommitted changes), if any."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def version_report() -> dict[str, str | None]:
    """This installation and where ``gapsweep run`` would record by default here: the results
    database (``$GAPSWEEP_DB``, else SQLite under ``$GAPSWEEP_RUN_DIR``) and the MLflow tracking
    URI (``$MLFLOW_TRACKING_URI``, else SQLite under the run dir), passwords masked."""
    from orchestrator.tracking import default_tracking_uri     # NumPy: not for `submit`'s parser

    return {"gapsweep": package_version(), "code_version": code_version(),
            "python": platform.python_version(), "host": socket.gethostname(),
            "db": mask(resolve_url()), "mlflow": _masked_uri(default_tracking_uri())}


def _masked_uri(uri: str) -> str:
    if uri.startswith(("http://", "https://", "file:")) or "://" not in uri:
        return uri
    return mask(uri)
