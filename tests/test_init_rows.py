"""A neuron's row is one thing everywhere: init (every scheme), skew.weights and report.

ConvTranspose rows are output channels, Hugging Face Conv1D rows are output features (weight
stored (in, out)), and tied Parameters are initialized and reported once.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import skew
from skew.init import apply, sinusoidal_
from skew.layers import NeuronView, is_layer, neuron_rows, neuron_view, select_units


def _brute_rows(layer: nn.Module) -> torch.Tensor:
    """Every weight feeding output unit c, by explicit indexing (no reshape tricks)."""
    w = layer.weight.detach()
    if isinstance(layer, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        g = layer.groups
        cin_g, cout_g = w.shape[0] // g, w.shape[1]
        rows = []
        for c in range(g * cout_g):
            grp, cc = divmod(c, cout_g)
            rows.append(torch.cat([w[grp * cin_g + i, cc].flatten() for i in range(cin_g)]))
        return torch.stack(rows)
    if hasattr(layer, "nf"):
        return torch.stack([w[:, c] for c in range(w.shape[1])])
    return torch.stack([w[c].flatten() for c in range(w.shape[0])])


class Conv1D(nn.Module):
    """The contract of transformers.pytorch_utils.Conv1D, without importing transformers."""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.nf, self.nx = nf, nx
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return (x.reshape(-1, x.shape[-1]) @ self.weight + self.bias).reshape(*x.shape[:-1], self.nf)


CONV_T = [
    lambda: nn.ConvTranspose1d(6, 10, 3),
    lambda: nn.ConvTranspose1d(6, 10, 3, groups=2),
    lambda: nn.ConvTranspose2d(4, 6, 3),
    lambda: nn.ConvTranspose2d(4, 6, (3, 2), groups=2, stride=2),
    lambda: nn.ConvTranspose3d(6, 9, 2, groups=3),
]


@pytest.mark.parametrize("make", CONV_T + [lambda: Conv1D(7, 5), lambda: nn.Conv2d(4, 6, 3, groups=2)])
def test_neuron_rows_are_every_weight_feeding_one_output_unit(make):
    layer = make()
    assert torch.equal(neuron_rows(layer), _brute_rows(layer))
    view = neuron_view(layer)
    assert (view.m, view.n) == tuple(_brute_rows(layer).shape)
    target = torch.arange(view.m * view.n, dtype=torch.float32).reshape(view.m, view.n)
    before = layer.weight
    view.write(target)  # in place, into the real parameter
    assert layer.weight is before and torch.equal(_brute_rows(layer), target)


def test_conv_transpose_rows_are_output_channels_by_the_forward_pass():
    """Output channel c of a stride-1 ConvTranspose at an interior pixel sums exactly row c's weights."""
    layer = nn.ConvTranspose1d(4, 6, 3, groups=2, bias=False)
    x = torch.ones(1, 4, 9, dtype=torch.float32)
    y = layer(x)[0, :, 4]  # interior position: every kernel tap contributes
    torch.testing.assert_close(y, neuron_rows(layer).sum(dim=1))


@pytest.mark.parametrize("make", CONV_T)
def test_sinusoidal_conv_transpose_rows_cancel(make):
    layer = make()
    apply(layer, "sinusoidal")
    rows = neuron_rows(layer).double()
    m, n = rows.shape
    expected = torch.empty(m, n, dtype=torch.float64)
    sinusoidal_(expected)  # the (m, n) pattern laid along the neuron rows
    torch.testing.assert_close(rows, expected, atol=1e-6, rtol=1e-5)
    if m < n:
        assert float(rows.sum(dim=1).abs().max()) < 1e-5  # Theorem 3 for the real neurons


def test_sinusoidal_conv_transpose_rows_sum_to_zero_where_the_old_layout_did_not():
    layer = nn.ConvTranspose2d(16, 8, 3)  # rows: 8 output channels of 16·9 = 144 weights
    apply(layer, "sinusoidal")
    assert float(neuron_rows(layer).sum(dim=1).abs().max()) < 1e-5
    old = sinusoidal_(torch.empty_like(layer.weight))  # dim 0 (input channels) as rows
    assert float(_brute_rows_from(old, layer).sum(dim=1).abs().max()) > 1e-2


def _brute_rows_from(weight: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    probe = nn.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel_size, groups=layer.groups)
    with torch.no_grad():
        probe.weight.copy_(weight)
    return _brute_rows(probe)


@pytest.mark.parametrize("make", CONV_T)
def test_idinit_and_orthogonal_follow_the_rows(make):
    layer = make()
    apply(layer, "idinit")
    rows = neuron_rows(layer)
    m, n = rows.shape
    r = torch.arange(m)
    expected = torch.zeros(m, n)
    expected[r, r % n] = 1.0
    assert torch.equal(rows, expected)
    apply(layer, "orthogonal", generator=torch.Generator().manual_seed(0))
    rows = neuron_rows(layer).double()
    gram = rows @ rows.T if m <= n else rows.T @ rows
    torch.testing.assert_close(gram, torch.eye(min(m, n), dtype=torch.float64), atol=1e-5, rtol=0)


