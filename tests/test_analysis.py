"""Faithfulness analyses: the compiled networks are faithful at every step, random ones score
near chance, and ``gapsweep analyse faithfulness`` reads a sweep's stored parameters, stores each
run's curve (replacing, never duplicating), writes its figure and JSON, and logs to MLflow; the
worker tasks give the same numbers here and as Ray tasks on a (local) cluster, and a seed's
landscapes do not depend on the seeds analysed with it."""

import datetime as dt
import json
import os

import jax
import numpy as np
import pytest

from db.store import ConfigurationEntry, ResultsStore
from orchestrator import sweep_analyses as analysis
from gapsweep.main import main
from orchestrator.records import run_results
from workers.analysis.faithfulness import chance_agreement, faithfulness
from workers.compile.compiler import compile_program
from workers.compile.algorithm_programs import PROGRAMS
from workers.data import DataCache, make_request
from workers.model import make_net_config
from workers.model.forward import init_params
from workers.training_task import TaskOutput
from workers.train import TrainData, train_population

from tests.test_compile import compiled_config


@pytest.mark.parametrize("algorithm", sorted(PROGRAMS))
def test_compiled_networks_are_faithful_at_every_step(cache, algorithm):
    data = cache.get(make_request(algorithm, "test", 16, 8, 301))
    net_config = make_net_config(compiled_config(algorithm), data.probe_table)
    params = compile_program(PROGRAMS[algorithm], net_config)
    stacked = jax.tree_util.tree_map(lambda x: np.stack([x, x]), params)
    result = faithfulness(net_config, stacked, data, algorithm)
    steps = int(data.lengths.max()) - 1
    assert result["attention"].shape == (2, steps)
    np.testing.assert_array_equal(result["attention"], 1.0)
    for hint, scores in result["trace"].items():
        if hint == "d":                                        # scalars score by squared error
            assert np.nanmax(scores) < 1e-10
        else:
            np.testing.assert_array_equal(scores, 1.0)


@pytest.mark.parametrize("algorithm", sorted(PROGRAMS))
def test_random_networks_score_near_chance(cache, algorithm):
    data = cache.get(make_request(algorithm, "test", 16, 16, 301))
    net_config = make_net_config(compiled_config(algorithm, hidden_size=16), data.probe_table)
    example = data.take(np.arange(2)).as_batch()
    stacked = jax.vmap(lambda key: init_params(net_config, key, example))(
        jax.random.split(jax.random.PRNGKey(7), 16))
    result = faithfulness(net_config, stacked, data, algorithm)
    chance = chance_agreement(data)
    later = slice(1, None)       # from step 2 on (step 1 sees the true first hint)
    gap = np.nanmean(result["attention"][:, later], axis=0) - chance[later]
    assert np.nanmax(np.abs(gap)) < 0.1, (gap, chance)
    assert np.nanmean(result["trace"]["pi_h"]) < 0.6


def _finished_sweep(db_url, cache_dir, name="faith"):
    """A real tiny sweep: BFS, 3 seeds trained a few steps, recorded as the driver records."""
    config = compiled_config("bfs", hidden_size=8, train_steps=4, eval_every=2, batch_size=4,
                             train_lengths=[4, 7], pool_size=16, use_ln=True)
    data = TrainData.from_cache(config, DataCache(cache_dir))
    result = train_population(config, data, [0, 1, 2])
    now = dt.datetime.now(dt.timezone.utc)
    with ResultsStore(db_url) as store:
        sweep = store.register_sweep(name, "test", f"name: {name}\n", [ConfigurationEntry(
            "bfs", config.to_dict(), config.hash())], [0, 1, 2])
        run_ids = {p.seed: p.run_id for p in store.pending(sweep.id)}
        store.claim(list(run_ids.values()))
        output = TaskOutput(result, "host", "cpu", 1, now, now, 0.0, result.wall_seconds)
        store.record([r for _, r in run_results(output, run_ids)])
    return run_ids, result


