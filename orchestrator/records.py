"""A worker's ``TaskOutput`` → the results database's ``RunResult`` rows, one per seed.

Curves recorded per seed: ``val/val_score`` and ``train/train_loss`` against the training step of
each evaluation; ``test/hint_acc/<hint>`` against the hint step of the test rollout. The ``best``
snapshot is the seed's best-validation parameters (the ones its test score was measured with);
``init: compiled`` runs also keep their compiled start (kind ``compiled``). A seed's
``wall_seconds`` is its population's training time (the seeds of a population train together);
its ``canary`` columns are its task's numerical canary (``workers.canary``).
"""

from __future__ import annotations

import numpy as np

from db.store import Curve, RunResult
from workers.task_output import TaskOutput


def run_results(output: TaskOutput, run_ids: dict[int, int]) -> list[tuple[int, RunResult]]:
    """(seed, RunResult) for every seed of the population; ``run_ids`` maps seed → runs.id."""
    r = output.result
    steps = np.asarray(r.eval_steps)
    records = []
    for i, seed in enumerate(np.asarray(r.seeds).tolist()):
        curves = [Curve("val", "val_score", steps, r.val_scores[i]),
                  Curve("train", "train_loss", steps, r.train_loss[i])]
        curves += [Curve("test", f"hint_acc/{hint}", np.arange(acc.shape[1]), acc[i])
                   for hint, acc in sorted(r.hint_accuracy.items())]
        diverged = int(r.diverged_step[i])
        canary = r.canary
        records.append((seed, RunResult(
            run_id=run_ids[seed], status=r.status[i], test_score=float(r.test_score[i]),
            best_val_score=float(r.best_val_score[i]), best_step=int(r.best_step[i]),
            final_step=int(r.final_step), diverged_step=diverged if diverged >= 0 else None,
            wall_seconds=output.train_seconds, worker_host=output.host,
            device=output.device, started_at=output.started_at, finished_at=output.finished_at,
            canary=canary.outcome if canary else None,
            canary_deviation=canary.max_deviation if canary else None,
            canary_seconds=canary.seconds if canary else None,
            curves=curves, snapshots=snapshots_of(r, i))))
    return records


def snapshots_of(r, i: int) -> dict:
    """Seed i's parameter snapshots: its best, and the compiled start of ``init: compiled`` runs."""
    snaps = {"best": r.seed(i)}
    if r.initial_params is not None:
        snaps["compiled"] = r.initial_params
    return snaps
