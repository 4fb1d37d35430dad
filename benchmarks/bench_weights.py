"""Speed of ``skew.weights.layer_table`` (``skew inspect``) on one 4096 x 1024 layer.

Cases (the issue's target: a 4096 x 1024 layer in seconds, where the quadratic pair search took
minutes on identical rows):

- ``random``: i.i.d. N(0, 1) rows (no parallel pairs: the screening finds no candidate);
- ``identical``: 4096 equal rows, half of them negated (one group: C(2048, 2) parallel pairs per sign
  class and 2048² antiparallel pairs, counted without looking at a pair);
- ``near-identical``: equal rows plus 1e-7 noise (no two rows equal bit for bit: every pair is a
  candidate, verified by float64 matrix products; the worst case).

Each timing is the median of ``--repeats`` runs.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_weights.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from skew.weights import layer_table


def _layer(kind: str, m: int, n: int) -> nn.Linear:
    g = torch.Generator().manual_seed(0)
    if kind == "random":
        w = torch.randn(m, n, generator=g)
    elif kind == "identical":
        w = torch.ones(m, n)
        w[::2] *= -1.0
    else:
        w = torch.ones(m, n) + 1e-7 * torch.randn(m, n, generator=g)
    layer = nn.Linear(n, m, bias=False)
    with torch.no_grad():
        layer.weight.copy_(w)
    return layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--m", type=int, default=4096)
    parser.add_argument("--n", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for kind in ("random", "identical", "near-identical"):
        layer = _layer(kind, args.m, args.n)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            row = layer_table(layer).iloc[0]
            times.append(time.perf_counter() - start)
        print(
            f"{kind:>15}: {statistics.median(times):6.2f} s  "
            f"(parallel {row.parallel_pairs}, antiparallel {row.antiparallel_pairs}, rank {row['rank']})"
        )


if __name__ == "__main__":
    main()
