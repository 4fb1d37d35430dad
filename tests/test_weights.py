"""skew.weights: per-neuron and per-layer diagnostics vs brute force and docs/init-schemes.md's structural facts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from skew import theory
from skew.errors import SkewError
from skew.layers import weight_matrix
from skew.weights import PAIR_LIMIT, diagnose, layer_table, neuron_rows, neuron_table

NEURON_COLUMNS = ["layer", "neuron", "fan_in", "row_sum", "row_sum_scaled", "row_norm", "bias"]


def sinusoid(m: int, n: int) -> np.ndarray:
    """docs/init-schemes.md's sinusoidal matrix at Glorot variance, brute force: a·sin(2π i j/n + 2π i/m)."""
    i = np.arange(1, m + 1)[:, None]
    j = np.arange(n)[None, :]
    w = np.sin(2 * np.pi * i * j / n + 2 * np.pi * i / m)
    return w * np.sqrt(2 / (m + n) / w.var(ddof=1))


def linear_with(w: np.ndarray, bias: bool = False) -> nn.Linear:
    """A float32 Linear holding ``w`` (as the init functions would store it)."""
    lin = nn.Linear(w.shape[1], w.shape[0], bias=bias)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
    return lin


def one(df):
    assert len(df) == 1
    return df.iloc[0]


# ------------------------------------------------------------------ sinusoidal structure, found unprompted


@pytest.mark.parametrize("n", [8, 9, 50, 1000])
def test_square_sinusoidal_loses_half_its_rank(n):
    row = one(layer_table(linear_with(sinusoid(n, n))))
    # row n − i = −row i (i = 1..⌈n/2⌉−1), row n is zero, and row n/2 too when n is even
    zeros = 1 + (n % 2 == 0)
    anti = (n - 1) // 2
    assert row.zero_rows == zeros
    assert row.antiparallel_pairs == anti
    assert row.parallel_pairs == 0
    assert row["rank"] == n - zeros - anti  # n/2 − 1 for even n: 499 for a 1000 × 1000 layer
    assert row.constant_rows == 0
    if n == 1000:
        assert row["rank"] == 499


@pytest.mark.parametrize("shape", [(3, 4), (6, 10), (10, 11), (31, 64), (100, 784)])
def test_wide_sinusoidal_rows_cancel(shape):
    m, n = shape
    lin = linear_with(sinusoid(m, n))
    neurons = neuron_table(lin)
    scale = neurons.row_norm.max()
    assert np.abs(neurons.row_sum).max() < 1e-5 * scale  # Theorem 3: S = 0 for every row (float32 storage)
    row = one(layer_table(lin))
    assert row.max_abs_s_over_norm < 1e-5
    assert row.constant_rows == 0


@pytest.mark.parametrize("shape", [(12, 4), (10, 4), (7, 3), (40, 8), (9, 9)])
def test_tall_sinusoidal_has_constant_rows(shape):
    m, n = shape
    w = sinusoid(m, n)
    # brute force: constant rows are i = n, 2n, ... with sin(2πi/m) ≠ 0; S_i = n a sin(2πi/m)
    norms = np.linalg.norm(w, axis=1)
    zero = norms < 1e-9 * norms.max()
    constant = (np.ptp(w, axis=1) < 1e-9 * norms.max()) & ~zero
    i = np.arange(1, m + 1)
    assert np.array_equal(constant, (i % n == 0) & ~zero)
    lin = linear_with(w)
    row = one(layer_table(lin))
    assert row.constant_rows == constant.sum()
    assert row.zero_rows == zero.sum()
    if constant.any():
        assert row.max_abs_s_over_norm == pytest.approx(math.sqrt(n), rel=1e-5)  # |S|/‖W‖ ≤ √n, equality
    s = neuron_table(lin).row_sum.to_numpy()
    np.testing.assert_allclose(s, w.sum(1), atol=1e-5 * norms.max())


