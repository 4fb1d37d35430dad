"""OUI, the Overfitting–Underfitting Indicator (docs/oui.md), from binary activation patterns.

A site's *activation pattern* for one input sample is the binary vector [unit k active] over its
units. The authors' units (docs/oui.md), used by ``oui_pairwise``, are every entry of the sample's
output: for a conv output every (channel, position), the C×H×W map flattened channel-major; for
tokens every (token, feature), T×F; for Linear on (B, F) the F neurons. The analyzer keeps these
full patterns for the first 8 samples only (at most ``OUI_MAX_UNITS`` = 2**20 units per sample:
a larger pattern is read at that many evenly spaced units, the same for every sample). Samples
whose patterns differ in length (variable sequence lengths, padding masked out) are compared on
the units both have: the first min(d_i, d_j) of their flattened patterns.

``oui_pairwise_pooled`` (skew's earlier reading) uses one unit per neuron instead: channel k is
active for sample b when the mean of Z[b, k] over its positions (or tokens) is positive, the sign
of the globally pooled pre-activation. ``oui_batch`` uses these pooled units too.

Two readings, always say which one is reported:

- **pairwise** (original): for a fixed set of sample pairs (default all 28 pairs of the first 8
  samples), OUI = mean over pairs of min(H, ⌊d/2⌋)/⌊d/2⌋, H the Hamming distance of the two
  patterns and d the number of units;
- **batch** (later papers): with s_k the number of the B samples of a batch activating unit k,
  OUI = mean_k min(s_k, B − s_k)/⌊B/2⌋; the analyzer averages it over batches (batches with B < 2
  are left out). It reads lower than the pairwise one on the same layer.

For independent samples, pairwise OUI ≈ 1 − 4·mean_k (p_k − 1/2)² before clipping
(:func:`oui_from_p`).

Example:
    >>> import numpy as np
    >>> pats = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 1, 1]], dtype=bool)
    >>> pairwise_oui(pats)          # H = 2, 4, 2 with d = 4: min(H, 2)/2 = 1 for every pair
    1.0
    >>> batch_oui(pats)             # s = (2, 1, 2, 1), B = 3: min(s, 3 - s) = 1 each, /1
    1.0
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from skew._checks import MAX_SIZE
from skew.errors import SkewError

__all__ = ["batch_oui", "default_pairs", "oui_from_p", "pairwise_oui"]


def _patterns(patterns) -> np.ndarray:
    """``patterns`` as a 2-D bool array; values other than 0/1 (a float Z, NaN) are refused, not read as True."""
    try:
        raw = np.asarray(patterns)
        values = None if raw.dtype == bool else raw.astype(np.float64)
    except (TypeError, ValueError):
        raise SkewError(f"patterns must be a (samples, units) boolean array, got {type(patterns).__name__}") from None
    if values is not None:
        other = ~np.isin(values, (0.0, 1.0))
        if other.any():
            raise SkewError(f"patterns must be boolean (or 0/1) activation states, got values such as "
                            f"{values[other].ravel()[:3].tolist()}; pass z > 0 for outputs z")
    pats = raw.astype(bool)
    if pats.ndim != 2:
        raise SkewError(f"patterns must be a (samples, units) array, got shape {pats.shape}")
    return pats


def _indices(value, name: str, what: str) -> np.ndarray:
    """``value`` as an int64 array; anything but integers (floats that would be truncated, words, bools) is refused."""
    try:
        arr = np.asarray(value)
        if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
            raise TypeError
        return arr.astype(np.int64)
    except (TypeError, ValueError, OverflowError):
        raise SkewError(f"{name} must be {what}, got {value!r:.60}") from None


def default_pairs(samples: int = 8) -> list[tuple[int, int]]:
    """All pairs (i, j), i < j, of the first ``samples`` samples: 28 pairs for 8 samples.

    Example:
        >>> len(default_pairs(8)), default_pairs(3)
        (28, [(0, 1), (0, 2), (1, 2)])
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or not 0 <= samples <= MAX_SIZE:
        raise SkewError(f"samples must be an integer >= 0, got {samples!r}; pass the number of samples to pair")
    return list(combinations(range(samples), 2))


