"""Every benchmark script imports and parses its arguments (``--help``): a renamed or removed
name breaks them at import, and nothing else runs them on a CPU-only CI."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name != "without_dmclrs.py")

_RUN_ALL = """
import runpy, sys
failed = []
for script in sys.argv[1:]:
    sys.argv = [script, "--help"]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (0, None):
            failed.append(f"{script}: exit {stop.code}")
    except BaseException as err:  # noqa: BLE001 - report every script
        failed.append(f"{script}: {type(err).__name__}: {err}")
print("FAILED", failed) if failed else print("ALL OK")
"""


def test_every_benchmark_script_imports_and_answers_help():
    assert len(SCRIPTS) >= 10
    proc = subprocess.run([sys.executable, "-c", _RUN_ALL, *map(str, SCRIPTS)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0 and "ALL OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
