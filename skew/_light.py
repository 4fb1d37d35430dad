"""The Tracker's light path: one probe forward, per-layer scalars computed straight from small arrays.

A :func:`skew.report` builds the weight table, the per-neuron and per-layer DataFrames and the
sign rasters: about 10-15 ms of bookkeeping per call on a small MLP, most of it pandas. A Tracker
keeps a handful of scalars per layer, so this module measures them directly: a forward hook per
layer reduces the layer's output Z, viewed as (B, C, P) (B samples, C neurons, P positions or
tokens), on Z's device and without host synchronisation, to

- per neuron: n = B·P, the positive count, the float64 mean and M2 = Σ (Z − mean)² (two passes),
  and the batch-OUI term min(s, B − s)/⌊B/2⌋ with s the samples whose (position-averaged) Z > 0;
- the layer input's count, mean and M2 (:func:`skew.accumulators.input_partial`), which scale the
  degenerate rule;
- the flattened activation patterns [Z > 0] of the first 8 samples (every unit: C×H×W for convs,
  T×F for tokens), for the authors' pairwise OUI (docs/oui.md, :func:`skew.oui.pairwise_oui`);
- the whole probe's activation states [Z > 0] over every (sample, channel, position): the
  structure that ``pattern_change`` compares between measurements (docs/oui.md).

Several calls of one layer in a forward pass accumulate exactly as in ``skew.report`` (Chan's
merge of the moments; one batch-OUI term per call; patterns from the first calls). The scalars
share :class:`skew.result.Report`'s definitions (:func:`skew.result.degenerate_mask`, relative to
the neuron's scale; :func:`skew.oui.pairwise_oui` on the same units), so they equal a direct
report's ``layers`` columns (tests/test_tracker.py checks it). Where report reads a layer
differently (sequence-first or unbatched outputs inside transformer modules, attention masks,
tied weights), :func:`light_supported` is False and the Tracker calls skew.report.

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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import ndtr
from torch import nn

from skew.accumulators import OUI_MAX_UNITS, OUI_SAMPLES, chan_merge, input_partial
from skew.errors import SkewError
from skew.oui import pairwise_oui
from skew.result import degenerate_mask

__all__ = ["LightResult", "capture_patterns", "light_supported", "measure_layers", "pack", "pattern_flips"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def light_supported(model: nn.Module, units, batch=None) -> bool:
    """True when every selected unit is a plain module whose forward output is its Z, read as
    skew.report reads it (batch on dim 0, no attention mask, each weight once).

    False (the Tracker then calls skew.report) for attention q/k/v blocks and
    ``MultiheadAttention.out_proj`` (never called as a module; report's attention hooks), layers
    inside a transformer module (report infers sequence-first (T, B, F) and unbatched (T, F)
    outputs there), a ``batch`` mapping with an ``attention_mask`` (report drops padded tokens),
    and a weight shared by several units (report lists it once).

    Example:
        >>> enc = nn.TransformerEncoderLayer(8, 2, 16)
        >>> from skew.layers import select_units
        >>> light_supported(enc, select_units(enc, "linear*")), light_supported(nn.Linear(2, 2), [])
        (False, False)
    """
    from skew.analyzer import _sequence_first

    if not units or (isinstance(batch, Mapping) and "attention_mask" in batch):
        return False
    if len({id(u.weight) for u in units}) < len(units):
        return False
    inside_mha = {
        id(m.out_proj) for m in model.modules() if isinstance(m, nn.MultiheadAttention)
    }
    in_transformer = set()
    for m in model.modules():
        if _sequence_first(m) is not None:
            in_transformer.update(id(sub) for sub in m.modules())
    return all(
        u.block is None and id(u.module) not in inside_mha and id(u.module) not in in_transformer for u in units
    )


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
    units: list = field(default_factory=list)
    unit_rows: int = 0
    states: list = field(default_factory=list)
    inputs: tuple | None = None
    zdtype: torch.dtype | None = None

    def add_input(self, x) -> None:
        """Chan-merge the (count, mean, M2) of the layer's input, as skew.report's input moments."""
        ip = input_partial(x.detach() if isinstance(x, torch.Tensor) else None)
        if ip is not None:
            self.inputs = ip if self.inputs is None else chan_merge(*self.inputs, *ip)

    def add(self, zc: torch.Tensor, flat: torch.Tensor | None = None) -> None:
        """One call's (B, C, P) output; ``flat`` its (B, units) flattened layout when it differs."""
        if self.zdtype is None:
            self.zdtype = zc.dtype
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
        states = (flat > 0) if flat is not None else states.reshape(b, -1)
        need = OUI_SAMPLES - self.unit_rows
        if need > 0:  # skew.report's unit patterns (analyzer._units): every unit, evenly thinned past 2**20
            head = states[:need]
            d = head.shape[1]
            if d > OUI_MAX_UNITS:
                idx = torch.as_tensor(np.linspace(0, d - 1, OUI_MAX_UNITS).round().astype(np.int64), device=head.device)
                head = head[:, idx]
            self.units.append(head)
            self.unit_rows += head.shape[0]
        self.states.append(states)


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

        def hook(mod, args, kwargs, output):
            if isinstance(output, torch.Tensor) and output.is_floating_point() and output.numel():
                z = output.detach()
                zc = _canon(module, z)
                flat = None if isinstance(module, _CONV) or z.dim() <= 2 else z.reshape(zc.shape[0], -1)
                acc.add(zc, flat)
                acc.add_input(args[0] if args else kwargs.get("input"))

        return hook

    args, kwargs = inputs
    try:
        for u in units:
            handles.append(u.module.register_forward_hook(hook_for(u.name, u.module), with_kwargs=True))
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
        row, ok = _scalars(u, acc, thresholds)
        finite &= ok
        rows.append(row)
        states = acc.states[0] if len(acc.states) == 1 else torch.cat(acc.states, 0)
        patterns[u.name] = states.cpu().numpy()
    return LightResult(rows, patterns, finite)


def _scalars(unit, acc: _Acc, thresholds: Sequence[float]) -> tuple[dict, bool]:
    """One layer's ``Report.layers`` scalars from its accumulators (the definitions of skew.result)."""
    pos = acc.pos.cpu().numpy()
    mean = acc.mean.cpu().numpy()
    m2 = acc.m2.cpu().numpy()
    n = int(acc.n)
    ok = bool(np.isfinite(mean).all() and np.isfinite(m2).all())
    in_mean, in_std = float("nan"), float("nan")
    if acc.inputs is not None and int(acc.inputs[0]) > 0:
        in_n, in_mean_t, in_m2 = (float(v) for v in acc.inputs)
        ok &= math.isfinite(in_mean_t) and math.isfinite(in_m2)  # else report measures it carefully
        in_mean, in_std = in_mean_t, math.sqrt(max(in_m2, 0.0) / in_n)
    rows = unit.rows_view.matrix()  # the weight table's rows (skew.weights, effective weight), norms in float64
    row_norm = torch.linalg.vector_norm(rows, dim=1, dtype=torch.float64).cpu().numpy()
    bias = np.full(len(pos), np.nan) if unit.bias is None else unit.bias.detach().to("cpu", torch.float64).numpy()
    eps = float(torch.finfo(acc.zdtype).eps)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        std = np.sqrt(np.maximum(m2, 0.0) / max(n, 1)) if n > 0 else np.full_like(mean, np.nan)
        counts = np.full(len(pos), n, dtype=np.int64)
        degenerate = degenerate_mask(counts, mean, std, row_norm, np.full(len(pos), rows.shape[1]), bias,
                                     in_mean, in_std, eps)
        p = pos / max(n, 1)
        skew = np.where(degenerate, np.nan, np.abs(p - 0.5))
        skew_g = np.abs(np.where(degenerate, np.nan, ndtr(mean / std)) - 0.5)
    live = ~degenerate
    row: dict = {"layer": unit.name}
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
    row["oui_pairwise"] = _unit_oui(acc.units)
    row["dead"] = int((live & (pos == 0)).sum())
    row["always_on"] = int((live & (pos == n)).sum())
    row["degenerate"] = int(degenerate.sum())
    return row, ok


def _unit_oui(blocks: list[torch.Tensor]) -> float:
    """The authors' pairwise OUI of the first samples' flattened patterns (skew.result's ``oui_pairwise``);
    ``blocks`` are (samples, units) boolean blocks, one per call."""
    counts = np.concatenate([np.full(b.shape[0], b.shape[1], dtype=np.int64) for b in blocks]) if blocks else []
    if len(counts) < 2:
        return float("nan")
    if len(blocks) == 1:
        dense = blocks[0].cpu().numpy()
    else:
        dense = np.zeros((len(counts), int(counts.max())), dtype=bool)
        i = 0
        for b in blocks:
            dense[i : i + b.shape[0], : b.shape[1]] = b.cpu().numpy()
            i += b.shape[0]
    return pairwise_oui(dense, units=counts)


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
