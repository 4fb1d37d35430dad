"""skew.init's tensor-level initializers and registry: hand-worked values, structure, variances."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy import stats

from skew.errors import SkewError
from skew.init import (
    aliases,
    arcsine_,
    get_scheme,
    idinit_,
    idiz_,
    schemes,
    sinusoidal_,
    sinusoidal_variance,
)

SQ3 = math.sqrt(3)


def _unit_pattern(m: int, n: int) -> list[list[float]]:
    """The a = 1 sinusoidal matrix straight from the formula in docs/init-schemes.md, with math.sin."""
    return [
        [math.sin(2 * math.pi * i * j / n + 2 * math.pi * i / m) for j in range(n)] for i in range(1, m + 1)
    ]


def _ddof1_var(rows: list[list[float]]) -> float:
    flat = [x for r in rows for x in r]
    mean = sum(flat) / len(flat)
    return sum((x - mean) ** 2 for x in flat) / (len(flat) - 1)


# ---------------------------------------------------------------- sinusoidal: values worked by hand


def test_sinusoidal_2x3_by_hand_glorot_amplitude():
    # rows i = 1, 2 (phases π and 2π): sin(φ), sin(2πi/3 + φ), sin(4πi/3 + φ) = 0, -√3/2, √3/2 for both.
    # Mean 0, Σw² = 4 · 3/4 = 3, v = 3/5; a = √(2 / (v · (3 + 2))) = √(2/3), so entries ±√3/2·√(2/3) = ±1/√2.
    w = sinusoidal_(torch.empty(2, 3, dtype=torch.float64))
    h = 1 / math.sqrt(2)
    expected = torch.tensor([[0.0, -h, h], [0.0, -h, h]], dtype=torch.float64)
    torch.testing.assert_close(w, expected, atol=1e-12, rtol=0)


def test_sinusoidal_2x3_by_hand_fan_in_amplitude():
    # mode="fan_in", gain=√2: a = √2 / √(v · n) = √2 / √(0.6 · 3); entries ±(√3/2)·a = ±√(5/6).
    w = sinusoidal_(torch.empty(2, 3, dtype=torch.float64), gain=math.sqrt(2), mode="fan_in")
    h = math.sqrt(5 / 6)
    expected = torch.tensor([[0.0, -h, h], [0.0, -h, h]], dtype=torch.float64)
    torch.testing.assert_close(w, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("mode", [None, "fan_in", "fan_out"])
@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (5, 5), (2, 7)])
def test_sinusoidal_matches_formula_with_math_sin(shape, mode):
    m, n = shape
    unit = _unit_pattern(m, n)
    v = _ddof1_var(unit)
    gain = 1.3
    if mode is None:
        a = gain * math.sqrt(2 / (v * (n + m)))  # Linear: fan_in = n, fan_out = m
    else:
        a = gain / math.sqrt(v * (n if mode == "fan_in" else m))
    w = sinusoidal_(torch.empty(m, n, dtype=torch.float64), gain=gain, mode=mode)
    torch.testing.assert_close(w, a * torch.tensor(unit, dtype=torch.float64), atol=1e-12, rtol=0)


def test_sinusoidal_float64_accurate_to_exactly_reduced_angles():
    # Reference angles reduced exactly with fractions before math.sin: accurate to ~1e-16.
    m, n = 37, 53
    ref = [
        [math.sin(2 * math.pi * float((Fraction(i * j, n) + Fraction(i, m)) % 1)) for j in range(n)]
        for i in range(1, m + 1)
    ]
    w = sinusoidal_(torch.empty(m, n, dtype=torch.float64), gain=1.0, mode="fan_in")
    a = 1 / math.sqrt(sinusoidal_variance(m, n) * n)
    assert (w / a - torch.tensor(ref, dtype=torch.float64)).abs().max() < 1e-13


@pytest.mark.parametrize("shape", [(1, 2), (1, 3), (2, 2), (2, 4), (3, 1), (5, 5), (7, 3), (10, 10), (12, 4),
                                   (64, 200), (100, 200), (37, 53)])
def test_sinusoidal_variance_closed_form_matches_brute_force(shape):
    m, n = shape
    i = np.arange(1, m + 1)[:, None]
    j = np.arange(n)[None, :]
    brute = np.var(np.sin(2 * np.pi * i * j / n + 2 * np.pi * i / m), ddof=1)
    assert sinusoidal_variance(m, n) == pytest.approx(brute, rel=1e-12, abs=1e-15)


# -------------------------------------------------------- sinusoidal: structure (docs/init-schemes.md)


@pytest.mark.parametrize(
    "shape",
    [(1, 3), (2, 3), (3, 4), (5, 7), (10, 11), (63, 64), (64, 65), (100, 300), (255, 256), (1, 100),
     (99, 100), (8, 3, 3, 3), (16, 8, 5)],
)
def test_theorem3_rows_cancel_when_m_less_than_n(shape):
    w = sinusoidal_(torch.empty(shape))
    mat = w.reshape(shape[0], -1).double()
    assert mat.shape[0] < mat.shape[1]
    row_sums = mat.sum(dim=1).abs()
    scale = mat.abs().sum(dim=1)
    assert torch.all(row_sums <= 1e-5 * scale)


@pytest.mark.parametrize("n", [10, 64, 100])
def test_square_layer_loses_half_its_rank(n):
    w = sinusoidal_(torch.empty(n, n, dtype=torch.float64))
    assert int(torch.linalg.matrix_rank(w)) == n // 2 - 1
    w32 = sinusoidal_(torch.empty(n, n))
    assert int(torch.linalg.matrix_rank(w32)) == n // 2 - 1
    # rows n/2 and n (1-based) are exactly zero: degenerate neurons
    assert torch.all(w32[n // 2 - 1] == 0) and torch.all(w32[n - 1] == 0)
    # row n - i = -row i
    for i in range(1, n // 2):
        torch.testing.assert_close(w[n - i - 1], -w[i - 1], atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(12, 4), (9, 3), (20, 5), (7, 7)])
def test_rows_at_multiples_of_n_are_constant_when_m_at_least_n(shape):
    m, n = shape
    w = sinusoidal_(torch.empty(m, n))
    for i in range(n, m + 1, n):
        row = w[i - 1]
        assert torch.all(row == row[0])
        # and |S| = n·|a·sin(2πi/m)|: the largest possible for that row's norm
        assert float(row.sum().abs()) == pytest.approx(math.sqrt(n) * float(row.norm()), rel=1e-5)
    # rows whose frequency is not a multiple of n/2 oscillate
    assert all(float(w[r - 1].std()) > 0 for r in range(1, m + 1) if (2 * r) % n)


def test_conv_weight_is_the_row_major_flattened_matrix():
    conv = torch.empty(6, 2, 3, 3, dtype=torch.float64)
    sinusoidal_(conv, mode="fan_in")
    flat = sinusoidal_(torch.empty(6, 18, dtype=torch.float64), mode="fan_in")
    assert torch.equal(conv.reshape(6, 18), flat)  # same fan_in: same amplitude, bit for bit
    # explicit index check: W[o, c, kh, kw] uses column j = c·9 + kh·3 + kw, row i = o + 1
    a = 1 / math.sqrt(sinusoidal_variance(6, 18) * 18)
    for o, c, kh, kw in [(0, 0, 0, 1), (2, 1, 2, 0), (5, 1, 1, 2), (3, 0, 2, 2)]:
        i, j = o + 1, c * 9 + kh * 3 + kw
        assert float(conv[o, c, kh, kw]) == pytest.approx(
            a * math.sin(2 * math.pi * i * j / 18 + 2 * math.pi * i / 6), abs=1e-12
        )


def test_conv_default_is_the_authors_amplitude_and_fans_torch_matches_xavier():
    # The authors' released initializer: a² = 2 / (v (n + m)), n = c_in·k·k = 18, m = c_out = 6.
    conv = sinusoidal_(torch.empty(6, 2, 3, 3, dtype=torch.float64))
    assert float(conv.var()) == pytest.approx(2 / (18 + 6), rel=1e-12)
    flat = sinusoidal_(torch.empty(6, 18, dtype=torch.float64))
    assert torch.equal(conv.reshape(6, 18), flat)  # same (m, n): same amplitude, bit for bit
    # fans="torch": torch's fan_out = c_out·k·k = 54, so sinusoidal and xavier get the same variance.
    torch_fans = sinusoidal_(torch.empty(6, 2, 3, 3, dtype=torch.float64), fans="torch")
    assert float(torch_fans.var()) == pytest.approx(2 / (18 + 54), rel=1e-12)
    ratio = math.sqrt((18 + 6) / (18 + 54))
    torch.testing.assert_close(torch_fans.reshape(6, 18), flat * ratio, atol=1e-12, rtol=0)


def _formula_amplitude(shape, gain, mode, fans, groups=1):
    """docs/init-schemes.md by hand: v from the explicit a = 1 matrix (ddof = 1), fans per convention."""
    m = shape[0]
    n = math.prod(shape[1:])
    i = torch.arange(1, m + 1, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    v = float(torch.sin(2 * math.pi * i * j / n + 2 * math.pi * i / m).var())
    if fans == "authors":
        fan_in, fan_out = n, m
    else:
        receptive = math.prod(shape[2:])
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    if mode is None:
        return gain * math.sqrt(2 / (v * (fan_in + fan_out)))
    return gain / math.sqrt(v * (fan_in if mode == "fan_in" else fan_out))


@pytest.mark.parametrize(
    "layer",
    [
        lambda: torch.nn.Linear(48, 20),
        lambda: torch.nn.Linear(10, 30),
        lambda: torch.nn.Conv1d(6, 12, 5),
        lambda: torch.nn.Conv2d(8, 16, 3),
        lambda: torch.nn.Conv2d(8, 16, 3, groups=4),  # grouped: n = c_in/groups · k·k = 18
        lambda: torch.nn.Conv2d(12, 12, (3, 1), groups=12),  # depthwise: n = 3
    ],
)
@pytest.mark.parametrize(
    "gain,mode,fans",
    [(1.0, None, "authors"), (1.0, None, "torch"), (math.sqrt(2), "fan_in", "authors"), (0.7, "fan_out", "torch")],
)
def test_sinusoidal_amplitude_against_the_formula_on_layer_shapes(layer, gain, mode, fans):
    module = layer()
    w = module.weight.detach().to(torch.float64)
    sinusoidal_(w, gain=gain, mode=mode, fans=fans)
    a = _formula_amplitude(tuple(w.shape), gain, mode, fans)
    m, n = w.shape[0], math.prod(w.shape[1:])
    i = torch.arange(1, m + 1, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    expected = a * torch.sin(2 * math.pi * i * j / n + 2 * math.pi * i / m)
    torch.testing.assert_close(w.reshape(m, n), expected, atol=1e-12, rtol=1e-9)
    # the same, through the model-level apply and the spelled scheme
    from skew.init import apply

    spelled = f"sinusoidal:gain={gain!r},fans={fans}" + (f",mode={mode}" if mode else "")
    apply(module, spelled)
    torch.testing.assert_close(module.weight.detach().double().reshape(m, n), expected, atol=1e-6, rtol=1e-5)


def test_grouped_conv_default_amplitude_uses_the_group_row_length():
    # Conv2d(8, 16, 3, groups=4): weight (16, 2, 3, 3), n = 18 (not c_in·k·k = 72), m = 16.
    w = sinusoidal_(torch.empty(16, 2, 3, 3, dtype=torch.float64))
    assert float(w.var()) == pytest.approx(2 / (18 + 16), rel=1e-12)


def test_sinusoidal_is_bit_for_bit_deterministic_and_cast_from_float64():
    a = sinusoidal_(torch.empty(97, 301))
    b = sinusoidal_(torch.empty(97, 301))
    assert torch.equal(a, b)
    assert torch.equal(a, sinusoidal_(torch.empty(97, 301, dtype=torch.float64)).float())
    assert torch.equal(
        sinusoidal_(torch.empty(97, 301, dtype=torch.bfloat16)),
        sinusoidal_(torch.empty(97, 301, dtype=torch.float64)).bfloat16(),
    )
    # a non-contiguous target gets the same values (written back through the view)
    base = torch.zeros(301, 97)
    sinusoidal_(base.t())
    assert torch.equal(base.t(), a)


def test_sinusoidal_writes_through_row_block_views():
    packed = torch.zeros(3 * 8, 8)
    sinusoidal_(packed[8:16])
    assert torch.equal(packed[8:16], sinusoidal_(torch.empty(8, 8)))
    assert torch.all(packed[:8] == 0) and torch.all(packed[16:] == 0)


def test_sinusoidal_leaves_autograd_alone():
    p = torch.nn.Parameter(torch.empty(4, 6))
    out = sinusoidal_(p)
    assert out is p and p.grad_fn is None and p.requires_grad


# ---------------------------------------------------------------- IDInit and IDIZ


@pytest.mark.parametrize(
    "shape,expected",
    [
        ((3, 5), [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]]),  # m < n: [I, 0]
        ((3, 3), [[1, 0, 0], [0, 1, 0], [0, 0, 1]]),  # m = n: I
        ((5, 2), [[1, 0], [0, 1], [1, 0], [0, 1], [1, 0]]),  # m > n: stacked identities
    ],
)
def test_idinit_patterns(shape, expected):
    w = idinit_(torch.full(shape, 7.0), tau=0.5)
    assert torch.equal(w, 0.5 * torch.tensor(expected, dtype=torch.float32))


def test_idinit_conv_patch_maintain():
    w = idinit_(torch.empty(2, 2, 3, 3))  # (2, 18): W[0, 0] and W[1, 1]
    expected = torch.zeros(2, 2, 3, 3)
    expected[0, 0, 0, 0] = 1.0
    expected[1, 0, 0, 1] = 1.0
    assert torch.equal(w, expected)
    w = idinit_(torch.empty(4, 2, 1, 1))  # 1x1 conv, m > n: stacked identities on the channels
    assert torch.equal(w[:, :, 0, 0], torch.tensor([[1.0, 0], [0, 1], [1, 0], [0, 1]]))


def test_idinit_preserves_identity_of_a_square_layer():
    x = torch.randn(10, 6)
    assert torch.equal(x @ idinit_(torch.empty(6, 6)).T, x)


def test_idiz_patterns():
    w = idiz_(torch.empty(3, 4), eps=1.0)
    assert torch.equal(w, torch.tensor([[1.0, -1, 0, 0], [0, 1, -1, 0], [0, 0, 1, -1]]))
    w = idiz_(torch.empty(3, 2), eps=1.0)  # wraps: row 1 has +ε at column 1, -ε at column 0
    assert torch.equal(w, torch.tensor([[1.0, -1], [-1, 1], [1, -1]]))
    w = idiz_(torch.empty(5, 1))  # n = 1: the two entries coincide and cancel
    assert torch.all(w == 0)
    w = idiz_(torch.empty(16, 8, 3))
    mat = w.reshape(16, -1)
    assert torch.all((mat != 0).sum(dim=1) == 2)
    assert float(mat.abs().max()) == pytest.approx(1e-6)
    assert torch.all(mat.sum(dim=1).abs() < 1e-12)


# ---------------------------------------------------------------- arcsine


def test_arcsine_distribution_variance_and_bound():
    g = torch.Generator().manual_seed(1)
    w = arcsine_(torch.empty(512, 256, dtype=torch.float64), gain=1.5, generator=g)
    amp = 1.5 * math.sqrt(4 / 768)
    assert float(w.abs().max()) <= amp
    # Var = A²/2 = gain²·2/(m+n); the relative s.e. of the sample variance is √(1/(2N)) ≈ 0.14%: allow 1%.
    assert float(w.var()) == pytest.approx(1.5**2 * 2 / 768, rel=0.01)
    # arcsine law on [-A, A]: F(w) = 1 - arccos(w/A)/π
    sample = (w.flatten()[:20000] / amp).clamp(-1, 1).numpy()
    assert stats.kstest(sample, lambda x: 1 - np.arccos(x) / np.pi).pvalue > 1e-3


def test_arcsine_generator_reproducibility():
    a = arcsine_(torch.empty(30, 40), generator=torch.Generator().manual_seed(7))
    b = arcsine_(torch.empty(30, 40), generator=torch.Generator().manual_seed(7))
    c = arcsine_(torch.empty(30, 40), generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ---------------------------------------------------------------- random schemes: variance and Var(S)

# (scheme, Var(W) from torch's formula, Var(S): docs/definitions.md's CLT values); shape (m, n) = (1000, 250).
M, N = 1000, 250
RANDOM_CASES = [
    ("xavier_uniform", 2 / (M + N), 2 * N / (M + N)),
    ("xavier_normal", 2 / (M + N), 2 * N / (M + N)),
    ("glorot", 2 / (M + N), 2 * N / (M + N)),
    ("kaiming_uniform", 2 / N, 2.0),
    ("kaiming_normal", 2 / N, 2.0),
    ("he", 2 / N, 2.0),
    ("arcsine", 2 / (M + N), 2 * N / (M + N)),
    ("uniform", 1 / 3, N / 3),
    ("uniform:0.1", 0.01 / 3, N * 0.01 / 3),
    ("orthogonal", 1 / M, N / max(M, N)),
]


@pytest.mark.parametrize("name,var_w,var_s", RANDOM_CASES)
def test_random_scheme_variance_and_rowsum_variance(name, var_w, var_s):
    # 8 draws: 2M entries (Var(W) s.e. < 0.2%: tolerance 2%) and 8000 row sums (Var(S) s.e. ≈ √(2/8000)
    # ≈ 1.6%: tolerance 7%).
    scheme = get_scheme(name)
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([scheme.init_weight(torch.empty(M, N, dtype=torch.float64), g) for _ in range(8)])
    assert float(draws.var()) == pytest.approx(var_w, rel=0.02)
    s = draws.sum(dim=2).flatten()
    assert float(s.pow(2).mean()) == pytest.approx(var_s, rel=0.07)


def test_orthogonal_tall_rowsum_energy_is_exact():
    # With orthonormal columns (m ≥ n), Σ_i S_i² = ‖W·1‖² = n exactly, so mean S² = n/m.
    w = get_scheme("orthogonal").init_weight(torch.empty(300, 120, dtype=torch.float64))
    assert float(w.sum(dim=1).pow(2).mean()) == pytest.approx(120 / 300, rel=1e-10)


@pytest.mark.parametrize(
    "name,torch_fn",
    [
        ("xavier_uniform", lambda t, g: torch.nn.init.xavier_uniform_(t, generator=g)),
        ("xavier_normal", lambda t, g: torch.nn.init.xavier_normal_(t, generator=g)),
        ("he", lambda t, g: torch.nn.init.kaiming_normal_(t, nonlinearity="relu", generator=g)),
        ("kaiming_normal", lambda t, g: torch.nn.init.kaiming_normal_(t, nonlinearity="relu", generator=g)),
        ("orthogonal", lambda t, g: torch.nn.init.orthogonal_(t, generator=g)),
        ("uniform:5", lambda t, g: torch.nn.init.uniform_(t, -5, 5, generator=g)),
    ],
)
def test_torch_schemes_are_torch_functions(name, torch_fn):
    ours = get_scheme(name).init_weight(torch.empty(20, 30), torch.Generator().manual_seed(3))
    theirs = torch_fn(torch.empty(20, 30), torch.Generator().manual_seed(3))
    assert torch.equal(ours, theirs)


# ---------------------------------------------------------------- registry


def test_schemes_and_aliases():
    assert schemes() == [
        "default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal",
        "lsuv", "sinusoidal", "idinit", "arcsine", "uniform",
    ]
    assert schemes(aliases=True)[len(schemes()):] == ["glorot", "he"]
    assert aliases() == {"glorot": "xavier_uniform", "he": "kaiming_normal"}
    assert get_scheme("He").options["nonlinearity"] == "relu"
    assert get_scheme("kaiming_normal").options == {"mode": "fan_in", "nonlinearity": "relu", "a": 0.0}


def test_spelled_options():
    assert get_scheme("uniform:5").options == {"a": 5.0}
    assert get_scheme("uniform:a=5").label == "uniform:a=5"
    assert get_scheme("uniform").label == "uniform"
    s = get_scheme("sinusoidal:mode=fan_in,gain=1.4142")
    assert s.options == {"gain": 1.4142, "mode": "fan_in", "fans": "authors"}
    w = s.init_weight(torch.empty(40, 60, dtype=torch.float64))
    assert float(w.var()) == pytest.approx(1.4142**2 / 60, rel=1e-10)
    assert get_scheme("lsuv:tol=0.05,max_iter=3").options == {"tol": 0.05, "max_iter": 3}
    assert get_scheme("idinit", tau=2).init_weight(torch.empty(2, 2)).diag().tolist() == [2.0, 2.0]
    assert get_scheme(get_scheme("uniform:2"), a=3).options == {"a": 3.0}


@pytest.mark.parametrize(
    "spec,words",
    [
        ("sinusodial", ["unknown init scheme", "did you mean 'sinusoidal'", "xavier_uniform", "idinit"]),
        ("nonsense", ["unknown init scheme", "Valid schemes", "glorot->xavier_uniform"]),
        ("uniform:abc", ["not a finite float"]),
        ("uniform:-1", ["must be positive"]),
        ("uniform:b=2", ["no option b", "a"]),
        ("sinusoidal:mode=fan_middle", ["mode", "'fan_in'", "'fan_out'"]),
        ("kaiming_normal:3", ["no main option", "mode, nonlinearity, a"]),
        ("lsuv:max_iter=2.5", ["not a finite int"]),
        ("orthogonal:gain=inf", ["not a finite float"]),
    ],
)
def test_registry_errors_name_problem_and_fix(spec, words):
    with pytest.raises(SkewError) as err:
        get_scheme(spec)
    for w in words:
        assert w in str(err.value)


def test_registry_rejects_non_string_and_default_has_no_tensor_rule():
    with pytest.raises(SkewError, match="scheme must be a name"):
        get_scheme(3)
    with pytest.raises(SkewError, match="reset_parameters"):
        get_scheme("default").init_weight(torch.empty(3, 3))


# ---------------------------------------------------------------- error paths of the functions


@pytest.mark.parametrize("fn", [sinusoidal_, idinit_, idiz_, arcsine_])
def test_one_dimensional_tensors_are_refused(fn):
    with pytest.raises(SkewError, match=r"at least 2 dimensions.*shape \(5,\)"):
        fn(torch.empty(5))


@pytest.mark.parametrize("gain", [0, -1.0, float("nan"), float("inf"), "1", True, None])
@pytest.mark.parametrize("fn", [sinusoidal_, arcsine_])
def test_bad_gain(fn, gain):
    with pytest.raises(SkewError, match="gain"):
        fn(torch.empty(3, 4), gain=gain)


def test_bad_mode_lists_valid_modes():
    with pytest.raises(SkewError, match="'fan_in', 'fan_out'"):
        sinusoidal_(torch.empty(3, 4), mode="fan_avg")


def test_other_bad_arguments():
    with pytest.raises(SkewError, match="torch.Tensor"):
        sinusoidal_(np.zeros((3, 4)))
    with pytest.raises(SkewError, match="tau"):
        idinit_(torch.empty(3, 3), tau=float("nan"))
    with pytest.raises(SkewError, match="eps"):
        idiz_(torch.empty(3, 3), eps="small")
    with pytest.raises(SkewError, match="fewer than 2 entries"):
        sinusoidal_(torch.empty(1, 1))
    with pytest.raises(SkewError, match="zero everywhere"):
        sinusoidal_(torch.empty(1, 2))  # sin(πj + 2π) = 0 for j = 0, 1
    empty = torch.empty(0, 4)
    assert sinusoidal_(empty) is empty


def test_arcsine_conv_variance_uses_the_matrix_view():
    # (c_out, c_in, k, k) = (32, 16, 3, 3): m = 32, n = 144, Var = 2 / (m + n) (docs/init-schemes.md), not torch's fans.
    g = torch.Generator().manual_seed(3)
    w = torch.stack([arcsine_(torch.empty(32, 16, 3, 3, dtype=torch.float64), generator=g) for _ in range(20)])
    assert float(w.var()) == pytest.approx(2 / (32 + 144), rel=0.02)
    assert float(w.abs().max()) <= math.sqrt(4 / (32 + 144))


# ---------------------------------------------------------------- aliases and option strings


def test_aliases_follow_each_papers_own_law():
    assert get_scheme("glorot") == get_scheme("xavier_uniform")
    assert get_scheme("he") == get_scheme("kaiming_normal")
    assert "torch.nn.init.kaiming_normal_" in get_scheme("he").reference
    assert "torch.nn.init.xavier_uniform_" in get_scheme("glorot").reference
    # the same generator gives the same draws as torch's own kaiming_normal_ (a normal, not uniform, law)
    a = get_scheme("he").init_weight(torch.empty(200, 100), torch.Generator().manual_seed(0))
    b = torch.nn.init.kaiming_normal_(torch.empty(200, 100), nonlinearity="relu", generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert float(a.abs().max()) > math.sqrt(6 / 100)  # beyond kaiming_uniform's bound: a normal tail


@pytest.mark.parametrize(
    "text,kwargs",
    [
        ("uniform:5,a=1", {}),
        ("uniform:a=1,5", {}),
        ("sinusoidal:gain=1,gain=2", {}),
        ("sinusoidal:2,gain=2", {}),
        ("sinusoidal:fans=torch,fans=authors", {}),
        ("kaiming_normal:mode=fan_in,mode=fan_out", {}),
        ("idinit:1,tau=2", {}),
        ("arcsine:2, gain=2", {}),
        ("xavier_normal:gain=1,gain=1", {}),  # even equal values: given twice is a mistake
        ("uniform:5", {"a": 1.0}),
        ("sinusoidal:mode=fan_in", {"mode": "fan_out"}),
    ],
)
def test_an_option_given_twice_is_an_error(text, kwargs):
    with pytest.raises(SkewError, match="given twice"):
        get_scheme(text, **kwargs)


def test_every_scheme_with_a_main_option_refuses_a_duplicate():
    from skew.init.registry import _ENTRIES

    for name, entry in _ENTRIES.items():
        for key in entry.options:
            value = "fan_in" if key == "mode" else ("torch" if key == "fans" else "relu" if key == "nonlinearity" else "1")
            with pytest.raises(SkewError, match="given twice"):
                get_scheme(f"{name}:{key}={value},{key}={value}")
            if entry.primary == key:
                with pytest.raises(SkewError, match="given twice"):
                    get_scheme(f"{name}:{value},{key}={value}")


def test_spelled_sinusoidal_options_reach_the_cli_parser():
    from skew.cli import _scheme_arg

    assert _scheme_arg("sinusoidal:fans=torch") == "sinusoidal:fans=torch"
    assert get_scheme(_scheme_arg("sinusoidal:mode=fan_in,gain=1.4142")).options["mode"] == "fan_in"
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="given twice"):
        _scheme_arg("uniform:5,a=1")
    with pytest.raises(argparse.ArgumentTypeError, match="fans"):
        _scheme_arg("sinusoidal:fans=keras")


def test_as_built_is_named_where_schemes_are_listed():
    with pytest.raises(SkewError, match="as_built"):
        get_scheme("as_bilt")
    with pytest.raises(SkewError, match="constructor"):
        get_scheme("as_built")


@pytest.mark.parametrize(
    "spelled,expected",
    [
        ("sinusoidal", 2 / (72 + 16)),  # the authors' rule: n = c_in·k·k = 72, m = c_out = 16
        ("sinusoidal:fans=torch", 2 / (72 + 144)),  # torch's fan_out = c_out·k·k
        ("sinusoidal:mode=fan_in,gain=1.4142135623730951", 2 / 72),
        ("sinusoidal:mode=fan_out", 1 / 16),
        ("sinusoidal:mode=fan_out,fans=torch", 1 / 144),
        ("arcsine", 2 / (72 + 16)),
    ],
)
def test_theory_target_variance_follows_the_same_conventions(spelled, expected):
    from skew import theory

    assert theory.weight_variance(spelled, (16, 8, 3, 3)) == pytest.approx(expected, rel=1e-12)
    scheme = get_scheme(spelled)
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([scheme.init_weight(torch.empty(16, 8, 3, 3, dtype=torch.float64), g) for _ in range(40)])
    rel = 1e-9 if scheme.name == "sinusoidal" else 0.03
    assert float(draws[0].var() if scheme.name == "sinusoidal" else draws.var()) == pytest.approx(expected, rel=rel)
