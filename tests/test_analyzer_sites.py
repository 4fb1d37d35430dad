"""Where skew measures: at="activations" sites, the authors' pairwise OUI, degenerate neurons, raster centre."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from skew.analyzer import ACTIVATION_TYPES, report
from skew.errors import SkewError
from skew.init import sinusoidal_
from skew.oui import pairwise_oui


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True),
        BasicBlock(6, 6),  # conv-bn-relu-conv-bn-(+x)-relu: one ReLU module called twice
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5), nn.GELU(), nn.Linear(5, 3),
    )
    with torch.no_grad():  # non-trivial running statistics: BN moves the patterns away from the conv's
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.3, 0.3)
    return net.eval()


def authors_records(net: nn.Module, batches) -> dict[str, list[torch.Tensor]]:
    """What the OUI authors record: each nonlinearity's input per call position, kept whole by the test."""
    seen: dict[str, list[torch.Tensor]] = {}
    counter: dict[str, int] = {}
    handles = []
    for name, mod in net.named_modules():
        if isinstance(mod, ACTIVATION_TYPES):
            def pre(m, args, name=name):
                k = counter.get(name, 0)
                counter[name] = k + 1
                seen.setdefault(f"{name}#{k}", []).append(args[0].detach().clone())
            handles.append(mod.register_forward_pre_hook(pre))
    with torch.no_grad():
        for b in batches:
            counter.clear()
            net(b)
    for h in handles:
        h.remove()
    calls = {}
    for key in seen:
        base, k = key.rsplit("#", 1)
        calls[base] = max(calls.get(base, 0), int(k) + 1)
    return {(key if calls[key.rsplit("#", 1)[0]] > 1 else key.rsplit("#", 1)[0]): v for key, v in seen.items()}


def brute_oui(z: torch.Tensor) -> float:
    """docs/oui.md by hand: flattened per-sample patterns, all 28 pairs of the first 8, H clipped at ⌊d/2⌋."""
    pats = (z[:8] > 0).reshape(min(8, z.shape[0]), -1).numpy()
    d = pats.shape[1]
    vals = [min(int((pats[i] != pats[j]).sum()), d // 2) / (d // 2)
            for i in range(len(pats)) for j in range(i + 1, len(pats))]
    return float(np.mean(vals))


def test_activation_sites_match_the_authors_oui_and_brute_force_stats():
    net = small_cnn()
    gen = torch.Generator().manual_seed(3)
    batches = [torch.randn(5, 3, 7, 9, generator=gen) + 0.2 for _ in range(3)]  # 5 + 3 samples feed OUI
    ref = authors_records(net, batches)
    rep = report(net, batches, at="activations")
    assert list(rep.layers["layer"]) == ["2", "3.relu#0", "3.relu#1", "7"]
    assert list(rep.layers["type"]) == ["ReLU", "ReLU", "ReLU", "GELU"]
    assert rep.meta["at"] == "activations" and rep.meta["inputs"] == 15
    lay = rep.layers.set_index("layer")
    for name, zs in ref.items():
        z = torch.cat(zs).double()
        assert lay.loc[name, "oui_pairwise"] == pytest.approx(brute_oui(z), abs=1e-12), name
        # per-site neuron statistics: channel (or feature) = neuron, every position a sample
        rows = z.transpose(0, 1).reshape(z.shape[1], -1).numpy() if z.dim() == 4 else z.T.numpy()
        nf = rep.neurons[rep.neurons["layer"] == name]
        np.testing.assert_array_equal(nf["n"], np.full(rows.shape[0], rows.shape[1]))
        np.testing.assert_array_equal(nf["p"], (rows > 0).mean(1))
        np.testing.assert_allclose(nf["mean"], rows.mean(1), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(nf["std"], rows.std(1), rtol=1e-5)
        # no weight: row sums, bias and predictions are NaN
        assert nf[["row_sum", "bias", "p_pred", "row_norm"]].isna().all().all()
    # the pooled reading is a different number, under its own name
    z = torch.cat(ref["3.relu#1"]).double()
    pooled = pairwise_oui((z.mean((2, 3)) > 0).numpy()[:8])
    assert lay.loc["3.relu#1", "oui_pairwise_pooled"] == pytest.approx(pooled, abs=1e-12)
    assert np.isnan(lay["lambda_0.1"]).all()


def test_layer_sites_use_the_authors_oui_too():
    net = small_cnn()
    batches = [torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(1))]
    outs = []
    h = net[0].register_forward_hook(lambda m, a, o: outs.append(o.detach().clone()))
    with torch.no_grad():
        net(batches[0])
    h.remove()
    rep = report(net, batches)
    lay = rep.layers.set_index("layer")
    assert lay.loc["0", "oui_pairwise"] == pytest.approx(brute_oui(outs[0].double()), abs=1e-12)
    assert lay.loc["0", "oui_pairwise_pooled"] == pytest.approx(
        pairwise_oui((outs[0].double().mean((2, 3)) > 0).numpy()), abs=1e-12)


def test_activation_sites_select_reuse_names_and_leave_the_model_alone():
    net = small_cnn()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rep = report(net, [torch.randn(4, 3, 6, 6)], at="activations", layers="3.*")
    assert list(rep.layers["layer"]) == ["3.relu#0", "3.relu#1"]
    rep = report(net, [torch.randn(4, 3, 6, 6)], at="activations", layers=nn.GELU)
    assert list(rep.layers["layer"]) == ["7"]
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    assert not net._forward_pre_hooks and all(not m._forward_pre_hooks for m in net.modules())
    with pytest.raises(SkewError, match="no nonlinearity module named 'nope'"):
        report(net, [torch.randn(4, 3, 6, 6)], at="activations", layers="nope")
    with pytest.raises(SkewError, match="no nonlinearity module"):
        report(nn.Sequential(nn.Linear(3, 2)), [torch.randn(4, 3)], at="activations")
    with pytest.raises(SkewError, match="at must be one of"):
        report(net, [torch.randn(4, 3, 6, 6)], at="relu")


def test_token_activation_sites_use_feature_as_neuron():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.SiLU(), nn.Linear(6, 2))
    x = torch.randn(3, 5, 4)
    rep = report(net, [x], at="activations")
    z = net[0](x).detach().reshape(-1, 6).double().numpy()
    nf = rep.neurons
    np.testing.assert_array_equal(nf["p"], (z > 0).mean(0))
    assert rep.layers.loc[0, "samples"] == 15
    pats = (net[0](x).detach() > 0).reshape(3, -1).numpy()
    assert rep.layers.loc[0, "oui_pairwise"] == pytest.approx(pairwise_oui(pats), abs=1e-12)


