"""Content-addressed on-disk cache of SplitData (no dm-clrs import unless something must be built).

Layout: ``<dir>/<algorithm>/<split>-n<size>-c<count>-s<seed>-<key hash>.npz`` plus a ``.json``
manifest beside it (the full key, a sha256 of the content, shapes and build statistics). Files are
written to a temporary name and renamed into place, manifest last, so a reader sees either nothing
or a complete entry; a per-key lock stops two builders on one machine from doing the work twice.
Every load re-hashes the arrays: a corrupted or truncated entry is rebuilt, never used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import importlib
import importlib.metadata
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from workers.data.requests import DataError, SplitRequest
from workers.data.split_data import SplitData

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "GAPSWEEP_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$GAPSWEEP_CACHE_DIR``, else ``$XDG_CACHE_HOME/gapsweep/data`` (``~/.cache/gapsweep/data``)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gapsweep" / "data"


def dmclrs_version() -> str | None:
    """The installed dm-clrs version, or None where it is not installed (a GPU worker, say)."""
    try:
        return importlib.metadata.version("dm-clrs")
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclasses.dataclass(frozen=True)
class Fetched:
    """What :meth:`DataCache.fetch` did: the data, where it lives, and whether it had to be built."""

    request: SplitRequest
    data: SplitData
    path: Path
    built: bool
    seconds: float


class DataCache:
    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory).expanduser() if directory else default_cache_dir()
        self._check_writable()
        self._dmclrs = dmclrs_version()

    def _check_writable(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.directory, prefix=".probe-"):
                pass
        except OSError as err:
            raise DataError(
                f"data cache directory {str(self.directory)!r} is not writable ({err.strerror or err}); "
                f"pass --cache-dir or set {CACHE_DIR_ENV} to a writable directory") from None

    def path(self, request: SplitRequest) -> Path:
        stem = f"{request.split}-n{request.size}-c{request.count}-s{request.seed}"
        folder = self.directory / request.algorithm
        if self._dmclrs is None:
            return self._path_built_elsewhere(request, folder, stem)
        return folder / f"{stem}-{request.key_hash(self._dmclrs)[:16]}.npz"

    def _path_built_elsewhere(self, request: SplitRequest, folder: Path, stem: str) -> Path:
        """Without dm-clrs the key's version part is unknown: take the one entry whose manifest
        matches the rest of the key (it was built where dm-clrs is installed)."""
        found = []
        for manifest_path in folder.glob(f"{stem}-*.json"):
            try:
                key = json.loads(manifest_path.read_text())["key"]
            except (OSError, ValueError, KeyError):
                continue
            if key == _jsonable(request.key(key.get("dmclrs"))):
                found.append(manifest_path.with_suffix(".npz"))
        if len(found) != 1:
            what = "no entry" if not found else f"{len(found)} entries (several dm-clrs versions)"
            raise DataError(
                f"dm-clrs is not installed here and the cache at {self.directory} holds {what} for "
                f"{request.label}; build it where dm-clrs is installed (gapsweep data build "
                f"--algorithm {request.algorithm} --split {request.split} ...) with the same cache")
        return found[0]

    @staticmethod
    def manifest_path(path: Path) -> Path:
        return path.with_suffix(".json")

    def contains(self, request: SplitRequest) -> bool:
        """Whether an entry exists (cheap: its checksum is checked when it is loaded)."""
        try:
            path = self.path(request)
        except DataError:
            return False
        return path.exists() and self.manifest_path(path).exists()

    def load(self, request: SplitRequest) -> SplitData | None:
        """The cached data, or None when absent, incomplete or failing its checksum."""
        path = self.path(request)
        manifest_path = self.manifest_path(path)
        if not manifest_path.exists():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            version = self._dmclrs or manifest["key"].get("dmclrs")
            if manifest["key"] != _jsonable(request.key(version)):
                raise ValueError("manifest key does not match the request")
            data = SplitData.load(path)
            digest = data.content_hash()
            if digest != manifest["content_sha256"]:
                raise ValueError(f"checksum mismatch ({digest[:12]} != {manifest['content_sha256'][:12]})")
        except Exception as err:  # noqa: BLE001 - any damage means: rebuild
            log.warning("cache entry %s is unusable (%s: %s); rebuilding it",
                        path, type(err).__name__, err)
            return None
        return data

    def store(self, request: SplitRequest, data: SplitData, build_seconds: float) -> Path:
        path = self.path(request)
        path.parent.mkdir(parents=True, exist_ok=True)
        manifest = {
            "key": request.key(self._dmclrs),
            "key_sha256": request.key_hash(self._dmclrs),
            "content_sha256": data.content_hash(),
            "num_graphs": data.num_graphs,
            "max_length": data.max_length,
            "mean_length": float(data.lengths.mean()),
            "nbytes": data.nbytes,
            "shapes": {k: list(v.shape) for k, v in data.arrays().items()},
            "dtypes": {k: v.dtype.str for k, v in data.arrays().items()},
            "build_seconds": round(build_seconds, 3),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        _atomic_write(path, data.save)
        _atomic_write(self.manifest_path(path),
                      lambda p: Path(p).write_text(json.dumps(manifest, indent=1)))
        return path

    @contextlib.contextmanager
    def _lock(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another process building %s", path.name)
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def fetch(self, request: SplitRequest, processes: int = 1,
              progress: Callable[[int], None] | None = None) -> Fetched:
        """Load the request from the cache, building and storing it first if needed."""
        start = time.perf_counter()
        path = self.path(request)
        data = self.load(request)
        if data is None:
            _refuse_in_generation_worker(request)
            with self._lock(path):
                data = self.load(request)  # another builder may have finished meanwhile
                if data is None:
                    # here: dm-clrs (and TensorFlow) load only when building
                    generate = _generator().generate
                    data = generate(request, processes=processes, progress=progress)
                    seconds = time.perf_counter() - start
                    self.store(request, data, seconds)
                    log.info("built %s in %.1fs -> %s", request.label, seconds, path)
                    return Fetched(request, data, path, True, seconds)
        if progress:
            progress(request.count)
        return Fetched(request, data, path, False, time.perf_counter() - start)

    def get(self, request: SplitRequest, processes: int = 1) -> SplitData:
        return self.fetch(request, processes=processes).data


def _generator():
    """``workers.data.generate``, which imports dm-clrs and TensorFlow (seconds). From the main
    thread the import runs in a helper thread waited on in short steps: a KeyboardInterrupt
    raised inside TensorFlow's import was swallowed by it (the build went on as though Ctrl-C
    had never come); so Ctrl-C reaches the caller at once, and the import ends unseen."""
    name = "workers.data.generate"
    if name in sys.modules or threading.current_thread() is not threading.main_thread():
        return importlib.import_module(name)
    failed: list[BaseException] = []

    def load():
        try:
            importlib.import_module(name)
        except BaseException as error:      # noqa: BLE001 - raised in the caller's thread
            failed.append(error)

    stderr = os.dup(2)                      # the import hides fd 2 until it ends (see there)
    try:
        thread = threading.Thread(target=load, name="import dm-clrs", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        os.dup2(stderr, 2)                  # the caller's messages must be seen
        raise
    finally:
        os.close(stderr)
    if failed:
        raise failed[0]
    return sys.modules[name]


def stop_generation_workers() -> None:
    """Stop the processes that built data (``generate``'s pools) once a batch of fetches is over:
    idle, each holds TensorFlow's memory, and on the way out they would only slow the exit."""
    generate = sys.modules.get("workers.data.generate")      # loaded only if something was built
    shutdown = getattr(generate, "shutdown_pools", None)      # None while still importing
    if shutdown is not None:
        shutdown()


def _refuse_in_generation_worker(request: SplitRequest) -> None:
    """A spawned process (a generation worker) first re-imports the parent's main script; if that
    script builds data at import time (no ``if __name__ == "__main__":`` guard) it would wait
    forever on the parent's lock. multiprocessing marks that import phase: fail fast with the fix."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            f"a spawned process was asked to build {request.label} while importing the main "
            "script: the script runs its work at import time. Put it under "
            "`if __name__ == \"__main__\":` (data-generation workers are spawned and import it).")


def _jsonable(value):
    return json.loads(json.dumps(value))


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is shared by every user's workers
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
