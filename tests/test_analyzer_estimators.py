"""skew.report's estimators against brute force over activations stored by the test itself."""

from __future__ import annotations

import importlib.util
import os
import time

import numpy as np
import pytest
import torch
from torch import nn

from skew import theory
from skew.accumulators import chan_merge, level1
from skew.analyzer import report
from skew.oui import batch_oui, oui_from_p, pairwise_oui


def record(model: nn.Module, name: str, batches, *, kind: str = "layer"):
    """Run ``model`` over ``batches`` and keep the named layer's outputs and inputs (the test may)."""
    mod = dict(model.named_modules())[name]
    outs, ins = [], []

    def hook(m, args, out):
        outs.append(out.detach().clone())
        ins.append(args[0].detach().clone())

    h = mod.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model.eval()
            for b in batches:
                model(b)
    finally:
        h.remove()
    return outs, ins


def as_rows(z: torch.Tensor, conv: bool) -> tuple[np.ndarray, np.ndarray]:
    """(B, P, C) float64 array of a stored output: neuron last, positions in the middle."""
    z = z.detach().cpu().double()
    if conv:
        z = z.flatten(2).transpose(1, 2)
    else:
        z = z.reshape(z.shape[0], -1, z.shape[-1])
    return z.numpy()


def brute(outs, ins, conv: bool) -> dict:
    """Every estimator the Report holds, computed directly from the stored activations."""
    z3 = [as_rows(z, conv) for z in outs]
    spatial = tuple(outs[0].shape[2:]) if conv else tuple(outs[0].shape[1:-1])
    centre = int(np.ravel_multi_index(tuple(s // 2 for s in spatial), spatial)) if spatial else 0
    with np.errstate(invalid="ignore"):
        return _brute(z3, ins, centre)


def _brute(z3, ins, centre: int | None = None) -> dict:
    allz = np.concatenate([z.reshape(-1, z.shape[-1]) for z in z3])
    fin = np.isfinite(allz)
    n = fin.sum(0)
    zc = np.where(fin, allz, 0.0)
    mean = zc.sum(0) / n
    std = np.sqrt(np.where(fin, (allz - mean) ** 2, 0.0).sum(0) / n)
    pos = ((allz > 0) & fin).sum(0)
    x = np.concatenate([i.cpu().double().reshape(-1).numpy() for i in ins])
    # pooled OUI: a sample's pattern = sign of each neuron's mean over its positions
    pats = [z.mean(1) > 0 for z in z3]
    allpats = np.concatenate(pats)
    # the authors' OUI: every (position, neuron) of the sample is a unit (Hamming is order-free)
    units = np.concatenate([z.reshape(z.shape[0], -1) > 0 for z in z3])[:8]
    d = units.shape[1]
    authors = np.mean([min((units[i] != units[j]).sum(), d // 2) / (d // 2)
                       for i in range(len(units)) for j in range(i + 1, len(units))])
    oui_b = np.mean([batch_oui(p) for p in pats if p.shape[0] >= 2])
    # raster: sample r at the true centre position (H//2, W//2, ...), evenly spaced neuron columns
    samples = np.concatenate(z3)
    rows = min(250, samples.shape[0])
    C = samples.shape[2]
    cols = np.unique(np.linspace(0, C - 1, min(C, 250)).round().astype(int))
    mid = samples.shape[1] // 2 if centre is None else centre
    raster = samples[:rows, mid][:, cols] > 0
    return {
        "n": n, "pos": pos, "mean": mean, "std": std, "p": pos / n, "nonfinite": (~fin).sum(0),
        "in_mean": x.mean(), "in_std": x.std(), "oui_batch": oui_b,
        "oui_pairwise_pooled": pairwise_oui(allpats[:8]), "oui_pairwise": authors, "raster": raster, "rows": allz.shape[0],
    }


def check(rep, name: str, ref: dict, rtol: float = 1e-6) -> None:
    nf = rep.neurons[rep.neurons["layer"] == name]
    lay = rep.layers.set_index("layer").loc[name]
    np.testing.assert_array_equal(nf["n"], ref["n"])
    np.testing.assert_array_equal(nf["p"], ref["p"])
    np.testing.assert_array_equal(nf["nonfinite"], ref["nonfinite"])
    np.testing.assert_allclose(nf["mean"], ref["mean"], rtol=rtol, atol=rtol * np.abs(ref["mean"]).max())
    np.testing.assert_allclose(nf["std"], ref["std"], rtol=rtol)
    from scipy.special import ndtr

    np.testing.assert_allclose(nf["p_gauss"], ndtr(ref["mean"] / ref["std"]), rtol=1e-5, atol=1e-7)
    assert lay["samples"] == ref["rows"]
    np.testing.assert_allclose(lay["input_mean"], ref["in_mean"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(lay["input_std"], ref["in_std"], rtol=1e-5)
    np.testing.assert_allclose(lay["oui_batch"], ref["oui_batch"], rtol=1e-12)
    np.testing.assert_allclose(lay["oui_pairwise"], ref["oui_pairwise"], rtol=1e-12)
    np.testing.assert_allclose(lay["oui_pairwise_pooled"], ref["oui_pairwise_pooled"], rtol=1e-12)
    np.testing.assert_array_equal(rep.signs[name], ref["raster"])


CASES = {
    "linear": (lambda: nn.Sequential(nn.Linear(12, 30), nn.ReLU(), nn.Linear(30, 7)), "2", (16, 12), False),
    "tokens": (lambda: nn.Sequential(nn.Linear(6, 9), nn.GELU(), nn.Linear(9, 5)), "0", (8, 11, 6), False),
    "conv1d": (lambda: nn.Sequential(nn.Conv1d(3, 10, 5, padding=2), nn.ReLU(), nn.Conv1d(10, 4, 3)), "2",
               (6, 3, 40), True),
    "conv2d": (lambda: nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(inplace=True), nn.Conv2d(6, 5, 3, stride=2)), "0",
               (5, 3, 12, 14), True),
    "grouped": (lambda: nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.ReLU(), nn.Conv2d(8, 12, 1, groups=4)), "2",
                (7, 4, 9, 9), True),
    "convT": (lambda: nn.Sequential(nn.ConvTranspose2d(3, 6, 3, stride=2, groups=3)), "0", (4, 3, 5, 5), True),
    "conv3d": (lambda: nn.Sequential(nn.Conv3d(2, 3, 2)), "0", (3, 2, 4, 5, 3), True),
    # 3x3 outputs (P = 9): the compiled kernel's short-row path, 8 neurons per step and a ragged rest
    "conv2d_small": (lambda: nn.Sequential(nn.Conv2d(3, 12, 3, stride=2)), "0", (6, 3, 7, 7), True),
    # more neurons than raster columns (250): the raster takes evenly spaced ones
    "wide_linear": (lambda: nn.Sequential(nn.Linear(12, 300), nn.ReLU(), nn.Linear(300, 260)), "2", (16, 12), False),
    "wide_conv": (lambda: nn.Sequential(nn.Conv2d(3, 270, 3)), "0", (4, 3, 6, 6), True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_estimators_match_brute_force(case, cpu_form):
    make, name, shape, conv = CASES[case]
    torch.manual_seed(1)
    model = make()
    gen = torch.Generator().manual_seed(2)
    batches = [torch.randn(*shape, generator=gen) + 0.3 for _ in range(3)]
    outs, ins = record(model, name, batches)
    rep = report(model, batches)
    check(rep, name, brute(outs, ins, conv))
    nf = rep.neurons[rep.neurons["layer"] == name]
    assert not nf["degenerate"].any()
    np.testing.assert_allclose(nf["skew"], np.abs(nf["p"] - 0.5))


def test_channels_last_conv_is_read_like_contiguous():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 4, 3)).to(memory_format=torch.channels_last)
    batches = [torch.randn(4, 3, 10, 10).contiguous(memory_format=torch.channels_last) for _ in range(2)]
    outs, ins = record(model, "2", batches)
    assert outs[0].is_contiguous(memory_format=torch.channels_last) and not outs[0].is_contiguous()
    check(report(model, batches), "2", brute(outs, ins, True))


def test_many_small_batches_equal_one_big_batch():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 5, 3), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 6 * 6, 9))
    x = torch.randn(24, 2, 8, 8)
    big = report(model, [x])
    small = report(model, list(x.split(3)))
    a, b = big.neurons, small.neurons
    for col in ("n", "p", "degenerate", "dead", "always_on", "nonfinite"):
        np.testing.assert_array_equal(a[col], b[col])
    for col in ("mean", "std", "p_gauss", "p_pred"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-6, atol=1e-8)  # float32 forward
    for name in big.signs:
        np.testing.assert_array_equal(big.signs[name], small.signs[name])
    la, lb = big.layers, small.layers
    np.testing.assert_allclose(la["oui_pairwise"], lb["oui_pairwise"])
    np.testing.assert_allclose(la["input_std"], lb["input_std"], rtol=1e-6)
    assert (lb["calls"] == 8).all() and (la["calls"] == 1).all()


def test_chan_merge_matches_numpy_on_random_splits():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, size=1000)
    n, mean, m2 = 0, 0.0, 0.0
    for part in np.array_split(x, [3, 10, 400, 401, 999]):
        n, mean, m2 = chan_merge(n, mean, m2, len(part), part.mean() if len(part) else 0.0,
                                 ((part - part.mean()) ** 2).sum() if len(part) else 0.0)
    assert n == 1000
    assert mean == pytest.approx(x.mean(), rel=1e-13)
    assert m2 / n == pytest.approx(x.var(), rel=1e-12)


