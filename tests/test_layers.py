"""skew.layers: the one selection rule, shared by init, weights and report."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import skew
from skew.errors import SkewError
from skew.layers import select_layers, select_units, weight_matrix


def _encoder():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


ATTN = "layers.0.self_attn"
BLOCKS = [f"{ATTN}.q_proj", f"{ATTN}.k_proj", f"{ATTN}.v_proj", f"{ATTN}.out_proj"]


@pytest.mark.parametrize(
    "spec, expected",
    [
        (ATTN, BLOCKS),
        ("*.v_proj", ["layers.0.self_attn.v_proj", "layers.1.self_attn.v_proj"]),
        ("layers.1.linear2", ["layers.1.linear2"]),
        ([f"{ATTN}.k_proj", "layers.0.linear1"], [f"{ATTN}.k_proj", "layers.0.linear1"]),
        (nn.MultiheadAttention, [f"layers.{i}.self_attn.{p}_proj" for i in (0, 1) for p in "qkv"]),
    ],
)
def test_select_units_by_name_glob_and_type(spec, expected):
    assert [u.name for u in select_units(_encoder(), spec)] == expected


def test_init_weights_and_report_select_the_same_units():
    """The same layers= reaches the same weight matrices everywhere (they once parsed it apart)."""
    for spec in (ATTN, "*.q_proj", ["layers.1.linear1", f"{ATTN}.v_proj"]):
        model = _encoder()
        expected = [u.name for u in select_units(model, spec)]
        table = skew.init.apply(model, "sinusoidal", layers=spec)
        assert list(dict.fromkeys(table.loc[table.action == "set", "module"])) == expected, spec
        assert list(dict.fromkeys(skew.weights.neuron_table(model, spec)["layer"])) == expected, spec
        rep = skew.report(model, torch.randn(5, 3, 8), layers=spec)
        assert list(rep.layers["layer"]) == expected, spec


def test_blocks_are_views_of_the_packed_weight():
    model = _encoder()
    q = select_units(model, f"{ATTN}.q_proj")[0]
    with torch.no_grad():
        q.weight.fill_(3.0)
    assert torch.all(model.layers[0].self_attn.in_proj_weight[:8] == 3.0)
    assert not torch.any(model.layers[0].self_attn.in_proj_weight[8:] == 3.0)


def test_predicate_sees_the_attention_module_for_blocks():
    seen = {}
    select_units(_encoder(), lambda name, mod: seen.setdefault(name, type(mod).__name__) and False)
    assert seen[f"{ATTN}.q_proj"] == "MultiheadAttention"
    assert seen[f"{ATTN}.out_proj"] == "NonDynamicallyQuantizableLinear"


def test_generator_spec_is_read_once():
    names = (n for n in ["layers.0.linear1", "layers.1.linear1"])
    assert [u.name for u in select_units(_encoder(), names)] == ["layers.0.linear1", "layers.1.linear1"]


def test_lazy_and_non_layer_modules_are_left_out():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.LazyLinear(2))
    assert [n for n, _ in select_layers(net)] == ["0"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("layers.0.self_atn", r"no module named 'layers.0.self_atn'.*did you mean 'layers.0.self_attn'"),
        ([3], r"layers entry 3 is not a name, glob or module type"),
        (42, r"layers=42 is not understood"),
    ],
)
def test_bad_specs_name_the_problem_and_the_fix(spec, message):
    with pytest.raises(SkewError, match=message):
        select_units(_encoder(), spec)


def test_a_name_with_no_close_match_lists_the_layers_there_are():
    # a new user's 'fc1' on a Sequential, whose layers are called '0', '2': no close match to suggest
    net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3))
    with pytest.raises(SkewError, match=r"no module named 'fc1' in Sequential; its layers are '0', '2'; use"):
        select_units(net, "fc1")
    wide = nn.Sequential(*[nn.Linear(2, 2) for _ in range(11)])
    with pytest.raises(SkewError, match=r"its layers are '0', '1', .*'7' and 3 more; use"):
        select_units(wide, "fc1")


def test_not_a_module():
    with pytest.raises(SkewError, match="expected a torch.nn.Module"):
        select_units("resnet18")


def test_weight_matrix_flattens_conv_row_major_and_rejects_1d():
    w = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    assert torch.equal(weight_matrix(w)[1], w[1].flatten())
    with pytest.raises(SkewError, match="at least 2 dimensions"):
        weight_matrix(torch.zeros(4))