def test_conv_transpose_kaiming_uses_the_neurons_fan_in():
    layer = nn.ConvTranspose2d(64, 8, 3)  # a neuron's fan-in: 64·9 = 576 (torch's raw reading: 8·9)
    g = torch.Generator().manual_seed(0)
    apply(layer, "kaiming_normal", generator=g)
    assert float(layer.weight.detach().std()) == pytest.approx(math.sqrt(2 / 576), rel=0.05)


@pytest.mark.parametrize("make", CONV_T)
def test_report_row_sums_of_conv_transpose_equal_brute_force(make):
    layer = make()
    dims = layer.weight.dim() - 2
    x = torch.randn(3, layer.in_channels, *([5] * dims))
    rep = skew.report(layer, x)
    brute = _brute_rows(layer).double()
    table = rep.neurons.sort_values("neuron")
    torch.testing.assert_close(torch.tensor(table["row_sum"].to_numpy()), brute.sum(dim=1), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(
        torch.tensor(table["row_norm"].to_numpy()), brute.norm(dim=1), rtol=1e-6, atol=1e-7
    )
    assert (table["fan_in"] == brute.shape[1]).all()


# ---------------------------------------------------------------- Conv1D


def test_conv1d_contract_is_a_layer_without_transformers():
    net = nn.Sequential(Conv1D(6, 4), nn.ReLU(), Conv1D(3, 6))
    assert is_layer(net[0]) and not is_layer(net[1])
    assert [u.name for u in select_units(net)] == ["0", "2"]
    assert [u.name for u in select_units(net, Conv1D)] == ["0", "2"]
    assert [u.name for u in select_units(net, "2")] == ["2"]

    class NotConv1D(nn.Module):  # an nf attribute but a weight of another contract
        def __init__(self):
            super().__init__()
            self.nf = 3
            self.weight = nn.Parameter(torch.zeros(3, 5))

    assert not is_layer(NotConv1D())


@pytest.mark.parametrize("scheme", ["xavier_uniform", "kaiming_normal", "orthogonal", "sinusoidal", "idinit", "arcsine"])
def test_conv1d_gets_exactly_what_the_equivalent_linear_gets(scheme):
    conv1d, linear = Conv1D(12, 20), nn.Linear(20, 12)
    apply(conv1d, scheme, generator=torch.Generator().manual_seed(3))
    apply(linear, scheme, generator=torch.Generator().manual_seed(3))
    assert torch.equal(conv1d.weight.T, linear.weight)
    assert torch.equal(conv1d.bias, linear.bias)
    x = torch.randn(5, 20)
    torch.testing.assert_close(conv1d(x), linear(x))


def test_conv1d_row_sums_and_norms_equal_brute_force():
    net = nn.Sequential(Conv1D(6, 4), nn.ReLU(), Conv1D(3, 6))
    table = skew.weights.neuron_table(net)
    for name, layer in (("0", net[0]), ("2", net[2])):
        sub = table[table.layer == name]
        w = layer.weight.detach().double()
        torch.testing.assert_close(torch.tensor(sub.row_sum.to_numpy()), w.T.sum(1))
        torch.testing.assert_close(torch.tensor(sub.row_norm.to_numpy()), w.T.norm(dim=1))


# ---------------------------------------------------------------- tiny GPT-2 (nothing downloaded)


transformers = pytest.importorskip("transformers")


def _gpt2(lm_head: bool = False):
    import logging

    logging.getLogger("transformers").setLevel(logging.ERROR)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=32)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg) if lm_head else transformers.GPT2Model(cfg)
    return model.eval()


GPT2_LAYERS = [f"h.{i}.{p}" for i in (0, 1) for p in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]


def test_gpt2_blocks_are_selected_and_initialized():
    model = _gpt2()
    assert [u.name for u in select_units(model)] == GPT2_LAYERS
    assert [u.name for u in select_units(model, "*.c_fc")] == ["h.0.mlp.c_fc", "h.1.mlp.c_fc"]
    table = apply(model, "kaiming_normal", generator=torch.Generator().manual_seed(0))
    set_weights = table[(table.action == "set") & (table.parameter == "weight")]
    assert list(set_weights.module) == GPT2_LAYERS
    for name in GPT2_LAYERS:
        layer = model.get_submodule(name)
        fan_in = layer.weight.shape[0]  # stored (in, out): a neuron's fan-in is the in features
        assert float(layer.weight.detach().std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.08), name
        assert torch.all(layer.bias == 0)
    apply(model, "sinusoidal")
    for name in GPT2_LAYERS:
        w = model.get_submodule(name).weight.detach().double()
        rows = w.T  # (out, in)
        if rows.shape[0] < rows.shape[1]:
            assert float(rows.sum(dim=1).abs().max()) < 1e-5, name
        expected = sinusoidal_(torch.empty(rows.shape, dtype=torch.float64))
        torch.testing.assert_close(rows, expected, atol=1e-6, rtol=1e-5)


