"""Sweep specs and plans: real YAML files, resolution, labels, seeds, tasks, and every error's
file:line: key.path message. Fast: no data, no training, no Ray."""

import textwrap
from pathlib import Path

import pytest

from orchestrator.plan import PlanRow, describe, make_plan
from orchestrator.spec import SpecError, load_spec
from workers.config import ConfigError, TrainConfig

QUICKSTART = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"


def write(tmp_path, text, name="sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load(tmp_path, text):
    return load_spec(write(tmp_path, text))


def error_of(tmp_path, text) -> tuple[str, Path]:
    """The SpecError message for a bad file, and the file's path (which the message must name)."""
    path = write(tmp_path, text, "bad.yaml")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    return str(err.value), path


# -- valid specs ---------------------------------------------------------------------------------

def test_quickstart_parses_and_plans():
    spec = load_spec(QUICKSTART)
    plan = make_plan(spec)
    assert (spec.name, spec.experiment, spec.path) == ("quickstart", "quickstart", str(QUICKSTART))
    assert spec.source_text == QUICKSTART.read_text()
    assert spec.resources.gpus == 0
    assert plan.sweep_name == "quickstart"
    assert [c.label for c in plan.configurations] == ["algorithm=bfs", "algorithm=bellman_ford"]
    for configuration, algorithm in zip(plan.configurations, ("bfs", "bellman_ford")):
        expected = TrainConfig.from_dict({"algorithm": algorithm, "hidden_size": 16,
                                          "learning_rate": 0.003, "train_steps": 300,
                                          "eval_every": 50, "pool_size": 1024,
                                          "train_lengths": [4, 16]})
        assert configuration.config == expected
        assert configuration.config_hash == expected.hash() == configuration.config.hash()
    assert plan.seeds == (0, 1, 2, 3)
    assert plan.seed_steps == 2 * 4 * 300
    assert describe(plan) == [
        PlanRow("algorithm=bfs", "bfs", 16, 300, 4, 1, 1200),
        PlanRow("algorithm=bellman_ford", "bellman_ford", 16, 300, 4, 1, 1200)]


def test_named_configurations_times_grid(tmp_path):
    spec = load(tmp_path, """
        name: ablation
        experiment: table10_edge_info
        base: {train_steps: 100}
        grid:
          algorithm: [bfs, bellman_ford]
          hidden_size: [4, 16]
        configurations:
          - {label: baseline}
          - {label: edge_info, use_edge_info: true}
        seeds: 2
        """)
    assert spec.experiment == "table10_edge_info"
    labels = [label for label, _ in spec.resolved_configurations]
    assert labels == [f"{named}/algorithm={algorithm},hidden_size={size}"
                      for named in ("baseline", "edge_info")
                      for algorithm in ("bfs", "bellman_ford") for size in (4, 16)]
    configs = dict(spec.resolved_configurations)
    edge = configs["edge_info/algorithm=bellman_ford,hidden_size=4"]
    assert (edge.use_edge_info, edge.algorithm, edge.hidden_size, edge.train_steps) == (
        True, "bellman_ford", 4, 100)
    assert not configs["baseline/algorithm=bfs,hidden_size=16"].use_edge_info
    assert len({config.hash() for config in configs.values()}) == 8


def test_labels_of_booleans_and_lists_and_of_a_single_configuration(tmp_path):
    spec = load(tmp_path, """
        name: labels
        grid:
          use_edge_info: [true, false]
          train_lengths: [[4, 7], [16]]
        seeds: 1
        """)
    assert [label for label, _ in spec.resolved_configurations] == [
        "use_edge_info=true,train_lengths=4+7", "use_edge_info=true,train_lengths=16",
        "use_edge_info=false,train_lengths=4+7", "use_edge_info=false,train_lengths=16"]
    named_only = load(tmp_path, "name: n\nconfigurations: [{label: only}]\nseeds: 1\n")
    assert [label for label, _ in named_only.resolved_configurations] == ["only"]
    neither = load(tmp_path, "name: plain.sweep-1\nseeds: 1\n")
    assert neither.resolved_configurations[0] == ("plain.sweep-1", TrainConfig())
    assert neither.experiment == "plain.sweep-1" and neither.tracking.experiment is None
    assert (neither.resources.gpus, neither.resources.cpus, neither.max_attempts) == (0, 1, 3)


def test_exponent_floats_read_as_numbers(tmp_path):
    spec = load(tmp_path, "name: lr\nbase: {learning_rate: 1e-4, regularization: true, "
                          "regularization_weight: 5E-3}\nseeds: 1\n")
    config = spec.resolved_configurations[0].config
    assert (config.learning_rate, config.regularization_weight) == (1e-4, 5e-3)


@pytest.mark.parametrize("seeds, expected", [
    ("3", (0, 1, 2)), ("2-5", (2, 3, 4, 5)), ("7-7", (7,)), ("[5, 1, 9]", (5, 1, 9))])
def test_seed_forms(tmp_path, seeds, expected):
    assert load(tmp_path, f"name: s\nseeds: {seeds}\n").seeds == expected


def test_source_text_is_exact(tmp_path):
    path = tmp_path / "crlf.yaml"
    path.write_bytes(b"name: crlf\r\nseeds: 2\r\n")
    assert load_spec(path).source_text == "name: crlf\r\nseeds: 2\r\n"


# -- tasks and scaling ---------------------------------------------------------------------------

GRID_SPEC = """
    name: chunks
    base: {train_steps: 100}
    grid: {algorithm: [bfs, dfs]}
    seeds: 10
    population: 4
    """


def test_tasks_chunk_seeds_by_population(tmp_path):
    plan = make_plan(load(tmp_path, GRID_SPEC))
    tasks = plan.tasks()
    assert [(t.label, t.seeds) for t in tasks] == [
        (label, chunk) for label in ("algorithm=bfs", "algorithm=dfs")
        for chunk in ((0, 1, 2, 3), (4, 5, 6, 7), (8, 9))]
    assert all(t.config_hash == t.config.hash() for t in tasks)
    assert [t.seeds for t in plan.tasks(population=6)][:2] == [(0, 1, 2, 3, 4, 5), (6, 7, 8, 9)]
    unlimited = make_plan(load(tmp_path, GRID_SPEC.replace("population: 4", "population: null")))
    assert [t.seeds for t in unlimited.tasks()] == [tuple(range(10))] * 2
    assert [row.n_tasks for row in describe(plan)] == [3, 3]
    with pytest.raises(SpecError, match="population = 0 is not allowed"):
        plan.tasks(population=0)


def test_tasks_restricted_to_pending_seeds(tmp_path):
    plan = make_plan(load(tmp_path, GRID_SPEC))
    tasks = plan.tasks({"algorithm=dfs": [9, 2, 5, 42, 3, 1, 0]})
    assert [(t.label, t.seeds) for t in tasks] == [
        ("algorithm=dfs", (0, 1, 2, 3)), ("algorithm=dfs", (5, 9))]
    assert plan.tasks({"algorithm=bfs": []}) == []
    with pytest.raises(ValueError, match="'algorithm=bfz'"):
        plan.tasks({"algorithm=bfz": [1]})


def test_steps_and_max_seeds_scale_the_plan(tmp_path):
    spec = load(tmp_path, GRID_SPEC)
    full = make_plan(spec)
    assert full.seed_steps == 2 * 10 * 100
    short = make_plan(spec, steps=20)
    assert short.sweep_name == "chunks-steps20"
    # 100 steps validated every 50 (steps 0, 50) → 20 steps every 10 (steps 0, 10)
    assert [(c.config.train_steps, c.config.eval_every) for c in short.configurations] == [
        (20, 10), (20, 10)]
    assert [c.config for c in short.configurations] == [
        c.config.shortened(20) for c in full.configurations]
    assert {c.config_hash for c in short.configurations}.isdisjoint(
        c.config_hash for c in full.configurations)
    assert short.seed_steps == 2 * 10 * 20
    few = make_plan(spec, max_seeds=3)
    assert (few.sweep_name, few.seeds, few.seed_steps) == ("chunks", (0, 1, 2), 2 * 3 * 100)
    assert [c.config_hash for c in few.configurations] == [c.config_hash for c in full.configurations]
    assert make_plan(spec, max_seeds=50).seeds == spec.seeds
    for bad in ({"steps": 0}, {"steps": -5}, {"max_seeds": 0}, {"max_seeds": True}):
        with pytest.raises(SpecError, match=r"is not allowed; it must be an integer in \[1, "):
            make_plan(spec, **bad)


def test_steps_that_make_configurations_identical_are_refused(tmp_path):
    spec = load(tmp_path, "name: s\nbase: {eval_every: 10}\ngrid: {train_steps: [100, 200]}\n"
                          "seeds: 1\n")
    with pytest.raises(SpecError) as err:
        make_plan(spec, steps=5)                         # eval_every 10 · 5/100 and 10 · 5/200 → 1
    assert str(err.value) == (
        "steps = 5 makes configurations 'train_steps=100' and 'train_steps=200' identical (they "
        "differ only in train_steps or eval_every; shortened, both have train_steps = 5 and "
        "eval_every = 1); leave steps out for this sweep")
    # with a rescaled eval_every they stay apart: 10 · 50/100 = 5, 10 · 50/200 = 2.5 → 2
    assert [c.config.eval_every for c in make_plan(spec, steps=50).configurations] == [5, 2]


def test_shortened_keeps_the_number_of_validations_up_to_about_20():
    table9 = TrainConfig()                                  # 10,000 steps, eval_every 50
    assert (table9.train_steps, table9.eval_every) == (10_000, 50)
    assert table9.shortened(20) == table9.replace(train_steps=20, eval_every=1)
    # 200 validations in 10,000 steps: a 100-step look validates 20 times, not 100
    assert table9.shortened(100).eval_every == 5 and table9.shortened(1_000).eval_every == 50
    quickstart = make_plan(load_spec(QUICKSTART)).configurations[0].config   # 300 steps, every 50
    short = quickstart.shortened(50)
    assert (short.train_steps, short.eval_every) == (50, 8)
    assert len(range(0, 50, 8)) == 7 >= len(range(0, 300, 50)) == 6      # validations kept
    assert table9.shortened(10_000) == table9 and table9.shortened(20_000).eval_every == 50
    # never only step 0: 9 · 2/10 rounds to 2 = steps, so eval_every stays below steps
    assert TrainConfig(train_steps=10, eval_every=9).shortened(2).eval_every == 1
    assert TrainConfig().shortened(1).eval_every == 1


def test_eval_every_that_validates_only_step_0_is_refused(tmp_path):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"train_steps": 20}, where="command line")
    assert str(err.value) == (
        "command line: eval_every = 50 with train_steps = 20 validates only at step 0 (validation "
        "runs at steps 0, eval_every, 2·eval_every, … below train_steps), i.e. the network after "
        "one training step, so its result would be an untrained network's; set eval_every <= 19 "
        "(e.g. 2)")
    with pytest.raises(ConfigError, match="eval_every = 300 with train_steps = 300 validates "
                                          r"only at step 0.*set eval_every <= 299 \(e.g. 30\)"):
        TrainConfig.from_dict({"train_steps": 300, "eval_every": 300})
    assert TrainConfig.from_dict({"train_steps": 20, "eval_every": 19}).eval_every == 19
    assert TrainConfig.from_dict({"train_steps": 1}).eval_every == 50    # one step: nothing to choose
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        base:
          hidden_size: 16
          train_steps: 20
        """)
    assert f"{path}:5: base.train_steps: eval_every = 50 with train_steps = 20 validates only at " \
           "step 0" in message and "set eval_every <= 19 (e.g. 2) (configuration 'x')" in message


# -- invalid specs: each message names file, line, key path, value and what is allowed -------------

def test_unknown_top_level_key_suggests_the_close_one(tmp_path):
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        populaton: 2
        """)
    assert f"{path}:3: populaton: unknown key 'populaton' (did you mean 'population'?); " \
           "allowed: name, experiment, base, grid" in message


