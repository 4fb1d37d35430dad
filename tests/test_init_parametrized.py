"""init.apply on re-parametrized layers: the effective weight follows the scheme, or a clear refusal.

Before, apply wrote into the computed ``weight`` of a ``weight_norm``/``spectral_norm``/parametrize
layer (a temporary), changed nothing, and still reported "set".
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from skew.errors import SkewError
from skew.init import apply, sinusoidal_
from skew.layers import neuron_rows


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("dim", [0, 1])
def test_weight_norm_parametrization_gets_the_sinusoidal_weight(dim):
    net = nn.Sequential(parametrizations.weight_norm(nn.Linear(16, 6), dim=dim), nn.ReLU(), nn.Linear(6, 2))
    table = apply(net, "sinusoidal")
    w = net[0].weight.detach().double()
    torch.testing.assert_close(w, sinusoidal_(torch.empty(6, 16, dtype=torch.float64)), atol=1e-6, rtol=1e-5)
    assert float(w.sum(dim=1).abs().max()) < 1e-5  # rows cancel through the parametrization
    rows = table[table.module == "0"]
    names = set(rows.name)
    assert {"0.parametrizations.weight.original0", "0.parametrizations.weight.original1", "0.bias"} <= names
    assert (rows.action == "set").all() and rows[rows.parameter == "weight"].reason.str.contains("_WeightNorm").all()
    assert len(table) == len(list(net.named_parameters()))


def test_weight_norm_conv_transpose_rows_are_output_channels():
    layer = parametrizations.weight_norm(nn.ConvTranspose2d(12, 4, 3))
    apply(layer, "sinusoidal")
    assert float(neuron_rows(layer).sum(dim=1).abs().max()) < 1e-5


@pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
def test_old_weight_norm_hook_sets_g_and_v():
    layer = torch.nn.utils.weight_norm(nn.Linear(10, 4))
    table = apply(layer, "sinusoidal")
    expected = sinusoidal_(torch.empty(4, 10))
    torch.testing.assert_close(layer.weight.detach(), expected, atol=1e-6, rtol=1e-5)
    out = layer(torch.eye(10))  # the hook recomputes weight from weight_g, weight_v at every forward
    torch.testing.assert_close(out.T.detach(), expected, atol=1e-6, rtol=1e-5)
    assert set(table[table.action == "set"].name) == {"weight_g", "weight_v", "bias"}


def test_default_through_weight_norm_draws_like_reset_parameters():
    torch.manual_seed(5)
    ref = nn.Linear(7, 3)
    layer = parametrizations.weight_norm(nn.Linear(7, 3))
    torch.manual_seed(5)
    ref.reset_parameters()
    torch.manual_seed(5)
    apply(layer, "default")
    torch.testing.assert_close(layer.weight.detach(), ref.weight.detach(), atol=1e-6, rtol=1e-5)
    assert torch.equal(layer.bias, ref.bias)


class _Symmetric(nn.Module):  # no right_inverse: its originals cannot be solved for
    def forward(self, x):
        return x.triu() + x.triu(1).T


def _symmetric():
    layer = nn.Linear(8, 8)
    parametrize.register_parametrization(layer, "weight", _Symmetric())
    return layer


def _pruned():
    from torch.nn.utils import prune

    layer = nn.Linear(8, 8)
    prune.random_unstructured(layer, "weight", amount=0.5)
    return layer


REFUSED = {
    "spectral_norm": ("spectral", lambda: parametrizations.spectral_norm(nn.Linear(8, 8))),
    "old_spectral_norm": ("spectral", lambda: torch.nn.utils.spectral_norm(nn.Linear(8, 8))),
    "no_right_inverse": ("right_inverse", _symmetric),
    "prune": ("not a parameter", _pruned),
}


@pytest.mark.parametrize("case", list(REFUSED))
@pytest.mark.parametrize("scheme", ["sinusoidal", "kaiming_normal", "default"])
def test_what_cannot_be_set_is_refused_and_nothing_changes(case, scheme):
    kind, make = REFUSED[case]
    layer = make()
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), layer).train()
    before = _state(net)
    with pytest.raises(SkewError, match=kind):
        apply(net, scheme, generator=torch.Generator().manual_seed(0))
    assert _same(before, _state(net))  # buffers (spectral_norm's u, v) included, bit for bit


def test_a_parametrization_that_cannot_reproduce_the_target_is_refused():
    # weight_norm cannot represent a zero row (g·v/‖v‖ is 0/0): the square 8×8 sinusoidal has two.
    net = nn.Sequential(nn.Linear(8, 8), parametrizations.weight_norm(nn.Linear(8, 8)))
    before = _state(net)
    with pytest.raises(SkewError, match="does not reproduce"):
        apply(net, "sinusoidal")
    assert _same(before, _state(net))


def test_orthogonal_parametrization_takes_an_orthogonal_scheme():
    layer = parametrizations.orthogonal(nn.Linear(6, 6))
    apply(layer, "orthogonal", generator=torch.Generator().manual_seed(0))
    w = layer.weight.detach().double()
    torch.testing.assert_close(w @ w.T, torch.eye(6, dtype=torch.float64), atol=1e-5, rtol=0)


def test_lsuv_through_a_parametrization_is_refused():
    net = nn.Sequential(parametrizations.weight_norm(nn.Linear(4, 4)))
    with pytest.raises(SkewError, match="LSUV"):
        apply(net, "lsuv", data=torch.randn(8, 4))


def test_parametrized_attention_projection_is_refused():
    mha = nn.MultiheadAttention(8, 2)
    parametrizations.weight_norm(mha, "in_proj_weight")
    before = _state(mha)
    with pytest.raises(SkewError, match="q/k/v"):
        apply(mha, "xavier_uniform")
    assert _same(before, _state(mha))
