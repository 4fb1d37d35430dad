"""The :class:`Report` that :func:`skew.report` returns: tidy frames, summary, save/load, merge, plots.

A Report keeps, per layer, the raw accumulator values (:class:`skew.accumulators.LayerState`:
counts, Chan moments, OUI sums, sign samples) next to the weight statistics, and derives the
``.neurons`` and ``.layers`` frames from them. Keeping the raw sums is what makes
:meth:`Report.merge` exact and :meth:`Report.save` / :meth:`Report.load` lossless.

Per neuron (docs/definitions.md): p = pos/n (count estimator), p_gauss = Φ(mean/std) (Gaussian estimator,
std with ddof = 0), skew = |p − 1/2|, p_pred = Φ((μ S + b)/(σ ‖W‖)) with the layer's measured input
mean μ and std σ (a layer without bias uses b = 0; ``bias`` is NaN there). A neuron is
*degenerate* when it is constant up to rounding (docs/definitions.md): n = 0, or

    std ≤ DEGENERATE_ULPS · (ε_acc · (‖W_i‖₂ · rms(x) · √n + |b|) + ε · rms(Z_i))

with ε the machine epsilon of the measured Z's dtype (float32: 1.2e-7), ε_acc = min(ε, ε_float32)
(half-precision outputs are accumulated in float32), rms(x) = √(μ² + σ²) of the layer's input
and rms(Z_i) = √(mean² + std²) of the neuron. A float32 filter that cancels exactly in real
arithmetic (std ~ 1e-8 of that scale) is degenerate; a small but real signal is not. At
activation sites (no W): std ≤ DEGENERATE_ULPS · ε · max(rms(Z_i), rms of the whole site). Where the
layer's scale ‖W_i‖₂ · rms(x) · √n is NaN (attention ``out_proj``, whose input is not observed; a NaN
weight row), rms(Z_i) stands in for it. The old absolute rule std ≤ 1e-12·(|mean| + 1) applies only
where the tolerance is not finite (an infinite weight, input moment or Z moment); it no longer
discards tiny genuine signals. A degenerate neuron's skew and p_gauss
are NaN and it is left out of every fraction; *dead* (p = 0) and *always_on* (p = 1) are flagged
among the others.

Example:
    >>> rep = skew.report(model, loader)                      # doctest: +SKIP
    >>> rep.layers[["layer", "skewed_0.1", "skewed_0.3"]]      # doctest: +SKIP
    >>> rep.save("run.skew.zip"); Report.load("run.skew.zip")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr

from skew import _fused, theory
from skew.accumulators import LayerState, merge_states, unpack_units
from skew.errors import SkewError
from skew.oui import default_pairs, pairwise_oui

__all__ = ["Report", "DEGENERATE_RTOL", "DEGENERATE_ULPS", "degenerate_mask", "layer_indices"]

#: Fallback of the degenerate rule where its relative tolerance is not finite (infinite weights or moments): then
#: std ≤ DEGENERATE_RTOL · (|mean| + 1) is degenerate. Not a floor: a tiny genuine signal is kept.
DEGENERATE_RTOL = 1e-12
#: "A few units of rounding": degenerate when std ≤ DEGENERATE_ULPS · ε · scale (module docstring).
DEGENERATE_ULPS = 8.0
_EPS32 = float(np.finfo(np.float32).eps)
WEIGHT_COLUMNS = ("layer", "neuron", "fan_in", "row_sum", "row_sum_scaled", "row_norm", "bias")


def _fmt(a: float) -> str:
    return f"{a:g}"


def layer_indices(layer) -> dict[str, np.ndarray]:
    """layer name -> the positions of its rows, in order of first appearance (``groupby(sort=False).indices``).

    Layers stored as runs of consecutive rows (as every skew table is) are found from the run
    starts alone; otherwise one factorisation and one stable sort of the integer codes: rows of
    layer g are ``order[start_g : start_g + count_g]`` with the counts from ``np.bincount``.

    Example:
        >>> {k: v.tolist() for k, v in layer_indices(["b", "a", "b"]).items()}
        {'b': [0, 2], 'a': [1]}
    """
    values = np.asarray(layer, dtype=object)
    # the usual layout, each layer one run of rows: its run starts, with no name twice
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1]))) if len(values) else _NO_ROWS
    names = values[starts].tolist()
    if len(set(names)) == len(names):
        bounds = np.append(starts, len(values))
        return {name: np.arange(a, b) for name, a, b in zip(names, bounds[:-1], bounds[1:])}
    codes, uniques = pd.factorize(values)
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(uniques)))[:-1]
    return dict(zip(uniques.tolist(), np.split(order, bounds)))


_NO_ROWS = np.zeros(0, dtype=np.int64)


def _degenerate(n, mean, std, st: LayerState, w: dict[str, np.ndarray], eps: float) -> np.ndarray:
    """Constant up to rounding, relative to the neuron's scale (see the module docstring)."""
    in_mean, in_std = _input_moments(st)
    return degenerate_mask(n, mean, std, w["row_norm"], w["fan_in"], w["bias"], in_mean, in_std, eps)


