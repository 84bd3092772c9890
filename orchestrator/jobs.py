"""Sweeps as Ray jobs (the Ray Job Submission API): submit one, read its state and its output.

    job_id = submit_sweep("sweeps/quickstart.yaml", "http://HEAD:8265", SweepJob(steps=100))
    job_info(job_id, "http://HEAD:8265").status
    for text in follow_logs(job_id, "http://HEAD:8265"): ...

A job runs ``gapsweep run SWEEP.yaml --address auto`` on the cluster's head with the sweep file in
its working directory; the cluster needs gapsweep installed. The client sends the cluster's token
itself when ``RAY_AUTH_MODE=token`` (see :func:`job_client`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shlex
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from db.engine import resolve_url
from orchestrator.plan import make_plan
from orchestrator.probes import probe_dashboard
from orchestrator.spec import load_spec
from workers.errors import GapsweepError

AGENT_WAIT_S = 90.0
DEFAULT_RUN_DIR = "$HOME/gapsweep/runs"


class JobError(GapsweepError):
    """A job that cannot be submitted as asked; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class SweepJob:
    """The ``gapsweep run`` options a submitted sweep runs with on the cluster."""

    steps: int | None = None
    max_seeds: int | None = None
    population: int | None = None
    gpus: float | None = None
    db: str | None = None
    mlflow: str | None = None
    retry_failed: bool = False
    run_dir: str = DEFAULT_RUN_DIR

    def entrypoint(self, sweep_file: str) -> str:
        """The job's shell command: ``GAPSWEEP_RUN_DIR=… gapsweep run FILE --address auto …``."""
        command = ["gapsweep", "run", sweep_file, "--address", "auto"]
        for flag, value in (("--steps", self.steps), ("--max-seeds", self.max_seeds),
                            ("--population", self.population), ("--gpus", self.gpus),
                            ("--db", self.db), ("--mlflow", self.mlflow)):
            if value is not None:
                command += [flag, str(value)]
        if self.retry_failed:
            command.append("--retry-failed")
        run_dir = self.run_dir.replace("$HOME", "${HOME}")
        return f'GAPSWEEP_RUN_DIR="{run_dir}" ' + " ".join(shlex.quote(c) for c in command)


def job_client(address: str):
    """A Job Submission client that sends the cluster's token itself when ``RAY_AUTH_MODE=token``
    (from ``RAY_AUTH_TOKEN`` or the file ``RAY_AUTH_TOKEN_PATH``): Ray reads its authentication
    mode once per process, so a process that already used a local Ray would otherwise go without."""
    from ray.job_submission import JobSubmissionClient

    probe_dashboard(address)
    headers = None
    if os.environ.get("RAY_AUTH_MODE") == "token":
        token = os.environ.get("RAY_AUTH_TOKEN")
        path = os.environ.get("RAY_AUTH_TOKEN_PATH")
        if not token and path and os.path.exists(path):
            token = Path(path).read_text().strip()
        if token:
            headers = {"Authorization": f"Bearer {token}"}
    try:
        return JobSubmissionClient(address, headers=headers)
    except ConnectionError as error:
        raise JobError(f"the Ray dashboard at --address {address} refused the job client "
                       f"({str(error).strip().splitlines()[0]})") from None


def submit_job(client, *, wait: float = AGENT_WAIT_S,
               on_wait: Callable[[str], None] | None = None, **job) -> str:
    """``client.submit_job(**job)``, waiting up to ``wait`` seconds while the head answers that
    no job agent is available yet (a head that has just started: its dashboard answers before the
    node's agent has registered); ``on_wait(error text)`` hears of each wait."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as error:
            if "No available agent" not in str(error) or time.monotonic() > deadline:
                raise
            if on_wait is not None:
                on_wait(str(error))
            time.sleep(1.0)


def submit_sweep(sweep_path: str | Path, address: str, options: SweepJob = SweepJob(),
                 on_wait: Callable[[str], None] | None = None) -> tuple[str, str]:
    """Validate the sweep here (its file and plan), then submit it as a job; ``(job id, sweep
    name)``. A ``--db`` URL with a password is refused: the job's command line is visible in the
    Ray dashboard."""
    plan = make_plan(load_spec(sweep_path), steps=options.steps, max_seeds=options.max_seeds)
    if options.db is not None and resolve_url(options.db).password:
        raise JobError("--db holds a password, which would be visible in the Ray job's command "
                       "line; put it in PGPASSWORD or ~/.pgpass on the cluster and give the URL "
                       "without it")
    sweep_path = Path(sweep_path)
    with tempfile.TemporaryDirectory(prefix="gapsweep-submit-") as work:
        (Path(work) / sweep_path.name).write_text(sweep_path.read_text())
        job_id = submit_job(job_client(address), on_wait=on_wait,
                            entrypoint=options.entrypoint(sweep_path.name),
                            runtime_env={"working_dir": work},
                            metadata={"gapsweep_sweep": plan.sweep_name})
    return job_id, plan.sweep_name


def job_info(job_id: str, address: str):
    """Ray's ``JobDetails`` of a job (``.status``, ``.message``)."""
    return job_client(address).get_job_info(job_id)


def job_logs(job_id: str, address: str) -> str:
    """The job's output so far."""
    return job_client(address).get_job_logs(job_id)


def follow_logs(job_id: str, address: str) -> Iterator[str]:
    """The job's output as it comes, until the job ends."""
    stream = job_client(address).tail_job_logs(job_id).__aiter__()
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.close()
