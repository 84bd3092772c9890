"""The one owner of Ray in the driver: sessions, the GPU check, worker environments, and the one
path by which a task is submitted (training populations and analyses alike).

    with ray_session(address):                       # attach, or start a local Ray; shut down at
        check_gpus(1.0, "each training task")        # the end only if started here
        ref = submit(function, args, name="sweep/bfs/0", cpus=1, gpus=1)

    for index, result in run_on_workers(calls, cpus=1, gpus=0): ...   # calls as Ray tasks
    for index, result in run_here(calls): ...                         # the same, in this process
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from typing import Any, Callable, Iterator, Sequence

from orchestrator.interrupts import interruptible
from orchestrator.probes import probe_ray
from workers import xla_flags
from workers.errors import GapsweepError


class SchedulingError(GapsweepError, RuntimeError):
    """Work that cannot be scheduled as asked (no cluster there, GPUs the cluster does not have)."""


def start_local_ray() -> None:
    """A new in-process Ray instance on this machine's resources. ``address="local"``: never a
    cluster whose address ``ray start`` left in Ray's temporary directory (``ray.init()`` would
    connect to it, and wait and fail if it has stopped since)."""
    import ray

    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False, configure_logging=False)


def connect_ray(address: str | None) -> None:
    """Attach to the cluster at ``address``, else start a new local Ray instance."""
    import ray

    if address:
        probe_ray(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except ConnectionError as error:
            raise SchedulingError(f"no Ray cluster at --address {address!r} ({error}); start one "
                                  "(e.g. gapsweep stack up) or leave --address out to run "
                                  "locally") from None
    else:
        start_local_ray()


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Ray for the ``with`` block: the instance this process already has, else the cluster at
    ``address``, else a new local one; shut down at the end only if started here."""
    import ray

    if ray.is_initialized():
        yield
        return
    connect_ray(address)
    try:
        yield
    finally:
        if not address:
            _stop_autoscaler_monitor()
        ray.shutdown()


def _stop_autoscaler_monitor() -> None:
    """SIGKILL the local instance's autoscaler monitor before ``ray.shutdown``: it holds nothing,
    but answers ``ray.shutdown``'s SIGTERM only after the full second that shutdown then waits
    (measured: 1.0 s of its 1.5 s on a 2-core machine), a second added to every exit, Ctrl-C
    included. Ray's own bookkeeping (private; skipped if it changes) names the process."""
    import ray

    node = getattr(getattr(ray, "_private", None) and ray._private.worker, "_global_node", None)
    for info in (getattr(node, "all_processes", None) or {}).get("monitor", []):
        with contextlib.suppress(Exception):
            info.process.kill()
            info.process.wait(1.0)


def check_gpus(gpus: float, what: str) -> None:
    """Refuse work whose every task (``what``, e.g. "each training task") asks for more GPUs than
    the current Ray cluster has, saying how to run it instead."""
    import ray

    available = ray.cluster_resources().get("GPU", 0)
    if gpus > 0 and available < gpus:
        raise SchedulingError(
            f"{what} asks for {gpus:g} GPU(s) (resources.gpus of the sweep, or --gpus) but the "
            f"Ray cluster has {available:g}; run on a GPU machine or cluster, or pass --gpus 0 to "
            "run on CPUs")


def check_cpus(cpus: float, what: str) -> None:
    """Refuse work whose every task asks for more CPUs than the current Ray cluster has: Ray would
    keep such a task waiting for ever (an infeasible task), with no output."""
    import ray

    available = ray.cluster_resources().get("CPU", 0)
    if available < cpus:
        raise SchedulingError(
            f"{what} asks for {cpus:g} CPU(s) (resources.cpus of the sweep) but the Ray cluster "
            f"has {available:g}; lower resources.cpus to at most {available:g}, or run on a larger "
            "cluster")


def worker_env(gpus: float) -> dict[str, str]:
    """Environment of a worker task: the project's XLA flags merged with the driver's
    (``workers.xla_flags``); CPU-only JAX for gpus = 0; for a fraction of a GPU, JAX's allocator
    preallocates only that fraction (so tasks sharing a card do not starve each other)."""
    env = {"TF_CPP_MIN_LOG_LEVEL": "2",
           xla_flags.ENV: xla_flags.merged(os.environ.get(xla_flags.ENV))}
    if gpus <= 0:
        env["JAX_PLATFORMS"] = "cpu"
    elif gpus < 1:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 * gpus:.3f}"
    return env


def _call(function: Callable, args: tuple, kwargs: dict):
    return function(*args, **kwargs)


def submit(function: Callable, args: tuple = (), kwargs: dict | None = None, *, name: str,
           cpus: float = 1, gpus: float = 0, max_retries: int = 0):
    """``function(*args, **kwargs)`` as a Ray task on the current Ray instance with ``cpus`` /
    ``gpus`` and :func:`worker_env`; a worker that dies is retried up to ``max_retries`` times,
    an exception in the function never is. Returns the task's object ref."""
    return _remote_call().options(
        num_cpus=cpus, num_gpus=gpus, max_retries=max_retries, retry_exceptions=False, name=name,
        runtime_env={"env_vars": worker_env(gpus)}).remote(function, args, kwargs or {})


_REMOTE_CALL = None


def _remote_call():
    """``_call`` as one Ray remote function for the process: made anew for every task, Ray
    exported (pickled and stored) it again each time, 18 ms a task on 2 cores (1,600 tasks of a
    102,400-seed sweep: ~30 s of the driver's time). Ray exports it once per Ray session."""
    global _REMOTE_CALL
    if _REMOTE_CALL is None:
        import ray

        _REMOTE_CALL = ray.remote(_call)
    return _REMOTE_CALL


@dataclasses.dataclass(frozen=True)
class WorkerCall:
    """One function call for a worker: ``function(*args, **kwargs)``; ``name`` labels its task."""

    name: str
    function: Callable
    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)


def run_on_workers(calls: Sequence[WorkerCall], *, cpus: float = 1, gpus: float = 0,
                   max_attempts: int = 3) -> Iterator[tuple[int, Any]]:
    """Each call as a Ray task (:func:`submit`) on the current Ray instance; yields ``(index,
    result)`` as they finish. A task whose worker dies is retried, up to ``max_attempts``
    attempts in all; an exception in the function is raised here, and the tasks still running
    are cancelled (as on Ctrl-C)."""
    import ray

    pending = {submit(call.function, call.args, call.kwargs, name=call.name, cpus=cpus, gpus=gpus,
                      max_retries=max_attempts - 1): index for index, call in enumerate(calls)}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                yield index, ray.get(ref)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def run_here(calls: Sequence[WorkerCall]) -> Iterator[tuple[int, Any]]:
    """:func:`run_on_workers`'s counterpart in this process, one call after the other (each in
    a worker thread: Ctrl-C acts even while XLA compiles, ``interrupts.interruptible``)."""
    for index, call in enumerate(calls):
        yield index, interruptible(call.function, *call.args, **call.kwargs)
