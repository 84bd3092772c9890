"""Pool-generation throughput: graphs/s per algorithm at n = 16 and n = 64, one process vs all cores.

    python benchmarks/data_pool.py [--algorithms bfs,dfs] [--sizes 16,64] [--count16 2048] [--count64 1024]

Generation only (no cache I/O). The multi-process figure is measured on an already started pool:
starting it (each worker imports dm-clrs and TensorFlow) is a one-time cost, printed separately.
Graphs are identical either way (chunks are seeded independently of the process count).
"""

from __future__ import annotations

import argparse
import platform
import time

from workers.data import ALGORITHMS, available_cores, make_request
from workers.data.generate import CHUNK_SIZE, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--sizes", default="16,64")
    parser.add_argument("--count16", type=int, default=4 * CHUNK_SIZE,
                        help="graphs generated at n <= 16")
    parser.add_argument("--count64", type=int, default=2 * CHUNK_SIZE,
                        help="graphs generated at larger n")
    parser.add_argument("--processes", type=int, default=available_cores())
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cores = args.processes
    print(f"machine: {platform.processor() or platform.machine()}, {available_cores()} core(s) "
          f"available; multi-process runs use {cores}")

    start = time.perf_counter()
    generate(make_request("bfs", "train", 4, 2 * CHUNK_SIZE), processes=cores)  # start the pool
    print(f"one-time start of {cores} worker processes (imports dm-clrs/TensorFlow): "
          f"{time.perf_counter() - start:.1f}s\n")

    header = f"{'algorithm':<13}{'n':>4}{'graphs':>8}{'mean T':>9}{'1 proc g/s':>12}" \
             f"{f'{cores} procs g/s':>14}{'speed-up':>10}"
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
            print(f"{algorithm:<13}{n:>4}{count:>8}{data.lengths.mean():>9.1f}{rates[0]:>12.0f}"
                  f"{rates[1]:>14.0f}{rates[1] / rates[0]:>9.2f}×", flush=True)


if __name__ == "__main__":
    main()