def test_cli_compare_tracker_forward_at():
    from skew.compare import compare
    from skew.tracker import Tracker

    factory = lambda: nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3), nn.Tanh())  # noqa: E731
    cmp = compare(factory, [torch.randn(16, 8)], ["xavier_uniform"], at="activations")
    assert set(cmp.layers["layer"]) == {"1", "3"}
    tr = Tracker(factory(), torch.randn(16, 8), at="activations")
    tr.measure(0)
    assert list(tr.history["layer"]) == ["1", "3"]
    with pytest.raises(SkewError):
        Tracker(factory(), torch.randn(16, 8), at="bogus")


# ------------------------------------------------------------------------------ degenerate neurons
def gray_images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    one = torch.rand(n, 1, 10, 10, generator=g) * 2 - 0.5
    return one.expand(n, 3, 10, 10).contiguous()


def test_filters_that_cancel_exactly_are_degenerate_not_skewed():
    conv = nn.Conv2d(3, 8, 3, bias=False)
    with torch.no_grad():
        sinusoidal_(conv.weight)
    w = conv.weight.double().reshape(8, 3, 9).sum(1)  # per-position channel sums
    cancels = (w.abs().amax(1) < 1e-6).numpy()  # rows i with i not a multiple of 3 cancel (docs/init-schemes.md)
    assert cancels.sum() >= 4 and (~cancels).sum() >= 1
    rep = report(nn.Sequential(conv), [gray_images(16, s) for s in range(2)])
    nf = rep.neurons
    assert (nf["std"][cancels] < 1e-5).all()  # rounding noise, not zero: the old absolute rule missed it
    np.testing.assert_array_equal(nf["degenerate"].to_numpy(), cancels)
    assert nf["skew"][cancels].isna().all()
    assert rep.layers.loc[0, "degenerate"] == cancels.sum()


def test_small_but_real_signals_are_not_degenerate():
    conv = nn.Conv2d(3, 8, 3, bias=False)
    with torch.no_grad():
        sinusoidal_(conv.weight)
    x = gray_images(16)
    x[:, 0] += 1e-3 * torch.randn(16, 10, 10, generator=torch.Generator().manual_seed(5))
    rep = report(nn.Sequential(conv), [x])
    assert not rep.neurons["degenerate"].any()
    tiny = nn.Linear(5, 3)
    with torch.no_grad():
        tiny.weight.mul_(1e-6)
        tiny.bias.zero_()
    rep = report(tiny, [torch.randn(64, 5)])
    assert not rep.neurons["degenerate"].any()  # small weights are a small scale, not rounding


def test_degenerate_at_activation_sites_is_relative_to_the_site():
    conv = nn.Conv2d(3, 8, 3, bias=False)
    with torch.no_grad():
        sinusoidal_(conv.weight)
    net = nn.Sequential(conv, nn.ReLU())
    rep = report(net, [gray_images(16)], at="activations")
    cancels = (conv.weight.double().reshape(8, 3, 9).sum(1).abs().amax(1) < 1e-6).numpy()
    np.testing.assert_array_equal(rep.neurons["degenerate"].to_numpy(), cancels)


