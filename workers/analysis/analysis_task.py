"""What an analysis task runs on a worker: a configuration's stacked parameters in, plain arrays out.

Like ``workers.training_task`` for training, a task knows nothing of Ray, databases or MLflow:
the driver reads the snapshots, ships them stacked ``[S, …]`` with the configuration as a dict, and records
what comes back. Data comes from the node's content-addressed cache (built there once if missing).
Every computation is vmapped over the seeds, in chunks (see ``analysis_chunk``), and checked by
the numerical canary (``workers.canary``): the first chunk's first and last networks computed alone
must give what the vmapped program gives, else the task raises ``NumericalCanaryError``.

- :func:`faithfulness_task`: trace and attention faithfulness per hint step on the test split.
- :func:`wide_test_task`: each seed's score on a wide test set (many graphs drawn as CLRS-30's
  test split is, with another data seed), pooled over the graphs.
- :func:`landscape_task`: loss surfaces on a fixed validation batch around each seed's learned and
  initial parameters, through its compiled (else initial) and learned parameters, and around the
  compiled network (once per configuration).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time

import numpy as np

from workers.canary import CanaryReport, compare_lanes
from workers.compile.algorithm_programs import PROGRAMS, compiled_init_problems
from workers.config import TrainConfig
from workers.data import DataCache
from workers.xla_cache import enable_compilation_cache

# Networks evaluated at once, on every backend (XLA:CPU's YNNPACK miscompile of vmapped losses,
# which once capped CPU chunks at 16, is off: workers/xla_flags.py; the canary checks each task).
CHUNK = 64


def analysis_chunk(requested: int | None = None) -> int:
    """Networks vmapped at once: ``requested``, at most CHUNK."""
    return CHUNK if requested is None else max(1, min(requested, CHUNK))


@dataclasses.dataclass
class FaithfulnessArrays:
    """Per seed (rows in the order of the parameters given) and hint step."""

    attention: np.ndarray                # [S, T - 1]
    trace: dict[str, np.ndarray]         # hint -> [S, T - 1]
    chance: np.ndarray                   # [T - 1]
    device: str                          # where it ran (as TaskOutput says it)
    seconds: float
    canary: CanaryReport | None = None
    host: str = dataclasses.field(default_factory=socket.gethostname)
    pid: int = dataclasses.field(default_factory=os.getpid)


@dataclasses.dataclass
class LandscapeArrays:
    """``per_seed[i]``: name → Landscape for the i-th seed given; ``shared``: landscapes that are
    the configuration's, not a seed's (around the compiled network)."""

    per_seed: list[dict]
    shared: dict
    device: str
    seconds: float
    canary: CanaryReport | None = None
    host: str = dataclasses.field(default_factory=socket.gethostname)
    pid: int = dataclasses.field(default_factory=os.getpid)


@dataclasses.dataclass
class WideTestArrays:
    """Per seed (in the order of the parameters given) its pooled score on the wide test set."""

    scores: np.ndarray                   # [S], fractions
    graphs: int
    size: int
    data_seed: int
    device: str
    seconds: float
    canary: CanaryReport | None = None
    host: str = dataclasses.field(default_factory=socket.gethostname)
    pid: int = dataclasses.field(default_factory=os.getpid)


# Graphs evaluated at once by the wide test: the CLRS-30 test split's own batch (what the
# training already evaluates at once, for each seed of a population).
WIDE_TEST_GRAPH_CHUNK = 32


def _evaluation_split(config: TrainConfig, cache: DataCache):
    """The configuration's test split (what its test score was measured on)."""
    # inside the function: JAX loads on the worker only, not where the driver imports this module
    from workers.train import TrainData

    return cache.get(TrainData.requests(config)[-1])


def _validation_split(config: TrainConfig, cache: DataCache):
    # inside the function: JAX loads on the worker only, not where the driver imports this module
    from workers.train import TrainData

    return cache.get(TrainData.requests(config)[-2])


def _take(tree, start: int, stop: int):
    # inside the function: JAX loads on the worker only, not where the driver imports this module
    import jax

    return jax.tree_util.tree_map(lambda x: x[start:stop], tree)


