"""Sweeps as Ray jobs (the Ray Job Submission API): submit one, read its state, its output and
where its results went.

    submitted = submit_sweep("sweeps/quickstart.yaml", "http://HEAD:8265", SweepJob(steps=100))
    submitted.job_id, submitted.db            # the job, and the results database it records in
    job_info(submitted.job_id, "http://HEAD:8265").status
    for text in follow_logs(submitted.job_id, "http://HEAD:8265"): ...
    sweep, url = results_location(job_id, job_info(job_id, address).metadata)

Before the sweep, a short check job runs ``gapsweep version --json`` on the head, with the runtime
environment and ``GAPSWEEP_RUN_DIR`` the sweep's job will have: a head that cannot run gapsweep
(not on its PATH, imports failing) or runs another gapsweep version is refused, and nothing is
submitted. The sweep's job then runs ``gapsweep run SWEEP.yaml --address auto`` with the sweep
file in its working directory; its metadata names the sweep, the results database and tracking
URI it records in and the head's host, so ``status``/``runs``/``report --job ID`` find them. The
client sends the cluster's token itself when ``RAY_AUTH_MODE=token`` (see :func:`job_client`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shlex
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from db.engine import is_sqlite, mask, resolve_url
from orchestrator import stack
from orchestrator.events import SubmitEvents
from orchestrator.probes import probe_dashboard
from orchestrator.version import code_version, package_version
from workers.errors import GapsweepError, first_line

AGENT_WAIT_S = 90.0
CHECK_TIMEOUT_S = 60.0          # seconds the check job has to run 'gapsweep version --json'
DEFAULT_RUN_DIR = "$HOME/gapsweep/runs"
ADDRESS_ENV = "RAY_ADDRESS"
CHECK_COMMAND = "gapsweep version --json"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
START_FIX = ("start the head from an environment where gapsweep runs (source .venv/bin/activate "
             "first, or PATH=$PWD/.venv/bin:$PATH ray start --head ...), or install gapsweep "
             "{version} on the cluster")


class JobError(GapsweepError):
    """A job that cannot be submitted or read as asked; the message says why and what to do."""


class NoResultsYet(JobError):
    """A submitted job's results database is on this machine but does not exist yet."""


class NoResultsMetadata(JobError):
    """A job whose metadata names no gapsweep results (not a sweep job of ``gapsweep submit``)."""


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
    db_wait: float | None = None          # --db-wait SECONDS (None: gapsweep run's default)
    simulate: float | None = None       # --simulate SECONDS: synthetic tasks, nothing trained

    def _run_dir_prefix(self) -> str:
        return f'GAPSWEEP_RUN_DIR="{self.run_dir.replace("$HOME", "${HOME}")}" '

    def entrypoint(self, sweep_file: str) -> str:
        """The job's shell command: ``GAPSWEEP_RUN_DIR=… gapsweep run FILE --address auto …``."""
        command = ["gapsweep", "run", sweep_file, "--address", "auto"]
        for flag, value in (("--steps", self.steps), ("--max-seeds", self.max_seeds),
                            ("--population", self.population), ("--gpus", self.gpus),
                            ("--db", self.db), ("--mlflow", self.mlflow),
                            ("--db-wait", None if self.db_wait is None else f"{self.db_wait:g}"),
                            ("--simulate", self.simulate)):
            if value is not None:
                command += [flag, str(value)]
        if self.retry_failed:
            command.append("--retry-failed")
        return self._run_dir_prefix() + " ".join(shlex.quote(c) for c in command)

    def check_entrypoint(self) -> str:
        """The check job's shell command: ``GAPSWEEP_RUN_DIR=… gapsweep version --json``."""
        return self._run_dir_prefix() + CHECK_COMMAND


@dataclasses.dataclass(frozen=True)
class ClusterCheck:
    """What the check job reported from the head (``gapsweep version --json``)."""

    job_id: str
    address: str
    report: dict

    @property
    def host(self) -> str:
        return str(self.report.get("host") or "the cluster's head")

    @property
    def version(self) -> str:
        return str(self.report.get("gapsweep"))

    @property
    def code_version(self) -> str | None:
        return self.report.get("code_version")

    @property
    def db(self) -> str | None:
        return self.report.get("db")

    @property
    def mlflow(self) -> str | None:
        return self.report.get("mlflow")


@dataclasses.dataclass(frozen=True)
class SubmittedSweep:
    """A sweep submitted as a job: its id, and where its results go on the cluster (the ``--db``
    and ``--mlflow`` given, else what the head's check job said)."""

    job_id: str
    sweep_name: str
    address: str
    db: str
    mlflow: str | None
    host: str
    check: ClusterCheck


