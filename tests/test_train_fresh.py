"""Training on fresh data (``train_data: fresh``): batches generated inside the training step from
the seed's and the step's keys. A seed's result does not depend on its population; seeds see
different graphs; configurations share seed k's graphs; the step trains on exactly the batch
``Trainer.fresh_batch`` shows; a trace longer than the estimated cap grows the cap and reruns,
with the result of a run that had the larger cap from the start; the quickstart trains fresh where
dm-clrs cannot be imported."""

import jax
import numpy as np
import pytest

from workers.config import ConfigError, TrainConfig
from workers.data import fresh
from workers.model.forward import unroll
from workers.model.losses import total_loss
from workers.train import TrainData, make_train

from test_train_population import assert_params_close, assert_same_results

CONFIG = TrainConfig(algorithm="bfs", hidden_size=16, train_steps=20, eval_every=10,
                     train_lengths=(4, 7), learning_rate=1e-4, train_data="fresh")


@pytest.fixture(scope="module")
def data(cache):
    return TrainData.from_cache(CONFIG, cache)


@pytest.fixture(scope="module")
def trainer(data):
    return make_train(CONFIG, data)


@pytest.fixture(scope="module")
def population(trainer):
    return trainer([0, 1, 2])


def test_fresh_data_needs_no_pools():
    assert [r.split for r in TrainData.requests(CONFIG)] == ["val", "test"]
    assert [r.split for r in TrainData.requests(CONFIG.replace(train_data="pool"))] == [
        "train", "train", "val", "test"]


def test_train_data_is_validated_and_pool_hashes_are_unchanged():
    with pytest.raises(ConfigError, match=r"train_data = 'stream' is not allowed; allowed: pool, "
                                          r"fresh"):
        TrainConfig.from_dict({"train_data": "stream"})
    with pytest.raises(ConfigError, match="pool_size = 64 has no effect with train_data = 'fresh'"):
        TrainConfig.from_dict({"train_data": "fresh", "pool_size": 64})
    # the key added after results were stored: absent from the hash while it is the default
    default = TrainConfig()
    assert "train_data" in default.to_dict()
    assert default.hash() == "2f6daa9cdc35e893f9e9794f53b644855191bdf0af28ad2c2ba388f418501c6d"
    assert TrainConfig(train_data="fresh").hash() != default.hash()


@pytest.mark.parametrize("k", [0, 2])
def test_seed_in_fresh_population_equals_seed_alone(trainer, population, k):
    alone = trainer([k])
    assert_same_results(population, k, alone, 0)
    assert_params_close(population.seed(k), alone.seed(0),
                        skip={"['processor']['a_0']['bias']", "['decoders']['pi']['w_out']['bias']",
                              "['decoders']['pi_h']['w_out']['bias']",
                              "['processor']['W_graph']['kernel']"})


def _graphs(batch):
    return batch["inputs"]["A"], batch["inputs"]["s"], batch["inputs"]["pos"]


def test_seeds_see_their_own_graphs_and_configurations_share_them(data, trainer):
    a0, a1 = trainer.fresh_batch(0, 3), trainer.fresh_batch(1, 3)
    assert not np.array_equal(a0["inputs"]["A"], a1["inputs"]["A"])
    assert not np.array_equal(a0["inputs"]["A"], trainer.fresh_batch(0, 5)["inputs"]["A"])
    # another configuration of the same algorithm and lengths: the same graphs for seed 0
    other = make_train(CONFIG.replace(hidden_size=8, learning_rate=1e-3, batch_size=8), data)
    b0 = other.fresh_batch(0, 3)
    for x, y in zip(_graphs(a0), _graphs(b0)):
        np.testing.assert_array_equal(x[:8], y)          # batch 8 is batch 32's first 8 graphs
    # another data seed: other graphs
    reseeded = make_train(CONFIG.replace(data_seed=2), data)
    assert not np.array_equal(a0["inputs"]["A"], reseeded.fresh_batch(0, 3)["inputs"]["A"])
    assert a0["inputs"]["A"].shape == (32, 7, 7) and trainer.fresh_batch(0, 2)["lengths"].shape == (32,)


