import atexit
import os
import shutil
import tempfile

import pytest

# dm-clrs imports TensorFlow; keep its C++ start-up chatter out of test logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Compiled executables, the MLflow/SQLite run directory: never in the user's home or checkout.
_scratch = tempfile.mkdtemp(prefix="gapsweep-tests-")
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
os.environ.setdefault("GAPSWEEP_XLA_CACHE_DIR", os.path.join(_scratch, "xla"))
os.environ.setdefault("GAPSWEEP_RUN_DIR", os.path.join(_scratch, "runs"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One data cache shared by the whole session (tests that damage entries use their own)."""
    return tmp_path_factory.mktemp("data-cache")


@pytest.fixture(scope="session")
def cache(cache_dir):
    from workers.data import DataCache

    return DataCache(cache_dir)


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on a free loopback port for the whole session (stopped after)."""
    from db.local_postgres import LocalPostgres

    with LocalPostgres() as server:
        yield server


_database_counter = iter(range(10**6))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    server = request.getfixturevalue("postgres")
    return server.create_database(f"test_{next(_database_counter)}")
