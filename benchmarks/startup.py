"""Start-up time of light commands, as a user meets it: a new process each time.

    python benchmarks/startup.py [--runs 11]

Prints, per command, the median and range of wall time over the runs, beside the bare
interpreter (`python -c pass`) and `python -c "import jax"` (what every command paid before the
command layer imported its engine lazily), as ratios. Commands run against a fresh run directory
with a migrated, empty SQLite database; `stack env` finds no stack (one error line, exit 2),
which is the path that matters for start-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import jax'": [sys.executable, "-c", "import jax"],
    "gapsweep --help": [sys.executable, "-m", "gapsweep", "--help"],
    "gapsweep status": [sys.executable, "-m", "gapsweep", "status"],
    "gapsweep stack env": [sys.executable, "-m", "gapsweep", "stack", "env"],
    "gapsweep plan sweeps/quickstart.yaml": [sys.executable, "-m", "gapsweep", "plan",
                                             "sweeps/quickstart.yaml"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as run_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GAPSWEEP_", "MLFLOW_"))}
        env["GAPSWEEP_RUN_DIR"] = run_dir
        subprocess.run([sys.executable, "-m", "gapsweep", "db", "upgrade"], env=env, cwd=root,
                       check=True, capture_output=True)
        base = None
        print(f"{'command':40s} {'median s':>9s} {'min':>7s} {'max':>7s} {'× python':>9s}")
        for name, command in COMMANDS.items():
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                subprocess.run(command, env=env, cwd=root, capture_output=True)
                times.append(time.perf_counter() - start)
            median = statistics.median(times)
            base = base or median
            print(f"{name:40s} {median:9.3f} {min(times):7.3f} {max(times):7.3f} "
                  f"{median / base:9.1f}")


if __name__ == "__main__":
    main()
