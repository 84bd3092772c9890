"""Numbers that can be trusted: the project's XLA flags, the YNNPACK miscompile they avoid, and the
numerical canary.

The population tests here fail when XLA:CPU's YNNPACK reduction fusion is forced back on (checked
on a 2-core AMD EPYC with jaxlib 0.10.2):

    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=reduce python -m pytest tests/test_numerics.py
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workers import canary, xla_flags
from workers.config import TrainConfig
from workers.data import make_request
from workers.model import make_net_config
from workers.model.forward import init_params, unroll
from workers.model.losses import total_loss

FLAG = "--xla_cpu_experimental_ynn_fusion_type"


# -- the flags -----------------------------------------------------------------------------------

def test_merge_adds_the_project_flag_and_keeps_the_users():
    ours = [f"{FLAG}="]
    assert xla_flags.merged(None, ours) == f"{FLAG}="
    assert xla_flags.merged("--xla_cpu_enable_fast_math=false", ours) == \
        f"--xla_cpu_enable_fast_math=false {FLAG}="
    # the user's value wins where they name the flag (with one dash or two)
    assert xla_flags.merged(f"{FLAG}=reduce", ours) == f"{FLAG}=reduce"
    assert xla_flags.merged("-xla_cpu_experimental_ynn_fusion_type=dot", ours) == \
        "-xla_cpu_experimental_ynn_fusion_type=dot"


def test_flags_only_for_a_jaxlib_that_knows_them():
    # XLA aborts on an unknown flag: jaxlib 0.8.0 has no YNNPACK fusion flag, 0.8.1 has
    assert xla_flags.project_flags((0, 8, 0)) == []
    assert xla_flags.project_flags((0, 8, 1)) == [f"{FLAG}="]
    assert xla_flags.project_flags((0, 10, 2)) == [f"{FLAG}="]
    assert xla_flags._version_tuple("0.10.2.dev20261101") == (0, 10, 2)


def test_this_process_runs_without_the_fusion():
    assert xla_flags.installed_jaxlib() >= (0, 8, 1)
    assert xla_flags.fusion_disabled()
    assert not xla_flags.fusion_disabled(f"{FLAG}=reduce")


def _python(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=environment)


def test_importing_the_project_sets_the_flag_merged_with_the_users():
    proc = _python("import orchestrator, os; print(os.environ['XLA_FLAGS'])",
                   XLA_FLAGS="--xla_cpu_enable_fast_math=false")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["--xla_cpu_enable_fast_math=false", f"{FLAG}="]


def test_a_backend_started_before_the_import_is_left_alone_with_a_warning():
    proc = _python("import warnings, os, jax.numpy as jnp; jnp.zeros(1).block_until_ready()\n"
                   "with warnings.catch_warnings(record=True) as w:\n"
                   "    warnings.simplefilter('always'); import workers\n"
                   "print(repr(os.environ.get('XLA_FLAGS')), [str(x.message) for x in w])")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("None")       # not changed under a running backend
    assert "JAX's backend started before gapsweep could set XLA_FLAGS" in proc.stdout


def test_worker_tasks_get_the_flag():
    from orchestrator.cluster import worker_env

    for gpus in (0, 0.5, 1):
        assert f"{FLAG}=" in worker_env(gpus)["XLA_FLAGS"].split()


# -- the standalone repro (no project code) ------------------------------------------------------

def _pointer_loss(p, truth, lengths):
    """The masked pointer-hint loss: p [T-1, B, n, n] logits, truth [T, B, n] pointers."""
    n = p.shape[-1]
    ll = -jnp.sum(jax.nn.one_hot(truth[1:], n) * jax.nn.log_softmax(p, -1), -1)
    alive = (lengths[None, :] > jnp.arange(p.shape[0])[:, None] + 1).astype(jnp.float32)
    return jnp.sum(ll * alive[..., None])


@pytest.mark.parametrize("steps, population", [(6, 32), (12, 16), (48, 4)])
def test_standalone_repro_is_exact_with_the_project_flags(steps, population):
    """With the fusion on (jaxlib 0.10.2, AMD EPYC) lanes 25+, 11+ and 2+ of these were wrong."""
    rng = np.random.default_rng(0)
    p = jnp.asarray(rng.normal(size=(population, steps - 1, 16, 16, 16)).astype(np.float32))
    truth = jnp.asarray(rng.integers(0, 16, size=(steps, 16, 16)))
    lengths = jnp.asarray(rng.integers(2, steps + 1, size=(16,)))
    vmapped = jax.jit(jax.vmap(_pointer_loss, in_axes=(0, None, None)))
    assert "__ynn_fusion" not in vmapped.lower(p, truth, lengths).compile().as_text()
    together = np.asarray(vmapped(p, truth, lengths))
    single = jax.jit(_pointer_loss)
    alone = np.array([float(single(p[i], truth, lengths)) for i in range(population)])
    np.testing.assert_allclose(together, alone, rtol=1e-6)


def test_forcing_the_fusion_on_brings_ynnpack_back():
    """The flag is what removes the fusion: a process whose XLA_FLAGS names it (the user's value
    wins) compiles the same reduction into a YNNPACK fusion."""
    code = ("import workers, jax, jax.numpy as jnp\n"
            "from tests.test_numerics import _pointer_loss\n"
            "f = jax.jit(jax.vmap(_pointer_loss, in_axes=(0, None, None)))\n"
            "args = (jnp.zeros((4, 47, 16, 16, 16)), jnp.zeros((48, 16, 16), jnp.int32),"
            " jnp.full((16,), 48))\n"
            "print('__ynn_fusion' in f.lower(*args).compile().as_text())")
    on = _python(code, XLA_FLAGS=f"{FLAG}=reduce", PYTHONPATH=os.getcwd())
    off = _python(code, PYTHONPATH=os.getcwd())
    assert (on.returncode, off.returncode) == (0, 0), on.stderr + off.stderr
    assert (on.stdout.strip(), off.stdout.strip()) == ("True", "False")


# -- the model: vmapped loss and gradients equal each seed's own ---------------------------------

def _population_check(data, config: TrainConfig, population: int, graphs: int | None = None,
                      gradients: bool = True):
    net_config = make_net_config(config, data.probe_table)
    split = data.take(np.arange(graphs)) if graphs else data
    batch = jax.tree_util.tree_map(jnp.asarray, split.as_batch())
    example = split.take(np.arange(2)).as_batch()
    params = jax.vmap(lambda k: init_params(net_config, k, example))(
        jax.random.split(jax.random.PRNGKey(7), population))

    def loss(p):
        outputs, hints, _ = unroll(net_config, p, batch, jax.random.PRNGKey(0), train=True)
        return total_loss(net_config, batch, outputs, hints)

    fn = jax.value_and_grad(loss) if gradients else loss
    together = jax.jit(jax.vmap(fn))(params)
    single = jax.jit(fn)
    for i in range(population):
        alone = single(jax.tree_util.tree_map(lambda x: x[i], params))
        mine = jax.tree_util.tree_map(lambda x: x[i], together)
        if not gradients:
            np.testing.assert_allclose(mine, alone, rtol=1e-5, err_msg=f"loss of lane {i}")
            continue
        np.testing.assert_allclose(mine[0], alone[0], rtol=1e-5, err_msg=f"loss of lane {i}")
        # each gradient leaf to 1e-4 of its own largest entry, plus 1e-6 of the largest entry
        # of any leaf: vmapped and single programs may sum in other orders, which moves entries
        # near zero by rounding (softmax-shift biases have a true gradient of 0 and get ~1e-9)
        leaves = jax.tree_util.tree_leaves(alone[1])
        overall = max(float(np.max(np.abs(h))) for h in leaves)
        for (path, g), h in zip(jax.tree_util.tree_leaves_with_path(mine[1]), leaves):
            tolerance = 1e-4 * float(np.max(np.abs(h))) + 1e-6 * overall
            np.testing.assert_allclose(g, h, rtol=0, atol=tolerance,
                                       err_msg=f"lane {i}: gradient {jax.tree_util.keystr(path)}")


def test_dfs_population_loss_and_gradients_equal_each_seed(cache):
    """DFS at n = 16, batch 32 (48 hint steps): with the fusion on, wrong from lane 2 or 3."""
    data = cache.get(make_request("dfs", "train", 16, 32, 1))
    _population_check(data, TrainConfig(algorithm="dfs", hidden_size=16), population=4)


def test_bellman_ford_population_equals_each_seed_at_the_test_split(cache):
    data = cache.get(make_request("bellman_ford", "test", 64))
    _population_check(data, TrainConfig(algorithm="bellman_ford", hidden_size=16), population=4)


def test_bfs_seq_population_loss_equals_each_seed_at_long_traces(cache):
    """bfs_seq on the test recipe at n = 32 (32 graphs, 744 hint steps): its loss, the forward
    pass (with the fusion on, lane 1 was off by 2.6e-3). At n = 64 (2,532 hint steps) one forward
    pass of the split takes ~40 s on 2 cores, too long for a unit test; the vmap check covers it
    (``benchmarks/vmap_loss_check.py``)."""
    data = cache.get(make_request("bfs_seq", "test", 32))
    _population_check(data, TrainConfig(algorithm="bfs_seq", hidden_size=16), population=4,
                      gradients=False)


# -- the canary ----------------------------------------------------------------------------------

def test_compare_lanes_passes_equal_lanes_and_names_the_first_that_differs():
    together = {"loss": np.array([1.0, 2.0, 3.0]), "gradient norm": np.array([0.5, 0.5, 0.5])}
    report = canary.compare_lanes("training step", "bfs, n = 16", together,
                                  {0: {"loss": 1.0, "gradient norm": 0.5},
                                   2: {"loss": 3.0 * (1 + 1e-7), "gradient norm": 0.5}}, 0.25)
    assert report.outcome == "passed" and report.lanes == (0, 2) and report.population == 3
    assert 0 < report.max_deviation < canary.RELATIVE_TOLERANCE
    assert report.environment["backend"] == jax.default_backend()
    with pytest.raises(canary.NumericalCanaryError) as err:
        canary.compare_lanes("training step", "bfs, n = 16, 12 hint steps", together,
                             {0: {"loss": 1.0}, 2: {"loss": 3.03}}, 0.25, labels={2: "seed 9"})
    text = str(err.value)
    for part in ("vmapped training step", "bfs, n = 16, 12 hint steps", "population 3",
                 "seed 9 (lane 2) loss 3", "alone gives 3.03", f"jax {jax.__version__}",
                 f"backend {jax.default_backend()}", "nothing of this task is recorded"):
        assert part in text, (part, text)
    # NaN only matches NaN; arrays are compared element by element
    canary.compare_lanes("x", "y", {"a": np.array([[np.nan, 1.0], [2.0, 3.0]])},
                         {0: {"a": np.array([np.nan, 1.0])}}, 0.0)
    with pytest.raises(canary.NumericalCanaryError, match=r"a\[1\]"):
        canary.compare_lanes("x", "y", {"a": np.array([[np.nan, 1.0], [2.0, 3.0]])},
                             {1: {"a": np.array([2.0, 3.1])}}, 0.0)


def test_the_tolerance_can_be_widened_for_a_backend_that_rounds_differently(monkeypatch):
    together = {"loss": np.array([1.0, 3.0])}
    with pytest.raises(canary.NumericalCanaryError, match="GAPSWEEP_CANARY_TOLERANCE=1e-4"):
        canary.compare_lanes("x", "y", together, {1: {"loss": 3.0003}}, 0.0)
    monkeypatch.setenv("GAPSWEEP_CANARY_TOLERANCE", "1e-3")
    assert canary.compare_lanes("x", "y", together, {1: {"loss": 3.0003}}, 0.0).outcome == "passed"
    monkeypatch.setenv("GAPSWEEP_CANARY_TOLERANCE", "big")
    with pytest.raises(ValueError, match="GAPSWEEP_CANARY_TOLERANCE = 'big' is not allowed"):
        canary.compare_lanes("x", "y", together, {1: {"loss": 3.0}}, 0.0)
