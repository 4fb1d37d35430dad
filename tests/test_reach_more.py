"""skew on the kinds of models people bring: regressions found by trying many architectures
(torchvision, Hugging Face, timm and plain user modules) and checking every number by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import skew
from skew.errors import SkewError


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- half-precision models ---------------------------------------------------------------------
def test_tracker_on_a_bfloat16_model_with_biases():
    """The Tracker's light path read a bfloat16 bias with ``.numpy()``, which numpy cannot hold
    (TypeError); it now gives the same per-layer numbers as ``report`` on the same probe."""
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)).to(torch.bfloat16)
    probe = torch.randn(32, 8).to(torch.bfloat16)
    before = _state(model)
    rows = skew.Tracker(model, probe).measure(0).set_index("layer")
    layers = skew.report(model, [probe]).layers.set_index("layer")
    for col in ("skewed_0.1", "skewed_0.3", "mean_skew", "dead", "always_on", "degenerate"):
        assert rows[col].tolist() == pytest.approx(layers.loc[rows.index, col].tolist(), nan_ok=True), col
    assert _same(before, _state(model))


# ---- LSUV on a batch too small to have a std -----------------------------------------------------
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_lsuv_single_value_output_names_the_real_problem():
    """A one-sample batch and a one-unit layer: the layer's output is a single value, which has no
    std. The error used to blame NaN/Inf values in the batch; it now says what is wrong, and the
    weights are left as they were."""
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    before = _state(model)
    with pytest.raises(SkewError, match=r"'2'.*1 value\(s\).*at least 2") as err:
        skew.init.apply(model, "lsuv", data=torch.randn(1, 4))
    assert "NaN" not in str(err.value)
    assert _same(before, _state(model))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    skew.init.apply(model, "lsuv", data=torch.randn(2, 4))  # two samples are enough
    with pytest.raises(SkewError, match=r"shape \(4, 0\), 0 value\(s\).*select layers with output units"):
        skew.init.apply(nn.Sequential(nn.Linear(3, 0)), "lsuv", data=torch.randn(4, 3))


# ---- the skipped table at activation sites -------------------------------------------------------
def test_activation_the_forward_never_calls_is_reported_as_never_executed():
    """With at="activations" a nonlinearity module the forward never calls (an unused head, an
    auxiliary branch off in eval mode) was listed as "not selected by layers=" although no layers=
    was given; it is "never executed", as a Linear/Conv that never runs is with at="layers"."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.act = nn.Linear(4, 6), nn.ReLU()
            self.aux, self.aux_act, self.other = nn.Linear(6, 2), nn.GELU(), nn.Tanh()

        def forward(self, x):
            return self.act(self.fc(x))

    rep = skew.report(Net(), [torch.randn(16, 4)], at="activations")
    reasons = dict(zip(rep.skipped["module"], rep.skipped["reason"]))
    assert list(rep.layers["layer"]) == ["act"]
    assert reasons["aux_act"] == reasons["other"] == "never executed (the forward pass did not call it)"
    assert reasons["aux"].startswith("not a nonlinearity")
    rep = skew.report(Net(), [torch.randn(16, 4)], at="activations", layers=["act", "aux_act"])
    reasons = dict(zip(rep.skipped["module"], rep.skipped["reason"]))
    assert reasons["aux_act"].startswith("never executed") and reasons["other"] == "not selected by layers="
    with pytest.raises(SkewError, match="none of the 1 selected nonlinearity modules ran.*aux_act"):
        skew.report(Net(), [torch.randn(16, 4)], at="activations", layers="aux_act")


