"""Host (CPU) cost of one level-1 call on CUDA: the Triton kernels against the eager torch forms.

On a GPU, report() keeps up with the forward pass only while the host issues its work faster than
the device runs it, so the host time per hook call matters as much as the device time. Each line
issues ``--calls`` calls without synchronising and divides the host time by their number; a
second column gives the device time per call (after a final synchronisation).

Usage (CUDA only):
    python benchmarks/bench_launch.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from skew import _triton  # noqa: E402
from skew.accumulators import input_partial, level1  # noqa: E402


def per_call(fn, calls: int) -> tuple[float, float]:
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    host = time.perf_counter() - t0
    torch.cuda.synchronize()
    total = time.perf_counter() - t0
    return 1e6 * host / calls, 1e6 * total / calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("CUDA is not available: nothing to measure")
        return 0
    small = torch.randn(64, 64, 7, 7, device="cuda")
    big = torch.randn(64, 256, 56, 56, device="cuda")
    z3s, z3b = small.view(64, 64, -1), big.view(64, 256, -1)
    cases = [
        ("triton rows, 64x64x49", lambda: _triton.rows(z3s, 2)),
        ("triton moments, 64x64x7x7", lambda: _triton.moments(small)),
        ("level1 (triton), 64x64x49", lambda: level1(z3s, 2)),
        ("input_partial (triton), 64x64x7x7", lambda: input_partial(small)),
        ("level1 + input, one launch, 64x64x49", lambda: level1(z3s, 2, x=small)),
        ("torch var_mean, 64x64x49", lambda: torch.var_mean(z3s, dim=2, correction=0)),
        ("triton rows, 64x256x3136", lambda: _triton.rows(z3b, 2)),
        ("triton moments, 64x256x56x56", lambda: _triton.moments(big)),
        ("level1 + input, one launch, 64x256x3136", lambda: level1(z3b, 2, x=big)),
        ("torch var_mean, 64x256x3136", lambda: torch.var_mean(z3b, dim=2, correction=0)),
        ("torch (z > 0).sum, 64x256x3136", lambda: (z3b > 0).sum(2)),
    ]
    print(f"{'call':<36} {'host us':>9} {'total us':>9}")
    for name, fn in cases:
        host, total = per_call(fn, args.calls)
        print(f"{name:<36} {host:>9.1f} {total:>9.1f}")
    # device time of the fused kernel's output part under other tile sizes and warp counts
    kernel = _triton._kernels()[2]
    R, C, P = z3b.shape
    k = torch.empty(4, R, C, dtype=torch.float64, device="cuda")
    print(f"{'rows tile (ROWS x BLOCK), warps':<36} {'device us':>9}")
    for rows_, block, warps in ((2, 512, 4), (4, 512, 4), (4, 512, 8), (8, 512, 8), (1, 1024, 4), (2, 1024, 8)):
        grid = (-(-(R * C) // rows_),)

        def launch(grid=grid, rows_=rows_, block=block, warps=warps):
            kernel[grid](z3b, k[0], k[1], k[2], k[3], R * C, C, P, *z3b.stride(), 1, grid[0], z3b, k, 0, 0,
                         PD=2, TILE_A=rows_, TILE_B=block, XBLOCK=1024, num_warps=warps)

        _, total = per_call(launch, 200)
        print(f"{f'{rows_} x {block}, {warps} warps':<36} {total:>9.1f}")
    gb = big.numel() * 4 / 1e9
    print(f"(64x256x56x56 float32 is {gb:.3f} GB: at 4.0 TB/s one read takes {gb / 4e3 * 1e6:.0f} us)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
