"""Why no GATv2 of this architecture executes ``dfs_light``: two graphs on which one node sees the
same thing at every step while the algorithm needs it to do different things.

The witness (``docs/compiled_dfs.md`` has the argument in full): on ``n`` nodes,

- ``early``: no edges. DFS takes every node as a root in index order; node 1 turns grey at row 3.
- ``late``: the one edge 0 → 2. Node 0's tree takes 2 first; node 1 turns grey at row 5.

Node 1 is isolated in both graphs and nothing points at it, so in the processor it attends only
to itself, and its decoders read only its own features. Its inputs are the same in both graphs up
to row 2 (``pos`` = 1/n, white, ``pi_h`` = itself, no edges), so whatever the parameters, its
prediction of row 3 is the same in both, and one of the two graphs gets node 1's colour wrong.
``dfs_light`` keeps only ``pi_h`` and ``color``: there is no hint, input or readout through which
a node learns about nodes it is not joined to. (``dfs`` has one: its ``mask_one`` hints ``u``,
``s``, ``s_last``, ``v`` are decoded by a softmax over all nodes.)

:func:`run_witness` runs the network on both graphs with the true hints fed back (what an exact
network feeds itself under hard feedback, and what teacher forcing feeds it in training) for any
parameters and architecture, and reports node 1's colour logits side by side. With
``attention="full"`` (dm-clrs's ``gatv2_full``) node 1 attends to every node and the two
predictions differ: the obstruction is gone.

Nothing here imports dm-clrs or TensorFlow (the traces are ``workers.data.jax_traces_dfs``'s,
which equal dm-clrs's; the tests check the witness against dm-clrs itself).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from workers.data.fresh import probe_table
from workers.data.jax_traces_dfs import TRACE_BOUND, dfs_light
from workers.model.forward import init_params, unroll
from workers.model.network import NetConfig
from workers.data.probes import ProbeSpec

WATCHED_NODE = 1
GREY = 1

_unroll = jax.jit(unroll, static_argnums=(0, 4))      # one compilation per architecture
_init = jax.jit(init_params, static_argnums=(0,))


def witness_graphs(n: int = 3) -> dict[str, np.ndarray]:
    """The two adjacency matrices (float [n, n], n >= 3): ``early`` (no edges) and ``late``
    (0 → 2)."""
    if n < 3:
        raise ValueError(f"the witness needs n >= 3 nodes, not {n}")
    late = np.zeros((n, n))
    late[0, 2] = 1.0
    return {"early": np.zeros((n, n)), "late": late}


def stacked_batch(traces) -> dict:
    """Traces (``workers.data.trace_layout.Trace``) of one size as one batch in ``unroll``'s
    layout: hints time-major, everything else graph-major."""
    def stack(key):
        return {k: jnp.stack([getattr(t, key)[k] for t in traces], axis=1 if key == "hints" else 0)
                for k in getattr(traces[0], key)}
    return {"inputs": stack("inputs"), "hints": stack("hints"), "outputs": stack("outputs"),
            "lengths": jnp.stack([t.length for t in traces])}


@functools.lru_cache(maxsize=None)
def witness_batch(n: int = 3) -> dict:
    """Both graphs' ``dfs_light`` traces as one batch (``early`` first), in ``unroll``'s layout."""
    steps = TRACE_BOUND["dfs_light"](n)
    pos = np.arange(n) / n
    return stacked_batch([dfs_light(jnp.asarray(a, jnp.float32), pos, steps)
                          for a in witness_graphs(n).values()])


def first_divergence(batch: dict, node: int = WATCHED_NODE) -> int:
    """The first row at which the watched node's true colour differs between the two graphs."""
    colour = np.argmax(np.asarray(batch["hints"]["color"])[:, :, node], -1)     # [T, 2]
    rows = np.flatnonzero(colour[:, 0] != colour[:, 1])
    if not len(rows):
        raise ValueError("the two graphs never differ at the watched node")
    return int(rows[0])


