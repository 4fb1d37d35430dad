"""Overhead of leaving a skew.Tracker on: digits MLP training with and without it.

Trains the built-in digits MLP (64-128-128-128-10 style, SGD, batch 32, ~45 steps per epoch) for a
few epochs plain, then with a Tracker measuring every 10 and every 50 steps on a 256-sample probe,
then with an EpochOUI (training OUI on every batch) at layers and at activations,
and prints seconds per epoch, per measurement and the relative overhead. Each setting is timed
``--repeats`` times and the fastest run is kept (the machine is shared).

It first times one measurement in isolation (issue 12's target: < 3 ms beyond the probe's forward):
the median over ``--measures`` calls of ``Tracker.step`` (every=1) minus the median of as many bare
``no_grad`` eval forwards of the same 256-sample probe, interleaved so both see the same load.

Usage:
    .venv/bin/python benchmarks/bench_tracker.py [--epochs 3] [--repeats 3] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from skew.data import digits_dataset
from skew.epoch_oui import EpochOUI
from skew.models import build_model, input_shape
from skew.tracker import Tracker
from skew.train import _MODEL_OPTIONS, _train_epoch


class _NoTracker:
    """Stands in for a Tracker in the bare runs: every step is a no-op."""

    def step(self, step: int) -> None:
        pass


def run(epochs: int, every: int | None, data, seed: int = 0, device: str = "cpu",
        oui_at: str | None = None) -> tuple[float, int]:
    x_tr, y_tr, x_va = data
    torch.manual_seed(seed)
    model = build_model("mlp", **_MODEL_OPTIONS["mlp"]).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tracker = None if every is None else Tracker(model, x_va[:256], every=every)
    meter = None if oui_at is None else EpochOUI(model, at=oui_at)
    order = torch.Generator().manual_seed(seed)
    _sync(device)
    step = 0
    start = time.perf_counter()
    for _ in range(epochs):  # the training experiment's own epoch loop
        _, step = _train_epoch(model, opt, x_tr, y_tr, 32, order, tracker or _NoTracker(), step)
        if meter is not None:
            meter.epoch_end()
    _sync(device)
    elapsed = time.perf_counter() - start
    if meter is not None:
        meter.close()
    return elapsed, (0 if tracker is None else len(tracker.steps))


def one_measurement(data, count: int, device: str = "cpu") -> tuple[float, float]:
    """Median ms of one Tracker measurement and of one bare probe forward (interleaved)."""
    torch.manual_seed(0)
    model = build_model("mlp", **_MODEL_OPTIONS["mlp"]).to(device)
    probe = data[2][:256]
    tracker = Tracker(model, probe, every=1)
    for i in range(10):  # warm-up
        tracker.step(i)
    measure, forward = [], []
    for i in range(count):
        _sync(device)
        t0 = time.perf_counter()
        tracker.step(i)
        _sync(device)
        t1 = time.perf_counter()
        with torch.no_grad():
            was = model.training
            model.eval()
            model(probe)
            model.train(was)
        _sync(device)
        t2 = time.perf_counter()
        measure.append(t1 - t0)
        forward.append(t2 - t1)
    return 1e3 * statistics.median(measure), 1e3 * statistics.median(forward)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--measures", type=int, default=300, help="measurements timed in isolation")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train, val = digits_dataset(shape=tuple(input_shape("mlp", **_MODEL_OPTIONS["mlp"])), seed=0)
    data = tuple(t.to(args.device) for t in (train.tensors[0].float(), train.tensors[1].long(),
                                             val.tensors[0].float()))
    m, f = one_measurement(data, args.measures, args.device)
    print(f"one measurement: {m:.2f} ms, probe forward {f:.2f} ms, beyond the forward {m - f:.2f} ms "
          f"(median of {args.measures})")
    run(1, 10, data, device=args.device)  # warm-up (CUDA context, allocator, first-call costs)
    steps = args.epochs * math.ceil(len(data[0]) / 32)
    print(f"digits MLP on {args.device}, {steps} steps ({args.epochs} epochs), {args.threads} thread(s), "
          f"best of {args.repeats}")
    base = None
    print(f"{'setting':>21} {'s/epoch':>9} {'ms/step':>8} {'measures':>9} {'ms/measure':>11} {'overhead':>9}")
    for every, oui_at in ((None, None), (50, None), (10, None), (None, "layers"), (None, "activations")):
        best, count = min(run(args.epochs, every, data, device=args.device, oui_at=oui_at)
                          for _ in range(args.repeats))
        if base is None:
            base = best
        per_measure = (best - base) / count * 1e3 if count else float("nan")
        label = f"EpochOUI({oui_at})" if oui_at else ("no tracker" if every is None else f"every={every}")
        print(f"{label:>21} {best / args.epochs:9.3f} {best / steps * 1e3:8.2f} {count:9d} "
              f"{per_measure:11.1f} {100 * (best - base) / base:8.1f}%")


if __name__ == "__main__":
    main()