def faithfulness_task(config: dict, params, cache_dir: str | None = None,
                      chunk: int | None = None) -> FaithfulnessArrays:
    """Trace and attention faithfulness of every seed of ``params`` (``[S, …]`` leaves) on the
    configuration's test split, ``chunk`` seeds vmapped at once."""
    # inside the function: JAX loads on the worker only, not where the driver imports this module
    from workers.analysis.faithfulness import chance_agreement, faithfulness, selection_hint
    from workers.model import make_net_config
    from workers.training_task import device_description

    start = time.perf_counter()
    enable_compilation_cache()
    train_config = TrainConfig.from_dict(config)
    data = _evaluation_split(train_config, DataCache(cache_dir))
    net_config = make_net_config(train_config, data.probe_table)
    chunk = analysis_chunk(chunk)
    seeds = _leading(params)
    parts, canary = [], None
    for first in range(0, seeds, chunk):
        stacked = _take(params, first, first + chunk)
        parts.append(faithfulness(net_config, stacked, data, train_config.algorithm))
        if first == 0 and _leading(stacked) > 1:
            t0 = time.perf_counter()
            lanes = (0, _leading(stacked) - 1)
            alone = {lane: _flat(faithfulness(net_config, _take(stacked, lane, lane + 1), data,
                                              train_config.algorithm), 0) for lane in lanes}
            canary = compare_lanes("faithfulness evaluation", f"{train_config.algorithm} test split",
                                   _flat(parts[0]), alone, time.perf_counter() - t0)
    return FaithfulnessArrays(
        attention=np.concatenate([p["attention"] for p in parts]),
        trace={h: np.concatenate([p["trace"][h] for p in parts]) for h in parts[0]["trace"]},
        chance=chance_agreement(data, selection_hint(train_config.algorithm)),
        device=device_description(), seconds=time.perf_counter() - start, canary=canary)


def wide_test_request(config: TrainConfig, graphs: int, data_seed: int):
    """The wide test set of a configuration: ``graphs`` graphs at its test size, drawn with data
    seed ``data_seed`` exactly as CLRS-30's test split is drawn (one sampler, all at once, fixed
    positions, the sampler's own edge probability)."""
    from workers.data.requests import make_request

    return make_request(config.algorithm, "test", config.test_size, graphs, data_seed)


def wide_test_task(config: dict, params, graphs: int, data_seed: int,
                   cache_dir: str | None = None, chunk: int | None = None,
                   graph_chunk: int = WIDE_TEST_GRAPH_CHUNK) -> WideTestArrays:
    """Every seed of ``params`` (``[S, …]`` leaves) scored on the wide test set
    (:func:`wide_test_request`): ``chunk`` seeds × ``graph_chunk`` graphs at a time (each chunk
    padded to the set's longest trace, so one program serves them all), the hard predictions of
    all graphs gathered and scored once per seed (pooled, as dm-clrs scores its test split)."""
    # inside the function: JAX loads on the worker only, not where the driver imports this module
    import jax

    from workers.model import make_net_config
    from workers.model.forward import postprocess, unroll
    from workers.scoring import hard_output_score
    from workers.training_task import device_description

    start = time.perf_counter()
    enable_compilation_cache()
    train_config = TrainConfig.from_dict(config)
    data = DataCache(cache_dir).get(wide_test_request(train_config, graphs, data_seed))
    net_config = make_net_config(train_config, data.probe_table)
    chunk = analysis_chunk(chunk)
    graph_chunk = max(1, min(int(graph_chunk), data.num_graphs))

    def hard_outputs(p, batch):
        outputs, _, _ = unroll(net_config, p, batch, jax.random.PRNGKey(0), train=False)
        return postprocess(net_config, outputs, hard=True)

    predict = jax.jit(jax.vmap(hard_outputs, in_axes=(0, None)))
    score = jax.jit(jax.vmap(lambda hard, truth: hard_output_score(net_config.probe_table, hard,
                                                                   truth), in_axes=(0, None)))
    truth = data.as_batch()["outputs"]
    stacks = [_take(params, first, first + chunk) for first in range(0, _leading(params), chunk)]
    parts: list[list[dict]] = [[] for _ in stacks]      # per seed chunk, per graph chunk
    canary = None
    for g in range(0, data.num_graphs, graph_chunk):    # each batch built once, for every chunk
        indices = np.arange(g, min(g + graph_chunk, data.num_graphs))
        if len(indices) < graph_chunk:                  # the last chunk padded with its last graph
            indices = np.concatenate([indices, np.full(graph_chunk - len(indices), indices[-1])])
        batch = data.take(indices, trim=False).as_batch()
        for c, stacked in enumerate(stacks):
            parts[c].append(jax.device_get(predict(stacked, batch)))
        if g == 0 and _leading(stacks[0]) > 1:
            t0 = time.perf_counter()
            lanes = (0, _leading(stacks[0]) - 1)
            alone = {lane: {k: v[0] for k, v in jax.device_get(
                predict(_take(stacks[0], lane, lane + 1), batch)).items()} for lane in lanes}
            canary = compare_lanes("wide test predictions", f"{train_config.algorithm}, "
                                   f"{graph_chunk} graphs at n = {data.size}", parts[0][0], alone,
                                   time.perf_counter() - t0)
    scores = []
    for chunks in parts:
        hard = {k: np.concatenate([p[k] for p in chunks], axis=1)[:, :data.num_graphs]
                for k in chunks[0]}
        scores.append(np.asarray(score(hard, truth), np.float64))
    return WideTestArrays(scores=np.concatenate(scores), graphs=data.num_graphs, size=data.size,
                          data_seed=data_seed, device=device_description(),
                          seconds=time.perf_counter() - start, canary=canary)


def _flat(result: dict, lane: int | None = None) -> dict:
    """A faithfulness result's arrays by name (``trace/<hint>``), all lanes or one."""
    arrays = {"attention": result["attention"],
              **{f"trace/{h}": v for h, v in result["trace"].items()}}
    return arrays if lane is None else {k: v[lane] for k, v in arrays.items()}


