"""Compiled DFS: why ``dfs_light`` cannot be compiled into this architecture (the witness of
``docs/compiled_dfs.md``), checked on dm-clrs's own traces and on networks of every kind the
project builds; ``gapsweep compile dfs_light`` runs it."""

import json

import numpy as np
import pytest

from gapsweep.main import main
from workers.compile import dfs_light_witness as witness
from workers.errors import GapsweepError
from workers.model.network import NetConfig

SMALL_ARCHITECTURES = {
    "baseline": {"hidden_size": 8},
    "paper modifications": {"hidden_size": 8, "use_pre_att_bias": True, "simplify_decoders": True},
    "wide processor": {"hidden_size": 16, "nb_heads": 2, "nb_msg_passing_steps": 3,
                       "use_edge_info": True, "use_ln": False},
}


@pytest.mark.parametrize("algorithm", ["dfs_light", "dfs"])
def test_witness_graphs_as_dmclrs_runs_them(algorithm):
    """dm-clrs's own traces: node 1 is white, points at itself and has no edges in both graphs
    up to row 2, turns grey at row 3 in 'early' and stays white there in 'late'; the project's
    JAX traces (which the witness uses) are the same arrays."""
    from workers.data.generate import split_of_graphs

    graphs = witness.witness_graphs(3)
    data = split_of_graphs(algorithm, [[a] for a in graphs.values()])
    colour = np.argmax(data.hints["color"][:, :, witness.WATCHED_NODE], -1)     # [T, 2]
    assert colour[:3].tolist() == [[0, 0]] * 3
    assert colour[3].tolist() == [0, 0] if algorithm == "dfs" else [1, 0]
    assert (data.hints["pi_h"][:, :, witness.WATCHED_NODE] == witness.WATCHED_NODE).all()
    if algorithm == "dfs_light":
        batch = witness.witness_batch(3)
        assert witness.first_divergence(batch) == 3
        for name in ("pi_h", "color"):
            np.testing.assert_array_equal(np.asarray(batch["hints"][name]), data.hints[name])
        np.testing.assert_array_equal(np.asarray(batch["inputs"]["A"]), data.inputs["A"])


@pytest.mark.parametrize("label", sorted(SMALL_ARCHITECTURES))
def test_no_graph_attention_network_tells_the_witness_graphs_apart(label):
    """Whatever the parameters, node 1's colour logits are bit for bit the same in both graphs
    up to the row where the truths differ, so one of the two is wrong there."""
    net_config = witness.net_config_for(3, **SMALL_ARCHITECTURES[label])
    for seed in range(3):
        run = witness.run_witness(witness.random_params(net_config, seed), net_config)
        assert run.diverges == 3 and run.logits.shape == (3, 2, 3)
        assert run.largest_difference == 0.0, (label, seed)
        assert run.truth[-1].tolist() == [witness.GREY, 0]
        assert run.predicted[-1, 0] == run.predicted[-1, 1]
        assert not run.both_right


def test_the_witness_holds_on_larger_graphs():
    """n = 16: the other thirteen nodes are isolated too; nothing changes for node 1."""
    net_config = witness.net_config_for(16, hidden_size=8)
    run = witness.run_witness(witness.random_params(net_config, 0, 16), net_config, 16)
    assert run.diverges == 3 and run.largest_difference == 0.0 and not run.both_right


def test_full_attention_sees_the_rest_of_the_graph():
    """dm-clrs's gatv2_full (every pair attends): node 1's logits now differ between the graphs
    (the obstruction is the attention's reach, nothing else)."""
    net_config = witness.net_config_for(3, hidden_size=8, attention="full")
    differences = [witness.run_witness(witness.random_params(net_config, seed), net_config)
                   .largest_difference for seed in range(3)]
    assert min(differences) > 1e-4, differences


def test_attention_scope_is_checked():
    with pytest.raises(GapsweepError, match="attention: 'global' is not allowed; allowed: graph, full"):
        NetConfig(probe_rows=(), attention="global")


