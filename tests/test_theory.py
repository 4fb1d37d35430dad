"""skew.theory: closed forms against hand-worked values, torch.nn.init samples and Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from skew import theory
from skew.errors import SkewError


def sinusoid_raw(m: int, n: int) -> np.ndarray:
    """docs/init-schemes.md's amplitude-1 sinusoidal matrix, brute force: sin(2π i j/n + 2π i/m), i = 1..m, j = 0..n−1."""
    i = np.arange(1, m + 1)[:, None]
    j = np.arange(n)[None, :]
    return np.sin(2 * np.pi * i * j / n + 2 * np.pi * i / m)


def sinusoid(m: int, n: int, var: float) -> np.ndarray:
    """The sinusoidal matrix scaled to ddof=1 entry variance ``var``."""
    w = sinusoid_raw(m, n)
    return w * np.sqrt(var / w.var(ddof=1))


# ------------------------------------------------------------------ hand-worked values


def test_threshold_hand_worked():
    # α = 0.3, n = 100, θ = 0.1, μ = 0.5, σ = 1:
    # λ = (σ θ √n / |μ|) Φ⁻¹(0.8) = (1 · 0.1 · 10 / 0.5) · 0.8416212335729143 = 1.6832424671458286
    assert theory.threshold(0.3, 100, 0.1, 0.5, 1.0) == pytest.approx(1.6832424671458286, rel=1e-12)
    # only |μ| matters; doubling σ doubles λ; α = Φ(1) − 1/2 makes Φ⁻¹(1/2 + α) = 1: λ = σθ√n/|μ| = 4
    assert theory.threshold(0.3, 100, 0.1, -0.5, 1.0) == pytest.approx(1.6832424671458286, rel=1e-12)
    assert theory.threshold(0.3, 100, 0.1, 0.5, 2.0) == pytest.approx(2 * 1.6832424671458286, rel=1e-12)
    a1 = 0.8413447460685429 - 0.5
    assert theory.threshold(a1, 400, 0.05, 0.25, 1.0) == pytest.approx(4.0, rel=1e-9)


def test_threshold_is_vectorised():
    lam = theory.threshold(np.array([0.1, 0.3]), np.array([[100], [400]]), 0.1, 0.5, 1.0)
    assert lam.shape == (2, 2)
    assert lam[1, 1] == pytest.approx(2 * lam[0, 1])  # √400 / √100
    assert lam[0, 0] < lam[0, 1]  # larger α, larger threshold
    assert isinstance(theory.threshold(0.1, 10, 1.0, 1.0, 1.0), float)


def test_expected_skewed_fraction_hand_worked():
    # σ = |μ|: 2(1 − Φ(Φ⁻¹(1/2 + α))) = 2(1/2 − α) = 1 − 2α
    np.testing.assert_allclose(theory.expected_skewed_fraction([0.1, 0.3, 0.45], 2.0, 2.0), [0.8, 0.4, 0.1])
    # α = Φ(1) − 1/2 and σ/|μ| = 1.96: 2(1 − Φ(1.96)) = 0.0499958 (the two-sided 5% point)
    a1 = 0.8413447460685429 - 0.5
    assert theory.expected_skewed_fraction(a1, -1.0, 1.96) == pytest.approx(0.04999579, abs=1e-7)
    # constant inputs (σ = 0): μS never cancels, every neuron is skewed
    assert theory.expected_skewed_fraction(0.3, 1.0, 0.0) == 1.0


def test_predicted_p_hand_worked_and_degenerate():
    # Φ((0.5 · 2 + 0) / (1 · 1)) = Φ(1) = 0.8413447460685429; with b = −1: Φ(0) = 1/2
    assert theory.predicted_p(2.0, 1.0, 0.5, 1.0) == pytest.approx(0.8413447460685429, rel=1e-12)
    assert theory.predicted_p(2.0, 1.0, 0.5, 1.0, bias=-1.0) == pytest.approx(0.5)
    # symmetric in the sign of μS
    assert theory.predicted_p(-2.0, 1.0, 0.5, 1.0) == pytest.approx(1 - 0.8413447460685429, rel=1e-12)
    # σ‖W‖ = 0: Z = μS + b is constant, p is the indicator of Z > 0 (Z = 0 is not active)
    p = theory.predicted_p([0.0, 0.0, 0.0, 3.0, -3.0], [0.0, 0.0, 0.0, 1.0, 1.0], 0.5, [1.0, 1.0, 1.0, 0.0, 0.0],
                           bias=[0.0, 0.1, -0.1, 0.0, 0.0])
    assert p.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert math.isnan(theory.predicted_p(np.nan, 1.0, 0.5, 1.0))
    assert math.isnan(theory.predicted_p(1.0, np.nan, 0.5, 1.0))