def test_sinusoidal_variance_matches_target():
    row = one(layer_table(linear_with(sinusoid(30, 70)), scheme="sinusoidal"))
    assert row.target_var == pytest.approx(2 / 100)
    assert row.var_ratio == pytest.approx(1.0, rel=1e-5)


def _init_fn(name):
    """skew.init's in-place function ``name``; the tests above use local stand-ins and do not need it."""
    init = pytest.importorskip("skew.init")
    fn = getattr(init, name, None)
    if fn is None:
        pytest.skip(f"skew.init.{name} is not exported yet")
    return fn


def test_init_module_sinusoidal_is_diagnosed():
    sinusoidal_ = _init_fn("sinusoidal_")
    lin = nn.Linear(64, 64, bias=False)
    sinusoidal_(lin.weight)
    row = one(layer_table(lin, scheme="sinusoidal"))
    assert (row["rank"], row.zero_rows, row.antiparallel_pairs) == (31, 2, 31)
    assert row.var_ratio == pytest.approx(1.0, rel=1e-5)
    conv = nn.Conv2d(2, 64, 3, bias=False)  # tall: m = 64 ≥ n = 18, rows 18, 36, 54 constant
    sinusoidal_(conv.weight, gain=math.sqrt(2), mode="fan_in")
    row = one(layer_table(conv, scheme="sinusoidal", gain=math.sqrt(2), mode="fan_in"))
    assert (row.constant_rows, row.var_ratio) == (3, pytest.approx(1.0, rel=1e-5))
    s = neuron_table(conv).row_sum.to_numpy()
    assert np.var(s) == pytest.approx(
        theory.rowsum_variance("sinusoidal", (64, 2, 3, 3), gain=math.sqrt(2), mode="fan_in"), rel=1e-5)


def test_init_module_idinit_is_diagnosed():
    idinit_ = _init_fn("idinit_")
    lin = nn.Linear(4, 10, bias=False)
    idinit_(lin.weight, tau=0.5)
    row = one(layer_table(lin, scheme="idinit", tau=0.5))
    # stacked identities: rows r, r + 4, r + 8 coincide -> pairs (0,4),(0,8),(4,8),(1,5),(1,9),(5,9),(2,6),(3,7)
    assert (row["rank"], row.parallel_pairs, row.var_ratio) == (4, 8, pytest.approx(1.0))


# ------------------------------------------------------------------ constructed structure