def net_config_for(n: int = 3, algorithm: str = "dfs_light", **architecture) -> NetConfig:
    """A network for ``algorithm`` on ``n`` nodes; ``architecture``: any NetConfig field
    (hidden_size, nb_heads, nb_msg_passing_steps, use_ln, use_edge_info, use_pre_att_bias,
    simplify_decoders, attention, …). Size-tied options get ``tied_size = n``."""
    rows = tuple((name, ProbeSpec(*row)) for name, row in probe_table(algorithm, n).items())
    tied = architecture.get("use_pre_att_bias") or architecture.get("simplify_decoders")
    return NetConfig(probe_rows=rows, **({"tied_size": n} if tied else {}), **architecture)


@dataclasses.dataclass(frozen=True)
class WitnessRun:
    """Node 1's colour logits [rows, 2 graphs, 3] for rows 1 … ``diverges`` (row 0 is given),
    the true colours there and the row at which they differ."""

    architecture: dict
    logits: np.ndarray
    truth: np.ndarray
    diverges: int

    @property
    def largest_difference(self) -> float:
        """max |logit(early) − logit(late)| over the rows whose inputs agree at node 1."""
        return float(np.max(np.abs(self.logits[:, 0] - self.logits[:, 1])))

    @property
    def predicted(self) -> np.ndarray:
        return np.argmax(self.logits, -1)          # [rows, 2]

    @property
    def both_right(self) -> bool:
        """Whether node 1's colour is right in both graphs at every row up to the divergence."""
        return bool(np.all(self.predicted == self.truth))

    def to_json(self) -> dict:
        return {"architecture": self.architecture, "diverges_at_row": self.diverges,
                "largest_logit_difference": self.largest_difference,
                "predicted_at_divergence": self.predicted[-1].tolist(),
                "truth_at_divergence": self.truth[-1].tolist(), "both_right": self.both_right}


def run_witness(params, net_config: NetConfig, n: int = 3) -> WitnessRun:
    """Both graphs through the network with the true hints fed back at every step."""
    batch = witness_batch(n)
    diverges = first_divergence(batch)
    forced = dataclasses.replace(net_config, hint_teacher_forcing=1.0, dropout_prob=0.0)
    _, hints, _ = _unroll(forced, params, batch, jax.random.PRNGKey(0), True)
    logits = np.asarray(hints["color"])[:diverges, :, WATCHED_NODE]            # predicts rows 1…
    truth = np.argmax(np.asarray(batch["hints"]["color"])[1:diverges + 1, :, WATCHED_NODE], -1)
    architecture = {f.name: getattr(net_config, f.name) for f in dataclasses.fields(NetConfig)
                    if f.name not in ("probe_rows", "edge_path")}
    return WitnessRun(architecture, logits, truth, diverges)


def random_params(net_config: NetConfig, seed: int, n: int = 3):
    """Fresh parameters as training draws them (``init_params``) for the witness's graph size."""
    return _init(net_config, jax.random.PRNGKey(seed), witness_batch(n))


# The architectures `gapsweep compile dfs_light` runs the witness on: dm-clrs's baseline, the
# paper's modifications, a wider processor (more heads, more message-passing steps, edge
# information), and dm-clrs's gatv2_full for contrast.
WITNESS_ARCHITECTURES = (
    ("dm-clrs gatv2 (baseline)", {"hidden_size": 128}),
    ("+ pre-attention bias, n-way pointer heads", {"hidden_size": 128, "use_pre_att_bias": True,
                                                   "simplify_decoders": True}),
    ("4 heads, 3 message-passing steps, edge info, no LN",
     {"hidden_size": 128, "nb_heads": 4, "nb_msg_passing_steps": 3, "use_edge_info": True,
      "use_ln": False}),
    ("dm-clrs gatv2_full (every pair attends)", {"hidden_size": 128, "attention": "full"}),
)


def witness_table(seeds: int = 4, n: int = 3) -> list[tuple[str, int, WitnessRun]]:
    """(label, seed, run) for every architecture of :data:`WITNESS_ARCHITECTURES` and ``seeds``
    parameter draws."""
    rows = []
    for label, architecture in WITNESS_ARCHITECTURES:
        net_config = net_config_for(n, **architecture)
        for seed in range(seeds):
            rows.append((label, seed, run_witness(random_params(net_config, seed, n), net_config, n)))
    return rows