def test_input_moments_hand_worked():
    assert theory.input_moments("gaussian") == (0.0, 1.0)
    mu, sigma = theory.input_moments("relu-gaussian")
    assert mu == pytest.approx(0.3989422804014327)  # 1/√(2π)
    assert sigma**2 == pytest.approx(0.5 - 0.15915494309189535)  # 1/2 − 1/(2π)
    assert theory.input_moments("uniform")[1] ** 2 == pytest.approx(1 / 3)
    assert theory.input_moments("relu-uniform") == pytest.approx((0.25, math.sqrt(5 / 48)))
    assert set(theory.INPUT_LAWS) == {"gaussian", "relu-gaussian", "uniform", "relu-uniform"}


def test_input_moments_match_samples():
    g = torch.Generator().manual_seed(1)
    n = 400_000
    normal = torch.randn(n, generator=g, dtype=torch.float64)
    unif = torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1
    samples = {"gaussian": normal, "relu-gaussian": normal.clamp_min(0),
               "uniform": unif, "relu-uniform": unif.clamp_min(0)}
    for law, x in samples.items():
        mu, sigma = theory.input_moments(law)
        assert abs(float(x.mean()) - mu) < 5 * sigma / math.sqrt(n), law
        assert float(x.std()) == pytest.approx(sigma, rel=0.01), law


def test_skewed_fraction_curve():
    df = theory.skewed_fraction_curve([0.05, 0.2, 0.4])
    assert set(df.law) == {"relu-gaussian", "relu-uniform"}  # zero-mean laws have no curve
    for law, grp in df.groupby("law"):
        mu, sigma = theory.input_moments(law)
        np.testing.assert_allclose(grp.fraction, theory.expected_skewed_fraction(grp.alpha.to_numpy(), mu, sigma))
        assert np.all(np.diff(grp.fraction.to_numpy()) < 0)
    assert len(theory.skewed_fraction_curve(laws="relu-uniform")) == 49


# ------------------------------------------------------------------ variances per scheme


def test_weight_variance_hand_worked():
    assert theory.weight_variance("xavier_uniform", (200, 300)) == pytest.approx(2 / 500)
    assert theory.weight_variance("glorot", (200, 300)) == theory.weight_variance("xavier_normal", (200, 300))
    # conv (64, 3, 3, 3): fan_in = 27, fan_out = 576 (torch's fans)
    assert theory.weight_variance("xavier_normal", (64, 3, 3, 3), gain=2.0) == pytest.approx(4 * 2 / 603)
    assert theory.weight_variance("default", (64, 3, 3, 3)) == pytest.approx(1 / 81)
    assert theory.weight_variance("kaiming_normal", (64, 3, 3, 3)) == pytest.approx(2 / 27)
    assert theory.weight_variance("he", (64, 3, 3, 3), mode="fan_out") == pytest.approx(2 / 576)
    # leaky_relu slope a = 1: gain² = 2 / (1 + 1) = 1 -> 1/20; relu ignores a, as torch's calculate_gain does
    assert theory.weight_variance("kaiming_uniform", (10, 20), a=1.0, nonlinearity="leaky_relu") == pytest.approx(
        1 / 20)
    assert theory.weight_variance("kaiming_uniform", (10, 20), a=1.0) == pytest.approx(2 / 20)
    assert theory.weight_variance("kaiming_uniform", (10, 20), nonlinearity="tanh") == pytest.approx(
        (5 / 3) ** 2 / 20)
    assert theory.weight_variance("orthogonal", (200, 300)) == pytest.approx(1 / 300)
    assert theory.weight_variance("orthogonal", (300, 200), gain=2.0) == pytest.approx(4 / 300)
    assert theory.weight_variance("uniform", (3, 3), a=5.0) == pytest.approx(25 / 3)
    assert theory.weight_variance("arcsine", (100, 300)) == pytest.approx(2 / 400)
    assert theory.weight_variance("sinusoidal", (100, 300)) == pytest.approx(2 / 400)
    assert theory.weight_variance("sinusoidal", (100, 300), mode="fan_in", gain=math.sqrt(2)) == pytest.approx(
        2 / 300)
    assert theory.weight_variance("sinusoidal", (100, 300), mode="fan_out") == pytest.approx(1 / 100)
    # IDI_2 of shape (3, 4): 12 entries, three equal 2: mean 1/2, Σx² = 12, var = (12 − 12/4)/11 = 9/11
    assert theory.weight_variance("idinit", (3, 4), tau=2.0) == pytest.approx(9 / 11)
    assert math.isnan(theory.weight_variance("lsuv", (10, 10)))
    # spelled as for skew.init.apply
    assert theory.weight_variance("uniform:5", (3, 3)) == pytest.approx(25 / 3)
    assert theory.weight_variance("kaiming_normal:mode=fan_out", (64, 3, 3, 3)) == pytest.approx(2 / 576)
    assert theory.rowsum_variance("sinusoidal:mode=fan_in,gain=2", (10, 3)) == pytest.approx(
        theory.rowsum_variance("sinusoidal", (10, 3), mode="fan_in", gain=2.0))