def degenerate_mask(n, mean, std, row_norm, fan_in, bias, in_mean: float, in_std: float, eps: float) -> np.ndarray:
    """The degenerate rule of the module docstring on plain per-neuron arrays (one definition for
    :func:`skew.report` and the Tracker's light path).

    ``n`` samples, ``mean`` and ``std`` (ddof 0) of each neuron's Z; ``row_norm``, ``fan_in`` and
    ``bias`` (NaN: none) its weight row; ``in_mean``/``in_std`` the layer input's moments; ``eps``
    the machine epsilon of Z's dtype. An all-NaN ``row_norm`` marks an activation site (no weight).

    Example:
        >>> one = np.ones(2)
        >>> degenerate_mask(np.array([4, 4]), one, np.array([1e-9, 0.1]), one, 2 * one, np.full(2, np.nan),
        ...                 0.0, 1.0, _EPS32).tolist()
        [True, False]
    """
    n = np.asarray(n)
    rms_in = math.sqrt(in_mean**2 + in_std**2) if np.isfinite(in_mean) and np.isfinite(in_std) else np.nan
    rms = np.sqrt(mean**2 + std**2)
    bias = np.asarray(bias, dtype=np.float64)
    row_norm = np.asarray(row_norm, dtype=np.float64)
    bias = np.where(np.isnan(bias), 0.0, np.abs(bias))
    layer_scale = row_norm * rms_in * np.sqrt(np.asarray(fan_in, dtype=np.float64)) + bias
    rms0 = np.where(np.isnan(rms), 0.0, rms)
    if np.isnan(row_norm).all():  # activation site: no weight
        live = n > 0
        site_rms = math.sqrt(float(np.sum((n * rms0**2)[live]) / max(int(np.sum(n[live])), 1))) if live.any() else 0.0
        tol = eps * np.maximum(rms0, site_rms)
    else:
        # the sum itself is accumulated in at least float32 (autocast too); Z is then rounded to its dtype
        acc = np.where(np.isnan(layer_scale), rms0, layer_scale)
        tol = min(eps, _EPS32) * acc + eps * rms0
    # the absolute floor only where the relative rule has no scale to read (a NaN tolerance): elsewhere it
    # would discard tiny but genuine signals (EfficientNet-B0's deep layers at init carry std ~ 1e-13)
    # An infinite tolerance (an infinite row norm, input or Z moment) would call every neuron degenerate,
    # a genuine signal included: there the absolute floor decides alone.
    finite = np.isfinite(tol)
    floor = ~finite & (std <= DEGENERATE_RTOL * (np.abs(mean) + 1.0))
    return (n == 0) | floor | (finite & (std <= DEGENERATE_ULPS * tol))


def _neuron_arrays(name: str, st: LayerState, w: dict[str, np.ndarray], eps: float = _EPS32) -> dict[str, np.ndarray]:
    """The ``.neurons`` columns of one layer, as arrays (``w``: its weight columns)."""
    n = st.n.astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p = np.where(n > 0, st.pos / np.maximum(n, 1), np.nan)
        std = np.where(n > 0, np.sqrt(np.maximum(st.m2, 0.0) / np.maximum(n, 1)), np.nan)
        mean = np.where(n > 0, st.mean, np.nan)
        degenerate = _degenerate(n, mean, std, st, w, eps)
        p_gauss = np.where(degenerate, np.nan, ndtr(mean / std))
    skew = np.where(degenerate, np.nan, np.abs(p - 0.5))
    in_mean, in_std = _input_moments(st)
    bias = w["bias"].astype(np.float64)
    p_pred = np.asarray(
        theory.predicted_p(w["row_sum"], w["row_norm"], in_mean, in_std, np.where(np.isnan(bias), 0.0, bias)),
        dtype=np.float64,
    ).reshape(-1)
    weights = (w["fan_in"].astype(np.int64), w["row_sum"].astype(np.float64),
               w["row_sum_scaled"].astype(np.float64), w["row_norm"].astype(np.float64), bias)
    return _columns(np.full(len(n), name, dtype=object), np.arange(len(n), dtype=np.int64), weights,
                    n, st.pos, st.nonfinite.astype(np.int64), p, p_gauss, p_pred, skew, mean, std, degenerate)


