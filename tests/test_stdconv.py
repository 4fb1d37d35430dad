"""Weight-standardised convolutions: skew reads the weight forward computes with, not the stored one.

timm's ``StdConv2d``/``StdConv2dSame``/``ScaledStdConv2d``/``ScaledStdConv2dSame`` (BiT, NFNets,
ViT-hybrid) standardise their weight inside ``forward``. Before, row sums, norms, p_pred, λ,
weight_std and the weight tables described the stored parameter (resnetv2 stem: |S| up to 0.69 and
norms 0.3 where the conv really uses rows with S ≈ 0 and norm 12.1). The effective weight is checked
here against the tensor ``F.conv2d`` really receives, captured by a spy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.special import ndtr
from torch import nn

import skew.init
from skew.analyzer import report
from skew.layers import (
    effective_note,
    effective_weight,
    neuron_rows,
    register_effective_weight,
    select_units,
)
from skew.tracker import Tracker
from skew.weights import _row_stats, layer_table, neuron_table

std_conv = pytest.importorskip("timm.layers.std_conv")

KINDS = [
    ("StdConv2d", {}),
    ("StdConv2dSame", {}),
    ("ScaledStdConv2d", {"gamma": 1.7}),
    ("ScaledStdConv2dSame", {"gamma": 1.7}),
]


def _conv(kind: str, extra: dict, c_in: int = 3, c_out: int = 6, stride: int = 1) -> nn.Module:
    cls = getattr(std_conv, kind)
    bias = "Scaled" in kind  # timm's defaults: StdConv without bias, ScaledStdConv with one
    return cls(c_in, c_out, 3, stride=stride, bias=bias, **extra)


def _lean(conv: nn.Module, seed: int) -> nn.Module:
    """A stored weight with a large row mean and an uneven gain: raw and effective rows differ a lot."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.05 + 0.3)
        if hasattr(conv, "gain"):
            conv.gain.copy_(torch.rand(conv.gain.shape, generator=g) + 0.5)
        if conv.bias is not None:
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.1)
    return conv


def _captured(conv: nn.Module, monkeypatch, x: torch.Tensor) -> torch.Tensor:
    """The weight argument ``F.conv2d`` receives in ``conv``'s forward."""
    seen = []
    real = F.conv2d

    def spy(inp, weight, *args, **kwargs):
        seen.append(weight.detach().clone())
        return real(inp, weight, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(torch.nn.functional, "conv2d", spy)
        with torch.no_grad():
            conv(x)
    assert len(seen) == 1
    return seen[0]


def _model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        _lean(_conv("StdConv2d", {}), seed), nn.ReLU(),
        _lean(_conv("ScaledStdConv2dSame", {"gamma": 1.7}, 6, 8, stride=2), seed + 1), nn.ReLU(),
        _lean(_conv("StdConv2dSame", {}, 8, 5), seed + 2), nn.ReLU(),
        _lean(_conv("ScaledStdConv2d", {"gamma": 1.7}, 5, 4), seed + 3), nn.ReLU(),
        nn.Conv2d(4, 3, 1), nn.Flatten(), nn.LazyLinear(2),
    )


def _probe(seed: int = 1) -> torch.Tensor:
    return torch.randn(12, 3, 9, 9, generator=torch.Generator().manual_seed(seed)) + 0.4


