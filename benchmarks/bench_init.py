"""Speed of skew's sinusoidal init against torch's xavier_uniform_ on the same tensors.

Two cases (the issue's target: sinusoidal within 2x of xavier_uniform_):

- one 4096 x 4096 float32 matrix: ``sinusoidal_`` vs ``torch.nn.init.xavier_uniform_``;
- all of torchvision's ResNet-50 (weights=None): ``skew.init.apply(model, "sinusoidal")`` (which also
  zeroes the biases and builds its per-parameter table) vs ``xavier_uniform_`` looped over the same
  weight tensors; ``sinusoidal_`` looped over them and ``apply(model, "xavier_uniform")`` are shown too.

Each timing is the median of ``--repeats`` runs after one warm-up run. ``sinusoidal_`` computes in
float64 (its O(m + n) sines on the CPU, the O(mn) products on the tensor's device) and casts, while
``xavier_uniform_`` draws float32 directly.

Without ``--device`` it runs on the CPU and, when CUDA is available, again on the GPU with every
tensor built on the device (the issue's GPU target: ``sinusoidal_`` within 2x of
``xavier_uniform_`` on a CUDA tensor); without CUDA the GPU section is skipped and says so.

On one H200 (torch 2.11, 2026-11-29) a 4096 x 4096 CUDA tensor took 1.29 ms before the Triton
kernel (26x xavier_uniform_'s 0.05 ms) and 0.19-0.24 ms with it (3.9-5.2x); ResNet-50's weights in
a loop 42.8 ms -> 2.7 ms (3.1x the xavier loop). The rest is host time around the one launch.

A later run of the same (H200, torch 2.11 + Triton 3.6) showed 0.57 ms (12.4x) and 18.7 ms (29x)
again: the kernel's wrapper returned None, which ``sinusoidal_`` read as "could not launch", so the
torch form ran again after every launch. With that fixed: 0.14 ms (2.7x) and 2.4 ms (3.3x).

Usage:
    .venv/bin/python benchmarks/bench_init.py [--repeats 7] [--threads 1] [--size 4096] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchvision

from skew.init import apply, sinusoidal_
from skew.layers import select_layers


def median_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> list[tuple[str, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case (median kept)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--size", type=int, default=4096, help="side of the square matrix")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cpu, then cuda if any)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device is not None:
        return run(args, torch.device(args.device))
    rows = run(args, torch.device("cpu"))
    if torch.cuda.is_available():
        rows += run(args, torch.device("cuda"))
    else:
        print("(GPU section skipped: CUDA is not available)")
    return rows


def run(args: argparse.Namespace, device: torch.device) -> list[tuple[str, float, float]]:
    """Time every case on ``device`` and print the table."""

    matrix = torch.empty(args.size, args.size, device=device)
    t_xavier = median_ms(lambda: torch.nn.init.xavier_uniform_(matrix), args.repeats, device)
    t_sin = median_ms(lambda: sinusoidal_(matrix), args.repeats, device)

    model = torchvision.models.resnet50(weights=None).to(device)
    weights = [m.weight for _, m in select_layers(model)]
    n_params = sum(w.numel() for w in weights)

    def xavier_loop() -> None:
        with torch.no_grad():
            for w in weights:
                torch.nn.init.xavier_uniform_(w)

    def sinusoidal_loop() -> None:
        for w in weights:
            sinusoidal_(w)

    t_r_xavier = median_ms(xavier_loop, args.repeats, device)
    t_r_sin = median_ms(sinusoidal_loop, args.repeats, device)
    t_r_apply = median_ms(lambda: apply(model, "sinusoidal"), args.repeats, device)
    t_r_apply_x = median_ms(lambda: apply(model, "xavier_uniform"), args.repeats, device)

    rows = [
        (f"{args.size}x{args.size}: xavier_uniform_", t_xavier, 1.0),
        (f"{args.size}x{args.size}: sinusoidal_", t_sin, t_sin / t_xavier),
        (f"resnet50 ({len(weights)} weights, {n_params / 1e6:.1f}M): xavier_uniform_ loop", t_r_xavier, 1.0),
        ("resnet50: sinusoidal_ loop", t_r_sin, t_r_sin / t_r_xavier),
        ("resnet50: apply(model, 'sinusoidal')", t_r_apply, t_r_apply / t_r_xavier),
        ("resnet50: apply(model, 'xavier_uniform')", t_r_apply_x, t_r_apply_x / t_r_xavier),
    ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {args.threads} thread(s)"
    print(f"device: {name}; torch {torch.__version__}; median of {args.repeats} runs")
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'ms':>9}  {'vs xavier':>9}")
    for label, ms, ratio in rows:
        print(f"{label:<{width}}  {ms:9.2f}  {ratio:8.2f}x")
    return rows


if __name__ == "__main__":
    main()