def _columns(layer, neuron, weights, n, pos, nonfinite, p, p_gauss, p_pred, skew, mean, std, degenerate):
    """The ``.neurons`` columns in their order (``weights``: fan_in, row_sum, row_sum_scaled, row_norm, bias)."""
    fan_in, row_sum, row_sum_scaled, row_norm, bias = weights
    return {
        "layer": layer,
        "neuron": neuron,
        "fan_in": fan_in,
        "row_sum": row_sum,
        "row_sum_scaled": row_sum_scaled,
        "row_norm": row_norm,
        "bias": bias,
        "n": n,
        "p": p,
        "p_gauss": p_gauss,
        "p_pred": p_pred,
        "skew": skew,
        "skew_gauss": np.abs(p_gauss - 0.5),
        "mean": mean,
        "std": std,
        "degenerate": degenerate,
        "dead": ~degenerate & (pos == 0),
        "always_on": ~degenerate & (pos == n),
        "nonfinite": nonfinite,
    }


_INT_FIELDS = ("n", "pos", "nonfinite")
_FLOAT_FIELDS = ("mean", "m2")
_WEIGHT_DTYPES = {"neuron": np.int64, "fan_in": np.int64, "row_sum": np.float64, "row_sum_scaled": np.float64,
                  "row_norm": np.float64, "bias": np.float64}


def _stackable(states: list[LayerState], sizes: list[int], w: dict[str, np.ndarray]) -> bool:
    """Whether :func:`_stacked_neuron_arrays` applies: int64 counts, float64 moments and weight
    columns, one weight row per neuron (what :func:`skew.report`, merge and load produce)."""
    if any(w[c].dtype != dt for c, dt in _WEIGHT_DTYPES.items()):
        return False
    for st, m in zip(states, sizes):
        for f in _INT_FIELDS + _FLOAT_FIELDS:
            a = getattr(st, f)
            if not isinstance(a, np.ndarray) or a.shape != (m,) or a.dtype != (
                np.int64 if f in _INT_FIELDS else np.float64
            ):
                return False
    return True


def _stacked_neuron_arrays(
    names: list[str], states: list[LayerState], sizes: list[int], w: dict[str, np.ndarray], eps: list[float]
) -> dict[str, np.ndarray]:
    """:func:`_neuron_arrays` of every layer at once, concatenated in layer order (``w``: the weight
    columns already in that order). Element-wise, each neuron sees the same operations on the
    same values as in :func:`_neuron_arrays` (its layer's scalars repeated per neuron), so every
    value is bit-identical; the degenerate rule (:func:`degenerate_mask`) runs layer by layer."""
    def per_neuron(values) -> np.ndarray:
        return np.repeat(np.asarray(values, dtype=np.float64), sizes)

    def cat(field: str) -> np.ndarray:
        return np.concatenate([getattr(st, field) for st in states])

    n, pos, nonfinite, st_mean, m2 = (cat(f) for f in ("n", "pos", "nonfinite", "mean", "m2"))
    moments = [_input_moments(st) for st in states]
    in_mean = per_neuron([a for a, _ in moments])
    in_std = per_neuron([b for _, b in moments])
    row_norm, fan_in, bias = w["row_norm"], w["fan_in"], w["bias"]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p = np.where(n > 0, pos / np.maximum(n, 1), np.nan)
        std = np.where(n > 0, np.sqrt(np.maximum(m2, 0.0) / np.maximum(n, 1)), np.nan)
        mean = np.where(n > 0, st_mean, np.nan)
        bounds = np.cumsum([0, *sizes])
        degenerate = np.concatenate([  # the one definition, layer by layer (its scalars are per layer)
            degenerate_mask(n[a:b], mean[a:b], std[a:b], row_norm[a:b], fan_in[a:b], bias[a:b], im, isd, e)
            for a, b, (im, isd), e in zip(bounds[:-1], bounds[1:], moments, eps)
        ]) if sizes else np.zeros(0, dtype=bool)
        p_gauss = np.where(degenerate, np.nan, ndtr(mean / std))
    skew = np.where(degenerate, np.nan, np.abs(p - 0.5))
    p_pred = np.asarray(
        theory.predicted_p(w["row_sum"], row_norm, in_mean, in_std, np.where(np.isnan(bias), 0.0, bias)),
        dtype=np.float64,
    ).reshape(-1)
    total = int(bounds[-1])
    layer = np.repeat(np.array(names, dtype=object), sizes)
    neuron = np.arange(total, dtype=np.int64) - np.repeat(bounds[:-1], sizes)
    weights = (fan_in, w["row_sum"], w["row_sum_scaled"], row_norm, bias)
    return _columns(layer, neuron, weights, n, pos, nonfinite, p, p_gauss, p_pred, skew, mean, std, degenerate)