def pairwise_oui(
    patterns: np.ndarray, pairs: list[tuple[int, int]] | None = None, units: np.ndarray | None = None
) -> float:
    """Pairwise OUI of one layer from its (samples, units) boolean activation patterns.

    .. math:: \\mathrm{OUI} = \\frac{1}{|\\mathcal P|}\\sum_{(i,j)\\in\\mathcal P}
              \\frac{\\min(H_{ij}, \\lfloor d/2 \\rfloor)}{\\lfloor d/2 \\rfloor}

    ``pairs`` defaults to all pairs of the given samples. NaN when there is no pair or d < 2.
    ``units`` (one count per sample) makes the patterns ragged: sample i has its first
    ``units[i]`` entries, and a pair is compared on its first d = min(units[i], units[j]) units
    (pairs with d < 2 are left out).

    Example:
        >>> pairwise_oui(np.array([[1, 0], [1, 0]], dtype=bool))
        0.0
        >>> pairwise_oui(np.array([[1, 0, 1, 1], [0, 1, 0, 0]], dtype=bool), units=np.array([4, 2]))
        1.0
    """
    pats = _patterns(patterns)
    if pairs is None:
        pairs = default_pairs(pats.shape[0])
    pairs = _indices(pairs, "pairs", "a list of (i, j) sample pairs, e.g. [(0, 1), (0, 2)]")
    if pairs.size and (pairs.ndim != 2 or pairs.shape[1] != 2):
        raise SkewError(f"pairs must be a list of (i, j) sample pairs, got an array of shape {pairs.shape}")
    half = pats.shape[1] // 2
    if not pairs.size or half == 0:
        return float("nan")
    i, j = pairs.T
    if i.max() >= pats.shape[0] or j.max() >= pats.shape[0] or min(i.min(), j.min()) < 0:
        bad = max(i.max(), j.max()) if min(i.min(), j.min()) >= 0 else min(i.min(), j.min())
        raise SkewError(f"a pair refers to sample {bad} but only samples 0..{pats.shape[0] - 1} are given")
    if units is not None:
        units = _indices(units, "units", "one integer count per sample")
        if units.shape != (pats.shape[0],) or (units > pats.shape[1]).any() or (units < 0).any():
            raise SkewError(f"units must give one count in [0, {pats.shape[1]}] per sample, got {units!r}")
        d = np.minimum(units[i], units[j])
        halves = d // 2
        cols = np.arange(pats.shape[1])
        diff = (pats[i] != pats[j]) & (cols[None, :] < d[:, None])
        ok = halves > 0
        if not ok.any():
            return float("nan")
        hamming = diff.sum(axis=1)[ok]
        return float(np.mean(np.minimum(hamming, halves[ok]) / halves[ok]))
    hamming = (pats[i] != pats[j]).sum(axis=1)
    return float(np.mean(np.minimum(hamming, half) / half))


def batch_oui(patterns: np.ndarray) -> float:
    """Batch OUI of one layer from the (B, units) boolean activation patterns of one batch.

    .. math:: \\mathrm{OUI} = \\frac{1}{d}\\sum_k \\frac{\\min(s_k, B - s_k)}{\\lfloor B/2 \\rfloor},
              \\qquad s_k = \\sum_b [\\text{unit } k \\text{ active for sample } b]

    NaN when B < 2.

    Example:
        >>> batch_oui(np.array([[1, 1], [0, 1]], dtype=bool))
        0.5
    """
    pats = _patterns(patterns)
    b = pats.shape[0]
    if b < 2 or pats.shape[1] == 0:
        return float("nan")
    s = pats.sum(axis=0)
    return float(np.mean(np.minimum(s, b - s) / (b // 2)))


def oui_from_p(p: np.ndarray) -> float:
    """Expected pairwise OUI of independent samples, before clipping: 1 − 4·mean_k (p_k − 1/2)².

    Two independent samples differ at unit k with probability 2 p_k (1 − p_k), so
    E[H]/(d/2) = (2/d) Σ_k 2 p_k (1 − p_k) = 1 − 4·mean_k (p_k − 1/2)².

    Example:
        >>> oui_from_p(np.array([0.5, 0.5])), oui_from_p(np.array([0.0, 1.0]))
        (1.0, 0.0)
    """
    try:
        if hasattr(p, "detach"):  # a tensor of any real dtype (bfloat16 too); torch is loaded if one exists
            import torch

            p = p.detach().to("cpu", torch.float64).numpy()
        raw = np.asarray(p)
        if raw.dtype == bool or raw.dtype == object or np.iscomplexobj(raw):  # None, True: no probabilities
            raise TypeError
        p = raw.astype(float)
    except (TypeError, ValueError, RuntimeError):
        raise SkewError(f"p must be an array of probabilities in [0, 1], got {type(p).__name__}") from None
    if (p < 0.0).any() or (p > 1.0).any():  # NaN (a neuron without p) passes and is left out
        raise SkewError(f"p must hold probabilities in [0, 1], got {p[(p < 0) | (p > 1)].ravel()[:3].tolist()}")
    return float(1.0 - 4.0 * np.nanmean((p - 0.5) ** 2))
