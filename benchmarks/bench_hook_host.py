"""Host time of skew's own work per hook call, without a GPU: what bounds ``report()`` on a GPU.

On a GPU the forward pass is launched from the host a few milliseconds ahead of the device, so
every microsecond of Python in a hook counts. This measures that Python on the CPU, in place
(each hook call between the real layers' calls, caches as a forward leaves them), for two paths:

- ``cuda-stub``: the CUDA path with its Triton kernels stubbed out (a launch that does nothing;
  ``TRITON_INTERPRET=1`` so that CPU tensors take it): everything skew does around the launches,
  per hook call (``observe``) and per batch (level 2, ``finish_batch``). A real launch adds about
  30 µs of Triton's own host time per call (``bench_launch.py``, on a GPU).
- ``cpu``: the compiled CPU path on tiny tensors (the kernels' arithmetic is negligible there),
  per hook call including level 2.

Model: ``--depth`` × (Conv2d(8, 8, 3) + ReLU) on 64 × 8 × 8 × 8 batches (``cuda-stub``) or
``--depth`` × (Linear(16, 16) + ReLU) on 8 × 16 batches (``cpu``); 50 batches, median of 5 runs.

Measured on the shared 2-core Xeon VM, torch 2.14.1 CPU, 1 thread, the previous tree (1bed68a)
→ this release, invocations interleaved (ranges):

    ============  =========================  ======================  ========================
    path          all in, per hook call      observe, per call       level 2, per batch
    ============  =========================  ======================  ========================
    cuda-stub 16  185–189 → 149–162 µs       80–90 → 65–75 µs        0.92–0.95 → 0.83–0.84 ms
    cpu 4         222–248 → 151–153 µs       115–137 → 100–111 µs    235–274 → 81–83 µs
    ============  =========================  ======================  ========================

(cpu: level 2 moved into one compiled loop per call, ``skew_fold``; cuda-stub: the launch
geometry cached per shape and the kernels' availability asked once per site.)

The release after (77b97ba → this tree, interleaved, 2 invocations each): cuda-stub all in
137–139 → 79–84 µs per hook call, observe 57–58 → 42–45 µs, level 2 766–809 → 187–199 µs per
batch (an earlier pair while the machine was busier: 166–195 → 94–102 µs all in). The kernels write into their call site's buffers of the previous batch (no allocation or
unbind per call), and level 2 of the usual batch is one launch of ``_triton.level2`` (stubbed
here like the others; the torch path took about a hundred small operations). cpu: unchanged
(150 → 154 µs, within the spread).

Usage:
    python benchmarks/bench_hook_host.py                  # cuda-stub, 16 layers
    python benchmarks/bench_hook_host.py --path cpu --depth 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


class _Launch:
    """A Triton kernel whose launches do nothing."""

    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=["cuda-stub", "cpu"], default="cuda-stub")
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.path == "cuda-stub":
        os.environ["TRITON_INTERPRET"] = "1"  # read per call by skew._triton.available: CPU tensors take the kernels
    import torch
    from torch import nn

    from skew import _triton, analyzer
    from skew.analyzer import report

    torch.set_num_threads(1)
    if args.path == "cuda-stub":
        stub = (_Launch(),) * 5
        _triton._state["k"] = stub
        _triton._kernels = lambda: stub
    layers: list[nn.Module] = []
    for _ in range(args.depth):
        layers += [nn.Conv2d(8, 8, 3, padding=1) if args.path == "cuda-stub" else nn.Linear(16, 16), nn.ReLU()]
    model = nn.Sequential(*layers).eval()
    shape = (64, 8, 8, 8) if args.path == "cuda-stub" else (8, 16)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(*shape, generator=gen) for _ in range(args.batches)]

    spent: dict[str, float] = {}

    def timed(name: str):
        fn = getattr(analyzer._Run, name)

        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    def bare() -> None:
        with torch.no_grad():
            for b in batches:
                model(b)

    report(model, batches, progress=False)  # warm-up
    walls: dict[str, list[float]] = {"bare": [], "report": [], "report1": []}
    for _ in range(args.repeats):
        for key, fn in (("bare", bare), ("report", lambda: report(model, batches, progress=False)),
                        ("report1", lambda: report(model, batches[:1], progress=False))):
            t0 = time.perf_counter()
            fn()
            walls[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in walls.items()}
    n = args.batches
    per_batch = (med["report"] - med["report1"]) / (n - 1) - med["bare"] / n
    parts: dict[str, list[float]] = {"observe": [], "finish_batch": []}
    originals = {name: getattr(analyzer._Run, name) for name in parts}
    try:
        for name in parts:
            setattr(analyzer._Run, name, timed(name))
        for _ in range(args.repeats):
            spent.clear()
            report(model, batches, progress=False)
            for name in parts:
                parts[name].append(spent.get(name, 0.0))
    finally:
        for name, fn in originals.items():
            setattr(analyzer._Run, name, fn)
    observe = statistics.median(parts["observe"]) / n / args.depth
    level2 = statistics.median(parts["finish_batch"]) / n
    print(f"path {args.path}, {args.depth} layers, {n} batches of {'x'.join(map(str, shape))}, torch "
          f"{torch.__version__}, 1 thread")
    print(f"  bare forward          {med['bare'] / n * 1e6:8.0f} us per batch")
    print(f"  skew, all in          {per_batch * 1e6:8.0f} us per batch = {per_batch / args.depth * 1e6:.1f} us per hook call")
    print(f"  observe (hook body)   {observe * 1e6:8.1f} us per hook call")
    print(f"  level 2 (finish)      {level2 * 1e6:8.0f} us per batch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
