"""A sweep's plan: its configurations (label, TrainConfig, hash) × its seeds, cut into worker tasks.

Planning is pure and fast: no data, no Ray, no database. ``make_plan`` can shorten a sweep for a
trial run: ``steps`` overrides every configuration's ``train_steps`` and scales its ``eval_every``
to validate about as often (``TrainConfig.shortened``; a different sweep, named
``<name>-steps<steps>``, because its configurations differ), ``max_seeds`` keeps the first seeds
(the same sweep, so a later full run resumes it).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from orchestrator.spec import SpecError, SweepSpec
from workers import rules
from workers.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class PlannedConfiguration:
    label: str
    config: TrainConfig
    config_hash: str


@dataclasses.dataclass(frozen=True)
class PlannedTask:
    """One worker task: a population of seeds of one configuration."""
    label: str
    config: TrainConfig
    config_hash: str
    seeds: tuple[int, ...]


def _bounded(name: str, value: int, high: int) -> int:
    """``steps`` (train_steps' bound), ``max_seeds`` and ``population`` (the seeds' bound)."""
    if not rules.is_integer_in(value, 1, high):
        raise SpecError(f"{name} = {value!r} is not allowed; {rules.integer_range(1, high)}")
    return value


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    spec: SweepSpec
    sweep_name: str
    configurations: tuple[PlannedConfiguration, ...]
    seeds: tuple[int, ...]

    def tasks(self, seeds_by_label: dict[str, list[int]] | None = None,
              population: int | None = None) -> list[PlannedTask]:
        """One task per (configuration, chunk of at most ``population`` seeds), in plan order.

        ``population`` defaults to the spec's; None there means all of a configuration's seeds in
        one task. ``seeds_by_label`` (e.g. the seeds still pending, to resume) restricts each
        configuration to those of its seeds that are in the plan; a label it leaves out gets no tasks.
        """
        population = self.spec.population if population is None else _bounded("population",
                                                                               population,
                                                                               rules.MAX_RUNS)
        if seeds_by_label is not None:
            unknown = sorted(set(seeds_by_label) - {c.label for c in self.configurations})
            if unknown:
                raise ValueError(f"seeds_by_label names configurations not in the plan: "
                                 f"{', '.join(map(repr, unknown))}; the plan has "
                                 f"{', '.join(repr(c.label) for c in self.configurations)}")
        tasks = []
        for configuration in self.configurations:
            seeds = self.seeds
            if seeds_by_label is not None:
                wanted = set(seeds_by_label.get(configuration.label, ()))
                seeds = tuple(seed for seed in seeds if seed in wanted)
            if not seeds:
                continue
            chunk_size = population or len(seeds)
            for start in range(0, len(seeds), chunk_size):
                tasks.append(PlannedTask(configuration.label, configuration.config,
                                         configuration.config_hash, seeds[start:start + chunk_size]))
        return tasks

    @property
    def seed_steps(self) -> int:
        """Training steps summed over every (configuration, seed) of the plan."""
        return sum(len(self.seeds) * c.config.train_steps for c in self.configurations)


def make_plan(spec: SweepSpec, steps: int | None = None, max_seeds: int | None = None) -> SweepPlan:
    """The spec's configurations and seeds, optionally with fewer steps and/or fewer seeds."""
    seeds = spec.seeds if max_seeds is None else spec.seeds[:_bounded("max_seeds", max_seeds,
                                                                        rules.MAX_RUNS)]
    configurations = []
    label_by_hash: dict[str, str] = {}
    for label, config in spec.resolved_configurations:
        if steps is not None:
            config = config.shortened(_bounded("steps", steps, rules.MAX_STEPS))
        config_hash = config.hash()
        if config_hash in label_by_hash:
            raise SpecError(f"steps = {steps} makes configurations {label_by_hash[config_hash]!r} "
                            f"and {label!r} identical (they differ only in train_steps or "
                            f"eval_every; shortened, both have train_steps = {steps} and "
                            f"eval_every = {config.eval_every}); leave steps out for this sweep")
        label_by_hash[config_hash] = label
        configurations.append(PlannedConfiguration(label, config, config_hash))
    sweep_name = spec.name if steps is None else f"{spec.name}-steps{steps}"
    return SweepPlan(spec, sweep_name, tuple(configurations), seeds)


class PlanRow(NamedTuple):
    """One configuration of a plan as the CLI prints it."""
    label: str
    algorithm: str
    hidden_size: int
    train_steps: int
    n_seeds: int
    n_tasks: int
    seed_steps: int


def describe(plan: SweepPlan, population: int | None = None) -> list[PlanRow]:
    """A row per configuration; ``population`` as in ``SweepPlan.tasks``."""
    tasks = plan.tasks(population=population)
    return [PlanRow(c.label, c.config.algorithm, c.config.hidden_size, c.config.train_steps,
                    len(plan.seeds), sum(task.label == c.label for task in tasks),
                    len(plan.seeds) * c.config.train_steps)
            for c in plan.configurations]


def seed_span(seeds) -> str:
    """Seeds for people: ``0-127`` for a run of three or more, else ``0,5,9`` (sorted)."""
    seeds = sorted(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))
