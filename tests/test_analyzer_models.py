"""skew.report end to end on real architectures (torchvision, weights=None) and nn.Transformer blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from skew.analyzer import report


def state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(before: dict, model: nn.Module) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k


def test_resnet18_end_to_end():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    before = state(model)
    x = torch.randn(2, 3, 64, 64)
    rep = report(model, [(x, torch.zeros(2, dtype=torch.int64))], mode="train")
    assert_same_state(before, model)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert list(rep.layers["layer"]) == [*convs, "fc"]
    assert len(rep.neurons) == sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)) + 1000
    assert (rep.neurons["nonfinite"] == 0).all()
    lay = rep.layers.set_index("layer")
    assert lay.loc["conv1", "samples"] == 2 * 32 * 32 and lay.loc["fc", "samples"] == 2
    assert lay.loc["layer1.0.conv1", "shape"] == "(64, 64, 3, 3)"
    # the first conv sees the raw N(0,1) image; every later layer sees post-ReLU maps (positive mean)
    assert abs(lay.loc["conv1", "input_mean"] - float(x.mean())) < 1e-6
    assert (lay["input_mean"].drop("conv1") > 0).all()
    kinds = rep.skipped.groupby("type")["reason"].first()
    assert kinds["BatchNorm2d"].startswith("unsupported") and kinds["BasicBlock"].startswith("container")
    assert all(rep.signs[n].shape == (2, min(250, c)) for n, c in zip(lay.index, lay["neurons"]))


@pytest.mark.slow
def test_vit_b_16_end_to_end_measures_attention_projections():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None)
    before = state(model)
    rep = report(model, [torch.randn(2, 3, 224, 224)])
    assert_same_state(before, model)
    lay = rep.layers.set_index("layer")
    block = "encoder.layers.encoder_layer_0"
    for suffix in ("q_proj", "k_proj", "v_proj", "out_proj"):
        name = f"{block}.self_attention.{suffix}"
        assert lay.loc[name, "neurons"] == 768 and lay.loc[name, "samples"] == 2 * 197
    assert lay.loc[f"{block}.mlp.0", "samples"] == 2 * 197 and lay.loc["conv_proj", "samples"] == 2 * 14 * 14
    assert lay.loc["heads.head", "samples"] == 2
    assert len(rep.layers) == 1 + 12 * 6 + 1
    assert not rep.skipped["reason"].str.startswith("never").any()


def test_transformer_encoder_blocks_are_measured_not_fast_pathed():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True, dropout=0.0)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        expected = model(x)
    rep = report(model, [x])
    lay = rep.layers.set_index("layer")
    for i in range(2):
        for suffix in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                       "linear1", "linear2"):
            assert lay.loc[f"layers.{i}.{suffix}", "samples"] == 15
    with torch.no_grad():
        np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-6)  # model unchanged


def test_layer_selection_by_glob_type_predicate_and_projection_name():
    torch.manual_seed(0)
    model = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True), 1, enable_nested_tensor=False)
    x = [torch.randn(2, 3, 8)]
    assert list(report(model, x, layers="*.linear*").layers["layer"]) == ["layers.0.linear1", "layers.0.linear2"]
    assert list(report(model, x, layers=["layers.0.self_attn.k_proj"]).layers["layer"]) == [
        "layers.0.self_attn.k_proj"]
    by_type = report(model, x, layers=nn.MultiheadAttention).layers["layer"]
    assert [n.rsplit(".", 1)[1] for n in by_type] == ["q_proj", "k_proj", "v_proj"]
    no_proj = report(model, x, layers=lambda name, m: not name.endswith("_proj"))
    assert "layers.0.self_attn" in set(no_proj.skipped["module"])
    assert list(no_proj.layers["layer"]) == ["layers.0.linear1", "layers.0.linear2"]
