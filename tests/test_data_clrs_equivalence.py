"""Our splits against dm-clrs itself: the CLRS-30 test split, regenerated exactly."""

import numpy as np
import pytest

import clrs
from workers.data import make_request


def _assert_split_equals_feedback(data, feedback, spec):
    """Every input, hint, output and length of `data` equals dm-clrs's feedback (scalars compared
    in float32, the dtype the cache stores and the model computes in)."""
    ours = {"input": data.inputs, "hint": data.hints, "output": data.outputs}
    theirs = {"input": feedback.features.inputs, "hint": feedback.features.hints,
              "output": feedback.outputs}
    for stage, points in theirs.items():
        assert sorted(ours[stage]) == sorted(dp.name for dp in points), stage
        for dp in points:
            expected = np.asarray(dp.data)
            if spec[dp.name][2] == "scalar":
                expected = expected.astype(np.float32)
            got = ours[stage][dp.name]
            assert got.shape == expected.shape, (stage, dp.name)
            np.testing.assert_array_equal(got, expected, err_msg=f"{stage} {dp.name}")
            assert data.probe_table[dp.name][:3] == spec[dp.name], dp.name
    np.testing.assert_array_equal(data.lengths, feedback.features.lengths)


@pytest.mark.parametrize("algorithm", ["bfs", "dfs", "bellman_ford"])
def test_test_split_equals_dm_clrs_seed_3(cache, algorithm):
    data = cache.get(make_request(algorithm, "test"))
    sampler, spec = clrs.build_sampler(algorithm, seed=3, num_samples=32, length=64)
    _assert_split_equals_feedback(data, sampler.next(), spec)
    assert data.size == 64 and data.num_graphs == 32
    # Test positions are not randomised: pos is i / n.
    np.testing.assert_allclose(data.inputs["pos"], np.tile(np.arange(64) / 64, (32, 1)))


def test_test_split_equals_the_dataset_builders_own_data(cache):
    """dm-clrs's tfds builder (what `clrs.create_dataset` serves) makes the same arrays."""
    from clrs._src.dataset import CLRSDataset

    builder = CLRSDataset.__new__(CLRSDataset)  # skip tfds's directory set-up; use its recipe
    builder._builder_config = next(c for c in CLRSDataset.BUILDER_CONFIGS if c.name == "bfs_test")
    builder._create_data(single_sample=False)
    official = builder._instantiated_dataset
    data = cache.get(make_request("bfs", "test"))
    flat = {f"{stage}_{name}": array for stage, group in
            (("input", data.inputs), ("hint", data.hints), ("output", data.outputs))
            for name, array in group.items()}
    flat["lengths"] = data.lengths
    assert sorted(flat) == sorted(official)
    for key, array in official.items():
        np.testing.assert_array_equal(flat[key], np.asarray(array).astype(flat[key].dtype),
                                      err_msg=key)
        assert np.array_equal(np.asarray(array), flat[key]), key  # no value changed by the cast


def test_in_distribution_test_split_uses_the_same_recipe(cache):
    data = cache.get(make_request("bellman_ford", "test", 16))
    sampler, spec = clrs.build_sampler("bellman_ford", seed=3, num_samples=32, length=16)
    _assert_split_equals_feedback(data, sampler.next(), spec)


def test_train_pool_follows_run_py(cache):
    data = cache.get(make_request("bfs", "train", 11, 700))
    assert data.num_graphs == 700 and data.size == 11
    pos = data.inputs["pos"]
    # Random positions: sorted, in [0, 1), not the fixed i / n grid.
    assert np.all(np.diff(pos, axis=1) > 0) and pos.min() >= 0 and pos.max() < 1
    assert not np.allclose(pos[0], np.arange(11) / 11)
    # Edge probability drawn per graph from 0.1 … 0.9: densities spread widely.
    density = data.inputs["adj"].reshape(700, -1).mean(axis=1)
    assert density.min() < 0.2 and density.max() > 0.8
    # Hints padded with zeros beyond each graph's true length.
    for b in np.flatnonzero(data.lengths < data.max_length)[:20]:
        assert not data.hints["reach_h"][data.lengths[b]:, b].any()


def test_val_split_has_random_positions(cache):
    data = cache.get(make_request("dfs", "val", 16))
    assert (data.num_graphs, data.size) == (64, 16)
    assert not np.allclose(data.inputs["pos"], np.arange(16) / 16)