def test_unknown_key_in_base(tmp_path):
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        base:
          hiden_size: 16
        """)
    assert f"{path}:4: base.hiden_size: unknown key 'hiden_size' (did you mean 'hidden_size'?); " \
           "allowed: algorithm, train_lengths, " in message


def test_unknown_key_in_a_named_configuration(tmp_path):
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        configurations:
          - label: a
          - label: b
            hidden_size: 8
            use_edge_inf: true
        """)
    assert f"{path}:7: configurations[1].use_edge_inf: unknown key 'use_edge_inf' " \
           "(did you mean 'use_edge_info'?); allowed: label, algorithm, " in message


def test_wrong_type(tmp_path):
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        grid: {algorithm: [bfs, dfs]}
        base:
          nb_heads: 1
          hidden_size: big
        """)
    assert f"{path}:6: base.hidden_size: hidden_size = 'big' has the wrong type; expected an " \
           "integer (configuration 'algorithm=bfs')" in message


def test_unknown_algorithm(tmp_path):
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        grid:
          algorithm:
            - bfs
            - bfz
        """)
    assert f"{path}:6: grid.algorithm[1]: algorithm = 'bfz' is not allowed; allowed: bfs, dfs, " \
           "bellman_ford" in message


def test_size_tied_flag_with_mixed_train_lengths(tmp_path):
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        base:
          train_lengths: [4, 16]
        configurations:
          - {label: plain}
          - label: bias
            use_pre_att_bias: true
        """)
    assert f"{path}:8: configurations[1].use_pre_att_bias: use_pre_att_bias tie parameter shapes " \
           "to the graph size, so train_lengths must hold one size, not [4, 16]" in message
    assert "(configuration 'bias')" in message


def test_empty_grid_list_and_empty_grid(tmp_path):
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        grid:
          algorithm: [bfs]
          hidden_size: []
        """)
    assert f"{path}:5: grid.hidden_size: [] is empty; give one or more values" in message
    message, path = error_of(tmp_path, "name: x\nseeds: 4\ngrid: {}\n")
    assert f"{path}:3: grid: {{}} is an empty grid; give one or more keys" in message


