"""Cost of ``skew.report`` against a bare ``torch.no_grad()`` forward over the same batches.

Two models: torchvision ResNet-18 (weights=None, batch 64, 3×64×64) and a wide bias-carrying ReLU
MLP (4 × Linear(2048 → 2048), batch 256). For each: the wall time of the bare forward loop and of
``report()`` over the same pre-built batches (median of ``--repeats`` alternating runs after a
warm-up; ``report()``'s time includes its fixed set-up: weight statistics and the result frames),
and the peak memory of each at 10 and at 100 batches, every measurement in a fresh subprocess
(CPU: the peak resident set size, VmHWM, reset after start-up so that imports do not mask it,
minus the resident size at that point; tracemalloc cannot see torch's allocations; CUDA:
``torch.cuda.max_memory_allocated`` minus what the model held before the run). Batches are generated one at a time
for the memory runs, so only what the run itself keeps can grow.

Usage:
    python benchmarks/bench_report.py                 # CPU, full sizes
    python benchmarks/bench_report.py --device cuda
    python benchmarks/bench_report.py --quick         # small sizes, a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from skew.analyzer import report  # noqa: E402

SIZES = {"batch": None, "image": None}


def build(case: str, quick: bool) -> tuple[nn.Module, tuple[int, ...]]:
    """The model and the shape of one batch (``--batch-size`` / ``--image-size`` override)."""
    torch.manual_seed(0)
    if case == "resnet18":
        import torchvision

        model = torchvision.models.resnet18(weights=None)
        side = SIZES["image"] or (32 if quick else 64)
        return model, (SIZES["batch"] or (8 if quick else 64), 3, side, side)
    if case == "mlp":
        width = 256 if quick else 2048
        layers: list[nn.Module] = []
        for _ in range(4):
            layers += [nn.Linear(width, width), nn.ReLU()]
        return nn.Sequential(*layers), (SIZES["batch"] or (32 if quick else 256), width)
    raise SystemExit(f"unknown case {case!r}; use resnet18 or mlp")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare(model: nn.Module, batches) -> None:
    with torch.no_grad():
        for x in batches:
            model(x)


def timing(case: str, device: torch.device, n_batches: int, repeats: int, quick: bool) -> dict:
    """Median wall times of the bare loop and of report() over 1 and over ``n_batches`` batches.

    overhead = report(N) / bare(N) − 1 (the headline); the fixed set-up cost is report(1) − bare(1)
    and the streaming overhead (per batch, set-up excluded) is
    (report(N) − report(1)) / (bare(N) − bare(1)) − 1.
    """
    model, shape = build(case, quick)
    model = model.to(device).eval()
    gen = torch.Generator(device="cpu").manual_seed(1)
    batches = [torch.randn(*shape, generator=gen).to(device) for _ in range(n_batches)]
    runs = {
        "bare1": lambda: bare(model, batches[:1]),
        "report1": lambda: report(model, batches[:1], progress=False),
        "bare": lambda: bare(model, batches),
        "report": lambda: report(model, batches, progress=False),
    }
    for fn in runs.values():  # warm-up: allocator, kernels, lazy imports
        fn()
        sync(device)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for key, fn in runs.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    stream = (med["report"] - med["report1"]) / max(med["bare"] - med["bare1"], 1e-12) - 1.0
    return {"case": case, "batches": n_batches, "batch": list(shape), "bare_s": med["bare"],
            "report_s": med["report"], "overhead_pct": 100.0 * (med["report"] / med["bare"] - 1.0),
            "fixed_s": med["report1"] - med["bare1"], "stream_overhead_pct": 100.0 * stream, "times": times}


def memory_child(case: str, device: str, n_batches: int, what: str, quick: bool) -> None:
    """Run in a fresh process; print the peak memory of one run as JSON."""
    dev = torch.device(device)
    model, shape = build(case, quick)
    model = model.to(dev).eval()

    def stream():
        gen = torch.Generator(device="cpu").manual_seed(1)
        for _ in range(n_batches):
            yield torch.randn(*shape, generator=gen).to(dev)

    start = 0
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        start = torch.cuda.memory_allocated(dev)
    else:
        start = _reset_peak_rss()
    if what == "bare":
        bare(model, stream())
    else:
        report(model, stream(), progress=False)
    sync(dev)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev)
    else:
        peak = _status("VmHWM")
    print(json.dumps({"peak_bytes": int(peak - start)}))


def _reset_peak_rss() -> int:
    """Reset the peak RSS (VmHWM, Linux ≥ 4.0) so start-up does not mask the run; return the RSS now."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return _status("VmRSS")