def test_constructed_matrix_counts():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 8, generator=g, dtype=torch.float64)
    w[1] = 0.0
    w[2] = 3.0 * w[0]  # parallel to row 0
    w[3] = -0.5 * w[0]  # antiparallel to rows 0 and 2
    w[4] = 0.7  # constant
    w[5] = -0.2  # constant, antiparallel to row 4
    lin = nn.Linear(8, 10, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(w)
    row = one(layer_table(lin))
    assert row.zero_rows == 1
    assert row.constant_rows == 2
    assert row.parallel_pairs == 1
    assert row.antiparallel_pairs == 3
    assert row["rank"] == 6  # span{row 0, ones, rows 6..9}
    assert row.max_abs_s_over_norm == pytest.approx(math.sqrt(8))
    assert (row.m, row.n, row["shape"], row.type) == (10, 8, (10, 8), "Linear")


def test_idinit_structure():
    w = np.zeros((6, 3))
    w[np.arange(6), np.arange(6) % 3] = 1.0  # stacked identities: rows r and r + 3 coincide
    row = one(layer_table(linear_with(w), scheme="idinit"))
    assert (row["rank"], row.parallel_pairs, row.antiparallel_pairs, row.zero_rows) == (3, 3, 0, 0)
    assert row.var_ratio == pytest.approx(1.0)


def test_near_parallel_rows_are_not_counted():
    w = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1e-2, 0.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    lin = nn.Linear(3, 3, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(w)
    row = one(layer_table(lin))
    assert (row.parallel_pairs, row.antiparallel_pairs, row["rank"], row.constant_rows) == (0, 0, 3, 0)


def test_huge_layer_skips_pairs_with_a_note():
    lin = nn.Linear(3, PAIR_LIMIT + 1, bias=False)
    row = one(layer_table(lin))
    assert math.isnan(row.parallel_pairs) and math.isnan(row.antiparallel_pairs)
    assert "pairs skipped" in row.note
    assert row["rank"] == 3


# ------------------------------------------------------------------ neuron table vs brute force


def test_neuron_table_linear_hand_worked():
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0, 2.0], [0.0, -3.0, 4.0]]))
        lin.bias.copy_(torch.tensor([0.5, -1.0]))
    df = neuron_table(nn.Sequential(lin, nn.ReLU(), nn.Linear(2, 4, bias=False)))
    assert list(df.columns) == NEURON_COLUMNS
    first = df[df.layer == "0"]
    assert first.row_sum.tolist() == [5.0, 1.0]
    assert first.row_norm.tolist() == [3.0, 5.0]
    assert first.row_sum_scaled.tolist() == pytest.approx([5 / math.sqrt(3), 1 / math.sqrt(3)])
    assert first.bias.tolist() == [0.5, -1.0]
    assert df[df.layer == "2"].bias.isna().all()
    assert df.neuron.tolist() == [0, 1, 0, 1, 2, 3]
    assert df.fan_in.tolist() == [3, 3, 2, 2, 2, 2]
    assert df.row_sum.dtype == np.float64 and df.neuron.dtype == np.int64


@pytest.mark.parametrize(
    "conv, x_shape, centre",
    [
        (nn.Conv1d(3, 5, 3, bias=False), (1, 3, 3), (0,)),
        (nn.Conv2d(4, 6, 3, groups=2, bias=False), (1, 4, 3, 3), (0, 0)),
        (nn.Conv3d(2, 4, (1, 2, 3), bias=False), (1, 2, 1, 2, 3), (0, 0, 0)),
        (nn.ConvTranspose1d(3, 4, 3, bias=False), (1, 3, 5), (3,)),
        (nn.ConvTranspose2d(4, 6, 3, groups=2, bias=False), (1, 4, 5, 5), (3, 3)),
        (nn.ConvTranspose2d(6, 4, 2, groups=2, bias=False), (1, 6, 4, 4), (2, 2)),
    ],
)
def test_conv_row_sums_equal_brute_force(conv, x_shape, centre):
    conv = conv.double()
    df = neuron_table(conv)
    # an all-ones input makes Z = S at a pixel that sees the whole kernel
    z = conv(torch.ones(x_shape, dtype=torch.float64))[0]
    z_centre = z[(slice(None), *centre)].detach().numpy()
    np.testing.assert_allclose(df.row_sum.to_numpy(), z_centre, rtol=1e-12)
    # row norms: ‖W_c‖² is Z's variance under i.i.d. unit inputs; check it by explicit loops instead
    w = conv.weight.detach()
    g = conv.groups
    norms = []
    for c in range(df.shape[0]):
        if isinstance(conv, nn.modules.conv._ConvTransposeNd):
            cout_g = w.shape[1]
            gi, cl = divmod(c, cout_g)
            cin_g = w.shape[0] // g
            block = w[gi * cin_g : (gi + 1) * cin_g, cl]
        else:
            block = w[c]
        norms.append(float(block.pow(2).sum().sqrt()))
    np.testing.assert_allclose(df.row_norm.to_numpy(), norms, rtol=1e-12)
    assert (df.fan_in == neuron_rows(conv).shape[1]).all()