def test_duplicate_labels(tmp_path):
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        configurations:
          - {label: a, hidden_size: 4}
          - {label: b, hidden_size: 8}
          - {label: a, hidden_size: 16}
        """)
    assert f"{path}:6: configurations[2].label: 'a' is already the label of configurations[0]; " \
           "labels must be unique" in message


def test_two_configurations_with_the_same_settings(tmp_path):
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        configurations:
          - label: default
          - label: also_default
            hidden_size: 128
        """)
    assert f"{path}:5: configurations[1]: configuration 'also_default' has the same settings as " \
           "'default' (config hash " in message


@pytest.mark.parametrize("count", [0, -3])
def test_non_positive_seed_count(tmp_path, count):
    message, path = error_of(tmp_path, f"name: x\nbase: {{}}\nseeds: {count}\n")
    assert f"{path}:3: seeds: {count} is not allowed; give a positive count up to 1,000,000 (8 " \
           "means seeds 0-7), a range A-B such as 0-7, or a list of distinct integers in " \
           "[0, 4294967295]" in message


def test_bad_seed_range_and_seed_lists(tmp_path):
    message, path = error_of(tmp_path, "name: x\nseeds: 9-2\n")
    assert f"{path}:2: seeds: '9-2' is not allowed; a range A-B needs A <= B, e.g. 2-9" in message
    message, path = error_of(tmp_path, "name: x\nseeds: 1..5\n")
    assert f"{path}:2: seeds: '1..5' is not a seed range; give a positive count" in message
    message, path = error_of(tmp_path, "name: x\nseeds:\n  - 1\n  - 2\n  - 1\n")
    assert f"{path}:5: seeds[2]: 1 is repeated (first at seeds[0]); seeds must be distinct" in message
    message, path = error_of(tmp_path, "name: x\nseeds: [3, -1]\n")
    assert f"{path}:2: seeds[1]: -1 is not allowed; seeds are integers in [0, 4294967295]" in message


