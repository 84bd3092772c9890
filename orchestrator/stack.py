"""The docker-compose topology without Docker: PostgreSQL, an MLflow server on it and a Ray head,
as ordinary processes under ``<run dir>/stack`` (``gapsweep stack up|down|status|env|restart``).

    <run dir>/stack/
      stack.json            ports, pids, URLs (written when every service is healthy)
      postgres/             the cluster's data directory and log (kept across down/up)
      mlflow-artifacts/     artifacts the MLflow server serves
      ray-auth-token        the Ray head's token (mode 600)
      logs/mlflow.log, logs/ray-head.log, logs/ray-node-<i>.log

``up --nodes N`` adds N worker nodes on this machine (each a ``ray start --address HEAD --block``
raylet in its own process group, ``--node-cpus``/``--node-gpus`` each; ``--num-gpus`` without real
GPUs gives fake ``GPU`` resources): a small multi-node cluster whose nodes can be killed one at a
time (:func:`node_raylet_pid`), as fault tests do. :func:`stop_part` stops just MLflow or
PostgreSQL, :func:`restart` starts it again on the same port (``gapsweep stack restart PART``).

Every port is on 127.0.0.1. The databases ``gapsweep`` (results, migrated to head on ``up``) and
``mlflow`` live in the one PostgreSQL cluster, as in ``docker/docker-compose.yml``. The Ray head
runs jobs itself (it is the whole cluster) and passes its environment to them: ``GAPSWEEP_DB`` and
``MLFLOW_TRACKING_URI`` name the stack's database and tracking server, so a plain
``gapsweep submit SWEEP --address <dashboard>`` records there. Ray 2.60 authenticates with a token:
``gapsweep stack env`` prints the variables a shell needs to talk to the head
(``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN_PATH``) and to the stores.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from db.engine import make_engine, run_dir
from db.local_postgres import LocalPostgres, PostgresUnavailable, free_port
from workers.errors import GapsweepError

STACK_DIRNAME = "stack"
STATE_FILENAME = "stack.json"
RESULTS_DATABASE = "gapsweep"
MLFLOW_DATABASE = "mlflow"
START_TIMEOUT = 180.0       # seconds a service has to become healthy
STOP_TIMEOUT = 30.0
PARTS = ("mlflow", "postgres")          # what stop_part / restart take
NODE_NAME = "gapsweep-node-{index}"     # a resource only worker node <index> has: its name
NODE_OBJECT_STORE_BYTES = 200 * 1024 ** 2   # per worker node: they all share this machine's /dev/shm


class StackError(GapsweepError, RuntimeError):
    """The stack could not be started, stopped or read; the message says which service and why."""


@dataclasses.dataclass
class StackState:
    root: str
    postgres_port: int
    mlflow_port: int
    ray_port: int
    dashboard_port: int
    mlflow_pid: int
    ray_pid: int
    ray_temp_dir: str
    started_at: float
    node_pids: list[int] = dataclasses.field(default_factory=list)   # ``ray start`` of each node

    @property
    def db_url(self) -> str:
        return f"postgresql://gapsweep@127.0.0.1:{self.postgres_port}/{RESULTS_DATABASE}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def ray_address(self) -> str:
        """The job server (and dashboard): what ``gapsweep submit --address`` takes."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def token_path(self) -> Path:
        return Path(self.root) / "ray-auth-token"

    def environment(self) -> dict[str, str]:
        """What a shell (or a job on the head) needs to use the stack."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path),
                "RAY_ADDRESS": self.ray_address, "GAPSWEEP_DB": self.db_url,
                "MLFLOW_TRACKING_URI": self.mlflow_url}


def stack_root(directory: str | os.PathLike | None = None) -> Path:
    return (Path(directory) if directory else run_dir() / STACK_DIRNAME).resolve()


def load_state(root: Path) -> StackState | None:
    path = root / STATE_FILENAME
    if not path.exists():
        return None
    try:
        return StackState(**json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise StackError(f"{path} is not a stack state file ({err}); remove it after making sure "
                         "no stack process still runs") from None


def running_state(directory=None) -> StackState | None:
    """The stack under ``directory`` (default ``<run dir>/stack``) when its Ray head process
    lives, else None: what the job commands default their ``--address`` to."""
    state = load_state(stack_root(directory))
    return state if state is not None and _alive(state.ray_pid) else None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:   # a zombie (exited, not yet reaped by its parent) is not running
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def _http_ok(url: str, timeout: float = 2.0, token_path: Path | None = None) -> bool:
    request = urllib.request.Request(url)
    if token_path is not None and token_path.exists():   # Ray's dashboard wants its token
        request.add_header("Authorization", f"Bearer {token_path.read_text().strip()}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _postgres_ok(port: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(f"postgresql://gapsweep@127.0.0.1:{port}/{RESULTS_DATABASE}",
                             connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _wait(what: str, check: Callable[[], bool], pid: int | None, log: Path | None,
          timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if pid is not None and not _alive(pid):
            raise StackError(f"{what} exited while starting; its log ({log}) ends:\n{_tail(log)}")
        time.sleep(0.5)
    raise StackError(f"{what} was not healthy after {timeout:.0f}s; its log ({log}) ends:\n"
                     f"{_tail(log)}")


def _tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _bin(name: str) -> str:
    """An executable of this installation (the one running gapsweep), else from PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise StackError(f"{name} not found next to {sys.executable} or on PATH")
    return found