# ------------------------------------------------------------------------------ raster centre
def test_conv_raster_shows_the_true_centre():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 4, 1)
    x = torch.zeros(16, 2, 6, 8)
    x[:, :, 3, 4] = torch.randn(16, 2)  # only the centre (6//2, 8//2) carries a signal; borders are 0
    rep = report(nn.Sequential(conv), [x])
    assert rep.sign_positions["0"] == (3, 4)  # flattened P//2 = 24 would be row 3, column 0: the left edge
    z = conv(x).detach()
    np.testing.assert_array_equal(rep.signs["0"], (z[:, :, 3, 4] > 0).numpy())
    assert 0 < rep.signs["0"].mean() < 1  # the left edge would show every channel constant
    ax = rep.plot_activation_states(layer="0")
    assert "position 3, 4" in ax.get_title()
    import matplotlib.pyplot as plt

    plt.close(ax.figure)


def test_cli_at_activations(tmp_path, capsys):
    import pandas as pd

    from skew.cli import main

    out = tmp_path / "rep"
    assert main(["report", "--model", "mlp", "-o", "width=32", "--data", "gaussian", "--batches", "2",
                 "--batch-size", "16", "--at", "activations", "--out", str(out)]) == 0
    layers = pd.read_csv(out / "layers.csv")
    assert list(layers["type"]) == ["ReLU"] * len(layers)
    assert not (out / "rowsum_hist.png").exists() and (out / "activation_states.png").exists()
    out = tmp_path / "cmp"
    assert main(["compare", "--model", "mlp", "-o", "width=32", "--data", "gaussian", "--batches", "1",
                 "--batch-size", "16", "--at", "activations", "--inits", "xavier_uniform", "--out", str(out)]) == 0
    try:
        code = main(["report", "--model", "mlp", "--data", "gaussian", "--at", "relu"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert "--at: invalid choice" in capsys.readouterr().err


def test_half_precision_outputs_are_not_called_degenerate():
    torch.manual_seed(0)
    net = nn.Linear(256, 16).to(torch.bfloat16)
    rep = report(net, [torch.randn(64, 256, dtype=torch.bfloat16)])
    assert not rep.neurons["degenerate"].any()


class Varying(nn.Module):
    """Calls its ReLU once for small batches and three times for large ones (data-dependent reuse)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = nn.ReLU()

    def forward(self, x):
        h = self.act(self.fc(x))
        if x.shape[0] > 4:
            h = self.act(self.fc(h) - 0.1)
            h = self.act(self.fc(h) + 0.1)
        return h


def test_call_positions_that_appear_in_later_batches_get_their_own_sites():
    torch.manual_seed(0)
    net = Varying()
    rep = report(net, [torch.randn(3, 4), torch.randn(6, 4)], at="activations")
    assert list(rep.layers["layer"]) == ["act#0", "act#1", "act#2"]
    assert rep.layers["samples"].tolist() == [9, 6, 6]
    assert rep.layers["calls"].tolist() == [2, 1, 1]


def test_channel_first_activation_layouts():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(3, 5, 3), nn.BatchNorm1d(5), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 8, 2)).eval()
    x = torch.randn(6, 3, 10)
    rep = report(net, [x], at="activations")
    z = net[1](net[0](x)).detach().double()  # (B, C, L): channel = neuron
    np.testing.assert_array_equal(rep.neurons["p"], (z > 0).double().mean((0, 2)).numpy())
    assert rep.layers.loc[0, "oui_pairwise"] == pytest.approx(brute_oui(z), abs=1e-12)
    cnn = small_cnn().to(memory_format=torch.channels_last)
    xs = [torch.randn(8, 3, 6, 5).contiguous(memory_format=torch.channels_last)]
    a = report(cnn, xs, at="activations")
    b = report(small_cnn(), [xs[0].contiguous()], at="activations")
    np.testing.assert_allclose(a.layers["oui_pairwise"], b.layers["oui_pairwise"], rtol=0, atol=1e-12)
    for name in a.signs:
        np.testing.assert_array_equal(a.signs[name], b.signs[name])


def test_layers_can_name_call_positions():
    net = small_cnn()
    x = [torch.randn(4, 3, 6, 6)]
    rep = report(net, x, at="activations", layers=["3.relu#1", "7"])
    assert list(rep.layers["layer"]) == ["3.relu#1", "7"]
    whole = report(net, x, at="activations")
    pd_rows = whole.layers.set_index("layer").loc[["3.relu#1", "7"], "oui_pairwise"].to_numpy()
    np.testing.assert_array_equal(rep.layers["oui_pairwise"].to_numpy(), pd_rows)
    assert list(report(net, x, at="activations", layers="*#0").layers["layer"]) == ["3.relu#0"]