def test_non_positive_train_steps(tmp_path):
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        base:
          hidden_size: 16
          train_steps: 0
        """)
    assert f"{path}:5: base.train_steps: train_steps = 0 is not allowed; it must be an integer " \
           "in [1, 10,000,000]" in message


def test_population_zero(tmp_path):
    message, path = error_of(tmp_path, "name: x\nseeds: 4\npopulation: 0\n")
    assert f"{path}:3: population: 0 is not allowed; give a number of seeds per task in " \
           "[1, 1,000,000], or null for as many as fit" in message


@pytest.mark.parametrize("gpus", ["-1", "1.5"])
def test_bad_gpus(tmp_path, gpus):
    message, path = error_of(tmp_path, f"name: x\nseeds: 4\nresources:\n  cpus: 2\n  gpus: {gpus}\n")
    assert f"{path}:5: resources.gpus: {float(gpus)} is not allowed; give 0 (CPU only), a fraction " \
           "in (0, 1] or a whole number of GPUs" in message


def test_yaml_syntax_error(tmp_path):
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        base:
          hidden_size: 16
         train_steps: 10
        """)
    assert message.startswith(f"{path}:5: invalid YAML: ")


def test_top_level_must_be_a_mapping(tmp_path):
    message, path = error_of(tmp_path, "# a list, not a sweep\n- name: x\n- seeds: 4\n")
    assert f"{path}:2: top level: [{{'name': 'x'}}, {{'seeds': 4}}] is not allowed; a sweep file " \
           "is a mapping of keys: name, experiment, " in message


def test_empty_file(tmp_path):
    message, path = error_of(tmp_path, "# nothing yet\n")
    assert f"{path}:1: the file is empty" in message


def test_key_in_both_the_grid_and_a_configuration(tmp_path):
    message, path = error_of(tmp_path, """
        name: x
        seeds: 4
        grid:
          hidden_size: [4, 16]
        configurations:
          - label: small
            hidden_size: 2
        """)
    assert f"{path}:7: configurations[0].hidden_size: 'hidden_size' is also a grid axis " \
           "(grid.hidden_size); set it in the grid or in the configurations, not both" in message


def test_key_given_twice(tmp_path):
    message, path = error_of(tmp_path, "name: x\nseeds: 4\nbase:\n  hidden_size: 4\n  hidden_size: 8\n")
    assert f"{path}:5: base.hidden_size: key 'hidden_size' is given twice (first at line 4)" in message


def test_several_problems_are_reported_together_in_line_order(tmp_path):
    message, path = error_of(tmp_path, """
        name: my sweep
        seeds: 4
        max_attempts: 0
        resources: {gpu: 1}
        """)
    assert message.splitlines() == [
        f"{path}:1: name: 'my sweep' is not allowed; use letters, digits, '_', '.' and '-' only",
        f"{path}:3: max_attempts: 0 is not allowed; give a number of attempts in [1, 100]",
        f"{path}:4: resources.gpu: unknown key 'gpu' (did you mean 'gpus'?); allowed: gpus, cpus"]


