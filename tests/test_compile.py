"""Neural compilation: the graph programs reproduce dm-clrs's traces, the compiled networks execute
them exactly (every pointer, every step, hidden state and attention), compiled parameters start
training, and ``gapsweep compile`` reports, shows and saves them."""

import json

import jax
import numpy as np
import pytest

from db import snapshots
from gapsweep.main import main
from workers.compile import certify
from workers.compile.compiler import compile_program, count_parameters, layout
from workers.compile.verify import evaluate, run
from workers.compile.graph_program import ProgramError, interpret
from workers.compile.algorithm_programs import PROGRAMS, program_for
from workers.config import ConfigError, TrainConfig
from workers.data import make_request
from workers.model import make_net_config
from workers.train import TrainData, make_train, train_population

ALGORITHMS = sorted(PROGRAMS)
STATE_HINTS = {"bfs": {"visit": "reach_h"}, "bellman_ford": {"dist": "d", "visit": "msk"}}


def compiled_config(algorithm, hidden_size=4, **changes):
    return TrainConfig.from_dict({"algorithm": algorithm, "hidden_size": hidden_size,
                                  "use_ln": False, "use_edge_info": algorithm == "bellman_ford",
                                  **changes})


def compiled(algorithm, data, hidden_size=4, **changes):
    net_config = make_net_config(compiled_config(algorithm, hidden_size, **changes), data.probe_table)
    assert net_config.low_rank_edges     # K = 3 edge channels < H: the exactness tests run low-rank
    return net_config, compile_program(PROGRAMS[algorithm], net_config, nb_nodes=data.size)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("split", ["test", "val"])
