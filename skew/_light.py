"""The Tracker's light path: one probe forward, per-layer scalars computed straight from small arrays.

A :func:`skew.report` builds the weight table, the per-neuron and per-layer DataFrames and the
sign rasters: about 10-15 ms of bookkeeping per call on a small MLP, most of it pandas. A Tracker
keeps a handful of scalars per layer, so this module measures them directly: a forward hook per
layer reduces the layer's output Z, viewed as (B, C, P) (B samples, C neurons, P positions or
tokens), on Z's device and without host synchronisation, to

- per neuron: n = B·P, the positive count, the float64 mean and M2 = Σ (Z − mean)² (two passes),
  and the batch-OUI term min(s, B − s)/⌊B/2⌋ with s the samples whose (position-averaged) Z > 0;
- the activation patterns of the first 8 samples (pairwise OUI, as :mod:`skew.oui`);
- the whole probe's activation states [Z > 0] over every (sample, channel, position): the
  structure that ``pattern_change`` compares between measurements (docs/oui.md).

Several calls of one layer in a forward pass accumulate exactly as in ``skew.report`` (Chan's
merge of the moments; one batch-OUI term per call; patterns from the first calls). The scalars
follow :class:`skew.result.Report`'s definitions (degenerate when std ≤ 1e-12·(|mean| + 1)), so
they equal a direct report's ``layers`` columns (tests/test_tracker.py checks it).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from skew.layers import select_units
    >>> net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    >>> res = measure_layers(net, select_units(net), ((torch.randn(32, 4),), {}), (0.1, 0.3))
    >>> [r["layer"] for r in res.rows], res.patterns["0"].shape
    (['0', '2'], (32, 6))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import ndtr
from torch import nn

from skew.errors import SkewError
from skew.oui import pairwise_oui
from skew.result import DEGENERATE_RTOL

__all__ = ["LightResult", "capture_patterns", "light_supported", "measure_layers", "pack", "pattern_flips"]

#: Samples whose patterns feed the pairwise OUI (all 28 pairs of the first 8), as in skew.report.
OUI_SAMPLES = 8
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def light_supported(model: nn.Module, units) -> bool:
    """True when every selected unit is a plain module whose forward output is its Z.

    Attention q/k/v blocks and ``MultiheadAttention.out_proj`` (never called as a module) need
    skew.report's attention hooks; the Tracker then takes the full path.
    """
    if not units:
        return False
    inside_mha = {
        id(m.out_proj) for m in model.modules() if isinstance(m, nn.MultiheadAttention)
    }
    return all(u.block is None and id(u.module) not in inside_mha for u in units)


def _canon(module: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Z as a (B, C, P) view: channels of a conv output, the last dim of a Linear's."""
    if isinstance(module, _CONV):
        spatial = len(module.kernel_size)
        if z.dim() == spatial + 1:  # unbatched input
            z = z.unsqueeze(0)
        return z.reshape(z.shape[0], z.shape[1], -1)
    if z.dim() == 1:
        z = z.unsqueeze(0)
    return z.reshape(z.shape[0], -1, z.shape[-1]).transpose(1, 2)