def test_missing_required_keys_and_wrong_shapes(tmp_path):
    message, path = error_of(tmp_path, "name: x\nbase: [hidden_size]\n")
    assert f"{path}:1: seeds: missing; this key is required" in message
    assert f"{path}:2: base: ['hidden_size'] is not allowed; it should be a valid dictionary" in message
    message, path = error_of(tmp_path, "name: x\nseeds: 1\nconfigurations:\n  - {hidden_size: 4}\n")
    assert f"{path}:4: configurations[0]: {{'hidden_size': 4}} has no label" in message
    message, path = error_of(tmp_path, "name: x\nseeds: 1\ngrid:\n  algorithm: bfs\n")
    assert f"{path}:4: grid.algorithm: 'bfs' is not allowed; give a list of values, e.g. [bfs]" \
        in message


def test_unreadable_files(tmp_path):
    with pytest.raises(SpecError, match="no such sweep file"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SpecError, match="not UTF-8 text"):
        load_spec(tmp_path / "latin1.yaml")


def test_wide_test_settings_are_checked(tmp_path):
    head = "name: a\nbase: {algorithm: bfs}\nseeds: 0-1\n"
    spec = tmp_path / "w.yaml"
    spec.write_text(head + "analyses: [wide_test]\n")
    assert (load_spec(spec).wide_test.graphs, load_spec(spec).wide_test.data_seed) == (1024, 4)
    spec.write_text(head + "analyses: [wide_test]\nwide_test: {graphs: 256, data_seed: 9}\n")
    assert (load_spec(spec).wide_test.graphs, load_spec(spec).wide_test.data_seed) == (256, 9)
    for text, message in (
            ("analyses: [wide_test]\nwide_test: {data_seed: 3}\n",
             r"wide_test.data_seed: 3 is not allowed; .* other than 3"),
            ("analyses: [wide_test]\nwide_test: {graphs: 1}\n",
             r"wide_test.graphs: 1 is not allowed; give a number of test graphs"),
            ("analyses: [wide_test]\nwide_test: {graph: 10}\n", r"wide_test.graph"),
            ("wide_test: {graphs: 10}\n", r"settings are given but analyses has no wide_test")):
        spec.write_text(head + text)
        with pytest.raises(SpecError, match=message):
            load_spec(spec)


