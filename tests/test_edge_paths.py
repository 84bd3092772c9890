"""The low-rank edge path computes what the materialised one computes, from the same parameters.

Per algorithm, with and without ``use_edge_info``: one parameter pytree (the two paths initialise
the same one, bit for bit), and on a real dm-clrs batch the same outputs, hint logits, attention
and loss (1e-5) and the same gradients (1e-4), in training mode (true hints fed in) and in
evaluation mode (the network's own soft hints fed back)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workers.config import TrainConfig
from workers.data import make_request
from workers.errors import GapsweepError
from workers.model import make_net_config
from workers.model.forward import init_params, unroll
from workers.model.losses import total_loss
from workers.model.network import NetConfig

KEY = jax.random.PRNGKey(11)
HIDDEN = 32      # above every algorithm's edge channels (K ≤ 5), so auto takes the low-rank path


def paths(config: TrainConfig, probe_table):
    return (make_net_config(config, probe_table, edge_path="materialised"),
            make_net_config(config, probe_table, edge_path="low_rank"))


def close(a, b, tol, what):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, atol=tol * scale, rtol=tol, err_msg=what)


@pytest.fixture(scope="module", params=["bfs", "dfs", "bellman_ford", "bfs_seq", "dfs_light"])
def algorithm_batch(request, cache):
    n = 5 if request.param == "bfs_seq" else 6
    data = cache.get(make_request(request.param, "train", n, 16, seed=3)).take(np.arange(4))
    batch = jax.tree_util.tree_map(jnp.asarray, data.as_batch())
    return request.param, data.probe_table, batch


@pytest.mark.parametrize("use_edge_info", [False, True], ids=["plain", "edge_info"])
def test_low_rank_equals_materialised(algorithm_batch, use_edge_info):
    algorithm, probe_table, batch = algorithm_batch
    config = TrainConfig(algorithm=algorithm, hidden_size=HIDDEN, nb_heads=2,
                         use_edge_info=use_edge_info)
    reference, low_rank = paths(config, probe_table)
    assert low_rank.low_rank_edges and not reference.low_rank_edges
    assert make_net_config(config, probe_table).low_rank_edges        # auto: K < H
    params = init_params(reference, KEY, batch)
    same = init_params(low_rank, KEY, batch)
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(same)
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(same)):
        np.testing.assert_array_equal(a, b)
    if use_edge_info:   # W_info starts at zero; give it weight so the edge-info term counts
        params = dict(params)
        processor = dict(params["processor"])
        info = processor["W_info"]["kernel"]
        processor["W_info"] = {"kernel": jax.random.normal(KEY, info.shape) / np.sqrt(info.shape[0])}
        params["processor"] = processor

    def everything(net_config):
        """Both modes' predictions, the loss and its gradients: one compilation per path."""
        def loss(p):
            out, hints, _ = unroll(net_config, p, batch, KEY, train=True)
            return total_loss(net_config, batch, out, hints), (out, hints)
        (value, train_preds), grads = jax.value_and_grad(loss, has_aux=True)(params)
        out, hints, att = unroll(net_config, params, batch, KEY, train=False)
        return value, grads, train_preds, (out, hints, att)
    ref_loss, ref_grads, ref_train, ref_eval = jax.jit(everything, static_argnums=0)(reference)
    value, grads, train_preds, eval_preds = jax.jit(everything, static_argnums=0)(low_rank)

    for mode, ref, got in (("train", ref_train, train_preds), ("eval", ref_eval, eval_preds)):
        for kind, ref_group, group in zip(("output", "hint"), ref, got):
            for name in ref_group:
                close(group[name], ref_group[name], 1e-5, f"{kind} {name} ({mode})")
    close(eval_preds[2], ref_eval[2], 1e-5, "attention (eval)")
    close(value, ref_loss, 1e-5, "loss")
    for (path, g), ref in zip(jax.tree_util.tree_leaves_with_path(grads),
                              jax.tree_util.tree_leaves(ref_grads)):
        close(g, ref, 1e-4, f"gradient {jax.tree_util.keystr(path)}")


def test_edge_channels_and_the_automatic_choice(cache):
    """K counts the edge channels the encoders write; auto goes low-rank only where K < H."""
    expected = {"bfs": 3, "bellman_ford": 3, "dfs": 4}   # A, adj, pi_h (+ dfs's s_prev)
    for algorithm, k in expected.items():
        data = cache.get(make_request(algorithm, "train", 4, 8, seed=3))
        small = make_net_config(TrainConfig(algorithm=algorithm, hidden_size=k), data.probe_table)
        large = dataclasses.replace(small, hidden_size=k + 1)
        assert small.edge_channels == k, algorithm
        assert not small.low_rank_edges and large.low_rank_edges
        no_hints = make_net_config(TrainConfig(algorithm=algorithm, hidden_size=128,
                                               hint_mode="none"), data.probe_table)
        assert no_hints.edge_channels == 2, algorithm          # A and adj only


def test_an_unknown_edge_path_is_one_error_naming_the_choices():
    with pytest.raises(GapsweepError, match="edge_path: 'fast' is not allowed; allowed: auto, "
                                            "low_rank, materialised"):
        NetConfig(probe_rows=(), edge_path="fast")


# -- the setting, from the sweep file and the command line to the network -------------------------

def test_sweep_file_edge_path(tmp_path):
    from orchestrator.spec import SpecError, load_spec

    path = tmp_path / "sweep.yaml"
    path.write_text("name: x\nseeds: 4\n")
    assert load_spec(path).edge_path == "auto"
    path.write_text("name: x\nseeds: 4\nedge_path: materialised\n")
    assert load_spec(path).edge_path == "materialised"
    path.write_text("name: x\nseeds: 4\nedge_path: fast\n")
    with pytest.raises(SpecError, match=r":3: edge_path: 'fast' is not allowed; allowed: auto, "
                                        r"low_rank, materialised"):
        load_spec(path)


def test_the_task_passes_edge_path_to_the_trainer():
    from orchestrator.schedule import _train_remote

    class Reporter:
        class report:
            @staticmethod
            def remote(*args):
                pass

    calls = []

    def trainer(config, seeds, **kwargs):
        calls.append(kwargs)
        return "output"

    assert _train_remote({}, [0], None, None, Reporter, 0, trainer, 1, "materialised") == "output"
    assert calls[-1]["edge_path"] == "materialised" and "steps_per_dispatch" not in calls[-1]
    _train_remote({}, [0], None, None, Reporter, 0, trainer, 1, "auto")
    assert "edge_path" not in calls[-1]          # trainers without the argument still work


def test_trainer_builds_the_network_on_the_path_asked_for(cache):
    from workers.train import TrainData, make_train

    config = TrainConfig(algorithm="bfs", hidden_size=8, train_lengths=(4,), train_steps=2,
                         eval_every=1, pool_size=16, length_generalize=False)
    data = TrainData.from_cache(config, cache)
    assert make_train(config, data).net_config.low_rank_edges
    assert not make_train(config, data, edge_path="materialised").net_config.low_rank_edges
    with pytest.raises(GapsweepError, match="edge_path: 'dense' is not allowed"):
        make_train(config, data, edge_path="dense")


def test_train_cli_refuses_an_unknown_edge_path():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "gapsweep", "train", "--edge-path", "fast"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--edge-path" in proc.stderr and "'fast'" in proc.stderr
    assert "choose from 'auto', 'low_rank', 'materialised'" in proc.stderr