def _owned(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("kind,extra", KINDS)
def test_rows_are_the_weight_conv2d_receives(kind, extra, monkeypatch):
    conv = _lean(_conv(kind, extra), 4)
    used = _captured(conv, monkeypatch, torch.randn(2, 3, 7, 7))
    assert torch.equal(effective_weight(conv), used)  # the same calls, bit for bit
    assert torch.equal(neuron_rows(conv), used.reshape(6, -1))
    table = neuron_table(conv)
    rows = used.double().reshape(6, -1)
    np.testing.assert_array_equal(table["row_sum"].to_numpy(), rows.sum(1).numpy())
    np.testing.assert_allclose(table["row_norm"].to_numpy(), rows.norm(dim=1).numpy(), rtol=1e-13)
    np.testing.assert_allclose(table["row_sum_scaled"].to_numpy(), rows.sum(1).numpy() / np.sqrt(27), rtol=1e-13)
    assert table["row_sum"].abs().max() < 1e-4  # standardisation removes the row mean
    stored = conv.weight.detach().double().reshape(6, -1)
    assert (stored.sum(1).abs() > 5).all()  # the stored rows lean hard: reading them would be far off


@pytest.mark.parametrize("kind,extra", KINDS)
def test_effective_weight_is_timms_formula(kind, extra):
    conv = _lean(_conv(kind, extra), 6)
    w = conv.weight.detach().double().reshape(6, -1)
    mean = w.mean(1, keepdim=True)
    var = w.var(1, unbiased=False, keepdim=True)  # batch_norm normalises with the biased variance
    eff = (w - mean) / torch.sqrt(var + conv.eps)
    if "Scaled" in kind:
        eff = eff * conv.gain.detach().double().reshape(6, 1) * 1.7 / np.sqrt(27)
    torch.testing.assert_close(effective_weight(conv).double().reshape(6, -1), eff, rtol=1e-5, atol=1e-6)
    assert effective_note(conv).endswith("weight standardisation")


def test_layer_table_describes_the_effective_weight_and_says_so():
    model = _model()
    model(_probe())  # materialise the LazyLinear
    lt = layer_table(model, scheme="kaiming_normal").set_index("layer")
    assert lt.loc["0", "note"] == "effective weight (weight standardisation)"
    assert lt.loc["2", "note"] == "effective weight (scaled weight standardisation)"
    assert lt.loc["8", "note"] == ""  # an ordinary conv: nothing to say
    eff = effective_weight(model[0]).double().reshape(6, -1)
    assert lt.loc["0", "weight_var"] == pytest.approx(float(eff.reshape(-1).var()), rel=1e-12)
    # unit rows of mean 0: Σ w² = 6 · 27 entries, over 6 · 27 − 1 (ddof = 1); eps shrinks it by ~4e-4 here
    assert lt.loc["0", "weight_var"] == pytest.approx(162 / 161, rel=1e-3)
    assert lt.loc["0", "max_abs_s_over_norm"] < 1e-5
    assert lt.loc["0", "rank"] == 6 and lt.loc["0", "constant_rows"] == 0


def test_report_p_pred_lambda_and_weight_std_use_the_effective_weight():
    model = _model()
    x = _probe()
    model(x)
    rep = report(model, [x])
    first = rep.neurons[rep.neurons.layer == "0"]
    eff = effective_weight(model[0]).double().reshape(6, -1)
    s, norm = eff.sum(1).numpy(), eff.norm(dim=1).numpy()
    np.testing.assert_array_equal(first["row_sum"].to_numpy(), s)
    np.testing.assert_allclose(first["row_norm"].to_numpy(), norm, rtol=1e-13)
    x64 = x.double()
    mu, sigma = float(x64.mean()), float(x64.std(unbiased=False))
    np.testing.assert_allclose(first["p_pred"].to_numpy(), ndtr((mu * s + 0.0) / (sigma * norm)), rtol=1e-9)
    layer = rep.layers.set_index("layer").loc["0"]
    assert layer["weight_std"] == pytest.approx(float(eff.reshape(-1).std(unbiased=False)), rel=1e-9)
    lam = layer["lambda_0.1"]
    assert lam == pytest.approx(sigma * layer["weight_std"] * np.sqrt(27) / abs(mu) * 0.2533471031357997, rel=1e-6)
    scaled = rep.neurons[rep.neurons.layer == "6"]  # ScaledStdConv2d with a bias: b enters p_pred
    e6 = effective_weight(model[6]).double().reshape(4, -1)
    b6 = model[6].bias.detach().double().numpy()
    mu6, sd6 = rep.layers.set_index("layer").loc["6", ["input_mean", "input_std"]]
    np.testing.assert_allclose(
        scaled["p_pred"].to_numpy(), ndtr((mu6 * e6.sum(1).numpy() + b6) / (sd6 * e6.norm(dim=1).numpy())), rtol=1e-9
    )


def test_tracker_light_path_and_report_agree_and_nothing_owned_changes():
    model = _model()
    x = _probe()
    model(x)
    before, hooks = _owned(model), _hooks(model)
    model.train()
    tracker = Tracker(model, x, every=1)
    tracker.step(0)
    assert tracker._light  # the light path read these layers
    cols = ["skewed_0.1", "skewed_0.3", "skewed_gauss_0.1", "skewed_gauss_0.3", "mean_skew", "oui_batch",
            "oui_pairwise", "neurons", "dead", "always_on", "degenerate"]
    direct = report(model, [x]).layers.set_index("layer")[cols]
    got = tracker.history.set_index("layer")[cols]
    pd.testing.assert_frame_equal(got, direct.loc[got.index], check_dtype=False, check_names=False)
    neuron_table(model)
    layer_table(model)
    after = _owned(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert _hooks(model) == hooks and model.training
    assert all(p.grad is None for p in model.parameters())


def test_tracker_weight_change_is_that_of_the_effective_weight():
    model = _model()
    x = _probe()
    model(x)
    tracker = Tracker(model, x, every=1)
    tracker.step(0)
    w0 = effective_weight(model[0]).double()
    with torch.no_grad():
        model[0].weight.add_(0.7)  # a shift of every stored entry: standardisation removes it
        model[8].weight.mul_(2.0)
    tracker.step(1)
    change = tracker.history[tracker.history.step == 1].set_index("layer")["weight_change"]
    w1 = effective_weight(model[0]).double()
    assert change["0"] == pytest.approx(float((w1 - w0).norm() / w0.norm()), rel=1e-6, abs=1e-9)
    assert change["0"] < 1e-4
    assert change["8"] == pytest.approx(1.0)


def test_init_apply_writes_the_stored_weight_and_the_effective_one_stays_standardised():
    model = _model()
    model(_probe())
    table = skew.init.apply(model, "sinusoidal")
    assert (table[table.parameter == "weight"].action == "set").all()
    stored = model[0].weight.detach().double().reshape(6, -1)
    rows = neuron_table(model, "0")
    # the stored rows are the scheme's; the rows forward uses are their standardisation (S ≈ 0 anyway)
    assert rows["row_sum"].abs().max() < 1e-4
    eff = effective_weight(model[0]).double().reshape(6, -1)
    centred = stored - stored.mean(1, keepdim=True)
    torch.testing.assert_close(eff, centred / torch.sqrt(centred.pow(2).mean(1, keepdim=True) + 1e-6),
                               rtol=1e-4, atol=1e-5)
    torch.manual_seed(0)
    skew.init.apply(model, "kaiming_normal")  # any scheme: still written, still read through forward
    assert neuron_table(model, "2")["row_norm"].to_numpy() == pytest.approx(
        effective_weight(model[2]).double().reshape(8, -1).norm(dim=1).numpy(), rel=1e-12)


def test_ordinary_conv_rows_are_unchanged_bit_for_bit():
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 7, 3)
    assert effective_weight(conv) is conv.weight and effective_note(conv) is None
    unit = select_units(conv)[0]
    assert unit.effective is conv.weight and unit.note is None
    table = neuron_table(conv)
    s, q = _row_stats(conv.weight.detach().reshape(7, -1))
    np.testing.assert_array_equal(table["row_sum"].to_numpy(), s)
    np.testing.assert_array_equal(table["row_norm"].to_numpy(), q)
    assert layer_table(conv)["note"].iloc[0] == ""


def test_a_registered_user_class_is_read_through_its_function():
    class Flipped(nn.Conv2d):  # forward uses −weight
        def forward(self, x):
            return self._conv_forward(x, -self.weight, self.bias)

    torch.manual_seed(1)
    conv = Flipped(2, 3, 3)
    raw = neuron_table(conv)["row_sum"].to_numpy()
    register_effective_weight(Flipped, lambda m: -m.weight, "negated")
    try:
        np.testing.assert_array_equal(neuron_table(conv)["row_sum"].to_numpy(), -raw)
        assert layer_table(conv)["note"].iloc[0] == "effective weight (negated)"
        register_effective_weight(Flipped, lambda m: m.weight[:1], "wrong shape")
        with pytest.raises(Exception, match="shape"):
            neuron_table(conv)
    finally:
        register_effective_weight(Flipped, None)
    np.testing.assert_array_equal(neuron_table(conv)["row_sum"].to_numpy(), raw)


def test_lsuv_leaves_a_weight_standardised_layer_orthogonal_and_says_why():
    """Rescaling a StdConv2d's stored weight changes nothing its forward computes until eps dominates:
    LSUV used to shrink it ~5 times (std 2e-4) and report success. Such layers stay orthogonal,
    unscaled, with the reason; the plain layers around them are still rescaled to unit output std."""
    timm_std = pytest.importorskip("timm.layers.std_conv")
    import skew

    torch.manual_seed(0)
    net = nn.Sequential(timm_std.StdConv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(),
                        nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    x = torch.randn(16, 3, 8, 8) + 0.5
    table = skew.init.apply(net, "lsuv", data=x)
    why = table.set_index("name").loc["0.weight", "reason"]
    assert "not rescaled" in why and "weight standardisation" in why
    w = net[0].weight.detach().reshape(8, -1)
    assert torch.allclose(w @ w.T, torch.eye(8), atol=1e-5)  # orthonormal rows, as orthogonal_ left them
    with torch.no_grad():
        out = net[:3](x)
    assert float(out.std()) == pytest.approx(1.0, abs=0.1)  # the next plain conv was rescaled
    assert "rescaled" in table.set_index("name").loc["2.weight", "reason"]


def test_skew_plot_of_a_weight_standardised_layer_says_it_draws_the_effective_weight(tmp_path, monkeypatch, capsys):
    # `skew plot --init sinusoidal --model timm:resnetv2_50x1_bit` drew the standardised rows (values ±1.4)
    # under the title "sinusoidal weight values", with nothing saying they are not what the scheme wrote
    from skew.cli import main

    (tmp_path / "stdnet.py").write_text(
        "import torch.nn as nn\n"
        "from timm.layers.std_conv import StdConv2d\n"
        "def build():\n"
        "    return nn.Sequential(StdConv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["plot", "--init", "sinusoidal", "--model", "stdnet:build", "--out", "a.png"]) == 0
    out = capsys.readouterr().out
    assert "note: '0' is a StdConv2d" in out and "weight standardisation" in out and "not the stored" in out
    assert main(["plot", "--init", "sinusoidal", "--model", "stdnet:build", "--layer", "2", "--out", "b.png"]) == 0
    assert "note:" not in capsys.readouterr().out  # an ordinary conv: its stored weight, nothing to say


def test_effective_weight_and_note_name_what_is_no_layer():
    from skew.errors import SkewError
    from skew.layers import effective_note, effective_weight

    for fn in (effective_weight, effective_note):
        with pytest.raises(SkewError, match=f"{fn.__name__} needs a torch.nn.Module.*got Tensor"):
            fn(torch.zeros(2, 2))  # was: None, silently
