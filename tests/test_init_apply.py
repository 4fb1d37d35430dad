"""skew.init.apply on whole models: coverage, reproducibility, LSUV, layer selection, every error path."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from skew.errors import SkewError
from skew.init import Scheme, apply, sinusoidal_
from skew.layers import select_layers


def _mlp(bias: bool = True) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(12, 40, bias=bias), nn.ReLU(), nn.Linear(40, 30, bias=bias), nn.ReLU(),
        nn.Linear(30, 5, bias=bias),
    )


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _mha_modules(model: nn.Module) -> list[tuple[str, nn.MultiheadAttention]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]


def _check_coverage(model: nn.Module, table) -> None:
    """Every layer weight and bias set, nothing analyzable skipped, every skip explained."""
    layer_names = {n for n, _ in select_layers(model)}
    block_names = {f"{n}.{s}" for n, _ in _mha_modules(model) for s in ("q_proj", "k_proj", "v_proj")}
    set_rows = table[table.action == "set"]
    assert set(set_rows.module) == layer_names | block_names
    assert set(set_rows[set_rows.parameter == "weight"].module) == layer_names | block_names
    skipped = table[table.action == "skipped"]
    assert not (set(skipped.module) & (layer_names | block_names))
    assert skipped.reason.str.len().min() > 10
    # one row per parameter; a packed in_proj weight/bias gives one row per q/k/v block
    n_params = len(list(model.named_parameters()))
    assert len(table) == n_params + 4 * len(_mha_modules(model))


# ---------------------------------------------------------------- coverage on real architectures


def test_resnet18_sinusoidal_coverage_and_values():
    model = torchvision.models.resnet18(weights=None)
    bn_before = _state(model.bn1)
    table = apply(model, "sinusoidal")
    _check_coverage(model, table)
    bn_rows = table[table.module.str.contains("bn")]
    assert (bn_rows.action == "skipped").all() and bn_rows.reason.str.contains("BatchNorm2d").all()
    assert _same(bn_before, _state(model.bn1))
    for name, layer in select_layers(model):
        assert torch.equal(layer.weight, sinusoidal_(torch.empty_like(layer.weight))), name
        if layer.bias is not None:
            assert torch.all(layer.bias == 0)


def test_mobilenet_v3_small_coverage_with_bias_constant():
    model = torchvision.models.mobilenet_v3_small(weights=None)
    table = apply(model, "kaiming_normal", generator=torch.Generator().manual_seed(0), bias=0.001)
    _check_coverage(model, table)
    biases = [m.bias for _, m in select_layers(model) if m.bias is not None]
    assert biases and all(torch.all(b == 0.001) for b in biases)
    assert set(table[table.action == "set"].scheme) == {"kaiming_normal"}


@pytest.fixture(scope="module")
def vit():
    return torchvision.models.vit_b_16(weights=None)


def test_vit_b_16_coverage_blocks_and_tokens(vit):
    tokens = (vit.class_token.detach().clone(), vit.encoder.pos_embedding.detach().clone())
    table = apply(vit, "sinusoidal")
    _check_coverage(vit, table)
    assert torch.equal(vit.class_token, tokens[0]) and torch.equal(vit.encoder.pos_embedding, tokens[1])
    reasons = table.set_index("name").reason
    assert "not part of a Linear/Conv/attention layer" in reasons["class_token"]
    assert "LayerNorm" in reasons["encoder.layers.encoder_layer_0.ln_1.weight"]
    attn = vit.encoder.layers.encoder_layer_0.self_attention
    e = attn.embed_dim
    block = sinusoidal_(torch.empty(e, e))  # each q/k/v block is its own (E, E) matrix
    for k in range(3):
        assert torch.equal(attn.in_proj_weight[k * e : (k + 1) * e], block)
    assert torch.all(attn.in_proj_bias == 0)
    assert torch.equal(attn.out_proj.weight, block)
    assert reasons[f"encoder.layers.encoder_layer_0.self_attention.in_proj_weight[{e}:{2 * e}]"].startswith(
        "sinusoidal_"
    )


def test_transformer_encoder_coverage():
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    table = apply(model, "orthogonal", generator=torch.Generator().manual_seed(1))
    _check_coverage(model, table)
    out_rows = table[table.module == "layers.1.self_attn.out_proj"]
    assert list(out_rows.parameter) == ["weight", "bias"]  # out_proj covered once
    q = model.layers[0].self_attn.in_proj_weight[:16]
    torch.testing.assert_close(q @ q.T, torch.eye(16), atol=1e-5, rtol=0)


# ---------------------------------------------------------------- default and reproducibility


def test_default_is_reset_parameters_on_the_global_rng():
    torch.manual_seed(5)
    fresh = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Linear(4, 2))
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Linear(4, 2))
    assert not _same(_state(fresh), _state(other))
    torch.manual_seed(5)
    table = apply(other, "default")
    assert _same(_state(fresh), _state(other))
    assert table.reason.iloc[0] == "Conv2d.reset_parameters()"


@pytest.mark.parametrize("kwargs", [{}, {"kdim": 8, "vdim": 4}])
def test_default_reproduces_attention_construction(kwargs):
    # MultiheadAttention draws out_proj, then xavier_uniform_ over in_proj, zeroes the biases.
    torch.manual_seed(9)
    fresh = nn.TransformerEncoderLayer(16, 2, 32) if not kwargs else nn.MultiheadAttention(16, 2, **kwargs)
    other = nn.TransformerEncoderLayer(16, 2, 32) if not kwargs else nn.MultiheadAttention(16, 2, **kwargs)
    torch.manual_seed(9)
    apply(other, "default")
    assert _same(_state(fresh), _state(other))


SCHEMES_RANDOM = ["default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
                  "orthogonal", "arcsine", "uniform", "lsuv"]


@pytest.mark.parametrize("scheme", SCHEMES_RANDOM)
def test_generator_reproducibility_without_touching_the_global_rng(scheme):
    data = torch.randn(64, 12)
    states = []
    for seed in (3, 3, 4):
        model = _mlp()
        rng = torch.get_rng_state()
        apply(model, scheme, generator=torch.Generator().manual_seed(seed), data=data)
        assert torch.equal(rng, torch.get_rng_state())
        states.append(_state(model))
    assert _same(states[0], states[1])
    assert not _same(states[0], states[2])


@pytest.mark.parametrize("scheme", ["sinusoidal", "idinit"])
def test_deterministic_schemes_ignore_randomness(scheme):
    a, b = _mlp(), _mlp()
    apply(a, scheme, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(123)
    apply(b, scheme)
    assert _same(_state(a), _state(b))


def test_idinit_model_is_identity_preserving():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    table = apply(model, "idinit")
    x = torch.randn(5, 8)
    assert torch.equal(model(x), x)
    assert table.scheme.iloc[0] == "idinit"


def test_uniform_spelled_bound():
    model = _mlp()
    table = apply(model, "uniform:5", generator=torch.Generator().manual_seed(0))
    w = model[2].weight.detach()
    assert float(w.abs().max()) <= 5 and float(w.abs().max()) > 4.5
    assert float(w.var()) == pytest.approx(25 / 3, rel=0.15)
    assert set(table[table.action == "set"].scheme) == {"uniform:a=5"}


# ---------------------------------------------------------------- LSUV


def _outputs_std(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    stds, handles = {}, []

    def record(name):
        def hook(module, args, output):
            stds.setdefault(name, float(output.std()))  # returns None: the output is left alone

        return hook

    for name, layer in select_layers(model):
        handles.append(layer.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    return stds


def test_lsuv_gives_unit_output_std_and_keeps_orthogonal_directions():
    x = torch.randn(256, 12) * 3 + 1
    model = _mlp(bias=False)
    table = apply(model, "lsuv", data=x, generator=torch.Generator().manual_seed(0))
    stds = _outputs_std(model, x)
    assert set(stds) == {"0", "2", "4"}
    assert all(abs(s - 1) <= 0.1 for s in stds.values()), stds
    assert table.set_index("name").reason["0.weight"].startswith("orthogonal, rescaled")
    # LSUV only rescales orthogonal weights: in a bias-free ReLU net every neuron's sign pattern (so p
    # and skew) equals orthogonal's (docs/init-schemes.md).
    ortho = _mlp(bias=False)
    apply(ortho, "orthogonal", generator=torch.Generator().manual_seed(0))
    for i in (0, 2, 4):
        ratio = model[i].weight / ortho[i].weight
        torch.testing.assert_close(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-5, atol=0)


def test_lsuv_transformer_blocks_and_out_proj_reach_unit_std():
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 1,
                                  enable_nested_tensor=False)
    x = torch.randn(4, 6, 16) * 5
    table = apply(model, "lsuv", data=(x, torch.zeros(4)))
    attn = model.layers[0].self_attn
    with torch.no_grad():
        for k in range(3):
            rows = slice(16 * k, 16 * (k + 1))
            q = nn.functional.linear(x, attn.in_proj_weight[rows], attn.in_proj_bias[rows])
            assert abs(float(q.std()) - 1) <= 0.1
    reasons = table[table.parameter == "weight"].set_index("module").reason
    assert reasons["layers.0.self_attn.out_proj"].startswith("orthogonal, rescaled")
    model.eval()
    seen = {}

    def hook(module, args, output):
        seen["out"] = float(output[0].std())

    h = attn.register_forward_hook(hook)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            model(x)
    finally:
        h.remove()
        torch.backends.mha.set_fastpath_enabled(fastpath)
    assert abs(seen["out"] - 1) <= 0.1


def test_lsuv_leaves_batchnorm_statistics_and_modes_alone():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3))
    model.train()
    model[2].eval()  # mixed modes must come back exactly
    bn = _state(model[1])
    apply(model, "lsuv", data=[torch.randn(8, 3, 10, 10) * 4])
    assert _same(bn, _state(model[1]))
    assert [m.training for m in model.modules()] == [True, True, True, False, True]


class _Kw(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(12, 9)

    def forward(self, x):
        return self.lin(x)


def test_lsuv_accepts_every_data_form():
    x = torch.randn(32, 12) * 2
    ref = _mlp()
    apply(ref, "lsuv", data=x, generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(32)), batch_size=32)
    for data in ((x, torch.zeros(32)), [x, x + 1], loader, iter([x])):
        model = _mlp()
        apply(model, "lsuv", data=data, generator=torch.Generator().manual_seed(0))
        assert _same(_state(ref), _state(model)), type(data)
    kw = _Kw()
    apply(kw, "lsuv", data={"x": x})
    with torch.no_grad():
        assert abs(float(kw.lin(x).std()) - 1) <= 0.1


class _Flaky(nn.Module):
    """Fails on its third forward call: an injected fault in the middle of LSUV."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 6)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("injected failure")
        return self.b(torch.relu(self.a(x)))