def test_program_reproduces_dmclrs_traces(cache, algorithm, split):
    """The reference interpreter, step by step, against dm-clrs's hints: the state, the pointer,
    and the node each node selects (= its next parent), on p = 0.5 (test) and p ∈ 0.1…0.9 (val)."""
    data = cache.get(make_request(algorithm, split, 16))
    program = PROGRAMS[algorithm]
    for g in range(data.num_graphs):
        steps = int(data.lengths[g])
        rollout = interpret(program, {k: v[g] for k, v in data.inputs.items()},
                            {k: v[0, g] for k, v in data.hints.items()}, steps - 1)
        for name, probe in program.state.items():
            np.testing.assert_allclose(rollout.state[name], data.hints[probe][:steps, g], atol=1e-6)
        np.testing.assert_array_equal(rollout.pointer, data.hints["pi_h"][:steps, g])
        np.testing.assert_array_equal(rollout.selected, data.hints["pi_h"][1:steps, g])
        np.testing.assert_array_equal(rollout.pointer[-1], data.outputs["pi"][g])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_compiled_networks_are_exact_on_every_graph_up_to_5_nodes(algorithm):
    """Exhaustive: every graph dm-clrs's sampler can draw at n = 2 … 5 (every symmetric adjacency
    matrix with self-loops; 32,768 at n = 5) from every source, run through dm-clrs's own
    algorithm for the truth. Bellman-Ford weights are drawn once per graph as the sampler draws
    them (continuous: no two paths tie; for ties see the next test)."""
    from workers.data.generate import every_undirected_graph, sampler_weights, split_of_graphs

    rng = np.random.default_rng(5)
    for n in (2, 3, 4, 5):
        adjacency = every_undirected_graph(n)
        weightings = [adjacency]
        if algorithm == "bellman_ford":
            weightings = [sampler_weights(adjacency, rng)]
        for graphs in weightings:
            data = split_of_graphs(algorithm, [[g, s] for g in graphs for s in range(n)])
            assert data.num_graphs == len(graphs) * n == 2 ** (n * (n + 1) // 2) * n
            net_config, params = compiled(algorithm, data)
            result = evaluate(net_config, params, data, batch_size=8192)
            assert result.pointers_correct == result.pointers_total == data.num_graphs * n
            assert result.attention_correct == result.attention_total
            for hint, score in result.hint_scores.items():
                assert score < 1e-10 if hint == "d" else score == 1.0, (n, hint, score)


def test_compiled_bellman_ford_is_exact_except_where_two_new_parents_tie():
    """A limit of the compiled Bellman-Ford, measured exhaustively: with every weight equal
    (every graph on 4 nodes, every source), distances tie. A tie with the current parent is
    broken towards it (τ, as dm-clrs keeps it); a tie between two candidates neither of which
    is the current parent has no margin at all (dm-clrs takes the smaller index; the attention
    splits evenly and the pointer decodes to their mean). Exactly the graphs with such a tie
    in some round are wrong; every other graph is exact."""
    from workers.compile.verify import run
    from workers.data.generate import every_undirected_graph, split_of_graphs
    from workers.model.forward import postprocess

    n = 4
    weight = np.sqrt(0.25 + 1e-3)
    graphs = [[g * weight, s] for g in every_undirected_graph(n) for s in range(n)]
    data = split_of_graphs("bellman_ford", graphs)
    net_config, params = compiled("bellman_ford", data)
    hard = postprocess(net_config, run(net_config, params, data).output_logits, hard=True)
    wrong = np.any(np.asarray(hard["pi"]) != data.outputs["pi"], axis=1)

    d = data.hints["d"].astype(np.float64)          # [T, B, N]
    msk, pi = data.hints["msk"] > 0.5, data.hints["pi_h"]
    a = data.inputs["A"].astype(np.float64)         # [B, N, N]
    tied = np.zeros(data.num_graphs, bool)
    for t in range(d.shape[0] - 1):
        live = t + 1 < data.lengths                  # the graph's trace has a round t → t + 1
        key = np.where(msk[t][:, :, None] & (a > 0), d[t][:, :, None] + a, np.inf)  # [B, u, v]
        best = key.min(axis=1)                                                      # [B, v]
        at_best = (key == best[:, None, :]) & np.isfinite(best[:, None, :])
        is_parent = np.arange(n)[None, :, None] == pi[t][:, None, :]
        # ≥ 2 candidates at the minimum and the current parent is not one of them
        tie = (at_best.sum(axis=1) >= 2) & ~np.any(at_best & is_parent, axis=1)
        tie &= data.inputs["s"] < 0.5                # the source keeps itself, tie or not
        tied |= live & np.any(tie, axis=1)
    assert wrong.any() and not wrong[~tied].any()           # wrong graphs all have such a tie
    assert (~tied).sum() >= 0.8 * data.num_graphs           # the rest, most graphs, are exact
    # the certificate sees it: zero-margin attention at the ties, and not exact
    margins = certify.measure(net_config, params, data, batch_size=8192)
    assert margins.attention == 0.0 and margins.attention_ties > 0 and not margins.exact
    assert margins.output_pointer < 0
    clean = certify.measure(net_config, params, data.take(np.flatnonzero(~tied)), batch_size=8192)
    assert clean.exact and clean.attention > 0 and clean.attention_ties == 0


def test_compile_certify_reports_margins_and_the_closed_form(tmp_path, capsys):
    """`gapsweep compile --certify`: the pointer margins are the closed form c'/n exactly, the
    attention margins positive, every graph up to 3 nodes exact; bad flags are refused."""
    assert certify.pointer_decoder_largest_n() == 5202
    n = 5202
    assert (n - 1) * np.exp(-2.0 ** 17 / n) < 2.0 ** -24 <= n * np.exp(-2.0 ** 17 / (n + 1))
    out = tmp_path / "c.json"
    assert main(["compile", "bfs", "--certify", "--certify-up-to", "32", "--exhaustive-up-to",
                 "3", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "certificate of compiled bfs (float32): smallest margins" in text
    assert "up to n = 5,202" in text and "largest n measured exact: 32 (of 16, 32)" in text
    doc = json.loads(out.read_text())["certificate"]
    assert [m["size"] for m in doc["measured"]] == [16, 32]
    assert [(m["size"], m["graphs"]) for m in doc["exhaustive"]] == [(2, 16), (3, 192)]
    for m in doc["measured"] + doc["exhaustive"]:
        assert m["exact"] and m["attention"] > 0 and m["attention_ties"] == 0
        assert m["output_pointer"] == pytest.approx(2.0 ** 17 / m["size"], rel=1e-6)
        assert m["hint_pointer"] == pytest.approx(2.0 ** 17 / m["size"], rel=1e-6)
    with pytest.raises(SystemExit) as exited:
        main(["compile", "bfs", "--certify", "--certify-up-to", "48"])
    assert exited.value.code == 2
    assert "48 is not allowed; give a power of two in [16, 1024]" in capsys.readouterr().err
    assert main(["compile", "bfs", "--certify", "--pre-att-bias"]) == 2
    assert "--certify covers the default network" in capsys.readouterr().err


@pytest.mark.parametrize("hidden_size", [4, 128])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_compiled_network_scores_exactly_100(cache, algorithm, hidden_size):
    """CLRS's test split (n = 64) and fresh graphs at n = 16, 64 and 256: every output pointer of
    every graph right, attention on the algorithm's parent at every step, hints exact."""
    datasets = [cache.get(make_request(algorithm, "test")),                  # CLRS-30 test split
                cache.get(make_request(algorithm, "test", 16, 32, 101)),
                cache.get(make_request(algorithm, "test", 64, 16, 102)),
                cache.get(make_request(algorithm, "test", 256, 4, 103))]
    for data in datasets:
        net_config, params = compiled(algorithm, data, hidden_size)
        result = evaluate(net_config, params, data)
        assert result.pointers_correct == result.pointers_total == data.num_graphs * data.size
        assert result.score == 100.0
        assert result.attention_correct == result.attention_total > 0
        for hint, score in result.hint_scores.items():
            assert score < 1e-10 if hint == "d" else score == 1.0, (data.size, hint, score)


@pytest.mark.parametrize("hidden_size", [4, 128])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_compiled_state_and_attention_follow_the_algorithm_step_by_step(cache, algorithm,
                                                                        hidden_size):
    data = cache.get(make_request(algorithm, "test", 16, 8, 104))
    net_config, params = compiled(algorithm, data, hidden_size)
    lay = layout(PROGRAMS[algorithm], net_config)
    trace = run(net_config, params, data)
    pos = data.inputs["pos"]
    for g in range(data.num_graphs):
        for t in range(int(data.lengths[g]) - 1):          # step t computes the state of hint t + 1
            hidden = trace.hidden[t, g]
            for name, probe in STATE_HINTS[algorithm].items():
                np.testing.assert_allclose(hidden[:, lay.hidden.index(name)],
                                           data.hints[probe][t + 1, g], atol=1e-6)
            parents = data.hints["pi_h"][t + 1, g]
            np.testing.assert_allclose(hidden[:, lay.hidden.index("pi")], pos[g, parents], atol=1e-6)
            attention = trace.attention[t, g]                   # [receiver, sender]
            np.testing.assert_array_equal(np.argmax(attention, -1), parents)
            assert np.all(attention[np.arange(data.size), parents] > 1 - 1e-6)
        assert not np.any(trace.hidden[:, g, :, lay.hidden.index("pi") + 1:])   # unused units


def test_compiled_parameter_counts_and_embedding(cache):
    """About 500 parameters at hidden size 4 (the paper's figure); at 128 the same weights sit in
    the first units and everything else is zero."""
    data = cache.get(make_request("bfs", "test", 16, 2, 105))
    counts = {}
    for algorithm in ALGORITHMS:
        _, small = compiled(algorithm, data if algorithm == "bfs" else
                            cache.get(make_request(algorithm, "test", 16, 2, 105)))
        counts[algorithm] = count_parameters(small)
    assert counts == {"bfs": 508, "bellman_ford": 561}
    _, small = compiled("bfs", data, 4)
    _, large = compiled("bfs", data, 128)
    w_small, w_large = small["processor"]["W_p1"]["kernel"], large["processor"]["W_p1"]["kernel"]
    np.testing.assert_array_equal(w_large[:4, :4], w_small[:4, :4])          # node channels
    assert not np.any(w_large[4:, :]) and not np.any(w_large[:, 4:])


def test_size_tied_modifications_compile_per_size(cache):
    """With the n × n pre-attention bias and n-way pointer heads the program compiles per size."""
    for algorithm in ALGORITHMS:
        data = cache.get(make_request(algorithm, "test", 16, 8, 106))
        net_config, params = compiled(algorithm, data, use_pre_att_bias=True, simplify_decoders=True,
                               train_lengths=[16], length_generalize=False)
        assert params["processor"]["pre_att_bias"].shape == (16, 16)
        assert params["decoders"]["pi"]["W_1"]["kernel"].shape[-1] == 16
        result = evaluate(net_config, params, data)
        assert result.score == 100.0 and result.attention_correct == result.attention_total


def test_uncompilable_networks_are_refused_with_the_reason(cache):
    data = cache.get(make_request("bellman_ford", "test", 16, 2, 105))
    program = program_for("bellman_ford")
    for changes, reason in (({"use_ln": True}, "use_ln must be false"),
                            ({"use_edge_info": False}, "needs use_edge_info: true"),
                            ({"hidden_size": 3}, "needs at least 4 units"),
                            ({"hint_mode": "none"}, "hint_mode must be encoded_decoded")):
        net_config = make_net_config(compiled_config("bellman_ford", **{"hidden_size": 4, **changes}), data.probe_table)
        with pytest.raises(ProgramError, match=reason):
            compile_program(program, net_config)
    with pytest.raises(ProgramError, match="no graph program for 'dfs'; compilable algorithms: "
                                           "bfs, bellman_ford"):
        program_for("dfs")
    with pytest.raises(ConfigError, match=r"init = 'compiled' .* needs use_ln: false; use_edge_info: "
                                          r"true"):
        TrainConfig.from_dict({"algorithm": "bellman_ford", "init": "compiled", "hidden_size": 4})
    with pytest.raises(ConfigError, match="an algorithm with a graph program .* or dfs, not "
                                          "'dfs_light'"):
        TrainConfig.from_dict({"algorithm": "dfs_light", "init": "compiled", "use_ln": False})


def test_training_starts_from_the_compiled_parameters(cache_dir, tmp_path):
    """init: compiled through the population trainer: every seed starts from the compiled network
    (which the run keeps as its 'compiled' snapshot); the seeds then part ways by batch order as
    training moves them off the exact solution (the paper's Table 14)."""
    from workers.data import DataCache

    config = compiled_config("bellman_ford", init="compiled", train_steps=4, eval_every=2,
                             batch_size=4, train_lengths=[4, 7], pool_size=16)
    data = TrainData.from_cache(config, DataCache(cache_dir))
    trainer = make_train(config, data)
    expected = compile_program(PROGRAMS["bellman_ford"], trainer.net_config)
    start = trainer.initial_params(np.arange(3))
    jax.tree_util.tree_map(lambda a, e: np.testing.assert_array_equal(a, np.broadcast_to(e, a.shape)),
                           start, expected)
    result = train_population(config, data, [0, 1, 2])
    assert result.status == ["done"] * 3
    assert snapshots.trees_equal(result.initial_params, expected)
    assert len({tuple(curve) for curve in result.val_scores}) > 1      # seeds part ways
    # the driver stores each run's compiled start beside its best parameters
    import datetime as dt

    from db.store import ConfigurationEntry, ResultsStore
    from orchestrator.records import run_results
    from workers.training_task import TaskOutput

    now = dt.datetime.now(dt.timezone.utc)
    with ResultsStore(f"sqlite:///{tmp_path / 'r.db'}", snapshot_dir=tmp_path / "snaps") as store:
        sweep = store.register_sweep("t14", "table14_stability", "", [ConfigurationEntry(
            "bf", config.to_dict(), config.hash())], [0, 1, 2])
        run_ids = {p.seed: p.run_id for p in store.pending(sweep.id)}
        store.claim(list(run_ids.values()))
        output = TaskOutput(result, "host", "cpu", 1, now, now, 0.0, result.wall_seconds)
        store.record([r for _, r in run_results(output, run_ids)])
        for run_id in run_ids.values():
            assert snapshots.trees_equal(store.load_snapshot(run_id, "compiled"), expected)
            assert store.load_snapshot(run_id, "best")


def test_table14_sweep_validates_with_compiled_initialisation():
    from orchestrator.plan import make_plan
    from orchestrator.spec import load_spec
    from tests.test_paper_sweeps import SWEEPS

    plan = make_plan(load_spec(SWEEPS / "table14_stability.yaml"))
    configs = {c.label: c.config for c in plan.configurations}
    assert set(configs) == {f"{style}compiled_then_trained_{algorithm}" for style in ("", "exact_")
                            for algorithm in ("bellman_ford", "bfs")}
    assert all(c.init == "compiled" and c.hidden_size == 4 and not c.use_ln for c in configs.values())
    assert configs["compiled_then_trained_bellman_ford"].use_edge_info
    # the paper's rows are the paper-style compilations, the exact_ rows this project's first style
    assert {label: c.compile_style for label, c in configs.items()} == {
        label: "exact" if label.startswith("exact_") else "paper" for label in configs}
    assert len(plan.seeds) == 128


def test_compile_command_reports_shows_and_saves(cache_dir, tmp_path, capsys):
    out, snap, png = tmp_path / "bfs.json", tmp_path / "bfs.npz", tmp_path / "png"
    code = main(["compile", "bfs", "--sizes", "16,32", "--graphs", "4", "--seed", "107",
                 "--cache-dir", str(cache_dir), "--json", str(out), "--snapshot", str(snap),
                 "--show", "--png", str(png)])
    printed = capsys.readouterr()
    assert code == 0, printed
    doc = json.loads(out.read_text())
    assert doc["parameters"] == 508 and doc["hidden_size"] == 4
    assert [(r["size"], r["score"], r["pointers_total"]) for r in doc["results"]] == [
        (16, 100.0, 64), (32, 100.0, 128)]
    assert "compiled bfs (exact style): hidden size 4, 508 parameters" in printed.out
    assert "processor/W_p1" in printed.out and "node.not_visit" in printed.out
    assert "att.x" in printed.out and "2^33" in printed.out
    assert (png / "processor__W_p1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the snapshot is the compiled pytree, loadable as the network's parameters
    from workers.data import DataCache

    spec = DataCache(cache_dir).get(make_request("bfs", "test", 16, 4, 107)).probe_table
    net_config = make_net_config(compiled_config("bfs"), spec)
    assert snapshots.trees_equal(snapshots.decode(snap.read_bytes()),
                                 compile_program(PROGRAMS["bfs"], net_config))


def test_compile_command_refuses_bad_input(tmp_path, capsys):
    assert main(["compile", "bfs", "--hidden-size", "2", "--cache-dir", str(tmp_path)]) == 2
    assert "cannot compile bfs at hidden_size 2: it needs at least 3 units" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())          # refused before any data was built
    with pytest.raises(SystemExit):
        main(["compile", "bfs_seq"])
    assert "invalid choice: 'bfs_seq'" in capsys.readouterr().err


def test_readme_shows_the_bfs_program_as_it_is():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    block = readme.split("<!-- program: BFS -->\n```python\n", 1)[1].split("```", 1)[0]
    assert block.startswith("BFS = GraphProgram(")
    assert block in (root / "workers" / "compile" / "algorithm_programs.py").read_text()