def test_conv_rows_follow_torch_flattening():
    conv = nn.Conv2d(3, 4, (2, 3))
    rows = neuron_rows(conv)
    assert torch.equal(rows, weight_matrix(conv.weight).detach())
    # weight (4, 3, 2, 3): [c, ci, kh, kw] sits at column ci·6 + kh·3 + kw
    assert rows[2, 5] == conv.weight[2, 0, 1, 2]
    assert rows[1, 13] == conv.weight[1, 2, 0, 1]
    rows[0, 0] = 99.0  # a copy, not a view: the model is never touched
    assert conv.weight[0, 0, 0, 0] != 99.0


# ------------------------------------------------------------------ real models


@pytest.mark.slow
def test_resnet18():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = tv.models.resnet18(weights=None)
    neurons, layers = diagnose(net, scheme="kaiming_normal:mode=fan_out")
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(layers) == len(convs) + 1
    assert len(neurons) == sum(c.out_channels for c in convs) + 1000
    fc = layers.set_index("layer").loc["fc"]
    assert (fc.m, fc.n, fc["rank"]) == (1000, 512, 512)
    # torchvision draws every conv with kaiming_normal_(mode="fan_out", nonlinearity="relu")
    conv_rows = layers[layers.type == "Conv2d"]
    assert conv_rows.var_ratio.between(0.8, 1.2).all()
    big = conv_rows[conv_rows["shape"].map(np.prod) > 30_000]
    assert big.var_ratio.between(0.95, 1.05).all()
    assert (layers.zero_rows == 0).all() and (layers.parallel_pairs == 0).all()
    stem = neurons[neurons.layer == "conv1"]
    assert stem.fan_in.iloc[0] == 3 * 7 * 7 and stem.bias.isna().all()


def _encoder(d_model=64):
    layer = nn.TransformerEncoderLayer(d_model=d_model, nhead=4, dim_feedforward=32, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)


def test_transformer_encoder_has_qkv_rows():
    enc = _encoder()
    df = neuron_table(enc)
    for i in range(2):
        attn = enc.layers[i].self_attn
        e = attn.embed_dim
        for k, suffix in enumerate(("q_proj", "k_proj", "v_proj")):
            rows = df[df.layer == f"layers.{i}.self_attn.{suffix}"]
            assert len(rows) == e and (rows.fan_in == e).all()
            block = attn.in_proj_weight.detach().double()[k * e : (k + 1) * e]
            np.testing.assert_allclose(rows.row_sum, block.sum(1).numpy(), rtol=1e-12)
            np.testing.assert_allclose(rows.bias, attn.in_proj_bias.detach().double()[k * e : (k + 1) * e])
    assert "layers.0.self_attn.out_proj" in set(df.layer)
    assert df.layer.nunique() == 2 * (3 + 1 + 2)  # q, k, v, out_proj, linear1, linear2 per block
    layers = layer_table(enc, scheme="default")
    q = layers.set_index("layer").loc["layers.0.self_attn.q_proj"]
    # MHA's own reset is xavier_uniform_ on the packed (3E, E) weight: 2 / (E + 3E)
    assert q.target_var == pytest.approx(2 / (4 * 64))
    assert q.var_ratio == pytest.approx(1.0, rel=0.1)
    assert q.type == "MultiheadAttention" and q["shape"] == (64, 64)


def test_attention_selection():
    enc = _encoder(d_model=16)
    assert set(neuron_table(enc, layers="*.q_proj").layer) == {f"layers.{i}.self_attn.q_proj" for i in range(2)}
    picked = set(neuron_table(enc, layers=["layers.0.self_attn.k_proj", "layers.1.linear1"]).layer)
    assert picked == {"layers.0.self_attn.k_proj", "layers.1.linear1"}
    assert set(layer_table(enc, layers="layers.1.self_attn.v_proj").layer) == {"layers.1.self_attn.v_proj"}
    assert len(set(neuron_table(enc, layers=nn.MultiheadAttention).layer)) == 6
    only_v = neuron_table(enc, layers=lambda name, mod: name.endswith("v_proj"))
    assert set(only_v.layer) == {"layers.0.self_attn.v_proj", "layers.1.self_attn.v_proj"}
    gen = neuron_table(enc, layers=(n for n in ["layers.0.self_attn.q_proj", "layers.0.linear2"]))
    assert set(gen.layer) == {"layers.0.self_attn.q_proj", "layers.0.linear2"}