def _postgres(root: Path, port: int) -> LocalPostgres:
    return LocalPostgres(port=port, root=root / "postgres", durable=True)


def _start_mlflow(root: Path, backend_url: str, port: int) -> subprocess.Popen:
    """The MLflow server on ``port`` (its own process group), logging to logs/mlflow.log; waits
    until it answers."""
    log = root / "logs" / "mlflow.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "ab") as out:
        mlflow = subprocess.Popen(
            [_bin("mlflow"), "server", "--backend-store-uri", backend_url,
             "--artifacts-destination", str(root / "mlflow-artifacts"), "--serve-artifacts",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)
    try:
        _wait("the MLflow server", lambda: _http_ok(f"http://127.0.0.1:{port}/health"),
              mlflow.pid, log)
    except BaseException:
        _stop_group(mlflow.pid)
        raise
    return mlflow


def _ray_env(state: StackState) -> dict[str, str]:
    """The environment of the head's and the nodes' ``ray start`` (and so of every job and
    worker): this one, with the stack's token and stores, and this installation's executables
    first on PATH."""
    env = {**os.environ, **state.environment(),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS")      # the head is not a client of itself
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"   # no Serve replicas: stop at once
    return env


def _start_node(state: StackState, index: int, cpus: int, gpus: int) -> subprocess.Popen:
    """Worker node ``index``: ``ray start --address HEAD --block`` in its own process group,
    offering ``cpus`` CPUs and ``gpus`` GPUs (fake ones where the machine has none), logging to
    logs/ray-node-<index>.log. It has one unit of the resource ``gapsweep-node-<index>`` (Ray
    2.60's ``ray start`` names no node), by which the head's node list tells the nodes apart. Its
    ports are Ray's free ones, its agent's a free one too; its session is under the head's
    temporary directory, so ``down`` finds whatever it leaves."""
    log = Path(state.root) / "logs" / f"ray-node-{index}.log"
    command = [_bin("ray"), "start", f"--address=127.0.0.1:{state.ray_port}", "--block",
               "--disable-usage-stats", "--node-ip-address=127.0.0.1",
               f"--resources={json.dumps({NODE_NAME.format(index=index): 1})}",
               f"--temp-dir={state.ray_temp_dir}", f"--num-cpus={cpus}",
               f"--num-gpus={gpus}", f"--object-store-memory={NODE_OBJECT_STORE_BYTES}",
               f"--dashboard-agent-listen-port={free_port()}"]
    with open(log, "ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=_ray_env(state),
                                start_new_session=True)


def alive_nodes(state: StackState) -> list[dict] | None:
    """The cluster's alive nodes as the head's dashboard lists them (Ray's state API: node_id,
    resources_total, ...); None when the dashboard does not answer."""
    request = urllib.request.Request(f"{state.ray_address}/api/v0/nodes?limit=1000&detail=1")
    if state.token_path.exists():
        request.add_header("Authorization", f"Bearer {state.token_path.read_text().strip()}")
    try:
        with urllib.request.urlopen(request, timeout=5.0) as response:
            answer = json.loads(response.read())
        nodes = answer["data"]["result"]["result"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        return None
    return [node for node in nodes if node.get("state") == "ALIVE"]


def _wait_for_nodes(state: StackState, expected: int, pids: list[int],
                    timeout: float = START_TIMEOUT) -> None:
    """Until the head lists ``expected`` alive nodes (itself included); a node process that
    exits meanwhile, or a timeout, is a ``StackError`` with that node's log."""
    deadline = time.monotonic() + timeout
    nodes: list[dict] | None = None
    while time.monotonic() < deadline:
        nodes = alive_nodes(state)
        if nodes is not None and len(nodes) >= expected:
            return
        for index, pid in enumerate(pids):
            if not _alive(pid):
                log = Path(state.root) / "logs" / f"ray-node-{index}.log"
                raise StackError(f"Ray node {index} exited while joining the head; its log ({log}) "
                                 f"ends:\n{_tail(log)}")
        time.sleep(0.5)
    last = len(pids) - 1
    log = Path(state.root) / "logs" / f"ray-node-{last}.log"
    raise StackError(f"the Ray head lists {len(nodes) if nodes is not None else 'no'} alive "
                     f"node(s) after {timeout:.0f}s, not {expected}; the nodes' logs "
                     f"({log.parent}/ray-node-*.log) say why; node {last}'s ends:\n{_tail(log)}")


def node_raylet_pid(state: StackState, index: int) -> int | None:
    """The pid of worker node ``index``'s raylet (the ``raylet`` child of its ``ray start
    --block``): what to kill to lose that node. None when the node is not running."""
    import psutil

    if not 0 <= index < len(state.node_pids):
        raise StackError(f"the stack in {state.root} has {len(state.node_pids)} worker node(s) "
                         f"(0 to {len(state.node_pids) - 1}); there is no node {index}")
    try:
        children = psutil.Process(state.node_pids[index]).children(recursive=True)
    except psutil.Error:
        return None
    for child in children:
        try:
            if child.name() == "raylet" and child.status() != psutil.STATUS_ZOMBIE:
                return child.pid
        except psutil.Error:
            continue
    return None


def up(directory=None, progress: Callable[[str], None] = lambda message: None,
       cpus: int | None = None, nodes: int = 0, node_cpus: int = 1,
       node_gpus: int = 0) -> tuple[StackState, bool]:
    """Start the stack (or find it running): PostgreSQL, MLflow, the Ray head offering ``cpus``
    CPUs (default: all), and ``nodes`` worker nodes of ``node_cpus`` CPUs and ``node_gpus`` GPUs
    each. Returns (state, started). On any failure, what was started is stopped again."""
    if nodes < 0 or node_cpus < 0 or node_gpus < 0:
        raise StackError(f"nodes={nodes}, node_cpus={node_cpus}, node_gpus={node_gpus}: give "
                         "numbers of at least 0")
    root = stack_root(directory)
    state = load_state(root)
    if state is not None:
        health = status(root)
        if all(h["healthy"] for h in health.values()):
            return state, False
        if any(h["running"] for h in health.values()):
            raise StackError(f"the stack in {root} is partly running "
                             f"({', '.join(k for k, h in health.items() if not h['healthy'])} not "
                             "healthy); run 'gapsweep stack down' first")
        (root / STATE_FILENAME).unlink()
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    started: list[Callable[[], None]] = []
    try:
        progress("PostgreSQL")
        pg = _postgres(root, free_port())
        try:
            pg.start()
        except PostgresUnavailable as err:
            raise StackError(f"PostgreSQL: {err}") from None
        started.append(pg.stop)
        pg.create_database(RESULTS_DATABASE, exist_ok=True)
        pg.create_database(MLFLOW_DATABASE, exist_ok=True)
        from db.migrate import upgrade as migrate   # alembic: only when a stack starts

        engine = make_engine(pg.url(RESULTS_DATABASE))
        try:
            migrate(engine)
        finally:
            engine.dispose()

        progress("MLflow server")
        mlflow_port = free_port()
        mlflow = _start_mlflow(root, pg.url(MLFLOW_DATABASE), mlflow_port)
        started.append(lambda: _stop_group(mlflow.pid))

        progress("Ray head")
        token = root / "ray-auth-token"
        if not token.exists():
            token.touch(mode=0o600)
            token.write_text(secrets.token_hex(32))
        ray_port, dashboard_port = free_port(), free_port()
        # a short directory: Ray's socket paths must stay under the 107-byte limit
        temp_dir = tempfile.mkdtemp(prefix="gs-ray-")
        partial = StackState(str(root), pg.port, mlflow_port, ray_port, dashboard_port, mlflow.pid,
                             0, temp_dir, time.time())
        env = _ray_env(partial)
        log = root / "logs" / "ray-head.log"
        command = [_bin("ray"), "start", "--head", "--block", "--disable-usage-stats",
                   f"--port={ray_port}", "--node-ip-address=127.0.0.1",
                   "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
                   f"--temp-dir={temp_dir}",
                   # Ray's fixed defaults (52365, 10001): another Ray on this machine may hold them,
                   # and the head's job agent then never starts ("No available agent")
                   f"--dashboard-agent-listen-port={free_port()}",
                   f"--ray-client-server-port={free_port()}"]
        if cpus is not None:
            command.append(f"--num-cpus={cpus}")
        with open(log, "ab") as out:
            ray = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        started.append(lambda: _stop_ray(ray.pid, temp_dir))
        _wait("the Ray head", lambda: _http_ok(f"http://127.0.0.1:{dashboard_port}/api/version",
                                               token_path=token), ray.pid, log)
        state = dataclasses.replace(partial, ray_pid=ray.pid)
        node_pids: list[int] = []
        for index in range(nodes):  # one after the other: raylets starting together on a
            progress(f"Ray node {index + 1}/{nodes}")   # small machine time out registering
            node = _start_node(state, index, node_cpus, node_gpus)
            node_pids.append(node.pid)
            started.append(lambda pid=node.pid: _stop_group(pid, leader_only=True))
            _wait_for_nodes(state, 2 + index, node_pids)
        state = dataclasses.replace(state, node_pids=node_pids)
        _save(root, state)
        return state, True
    except BaseException:
        for stop in reversed(started):
            try:
                stop()
            except Exception:  # noqa: BLE001 - keep unwinding; the first error is the one to show
                pass
        raise


def _save(root: Path, state: StackState) -> None:
    (root / STATE_FILENAME).write_text(json.dumps(dataclasses.asdict(state), indent=1) + "\n")


def _stop_group(pid: int, timeout: float = STOP_TIMEOUT, leader_only: bool = False) -> None:
    """SIGTERM a process group (or only its leader, which stops the rest), then SIGKILL the group
    if anything is left after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            if leader_only and sig == signal.SIGTERM:
                os.kill(pid, sig)
            else:
                os.killpg(pid, sig)
        except ProcessLookupError:
            if not _group_alive(pid):
                return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _group_alive(pid):
                return
            time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    import psutil

    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.info["pid"]) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def _stop_ray(pid: int, temp_dir: str) -> None:
    """Stop ``ray start --block`` (on SIGTERM it stops the processes it started), then anything
    still running from this head's session directory."""
    _stop_group(pid, leader_only=True)
    for proc in leftover_processes(temp_dir):
        try:
            proc.kill()
        except Exception:  # noqa: BLE001 - it exited meanwhile
            pass
    shutil.rmtree(temp_dir, ignore_errors=True)


def leftover_processes(marker: str) -> list:
    """Processes whose command line mentions ``marker`` (a directory of this stack)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid != os.getpid() and any(marker in part for part in proc.info["cmdline"] or ())\
                    and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def down(directory=None) -> list[str]:
    """Stop every service of the stack (the Ray nodes, the head, MLflow, PostgreSQL, in that
    order); returns what was stopped. PostgreSQL's data stays; nothing keeps running."""
    root = stack_root(directory)
    state = load_state(root)
    stopped = []
    if state is None:
        pg = _postgres_if_running(root)
        if pg is not None:
            pg.stop()
            stopped.append("PostgreSQL")
        return stopped
    nodes = [pid for pid in state.node_pids if _alive(pid) or _group_alive(pid)]
    for pid in nodes:        # before the head: a node without its head waits for it, retrying
        _stop_group(pid, leader_only=True)
    if nodes:
        stopped.append(f"{len(nodes)} Ray node(s)")
    if _alive(state.ray_pid) or leftover_processes(state.ray_temp_dir):
        _stop_ray(state.ray_pid, state.ray_temp_dir)
        stopped.append("Ray head")
    shutil.rmtree(state.ray_temp_dir, ignore_errors=True)
    if _alive(state.mlflow_pid) or _group_alive(state.mlflow_pid):
        _stop_group(state.mlflow_pid)
        stopped.append("MLflow server")
    pg = _postgres(root, state.postgres_port)
    if pg.pid is not None and _alive(pg.pid):
        pg.stop()
        stopped.append("PostgreSQL")
    (root / STATE_FILENAME).unlink()
    return stopped


def _postgres_if_running(root: Path) -> LocalPostgres | None:
    if not (root / "postgres" / "data" / "postmaster.pid").exists():
        return None
    pg = _postgres(root, 0)
    return pg if pg.pid is not None and _alive(pg.pid) else None


def _require_state(directory) -> tuple[Path, StackState]:
    root = stack_root(directory)
    state = load_state(root)
    if state is None:
        raise StackError(f"no stack in {root}; start one with 'gapsweep stack up'")
    return root, state


def status(directory=None) -> dict[str, dict]:
    """Per service: running (its process lives), healthy (it answers), pid, URL, log. A worker
    node (``ray-node-<i>``) is healthy when the head lists it alive."""
    root, state = _require_state(directory)
    pg = _postgres(root, state.postgres_port)
    pg_pid = pg.pid
    alive = {name for n in alive_nodes(state) or () for name in n.get("resources_total") or {}} \
        if state.node_pids else set()
    nodes = {f"ray-node-{index}": {
        "pid": pid, "running": _alive(pid),
        "healthy": _alive(pid) and NODE_NAME.format(index=index) in alive,
        "url": f"127.0.0.1:{state.ray_port}", "log": str(root / "logs" / f"ray-node-{index}.log")}
        for index, pid in enumerate(state.node_pids)}
    return {
        "postgres": {"pid": pg_pid, "running": _alive(pg_pid),
                     "healthy": _alive(pg_pid) and _postgres_ok(state.postgres_port),
                     "url": state.db_url, "log": str(pg.log)},
        "mlflow": {"pid": state.mlflow_pid, "running": _alive(state.mlflow_pid),
                   "healthy": _http_ok(f"{state.mlflow_url}/health"), "url": state.mlflow_url,
                   "log": str(root / "logs" / "mlflow.log")},
        "ray-head": {"pid": state.ray_pid, "running": _alive(state.ray_pid),
                     "healthy": _http_ok(f"{state.ray_address}/api/version",
                                         token_path=state.token_path),
                     "url": state.ray_address, "log": str(root / "logs" / "ray-head.log")},
        **nodes,
    }


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise StackError(f"no stack part {part!r}; the parts that can be stopped and restarted "
                         f"alone are {', '.join(PARTS)}")


def stop_part(part: str, directory=None) -> bool:
    """Stop just ``part`` ('mlflow' or 'postgres') of a running stack, leaving the rest running
    (what a fault test does to lose a store); True when it was running. ``restart`` starts it
    again."""
    _check_part(part)
    root, state = _require_state(directory)
    if part == "mlflow":
        if not (_alive(state.mlflow_pid) or _group_alive(state.mlflow_pid)):
            return False
        _stop_group(state.mlflow_pid)
        return True
    pg = _postgres(root, state.postgres_port)
    if pg.pid is None or not _alive(pg.pid):
        return False
    pg.stop()
    return True


def restart(part: str, directory=None) -> StackState:
    """Start ``part`` ('mlflow' or 'postgres') of a running stack again, on the port it had
    (stopping it first if it still runs), and wait until it answers. MLflow gets a new pid,
    saved in stack.json; returns the state."""
    _check_part(part)
    root, state = _require_state(directory)
    stop_part(part, root)
    if part == "postgres":
        pg = _postgres(root, state.postgres_port)
        try:
            pg.start()
        except PostgresUnavailable as err:
            raise StackError(f"PostgreSQL on port {state.postgres_port}: {err}") from None
        _wait("PostgreSQL", lambda: _postgres_ok(state.postgres_port), pg.pid, pg.log)
        return state
    if not _postgres_ok(state.postgres_port):
        raise StackError(f"MLflow keeps its runs in the stack's PostgreSQL, which does not answer "
                         f"on port {state.postgres_port}; run 'gapsweep stack restart postgres' "
                         "first")
    pg = _postgres(root, state.postgres_port)
    mlflow = _start_mlflow(root, pg.url(MLFLOW_DATABASE), state.mlflow_port)
    state = dataclasses.replace(state, mlflow_pid=mlflow.pid)
    _save(root, state)
    return state