def test_lsuv_failure_removes_hooks_and_restores_state():
    model = nn.Sequential(_Flaky(), nn.Linear(6, 3))
    model.train()
    model[1].eval()
    modes = [m.training for m in model.modules()]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    with pytest.raises(SkewError, match="LSUV failed while measuring the output of layer") as err:
        apply(model, "lsuv", data=torch.randn(16, 6) * 3)
    assert isinstance(err.value.__cause__, RuntimeError)
    assert [m.training for m in model.modules()] == modes
    assert torch.backends.mha.get_fastpath_enabled() == fastpath
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def test_lsuv_without_data_fails_before_touching_weights():
    model = _mlp()
    before = _state(model)
    with pytest.raises(SkewError, match="data="):
        apply(model, "lsuv")
    with pytest.raises(SkewError, match="empty"):
        apply(model, "lsuv", data=[])
    with pytest.raises(SkewError, match="not a batch"):
        apply(model, "lsuv", data=5)
    assert _same(before, _state(model))


def test_lsuv_reports_layers_the_forward_never_reaches():
    class Partial(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.used(x)

    table = apply(Partial(), "lsuv", data=torch.randn(8, 4))
    assert table.set_index("name").reason["unused.weight"].startswith("orthogonal; not reached")


# ---------------------------------------------------------------- layers=


def test_layers_restricts_and_reports_the_rest():
    model = _mlp()
    before = _state(model)
    table = apply(model, "sinusoidal", layers=["2"])
    assert list(table[table.action == "set"].module.unique()) == ["2"]
    rest = table[table.action == "skipped"]
    assert (rest.reason == "not selected by layers=").all() and len(rest) == 4
    assert torch.equal(model[0].weight, before["0.weight"])
    assert not torch.equal(model[2].weight, before["2.weight"])
    assert list(apply(_mlp(), "idinit", layers=nn.Linear).action.unique()) == ["set"]
    last = apply(_mlp(), "idinit", layers=lambda n, m: m.out_features == 5)
    assert list(last[last.action == "set"].module.unique()) == ["4"]


def test_layers_selects_attention_blocks():
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 1, enable_nested_tensor=False)
    attn = model.layers[0].self_attn
    before = attn.in_proj_weight.detach().clone()
    table = apply(model, "idinit", layers=["layers.0.self_attn.k_proj"])
    assert list(table[table.action == "set"].module.unique()) == ["layers.0.self_attn.k_proj"]
    assert torch.equal(attn.in_proj_weight[8:16], torch.eye(8))
    assert torch.equal(attn.in_proj_weight[:8], before[:8])
    assert torch.equal(attn.in_proj_weight[16:], before[16:])

    def sel(spec):
        t = apply(model, "idinit", layers=spec)
        return sorted(t[t.action == "set"].module.unique())

    names = {s: f"layers.0.self_attn.{s}" for s in ("q_proj", "k_proj", "v_proj", "out_proj")}
    assert sel("*.v_proj") == [names["v_proj"]]
    assert sel("layers.0.self_attn") == sorted(names.values())  # the attention module's exact name
    assert sel(nn.MultiheadAttention) == sorted([names["q_proj"], names["k_proj"], names["v_proj"]])


