"""Watch skew and OUI through training: a callback for a plain PyTorch loop.

Every ``every`` steps the :class:`Tracker` runs :func:`skew.report` on one fixed probe batch (the
same streaming machinery as a one-off report, so the numbers are the ones a report would give at
that step) and keeps only per-layer scalars: the skewed fractions per threshold α (count and
Gaussian estimators), the mean skew |p − 1/2|, batch and pairwise OUI, and the dead / always-on /
degenerate counts. No activation tensor outlives a measurement.

Example:
    >>> tracker = skew.Tracker(model, probe_x, every=50)          # doctest: +SKIP
    >>> for step, (x, y) in enumerate(loader):                     # doctest: +SKIP
    ...     tracker.step(step)
    ...     loss = F.cross_entropy(model(x), y); loss.backward(); opt.step(); opt.zero_grad()
    >>> tracker.history[["step", "layer", "skewed_0.3", "oui_pairwise"]]  # doctest: +SKIP
    >>> tracker.plot("skewed_0.3")                                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from skew.errors import SkewError
from skew.layers import LayerSpec

__all__ = ["Tracker"]

#: Per-layer columns of ``Report.layers`` a Tracker keeps besides the per-threshold ones.
_LAYER_SCALARS = ("neurons", "mean_skew", "oui_batch", "oui_pairwise", "dead", "always_on", "degenerate")
_MODES = ("eval", "train")


class Tracker:
    """Record per-layer skew fractions and OUI on a fixed probe batch every ``every`` steps.

    At a measured step the tracker calls ``skew.report(model, [probe], layers=..., thresholds=...,
    mode=mode)`` and appends one row per layer to :attr:`history`:

    .. math:: \\text{skewed}_\\alpha = \\frac{\\#\\{i : |p_i - 1/2| > \\alpha\\}}
                                          {\\#\\{\\text{non-degenerate } i\\}},
              \\quad p_i = \\frac{1}{N}\\sum_{s=1}^{N} [Z_{i,s} > 0]

    with ``skewed_gauss_α`` the same with p_i = Φ(mean Z_i / std Z_i), ``mean_skew`` the mean of
    |p_i − 1/2|, ``oui_batch`` and ``oui_pairwise`` as in docs/oui.md. The measurement runs under
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
            A measurement costs one forward pass of the probe plus a fixed ~15-20 ms of
            bookkeeping (building the Report's tables); on the digits MLP, whose training step
            takes 0.5 ms, every=50 adds ~70 % to training time and every=10 ~330 %
            (``benchmarks/bench_tracker.py``), so choose ``every`` with every × step time ≫ 20 ms.
        layers: which layers to measure (anything :func:`skew.layers.select_units` accepts).
        thresholds: the α values to report.
        mode: ``"eval"`` (default, as docs/definitions.md recommends) or ``"train"``.
        input_fn, device: passed to ``skew.report``.
        at: ``"layers"`` (default) or ``"activations"``, passed to ``skew.report``.

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
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise SkewError(
                f"every={every!r} is not a positive integer; pass e.g. every=10 to measure every 10 steps"
            )
        if mode not in _MODES:
            raise SkewError(f"mode={mode!r} is not understood; use one of {', '.join(_MODES)}")
        try:
            thresholds = tuple(float(a) for a in thresholds)
        except (TypeError, ValueError):
            raise SkewError(
                f"thresholds={thresholds!r} is not a list of numbers; pass e.g. (0.1, 0.3)"
            ) from None
        if not thresholds or any(not 0 < a < 0.5 for a in thresholds):
            raise SkewError(
                f"thresholds={thresholds!r} must be non-empty with every α in (0, 0.5); pass e.g. (0.1, 0.3)"
            )
        if probe is None:
            raise SkewError(
                "Tracker needs a probe batch; pass a fixed batch of inputs, e.g. next(iter(val_loader))"
            )
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
        self._rows: list[dict[str, Any]] = []
        self._frame: pd.DataFrame | None = None
        self._calls = 0

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
        self._calls += 1
        if int(step) % self.every != 0:
            return False
        self.measure(int(step))
        return True

    __call__ = step

    def measure(self, step: int) -> pd.DataFrame:
        """Measure now, whatever the step, and return the rows added (one per layer).

        Example:
            >>> tr = Tracker(nn.Linear(4, 3), torch.randn(16, 4), every=100)
            >>> tr.measure(7)["step"].tolist()
            [7]
        """
        from skew.analyzer import report

        flags = [(m, m.training) for m in self.model.modules()]
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                rep = report(
                    self.model,
                    [self.probe],
                    layers=self.layers,
                    thresholds=self.thresholds,
                    device=self.device,
                    mode=self.mode,
                    progress=False,
                    input_fn=self.input_fn,
                    at=self.at,
                )
        finally:
            for module, flag in flags:
                module.training = flag
        rows = self._rows_from(rep.layers, step)
        self._rows.extend(rows)
        self._frame = None
        return pd.DataFrame(rows, columns=self._columns())

    def _columns(self) -> list[str]:
        per_alpha = [f"{kind}_{a:g}" for kind in ("skewed", "skewed_gauss") for a in self.thresholds]
        return ["step", "layer", *per_alpha, *_LAYER_SCALARS]

    def _rows_from(self, table: pd.DataFrame, step: int) -> list[dict[str, Any]]:
        columns = self._columns()
        missing = [c for c in columns[2:] if c not in table.columns]
        if missing:
            raise SkewError(
                f"skew.report's layer table lacks {missing}; the Tracker needs the Report contract's "
                "columns (update skew.analyzer or pass thresholds it reports)"
            )
        values = {c: table[c].tolist() for c in columns[1:]}
        return [{"step": step, **{c: values[c][i] for c in columns[1:]}} for i in range(len(table))]

    # -- results -----------------------------------------------------------------------------
    @property
    def history(self) -> pd.DataFrame:
        """One row per (measured step, layer): step, layer, ``skewed_α``, ``skewed_gauss_α``,
        neurons, mean_skew, oui_batch, oui_pairwise, dead, always_on, degenerate.

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
            unknown = [n for n in layers if n not in names]
            if unknown:
                raise SkewError(f"layers {unknown} were not tracked; pick from {', '.join(names)}")
            names = [n for n in names if n in set(layers)]
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(6, 3.5))
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
