"""Loss landscapes (workers/analysis/landscape.py): the surface is the loss of the plane's points,
the plane through two networks passes through both, directions are filter-normalised, the compiled
BFS network sits at a minimum, and a landscape saves, loads and draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workers.analysis.landscape import (Landscape, Plane, evaluation_loss, orthogonalize,
                                        plane_around, plane_through, random_direction, surface,
                                        surfaces_vmapped, tree_dot, tree_norm)
from workers.compile.compiler import compile_program
from workers.compile.algorithm_programs import PROGRAMS
from workers.config import TrainConfig
from workers.data import make_request
from workers.model import make_net_config
from workers.model.forward import init_params

CHUNK = 4          # one grid-chunk shape for every surface here: one compilation per plane kind
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def setup(cache):
    """BFS on 4 graphs of 8 nodes, hidden size 8 without LayerNorm (compilable): the network
    config, the loss on that batch, the compiled parameters and a random initialisation."""
    data = cache.get(make_request("bfs", "test", 8, 4, 201))
    config = TrainConfig.from_dict({"algorithm": "bfs", "hidden_size": 8, "use_ln": False})
    net_config = make_net_config(config, data.probe_table)
    batch = jax.tree_util.tree_map(jnp.asarray, data.as_batch())
    compiled = compile_program(PROGRAMS["bfs"], net_config)
    random = jax.tree_util.tree_map(np.asarray, init_params(net_config, jax.random.PRNGKey(7), batch))
    loss_fn = evaluation_loss(net_config, data.as_batch())
    return {"net_config": net_config, "loss_fn": loss_fn, "loss": jax.jit(loss_fn), "compiled": compiled,
            "random": random}


def leaves_with_paths(tree):
    return [(jax.tree_util.keystr(p), np.asarray(x)) for p, x in
            jax.tree_util.tree_leaves_with_path(tree)]


def test_the_surface_at_the_centre_is_the_loss_of_the_parameters(setup):
    params = setup["random"]
    center_loss = float(setup["loss"](params))
    assert np.isfinite(center_loss) and center_loss > 0.1          # an untrained network
    grid = np.array([-0.5, 0.0, 0.5])
    plane = plane_around(jax.random.PRNGKey(1), params)
    losses = surface(setup["loss_fn"], plane, grid, grid, chunk=CHUNK)
    assert losses.shape == (3, 3) and losses.dtype == np.float64
    np.testing.assert_allclose(losses[1, 1], center_loss, rtol=1e-6)
    assert np.all(np.isfinite(losses))
    # every other point is a different network with a different loss (the directions do move it)
    off = np.delete(losses.ravel(), 4)
    assert np.all(np.abs(off - center_loss) > 1e-6 * center_loss)
    # and the grid is laid out [alpha, beta]: the point (0.5, -0.5) is losses[2, 0]
    np.testing.assert_allclose(losses[2, 0], float(setup["loss"](plane.point(0.5, -0.5))), rtol=1e-5)


def test_the_plane_through_two_networks_passes_through_both(setup):
    p_a, p_b = setup["compiled"], setup["random"]
    plane = plane_through(jax.random.PRNGKey(2), p_a, p_b)
    for (path, got), (_, want) in zip(leaves_with_paths(plane.point(0.0, 0.0)), leaves_with_paths(p_a)):
        np.testing.assert_array_equal(got, want, err_msg=path)
    for (path, got), (_, want) in zip(leaves_with_paths(plane.point(1.0, 0.0)), leaves_with_paths(p_b)):
        np.testing.assert_array_equal(got, want, err_msg=path)
    # d1 is the difference, d2 is orthogonal to it and as long
    for (path, d1), (_, a), (_, b) in zip(leaves_with_paths(plane.d1), leaves_with_paths(p_a),
                                          leaves_with_paths(p_b)):
        np.testing.assert_array_equal(d1, b - a, err_msg=path)
    n1, n2 = float(tree_norm(plane.d1)), float(tree_norm(plane.d2))
    np.testing.assert_allclose(n2, n1, rtol=1e-5)
    assert abs(float(tree_dot(plane.d1, plane.d2))) < 1e-4 * n1 * n2
    # the surface at (0, 0) and (1, 0) is the loss of the two networks
    loss_a, loss_b = float(setup["loss"](p_a)), float(setup["loss"](p_b))
    assert loss_a < 1e-6 < 0.1 < loss_b                             # compiled vs random
    losses = surface(setup["loss_fn"], plane, [0.0, 1.0], [0.0, 0.25], chunk=CHUNK)
    np.testing.assert_allclose(losses[0, 0], loss_a, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(losses[1, 0], loss_b, rtol=1e-6)
    # the naive origin + a·d1 misses p_b: compiled weights of 2^35 swallow the random ones
    naive = Plane(plane.origin, plane.d1, plane.d2)
    assert not all(np.array_equal(g, w) for (_, g), (_, w) in
                   zip(leaves_with_paths(naive.point(1.0, 0.0)), leaves_with_paths(p_b)))
    with pytest.raises(ValueError, match="reference must be"):
        plane_through(jax.random.PRNGKey(2), p_a, p_b, reference="middle")


def test_directions_are_filter_normalised(setup):
    for params in (setup["compiled"], setup["random"]):
        d = random_direction(jax.random.PRNGKey(3), params)
        zero_filters = 0
        for (path, x), (_, p) in zip(leaves_with_paths(d), leaves_with_paths(params)):
            assert x.shape == p.shape, path
            if p.ndim == 1:
                assert not np.any(x), f"{path}: biases get no direction"
                continue
            assert p.ndim == 2 and path.endswith("['kernel']"), path
            want = np.linalg.norm(p, axis=0)
            np.testing.assert_allclose(np.linalg.norm(x, axis=0), want, rtol=1e-5, err_msg=path)
            zero = want == 0
            assert not np.any(x[:, zero]), f"{path}: all-zero filters stay zero"
            assert np.all(np.any(x[:, ~zero] != 0, axis=0)), path
            zero_filters += int(zero.sum())
        assert (zero_filters > 50) == (params is setup["compiled"])  # compiled: mostly unused units
    # independent draws; and without normalisation a plain Gaussian everywhere
    d1 = random_direction(jax.random.PRNGKey(3), setup["random"])
    d2 = random_direction(jax.random.PRNGKey(4), setup["random"])
    assert abs(float(tree_dot(d1, d2))) < 0.5 * float(tree_norm(d1) * tree_norm(d2))
    raw = random_direction(jax.random.PRNGKey(3), setup["compiled"], filter_normalize=False)
    assert all(np.all(x != 0) for _, x in leaves_with_paths(raw))
    # other leaves (an n × n pre-attention bias) are normalised as a whole
    toy = {"processor": {"pre_att_bias": np.arange(16.0, dtype=np.float32).reshape(4, 4) - 5.0,
                         "W": {"kernel": np.array([[3.0, 0.0], [4.0, 0.0]], np.float32),
                               "bias": np.ones(2, np.float32)}}}
    d = random_direction(jax.random.PRNGKey(5), toy)
    bias = np.asarray(d["processor"]["pre_att_bias"])
    np.testing.assert_allclose(np.linalg.norm(bias), np.linalg.norm(toy["processor"]["pre_att_bias"]),
                               rtol=1e-5)
    assert not np.allclose(np.linalg.norm(bias, axis=0),
                           np.linalg.norm(toy["processor"]["pre_att_bias"], axis=0), rtol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(d["processor"]["W"]["kernel"], axis=0), [5.0, 0.0],
                               rtol=1e-5)
    # orthogonalize removes the component along the other direction (and leaves zeros zero)
    o = orthogonalize(d1, d2)
    assert abs(float(tree_dot(o, d2))) < 1e-4 * float(tree_norm(o) * tree_norm(d2))
    assert all(not np.any(x) for path, x in leaves_with_paths(o) if x.ndim == 1)


def test_the_compiled_network_sits_at_a_minimum(setup):
    compiled = setup["compiled"]
    plane = plane_around(jax.random.PRNGKey(6), compiled)
    # the directions move only the units the program uses
    for (path, x), (_, p) in zip(leaves_with_paths(plane.d2), leaves_with_paths(compiled)):
        if p.ndim == 2:
            assert not np.any(x[:, np.linalg.norm(p, axis=0) == 0]), path
    grid = np.array([-0.5, -0.1, 0.0, 0.1, 0.5])
    losses = surface(setup["loss_fn"], plane, grid, grid, chunk=CHUNK)
    center = losses[2, 2]
    np.testing.assert_allclose(center, float(setup["loss"](compiled)), rtol=1e-6, atol=1e-7)
    assert center < 1e-6
    assert np.all(np.isfinite(losses))
    assert np.all(losses >= center)
    assert losses.max() > center + 1e-3           # and the loss does rise away from it


def test_population_surfaces_match_one_by_one(setup):
    batch_loss = setup["loss_fn"]
    stacked = jax.tree_util.tree_map(lambda a, b: np.stack([a, b]), setup["random"],
                                     setup["compiled"])
    key = jax.random.PRNGKey(8)
    grid = np.array([-0.2, 0.0, 0.2])
    planes, losses = surfaces_vmapped(batch_loss, stacked, key, grid, grid[1:2], chunk=CHUNK)
    assert losses.shape == (2, 3, 1)
    for s, k in enumerate(jax.random.split(key, 2)):
        one = plane_around(k, jax.tree_util.tree_map(lambda x: x[s], stacked))
        for (path, a), (_, b) in zip(leaves_with_paths(one.d1),
                                     leaves_with_paths(jax.tree_util.tree_map(lambda x: x[s],
                                                                              planes.d1))):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=path)
        np.testing.assert_allclose(losses[s, 1, 0], float(setup["loss"](one.origin)), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(losses[s], surface(batch_loss, one, grid, grid[1:2], chunk=CHUNK),
                                   rtol=1e-4, atol=1e-6)
    assert losses[0, 1, 0] > 0.1 > losses[1, 1, 0]                 # random, then compiled


def test_landscape_saves_loads_and_draws(tmp_path):
    alphas, betas = np.linspace(-1, 2, 7), np.linspace(-1, 1, 5)
    a, b = np.meshgrid(alphas, betas, indexing="ij")
    losses = 10.0 ** (3 * np.abs(a) + np.abs(b)) - 1.0             # 0 at (0, 0), up to ~10^7
    losses[6, 4] = np.nan
    losses[6, 3] = np.inf
    land = Landscape(alphas, betas, losses, {"compiled": (0, 0), "learned": (1.0, 0.0)})
    land.to_npz(tmp_path / "l.npz")
    with np.load(tmp_path / "l.npz", allow_pickle=False) as npz:      # plain arrays only
        assert set(npz.files) == {"alphas", "betas", "losses", "marker_names", "marker_points"}
    back = Landscape.from_npz(tmp_path / "l.npz")
    np.testing.assert_array_equal(back.alphas, alphas)
    np.testing.assert_array_equal(back.betas, betas)
    np.testing.assert_array_equal(back.losses, losses)             # NaN and inf survive
    assert back.markers == {"compiled": (0.0, 0.0), "learned": (1.0, 0.0)}
    empty = Landscape(alphas, betas, np.ones((7, 5)))
    empty.to_npz(tmp_path / "e.npz")
    assert Landscape.from_npz(tmp_path / "e.npz").markers == {}
    with pytest.raises(ValueError, match="losses have shape"):
        Landscape(alphas, betas, np.ones((5, 7)))
    for name, landscape in (("log.png", land), ("flat.png", empty)):
        landscape.plot(tmp_path / name, title=f"BFS {name}")
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, name


def test_non_finite_losses_are_kept_not_raised():
    """A toy objective log(w): NaN for w < 0, -inf at w = 0; the surface keeps both."""
    one = {"w": {"kernel": np.ones((1, 1), np.float32)}}
    plane = Plane(one, one, jax.tree_util.tree_map(np.zeros_like, one))
    loss_fn = lambda p: jnp.log(p["w"]["kernel"][0, 0])                    # noqa: E731
    land = Landscape.compute(loss_fn, plane, [-2.0, -1.0, 0.0, 1.0], [0.0, 5.0], chunk=3,
                             markers={"w = 1": (0, 0)})
    assert np.isnan(land.losses[0]).all() and np.isneginf(land.losses[1]).all()
    np.testing.assert_allclose(land.losses[2:], [[0.0, 0.0], [np.log(2.0)] * 2], atol=1e-7)
    assert land.markers == {"w = 1": (0.0, 0.0)}


def test_the_landscape_canary_compares_vmapped_networks_with_each_alone(setup, monkeypatch):
    from workers.analysis import landscape
    from workers.canary import NumericalCanaryError

    grid = np.array([-0.5, 0.0, 0.5])
    stacked = jax.tree_util.tree_map(lambda x: np.stack([x, x]), setup["random"])
    planes = landscape.planes_around(jax.random.split(jax.random.PRNGKey(2), 2), stacked)
    report = landscape.lanes_canary(setup["loss_fn"], planes, grid, grid, chunk=CHUNK,
                                    shape="bfs n = 8")
    assert report.outcome == "passed" and report.lanes == (0, CHUNK - 1)
    assert report.population == CHUNK and report.max_deviation < 1e-5

    real = landscape._chunk_losses

    def miscompiled(loss_fn, terms, coefficients):   # a compiler getting vmapped lanes wrong
        losses = real(loss_fn, terms, coefficients)
        return losses * 1.01 if coefficients.shape[0] > 1 else losses

    monkeypatch.setattr(landscape, "_chunk_losses", miscompiled)
    with pytest.raises(NumericalCanaryError, match="vmapped landscape loss .bfs n = 8"):
        landscape.lanes_canary(setup["loss_fn"], planes, grid, grid, chunk=CHUNK,
                               shape="bfs n = 8")