def dashboard_address(address: str | None, directory=None) -> str:
    """The Ray dashboard the job commands talk to: ``address`` when given, else ``$RAY_ADDRESS``
    when it is an http(s) dashboard address, else a running local stack's (``gapsweep stack up``,
    under ``directory``, default ``<run dir>/stack``)."""
    if address:
        return address
    environment = os.environ.get(ADDRESS_ENV, "")
    if environment.startswith(("http://", "https://")):
        return environment
    state = stack.running_state(directory)
    if state is not None:
        return state.ray_address
    why = (f"${ADDRESS_ENV} is {environment!r}, not a dashboard address" if environment
           else f"${ADDRESS_ENV} is not set")
    raise JobError(f"no Ray dashboard address: {why} and no local stack runs in "
                   f"{stack.stack_root(directory)}; give --address http://HEAD:8265 (or "
                   f"export {ADDRESS_ENV}=http://HEAD:8265)")


def _token(address: str) -> str | None:
    """The cluster's token: ``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH`` or Ray's
    ``~/.ray/auth_token`` when ``RAY_AUTH_MODE=token``; else, for a local stack's dashboard, the
    stack's token file."""
    if os.environ.get("RAY_AUTH_MODE") == "token":
        token = os.environ.get("RAY_AUTH_TOKEN")
        path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
        if not token and os.path.exists(path):
            token = Path(path).read_text().strip()
        return token or None
    try:
        state = stack.running_state()
    except stack.StackError:
        return None
    if state is not None and address.rstrip("/") == state.ray_address and state.token_path.exists():
        return state.token_path.read_text().strip()
    return None


def job_client(address: str):
    """A Job Submission client that sends the cluster's token itself (see :func:`_token`): Ray
    reads its authentication mode once per process, so a process that already used a local Ray
    would otherwise go without."""
    from ray.job_submission import JobSubmissionClient

    probe_dashboard(address)
    token = _token(address)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        return JobSubmissionClient(address, headers=headers)
    except ConnectionError as error:
        raise JobError(f"the Ray dashboard at --address {address} refused the job client "
                       f"({first_line(error)})") from None


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


def _submit(client, address: str, events: SubmitEvents, **job) -> str:
    """:func:`submit_job`, with the head's refusals as one ``JobError`` line naming the address."""
    try:
        return submit_job(client, on_wait=events.agent_wait, **job)
    except RuntimeError as error:
        text = first_line(error)
        if "No available agent" in text:
            raise JobError(f"the Ray head at --address {address} has no job agent after "
                           f"{AGENT_WAIT_S:g} s ({text}); its dashboard_agent.log (in the head's "
                           "session logs, e.g. /tmp/ray/session_latest/logs) says why, often a "
                           "port in use: start the head with --dashboard-agent-listen-port=PORT "
                           "of a free port") from None
        raise JobError(f"the Ray dashboard at --address {address} refused the job ({text})") \
            from None


def _telling_line(logs: str) -> str:
    """The line of a failed command's output that says why: a 'not found', an exception, an
    argparse error; else the last line."""
    lines = [line.strip() for line in logs.splitlines() if line.strip()]
    for pattern in (r"not found|No such file", r"^[\w.]*(Error|Exception)\b", r"error:"):
        for line in lines:
            if re.search(pattern, line):
                return line
    return lines[-1] if lines else "nothing"


def read_check(job_id: str, address: str, status: str, logs: str, message: str | None = None,
               local_version: str | None = None) -> ClusterCheck:
    """The check job's report, from its final status and output; ``JobError`` when the head
    cannot run gapsweep or runs another version (the message names the address, what the job
    printed and the fix)."""
    local_version = local_version or package_version()
    fix = START_FIX.format(version=local_version)
    what = f"the check job {job_id} ('{CHECK_COMMAND}')"
    if status == "SUCCEEDED":
        for line in reversed(logs.splitlines()):
            try:
                report = json.loads(line)
            except ValueError:
                continue
            if isinstance(report, dict) and "gapsweep" in report:
                break
        else:
            raise JobError(f"the Ray cluster at --address {address}: {what} printed no version "
                           f"report (last line: {_telling_line(logs)!r}); {fix}; nothing was "
                           "submitted")
        if report["gapsweep"] != local_version:
            raise JobError(f"the Ray cluster at --address {address} ({report.get('host')}) runs "
                           f"gapsweep {report['gapsweep']}, this machine {local_version}; install "
                           f"gapsweep {local_version} on the cluster (or submit from a "
                           f"{report['gapsweep']} installation); nothing was submitted")
        return ClusterCheck(job_id, address, report)
    printed = _telling_line(logs) if logs.strip() else (message or "nothing")
    if "invalid choice: 'version'" in logs:
        raise JobError(f"the Ray cluster at --address {address} runs an older gapsweep without "
                       f"'gapsweep version' ({what} printed {printed!r}); install gapsweep "
                       f"{local_version} on the cluster; nothing was submitted")
    raise JobError(f"the Ray cluster at --address {address} cannot run gapsweep: {what} ended "
                   f"{status} and printed {printed!r}; {fix}; nothing was submitted")


