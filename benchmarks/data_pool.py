"""Data-generation throughput: graphs/s per algorithm at n = 16 and n = 64 — dm-clrs's samplers
in one process and on all cores, and the JAX generators (``workers.data.fresh``) on the default
JAX device, in one run.

    python benchmarks/data_pool.py [--algorithms bfs,dfs] [--sizes 16,64] [--count16 2048] [--count64 1024]
    python benchmarks/data_pool.py --jax-only            # where dm-clrs is not installed (GPU machine)

Generation only (no cache I/O). The multi-process figure is measured on an already started pool:
starting it (each worker imports dm-clrs and TensorFlow) is a one-time cost, printed separately.
Graphs are identical either way (chunks are seeded independently of the process count).
The JAX column is the median of ``--reps`` calls of one jitted ``generate_batch`` of the same
number of graphs (sampling and trace, hints padded to ``trace_cap``), after a compiling call,
each blocked until its arrays are ready; "JAX ×" is its rate over dm-clrs's one-process rate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import workers  # noqa: E402,F401  (sets the project's XLA flags before JAX starts)
import jax  # noqa: E402

from workers.canary import cpu_model  # noqa: E402
from workers.data import ALGORITHMS, available_cores, make_request  # noqa: E402
from workers.data.fresh import generate_batch, trace_cap  # noqa: E402
from workers.data.requests import CHUNK_SIZE  # noqa: E402


def jax_rate(algorithm: str, n: int, count: int, reps: int) -> tuple[float, float]:
    """(graphs/s, mean trace length) of the jitted JAX generator making ``count`` graphs."""
    generate_jax = jax.jit(generate_batch, static_argnums=(1, 2, 3, 4))
    cap = trace_cap(algorithm, n)
    out = generate_jax(jax.random.PRNGKey(0), algorithm, n, count, cap)
    jax.block_until_ready(out)
    times = []
    for rep in range(reps):
        t0 = time.perf_counter()
        out = generate_jax(jax.random.PRNGKey(rep + 1), algorithm, n, count, cap)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t0)
    return count / statistics.median(times), float(out.batch["lengths"].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--sizes", default="16,64")
    parser.add_argument("--count16", type=int, default=4 * CHUNK_SIZE,
                        help="graphs generated at n <= 16")
    parser.add_argument("--count64", type=int, default=2 * CHUNK_SIZE,
                        help="graphs generated at larger n")
    parser.add_argument("--processes", type=int, default=available_cores())
    parser.add_argument("--reps", type=int, default=5, help="timed calls of the JAX generator")
    parser.add_argument("--jax-only", action="store_true", help="no dm-clrs columns")
    parser.add_argument("--data-only", action="store_true",
                        help="(gpu_check_prepare.sh) nothing to build: generation needs no cache")
    args = parser.parse_args()
    if args.data_only:
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    cores = args.processes
    print(f"machine: {cpu_model()}, {available_cores()} core(s) available; multi-process runs "
          f"use {cores}; JAX device: {jax.devices()[0].device_kind}")
    if args.jax_only:
        print(f"\n{'algorithm':<13}{'n':>4}{'graphs':>8}{'mean T':>9}{'JAX g/s':>12}")
        for algorithm in args.algorithms.split(","):
            for n in sizes:
                count = args.count16 if n <= 16 else args.count64
                rate, mean_t = jax_rate(algorithm, n, count, args.reps)
                print(f"{algorithm:<13}{n:>4}{count:>8}{mean_t:>9.1f}{rate:>12.0f}", flush=True)
        return
    from workers.data.generate import generate

    start = time.perf_counter()
    generate(make_request("bfs", "train", 4, 2 * CHUNK_SIZE), processes=cores)  # start the pool
    print(f"one-time start of {cores} worker processes (imports dm-clrs/TensorFlow): "
          f"{time.perf_counter() - start:.1f}s\n")

    header = f"{'algorithm':<13}{'n':>4}{'graphs':>8}{'mean T':>9}{'1 proc g/s':>12}" \
             f"{f'{cores} procs g/s':>14}{'speed-up':>10}{'JAX g/s':>12}{'JAX ×':>9}"
    print(header)
    print("-" * len(header))
    for algorithm in args.algorithms.split(","):
        for n in sizes:
            count = args.count16 if n <= 16 else args.count64
            request = make_request(algorithm, "train", n, count)
            rates = []
            for processes in (1, cores):
                t0 = time.perf_counter()
                data = generate(request, processes=processes)
                rates.append(count / (time.perf_counter() - t0))
            rate, _ = jax_rate(algorithm, n, count, args.reps)
            print(f"{algorithm:<13}{n:>4}{count:>8}{data.lengths.mean():>9.1f}{rates[0]:>12.0f}"
                  f"{rates[1]:>14.0f}{rates[1] / rates[0]:>9.2f}×{rate:>12.0f}"
                  f"{rate / rates[0]:>8.0f}×", flush=True)



if __name__ == "__main__":
    main()