def test_analyse_faithfulness_command(tmp_path, cache_dir, capsys):
    db = f"sqlite:///{tmp_path / 'results.db'}"
    run_ids, trained = _finished_sweep(db, cache_dir)
    args = ["analyse", "faithfulness", "--sweep", "faith", "--db", db, "--cache-dir",
            str(cache_dir), "--figures", str(tmp_path / "fig"), "--json", str(tmp_path / "f.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "bfs (bfs): faithfulness per hint step" in out and "Pearson r" in out
    doc = json.loads((tmp_path / "f.json").read_text())
    [entry] = doc["configurations"]
    assert entry["seeds"] == [0, 1, 2] and len(entry["attention"]["per_seed"]) == 3
    assert (tmp_path / "fig" / "faithfulness-bfs.png").read_bytes()[:4] == b"\x89PNG"
    with ResultsStore(db) as store:
        first = {}
        for seed, run_id in run_ids.items():
            steps, values = store.curve(run_id, analysis.ATTENTION_CURVE, "test")
            np.testing.assert_allclose(values, entry["attention"]["per_seed"][seed], rtol=1e-6)
            assert list(steps) == list(range(len(values)))
            first[run_id] = len(values)
            # the trace faithfulness is what training recorded for the same parameters
            _, recorded = store.curve(run_id, "hint_acc/pi_h", "test")
            np.testing.assert_allclose(recorded, trained.hint_accuracy["pi_h"][seed], rtol=1e-6)
    assert main(args) == 0                       # again: the curves are replaced, not duplicated
    with ResultsStore(db) as store:
        for run_id, n in first.items():
            assert len(store.curve(run_id, analysis.ATTENTION_CURVE, "test")[1]) == n
    assert main(["analyse", "faithfulness", "--sweep", "nope", "--db", db]) == 2
    assert "no sweep named 'nope'" in capsys.readouterr().err
    assert main(["analyse", "faithfulness", "--sweep", "faith", "--db", db, "--config", "dfs"]) == 2
    assert ("error: sweep 'faith' has no configuration 'dfs'; it has: bfs"
            in " ".join(capsys.readouterr().err.split()))


def test_analysis_figures_go_to_the_configurations_mlflow_parent_run(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("faith", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment, tags={"gapsweep.sweep": "faith",
                                                 "gapsweep.label": "bfs",
                                                 "gapsweep.role": "configuration"}).info.run_id
    figure = tmp_path / "faithfulness-bfs.png"
    figure.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert analysis.log_artifacts_to_mlflow(uri, "faith", "faith", "bfs", [figure]) == parent
    assert [a.path for a in client.list_artifacts(parent, "analyses")] == [
        "analyses/faithfulness-bfs.png"]


def test_analyse_landscape_command(tmp_path, cache_dir, capsys):
    from workers.analysis.landscape import Landscape

    db = f"sqlite:///{tmp_path / 'results.db'}"
    run_ids, _ = _finished_sweep(db, cache_dir, name="land")
    assert main(["analyse", "landscape", "--sweep", "land", "--db", db, "--cache-dir",
                 str(cache_dir), "--figures", str(tmp_path / "fig"), "--grid", "5",
                 "--graphs", "4", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "bfs: loss landscapes" in out and "initial-to-learned" in out
    names = ("learned", "initial", "initial-to-learned")   # use_ln: no compiled network
    for name in names:
        landscape = Landscape.from_npz(tmp_path / "fig" / f"landscape-bfs-seed1-{name}.npz")
        assert landscape.losses.shape == (5, 5) if name != "initial-to-learned" else (7, 5)
        assert (tmp_path / "fig" / f"landscape-bfs-seed1-{name}.png").exists()
    through = Landscape.from_npz(tmp_path / "fig" / "landscape-bfs-seed1-initial-to-learned.npz")
    learned = Landscape.from_npz(tmp_path / "fig" / "landscape-bfs-seed1-learned.npz")
    centre = lambda ls, a, b: ls.losses[list(ls.alphas).index(a), list(ls.betas).index(b)]  # noqa
    assert centre(through, 1.0, 0.0) == pytest.approx(centre(learned, 0.0, 0.0), rel=1e-5)
    with ResultsStore(db) as store:
        steps, values = store.curve(run_ids[1], "landscape/learned/centre_loss", "test")
        assert list(steps) == [0] and values[0] == pytest.approx(centre(learned, 0.0, 0.0))


def test_landscape_task_is_vmapped_over_seeds_and_a_seeds_planes_are_its_own(cache_dir):
    from workers.analysis.analysis_task import landscape_task
    from workers.train import starting_params

    config = compiled_config("bfs", hidden_size=8, train_lengths=[4, 7], pool_size=16)
    val = DataCache(cache_dir).get(TrainData.requests(config)[-2])
    net_config = make_net_config(config, val.probe_table)
    example = val.take(np.arange(2)).as_batch()
    # stand-ins for learned parameters: other seeds' initial ones
    learned = [starting_params(config, net_config, 100 + s, example) for s in range(3)]
    stacked = jax.tree_util.tree_map(lambda *x: np.stack(x), *learned)
    kwargs = {"cache_dir": str(cache_dir), "grid": 3, "graphs": 4}
    together = landscape_task(config.to_dict(), [0, 1, 2], stacked, **kwargs)
    alone = landscape_task(config.to_dict(), [1], jax.tree_util.tree_map(lambda x: x[1:2], stacked),
                           **kwargs)
    assert sorted(together.per_seed[1]) == ["compiled-to-learned", "initial", "learned"]
    for name, landscape in alone.per_seed[0].items():
        np.testing.assert_allclose(together.per_seed[1][name].losses, landscape.losses,
                                   rtol=1e-5, err_msg=name)
        assert together.per_seed[1][name].markers == landscape.markers
    # different seeds get different planes; the compiled network's landscape is the configuration's
    assert not np.allclose(together.per_seed[0]["learned"].losses,
                           together.per_seed[1]["learned"].losses)
    [compiled] = together.shared.values()
    assert compiled.losses[1, 1] < 1e-3 < compiled.losses.max()      # its centre: exact, a minimum
    through = together.per_seed[2]["compiled-to-learned"]
    assert through.losses[list(through.alphas).index(0.0), 1] == pytest.approx(
        compiled.losses[1, 1], abs=1e-6)


@pytest.fixture(scope="module")
def local_cluster():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    yield
    ray.shutdown()


def test_analyses_run_as_ray_tasks_with_the_same_numbers(local_cluster, tmp_path, cache_dir,
                                                         capsys):
    from orchestrator.cluster import WorkerCall, run_here, run_on_workers
    from workers.analysis.analysis_task import faithfulness_task

    db = f"sqlite:///{tmp_path / 'results.db'}"
    _finished_sweep(db, cache_dir, name="remote")
    with ResultsStore(db) as store:
        population = analysis.load_population(store, store.sweep_id("remote"), "bfs")
    call = WorkerCall("remote/bfs/faithfulness", faithfulness_task,
                      (population.config.to_dict(), population.params),
                      {"cache_dir": str(cache_dir)})
    [(_, here)] = list(run_here([call]))
    [(_, there)] = list(run_on_workers([call], cpus=1, gpus=0))
    assert here.pid == os.getpid() and there.pid != os.getpid()       # a Ray worker computed it
    np.testing.assert_allclose(there.attention, here.attention, rtol=1e-6)
    for hint in here.trace:
        np.testing.assert_allclose(there.trace[hint], here.trace[hint], rtol=1e-6)

    args = ["analyse", "faithfulness", "--sweep", "remote", "--db", db, "--cache-dir",
            str(cache_dir), "--figures", str(tmp_path / "fig"), "--address", "auto",
            "--json", str(tmp_path / "f.json")]
    assert main(args + ["--gpus", "1"]) == 2
    assert "asks for 1 GPU(s)" in capsys.readouterr().err and not (tmp_path / "f.json").exists()
    assert main(args) == 0
    [entry] = json.loads((tmp_path / "f.json").read_text())["configurations"]
    np.testing.assert_allclose(entry["attention"]["per_seed"], here.attention, rtol=1e-6)

    failing = WorkerCall("remote/bfs/broken", faithfulness_task,
                         ({**population.config.to_dict(), "algorithm": "nope"}, population.params))
    with pytest.raises(Exception, match="nope"):
        list(run_on_workers([failing], cpus=1, gpus=0))


def test_bad_gpu_counts_and_a_missing_cluster_are_clear_errors(monkeypatch, capsys):
    import ray

    from orchestrator.cluster import SchedulingError, connect_ray

    for argv in (["analyse", "faithfulness", "--sweep", "s", "--gpus", "-1"],
                 ["run", "sweeps/quickstart.yaml", "--gpus", "1.5"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert "is not allowed; give 0 (CPU only), a fraction in (0, 1] or a whole number" in \
            capsys.readouterr().err

    def no_cluster(**kwargs):                    # what ray.init says when nothing listens there
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(ray, "init", no_cluster)
    with pytest.raises(SchedulingError, match="no Ray cluster at --address 'auto'.*gapsweep stack up"):
        connect_ray("auto")


def test_the_wide_test_on_the_test_splits_own_graphs_gives_the_test_score(tmp_path, cache_dir):
    """Drawn with CLRS-30's test seed and count, the wide test set is the test split itself:
    each seed's pooled score is the test score training recorded, in one chunk of graphs and in
    uneven chunks (5 graphs, the last one padded), so gathering predictions over chunks is
    pooled scoring, not a mean of per-chunk scores."""
    from workers.analysis.analysis_task import wide_test_task

    db = f"sqlite:///{tmp_path / 'results.db'}"
    _, trained = _finished_sweep(db, cache_dir, name="wide")
    with ResultsStore(db) as store:
        population = analysis.load_population(store, store.sweep_id("wide"), "bfs")
    one = wide_test_task(population.config.to_dict(), population.params, 32, 3,
                         cache_dir=str(cache_dir))
    assert (one.graphs, one.size, one.data_seed) == (32, 64, 3)
    np.testing.assert_allclose(one.scores, trained.test_score, rtol=0, atol=1e-6)
    assert one.canary is not None and one.canary.lanes == (0, 2)
    uneven = wide_test_task(population.config.to_dict(), population.params, 32, 3,
                            cache_dir=str(cache_dir), chunk=2, graph_chunk=5)
    np.testing.assert_allclose(uneven.scores, trained.test_score, rtol=0, atol=1e-6)


def test_analyse_wide_test_command_stores_each_runs_score(tmp_path, cache_dir, capsys):
    db = f"sqlite:///{tmp_path / 'results.db'}"
    run_ids, trained = _finished_sweep(db, cache_dir, name="widecli")
    base = ["analyse", "wide-test", "--sweep", "widecli", "--db", db, "--cache-dir",
            str(cache_dir)]
    assert main(base + ["--data-seed", "3"]) == 2
    assert "--data-seed 3 is not allowed" in capsys.readouterr().err
    assert main(base + ["--graphs", "1"]) == 2
    assert "--graphs 1 is not allowed" in capsys.readouterr().err
    assert main(base + ["--graphs", "48", "--json", str(tmp_path / "w.json")]) == 0
    captured = capsys.readouterr()
    assert "bfs: wide test (48 graphs at n = 64, data seed 4)" in captured.out
    assert "stored test/wide_test/score for 3 run(s)" in captured.err
    [entry] = json.loads((tmp_path / "w.json").read_text())["configurations"]
    assert entry["graphs"] == 48 and entry["seeds"] == [0, 1, 2]
    with ResultsStore(db) as store:
        [sweep] = store.sweep_seeds("widecli")
        runs = sweep.configurations[0].runs
        assert [r.wide_test_graphs for r in runs] == [48, 48, 48]
        np.testing.assert_allclose([r.wide_test_score for r in runs], entry["wide_test_scores"])
        assert store.curve(run_ids[0], "wide_test/data_seed", "test")[1].tolist() == [4.0]
    assert main(base + ["--graphs", "48"]) == 0
    with ResultsStore(db) as store:      # run again: replaced, not duplicated
        assert len(store.curve(run_ids[0], "wide_test/score", "test")[1]) == 1
    # the wide test is a different sample: somewhere its scores differ from the test split's
    assert not np.allclose(entry["wide_test_scores"], trained.test_score)
