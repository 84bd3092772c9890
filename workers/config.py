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
from workers.data.requests import ALGORITHMS, CLRS30_TEST
from workers import rules
from workers.errors import GapsweepError

HINT_MODES = ("encoded_decoded", "decoded_only", "none")
HINT_REPRED_MODES = ("soft",)
ENCODER_INITS = ("xavier_on_scalars", "default")
PROCESSOR_TYPES = ("gatv2",)
INITS = ("random", "compiled")
IN_DISTRIBUTION_TEST_SIZE = 16


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
    regularization_weight: float = 1e-4
    # this project's settings
    pool_size: int | None = None          # graphs per train length; None: enough to see each once
    data_seed: int = 1                    # the train pools' seed (shared by every seed of a sweep)
    init: str = "random"                  # or "compiled": start from the compiled program

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
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def validate(self, where: str = "config") -> "TrainConfig":
        def bad(key, value, allowed):
            raise ConfigError(f"{where}: {key} = {value!r} is not allowed; {allowed}")

        if self.algorithm not in ALGORITHMS:
            bad("algorithm", self.algorithm, f"allowed: {', '.join(ALGORITHMS)}")
        if not self.train_lengths or any(n < 2 for n in self.train_lengths):
            bad("train_lengths", list(self.train_lengths), "give one or more graph sizes >= 2")
        for key in ("batch_size", "train_steps", "eval_every", "test_every", "hidden_size",
                    "nb_heads", "nb_msg_passing_steps"):
            if not rules.is_positive_integer(getattr(self, key)):
                bad(key, getattr(self, key), rules.POSITIVE_INTEGER)
        if self.train_steps > 1 and self.eval_every >= self.train_steps:
            raise ConfigError(
                f"{where}: eval_every = {self.eval_every} with train_steps = {self.train_steps} "
                "validates only at step 0 (validation runs at steps 0, eval_every, 2·eval_every, … "
                "below train_steps), i.e. the network after one training step, so its result "
                f"would be an untrained network's; set eval_every <= {self.train_steps - 1} "
                f"(e.g. {max(1, self.train_steps // 10)})")
        if self.hidden_size % self.nb_heads:
            bad("nb_heads", self.nb_heads, f"it must divide hidden_size ({self.hidden_size})")
        if not self.learning_rate > 0:
            bad("learning_rate", self.learning_rate, "it must be > 0")
        if self.grad_clip_max_norm < 0:
            bad("grad_clip_max_norm", self.grad_clip_max_norm, "it must be >= 0 (0: no clipping)")
        for key in ("dropout_prob", "hint_teacher_forcing"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                bad(key, getattr(self, key), "it must lie in [0, 1]")
        if self.regularization_weight < 0:
            bad("regularization_weight", self.regularization_weight, "it must be >= 0")
        for key, allowed in (("hint_mode", HINT_MODES), ("hint_repred_mode", HINT_REPRED_MODES),
                             ("encoder_init", ENCODER_INITS), ("processor_type", PROCESSOR_TYPES),
                             ("init", INITS)):
            if getattr(self, key) not in allowed:
                bad(key, getattr(self, key), f"allowed: {', '.join(allowed)}")
        if self.init == "compiled":
            problems = compiled_init_problems(self)
            if problems:
                raise ConfigError(f"{where}: init = 'compiled' starts from the network compiled "
                                  f"from {self.algorithm}'s graph program, which needs "
                                  f"{'; '.join(problems)}")
        if self.use_lstm:
            bad("use_lstm", True, "the paper's models use no LSTM; only false is supported")
        if self.freeze_processor:
            bad("freeze_processor", True, "only false is supported")
        if self.pool_size is not None and not rules.is_positive_integer(self.pool_size):
            bad("pool_size", self.pool_size, f"{rules.POSITIVE_INTEGER} (or null for the default)")
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
        return ConfigError(f"{where}: {key} = {value!r} has the wrong type; expected {expected}")

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
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    return value