def test_constant_neurons_are_degenerate_not_skewed():
    lin = nn.Linear(5, 4)
    with torch.no_grad():
        lin.weight[1] = 0.0  # Z = bias: constant, not representable exactly in binary
        lin.bias[1] = 0.1
        lin.weight[2] = 0.0
        lin.bias[2] = -0.7
    rep = report(nn.Sequential(lin), [torch.randn(33, 5) * 10 + 4 for _ in range(3)])
    nf = rep.neurons
    assert nf["degenerate"].tolist() == [False, True, True, False]
    assert np.isnan(nf.loc[1, "skew"]) and np.isnan(nf.loc[2, "p_gauss"])
    assert nf.loc[1, "p"] == 1.0 and nf.loc[2, "p"] == 0.0  # p itself is still reported
    assert not nf.loc[1, "always_on"] and not nf.loc[2, "dead"]  # flags are for non-degenerate neurons
    assert rep.layers.loc[0, "degenerate"] == 2


def test_nonfinite_values_are_counted_and_excluded():
    torch.manual_seed(4)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    model = nn.Sequential(conv)
    x1, x2 = torch.randn(4, 2, 6, 6), torch.randn(3, 2, 6, 6)
    x2[1, 0, 2, 3] = float("nan")  # poisons a 3x3 neighbourhood of sample 1 in every channel
    x2[2, 1, 0, 0] = float("inf")
    batches = [x1, x2]
    outs, ins = record(model, "0", batches)
    rep = report(model, batches)
    nf = rep.neurons
    ref = brute(outs, [x1], True)  # input moments only from the finite batch would differ: check per-neuron
    assert (nf["nonfinite"] > 0).all()
    np.testing.assert_array_equal(nf["nonfinite"], ref["nonfinite"])
    np.testing.assert_array_equal(nf["n"], ref["n"])
    np.testing.assert_array_equal(nf["p"], ref["p"])
    np.testing.assert_allclose(nf["mean"], ref["mean"], rtol=1e-6)
    np.testing.assert_allclose(nf["std"], ref["std"], rtol=1e-6)
    xin = torch.cat([x1.reshape(-1), x2.reshape(-1)]).double()
    xin = xin[torch.isfinite(xin)]
    lay = rep.layers.iloc[0]
    assert lay["input_mean"] == pytest.approx(float(xin.mean()), rel=1e-6)
    assert lay["nonfinite"] == int(nf["nonfinite"].sum())


