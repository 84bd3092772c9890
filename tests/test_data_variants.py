"""The paper's variants against their parents, on the same graphs, several hundred of them."""

import numpy as np
import pytest

from workers.data import make_request
from workers.data.generate import generate

SIZES = (4, 8, 16, 32, 64)
GRAPHS_PER_SIZE = 64  # 320 graphs per variant


def _pair(variant, parent, size):
    """The variant's and parent's data for the same sampled graphs (same request but algorithm)."""
    request = make_request(variant, "train", size, GRAPHS_PER_SIZE, seed=11)
    parent_request = make_request(parent, "train", size, GRAPHS_PER_SIZE, seed=11)
    return generate(request), generate(parent_request)


def _trace(data, name, b):
    return data.hints[name][: data.lengths[b], b]


@pytest.fixture(scope="module", params=SIZES)
def bfs_pair(request):
    return _pair("bfs_seq", "bfs", request.param)


@pytest.fixture(scope="module", params=SIZES)
def dfs_pair(request):
    return _pair("dfs_light", "dfs", request.param)


def test_bfs_seq_same_graphs_same_answer(bfs_pair):
    seq, bfs = bfs_pair
    for name in ("pos", "s", "A", "adj"):
        np.testing.assert_array_equal(seq.inputs[name], bfs.inputs[name], err_msg=name)
    np.testing.assert_array_equal(seq.outputs["pi"], bfs.outputs["pi"])
    assert set(seq.hints) == {"reach_h", "pi_h"} and set(seq.outputs) == {"pi"}
    assert seq.probe_table == bfs.probe_table


def test_bfs_seq_trace_is_bfs_one_edge_at_a_time(bfs_pair):
    seq, bfs = bfs_pair
    assert np.all(seq.lengths >= bfs.lengths)
    for b in range(seq.num_graphs):
        A, s = seq.inputs["A"][b], int(np.argmax(seq.inputs["s"][b]))
        reach, pi = _trace(seq, "reach_h", b), _trace(seq, "pi_h", b)
        bfs_reach, bfs_pi = _trace(bfs, "reach_h", b), _trace(bfs, "pi_h", b)
        # Start state: the source reached, every node its own parent.
        np.testing.assert_array_equal(reach[0], np.eye(seq.size)[s])
        np.testing.assert_array_equal(pi[0], np.arange(seq.size))
        # reach_h runs through BFS's rounds in order, each held for the round's examined edges.
        changes = np.flatnonzero(np.any(reach[1:] != reach[:-1], axis=1)) + 1
        rounds = np.split(reach, changes)
        np.testing.assert_array_equal(np.stack([r[0] for r in rounds]), bfs_reach)
        # One step per examined edge: 1 start step + Σ_rounds #edges leaving the previous reach,
        # counting the final round that reaches nothing new.
        final = seq.outputs["pi"][b]
        examined = 0
        prev = bfs_reach[0]
        while True:
            examined += int((A[prev.astype(bool)] > 0).sum())
            new = prev | (A[prev.astype(bool)] > 0).any(axis=0).astype(prev.dtype)
            if np.array_equal(new, prev):
                break
            prev = new
        assert seq.lengths[b] == 1 + examined
        # pi_h changes at most one node per step, and only from "no parent yet".
        diff = pi[1:] != pi[:-1]
        assert diff.sum(axis=1).max(initial=0) <= 1
        t, j = np.nonzero(diff)
        assert np.all(pi[t, j] == j)
        # At each round boundary pi_h is BFS's pi_h; the last step holds the answer.
        for r, start in enumerate(np.concatenate([[0], changes])):
            np.testing.assert_array_equal(pi[start - 1] if start else pi[0], bfs_pi[r])
        np.testing.assert_array_equal(pi[-1], final)


def test_dfs_light_same_graphs_same_answer(dfs_pair):
    light, dfs = dfs_pair
    for name in ("pos", "A", "adj"):
        np.testing.assert_array_equal(light.inputs[name], dfs.inputs[name], err_msg=name)
    np.testing.assert_array_equal(light.outputs["pi"], dfs.outputs["pi"])
    assert set(light.hints) == {"pi_h", "color"}
    assert light.probe_table["pi_h"] == dfs.probe_table["pi_h"] and light.probe_table["color"] == dfs.probe_table["color"]
    assert light.probe_table["color"].num_classes == 3
    assert {n for n, row in light.probe_table.items() if row.stage == "hint"} == {"pi_h", "color"}


def test_dfs_light_trace_is_dfs_restricted_and_deduplicated(dfs_pair):
    light, dfs = dfs_pair
    assert np.all(light.lengths <= dfs.lengths)
    for b in range(light.num_graphs):
        pi, color = _trace(light, "pi_h", b), _trace(light, "color", b)
        full_pi, full_color = _trace(dfs, "pi_h", b), _trace(dfs, "color", b)
        keep = [0] + [t for t in range(1, len(full_pi))
                      if not (np.array_equal(full_pi[t], full_pi[t - 1])
                              and np.array_equal(full_color[t], full_color[t - 1]))]
        np.testing.assert_array_equal(pi, full_pi[keep])
        np.testing.assert_array_equal(color, full_color[keep])
        # No step equals the one before it; color stays one-hot over 3 classes.
        same = np.all(pi[1:] == pi[:-1], axis=1) & np.all(color[1:] == color[:-1], axis=(1, 2))
        assert not same.any()
        assert np.all(color.sum(-1) == 1)
        np.testing.assert_array_equal(pi[-1], light.outputs["pi"][b])