def _input_moments(st: LayerState) -> tuple[float, float]:
    if st.in_n <= 0:
        return float("nan"), float("nan")
    return float(st.in_mean), float(math.sqrt(max(st.in_m2, 0.0) / st.in_n))


def _fraction(mask: np.ndarray, live: np.ndarray) -> float:
    """mean(mask[live]): a count over a count, the same correctly rounded quotient as ``.mean()``."""
    total = int(np.count_nonzero(live))
    return int(np.count_nonzero(mask[live])) / total if total else float("nan")


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson on average ranks); NaN for < 3 points or a constant side."""
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.all():
        x, y = x[ok], y[ok]
    if len(x) < 3 or x.max() == x.min() or y.max() == y.min():
        return float("nan")
    return _pearson(_ranks(x), _ranks(y))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """``np.corrcoef(x, y)[0, 1]`` of two float64 arrays by the same operations without its wrappers:
    centre the (2, N) stack, C = X Xᵀ · (1/(N − 1)), r = C₀₁ / √C₀₀ / √C₁₁ clipped to [−1, 1]."""
    X = np.stack((x, y)).astype(np.float64, copy=False)
    X -= X.mean(axis=1)[:, None]
    c = np.dot(X, X.T)
    c *= np.true_divide(1, X.shape[1] - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = c[0, 1] / np.sqrt(c[0, 0]) / np.sqrt(c[1, 1])
    return float(-1.0 if r < -1.0 else 1.0 if r > 1.0 else r)


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks with ties given their average rank (as scipy.stats.rankdata's default).

    A group of k equal values ending at sorted position c (1-based) gets rank c − (k − 1)/2.

    Example:
        >>> _ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist()
        [3.5, 1.0, 3.5, 2.0]
    """
    order = np.argsort(a)
    s = a[order]
    new = np.empty(len(a), dtype=bool)
    new[:1] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    out = np.empty(len(a), dtype=np.float64)
    if new.all():  # no ties: c − 0.0
        out[order] = np.arange(1, len(a) + 1, dtype=np.float64)
        return out
    counts = np.diff(np.append(np.flatnonzero(new), len(a)))
    out[order] = (np.cumsum(counts) - (counts - 1) / 2.0)[np.cumsum(new) - 1]
    return out


def _lambdas(alphas, fan_in: int, weight_std: float, in_mean: float, in_std: float) -> list[float]:
    """λ(α) of :func:`skew.theory.threshold` for every α at once (NaN without a usable input mean)."""
    if not (np.isfinite(in_mean) and in_mean != 0 and np.isfinite(in_std) and np.isfinite(weight_std)):
        return [float("nan")] * len(alphas)
    if not len(alphas):
        return []
    return [float(v) for v in np.reshape(theory.threshold(np.asarray(alphas, dtype=np.float64), fan_in,
                                                          weight_std, in_mean, in_std), -1)]


def _layer_row(name: str, info: dict, st: LayerState, nf: dict[str, np.ndarray], thresholds) -> dict:
    live = ~nf["degenerate"]
    skew = nf["skew"]
    skew_g = nf["skew_gauss"]
    s = nf["row_sum"]
    in_mean, in_std = _input_moments(st)
    fan_in = int(nf["fan_in"][0]) if len(s) else 0
    row = {
        "layer": name,
        "type": info["type"],
        "shape": info["shape"],
        "neurons": int(len(s)),
        "calls": int(st.calls),
        "samples": int(st.rows),
    }
    for a in thresholds:
        row[f"skewed_{_fmt(a)}"] = _fraction(skew > a, live)
    for a in thresholds:
        row[f"skewed_gauss_{_fmt(a)}"] = _fraction(skew_g > a, live)
    lambdas = dict(zip(thresholds, _lambdas(thresholds, fan_in, info["weight_std"], in_mean, in_std)))
    for a in thresholds:
        row[f"lambda_{_fmt(a)}"] = lambdas[a]
    for a in thresholds:
        lam = lambdas[a]
        row[f"agree_{_fmt(a)}"] = (
            float("nan") if math.isnan(lam) else _fraction((np.abs(s) > lam) == (skew > a), live)
        )
    row["mean_skew"] = float(np.mean(skew[live])) if live.any() else float("nan")
    row["spearman_s_p"] = _spearman(s[live], nf["p"][live])
    row["input_mean"] = in_mean
    row["input_std"] = in_std
    with np.errstate(invalid="ignore"):
        row["oui_batch"] = float(np.mean(st.oui_sum) / st.oui_batches) if st.oui_batches else float("nan")
    row["oui_pairwise"] = _unit_oui(st)
    row["oui_pairwise_pooled"] = pairwise_oui(st.patterns) if st.patterns.shape[0] >= 2 else float("nan")
    row["degenerate"] = int((~live).sum())
    row["dead"] = int(nf["dead"].sum())
    row["always_on"] = int(nf["always_on"].sum())
    row["nonfinite"] = int(nf["nonfinite"].sum())
    row["weight_std"] = float(info["weight_std"])
    row["mask"] = _mask_status(st)
    return row


