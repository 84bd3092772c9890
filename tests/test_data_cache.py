"""The content-addressed cache: exact round trips, damage detected and rebuilt, concurrent builders."""

import json
import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest

from workers.data import DataCache, SplitData, make_request
from workers.data.generate import generate

REQUEST = make_request("bellman_ford", "train", 7, 600, seed=5)  # two chunks of a pool


def _assert_same(a: SplitData, b: SplitData):
    assert (a.algorithm, a.split, a.size) == (b.algorithm, b.split, b.size)
    assert dict(a.probe_table) == dict(b.probe_table)
    fa, fb = a.arrays(), b.arrays()
    assert sorted(fa) == sorted(fb)
    for key in fa:
        assert fa[key].dtype == fb[key].dtype and fa[key].shape == fb[key].shape, key
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)


def test_round_trip_is_exact(tmp_path):
    cache = DataCache(tmp_path)
    fetched = cache.fetch(REQUEST)
    assert fetched.built and fetched.path.exists()
    again = cache.fetch(REQUEST)
    assert not again.built
    _assert_same(fetched.data, again.data)
    assert again.data.content_hash() == fetched.data.content_hash()
    manifest = json.loads(cache.manifest_path(fetched.path).read_text())
    assert manifest["content_sha256"] == fetched.data.content_hash()
    assert manifest["num_graphs"] == 600 and manifest["key"]["algorithm"] == "bellman_ford"
    # No temporary files are left behind.
    assert not [p for p in fetched.path.parent.iterdir() if p.name.endswith(".tmp")]


def test_pool_does_not_depend_on_the_number_of_processes():
    one = generate(REQUEST, processes=1)
    two = generate(REQUEST, processes=2)
    _assert_same(one, two)


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest", "missing_npz"])
def test_damaged_entry_is_detected_and_rebuilt(tmp_path, damage, caplog):
    cache = DataCache(tmp_path)
    original = cache.fetch(REQUEST)
    path, manifest = original.path, cache.manifest_path(original.path)
    raw = bytearray(path.read_bytes())
    if damage == "flip":  # one byte inside the array payload
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif damage == "truncate":
        path.write_bytes(bytes(raw[: len(raw) // 3]))
    elif damage == "manifest":
        manifest.write_text(manifest.read_text()[:40])
    else:
        path.unlink()
    assert cache.load(REQUEST) is None
    assert "unusable" in caplog.text
    rebuilt = cache.fetch(REQUEST)
    assert rebuilt.built
    _assert_same(rebuilt.data, original.data)
    assert not cache.fetch(REQUEST).built


def test_a_failed_write_leaves_no_entry(tmp_path, monkeypatch):
    cache = DataCache(tmp_path)

    def broken_save(self, path):
        with open(path, "wb") as fh:
            fh.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(SplitData, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        cache.fetch(REQUEST)
    monkeypatch.undo()
    assert not list(tmp_path.rglob("*.npz")) and not list(tmp_path.rglob("*.tmp"))
    assert cache.load(REQUEST) is None


def _fetch_in_process(directory, barrier, results):
    barrier.wait()
    fetched = DataCache(directory).fetch(REQUEST)
    results.put((fetched.built, fetched.data.content_hash()))


def test_concurrent_builders_of_one_key(tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    workers = [context.Process(target=_fetch_in_process, args=(tmp_path, barrier, results))
               for _ in range(3)]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert len({digest for _, digest in outcomes}) == 1
    assert sum(built for built, _ in outcomes) == 1  # the others waited and reused it
    entry = DataCache(tmp_path).fetch(REQUEST)
    assert not entry.built and entry.data.content_hash() == outcomes[0][1]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_concurrent_writers_without_the_lock_never_expose_a_torn_file(tmp_path):
    """Even where file locks do not hold (e.g. some network filesystems), writers racing on one key
    leave a complete entry: each writes a temporary file and renames it into place."""
    cache = DataCache(tmp_path)
    data = generate(REQUEST)
    cache.store(REQUEST, data, 0.0)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_store, args=(tmp_path, data)) for _ in range(3)]
    for w in writers:
        w.start()
    reads = 0
    while any(w.is_alive() for w in writers):  # a reader racing the writers always sees it whole
        loaded = cache.load(REQUEST)
        assert loaded is not None, "a reader saw a partial or mismatched entry"
        reads += 1
    for w in writers:
        w.join(timeout=120)
        assert w.exitcode == 0
    assert reads > 0
    _assert_same(cache.load(REQUEST), data)


def _store(directory, data):
    cache = DataCache(directory)
    for _ in range(20):
        cache.store(REQUEST, data, 0.0)


def test_loading_needs_neither_dm_clrs_nor_tensorflow(cache):
    cache.fetch(REQUEST)
    code = (
        "import sys; from workers.data import DataCache, make_request;"
        f"d = DataCache({str(cache.directory)!r}).fetch(make_request('bellman_ford', 'train', 7, 600, seed=5));"
        "assert not d.built;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('clrs', 'tensorflow', 'jax'));"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ}, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_take_trims_the_time_axis(cache):
    data = cache.get(make_request("bfs_seq", "train", 7, 300))
    short = np.argsort(data.lengths)[:8]
    batch = data.take(short)
    assert batch.max_length == int(data.lengths[short].max()) < data.max_length
    np.testing.assert_array_equal(batch.hints["pi_h"], data.hints["pi_h"][: batch.max_length, short])
    assert data.take(short, trim=False).max_length == data.max_length


def test_a_worker_without_dm_clrs_reads_entries_built_elsewhere(cache, monkeypatch):
    """GPU workers have no dm-clrs: they find entries by the rest of the key, and a missing entry
    is a clear error that says where to build it."""
    built = cache.fetch(REQUEST).data
    monkeypatch.setattr("workers.data.cache.dmclrs_version", lambda: None)
    worker_cache = DataCache(cache.directory)
    fetched = worker_cache.fetch(REQUEST)
    assert not fetched.built
    _assert_same(fetched.data, built)
    from workers.data import DataError

    with pytest.raises(DataError, match="dm-clrs is not installed here.*no entry.*gapsweep data build"):
        worker_cache.fetch(make_request("bellman_ford", "train", 7, 601, seed=5))


def test_an_unguarded_script_fails_fast_instead_of_hanging(tmp_path):
    """Generation workers are spawned and re-import the main script; one that builds data at import
    time must get a clear error, not wait forever on its parent's lock."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from workers.data import DataCache, make_request\n"
        f"DataCache({str(tmp_path / 'c')!r}).get(make_request('bfs', 'train', 5, 1100), processes=2)\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'if __name__ == "__main__":' in proc.stderr