@dataclass
class _Acc:
    """Device-side accumulators of one layer during one measurement."""

    n: torch.Tensor | None = None
    pos: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    m2: torch.Tensor | None = None
    oui_sum: torch.Tensor | None = None
    oui_calls: int = 0
    calls: int = 0
    heads: list = field(default_factory=list)
    head_count: int = 0
    states: list = field(default_factory=list)

    def add(self, zc: torch.Tensor) -> None:
        b, _, p = zc.shape
        if p == 1:  # Linear on (B, F): one value per (sample, neuron); fewer kernels on the hot path
            z2 = zc[:, :, 0]
            states = z2 > 0
            pos = states.sum(0)
            z64 = z2.to(torch.float64)
            mean = z64.mean(0)
            m2 = (z64 - mean).square_().sum(0)
            active = states
        else:
            states = zc > 0
            pos = states.sum((0, 2))
            z64 = zc.to(torch.float64)
            mean = z64.mean((0, 2))
            m2 = (z64 - mean[None, :, None]).square_().sum((0, 2))
            active = z64.mean(2) > 0
        n = b * p
        if self.calls == 0:
            self.n, self.pos, self.mean, self.m2 = n, pos, mean, m2
        else:  # Chan's merge, as skew.report does across calls
            total = self.n + n
            delta = mean - self.mean
            self.mean = self.mean + delta * (n / total)
            self.m2 = self.m2 + m2 + delta * delta * (self.n * n / total)
            self.n = total
            self.pos = self.pos + pos
        self.calls += 1
        if b >= 2:
            s = active.sum(0)
            term = torch.minimum(s, b - s).to(torch.float64) / (b // 2)
            self.oui_sum = term if self.oui_sum is None else self.oui_sum + term
            self.oui_calls += 1
        if self.head_count < OUI_SAMPLES:
            take = active[: OUI_SAMPLES - self.head_count]
            self.heads.append(take)
            self.head_count += take.shape[0]
        self.states.append(states.reshape(b, -1))


@dataclass
class LightResult:
    """Per-layer scalar rows (Report.layers' names) and each layer's probe activation states."""

    rows: list[dict]
    patterns: dict[str, np.ndarray]
    finite: bool


def measure_layers(model: nn.Module, units, inputs: tuple[tuple, dict], thresholds: Sequence[float]) -> LightResult:
    """One forward of ``inputs`` with a reducing hook per unit; the scalars of each layer that ran.

    The caller sets the mode, ``torch.no_grad`` and restores flags; hooks are removed here in
    ``finally``. ``patterns[layer]`` is the (samples, C·P) boolean array [Z > 0] of the probe
    (calls of one layer stacked along the samples).
    """
    accs = {u.name: _Acc() for u in units}
    handles = []

    def hook_for(name: str, module: nn.Module):
        acc = accs[name]

        def hook(mod, args, output):
            if isinstance(output, torch.Tensor) and output.is_floating_point() and output.numel():
                acc.add(_canon(module, output.detach()))

        return hook

    args, kwargs = inputs
    try:
        for u in units:
            handles.append(u.module.register_forward_hook(hook_for(u.name, u.module)))
        try:
            model(*args, **kwargs)
        except Exception as err:
            raise SkewError(
                f"{type(model).__name__} rejected the probe batch: {type(err).__name__}: {err}. Pass a probe the "
                "model accepts, or input_fn= to map it to the model's arguments"
            ) from err
    finally:
        for h in handles:
            h.remove()
    rows, patterns, finite = [], {}, True
    for u in units:
        acc = accs[u.name]
        if acc.calls == 0:
            continue
        row, ok = _scalars(u.name, acc, thresholds)
        finite &= ok
        rows.append(row)
        states = acc.states[0] if len(acc.states) == 1 else torch.cat(acc.states, 0)
        patterns[u.name] = states.cpu().numpy()
    return LightResult(rows, patterns, finite)


def _scalars(name: str, acc: _Acc, thresholds: Sequence[float]) -> tuple[dict, bool]:
    pos = acc.pos.cpu().numpy()
    mean = acc.mean.cpu().numpy()
    m2 = acc.m2.cpu().numpy()
    n = int(acc.n)
    ok = bool(np.isfinite(mean).all() and np.isfinite(m2).all())
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.sqrt(np.maximum(m2, 0.0) / max(n, 1)) if n > 0 else np.full_like(mean, np.nan)
        degenerate = (n == 0) | (std <= DEGENERATE_RTOL * (np.abs(mean) + 1.0))
        p = pos / max(n, 1)
        skew = np.where(degenerate, np.nan, np.abs(p - 0.5))
        skew_g = np.abs(np.where(degenerate, np.nan, ndtr(mean / std)) - 0.5)
    live = ~degenerate
    row: dict = {"layer": name}
    for a in thresholds:
        row[f"skewed_{a:g}"] = float((skew[live] > a).mean()) if live.any() else float("nan")
    for a in thresholds:
        row[f"skewed_gauss_{a:g}"] = float((skew_g[live] > a).mean()) if live.any() else float("nan")
    row["neurons"] = int(len(pos))
    row["mean_skew"] = float(np.mean(skew[live])) if live.any() else float("nan")
    if acc.oui_calls:
        row["oui_batch"] = float(np.mean(acc.oui_sum.cpu().numpy()) / acc.oui_calls)
    else:
        row["oui_batch"] = float("nan")
    heads = torch.cat(acc.heads, 0)[:OUI_SAMPLES].cpu().numpy() if acc.heads else np.zeros((0, len(pos)), bool)
    row["oui_pairwise"] = pairwise_oui(heads) if heads.shape[0] >= 2 else float("nan")
    row["dead"] = int((live & (pos == 0)).sum())
    row["always_on"] = int((live & (pos == n)).sum())
    row["degenerate"] = int(degenerate.sum())
    return row, ok


def pattern_flips(previous: np.ndarray | None, current: np.ndarray | None) -> float:
    """Fraction of (sample, unit) activation states that differ between two packed patterns.

    Both are :func:`pack` results of boolean arrays of the same shape; NaN when either is missing
    or the shapes differ.

    Example:
        >>> a, b = pack(np.array([[1, 0, 1, 1]], bool)), pack(np.array([[1, 1, 1, 0]], bool))
        >>> pattern_flips(a, b)
        0.5
    """
    if previous is None or current is None or previous[1] != current[1]:
        return float("nan")
    total = int(np.prod(current[1]))
    if total == 0:
        return float("nan")
    flips = int(np.bitwise_count(np.bitwise_xor(previous[0], current[0])).sum())
    return flips / total


def pack(states: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """A boolean array as (bits packed 8 per byte, shape): 1/8 of the memory of a bool array.

    Example:
        >>> bits, shape = pack(np.ones((3, 5), bool))
        >>> bits.nbytes, shape
        (2, (3, 5))
    """
    states = np.asarray(states, dtype=bool)
    return np.packbits(states, axis=None), tuple(states.shape)


def capture_patterns(model: nn.Module, names: Sequence[str], inputs: tuple[tuple, dict], at: str) -> dict:
    """The probe's activation states [v > 0] at report sites, by one extra forward (the full path).

    ``names`` are a report's layer names: a module's qualified name, or ``"name#k"`` for the k-th
    call of a module called several times per forward (calls are matched in order of k). With
    ``at="layers"`` v is the module's output, otherwise its first input (a nonlinearity's input).
    Names that are not modules (attention q/k/v blocks) are left out.
    """
    modules = dict(model.named_modules())
    wanted: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        base, _, k = name.partition("#")
        if base in modules:
            wanted.setdefault(base, []).append((int(k) if k.isdigit() else 0, name))
    order = {base: [n for _, n in sorted(v)] for base, v in wanted.items()}
    found: dict[str, list] = {base: [] for base in order}
    handles = []

    def hook_for(base: str):
        def hook(mod, args, output):
            v = output if at == "layers" else (args[0] if args else None)
            if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel():
                v = v.detach()
                found[base].append((v > 0).reshape(v.shape[0] if v.dim() > 1 else 1, -1))

        return hook

    args, kwargs = inputs
    try:
        for base in order:
            handles.append(modules[base].register_forward_hook(hook_for(base)))
        model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for base, names_k in order.items():
        calls = found[base]
        if len(names_k) == 1 and "#" not in names_k[0]:
            if calls:
                out[names_k[0]] = (calls[0] if len(calls) == 1 else torch.cat(calls, 0)).cpu().numpy()
        else:
            for name, states in zip(names_k, calls):
                out[name] = states.cpu().numpy()
    return out