def check_cluster(client, address: str, options: SweepJob, runtime_env: dict,
                  timeout: float = CHECK_TIMEOUT_S,
                  events: SubmitEvents | None = None) -> ClusterCheck:
    """Run ``gapsweep version --json`` on the head as a job with ``runtime_env`` and the sweep's
    run directory, wait up to ``timeout`` seconds for it, and read its report (:func:`read_check`).
    A check that does not finish in time is stopped and refused."""
    events = events or SubmitEvents()
    job_id = _submit(client, address, events, entrypoint=options.check_entrypoint(),
                     runtime_env=runtime_env, metadata={"gapsweep_check": CHECK_COMMAND})
    events.check_start(address, job_id, timeout)
    deadline = time.monotonic() + timeout
    while (status := str(client.get_job_status(job_id).value)) not in TERMINAL:
        if time.monotonic() > deadline:
            client.stop_job(job_id)
            raise JobError(f"the check job {job_id} ('{CHECK_COMMAND}') on the Ray cluster at "
                           f"--address {address} did not finish within {timeout:g} s (it is "
                           f"{status}; see gapsweep logs {job_id} --address {address}); give it "
                           "longer with --check-timeout SECONDS; nothing was submitted")
        time.sleep(0.5)
    info = client.get_job_info(job_id)
    return read_check(job_id, address, status, client.get_job_logs(job_id), info.message)


def _absolute_location(options: SweepJob) -> None:
    """A relative SQLite ``--db`` or ``--run-dir`` would land in the job's temporary working
    directory on the head, where nobody finds it again."""
    if options.db is not None:
        url = resolve_url(options.db)
        if is_sqlite(url) and url.database and not os.path.isabs(url.database):
            raise JobError(f"--db {options.db} is a relative path, which on the cluster would be "
                           "inside the job's temporary working directory; give an absolute one "
                           f"(sqlite:////ABSOLUTE/PATH.db) or a PostgreSQL URL")
    if not options.run_dir.startswith(("/", "$HOME", "${HOME}")):
        raise JobError(f"--run-dir {options.run_dir} is relative, which on the cluster would be "
                       "inside the job's temporary working directory; give an absolute path or "
                       "one under $HOME (default $HOME/gapsweep/runs)")


def submit_sweep(sweep_path: str | Path, address: str, options: SweepJob = SweepJob(),
                 events: SubmitEvents | None = None,
                 check_timeout: float = CHECK_TIMEOUT_S) -> SubmittedSweep:
    """Validate the sweep here (its file and plan), check that the head runs this gapsweep
    (:func:`check_cluster`), then submit the sweep as a job whose metadata says where its results
    go. A ``--db`` URL with a password is refused: the job's command line is visible in the Ray
    dashboard. Nothing is submitted when any step fails."""
    events = events or SubmitEvents()
    from orchestrator.plan import make_plan        # pydantic and the spec: only to submit
    from orchestrator.spec import load_spec

    plan = make_plan(load_spec(sweep_path), steps=options.steps, max_seeds=options.max_seeds)
    if options.db is not None and resolve_url(options.db).password:
        raise JobError("--db holds a password, which would be visible in the Ray job's command "
                       "line; put it in PGPASSWORD or ~/.pgpass on the cluster and give the URL "
                       "without it")
    _absolute_location(options)
    sweep_path = Path(sweep_path)
    client = job_client(address)
    with tempfile.TemporaryDirectory(prefix="gapsweep-submit-") as work:
        (Path(work) / sweep_path.name).write_text(sweep_path.read_text())
        runtime_env = {"working_dir": work}
        check = check_cluster(client, address, options, runtime_env, check_timeout, events)
        events.check_done(check)
        here = code_version()
        if check.code_version != here:
            events.code_version_differs(here, check.code_version, check.host)
        db = mask(resolve_url(options.db)) if options.db is not None else check.db
        mlflow = options.mlflow if options.mlflow is not None else check.mlflow
        metadata = {"gapsweep_sweep": plan.sweep_name, "gapsweep_db": db or "",
                    "gapsweep_mlflow": mlflow or "", "gapsweep_host": check.host,
                    "gapsweep_version": check.version, "gapsweep_check_job": check.job_id}
        events.submitting(plan.sweep_name)
        job_id = _submit(client, address, events, entrypoint=options.entrypoint(sweep_path.name),
                         runtime_env=runtime_env, metadata=metadata)
    return SubmittedSweep(job_id, plan.sweep_name, address, db or "", mlflow, check.host, check)