def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise SystemExit(f"/proc/self/status has no {key}: the CPU memory measurement needs Linux")


def memory(case: str, device: str, n_batches: int, what: str, quick: bool) -> int:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", case, device, str(n_batches), what]
    if quick:
        cmd.append("--quick")
    for flag, key in (("--batch-size", "batch"), ("--image-size", "image")):
        if SIZES[key]:
            cmd += [flag, str(SIZES[key])]
    if torch.get_num_threads():
        cmd += ["--threads", str(torch.get_num_threads())]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_bytes"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, default=10, help="batches per timed run (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (default 5; median)")
    parser.add_argument("--memory-batches", type=int, nargs="*", default=[10, 100])
    parser.add_argument("--cases", nargs="*", default=["resnet18", "mlp"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="small models and batches (smoke test)")
    parser.add_argument("--batch-size", type=int, default=None, help="override the batch size")
    parser.add_argument("--image-size", type=int, default=None, help="override ResNet-18's input side (64)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--memory-child", nargs=4, metavar=("CASE", "DEVICE", "N", "WHAT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    SIZES.update(batch=args.batch_size, image=args.image_size)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        case, device, n, what = args.memory_child
        memory_child(case, device, int(n), what, args.quick)
        return 0
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"skew.report benchmark on {name}, torch {torch.__version__}")
    results = []
    print(f"\n{'model':<10} {'batch':<16} {'batches':>7} {'bare s':>9} {'report s':>9} {'overhead':>9}"
          f" {'set-up s':>9} {'per-batch':>10}")
    for case in args.cases:
        r = timing(case, device, args.batches, args.repeats, args.quick)
        results.append(r)
        print(f"{case:<10} {'x'.join(map(str, r['batch'])):<16} {r['batches']:>7} {r['bare_s']:>9.3f} "
              f"{r['report_s']:>9.3f} {r['overhead_pct']:>8.1f}% {r['fixed_s']:>9.3f} {r['stream_overhead_pct']:>9.1f}%")
    print("overhead = report/bare - 1 over the same batches; set-up = report(1 batch) - bare(1 batch);"
          " per-batch = overhead of each further batch, set-up excluded")
    if args.memory_batches:
        unit = "MiB above the start " + ("(cuda max allocated)" if device.type == "cuda" else "(peak RSS)")
        print(f"\npeak memory, {unit}, each in a fresh process")
        head = "".join(f"{f'bare@{n}':>11}{f'report@{n}':>12}" for n in args.memory_batches)
        print(f"{'model':<10}{head}{'report growth':>15}")
        for case in args.cases:
            peaks = {}
            for n in args.memory_batches:
                for what in ("bare", "report"):
                    peaks[(what, n)] = memory(case, args.device, n, what, args.quick) / 2**20
            cells = "".join(f"{peaks[('bare', n)]:>11.1f}{peaks[('report', n)]:>12.1f}" for n in args.memory_batches)
            lo, hi = min(args.memory_batches), max(args.memory_batches)
            growth = peaks[("report", hi)] - peaks[("report", lo)]
            print(f"{case:<10}{cells}{growth:>+14.1f}")
            results.append({"case": case, "memory_mib": {f"{w}@{n}": v for (w, n), v in peaks.items()}})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": name, "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