def test_separate_projection_weights():
    mha = nn.MultiheadAttention(8, 2, kdim=5, vdim=3, bias=False)
    df = neuron_table(mha)
    fans = df.groupby("layer").fan_in.first().to_dict()
    assert fans == {"q_proj": 8, "k_proj": 5, "v_proj": 3, "out_proj": 8}
    np.testing.assert_allclose(df[df.layer == "k_proj"].row_sum, mha.k_proj_weight.detach().double().sum(1))
    assert df[df.layer == "q_proj"].bias.isna().all()
    row = layer_table(mha, layers="k_proj", scheme="default").iloc[0]
    assert row.target_var == pytest.approx(2 / (5 + 8))  # xavier_uniform_ on the (8, 5) k_proj_weight


# ------------------------------------------------------------------ variance against the scheme


def test_var_ratio_for_default_and_glorot():
    torch.manual_seed(1)
    lin = nn.Linear(400, 300)
    assert one(layer_table(lin, scheme="default")).var_ratio == pytest.approx(1.0, rel=0.03)
    nn.init.xavier_uniform_(lin.weight)
    row = one(layer_table(lin, scheme="glorot"))
    assert row.target_var == pytest.approx(2 / 700)
    assert row.var_ratio == pytest.approx(1.0, rel=0.03)
    assert one(layer_table(lin, scheme="kaiming_uniform")).var_ratio == pytest.approx(400 / 700, rel=0.03)
    assert math.isnan(one(layer_table(lin)).target_var)


def test_diagnose_equals_the_two_tables():
    net = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 3))
    neurons, layers = diagnose(net, scheme="default")
    assert neurons.equals(neuron_table(net))
    assert layers.equals(layer_table(net, scheme="default"))


def test_bfloat16_weights():
    lin = linear_with(sinusoid(16, 16)).to(torch.bfloat16)
    row = one(layer_table(lin))
    assert (row["rank"], row.zero_rows, row.antiparallel_pairs) == (7, 2, 7)


# ------------------------------------------------------------------ error paths


def test_errors():
    with pytest.raises(SkewError, match="torch.nn.Module"):
        neuron_table("resnet18")
    with pytest.raises(SkewError, match="did you mean"):
        neuron_table(nn.ModuleDict({"encoder": nn.Linear(2, 2)}), layers=["encodr"])
    with pytest.raises(SkewError, match="no layer selected"):
        layer_table(nn.Sequential(nn.Linear(2, 2)), layers="encoder.*")
    with pytest.raises(SkewError, match="no Linear, Conv"):
        neuron_table(nn.Sequential(nn.ReLU(), nn.LayerNorm(3)))
    with pytest.raises(SkewError, match="(?i)valid schemes"):
        layer_table(nn.Linear(2, 2), scheme="glorot_uniform")
    with pytest.raises(SkewError, match="gain"):
        diagnose(nn.Linear(2, 2), scheme="xavier_normal", gian=2.0)
    with pytest.raises(SkewError, match="need a scheme"):
        layer_table(nn.Linear(2, 2), gain=2.0)
    with pytest.raises(SkewError, match="meta"):
        neuron_table(nn.Linear(2, 2, device="meta"))
    with pytest.raises(SkewError, match="weight matrix"):
        neuron_rows(nn.ReLU())


def test_model_is_not_modified():
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    attrs = {id(m): set(vars(m)) for m in net.modules()}
    diagnose(net, scheme="default")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(set(vars(m)) == attrs[id(m)] for m in net.modules())
    assert all(p.dtype == torch.float32 for p in net.parameters())


