"""Population training: ``make_train(config, data)`` returns a :class:`Trainer` that trains a
population of seeds at once, its state (one :class:`PopulationState` pytree: parameters, optimiser
state, divergence, the best parameters so far) stacked on a leading seed axis, each step a jitted
``vmap`` over seeds.

A seed's integer determines everything random about it (its init key, its dropout keys and its batch
order or its fresh graphs), never the population it runs in or its position there: seed k trained
inside a population ends where seed k trained alone ends. Per seed: batches of ``batch_size`` graphs
of the step's train length (lengths cycle every step, as in dm-clrs's run.py), drawn from the shared
pool of that length (``train_data: pool``) or generated inside the training step from the seed's and
the step's keys (``train_data: fresh``: ``workers.data.fresh``, run.py's protocol), validation
every ``eval_every`` steps with the best-validation parameters kept (run.py's model selection), and a
final test of those parameters. A NaN/inf loss or gradient stops only its seed (``diverged``).
Before the first population of a task trains, :func:`train_population` runs the numerical canary
(``workers.canary``) on the real compiled step.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import time
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import psutil  # a Ray dependency; only consulted on CPU (device_memory_bytes)

from workers import rules
from workers.canary import CanaryReport, compare_lanes, environment
from workers.task_output import PopulationResult
from workers.compile.compiler import compile_program
from workers.compile.styles import style_named
from workers.compile.algorithm_programs import program_for
from workers.config import TrainConfig
from workers.data import DataCache, SplitData, make_request, stop_generation_workers
from workers.data.fresh import (FreshBatch, batch_key, cap_covers_every_trace, generate_batch,
                                grown_cap, trace_cap)
from workers.data.requests import default_pool_size
from workers.data.trace_layout import ladder_rung
from workers.errors import GapsweepError
from workers.scoring import hint_scores_along_time, output_score
from workers.model import make_net_config
from workers.model.forward import init_params, unroll
from workers.model.losses import total_loss

log = logging.getLogger(__name__)



@dataclasses.dataclass
class TrainData:
    """Everything one configuration trains and is scored on (plain NumPy)."""

    pools: dict[int, SplitData]          # train length -> pool (empty with train_data: fresh)
    val: SplitData
    test: SplitData

    @staticmethod
    def requests(config: TrainConfig) -> list:
        """The cache requests a configuration needs: one pool per train length, val, test.

        Without a ``pool_size`` the pools hold what the run draws (steps × batch / lengths graphs
        each, so every graph is seen about once), capped at the default 64,000 of a Table 9 run:
        a 100-step look builds 640-graph pools, not 64,000-graph ones. With ``train_data: fresh``
        there are no pools (batches are generated in the training step): val and test only, so
        training needs no dm-clrs where those two are cached."""
        evaluation = [make_request(config.algorithm, "val", config.val_size,
                                   random_pos=config.random_pos),
                      make_request(config.algorithm, "test", config.test_size)]
        if config.train_data == "fresh":
            return evaluation
        pool_size = config.pool_size or min(
            default_pool_size(), default_pool_size(config.train_lengths, config.train_steps,
                                                    config.batch_size))
        return [*(make_request(config.algorithm, "train", n, pool_size, config.data_seed,
                               random_pos=config.random_pos)
                  for n in dict.fromkeys(config.train_lengths)), *evaluation]

    @classmethod
    def from_cache(cls, config: TrainConfig, cache: DataCache | None = None,
                   processes: int = 1) -> "TrainData":
        cache = cache or DataCache()
        try:
            *pools, val, test = [cache.get(r, processes) for r in cls.requests(config)]
        finally:
            stop_generation_workers()
        return cls({p.size: p for p in pools}, val, test)

    @property
    def probe_table(self):
        return self.val.probe_table


def padded_steps(longest: int, cap: int) -> int:
    """The hint-time length a batch whose longest trace is ``longest`` is padded to: its ladder
    rung (``workers.data.trace_layout.LADDER``), at most ``cap`` (the pool's longest), at least 2."""
    return max(2, min(ladder_rung(longest), max(cap, 2)))


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


def compiled_params(config: TrainConfig, net_config) -> dict:
    """The compiled network ``init: compiled`` starts from, in the configuration's style and scale
    (dfs: the hand-built network, compiled for the configuration's one train length)."""
    if config.algorithm == "dfs":
        from workers.compile.dfs_compiler import compile_dfs

        return compile_dfs(net_config, config.train_lengths[0])
    return compile_program(program_for(config.algorithm), net_config,
                           style=style_named(config.compile_style, config.compile_scale))


def starting_params(config: TrainConfig, net_config, seed: int, example) -> dict:
    """Seed ``seed``'s parameters before training, as ``make_train`` draws them: the compiled
    network for ``init: compiled``, else a fresh init from the seed's key (``example`` is any batch
    of the configuration's graph sizes: only shapes matter)."""
    if config.init == "compiled":
        return compiled_params(config, net_config)
    key = _seed_keys(jnp.asarray([seed], dtype=jnp.uint32), 0)[0]
    return jax.tree_util.tree_map(np.asarray, init_params(net_config, key, example))


class _BatchOrder:
    """Each seed's own stream of batch draws: uniform numbers from a generator seeded by the seed
    alone, mapped onto the step's pool size."""

    def __init__(self, seeds, batch_size: int):
        self.generators = [np.random.default_rng([int(s), 0xDA7A]) for s in seeds]
        self.batch_size = batch_size

    def block(self, steps: int) -> np.ndarray:
        """[S, steps, batch] uniforms in [0, 1) for the next ``steps`` steps."""
        return np.stack([g.random((steps, self.batch_size)) for g in self.generators])


class StepState(NamedTuple):
    """What one training step reads and writes; every leaf has a leading seed axis [S, …]."""

    params: dict                # the network's parameters
    opt_state: Any              # the optimiser's state
    alive: jax.Array            # [S] bool: no non-finite loss or gradient yet
    diverged_at: jax.Array      # [S] int32: the step whose loss or gradient was not finite, else -1


class BestState(NamedTuple):
    """run.py's model selection: each seed's best-validation parameters so far."""

    params: dict                # [S, …]: the parameters that scored ``val_score``
    val_score: jax.Array        # [S] float32: the best validation score, -inf before the first
    step: jax.Array             # [S] int32: the step after which it was reached (0: the starting point)


class PopulationState(NamedTuple):
    """A training population's whole device state: one pytree into and out of the jitted
    functions (the training step takes ``training``, model selection ``best``)."""

    training: StepState
    best: BestState


@dataclasses.dataclass
class _History:
    """The host-side curves of a run: one entry per validation."""

    eval_steps: list = dataclasses.field(default_factory=list)     # the step validated after
    val_scores: list = dataclasses.field(default_factory=list)     # [S] validation scores
    train_loss: list = dataclasses.field(default_factory=list)     # [S] mean loss since the last

    def record(self, step: int, scores: np.ndarray, losses: list) -> None:
        losses = np.stack([np.asarray(x) for x in losses])
        self.eval_steps.append(step)
        self.val_scores.append(scores)
        with np.errstate(invalid="ignore"):
            self.train_loss.append(np.where(np.isfinite(losses), losses, np.nan).mean(axis=0))


class Trainer:
    """The population trainer of one configuration (see the module docstring).

    - ``net_config``: the :class:`NetConfig` of the network trained.
    - ``train(seeds, progress=None, initial_params=None) -> PopulationResult`` (also
      ``trainer(seeds)``): train a population; ``initial_params`` ([S, …] pytree) replaces the
      random init and ``progress(done, total)`` (default: the trainer's) is called after each
      block of steps.
    - ``start(seeds, initial_params=None) -> PopulationState``: the state before the first step.
    - ``canary(seeds) -> CanaryReport``: the numerical canary on the compiled training step.
    - ``initial_params(seeds)``: each seed's freshly initialised parameters, stacked [S, …].
    - ``memory_per_population(population)``, ``fit_population(wanted, memory_bytes, fraction)``:
      XLA's memory analysis of the training step, and the largest population that fits.
    - ``train_step(length_index, steps, population)``: the ahead-of-time compiled training step
      ``(StepState, idx, seeds, step, pool) -> (StepState, loss, grad_norm)``;
      ``fresh_step(length_index, population)`` its fresh-data twin (``train_data: fresh``).
    - ``steps_per_dispatch`` (k, default 1): with k > 1, ``train`` runs up to k consecutive steps
      of a block between validations as one compiled call (``train_block``), with the same
      results as one call per step.

    The device state of a run is one :class:`PopulationState`; the data lives on the device as
    one pool per train length (none with fresh data) plus the validation and test splits.
    """

    def __init__(self, config: TrainConfig, data: TrainData, *, remat: bool = False,
                 progress: Callable[[int, int], None] | None = None, edge_path: str = "auto",
                 steps_per_dispatch: int = 1):
        check_steps_per_dispatch(steps_per_dispatch)
        self.config = config
        self.steps_per_dispatch = steps_per_dispatch
        self.net_config = make_net_config(config, data.probe_table, edge_path)
        self.optimizer = make_optimizer(config)
        self.remat = remat
        self.progress = progress
        self.lengths = list(dict.fromkeys(config.train_lengths))
        self.fresh = config.train_data == "fresh"
        if self.fresh:    # batches generated in the step, hints padded to each length's cap
            self.pools, self.pool_sizes, self.pool_lengths = [], None, None
            self.pool_caps = [trace_cap(config.algorithm, n) for n in self.lengths]
            self._generate = jax.jit(generate_batch, static_argnums=(1, 2, 3, 4))
        else:
            self.pools = [jax.device_put(data.pools[n].as_batch()) for n in self.lengths]
            self.pool_sizes = np.array([data.pools[n].num_graphs for n in self.lengths])
            self.pool_lengths = [data.pools[n].lengths for n in self.lengths]
            self.pool_caps = [data.pools[n].max_length for n in self.lengths]
        self.val = jax.device_put(data.val.as_batch())
        self.test = jax.device_put(data.test.as_batch())
        self.regularization = config.regularization_weight if config.regularization else 0.0
        self.compiled = (compiled_params(config, self.net_config)
                         if config.init == "compiled" else None)
        # the run's largest padded shape: the largest train length, padded to its longest trace
        # (what the memory analysis sizes populations by and the canary checks)
        largest = int(np.argmax(self.lengths))
        self.largest_shape = (largest, padded_steps(self.pool_caps[largest],
                                                    self.pool_caps[largest]))
        self._train_steps = {}
        self._train_blocks = {}
        self._fresh_steps = {}
        self._fresh_blocks = {}
        self._fresh_example = None
        self._fresh_batch_jit = None
        self._init = jax.jit(self._init_population)
        self._validate = jax.jit(self._validation_scores)
        self._keep_best = jax.jit(_keep_best)
        self._final_test = jax.jit(self._test_scores)

    # --- what is traced -----------------------------------------------------------------------

    def _loss(self, params, batch, key):
        outputs, hints, _ = unroll(self.net_config, params, batch, key, train=True,
                                   remat=self.remat)
        return total_loss(self.net_config, batch, outputs, hints, params, self.regularization)

    def _seed_update(self, params, opt_state, alive, batch, key):
        loss, grads = jax.value_and_grad(self._loss)(params, batch, key)
        updates, new_state = self.optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        grad_norm = optax.tree.norm(grads)
        ok = alive & jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        def keep(new, old):   # a diverged seed keeps what it had
            return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
        return keep(new_params, params), keep(new_state, opt_state), ok, loss, grad_norm

    def _population_step(self, training: StepState, idx, seeds, step, pool, *, steps: int):
        """One training step on pool batches: seed j trains on graphs ``idx[j]`` of ``pool``."""
        batches = jax.vmap(lambda i: _gather(pool, i, steps))(idx)
        return self._population_update(training, batches, seeds, step)

    def _fresh_population_step(self, training: StepState, seeds, step, *, length_index: int,
                               cap: int):
        """One training step on fresh batches: seed j's graphs are generated here from
        ``batch_key(data_seed, seeds[j], step)`` at train length ``length_index``, hints padded
        to ``cap``. Also returns each seed's longest true trace [S] (above ``cap``: cut short)."""
        generated = jax.vmap(lambda seed: self._fresh_batch(seed, step, length_index, cap))(seeds)
        training, loss, grad_norm = self._population_update(training, generated.batch, seeds, step)
        return training, loss, grad_norm, generated.longest

    def _fresh_batch(self, seed, step, length_index: int, cap: int) -> FreshBatch:
        """Seed ``seed``'s fresh batch at ``step`` (traceable): a function of the data seed, the
        seed and the step alone, at the step's train length."""
        config = self.config
        return generate_batch(batch_key(config.data_seed, seed, step), config.algorithm,
                              self.lengths[length_index], config.batch_size, cap,
                              random_pos=config.random_pos)

    def _population_update(self, training: StepState, batches, seeds, step):
        """Each seed's update on its batch (``batches``: every leaf [S, …])."""
        keys = _seed_keys(seeds, 1, step)
        params, opt_state, ok, loss, grad_norm = jax.vmap(self._seed_update)(
            training.params, training.opt_state, training.alive, batches, keys)
        # recorded on the device: no host round trip per step, so steps queue up
        diverged_at = jnp.where(training.alive & ~ok, step.astype(jnp.int32),
                                training.diverged_at)
        return StepState(params, opt_state, ok, diverged_at), loss, grad_norm

    def _population_block(self, training: StepState, branch, idx, step, seeds, pools, *,
                          variants: tuple):
        """``len(branch)`` training steps in order, one ``lax.scan``: step j runs
        ``_population_step`` on ``variants[branch[j]]`` (train length index, padded hint steps)
        with ``idx[j]`` and ``step[j]``; ``branch[j] == len(variants)`` leaves the state as it is
        (a block shorter than the dispatch). Returns the state and the losses and gradient norms
        stacked [k, S] (zeros for the steps left out). Each step keeps its own padded hint length
        (a branch per variant, not one padding for all): padding a batch past its rung is not
        bitwise neutral (on XLA:CPU, bfs n = 4, a batch of rung 3 padded to 4: the same loss,
        parameters 7e-5 apart after one Adam step at lr 1e-3)."""
        def run(li, steps):
            def one(state, idx, step):
                state, loss, grad_norm = self._population_step(state, idx, seeds, step, pools[li],
                                                               steps=steps)
                return state, (loss, grad_norm)
            return one

        def skip(state, idx, step):
            zeros = jnp.zeros(idx.shape[0], jnp.float32)
            return state, (zeros, zeros)

        branches = [run(li, steps) for li, steps in variants] + [skip]

        def body(state, xs):
            return jax.lax.switch(xs[0], branches, state, *xs[1:])

        training, (loss, grad_norm) = jax.lax.scan(body, training, (branch, idx, step))
        return training, loss, grad_norm

    def _fresh_block(self, training: StepState, branch, step, seeds, *, caps: tuple):
        """``_population_block`` for fresh data: step j is the fresh step at train length
        ``branch[j]`` (``caps``: each length's padded hint steps), or none where ``branch[j] ==
        len(caps)``. Returns the state, losses, gradient norms and longest traces, each [k, S]."""
        def run(li):
            def one(state, step):
                state, loss, grad_norm, longest = self._fresh_population_step(
                    state, seeds, step, length_index=li, cap=caps[li])
                return state, (loss, grad_norm, longest)
            return one

        def skip(state, step):
            zeros = jnp.zeros(seeds.shape[0], jnp.float32)
            return state, (zeros, zeros, jnp.zeros(seeds.shape[0], jnp.int32))

        branches = [run(li) for li in range(len(caps))] + [skip]

        def body(state, xs):
            return jax.lax.switch(xs[0], branches, state, xs[1])

        training, outs = jax.lax.scan(body, training, (branch, step))
        return (training, *outs)

    def _init_population(self, seeds, example):
        def one(key):
            if self.compiled is None:
                params = init_params(self.net_config, key, example)
            else:   # every seed starts from the same compiled parameters
                params = jax.tree_util.tree_map(jnp.asarray, self.compiled)
            return params, self.optimizer.init(params)
        return jax.vmap(one)(_seed_keys(seeds, 0))

    def _validation_scores(self, params):
        def one(p):
            outputs, _, _ = unroll(self.net_config, p, self.val, jax.random.PRNGKey(0), train=False)
            return output_score(self.net_config, outputs, self.val)
        return jax.vmap(one)(params)

    def _test_scores(self, params):
        def one(p):
            outputs, hints, _ = unroll(self.net_config, p, self.test, jax.random.PRNGKey(0),
                                       train=False)
            return (output_score(self.net_config, outputs, self.test),
                    hint_scores_along_time(self.net_config, hints, self.test))
        return jax.vmap(one)(params)

    def _example_batch(self):
        """Two graphs of the first train length (only their shapes matter: parameter init)."""
        if self.fresh:
            if self._fresh_example is None:
                batch = self._generate(jax.random.PRNGKey(0), self.config.algorithm,
                                       self.lengths[0], 2, self.pool_caps[0]).batch
                self._fresh_example = {**batch, "hints": {k: v[:2] for k, v in
                                                          batch["hints"].items()},
                                       "lengths": jnp.minimum(batch["lengths"], 2)}
            return self._fresh_example
        return jax.tree_util.tree_map(lambda x: x[:2] if x.ndim else x,
                                      _gather(self.pools[0], np.arange(2), 2))

    # --- the public interface -----------------------------------------------------------------

    def train_step(self, length_index: int, steps: int, population: int):
        """The training step of ``population`` seeds on train length ``length_index`` padded to
        ``steps`` hint steps, compiled once ahead of time: the training loop, the memory analysis
        and the canary run the same executable. Its ``StepState`` argument is donated."""
        key = (length_index, steps, population)
        if key not in self._train_steps:
            seeds = jax.ShapeDtypeStruct((population,), jnp.uint32)
            training = self._step_state_shape(population)
            step = functools.partial(self._population_step, steps=steps)
            self._train_steps[key] = jax.jit(step, donate_argnums=0).lower(
                training, jax.ShapeDtypeStruct((population, self.config.batch_size), jnp.int32),
                seeds, jax.ShapeDtypeStruct((), jnp.uint32), self.pools[length_index]).compile()
        return self._train_steps[key]

    def train_block(self, variants: tuple, steps: int, population: int):
        """``steps`` training steps of ``population`` seeds as one ahead-of-time compiled call
        ``(StepState, branch [k], idx [k, S, batch], step [k], seeds, pools) -> (StepState,
        loss [k, S], grad_norm [k, S])``: step j is the training step on ``variants[branch[j]]``
        (train length index, padded hint steps), or none where ``branch[j] == len(variants)``.
        Its ``StepState`` argument is donated."""
        key = (variants, steps, population)
        if key not in self._train_blocks:
            block = functools.partial(self._population_block, variants=variants)
            self._train_blocks[key] = jax.jit(block, donate_argnums=0).lower(
                self._step_state_shape(population), jax.ShapeDtypeStruct((steps,), jnp.int32),
                jax.ShapeDtypeStruct((steps, population, self.config.batch_size), jnp.int32),
                jax.ShapeDtypeStruct((steps,), jnp.uint32),
                jax.ShapeDtypeStruct((population,), jnp.uint32), tuple(self.pools)).compile()
        return self._train_blocks[key]

    def fresh_step(self, length_index: int, population: int):
        """The training step on fresh data (``train_data: fresh``) of ``population`` seeds at train
        length ``length_index``, compiled once ahead of time: ``(StepState, seeds, step) ->
        (StepState, loss, grad_norm, longest)``, the batches generated inside it. Its
        ``StepState`` argument is donated."""
        cap = self.pool_caps[length_index]
        key = (length_index, cap, population)
        if key not in self._fresh_steps:
            step = functools.partial(self._fresh_population_step, length_index=length_index,
                                     cap=cap)
            self._fresh_steps[key] = jax.jit(step, donate_argnums=0).lower(
                self._step_state_shape(population),
                jax.ShapeDtypeStruct((population,), jnp.uint32),
                jax.ShapeDtypeStruct((), jnp.uint32)).compile()
        return self._fresh_steps[key]

    def fresh_block(self, steps: int, population: int):
        """``steps`` fresh training steps as one compiled call ``(StepState, branch [k], step [k],
        seeds) -> (StepState, loss, grad_norm, longest)`` (each [k, S]); step j runs at train
        length ``branch[j]``, or not at all where ``branch[j]`` is the number of lengths."""
        caps = tuple(self.pool_caps)
        key = (caps, steps, population)
        if key not in self._fresh_blocks:
            block = functools.partial(self._fresh_block, caps=caps)
            self._fresh_blocks[key] = jax.jit(block, donate_argnums=0).lower(
                self._step_state_shape(population), jax.ShapeDtypeStruct((steps,), jnp.int32),
                jax.ShapeDtypeStruct((steps,), jnp.uint32),
                jax.ShapeDtypeStruct((population,), jnp.uint32)).compile()
        return self._fresh_blocks[key]

    def _step_state_shape(self, population: int) -> StepState:
        seeds = jax.ShapeDtypeStruct((population,), jnp.uint32)
        params, opt_state = jax.eval_shape(self._init, seeds, self._example_batch())
        return StepState(params, opt_state, jax.ShapeDtypeStruct((population,), bool),
                         jax.ShapeDtypeStruct((population,), jnp.int32))

    def fresh_batch(self, seed: int, step: int) -> dict:
        """The batch seed ``seed`` trains on at ``step`` with fresh data (host arrays; the step
        generates the same inside itself): its graphs depend only on the data seed, the seed,
        the step and the train lengths, not on the population or the model."""
        if not self.fresh:
            raise GapsweepError("fresh_batch: this trainer trains on pools (train_data: pool)")
        li = step % len(self.lengths)
        if self._fresh_batch_jit is None:
            self._fresh_batch_jit = jax.jit(self._fresh_batch, static_argnums=(2, 3))
        generated = self._fresh_batch_jit(jnp.uint32(seed), jnp.uint32(step), li,
                                          self.pool_caps[li])
        return jax.tree_util.tree_map(np.asarray, generated.batch)

    def initial_params(self, seeds) -> dict:
        """Each seed's freshly initialised parameters, stacked [S, …]."""
        return self._init(jnp.asarray(np.asarray(seeds), dtype=jnp.uint32),
                          self._example_batch())[0]

    def start(self, seeds, initial_params=None) -> PopulationState:
        """The state before the first step: each seed's init (or ``initial_params``), fresh
        optimiser state, every seed alive, the starting point as the best so far."""
        seeds = jnp.asarray(np.asarray(seeds), dtype=jnp.uint32)
        params, opt_state = self._init(seeds, self._example_batch())
        if initial_params is not None:
            params = jax.tree_util.tree_map(jnp.asarray, initial_params)
            opt_state = jax.vmap(self.optimizer.init)(params)
        s = len(seeds)
        best = BestState(jax.tree_util.tree_map(jnp.copy, params),   # params get donated
                         jnp.full(s, -jnp.inf, jnp.float32), jnp.zeros(s, jnp.int32))
        return PopulationState(StepState(params, opt_state, jnp.ones(s, dtype=bool),
                                         jnp.full(s, -1, dtype=jnp.int32)), best)

    def train(self, seeds, progress: Callable[[int, int], None] | None = None,
              initial_params=None) -> PopulationResult:
        """Train the population; ``initial_params`` ([S, …] pytree) replaces the random init."""
        progress = progress or self.progress
        config = self.config
        seeds = np.asarray(seeds, dtype=np.int64)
        start = time.perf_counter()
        seeds_dev = jnp.asarray(seeds, dtype=jnp.uint32)
        state = self.start(seeds, initial_params)
        order = _BatchOrder(seeds, config.batch_size)
        history = _History()
        reported = np.zeros(len(seeds), dtype=bool)     # divergences already logged
        k = min(self.steps_per_dispatch, max(last - first + 1 for first, last, _ in
                                             _segments(config.train_steps, config.eval_every)))
        variants = self._variants(order) if k > 1 and not self.fresh else ()
        for first, last, evaluate in _segments(config.train_steps, config.eval_every):
            if self.fresh:
                training, losses = self._fresh_segment(state.training, first, last, seeds_dev, k)
            else:
                training, losses = self._pool_segment(state.training, first, last, seeds_dev, k,
                                                      order, variants)
            state = state._replace(training=training)
            diverged_at = np.asarray(state.training.diverged_at)
            newly = (diverged_at >= 0) & ~reported
            if newly.any():
                reported |= newly
                log.warning("seed(s) %s diverged (at steps %s)", seeds[newly].tolist(),
                            diverged_at[newly].tolist())
            if evaluate:
                scores = self._validate(state.training.params)
                history.record(last, np.asarray(scores), losses)
                state = state._replace(best=self._keep_best(state.best, state.training, scores,
                                                            jnp.int32(last)))
            if progress:
                progress(last + 1, config.train_steps)
        test_scores, hint_acc = self._final_test(state.best.params)
        wall = time.perf_counter() - start
        return self._result(seeds, state, history, test_scores, hint_acc, wall)

    __call__ = train

    def _pool_segment(self, training: StepState, first: int, last: int, seeds_dev, k: int,
                      order: _BatchOrder, variants: tuple):
        """Steps ``first`` … ``last`` on pool batches (each seed's next draws from ``order``),
        ``k`` per compiled call (``variants``: the run's shapes, for k > 1); returns the state and
        each step's losses [S]."""
        uniforms = order.block(last - first + 1)
        batches = [self._batch(step, uniforms[:, j]) for j, step in enumerate(range(first, last + 1))]
        if k == 1:
            losses = []
            for step, (li, idx, steps) in enumerate(batches, start=first):
                training, loss, _ = self.train_step(li, steps, len(seeds_dev))(
                    training, jnp.asarray(idx, jnp.int32), seeds_dev, jnp.uint32(step),
                    self.pools[li])
                losses.append(loss)
            return training, losses
        blocks = []
        for j in range(0, len(batches), k):
            training, loss = self._dispatch(training, batches[j:j + k], first + j, seeds_dev,
                                            variants, k)
            blocks.append((loss, len(batches[j:j + k])))
        return training, [row for loss, m in blocks for row in np.asarray(loss)[:m]]

    def _fresh_segment(self, training: StepState, first: int, last: int, seeds_dev, k: int):
        """Steps ``first`` … ``last`` on fresh data, ``k`` per compiled call; returns the state and
        each step's losses [S]. Where a trace was longer than its length's cap (possible only
        where the cap is run.py's estimate, not a proven bound: ``workers.data.fresh``), the cap
        grows to the ladder rung above it and the segment reruns from its start: the same graphs
        (their keys are the seed's and the step's), none cut short."""
        algorithm = self.config.algorithm
        exact = all(cap_covers_every_trace(algorithm, n, cap)
                    for n, cap in zip(self.lengths, self.pool_caps))
        start = None if exact else jax.tree_util.tree_map(jnp.copy, training)
        while True:
            steps = list(range(first, last + 1))
            losses, longest = [], []
            if k == 1:
                for step in steps:
                    li = step % len(self.lengths)
                    training, loss, _, top = self.fresh_step(li, len(seeds_dev))(
                        training, seeds_dev, jnp.uint32(step))
                    losses.append(loss)
                    longest.append((li, top))
            else:
                for j in range(0, len(steps), k):
                    chunk = steps[j:j + k]
                    branch = np.full(k, len(self.lengths), np.int32)
                    branch[:len(chunk)] = [step % len(self.lengths) for step in chunk]
                    step_ids = np.arange(chunk[0], chunk[0] + k, dtype=np.uint32)
                    training, loss, _, top = self.fresh_block(k, len(seeds_dev))(
                        training, jnp.asarray(branch), jnp.asarray(step_ids), seeds_dev)
                    loss, top = np.asarray(loss), np.asarray(top)
                    losses += list(loss[:len(chunk)])
                    longest += [(int(branch[i]), top[i]) for i in range(len(chunk))]
            if exact:
                return training, losses
            grown = False
            for li, top in longest:
                top = int(np.max(np.asarray(top)))
                if top > self.pool_caps[li]:
                    cap = grown_cap(algorithm, self.lengths[li], top)
                    log.info("%s n = %d: a fresh trace has %d steps, above the cap %d; the cap "
                             "grows to %d and steps %d-%d rerun", algorithm, self.lengths[li], top,
                             self.pool_caps[li], cap, first, last)
                    self.pool_caps[li] = cap
                    grown = True
            if not grown:
                return training, losses
            training = jax.tree_util.tree_map(jnp.copy, start)

    def _variants(self, order: _BatchOrder) -> tuple:
        """Every (train length index, padded hint steps) the run's steps take, in order: the
        branches of its ``train_block`` (drawn from a copy of ``order``; it is not advanced)."""
        order = copy.deepcopy(order)
        shapes = set()
        for first, last, _ in _segments(self.config.train_steps, self.config.eval_every):
            uniforms = order.block(last - first + 1)
            for j, step in enumerate(range(first, last + 1)):
                li, _, steps = self._batch(step, uniforms[:, j])
                shapes.add((li, steps))
        return tuple(sorted(shapes))

    def _dispatch(self, training: StepState, batches: list, first: int, seeds_dev, variants,
                  k: int):
        """Steps ``first``, ``first + 1``, … (``batches``: their ``_batch``, at most ``k``) as one
        call of the ``train_block`` of ``k`` steps; returns the state and the losses [k, S]."""
        population = len(seeds_dev)
        branch = np.full(k, len(variants), np.int32)
        idx = np.zeros((k, population, self.config.batch_size), np.int32)
        for j, (li, step_idx, steps) in enumerate(batches):
            branch[j] = variants.index((li, steps))
            idx[j] = step_idx
        step = np.arange(first, first + k, dtype=np.uint32)
        training, loss, _ = self.train_block(variants, k, population)(
            training, jnp.asarray(branch), jnp.asarray(idx), jnp.asarray(step), seeds_dev,
            tuple(self.pools))
        return training, loss

    def _batch(self, step: int, uniforms: np.ndarray):
        """Step ``step``'s (train length index, [S, batch] graph indices, padded hint steps) from
        each seed's uniforms [S, batch]: lengths cycle every step, as in run.py."""
        li = step % len(self.lengths)
        size = self.pool_sizes[li]
        idx = np.minimum((uniforms * size).astype(np.int64), size - 1)
        return li, idx, padded_steps(int(self.pool_lengths[li][idx].max()), self.pool_caps[li])

    def _result(self, seeds, state: PopulationState, history: _History, test_scores, hint_acc,
                wall: float) -> PopulationResult:
        alive = np.asarray(state.training.alive)
        return PopulationResult(
            seeds=seeds, status=["done" if a else "diverged" for a in alive],
            diverged_step=np.asarray(state.training.diverged_at).astype(np.int64),
            test_score=np.asarray(test_scores),
            best_val_score=np.asarray(state.best.val_score).astype(np.float64),
            best_step=np.asarray(state.best.step).astype(np.int64),
            final_step=self.config.train_steps, eval_steps=np.asarray(history.eval_steps),
            val_scores=np.stack(history.val_scores, axis=1),
            train_loss=np.stack(history.train_loss, axis=1),
            hint_accuracy={k: np.asarray(v) for k, v in hint_acc.items()},
            wall_seconds=wall, best_params=jax.tree_util.tree_map(np.asarray, state.best.params),
            initial_params=self.compiled)

    def memory_per_population(self, population: int) -> int:
        """XLA's estimate of the bytes one training step needs for a population of this size, at
        the largest train length and its longest padded trace."""
        li, steps = self.largest_shape
        step = (self.fresh_step(li, population) if self.fresh
                else self.train_step(li, steps, population))
        stats = step.memory_analysis()
        if stats is None:
            raise RuntimeError("XLA gives no memory analysis on this backend")
        return int(stats.temp_size_in_bytes + stats.argument_size_in_bytes
                   + stats.output_size_in_bytes)

    def canary(self, seeds) -> CanaryReport:
        """The numerical canary (``workers.canary``) on the real compiled training step at the
        run's largest padded shape (the largest train length, its longest trace): the population's
        loss and gradient norm on its first and last lanes against the same seeds' step alone.
        Raises ``NumericalCanaryError`` on a mismatch; nothing of the training state changes."""
        config = self.config
        start = time.perf_counter()
        seeds = np.asarray(seeds, dtype=np.int64)
        li, steps = self.largest_shape
        shape = (f"{config.algorithm}, n = {self.lengths[li]}, {steps} hint steps, batch "
                 f"{config.batch_size}, hidden {config.hidden_size}")
        if len(seeds) < 2:
            return CanaryReport("training step", shape, len(seeds), (), 0.0,
                                time.perf_counter() - start, environment())
        if not self.fresh:
            # each lane its own graphs, the pool's longest traces first (every padded step is used)
            longest = np.argsort(-self.pool_lengths[li], kind="stable")
            idx = np.stack([np.take(longest, np.arange(j, j + config.batch_size), mode="wrap")
                            for j in range(0, len(seeds) * config.batch_size, config.batch_size)])
        seeds_dev = jnp.asarray(seeds, dtype=jnp.uint32)
        params, opt_state = self._init(seeds_dev, self._example_batch())

        take = jax.jit(lambda tree, lanes: jax.tree_util.tree_map(lambda x: x[lanes], tree))

        def run(lanes):      # the lanes' copies are donated: params and opt_state stay intact
            lanes = np.asarray(lanes)
            training = StepState(*take((params, opt_state), lanes), jnp.ones(len(lanes), bool),
                                 jnp.full(len(lanes), -1, jnp.int32))
            if self.fresh:    # each lane its own fresh graphs of step 0
                _, loss, grad_norm, _ = self.fresh_step(li, len(lanes))(
                    training, seeds_dev[lanes], jnp.uint32(0))
            else:
                _, loss, grad_norm = self.train_step(li, steps, len(lanes))(
                    training, jnp.asarray(idx[lanes], jnp.int32), seeds_dev[lanes],
                    jnp.uint32(0), self.pools[li])
            return {"loss": np.asarray(loss), "gradient norm": np.asarray(grad_norm)}

        together = run(np.arange(len(seeds)))
        lanes = (0, len(seeds) - 1)
        alone = {lane: {k: float(v[0]) for k, v in run([lane]).items()} for lane in lanes}
        return compare_lanes("training step", shape, together, alone,
                             time.perf_counter() - start,
                             labels={lane: f"seed {seeds[lane]}" for lane in lanes})

    def fit_population(self, wanted: int | None = None, memory_bytes: int | None = None,
                       fraction: float = 0.8) -> int:
        """The largest population (at most ``wanted``, if given) whose training step fits
        ``fraction`` of the device's memory, from XLA's memory analysis: at ``wanted`` first (if
        it fits, that compilation is the one the canary and the first steps reuse), else at
        populations 1 and 2 (memory grows linearly in seeds)."""
        limit = memory_bytes or device_memory_bytes()
        if wanted is not None and self.memory_per_population(wanted) <= fraction * limit:
            return wanted
        one, two = self.memory_per_population(1), self.memory_per_population(2)
        per_seed = max(two - one, 1)
        base = max(one - per_seed, 0)
        fits = max(1, int((fraction * limit - base) // per_seed))
        return fits if wanted is None else min(fits, wanted)


def _keep_best(best: BestState, training: StepState, scores, step) -> BestState:
    """run.py's model selection after a validation at ``step``: a live seed keeps its new
    parameters only on a strictly higher validation score."""
    better = (scores > best.val_score) & training.alive
    def pick(new, old):
        return jnp.where(better.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
    return BestState(jax.tree_util.tree_map(pick, training.params, best.params),
                     jnp.where(better, scores, best.val_score), jnp.where(better, step, best.step))


def check_steps_per_dispatch(value) -> int:
    """``steps_per_dispatch``, if allowed (an integer in [1, ``rules.MAX_STEPS_PER_DISPATCH``]);
    else a ``GapsweepError`` naming it."""
    if not rules.is_integer_in(value, 1, rules.MAX_STEPS_PER_DISPATCH):
        raise GapsweepError(f"steps_per_dispatch = {rules.show_value(value)} is not allowed; "
                            f"{rules.integer_range(1, rules.MAX_STEPS_PER_DISPATCH)}")
    return value


def make_train(config: TrainConfig, data: TrainData, *, remat: bool = False,
               progress: Callable[[int, int], None] | None = None,
               edge_path: str = "auto", steps_per_dispatch: int = 1) -> Trainer:
    """The population trainer for one configuration: ``make_train(config, data)(seeds) ->
    PopulationResult``; ``edge_path``: how the network computes (``workers.model.network``);
    ``steps_per_dispatch`` training steps run per compiled call."""
    return Trainer(config, data, remat=remat, progress=progress, edge_path=edge_path,
                   steps_per_dispatch=steps_per_dispatch)


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
                     canary: bool = True, edge_path: str = "auto",
                     steps_per_dispatch: int = 1) -> PopulationResult:
    """Train every seed, in chunks of at most ``max_population`` seeds (default: as many as XLA's
    memory analysis says fit the device, on every backend). Results do not depend on the chunking.
    First the numerical canary checks the compiled step at the first chunk's size (``canary``:
    False skips it, for tests that time or count compilations); a mismatch raises
    ``workers.canary.NumericalCanaryError`` before anything trains. ``steps_per_dispatch``: the
    training steps one compiled call runs (``Trainer``; results do not depend on it)."""
    seeds = np.asarray(list(seeds), dtype=np.int64)
    trainer = make_train(config, data, remat=remat, edge_path=edge_path,
                         steps_per_dispatch=steps_per_dispatch)
    if max_population is None:
        try:
            max_population = trainer.fit_population(len(seeds))
        except Exception as err:  # noqa: BLE001 - analysis is best effort; train all at once
            log.warning("could not size the population from XLA's memory analysis (%s)", err)
            max_population = len(seeds)
    chunk = max(1, min(max_population, len(seeds)))
    if chunk < len(seeds):
        log.info("training %d seeds in chunks of %d", len(seeds), chunk)
    report = trainer.canary(seeds[:chunk]) if canary else None
    if report is not None:
        log.info("numerical canary: %s", report.summary())
    parts = []
    for i in range(0, len(seeds), chunk):
        part = seeds[i:i + chunk]

        def part_progress(done, total, offset=i, size=len(part)):
            if progress:  # seed-steps over the whole population
                progress(offset * total + done * size, len(seeds) * total)

        parts.append(trainer(part, progress=part_progress))
    result = parts[0] if len(parts) == 1 else PopulationResult.concatenate(parts)
    result.canary = report
    return result