# ---------------------------------------------------------------- error paths


def test_error_paths():
    with pytest.raises(SkewError, match="did you mean 'sinusoidal'"):
        apply(_mlp(), "sinusodial")
    with pytest.raises(SkewError, match="torch.nn.Module"):
        apply(torch.zeros(3, 3), "sinusoidal")
    with pytest.raises(SkewError, match="no Linear, Conv"):
        apply(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)), "xavier_uniform")
    with pytest.raises(SkewError, match="no module named 'linear1'"):
        apply(_mlp(), "sinusoidal", layers=["linear1"])
    with pytest.raises(SkewError, match="selects none"):
        apply(_mlp(), "sinusoidal", layers="features.*")
    with pytest.raises(SkewError, match="bias must be a finite number"):
        apply(_mlp(), "sinusoidal", bias=float("nan"))
    with pytest.raises(SkewError, match="keeps each layer's own random bias"):
        apply(_mlp(), "default", bias=0.01)
    with pytest.raises(SkewError, match="torch.Generator"):
        apply(_mlp(), "xavier_uniform", generator=0)
    with pytest.raises(SkewError, match="forward pass"):
        apply(nn.Sequential(nn.LazyLinear(3)), "xavier_uniform")


def test_scheme_that_cannot_apply_names_the_parameter():
    model = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 1, bias=False), nn.Linear(1, 1))
    before = _state(model)
    with pytest.raises(SkewError, match=r"cannot apply scheme 'sinusoidal' to the weight of '2' \(shape"):
        apply(model, "sinusoidal")
    assert _same(before, _state(model))  # found before any weight was touched
    # sinusoidal on a (1, 4) weight is defined: row 1 of 1 is a full sine
    apply(model, "sinusoidal", layers=["1"])
    assert math.isclose(float(model[1].weight.detach().var()), 2 / 5, rel_tol=1e-5)
    with pytest.raises(SkewError, match="gain"):
        apply(_mlp(), Scheme("arcsine", {"gain": -1.0}))  # unvalidated options reach arcsine_