def test_a_neuron_that_is_always_infinite_has_no_samples():
    lin = nn.Linear(3, 3)
    with torch.no_grad():
        lin.weight[0] = float("inf")
    rep = report(nn.Sequential(lin), [torch.rand(5, 3) + 0.1])
    nf = rep.neurons
    assert nf.loc[0, "n"] == 0 and nf.loc[0, "nonfinite"] == 5 and nf.loc[0, "degenerate"]
    assert (nf.loc[1:, "n"] == 5).all() and (nf.loc[1:, "nonfinite"] == 0).all()


def test_bfloat16_autocast_signs_exact_and_moments_from_low_precision_outputs():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8))
    batches = [torch.randn(32, 16) for _ in range(2)]

    def run(fn):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fn()

    outs, ins = run(lambda: record(model, "2", batches))
    assert outs[0].dtype == torch.bfloat16
    rep = run(lambda: report(model, batches))
    ref = brute(outs, ins, False)
    nf = rep.neurons[rep.neurons["layer"] == "2"]
    np.testing.assert_array_equal(nf["p"], ref["p"])
    np.testing.assert_allclose(nf["mean"], ref["mean"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(nf["std"], ref["std"], rtol=1e-6)


@pytest.mark.parametrize("batch_first", [True, False])
def test_attention_projections_match_their_linear_maps(batch_first):
    torch.manual_seed(6)
    e, heads = 8, 2

    class Cross(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(e, heads, batch_first=batch_first, kdim=5, vdim=6)

        def forward(self, q, k, v):
            return self.attn(q, k, v)[0]

    class Self(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(e, heads, batch_first=batch_first)

        def forward(self, x):
            return self.attn(x, x, x, need_weights=False)[0]

    def bt(t):  # (B, T, F) -> the module's layout
        return t if batch_first else t.transpose(0, 1)

    B, T = 3, 7
    q, k, v = torch.randn(B, T, e), torch.randn(B, 4, 5), torch.randn(B, 4, 6)
    for model, args in ((Cross(), (bt(q), bt(k), bt(v))), (Self(), (bt(q),))):
        model.eval()
        outs: dict = {}
        h = model.attn.register_forward_hook(lambda m, a, o, outs=outs: outs.setdefault("out", o[0].clone()))
        with torch.no_grad():
            model(*args)
        h.remove()
        rep = report(model, [args], input_fn=lambda b: b)
        assert list(rep.layers["layer"]) == ["attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.out_proj"]
        from skew.layers import attention_projections

        inputs = {"q_proj": q, "k_proj": k, "v_proj": v} if len(args) == 3 else dict.fromkeys(
            ("q_proj", "k_proj", "v_proj"), q)
        for suffix, w, b in attention_projections(model.attn):
            x = inputs[suffix]
            z = torch.nn.functional.linear(x, w, b).detach()
            check(rep, f"attn.{suffix}", brute([z], [x], False), rtol=1e-5)
        out = bt(outs["out"]) if not batch_first else outs["out"]
        ref = brute([out], [out], False)
        nf = rep.neurons[rep.neurons["layer"] == "attn.out_proj"]
        np.testing.assert_array_equal(nf["p"], ref["p"])
        np.testing.assert_allclose(nf["mean"], ref["mean"], rtol=1e-5, atol=1e-7)
        assert np.isnan(rep.layers.set_index("layer").loc["attn.out_proj", "input_mean"])


def test_first_layer_matches_theorem_1_on_relu_gaussian_inputs():
    """Corollary: the skewed fraction depends only on σ/μ of the inputs; |S| > λ ⇔ skewed."""
    torch.manual_seed(7)
    n, m, samples = 400, 1500, 3000
    lin = nn.Linear(n, m, bias=False)
    nn.init.xavier_normal_(lin.weight)
    gen = torch.Generator().manual_seed(8)
    batches = [torch.relu(torch.randn(500, n, generator=gen)) for _ in range(samples // 500)]
    rep = report(nn.Sequential(lin), batches)
    lay = rep.layers.iloc[0]
    mu, sigma = theory.input_moments("relu-gaussian")
    assert lay["input_mean"] == pytest.approx(mu, rel=0.01)
    assert lay["input_std"] == pytest.approx(sigma, rel=0.01)
    for a in (0.1, 0.3):
        expected = theory.expected_skewed_fraction(a, mu, sigma)
        assert abs(lay[f"skewed_{a:g}"] - expected) < 0.035, (a, lay[f"skewed_{a:g}"], expected)
        assert lay[f"agree_{a:g}"] >= 0.9
        lam = theory.threshold(a, n, float(lin.weight.detach().std(correction=0)), lay["input_mean"], lay["input_std"])
        assert lay[f"lambda_{a:g}"] == pytest.approx(lam, rel=1e-3)
    nf = rep.neurons
    assert np.mean(np.abs(nf["p"] - nf["p_pred"])) < 0.02
    assert lay["spearman_s_p"] > 0.95
    # pairwise OUI of independent samples ≈ 1 − 4·mean (p − 1/2)² (docs/oui.md), within sampling noise
    assert lay["oui_pairwise"] == pytest.approx(oui_from_p(nf["p"].to_numpy()), abs=0.08)


@pytest.mark.parametrize("form", ["eager", "compiled", "welford"])
def test_level1_forms_are_exact_on_constant_rows(form, monkeypatch, request):
    import skew.accumulators as acc

    if form != "welford":
        _force_cpu_form(form, monkeypatch)
    monkeypatch.setattr(acc, "_welford", lambda device: form == "welford")
    z = torch.full((3, 2, 50), 0.1)
    part = level1(z, pd=2)
    m2 = part.m2 * 50 if part.m2_is_var else part.m2
    assert part.m2_is_var == (form == "welford")
    assert part.rows == (1 if form == "compiled" else 3)  # the kernel merges the rows per neuron
    assert torch.equal(m2, torch.zeros_like(m2)) and (part.mean == torch.tensor(0.1)).all()
    st = acc.DeviceStats([2], torch.device("cpu"))
    st.commit(st.reduce([(0, part, None)]))
    assert torch.equal(st.m2, torch.zeros(2, dtype=torch.float64)) and (st.mean == torch.tensor(0.1)).all()


def _force_cpu_form(form: str, monkeypatch) -> None:
    import skew._fused as fused

    if form == "eager":
        monkeypatch.setattr(fused, "_state", {"lib": None})  # kernel() is None for this test only
    elif not fused.available():
        pytest.skip("the compiled level-1 kernel is not available here (no C compiler)")


@pytest.mark.parametrize("case", ["linear", "tokens", "conv2d"])
def test_accelerator_form_matches_brute_force_on_cpu(case, monkeypatch):
    """The var_mean (Welford) form that CUDA uses, exercised here on CPU against brute force."""
    import skew.accumulators as acc

    monkeypatch.setattr(acc, "_welford", lambda device: True)
    make, name, shape, conv = CASES[case]
    torch.manual_seed(1)
    model = make()
    batches = [torch.randn(*shape) + 0.3 for _ in range(3)]
    outs, ins = record(model, name, batches)
    check(report(model, batches), name, brute(outs, ins, conv))


@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("triton") is None,
                    reason="needs a CUDA device and Triton (the eager GPU forms read a flag per hook call)")
@pytest.mark.parametrize("autocast", [False, True])
def test_cuda_brute_force_and_no_host_sync_inside_hooks(autocast, monkeypatch):
    import skew.analyzer as analyzer

    torch.manual_seed(9)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 8, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 6 * 6, 10)).cuda()
    batches = [torch.randn(8, 3, 10, 10, device="cuda") for _ in range(3)]
    batches[2][0, 0, 4, 4] = float("nan")  # counted out as the one-read kernels read it: no re-run
    observe = analyzer._Run.observe

    def strict(self, *args):  # any host synchronisation inside a hook raises
        torch.cuda.set_sync_debug_mode("error")
        try:
            return observe(self, *args)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(analyzer._Run, "observe", strict)
    ctx = torch.autocast("cuda", dtype=torch.float16) if autocast else torch.autocast("cuda", enabled=False)
    with ctx:
        outs, ins = record(model, "2", batches)
        rep = report(model, batches)
    assert outs[0].dtype == (torch.float16 if autocast else torch.float32)
    ref = brute(outs, ins, True)
    nf = rep.neurons[rep.neurons["layer"] == "2"]
    np.testing.assert_array_equal(nf["n"], ref["n"])
    np.testing.assert_array_equal(nf["nonfinite"], ref["nonfinite"])
    np.testing.assert_array_equal(nf["p"], ref["p"])
    np.testing.assert_allclose(nf["mean"], ref["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nf["std"], ref["std"], rtol=1e-5)
    np.testing.assert_array_equal(rep.signs["2"], ref["raster"])
    assert rep.meta["device"].startswith("cuda")
    assert rep.meta["careful_calls"] == 0 and int(nf["nonfinite"].sum()) > 0


def _level1_brute(z3: torch.Tensor, pd: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row mean, M2 and positive count of a (B, C, P) / (B, P, C) view, two-pass in float64."""
    zd = z3.to(torch.float64)
    mean = zd.mean(pd)
    m2 = ((zd - mean.unsqueeze(pd)) ** 2).sum(pd)
    return mean, m2, (z3 > 0).sum(pd).to(torch.float64)


def _layouts(z: torch.Tensor):
    """(name, view, pd) of one (B, C, H, W) tensor in every layout level 1 receives on CPU."""
    b, c = z.shape[:2]
    cl = z.contiguous(memory_format=torch.channels_last)
    yield "contiguous (B, C, P)", z.reshape(b, c, -1), 2
    yield "channels_last (B, P, C)", cl.permute(0, 2, 3, 1).view(b, -1, c), 1
    yield "non-contiguous (B, C, P)", z[:, :, ::2].reshape(b, c, -1)[:, :, 1:], 2
    yield "non-contiguous (B, P, C)", z.reshape(b, c, -1).transpose(1, 2)[:, ::2], 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scratch", [False, True])
def test_cpu_level1_forms_match_brute_force_in_every_layout(dtype, scratch, monkeypatch):
    """The eager CPU form (per-row shift, float 0/1 positives, in-place square across strided rows)
    against a float64 two-pass brute force, with zeros in Z: positives are exact in every dtype."""
    from skew.accumulators import Scratch

    _force_cpu_form("eager", monkeypatch)
    torch.manual_seed(3)
    z = (torch.randn(5, 6, 4, 8) * 2 + 3).to(dtype)
    z[:, :, 0, :3] = 0  # exact zeros are not positive
    z[1, 2] = -0.0
    buf = Scratch() if scratch else None
    for name, z3, pd in _layouts(z):
        part = level1(z3, pd, scratch=buf)
        mean, m2, pos = _level1_brute(z3, pd)
        assert torch.equal(part.pos.to(torch.float64), pos), name
        np.testing.assert_allclose(part.mean, mean, rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(part.m2, m2, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(5, 6, 4, 8), (3, 40, 1, 1), (2, 17, 9, 35), (1, 3, 1, 300), (4, 19, 2, 3),
                                   (3, 33, 4, 4)])
def test_compiled_level1_matches_brute_force_per_neuron_in_every_layout(dtype, shape, monkeypatch):
    """The compiled one-pass kernel merges the rows per neuron itself: mean, M2, positives, the
    samples whose row mean is > 0 and the first samples' pattern bits, against float64 brute force,
    in every layout (rows along memory, neurons along memory, strided), ragged lengths included."""
    from skew import _fused

    _force_cpu_form("compiled", monkeypatch)
    torch.manual_seed(3)
    z = (torch.randn(*shape) * 2 + 0.5).to(dtype)
    z.view(-1)[::7] = 0  # exact zeros are not positive
    for name, z3, pd in _layouts(z):
        if z3.numel() == 0:  # (a slice of a single position; report() skips empty outputs)
            continue
        part = level1(z3, pd, head=3)
        zf = z3 if dtype == torch.float32 else z3.float()  # what level 1 reads (a conversion is dense)
        strides = (zf if pd == 2 else zf.transpose(1, 2)).stride()[1:]  # (neurons, positions)
        if 1 not in strides and z3.shape[pd] > 1:  # neither along memory: the eager form serves
            assert part.rows == z3.shape[0] and _fused.neurons(zf, pd) is None, name
            continue
        assert part.rows == 1 and part.samples == z3.shape[0] and part.finite is True, name
        zr = (z3 if pd == 2 else z3.transpose(1, 2)).to(torch.float64)  # (B, C, P)
        B, C, P = zr.shape
        assert part.P == B * P
        rows = zr.mean(2)
        assert torch.equal(part.pos[0], (zr > 0).sum((0, 2)).to(torch.float64)), name
        assert torch.equal(part.act[0], (rows > 0).sum(0).to(torch.float64)), name
        assert torch.equal(part.head, rows[:3] > 0), name
        np.testing.assert_allclose(part.mean[0], zr.mean((0, 2)), rtol=1e-6, atol=1e-6, err_msg=name)
        m2 = ((zr - zr.mean((0, 2), keepdim=True)) ** 2).sum((0, 2))
        np.testing.assert_allclose(part.m2[0], m2, rtol=2e-6, atol=1e-5, err_msg=name)
        assert _fused.neurons(z3.to(torch.float64), pd) is None  # float64 stays eager (exact sums)


@pytest.mark.parametrize("threads", [1, 3])
def test_compiled_kernel_that_cannot_allocate_its_work_arrays_falls_back_to_eager(threads, monkeypatch):
    """skew_neurons_outer returns -1 when its work arrays cannot be allocated: neurons() then gives
    None and level 1 takes the eager form, with the same statistics (injected fault)."""
    from skew import _fused

    _force_cpu_form("compiled", monkeypatch)
    monkeypatch.setattr(_fused, "PARALLEL_MIN", 1)
    real = _fused.kernel()
    calls = []

    class OutOfMemory:  # the real library, but the work allocation of the outer kernel fails
        def __getattr__(self, name):
            return getattr(real, name)

        def skew_neurons_outer(self, *args):
            calls.append(args)
            return -1

        def skew_neurons_split(self, outer, *args):  # the threaded form (OpenMP): its pieces fail alike
            calls.append(args)
            return 1 if outer else real.skew_neurons_split(outer, *args)

    zt = torch.randn(5, 11, 40) + 0.2  # (B, P, C): neurons contiguous, the outer kernel's layout
    with_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        assert _fused.neurons(zt, 1, 2, lib=OutOfMemory()) is None and calls
        assert _fused.neurons(zt, 1, 2) is not None  # the real kernel serves the same call
        monkeypatch.setattr(_fused, "_state", {"lib": OutOfMemory()})
        part = level1(zt, pd=1, head=2)
    finally:
        torch.set_num_threads(with_threads)
    assert part.finite is None  # the eager form, checked on the device
    zb = zt.double()
    mean = part.mean.mean(0) if part.rows > 1 else part.mean[0]
    assert torch.allclose(mean, zb.mean((0, 1)), atol=1e-6)
    assert torch.equal(part.pos.sum(0), (zb > 0).sum((0, 1)).double())


def test_compiled_kernel_threads_split_the_neurons_identically(monkeypatch):
    """Many threads give the same bits as one for the per-neuron sums (the work is split over the
    neurons, each summed alike); the input sums agree to float32 rounding."""
    from skew import _fused

    _force_cpu_form("compiled", monkeypatch)
    monkeypatch.setattr(_fused, "PARALLEL_MIN", 1)
    z = torch.randn(6, 37, 50)
    zt = z.transpose(1, 2).contiguous()  # (B, P, C): lanes over the neurons
    x = torch.randn(1000)
    w = torch.randn(23, 41)[:, 3:37]  # weight rows with a row stride: split over the rows
    with_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = [_fused.neurons(z, 2, 4), _fused.neurons(zt, 1, 4), _fused.sums(x), _fused.row_stats(w)]
        torch.set_num_threads(3)
        many = [_fused.neurons(z, 2, 4), _fused.neurons(zt, 1, 4), _fused.sums(x), _fused.row_stats(w)]
    finally:
        torch.set_num_threads(with_threads)
    for a, b in zip(one[:2], many[:2]):
        assert all(torch.equal(u, v) for u, v in zip(a[:5], b[:5])) and a[5] == b[5]
    assert all(np.array_equal(u, v) for u, v in zip(one[3], many[3]))
    wd = w.double()
    assert np.allclose(many[3][0], wd.sum(1).numpy(), rtol=1e-12, atol=1e-12)
    assert np.allclose(many[3][1], wd.norm(dim=1).numpy(), rtol=1e-12)
    assert one[2] == pytest.approx(many[2], rel=1e-6)  # Σx: other pieces, other float32 lane blocks
    xd = x.double()
    assert many[2] == pytest.approx((float(xd.sum()), float((xd * xd).sum())), rel=1e-6)


def test_compiled_kernel_split_in_torchs_openmp_pool_gives_the_python_threads_bits(monkeypatch):
    """Where the library is built with OpenMP, a split call runs its pieces in torch's own thread
    pool (``skew_*_split``); the pieces are those of the Python-thread split, so every output (the
    neurons' sums, pattern bits and raster signs in both layouts, Σx, the weight rows) is the same
    bit for bit. And where torch runs on OpenMP and the compiler has it, that is the build in use."""
    import subprocess

    from skew import _fused

    _force_cpu_form("compiled", monkeypatch)
    monkeypatch.setattr(_fused, "PARALLEL_MIN", 1)
    lib = _fused.kernel()
    if not _fused._openmp(lib):
        probe = subprocess.run(["cc", "-fopenmp", "-x", "c", "-", "-o", os.devnull], input=b"int main(){return 0;}",
                               capture_output=True)
        assert not (_fused._torch_openmp() and probe.returncode == 0), "OpenMP available but not used"
        pytest.skip("the library is built without OpenMP here")
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(6, 53, 40, generator=gen) + 0.1
    zt = torch.randn(5, 11, 70, generator=gen) - 0.1  # (B, P, C): the outer kernel's layout
    smap = torch.arange(53, dtype=torch.int32)
    x = torch.randn(100_003, generator=gen)
    w = torch.randn(29, 41, generator=gen)[:, 3:37]

    def run(threads):
        torch.set_num_threads(threads)
        sout = torch.zeros(4, 53, dtype=torch.bool)
        a = _fused.neurons(z, 2, 3, signs=(4, 7, smap, sout))
        return [a, sout.clone(), _fused.neurons(zt, 1, 5), _fused.sums(x), _fused.row_stats(w)]

    with_threads = torch.get_num_threads()
    try:
        pool = run(3)
        monkeypatch.setattr(_fused, "_openmp", lambda lib: False)
        python = run(3)
    finally:
        torch.set_num_threads(with_threads)
    for a, b in ((pool[0], python[0]), (pool[2], python[2])):
        assert all(torch.equal(u, v) for u, v in zip(a[:5], b[:5])) and a[5] == b[5] is True
    assert torch.equal(pool[1], python[1]) and pool[1].any()
    assert pool[3] == python[3]
    assert all(np.array_equal(u, v) for u, v in zip(pool[4], python[4]))


def test_compiled_kernel_reads_the_layer_input_in_the_same_pass_bit_for_bit(monkeypatch):
    """Given the layer input x, both compiled kernels (positions contiguous, short rows, neurons
    contiguous, collapsed Linear rows) return sums(x) exactly, with Z's summaries unchanged, and
    level 1's Partial.inputs is input_partial(x) exactly; where x does not serve (float64, not
    dense, the work split over threads) x is left to the caller; a non-finite x still shows."""
    from skew import _fused
    from skew.accumulators import all_finite, input_partial

    _force_cpu_form("compiled", monkeypatch)
    gen = torch.Generator().manual_seed(11)
    cases = [((4, 6, 37), 2), ((5, 9, 8), 2), ((64, 3, 1), 2), ((3, 50, 21), 1), ((300, 1, 70), 1), ((2, 3, 4), 2)]
    for (shape, pd), n in zip(cases, (1000, 77, 16, 4099, 31, 3)):
        z = torch.randn(*shape, generator=gen) + 0.1
        x = torch.randn(n, generator=gen) * 2 + 0.5
        alone, both = _fused.neurons(z, pd, 2), _fused.neurons(z, pd, 2, x=x)
        assert both[6] == _fused.sums(x) and alone[6] is None, shape
        assert all(torch.equal(a, b) for a, b in zip(alone[:5], both[:5])) and alone[5] == both[5] is True
        part = level1(z, pd, head=2, x=x)
        assert part.inputs == input_partial(x)
        assert level1(z, pd, head=2).inputs is None
        for other in (x.double(), torch.randn(8, 2 * n, generator=gen)[:, ::2]):  # float64; strided
            assert _fused.neurons(z, pd, 2, x=other)[6] is None and level1(z, pd, x=other).inputs is None
        xb = x.clone()
        xb[n // 2] = float("nan")
        part = level1(z, pd, x=xb)
        assert part.inputs is not None and not bool(all_finite(part, part.inputs))
    monkeypatch.setattr(_fused, "PARALLEL_MIN", 1)
    with_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        z, x = torch.randn(4, 6, 37), torch.randn(100)
        split = _fused.neurons(z, 2, 0, x=x)
    finally:
        torch.set_num_threads(with_threads)
    assert split[6] is None and all(torch.equal(a, b) for a, b in zip(split[:4], _fused.neurons(z, 2, 0)[:4]))


class _Twice(nn.Module):
    """One Linear called twice per forward (two call positions of one site), then another."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(5, 5), nn.Linear(5, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(torch.relu(self.a(x)))))


def test_compiled_kernel_writes_each_call_into_its_call_sites_buffer_batch_after_batch(monkeypatch):
    """Every call of the compiled CPU kernel writes its summaries into the buffer of its call site
    and call position, the same memory in every batch (no allocation per hook call); the report is
    bit-identical to one that allocates afresh in every call."""
    from skew import _fused
    from skew.accumulators import _triton

    _force_cpu_form("compiled", monkeypatch)
    gen = torch.Generator().manual_seed(9)
    batches = [torch.randn(6, 5, generator=gen) for _ in range(4)]
    torch.manual_seed(3)
    model = _Twice()
    seen = []
    real = _fused.neurons

    def spy(*args, **kwargs):
        got = real(*args, **kwargs)
        seen.append((kwargs.get("out").data_ptr(), got[0].data_ptr()))
        return got

    monkeypatch.setattr(_fused, "neurons", spy)
    reused = report(model, batches)
    per_batch = len(seen) // len(batches)
    assert per_batch == 3 and all(out == mean for out, mean in seen)  # the results are the buffer's rows
    first = [out for out, _ in seen[:per_batch]]
    assert len(set(first)) == 3  # a.#0, a.#1 and b: one buffer each
    assert all([out for out, _ in seen[k * per_batch:(k + 1) * per_batch]] == first for k in range(len(batches)))
    monkeypatch.setattr(_triton.Buffers, "take", lambda self, R, C, G, device: (  # a fresh buffer every call
        torch.empty(4, R, C, dtype=torch.float64, device=device),))
    fresh = report(model, batches)
    for a, b in ((reused.neurons, fresh.neurons), (reused.layers, fresh.layers)):
        assert a.equals(b)


def test_compiled_kernel_falls_back_to_eager_without_a_compiler(monkeypatch, tmp_path):
    """No compiler (or SKEW_EAGER set): kernel() is None and report() gives the eager numbers."""
    from skew import _fused

    for env in ({"CC": "no-such-compiler", "PATH": str(tmp_path)}, {"SKEW_EAGER": "1"}):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        monkeypatch.setattr(_fused, "_state", {})
        assert _fused.kernel() is None and not _fused.available()
        assert _fused.neurons(torch.randn(2, 3, 4), 2) is None and _fused.sums(torch.randn(5)) is None
        assert not list((tmp_path / "cache").glob("skew/*.so"))
        z = torch.randn(4, 3, 10)
        part = level1(z, 2)
        assert part.rows == 4 and part.finite is None  # the eager per-row form
        for k in env:
            monkeypatch.delenv(k)


def test_compiled_kernel_that_fails_its_self_test_is_not_used(monkeypatch, tmp_path):
    """A kernel whose results disagree with the float64 reference is dropped, never used."""
    from skew import _fused

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("SKEW_EAGER", raising=False)
    monkeypatch.setattr(_fused, "_state", {})
    monkeypatch.setattr(_fused, "_matches", lambda *a: False)
    assert _fused.kernel() is None


@pytest.mark.parametrize("pd", [1, 2])
def test_cpu_level1_constant_rows_give_exactly_zero_m2_in_both_orientations(pd, cpu_form):
    """Constant rows (and the collapsed P = 1 form, where a neuron is constant over the batch)."""
    z = torch.full((4, 3, 7), -2.7) if pd == 2 else torch.full((4, 7, 3), 1e4 + 0.1)
    part = level1(z, pd)
    assert torch.equal(part.m2, torch.zeros_like(part.m2))
    assert (part.mean == z.to(torch.float64).flatten()[0]).all()
    lin = torch.full((9, 1, 5), 0.3)  # Linear on (B, F): P = 1, the 9 samples collapse into one row
    col = level1(lin, pd=1)
    assert col.samples == 9 and torch.equal(col.m2, torch.zeros_like(col.m2))


def test_all_finite_sees_nonfinite_values_in_z_and_in_the_input(cpu_form):
    from skew.accumulators import all_finite, input_partial

    good = torch.randn(3, 4, 5)
    x = torch.randn(3, 8)
    assert bool(all_finite(level1(good, 2), input_partial(x)))
    for bad in (float("nan"), float("inf"), -float("inf")):
        zb = good.clone()
        zb[1, 2, 3] = bad
        assert not bool(all_finite(level1(zb, 2), input_partial(x)))
        xb = x.clone()
        xb[2, 5] = bad
        assert not bool(all_finite(level1(good, 2), input_partial(xb)))
    zz = good.clone()
    zz[0, 0, 0], zz[2, 3, 1] = float("inf"), -float("inf")  # opposite infinities do not cancel
    assert not bool(all_finite(level1(zz, 2)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_neuron_table_blocks_of_rows_equal_one_float64_copy(dtype, monkeypatch):
    """Row sums and norms computed a few rows at a time are bit-identical to the whole float64 matrix
    (the eager form; the compiled one is checked against exactly rounded sums in test_result_derive)."""
    import skew._fused as fused
    import skew.weights as w

    monkeypatch.setattr(fused, "_state", {"lib": None})  # the eager form (kernel() is None here)
    monkeypatch.setattr(w, "_CHUNK_VALUES", 40)  # many blocks, a ragged last one
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(3, 7, 3), nn.Flatten(), nn.Linear(7 * 4, 11), nn.ConvTranspose1d(2, 5, 3))
    net = net.to(dtype)
    table = w.neuron_table(net)
    for name, layer in (("0", net[0]), ("2", net[2])):
        rows = layer.weight.detach().to(torch.float64).reshape(layer.weight.shape[0], -1)
        got = table[table["layer"] == name]
        assert np.array_equal(got["row_sum"].to_numpy(), rows.sum(1).numpy())
        assert np.array_equal(got["row_norm"].to_numpy(), torch.linalg.vector_norm(rows, dim=1).numpy())
    got = table[table["layer"] == "3"]  # transposed conv: neuron j's rows are the weight's [:, j]
    rows = net[3].weight.detach().to(torch.float64).transpose(0, 1).reshape(5, -1)
    assert np.array_equal(got["row_sum"].to_numpy(), rows.sum(1).numpy())


class _SharedInput(nn.Module):
    """Two layers read the same tensor h; a third reads it after an in-place change."""

    def __init__(self):
        super().__init__()
        self.l0, self.l1, self.l2, self.l3 = nn.Linear(6, 8), nn.Linear(8, 5), nn.Linear(8, 4), nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.l0(x))
        a = self.l1(h)
        b = self.l2(h)
        h.add_(0.75)  # l3 sees the changed values: the cached moments must not be reused
        return a.sum() + b.sum() + self.l3(h).sum()


@pytest.mark.parametrize("split", [False, True])
def test_an_input_shared_by_two_layers_is_read_once_and_in_place_changes_are_seen(cpu_form, split, monkeypatch):
    """Read in the compiled kernel's pass over Z, or on its own (the eager form, or the work split
    over threads: ``split``), each distinct input once."""
    import skew.analyzer as analyzer
    from skew import _fused

    if split:
        monkeypatch.setattr(_fused, "PARALLEL_MIN", 1)
        monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    reads, together = [], []
    real, real_level1 = analyzer.input_partial, analyzer.level1

    def level1(*args, **kwargs):
        part = real_level1(*args, **kwargs)
        if part.inputs is not None:
            together.append(1)
            reads.append(1)
        return part

    monkeypatch.setattr(analyzer, "input_partial", lambda x, *a, **k: reads.append(1) or real(x, *a, **k))
    monkeypatch.setattr(analyzer, "level1", level1)
    torch.manual_seed(5)
    model = _SharedInput()
    gen = torch.Generator().manual_seed(6)
    batches = [torch.randn(16, 6, generator=gen) for _ in range(3)]
    rep = report(model, batches)
    assert len(reads) == 3 * len(batches)  # l0, the shared h once for l1 and l2, l3's changed h
    assert len(together) == (len(reads) if cpu_form == "compiled" and not split else 0)
    for name in ("l1", "l2", "l3"):
        outs, ins = record(model, name, batches)
        check(rep, name, brute(outs, ins, False))
    lay = rep.layers.set_index("layer")
    assert lay.loc["l3", "input_mean"] == pytest.approx(lay.loc["l1", "input_mean"] + 0.75, rel=1e-6)


def test_compiled_kernel_builds_in_a_private_temporary_folder_when_the_cache_is_unwritable(monkeypatch, tmp_path):
    import os
    import tempfile

    from skew import _fused

    _force_cpu_form("compiled", monkeypatch)  # (skips where no compiler built it)
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(_fused, "_state", {})
    assert _fused.available()
    built = list((tmp_path / "tmp" / f"skew-{os.getuid()}").glob("fused-*.so"))
    assert len(built) == 1 and blocker.is_file()


def test_compiled_kernel_without_openmp_in_the_compiler_builds_without_it_once(monkeypatch, tmp_path):
    """A compiler that rejects -fopenmp (injected: a wrapper that fails on it) gives the library
    without OpenMP, whose split runs on Python threads with the same results; the failed variant
    is remembered beside it and not compiled again in the next process."""
    import shutil
    import stat

    from skew import _fused

    _force_cpu_form("compiled", monkeypatch)  # (skips where no compiler built it)
    real = shutil.which("cc") or shutil.which("gcc")
    log = tmp_path / "calls.txt"
    cc = tmp_path / "cc-no-openmp"
    cc.write_text(f'#!/bin/sh\necho "$@" >> {log}\ncase " $* " in *" -fopenmp "*) exit 1;; esac\nexec {real} "$@"\n')
    cc.chmod(cc.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CC", str(cc))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(_fused, "_torch_openmp", lambda: True)
    monkeypatch.setattr(_fused, "_state", {})
    lib = _fused.kernel()
    assert lib is not None and not _fused._openmp(lib)
    attempts = log.read_text().splitlines()
    assert any("-fopenmp" in a for a in attempts) and not all("-fopenmp" in a for a in attempts)
    assert len(list((tmp_path / "cache" / "skew").glob("fused-*-omp.so.failed"))) == 1
    monkeypatch.setattr(_fused, "PARALLEL_MIN", 1)
    z = torch.randn(4, 40, 33)
    with_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        split = _fused.neurons(z, 2, 2, lib=lib)
    finally:
        torch.set_num_threads(with_threads)
    one = _fused.neurons(z, 2, 2, lib=lib)
    assert all(torch.equal(a, b) for a, b in zip(split[:5], one[:5]))
    log.write_text("")
    monkeypatch.setattr(_fused, "_state", {})
    assert _fused.kernel() is not None and log.read_text() == ""  # both outcomes cached: no compiler run
    marker = next((tmp_path / "cache" / "skew").glob("fused-*-omp.so.failed"))
    old = time.time() - _fused.FAILED_RETRY - 60  # a day later, the failed variant is tried once more
    os.utime(marker, (old, old))
    monkeypatch.setattr(_fused, "_state", {})
    assert _fused.kernel() is not None and "-fopenmp" in log.read_text()
    assert marker.stat().st_mtime > old + 60  # failed again: remembered afresh


def test_compiled_kernel_whose_openmp_build_hangs_falls_back_to_the_plain_build(monkeypatch, tmp_path):
    """A compiler run that outlasts BUILD_TIMEOUT (injected: subprocess.run raises TimeoutExpired for the
    -fopenmp build, as it does past its timeout) gives up that variant for this process only, without a
    marker: the plain library is built and used."""
    import subprocess

    from skew import _fused

    _force_cpu_form("compiled", monkeypatch)  # (skips where no compiler built it)
    real_run = subprocess.run
    seen = []

    def run(cmd, *args, **kwargs):
        seen.append((list(cmd), kwargs.get("timeout")))
        if "-fopenmp" in cmd:
            raise subprocess.TimeoutExpired(cmd, kwargs.get("timeout"))
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(_fused.subprocess, "run", run)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(_fused, "_torch_openmp", lambda: True)
    monkeypatch.setattr(_fused, "_state", {})
    lib = _fused.kernel()
    assert lib is not None and not _fused._openmp(lib)
    assert any("-fopenmp" in cmd for cmd, _ in seen) and all(t == _fused.BUILD_TIMEOUT for _, t in seen)
    folder = tmp_path / "cache" / "skew"
    assert not list(folder.glob("*.failed")) and len(list(folder.glob("fused-*.so"))) == 1


def test_host_fold_equals_the_torch_level2_bit_for_bit(monkeypatch):
    """DeviceStats.fold (numpy, per call) and commit(reduce(...)) (torch, vectorised over layers)
    leave identical accumulators: several batches, a layer called twice per batch, B = 1 (no OUI),
    calls with and without input moments, pattern heads."""
    import copy

    from skew.accumulators import DeviceStats, input_partial

    _force_cpu_form("compiled", monkeypatch)
    gen = torch.Generator().manual_seed(11)
    sizes = [5, 12, 7]
    host, dev = DeviceStats(sizes, torch.device("cpu")), DeviceStats(sizes, torch.device("cpu"))
    monkeypatch.setattr(host, "reduce", lambda entries: pytest.fail("fold took the torch path"))
    for batch in range(4):
        B = 1 if batch == 2 else 6
        entries = []
        for li, P in ((0, 9), (1, 1), (2, 30), (1, 1)):  # layer 1 runs twice per batch
            z = torch.randn(B, sizes[li], P, generator=gen) * 3 + 0.4
            part = level1(z, pd=2, head=3)
            assert part.rows == 1 and part.finite is True
            ip = input_partial(torch.randn(B, 4, generator=gen)) if li != 2 else None
            entries.append((li, part, ip))
        host.fold(copy.copy(entries))
        dev.commit(dev.reduce(entries))
    for name in ("n", "pos", "nonfinite", "mean", "m2", "oui_sum", "in_n", "in_mean", "in_m2"):
        assert torch.equal(getattr(host, name), getattr(dev, name)), name
    assert host.oui_batches == dev.oui_batches and host.pattern_count == dev.pattern_count
    for a, b in zip(host.patterns, dev.patterns):
        assert torch.equal(a, b)
