"""Several training steps per compiled call (``steps_per_dispatch``): the same results, bit for
bit, as one call per step, from a handful of compilations; bad values are refused."""

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from workers.config import TrainConfig
from workers.errors import GapsweepError
from workers.train import TrainData, Trainer, make_train, train_population

SEEDS = [0, 1, 2]
# 12 steps, validated after steps 0, 5, 10: blocks of 1, 5, 5 steps and an unvalidated tail of 1
# (tested in distribution, at n = 16: the n = 64 test split's long traces would cost minutes)
BFS = TrainConfig(algorithm="bfs", hidden_size=8, train_steps=12, eval_every=5,
                  train_lengths=(4, 7), pool_size=128, learning_rate=1e-3, length_generalize=False)
DFS = TrainConfig(algorithm="dfs", hidden_size=8, train_steps=9, eval_every=4,
                  train_lengths=(4, 7), pool_size=128, learning_rate=1e-3, length_generalize=False)


@pytest.fixture(scope="module")
def bfs_data(cache):
    return TrainData.from_cache(BFS, cache)


@pytest.fixture(scope="module")
def bfs_one(bfs_data):
    """One call per step: the reference, and how many executables it compiled."""
    trainer = make_train(BFS, bfs_data)
    return trainer(SEEDS), trainer