# ---------------------------------------------------------------- on a GPU (skipped without one)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_cuda_sinusoidal_is_bit_identical_to_cpu():
    for shape in [(64, 200), (100, 100), (32, 16, 3, 3), (1000, 2048), (2048, 512, 1, 1), (4096, 4096)]:
        on_gpu = sinusoidal_(torch.empty(shape, device="cuda"))
        assert on_gpu.device.type == "cuda"
        assert torch.equal(on_gpu.cpu(), sinusoidal_(torch.empty(shape)))


@cuda
@pytest.mark.parametrize("scheme", ["default", "xavier_uniform", "orthogonal", "arcsine", "lsuv", "idinit"])
def test_cuda_models_with_cuda_generators(scheme):
    data = torch.randn(64, 12)  # LSUV moves the batch to the model's device
    states = []
    for _ in range(2):
        model = _mlp().cuda()
        table = apply(model, scheme, data=data, generator=torch.Generator(device="cuda").manual_seed(0))
        assert (table[table.module.isin(["0", "2", "4"])].action == "set").all()
        states.append(_state(model))
    assert _same(*states)
    # a CPU generator draws on the CPU: the CUDA model gets the CPU model's weights
    if scheme != "default":
        on_cpu, on_gpu = _mlp(), _mlp().cuda()
        apply(on_cpu, scheme, data=data, generator=torch.Generator().manual_seed(1))
        apply(on_gpu, scheme, data=data, generator=torch.Generator().manual_seed(1))
        cpu_state, gpu_state = _state(on_cpu), {k: v.cpu() for k, v in _state(on_gpu).items()}
        if scheme == "lsuv":  # rescaling factors come from CUDA forward passes: equal up to rounding
            for k in cpu_state:
                torch.testing.assert_close(cpu_state[k], gpu_state[k], rtol=1e-4, atol=1e-6)
        else:
            assert _same(cpu_state, gpu_state)