def _unit_oui(st: LayerState) -> float:
    """Pairwise OUI over every unit of the first 8 samples' flattened patterns (docs/oui.md).

    Read from the bit-packed patterns directly: the Hamming distance of samples i, j over their
    first d = min(d_i, d_j) units is the popcount of (packed_i XOR packed_j) with the bits past d
    masked off, so the (samples, units) boolean array is never unpacked. Same value as
    ``pairwise_oui(unpack_units(patterns, counts), units=counts)``.
    """
    counts = np.asarray(st.unit_counts, dtype=np.int64)
    if len(counts) < 2:
        return float("nan")
    packed = np.asarray(st.unit_patterns)
    width = int(counts.max())
    if (packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[0] != len(counts)
            or packed.shape[1] * 8 < width or (counts < 0).any()):
        return pairwise_oui(unpack_units(st.unit_patterns, counts), units=counts)  # its checks and errors
    if width // 2 == 0:
        return float("nan")
    i, j = _pairs(len(counts))
    d = np.minimum(counts[i], counts[j])
    halves = d // 2
    ok = halves > 0
    if not ok.any():
        return float("nan")
    hamming = np.empty(len(d), dtype=np.int64)
    same = counts.min() == counts.max()  # the usual case: every sample has the same number of units
    for units in (d[:1] if same else np.unique(d)):
        sel = slice(None) if same else d == units
        hamming[sel] = _hamming(packed, i[sel], j[sel], int(units))
    return float(np.mean(np.minimum(hamming[ok], halves[ok]) / halves[ok]))


