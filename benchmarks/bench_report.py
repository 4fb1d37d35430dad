"""Cost of ``skew.report`` against a bare ``torch.no_grad()`` forward over the same batches.

Side by side, as ratios to the bare forward (median of ``--repeats`` interleaved runs after a
warm-up; every run goes over the same pre-built batches):

- ``bare``: the forward loop alone;
- ``minimal``: the reference line, a hand-written forward hook on the same layers that only
  counts Z > 0 and sums Z and Z² per neuron (eager torch, no shift, no input moments, no OUI);
- ``report``: ``skew.report(model, batches)``, including its fixed set-up (weight statistics,
  result frames); ``set-up`` = report(1 batch) − bare(1 batch) and ``per-batch`` the overhead of
  each further batch are shown beside it;
- ``in hooks``: the time spent inside skew's hooks and level 2 during ``report`` (the hook bodies
  and ``finish_batch``, wrapped), over the bare time: steadier than the whole-run ratio when the
  machine is shared, so the column to watch when changing skew's own work.

Models: torchvision ResNet-18 (weights=None, batch 64, 3×64×64) and a wide bias-carrying ReLU
MLP (4 × Linear(2048 → 2048), batch 256); with CUDA also ResNet-50 (batch 64, 224²) and ViT-B/16
(batch 64) on the GPU. Wall times are the headline; process CPU times (all threads) are printed
too, as they move less when the machine is shared. The thread count is fixed (``--threads``,
default 1, also OMP_NUM_THREADS) and printed. Then the peak memory at 10 and at 100 batches,
each in a fresh subprocess (CPU: the peak resident set size VmHWM, reset after start-up, minus
the resident size then; CUDA: ``torch.cuda.max_memory_allocated`` minus what the model held).

Measured with the compiled one-pass level 1 (``skew/_fused.py``) on the shared 2-core Xeon (a VM
whose host is shared: the bare forward itself moved by ±10 % between runs), torch 2.14.1 CPU, 1
thread, 10 batches, median of 5 interleaved runs per invocation; ranges over the invocations on
the final tree (8 for ResNet-18, 6 for the MLP), and the eager form (``SKEW_EAGER=1``, what runs
without a C compiler) once:

    ==================  ============  ============  ==================  ===============
    model               minimal hook  report        set-up / per-batch  report, eager
    ==================  ============  ============  ==================  ===============
    ResNet-18 b64 64²   1.26-1.40x    1.03-1.17x    0.05-0.09 s /       1.30x
                                                    0.99-1.15x
    MLP 4×2048 b256     1.11-1.21x    1.08-1.21x    0.03-0.05 s /       1.30x
                                                    1.04-1.16x
    ==================  ============  ============  ==================  ===============

Before this work (same machine, same day): report 1.40x and 1.37x, set-up 0.18 s and 0.07 s.
What changed, by size of effect: each activation is read once by a compiled kernel that computes
every row's shifted sums, positives, pattern bit and raster sign and merges the rows per neuron
(eager torch needed about six passes and an activation-sized temporary); layer inputs and weight
rows are summed in one float64 read each (also more exact: the eager float32 norm was off by
~3e-5 relative); level 2 for kernel-reduced calls runs on the host (in numpy then, one compiled
loop per call since), bit-identical to the torch path; an input shared by two layers (a ResNet block's first conv and its downsample) is read
once; the Report and the weight table are built from per-layer arrays in one pass
(``benchmarks/bench_report_setup.py``). The ≤ 1.10x target was met in 5 of 8 ResNet-18 runs and 1
of 6 MLP runs: the remaining cost is the one read of every activation and every layer input on a
memory-bound machine, the Python of 4-21 hook calls per batch, and the weight read at set-up.
Peak memory stays flat: report at 10 → 100 batches 88 → 89 MiB (ResNet-18) and 40 → 27 MiB (MLP)
above the start, allocator noise (the bare forward alone moves by 10-40 MiB between such runs).

A later session (same VM, 10 batches, median of 5) moved level 2 of kernel-reduced calls into one
compiled loop per call (``skew_fold``), let the outer kernel own its work arrays and add four
positions per pass (a just-written 256×2048 Linear output: 0.38 → 0.24 ms), prefetches the input
sums, and reads a layer input before Z where Z fits a core's cache (≤ 2 MiB), so that Z is still
cached for its consumer. Host time per hook call (``bench_hook_host.py``): Python and level 2 on a
4×Linear(16) MLP 222–248 → 151–153 µs; on the CUDA path with its kernels stubbed out (16 convs, on
the CPU, in place) the hook body 80–90 → 65–75 µs. The 10-batch ratios of the final tree, 4
invocations each: ResNet-18 1.07–1.21x, MLP 1.11–1.15x (per-batch 1.04–1.20x and 1.07–1.11x); the
previous tree, interleaved with the versions of that session: 1.03–1.15x and 1.11–1.24x. The minor
page faults column shows why single runs disagree: in some processes the heap left by earlier
allocations makes every batch map fresh pages (about 11,000 per batch in some ResNet-18 runs, bare
forward included, each about 2.7 µs here), in others none.

GPU (one H200, torch 2.11 + Triton 3.6, 10 batches of 64, median of 5; ``--extra eager modules``):
ResNet-50 224² went from 4.47x (before: var_mean, a comparison and a flag read with a host
synchronisation per hook call; weight statistics copied to the host block by block) to 2.95x
(set-up 0.12 s, each further batch 1.77x; 2.29x over 50 batches), ViT-B/16 from 2.30x to 1.68x
(each further batch 1.36x; 1.33x on module layers only, without the q/k/v recomputation); the
eager forms now give 3.90x and 1.95x, the hand-written minimal hook 2.10x and 1.14x. Those numbers
are for three Triton launches per hook call; the one launch per call of this release was not
timed on a GPU (no device time was left). Peak CUDA memory: the same at 10 and 30 batches.

The one launch per call, timed later (same GPU and versions): ResNet-50 2.74x (set-up 0.12 s, each
further batch 1.57x; 1.93x over 50 batches), ViT-B/16 1.81x (set-up 0.24 s, each further batch
1.41x; 1.38x on module layers only); eager 4.02x and 2.07x, minimal hook 2.11x and 1.15x. The
set-up then went part by part (``bench_report_setup.py --device cuda``); its fixes were not timed
on a GPU. On the CPU, this release against the previous one, interleaved, 3 invocations each:
ResNet-18 1.05-1.12x (previous 1.03-1.09x), MLP 1.11-1.18x (previous 1.10-1.14x); the per-batch
work on the CPU did not change (the minor faults column moved with the spread).

The next release (CPU only; no GPU was lent): the compiled kernels ask for the memory they read
next ahead of time (``__builtin_prefetch``; a just-written 16 MiB conv output 2.5 → 1.7 ms) and read
the layer input in the same pass as Z, a share of x after each share of Z (same bits as the
separate read). The time spent in the hooks over 10 batches, median of 5 (``observe`` wrapped),
previous tree → this one, interleaved: ResNet-18 141-144 → 121 ms, ViT-B/16 (batch 8) 1.26-1.35 →
1.15-1.21 s, MLP unchanged (26-34 ms; its input was already read while in cache). The whole-run
ratios cannot resolve a change of that size here: 3 interleaved invocations each gave ResNet-18
1.035-1.074x (start of the release 1.043-1.079x) and MLP 1.094-1.139x (1.043-1.104x); each further
batch 1.017-1.057x and 1.064-1.108x; set-up 0.035-0.045 s and 0.020-0.025 s.
With ``--threads 2`` (torch's default on that VM) the compiled kernels used to split any read
over 256K values over the threads; inside a forward pass that made the hooks about 30% slower
(``in hooks`` 0.146x → 0.114-0.117x on ResNet-18 and 0.101x → 0.076-0.079x on the MLP once reads
under 8 MiB stay on one thread; whole run 1.169x → 1.131-1.134x and 1.195x → 1.143-1.153x).
Then the compiled kernel wrote into a buffer per call site (``_triton.Buffers``, as on CUDA)
instead of allocating its (4, C) float64 results in every hook call: those few KiB per call made
glibc return memory and the next layer's outputs fault their pages in again (MLP: about 15,600 →
0-4,000 minor faults per 10 batches, its ReLUs 22 → 11 ms). Final tree, 1 thread, 6 runs (3 of
them interleaved with the release's starting tree, which gave 1.084-1.116x and 1.085-1.118x):
ResNet-18 1.029-1.095x, MLP 1.063-1.096x (each further batch 1.00-1.08x and 1.03-1.06x; in hooks
0.065-0.069x and 0.046-0.053x; set-up 0.034-0.054 s and 0.019-0.023 s). 2 threads, 4 runs:
1.10-1.19x and 1.13-1.18x.

The release after (CPU only; no GPU was lent): with more than one thread, the compiled kernel's reads
of 1 MiB or more are split in torch's own OpenMP pool (the library is built with -fopenmp and binds
to torch's libgomp) instead of on Python threads, which competed with torch's still-spinning workers.
2 threads, starting tree (12cc0bf) → this one, interleaved, 2 invocations each: in hooks
0.128-0.136x → 0.101-0.103x (ResNet-18) and 0.083-0.093x → 0.067-0.068x (MLP); whole run
1.128-1.211x → 1.095-1.127x and 1.169-1.205x → 1.122-1.132x; set-up of the MLP 0.024-0.026 →
0.020 s (its 64 MB of weights read on both cores). Three more runs of this tree, later: 0.989-1.164x
and 1.131-1.169x (in hooks 0.091-0.107x and 0.069-0.079x).
1 thread (nothing changed there), 7 invocations of this tree: ResNet-18 0.999-1.156x (median
1.088x; in hooks 0.068-0.080x), MLP 1.080-1.092x in 4 (0.045-0.055x); the starting tree,
interleaved with 2 of them: 1.031x and 1.117x. The ResNet-18 spread follows the page faults: where
the bare forward faulted pages in at every batch and report() did not, about 1.00x; where both did,
1.07-1.16x (the highest while the machine was busier: in hooks 0.080x).

Usage:
    python benchmarks/bench_report.py                 # CPU, full sizes, 1 thread
    python benchmarks/bench_report.py --threads 2 --memory-batches
    python benchmarks/bench_report.py --quick         # small sizes, a smoke test
    python benchmarks/bench_report.py --device cuda --cases resnet50 vit_b_16 --gpu-cases --extra eager modules
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
EXTRA: set[str] = set()
HOOKS = {"s": 0.0}  # wall time inside skew's hooks and level 2 so far (see count_hook_time)


def count_hook_time() -> None:
    """Add the wall time of skew's hook bodies and level 2 (``_Run.observe``, ``_Run.finish_batch``)
    to ``HOOKS`` (wrapped once per process). Less noisy than whole-run ratios on a shared machine,
    it shows the effect of a change to skew's own work; on a GPU it is host time (launches)."""
    from skew import analyzer

    if getattr(analyzer._Run, "_bench_timed", False):
        return
    def timed(f):
        def run(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return f(self, *args, **kwargs)
            finally:
                HOOKS["s"] += time.perf_counter() - t0

        return run

    for name in ("observe", "finish_batch"):
        setattr(analyzer._Run, name, timed(getattr(analyzer._Run, name)))
    analyzer._Run._bench_timed = True


def eager(fn):
    """Run ``fn`` in the eager level-1 forms: ``SKEW_EAGER`` set (read at each call by the CUDA
    kernels) and the compiled CPU kernel, which reads it once per process, set aside; then restore."""
    from skew import _fused

    old, kept = os.environ.get("SKEW_EAGER"), dict(_fused._state)
    os.environ["SKEW_EAGER"] = "1"
    _fused._state["lib"] = None
    try:
        return fn()
    finally:
        _fused._state.clear()
        _fused._state.update(kept)
        if old is None:
            del os.environ["SKEW_EAGER"]
        else:
            os.environ["SKEW_EAGER"] = old


def build(case: str, quick: bool) -> tuple[nn.Module, tuple[int, ...]]:
    """The model and the shape of one batch (``--batch-size`` / ``--image-size`` override)."""
    torch.manual_seed(0)
    if case in ("resnet18", "resnet50"):
        import torchvision

        model = getattr(torchvision.models, case)(weights=None)
        side = SIZES["image"] or (32 if quick else (64 if case == "resnet18" else 224))
        return model, (SIZES["batch"] or (8 if quick else 64), 3, side, side)
    if case == "vit_b_16":
        import torchvision

        model = torchvision.models.vit_b_16(weights=None)
        return model, (SIZES["batch"] or (8 if quick else 64), 3, 224, 224)
    if case == "mlp":
        width = 256 if quick else 2048
        layers: list[nn.Module] = []
        for _ in range(4):
            layers += [nn.Linear(width, width), nn.ReLU()]
        return nn.Sequential(*layers), (SIZES["batch"] or (32 if quick else 256), width)
    raise SystemExit(f"unknown case {case!r}; use resnet18, mlp, resnet50 or vit_b_16")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare(model: nn.Module, batches) -> None:
    with torch.no_grad():
        for x in batches:
            model(x)


def minimal(model: nn.Module, batches) -> None:
    """The reference line: per neuron, count Z > 0 and sum Z and Z², nothing else (no shift, no OUI)."""
    acc: dict = {}

    def hook(module, args, z):
        dims = (0, *range(2, z.dim())) if isinstance(module, nn.modules.conv._ConvNd) else tuple(range(z.dim() - 1))
        s = acc.setdefault(module, [0, 0, 0])
        s[0] = s[0] + (z > 0).sum(dims)
        s[1] = s[1] + z.sum(dims)
        s[2] = s[2] + (z * z).sum(dims)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        bare(model, batches)
    finally:
        for h in handles:
            h.remove()


def timing(case: str, device: torch.device, n_batches: int, repeats: int, quick: bool) -> dict:
    """Median wall and CPU times of bare, minimal and report() over ``n_batches`` (and 1) batches.

    Ratios are to the bare forward over the same batches. The fixed set-up cost is
    report(1) − bare(1); the per-batch overhead, set-up excluded, is
    (report(N) − report(1)) / (bare(N) − bare(1)) − 1.
    """
    model, shape = build(case, quick)
    model = model.to(device).eval()
    gen = torch.Generator(device="cpu").manual_seed(1)
    batches = [torch.randn(*shape, generator=gen).to(device) for _ in range(n_batches)]
    runs = {
        "bare": lambda: bare(model, batches),
        "minimal": lambda: minimal(model, batches),
        "report": lambda: report(model, batches, progress=False),
        "bare1": lambda: bare(model, batches[:1]),
        "report1": lambda: report(model, batches[:1], progress=False),
    }
    if "eager" in EXTRA:  # the eager level-1 forms (no compiled CPU kernel, no Triton on CUDA)
        runs["eager"] = lambda: eager(lambda: report(model, batches, progress=False))
    if "modules" in EXTRA:  # module layers only: no q/k/v projections recomputed from attention inputs
        runs["modules"] = lambda: report(model, batches, progress=False, layers=(nn.Linear, nn.Conv2d))
    count_hook_time()
    for fn in runs.values():  # warm-up: allocator, kernels, lazy imports, skew's compiled kernel
        fn()
        sync(device)
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    faults: dict[str, list[int]] = {k: [] for k in runs}
    hooks: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for key, fn in runs.items():
            sync(device)
            t0, c0, f0, h0 = time.perf_counter(), time.process_time(), _minor_faults(), HOOKS["s"]
            fn()
            sync(device)
            wall[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
            faults[key].append(_minor_faults() - f0)
            hooks[key].append(HOOKS["s"] - h0)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    stream = (med["report"] - med["report1"]) / max(med["bare"] - med["bare1"], 1e-12)
    extra = {f"{k}_x": med[k] / med["bare"] for k in ("eager", "modules") if k in med}
    return {
        **extra,
        "case": case, "batches": n_batches, "batch": list(shape), "bare_s": med["bare"],
        "minimal_x": med["minimal"] / med["bare"], "report_x": med["report"] / med["bare"],
        "cpu_minimal_x": cmed["minimal"] / cmed["bare"], "cpu_report_x": cmed["report"] / cmed["bare"],
        "setup_s": med["report1"] - med["bare1"], "per_batch_x": stream, "wall": wall, "cpu": cpu,
        "hooks_x": statistics.median(hooks["report"]) / med["bare"], "hooks": hooks,
        "faults": faults, "faults_bare": statistics.median(faults["bare"]) / n_batches,
        "faults_report": statistics.median(faults["report"]) / n_batches,
    }


def _minor_faults() -> int:
    """Minor page faults of this process so far (fresh pages the allocator maps in; each costs
    microseconds on a VM, so the heap layout left by earlier allocations moves the timings)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


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
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda; the GPU section runs when CUDA is there")
    parser.add_argument("--batches", type=int, default=10, help="batches per timed run (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed runs of each (default 5; median)")
    parser.add_argument("--memory-batches", type=int, nargs="*", default=[10, 100])
    parser.add_argument("--cases", nargs="*", default=["resnet18", "mlp"])
    parser.add_argument("--gpu-cases", nargs="*", default=["resnet50", "vit_b_16"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="small models and batches (smoke test)")
    parser.add_argument("--batch-size", type=int, default=None, help="override the batch size")
    parser.add_argument("--image-size", type=int, default=None, help="override the input side")
    parser.add_argument("--extra", nargs="*", default=[], choices=["eager", "modules"],
                        help="also time report() in the eager forms (SKEW_EAGER) and/or on module layers only")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--memory-child", nargs=4, metavar=("CASE", "DEVICE", "N", "WHAT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    SIZES.update(batch=args.batch_size, image=args.image_size)
    EXTRA.update(args.extra)
    torch.set_num_threads(args.threads)
    if args.memory_child:
        case, device, n, what = args.memory_child
        memory_child(case, device, int(n), what, args.quick)
        return 0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"skew.report benchmark, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs, load {load:.2f}")
    sections = [(torch.device(args.device), args.cases)]
    if torch.cuda.is_available() and args.device == "cpu" and args.gpu_cases:
        sections.append((torch.device("cuda"), args.gpu_cases))
    elif args.gpu_cases:
        print("(GPU section skipped: CUDA is not available)")
    results = []
    for device, cases in sections:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(f"\n{name}: median of {args.repeats} interleaved runs over {args.batches} batches; x = time / bare time")
        print(f"{'model':<10} {'batch':<16} {'bare s':>8} {'minimal':>8} {'report':>8} {'cpu:min':>8}"
              f" {'cpu:rep':>8} {'set-up s':>9} {'per-batch':>10} {'in hooks':>9} {'faults/batch':>13}")
        for case in cases:
            r = timing(case, device, args.batches, args.repeats, args.quick)
            r["device"] = name
            results.append(r)
            print(f"{case:<10} {'x'.join(map(str, r['batch'])):<16} {r['bare_s']:>8.3f} {r['minimal_x']:>7.3f}x"
                  f" {r['report_x']:>7.3f}x {r['cpu_minimal_x']:>7.3f}x {r['cpu_report_x']:>7.3f}x"
                  f" {r['setup_s']:>9.3f} {r['per_batch_x']:>9.3f}x {r['hooks_x']:>8.3f}x"
                  f" {r['faults_bare']:>6.0f}/{r['faults_report']:<6.0f}"
                  + "".join(f"  {k[:-2]} {v:.3f}x" for k, v in r.items() if k in ("eager_x", "modules_x")))
    print("minimal = hand-written hook (count Z > 0, sum Z, sum Z^2 per neuron); cpu: = process CPU time ratios;"
          " set-up = report(1 batch) - bare(1 batch); per-batch = each further batch, set-up excluded;"
          " in hooks = time inside skew's hooks and level 2 during report() (host time on a GPU);"
          " faults/batch = minor page faults per batch, bare/report (median run)")
    if args.memory_batches:
        device = torch.device(args.device)
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
            json.dump({"load": load, "threads": torch.get_num_threads(), "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
