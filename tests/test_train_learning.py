"""The trainer learns: BFS, hidden 32, 300 steps on CPU, every seed ≥ 95% at n = 64 (CLRS-30 test)."""

import numpy as np

from workers.config import TrainConfig
from workers.train import TrainData, make_train


def test_bfs_learns_to_generalise_to_64_nodes(cache):
    config = TrainConfig(algorithm="bfs", hidden_size=32, learning_rate=3e-3, train_steps=300,
                         eval_every=50, pool_size=1024)
    result = make_train(config, TrainData.from_cache(config, cache))([0, 1, 2, 3])
    assert result.status == ["done"] * 4
    assert np.all(result.test_score >= 0.95), result.test_score
    assert np.all(result.best_val_score >= 0.95), result.best_val_score
    # The validation curve rose from its first evaluation.
    assert np.all(result.val_scores[:, -1] > result.val_scores[:, 0])
