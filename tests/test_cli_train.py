"""`gapsweep train --steps`: a short run validates more than step 0, and a result whose best step is
0 (essentially untrained) is flagged."""

import json

from gapsweep.main import main


def test_steps_rescale_eval_every_and_best_step_0_is_flagged(tmp_path, cache_dir, capsys):
    out = tmp_path / "out.json"
    # 3 of Table 9's 10,000 steps: eval_every 50 → 1. A learning rate far below float32's
    # resolution leaves the parameters as they are: no later validation beats step 0's.
    assert main(["train", "--algorithm", "bfs", "--seeds", "0-1", "--steps", "3",
                 "--hidden-size", "8", "--train-lengths", "4", "--pool-size", "64",
                 "--batch-size", "8", "--length-generalize", "false", "--learning-rate", "1.0e-12",
                 "--cache-dir", str(cache_dir), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert (result["config"]["train_steps"], result["config"]["eval_every"]) == (3, 1)
    assert "3 steps (validation every 1)" in printed
    for row in result["seeds"]:
        assert row["val_curve"]["steps"] == [0, 1, 2]
        assert row["best_step"] == 0
    best_steps = [line.split("│")[5].strip() for line in printed.splitlines()
                  if line.startswith("│") and "done" in line]
    assert best_steps == ["0 †", "0 †"]
    assert " †2 over 2 seed(s)" in printed
    assert ("† 2 of 2 seed(s) have best step 0: their best validation was the first, after a "
            "single training step") in printed


def test_eval_every_given_with_steps_wins_and_is_checked(capsys):
    assert main(["train", "--steps", "3", "--eval-every", "3"]) == 2
    assert ("command line: eval_every = 3 with train_steps = 3 validates only at step 0"
            in " ".join(capsys.readouterr().err.split()))
