"""Fresh batches as a whole (``workers.data.fresh``): the project's JAX sampler and traces put
together equal dm-clrs's algorithm run on the very graphs sampled (random positions and float32
Bellman-Ford weights included); the probe tables written as data equal dm-clrs's; caps cover what
they claim; a trace longer than max_steps is an error for host-side splits."""

import jax
import numpy as np
import pytest
from clrs._src import probing, samplers

from workers.data import DataError, fresh, make_request
from workers.data.generate import _ALGORITHMS, feedback_to_split, generate_chunk
from workers.data.requests import ALGORITHMS, RUN_PY_EDGE_PROBABILITIES, SplitRequest


def _dmclrs_on(algorithm, split):
    """dm-clrs's algorithm on each graph of ``split`` (its A as float64, its source), its pos
    replaced by the split's (``process_random_pos`` does the same to dm-clrs's samples)."""
    _, algorithm_fn, spec = _ALGORITHMS[algorithm]
    inputs, outputs, hints = [], [], []
    sourced = "s" in split.inputs
    for i in range(split.num_graphs):
        A = split.inputs["A"][i].astype(np.float64)
        args = (A, int(np.argmax(split.inputs["s"][i]))) if sourced else (A,)
        _, probes = algorithm_fn(*args)
        probes["input"]["node"]["pos"]["data"] = split.inputs["pos"][i].astype(np.float64)
        stage_in, stage_out, stage_hint = probing.split_stages(probes, spec)
        inputs.append(stage_in)
        outputs.append(stage_out)
        hints.append(stage_hint)
    batched, lengths = samplers._batch_hints(hints, 0)
    feedback = samplers.Feedback(samplers.Features(samplers._batch_io(inputs), batched, lengths),
                                 samplers._batch_io(outputs))
    request = SplitRequest(algorithm, "train", split.size, split.num_graphs, 0,
                           RUN_PY_EDGE_PROBABILITIES, True)
    return feedback_to_split(request, feedback)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
@pytest.mark.parametrize("n", [5, 16])
def test_fresh_graphs_and_traces_equal_dmclrs_run_on_them(algorithm, n):
    count = 200 if n <= 5 else 60
    ours = fresh.fresh_split(jax.random.PRNGKey(n), algorithm, n, count)
    theirs = _dmclrs_on(algorithm, ours)
    np.testing.assert_array_equal(ours.lengths, theirs.lengths)
    steps = theirs.max_length
    assert ours.max_length >= steps
    for group in ("inputs", "hints", "outputs"):
        for name, expected in getattr(theirs, group).items():
            got = getattr(ours, group)[name]
            if group == "hints":
                assert not got[steps:].any(), name            # padding past every trace: zeros
                got = got[:steps]
            assert got.dtype == expected.dtype, (group, name)
            np.testing.assert_array_equal(got, expected, err_msg=f"{algorithm} {group} {name}")
    assert dict(ours.probe_table) == dict(theirs.probe_table)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_probe_tables_as_data_equal_dmclrs(algorithm):
    theirs = generate_chunk(make_request(algorithm, "val", 7, count=2), 0, 2).probe_table
    assert list(fresh.probe_table(algorithm, 7).items()) == list(theirs.items())


def test_caps_cover_what_they_claim():
    for n in (4, 16):
        assert fresh.trace_cap("dfs", n) == 3 * n and fresh.trace_cap("dfs_light", n) == 2 * n + 1
        assert fresh.cap_covers_every_trace("dfs", n, 3 * n)
        assert fresh.cap_covers_every_trace("bfs", n, n) and fresh.trace_cap("bfs", n) <= n
        assert not fresh.cap_covers_every_trace("bfs_seq", n, 10**6)
    assert fresh.grown_cap("bfs", 16, 11) == 12 and fresh.grown_cap("bfs", 16, 13) == 16
    assert fresh.grown_cap("bfs_seq", 16, 500) == 512


def test_a_host_split_shorter_than_its_traces_is_an_error():
    with pytest.raises(DataError, match=r"bfs_seq n=16: a trace has \d+ steps, more than "
                                        r"max_steps = 8; pass a larger max_steps"):
        fresh.fresh_split(jax.random.PRNGKey(0), "bfs_seq", 16, 16, max_steps=8)
