"""A throwaway PostgreSQL server on loopback, for tests, benchmarks and trying PostgreSQL locally.

    with LocalPostgres() as pg:                  # initdb + pg_ctl start on a free 127.0.0.1 port
        url = pg.create_database("results")      # postgresql+psycopg://gapsweep@127.0.0.1:PORT/results

Server binaries are found through ``$GAPSWEEP_PG_BINDIR``, ``pg_config --bindir``, or
``/usr/lib/postgresql/<version>/bin``. PostgreSQL refuses to run as root, so as root the cluster is
created and started as the ``postgres`` user (via ``runuser``). Authentication is ``trust`` on
loopback only. A throwaway server's directory is removed on ``stop()``; a durable one (``root=DIR,
durable=True``, as ``gapsweep stack`` runs it) keeps its data there across stops and starts.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from workers.errors import GapsweepError

SUPERUSER = "gapsweep"


class PostgresUnavailable(GapsweepError, RuntimeError):
    pass


def find_bindir() -> Path:
    candidates = []
    if env := os.environ.get("GAPSWEEP_PG_BINDIR"):
        candidates.append(Path(env))
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                         reverse=True)
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; install them (Debian: apt-get "
        "install postgresql) or set GAPSWEEP_PG_BINDIR")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalPostgres:
    def __init__(self, bindir: Path | None = None, port: int | None = None,
                 root: Path | None = None, durable: bool = False):
        self.bindir = Path(bindir) if bindir else find_bindir()
        self.port = port or free_port()
        self.durable = durable
        if root is None:
            self.root = Path(tempfile.mkdtemp(prefix="gapsweep-pg-"))
        else:
            self.root = Path(root).resolve()
            self.root.mkdir(parents=True, exist_ok=True)
        self.data = self.root / "data"
        self.log = self.root / "log"
        self.as_root = os.geteuid() == 0
        self.started = False

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(command)} failed ({result.returncode}):\n"
                                      f"{result.stdout}\n{result.stderr}")
        return result

    def start(self) -> "LocalPostgres":
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        if self.as_root and subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w",
                                            str(self.root)]).returncode != 0:
            raise PostgresUnavailable(
                f"PostgreSQL refuses to run as root, and the postgres user cannot reach {self.root} "
                "(a directory above it is closed to other users); use a directory it can reach, "
                "e.g. under /var/tmp, or run as an ordinary user")
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                      "--no-instructions", *(() if self.durable else ("--no-sync",)))
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.root} -c max_connections=50")
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log),
                  "-w", "-t", "60", "start")
        self.started = True
        return self

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while the server runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, exist_ok: bool = False) -> str:
        import psycopg

        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not (exists and exist_ok):
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.started or (self.durable and self.pid is not None):
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m",
                          "fast" if self.durable else "immediate", "-w", "stop")
            finally:
                self.started = False
        if not self.durable:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "LocalPostgres":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