def test_idinit_variance_is_the_matrix_variance():
    for m, n in [(3, 4), (8, 5), (5, 5), (16, 3 * 3 * 3)]:
        w = np.zeros((m, n))
        w[np.arange(m), np.arange(m) % n] = 0.7  # IDI_τ: W[r, j] = τ iff r ≡ j (mod n)
        assert theory.weight_variance("idinit", (m, n), tau=0.7) == pytest.approx(w.var(ddof=1), rel=1e-12)
        assert theory.rowsum_variance("idinit", (m, n)) == pytest.approx(np.var(w.sum(1)), abs=1e-15)


@pytest.mark.parametrize("shape", [(8, 8), (12, 4), (7, 3), (100, 10), (9, 3), (20, 20), (5, 10), (64, 2, 3, 3)])
def test_sinusoidal_rowsum_variance_matches_matrix(shape):
    m, n = shape[0], math.prod(shape[1:])
    var = theory.weight_variance("sinusoidal", shape)
    w = sinusoid(m, n, var)
    assert theory.rowsum_variance("sinusoidal", shape) == pytest.approx(np.var(w.sum(1)), rel=1e-9, abs=1e-12)
    w2 = sinusoid(m, n, theory.weight_variance("sinusoidal", shape, mode="fan_in", gain=math.sqrt(2)))
    assert theory.rowsum_variance("sinusoidal", shape, mode="fan_in", gain=math.sqrt(2)) == pytest.approx(
        np.var(w2.sum(1)), rel=1e-9, abs=1e-12)


def test_sinusoidal_targets_are_nan_exactly_where_sinusoidal_refuses():
    """Every small shape: sinusoidal_ fills it and the targets are its variances, or it refuses and
    both targets are NaN (no variance for a pattern with < 2 entries or zero everywhere)."""
    from skew.init import sinusoidal_

    refused = 0
    for shape in [(m, n) for m in range(1, 7) for n in range(1, 7)] + [(1, 1, 1, 1), (2, 1, 1), (4, 1, 1, 1)]:
        w = torch.empty(shape, dtype=torch.float64)
        target, rowsum = theory.weight_variance("sinusoidal", shape), theory.rowsum_variance("sinusoidal", shape)
        try:
            sinusoidal_(w)
        except SkewError:
            refused += 1
            assert math.isnan(target) and math.isnan(rowsum), shape
            continue
        flat = w.reshape(shape[0], -1)
        assert target == pytest.approx(float(flat.var()), rel=1e-9), shape
        assert rowsum == pytest.approx(float(flat.sum(1).var(unbiased=False)), rel=1e-9, abs=1e-12), shape
    assert refused >= 4  # (1, 1), (1, 2), (2, 1), (2, 2) at least


def test_sinusoidal_rowsum_variance_hand_worked():
    assert theory.rowsum_variance("sinusoidal", (100, 784)) == 0.0  # Theorem 3: m < n, every S = 0
    # (12, 4): rows 4, 8, 12 are constant with S = 4a sin(2πi/12) = 4a(√3/2, −√3/2, 0); other rows 0.
    # Var over 12 rows = (2 · 12a²) / 12 − 0 = 2a², a² = Var_target / v with v the a=1 entry variance.
    a2 = theory.weight_variance("sinusoidal", (12, 4)) / sinusoid_raw(12, 4).var(ddof=1)
    assert theory.rowsum_variance("sinusoidal", (12, 4)) == pytest.approx(2 * a2)


