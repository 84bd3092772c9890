"""The numerical canary: a vmapped program's first and last lanes against the same inputs computed
alone, before any result of it is trusted.

Every number this project reports is a distribution over seeds computed inside one vmapped
program, so a compiler that gets some lanes of a vmap wrong (XLA:CPU's YNNPACK reduction fusion
did, silently: ``workers/xla_flags.py``) corrupts whole tables without an error. Each training
task therefore runs its real compiled step once at its largest padded shape for the whole
population and once for its first and for its last seed alone, and compares the loss and the
gradient norm (``workers.train``); the analyses compare their first and last networks the same way
(``workers.analysis.analysis_task``). A mismatch raises :class:`NumericalCanaryError`: the task fails at
once, is never retried and records nothing.

Tolerance. A lane and the same seed alone compute the same float32 expression, but XLA compiles
them as different programs (other fusions, tilings, summation orders), so they may differ by
rounding. Blocked or pairwise float32 summation of N terms in another order moves a sum by about
``log2(N) · 2^-24`` of its magnitude: ~1.2e-6 for the ~10^6 terms the loss and the gradient norm
sum here (batch × hint steps × nodes² × hidden), 8× below ``RELATIVE_TOLERANCE`` = 1e-5.
Measured on a 2-core AMD EPYC, XLA:CPU: 0 to 1.2e-7 (BFS, Bellman-Ford, DFS; hidden 16 and 128);
the miscompile this guards against was 3e-4 to 0.23. ``ABSOLUTE_TOLERANCE`` covers values near
zero (a compiled network's loss is ~1e-16), where relative differences mean nothing. A backend
whose rounding differs by more (none seen yet) can widen the relative tolerance with
``GAPSWEEP_CANARY_TOLERANCE`` (e.g. 1e-4): the failure message says so.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
from typing import Mapping

import numpy as np

from workers.errors import GapsweepError

TOLERANCE_ENV = "GAPSWEEP_CANARY_TOLERANCE"
RELATIVE_TOLERANCE = 1e-5
ABSOLUTE_TOLERANCE = 1e-6


def relative_tolerance() -> float:
    """``RELATIVE_TOLERANCE``, or ``$GAPSWEEP_CANARY_TOLERANCE`` where set."""
    value = os.environ.get(TOLERANCE_ENV)
    if not value:
        return RELATIVE_TOLERANCE
    try:
        tolerance = float(value)
    except ValueError:
        tolerance = -1.0
    if not 0 < tolerance < 1:
        raise ValueError(f"{TOLERANCE_ENV} = {value!r} is not allowed; give a relative tolerance "
                         f"in (0, 1), e.g. 1e-4 (default {RELATIVE_TOLERANCE:g})")
    return tolerance


class NumericalCanaryError(GapsweepError, RuntimeError):
    """A vmapped program's lane disagrees with the same computation done alone (a compiler bug:
    the task's results cannot be trusted and none are recorded)."""


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The processor's model name (Linux: /proc/cpuinfo), e.g. 'AMD EPYC'; '' where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def environment() -> dict[str, str]:
    """Where a computation ran: backend, device kind (the CPU model on CPUs), jax and jaxlib
    versions, XLA_FLAGS."""
    # inside the function: the report types above stay importable without JAX
    import jax
    import jaxlib

    device = jax.devices()[0]
    kind = (cpu_model() or device.device_kind) if device.platform == "cpu" else device.device_kind
    return {"backend": device.platform, "device_kind": kind, "jax": jax.__version__,
            "jaxlib": jaxlib.__version__, "xla_flags": os.environ.get("XLA_FLAGS", "")}


@dataclasses.dataclass(frozen=True)
class CanaryReport:
    """The outcome of one canary check (recorded with every run of the task)."""

    program: str                      # e.g. "training step"
    shape: str                        # what it ran on, for people
    population: int                   # lanes of the vmapped program
    lanes: tuple[int, ...]            # lanes compared with the same seed alone
    max_deviation: float              # largest |together − alone| / max(|together|, |alone|)
    seconds: float
    environment: dict

    @property
    def outcome(self) -> str:
        """'passed', or 'single' for a population of one (no other lane to compare it with); a
        failed check raises instead of reporting."""
        return "passed" if self.population > 1 else "single"

    def summary(self) -> str:
        if self.outcome == "single":
            return f"{self.program}: population 1, nothing to compare ({self.seconds:.1f} s)"
        return (f"{self.program}: lanes {', '.join(map(str, self.lanes))} of {self.population} "
                f"equal each seed alone (largest relative difference {self.max_deviation:.1e}, "
                f"{self.seconds:.1f} s)")


def _deviation(a: float, b: float, tolerance: float) -> tuple[float, bool]:
    """(relative difference, within tolerance) of two scalars; NaN/inf only match themselves."""
    if not (np.isfinite(a) and np.isfinite(b)):
        same = (np.isnan(a) and np.isnan(b)) or a == b
        return (0.0 if same else float("inf")), bool(same)
    diff = abs(a - b)
    scale = max(abs(a), abs(b))
    relative = diff / scale if scale > 0 else 0.0
    return relative, diff <= ABSOLUTE_TOLERANCE + tolerance * scale


def compare_lanes(program: str, shape: str, together: Mapping[str, np.ndarray],
                  alone: Mapping[int, Mapping[str, np.ndarray]], seconds: float,
                  labels: Mapping[int, str] | None = None) -> CanaryReport:
    """Check ``together[quantity][lane] == alone[lane][quantity]`` for every compared lane and
    quantity (e.g. loss, gradient norm; a scalar or an array per lane), element by element; raise
    :class:`NumericalCanaryError` naming the first that differs, else return the report.
    ``labels`` name the lanes for people (e.g. "seed 31")."""
    population = int(len(np.asarray(next(iter(together.values())))))
    env = environment()
    tolerance = relative_tolerance()
    worst = 0.0
    for lane, values in sorted(alone.items()):
        for quantity, value in values.items():
            vmapped = np.asarray(together[quantity], np.float64)[lane].ravel()
            single = np.asarray(value, np.float64).ravel()
            for element, (a, b) in enumerate(zip(vmapped, single, strict=True)):
                deviation, ok = _deviation(float(a), float(b), tolerance)
                if not ok:
                    who = (labels or {}).get(lane, f"lane {lane}")
                    where = f"{quantity}[{element}]" if len(single) > 1 else quantity
                    raise NumericalCanaryError(
                        f"numerical canary failed: the vmapped {program} ({shape}, population "
                        f"{population}) gives {who} (lane {lane}) {where} {a:.9g}, but the same "
                        f"computed alone gives {b:.9g} (relative difference {deviation:.2e}; "
                        f"float32 rounding stays below {tolerance:g}). The compiler "
                        f"miscomputes this program on backend {env['backend']} "
                        f"({env['device_kind']}), jax {env['jax']} / jaxlib {env['jaxlib']}, "
                        f"XLA_FLAGS={env['xla_flags']!r}: nothing of this task is recorded. See "
                        "workers/xla_flags.py; on XLA:CPU, XLA_FLAGS must include "
                        "--xla_cpu_experimental_ynn_fusion_type= (gapsweep sets it unless "
                        f"XLA_FLAGS names that flag). Only if this backend's rounding is known to "
                        f"differ by more: {TOLERANCE_ENV}=1e-4.")
                worst = max(worst, deviation)
    return CanaryReport(program, shape, population, tuple(sorted(alone)), worst, seconds, env)