# ---- TorchScript modules -------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("make", ["script", "trace", "inner"])
def test_torchscript_modules_are_refused_with_a_skew_error(make):
    """A scripted or traced model (or one holding a scripted submodule) takes no forward hooks:
    report and the Tracker failed with AttributeError while restoring buffers, apply and
    skew.weights said the model had no Linear layer. Each now refuses it up front, naming the fix,
    and the model is left as it was."""
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(16, 4)
    if make == "script":
        model = torch.jit.script(net)
    elif make == "trace":
        model = torch.jit.trace(net, x)
    else:
        model = nn.Sequential(torch.jit.script(nn.Linear(4, 8)), nn.ReLU(), nn.Linear(8, 2))
    before = _state(model)
    calls = [
        lambda: skew.report(model, [x]),
        lambda: skew.report(model, [x], at="activations"),
        lambda: skew.init.apply(model, "sinusoidal"),
        lambda: skew.weights.neuron_table(model),
        lambda: skew.Tracker(model, x),
    ]
    for call in calls:
        with pytest.raises(SkewError, match="TorchScript module.*pass the eager nn.Module"):
            call()
    assert _same(before, _state(model))
    assert skew.report(torch.fx.symbolic_trace(net), [x]).layers["layer"].tolist() == ["0", "2"]  # fx keeps modules


# ---- activation modules of Hugging Face and timm -------------------------------------------------
def test_every_nonlinearity_of_transformers_and_timm_is_an_activation_site():
    """Hugging Face's ClippedGELUActivation ("gelu_10"), LaplaceActivation, SqrtSoftplusActivation and
    XIELUActivation, timm's HardMish and timm's memory-efficient forms (SwishMe, MishMe, HardSwishMe,
    HardSigmoidMe, HardMishMe) were not sites of at="activations"; every class of
    ``transformers.activations.ACT2CLS`` but the identity ("linear") and every timm activation are."""
    from skew.analyzer import is_activation

    transformers = pytest.importorskip("transformers")
    from transformers.activations import ACT2CLS, ACT2FN

    missed = [k for k in ACT2CLS if k != "linear" and not is_activation(ACT2FN[k])]
    assert missed == [] and not is_activation(ACT2FN["linear"])
    assert transformers is not None
    timm = pytest.importorskip("timm")
    from timm.layers import activations, activations_me, get_act_layer

    for name in ("hard_mish", "gelu", "gelu_tanh", "quick_gelu", "swish", "mish", "hard_swish", "hard_sigmoid"):
        assert is_activation(get_act_layer(name)()), name
    for cls in (activations_me.SwishMe, activations_me.MishMe, activations_me.HardSwishMe,
                activations_me.HardSigmoidMe, activations_me.HardMishMe, activations.HardMish):
        assert is_activation(cls()), cls.__name__
    assert timm is not None

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.act, self.out = nn.Linear(4, 6), ACT2FN["gelu_10"], nn.Linear(6, 2)

        def forward(self, x):
            return self.out(self.act(self.fc(x)))

    x = torch.randn(32, 4)
    rep = skew.report(Net(), [x], at="activations")
    assert rep.layers["layer"].tolist() == ["act"]
    net = Net()
    with torch.no_grad():
        z = net.fc(x)
    rep = skew.report(net, [x], at="activations")
    assert rep.neurons["p"].tolist() == (z > 0).double().mean(0).tolist()


# ---- plots of a report measured at activation sites ----------------------------------------------
@pytest.mark.parametrize("plot", ["plot_rowsum_hist", "plot_skew_vs_rowsum"])
def test_rowsum_plots_of_an_activation_report_say_why(plot):
    """Activation sites have no weight row (row_sum NaN): rowsum_hist raised "ValueError: cannot
    convert float NaN to integer" and skew_vs_rowsum drew an empty plot; both now raise a SkewError
    that says so. The other plots still draw."""
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    rep = skew.report(net, [torch.randn(32, 4)], at="activations")
    with pytest.raises(SkewError, match="no weight rows.*at='layers'"):
        getattr(rep, plot)(layer="1")
    assert rep.plot_activation_states(layer="1") is not None and rep.plot_skew_hist() is not None
    assert getattr(skew.report(net, [torch.randn(32, 4)]), plot)(layer="0") is not None