def _leading(tree) -> int:
    # inside the function: JAX loads on the worker only, not where the driver imports this module
    import jax

    return int(jax.tree_util.tree_leaves(tree)[0].shape[0])


def landscape_keys(key_seed: int, seeds) -> "np.ndarray":
    """The plane keys of each seed: four per seed (learned, initial, through, spare), from
    ``fold_in(PRNGKey(key_seed), seed)`` alone, so a seed's planes do not depend on which other
    seeds are analysed with it."""
    # inside the function: JAX loads on the worker only, not where the driver imports this module
    import jax

    base = jax.random.PRNGKey(key_seed)
    return np.stack([np.asarray(jax.random.split(jax.random.fold_in(base, int(s)), 4))
                     for s in seeds])                                      # [S, 4, 2]


def landscape_task(config: dict, seeds: list[int], learned, cache_dir: str | None = None,
                   grid: int = 21, span: float = 1.0, graphs: int = 16, key_seed: int = 0,
                   chunk: int | None = None) -> LandscapeArrays:
    """The training objective on a fixed batch (the first ``graphs`` validation graphs) over 2-D
    planes, vmapped over the seeds (``learned``: their best parameters, ``[S, …]`` leaves):

    - ``learned``, ``initial``: around each seed's learned and initial parameters
      (filter-normalised random directions, ±``span``);
    - ``<start>-to-learned``: through ``start`` (α = 0: the compiled network where the
      configuration can hold the algorithm's program, else the seed's initial parameters) and the
      learned parameters (α = 1), β along a random direction of the same length;
    - shared ``compiled``: around the compiled network (once: it is the same for every seed).
    """
    # inside the function: JAX loads on the worker only, not where the driver imports this module
    import jax

    from workers.analysis.landscape import (Landscape, evaluation_loss, lanes_canary,
                                            plane_around, plane_through, planes_around,
                                            stacked_surfaces, surface)
    from workers.compile.compiler import compile_program
    from workers.model import make_net_config
    from workers.training_task import device_description
    from workers.train import starting_params

    start_time = time.perf_counter()
    enable_compilation_cache()
    train_config = TrainConfig.from_dict(config)
    if len(seeds) != _leading(learned):
        raise ValueError(f"{len(seeds)} seed(s) but {_leading(learned)} parameter set(s)")
    val = _validation_split(train_config, DataCache(cache_dir))
    batch = val.take(np.arange(min(graphs, val.num_graphs))).as_batch()
    net_config = make_net_config(train_config, val.probe_table)
    chunk = analysis_chunk(chunk)
    initial = jax.tree_util.tree_map(
        lambda *x: np.stack(x), *[starting_params(train_config, net_config, s, batch) for s in seeds])
    compiled = None
    if train_config.algorithm in PROGRAMS and not compiled_init_problems(train_config):
        compiled = compile_program(PROGRAMS[train_config.algorithm], net_config)
    loss = evaluation_loss(net_config, batch)
    around = np.union1d(np.linspace(-span, span, grid), [0.0])            # the centre exactly
    along = np.union1d(np.linspace(-0.5, 1.5, grid), [0.0, 1.0])          # both ends exactly
    keys = landscape_keys(key_seed, seeds)
    start_name = "compiled" if compiled is not None else "initial"
    per_seed: list[dict] = [{} for _ in seeds]
    with jax.default_matmul_precision("float32"):
        canary = None
        for k, (name, centres) in enumerate((("learned", learned), ("initial", initial))):
            planes = planes_around(keys[:, k], centres)
            if canary is None:
                canary = lanes_canary(loss, planes, around, around, chunk,
                                      f"{train_config.algorithm}, {len(batch['lengths'])} "
                                      "validation graphs")
            losses = stacked_surfaces(loss, planes, around, around, chunk)
            for i in range(len(seeds)):
                per_seed[i][name] = Landscape(around, around, losses[i], {name: (0.0, 0.0)})
        if compiled is not None:
            through = jax.vmap(plane_through, in_axes=(0, None, 0))(keys[:, 2], compiled, learned)
        else:
            through = jax.vmap(plane_through)(keys[:, 2], initial, learned)
        losses = stacked_surfaces(loss, through, along, around, chunk)
        for i in range(len(seeds)):
            per_seed[i][f"{start_name}-to-learned"] = Landscape(
                along, around, losses[i], {start_name: (0.0, 0.0), "learned": (1.0, 0.0)})
        shared = {}
        if compiled is not None:
            plane = plane_around(jax.random.fold_in(jax.random.PRNGKey(key_seed), 2**31 - 1),
                                 compiled)
            shared["compiled"] = Landscape(around, around,
                                           surface(loss, plane, around, around, chunk),
                                           {"compiled": (0.0, 0.0)})
    return LandscapeArrays(per_seed=per_seed, shared=shared, device=device_description(),
                           seconds=time.perf_counter() - start_time, canary=canary)

