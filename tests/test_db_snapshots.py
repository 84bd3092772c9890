"""Parameter snapshots: bit-exact round trips of real network parameters, inline and external,
and refusal of anything altered."""

import hashlib
import io
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sqlalchemy as sa

from db import snapshots
from db.store import ResultsStore, RunResult, ConfigurationEntry
from workers.config import TrainConfig
from workers.data import make_request
from workers.model import make_net_config
from workers.model.forward import init_params


@pytest.fixture(scope="module")
def network_params(cache):
    """Real bfs GATv2 parameters at hidden 128 and hidden 4 (NumPy, as PopulationResult has)."""
    data = cache.get(make_request("bfs", "train", 16, 64, seed=9)).take(np.arange(4))
    batch = jax.tree_util.tree_map(jnp.asarray, data.as_batch())
    trees = {}
    for hidden in (128, 4):
        net_config = make_net_config(TrainConfig(algorithm="bfs", hidden_size=hidden), data.probe_table)
        params = init_params(net_config, jax.random.PRNGKey(hidden), batch)
        trees[hidden] = jax.tree_util.tree_map(np.asarray, jax.device_get(params))
    return trees


def with_special_values(tree):
    """Values a lossy format would alter: NaN payloads, -0.0, infinities, subnormals."""
    odd = np.array([np.nan, -0.0, np.inf, -np.inf, 1e-45, np.float32(1) / 3], dtype=np.float32)
    odd_bits = odd.view(np.uint32).copy()
    odd_bits[0] = 0x7FC00123                      # a NaN with a payload
    return {"params": tree, "extra": {"odd": odd_bits.view(np.float32), "step": np.int64(7),
                                      "mask": np.array([True, False])}}


def test_encoding_is_deterministic_and_plain_npz(network_params):
    tree = network_params[4]
    a, b = snapshots.encode(tree), snapshots.encode(jax.tree_util.tree_map(np.copy, tree))
    assert a == b                                  # same parameters → same bytes → same sha256
    with np.load(io.BytesIO(a), allow_pickle=False) as npz:   # readable by plain NumPy
        names = set(npz.files)
    assert "processor/W_value/kernel" in names or any(n.endswith("/kernel") for n in names)
    assert snapshots.trees_equal(snapshots.decode(a), tree)


@pytest.mark.parametrize("hidden", [128, 4])
def test_round_trip_through_the_store_is_bit_exact(db_url, tmp_path, network_params, hidden):
    tree = with_special_values(network_params[hidden])
    encoded_size = len(snapshots.encode(tree))
    with ResultsStore(db_url, snapshot_dir=tmp_path / "snaps", inline_limit=64 * 1024) as store:
        sweep = store.register_sweep("s", "e", "", [ConfigurationEntry("bfs", {"algorithm": "bfs"},
                                                                       "a" * 64)], [0])
        (run,) = [p.run_id for p in store.pending(sweep.id)]
        store.claim([run])
        store.record([RunResult(run, "done", test_score=1.0, snapshots={"best": tree, "init": tree})])
        info = store.snapshot_info(run, "best")
        loaded = store.load_snapshot(run, "best")
    assert info.byte_size == encoded_size
    assert (info.uri is not None) == (hidden == 128)      # hidden-128 is external, hidden-4 inline
    assert snapshots.trees_equal(loaded, tree)
    flat_in = {k: v for k, v in _leaves(tree)}
    flat_out = {k: v for k, v in _leaves(loaded)}
    assert all(flat_in[k].tobytes() == flat_out[k].tobytes() and flat_in[k].dtype == flat_out[k].dtype
               for k in flat_in)


def _leaves(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}/")
        else:
            yield prefix + k, np.asarray(v)


def _stored_run(db_url, tmp_path, tree, inline_limit):
    store = ResultsStore(db_url, snapshot_dir=tmp_path / "snaps", inline_limit=inline_limit)
    sweep = store.register_sweep("s", "e", "", [ConfigurationEntry("bfs", {"algorithm": "bfs"},
                                                                   "a" * 64)], [0])
    (run,) = [p.run_id for p in store.pending(sweep.id)]
    store.claim([run])
    store.record([RunResult(run, "done", snapshots={"best": tree})])
    return store, run


def test_tampered_inline_snapshot_is_refused(db_url, tmp_path, network_params):
    store, run = _stored_run(db_url, tmp_path, network_params[4], inline_limit=10**7)
    with store.engine.begin() as conn:
        payload = bytearray(conn.execute(sa.text("SELECT payload FROM snapshots")).scalar_one())
        payload[-100] ^= 0x01                                  # one bit of one parameter
        conn.execute(sa.text("UPDATE snapshots SET payload = :p"), {"p": bytes(payload)})
    with pytest.raises(snapshots.SnapshotIntegrityError, match="altered or damaged"):
        store.load_snapshot(run)
    store.close()


def test_tampered_or_missing_external_snapshot_is_refused(db_url, tmp_path, network_params):
    store, run = _stored_run(db_url, tmp_path, network_params[128], inline_limit=1024)
    info = store.snapshot_info(run)
    path = store.snapshot_dir.path_for(info.sha256)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(snapshots.SnapshotIntegrityError, match=info.sha256):
        store.load_snapshot(run)
    path.unlink()
    with pytest.raises(snapshots.SnapshotError, match="is missing"):
        store.load_snapshot(run)
    store.close()


def test_decode_checks_the_digest_and_refuses_pickles():
    tree = {"a": {"b": np.arange(3, dtype=np.int32)}}
    payload = snapshots.encode(tree)
    assert snapshots.trees_equal(snapshots.decode(payload, hashlib.sha256(payload).hexdigest()), tree)
    with pytest.raises(snapshots.SnapshotIntegrityError):
        snapshots.decode(payload, "0" * 64)
    buffer = io.BytesIO()                                      # an .npz holding an object array
    np.savez(buffer, evil=np.array([{"x": 1}], dtype=object))
    with pytest.raises(snapshots.SnapshotError, match="not a readable"):
        snapshots.decode(buffer.getvalue())
    with pytest.raises(snapshots.SnapshotError, match="cannot be stored without pickle"):
        snapshots.encode({"x": np.array([object()], dtype=object)})
    with pytest.raises(snapshots.SnapshotError, match="must be a non-empty string without '/'"):
        snapshots.encode({"a/b": np.zeros(1)})
    with pytest.raises(snapshots.SnapshotError, match="empty mappings"):
        snapshots.encode({"a": {}, "b": np.zeros(1)})
    assert zipfile.is_zipfile(io.BytesIO(payload))
