"""The fixed cost of ``skew.report`` outside the forward pass, part by part (issue 12).

Per report() call on one batch (after a warm-up, median of ``--repeats``), the wall time of each
set-up part: ``_weight_table`` (row sums and norms of every weight, :func:`skew.weights.neuron_table`),
``_sites``, ``_info``, ``_skipped`` and the :class:`skew.result.Report` construction (the
``.neurons`` / ``.layers`` frames), plus ``report(1) − bare(1)`` (the set-up and one batch's hook
work). 1 thread (OMP_NUM_THREADS=1 and ``torch.set_num_threads(1)``). ``--no-gc`` turns the
garbage collector off, so that a collection is not billed to whichever part it happens to
interrupt; ``--profile`` prints a cProfile of one more call, sorted by own time.

Measured on the shared 2-core Xeon (the other core busy with other jobs), torch 2.14.1 CPU, 1
thread, ``--no-gc``, ms; medians over 3 interleaved invocations (each a median of 5) of the tree
before (569b4ff) and after issue 12's set-up work:

    ====================  ===============  ===============
    part                  ResNet-18 b64    MLP 4×2048 b256
    ====================  ===============  ===============
    _weight_table         28.0 → 21.1      27.2 → 25.5
    _sites                 4.4 → 2.6        3.5 → 1.4
    _info                  5.7 → 2.1        2.3 → 1.3
    _skipped               1.4 → 2.3        0.8 → 1.9
    Report                26.5 → 10.5       8.2 → 6.1
    sum of the parts      66.0 → 38.6      42.0 → 36.2
    report(1) − bare(1)  115.5 → 88.5      61.2 → 53.1
    ====================  ===============  ===============

``_skipped`` is unchanged code: called a second time in a row it takes 0.6 ms in both trees; the
first call pays for reloading the module objects into cache after the weights were read.

Then the row sums and norms of float32 CPU weights moved to the compiled kernel (``skew._fused.row_stats``:
one float64 read of each weight): ``_weight_table`` 21.1 → 16.1 ms (ResNet-18) and 25.5 → 16.8 ms (MLP),
report(1) − bare(1) 85 and 41 ms in the same run (one run, the machine shared).

What was left before that: the float64 row sums and norms themselves (a float32 → float64 conversion, a sum
and a norm over every weight: about 13 ms for ResNet-18's 11.7 M weights, 18 ms for the MLP's
16.8 M), ``_Site.allocate`` inside ``_sites`` and about 0.4 ms per layer of per-layer statistics
(Spearman, OUI, λ) in the Report.

On one H200 (torch 2.11, batch 64, 224², median of 5; the parts synchronise, so they add up to more
than the unsynchronised set-up of ``bench_report.py``), before this release's set-up work, ms:

    =======================  ==========  ========
    part                     ResNet-50   ViT-B/16
    =======================  ==========  ========
    Report                   84.9        112.6
    observe (first batch)    29.5        65.6
    _weight_table            26.8        24.8
    states                   18.1        36.1
    _sites                   9.8         11.8
    _preserved               8.9         2.0
    finish_batch             8.1         7.0
    _info, _skipped          6.8         8.9
    report(1) - bare(1)      207.1       228.6
    =======================  ==========  ========

Report was mostly the pairwise OUI (40 ms of ResNet-50's 85: the Hamming distances of 8 samples'
full patterns, now one compiled pass, 32 -> 2.5 ms on the CPU), _weight_table a synchronising
``torch.equal`` per buffer (159) and two synchronising copies per layer (now one comparison and
one copy per device). Not re-timed on a GPU. On the CPU (ResNet-50, batch 8, 224²) report(1) −
bare(1) went 560 -> 390 ms and Report 60 -> 30 ms (numpy's packbits for the first batch's
patterns did most of the rest).

On a GPU (``--device cuda``, also ``resnet50`` and ``vit_b_16``) each part ends with a device
synchronisation, so that work it queued is billed to it; ``_preserved`` is the model's state kept
and restored (flags, buffers), ``observe`` the hook bodies (host time only), ``finish_batch``
level 2 and ``states`` the per-layer results.

Usage:
    python benchmarks/bench_report_setup.py                  # both models
    python benchmarks/bench_report_setup.py resnet50 --device cuda --profile
    python benchmarks/bench_report_setup.py mlp --profile
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import os
import pstats
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from skew import analyzer, result  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_report  # noqa: E402

PARTS = ("_weight_table", "_sites", "_info", "_activation_table", "_skipped")
RUN_PARTS = ("observe", "finish_batch", "states")  # observe: the hook bodies (not synchronised)


def build(case: str, device: torch.device) -> tuple[nn.Module, torch.Tensor]:
    """``bench_report``'s models and batch shapes (resnet18, mlp, resnet50, vit_b_16)."""
    model, shape = bench_report.build(case, False)
    return model.to(device).eval(), torch.randn(*shape, device=device)


def instrument(times: dict[str, float], device: torch.device) -> None:
    """Wrap each set-up part (and Report.__init__, the model's state kept and restored, level 2)
    to add its wall time to ``times``; on a GPU each part but the hook bodies ends with a sync."""

    def timed(key, f, sync=True):
        def g(*args, **kwargs):
            t = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                if sync:
                    bench_report.sync(device)
                times[key] = times.get(key, 0.0) + time.perf_counter() - t

        return g

    for name in PARTS:
        setattr(analyzer, name, timed(name, getattr(analyzer, name)))
    for name in RUN_PARTS:
        setattr(analyzer._Run, name, timed(name, getattr(analyzer._Run, name), sync=name != "observe"))
    result.Report.__init__ = timed("Report", result.Report.__init__)
    preserved = analyzer._preserved

    @contextlib.contextmanager
    def kept(model, mode):
        t = time.perf_counter()
        with preserved(model, mode):
            bench_report.sync(device)
            times["_preserved"] = times.get("_preserved", 0.0) + time.perf_counter() - t
            try:
                yield
            finally:
                t = time.perf_counter()
        bench_report.sync(device)
        times["_preserved"] += time.perf_counter() - t

    analyzer._preserved = kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="resnet18, mlp, resnet50, vit_b_16 (default: resnet18 mlp)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-gc", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.no_gc:
        gc.disable()
    times: dict[str, float] = {}
    device = torch.device(args.device)
    instrument(times, device)
    for case in args.cases or ["resnet18", "mlp"]:
        model, x = build(case, device)
        with torch.no_grad():
            model(x)
        analyzer.report(model, [x], progress=False)
        fixed, parts = [], {}
        for _ in range(args.repeats):
            bench_report.sync(device)
            with torch.no_grad():
                t = time.perf_counter()
                model(x)
                bench_report.sync(device)
                bare = time.perf_counter() - t
            times.clear()
            t = time.perf_counter()
            analyzer.report(model, [x], progress=False)
            bench_report.sync(device)
            fixed.append(time.perf_counter() - t - bare)
            for k, v in times.items():
                parts.setdefault(k, []).append(v)
        shown = "  ".join(f"{k} {1e3 * statistics.median(v):.1f}" for k, v in parts.items())
        print(f"{case} on {device}: report(1) - bare(1) {1e3 * statistics.median(fixed):.1f} ms;  {shown}  (ms, "
              f"median of {args.repeats}, {torch.get_num_threads()} thread)")
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            analyzer.report(model, [x], progress=False)
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
