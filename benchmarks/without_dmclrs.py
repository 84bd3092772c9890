"""Run a Python script as though dm-clrs (and TensorFlow) were not installed, as on the GPU machine.

    python benchmarks/without_dmclrs.py benchmarks/step_cost.py --hidden 4 --population none
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
        raise SystemExit("usage: without_dmclrs.py SCRIPT [ARGS…]")
    for name in BLOCKED:
        sys.modules[name] = None        # import raises ImportError (ModuleNotFoundError)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = str(Path(script).resolve().parent)       # as `python SCRIPT` would have it
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
    import workers.data.cache as cache   # imports neither dm-clrs nor TensorFlow

    cache.dmclrs_version = lambda: None
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