def _hamming(packed: np.ndarray, i: np.ndarray, j: np.ndarray, units: int) -> np.ndarray:
    """Hamming distance of rows i[k] and j[k] of bit-packed patterns over their first ``units``
    bits: popcount(packed_i XOR packed_j), read 64 bits at a time (the rows copied once into
    8-byte words, the bits past ``units`` cleared).

    Example:
        >>> _hamming(np.array([[0b10110000], [0b00010001]], dtype=np.uint8), np.array([0]), np.array([1]), 7).tolist()
        [2]
    """
    nbytes = (units + 7) // 8
    if units % 64 == 0 and packed.shape[1] == nbytes and packed.flags.c_contiguous:
        words = packed  # whole words already (the usual conv map): no copy
    else:
        words = np.zeros((packed.shape[0], -(-nbytes // 8) * 8), dtype=np.uint8)
        words[:, :nbytes] = packed[:, :nbytes]
        if units % 8:
            words[:, nbytes - 1] &= np.uint8((0xFF << (8 - units % 8)) & 0xFF)
    w = words.view(np.uint64)
    done = _fused.hamming(w, i, j)  # one compiled pass where the library is loaded
    if done is not None:
        return done
    x = np.empty(w.shape[1], dtype=np.uint64)
    c = np.empty(w.shape[1], dtype=np.uint8)
    out = np.empty(len(i), dtype=np.int64)
    for k, (a, b) in enumerate(zip(i.tolist(), j.tolist())):  # one pair at a time: x and c stay in cache
        np.bitwise_xor(w[a], w[b], out=x)
        out[k] = np.add.reduce(np.bitwise_count(x, out=c), dtype=np.int64)
    return out


_PAIR_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _pairs(samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The (i, j) arrays of :func:`skew.oui.default_pairs`, in its order, cached by sample count."""
    if samples not in _PAIR_CACHE:
        i, j = np.asarray(default_pairs(samples), dtype=np.int64).reshape(-1, 2).T
        _PAIR_CACHE[samples] = (i, j)
    return _PAIR_CACHE[samples]


def _mask_status(st: LayerState) -> str:
    """How the batches' attention mask met this layer's output: '', 'applied', 'per-sample', 'unmatched'."""
    applied, per_sample, unmatched = (int(v) for v in np.asarray(st.mask_calls).reshape(-1)[:3])
    if unmatched:
        return "unmatched"
    if applied:
        return "applied"
    return "per-sample" if per_sample else ""


class Report:
    r"""Per-neuron and per-layer skew of one model measured on a stream of batches.

    Attributes:
        neurons: one row per neuron (layer, neuron, fan_in, row_sum, row_sum_scaled, row_norm, bias,
            n, p, p_gauss, p_pred, skew, skew_gauss, mean, std, degenerate, dead, always_on, nonfinite).
        layers: one row per layer (layer, type, shape, neurons, calls, samples, ``skewed_{a}``,
            ``skewed_gauss_{a}``, ``lambda_{a}``, ``agree_{a}`` for each threshold a, mean_skew,
            spearman_s_p, input_mean, input_std, oui_batch, oui_pairwise, degenerate, dead,
            always_on, nonfinite, weight_std, oui_pairwise_pooled, mask). Fractions are over
            non-degenerate neurons. ``oui_pairwise`` is the authors' OUI over every unit of the
            flattened patterns (docs/oui.md); ``oui_pairwise_pooled`` one unit per neuron (channel
            pooled over its positions); ``mask`` how an attention mask was matched (see
            :func:`skew.report`).
        skipped: every module not analysed (module, type, reason).
        signs: layer -> bool array (≤ 250 samples × ≤ 250 neurons), the activation-sign raster.
        sign_neurons: layer -> the neuron indices of the raster's columns.
        sign_positions: layer -> the output position each raster row shows (see the property).
        thresholds: the skew degrees α of the ``*_{a}`` columns.
        meta: how the report was made (model class, batches, device, mode, ...).

    Build one with :func:`skew.report`, :meth:`load` or :meth:`merge`. Per neuron and threshold α:

    .. math:: p = \frac{\#\{Z > 0\}}{n}, \qquad \mathrm{skew} = \left|p - \tfrac12\right|, \qquad
              \texttt{skewed\_}\alpha = \frac{\#\{\text{non-degenerate neurons with skew} > \alpha\}}
              {\#\{\text{non-degenerate neurons}\}}

    Example:
        >>> import torch, skew
        >>> net = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(64, 48, bias=False))
        >>> _ = skew.init.apply(net, "xavier_uniform", generator=torch.Generator().manual_seed(0))
        >>> rep = skew.report(net, torch.randn(4096, 64, generator=torch.Generator().manual_seed(1)))
        >>> n = rep.neurons
        >>> bool(((n["p"] - 0.5).abs() == n["skew"]).all())
        True
        >>> frac = float((n["skew"] > 0.3).mean())
        >>> frac == float(rep.layers.loc[0, "skewed_0.3"])
        True
        >>> ax = rep.plot_skew_hist(layer="1")                            # a matplotlib Axes
    """

    def __init__(
        self,
        states: dict[str, LayerState],
        weights: pd.DataFrame,
        info: dict[str, dict],
        *,
        thresholds: Sequence[float] = (0.1, 0.3),
        meta: dict | None = None,
        skipped: pd.DataFrame | None = None,
    ):
        self._states = dict(states)
        self._weights = weights.reset_index(drop=True)
        self._info = {k: dict(v) for k, v in info.items()}
        self.thresholds = tuple(float(a) for a in thresholds)
        for a in self.thresholds:
            if not 0.0 < a < 0.5:
                raise SkewError(f"thresholds must lie strictly between 0 and 1/2, got {a}; use e.g. (0.1, 0.3)")
        self.meta = dict(meta or {})
        self.skipped = (
            skipped.reset_index(drop=True)
            if skipped is not None
            else pd.DataFrame({"module": pd.Series(dtype=object), "type": pd.Series(dtype=object),
                               "reason": pd.Series(dtype=object)})
        )
        self.signs = {k: st.signs for k, st in self._states.items()}
        self.sign_neurons = {k: st.sign_neurons for k, st in self._states.items()}
        self.neurons, self.layers = self._derive()

    @property
    def sign_positions(self) -> dict[str, tuple[int, ...]]:
        """layer -> the position of each sample's output the raster shows: the true centre
        (H//2, W//2, ...) for conv maps, (T//2,) for tokens, () when the output has no positions,
        (-1,) for the middle unmasked token of each sample (with an attention mask)."""
        return {k: tuple(int(v) for v in np.asarray(st.sign_position).reshape(-1)) for k, st in self._states.items()}

    # -- derived frames -----------------------------------------------------------------------
    def _derive(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        wcols = {c: self._weights[c].to_numpy() for c in WEIGHT_COLUMNS}
        where = layer_indices(wcols["layer"])
        names = list(self._states)
        if not names:
            return pd.DataFrame(), pd.DataFrame([])
        parts = []
        for name in names:
            idx = where[name]
            neuron = wcols["neuron"][idx]
            if len(idx) > 1 and not np.all(neuron[1:] >= neuron[:-1]):
                idx = idx[np.argsort(neuron, kind="stable")]
            parts.append(idx)
        take = np.concatenate(parts)
        if not (len(take) == len(wcols["layer"]) and np.array_equal(take, np.arange(len(take)))):
            wcols = {c: v[take] for c, v in wcols.items()}
        states = [self._states[k] for k in names]
        sizes = [len(i) for i in parts]
        eps = [float(self._info[k].get("eps", _EPS32)) for k in names]
        if _stackable(states, sizes, wcols):
            nf = _stacked_neuron_arrays(names, states, sizes, wcols, eps)
            bounds = np.cumsum([0, *sizes])
            used = ("degenerate", "skew", "skew_gauss", "row_sum", "fan_in", "p", "dead", "always_on", "nonfinite")
            per_layer = [{c: nf[c][a:b] for c in used} for a, b in zip(bounds[:-1], bounds[1:])]
        else:  # unusual dtypes or shapes: layer by layer, as the arrays come
            bounds = np.cumsum([0, *sizes])
            per_layer = [
                _neuron_arrays(name, st, {c: v[a:b] for c, v in wcols.items()}, e)
                for name, st, a, b, e in zip(names, states, bounds[:-1], bounds[1:], eps)
            ]
            nf = {c: np.concatenate([p[c] for p in per_layer]) for c in per_layer[0]}
        rows = [
            _layer_row(name, self._info[name], st, part, self.thresholds)
            for name, st, part in zip(names, states, per_layer)
        ]
        return pd.DataFrame(nf), pd.DataFrame(rows)

    # -- display ------------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """A compact per-layer table: skewed fractions (count estimator), mean skew, OUI, flags.

        Example:
            >>> rep.summary().columns[:4].tolist()            # doctest: +SKIP
            ['layer', 'type', 'neurons', 'samples']
        """
        cols = ["layer", "type", "neurons", "samples"]
        cols += [f"skewed_{_fmt(a)}" for a in self.thresholds]
        cols += ["mean_skew", "spearman_s_p", "oui_pairwise", "degenerate", "dead", "always_on"]
        return self.layers[[c for c in cols if c in self.layers.columns]].copy()

    def _headline(self) -> str:
        nf = self.neurons
        live = ~nf["degenerate"].to_numpy() if len(nf) else np.zeros(0, dtype=bool)
        parts = []
        for a in self.thresholds:
            frac = _fraction(nf["skew"].to_numpy() > a, live) if len(nf) else float("nan")
            parts.append(f"α={_fmt(a)}: {100 * frac:.1f}%")
        batches = self.meta.get("batches", "?")

        def count(k, one: str, many: str) -> str:
            return f"{k} {one if k == 1 else many}"

        return (
            f"skew.Report of {self.meta.get('model', 'model')}: {count(len(self.layers), 'layer', 'layers')}, "
            f"{count(len(nf), 'neuron', 'neurons')}, {count(batches, 'batch', 'batches')}; skewed neurons (count estimator) {', '.join(parts)}"
        )

    def __repr__(self) -> str:
        with pd.option_context("display.width", 120, "display.max_columns", 20, "display.precision", 3):
            return f"{self._headline()}\n{self.summary().to_string(index=False)}"

    def _repr_html_(self) -> str:
        import html

        table = self.summary().to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="–")
        skipped = f"<p>{len(self.skipped)} modules not analysed (see <code>.skipped</code>).</p>" if len(
            self.skipped) else ""
        return f"<div><p><b>{html.escape(self._headline())}</b></p>{table}{skipped}</div>"

    # -- merge --------------------------------------------------------------------------------
    def merge(self, other: Report) -> Report:
        """The Report of this report's data followed by ``other``'s, computed exactly from raw sums.

        Both must measure the same weights at the same sites (same ``at``, same layers in the
        same order, equal row sums) in the same ``mode``; anything else raises SkewError. Counts add, moments
        combine with Chan's formula, sign samples and OUI patterns keep this report's samples
        first. Thresholds come from this report.

        Example:
            >>> both = rep_a.merge(rep_b)                     # doctest: +SKIP
        """
        if not isinstance(other, Report):
            raise SkewError(f"can only merge a Report with another Report, got {type(other).__name__}")
        for key, default in (("mode", "eval"), ("at", "layers")):
            mine, theirs = self.meta.get(key, default), other.meta.get(key, default)
            if mine != theirs:
                raise SkewError(
                    f"cannot merge a report measured with {key}={mine!r} with one measured with {key}={theirs!r}; "
                    f"measure both with the same {key}= (the result would mix two kinds of numbers)"
                )
        if list(self._states) != list(other._states):
            only_a = [k for k in self._states if k not in other._states]
            only_b = [k for k in other._states if k not in self._states]
            detail = f"only in this one: {only_a[:4]}; only in the other: {only_b[:4]}" if only_a or only_b else (
                "the same sites in a different order")
            raise SkewError(
                f"cannot merge reports measured at different sites ({detail}); measure both with the same "
                "layers= and at= on the same model"
            )
        wa = self._weights.set_index(["layer", "neuron"])
        wb = other._weights.set_index(["layer", "neuron"])
        common = [k for k in self._states if k in other._states]
        for name in common:
            a, b = wa.loc[name], wb.loc[name]
            same = len(a) == len(b) and np.array_equal(
                a["row_sum"].to_numpy(), b["row_sum"].to_numpy(), equal_nan=True
            ) and np.array_equal(a["bias"].to_numpy(), b["bias"].to_numpy(), equal_nan=True)
            if not same:
                raise SkewError(
                    f"the reports measured different weights in layer {name!r}; merge only reports of the "
                    "same model (same parameters) over different data"
                )
        states = {}
        for name in list(self._states) + [k for k in other._states if k not in self._states]:
            if name in self._states and name in other._states:
                states[name] = merge_states(self._states[name], other._states[name])
            else:
                states[name] = self._states.get(name) or other._states[name]
        names = set(states)
        weights = pd.concat(
            [self._weights, other._weights[~other._weights["layer"].isin(self._states)]], ignore_index=True
        )
        info = {**other._info, **self._info}
        skipped = pd.concat([self.skipped, other.skipped], ignore_index=True)
        skipped = skipped[~skipped["module"].isin(names)].drop_duplicates(subset=["module"]).reset_index(drop=True)
        meta = dict(self.meta)
        for key in ("batches", "inputs"):
            if isinstance(self.meta.get(key), int) and isinstance(other.meta.get(key), int):
                meta[key] = self.meta[key] + other.meta[key]
        meta["merged"] = int(self.meta.get("merged", 1)) + int(other.meta.get("merged", 1))
        order = {name: i for i, name in enumerate(states)}
        weights = weights.sort_values("layer", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
        return Report(states, weights, info, thresholds=self.thresholds, meta=meta, skipped=skipped)

    # -- save / load --------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the report to one zip file, atomically: CSV frames (floats in round-trip precision),
        their dtypes and the metadata as JSON, and the raw accumulators as .npy files
        (:mod:`skew.report_file`). Errors name ``path``, and a failed save leaves no file behind.

        :meth:`load` reads it back exactly (``pandas.testing.assert_frame_equal(check_exact=True)``).

        Example:
            >>> rep.save("out/resnet18.skew.zip")            # doctest: +SKIP
        """
        from skew.report_file import save_report

        return save_report(self, path)

    @classmethod
    def load(cls, path) -> Report:
        """Read a report written by :meth:`save`; a damaged or edited file raises :class:`SkewError`
        naming the file and the problem (arrays are read with ``allow_pickle=False``).

        Example:
            >>> rep = Report.load("out/resnet18.skew.zip")   # doctest: +SKIP
        """
        from skew.report_file import load_report

        return load_report(cls, path)

    # -- plots (skew.plot does the drawing) ---------------------------------------------------
    def plot_skew_hist(self, **kwargs):
        """:func:`skew.plot.skew_hist` of this report; returns the Axes.

        Example:
            >>> ax = rep.plot_skew_hist(layer="fc1")  # doctest: +SKIP
        """
        from skew import plot

        return plot.skew_hist(self, **kwargs)

    def plot_rowsum_hist(self, **kwargs):
        """:func:`skew.plot.rowsum_hist` of this report; returns the Axes.

        Example:
            >>> ax = rep.plot_rowsum_hist(layer="fc1", alpha=0.3)  # doctest: +SKIP
        """
        from skew import plot

        return plot.rowsum_hist(self, **kwargs)

    def plot_skew_vs_rowsum(self, **kwargs):
        """:func:`skew.plot.skew_vs_rowsum` of this report; returns the Axes.

        Example:
            >>> ax = rep.plot_skew_vs_rowsum(layer="fc1")  # doctest: +SKIP
        """
        from skew import plot

        return plot.skew_vs_rowsum(self, **kwargs)

    def plot_activation_states(self, **kwargs):
        """:func:`skew.plot.activation_states` of this report; returns the Axes.

        Example:
            >>> ax = rep.plot_activation_states(layer="fc1")  # doctest: +SKIP
        """
        from skew import plot

        return plot.activation_states(self, **kwargs)

    def plot_skew_fraction_vs_alpha(self, **kwargs):
        """:func:`skew.plot.skew_fraction_vs_alpha` of this report; returns the Axes.

        Example:
            >>> ax = rep.plot_skew_fraction_vs_alpha(layer="fc1")  # doctest: +SKIP
        """
        from skew import plot

        return plot.skew_fraction_vs_alpha(self, **kwargs)
