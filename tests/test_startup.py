"""Start-up: commands that need neither JAX, Ray nor MLflow import none of them.

Each command runs as a user runs it (a new process, ``python -m gapsweep``) under ``-X importtime``,
which lists every module the process imported. Wall-clock start-up is measured, not asserted:
``python benchmarks/startup.py`` (figures in benchmarks/RESULTS.md).
"""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEVER = {"jax", "jaxlib", "ray", "mlflow", "clrs", "tensorflow", "flax", "optax", "alembic",
         "matplotlib", "scipy", "pydantic", "psycopg"}
NO_DATABASE = NEVER | {"sqlalchemy"}


def imported(args, env) -> tuple[set[str], subprocess.CompletedProcess]:
    """The top-level packages a ``gapsweep ARGS`` process imported, and the process."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "gapsweep", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)$", done.stderr, re.M)
    assert names, done.stderr[-2000:]
    return {name.split(".")[0] for name in names}, done


@pytest.fixture
def env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GAPSWEEP_", "MLFLOW_"))}
    env["GAPSWEEP_RUN_DIR"] = str(tmp_path / "runs")
    return env


@pytest.mark.parametrize("args, never", [
    (["--help"], NO_DATABASE),
    (["run", "--help"], NO_DATABASE),
    (["stack", "env"], NO_DATABASE),
])
def test_commands_without_a_database_import_no_heavy_package(args, never, env):
    packages, done = imported(args, env)
    assert not packages & never, (args, sorted(packages & never))
    assert "Traceback" not in done.stderr


def test_status_reads_the_database_with_sqlalchemy_alone(env):
    assert subprocess.run([sys.executable, "-m", "gapsweep", "db", "upgrade"], env=env, cwd=ROOT,
                          capture_output=True, timeout=120).returncode == 0
    packages, done = imported(["status"], env)
    assert done.returncode == 0 and "no sweeps in" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "sqlalchemy" in packages and not packages & NEVER, sorted(packages & NEVER)
