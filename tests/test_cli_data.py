"""`gapsweep data build` as a person runs it: a real subprocess, real cache, readable errors."""

import os
import subprocess
import sys

import pytest


def gapsweep(*args, cache_dir=None):
    env = {**os.environ}
    if cache_dir is not None:
        env["GAPSWEEP_CACHE_DIR"] = str(cache_dir)
    return subprocess.run([sys.executable, "-m", "gapsweep", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_build_reports_what_it_built_then_reuses_it(tmp_path):
    args = ("data", "build", "--algorithm", "dfs_light", "--pool-size", "40",
            "--train-lengths", "4,7", "--test-sizes", "16", "-j", "1")
    first = gapsweep(*args, cache_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "4 array set(s) for dfs_light" in first.stdout
    assert "4 built, 0 cached" in first.stdout
    for row in ("train", "val", "test"):
        assert row in first.stdout
    assert not first.stderr.strip(), first.stderr  # no TensorFlow chatter, no warnings
    second = gapsweep(*args, cache_dir=tmp_path)
    assert second.returncode == 0 and "0 built, 4 cached" in second.stdout
    assert len(list(tmp_path.rglob("*.npz"))) == 4


def test_split_selection_and_cache_dir_flag(tmp_path):
    out = gapsweep("data", "build", "-a", "bfs", "--split", "test", "--cache-dir",
                   str(tmp_path / "c"), cache_dir=tmp_path / "unused")
    assert out.returncode == 0, out.stderr
    assert "1 built" in out.stdout
    assert len(list((tmp_path / "c").rglob("*.npz"))) == 1
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize("args, message", [
    (("-a", "bfz"), "unknown value 'bfz'; allowed: bfs, dfs, bellman_ford, bfs_seq, dfs_light"),
    (("-a", "bfs", "--train-lengths", "1,4"), "train length 1 is not allowed"),
    (("-a", "bfs", "--pool-size", "0"), "0 is not allowed; it must be an integer in [1, 1,000,000]"),
    (("-a", "bfs", "--split", "dev"), "unknown value 'dev'; allowed: train, val, test"),
    ((), "one of the arguments --algorithm/-a --all is required"),
])
def test_bad_input_names_the_value_and_what_is_allowed(tmp_path, args, message):
    out = gapsweep("data", "build", *args, cache_dir=tmp_path)
    assert out.returncode == 2
    assert message in " ".join(out.stderr.split()), out.stderr


def test_unwritable_cache_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = gapsweep("data", "build", "-a", "bfs", "--cache-dir", str(blocker / "x"))
    assert out.returncode == 2
    assert "is not writable" in " ".join(out.stderr.split())
