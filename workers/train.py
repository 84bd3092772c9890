"""Population training: ``make_train(config, data)`` returns one function that trains a population
of seeds at once, parameters and optimiser state stacked on a leading seed axis, each step a jitted
``vmap`` over seeds.

A seed's integer determines everything random about it (its init key, its dropout keys and its batch
order), never the population it runs in or its position there: seed k trained inside a population
ends where seed k trained alone ends. Per seed: batches of ``batch_size`` graphs drawn from the
shared pool of the step's train length (lengths cycle every step, as in dm-clrs's run.py), validation
every ``eval_every`` steps with the best-validation parameters kept (run.py's model selection), and a
final test of those parameters. A NaN/inf loss or gradient stops only its seed (``diverged``).
Before the first population of a task trains, :func:`train_population` runs the numerical canary
(``workers.canary``) on the real compiled step.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
import psutil  # a Ray dependency; only consulted on CPU (device_memory_bytes)

from workers.canary import CanaryReport, compare_lanes, environment
from workers.compile.compiler import compile_program
from workers.compile.algorithm_programs import program_for
from workers.config import TrainConfig
from workers.data import DataCache, SplitData, make_request
from workers.data.requests import default_pool_size
from workers.scoring import hint_scores_along_time, output_score
from workers.model import net_config
from workers.model.forward import init_params, unroll
from workers.model.losses import total_loss

log = logging.getLogger(__name__)

# Hint-time axis lengths a batch is padded to: each batch is trimmed to its longest trace and
# rounded up to the next rung, so a length costs a handful of compilations, not one per batch.
_LADDER = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


@dataclasses.dataclass
class TrainData:
    """Everything one configuration trains and is scored on (plain NumPy)."""

    pools: dict[int, SplitData]          # train length -> pool
    val: SplitData
    test: SplitData

    @staticmethod
    def requests(config: TrainConfig) -> list:
        """The cache requests a configuration needs: one pool per train length, val, test.

        Without a ``pool_size`` the pools hold what the run draws (steps × batch / lengths graphs
        each, so every graph is seen about once), capped at the default 64,000 of a Table 9 run:
        a 100-step look builds 640-graph pools, not 64,000-graph ones."""
        pool_size = config.pool_size or min(
            default_pool_size(), default_pool_size(config.train_lengths, config.train_steps,
                                                    config.batch_size))
        return [*(make_request(config.algorithm, "train", n, pool_size, config.data_seed)
                  for n in dict.fromkeys(config.train_lengths)),
                make_request(config.algorithm, "val", config.val_size),
                make_request(config.algorithm, "test", config.test_size)]

    @classmethod
    def from_cache(cls, config: TrainConfig, cache: DataCache | None = None,
                   processes: int = 1) -> "TrainData":
        cache = cache or DataCache()
        *pools, val, test = [cache.get(r, processes) for r in cls.requests(config)]
        return cls({p.size: p for p in pools}, val, test)

    @property
    def spec(self):
        return self.val.spec


@dataclasses.dataclass
class PopulationResult:
    """Per-seed results as plain arrays (no device arrays), ready to cross a Ray boundary."""

    seeds: np.ndarray                       # [S]
    status: list[str]                       # "done" | "diverged"
    diverged_step: np.ndarray               # [S], -1 where not diverged
    test_score: np.ndarray                  # [S]
    best_val_score: np.ndarray              # [S]
    best_step: np.ndarray                   # [S]
    final_step: int
    eval_steps: np.ndarray                  # [E]
    val_scores: np.ndarray                  # [S, E]
    train_loss: np.ndarray                  # [S, E]: mean loss of the steps since the last eval
    hint_accuracy: dict[str, np.ndarray]    # hint -> [S, T_test - 1] per-step test accuracy
    wall_seconds: float
    best_params: dict                       # pytree of [S, …] arrays
    initial_params: dict | None = None      # init: compiled: the compiled start, shared by all seeds
    canary: CanaryReport | None = None      # the task's numerical canary (train_population)

    def per_seed(self) -> list[dict]:
        return [{"seed": int(s), "status": self.status[i], "test_score": float(self.test_score[i]),
                 "best_val_score": float(self.best_val_score[i]), "best_step": int(self.best_step[i]),
                 "final_step": self.final_step,
                 "diverged_step": int(self.diverged_step[i]) if self.diverged_step[i] >= 0 else None}
                for i, s in enumerate(self.seeds)]

    def seed(self, index: int) -> dict:
        return jax.tree_util.tree_map(lambda x: x[index], self.best_params)

    @classmethod
    def concatenate(cls, parts: list["PopulationResult"]) -> "PopulationResult":
        cat = np.concatenate
        return cls(
            seeds=cat([p.seeds for p in parts]), status=sum((p.status for p in parts), []),
            diverged_step=cat([p.diverged_step for p in parts]),
            test_score=cat([p.test_score for p in parts]),
            best_val_score=cat([p.best_val_score for p in parts]),
            best_step=cat([p.best_step for p in parts]), final_step=parts[0].final_step,
            eval_steps=parts[0].eval_steps, val_scores=cat([p.val_scores for p in parts]),
            train_loss=cat([p.train_loss for p in parts]),
            hint_accuracy={k: cat([p.hint_accuracy[k] for p in parts]) for k in parts[0].hint_accuracy},
            wall_seconds=sum(p.wall_seconds for p in parts),
            best_params=jax.tree_util.tree_map(lambda *x: cat(x), *[p.best_params for p in parts]),
            initial_params=parts[0].initial_params, canary=parts[0].canary,
        )


def padded_steps(longest: int, cap: int) -> int:
    """The hint-time length a batch whose longest trace is ``longest`` is padded to."""
    for rung in _LADDER:
        if rung >= longest:
            return max(2, min(rung, max(cap, 2)))
    return max(2, min(-(-longest // 256) * 256, max(cap, 2)))


def _gather(pool: Mapping, idx: jax.Array, steps: int) -> dict:
    """Batch ``idx`` of a device-resident pool, hints cut to ``steps`` (inside jit and vmap)."""
    return {"inputs": {k: v[idx] for k, v in pool["inputs"].items()},
            "hints": {k: v[:steps][:, idx] for k, v in pool["hints"].items()},
            "outputs": {k: v[idx] for k, v in pool["outputs"].items()},
            "lengths": pool["lengths"][idx]}


def _segments(train_steps: int, eval_every: int):
    """(first step, last step, evaluate after it) blocks: run.py trains a step, then evaluates at
    steps 0, eval_every, 2·eval_every, …; steps after the last evaluation train unevaluated."""
    first = 0
    for eval_step in range(0, train_steps, eval_every):
        yield first, eval_step, True
        first = eval_step + 1
    if first < train_steps:
        yield first, train_steps - 1, False


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """BaselineModel's optimiser: Adam after global-norm clipping (plain Adam when the norm is 0)."""
    if config.grad_clip_max_norm:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_max_norm),
                           optax.scale_by_adam(), optax.scale(-config.learning_rate))
    return optax.adam(config.learning_rate)