def test_the_step_trains_on_the_batch_fresh_batch_shows(trainer, population):
    seeds = np.array([5, 6, 7])                      # population 3: the step compiled above
    state = trainer.start(seeds)
    params = jax.tree_util.tree_map(lambda x: np.asarray(x[1]), state.training.params)
    _, loss, _, longest = trainer.fresh_step(1, 3)(state.training, np.asarray(seeds, np.uint32),
                                                   np.uint32(1))
    batch = jax.tree_util.tree_map(jax.numpy.asarray, trainer.fresh_batch(6, 1))
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(6), 1), 1)

    @jax.jit
    def seed_loss(params, batch, key):
        outputs, hints, _ = unroll(trainer.net_config, params, batch, key, train=True)
        return total_loss(trainer.net_config, batch, outputs, hints, params, 0.0)

    np.testing.assert_allclose(np.asarray(loss)[1], seed_loss(params, batch, key), rtol=1e-5)
    assert int(np.asarray(longest)[1]) == int(batch["lengths"].max()) <= fresh.trace_cap("bfs", 7)


def test_fresh_steps_per_dispatch_give_the_same_results(data, population):
    blocked = make_train(CONFIG, data, steps_per_dispatch=4)([0, 1, 2])
    for k in range(3):
        assert_same_results(population, k, blocked, k)


def test_a_cap_too_small_grows_and_reruns_as_if_it_had_been_large(cache, caplog):
    # bfs at n = 16 starts at run.py's estimate (the longest of 1,000 graphs), below the bound 16
    config = TrainConfig(algorithm="bfs", hidden_size=4, train_steps=4, eval_every=2,
                         train_lengths=(16,), batch_size=8, learning_rate=1e-3, train_data="fresh")
    assert fresh.trace_cap("bfs", 16) < 16 and not fresh.cap_covers_every_trace("bfs", 16, 9)
    data = TrainData.from_cache(config, cache)
    small = make_train(config, data)
    small.pool_caps[0] = 2                                # too small for most traces
    with caplog.at_level("INFO", logger="workers.train"):
        grown = small([0, 1])
    assert "above the cap 2; the cap grows to" in caplog.text
    cap = small.pool_caps[0]
    assert 2 < cap <= 16
    caplog.clear()
    with caplog.at_level("INFO", logger="workers.train"):
        direct = small([0, 1])                            # the same trainer, now at the grown cap
    assert small.pool_caps[0] == cap and "the cap grows" not in caplog.text
    np.testing.assert_array_equal(grown.val_scores, direct.val_scores)
    np.testing.assert_array_equal(grown.train_loss, direct.train_loss)
    assert_params_close(grown.best_params, direct.best_params, tol=0)


_BLOCK_DMCLRS = """\
import os, sys
sys.modules["clrs"] = None          # import clrs raises ImportError, as on a GPU worker
sys.modules["tensorflow"] = None
with open(os.environ["GAPSWEEP_TEST_BLOCKED_PIDS"], "a") as fh:
    fh.write(f"{os.getpid()}\\n")
"""


def test_quickstart_trains_fresh_where_dmclrs_cannot_be_imported(tmp_path):
    """The quickstart with ``train_data: fresh``: val and test built beforehand (here, with
    dm-clrs); then the sweep runs (driver and Ray workers) where ``import clrs`` fails."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from orchestrator.plan import make_plan
    from orchestrator.spec import load_spec
    from workers.data import DataCache

    root = Path(__file__).resolve().parents[1]
    spec = yaml.safe_load((root / "sweeps" / "quickstart.yaml").read_text())
    spec["base"].pop("pool_size")
    spec["base"]["train_data"] = "fresh"
    sweep = tmp_path / "quickstart_fresh.yaml"
    sweep.write_text(yaml.safe_dump(spec))
    cache = DataCache(tmp_path / "cache")
    for configuration in make_plan(load_spec(sweep)).configurations:
        TrainData.from_cache(configuration.config, cache)        # val and test only
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(_BLOCK_DMCLRS)
    pids = tmp_path / "blocked-pids"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(block), str(root)]),
           "GAPSWEEP_TEST_BLOCKED_PIDS": str(pids), "GAPSWEEP_RUN_DIR": str(tmp_path / "runs")}
    check = subprocess.run([sys.executable, "-c", "import clrs"], env=env, capture_output=True,
                           text=True)
    assert check.returncode == 1 and "ModuleNotFoundError" in check.stderr
    proc = subprocess.run([sys.executable, "-m", "gapsweep", "run", str(sweep), "--steps", "20",
                           "--max-seeds", "2", "--no-mlflow", "--cache-dir", str(tmp_path / "cache")],
                          env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "4 seed(s) recorded (0 diverged), 0 failed" in proc.stdout, proc.stdout[-3000:]
    assert len(set(pids.read_text().split())) >= 3     # the checks, the driver, a Ray worker
