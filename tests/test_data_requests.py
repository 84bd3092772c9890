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


def test_a_configuration_without_random_positions_trains_and_validates_on_fixed_ones(tmp_path):
    """``random_pos: false`` reaches the train pools and the validation split (as dm-clrs's
    run.py applies its flag to both samplers); the test split is fixed either way."""
    import numpy as np

    from workers.config import TrainConfig
    from workers.data.fresh import generate_batch
    from workers.train import TrainData

    small = {"algorithm": "bfs", "train_lengths": [5], "train_steps": 2, "eval_every": 1,
             "batch_size": 2}
    config = TrainConfig.from_dict({**small, "random_pos": False})
    train, val, test = TrainData.requests(config)
    assert (train.split, val.split, test.split) == ("train", "val", "test")
    assert not train.random_pos and not val.random_pos and not test.random_pos
    default = TrainData.requests(TrainConfig.from_dict(small))
    assert default[0].random_pos and default[1].random_pos
    assert train.key_hash("any") != default[0].key_hash("any")
    pool = DataCache(tmp_path).get(train)
    fixed = np.float32(np.arange(5) / 5)
    np.testing.assert_array_equal(pool.inputs["pos"], np.broadcast_to(fixed, pool.inputs["pos"].shape))
    import jax

    fresh = generate_batch(jax.random.PRNGKey(0), "bfs", 5, 2, 5, random_pos=False)
    np.testing.assert_allclose(np.asarray(fresh.batch["inputs"]["pos"]),
                               np.broadcast_to(np.arange(5) / 5, (2, 5)), rtol=1e-6)
    with pytest.raises(DataError, match="random_pos applies to the train and val splits"):
        make_request("bfs", "test", random_pos=True)
