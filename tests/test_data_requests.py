"""Requests: defaults from run.py / CLRS-30, validation messages, stable cache keys."""

import json
import subprocess
import sys

import pytest

from workers.data import (ALGORITHMS, DataCache, DataError, default_pool_size, experiment_requests,
                          make_request)


def test_test_split_defaults_are_clrs30():
    r = make_request("bfs", "test")
    assert (r.size, r.count, r.seed, r.random_pos) == (64, 32, 3, False)
    assert r.edge_probabilities == (0.5,)
    assert r.exact_clrs_recipe


def test_val_and_train_defaults_follow_run_py():
    val = make_request("dfs", "val")
    assert (val.size, val.count, val.random_pos) == (16, 64, True)
    assert val.edge_probabilities == pytest.approx([0.1 * i for i in range(1, 10)])
    train = make_request("dfs", "train", 7)
    assert train.count == default_pool_size() == 64_000  # 10,000 steps × 32 / 5 lengths
    assert train.random_pos and not train.exact_clrs_recipe


def test_experiment_requests_cover_every_split():
    requests = experiment_requests("bellman_ford", (4, 16), pool_size=100, test_sizes=(64, 16))
    assert [(r.split, r.size) for r in requests] == [
        ("train", 4), ("train", 16), ("val", 16), ("test", 64), ("test", 16)]
    assert all(r.count == 100 for r in requests if r.split == "train")


def test_unknown_algorithm_names_the_allowed_ones():
    with pytest.raises(DataError) as err:
        make_request("bfz", "test")
    assert "'bfz'" in str(err.value)
    for name in ALGORITHMS:
        assert name in str(err.value)


def test_unknown_split_names_the_allowed_ones():
    with pytest.raises(DataError, match="'dev'.*train, val, test"):
        make_request("bfs", "dev")


@pytest.mark.parametrize("lengths", [(1, 4), (4, 0), (4, 2.5), ()])
def test_train_lengths_below_two_are_rejected(lengths):
    with pytest.raises(DataError, match="train length|empty"):
        experiment_requests("bfs", lengths)


@pytest.mark.parametrize("count", [0, -5])
def test_non_positive_pool_size_is_rejected(count):
    with pytest.raises(DataError, match=fr"pool size {count} .*an integer in \[1, 1,000,000\]"):
        make_request("bfs", "train", 16, count)


def test_unwritable_cache_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(DataError, match="not writable.*--cache-dir or set GAPSWEEP_CACHE_DIR"):
        DataCache(blocker / "cache")


def test_key_hash_is_stable_across_processes():
    code = ("from workers.data import make_request;"
            "print(make_request('bfs_seq', 'train', 11, 999, 7).key_hash('2.0.3'))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = make_request("bfs_seq", "train", 11, 999, 7).key_hash("2.0.3")
    assert other.stdout.strip() == here


def test_key_changes_with_every_setting():
    base = make_request("bfs", "train", 11, 999, 7)
    variants = [make_request("dfs", "train", 11, 999, 7), make_request("bfs", "train", 13, 999, 7),
                make_request("bfs", "train", 11, 998, 7), make_request("bfs", "train", 11, 999, 8)]
    hashes = {r.key_hash("2.0.3") for r in [base, *variants]} | {base.key_hash("2.0.4")}
    assert len(hashes) == 6
    json.dumps(base.key("2.0.3"))  # the key is plain JSON
