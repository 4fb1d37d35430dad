"""Figures of neuron skew: weights, row sums, skew, activation rasters, theory curves, depth profiles.

Every function takes ``ax=None`` (a new Figure is created only then, with ``plt.subplots``), draws
on that one Axes and returns it; none calls ``plt.show()`` or changes matplotlib's global rcParams.
``data`` may be a :class:`skew.result.Report` (``.neurons``, ``.layers``, ``.signs``,
``.thresholds``), a :class:`skew.compare.Comparison` (tidy frames with ``init`` and ``seed``
columns), or a DataFrame: a neurons frame (has a ``neuron`` column) or a layers frame. Layer-specific
plots take ``layer=`` (a name, or ``"all"`` where pooling makes sense); ``layer=None`` picks the first
layer whose measured input has a non-zero mean, |μ| ≥ 0.1 σ (:func:`default_layer`): a layer fed the raw,
zero-mean data (the first conv of an image model) has no skew to show, every histogram collapsing to one
bar. The title names the layer shown and why it was picked.
Titles and labels name the estimator of p (``count``: fraction of samples with Z > 0; ``gauss``:
Φ(mean_Z / std_Z)) and the threshold α; degenerate neurons (std_Z = 0) are left out and counted.

Example:
    >>> import skew.plot as sp
    >>> ax = sp.weight_hist(torch.randn(64, 64))          # doctest: +SKIP
    >>> ax = sp.rowsum_hist(report, alpha=0.3)            # doctest: +SKIP
    >>> ax.figure.savefig("rowsums.png")                  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.patches import Patch

from skew import theory
from skew._checks import positive_int
from skew.errors import SkewError
from skew.layers import neuron_rows, weight_matrix

__all__ = [
    "activation_states",
    "rowsum_hist",
    "skew_by_depth",
    "skew_fraction_vs_alpha",
    "skew_hist",
    "skew_vs_rowsum",
    "weight_heatmap",
    "weight_hist",
]

_ESTIMATORS = ("count", "gauss")
_DEFAULT_THRESHOLDS = (0.1, 0.3)


# ---- helpers ---------------------------------------------------------------------------------------
def _axes(ax, figsize=(6.4, 4.2)):
    from matplotlib.axes import Axes

    if ax is not None and not isinstance(ax, Axes):
        raise SkewError(f"ax must be a matplotlib Axes or None (a new figure), got {type(ax).__name__}; "
                        "pass e.g. ax=plt.subplots()[1]")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


#: rowsum_hist refuses a binwidth that would make more bins than this (memory grows with the count).
MAX_BINS = 100_000


def _check_cmap(cmap) -> None:
    import matplotlib

    if isinstance(cmap, matplotlib.colors.Colormap):
        return
    if not isinstance(cmap, str) or cmap not in matplotlib.colormaps:
        close = __import__("difflib").get_close_matches(str(cmap), list(matplotlib.colormaps), n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise SkewError(f"cmap={cmap!r} is not a matplotlib colormap{hint}; use e.g. cmap='RdBu_r' "
                        "(list: matplotlib.colormaps)")


def _check_estimator(estimator: str) -> str:
    if estimator not in _ESTIMATORS:
        raise SkewError(f"unknown estimator {estimator!r}; valid estimators are {', '.join(_ESTIMATORS)}")
    return estimator


def _skew_col(estimator: str) -> str:
    return "skew" if _check_estimator(estimator) == "count" else "skew_gauss"


def _p_col(estimator: str) -> str:
    return "p" if _check_estimator(estimator) == "count" else "p_gauss"


def _check_alpha(alpha) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        a = float("nan")
    if not 0.0 < a < 0.5:
        raise SkewError(f"alpha={alpha!r} must lie strictly between 0 and 0.5; use e.g. alpha=0.3")
    return a


def _parts(data) -> tuple[pd.DataFrame | None, pd.DataFrame | None, dict | None, tuple | None]:
    """(neurons, layers, signs, thresholds) of a Report, a Comparison or a DataFrame."""
    if isinstance(data, pd.DataFrame):
        if "layer" not in data.columns:
            raise SkewError("the DataFrame has no 'layer' column; pass a Report, a Comparison, or its "
                            ".neurons / .layers frame")
        if "neuron" in data.columns:
            return data, None, None, None
        return None, data, None, None
    neurons = getattr(data, "neurons", None)
    layers = getattr(data, "layers", None)
    if not isinstance(neurons, pd.DataFrame) and not isinstance(layers, pd.DataFrame):
        raise SkewError(f"cannot plot a {type(data).__name__}; pass a Report, a Comparison, or a neurons/layers "
                        "DataFrame")
    thresholds = getattr(data, "thresholds", None)
    return (neurons if isinstance(neurons, pd.DataFrame) else None,
            layers if isinstance(layers, pd.DataFrame) else None,
            getattr(data, "signs", None), tuple(thresholds) if thresholds is not None else None)


def _need(frame: pd.DataFrame | None, columns: Sequence[str], what: str) -> pd.DataFrame:
    if frame is None:
        raise SkewError(f"{what} needs per-neuron data; pass a Report, a Comparison or a neurons DataFrame")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SkewError(f"{what} needs the column(s) {', '.join(missing)}; the frame has "
                        f"{', '.join(map(str, frame.columns))}")
    return frame


def _order(frame: pd.DataFrame) -> list:
    """Layer names in order of first appearance (forward order for skew's frames)."""
    return list(dict.fromkeys(frame["layer"]))


#: ``default_layer`` skips layers whose input mean is below this fraction of the input std.
MIN_INPUT_MEAN = 0.1


def default_layer(names: Sequence, layers: pd.DataFrame | None = None) -> tuple[object, str]:
    """The layer a per-layer plot shows when ``layer=None``, and a short reason for the title.

    The first layer, in forward order, whose measured input satisfies |μ| ≥ 0.1 σ (columns
    ``input_mean`` / ``input_std`` of the layers frame, averaged over inits and seeds): Theorem 1's skew
    needs μ ≠ 0, so a layer fed zero-mean data (the standardised images of a first conv) shows
    nothing. Falls back to the first layer when no layer qualifies or the moments are unknown.

    Example:
        >>> frame = pd.DataFrame({"layer": ["conv1", "conv2"], "input_mean": [0.0, 0.4], "input_std": [1.0, 0.6]})
        >>> default_layer(["conv1", "conv2"], frame)
        ('conv2', 'first layer with input mean ≠ 0')
    """
    names = list(names)
    if not names:
        raise SkewError("no layers to plot; analyse at least one layer first")
    if layers is not None and {"layer", "input_mean", "input_std"} <= set(layers.columns):
        moments = layers.groupby("layer", sort=False)[["input_mean", "input_std"]].mean()
        for name in names:
            if name in moments.index:
                mu, sd = (float(v) for v in moments.loc[name])
                if math.isfinite(mu) and math.isfinite(sd) and abs(mu) >= MIN_INPUT_MEAN * sd and mu != 0:
                    return name, ("first layer" if name == names[0] else "first layer with input mean ≠ 0")
        return names[0], "first layer; no layer has input mean ≠ 0"
    return names[0], "first layer"


def _select(frame: pd.DataFrame, layer, *, allow_all: bool = True,
            layers: pd.DataFrame | None = None) -> tuple[pd.DataFrame, str]:
    """Rows of ``layer`` (None: :func:`default_layer`; "all": every layer) and a label for titles."""
    names = _order(frame)
    if not names:
        raise SkewError("the frame has no rows; analyse at least one layer first")
    if layer == "all" and allow_all:
        return frame, ("all layers" if len(names) > 1 else f"layer {names[0]}")
    if layer is None:
        layer, why = default_layer(names, layers)
        label = f"layer {layer}" + (f" ({why})" if len(names) > 1 else "")
    else:
        if layer not in names:
            shown = ", ".join(map(repr, names[:10])) + (" ..." if len(names) > 10 else "")
            extra = ' or "all"' if allow_all else ""
            raise SkewError(f"no layer {layer!r} in the data; valid layers are {shown}{extra}")
        label = f"layer {layer}"
    return frame[frame["layer"] == layer], label


def _live(frame: pd.DataFrame, col: str | None = None) -> tuple[pd.DataFrame, int]:
    """Non-degenerate rows (with a finite ``col``, when given) and how many degenerate ones were dropped."""
    mask = np.zeros(len(frame), dtype=bool)
    if "degenerate" in frame.columns:
        mask = frame["degenerate"].fillna(False).astype(bool).to_numpy()
    n_degenerate = int(mask.sum())
    if col is not None and col in frame.columns:
        mask = mask | ~np.isfinite(frame[col].to_numpy(float))
    return frame[~mask], n_degenerate


def _with_rows(frame: pd.DataFrame, label: str, what: str) -> pd.DataFrame:
    """The rows with a finite row sum; a SkewError when there are none (activation sites have no weight row)."""
    keep = frame[np.isfinite(frame["row_sum"].to_numpy(float))]
    if len(frame) and not len(keep):
        raise SkewError(
            f"{label} has no weight rows (row sums are NaN at the sites of at='activations'), so {what} has "
            "nothing to draw; plot a report measured at='layers'"
        )
    return keep


def _groups(frame: pd.DataFrame, by: Sequence[str]) -> list[tuple[str | None, pd.DataFrame]]:
    """Split on the columns of ``by`` that exist and vary; keeps order of appearance."""
    cols = [c for c in by if c in frame.columns and frame[c].nunique(dropna=False) > 1]
    if not cols:
        return [(None, frame)]
    out = []
    for key, sub in frame.groupby(cols, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        out.append((", ".join(str(k) for k in key), sub))
    return out


def _match(layers: pd.DataFrame | None, sub: pd.DataFrame) -> pd.DataFrame | None:
    """Rows of the layers frame for the layer(s) (and init/seed, when present) of the neuron rows ``sub``."""
    if layers is None or not len(sub):
        return None
    rows = layers[layers["layer"].isin(sub["layer"].unique())]
    for col in ("init", "seed"):
        if col in rows.columns and col in sub.columns:
            rows = rows[rows[col].isin(sub[col].unique())]
    return rows if len(rows) else None


def _moments(sub: pd.DataFrame, layers: pd.DataFrame | None) -> tuple[float, float] | None:
    """Input (mean, std) of the layer the neuron rows ``sub`` belong to, averaged over matching rows."""
    for frame in (_match(layers, sub), sub):
        if frame is not None and {"input_mean", "input_std"} <= set(frame.columns):
            mu = float(np.nanmean(frame["input_mean"].to_numpy(float))) if frame["input_mean"].notna().any() else None
            sd = float(np.nanmean(frame["input_std"].to_numpy(float))) if frame["input_std"].notna().any() else None
            if mu is not None and sd is not None and math.isfinite(mu) and math.isfinite(sd):
                return mu, sd
    return None


def _thresholds(thresholds, layers: pd.DataFrame | None) -> tuple[float, ...]:
    if thresholds is not None and not isinstance(thresholds, (str, bytes)) and not np.ndim(thresholds):
        thresholds = [thresholds]
    if thresholds is not None:  # given: an empty list, '' or False is refused, never read as "the defaults"
        try:
            values = tuple(float(a) for a in thresholds) if not isinstance(thresholds, (str, bytes)) else ()
            if any(isinstance(a, (bool, np.bool_)) for a in thresholds):
                values = ()
        except (TypeError, ValueError):
            values = ()
        if not values or not all(0.0 < a < 0.5 for a in values):
            raise SkewError(f"thresholds={thresholds!r} must be numbers strictly between 0 and 0.5; use e.g. "
                            "thresholds=(0.1, 0.3)")
        return values
    if layers is not None:
        found = []
        for col in layers.columns:
            if str(col).startswith("skewed_") and not str(col).startswith("skewed_gauss_"):
                try:
                    found.append(float(str(col)[len("skewed_"):]))
                except ValueError:
                    pass
        if found:
            return tuple(found)
    return _DEFAULT_THRESHOLDS


#: Line styles and markers cycled with the colours, so that coinciding lines (schemes with the same
#: measurements, e.g. two uniform schemes that differ only in scale) stay distinguishable.
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _style(i: int) -> dict:
    """Colour, line style and marker of the i-th group of a plot."""
    return {"color": f"C{i % 10}", "ls": _LINESTYLES[i % len(_LINESTYLES)], "marker": _MARKERS[i % len(_MARKERS)]}


def _legend(ax, *, outside: bool = False, **kwargs):
    """A legend that does not cover data: beside the axes (``outside``) or at the emptiest spot, translucent."""
    kwargs.setdefault("fontsize", "small")
    if outside:
        return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)
    return ax.legend(loc="best", framealpha=0.85, **kwargs)


def _title(*parts: str, width: int = 48) -> str:
    """Title parts joined by ", " on one line while it stays short, else one part per line (never cut)."""
    parts = [p for p in parts if p]
    one = ", ".join(parts)
    return one if len(one) <= width else "\n".join(parts)


#: numpy's named bin rules (numpy.histogram_bin_edges), which weight_hist passes through.
_BIN_RULES = ("auto", "fd", "doane", "scott", "stone", "rice", "sturges", "sqrt")


def _bins(bins, example: int) -> int:
    """A bin count: a positive integer of at most :data:`MAX_BINS` (more would exhaust memory, not draw)."""
    bins = positive_int("bins", bins, example)
    if bins > MAX_BINS:
        raise SkewError(f"bins={bins} is more than the {MAX_BINS} bins a histogram draws; pass e.g. bins={example}")
    return bins


def _weight_array(weight) -> np.ndarray:
    if isinstance(weight, torch.nn.Module):
        if not isinstance(getattr(weight, "weight", None), torch.Tensor):
            raise SkewError(f"{type(weight).__name__} has no weight tensor; pass a layer or a weight tensor")
        if weight.weight.dim() >= 2:
            weight = neuron_rows(weight)  # a layer's own rows (ConvTranspose: output channels; Conv1D: W.T)
        else:
            weight = weight.weight
    if isinstance(weight, torch.Tensor):
        if weight.is_meta:
            raise SkewError("the weight is on the meta device and has no values; materialize the model first "
                            "(model.to_empty(device='cpu') and an init)")
        if weight.is_complex():
            raise SkewError(f"the weight is complex ({weight.dtype}); pass a real-valued weight")
        weight = weight.detach().to("cpu", torch.float64)
        if weight.layout != torch.strided:  # a sparse weight: its zeros are values too
            weight = weight.to_dense()
        if weight.dim() > 2:
            weight = weight_matrix(weight)
        return weight.numpy()
    try:
        if weight is None or isinstance(weight, (str, bytes)) or np.iscomplexobj(weight):
            raise TypeError
        arr = np.asarray(weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise SkewError(f"cannot read a weight from a {type(weight).__name__}; pass a weight tensor, a numeric "
                        "array or a layer (e.g. model.fc1)") from None
    if arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    return arr


def _arcsine_ks(w: np.ndarray) -> float:
    """Kolmogorov–Smirnov distance between the values ``w`` and the arcsine law on [−a, a], a = max|w|."""
    w = np.sort(w.ravel())
    a = np.abs(w).max()
    if not a > 0:
        return 1.0
    cdf = 0.5 + np.arcsin(np.clip(w / a, -1.0, 1.0)) / np.pi
    i = np.arange(w.size)
    return float(max(((i + 1) / w.size - cdf).max(), (cdf - i / w.size).max()))


# ---- weights ---------------------------------------------------------------------------------------
def weight_hist(weight, *, ax=None, bins: int = 30, arcsine: bool | None = None, scheme: str | None = None,
                title: str | None = None):
    """Density histogram of every entry of a weight, with the arcsine density overlaid (paper Fig. 2).

    The arcsine law of amplitude a = max|w| (the law of a·sin of a uniform phase, i.e. of the
    sinusoidal scheme's values) has density

    .. math:: f(w) = \\frac{1}{\\pi\\sqrt{a^2 - w^2}}, \\quad |w| < a.

    ``arcsine=True`` always overlays it, ``False`` never; ``None`` (auto) overlays it when ``scheme``
    is ``"sinusoidal"`` or ``"arcsine"``, or when the values look arcsine-distributed (at least 100
    entries within Kolmogorov–Smirnov distance 0.05 of it). ``weight``: a tensor, array or layer.

    Example:
        >>> lin = torch.nn.Linear(101, 101)
        >>> ax = weight_hist(lin, arcsine=False)
        >>> ax.get_xlabel()
        'weight value'
    """
    if bins is None or isinstance(bins, (int, float, np.number)):  # else a numpy bin rule ("auto") or edges
        bins = _bins(bins, 30)
    elif isinstance(bins, str):
        if bins not in _BIN_RULES:
            raise SkewError(f"bins={bins!r} is no numpy bin rule; pass a count (e.g. bins=30) or one of "
                            f"{', '.join(_BIN_RULES)}")
    else:
        try:
            edges = np.asarray(bins, dtype=np.float64)
            if isinstance(bins, bytes) or edges.ndim != 1 or edges.size < 2 or not np.isfinite(edges).all() \
                    or not (np.diff(edges) > 0).all():
                raise ValueError
        except (TypeError, ValueError):
            raise SkewError(f"bins={bins!r:.60} must be a count, a numpy bin rule such as 'auto', or at least two "
                            "increasing finite bin edges") from None
    if arcsine is not None and not isinstance(arcsine, (bool, np.bool_)):  # arcsine="no" is truthy
        raise SkewError(f"arcsine={arcsine!r:.40} must be True, False or None (auto); pass e.g. arcsine=True")
    if scheme is not None and not isinstance(scheme, str):
        raise SkewError(f"scheme={scheme!r:.40} must be a scheme name such as 'sinusoidal', or None")
    w = _weight_array(weight)
    if w.size == 0:
        raise SkewError("the weight is empty; pass a weight with at least one entry")
    if not np.isfinite(w).all():
        raise SkewError("the weight holds NaN or Inf entries; re-initialise the layer before plotting it")
    ax = _axes(ax)
    heights, _, _ = ax.hist(w.ravel(), bins=bins, density=True, color="C0", alpha=0.75, label="weights")
    a = float(np.abs(w).max())
    if arcsine is None:
        arcsine = scheme in ("sinusoidal", "arcsine") or (w.size >= 100 and _arcsine_ks(w) < 0.05)
    top = float(np.max(heights)) if len(heights) else 1.0
    if arcsine and a > 0:
        x = a * np.sin(np.linspace(-np.pi / 2, np.pi / 2, 801)[1:-1])
        ax.plot(x, 1.0 / (np.pi * np.sqrt(a * a - x * x)), color="C3", lw=1.5,
                label=f"arcsine density, a = max|w| = {a:.3g}")
        ax.set_ylim(0, 1.3 * max(top, 2.0 / (np.pi * a)))
        ax.legend(loc="upper center", fontsize="small")
    shape = "×".join(map(str, w.shape)) if w.ndim == 2 else str(w.size)
    what = f"{scheme} " if scheme else ""
    ax.set_title(title if title is not None else f"{what}weight values ({shape}, {w.size} entries, {bins} bins)")
    ax.set_xlabel("weight value")
    ax.set_ylabel("density")
    return ax


def weight_heatmap(weight, *, ax=None, cmap: str = "RdBu_r", scheme: str | None = None, title: str | None = None):
    """Heatmap of the weight matrix (rows = output neurons) on a diverging colormap centred at 0 (Fig. 3).

    The colour range is symmetric, vmin = −max|w|, vmax = max|w|, so white is exactly 0; a colorbar
    is added. Convolution weights are shown as their (c_out, c_in·k·k) matrix.

    Example:
        >>> ax = weight_heatmap(torch.randn(8, 12))
        >>> ax.get_xlabel(), ax.get_ylabel()
        ('input', 'output neuron')
    """
    _check_cmap(cmap)
    w = _weight_array(weight)
    if w.ndim == 0:
        raise SkewError(f"the weight is a single number ({float(w):g}); pass a matrix (a 1-D weight is shown as one row)")
    if w.ndim == 1:
        w = w[None, :]
    if w.size == 0:
        raise SkewError("the weight is empty; pass a weight with at least one entry")
    ax = _axes(ax)
    v = float(np.nanmax(np.abs(w))) if np.isfinite(w).any() else 0.0
    v = v if v > 0 else 1.0
    im = ax.imshow(w, cmap=cmap, vmin=-v, vmax=v, interpolation="nearest", aspect="auto")
    ax.figure.colorbar(im, ax=ax, label="weight")
    what = f"{scheme} " if scheme else ""
    ax.set_title(title if title is not None else f"{what}weight matrix ({w.shape[0]}×{w.shape[1]})")
    ax.set_xlabel("input")
    ax.set_ylabel("output neuron")
    return ax


# ---- row sums and skew -----------------------------------------------------------------------------
def _lambda(alpha: float, sub: pd.DataFrame, layers: pd.DataFrame | None) -> float | None:
    """λ(α) from the layers frame when it has it, else Theorem 1 from input moments and the weights' scale."""
    rows = _match(layers, sub)
    col = f"lambda_{alpha:g}"
    if rows is not None and col in rows.columns:
        lam = rows[col].to_numpy(float)
        if np.isfinite(lam).any():
            return float(np.nanmean(lam))
    moments = _moments(sub, layers)
    if moments is None or not {"fan_in", "row_norm"} <= set(sub.columns) or not len(sub):
        return None
    mu, sd = moments
    n = float(np.median(sub["fan_in"].to_numpy(float)))
    theta = math.sqrt(float(np.mean(sub["row_norm"].to_numpy(float) ** 2)) / n) if n > 0 else float("nan")
    if mu == 0.0 or not math.isfinite(theta):
        return None
    return float(theory.threshold(alpha, n, theta, mu, sd))


def _xlim(xlim) -> tuple[float, float]:
    """``xlim`` as (lo, hi): two finite numbers (the range is then widened to show every row sum and ±λ)."""
    try:
        lo, hi = (float(v) for v in xlim)
        if isinstance(xlim, (str, bytes)) or any(isinstance(v, bool) for v in xlim) or not (
                math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError
    except (TypeError, ValueError):
        raise SkewError(f"xlim={xlim!r:.60} must be two finite numbers (lo, hi) or None; "
                        "pass e.g. xlim=(-5, 5)") from None
    return lo, hi


def rowsum_hist(data, *, layer=None, alpha: float = 0.3, binwidth: float = 0.2,
                xlim: tuple[float, float] | None = None, estimator: str = "count", ax=None):
    """Stacked density histogram of the row sums S = Σ_j W_ij, skewed (|p − ½| > α) vs not (Fig. 5).

    The two stacks together integrate to 1 (bins of width ``binwidth``, aligned on multiples of
    it). Vertical lines mark ±λ(α), Theorem 1's threshold: |S| > λ ⇔ skewed,

    .. math:: \\lambda(\\alpha) = \\frac{\\sigma\\,\\theta\\sqrt{n}}{|\\mu|}\\,\\Phi^{-1}(\\tfrac12 + \\alpha),

    taken from the layers frame's ``lambda_{α}`` column, else computed from its ``input_mean`` /
    ``input_std`` with θ² = mean‖W_i‖²/n; left out when the input moments are unknown or μ = 0.

    The x range always shows every row sum and ±λ (with a margin of one bin): by default it is
    symmetric, [−r, r] with r = max(max|S|, λ) + binwidth; an ``xlim`` that would hide data or λ is
    widened to include them.

    Example:
        >>> ax = rowsum_hist(report, layer="fc1", alpha=0.3)   # doctest: +SKIP
    """
    alpha = _check_alpha(alpha)
    col = _skew_col(estimator)
    try:
        width = float(binwidth)
    except (TypeError, ValueError):
        width = math.nan
    if isinstance(binwidth, bool) or not 0 < width < math.inf:
        raise SkewError(f"binwidth={binwidth!r} must be a positive number; use e.g. binwidth=0.2")
    binwidth = width
    neurons, layers, _, _ = _parts(data)
    neurons = _need(neurons, ("layer", "row_sum", col), "rowsum_hist")
    sub, label = _select(neurons, layer, allow_all=False, layers=layers)
    sub, n_degenerate = _live(sub, col)
    if not len(sub):
        raise SkewError(f"{label} has no non-degenerate neuron to plot")
    sub = _with_rows(sub, label, "rowsum_hist")
    s = sub["row_sum"].to_numpy(float)
    skewed = sub[col].to_numpy(float) > alpha
    lam = _lambda(alpha, sub, layers)
    lam = lam if lam is not None and math.isfinite(lam) else None
    reach = max(float(np.abs(s).max()), lam or 0.0) + binwidth
    lo, hi = (-reach, reach) if xlim is None else _xlim(xlim)
    lo = min(lo, float(s.min()) - binwidth, -lam - binwidth if lam is not None else lo)
    hi = max(hi, float(s.max()) + binwidth, lam + binwidth if lam is not None else hi)
    start, stop = math.floor(float(s.min()) / binwidth), math.ceil(float(s.max()) / binwidth)
    if stop - start + 1 > MAX_BINS:
        raise SkewError(f"binwidth={binwidth:g} gives {stop - start + 1} bins over the row sums "
                        f"[{float(s.min()):.3g}, {float(s.max()):.3g}]; at most {MAX_BINS} are drawn: use "
                        f"binwidth={(float(s.max()) - float(s.min())) / 100:.3g} or larger")
    edges = binwidth * np.arange(start, max(stop, start + 1) + 1)
    ax = _axes(ax)
    ax.hist([s[~skewed], s[skewed]], bins=edges, stacked=True, density=True, color=["C0", "C3"],
            label=[f"not skewed ({int((~skewed).sum())})", f"skewed, |p − ½| > {alpha:g} ({int(skewed.sum())})"])
    if lam is not None:
        ax.axvline(-lam, color="k", ls="--", lw=1.2, label=f"±λ({alpha:g}) = {lam:.3g}")
        ax.axvline(lam, color="k", ls="--", lw=1.2)
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)  # head room for the legend
    extra = f"; {n_degenerate} degenerate left out" if n_degenerate else ""
    ax.set_title(_title("Row sums S", label) + f"\nskewed at α = {alpha:g} ({estimator} estimator of p){extra}",
                 fontsize="medium")
    ax.set_xlabel("row sum S = Σⱼ Wᵢⱼ")
    ax.set_ylabel("density")
    _legend(ax)
    return ax


def skew_hist(data, *, layer=None, hue: str | None = None, estimator: str = "count", bins: int = 25,
              thresholds: Sequence[float] | None = None, ax=None):
    """Histogram of the neurons' skew |p − ½| ∈ [0, ½], thresholds α drawn as vertical lines.

    ``hue`` splits by a column (default: ``init`` when the data holds several schemes), drawn as
    outlines; ``estimator`` picks p's estimator (``count`` → column ``skew``, ``gauss`` →
    ``skew_gauss``). Neurons to the right of a line are skewed at that α.

    Example:
        >>> ax = skew_hist(comparison, layer="all", hue="init")   # doctest: +SKIP
    """
    col = _skew_col(estimator)
    bins = _bins(bins, 25)
    neurons, layers, _, report_thresholds = _parts(data)
    neurons = _need(neurons, ("layer", col), "skew_hist")
    sub, label = _select(neurons, layer, layers=layers)
    sub, n_degenerate = _live(sub, col)
    if hue is None and "init" in sub.columns and sub["init"].nunique() > 1:
        hue = "init"
    if hue is not None and (not isinstance(hue, str) or hue not in sub.columns):
        raise SkewError(f"hue={hue!r} is not a column of the neurons frame; use one of "
                        f"{', '.join(map(str, sub.columns))}")
    ths = _thresholds(report_thresholds if thresholds is None else thresholds, layers)  # checked before drawing
    edges = np.linspace(0.0, 0.5, int(bins) + 1)
    ax = _axes(ax)
    groups = []
    if hue is None:
        ax.hist(sub[col].to_numpy(float), bins=edges, color="C0", alpha=0.8, label=f"neurons ({len(sub)})")
    else:
        groups = list(sub.groupby(hue, sort=False))
        for i, (key, g) in enumerate(groups):
            style = _style(i)
            # later groups drawn thinner on top: identical histograms show as a line inside a line
            ax.hist(g[col].to_numpy(float), bins=edges, histtype="step", color=style["color"], ls=style["ls"],
                    lw=max(1.0, 2.6 - 0.4 * i), label=f"{key} ({len(g)})")
    for j, a in enumerate(ths):
        ax.axvline(a, color="k", ls=("--", ":", "-.")[j % 3], lw=1.0, label=f"α = {a:g}")
    extra = f"\n({n_degenerate} degenerate left out)" if n_degenerate else ""
    ax.set_title(_title("Neuron skew", label) + extra, fontsize="medium")
    ax.set_xlabel(f"skew |p − ½| ({estimator} estimator of p)")
    ax.set_ylabel("neurons (count)")
    ax.set_xlim(0, 0.5)
    outside = hue is not None and len(groups) > 3
    if not outside:
        ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # head room: the legend sits above the bars
    _legend(ax, outside=outside, title=hue)
    return ax


def skew_vs_rowsum(data, *, layer=None, estimator: str = "count", thresholds: Sequence[float] | None = None,
                   ax=None):
    """Scatter of each neuron's row sum S against its activation probability p, with Theorem 1's curve.

    .. math:: p(S) = \\Phi\\!\\left(\\frac{\\mu S}{\\sigma \\cdot \\mathrm{median}_i \\lVert W_i \\rVert_2}\\right)

    μ, σ: the layer's measured input mean and std (layers frame ``input_mean``/``input_std``).
    One colour and curve per layer (``layer="all"``) and per init scheme. Dotted lines mark
    p = ½ ± α for the thresholds.

    Example:
        >>> ax = skew_vs_rowsum(report, layer="fc1")   # doctest: +SKIP
    """
    pcol = _p_col(estimator)
    neurons, layers, _, report_thresholds = _parts(data)
    neurons = _need(neurons, ("layer", "row_sum", pcol), "skew_vs_rowsum")
    sub, label = _select(neurons, layer, layers=layers)
    sub, n_degenerate = _live(sub, pcol)
    ths = _thresholds(report_thresholds if thresholds is None else thresholds, layers)  # checked before drawing
    sub = _with_rows(sub, label, "skew_vs_rowsum")
    ax = _axes(ax)
    groups = _groups(sub, ("layer", "init"))
    for i, (key, g) in enumerate(groups):
        color = f"C{i % 10}"
        s = g["row_sum"].to_numpy(float)
        ax.scatter(s, g[pcol].to_numpy(float), s=8, alpha=0.6, color=color, linewidths=0,
                   label=f"{key or 'neurons'} ({len(g)})")
        moments = _moments(g, layers)
        if moments is None or "row_norm" not in g.columns or not len(g):
            continue
        mu, sd = moments
        norm = float(np.median(g["row_norm"].to_numpy(float)))
        lo, hi = float(s.min()), float(s.max())
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        grid = np.linspace(lo - pad, hi + pad, 200)
        curve = theory.predicted_p(grid, norm, mu, sd)
        ax.plot(grid, curve, color=color if len(groups) > 1 else "C3", lw=1.6,
                label="Theorem 1: Φ(μS / (σ·median‖W‖))" + (f", {key}" if key else "")
                + f"\nμ = {mu:.3g}, σ = {sd:.3g}")
    for a in ths:
        for y in (0.5 - a, 0.5 + a):
            ax.axhline(y, color="0.5", ls=":", lw=0.9)
    extra = f"; {n_degenerate} degenerate left out" if n_degenerate else ""
    ax.set_title(_title("Row sum vs activation probability", label + extra.replace("; ", ", ")), fontsize="medium")
    ax.set_xlabel("row sum S = Σⱼ Wᵢⱼ")
    ax.set_ylabel(f"p = P(Z > 0) ({estimator} estimator)")
    ax.set_ylim(-0.03, 1.03)
    _legend(ax, outside=len(groups) > 2)
    return ax


def _subsample(n: int, k: int) -> np.ndarray:
    return np.arange(n) if n <= k else np.unique(np.linspace(0, n - 1, k).round().astype(int))


def activation_states(data, *, layer=None, max_samples: int = 250, max_neurons: int = 250, ax=None):
    """Raster of activation signs, samples × neurons: white = active (Z > 0), black = inactive (Fig. 4).

    ``data``: a Report (its ``signs[layer]``, the reproducible sign sample) or a boolean array /
    tensor of shape (samples, neurons). Larger arrays are subsampled evenly to ``max_samples`` ×
    ``max_neurons``. A skewed neuron shows as a vertical band (almost all white or all black).
    For conv maps and tokens each row is one sample's value at one position, the true centre
    (H//2, W//2, ...) or the middle token; the title says which (``Report.sign_positions``).

    Example:
        >>> ax = activation_states(np.random.default_rng(0).random((50, 40)) > 0.5)
        >>> ax.get_xlabel()
        'neuron'
    """
    max_samples = positive_int("max_samples", max_samples, 250)
    max_neurons = positive_int("max_neurons", max_neurons, 250)
    if isinstance(data, torch.Tensor):
        if data.is_meta:
            raise SkewError("the activation signs are on the meta device and hold no values; pass a (samples, "
                            "neurons) boolean tensor or array with data, or a Report")
        data = (data.to_dense() if data.layout != torch.strided else data).detach().cpu().numpy()
    if isinstance(data, np.ndarray):
        signs, label = data, "activation signs"
    else:
        table = getattr(data, "signs", None)
        if not isinstance(table, dict) or not table:
            raise SkewError("activation_states needs a Report with activation signs (.signs) or a boolean "
                            "array of shape (samples, neurons)")
        names = list(table)
        if layer is None:
            layers = getattr(data, "layers", None)
            layer, why = default_layer(names, layers if isinstance(layers, pd.DataFrame) else None)
            label = f"layer {layer}" + (f" ({why})" if len(names) > 1 else "")
        elif not isinstance(layer, str) or layer not in table:
            raise SkewError(f"no activation signs for layer {layer!r}; valid layers are {', '.join(map(repr, names))}")
        else:
            label = f"layer {layer}"
        signs = np.asarray(table[layer])
        where = getattr(data, "sign_positions", {}).get(layer)
        if where == (-1,):
            label += ", middle unmasked token"
        elif where:
            label += f", position {', '.join(map(str, where))} (centre)"
    if signs.ndim != 2 or signs.size == 0:
        raise SkewError(f"activation signs must be a non-empty 2-D (samples, neurons) array, got shape {signs.shape}")
    if signs.dtype != bool:
        signs = signs > 0
    signs = signs[np.ix_(_subsample(signs.shape[0], max_samples), _subsample(signs.shape[1], max_neurons))]
    ax = _axes(ax)
    ax.imshow(signs.astype(float), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    ax.set_title(_title(f"Activation states, {signs.shape[0]} samples × {signs.shape[1]} neurons", label),
                 fontsize="medium")
    ax.set_xlabel("neuron")
    ax.set_ylabel("sample")
    # beside the raster, never over it
    ax.legend(handles=[Patch(facecolor="white", edgecolor="k", label="active (Z > 0)"),
                       Patch(facecolor="black", edgecolor="k", label="inactive")],
              loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small", frameon=False)
    return ax


def skew_fraction_vs_alpha(data=None, *, layer=None, alphas: Sequence[float] | None = None,
                           laws: Sequence[str] | None = None, estimator: str = "count", ax=None):
    """Fraction of skewed neurons against the threshold α: measured, and the corollary's prediction.

    For a first layer under any i.i.d. zero-mean init, with inputs of mean μ ≠ 0 and std σ,

    .. math:: f(\\alpha) = 2\\left(1 - \\Phi\\!\\left(\\frac{\\sigma}{|\\mu|}\\Phi^{-1}(\\tfrac12 + \\alpha)\\right)\\right).

    With ``data``, the measured fraction (non-degenerate neurons with skew > α) is drawn with the
    curve for the layer's measured input moments; ``laws`` add curves for named input laws
    (:func:`skew.theory.input_moments`; a law with μ = 0 gives f = 0). Without data, ``laws``
    defaults to every law with μ ≠ 0.

    Example:
        >>> ax = skew_fraction_vs_alpha(laws=["relu-gaussian"])
        >>> ax.get_xlabel()
        'threshold α'
    """
    try:
        grid = np.linspace(0.01, 0.49, 49) if alphas is None else np.asarray(alphas, dtype=float).ravel()
    except (TypeError, ValueError):
        grid = np.array([])
    if grid.size == 0 or not ((grid > 0) & (grid < 0.5)).all():
        raise SkewError("alphas must be a non-empty list of values strictly between 0 and 0.5, e.g. [0.1, 0.3]")
    if laws is None:
        laws = [] if data is not None else [k for k, (mu, _) in theory.INPUT_LAWS.items() if mu != 0.0]
    elif isinstance(laws, str):
        laws = [laws]
    elif not isinstance(laws, Iterable):
        raise SkewError(f"laws={laws!r} is not a list of input law names; pass e.g. laws=['relu-gaussian'] "
                        f"(valid laws: {', '.join(theory.INPUT_LAWS)})")
    laws = list(laws)
    for law in laws:
        theory.input_moments(law)  # an unknown name fails before a figure is made
    if data is None and not laws:
        raise SkewError("nothing to plot: pass data (a Report or neurons frame) and/or laws, e.g. "
                        "laws=['relu-gaussian']")
    ax = _axes(ax)
    label = None
    if data is not None:
        col = _skew_col(estimator)
        neurons, layers, _, _ = _parts(data)
        neurons = _need(neurons, ("layer", col), "skew_fraction_vs_alpha")
        sub, label = _select(neurons, layer, layers=layers)
        sub, _ = _live(sub, col)
        if not len(sub):
            raise SkewError(f"{label} has no non-degenerate neuron to measure")
        for i, (key, g) in enumerate(_groups(sub, ("init",))):
            sk = g[col].to_numpy(float)
            measured = (sk[None, :] > grid[:, None]).mean(axis=1)
            name = f"measured{', ' + key if key else ''} ({estimator} estimator, {len(g)} neurons)"
            ax.plot(grid, measured, "o-", ms=3, lw=1.2, color=f"C{i}", label=name)
            moments = _moments(g, layers)
            if moments is not None and moments[0] != 0.0:
                mu, sd = moments
                ax.plot(grid, theory.expected_skewed_fraction(grid, mu, sd), "--", color=f"C{i}", lw=1.4,
                        label=f"corollary, measured σ/|μ| = {sd / abs(mu):.3g}")
    offset = 3
    for j, law in enumerate(laws):
        mu, sd = theory.input_moments(law)
        if mu == 0.0:
            ax.plot(grid, np.zeros_like(grid), ":", color=f"C{offset + j}", lw=1.6, label=f"{law} inputs (μ = 0: none)")
        else:
            ax.plot(grid, theory.expected_skewed_fraction(grid, mu, sd), ":", color=f"C{offset + j}", lw=1.8,
                    label=f"corollary, {law} inputs (σ/|μ| = {sd / abs(mu):.3g})")
    ax.set_title(_title("Fraction of skewed neurons vs threshold", label or ""), fontsize="medium")
    ax.set_xlabel("threshold α")
    ax.set_ylabel("fraction skewed, |p − ½| > α")
    ax.set_xlim(0, 0.5)
    ax.set_ylim(-0.02, 1.02)
    _legend(ax)
    return ax


def skew_by_depth(data, *, alpha: float = 0.3, hue: str | None = "init", estimator: str = "count", ax=None):
    """Per-layer fraction of skewed neurons at α, layers in forward order, one line per ``hue`` value.

    Uses the layers frame's ``skewed_{α}`` (``skewed_gauss_{α}`` for ``estimator="gauss"``) column;
    failing that, computes it from the neurons frame as the fraction of non-degenerate neurons with
    skew > α. Several seeds per (scheme, layer) are averaged, with ±1 std error bars.

    Every group has its own colour, line style and marker, and groups are shifted sideways by a
    small step (at most ±0.15 of the layer spacing), so that schemes with identical fractions (uniform
    schemes that differ only in scale, LSUV and orthogonal in a bias-free ReLU net) stay visible.

    Example:
        >>> ax = skew_by_depth(comparison, alpha=0.3)   # doctest: +SKIP
    """
    alpha = _check_alpha(alpha)
    _check_estimator(estimator)
    neurons, layers, _, _ = _parts(data)
    col = f"skewed_{alpha:g}" if estimator == "count" else f"skewed_gauss_{alpha:g}"
    keys = [c for c in (hue, "seed") if c is not None]
    if layers is not None and col in layers.columns:
        frame = layers
    elif neurons is not None and _skew_col(estimator) in neurons.columns:
        live, _ = _live(neurons, _skew_col(estimator))
        by = [c for c in keys if c in live.columns] + ["layer"]
        frame = (live.assign(_sk=live[_skew_col(estimator)].to_numpy(float) > alpha)
                 .groupby(by, sort=False)["_sk"].mean().rename(col).reset_index())
    else:
        raise SkewError(f"skew_by_depth needs a layers frame with column {col!r} or a neurons frame with "
                        f"{_skew_col(estimator)!r}; pass a Report, a Comparison or one of their frames")
    if hue is not None and (not isinstance(hue, str) or hue != "init" and hue not in frame.columns):
        raise SkewError(f"hue={hue!r} is not a column of the data; use one of {', '.join(map(str, frame.columns))}")
    order = _order(frame)
    pos = {name: i for i, name in enumerate(order)}
    ax = _axes(ax)
    groups = list(frame.groupby(hue, sort=False)) if hue is not None and hue in frame.columns \
        else [("measured", frame)]
    step = min(0.05, 0.3 / max(len(groups) - 1, 1)) if len(groups) > 1 else 0.0
    for i, (key, g) in enumerate(groups):
        stats = g.groupby("layer", sort=False)[col].agg(["mean", "std", "count"])
        stats = stats.loc[[name for name in order if name in stats.index]]
        x = np.array([pos[name] for name in stats.index], dtype=float) + step * (i - (len(groups) - 1) / 2)
        yerr = stats["std"].fillna(0.0).to_numpy() if (stats["count"] > 1).any() else None
        style = _style(i)
        ax.errorbar(x, stats["mean"].to_numpy(), yerr=yerr, marker=style["marker"], ms=5, lw=1.4, capsize=3,
                    color=style["color"], ls=style["ls"], mfc="none", label=str(key))
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([str(n) for n in order], rotation=45 if len(order) > 6 else 0,
                       ha="right" if len(order) > 6 else "center", fontsize="small")
    ax.set_xlabel("layer (forward order)")
    ax.set_ylabel(f"fraction skewed at α = {alpha:g}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(_title("Skewed neurons by depth", f"|p − ½| > {alpha:g} ({estimator} estimator of p)", width=60),
                 fontsize="medium")
    _legend(ax, outside=True, title=hue if hue is not None and hue in frame.columns else None)
    return ax
