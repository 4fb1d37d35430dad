"""Where ``skew.report`` spends its time: torch.profiler tables of one run against a bare forward.

Builds the same models and batches as ``bench_report.py`` (``--case``), runs report() once to warm
up (kernels compiled, allocator grown), then profiles a bare no_grad forward and report() over the
same ``--batches`` batches and prints, for each, the top operators by device time (CUDA) and by
CPU self time, and the number of kernel launches per batch.

Usage:
    python benchmarks/profile_report.py --case resnet50 --device cuda
    python benchmarks/profile_report.py --case resnet18 --quick          # CPU
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import bench_report  # noqa: E402

from skew.analyzer import report  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="resnet18")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--rows", type=int, default=18, help="operators listed per table")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    dev = torch.device(args.device)
    model, shape = bench_report.build(args.case, args.quick)
    model = model.to(dev).eval()
    batches = [torch.randn(*shape, device=dev) for _ in range(args.batches)]
    t0 = time.perf_counter()
    report(model, batches[:1], progress=False)
    bench_report.sync(dev)
    print(f"{args.case} {shape} on {dev}: first report() of the process (kernels compiled) "
          f"{time.perf_counter() - t0:.2f} s")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    for what, fn in (("bare", lambda: bench_report.bare(model, batches)),
                     ("report", lambda: report(model, batches, progress=False))):
        fn()
        bench_report.sync(dev)
        with profile(activities=acts) as prof:
            t0 = time.perf_counter()
            fn()
            bench_report.sync(dev)
            wall = time.perf_counter() - t0
        events = prof.key_averages()
        launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC",
                                                           "cuLaunchKernelEx"))
        print(f"\n=== {what}: {wall * 1e3:.1f} ms wall under the profiler, {launches / args.batches:.0f} kernel "
              f"launches per batch")
        if dev.type == "cuda":
            print(events.table(sort_by="self_cuda_time_total", row_limit=args.rows, max_name_column_width=60))
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=60))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