def assert_identical(a, b):
    """Two PopulationResults equal bit for bit (all but the wall time)."""
    assert a.status == b.status
    for name in ("seeds", "diverged_step", "test_score", "best_val_score", "best_step",
                 "eval_steps", "val_scores", "train_loss"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.hint_accuracy.keys() == b.hint_accuracy.keys()
    for hint in a.hint_accuracy:
        np.testing.assert_array_equal(a.hint_accuracy[hint], b.hint_accuracy[hint], err_msg=hint)
    leaves_a = jax.tree_util.tree_leaves_with_path(a.best_params)
    leaves_b = jax.tree_util.tree_leaves(b.best_params)
    assert len(leaves_a) == len(leaves_b)
    for (path, x), y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("k", [3, 64])    # 3 divides no 5-step block; 64 exceeds them all
def test_blocked_dispatch_equals_one_step_per_call(bfs_data, bfs_one, k):
    reference, one = bfs_one
    trainer = make_train(BFS, bfs_data, steps_per_dispatch=k)
    result = trainer(SEEDS)
    assert_identical(result, reference)
    assert result.train_loss.shape == (3, 3) and list(result.eval_steps) == [0, 5, 10]
    # the seeds trained (their losses differ) and the second block's loss is not the first's
    assert len({float(x) for x in result.train_loss[:, 1]}) == 3
    # one compiled block, holding a branch per (length, padded hint steps) the run uses: as many as
    # the one-step-per-call trainer compiled steps; no per-step executable
    assert len(trainer._train_blocks) == 1 and not trainer._train_steps
    (variants, steps, population), = trainer._train_blocks
    assert set(variants) == {(li, steps) for li, steps, _ in one._train_steps}
    assert steps == min(k, 5) and population == 3 and 2 <= len(variants) <= 6


def test_blocked_dispatch_records_divergence_as_one_step_per_call(bfs_data, bfs_one):
    _, one = bfs_one
    params = jax.tree_util.tree_map(np.array, one.initial_params(SEEDS))  # host copies: a
    params["processor"]["W_value"]["kernel"][1] = np.nan                    # run donates its start
    reference = one(SEEDS, initial_params=params)
    result = make_train(BFS, bfs_data, steps_per_dispatch=4)(SEEDS, initial_params=params)
    assert result.status == ["done", "diverged", "done"] and result.diverged_step[1] == 0
    assert np.isnan(result.train_loss[1]).all()
    assert_identical(result, reference)


def test_blocked_dispatch_equals_one_step_per_call_dfs(cache):
    data = TrainData.from_cache(DFS, cache)
    reference = train_population(DFS, data, SEEDS, max_population=3, canary=False)
    result = train_population(DFS, data, SEEDS, max_population=3, canary=False,
                              steps_per_dispatch=4)
    assert_identical(result, reference)


@pytest.mark.parametrize("value, shown", [(0, "0"), (1025, "1025"), (-3, "-3"), (2.0, "2.0"),
                                          (True, "true"), ("4", "'4'"), (None, "null")])
def test_bad_steps_per_dispatch_is_refused(bfs_data, value, shown):
    message = (f"steps_per_dispatch = {shown} is not allowed; it must be an integer in "
               f"[1, 1,024]")
    with pytest.raises(GapsweepError, match=re.escape(message)):
        Trainer(BFS, bfs_data, steps_per_dispatch=value)
    with pytest.raises(GapsweepError, match="steps_per_dispatch"):
        train_population(BFS, bfs_data, SEEDS, steps_per_dispatch=value)


# -- the sweep file's steps_per_dispatch and its way to the worker's trainer -----------------------

def test_sweep_file_steps_per_dispatch(tmp_path):
    from orchestrator.spec import SpecError, load_spec

    path = tmp_path / "sweep.yaml"
    path.write_text("name: x\nseeds: 4\n")
    assert load_spec(path).steps_per_dispatch == 1
    path.write_text("name: x\nseeds: 4\nsteps_per_dispatch: 8\n")
    assert load_spec(path).steps_per_dispatch == 8
    for bad in ("0", "1025", "2.5", "true"):
        path.write_text(f"name: x\nseeds: 4\nsteps_per_dispatch: {bad}\n")
        with pytest.raises(SpecError) as err:
            load_spec(path)
        assert f"{path}:3: steps_per_dispatch: " in str(err.value)
        if bad in ("0", "1025"):
            assert (f"steps_per_dispatch: {bad} is not allowed; give a number of training steps "
                    "per compiled call in [1, 1,024]") in str(err.value)


class _Reporter:
    class report:
        @staticmethod
        def remote(*args):
            pass


def test_the_task_passes_steps_per_dispatch_to_the_trainer():
    from orchestrator.schedule import _train_remote

    calls = []

    def trainer(config, seeds, **kwargs):
        calls.append(kwargs)
        return "output"

    assert _train_remote({}, [0], None, None, _Reporter, 0, trainer, 8) == "output"
    assert calls[-1]["steps_per_dispatch"] == 8
    # at the default, trainers that take no such argument (tests' fakes, synthetic) still work
    _train_remote({}, [0], None, None, _Reporter, 0, trainer, 1)
    assert "steps_per_dispatch" not in calls[-1] and calls[-1]["population"] is None


def test_train_cli_steps_per_dispatch(tmp_path, cache_dir):
    rows = {}
    for k in ("1", "3"):
        out = tmp_path / f"k{k}.json"
        proc = subprocess.run(
            [sys.executable, "-m", "gapsweep", "train", "--algorithm", "bfs", "--seeds", "0-1",
             "--steps", "5", "--hidden-size", "4", "--eval-every", "2", "--train-lengths", "4,7",
             "--pool-size", "128", "--length-generalize", "false", "--steps-per-dispatch", k,
             "--json", str(out)],
            capture_output=True, text=True, timeout=600,
            env={**os.environ, "GAPSWEEP_CACHE_DIR": str(cache_dir)})
        assert proc.returncode == 0, proc.stderr
        rows[k] = json.loads(out.read_text())["seeds"]
    assert rows["3"] == rows["1"] and [r["val_curve"]["steps"] for r in rows["1"]] == [[0, 2, 4]] * 2


@pytest.mark.parametrize("value", ["0", "1025", "two"])
def test_train_cli_rejects_bad_steps_per_dispatch(value):
    proc = subprocess.run([sys.executable, "-m", "gapsweep", "train", "--steps-per-dispatch",
                           value], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    expected = (f"{value} is not allowed; it must be an integer in [1, 1,024]" if value != "two"
                else "'two' is not an integer")
    assert "--steps-per-dispatch" in proc.stderr and expected in " ".join(proc.stderr.split())
