"""Theorem 1 of the Sinusoidal-initialization paper and the moments it needs, in closed form.

A neuron Z = W·X + b with weights W_1..W_n (mean 0, variance θ²) and i.i.d. inputs X_j (mean μ ≠ 0,
variance σ²) has, by the CLT, P(Z > 0 | W) ≈ Φ((μ S + b) / (σ ‖W‖₂)) with S = Σ_j W_j its row sum.
It is *skewed with degree α* when |P(Z > 0) − 1/2| > α, i.e. (zero bias, ‖W‖₂² ≈ n θ²) when
|S| > λ(α) = (σ θ √n / |μ|) Φ⁻¹(1/2 + α). For a first layer under any i.i.d. zero-mean scheme
S ~ N(0, n θ²), so the expected fraction of skewed neurons is 2 (1 − Φ((σ/|μ|) Φ⁻¹(1/2 + α))).

Every function is vectorised: scalars give floats, arrays broadcast and give arrays.

Example:
    >>> from skew import theory
    >>> mu, sigma = theory.input_moments("relu-gaussian")
    >>> round(theory.expected_skewed_fraction(0.3, mu, sigma), 3)
    0.218
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.special import ndtr, ndtri

from skew.errors import SkewError

__all__ = [
    "INPUT_LAWS",
    "expected_skewed_fraction",
    "input_moments",
    "predicted_p",
    "rowsum_variance",
    "skewed_fraction_curve",
    "threshold",
    "weight_variance",
]

#: Input laws with closed-form moments: name -> (mean, std).
INPUT_LAWS: dict[str, tuple[float, float]] = {
    "gaussian": (0.0, 1.0),
    "relu-gaussian": (1.0 / math.sqrt(2.0 * math.pi), math.sqrt(0.5 - 1.0 / (2.0 * math.pi))),
    "uniform": (0.0, 1.0 / math.sqrt(3.0)),
    "relu-uniform": (0.25, math.sqrt(5.0 / 48.0)),
}

def _out(x):
    """A float for 0-d results, else the ndarray."""
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


def _floats(name: str, value) -> np.ndarray:
    """``value`` as a float64 array; a value that is no real number (a word, a complex, a ragged list,
    a dict, None, a bool, a tensor on the meta device) raises :class:`SkewError` naming the argument.
    A tensor of any real dtype (bfloat16 too, or one that requires grad) is read as its values."""
    try:
        if isinstance(value, torch.Tensor):
            if value.is_meta or value.is_complex() or value.dtype == torch.bool:
                raise TypeError("no real values")
            value = value.detach().to("cpu", torch.float64).numpy()
        if np.iscomplexobj(value):
            raise TypeError("complex")
        arr = np.asarray(value)
        if arr.dtype == np.bool_ or (arr.dtype == object and any(v is None or isinstance(v, bool)
                                                                   for v in arr.ravel())):
            raise TypeError("None or bool")  # float(None) is NaN and float(True) is 1: never what was meant
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise SkewError(
            f"{name} must be a real number or an array of them, got {value!r:.80}; pass e.g. {name}=0.3 or a list of floats"
        ) from None


def _broadcast(**arrays: np.ndarray) -> None:
    """Raise :class:`SkewError` when array arguments have shapes numpy cannot broadcast together."""
    try:
        np.broadcast_shapes(*(np.shape(a) for a in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{k} {np.shape(v)}" for k, v in arrays.items() if np.ndim(v))
        raise SkewError(
            f"the array arguments have shapes that do not broadcast together ({shapes}); pass arrays of one "
            "length (one value per neuron) or scalars"
        ) from None


def _check_alpha(alpha) -> np.ndarray:
    a = _floats("alpha", alpha)
    bad = ~((a > 0.0) & (a < 0.5))
    if np.any(bad):
        raise SkewError(
            f"alpha must lie strictly between 0 and 1/2 (skew degree of Definition 1), got "
            f"{a[bad].ravel()[:5].tolist()}; use e.g. alpha=0.1 or alpha=0.3"
        )
    return a


def _check_mean(input_mean) -> np.ndarray:
    mu = _floats("input_mean", input_mean)
    if np.any(~np.isfinite(mu)) or np.any(mu == 0.0):
        raise SkewError(
            "Theorem 1 needs a finite, non-zero input mean mu: with mu = 0 the row sum S does not "
            "shift Z and no threshold on S exists; use inputs with a non-zero mean (e.g. post-ReLU "
            "activations, input_moments('relu-gaussian'))"
        )
    return mu


def _check_nonneg(name: str, value) -> np.ndarray:
    v = _floats(name, value)
    if np.any(~(v >= 0.0)):
        raise SkewError(f"{name} must be a non-negative number, got {v.ravel()[:5].tolist()}; pass a std or norm")
    return v


def threshold(alpha, n, weight_std, input_mean, input_std):
    """Theorem 1's row-sum threshold λ(α): a neuron is skewed with degree α iff |S| > λ(α).

    .. math:: \\lambda(\\alpha) = \\frac{\\sigma\\,\\theta\\,\\sqrt{n}}{|\\mu|}\\,\\Phi^{-1}\\!\\left(\\tfrac12 + \\alpha\\right)

    Args:
        alpha: skew degree(s), 0 < α < 1/2.
        n: fan-in (number of inputs of the neuron).
        weight_std: θ, the standard deviation of the weights.
        input_mean: μ, the inputs' mean (must be non-zero: e.g. post-ReLU inputs).
        input_std: σ, the inputs' standard deviation.

    Raises SkewError for α outside (0, 1/2), μ = 0 or negative n, θ, σ.

    Example:
        >>> round(threshold(0.3, n=100, weight_std=0.1, input_mean=0.5, input_std=1.0), 4)
        1.6832
    """
    a = _check_alpha(alpha)
    mu = _check_mean(input_mean)
    n = _check_nonneg("n", n)
    theta = _check_nonneg("weight_std", weight_std)
    sigma = _check_nonneg("input_std", input_std)
    _broadcast(alpha=a, n=n, weight_std=theta, input_mean=mu, input_std=sigma)
    return _out(sigma * theta * np.sqrt(n) / np.abs(mu) * ndtri(0.5 + a))


def predicted_p(row_sum, row_norm, input_mean, input_std, bias=0.0):
    """Predicted activation probability P(Z > 0 | W) of a neuron from its row sum and norm.

    .. math:: p = \\Phi\\!\\left(\\frac{\\mu S + b}{\\sigma\\,\\lVert W_i\\rVert_2}\\right)

    Degenerate neurons (σ‖W_i‖ = 0) have a constant Z = μS + b, so p is exactly the indicator
    1[μS + b > 0]: 1 when it is positive, 0 otherwise (a zero row with zero bias gives p = 0,
    agreeing with the count estimator's strict Z > 0). NaN inputs give NaN.

    Example:
        >>> predicted_p(0.0, 1.0, 0.4, 0.6)
        0.5
        >>> predicted_p([0.0, 1.0], [0.0, 0.0], 0.4, 0.6, bias=[0.1, -1.0]).tolist()
        [1.0, 0.0]
    """
    s = _floats("row_sum", row_sum)
    norm = _floats("row_norm", row_norm)
    sigma = _floats("input_std", input_std)
    for label, v in (("row_norm", norm), ("input_std", sigma)):
        if np.any(v < 0.0):
            raise SkewError(f"{label} must be non-negative, got {v[v < 0.0].ravel()[:5].tolist()}; pass a norm/std")
    mu = _floats("input_mean", input_mean)
    b = _floats("bias", bias)
    _broadcast(row_sum=s, row_norm=norm, input_mean=mu, input_std=sigma, bias=b)
    num = mu * s + b
    den = sigma * norm
    with np.errstate(divide="ignore", invalid="ignore"):
        p = ndtr(num / den)
    p = np.where(den == 0.0, (num > 0.0).astype(np.float64), p)
    p = np.where(np.isnan(num) | np.isnan(den), np.nan, p)
    return _out(p)


def expected_skewed_fraction(alpha, input_mean, input_std):
    """Expected fraction of skewed neurons in a first layer under any i.i.d. zero-mean init.

    With S ~ N(0, nθ²) and ‖W‖² ≈ nθ², μS/(σ‖W‖) ~ N(0, μ²/σ²), hence

    .. math:: f(\\alpha) = 2\\left(1 - \\Phi\\!\\left(\\frac{\\sigma}{|\\mu|}\\,\\Phi^{-1}\\!\\left(\\tfrac12+\\alpha\\right)\\right)\\right)

    It depends only on the inputs' coefficient of variation σ/|μ|, not on width nor scheme.

    Example:
        >>> round(expected_skewed_fraction(0.3, 1.0, 1.0), 6)  # σ = μ: 1 - 2α
        0.4
    """
    a = _check_alpha(alpha)
    mu = _check_mean(input_mean)
    sigma = _check_nonneg("input_std", input_std)
    _broadcast(alpha=a, input_mean=mu, input_std=sigma)
    return _out(2.0 * (1.0 - ndtr(sigma / np.abs(mu) * ndtri(0.5 + a))))


def input_moments(law: str) -> tuple[float, float]:
    """(mean, std) of a common input law: one of :data:`INPUT_LAWS`.

    - ``gaussian``: N(0, 1): μ = 0, σ = 1.
    - ``relu-gaussian``: ReLU(N(0, 1)): μ = 1/√(2π), σ² = 1/2 − 1/(2π).
    - ``uniform``: U(−1, 1): μ = 0, σ² = 1/3.
    - ``relu-uniform``: ReLU(U(−1, 1)): μ = 1/4, σ² = 1/6 − 1/16 = 5/48.

    Example:
        >>> mu, sigma = input_moments("relu-uniform")
        >>> mu, round(sigma ** 2 * 48, 6)
        (0.25, 5.0)
    """
    try:
        return INPUT_LAWS[law]
    except (KeyError, TypeError):
        raise SkewError(
            f"unknown input law {law!r}; valid laws are {', '.join(INPUT_LAWS)}"
        ) from None


def skewed_fraction_curve(alphas=None, laws: Sequence[str] | None = None) -> pd.DataFrame:
    """Tidy table of :func:`expected_skewed_fraction` over α for input laws with μ ≠ 0.

    Columns: law, alpha, input_mean, input_std, fraction. ``alphas`` defaults to 0.01..0.49;
    ``laws`` defaults to every law of :data:`INPUT_LAWS` with a non-zero mean.

    Example:
        >>> skewed_fraction_curve([0.1, 0.3], ["relu-gaussian"]).fraction.round(3).tolist()
        [0.711, 0.218]
    """
    alphas = np.linspace(0.01, 0.49, 49) if alphas is None else np.atleast_1d(_floats("alphas", alphas)).ravel()
    if not alphas.size:
        raise SkewError("alphas is empty; pass None (0.01 .. 0.49) or degrees strictly between 0 and 1/2, e.g. [0.1, 0.3]")
    if laws is None:
        laws = [name for name, (mu, _) in INPUT_LAWS.items() if mu != 0.0]
    if isinstance(laws, str):
        laws = [laws]
    try:
        laws = list(laws)
    except TypeError:
        raise SkewError(f"laws must be a list of input law names, got {laws!r}; valid laws are "
                        f"{', '.join(INPUT_LAWS)}") from None
    if not laws:
        raise SkewError(f"laws is empty; pass None (every law with a non-zero mean) or names from {', '.join(INPUT_LAWS)}")
    frames = []
    for law in laws:
        mu, sigma = input_moments(law)
        frames.append(
            pd.DataFrame(
                {
                    "law": law,
                    "alpha": alphas,
                    "input_mean": mu,
                    "input_std": sigma,
                    "fraction": np.atleast_1d(expected_skewed_fraction(alphas, mu, sigma)),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# variances per scheme


def _resolve(scheme, options: dict) -> tuple[str, dict]:
    """(canonical name, every option value) through skew.init's own registry, so a scheme is
    spelled exactly as for :func:`skew.init.apply`: a name, an alias (``glorot``, ``he``), a spelled
    form (``"uniform:5"``, ``"sinusoidal:mode=fan_in,gain=1.4142"``) or a ``Scheme``."""
    from skew.init.registry import get_scheme  # lazy: skew.init may one day import skew.theory

    resolved = get_scheme(scheme, **options)
    return resolved.name, dict(resolved.options)


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, torch.Tensor):
        shape = tuple(shape.shape)
    try:
        dims = tuple(shape)
        if any(isinstance(s, bool) or not float(s).is_integer() for s in dims):
            raise ValueError
        shape = tuple(int(s) for s in dims)
    except (TypeError, ValueError, OverflowError):
        raise SkewError(f"shape must be a tuple of ints such as (256, 784), got {shape!r}") from None
    if len(shape) < 2 or any(s <= 0 for s in shape):
        raise SkewError(
            f"shape {shape} has no (m, n) weight matrix; pass a weight shape with at least 2 positive "
            "dimensions, e.g. (out_features, in_features) or (c_out, c_in, k, k)"
        )
    return shape


def _fans(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(m, n, fan_in, fan_out) exactly as torch.nn.init computes the fans."""
    receptive = math.prod(shape[2:])
    m, n = shape[0], math.prod(shape[1:])
    return m, n, shape[1] * receptive, shape[0] * receptive


def _sinusoid_rows(m: int, n: int) -> tuple[np.ndarray, float]:
    """Row sums R_i and the ddof=1 entry variance v of the amplitude-1 sinusoidal (m, n) matrix.

    With θ_ij = 2π i j / n + φ_i, φ_i = 2π i / m: Σ_j sin θ_ij = n sin φ_i if n | i else 0, and
    Σ_j sin² θ_ij = n/2 − (n/2) cos 2φ_i if n | 2i else n/2 (geometric sums of roots of unity).
    O(m) work, no matrix built.
    """
    i = np.arange(1, m + 1, dtype=np.float64)
    ii = np.arange(1, m + 1)
    phi = 2.0 * np.pi * i / m
    sin_phi = np.where(ii % m == 0, 0.0, np.sin(phi))  # sin(2π) is exactly 0, not -2.4e-16
    r = np.where(ii % n == 0, n * sin_phi, 0.0)
    q = n / 2.0 - np.where((2 * ii) % n == 0, n / 2.0 * np.cos(2.0 * phi), 0.0)
    big_n = m * n
    v = (q.sum() - r.sum() ** 2 / big_n) / (big_n - 1) if big_n > 1 else float("nan")
    return r, float(v)


def _sinusoid_scalable(m: int, n: int) -> bool:
    """Whether :func:`skew.init.sinusoidal_` can scale the (m, n) pattern: at least 2 entries and a
    ddof=1 variance above 1e-12 (not zero everywhere, as the (2, 2) and (1, 2) patterns are)."""
    return m * n >= 2 and _sinusoid_rows(m, n)[1] > 1e-12


def weight_variance(scheme: str, shape, **options) -> float:
    """Target variance Var(W) of a weight of ``shape`` under ``scheme`` (fans as torch.nn.init).

    ``scheme`` and ``options`` are read by skew.init's registry, exactly as :func:`skew.init.apply`
    reads them (``"glorot"``, ``"uniform:5"``, ``"sinusoidal:mode=fan_in,gain=1.4142"``, a ``Scheme``).
    With (m, n) = (shape[0], prod(shape[1:])) and torch's fan_in, fan_out:

    - ``xavier_uniform``/``xavier_normal`` (``glorot``): gain² · 2 / (fan_in + fan_out).
    - ``kaiming_uniform``/``kaiming_normal`` (``he``): gain² / fan with gain from
      ``torch.nn.init.calculate_gain(nonlinearity, a)``; defaults relu, mode ``fan_in``: 2 / fan_in.
    - ``default`` (PyTorch's Linear/Conv ``reset_parameters``: kaiming_uniform with a = √5):
      1 / (3 fan_in).
    - ``orthogonal``: gain² / max(m, n) (orthonormal rows or columns of the (m, n) matrix).
    - ``sinusoidal``: gain² · 2 / (n + m) (the default, the authors' released code), with
      ``fans="torch"`` gain² · 2 / (fan_in + fan_out); gain² / fan with mode ``fan_in``/``fan_out``
      (fan_in = n, fan_out = m, or torch's with ``fans="torch"``); exact, as the amplitude is set
      from the ddof=1 variance. NaN for a shape :func:`skew.init.sinusoidal_` refuses (fewer than 2
      entries, or a pattern that is zero everywhere, such as (2, 2)).
    - ``arcsine``: gain² · 2 / (m + n).
    - ``uniform`` (option a, default 1): a² / 3.
    - ``idinit`` (option tau): the exact ddof=1 variance of the IDI_τ matrix's m·n entries, of
      which m equal τ (one per row) and the rest 0: τ² m (1 − 1/n) / (m n − 1) ≈ τ² / n.
    - ``lsuv``: NaN (data dependent).

    Example:
        >>> weight_variance("xavier_uniform", (200, 300))
        0.004
        >>> weight_variance("uniform:5", (10, 10)) == 25 / 3
        True
        >>> round(weight_variance("default", (64, 3, 3, 3)), 6)  # 1 / (3 * 27)
        0.012346
    """
    name, opts = _resolve(scheme, options)
    m, n, fan_in, fan_out = _fans(_shape(shape))
    if name in ("xavier_uniform", "xavier_normal"):
        return float(opts["gain"]) ** 2 * 2.0 / (fan_in + fan_out)
    if name == "arcsine":
        return float(opts["gain"]) ** 2 * 2.0 / (m + n)
    if name in ("kaiming_uniform", "kaiming_normal"):
        mode = opts["mode"]
        if mode not in ("fan_in", "fan_out"):
            raise SkewError(f"mode={mode!r} is not valid for {name}; use 'fan_in' or 'fan_out'")
        nonlin, a = opts["nonlinearity"], float(opts["a"])
        if nonlin == "relu":
            gain2 = 2.0
        elif nonlin == "leaky_relu":
            gain2 = 2.0 / (1.0 + a * a)
        else:
            try:
                gain2 = torch.nn.init.calculate_gain(nonlin, a) ** 2
            except ValueError as err:
                raise SkewError(f"{name}: {err}; use e.g. nonlinearity='relu'") from None
        return gain2 / (fan_in if mode == "fan_in" else fan_out)
    if name == "default":
        return 1.0 / (3.0 * fan_in)
    if name == "orthogonal":
        return float(opts["gain"]) ** 2 / max(m, n)
    if name == "sinusoidal":
        mode, gain = opts["mode"], float(opts["gain"])
        if mode not in (None, "fan_in", "fan_out"):
            raise SkewError(f"mode={mode!r} is not valid for sinusoidal; use None, 'fan_in' or 'fan_out'")
        if not _sinusoid_scalable(m, n):  # sinusoidal_ refuses such a weight: no target
            return float("nan")
        if opts.get("fans", "authors") == "authors":  # the authors' released code: n and m
            fan_in, fan_out = n, m
        if mode is None:
            return gain**2 * 2.0 / (fan_in + fan_out)
        return gain**2 / (fan_in if mode == "fan_in" else fan_out)
    if name == "uniform":
        return float(opts["a"]) ** 2 / 3.0
    if name == "idinit":
        tau = float(opts["tau"])
        big_n = m * n
        return tau**2 * m * (1.0 - 1.0 / n) / (big_n - 1) if big_n > 1 else float("nan")
    return float("nan")  # lsuv


def rowsum_variance(scheme: str, shape, **options) -> float:
    """Variance of a neuron's row sum S = Σ_j W[i, j] under ``scheme`` for a weight of ``shape``.

    - i.i.d. schemes (xavier, kaiming, default, arcsine, uniform): by the CLT S ~ N(0, n Var(W)),
      so Var(S) = n · :func:`weight_variance`; e.g. Glorot 2n/(m+n), He 2, default 1/3.
    - ``orthogonal``: gain² · n / max(m, n) (1 when m ≤ n: unit rows uniform on the sphere).
    - ``sinusoidal`` (deterministic): the variance (ddof = 0) of the layer's m row sums. When m < n
      every row sums to 0 (Theorem 3) so it is 0; when m ≥ n the rows i = n, 2n, ... are constant
      with S_i = n a sin(2π i / m) and all others sum to 0.
      NaN for a shape :func:`skew.init.sinusoidal_` refuses (see :func:`weight_variance`).
    - ``idinit``: 0 (every row sums to τ: S is constant, not zero-mean).
    - ``lsuv``: NaN (data dependent).

    Example:
        >>> rowsum_variance("kaiming_normal", (512, 512))
        2.0
        >>> rowsum_variance("sinusoidal", (100, 784))
        0.0
    """
    name, opts = _resolve(scheme, options)
    shape = _shape(shape)
    m, n, _, _ = _fans(shape)
    if name == "orthogonal":
        return float(opts["gain"]) ** 2 * n / max(m, n)
    if name == "sinusoidal":
        if not _sinusoid_scalable(m, n):  # sinusoidal_ refuses such a weight
            return float("nan")
        if m < n:
            return 0.0
        r, v = _sinusoid_rows(m, n)
        if not v > 0.0:
            return float("nan")
        a2 = weight_variance(name, shape, **opts) / v
        return float(a2 * np.var(r))
    if name == "idinit":
        return 0.0
    if name == "lsuv":
        return float("nan")
    return n * weight_variance(name, shape, **opts)