# ---- the caller's random stream ------------------------------------------------------------------
class _Sampling(nn.Module):
    """A VAE-like model: its forward draws noise in eval mode too."""

    def __init__(self):
        super().__init__()
        self.enc, self.act, self.dec = nn.Linear(4, 6), nn.Tanh(), nn.Linear(3, 4)

    def forward(self, x):
        mu, log_var = self.enc(x).chunk(2, -1)
        return self.dec(self.act(mu + torch.randn_like(mu) * (0.5 * log_var).exp()))


@pytest.mark.parametrize("call", ["report_eval", "report_train", "activations", "lsuv"])
def test_a_forward_that_draws_leaves_the_global_rng_alone(call):
    """docs/experiments.md: "running skew never changes the caller's random state". report in eval
    mode and LSUV ran the user's forward on the global RNG, so a model that samples (VAE, noise
    injection) advanced the caller's stream; both now fork it, as the Tracker and compare did."""
    model, x = _Sampling(), torch.randn(16, 4)
    state = torch.get_rng_state()
    if call == "lsuv":
        skew.init.apply(model, "lsuv", data=x, generator=torch.Generator().manual_seed(0))
    else:
        rep = skew.report(model, [x], mode="train" if call == "report_train" else "eval",
                          at="activations" if call == "activations" else "layers")
        assert len(rep.layers) == (1 if call == "activations" else 2)
    assert torch.equal(state, torch.get_rng_state())
    expected = torch.rand(3)
    torch.set_rng_state(state)
    assert torch.equal(torch.rand(3), expected)


# ---- nn.TransformerEncoder's nested-tensor fast path ------------------------------------------------
def test_default_transformer_encoder_with_a_padding_mask():
    """nn.TransformerEncoder's default enable_nested_tensor=True turns an eval-mode input with a
    src_key_padding_mask into a NestedTensor: report failed inside its attention pre-hook
    (NotImplementedError for aten::slice on NestedTensorCPU). skew now runs the model with the
    attention fast path off (restored after): counts equal a hand count over the real tokens."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True, activation=nn.GELU())
    model = nn.TransformerEncoder(layer, 2).eval()  # enable_nested_tensor=True, as users build it
    x = torch.randn(3, 7, 16)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 4:], pad[2, 2:] = True, True
    kwargs = {"input_fn": lambda b: {"src": b[0], "src_key_padding_mask": b[1]}, "mask_fn": lambda b: ~b[1]}
    before = _state(model)
    rep = skew.report(model, [(x, pad)], **kwargs)
    acts = skew.report(model, [(x, pad)], at="activations", **kwargs)
    assert torch.backends.mha.get_fastpath_enabled() and _same(before, _state(model))
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, a, out, n=n: seen.__setitem__(n, (a[0], out)))
             for n, m in model.named_modules() if n.endswith(("linear1", "activation"))]
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            model(x, src_key_padding_mask=pad)
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
        for h in hooks:
            h.remove()
    real = ~pad
    for i in range(2):
        z = seen[f"layers.{i}.linear1"][1][real]
        got = rep.neurons[rep.neurons["layer"] == f"layers.{i}.linear1"]
        assert got["n"].tolist() == [int(real.sum())] * 32
        assert got["p"].tolist() == (z > 0).double().mean(0).tolist()
        za = seen[f"layers.{i}.activation"][0][real]
        assert acts.neurons.loc[acts.neurons["layer"] == f"layers.{i}.activation", "p"].tolist() == (
            (za > 0).double().mean(0).tolist())
    assert set(rep.layers["mask"]) == {"applied"} and len(rep.layers) == 12
    rows = skew.Tracker(model, (x, pad), input_fn=kwargs["input_fn"]).measure(0)
    assert len(rows) == 12 and torch.backends.mha.get_fastpath_enabled()