@cuda
def test_cuda_attention_default_with_a_cpu_generator():
    states = []
    for _ in range(2):
        layer = nn.TransformerEncoderLayer(16, 2, 32).cuda()
        table = apply(layer, "default", generator=torch.Generator().manual_seed(0))
        assert (table[table.module.str.contains("proj|linear")].action == "set").all()
        states.append(_state(layer))
    assert _same(*states)
    assert torch.all(states[0]["self_attn.in_proj_bias"] == 0)


def test_failure_midway_restores_every_parameter(monkeypatch):
    """A scheme that fails on the second layer leaves the first one as the user had it."""
    import sys

    apply_mod = sys.modules["skew.init.apply"]  # the module, not the function skew.init exports

    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    real_fill = apply_mod._fill
    calls = []

    def failing_fill(unit, generator, init):
        calls.append(tuple(unit.weight.shape))
        if len(calls) == 2:
            raise RuntimeError("injected failure on the second layer")
        return real_fill(unit, generator, init)

    monkeypatch.setattr(apply_mod, "_fill", failing_fill)
    with pytest.raises(SkewError, match="injected failure"):
        apply(net, "sinusoidal")
    assert len(calls) == 2
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_scheme_options_as_the_docs_spell_them():
    # docs/init-schemes.md said "keyword arguments of apply do the same", but apply(model, "sinusoidal",
    # fans="torch") is a TypeError: the keywords belong to skew.init.get_scheme, as the docs now say
    import re
    from pathlib import Path

    from skew.init import get_scheme

    docs = (Path(__file__).resolve().parents[1] / "docs" / "init-schemes.md").read_text(encoding="utf-8")
    assert "keyword arguments of `skew.init.get_scheme` do the same" in docs
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    spelled = re.findall(r'`"(sinusoidal:[^"`]+)"`', readme)
    assert spelled == ["sinusoidal:fans=torch", "sinusoidal:mode=fan_in,gain=1.4142"]
    for text, keywords in zip(spelled, ({"fans": "torch"}, {"mode": "fan_in", "gain": 1.4142})):
        a, b = nn.Linear(8, 4), nn.Linear(8, 4)
        apply(a, text)
        apply(b, get_scheme("sinusoidal", **keywords))
        assert torch.equal(a.weight, b.weight)
    with pytest.raises(TypeError):
        apply(nn.Linear(8, 4), "sinusoidal", fans="torch")