def test_analyses_are_named_from_a_fixed_list(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("name: a\nbase: {algorithm: bfs}\nseeds: 0-1\nanalyses: [faithfulness, landscape]\n")
    assert load_spec(good).analyses == ["faithfulness", "landscape"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: a\nbase: {algorithm: bfs}\nseeds: 0-1\nanalyses: [faith]\n")
    with pytest.raises(SpecError, match=r"bad.yaml:4: analyses\[0\]: 'faith' is not allowed; it "
                                        r"should be 'faithfulness', 'landscape' or 'wide_test'"):
        load_spec(bad)


# -- bounds: every setting, before anything is expanded or run (workers/rules.py: MAX_*) -----------

H = "name: x\nseeds: 2\n"
BILLION_LAUGHS = "".join(   # 10 ** 9 values in 10 lines, if aliases were expanded
    f"  - &l{i} [{', '.join(['*l%d' % (i - 1)] * 10 if i else ['x'] * 10)}]\n" for i in range(9))
BOUNDS_CASES = [
    # (file text, "line: key.path: message start", [pieces of the message: value, what is allowed])
    (H + "base: {hidden_size: 1000000000}\n", "3: base.hidden_size: hidden_size = 1000000000 is not "
     "allowed", ["it must be an integer in [1, 4,096]"]),
    (H + "base: {train_steps: 1000000000000}\n", "3: base.train_steps: train_steps = 1000000000000",
     ["it must be an integer in [1, 10,000,000]"]),
    (H + "base: {batch_size: 0}\n", "3: base.batch_size: batch_size = 0", ["[1, 4,096]"]),
    (H + "base: {batch_size: yes}\n", "3: base.batch_size: batch_size = true has the wrong type",
     ["expected an integer"]),
    (H + "base: {hidden_size: on}\n", "3: base.hidden_size: hidden_size = true has the wrong type",
     ["expected an integer"]),
    (H + "base: {train_steps: [100]}\n", "3: base.train_steps: train_steps = [100] has the wrong "
     "type", ["expected an integer"]),
    (H + "base: {nb_msg_passing_steps: 1000000}\n", "3: base.nb_msg_passing_steps: "
     "nb_msg_passing_steps = 1000000", ["it must be an integer in [1, 64]"]),
    (H + "base: {eval_every: 0}\n", "3: base.eval_every: eval_every = 0",
     ["it must be an integer in [1, 10,000,000]"]),
    (H + "base: {test_every: 0}\n", "3: base.test_every: test_every = 0", ["[1, 10,000,000]"]),
    (H + "base: {learning_rate: 0}\n", "3: base.learning_rate: learning_rate = 0.0",
     ["it must be a number in (0, 1]"]),
    (H + "base: {learning_rate: -1.0e-3}\n", "3: base.learning_rate: learning_rate = -0.001",
     ["(0, 1]"]),
    (H + "base: {learning_rate: 1.0e9}\n", "3: base.learning_rate: learning_rate = 1000000000.0",
     ["(0, 1]"]),
    (H + "base: {learning_rate: .inf}\n", "3: base.learning_rate: learning_rate = inf", ["(0, 1]"]),
    (H + "base: {learning_rate: .nan}\n", "3: base.learning_rate: learning_rate = nan", ["(0, 1]"]),
    (H + "base: {learning_rate: 'nan'}\n", "3: base.learning_rate: learning_rate = 'nan' has the "
     "wrong type", ["expected a number"]),
    (H + "base: {learning_rate: " + "9" * 400 + "}\n", "3: base.learning_rate: learning_rate = 999",
     ["is not allowed; it is too large for a number"]),
    (H + "base: {grad_clip_max_norm: .nan}\n", "3: base.grad_clip_max_norm: grad_clip_max_norm = "
     "nan", ["it must be a finite number >= 0 (0: no clipping)"]),
    (H + "base: {grad_clip_max_norm: .inf}\n", "3: base.grad_clip_max_norm: grad_clip_max_norm = "
     "inf", ["finite number >= 0"]),
    (H + "base: {dropout_prob: 1.0}\n", "3: base.dropout_prob: dropout_prob = 1.0",
     ["it must lie in [0, 1)"]),
    (H + "base: {dropout_prob: -0.1}\n", "3: base.dropout_prob: dropout_prob = -0.1", ["[0, 1)"]),
    (H + "base: {hint_teacher_forcing: -.inf}\n", "3: base.hint_teacher_forcing: "
     "hint_teacher_forcing = -inf", ["it must lie in [0, 1]"]),
    (H + "base: {regularization: true, regularization_weight: -1}\n", "3: "
     "base.regularization_weight: regularization_weight = -1.0", ["finite number >= 0"]),
    (H + "base: {regularization: true, regularization_weight: .inf}\n", "3: "
     "base.regularization_weight: regularization_weight = inf", ["finite number >= 0"]),
    (H + "base: {train_lengths: [1]}\n", "3: base.train_lengths: train_lengths = [1]",
     ["graph sizes must be integers in [2, 1,024]"]),
    (H + "base: {train_lengths: [0]}\n", "3: base.train_lengths: train_lengths = [0]",
     ["[2, 1,024]"]),
    (H + "base: {train_lengths: [1000000], length_generalize: false}\n", "3: base.train_lengths: "
     "train_lengths = [1000000]", ["[2, 1,024]"]),
    (H + "base: {train_lengths: {a: 4}}\n", "3: base.train_lengths: train_lengths = {'a': 4} has "
     "the wrong type", ["a list of integers"]),
    (H + "base: {train_lengths: [" + ", ".join(map(str, range(2, 42))) + "]}\n",
     "3: base.train_lengths: train_lengths = [2, 3,", ["it holds 40 sizes; at most 32"]),
    (H + "base: {train_lengths: [16, 16]}\n", "3: base.train_lengths: train_lengths = [16, 16]",
     ["16 is repeated; give each size once"]),
    (H + "base: {pool_size: 0}\n", "3: base.pool_size: pool_size = 0",
     ["it must be an integer in [1, 1,000,000] (or null for the default)"]),
    (H + "base: {pool_size: 1000000000000}\n", "3: base.pool_size: pool_size = 1000000000000",
     ["[1, 1,000,000]"]),
    (H + "base: {data_seed: -1}\n", "3: base.data_seed: data_seed = -1",
     ["it must be an integer in [0, 4,294,967,295]"]),
    # seeds: bounded before any range is made
    ("name: x\nseeds: 0-1000000000\n", "2: seeds: '0-1000000000' is 1,000,000,001 seeds",
     ["at most 1,000,000 are allowed"]),
    ("name: x\nseeds: 1000000000000\n", "2: seeds: 1000000000000 is not allowed",
     ["a positive count up to 1,000,000"]),
    ("name: x\nseeds: [0, 5000000000]\n", "2: seeds[1]: 5000000000 is not allowed",
     ["seeds are integers in [0, 4294967295]"]),
    ("name: x\nseeds: 4294967290-4294967300\n", "2: seeds: '4294967290-4294967300' is not allowed",
     ["[0, 4294967295]"]),
    ("name: x\nseeds: yes\n", "2: seeds: true is not allowed", ["a positive count"]),
    # how many configurations and runs
    ("name: x\nseeds: 2\ngrid:\n" + "".join(
        f"  {key}: [{', '.join(map(str, values))}]\n" for key, values in (
            ("hidden_size", range(8, 168, 8)), ("batch_size", range(1, 21)),
            ("train_steps", range(1000, 21000, 1000)), ("nb_msg_passing_steps", range(1, 21)),
            ("data_seed", range(1, 21)))),
     "3: grid: the sweep expands to 3,200,000 configurations (20 × 20 × 20 × 20 × 20)",
     ["at most 10,000 configurations and 1,000,000 runs (configurations × seeds)"]),
    ("name: x\nseeds: 0-9999\ngrid:\n  hidden_size: [" + ", ".join(map(str, range(8, 1608, 8)))
     + "]\n", "2: seeds: 200 configuration(s) × 10,000 seeds = 2,000,000 runs",
     ["at most 10,000 configurations and 1,000,000 runs"]),
    # the other top-level keys
    (H + "population: 1000000000000\n", "3: population: 1000000000000 is not allowed",
     ["[1, 1,000,000], or null"]),
    (H + "max_attempts: 1000000000\n", "3: max_attempts: 1000000000 is not allowed",
     ["give a number of attempts in [1, 100]"]),
    (H + "resources: {cpus: 1000000}\n", "3: resources.cpus: 1000000.0 is not allowed",
     ["give a positive number of CPUs up to 1024"]),
    (H + "resources: {cpus: .inf}\n", "3: resources.cpus: inf is not allowed", ["up to 1024"]),
    (H + "resources: {gpus: 1000000}\n", "3: resources.gpus: 1000000.0 is not allowed",
     ["a whole number of GPUs up to 64"]),
    (H + "resources: {gpus: .nan}\n", "3: resources.gpus: nan is not allowed", ["up to 64"]),
    (H + "tracking: my-experiment\n", "3: tracking: 'my-experiment' is not allowed",
     ["valid dictionary"]),
    (H + "tracking: {experiment: 5}\n", "3: tracking.experiment: 5 is not allowed",
     ["valid string"]),
    (H + "analyses: faithfulness\n", "3: analyses: 'faithfulness' is not allowed", ["valid list"]),
    ("name: " + "x" * 500 + "\nseeds: 2\n", "1: name: 'xxx", ["is 500 characters; at most 160"]),
    (H + "configurations:\n  - {label: " + "a" * 300 + "}\n", "4: configurations[0].label: 'aaa",
     ["is 300 characters; at most 200"]),
    # YAML that would expand, nest or grow without bound
    (H + "experiment:\n" + BILLION_LAUGHS, "3: experiment: the file expands to 1,234,567,906 YAML "
     "values", ["at most 100,000 are allowed"]),
    (H + "base:\n  train_lengths:\n" + BILLION_LAUGHS.replace("  - ", "    - "),
     "4: base.train_lengths: the file expands to", ["at most 100,000 are allowed"]),
    (H + "base: {train_lengths: " + "[" * 1000 + "]" * 1000 + "}\n",
     "1: invalid YAML: lists or mappings nested too deeply", ["at most 32 levels"]),
    (H + "base: {train_lengths: " + "[" * 40 + "]" * 40 + "}\n",
     "3: lists or mappings nested more than 32 levels deep", []),
    (H + "base:\n\thidden_size: 4\n", "4: invalid YAML: found character '\\t'", []),
    # combinations that would make a run meaningless (or two runs the same under two hashes)
    (H + "base: {hint_mode: none, hint_teacher_forcing: 0.5}\n", "3: base.hint_teacher_forcing: "
     "hint_teacher_forcing = 0.5 has no effect with hint_mode = 'none'",
     ["set hint_teacher_forcing: 0 or hint_mode: encoded_decoded"]),
    (H + "base: {hint_mode: decoded_only, hint_teacher_forcing: 0.5}\n", "3: "
     "base.hint_teacher_forcing: hint_teacher_forcing = 0.5 has no effect with hint_mode = "
     "'decoded_only'", []),
    (H + "grid: {regularization_weight: [1.0e-3, 1.0e-2]}\n", "3: grid.regularization_weight[0]: "
     "regularization_weight = 0.001 has no effect with regularization = false",
     ["set regularization: true, or leave regularization_weight out"]),
    (H + "base: {train_lengths: [16, 64]}\n", "3: base.train_lengths: length_generalize = true "
     "tests at n = 64, which is not larger than the largest train length (64 in train_lengths = "
     "[16, 64])", ["train on sizes below 64, or set length_generalize: false (tests at n = 16)"]),
    (H + "base: {init: compiled, algorithm: dfs_light, use_ln: false}\n", "3: base.init: init = "
     "'compiled' starts from", ["an algorithm with a graph program (bfs, bellman_ford) or dfs, "
                                "not 'dfs_light'"]),
    (H + "base: {init: compiled, algorithm: dfs, use_ln: false}\n", "3: base.init: init = "
     "'compiled' starts from the network compiled from the hand-built DFS network",
     ["nb_heads: 4; use_edge_info: true; one train length and length_generalize: false"]),
    (H + "base: {init: compiled, algorithm: bfs, use_ln: false, hidden_size: 4, nb_heads: 2}\n",
     "3: base.", ["needs nb_heads: 1"]),
]


@pytest.mark.parametrize("text, start, pieces", BOUNDS_CASES,
                         ids=[f"{i}-{c[1].split(':')[1].strip()}" for i, c in enumerate(BOUNDS_CASES)])
def test_bounds_each_name_the_line_key_value_and_what_is_allowed(tmp_path, text, start, pieces):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{start}"), message
    assert len(message.splitlines()) == 1 and len(message) < 600
    for piece in pieces:
        assert piece in message, message


def test_bounds_are_inclusive(tmp_path):
    spec = load(tmp_path, """
        name: edges
        base: {hidden_size: 4096, batch_size: 4096, nb_msg_passing_steps: 64, learning_rate: 1,
               train_steps: 10000000, dropout_prob: 0.99, pool_size: 1000000,
               data_seed: 4294967295, train_lengths: [2, 1024], length_generalize: false}
        seeds: [0, 4294967295]
        max_attempts: 100
        population: 1000000
        resources: {cpus: 1024, gpus: 64}
        """)
    config = spec.resolved_configurations[0].config
    assert (config.hidden_size, config.train_steps, config.pool_size) == (4096, 10_000_000, 1_000_000)
    assert spec.seeds == (0, 4294967295) and spec.max_attempts == 100
    assert len(load(tmp_path, "name: x\nseeds: 0-999999\n").seeds) == 1_000_000
    grid = "name: g\nseeds: 100\ngrid:\n  hidden_size: [" + ", ".join(map(str, range(1, 101))) + \
        "]\n  data_seed: [" + ", ".join(map(str, range(100))) + "]\n"
    assert len(load(tmp_path, grid).resolved_configurations) == 10_000     # exactly at both caps
    aliased = load(tmp_path, "name: a\nseeds: 2\ngrid:\n  train_lengths: [&l [4, 7], [16]]\n"
                             "configurations:\n  - {label: a}\n  - {label: b, hidden_size: 8}\n")
    assert len(aliased.resolved_configurations) == 4                     # small anchors are fine


def test_a_huge_file_is_refused_unread(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "w") as file:
        file.write("name: x\nseeds: 2\n")
        file.write("# padding padding padding padding padding padding padding padding\n" * 20_000)
    assert path.stat().st_size > 1 << 18
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value) == (
        f"{path}:1: the file has more than 262,144 characters; a sweep file may have at most "
        "262,144 (workers/rules.py: MAX_SPEC_CHARACTERS)")


def test_plan_overrides_have_the_settings_bounds(tmp_path):
    spec = load(tmp_path, GRID_SPEC)
    with pytest.raises(SpecError, match=r"steps = 10000001 is not allowed; it must be an integer "
                                        r"in \[1, 10,000,000\]"):
        make_plan(spec, steps=10_000_001)
    with pytest.raises(SpecError, match=r"max_seeds = 1000001 is not allowed; .*\[1, 1,000,000\]"):
        make_plan(spec, max_seeds=1_000_001)
    with pytest.raises(SpecError, match=r"population = 1000001 is not allowed; .*\[1, 1,000,000\]"):
        make_plan(spec).tasks(population=1_000_001)
    assert make_plan(spec, steps=10_000_000).configurations[0].config.train_steps == 10_000_000


def test_the_same_bounds_for_train_flags():
    with pytest.raises(ConfigError, match=r"command line: hidden_size = 5000 is not allowed; it "
                                          r"must be an integer in \[1, 4,096\]"):
        TrainConfig.from_dict({"hidden_size": 5000}, where="command line")
    with pytest.raises(ConfigError, match=r"learning_rate = inf is not allowed"):
        TrainConfig.from_dict({"learning_rate": float("inf")})


def test_a_long_grid_axis_is_refused_at_the_axis_without_comparing_every_pair(tmp_path):
    message, path = error_of(tmp_path, "name: x\nseeds: 2\ngrid:\n  data_seed: ["
                             + ", ".join(map(str, range(10_001))) + "]\n")
    assert message == (f"{path}:4: grid.data_seed: 10,001 values are not allowed; a sweep expands "
                       "to at most 10,000 configurations (workers/rules.py)")
    message, path = error_of(tmp_path, "name: x\nseeds: 2\ngrid:\n  train_lengths: [[4, 7], [16], "
                             "[4, 7]]\n")
    assert f"{path}:4: grid.train_lengths[2]: [4, 7] is repeated; the values of an axis must " \
           "differ" in message
