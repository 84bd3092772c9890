"""Parameter snapshots: a pytree of arrays ⇄ bytes, without pickle, checked by sha256.

The format is a plain ``.npz`` (``numpy.load(path, allow_pickle=False)`` reads it anywhere): one
``.npy`` member per leaf, named by its path in the tree with ``/`` between keys (``params/gat/
W_value/kernel``). Members are stored uncompressed, in sorted order, with a fixed timestamp, so the
same parameters always give the same bytes and the same sha256. Only nested string-keyed mappings
of numeric/bool arrays are accepted: anything that could not round-trip bit-exactly is refused.

Large snapshots live outside the database, in a content-addressed directory
(``<dir>/<sha[:2]>/<sha>.npz``, written atomically) and are referenced by a ``file://`` URI.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote, urlparse

import numpy as np

from workers.errors import GapsweepError

FORMAT = "npz"
SEPARATOR = "/"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_ALLOWED_KINDS = "biufc"   # bool, signed, unsigned, float, complex


class SnapshotError(GapsweepError, ValueError):
    """A pytree that cannot be stored faithfully, or a snapshot that cannot be read back."""


class SnapshotIntegrityError(SnapshotError):
    """A snapshot's bytes do not match the sha256 recorded for them."""


def _flatten(tree: Mapping, prefix: str, out: dict[str, np.ndarray]) -> None:
    if not isinstance(tree, Mapping):
        raise SnapshotError(f"{prefix or 'the tree'}: expected a mapping, got {type(tree).__name__}")
    if not tree and prefix:
        raise SnapshotError(f"{prefix}: empty mappings cannot be stored")
    for key, value in tree.items():
        if not isinstance(key, str) or not key or SEPARATOR in key:
            raise SnapshotError(f"{prefix or 'the tree'}: key {key!r} must be a non-empty string "
                                f"without {SEPARATOR!r}")
        path = f"{prefix}{SEPARATOR}{key}" if prefix else key
        if isinstance(value, Mapping):
            _flatten(value, path, out)
            continue
        array = np.asarray(value)
        if array.dtype.kind not in _ALLOWED_KINDS or array.dtype.names is not None:
            raise SnapshotError(f"{path}: dtype {array.dtype} cannot be stored without pickle; "
                                "convert it to a standard numeric dtype (e.g. float32)")
        out[path] = array


def encode(tree: Mapping[str, Any]) -> bytes:
    """A nested mapping of arrays → deterministic ``.npz`` bytes."""
    leaves: dict[str, np.ndarray] = {}
    _flatten(tree, "", leaves)
    if not leaves:
        raise SnapshotError("the tree holds no arrays")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(leaves):
            info = zipfile.ZipInfo(f"{path}.npy", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(leaves[path], order="C"),
                                          allow_pickle=False)
    return buffer.getvalue()


def decode(payload: bytes, sha256: str | None = None) -> dict[str, Any]:
    """``.npz`` bytes → nested dict of NumPy arrays; with ``sha256``, refuse bytes that differ."""
    if sha256 is not None:
        actual = digest(payload)
        if actual != sha256:
            raise SnapshotIntegrityError(
                f"snapshot checksum mismatch: recorded sha256 {sha256}, bytes hash to {actual}; "
                "the snapshot was altered or damaged and will not be loaded")
    tree: dict[str, Any] = {}
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            for name in archive.files:
                node = tree
                *parents, leaf = name.split(SEPARATOR)
                for key in parents:
                    node = node.setdefault(key, {})
                node[leaf] = archive[name]
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise SnapshotError(f"snapshot is not a readable .npz: {error}") from error
    return tree


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def trees_equal(a: Mapping, b: Mapping) -> bool:
    """Bit-exact equality of two trees: same paths, dtypes, shapes and bytes."""
    fa: dict[str, np.ndarray] = {}
    fb: dict[str, np.ndarray] = {}
    _flatten(a, "", fa)
    _flatten(b, "", fb)
    return fa.keys() == fb.keys() and all(
        fa[k].dtype == fb[k].dtype and fa[k].shape == fb[k].shape
        and fa[k].tobytes() == fb[k].tobytes() for k in fa)


class SnapshotDirectory:
    """Content-addressed files for snapshots too large to keep inline."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.{FORMAT}"

    def put(self, payload: bytes, sha256: str) -> tuple[str, bool]:
        """Write (if absent) and return (URI, whether this call created the file)."""
        path = self.path_for(sha256)
        if path.exists() and path.stat().st_size == len(payload):
            return path.as_uri(), False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=f".{FORMAT}")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path.as_uri(), True


def read_uri(uri: str) -> bytes:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise SnapshotError(f"snapshot URI {uri!r}: only file:// URIs can be read")
    path = Path(unquote(parsed.path))
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SnapshotError(f"snapshot file {path} is missing (URI {uri})") from None