def _seed_keys(seeds: jax.Array, stream: int, step=None) -> jax.Array:
    def one(seed):
        key = jax.random.fold_in(jax.random.PRNGKey(seed), stream)
        return key if step is None else jax.random.fold_in(key, step)
    return jax.vmap(one)(seeds)


def starting_params(config: TrainConfig, cfg, seed: int, example) -> dict:
    """Seed ``seed``'s parameters before training, as ``make_train`` draws them: the compiled
    network for ``init: compiled``, else a fresh init from the seed's key (``example`` is any batch
    of the configuration's graph sizes: only shapes matter)."""
    if config.init == "compiled":
        return compile_program(program_for(config.algorithm), cfg)
    key = _seed_keys(jnp.asarray([seed], dtype=jnp.uint32), 0)[0]
    return jax.tree_util.tree_map(np.asarray, init_params(cfg, key, example))


class _BatchOrder:
    """Each seed's own stream of batch draws: uniform numbers from a generator seeded by the seed
    alone, mapped onto the step's pool size."""

    def __init__(self, seeds, batch_size: int):
        self.generators = [np.random.default_rng([int(s), 0xDA7A]) for s in seeds]
        self.batch_size = batch_size

    def block(self, steps: int) -> np.ndarray:
        """[S, steps, batch] uniforms in [0, 1) for the next ``steps`` steps."""
        return np.stack([g.random((steps, self.batch_size)) for g in self.generators])


