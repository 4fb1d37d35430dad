"""``skew.report(model, loader)``: measure every neuron's activation probability on a stream of batches.

Forward hooks on the selected layers (every Linear, ConvNd and ConvTransposeNd by default, plus
the projections of each ``nn.MultiheadAttention``) reduce each output Z, inside the hook and on
Z's device, to per-neuron sums (:mod:`skew.accumulators`); once per batch these are merged in
float64 with Chan's formula. No activation is stored: memory is O(neurons) whatever the number
of batches. Conv: channel = neuron, every position a sample; Linear on (B, T, F): every token a
sample; the batch dimension is dim 0 (``batch_first`` is honoured for attention).

``nn.MultiheadAttention`` computes its q/k/v projections inside ``F.multi_head_attention_forward``
(or the fused fast path), where no module hook reaches. skew measures them with a forward pre-hook
on the attention module that recomputes ``F.linear(query, W_q, b_q)`` (one packed GEMM for
self-attention): exact, at the cost of repeating the input projection (about 3E² multiply-adds per
token, ~20–25 % of a transformer block). Pass ``layers=`` without them (e.g. a predicate that
rejects names ending in ``_proj``) to avoid that cost. ``out_proj``'s output is the attention
module's output, read by a forward hook on the module; its input is internal, so its input
moments (and p_pred, λ) are NaN.

Per batch, after the forward pass, one host synchronisation reads a "non-finite values seen" flag;
a batch that held NaN/Inf is measured again in the careful mode of :mod:`skew.accumulators`
(non-finite values counted per neuron and excluded). Bounded samples kept per layer: the sign
raster (the first 250 input samples × up to 250 evenly spaced neurons; for conv and token
outputs, each sample's value at the centre position, the same for every sample so that merged
reports stay exact) and the activation patterns of the first 8 samples for the pairwise OUI
(:mod:`skew.oui`). A layer called several times per forward pass accumulates every call.

Safety: hooks are registered and removed in ``try``/``finally`` (also on KeyboardInterrupt and on
errors from the loader or the model); every module's ``training`` flag and every buffer
(BatchNorm running statistics included) are restored; the run is under ``torch.no_grad()``;
no attribute is set on the user's modules and the user's own hooks are left alone. With
``mode="train"`` the global RNG state is forked, so dropout masks do not consume the caller's
random stream.

Example:
    >>> import torch, torch.nn as nn, skew
    >>> net = nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 10))
    >>> rep = skew.report(net, [torch.randn(64, 20) for _ in range(4)])
    >>> rep.layers[["layer", "neurons", "samples"]].values.tolist()
    [['0', 50, 256], ['2', 10, 256]]
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from skew.accumulators import (
    OUI_SAMPLES,
    SIGN_NEURONS,
    SIGN_ROWS,
    DeviceStats,
    LayerState,
    Scratch,
    input_partial,
    level1,
)
from skew.batches import batch_size, describe, iter_batches, model_inputs, to_device
from skew.errors import SkewError
from skew.layers import LAYER_TYPES, LayerSpec, is_layer
from skew.result import WEIGHT_COLUMNS, Report

__all__ = ["report", "MODES"]

#: Valid values of ``mode``.
MODES = ("eval", "train")

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class _Site:
    """One measured layer: a module whose output hook fires, or an attention projection."""

    def __init__(self, name: str, kind: str, module: nn.Module, neurons: int, device: torch.device):
        self.name = name
        self.kind = kind  # "layer" | "mha_in" | "mha_out"
        self.module = module
        self.neurons = neurons
        self.device = device
        self.spatial = (
            len(module.kernel_size) if kind == "layer" and isinstance(module, _CONV) else None
        )
        self.index = -1  # within its DeviceStats
        k = min(neurons, SIGN_NEURONS)
        self.sign_cols = np.unique(np.linspace(0, neurons - 1, k).round().astype(np.int64))
        self.sign_idx = torch.as_tensor(self.sign_cols, device=device)
        self.signs = torch.zeros(SIGN_ROWS, len(self.sign_cols), dtype=torch.bool, device=device)
        self.sign_filled = 0  # committed rows
        self.sign_next = 0  # rows written during the current batch
        self.bad_output: str | None = None

    def canon(self, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        """View Z as (B, C, P) (returns pd=2) or (B, P, C) (pd=1) without copying when possible."""
        if self.spatial is not None:
            if z.dim() == self.spatial + 1:
                z = z.unsqueeze(0)
            b, c = z.shape[0], z.shape[1]
            if z.is_contiguous():
                return z.view(b, c, -1), 2
            perm = (0, *range(2, z.dim()), 1)
            zt = z.permute(perm)
            if zt.is_contiguous():  # channels_last
                return zt.view(b, -1, c), 1
            return z.reshape(b, c, -1), 2
        if self.kind != "layer" and not self.module.batch_first and z.dim() == 3:
            z = z.transpose(0, 1)
        if z.dim() == 1:
            z = z.unsqueeze(0)
        return z.reshape(z.shape[0], -1, z.shape[-1]), 1


class _Run:
    """The hooks and accumulators of one ``report()`` call."""

    def __init__(self, sites: list[_Site]):
        self.sites = sites
        self.stats: dict[torch.device, DeviceStats] = {}
        by_device: dict[torch.device, list[_Site]] = {}
        for s in sites:
            by_device.setdefault(s.device, []).append(s)
        for dev, group in by_device.items():
            for i, s in enumerate(group):
                s.index = i
            self.stats[dev] = DeviceStats([s.neurons for s in group], dev)
        self.entries: dict[torch.device, list] = {dev: [] for dev in self.stats}
        self.calls: list[tuple[_Site, int]] = []
        self.careful = False
        self.handles: list = []
        self.scratch = Scratch()  # one CPU work buffer for every hook of this run

    # -- hooks --------------------------------------------------------------------------------
    def observe(self, site: _Site, z: Any, x: Any) -> None:
        if not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.is_quantized:
            site.bad_output = f"output is not a floating-point tensor ({type(z).__name__})"
            return
        if z.numel() == 0:
            return
        z3, pd_ = site.canon(z)  # under no_grad: nothing to detach
        if z3.shape[-1 if pd_ == 1 else 1] != site.neurons:
            site.bad_output = f"output has {z3.shape[-1 if pd_ == 1 else 1]} channels, expected {site.neurons}"
            return
        stats = self.stats[site.device]
        part = level1(
            z3, pd_, careful=self.careful, head=OUI_SAMPLES - stats.pattern_count[site.index], scratch=self.scratch
        )
        ip = input_partial(x if isinstance(x, torch.Tensor) else None, careful=self.careful)
        self.entries[site.device].append((site.index, part, ip))
        self.calls.append((site, part.rows * part.P))
        self._signs(site, z3, pd_)

    def _signs(self, site: _Site, z3: torch.Tensor, pd_: int) -> None:
        start = site.sign_next
        take = min(SIGN_ROWS - start, z3.shape[0])
        if take <= 0:
            return
        mid = z3.shape[pd_] // 2  # the centre position: the same for every sample, so merges stay exact
        vals = z3[:take, :, mid][:, site.sign_idx] if pd_ == 2 else z3[:take, mid, :][:, site.sign_idx]
        site.signs[start : start + take] = vals > 0
        site.sign_next = start + take

    def layer_hook(self, site: _Site):
        def hook(module, args, kwargs, output):
            x = args[0] if args else kwargs.get("input")
            self.observe(site, output, x)

        return hook

    def mha_pre_hook(self, mha: nn.MultiheadAttention, sites: dict[str, _Site]):
        from skew.layers import attention_projections

        def hook(module, args, kwargs):
            names = ("query", "key", "value")
            vals = list(args[:3]) + [kwargs.get(n) for n in names[len(args[:3]) :]]
            q, k, v = vals
            projections = attention_projections(mha)
            if q is k and k is v and mha.in_proj_weight is not None:
                packed = F.linear(q, mha.in_proj_weight, mha.in_proj_bias)
                e = mha.embed_dim
                outs = {"q_proj": packed[..., :e], "k_proj": packed[..., e : 2 * e], "v_proj": packed[..., 2 * e :]}
                for suffix, site in sites.items():
                    self.observe(site, outs[suffix], q)
                return None
            inputs = {"q_proj": q, "k_proj": k, "v_proj": v}
            for suffix, w, b in projections:
                if suffix in sites:
                    self.observe(sites[suffix], F.linear(inputs[suffix], w, b), inputs[suffix])
            return None

        return hook

    def mha_out_hook(self, site: _Site):
        def hook(module, args, output):
            z = output[0] if isinstance(output, (tuple, list)) else output
            self.observe(site, z, None)

        return hook

    # -- per batch ----------------------------------------------------------------------------
    def reset_batch(self) -> None:
        for dev in self.entries:
            self.entries[dev] = []
        self.calls = []
        for s in self.sites:
            s.sign_next = s.sign_filled

    def finish_batch(self) -> bool:
        """Level 2 and commit; returns False (nothing committed) when the batch held non-finite values."""
        results = {dev: st.reduce(self.entries[dev]) for dev, st in self.stats.items()}
        if not self.careful:
            for res in results.values():
                flags = [r.bad for r in res if r.bad is not None]
                if flags and bool(torch.stack(flags).any()):
                    return False
        for dev, st in self.stats.items():
            st.commit(results[dev])
        for site, rows in self.calls:
            self.stats[site.device].note_call(site.index, rows)
        for s in self.sites:
            s.sign_filled = s.sign_next
        return True

    # -- end ----------------------------------------------------------------------------------
    def states(self) -> dict[str, LayerState]:
        distributed = _distributed()
        for st in self.stats.values():
            if distributed:
                st.all_reduce()
        out: dict[str, LayerState] = {}
        for dev, st in self.stats.items():
            group = [s for s in self.sites if s.device == dev]
            signs = [s.signs[: s.sign_filled].cpu().numpy() for s in group]
            cols = [s.sign_cols for s in group]
            for s, state in zip(group, st.layer_states(signs, cols)):
                out[s.name] = state
        if distributed:
            out = _gather_samples(out)
        return {s.name: out[s.name] for s in self.sites}


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gather_samples(states: dict[str, LayerState]) -> dict[str, LayerState]:
    """Sign rasters and OUI patterns of every rank, concatenated in rank order (counts already reduced)."""
    import torch.distributed as dist

    mine = {k: (st.signs, st.patterns) for k, st in states.items()}
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    out = {}
    for name, st in states.items():
        signs = np.zeros((0, st.signs.shape[1]), dtype=bool)
        pats = np.zeros((0, st.patterns.shape[1]), dtype=bool)
        for rank_samples in everyone:
            s, p = rank_samples[name]
            signs = np.concatenate([signs, s[: SIGN_ROWS - signs.shape[0]]])
            pats = np.concatenate([pats, p[: OUI_SAMPLES - pats.shape[0]]])
        out[name] = LayerState(**{**st.__dict__, "signs": signs, "patterns": pats})
    return out


# ------------------------------------------------------------------------------------ set-up
def _check_options(thresholds, max_batches, mode, progress, input_fn) -> tuple[float, ...]:
    try:
        ths = tuple(float(a) for a in (thresholds if isinstance(thresholds, Sequence) else [thresholds]))
    except (TypeError, ValueError):
        raise SkewError(f"thresholds must be numbers in (0, 1/2), got {thresholds!r}; use e.g. (0.1, 0.3)") from None
    if not ths or any(not 0.0 < a < 0.5 for a in ths):
        raise SkewError(f"thresholds must be numbers strictly between 0 and 1/2, got {thresholds!r}; use e.g. (0.1, 0.3)")
    if len({f"{a:g}" for a in ths}) != len(ths):
        raise SkewError(f"thresholds {thresholds!r} repeat a value; pass distinct degrees such as (0.1, 0.3)")
    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1):
        raise SkewError(f"max_batches must be a positive integer or None, got {max_batches!r}")
    if mode not in MODES:
        raise SkewError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if progress is not None and not isinstance(progress, bool):
        raise SkewError(f"progress must be True, False or None (a bar on terminals), got {progress!r}")
    if input_fn is not None and not callable(input_fn):
        raise SkewError(f"input_fn must be a function batch -> model arguments, got {type(input_fn).__name__}")
    return ths


def _weight_table(model: nn.Module, layers: LayerSpec) -> pd.DataFrame:
    from skew.weights import neuron_table

    if not isinstance(model, nn.Module):
        raise SkewError(f"expected a torch.nn.Module, got {type(model).__name__}; pass the model itself")
    has_any = any(is_layer(m) or isinstance(m, (*LAYER_TYPES, nn.MultiheadAttention)) for m in model.modules())
    if not has_any:
        kinds = sorted({type(m).__name__ for m in model.modules()})
        raise SkewError(
            f"{type(model).__name__} has no layer skew can analyse: it contains {', '.join(kinds)}; skew measures "
            "Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d and MultiheadAttention projections"
        )
    return neuron_table(model, layers, tied="each")  # tied layers see different inputs: one site each


def _sites(model: nn.Module, table: pd.DataFrame) -> tuple[list[_Site], dict]:
    names = list(dict.fromkeys(table["layer"]))
    counts = table.groupby("layer", sort=False).size().to_dict()
    modules = dict(model.named_modules())
    mha_parent = {}
    for name, mod in modules.items():
        if isinstance(mod, nn.MultiheadAttention):
            mha_parent[f"{name}.out_proj" if name else "out_proj"] = (name, mod)
    sites: list[_Site] = []
    mha_in: dict[int, tuple[nn.Module, dict]] = {}
    for name in names:
        if name in mha_parent:
            _, mha = mha_parent[name]
            site = _Site(name, "mha_out", mha, counts[name], mha.out_proj.weight.device)
        elif name in modules:
            mod = modules[name]
            site = _Site(name, "layer", mod, counts[name], mod.weight.device)
        else:
            parent, suffix = name.rsplit(".", 1) if "." in name else ("", name)
            mha = modules[parent]
            w = mha.in_proj_weight if mha.in_proj_weight is not None else getattr(mha, f"{suffix}_weight")
            site = _Site(name, "mha_in", mha, counts[name], w.device)
            mha_in.setdefault(id(mha), (mha, {}))[1][suffix] = site
        sites.append(site)
    return sites, mha_in


def _info(sites: list[_Site], table: pd.DataFrame) -> dict[str, dict]:
    info = {}
    by_name = {s.name: s for s in sites}
    for name, w in table.groupby("layer", sort=False):
        site = by_name[name]
        if site.kind == "layer":
            shape, kind = tuple(site.module.weight.shape), type(site.module).__name__
        elif site.kind == "mha_out":
            shape, kind = tuple(site.module.out_proj.weight.shape), type(site.module.out_proj).__name__
        else:
            e = site.module.embed_dim
            shape, kind = (e, int(w["fan_in"].iloc[0])), type(site.module).__name__
        m, n = len(w), int(w["fan_in"].iloc[0])
        total = m * n
        with np.errstate(invalid="ignore", over="ignore"):
            mean = w["row_sum"].sum() / total
            var = float((w["row_norm"] ** 2).sum() / total - mean**2)
        info[name] = {"type": kind, "shape": str(shape), "weight_std": float("nan") if math.isnan(var) else math.sqrt(max(var, 0.0))}
    return info


def _skipped(model: nn.Module, sites: list[_Site], measured: set[str], never: dict[str, str]) -> pd.DataFrame:
    site_modules = {id(s.module) for s in sites if s.kind == "layer"}
    mha_measured = {id(s.module) for s in sites if s.kind != "layer"}
    out_projs = {id(s.module.out_proj) for s in sites if s.kind == "mha_out"}
    rows = []
    for name, mod in model.named_modules():
        if not name or name in measured:
            continue
        if name in never:
            rows.append((name, type(mod).__name__, never[name]))
            continue
        if id(mod) in site_modules or id(mod) in out_projs:
            continue
        if isinstance(mod, nn.MultiheadAttention):
            if id(mod) in mha_measured:
                continue
            reason = "not selected by layers="
        elif isinstance(mod, LAYER_TYPES):
            w = getattr(mod, "weight", None)
            if not isinstance(w, torch.Tensor) or isinstance(w, nn.parameter.UninitializedParameter):
                reason = "no weight (uninitialised lazy module or weight=None)"
            else:
                reason = "not selected by layers="
        elif next(mod.children(), None) is not None:
            reason = "container (its submodules are listed)"
        else:
            reason = "unsupported type (skew measures Linear, Conv, ConvTranspose and attention projections)"
        rows.append((name, type(mod).__name__, reason))
    for s in sites:
        if s.name in never and s.kind != "layer":
            rows.append((s.name, type(s.module).__name__, never[s.name]))
    return pd.DataFrame(rows, columns=["module", "type", "reason"]).drop_duplicates("module").reset_index(drop=True)


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _resolve_device(model: nn.Module, device) -> torch.device:
    home = _model_device(model)
    if device is None:
        return home
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise SkewError(f"device={device!r} is not a torch device; pass e.g. 'cpu', 'cuda' or 'cuda:1'") from None
    if dev.type == "cuda" and dev.index is None and torch.cuda.is_available():
        dev = torch.device("cuda", torch.cuda.current_device())
    if dev != home:
        raise SkewError(
            f"the model's parameters are on {home} but device={str(dev)!r}; move the model first "
            f"(model.to({str(dev)!r})) or pass device=None to use the model's device"
        )
    return dev


@contextlib.contextmanager
def _preserved(model: nn.Module, mode: str):
    """Set eval()/train() for the run; restore every module's flag and every buffer afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    rng = contextlib.nullcontext()
    if mode == "train":
        cuda = sorted({b.device.index or 0 for b in model.parameters() if b.device.type == "cuda"})
        rng = torch.random.fork_rng(devices=cuda)
    try:
        with rng:
            model.train(mode == "train")
            yield
    finally:
        for m, flag in flags:
            m.training = flag
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)


