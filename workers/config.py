"""TrainConfig: every training setting of one configuration, resolved and validated.

Defaults are the paper's Table 9 (``shared/paper/reported_results.yaml: hyperparameters_default``)
plus this project's flags, all off by default. ``hash()`` is stable across processes and versions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Mapping

from workers.compile.algorithm_programs import compiled_init_problems
from workers.compile.styles import SCALE_RANGE as COMPILE_SCALE_RANGE, SCALE_RANGE_TEXT, STYLES_BY_NAME
from workers.data.requests import ALGORITHMS, CLRS30_TEST
from workers import rules
from workers.errors import GapsweepError
from workers.rules import show_value

HINT_MODES = ("encoded_decoded", "decoded_only", "none")
HINT_REPRED_MODES = ("soft",)
ENCODER_INITS = ("xavier_on_scalars", "default")
PROCESSOR_TYPES = ("gatv2",)
INITS = ("random", "compiled")
# pool: batches drawn from one shared pool per train length (built by dm-clrs's samplers on the CPU);
# fresh: every batch of every seed generated on the device inside the training step (run.py's protocol)
TRAIN_DATA = ("pool", "fresh")
COMPILE_STYLES = tuple(STYLES_BY_NAME)
IN_DISTRIBUTION_TEST_SIZE = 16
DEFAULT_REGULARIZATION_WEIGHT = 1e-4
# integer settings: each must lie in [1, bound] (workers/rules.py has the bounds)
INTEGER_BOUNDS = {"batch_size": rules.MAX_BATCH_SIZE, "train_steps": rules.MAX_STEPS,
                  "eval_every": rules.MAX_STEPS, "test_every": rules.MAX_STEPS,
                  "hidden_size": rules.MAX_HIDDEN_SIZE, "nb_heads": rules.MAX_HIDDEN_SIZE,
                  "nb_msg_passing_steps": rules.MAX_MSG_PASSING_STEPS}


# settings the hash leaves out while they hold this default (see TrainConfig.hash)
_HASHED_ONLY_WHEN_SET = {"train_data": "pool", "compile_style": "exact", "compile_scale": 1.0}


class ConfigError(GapsweepError, ValueError):
    """A bad training setting; the message names the key, the value and what is allowed."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    algorithm: str = "bellman_ford"
    train_lengths: tuple[int, ...] = (4, 7, 11, 13, 16)
    random_pos: bool = True
    enforce_permutations: bool = True
    enforce_pred_as_input: bool = True
    batch_size: int = 32
    train_steps: int = 10_000
    eval_every: int = 50
    test_every: int = 500
    hidden_size: int = 128
    nb_heads: int = 1
    nb_msg_passing_steps: int = 1
    learning_rate: float = 1e-4
    grad_clip_max_norm: float = 1.0
    dropout_prob: float = 0.0
    hint_teacher_forcing: float = 0.0
    hint_mode: str = "encoded_decoded"
    hint_repred_mode: str = "soft"
    use_ln: bool = True
    use_lstm: bool = False
    encoder_init: str = "xavier_on_scalars"
    processor_type: str = "gatv2"
    freeze_processor: bool = False
    simplify_decoders: bool = False
    use_edge_info: bool = False
    use_pre_att_bias: bool = False
    length_generalize: bool = True
    regularization: bool = False
    regularization_weight: float = DEFAULT_REGULARIZATION_WEIGHT
    # this project's settings
    pool_size: int | None = None          # graphs per train length; None: enough to see each once
    data_seed: int = 1                    # the train data's seed: the pools', or folded into fresh keys
    init: str = "random"                  # or "compiled": start from the compiled program
    train_data: str = "pool"              # or "fresh": each seed's own graphs, generated per step
    compile_style: str = "exact"          # init: compiled: the constants (workers/compile/styles.py)
    compile_scale: float = 1.0            # init: compiled: every constant of the style times this

    # -- derived -------------------------------------------------------------------------------

    @property
    def encode_hints(self) -> bool:
        return self.hint_mode == "encoded_decoded"

    @property
    def decode_hints(self) -> bool:
        return self.hint_mode != "none"

    @property
    def val_size(self) -> int:
        return max(self.train_lengths)

    @property
    def test_size(self) -> int:
        return CLRS30_TEST["size"] if self.length_generalize else IN_DISTRIBUTION_TEST_SIZE

    @property
    def size_tied(self) -> bool:
        """Parameters whose shape is the graph size (n × n bias, n-output decoders)."""
        return self.use_pre_att_bias or self.simplify_decoders

    @property
    def tied_size(self) -> int | None:
        return self.train_lengths[0] if self.size_tied else None

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "config") -> "TrainConfig":
        """Build and validate; unknown keys and wrong types are errors naming the key."""
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                              f"allowed: {', '.join(cls.keys())}")
        coerced = {}
        for field in dataclasses.fields(cls):
            if field.name in values:
                coerced[field.name] = _coerce(field.name, values[field.name], field.default, where)
        return cls(**coerced).validate(where)

    def replace(self, **changes) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def shortened(self, steps: int) -> "TrainConfig":
        """This config trained ``steps`` steps (a trial run), with eval_every scaled by
        steps / train_steps so that it validates at about the same points of its run, but at most
        about 20 times: max(round(eval_every · steps / train_steps), steps // 20), at least 1 and
        below ``steps``. ``steps >= train_steps`` keeps eval_every."""
        if steps >= self.train_steps:
            return self.replace(train_steps=steps)
        every = max(round(self.eval_every * steps / self.train_steps), steps // 20)
        return self.replace(train_steps=steps, eval_every=max(1, min(steps - 1, every)))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train_lengths"] = list(self.train_lengths)
        return d

    def hash(self) -> str:
        """sha256 of the settings. Keys added after results were first stored leave the hash out
        while they hold their default (``train_data: pool``, ``compile_style: exact``,
        ``compile_scale: 1``), so existing results keep their hash."""
        values = self.to_dict()
        for key, default in _HASHED_ONLY_WHEN_SET.items():
            if values[key] == default:
                del values[key]
        canonical = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def validate(self, where: str = "config") -> "TrainConfig":
        def bad(key, value, allowed):
            raise ConfigError(f"{where}: {key} = {show_value(value)} is not allowed; {allowed}")

        if self.algorithm not in ALGORITHMS:
            bad("algorithm", self.algorithm, f"allowed: {', '.join(ALGORITHMS)}")
        lengths = list(self.train_lengths)
        if not lengths or not all(rules.is_graph_size(n) for n in lengths):
            bad("train_lengths", lengths, f"give one or more graph sizes; {rules.GRAPH_SIZES}")
        if len(set(lengths)) != len(lengths):
            repeated = next(n for i, n in enumerate(lengths) if n in lengths[:i])
            bad("train_lengths", lengths, f"{repeated} is repeated; give each size once")
        if len(lengths) > rules.MAX_TRAIN_LENGTHS:
            bad("train_lengths", lengths, f"it holds {len(lengths)} sizes; at most "
                                          f"{rules.MAX_TRAIN_LENGTHS} are allowed")
        for key, high in INTEGER_BOUNDS.items():
            if not rules.is_integer_in(getattr(self, key), 1, high):
                bad(key, getattr(self, key), rules.integer_range(1, high))
        if self.train_steps > 1 and self.eval_every >= self.train_steps:
            raise ConfigError(
                f"{where}: eval_every = {self.eval_every} with train_steps = {self.train_steps} "
                "validates only at step 0 (validation runs at steps 0, eval_every, 2·eval_every, … "
                "below train_steps), i.e. the network after one training step, so its result "
                f"would be an untrained network's; set eval_every <= {self.train_steps - 1} "
                f"(e.g. {max(1, self.train_steps // 10)})")
        if self.hidden_size % self.nb_heads:
            bad("nb_heads", self.nb_heads, f"it must divide hidden_size ({self.hidden_size})")
        if not (rules.is_finite_number(self.learning_rate)
                and 0 < self.learning_rate <= rules.MAX_LEARNING_RATE):
            bad("learning_rate", self.learning_rate,
                f"it must be a number in (0, {rules.MAX_LEARNING_RATE:g}]")
        if not (rules.is_finite_number(self.grad_clip_max_norm) and self.grad_clip_max_norm >= 0):
            bad("grad_clip_max_norm", self.grad_clip_max_norm,
                "it must be a finite number >= 0 (0: no clipping)")
        if not 0.0 <= self.dropout_prob < 1.0:
            bad("dropout_prob", self.dropout_prob,
                "it must lie in [0, 1) (1 would drop every feature)")
        if not 0.0 <= self.hint_teacher_forcing <= 1.0:
            bad("hint_teacher_forcing", self.hint_teacher_forcing, "it must lie in [0, 1]")
        if not (rules.is_finite_number(self.regularization_weight)
                and self.regularization_weight >= 0):
            bad("regularization_weight", self.regularization_weight,
                "it must be a finite number >= 0")
        for key, allowed in (("hint_mode", HINT_MODES), ("hint_repred_mode", HINT_REPRED_MODES),
                             ("encoder_init", ENCODER_INITS), ("processor_type", PROCESSOR_TYPES),
                             ("init", INITS), ("train_data", TRAIN_DATA)):
            if getattr(self, key) not in allowed:
                bad(key, getattr(self, key), f"allowed: {', '.join(allowed)}")
        if self.init == "compiled":
            problems = compiled_init_problems(self)
            if problems:
                source = ("the hand-built DFS network" if self.algorithm == "dfs"
                          else f"{self.algorithm}'s graph program")
                raise ConfigError(f"{where}: init = 'compiled' starts from the network compiled "
                                  f"from {source}, which needs {'; '.join(problems)}")
        if self.compile_style not in COMPILE_STYLES:
            bad("compile_style", self.compile_style, f"allowed: {', '.join(COMPILE_STYLES)}")
        low, high = COMPILE_SCALE_RANGE
        if not (rules.is_finite_number(self.compile_scale) and low <= self.compile_scale <= high):
            bad("compile_scale", self.compile_scale,
                f"it must be a number in {SCALE_RANGE_TEXT} (1: the style's own constants)")
        if self.init != "compiled":
            for key, default in (("compile_style", "exact"), ("compile_scale", 1.0)):
                if getattr(self, key) != default:
                    raise ConfigError(
                        f"{where}: {key} = {show_value(getattr(self, key))} has no effect with "
                        f"init = {self.init!r} (it sets the constants of the compiled network "
                        "that init: compiled starts from); set init: compiled, or leave "
                        f"{key} out")
        if self.use_lstm:
            bad("use_lstm", True, "the paper's models use no LSTM; only false is supported")
        if self.freeze_processor:
            bad("freeze_processor", True, "only false is supported")
        if self.pool_size is not None and not rules.is_integer_in(self.pool_size, 1,
                                                                   rules.MAX_POOL_SIZE):
            bad("pool_size", self.pool_size,
                f"{rules.integer_range(1, rules.MAX_POOL_SIZE)} (or null for the default)")
        if not rules.is_integer_in(self.data_seed, 0, rules.MAX_SEED):
            bad("data_seed", self.data_seed, rules.integer_range(0, rules.MAX_SEED))
        if self.train_data == "fresh" and self.pool_size is not None:
            raise ConfigError(
                f"{where}: pool_size = {self.pool_size!r} has no effect with train_data = 'fresh' "
                "(every batch is generated fresh; there is no pool); leave pool_size out, or set "
                "train_data: pool")
        # settings that would have no effect: two configurations differing only there would train
        # alike under different config hashes
        if self.hint_teacher_forcing and self.hint_mode != "encoded_decoded":
            raise ConfigError(
                f"{where}: hint_teacher_forcing = {self.hint_teacher_forcing!r} has no effect with "
                f"hint_mode = {self.hint_mode!r} (teacher forcing chooses which hints are fed back "
                "as inputs, and only hint_mode 'encoded_decoded' feeds hints in); set "
                "hint_teacher_forcing: 0 or hint_mode: encoded_decoded")
        if not self.regularization and self.regularization_weight != DEFAULT_REGULARIZATION_WEIGHT:
            raise ConfigError(
                f"{where}: regularization_weight = {self.regularization_weight!r} has no effect with "
                "regularization = false (the weight scales the regularisation term, which is off); "
                "set regularization: true, or leave regularization_weight out")
        if self.length_generalize and max(self.train_lengths) >= self.test_size:
            raise ConfigError(
                f"{where}: length_generalize = true tests at n = {self.test_size}, which is not "
                f"larger than the largest train length ({max(self.train_lengths)} in train_lengths "
                f"= {list(self.train_lengths)}), so the test measures no length generalisation; "
                f"train on sizes below {self.test_size}, or set length_generalize: false (tests at "
                f"n = {IN_DISTRIBUTION_TEST_SIZE})")
        if self.size_tied:
            flags = [k for k in ("use_pre_att_bias", "simplify_decoders") if getattr(self, k)]
            if len(set(self.train_lengths)) != 1:
                raise ConfigError(
                    f"{where}: {' and '.join(flags)} tie parameter shapes to the graph size, so "
                    f"train_lengths must hold one size, not {list(self.train_lengths)} "
                    "(the paper uses train_lengths: [16] with length_generalize: false)")
            if self.test_size != self.train_lengths[0]:
                raise ConfigError(
                    f"{where}: {' and '.join(flags)} tie parameter shapes to the graph size "
                    f"{self.train_lengths[0]}, but the test split has n = {self.test_size} "
                    f"(length_generalize: {str(self.length_generalize).lower()}); set "
                    f"length_generalize: false to test at n = {IN_DISTRIBUTION_TEST_SIZE} and train "
                    f"at that size")
        return self


def _coerce(key: str, value: Any, default: Any, where: str) -> Any:
    """Accept the value if it has the default's type (ints for floats; lists for tuples)."""
    def wrong(expected):
        return ConfigError(f"{where}: {key} = {show_value(value)} has the wrong type; expected {expected}")

    if key == "train_lengths":
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise wrong("a list of integers, e.g. [4, 7, 11, 13, 16]")
        return tuple(value)
    if key == "pool_size":
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise wrong("an integer or null")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        try:
            return float(value)
        except OverflowError:       # an integer too large for a float
            raise ConfigError(f"{where}: {key} = {show_value(value)} is not allowed; it is too "
                              "large for a number (give e.g. 1.0e-4)") from None
    if isinstance(default, str):
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    return value