def make_train(config: TrainConfig, data: TrainData, *, remat: bool = False,
               progress: Callable[[int, int], None] | None = None):
    """The population trainer for one configuration: ``train(seeds) -> PopulationResult``."""
    cfg = net_config(config, data.spec)
    optimizer = make_optimizer(config)
    lengths = list(dict.fromkeys(config.train_lengths))
    pools = [jax.device_put(data.pools[n].as_batch()) for n in lengths]
    pool_sizes = np.array([data.pools[n].num_graphs for n in lengths])
    pool_lengths = [data.pools[n].lengths for n in lengths]
    pool_caps = [data.pools[n].max_length for n in lengths]
    val = jax.device_put(data.val.as_batch())
    test = jax.device_put(data.test.as_batch())
    reg = config.regularization_weight if config.regularization else 0.0
    compiled = (compile_program(program_for(config.algorithm), cfg) if config.init == "compiled"
                else None)

    def loss_fn(params, batch, key):
        outputs, hints, _ = unroll(cfg, params, batch, key, train=True, remat=remat)
        return total_loss(cfg, batch, outputs, hints, params, reg)

    def seed_step(params, opt_state, alive, idx, key, pool, steps):
        batch = _gather(pool, idx, steps)
        loss, grads = jax.value_and_grad(loss_fn)(params, batch, key)
        updates, new_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        grad_norm = optax.tree.norm(grads)
        ok = alive & jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)  # noqa: E731
        return keep(new_params, params), keep(new_state, opt_state), ok, loss, grad_norm

    @jax.jit
    def init(seeds, example):
        def one(key):
            if compiled is None:
                params = init_params(cfg, key, example)
            else:   # every seed starts from the same compiled parameters
                params = jax.tree_util.tree_map(jnp.asarray, compiled)
            return params, optimizer.init(params)
        return jax.vmap(one)(_seed_keys(seeds, 0))

    # the run's largest padded shape: the largest train length, padded to its longest trace
    # (what the memory analysis sizes populations by and the canary checks)
    largest = int(np.argmax([data.pools[n].size for n in lengths]))
    largest_shape = (largest, padded_steps(pool_caps[largest], pool_caps[largest]))

    train_steps = {}

    def train_step(length_index: int, steps: int, population: int):
        """The training step of ``population`` seeds on train length ``length_index`` padded to
        ``steps`` hint steps, compiled once ahead of time: the training loop, the memory analysis
        and the canary run the same executable."""
        key = (length_index, steps, population)
        if key not in train_steps:
            def run(params, opt_state, alive, diverged_at, idx, seeds, step, pool):
                keys = _seed_keys(seeds, 1, step)
                params, opt_state, ok, loss, grad_norm = jax.vmap(
                    seed_step, in_axes=(0, 0, 0, 0, 0, None, None))(
                    params, opt_state, alive, idx, keys, pool, steps)
                # recorded on the device: no host round trip per step, so steps queue up
                diverged_at = jnp.where(alive & ~ok, step.astype(jnp.int32), diverged_at)
                return params, opt_state, ok, diverged_at, loss, grad_norm
            seeds_abs = jax.ShapeDtypeStruct((population,), jnp.uint32)
            params, opt_state = jax.eval_shape(init, seeds_abs, example_batch())
            train_steps[key] = jax.jit(run, donate_argnums=(0, 1, 3)).lower(
                params, opt_state, jax.ShapeDtypeStruct((population,), bool),
                jax.ShapeDtypeStruct((population,), jnp.int32),
                jax.ShapeDtypeStruct((population, config.batch_size), jnp.int32), seeds_abs,
                jax.ShapeDtypeStruct((), jnp.uint32), pools[length_index]).compile()
        return train_steps[key]

    @jax.jit
    def validate(params):
        def one(p):
            outputs, _, _ = unroll(cfg, p, val, jax.random.PRNGKey(0), train=False)
            return output_score(cfg, outputs, val)
        return jax.vmap(one)(params)

    @jax.jit
    def final_test(params):
        def one(p):
            outputs, hints, _ = unroll(cfg, p, test, jax.random.PRNGKey(0), train=False)
            return output_score(cfg, outputs, test), hint_scores_along_time(cfg, hints, test)
        return jax.vmap(one)(params)

    def example_batch():
        return jax.tree_util.tree_map(lambda x: x[:2] if x.ndim else x,
                                      _gather(pools[0], np.arange(2), 2))

    def initial_params(seeds) -> dict:
        """Each seed's freshly initialised parameters, stacked [S, …]."""
        return init(jnp.asarray(np.asarray(seeds), dtype=jnp.uint32), example_batch())[0]

    def train(seeds, progress=progress, initial_params=None) -> PopulationResult:
        """Train the population; ``initial_params`` ([S, …] pytree) replaces the random init."""
        seeds = np.asarray(seeds, dtype=np.int64)
        start = time.perf_counter()
        seeds_dev = jnp.asarray(seeds, dtype=jnp.uint32)
        params, opt_state = init(seeds_dev, example_batch())
        if initial_params is not None:
            params = jax.tree_util.tree_map(jnp.asarray, initial_params)
            opt_state = jax.vmap(optimizer.init)(params)
        best = jax.tree_util.tree_map(jnp.copy, params)
        s = len(seeds)
        alive = jnp.ones(s, dtype=bool)
        diverged_at = jnp.full(s, -1, dtype=jnp.int32)
        diverged_step = np.full(s, -1)
        best_val = np.full(s, -np.inf)
        best_step = np.zeros(s, dtype=np.int64)
        order = _BatchOrder(seeds, config.batch_size)
        eval_steps, val_curve, loss_curve = [], [], []
        for first, last, evaluate in _segments(config.train_steps, config.eval_every):
            uniforms = order.block(last - first + 1)
            losses = []
            for j, step in enumerate(range(first, last + 1)):
                li = step % len(lengths)
                idx = np.minimum((uniforms[:, j] * pool_sizes[li]).astype(np.int64),
                                 pool_sizes[li] - 1)
                steps = padded_steps(int(pool_lengths[li][idx].max()), pool_caps[li])
                params, opt_state, alive, diverged_at, loss, _ = train_step(li, steps, s)(
                    params, opt_state, alive, diverged_at, jnp.asarray(idx, jnp.int32), seeds_dev,
                    jnp.uint32(step), pools[li])
                losses.append(loss)
            newly = (np.asarray(diverged_at) >= 0) & (diverged_step < 0)
            if newly.any():
                diverged_step = np.where(newly, np.asarray(diverged_at), diverged_step)
                log.warning("seed(s) %s diverged (at steps %s)", seeds[newly].tolist(),
                            diverged_step[newly].tolist())
            if evaluate:
                scores = np.asarray(validate(params))
                losses = np.stack([np.asarray(x) for x in losses])
                eval_steps.append(last)
                val_curve.append(scores)
                with np.errstate(invalid="ignore"):
                    loss_curve.append(np.where(np.isfinite(losses), losses, np.nan).mean(axis=0))
                # run.py keeps a new best only on a strictly higher validation score
                better = (scores > best_val) & np.asarray(alive)
                if better.any():
                    mask = jnp.asarray(better)
                    best = jax.tree_util.tree_map(
                        lambda b, p: jnp.where(mask.reshape((-1,) + (1,) * (p.ndim - 1)), p, b),
                        best, params)
                    best_val = np.where(better, scores, best_val)
                    best_step = np.where(better, last, best_step)
            if progress:
                progress(last + 1, config.train_steps)
        step = config.train_steps
        test_scores, hint_acc = final_test(best)
        wall = time.perf_counter() - start
        alive_np = np.asarray(alive)
        return PopulationResult(
            seeds=seeds, status=["done" if a else "diverged" for a in alive_np],
            diverged_step=diverged_step, test_score=np.asarray(test_scores),
            best_val_score=best_val, best_step=best_step, final_step=step,
            eval_steps=np.asarray(eval_steps), val_scores=np.stack(val_curve, axis=1),
            train_loss=np.stack(loss_curve, axis=1),
            hint_accuracy={k: np.asarray(v) for k, v in hint_acc.items()},
            wall_seconds=wall, best_params=jax.tree_util.tree_map(np.asarray, best),
            initial_params=compiled)

    def memory_per_population(population: int) -> int:
        """XLA's estimate of the bytes one training step needs for a population of this size, at
        the largest train length and its longest padded trace."""
        li, steps = largest_shape
        stats = train_step(li, steps, population).memory_analysis()
        if stats is None:
            raise RuntimeError("XLA gives no memory analysis on this backend")
        return int(stats.temp_size_in_bytes + stats.argument_size_in_bytes
                   + stats.output_size_in_bytes)

    def canary(seeds) -> CanaryReport:
        """The numerical canary (``workers.canary``) on the real compiled training step at the
        run's largest padded shape (the largest train length, its longest trace): the population's
        loss and gradient norm on its first and last lanes against the same seeds' step alone.
        Raises ``NumericalCanaryError`` on a mismatch; nothing of the training state changes."""
        start = time.perf_counter()
        seeds = np.asarray(seeds, dtype=np.int64)
        li, steps = largest_shape
        shape = (f"{config.algorithm}, n = {lengths[li]}, {steps} hint steps, batch "
                 f"{config.batch_size}, hidden {config.hidden_size}")
        if len(seeds) < 2:
            return CanaryReport("training step", shape, len(seeds), (), 0.0,
                                time.perf_counter() - start, environment())
        # each lane its own graphs, the pool's longest traces first (every padded step is used)
        longest = np.argsort(-pool_lengths[li], kind="stable")
        idx = np.stack([np.take(longest, np.arange(j, j + config.batch_size), mode="wrap")
                        for j in range(0, len(seeds) * config.batch_size, config.batch_size)])
        seeds_dev = jnp.asarray(seeds, dtype=jnp.uint32)
        params, opt_state = init(seeds_dev, example_batch())

        take = jax.jit(lambda tree, lanes: jax.tree_util.tree_map(lambda x: x[lanes], tree))

        def run(lanes):      # the lanes' copies are donated: params and opt_state stay intact
            lanes = np.asarray(lanes)
            *_, loss, grad_norm = train_step(li, steps, len(lanes))(
                *take((params, opt_state), lanes), jnp.ones(len(lanes), bool),
                jnp.full(len(lanes), -1, jnp.int32), jnp.asarray(idx[lanes], jnp.int32),
                seeds_dev[lanes], jnp.uint32(0), pools[li])
            return {"loss": np.asarray(loss), "gradient norm": np.asarray(grad_norm)}

        together = run(np.arange(len(seeds)))
        lanes = (0, len(seeds) - 1)
        alone = {lane: {k: float(v[0]) for k, v in run([lane]).items()} for lane in lanes}
        return compare_lanes("training step", shape, together, alone,
                             time.perf_counter() - start,
                             labels={lane: f"seed {seeds[lane]}" for lane in lanes})

    def fit_population(wanted: int | None = None, memory_bytes: int | None = None,
                       fraction: float = 0.8) -> int:
        """The largest population (at most ``wanted``, if given) whose training step fits
        ``fraction`` of the device's memory, from XLA's memory analysis: at ``wanted`` first (if
        it fits, that compilation is the one the canary and the first steps reuse), else at
        populations 1 and 2 (memory grows linearly in seeds)."""
        limit = memory_bytes or device_memory_bytes()
        if wanted is not None and memory_per_population(wanted) <= fraction * limit:
            return wanted
        one, two = memory_per_population(1), memory_per_population(2)
        per_seed = max(two - one, 1)
        base = max(one - per_seed, 0)
        fits = max(1, int((fraction * limit - base) // per_seed))
        return fits if wanted is None else min(fits, wanted)

    train.net_config = cfg
    train.canary = canary
    train.initial_params = initial_params
    train.memory_per_population = memory_per_population
    train.fit_population = fit_population
    return train


def device_memory_bytes() -> int:
    """Memory of the first device (GPU: the allocator's limit; CPU: the machine's available RAM)."""
    device = jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    return int(psutil.virtual_memory().available)


def train_population(config: TrainConfig, data: TrainData, seeds, *,
                     max_population: int | None = None, remat: bool = False,
                     progress: Callable[[int, int], None] | None = None,
                     canary: bool = True) -> PopulationResult:
    """Train every seed, in chunks of at most ``max_population`` seeds (default: as many as XLA's
    memory analysis says fit the device, on every backend). Results do not depend on the chunking.
    First the numerical canary checks the compiled step at the first chunk's size (``canary``:
    False skips it, for tests that time or count compilations); a mismatch raises
    ``workers.canary.NumericalCanaryError`` before anything trains."""
    seeds = np.asarray(list(seeds), dtype=np.int64)
    train = make_train(config, data, remat=remat)
    if max_population is None:
        try:
            max_population = train.fit_population(len(seeds))
        except Exception as err:  # noqa: BLE001 - analysis is best effort; train all at once
            log.warning("could not size the population from XLA's memory analysis (%s)", err)
            max_population = len(seeds)
    chunk = max(1, min(max_population, len(seeds)))
    if chunk < len(seeds):
        log.info("training %d seeds in chunks of %d", len(seeds), chunk)
    report = train.canary(seeds[:chunk]) if canary else None
    if report is not None:
        log.info("numerical canary: %s", report.summary())
    parts = []
    for i in range(0, len(seeds), chunk):
        part = seeds[i:i + chunk]

        def part_progress(done, total, offset=i, size=len(part)):
            if progress:  # seed-steps over the whole population
                progress(offset * total + done * size, len(seeds) * total)

        parts.append(train(part, progress=part_progress))
    result = parts[0] if len(parts) == 1 else PopulationResult.concatenate(parts)
    result.canary = report
    return result
