"""What a training task returns, in plain NumPy: ``PopulationResult`` (per-seed results of one
population) inside ``TaskOutput`` (with where and when it ran). Kept free of JAX so that what
only moves results (the driver's conversion, ``workers.synthetic``, a Ray worker of a simulated
sweep) does not import JAX and the model (~2.8 s and ~150 MB a process)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from workers.canary import CanaryReport


def _tree_map(function, tree, *rest):
    """``jax.tree_util.tree_map`` over the nested dicts (and lists/tuples) of NumPy arrays that
    parameter snapshots are."""
    if isinstance(tree, dict):
        return {k: _tree_map(function, v, *(r[k] for r in rest)) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tree_map(function, v, *(r[i] for r in rest)) for i, v in enumerate(tree))
    if tree is None:
        return None
    return function(tree, *rest)


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
        return _tree_map(lambda x: x[index], self.best_params)

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
            best_params=_tree_map(lambda *x: cat(x), *[p.best_params for p in parts]),
            initial_params=parts[0].initial_params, canary=parts[0].canary,
        )


@dataclasses.dataclass
class TaskOutput:
    result: PopulationResult
    host: str
    device: str                 # e.g. "cpu" or "NVIDIA H100 80GB HBM3"
    pid: int
    started_at: dt.datetime
    finished_at: dt.datetime
    data_seconds: float         # reading (or building) the data
    train_seconds: float        # training, compilation included
