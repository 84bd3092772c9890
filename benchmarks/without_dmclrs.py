"""Run a Python script as though dm-clrs (and TensorFlow) were not installed, as on the GPU machine.

    python benchmarks/without_dmclrs.py benchmarks/step_cost.py --hidden 4 --population none
    python benchmarks/without_dmclrs.py -c "import clrs"          # ModuleNotFoundError
    PYTHON="python benchmarks/without_dmclrs.py" bash benchmarks/gpu_check.sh --smoke

``import clrs`` and ``import tensorflow`` raise ImportError, and the data cache finds its entries as
a machine without dm-clrs does (by their manifests, ``workers.data.cache``): a missing entry is
an error there, not a build. Everything else runs unchanged (``runpy``, as ``__main__``).
"""

import runpy
import sys
from pathlib import Path

BLOCKED = ("clrs", "tensorflow")


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: without_dmclrs.py SCRIPT [ARGS…] | -c CODE [ARGS…]")
    for name in BLOCKED:
        sys.modules[name] = None        # import raises ImportError (ModuleNotFoundError)
    code = sys.argv[2] if sys.argv[1] == "-c" else None
    script = sys.argv[1]
    sys.argv = ["-c", *sys.argv[3:]] if code is not None else sys.argv[1:]
    # sys.path[0] as `python SCRIPT` (its folder) or `python -c` (the working directory) has it
    sys.path[0] = "" if code is not None else str(Path(script).resolve().parent)
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
    import workers.data.cache as cache   # imports neither dm-clrs nor TensorFlow

    cache.dmclrs_version = lambda: None
    if code is not None:
        exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
    else:
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