def _progress_bar(loader, max_batches, progress):
    show = sys.stderr.isatty() if progress is None else progress
    total = None
    try:
        total = len(loader)
    except TypeError:
        pass
    if isinstance(loader, torch.Tensor):
        total = 1
    if max_batches is not None:
        total = max_batches if total is None else min(total, max_batches)
    if not show:  # tqdm.auto warns in notebooks without ipywidgets even when disabled
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="skew.report", unit="batch", leave=False)


class _NoBar:
    """Stands in for a disabled progress bar."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------------------- API
def report(
    model: nn.Module,
    loader,
    *,
    layers: LayerSpec = None,
    thresholds: Sequence[float] = (0.1, 0.3),
    max_batches: int | None = None,
    device=None,
    mode: str = "eval",
    progress: bool | None = None,
    input_fn: Callable[[Any], Any] | None = None,
) -> Report:
    """Measure every selected neuron's P(Z > 0), skew |p − 1/2| and Theorem 1's prediction.

    .. math:: p = \\frac{\\#\\{Z > 0\\}}{n}, \\quad p_{gauss} = \\Phi(\\bar Z / s_Z), \\quad
              p_{pred} = \\Phi\\Big(\\frac{\\mu S + b}{\\sigma \\lVert W_i \\rVert}\\Big)

    Args:
        model: any ``nn.Module``; it is left exactly as it was (flags, parameters, buffers, hooks).
        loader: an iterable of batches — tensors, ``(inputs, targets)`` tuples/lists (only the inputs
            reach the model), dicts of tensors (keyword arguments), or whatever ``input_fn`` maps to the
            model's arguments. A single tensor is one batch. See :mod:`skew.batches`.
        layers: None (every Linear/ConvNd/ConvTransposeNd and attention projection), a glob on
            qualified names, a list of names, module type(s), or a predicate ``f(name, module)``.
        thresholds: the skew degrees α of the ``skewed_{α}`` / ``lambda_{α}`` / ``agree_{α}`` columns.
        max_batches: stop after this many batches (None: the whole loader).
        device: where batches are sent; must be the model's device (None: the model's).
        mode: ``"eval"`` (default; docs/definitions.md) or ``"train"`` (BatchNorm uses batch statistics;
            running statistics are restored afterwards).
        progress: show a tqdm bar (None: only when stderr is a terminal).
        input_fn: ``batch -> args`` (a tuple is positional arguments, a dict keyword arguments,
            anything else the single input).

    Returns:
        a :class:`skew.result.Report`.

    Raises:
        SkewError: no analysable layer, an empty loader, a batch the model rejects (the message
        names the module reached and the batch's structure), bad options.

    Under ``torch.distributed`` every rank must call ``report`` (same model, its own data); each
    rank then returns the Report of the union of all ranks' data (ranks in order).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4))
        >>> _ = net(torch.zeros(1, 3, 8, 8))              # materialise the lazy layer
        >>> rep = report(net, [(torch.randn(16, 3, 8, 8), torch.zeros(16))])
        >>> rep.layers["neurons"].tolist()
        [8, 4]
    """
    ths = _check_options(thresholds, max_batches, mode, progress, input_fn)
    table = _weight_table(model, layers)
    dev = _resolve_device(model, device)
    sites, mha_in = _sites(model, table)
    run = _Run(sites)
    batches = inputs = 0
    bar = None
    with _preserved(model, mode), torch.no_grad():
        try:
            for site in sites:
                if site.kind == "layer":
                    run.handles.append(site.module.register_forward_hook(run.layer_hook(site), with_kwargs=True))
                elif site.kind == "mha_out":
                    run.handles.append(site.module.register_forward_hook(run.mha_out_hook(site)))
            for mha, by_suffix in mha_in.values():
                run.handles.append(
                    mha.register_forward_pre_hook(run.mha_pre_hook(mha, by_suffix), with_kwargs=True)
                )
            bar = _progress_bar(loader, max_batches, progress)
            for batch in iter_batches(loader):
                if max_batches is not None and batches >= max_batches:
                    break
                args, kwargs = model_inputs(batch, input_fn, model)
                args, kwargs = to_device(args, dev), to_device(kwargs, dev)
                for careful in (False, True):
                    run.careful = careful
                    run.reset_batch()
                    _forward(model, args, kwargs, run, batch, batches)
                    if run.finish_batch():
                        break
                run.careful = False
                batches += 1
                inputs += batch_size(args, kwargs)
                bar.update(1)
        finally:
            for h in run.handles:
                h.remove()
            run.handles.clear()
            if bar is not None:
                bar.close()
        if batches == 0:
            raise SkewError("the loader yielded no batches; pass a non-empty iterable of batches (check the dataset size)")
        states = run.states()
        local_batches = batches
        if _distributed():
            batches, inputs = _sum_over_ranks([batches, inputs], dev)
    never = {}
    for s in sites:
        if states[s.name].calls == 0:
            never[s.name] = s.bad_output or "never executed (the forward pass did not call it)"
    measured = {k: v for k, v in states.items() if k not in never}
    if not measured:
        raise SkewError(
            f"none of the {len(sites)} selected layers ran during the forward pass ({', '.join(list(never)[:5])}...); "
            "check that the model's forward calls them, or select other layers with layers="
        )
    table = table[table["layer"].isin(measured)]
    meta = {
        "model": type(model).__name__,
        "batches": batches,
        "inputs": inputs,
        "device": str(dev),
        "mode": mode,
        "max_batches": max_batches,
        "layers_spec": "None" if layers is None else repr(layers),
        "world_size": _world_size(),
        "local_batches": local_batches,
        "torch": torch.__version__,
    }
    from skew._version import __version__

    meta["skew"] = __version__
    return Report(
        measured,
        table[list(WEIGHT_COLUMNS)],
        _info(sites, table),
        thresholds=ths,
        meta=meta,
        skipped=_skipped(model, sites, set(measured), never),
    )


def _sum_over_ranks(values: list[int], device: torch.device) -> list[int]:
    import torch.distributed as dist

    on = device if dist.get_backend() != "nccl" or device.type == "cuda" else torch.device("cuda")
    t = torch.as_tensor(values, dtype=torch.int64, device=on)
    dist.all_reduce(t)
    return [int(v) for v in t.tolist()]


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _forward(model: nn.Module, args: tuple, kwargs: dict, run: _Run, batch, index: int) -> None:
    try:
        model(*args, **kwargs)
    except Exception as err:
        found = _failing_module(err, model)
        where = "in the model's own forward" if found is None else (
            f"in module {found[0]!r} ({type(found[1]).__name__})" if found[0] else
            f"in {type(model).__name__}.forward itself")
        raise SkewError(
            f"{type(model).__name__} rejected batch {index} = {describe(batch)}: {type(err).__name__} raised "
            f"{where}: {err}. Make the loader yield what the model expects, or pass input_fn= to map a "
            "batch to the model's arguments"
        ) from err


def _failing_module(err: BaseException, model: nn.Module) -> tuple[str, nn.Module] | None:
    """The innermost submodule of ``model`` whose code is on the exception's traceback.

    Read from the frames' ``self`` after the fact, so that no hook has to track every module
    during the run (which would slow every forward).
    """
    names = {id(m): n for n, m in model.named_modules()}
    found = None
    tb = err.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if obj is not None and id(obj) in names:
            found = (names[id(obj)], obj)
        tb = tb.tb_next
    return found
