"""What the compiled training step writes to memory: the [B, n, n, H] tensors of each edge path.

    python benchmarks/step_hlo.py                          # bfs, hidden 128, batch 32, n = 16
    python benchmarks/step_hlo.py --algorithm dfs --hidden 16

Compiles value_and_grad of the unrolled loss (one seed, the batch's own trace length) on the
materialised and the low-rank edge paths and reads XLA's optimised HLO: per computation (the
first step, the scanned forward steps, the scanned backward steps), the top-level instructions
whose result is a [B, n, n, H] tensor (what is written to memory: a fusion's inputs and outputs
live in memory, what happens inside a fusion does not), and the matrix products over all B·n²
edges (an H × H one is the materialised path's ``W_edge`` / ``W_e`` / ``W_info``). Also prints
the XLA backend, so the same command reads a GPU's HLO where one is present.
"""

from __future__ import annotations

import argparse
import collections
import re

import jax
import jax.numpy as jnp
import numpy as np

from workers.config import TrainConfig
from workers.data import DataCache, make_request
from workers.model import make_net_config
from workers.model.forward import init_params, unroll
from workers.model.losses import total_loss

_INSTRUCTION = re.compile(r"^\s+(?:ROOT )?%?(\S+) = (\S+) ([\w-]+)\(")


def big_writes(hlo: str, shape: str) -> dict[str, collections.Counter]:
    """Per computation (fused computations excluded): how many top-level instructions of each
    opcode produce a tensor of ``shape`` (a stack of them, [T, …], included)."""
    found: dict[str, collections.Counter] = {}
    computation, fused = None, False
    pattern = re.compile(r"f32\[(\d+,)?" + re.escape(shape) + r"\]")
    for line in hlo.splitlines():
        if line and not line.startswith(" "):
            if line.startswith("ENTRY"):
                computation, fused = "ENTRY", False
            elif line.startswith("%"):
                computation = line.split()[0]
                fused = "fused" in computation or "wrapped" in computation
            continue
        m = _INSTRUCTION.match(line)
        if not m or fused or computation is None:
            continue
        _, result, opcode = m.groups()
        if opcode in ("parameter", "get-tuple-element", "bitcast", "tuple"):
            continue
        if pattern.match(result):
            found.setdefault(computation, collections.Counter())[opcode] += 1
    return found


def edge_dots(hlo: str, rows: int, hidden: int) -> collections.Counter:
    """Matrix products whose operand or result has ``rows`` (= B·n²) rows, by their shapes."""
    counter = collections.Counter()
    for line in hlo.splitlines():
        m = _INSTRUCTION.match(line)
        if not m or m.group(3) != "dot":
            continue
        dims = tuple(int(x) for x in re.findall(r"f32\[([\d,]+)\]", m.group(2))[0].split(","))
        if len(dims) >= 2 and np.prod(dims[:-1]) == rows:
            counter["result [" + ", ".join(map(str, dims)) + "]"] += 1
    return counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", default="bfs")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    device = jax.devices()[0]
    data = DataCache(args.cache_dir).get(
        make_request(args.algorithm, "train", args.n, max(64, args.batch), seed=3))
    data = data.take(np.arange(args.batch))
    batch = jax.tree_util.tree_map(jnp.asarray, data.as_batch())
    steps = int(data.lengths.max())
    batch["hints"] = {k: v[:steps] for k, v in batch["hints"].items()}
    print(f"backend {device.platform} ({device.device_kind}), jax {jax.__version__}; "
          f"{args.algorithm}, hidden {args.hidden}, batch {args.batch}, n = {args.n}, "
          f"{steps} hint steps")
    shape = f"{args.batch},{args.n},{args.n},{args.hidden}"
    for path in ("materialised", "low_rank"):
        net_config = make_net_config(TrainConfig(algorithm=args.algorithm, hidden_size=args.hidden),
                                     data.probe_table, edge_path=path)
        params = init_params(net_config, jax.random.PRNGKey(0), batch)

        def loss_and_grad(p, b, net_config=net_config):
            def loss(p):
                outputs, hints, _ = unroll(net_config, p, b, jax.random.PRNGKey(1), train=True)
                return total_loss(net_config, b, outputs, hints)
            return jax.value_and_grad(loss)(p)

        hlo = jax.jit(loss_and_grad).lower(params, batch).compile().as_text()
        print(f"\n{path} (K = {net_config.edge_channels} edge channels):")
        writes = big_writes(hlo, shape)
        total = sum(sum(c.values()) for c in writes.values())
        print(f"  top-level instructions writing a [{shape}] tensor (or a stack of them): {total}")
        for computation, counter in writes.items():
            where = ("entry (first step, outside the scan; the loss)" if computation == "ENTRY"
                     else f"scan body {computation[:28]}")
            print(f"    {where}: " + ", ".join(f"{k} {v}" for k, v in counter.most_common()))
        dots = edge_dots(hlo, args.batch * args.n * args.n, args.hidden)
        print(f"  matrix products with B·n² = {args.batch * args.n * args.n} result rows (all "
              f"edges): {sum(dots.values())}")
        for key, count in dots.most_common(8):
            print(f"    {count} × {key}")


if __name__ == "__main__":
    main()