def _sampled(fill, shape, draws=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    ws = []
    for _ in range(draws):
        w = torch.empty(shape, dtype=torch.float64)
        fill(w, g)
        ws.append(w.reshape(shape[0], -1))
    return torch.cat(ws)


_INIT = torch.nn.init
RANDOM = {
    "xavier_uniform": lambda w, g: _INIT.xavier_uniform_(w, generator=g),
    "xavier_normal": lambda w, g: _INIT.xavier_normal_(w, generator=g),
    "kaiming_uniform": lambda w, g: _INIT.kaiming_uniform_(w, generator=g),
    "kaiming_normal": lambda w, g: _INIT.kaiming_normal_(w, generator=g),
    "default": lambda w, g: _INIT.kaiming_uniform_(w, a=math.sqrt(5), generator=g),
    "orthogonal": lambda w, g: _INIT.orthogonal_(w, generator=g),
}


@pytest.mark.parametrize("scheme", sorted(RANDOM))
@pytest.mark.parametrize("shape", [(2000, 96), (2000, 6, 4, 4), (400, 1200)])
def test_random_scheme_variances_match_torch_samples(scheme, shape):
    draws = 5 if shape[0] == 400 else 2
    w = _sampled(RANDOM[scheme], shape, draws=draws)
    rows = w.shape[0]
    s = w.sum(1)
    # Var(W) from ≥ 190k entries: relative SE < 0.5%; Var(S) from `rows` ~Gaussian sums: SE √(2/rows)
    assert float(w.var()) == pytest.approx(theory.weight_variance(scheme, shape), rel=0.03)
    tol = 4.5 * math.sqrt(2 / rows)
    assert float((s**2).mean()) == pytest.approx(theory.rowsum_variance(scheme, shape), rel=tol)


def test_rowsum_variance_closed_forms():
    assert theory.rowsum_variance("glorot", (300, 100)) == pytest.approx(2 * 100 / 400)
    assert theory.rowsum_variance("he", (300, 100)) == pytest.approx(2.0)
    assert theory.rowsum_variance("default", (300, 100)) == pytest.approx(1 / 3)
    assert theory.rowsum_variance("orthogonal", (300, 100)) == pytest.approx(100 / 300)
    assert theory.rowsum_variance("orthogonal", (100, 300)) == pytest.approx(1.0)
    assert theory.rowsum_variance("uniform", (10, 30), a=0.5) == pytest.approx(30 * 0.25 / 3)
    assert math.isnan(theory.rowsum_variance("lsuv", (10, 10)))


def test_default_matches_real_modules():
    torch.manual_seed(3)
    lin = torch.nn.Linear(64, 3000)
    conv = torch.nn.Conv2d(4, 3000, 3)
    for mod in (lin, conv):
        w = mod.weight.detach().double().reshape(3000, -1)
        shape = tuple(mod.weight.shape)
        assert float(w.var()) == pytest.approx(theory.weight_variance("default", shape), rel=0.03)
        assert float((w.sum(1) ** 2).mean()) == pytest.approx(1 / 3, rel=4.5 * math.sqrt(2 / 3000))


# ------------------------------------------------------------------ Monte Carlo: Theorem 1 and its corollary


@pytest.fixture(scope="module")
def first_layer():
    """ReLU(N(0,1)) inputs (4000 × 512) through 2000 Glorot neurons: count-estimated p per neuron."""
    g = torch.Generator().manual_seed(7)
    n, m, samples = 512, 2000, 4000
    w = _INIT.xavier_uniform_(torch.empty(m, n), generator=g)
    x = torch.randn(samples, n, generator=g).clamp_min_(0)
    p = (x @ w.T > 0).double().mean(0).numpy()
    w64 = w.double()
    return {"p": p, "S": w64.sum(1).numpy(), "norm": w64.norm(dim=1).numpy(), "n": n, "m": m,
            "samples": samples, "theta": math.sqrt(theory.weight_variance("xavier_uniform", (m, n)))}


@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_skewed_fraction_matches_monte_carlo(first_layer, alpha):
    mu, sigma = theory.input_moments("relu-gaussian")
    measured = float(np.mean(np.abs(first_layer["p"] - 0.5) > alpha))
    expected = theory.expected_skewed_fraction(alpha, mu, sigma)
    # binomial SE over m = 2000 neurons (≤ 0.0112, 3 SE) + CLT/finite-sample error of p̂ (0.005)
    tol = 3 * math.sqrt(expected * (1 - expected) / first_layer["m"]) + 0.005
    assert abs(measured - expected) < tol, (measured, expected, tol)


def test_predicted_p_matches_empirical_p(first_layer):
    mu, sigma = theory.input_moments("relu-gaussian")
    pred = theory.predicted_p(first_layer["S"], first_layer["norm"], mu, sigma)
    err = np.abs(pred - first_layer["p"])
    # sampling SE of p̂ with 4000 samples ≤ 0.0079 (mean |N(0, SE²)| ≤ 0.0063)
    assert err.mean() < 0.009
    assert err.max() < 0.05
    # a wrong law (uniform-type coefficient of variation) would be visibly off
    mu_u, sigma_u = theory.input_moments("relu-uniform")
    assert np.abs(theory.predicted_p(first_layer["S"], first_layer["norm"], mu_u, sigma_u) - first_layer["p"]
                  ).mean() > 3 * err.mean()


@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_threshold_equivalence_monte_carlo(first_layer, alpha):
    mu, sigma = theory.input_moments("relu-gaussian")
    lam = theory.threshold(alpha, first_layer["n"], first_layer["theta"], mu, sigma)
    by_s = np.abs(first_layer["S"]) > lam
    by_p = np.abs(first_layer["p"] - 0.5) > alpha
    # disagreements only near the boundary (‖W‖ ≠ √n θ exactly, p̂ noise)
    assert np.mean(by_s == by_p) > 0.97


# ------------------------------------------------------------------ error paths


@pytest.mark.parametrize("alpha", [0.0, 0.5, -0.1, 0.7, np.nan, [0.1, 0.6]])
def test_bad_alpha(alpha):
    with pytest.raises(SkewError, match="alpha"):
        theory.threshold(alpha, 10, 1.0, 1.0, 1.0)
    with pytest.raises(SkewError, match="alpha"):
        theory.expected_skewed_fraction(alpha, 1.0, 1.0)


def test_zero_mean_inputs_rejected():
    with pytest.raises(SkewError, match="non-zero input mean"):
        theory.threshold(0.1, 10, 1.0, 0.0, 1.0)
    with pytest.raises(SkewError, match="ReLU"):
        theory.expected_skewed_fraction(0.1, *theory.input_moments("gaussian"))
    with pytest.raises(SkewError, match="non-zero"):
        theory.threshold(0.1, 10, 1.0, [1.0, 0.0], 1.0)


def test_negative_scales_rejected():
    with pytest.raises(SkewError, match="weight_std"):
        theory.threshold(0.1, 10, -1.0, 1.0, 1.0)
    with pytest.raises(SkewError, match="input_std"):
        theory.expected_skewed_fraction(0.1, 1.0, -1.0)
    with pytest.raises(SkewError, match="row_norm"):
        theory.predicted_p(1.0, -1.0, 1.0, 1.0)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(SkewError, match="relu-gaussian.*relu-uniform"):
        theory.input_moments("cauchy")
    with pytest.raises(SkewError, match="xavier_uniform.*sinusoidal"):
        theory.weight_variance("lecun", (3, 3))
    with pytest.raises(SkewError, match="(?i)valid schemes"):
        theory.rowsum_variance("glorot_uniform", (3, 3))
    with pytest.raises(SkewError, match="gain"):
        theory.weight_variance("xavier_uniform", (3, 3), gian=2.0)
    with pytest.raises(SkewError, match="fan_in"):
        theory.weight_variance("sinusoidal", (3, 3), mode="fan")
    with pytest.raises(SkewError, match="fan_out"):
        theory.weight_variance("kaiming_normal", (3, 3), mode="both")
    with pytest.raises(SkewError, match="nonlinearity"):
        theory.weight_variance("kaiming_normal", (3, 3), nonlinearity="swish")


@pytest.mark.parametrize("shape", [(5,), (), (3, 0), "ab", 7])
def test_bad_shapes(shape):
    with pytest.raises(SkewError, match="shape"):
        theory.weight_variance("xavier_uniform", shape)
