"""Sweep specs: a YAML file → a validated ``SweepSpec``, or a ``SpecError`` that points at the line.

A sweep file names the sweep, the settings every configuration shares (``base``), the axes to vary
(``grid``, a cartesian product) and/or hand-written variants (``configurations``), and the seeds::

    name: quickstart                # [A-Za-z0-9_.-]+ ; the sweep's identity in the results database
    experiment: quickstart          # free text, e.g. a paper table id; default: the name
    base: {hidden_size: 16}         # TrainConfig keys for every configuration (defaults: Table 9)
    grid: {algorithm: [bfs, dfs]}   # TrainConfig key -> non-empty list of values
    configurations:                 # each {label: ..., <TrainConfig keys>...}
      - {label: baseline}
      - {label: edge_info, use_edge_info: true}
    seeds: 0-7                      # a count (8 means 0..7), a range A-B, or a list of seeds
    population: null                # most seeds per worker task; null: as many as fit
    steps_per_dispatch: 1           # training steps per compiled call (same results; tiny models)
    edge_path: auto                 # auto | low_rank | materialised: how, never what, it computes
    resources: {gpus: 0, cpus: 1}   # per task; gpus: 0, a fraction in (0, 1] or a whole number
    max_attempts: 3                 # attempts per task before its seeds are marked failed
    tracking: {experiment: null}    # MLflow experiment; null: the plan's sweep name

The configurations are (each named configuration, or one unnamed) × (each grid point, or one), each
``TrainConfig.from_dict({**base, **named overrides, **grid point})``. Their labels are the named
label, the grid point (``algorithm=bfs,hidden_size=4``), both (``edge_info/algorithm=bfs``) or, with
neither, the sweep name. Parsing resolves and validates every configuration, so a ``SweepSpec`` that
exists can be planned.

Every error names the file, the line, the key path, the bad value and what is allowed, e.g.
``sweeps/x.yaml:7: grid.hidden_size: [] is empty; give one or more values``. Lines come from the
composed YAML node tree; errors found inside pydantic carry their key path (pydantic's ``loc``, or
the ``path`` of our own ``PydanticCustomError``), and ``TrainConfig`` errors are traced back to the
layer (base, named configuration or grid value) that set the key they name.

Sizes are bounded before they cost anything (``workers/rules.py``, ``MAX_*``): the file's length
and its YAML values (aliases counted each time they are used) before any object is built, the
seeds before a range is made, the number of configurations and runs before the grid is expanded.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from workers.config import ConfigError, TrainConfig
from workers import rules
from workers.data.requests import CLRS30_TEST
from workers.errors import GapsweepError
from workers.rules import show_value

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
LABEL_KEY = "label"

KeyPath = tuple[str | int, ...]


class SpecError(GapsweepError, ValueError):
    """A bad sweep spec: ``file:line: key.path: value ... allowed ...`` (one line per problem)."""


class ResolvedConfiguration(NamedTuple):
    """One configuration of a sweep: its label and its complete, validated training settings."""
    label: str
    config: TrainConfig


# -- the model -----------------------------------------------------------------------------------

def _invalid(message: str, path: KeyPath | None = None) -> PydanticCustomError:
    """A validation error for pydantic to collect; ``path`` (from the file's top) overrides its loc."""
    context: dict[str, Any] = {"message": message}
    if path is not None:
        context["path"] = path
    return PydanticCustomError("sweep_spec", "{message}", context)


def _unknown_key(key: Any, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    suggestion = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{suggestion}; allowed: {', '.join(allowed)}"


def _non_empty_text(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise _invalid(f"{value!r} is empty; give a name or leave the key out")
    if value is not None and len(value) > rules.MAX_TEXT_LENGTH:
        raise _invalid(f"{show_value(value)} is {len(value):,} characters; at most "
                       f"{rules.MAX_TEXT_LENGTH} are allowed")
    return value


class Resources(BaseModel):
    """What Ray reserves for one worker task."""
    model_config = ConfigDict(extra="forbid", strict=True)

    gpus: float = 0.0
    cpus: float = 1.0

    @field_validator("gpus")
    @classmethod
    def _check_gpus(cls, gpus: float) -> float:
        if not rules.is_gpu_count(gpus):
            raise _invalid(f"{show_value(gpus)} is not allowed; {rules.GPUS}")
        return gpus

    @field_validator("cpus")
    @classmethod
    def _check_cpus(cls, cpus: float) -> float:
        if not rules.is_cpu_count(cpus):
            raise _invalid(f"{show_value(cpus)} is not allowed; {rules.CPUS}")
        return cpus


class Tracking(BaseModel):
    """MLflow settings. ``per_seed_runs``: a child run per seed (true), or only a run per
    configuration with a ``seeds.csv`` table and summary metrics (false); ``auto`` (the default)
    logs seeds as runs up to ``tracking.PER_SEED_RUNS_AUTO_MAX`` seed-runs in the sweep."""
    model_config = ConfigDict(extra="forbid", strict=True)

    experiment: str | None = None   # None: the plan's sweep name
    per_seed_runs: bool | Literal["auto"] = "auto"

    _check_experiment = field_validator("experiment")(_non_empty_text)


# a wide test set is held whole in memory (at n = 64, 65,536 graphs' adjacency alone is 1 GiB)
WIDE_TEST_MAX_GRAPHS = 65_536


class WideTest(BaseModel):
    """The wide test (``analyses: [wide_test]``): each seed's best parameters scored on ``graphs``
    graphs at its configuration's test size, drawn as CLRS-30's test split is (one sampler, fixed
    positions) but with data seed ``data_seed`` (CLRS-30 uses 1 for train, 2 for val, 3 for test;
    3 is refused: its first 32 graphs are the test split itself)."""
    model_config = ConfigDict(extra="forbid", strict=True)

    graphs: int = 1024
    data_seed: int = 4

    @field_validator("graphs")
    @classmethod
    def _check_graphs(cls, graphs: int) -> int:
        if not rules.is_integer_in(graphs, 2, WIDE_TEST_MAX_GRAPHS):
            raise _invalid(f"{show_value(graphs)} is not allowed; give a number of test graphs "
                           f"in [2, {WIDE_TEST_MAX_GRAPHS:,}] (e.g. 1024)")
        return graphs

    @field_validator("data_seed")
    @classmethod
    def _check_data_seed(cls, seed: int) -> int:
        if not rules.is_integer_in(seed, 0, rules.MAX_SEED) or seed == CLRS30_TEST["seed"]:
            raise _invalid(f"{show_value(seed)} is not allowed; give a data seed in "
                           f"[0, {rules.MAX_SEED}] other than {CLRS30_TEST['seed']} (CLRS-30's "
                           "test split itself)")
        return seed


class SweepSpec(BaseModel):
    """A validated sweep file. ``resolved_configurations`` holds every configuration it defines."""
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    experiment: str | None = None          # None on input: set to the name
    base: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, Any] | None = None
    configurations: list[dict[str, Any]] | None = None
    seeds: tuple[int, ...]
    population: int | None = None
    steps_per_dispatch: int = 1
    edge_path: str = "auto"
    resources: Resources = Field(default_factory=Resources)
    max_attempts: int = 3
    tracking: Tracking = Field(default_factory=Tracking)
    analyses: list[Literal["faithfulness", "landscape", "wide_test"]] = Field(default_factory=list)
    wide_test: WideTest = Field(default_factory=WideTest)

    _resolved: tuple[ResolvedConfiguration, ...] = PrivateAttr(default=())
    _path: str = PrivateAttr(default="<string>")
    _source_text: str = PrivateAttr(default="")

    @property
    def resolved_configurations(self) -> tuple[ResolvedConfiguration, ...]:
        return self._resolved

    @property
    def path(self) -> str:
        """The file the spec came from (``<string>`` when parsed from text without a name)."""
        return self._path

    @property
    def source_text(self) -> str:
        """The YAML text exactly as read."""
        return self._source_text

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not NAME_PATTERN.fullmatch(name):
            raise _invalid(f"{show_value(name)} is not allowed; use letters, digits, '_', '.' and "
                           "'-' only")
        if len(name) > rules.MAX_NAME_LENGTH:
            raise _invalid(f"{show_value(name)} is {len(name):,} characters; at most "
                           f"{rules.MAX_NAME_LENGTH} are allowed")
        return name

    _check_experiment = field_validator("experiment")(_non_empty_text)

    @field_validator("seeds", mode="before")
    @classmethod
    def _normalise_seeds(cls, seeds: Any) -> tuple[int, ...]:
        try:
            return rules.seeds(seeds)
        except rules.SeedsError as error:
            raise _invalid(str(error), None if error.index is None else ("seeds", error.index))

    @field_validator("population")
    @classmethod
    def _check_population(cls, population: int | None) -> int | None:
        if population is not None and not rules.is_integer_in(population, 1, rules.MAX_RUNS):
            raise _invalid(f"{population} is not allowed; give a number of seeds per task in "
                           f"[1, {rules.MAX_RUNS:,}], or null for as many as fit")
        return population

    @field_validator("steps_per_dispatch")
    @classmethod
    def _check_steps_per_dispatch(cls, steps: int) -> int:
        if not rules.is_integer_in(steps, 1, rules.MAX_STEPS_PER_DISPATCH):
            raise _invalid(f"{show_value(steps)} is not allowed; give a number of training steps "
                           f"per compiled call in [1, {rules.MAX_STEPS_PER_DISPATCH:,}]")
        return steps

    @field_validator("edge_path")
    @classmethod
    def _check_edge_path(cls, edge_path: str) -> str:
        if edge_path not in rules.EDGE_PATHS:
            raise _invalid(f"{show_value(edge_path)} is not allowed; allowed: "
                           f"{', '.join(rules.EDGE_PATHS)}")
        return edge_path

    @field_validator("max_attempts")
    @classmethod
    def _check_max_attempts(cls, max_attempts: int) -> int:
        if not rules.is_integer_in(max_attempts, 1, rules.MAX_ATTEMPTS):
            raise _invalid(f"{max_attempts} is not allowed; give a number of attempts in "
                           f"[1, {rules.MAX_ATTEMPTS}]")
        return max_attempts

    @field_validator("base")
    @classmethod
    def _check_base(cls, base: dict[str, Any]) -> dict[str, Any]:
        _check_config_keys(base, ("base",), TrainConfig.keys())
        return base

    @field_validator("grid")
    @classmethod
    def _check_grid(cls, grid: dict[str, Any] | None) -> dict[str, Any] | None:
        if grid is None:
            return None
        if not grid:
            raise _invalid("{} is an empty grid; give one or more keys, each with a list of values, "
                           "or leave grid out")
        _check_config_keys(grid, ("grid",), TrainConfig.keys())
        for axis, values in grid.items():
            if not isinstance(values, list):
                raise _invalid(f"{show_value(values)} is not allowed; give a list of values, "
                               f"e.g. [{_label_value(values)}]", ("grid", axis))
            if not values:
                raise _invalid("[] is empty; give one or more values", ("grid", axis))
            if len(values) > rules.MAX_CONFIGURATIONS:
                raise _invalid(f"{len(values):,} values are not allowed; a sweep expands to at most "
                               f"{rules.MAX_CONFIGURATIONS:,} configurations (workers/rules.py)",
                               ("grid", axis))
            seen: set[Any] = set()
            for index, value in enumerate(values):
                key = _hashable(value)
                if key in seen:
                    raise _invalid(f"{show_value(value)} is repeated; the values of an axis must differ",
                                   ("grid", axis, index))
                seen.add(key)
        return grid

    @field_validator("configurations")
    @classmethod
    def _check_configurations(cls, configurations: list[dict[str, Any]] | None
                              ) -> list[dict[str, Any]] | None:
        if configurations is None:
            return None
        if not configurations:
            raise _invalid("[] is empty; give one or more configurations, or leave the key out")
        allowed = (LABEL_KEY, *TrainConfig.keys())
        label_index: dict[str, int] = {}
        for index, entry in enumerate(configurations):
            path = ("configurations", index)
            if LABEL_KEY not in entry:
                raise _invalid(f"{show_value(entry)} has no label; give each configuration one, "
                               "e.g. {label: baseline}", path)
            label = entry[LABEL_KEY]
            if not isinstance(label, str) or not label.strip() or "/" in label:
                raise _invalid(f"{show_value(label)} is not allowed; a label is non-empty text "
                               "without '/'", (*path, LABEL_KEY))
            if len(label) > rules.MAX_TEXT_LENGTH:
                raise _invalid(f"{show_value(label)} is {len(label):,} characters; at most "
                               f"{rules.MAX_TEXT_LENGTH} are allowed", (*path, LABEL_KEY))
            if label in label_index:
                raise _invalid(f"{label!r} is already the label of configurations"
                               f"[{label_index[label]}]; labels must be unique", (*path, LABEL_KEY))
            label_index[label] = index
            _check_config_keys(entry, path, allowed)
        return configurations

    @model_validator(mode="after")
    def _resolve(self) -> "SweepSpec":
        if self.experiment is None:
            self.experiment = self.name
        _check_size(self)
        if "wide_test" in self.model_fields_set and "wide_test" not in self.analyses:
            raise _invalid("wide_test: settings are given but analyses has no wide_test; add "
                           "it (analyses: [wide_test]) or leave the settings out", ("wide_test",))
        self._resolved = _resolve_configurations(self)
        return self


def _hashable(value: Any) -> Any:
    """``value`` with lists and mappings made tuples: equal values give equal keys."""
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return ("<mapping>", tuple((_hashable(k), _hashable(v)) for k, v in value.items()))
    try:
        hash(value)
    except TypeError:
        return ("<unhashable>", repr(value))
    return value


def _check_config_keys(values: dict[str, Any], path: KeyPath, allowed: tuple[str, ...]) -> None:
    for key in values:
        if key not in allowed:
            raise _invalid(_unknown_key(key, allowed), (*path, key))


# -- resolution ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Layer:
    """Settings from one place in the file, and where each key came from."""
    values: dict[str, Any]
    origins: dict[str, KeyPath]


def _label_value(value: Any) -> str:
    """A grid value as it appears in a label: no spaces or commas; booleans as true/false."""
    if isinstance(value, (list, tuple)):
        return "+".join(_label_value(item) for item in value)
    if isinstance(value, bool) or value is None:
        return show_value(value)
    return str(value).replace(" ", "_").replace(",", "+")


def _grid_points(grid: dict[str, list[Any]] | None) -> list[tuple[str | None, _Layer]]:
    """(label, layer) for every point of the grid's cartesian product, in the grid's key order."""
    if grid is None:
        return [(None, _Layer({}, {}))]
    axes = list(grid)
    points = []
    for indices in itertools.product(*(range(len(grid[axis])) for axis in axes)):
        values = {axis: grid[axis][index] for axis, index in zip(axes, indices)}
        label = ",".join(f"{axis}={_label_value(value)}" for axis, value in values.items())
        origins = {axis: ("grid", axis, index) for axis, index in zip(axes, indices)}
        points.append((label, _Layer(values, origins)))
    return points


def _named_configurations(spec: SweepSpec) -> list[tuple[str | None, KeyPath, _Layer]]:
    """(label, path, layer) for every named configuration, or one unnamed one."""
    if spec.configurations is None:
        return [(None, ("grid",) if spec.grid else ("base",), _Layer({}, {}))]
    named = []
    for index, entry in enumerate(spec.configurations):
        path = ("configurations", index)
        overrides = {key: value for key, value in entry.items() if key != LABEL_KEY}
        for key in overrides:
            if spec.grid and key in spec.grid:
                raise _invalid(f"{key!r} is also a grid axis (grid.{key}); set it in the grid or in "
                               "the configurations, not both", (*path, key))
        named.append((entry[LABEL_KEY], path,
                      _Layer(overrides, {key: (*path, key) for key in overrides})))
    return named


def _blame(message: str, origins: dict[str, KeyPath]) -> KeyPath | None:
    """Where the first key a TrainConfig error names was set (None: it names no key set here)."""
    mentioned = []
    for key in origins:
        found = re.search(rf"\b{re.escape(key)}\b", message)
        if found:
            mentioned.append((found.start(), key))
    return origins[min(mentioned)[1]] if mentioned else None


def _check_size(spec: SweepSpec) -> None:
    """Refuse, before expanding it, a sweep of more than ``MAX_CONFIGURATIONS`` configurations or
    ``MAX_RUNS`` runs (configurations × seeds)."""
    axes = [len(values) for values in (spec.grid or {}).values()]
    named = len(spec.configurations or ()) or 1
    count = math.prod(axes) * named
    factors = " × ".join(map(str, axes + ([named] if spec.configurations else [])))
    where: KeyPath = ("grid",) if spec.grid else ("configurations",)
    caps = (f"at most {rules.MAX_CONFIGURATIONS:,} configurations and {rules.MAX_RUNS:,} runs "
            "(configurations × seeds) are allowed (workers/rules.py)")
    if count > rules.MAX_CONFIGURATIONS:
        product = f" ({factors})" if "×" in factors else ""
        raise _invalid(f"the sweep expands to {count:,} configurations{product}; {caps}; "
                       "use fewer values or split the sweep", where)
    runs = count * len(spec.seeds)
    if runs > rules.MAX_RUNS:
        raise _invalid(f"{count:,} configuration(s) × {len(spec.seeds):,} seeds = {runs:,} runs; "
                       f"{caps}; use fewer seeds or configurations", ("seeds",))


def _resolve_configurations(spec: SweepSpec) -> tuple[ResolvedConfiguration, ...]:
    base = _Layer(spec.base, {key: ("base", key) for key in spec.base})
    resolved: list[ResolvedConfiguration] = []
    first_by_hash: dict[str, tuple[str, KeyPath, dict[str, KeyPath]]] = {}
    for named_label, named_path, named in _named_configurations(spec):
        for point_label, point in _grid_points(spec.grid):
            label = "/".join(part for part in (named_label, point_label) if part) or spec.name
            if len(label) > rules.MAX_TEXT_LENGTH:
                raise _invalid(f"the configuration label {show_value(label)} is {len(label):,} "
                               f"characters; at most {rules.MAX_TEXT_LENGTH} are allowed (labels "
                               "join the named label and each grid axis=value); use shorter "
                               "labels or fewer grid axes", named_path)
            origins = {**base.origins, **named.origins, **point.origins}
            try:
                config = TrainConfig.from_dict({**base.values, **named.values, **point.values},
                                               where=label)
            except ConfigError as err:
                problem = str(err).removeprefix(f"{label}: ")
                raise _invalid(f"{problem} (configuration {label!r})",
                               _blame(problem, origins) or named_path) from None
            config_hash = config.hash()
            if config_hash in first_by_hash:
                first_label, first_named_path, first_grid_origins = first_by_hash[config_hash]
                differing_grid_values = [path for axis, path in point.origins.items()
                                         if first_grid_origins[axis] != path]
                raise _invalid(f"configuration {label!r} has the same settings as {first_label!r} "
                               f"(config hash {config_hash[:12]}); make them differ or drop one",
                               differing_grid_values[0] if first_named_path == named_path
                               else named_path)
            first_by_hash[config_hash] = (label, named_path, point.origins)
            resolved.append(ResolvedConfiguration(label, config))
    return tuple(resolved)


# -- reading YAML and reporting errors by line ---------------------------------------------------

class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a number (YAML 1.2), not as the string '1e-4'."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))

_MODEL_AT_PATH: dict[KeyPath, type[BaseModel]] = {
    (): SweepSpec, ("resources",): Resources, ("tracking",): Tracking}


def _format_path(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "top level"


@dataclasses.dataclass(frozen=True)
class _Source:
    """The composed YAML of one file: maps key paths to line numbers."""
    filename: str
    root: yaml.Node

    def line(self, path: KeyPath) -> int:
        """The line of the key (or list item) at ``path``, or of its deepest ancestor in the file."""
        node, line = self.root, self.root.start_mark.line + 1
        for part in path:
            if isinstance(node, yaml.MappingNode):
                entry = next(((key, value) for key, value in reversed(node.value)
                              if isinstance(key, yaml.ScalarNode) and key.value == str(part)), None)
                if entry is None:
                    break
                line, node = entry[0].start_mark.line + 1, entry[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                    and 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line

    def error(self, path: KeyPath, message: str) -> str:
        return f"{self.filename}:{self.line(path)}: {_format_path(path)}: {message}"


def _yaml_error(err: yaml.YAMLError, text: str, filename: str) -> SpecError:
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context
        context = (f" ({err.context} at line {err.context_mark.line + 1})"
                   if err.context and err.problem and err.context_mark else "")
        return SpecError(f"{filename}:{mark.line + 1}: invalid YAML: {problem}{context}")
    if isinstance(err, yaml.reader.ReaderError):
        line = text[:err.position].count("\n") + 1
        character = chr(err.character) if isinstance(err.character, int) else err.character
        return SpecError(f"{filename}:{line}: invalid YAML: character {character!r} "
                         "is not allowed in a YAML file")
    return SpecError(f"{filename}:1: invalid YAML: {err}")


def _check_duplicate_keys(node: yaml.Node, path: KeyPath, filename: str, seen: set[int]) -> None:
    """Reject a key given twice in one mapping, which PyYAML would take silently (the last wins).

    Keys brought in by a merge (``<<: *anchor``) may be overridden; they are not duplicates.
    """
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            line = key.start_mark.line + 1
            if key.value in first_line:
                raise SpecError(f"{filename}:{line}: {_format_path((*path, key.value))}: key "
                                f"{key.value!r} is given twice (first at line "
                                f"{first_line[key.value]}); give it once")
            first_line[key.value] = line
        for key, value in node.value:
            _check_duplicate_keys(value, (*path, key.value) if isinstance(key, yaml.ScalarNode) else path,
                            filename, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicate_keys(item, (*path, index), filename, seen)


def _check_node_count(root: yaml.Node, filename: str) -> None:
    """Refuse a file whose values, each alias counted as often as it is used, exceed
    ``MAX_YAML_NODES`` (anchors and aliases can make a small file expand exponentially: "billion
    laughs"); counted on the composed nodes, before any Python object is built."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int = 0) -> int:
        if depth > rules.MAX_YAML_DEPTH:
            raise SpecError(f"{filename}:{node.start_mark.line + 1}: lists or mappings nested "
                            f"more than {rules.MAX_YAML_DEPTH} levels deep; a sweep file needs "
                            "at most a few")
        if id(node) not in sizes:
            sizes[id(node)] = 0                     # a recursive alias counts once
            children = ([item for pair in node.value for item in pair]
                        if isinstance(node, yaml.MappingNode) else
                        node.value if isinstance(node, yaml.SequenceNode) else [])
            sizes[id(node)] = 1 + sum(size(child, depth + 1) for child in children)
        return sizes[id(node)]

    total = size(root)
    if total <= rules.MAX_YAML_NODES:
        return
    path: KeyPath = ()
    node = root
    while isinstance(node, yaml.MappingNode) and node.value:     # the key of the largest branch
        key, child = max(node.value, key=lambda entry: size(entry[1]))
        if size(child) <= rules.MAX_YAML_NODES or not isinstance(key, yaml.ScalarNode):
            break
        path, node = (*path, key.value), child
    source = _Source(filename, root)
    raise SpecError(source.error(path, f"the file expands to {total:,} YAML values (each alias "
                                       f"counted as often as it is used); at most "
                                       f"{rules.MAX_YAML_NODES:,} are allowed (workers/rules.py: "
                                       "MAX_YAML_NODES); write the values out, or fewer of them"))


def _read_yaml(text: str, filename: str) -> tuple[_Source, Any]:
    if len(text) > rules.MAX_SPEC_CHARACTERS:
        raise SpecError(f"{filename}:1: the file has more than {rules.MAX_SPEC_CHARACTERS:,} "
                        f"characters; a sweep file may have at most {rules.MAX_SPEC_CHARACTERS:,} "
                        "(workers/rules.py: MAX_SPEC_CHARACTERS)")
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                raise SpecError(f"{filename}:1: the file is empty; a sweep needs at least name "
                                "and seeds")
            _check_node_count(root, filename)
            _check_duplicate_keys(root, (), filename, set())
            return _Source(filename, root), loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise _yaml_error(err, text, filename) from None
    except RecursionError:
        raise SpecError(f"{filename}:1: invalid YAML: lists or mappings nested too deeply; a sweep "
                        f"file nests at most {rules.MAX_YAML_DEPTH} levels") from None


def _describe(error: dict[str, Any], path: KeyPath) -> str:
    """One pydantic error as ``value ... allowed`` text (without file, line and path)."""
    kind = error["type"]
    if kind == "sweep_spec":
        return error["ctx"]["message"]
    if kind == "extra_forbidden":
        model = _MODEL_AT_PATH.get(path[:-1])
        allowed = tuple(model.model_fields) if model else ()
        return _unknown_key(path[-1], allowed)
    if kind == "missing":
        return "missing; this key is required"
    if kind == "invalid_key" or error["loc"][-1:] == ("[key]",):
        return f"key {show_value(error['input'])} is not allowed; keys are text (quote one that looks " \
               "like a number)"
    expectation = error["msg"].replace("Input should be", "it should be")
    return f"{show_value(error['input'])} is not allowed; {expectation}"


def _spec_error(err: ValidationError, source: _Source) -> SpecError:
    problems = []
    for error in err.errors():
        loc = error["loc"][:-1] if error["loc"][-1:] == ("[key]",) else error["loc"]
        path = tuple(error.get("ctx", {}).get("path", loc))
        problems.append((source.line(path), source.error(path, _describe(error, path))))
    return SpecError("\n".join(message for _, message in sorted(set(problems))))


def parse_spec(text: str, filename: str = "<string>") -> SweepSpec:
    """Validate a sweep's YAML text; ``filename`` is what error messages and ``spec.path`` name."""
    source, data = _read_yaml(text, filename)
    if not isinstance(data, dict):
        raise SpecError(source.error((), f"{show_value(data)} is not allowed; a sweep file is a mapping "
                                         f"of keys: {', '.join(SweepSpec.model_fields)}"))
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise _spec_error(err, source) from None
    spec._path = filename
    spec._source_text = text
    return spec


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; a missing or unreadable file is a ``SpecError`` too."""
    try:
        with open(path, encoding="utf-8", newline="") as file:
            text = file.read(rules.MAX_SPEC_CHARACTERS + 1)     # more is refused, unread
    except FileNotFoundError:
        raise SpecError(f"{path}: no such sweep file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, not a sweep file") from None
    except UnicodeDecodeError as err:
        raise SpecError(f"{path}: cannot read the sweep file: it is not UTF-8 text ({err.reason} "
                        f"at byte {err.start})") from None
    except OSError as err:
        raise SpecError(f"{path}: cannot read the sweep file: {err.strerror}") from None
    return parse_spec(text, str(path))