def results_location(job_id: str, metadata: dict | None, here: str | None = None,
                     db: str | None = None) -> tuple[str, str]:
    """``(sweep name, database URL)`` of a submitted job's results, from its metadata, when this
    machine (host ``here``, default this one) can read them: any server URL (PostgreSQL); a
    SQLite file on this host. ``JobError`` otherwise, saying where the results are and how to
    read them; ``NoResultsYet`` for a SQLite file here that the job has not created yet. ``db``
    (a ``--db`` given beside ``--job``) is refused: the job says where."""
    if db is not None:
        raise JobError(f"--job {job_id} names its results database itself; give --job or --db, "
                       "not both")
    metadata = metadata or {}
    sweep, url = metadata.get("gapsweep_sweep"), metadata.get("gapsweep_db")
    if not sweep or not url:
        raise NoResultsMetadata(f"job {job_id} names no gapsweep results in its metadata (it is not a "
                       "sweep job from 'gapsweep submit' of this version); give --db URL and "
                       "the sweep's name instead of --job")
    parsed = resolve_url(url)
    if parsed.password == "***":        # masked when submitted: the reader's PGPASSWORD/.pgpass
        parsed = parsed._replace(password=None)
    if not is_sqlite(parsed):
        return sweep, parsed.render_as_string(hide_password=False)
    path = parsed.database or ""
    host = metadata.get("gapsweep_host") or "the cluster's head"
    here = here or socket.gethostname()
    if host != here:
        raise JobError(f"job {job_id}'s results are in the SQLite file {path} on host {host}, "
                       f"not on this machine ({here}); read them there (gapsweep runs {sweep} "
                       f"--db sqlite:///{path}), or submit with --db postgresql://USER@DBHOST/"
                       "gapsweep, a database both machines reach")
    if not Path(path).exists():
        raise NoResultsYet(f"job {job_id} has recorded nothing yet: {path} does not exist")
    return sweep, url


def job_results(job_id: str, address: str, db: str | None = None):
    """``(JobDetails, sweep name, database URL)`` of a submitted sweep job (``--job``):
    :func:`results_location` of its metadata (``db``: a ``--db`` given beside it, refused)."""
    if db is not None:
        results_location(job_id, None, db=db)
    info = job_info(job_id, address)
    return (info, *results_location(job_id, info.metadata))


def _job_request_error(job_id: str, address: str, error: RuntimeError) -> JobError:
    """The head's answer to a request about one job, as one line: an unknown id says how to list
    the jobs there."""
    text = first_line(error)
    if "does not exist" in text or "404" in text:
        return JobError(f"no job {job_id!r} on the Ray cluster at --address {address} ({text}); "
                        f"its jobs: ray job list --address {address}")
    return JobError(f"the Ray cluster at --address {address} could not answer for job {job_id!r}: "
                    f"{text}")


def job_info(job_id: str, address: str):
    """Ray's ``JobDetails`` of a job (``.status``, ``.message``, ``.metadata``)."""
    client = job_client(address)
    try:
        return client.get_job_info(job_id)
    except RuntimeError as error:
        raise _job_request_error(job_id, address, error) from None


def job_logs(job_id: str, address: str) -> str:
    """The job's output so far."""
    client = job_client(address)
    try:
        return client.get_job_logs(job_id)
    except RuntimeError as error:
        raise _job_request_error(job_id, address, error) from None


def follow_logs(job_id: str, address: str) -> Iterator[str]:
    """The job's output as it comes, until the job ends."""
    job_info(job_id, address)                   # an unknown job: one error line, before the stream
    stream = job_client(address).tail_job_logs(job_id).__aiter__()
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
            except RuntimeError as error:
                raise _job_request_error(job_id, address, error) from None
    finally:
        loop.close()