def test_gpt2_default_is_the_conv1d_constructor_rule():
    model = _gpt2()
    table = apply(model, "default", generator=torch.Generator().manual_seed(0))
    row = table[table.name == "h.0.mlp.c_fc.weight"].iloc[0]
    assert row.action == "set" and "normal_(std=0.02)" in row.reason
    w = model.h[0].mlp.c_fc.weight
    assert float(w.detach().std()) == pytest.approx(0.02, rel=0.1)


def test_gpt2_weights_and_report_rows_equal_brute_force():
    model = _gpt2()
    table = skew.weights.neuron_table(model)
    assert list(dict.fromkeys(table.layer)) == GPT2_LAYERS
    ids = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(0))
    rep = skew.report(model, [{"input_ids": ids}])
    assert list(rep.layers.layer) == GPT2_LAYERS
    for name in GPT2_LAYERS:
        w = model.get_submodule(name).weight.detach().double()
        for frame in (table, rep.neurons):
            sub = frame[frame.layer == name].sort_values("neuron")
            torch.testing.assert_close(torch.tensor(sub.row_sum.to_numpy()), w.T.sum(1), rtol=1e-6, atol=1e-7)
            torch.testing.assert_close(torch.tensor(sub.row_norm.to_numpy()), w.T.norm(dim=1), rtol=1e-6, atol=1e-7)
        sub = rep.neurons[rep.neurons.layer == name]
        assert sub["p"].notna().all()  # measured: one neuron per output feature, every token a sample


def test_tied_lm_head_is_initialized_and_reported_once():
    model = _gpt2(lm_head=True)
    assert model.lm_head.weight is model.transformer.wte.weight
    table = apply(model, "xavier_uniform", generator=torch.Generator().manual_seed(0))
    rows = table[table.name == "transformer.wte.weight"]
    assert len(rows) == 1 and rows.iloc[0].action == "set"
    assert "tied" in rows.iloc[0].reason and "lm_head.weight" in rows.iloc[0].reason
    assert model.lm_head.weight is model.transformer.wte.weight  # still tied
    assert len(table) == len(list(model.named_parameters()))  # one row per parameter
    neurons = skew.weights.neuron_table(model)
    assert neurons.groupby("layer").size()["lm_head"] == 64
    assert len(skew.weights.layer_table(model)) == len(GPT2_LAYERS) + 1


def test_a_weight_shared_by_two_layers_is_set_once_and_listed_once():
    a = nn.Linear(8, 8)
    b = nn.Linear(8, 8)
    b.weight = a.weight
    net = nn.Sequential(a, nn.ReLU(), b)
    table = apply(net, "orthogonal", generator=torch.Generator().manual_seed(0))
    weights = table[table.parameter == "weight"]
    assert len(weights) == 1 and "tied" in weights.iloc[0].reason
    assert set(table[table.parameter == "bias"].action) == {"set"}
    w = a.weight.detach().double()
    torch.testing.assert_close(w @ w.T, torch.eye(8, dtype=torch.float64), atol=1e-5, rtol=0)
    assert list(skew.weights.neuron_table(net).layer.unique()) == ["0"]
    assert list(skew.weights.neuron_table(net, tied="each").layer.unique()) == ["0", "2"]
    rep = skew.report(net, torch.randn(16, 8))
    assert list(rep.layers.layer) == ["0", "2"]  # each tied layer sees its own inputs


def test_neuron_view_of_a_bare_tensor():
    view = NeuronView(torch.zeros(3, 4, 2), "transposed", groups=1)
    assert tuple(view.shape) == (4, 3, 2)
    with pytest.raises(skew.SkewError, match="groups"):
        NeuronView(torch.zeros(3, 4, 2), "transposed", groups=2)


def test_a_tied_weight_set_by_the_second_layer_is_reported_as_set():
    a, b = nn.Linear(8, 8), nn.Linear(8, 8)
    b.weight = a.weight
    net = nn.Sequential(a, nn.ReLU(), b)
    table = apply(net, "idinit", layers="2")
    weights = table[table.parameter == "weight"]
    assert len(weights) == 1
    assert (weights.iloc[0].action, weights.iloc[0].module) == ("set", "2")
    assert torch.equal(a.weight.detach(), torch.eye(8))
    assert table.set_index("name").loc["0.bias", "action"] == "skipped"