def test_compile_dfs_light_command(tmp_path, monkeypatch, capsys):
    """``gapsweep compile dfs_light``: the witness table, the conclusion, --json, exit status 1
    (nothing compiled); options that only apply to compiling are refused by name."""
    monkeypatch.setattr(witness, "WITNESS_ARCHITECTURES", (
        ("baseline", {"hidden_size": 8}), ("full", {"hidden_size": 8, "attention": "full"})))
    out = tmp_path / "witness.json"
    assert main(["compile", "dfs_light", "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "dfs_light cannot be compiled into this architecture" in printed
    assert "largest difference 0" in printed
    doc = json.loads(out.read_text())
    assert doc["compiled"] is False and doc["watched_node"] == 1
    assert len(doc["runs"]) == 8
    for run in doc["runs"]:
        assert run["diverges_at_row"] == 3 and run["truth_at_divergence"] == [1, 0]
        assert not run["both_right"]
        assert (run["largest_logit_difference"] == 0.0) == (run["architecture"]["attention"] == "graph")

    assert main(["compile", "dfs_light", "--hidden-size", "8", "--certify"]) == 2
    assert "--hidden-size, --certify do not apply to dfs_light" in capsys.readouterr().err


@pytest.mark.parametrize("split, n", [("val", 16), ("test", 64)])
def test_dfs_trace_facts_hold_on_dmclrs_traces(cache, split, n):
    """The facts a one-step-per-hint DFS network relies on (``dfs_trace_facts``), on dm-clrs's
    dfs traces: p ∈ 0.1 … 0.9 at n = 16 (several trees per graph), CLRS-30's test split at 64."""
    from workers.compile.dfs_trace_facts import check_facts
    from workers.data import make_request

    data = cache.get(make_request("dfs", split, n))
    counts = check_facts(data.inputs, data.hints, data.lengths)
    assert counts.all_hold, (counts.checked, counts.held)
    rows = int(np.sum(data.lengths))
    assert counts.checked["local_row_type"] == counts.checked["last_node_sees_fins"] == rows
    assert counts.checked["time_step"] == 2 * n * data.num_graphs    # one DISC, one FIN per node
    assert counts.checked["root_time"] >= data.num_graphs
    assert counts.checked["tree_child"] == counts.trees > 0
    assert counts.largest_time_error < 2e-7
    assert 0 < counts.cascades < counts.trees
    look_ahead_checks = data.num_graphs * (3 * n - 2) * n      # every node, rows 0 … 3n - 3
    for fact in ("search_known_two_rows_ahead", "child_knows_in_time", "finisher_knows_in_time"):
        assert counts.checked[fact] == look_ahead_checks


def test_the_look_ahead_needs_the_finishing_child(cache):
    """Without its second source (a grey child about to finish) the look-ahead misses the
    searches that follow a FIN, and the children chosen there do not know in time."""
    from workers.compile.dfs_trace_facts import check_facts
    from workers.data import make_request

    data = cache.get(make_request("dfs", "val", 16))
    counts = check_facts(data.inputs, data.hints, data.lengths, via_children=False)
    for fact in ("search_known_two_rows_ahead", "child_knows_in_time", "finisher_knows_in_time"):
        assert counts.held[fact] < counts.checked[fact], fact
    for fact in ("local_row_type", "tree_child", "root_time", "time_step", "last_node_counts"):
        assert counts.held[fact] == counts.checked[fact], fact


def test_dfs_trace_facts_fail_on_a_broken_trace(cache):
    """A fact that cannot fail proves nothing: move one tree child's parent and one time."""
    from workers.compile.dfs_trace_facts import TREE, check_facts, row_types
    from workers.data import make_request

    data = cache.get(make_request("dfs", "val", 16))
    hints = {k: np.array(v[:, :1]) for k, v in data.hints.items()}
    types = row_types(hints, 0, int(data.lengths[0]))
    k = types.index(TREE)
    c = int(np.argmax(hints["s_last"][k, 0]))
    hints["s_prev"][k, 0, c] = (hints["s_prev"][k, 0, c] + 1) % 16
    hints["time"][k + 1:, 0] += 0.001
    counts = check_facts({"A": data.inputs["A"][:1]}, hints, data.lengths[:1])
    assert counts.held["tree_child"] == counts.checked["tree_child"] - 1
    assert counts.held["time_step"] < counts.checked["time_step"]
    assert not counts.all_hold


# -- compiled DFS ---------------------------------------------------------------------------------


def compiled_dfs(n, hidden_size=128):
    from workers.compile.dfs_compiler import compile_dfs
    from workers.config import TrainConfig
    from workers.data.fresh import probe_table
    from workers.model import make_net_config

    config = TrainConfig.from_dict({"algorithm": "dfs", "hidden_size": hidden_size, "nb_heads": 4,
                                    "use_ln": False, "use_edge_info": True})
    net_config = make_net_config(config, probe_table("dfs", n))
    return net_config, compile_dfs(net_config, n)


def assert_exact(result, net_config):
    assert result.pointers_correct == result.pointers_total
    for hint, score in result.hint_scores.items():
        if net_config.probe_table[hint].type == "scalar":
            assert score < 1e-10, (hint, score)
        else:
            assert score == 1.0, (hint, score)


def sparse_graphs(n, count, seed):
    """Directed Erdős–Rényi graphs from p = 0.02 (many trees) to 0.9, as dm-clrs's dfs takes them."""
    rng = np.random.default_rng(seed)
    ps = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.9)
    return [[(rng.random((n, n)) < ps[i % len(ps)]).astype(float)] for i in range(count)]


@pytest.mark.parametrize("n", [16, 64])
def test_compiled_dfs_is_exact_on_the_test_recipe(cache, n):
    """Every hint of every step and the output, fed its own soft predictions (evaluation mode):
    n = 64 is CLRS-30's test split, n = 16 the same recipe at 16 nodes."""
    from workers.compile.verify import evaluate
    from workers.data import make_request

    data = cache.get(make_request("dfs", "test", n))
    net_config, params = compiled_dfs(n)
    result = evaluate(net_config, params, data, batch_size=32)
    assert_exact(result, net_config)
    assert set(result.hint_scores) == {"pi_h", "color", "d", "f", "s_prev", "s", "u", "v",
                                       "s_last", "time"}


def test_compiled_dfs_is_exact_on_graphs_with_many_trees():
    """Sparse graphs restart DFS often (the new root, node n - 1 giving up v, the time at a
    root): dm-clrs's own runs as the truth."""
    from workers.compile.dfs_trace_facts import check_facts
    from workers.compile.verify import evaluate
    from workers.data.generate import split_of_graphs

    data = split_of_graphs("dfs", sparse_graphs(16, 70, 1))
    roots = check_facts(data.inputs, data.hints, data.lengths).checked["root_time"]
    assert roots > 4 * data.num_graphs
    net_config, params = compiled_dfs(16)
    assert_exact(evaluate(net_config, params, data, batch_size=70), net_config)


@pytest.mark.parametrize("n", [2, 3])
def test_compiled_dfs_is_exact_on_every_graph_up_to_3_nodes(n):
    """Every directed graph on n nodes, self-loops included (2^(n²): 512 at n = 3)."""
    from workers.compile.verify import evaluate
    from workers.data.generate import split_of_graphs

    bits = (np.arange(2 ** (n * n))[:, None] >> np.arange(n * n)) & 1
    data = split_of_graphs("dfs", [[b.reshape(n, n).astype(float)] for b in bits])
    net_config, params = compiled_dfs(n)
    assert_exact(evaluate(net_config, params, data, batch_size=1024), net_config)


def test_compiled_dfs_needs_node_n_minus_1s_count():
    """Without its FIN count, node n - 1 keeps v at every restart: v goes wrong there and
    nothing else does (the count is what the argument of docs/compiled_dfs.md needs)."""
    from workers.compile.dfs_compiler import _Layout
    from workers.compile.verify import evaluate
    from workers.data.generate import split_of_graphs

    data = split_of_graphs("dfs", sparse_graphs(16, 14, 2))
    net_config, params = compiled_dfs(16)
    lay = _Layout(net_config.hidden_size)
    for name in ("r_1", "r_2", "r_3"):
        params["decoders"]["v"]["W_1"]["kernel"][2 * net_config.hidden_size + lay.unit[name]] = 0
    result = evaluate(net_config, params, data, batch_size=14)
    assert result.hint_scores["v"] < 1.0
    assert all(score == 1.0 for hint, score in result.hint_scores.items()
               if hint in ("pi_h", "color", "s", "u", "s_last", "s_prev"))


def test_compiled_dfs_names_what_the_network_lacks():
    from workers.compile.dfs_compiler import compile_dfs, minimum_hidden_size
    from workers.compile.graph_program import ProgramError
    from workers.config import TrainConfig
    from workers.data.fresh import probe_table
    from workers.model import make_net_config

    config = TrainConfig.from_dict({"algorithm": "dfs", "hidden_size": 64, "nb_heads": 2})
    net_config = make_net_config(config, probe_table("dfs", 8))
    assert 64 < minimum_hidden_size() <= 128
    with pytest.raises(ProgramError, match=f"hidden_size must be a multiple of 4, at least "
                                           f"{minimum_hidden_size()}; nb_heads must be 4; use_ln "
                                           "must be false; use_edge_info must be true"):
        compile_dfs(net_config, 8)


def test_compile_dfs_command(tmp_path, capsys):
    out = tmp_path / "dfs.json"
    assert main(["compile", "dfs", "--sizes", "16", "--graphs", "4", "--json", str(out)]) == 0
    assert "compiled dfs: hidden size 128, 4 heads" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["hidden_size"] == 128 and doc["results"][0]["score"] == 100.0
    assert doc["results"][0]["hint_scores"]["v"] == 1.0
    assert main(["compile", "dfs", "--style", "paper"]) == 2
    assert "--style does not apply to dfs" in capsys.readouterr().err


def test_random_positions_hide_which_node_is_last():
    """dfs's v goes to index n - 1 after a search that finds nothing. With random positions the
    nodes at positions a < b get the same v logits in the 'chain' and 'empty' graphs (up to float
    rounding), whatever the parameters, the compiled DFS network's included, while chain needs
    b above a and empty a above b."""
    from workers.compile import dfs_position_witness as positions

    batch = positions.witness_batch()
    for g, (_, at_a, at_b, v) in enumerate(positions.WITNESS):
        assert float(batch["inputs"]["pos"][g, at_a]) == np.float32(positions.A_POS)
        assert float(batch["inputs"]["pos"][g, at_b]) == np.float32(positions.B_POS)
        assert int(np.argmax(np.asarray(batch["hints"]["v"])[positions.ROW, g])) == v
        for flag in ("u", "s", "s_last", "v"):
            assert not np.asarray(batch["hints"][flag])[:positions.ROW, g, [at_a, at_b]].any()
    networks = [(positions.net_config_for(hidden_size=16), seed) for seed in range(3)]
    networks += [(positions.net_config_for(hidden_size=16, nb_heads=4, use_ln=False,
                                           use_edge_info=True, nb_msg_passing_steps=2), 0)]
    for net_config, seed in networks:
        run = positions.run_witness(positions.random_params(net_config, seed), net_config)
        assert run.truth == (4, 2)
        assert run.largest_difference <= 1e-6 * max(1.0, float(np.max(np.abs(run.logits))))
        assert not run.both_right
    net_config, _ = compiled_dfs(positions.N)
    compiled = positions.run_witness(compiled_dfs(positions.N)[1], net_config)
    assert compiled.largest_difference == 0.0 and not compiled.both_right


def test_training_starts_from_the_compiled_dfs_network(cache_dir):
    """init: compiled for dfs: the configuration names what the hand-built network needs, and
    every seed of a population starts from it, compiled for the one train length."""
    from workers.compile.algorithm_programs import COMPILED_DFS
    from workers.compile.dfs_compiler import HEADS, compile_dfs, minimum_hidden_size
    from workers.config import ConfigError, TrainConfig
    from workers.data import DataCache
    from workers.train import TrainData, make_train, train_population

    assert COMPILED_DFS == {"nb_heads": len(HEADS), "minimum_hidden_size": minimum_hidden_size()}
    with pytest.raises(ConfigError, match="init = 'compiled' starts from the network compiled "
                                          "from the hand-built DFS network, which needs "
                                          "use_ln: false; nb_heads: 4; hidden_size >= 76, a "
                                          "multiple of 4; use_edge_info: true; one train length"):
        TrainConfig.from_dict({"algorithm": "dfs", "init": "compiled", "hidden_size": 64})
    config = TrainConfig.from_dict({
        "algorithm": "dfs", "init": "compiled", "hidden_size": 128, "nb_heads": 4,
        "use_ln": False, "use_edge_info": True, "train_lengths": [6], "length_generalize": False,
        "random_pos": False, "train_steps": 2, "eval_every": 1, "batch_size": 4, "pool_size": 8})
    data = TrainData.from_cache(config, DataCache(cache_dir))
    trainer = make_train(config, data)
    expected = compile_dfs(trainer.net_config, 6)
    start = trainer.initial_params(np.arange(2))
    import jax

    jax.tree_util.tree_map(lambda a, e: np.testing.assert_array_equal(a, np.broadcast_to(e, a.shape)),
                           start, expected)
    result = train_population(config, data, [0, 1])
    assert result.status == ["done"] * 2
