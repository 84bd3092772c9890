import os

import pytest

# dm-clrs imports TensorFlow; keep its C++ start-up chatter out of test logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One data cache shared by the whole session (tests that damage entries use their own)."""
    return tmp_path_factory.mktemp("data-cache")


@pytest.fixture(scope="session")
def cache(cache_dir):
    from workers.data import DataCache

    return DataCache(cache_dir)
