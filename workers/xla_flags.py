"""XLA flags that every process of this project sets before JAX's backend starts.

jaxlib 0.8.1 and later (measured on 0.10.2) let XLA:CPU hand reductions to YNNPACK fusions
(``__ynn_fusion`` in the compiled HLO). Vmapped over a population, the masked pointer-hint loss
(``sum(one_hot(truth) * log_softmax(logits))`` masked by the trace lengths) comes out wrong once
the vmapped reduction covers more than about 2^15 rows: on a 2-core AMD EPYC, at 6 hint steps
lanes 25 and up were off by up to 4.5% (relative), at 12 steps from lane 11, at 48 steps (DFS at
n = 16) from lane 2; the same sums without vmap were right. ``tests/test_numerics.py`` holds the
standalone repro. ``--xla_cpu_experimental_ynn_fusion_type=`` (an empty list) turns every YNNPACK
fusion off; with it the repro is exact at every shape tried and a training step costs the same
(within noise) on that machine.

:func:`apply` adds the flag to ``XLA_FLAGS``, merged with whatever the user set: a flag the user
names keeps the user's value (``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=reduce`` forces
the fusion back on, e.g. to show the bug). It runs when ``workers`` (and so ``orchestrator``) is
imported, so the CLI, Ray workers, analysis tasks, benchmarks, the tests and a Python session that
imports the project all get it. XLA reads ``XLA_FLAGS`` once, when JAX's backend starts: if that
has already happened without the flag, :func:`apply` leaves the environment alone (JAX's
persistent compilation cache keys entries on ``XLA_FLAGS``, so changing it afterwards would file
executables compiled with the fusion under the key of ones without) and warns. The training
canary (``workers/canary.py``) catches a miscompile of this kind either way.

Flags are only added where the installed jaxlib knows them: XLA aborts the process on an unknown
flag.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from importlib import metadata

log = logging.getLogger(__name__)

ENV = "XLA_FLAGS"

# flag → (value, the first jaxlib version that knows the flag)
PROJECT_FLAGS: dict[str, tuple[str, tuple[int, ...]]] = {
    "--xla_cpu_experimental_ynn_fusion_type": ("", (0, 8, 1)),
}


def _version_tuple(text: str) -> tuple[int, ...]:
    """'0.10.2' → (0, 10, 2); release parts only ('0.9.0.1' → (0, 9, 0, 1), '0.10.2rc1' and
    '0.10.2.dev2026' → (0, 10, 2))."""
    parts = []
    for piece in text.split("."):
        digits = re.match(r"\d*", piece).group()
        if not digits:
            break
        parts.append(int(digits))
        if digits != piece:
            break
    return tuple(parts)


def installed_jaxlib() -> tuple[int, ...] | None:
    """The installed jaxlib's version, without importing it (None where it is not installed)."""
    try:
        return _version_tuple(metadata.version("jaxlib"))
    except metadata.PackageNotFoundError:
        return None


def flag_name(token: str) -> str:
    """``--name=value`` → ``--name`` (XLA accepts ``-name`` too: normalised to two dashes)."""
    name = token.split("=", 1)[0]
    return "--" + name.lstrip("-")


def project_flags(jaxlib_version: tuple[int, ...] | None = None) -> list[str]:
    """The flags this project sets, as ``--name=value`` tokens, for the given (default: the
    installed) jaxlib."""
    version = installed_jaxlib() if jaxlib_version is None else jaxlib_version
    if version is None:
        return []
    return [f"{name}={value}" for name, (value, since) in PROJECT_FLAGS.items()
            if version >= since]


def merged(user_flags: str | None, ours: list[str] | None = None) -> str:
    """``user_flags`` with the project's flags added where the user does not name them."""
    ours = project_flags() if ours is None else ours
    tokens = (user_flags or "").split()
    named = {flag_name(t) for t in tokens}
    return " ".join([*tokens, *(t for t in ours if flag_name(t) not in named)])


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge  # JAX only once it is loaded (checked above)

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # noqa: BLE001 - a private API: assume started if it cannot be asked
        return True


def apply() -> str:
    """Set ``XLA_FLAGS`` to :func:`merged` (before JAX's backend starts); returns its value."""
    current = os.environ.get(ENV)
    wanted = merged(current)
    if wanted == (current or ""):
        return wanted
    if _backend_started():
        missing = sorted(set(wanted.split()) - set((current or "").split()))
        warnings.warn(
            f"JAX's backend started before gapsweep could set {ENV} ({' '.join(missing)}): on "
            "XLA:CPU vmapped losses can be miscomputed (see workers/xla_flags.py). Import "
            "gapsweep's packages (workers, orchestrator) before running any JAX computation, or "
            f"set {ENV}='{wanted}' before starting Python.", RuntimeWarning, stacklevel=2)
        return current or ""
    os.environ[ENV] = wanted
    return wanted


def fusion_disabled(flags: str | None = None) -> bool:
    """Whether ``flags`` (default: this process's ``XLA_FLAGS``) turn every YNNPACK fusion off."""
    flags = os.environ.get(ENV, "") if flags is None else flags
    values = [t.split("=", 1)[1] if "=" in t else "" for t in flags.split()
              if flag_name(t) == "--xla_cpu_experimental_ynn_fusion_type"]
    return bool(values) and values[-1] == ""