# ------------------------------------------------------------------ row pairs: grouped, exact, fast


def _brute_pairs(rows: torch.Tensor) -> tuple[int, int]:
    """Every pair i < j of non-zero rows, cosine by an explicit dot product."""
    rows = rows.double()
    norms = rows.norm(dim=1)
    scale = float(norms.max())
    live = [i for i in range(rows.shape[0]) if norms[i] > math.sqrt(torch.finfo(torch.float32).eps) * scale]
    par = anti = 0
    for a in range(len(live)):
        for b in range(a + 1, len(live)):
            ua = rows[live[a]] / norms[live[a]]
            ub = rows[live[b]] / norms[live[b]]
            cos = float((ua * ub).sum())
            par += cos >= 1 - 1e-6
            anti += cos <= -1 + 1e-6
    return par, anti


def _structured(seed: int, m: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(5, n, generator=g, dtype=torch.float64)
    pick = torch.randint(0, 5, (m,), generator=g)
    scale = torch.rand(m, generator=g, dtype=torch.float64) * 3 + 0.1
    sign = torch.where(torch.rand(m, generator=g) < 0.4, -1.0, 1.0).double()
    rows = base[pick] * (scale * sign)[:, None]
    kind = torch.rand(m, generator=g)
    noise = torch.randn(m, n, generator=g, dtype=torch.float64)
    rows = torch.where((kind < 0.2)[:, None], rows + 1e-5 * noise * rows.norm(dim=1, keepdim=True) / math.sqrt(n), rows)
    rows = torch.where((kind > 0.85)[:, None], noise, rows)  # unrelated rows
    rows[kind > 0.97] = 0.0  # zero rows are left out
    return rows.float()


@pytest.mark.parametrize("seed,m,n", [(0, 40, 7), (1, 60, 100), (2, 33, 300), (3, 50, 2), (4, 25, 64)])
def test_pair_counts_equal_brute_force(seed, m, n):
    rows = _structured(seed, m, n)
    row = one(layer_table(linear_with(rows.numpy())))
    assert (row.parallel_pairs, row.antiparallel_pairs) == _brute_pairs(rows)


def test_pair_counts_on_repeated_and_negated_rows_by_hand():
    w = torch.tensor([[1.0, 2, 3], [2, 4, 6], [-1, -2, -3], [1, 2, 3], [0, 0, 0], [3, 2, 1], [-3, -2, -1]])
    # parallel: (0,1), (0,3), (1,3); antiparallel: (0,2), (1,2), (2,3), (5,6)
    row = one(layer_table(linear_with(w.numpy())))
    assert (row.parallel_pairs, row.antiparallel_pairs) == (3, 4)


def test_4096_identical_rows_of_1024_take_seconds():
    import time

    w = torch.ones(4096, 1024)
    w[::2] *= -1.0  # half negated: 2048·2047 parallel pairs, 2048² antiparallel
    lin = linear_with(w.numpy())
    start = time.perf_counter()
    row = one(layer_table(lin))
    elapsed = time.perf_counter() - start
    assert (row.parallel_pairs, row.antiparallel_pairs) == (2048 * 2047, 2048 * 2048)
    assert elapsed < 30, f"{elapsed:.1f} s"  # minutes before grouping; ~1 s on one core


# ------------------------------------------------------------------ reading changes nothing


def test_reading_a_spectral_normed_model_in_train_mode_leaves_every_buffer_bit_identical():
    net = nn.Sequential(
        torch.nn.utils.parametrizations.spectral_norm(nn.Linear(6, 8)), nn.ReLU(),
        torch.nn.utils.spectral_norm(nn.Linear(8, 4)), nn.BatchNorm1d(4),
    ).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    neuron_table(net)
    layer_table(net, scheme="default")
    diagnose(net)
    after = net.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert net.training and net[0].training


def test_conv_transpose_target_variance_uses_the_neuron_rows():
    import skew.init

    up = nn.ConvTranspose2d(16, 8, 3, groups=2)  # rows (8, 8·9 = 72)
    skew.init.apply(up, "sinusoidal")
    row = one(layer_table(up, scheme="sinusoidal"))
    assert (row.m, row.n) == (8, 72)
    assert row.target_var == pytest.approx(2 / (8 + 72))
    assert row.var_ratio == pytest.approx(1.0, rel=1e-5)
    assert row.max_abs_s_over_norm < 1e-5  # every real neuron's row cancels


@pytest.mark.parametrize("make", [
    lambda: nn.ConvTranspose2d(64, 8, 3),             # reset_parameters reads fan_in = 8·9 off the stored weight
    lambda: nn.ConvTranspose1d(8, 32, 3, groups=2),   # fan_in = (32/2)·3, the neurons' rows are (8/2)·3 long
    lambda: nn.Conv2d(4, 6, 3),
    lambda: nn.Linear(30, 20),
])
def test_default_target_variance_is_what_the_modules_own_reset_draws(make):
    # Monte Carlo: the mean variance of many `default` draws equals target_var (var_ratio -> 1). For a
    # ConvTranspose the target used to follow the neuron rows (fan_in = c_in/g·k), 8x off for the first layer.
    import skew.init

    layer, ratios = make(), []
    for seed in range(40):
        skew.init.apply(layer, "default", generator=torch.Generator().manual_seed(seed))
        ratios.append(one(layer_table(layer, scheme="default")).var_ratio)
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.05)


