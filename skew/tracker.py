"""Watch skew and OUI through training: a callback for a plain PyTorch loop.

Every ``every`` steps the :class:`Tracker` runs :func:`skew.report` on one fixed probe batch (the
same estimators as a one-off report, so the numbers are the ones a report would give at that step)
and keeps only per-layer scalars: the skewed fractions per threshold α (count and Gaussian
estimators), the mean skew |p − 1/2|, batch and pairwise OUI, the dead / always-on / degenerate
counts, and how much the probe's activation pattern and the layer's weights moved since the last
measurement (``pattern_change``, ``weight_change``; docs/oui.md). No activation tensor outlives a
measurement.

Example:
    >>> tracker = skew.Tracker(model, probe_x, every=50)          # doctest: +SKIP
    >>> for step, (x, y) in enumerate(loader):                     # doctest: +SKIP
    ...     tracker.step(step)
    ...     loss = F.cross_entropy(model(x), y); loss.backward(); opt.step(); opt.zero_grad()
    >>> tracker.history[["step", "layer", "skewed_0.3", "oui_pairwise"]]  # doctest: +SKIP
    >>> tracker.plot("skewed_0.3")                                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from skew._checks import eager_module, positive_int
from skew._checks import thresholds as check_thresholds
from skew._light import capture_patterns, light_supported, measure_layers, pack, pattern_flips
from skew._state import kept_buffers, kept_modes, no_mha_fastpath
from skew.analyzer import _model_device, parse_device
from skew.batches import model_inputs, to_device
from skew.errors import SkewError
from skew.layers import LayerSpec, select_units

__all__ = ["Tracker"]

#: Per-layer columns of ``Report.layers`` a Tracker keeps besides the per-threshold ones.
_LAYER_SCALARS = ("neurons", "mean_skew", "oui_batch", "oui_pairwise", "dead", "always_on", "degenerate")
_MODES = ("eval", "train")
#: Where the Tracker measures: layer outputs here; "activations" (nonlinearity inputs) is passed to
#: skew.report when that version measures it.
_SITES = ("layers", "activations")


@contextlib.contextmanager
def _measuring(model: nn.Module, mode: str):
    """eval()/train() for one measurement; every flag, buffer and the random state restored after."""
    cuda = sorted({t.device.index or 0 for t in model.parameters() if t.device.type == "cuda"})
    with kept_modes(model), kept_buffers(model), torch.random.fork_rng(devices=cuda if mode == "train" else []), \
            no_mha_fastpath():
        model.train(mode == "train")
        yield


def _check_once(model: nn.Module, probe, layers, input_fn, device, at: str) -> None:
    """What can be checked when the Tracker is built, so that a bad argument fails before training starts
    rather than at the first measured step (and input_fn=3 fails with a SkewError, not a TypeError)."""
    from skew.batches import _first_tensor
    from skew.layers import select_units

    if input_fn is not None and not callable(input_fn):
        raise SkewError(f"input_fn must be a function batch -> model arguments, got {type(input_fn).__name__}")
    if device is not None:
        parse_device(device)
    if at == "layers":
        with kept_buffers(model), torch.no_grad():  # reading a spectral-normed weight in train mode moves _u/_v
            select_units(model, layers)  # unknown names and predicates of the wrong arity, named now
    if input_fn is None:
        t = _first_tensor(probe)
        if t is not None and t.dim() > 0 and t.numel() == 0:
            raise SkewError(f"the probe batch is empty (its first tensor has shape {tuple(t.shape)}); pass a "
                            "batch with samples, e.g. next(iter(val_loader))")


class Tracker:
    """Record per-layer skew fractions and OUI on a fixed probe batch every ``every`` steps.

    At a measured step the tracker measures what ``skew.report(model, [probe], layers=...,
    thresholds=..., mode=mode)`` would report, with the same definitions (by a light hook per layer
    that shares report's degenerate rule and unit OUI, or by that call for attention projections,
    layers inside transformer modules, batches with an ``attention_mask``, other sites and
    non-finite values) and appends one row per layer to :attr:`history`:

    .. math:: \\text{skewed}_\\alpha = \\frac{\\#\\{i : |p_i - 1/2| > \\alpha\\}}
                                          {\\#\\{\\text{non-degenerate } i\\}},
              \\quad p_i = \\frac{1}{N}\\sum_{s=1}^{N} [Z_{i,s} > 0]

    with ``skewed_gauss_α`` the same with p_i = Φ(mean Z_i / std Z_i), ``mean_skew`` the mean of
    |p_i − 1/2|, ``oui_batch`` and ``oui_pairwise`` (the authors' units: C×H×W, T×F) as in
    docs/oui.md, and between this measurement t
    and the previous one t − 1 (NaN at the first):

    .. math:: \\text{pattern\\_change} = \\frac{1}{N U}\\sum_{s=1}^{N}\\sum_{u=1}^{U}
                  \\big[[Z^{(t)}_{s,u} > 0] \\ne [Z^{(t-1)}_{s,u} > 0]\\big], \\qquad
              \\text{weight\\_change} = \\frac{\\lVert W_t - W_{t-1} \\rVert_F}{\\lVert W_{t-1} \\rVert_F}

    over the N probe samples and the U units of the layer's activation pattern (every position or
    token of every channel, as the authors' OUI pattern). To compare, the tracker keeps the
    previous measurement's probe patterns packed 8 states per byte (N·U/8 bytes per layer) and a
    copy of every measured layer's weight: **O(parameters) extra memory**, the size of the tracked
    layers' weights once more. ``weight_change`` is NaN for sites without a weight (``at`` other
    than ``"layers"``), inf when W_{t−1} = 0 ≠ W_t. W is the weight forward computes with
    (:func:`skew.layers.effective_weight`: standardised for a weight-standardised conv).

    The measurement runs under
    ``torch.no_grad`` in eval mode by default (``mode="train"`` measures with dropout and
    BatchNorm in training behaviour; ``skew.report`` restores every buffer, so BatchNorm running
    statistics are left as they were); afterwards
    every submodule's ``training`` flag and the global CPU random state are restored, so leaving a
    tracker on does not change the training run.

    Args:
        model: the network being trained.
        probe: one fixed batch: a tensor, an ``(x, y)`` pair, or whatever ``input_fn`` turns into
            model inputs (it is passed to ``skew.report`` as a one-batch loader).
        every: measure when ``step % every == 0`` (so step 0, before any update, is measured).
            A measurement costs one forward pass of the probe plus about 2.5 ms of bookkeeping
            on the digits MLP (layers measured by a light hook, no tables built; the history
            frame is built when :attr:`history` is read); on that MLP, whose training step takes
            0.8 ms, every=50 adds ~10 % to training time and every=10 ~50 %
            (``benchmarks/bench_tracker.py``). Attention projections and ``at="activations"``
            go through :func:`skew.report` and cost ~15 ms more per measurement.
        layers: which layers to measure (anything :func:`skew.layers.select_units` accepts).
        thresholds: the α values to report.
        mode: ``"eval"`` (default, as docs/definitions.md recommends) or ``"train"``.
        input_fn, device: how the probe reaches the model, as in ``skew.report``.
        at: where to measure: ``"layers"`` (Linear/Conv outputs, the default) or
            ``"activations"`` (nonlinearity inputs; passed through to ``skew.report(at=...)``).

    Example:
        >>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
        >>> tr = Tracker(net, torch.randn(64, 8), every=10)
        >>> for s in range(25):
        ...     _ = tr.step(s)      # measures at 0, 10, 20
        >>> sorted(tr.history["step"].unique().tolist())
        [0, 10, 20]
    """

    def __init__(
        self,
        model: nn.Module,
        probe: Any,
        *,
        every: int = 50,
        layers: LayerSpec = None,
        thresholds: Sequence[float] = (0.1, 0.3),
        mode: str = "eval",
        input_fn: Callable | None = None,
        device: str | torch.device | None = None,
        at: str = "layers",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise SkewError(
                f"Tracker needs a torch.nn.Module, got {type(model).__name__}; pass the model itself"
            )
        eager_module(model)
        every = positive_int("every", every, 10)  # a whole float or numpy int is read as the int
        if mode not in _MODES:
            raise SkewError(f"mode={mode!r} is not understood; use one of {', '.join(_MODES)}")
        if at not in _SITES:
            raise SkewError(f"at={at!r} is not understood; use one of {', '.join(_SITES)}")
        thresholds = check_thresholds(thresholds)
        if probe is None:
            raise SkewError(
                "Tracker needs a probe batch; pass a fixed batch of inputs, e.g. next(iter(val_loader))"
            )
        _check_once(model, probe, layers, input_fn, device, at)
        self.model = model
        self.probe = probe
        self.every = every
        self.layers = layers
        self.thresholds = thresholds
        from skew.analyzer import AT

        if at not in AT:
            raise SkewError(f"at={at!r} is not understood; use one of {', '.join(map(repr, AT))}")
        self.at = at
        self.mode = mode
        self.input_fn = input_fn
        self.device = device
        self.at = at
        self._rows: list[dict[str, Any]] = []
        self._frame: pd.DataFrame | None = None
        self._calls = 0
        self._units = None
        self._light = False
        self._prepared = None
        self._prev_patterns: dict[str, Any] = {}
        self._prev_weights: dict[str, torch.Tensor] = {}

    # -- recording ---------------------------------------------------------------------------
    def step(self, step: int | None = None) -> bool:
        """Call once per training iteration; measures when ``step % every == 0``.

        ``step`` defaults to the number of earlier ``step()`` calls (0, 1, 2, ...). Returns True
        when this call measured.

        Example:
            >>> tr = Tracker(nn.Linear(4, 3), torch.randn(16, 4), every=2)
            >>> [tr.step() for _ in range(4)]
            [True, False, True, False]
        """
        if step is None:
            step = self._calls
        elif isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise SkewError(f"step={step!r} is not an integer; pass the training step, e.g. tracker.step(i)")
        self._calls += 1
        if int(step) % self.every != 0:
            return False
        self._measure(int(step))
        return True

    __call__ = step

    def measure(self, step: int) -> pd.DataFrame:
        """Measure now, whatever the step, and return the rows added (one per layer).

        Example:
            >>> tr = Tracker(nn.Linear(4, 3), torch.randn(16, 4), every=100)
            >>> tr.measure(7)["step"].tolist()
            [7]
        """
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise SkewError(f"step={step!r} is not an integer; pass the training step, e.g. tracker.measure(i)")
        return pd.DataFrame(self._measure(int(step)), columns=self._columns())

    def _measure(self, step: int) -> list[dict[str, Any]]:
        rows = None
        with _measuring(self.model, self.mode), torch.no_grad():  # every read of the model inside
            if self._units is None:
                self._units = select_units(self.model, self.layers)
                self._light = self.at == "layers" and light_supported(self.model, self._units, self.probe)
            inputs = self._inputs()
            if self._light:
                res = measure_layers(self.model, self._units, inputs, self.thresholds)
                if res.finite and res.rows:
                    rows, patterns = res.rows, res.patterns
            if rows is None:  # attention blocks, at="activations", or non-finite values: skew.report
                rows, patterns = self._full(inputs)
            weight_change = self._weight_changes()  # inside: reading a parametrized weight may write buffers
        out = []
        for row in rows:
            name = row["layer"]
            packed = pack(patterns[name]) if name in patterns else None
            out.append({
                "step": step, **{c: row[c] for c in self._columns()[1:-2]},
                "pattern_change": pattern_flips(self._prev_patterns.get(name), packed),
                "weight_change": weight_change.get(name, float("nan")),
            })
            self._prev_patterns[name] = packed
        self._rows.extend(out)
        self._frame = None
        return out

    def _inputs(self) -> tuple[tuple, dict]:
        """The probe as model arguments on the model's device (prepared once per device)."""
        dev = _model_device(self.model)
        if self.device is not None:
            try:
                want = torch.device(self.device)
            except (RuntimeError, TypeError):
                raise SkewError(
                    f"device={self.device!r} is not a torch device; pass e.g. 'cpu' or 'cuda'"
                ) from None
            if want.type != dev.type or (want.index is not None and want != dev):
                raise SkewError(
                    f"the model's parameters are on {dev} but device={str(want)!r}; move the model first "
                    "or pass device=None to use the model's device"
                )
        if self._prepared is None or self._prepared[0] != dev:
            args, kwargs = model_inputs(self.probe, self.input_fn, self.model)
            self._prepared = (dev, (to_device(args, dev), to_device(kwargs, dev)))
        return self._prepared[1]

    def _full(self, inputs) -> tuple[list[dict], dict]:
        """skew.report on the probe (attention projections, other sites, non-finite values)."""
        from skew.analyzer import report

        rep = report(
            self.model, [self.probe], layers=self.layers, thresholds=self.thresholds, device=self.device,
            mode=self.mode, progress=False, input_fn=self.input_fn, at=self.at,
        )
        rows = self._rows_from(rep.layers)
        patterns = capture_patterns(self.model, [r["layer"] for r in rows], inputs, self.at)
        return rows, patterns

    def _weight_changes(self) -> dict[str, float]:
        """‖W_t − W_{t−1}‖_F / ‖W_{t−1}‖_F per weighted layer; keeps a copy of each weight."""
        if self.at != "layers":
            return {}
        out = {}
        with torch.no_grad():
            for u in self._units:
                w = u.effective.detach()  # the weight forward uses (weight standardisation applied)
                prev = self._prev_weights.get(u.name)
                if prev is not None and prev.shape == w.shape:
                    num = torch.linalg.vector_norm((w - prev).to(torch.float64))
                    den = torch.linalg.vector_norm(prev.to(torch.float64))
                    out[u.name] = float(num / den) if float(den) > 0 else (
                        float("nan") if float(num) == 0 else float("inf"))
                if prev is not None and prev.shape == w.shape and prev.device == w.device:
                    prev.copy_(w)
                else:
                    self._prev_weights[u.name] = w.clone()
        return out

    def _columns(self) -> list[str]:
        per_alpha = [f"{kind}_{a:g}" for kind in ("skewed", "skewed_gauss") for a in self.thresholds]
        return ["step", "layer", *per_alpha, *_LAYER_SCALARS, "pattern_change", "weight_change"]

    def _rows_from(self, table: pd.DataFrame) -> list[dict[str, Any]]:
        columns = self._columns()[1:-2]
        missing = [c for c in columns[1:] if c not in table.columns]
        if missing:
            raise SkewError(
                f"skew.report's layer table lacks {missing}; the Tracker needs the Report contract's "
                "columns (update skew.analyzer or pass thresholds it reports)"
            )
        values = {c: table[c].tolist() for c in columns}
        return [{c: values[c][i] for c in columns} for i in range(len(table))]

    # -- results -----------------------------------------------------------------------------
    @property
    def history(self) -> pd.DataFrame:
        """One row per (measured step, layer): step, layer, ``skewed_α``, ``skewed_gauss_α``,
        neurons, mean_skew, oui_batch, oui_pairwise, dead, always_on, degenerate, pattern_change,
        weight_change.

        Example:
            >>> tracker.history.groupby("step")["oui_pairwise"].mean()  # doctest: +SKIP
        """
        if self._frame is None:
            frame = pd.DataFrame(self._rows, columns=self._columns())
            self._frame = frame.astype({"step": "int64"})
        return self._frame.copy()

    @property
    def steps(self) -> list[int]:
        """The steps measured so far, in order."""
        return sorted({row["step"] for row in self._rows})

    def plot(self, metric: str = "skewed_0.3", *, ax=None, layers: Sequence[str] | None = None):
        """Line plot of ``metric`` over steps, one line per layer; returns the Axes.

        ``metric`` is any numeric column of :attr:`history` (e.g. ``"skewed_0.1"``,
        ``"oui_pairwise"``, ``"mean_skew"``); ``layers`` restricts the lines drawn.

        Example:
            >>> ax = tracker.plot("oui_pairwise")  # doctest: +SKIP
        """
        hist = self.history
        valid = [c for c in hist.columns if c not in ("step", "layer")]
        if metric not in valid:
            raise SkewError(f"metric={metric!r} is not recorded; use one of {', '.join(valid)}")
        if hist.empty:
            raise SkewError(
                "the tracker has no measurements yet; call tracker.step(step) in the training loop first"
            )
        names = list(dict.fromkeys(hist["layer"]))
        if layers is not None:
            if isinstance(layers, str):
                layers = [layers]
            if not isinstance(layers, Iterable) or not list(layers):
                raise SkewError(f"layers={layers!r} names no tracked layer; pass None (all) or names from "
                                f"{', '.join(names)}")
            layers = list(layers)
            unknown = [n for n in layers if n not in names]
            if unknown:
                raise SkewError(f"layers {unknown} were not tracked; pick from {', '.join(names)}")
            names = [n for n in names if n in set(layers)]
        from skew.plot import _axes

        ax = _axes(ax, figsize=(6, 3.5))
        for name in names:
            part = hist[hist["layer"] == name].sort_values("step")
            ax.plot(part["step"], part[metric], marker="o", markersize=3, label=name)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.legend(title="layer", fontsize="small")
        return ax

    def __repr__(self) -> str:
        return (
            f"Tracker(model={type(self.model).__name__}, every={self.every}, "
            f"thresholds={self.thresholds}, measured={len(self.steps)} steps)"
        )
