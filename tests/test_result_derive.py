"""Report's derivation of its frames (issue 12's fixed cost): the vectorised paths give, bit for bit,
what the per-layer definitions give, on random and adversarial inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import rankdata
from torch import nn

from skew.accumulators import LayerState, pack_units, unpack_units
from skew.analyzer import _nansum, report
from skew.oui import pairwise_oui
from skew.result import (
    _EPS32,
    Report,
    _neuron_arrays,
    _pearson,
    _ranks,
    _stacked_neuron_arrays,
    _unit_oui,
    layer_indices,
)
from skew.weights import _row_stats


def _state(rng, m: int, *, no_input: bool = False, packed=None) -> LayerState:
    n = rng.integers(0, 6, m).astype(np.int64)
    n[rng.random(m) < 0.2] = 0
    pos = np.minimum(rng.integers(0, 6, m), n).astype(np.int64)
    full = rng.random(m) < 0.2
    pos[full] = n[full]  # always on
    mean = rng.standard_normal(m) * 10.0 ** rng.integers(-9, 3, m)
    m2 = np.abs(rng.standard_normal(m)) * 10.0 ** rng.integers(-30, 2, m)
    m2[rng.random(m) < 0.1] = 0.0
    m2[rng.random(m) < 0.05] = -1e-18  # rounding can leave a tiny negative M2
    st = LayerState(n=n, pos=pos, nonfinite=rng.integers(0, 2, m).astype(np.int64), mean=mean, m2=m2,
                    oui_sum=np.zeros(m))
    if not no_input:
        st.in_n, st.in_mean, st.in_m2 = 40, float(rng.standard_normal()), float(abs(rng.standard_normal()) * 40)
    return st


def _weights(rng, m: int, *, site: bool = False) -> dict[str, np.ndarray]:
    fan = int(rng.integers(1, 50))
    nan = np.full(m, np.nan)
    norm = nan if site else np.abs(rng.standard_normal(m)) * 10.0 ** rng.integers(-8, 2, m)
    if not site:
        norm[rng.random(m) < 0.1] = 0.0
    s = nan if site else rng.standard_normal(m)
    bias = nan if site or rng.random() < 0.5 else rng.standard_normal(m)
    return {"neuron": np.arange(m, dtype=np.int64), "fan_in": np.full(m, 0 if site else fan, dtype=np.int64),
            "row_sum": s, "row_sum_scaled": s / np.sqrt(max(fan, 1)), "row_norm": norm, "bias": bias}


@pytest.mark.parametrize("seed", range(6))
def test_stacked_neuron_arrays_equal_the_per_layer_ones_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    sizes = [int(v) for v in rng.integers(0, 40, 7)]
    kinds = ["site" if rng.random() < 0.3 else "layer" for _ in sizes]
    states = [_state(rng, m, no_input=rng.random() < 0.2) for m in sizes]
    weights = [_weights(rng, m, site=k == "site") for m, k in zip(sizes, kinds)]
    eps = [float(rng.choice([_EPS32, np.finfo(np.float16).eps, np.finfo(np.float64).eps])) for _ in sizes]
    names = [f"l{i}" for i in range(len(sizes))]
    w = {c: np.concatenate([x[c] for x in weights]) for c in weights[0]}
    got = _stacked_neuron_arrays(names, states, sizes, w, eps)
    parts = [_neuron_arrays(name, st, x, e) for name, st, x, e in zip(names, states, weights, eps)]
    assert list(got) == list(parts[0])
    for col in got:
        want = np.concatenate([p[col] for p in parts])
        assert got[col].dtype == want.dtype, col
        if want.dtype.kind == "f":
            assert np.array_equal(got[col], want, equal_nan=True), col
            assert np.array_equal(np.signbit(got[col]), np.signbit(want)), col
        else:
            assert np.array_equal(got[col], want), col


def test_report_with_unusual_state_dtypes_takes_the_per_layer_path():
    rng = np.random.default_rng(3)
    st = _state(rng, 5)
    w = pd.DataFrame({"layer": ["a"] * 5, **_weights(rng, 5)})
    rep = Report({"a": st}, w, {"a": {"type": "Linear", "shape": "(5, 3)", "weight_std": 0.1}})
    odd = LayerState(**{**st.__dict__, "mean": st.mean.astype(np.float32), "n": st.n.astype(np.int32)})
    rep32 = Report({"a": odd}, w, {"a": {"type": "Linear", "shape": "(5, 3)", "weight_std": 0.1}})
    want = _neuron_arrays("a", odd, {c: w[c].to_numpy() for c in w.columns if c != "layer"})
    for col in ("p", "std", "mean", "p_gauss", "degenerate"):
        assert np.array_equal(rep32.neurons[col].to_numpy(), want[col], equal_nan=True), col
    assert rep.neurons["n"].tolist() == rep32.neurons["n"].tolist()


def test_weights_in_any_row_order_are_matched_by_layer_and_neuron():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    rep = report(net, [torch.randn(16, 4)])
    shuffled = rep._weights.sample(frac=1.0, random_state=1)
    again = Report(rep._states, shuffled, rep._info, thresholds=rep.thresholds, meta=rep.meta, skipped=rep.skipped)
    pd.testing.assert_frame_equal(again.neurons, rep.neurons, check_exact=True)
    pd.testing.assert_frame_equal(again.layers, rep.layers, check_exact=True)


def test_layer_indices_equal_pandas_groupby_indices():
    rng = np.random.default_rng(0)
    for layout in ("runs", "mixed"):
        names = np.repeat(np.array(["c", "a", "b.q_proj", "d"], dtype=object), [3, 1, 4, 2])
        if layout == "mixed":
            names = names[rng.permutation(len(names))]
        want = pd.Series(names).groupby(names, sort=False).indices
        got = layer_indices(pd.Series(names))
        assert list(got) == list(want)
        for k in want:
            assert got[k].tolist() == want[k].tolist()
    assert layer_indices([]) == {}


@pytest.mark.parametrize("form", ["numpy", "compiled"])
@pytest.mark.parametrize("seed", range(16))
def test_unit_oui_from_packed_bits_equals_the_unpacked_definition(seed, form, monkeypatch):
    import skew._fused as fused

    if form == "numpy":
        monkeypatch.setattr(fused, "_state", {"lib": None})
    elif fused.kernel() is None:
        pytest.skip("the compiled library is not available here (no C compiler)")
    rng = np.random.default_rng(seed)
    samples = int(rng.integers(2, 9))
    ragged = seed % 2 == 1
    width = int(rng.integers(1, 70 if seed < 8 else 3000))  # one word and less, or many 64-bit words
    if seed >= 14:
        width = 64 * int(rng.integers(1, 40))  # whole words: read in place
    rows = [rng.random(int(rng.integers(0, width + 1)) if ragged else width) < rng.random() for _ in range(samples)]
    packed, counts = pack_units(rows)
    if seed == 4:  # stray bits past a sample's count must not be counted
        packed = packed | np.uint8(1)
    st = LayerState(n=np.zeros(1, np.int64), pos=np.zeros(1, np.int64), nonfinite=np.zeros(1, np.int64),
                    mean=np.zeros(1), m2=np.zeros(1), oui_sum=np.zeros(1), unit_patterns=packed, unit_counts=counts)
    want = pairwise_oui(unpack_units(packed, counts), units=counts)
    got = _unit_oui(st)
    assert (np.isnan(got) and np.isnan(want)) or got == want


def test_ranks_and_pearson_equal_scipy_and_numpy_bit_for_bit():
    rng = np.random.default_rng(0)
    for size in (3, 4, 17, 300):
        x = rng.standard_normal(size)
        y = rng.integers(0, 4, size).astype(np.float64)  # many ties
        assert np.array_equal(_ranks(x), rankdata(x)) and np.array_equal(_ranks(y), rankdata(y))
        y[:2] = (0.0, 1.0)  # not constant (_spearman returns NaN before ranking a constant side)
        rx, ry = _ranks(x), _ranks(y)
        assert _pearson(rx, ry) == float(np.corrcoef(rx, ry)[0, 1])
        assert _pearson(x, x) == float(np.corrcoef(x, x)[0, 1])


def test_nansum_equals_pandas_series_sum():
    rng = np.random.default_rng(0)
    for size in (1, 100, 9000, 40000):
        x = rng.standard_normal(size) * 10.0 ** rng.integers(-6, 6, size)
        for nan in (False, True):
            if nan:
                x[rng.integers(0, size, max(1, size // 9))] = np.nan
            assert np.array_equal(_nansum(x), pd.Series(x).sum(), equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_row_stats_of_views_equal_one_float64_copy(dtype, monkeypatch):
    """The eager form (the one without a C compiler): bit-identical to one float64 copy."""
    from skew import _fused

    monkeypatch.setattr(_fused, "_state", {"lib": None})  # kernel() is None for this test only
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(300, 70, generator=gen).to(dtype)
    for rows in (w, w.t(), w[:, ::3], w[:0]):
        s, q = _row_stats(rows)
        full = rows.to(torch.float64).contiguous()  # the rows as one row-major float64 matrix
        assert np.array_equal(s, full.sum(dim=1).numpy()) and np.array_equal(q, torch.linalg.vector_norm(full, dim=1).numpy())


def test_compiled_row_stats_match_exactly_rounded_sums():
    """The compiled kernel (float32 rows widened to float64 exactly, float64 lanes) against math.fsum
    (the exactly rounded sum): within a few float64 roundings of Σ|w|, on rows of every length
    class (vector blocks, a lane block, a scalar tail), strided rows, and cancelling rows."""
    import math

    from skew import _fused

    if not _fused.available():
        pytest.skip("the compiled kernel is not available here (no C compiler)")
    gen = torch.Generator().manual_seed(1)
    for n in (1, 7, 8, 16, 23, 70, 1000):
        w = torch.randn(9, n, generator=gen) * 3
        w[0] = torch.cat([w[0, : n // 2], -w[0, : n // 2].flip(0), w[0, n // 2 * 2 :] * 0])  # cancels to 0
        for rows in (w, torch.randn(9, 2 * n, generator=gen)[:, :n]):  # contiguous and strided rows
            s, q = _fused.row_stats(rows)
            for i, r in enumerate(rows.double().tolist()):
                bound = 4 * n * 2**-53 * math.fsum(abs(v) for v in r)
                assert abs(s[i] - math.fsum(r)) <= bound
                assert q[i] == pytest.approx(math.sqrt(math.fsum(v * v for v in r)), rel=4 * n * 2**-53 + 1e-16)
        assert _fused.row_stats(w.double()) is None  # float64 weights: eager serves them
        assert (_fused.row_stats(w.t()) is None) == (n > 1)  # columns of a matrix: eager (one row: fine)
        assert _fused.row_stats(w)[0][0] == 0.0  # a row of ±pairs (and zeros) sums to exactly 0


def test_degenerate_rule_is_the_one_docs_definitions_states():
    # docs/definitions.md: std_Z <= 8 (eps_acc (|W_i| rms(x) sqrt(n) + |b|) + eps rms(Z_i)), eps_acc = min(eps, eps32);
    # at an activation site std_Z <= 8 eps max(rms(Z_i), rms of the site). Neurons just inside and just outside.
    from skew.result import degenerate_mask

    mu, sigma, norm, n, b, mean = 0.5, 2.0, 3e3, 49.0, -0.25, 4.0  # above the 1e-12 floor for float64 too
    scale = norm * np.hypot(mu, sigma) * np.sqrt(n) + abs(b)
    for eps in (_EPS32, float(np.finfo(np.float64).eps), float(np.finfo(np.float16).eps)):
        eps_acc = min(eps, _EPS32)
        # the bound solves std = 8 (eps_acc scale + eps sqrt(mean^2 + std^2)) for std (a fixed point)
        bound = 8 * eps_acc * scale
        for _ in range(50):
            bound = 8 * (eps_acc * scale + eps * np.hypot(mean, bound))
        std = np.array([bound * (1 - 1e-6), bound * (1 + 1e-6)])
        got = degenerate_mask(np.array([10, 10]), np.full(2, mean), std, np.full(2, norm), np.full(2, n),
                              np.full(2, b), mu, sigma, eps)
        assert got.tolist() == [True, False], eps
    # activation site (no weight row): the larger of the neuron's rms and the site's
    mean = np.array([1.0, 100.0])
    nan = np.full(2, np.nan)
    site = np.sqrt((1.0 + 100.0**2) / 2)  # rms of the site, both neurons with equal counts (std ~ 0)
    for k, ref in ((0, site), (1, 100.0)):
        std = np.array([1e-30, 1e-30])
        std[k] = 8 * _EPS32 * ref * (1 - 1e-6)
        assert degenerate_mask(np.array([5, 5]), mean, std, nan, nan, nan, np.nan, np.nan, _EPS32)[k]
        std[k] = 8 * _EPS32 * ref * (1 + 1e-6)
        assert not degenerate_mask(np.array([5, 5]), mean, std, nan, nan, nan, np.nan, np.nan, _EPS32)[k]


def test_a_tiny_genuine_signal_is_not_degenerate():
    """std_Z ~ 1e-13 is small, not constant, when the neuron's own scale is that small (weights of 1e-13,
    as EfficientNet-B0's deep layers carry at init): p is measured and counted, equal to a brute-force
    count; a zero row with no bias (std exactly 0) stays degenerate. The absolute 1e-12 rule is only the
    fallback where the relative tolerance cannot be computed."""
    from skew.result import DEGENERATE_RTOL, degenerate_mask

    net = torch.nn.Linear(16, 8, bias=False)
    with torch.no_grad():
        net.weight.mul_(1e-12)
        net.weight[7] = 0.0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=g) + 0.5
    rep = report(net, [x], progress=False)
    nf = rep.neurons
    z = (x.double() @ net.weight.double().T)
    assert float(nf["std"].iloc[:7].max()) < 1e-11  # below the old absolute floor
    assert nf["degenerate"].tolist() == [False] * 7 + [True]
    np.testing.assert_array_equal(nf["p"].to_numpy()[:7], (z[:, :7] > 0).double().mean(0).numpy())
    assert np.isfinite(nf["skew"].to_numpy()[:7]).all()
    # the fallback: a NaN tolerance (here a NaN eps) falls back on std <= 1e-12 (|mean| + 1)
    one = np.ones(2)
    got = degenerate_mask(np.array([4, 4]), 0 * one, np.array([0.5 * DEGENERATE_RTOL, 1e-6]), one, one,
                          np.full(2, np.nan), 0.0, 1.0, float("nan"))
    assert got.tolist() == [True, False]


def test_an_infinite_tolerance_does_not_make_every_neuron_degenerate():
    # docs/definitions.md: the 1e-12 rule is the fallback where the tolerance is not finite. An infinite
    # row norm (or input/Z moment) made the tolerance inf, and `std <= 8 * inf` called every neuron
    # degenerate, a std of 1 included; the fallback decides alone there now.
    from skew.result import DEGENERATE_RTOL, degenerate_mask

    two = np.full(2, 2.0)
    got = degenerate_mask(np.array([4, 4]), np.zeros(2), np.array([0.5 * DEGENERATE_RTOL, 1.0]),
                          np.full(2, np.inf), two, np.full(2, np.nan), 0.0, 1.0, _EPS32)
    assert got.tolist() == [True, False]
    # a NaN layer scale (out_proj: input moments unknown) reads the neuron's own rms(Z): 8 (eps_acc + eps) rms
    bound = 8 * 2 * _EPS32 * 1.0  # mean 1, std << 1: rms(Z) = 1 to first order
    got = degenerate_mask(np.array([4, 4]), np.ones(2), np.array([0.9 * bound, 1.1 * bound]), np.ones(2), two,
                          np.full(2, np.nan), np.nan, np.nan, _EPS32)
    assert got.tolist() == [True, False]