def test_default_target_variance_of_a_hugging_face_conv1d_is_its_constructors():
    pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D

    import skew.init

    layer = Conv1D(300, 200)  # weight (200, 300): in, out
    skew.init.apply(layer, "default")
    row = one(layer_table(layer, scheme="default"))
    assert row.target_var == pytest.approx(0.02**2)  # Conv1D.__init__: normal_(std=0.02)
    assert row.var_ratio == pytest.approx(1.0, abs=0.03)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("values", [1 << 24, 1000])  # one block, and many blocks of rows
def test_cuda_row_stats_reduce_on_the_device_and_match_the_cpu(values, monkeypatch):
    import skew.weights as weights

    monkeypatch.setattr(weights, "_DEVICE_VALUES", values)
    w = torch.randn(300, 700) * 3 + 0.25
    s_cpu, q_cpu = weights._row_stats(w)
    s_gpu, q_gpu = weights._row_stats(w.cuda())
    np.testing.assert_allclose(s_gpu, s_cpu, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(q_gpu, q_cpu, rtol=1e-12)
    exact = np.array([math.fsum(r) for r in w.double().tolist()])
    np.testing.assert_allclose(s_gpu, exact, rtol=1e-12, atol=1e-10)


def test_row_statistics_left_on_the_device_are_gathered_per_layer(monkeypatch):
    """neuron_table copies every layer's device-side statistics back at once: each must land in its
    own layer (checked on the CPU by making every layer's statistics a tensor, as a GPU's are)."""
    import skew.weights as weights

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3, bias=False), nn.Conv1d(3, 6, 2),
                        nn.Linear(2, 7))
    want = neuron_table(net)
    real = weights._row_stats_lazy

    def as_tensor(rows):
        s, q = real(rows)
        return torch.stack([torch.as_tensor(s), torch.as_tensor(q)])

    monkeypatch.setattr(weights, "_row_stats_lazy", as_tensor)
    pd.testing.assert_frame_equal(neuron_table(net), want, check_exact=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_neuron_table_equals_the_cpu_one():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Linear(8, 5, bias=False), nn.Linear(5, 4))
    want = neuron_table(net)
    got = neuron_table(net.cuda())
    pd.testing.assert_frame_equal(got, want, rtol=1e-12, atol=1e-12)
