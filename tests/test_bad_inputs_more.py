"""Bad input, more classes (audit): each case gets a clear one-line SkewError (or the right result), and
nothing the user owns changes: weights stay bit-identical when an init is refused, no file is left
behind, a saved comparison that was edited is refused rather than read into a silently smaller one.
"""

from __future__ import annotations

import json
import shutil

import matplotlib
import numpy as np
import pytest
import torch
from fuzzutil import cli_clear_error, untouched
from fuzzutil import raises_clear as _raises
from torch import nn

import skew
from skew import theory
from skew.batches import to_device
from skew.layers import select_units

matplotlib.use("Agg")


def _mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def _x() -> torch.Tensor:
    return torch.randn(16, 4, generator=torch.Generator().manual_seed(2))




@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


# ---- layers= predicates -------------------------------------------------------------------------------
@pytest.mark.parametrize("pred", [lambda name: True, lambda name, module, extra: True, len],
                         ids=["one-arg", "three-args", "builtin-len"])
def test_layers_predicate_of_the_wrong_arity_is_named(pred):
    model = _mlp()
    with untouched(model):
        _raises(lambda: select_units(model, pred), "f(name, module)")
        _raises(lambda: skew.report(model, [_x()], layers=pred, progress=False), "f(name, module)")
    before = [p.detach().clone() for p in model.parameters()]
    _raises(lambda: skew.init.apply(model, "sinusoidal", layers=pred), "f(name, module)")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_layers_predicate_with_varargs_still_works():
    assert [u.name for u in select_units(_mlp(), lambda *a: True)] == ["0", "2"]


# ---- batches -------------------------------------------------------------------------------------------
def test_meta_batch_is_refused_with_its_description():
    model = _mlp()
    with untouched(model):
        _raises(lambda: skew.report(model, [torch.empty(16, 4, device="meta")], progress=False), "meta", "no values")
    _raises(lambda: to_device({"x": torch.empty(2, device="meta")}, torch.device("cpu")), "meta")
    assert to_device(torch.empty(2, device="meta"), torch.device("meta")).is_meta  # meta to meta is no copy


# ---- init.apply on weights that cannot hold a scheme ---------------------------------------------------
def _with(weight=None, bias=None) -> nn.Module:
    lin = nn.Linear(4, 3)
    if weight is not None:
        lin.weight = nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        lin.bias = nn.Parameter(bias, requires_grad=False)
    return nn.Sequential(lin, nn.ReLU(), nn.Linear(3, 2))


@pytest.mark.parametrize("scheme", ["sinusoidal", "idinit", "default", "xavier_uniform", "orthogonal", "arcsine"])
@pytest.mark.parametrize("case", ["int-weight", "bool-weight", "complex-weight", "int-bias"])
def test_init_refuses_non_floating_weights_before_any_write(scheme, case):
    weight = {"int-weight": torch.full((3, 4), 7, dtype=torch.int64),
              "bool-weight": torch.ones(3, 4, dtype=torch.bool),
              "complex-weight": torch.ones(3, 4, dtype=torch.complex64)}.get(case)
    bias = torch.zeros(3, dtype=torch.int64) if case == "int-bias" else None
    model = _with(weight, bias)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _raises(lambda: skew.init.apply(model, scheme, bias=0.0 if scheme == "default" else 0.5), "dtype", "model.float()")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the float layer after it was not set either


def test_init_refuses_meta_weights_instead_of_reporting_them_set():
    model = nn.Sequential(nn.Linear(4, 3, device="meta"))
    _raises(lambda: skew.init.apply(model, "sinusoidal"), "meta", "to_empty")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("scheme", ["orthogonal", "lsuv"])
def test_orthogonal_schemes_work_in_half_precision(dtype, scheme):
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3)).to(dtype)
    table = skew.init.apply(model, scheme, data=torch.randn(32, 8, dtype=dtype),
                            generator=torch.Generator().manual_seed(0))
    assert (table.loc[table.parameter == "weight", "action"] == "set").all()
    w = model[0].weight.float()
    if scheme == "orthogonal":  # orthonormal rows, to the dtype's precision
        assert torch.allclose(w @ w.T, torch.eye(4), atol=2e-2)
    assert model[0].weight.dtype == dtype


def test_lsuv_on_an_empty_batch_says_empty_not_nan():
    err = _raises(lambda: skew.init.apply(_mlp(), "lsuv", data=torch.zeros(0, 4)), "empty", "(0, 4)")
    assert "NaN" not in str(err)


# ---- theory ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda: theory.threshold(0.3, "many", 0.1, 0.5, 1.0),
    lambda: theory.threshold(0.3 + 1j, 100, 0.1, 0.5, 1.0),
    lambda: theory.threshold([[0.1], [0.2, 0.3]], 100, 0.1, 0.5, 1.0),
    lambda: theory.threshold({"a": 1}, 100, 0.1, 0.5, 1.0),
    lambda: theory.threshold(0.3, 100, 0.1, "x", 1.0),
    lambda: theory.predicted_p("a", 1.0, 0.5, 1.0),
    lambda: theory.predicted_p(1.0, 1.0, 0.5, 1.0, bias="x"),
    lambda: theory.expected_skewed_fraction("a", 0.5, 1.0),
    lambda: theory.skewed_fraction_curve(alphas="abc"),
], ids=["n-word", "alpha-complex", "alpha-ragged", "alpha-dict", "mean-word", "rowsum-word", "bias-word",
        "esf-word", "curve-alphas-word"])
def test_theory_names_the_argument_that_is_not_a_number(call):
    _raises(call, "must be a real number")


@pytest.mark.parametrize("call", [
    lambda: theory.threshold([0.1, 0.2, 0.3], [10, 20], 0.1, 0.5, 1.0),
    lambda: theory.predicted_p([1.0, 2.0, 3.0], [1.0, 2.0], 0.5, 1.0),
    lambda: theory.expected_skewed_fraction([0.1, 0.2, 0.3], [0.5, 0.6], 1.0),
], ids=["threshold", "predicted_p", "expected_skewed_fraction"])
def test_theory_mismatched_lengths_are_named(call):
    _raises(call, "do not broadcast")


def test_theory_broadcasting_that_numpy_allows_still_works():
    out = theory.predicted_p([0.0, 1.0], 1.0, 0.4, [0.6, 0.6])
    assert out.shape == (2,) and out[0] == 0.5


@pytest.mark.parametrize("shape", [(3.5, 4), (True, 4), ("3", 4.2)])
def test_theory_shapes_must_be_whole_numbers(shape):
    _raises(lambda: theory.weight_variance("sinusoidal", shape), "tuple of ints")


def test_theory_whole_float_and_numpy_shapes_still_work():
    assert theory.weight_variance("xavier_uniform", (200.0, np.int64(300))) == 0.004


def test_skewed_fraction_curve_with_no_laws_is_named():
    _raises(lambda: theory.skewed_fraction_curve(laws=[]), "laws is empty")


# ---- plots ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rep():
    return skew.report(_mlp(), [_x()], progress=False)


@pytest.mark.parametrize("call,words", [
    (lambda r: r.plot_skew_hist(ax=3), ("ax must be a matplotlib Axes",)),
    (lambda r: r.plot_skew_hist(bins=float("nan")), ("bins=nan",)),
    (lambda r: r.plot_skew_hist(bins=0), ("bins=0",)),
    (lambda r: r.plot_skew_hist(bins="a"), ("bins='a'",)),
    (lambda r: r.plot_rowsum_hist(binwidth="a"), ("binwidth='a'",)),
    (lambda r: r.plot_rowsum_hist(binwidth=1e-12), ("bins over the row sums",)),
    (lambda r: r.plot_skew_vs_rowsum(thresholds=[0.7]), ("thresholds=[0.7]",)),
    (lambda r: r.plot_skew_vs_rowsum(thresholds=[float("nan")]), ("strictly between 0 and 0.5",)),
    (lambda r: r.plot_skew_vs_rowsum(thresholds="a"), ("thresholds='a'",)),
    (lambda r: r.plot_activation_states(max_samples=0), ("max_samples=0",)),
    (lambda r: r.plot_activation_states(max_samples=-1), ("max_samples=-1",)),
    (lambda r: r.plot_activation_states(max_neurons=1.5), ("max_neurons=1.5",)),
    (lambda r: r.plot_skew_fraction_vs_alpha(alphas="x"), ("alphas",)),
], ids=["ax-int", "bins-nan", "bins-0", "bins-word", "binwidth-word", "binwidth-tiny", "thresholds-out",
        "thresholds-nan", "thresholds-word", "max-samples-0", "max-samples-neg", "max-neurons-float", "alphas-word"])
def test_report_plots_name_the_bad_argument(rep, call, words):
    _raises(lambda: call(rep), *words)


@pytest.mark.parametrize("weight,words", [
    (None, ("NoneType",)), ("abc", ("str",)), (torch.empty(3, 3, device="meta"), ("meta",)),
    (torch.ones(3, 3, dtype=torch.complex64), ("complex",)),
], ids=["none", "word", "meta", "complex"])
def test_weight_plots_name_what_is_not_a_weight(weight, words):
    _raises(lambda: skew.plot.weight_hist(weight), *words)
    _raises(lambda: skew.plot.weight_heatmap(weight), *words)


def test_weight_plot_arguments_are_checked():
    _raises(lambda: skew.plot.weight_hist(torch.randn(3, 3), bins=0), "bins=0")
    _raises(lambda: skew.plot.weight_heatmap(torch.tensor(1.0)), "single number")
    _raises(lambda: skew.plot.weight_heatmap(torch.randn(3, 3), cmap="nocmap"), "colormap")
    assert "auto bins" in skew.plot.weight_hist(torch.randn(5, 5), bins="auto").get_title()  # numpy rules pass


# ---- compare / Comparison -------------------------------------------------------------------------------
@pytest.mark.parametrize("schemes", [None, 3])
def test_compare_schemes_that_are_no_list(schemes):
    _raises(lambda: skew.compare(_mlp, [_x()], schemes=schemes), "not a list of scheme names")


@pytest.fixture(scope="module")
def cmp():
    return skew.compare(_mlp, [_x()], schemes=["default", "sinusoidal"])


def test_comparison_schemes_must_match_its_reports(cmp):
    _raises(lambda: skew.Comparison(cmp.reports, schemes=["x"]), "does not match the reports")
    _raises(lambda: skew.Comparison(cmp.reports, seeds=[0, 1]), "does not match the reports")


def test_comparison_save_and_load_paths(cmp, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    _raises(lambda: cmp.save(afile), "is a file")
    assert afile.read_text() == "keep me\n"
    for bad in (None, 3, ""):
        _raises(lambda bad=bad: cmp.save(bad), "directory path")
        _raises(lambda bad=bad: skew.Comparison.load(bad), "directory path")
    _raises(lambda: skew.Comparison.load(afile), "is a file")


@pytest.mark.parametrize("edit,words", [
    (lambda m: m.__setitem__("reports", 3), ("'reports'",)),
    (lambda m: m["reports"][0].pop("file"), ("lacks",)),
    (lambda m: m["reports"].__setitem__(0, "x"), ("lacks",)),
    (lambda m: m["reports"][0].__setitem__("seed", "abc"), ("seed 'abc'",)),
    (lambda m: m["reports"][0].__setitem__("file", "../elsewhere/000.skew.zip"), ("inside the directory",)),
    (lambda m: m["reports"][0].__setitem__("file", "/etc/passwd"), ("inside the directory",)),
    (lambda m: m["reports"].append(dict(m["reports"][0])), ("listed twice",)),
    (lambda m: m.__setitem__("schemes", ["x"]), ("does not match",)),
    (lambda m: m.__setitem__("seeds", "x"), ("'seeds'",)),
], ids=["reports-int", "no-file", "entry-word", "seed-word", "traversal", "absolute", "duplicate", "schemes",
        "seeds-word"])
def test_an_edited_comparison_manifest_is_refused(cmp, tmp_path, edit, words):
    cmp.save(tmp_path / "c")
    manifest = tmp_path / "c" / "comparison.json"
    meta = json.loads(manifest.read_text())
    edit(meta)
    manifest.write_text(json.dumps(meta))
    _raises(lambda: skew.Comparison.load(tmp_path / "c"), *words)


def test_a_saved_comparison_still_loads(cmp, tmp_path):
    cmp.save(tmp_path / "c")
    shutil.copytree(tmp_path / "c", tmp_path / "d")
    back = skew.Comparison.load(tmp_path / "d")
    assert back.schemes == cmp.schemes and back.summary().equals(cmp.summary())


# ---- command line ---------------------------------------------------------------------------------------
MLP = ["--model", "mlp", "-o", "depth=2", "-o", "width=8", "-o", "in_features=4"]
DATA = ["--data", "gaussian", "--batches", "1", "--batch-size", "8"]


def _cli(argv, capsys):
    from skew.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv,words", [
    (["report", *MLP, "-o", "depth=3", *DATA], ("given twice",)),
    (["report", *MLP, "-o", "=3", *DATA], ("no KEY",)),
    (["report", *MLP, *DATA, "--out", ""], ("empty path",)),
    (["inspect", *MLP, "--out", " "], ("empty path",)),
    (["plot", "--init", "sinusoidal", "--out", ""], ("empty path",)),
    (["figures", "--out", ""], ("empty path",)),
    (["train", "--out", ""], ("empty path",)),
], ids=["option-twice", "option-no-key", "report-out-empty", "inspect-out-blank", "plot-out-empty",
        "figures-out-empty", "train-out-empty"])
def test_cli_bad_arguments_exit_2(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(argv, capsys)
    cli_clear_error(code, err, 2)
    assert all(w in err for w in words), err
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere


def test_cli_out_of_memory_is_one_line(capsys, monkeypatch):
    import skew.data

    def huge(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 1600000000000 bytes")

    monkeypatch.setattr(skew.data, "build_data", huge)
    code, _, err = _cli(["report", *MLP, *DATA], capsys)
    cli_clear_error(code, err, 1)
    assert "out of memory" in err and "--batch-size" in err


def test_cli_report_notes_nonfinite_data(capsys, tmp_path):
    path = tmp_path / "nan.npy"
    np.save(path, np.full((8, 4), np.nan, dtype=np.float32))
    code, out, err = _cli(["report", *MLP, "--data", str(path)], capsys)
    assert code == 0
    assert "non-finite" in err and "fc1" in err


# ---- Tracker: checked when built, not at the first measured step ---------------------------------------
@pytest.mark.parametrize("kwargs,words", [
    ({"input_fn": 3}, ("input_fn",)),
    ({"layers": "zz"}, ("no module named 'zz'",)),
    ({"layers": lambda name: True}, ("f(name, module)",)),
    ({"device": "gpu"}, ("not a torch device",)),
    ({"probe": torch.zeros(0, 4)}, ("probe batch is empty",)),
], ids=["input-fn-int", "layers-unknown", "predicate-arity", "device-word", "probe-empty"])
def test_tracker_checks_its_arguments_when_built(kwargs, words):
    model = _mlp()
    kwargs = {"probe": _x(), **kwargs}
    with untouched(model):
        _raises(lambda: skew.Tracker(model, kwargs.pop("probe"), **kwargs), *words)


# ---- models, data, seeding, oui -------------------------------------------------------------------------
@pytest.mark.parametrize("builder,kwargs", [
    (skew.models.mlp, {"bias": "no"}), (skew.models.mlp, {"pre_activation": "x"}), (skew.models.mlp, {"bias": 2}),
    (skew.models.cnn, {"bias": "no"}),
], ids=["mlp-bias-word", "mlp-pre-activation-word", "mlp-bias-2", "cnn-bias-word"])
def test_model_flags_that_are_no_bool_are_refused(builder, kwargs):
    _raises(lambda: builder(**kwargs), "must be True or False")  # bool('no') is True: biases were built


def test_model_flags_spelled_on_the_command_line_are_read():
    assert skew.models.mlp(depth=1, width=2, bias="false").fc1.bias is None
    assert skew.models.mlp(depth=1, width=2, bias="True").fc1.bias is not None
    assert skew.models.mlp(depth=1, width=2, bias=None).fc1.bias is None


def test_cli_bias_false_builds_no_bias(capsys, tmp_path):
    code, out, err = _cli(["inspect", "--model", "mlp", "-o", "depth=1", "-o", "width=4", "-o", "bias=false"], capsys)
    assert code == 0, err
    code, _, err = _cli(["inspect", "--model", "mlp", "-o", "depth=1", "-o", "bias=no"], capsys)
    cli_clear_error(code, err, 1)
    assert "True or False" in err


@pytest.mark.parametrize("dropout", ["x", None, True])
def test_transformer_dropout_that_is_no_number(dropout):
    _raises(lambda: skew.models.transformer(dropout=dropout), "dropout=")


@pytest.mark.parametrize("shape", [(4.5,), (True,), (3, 2.5)])
def test_data_shapes_must_be_whole_numbers(shape):
    _raises(lambda: skew.data.build_data("gaussian", shape=shape), "per-sample shape")


def test_seeding_generator_on_a_device_that_is_none():
    _raises(lambda: skew.seeding.generator(0, "data", device="gpu"), "device='gpu'")


@pytest.mark.parametrize("call,words", [
    (lambda: skew.oui.default_pairs("a"), ("integer",)),
    (lambda: skew.oui.batch_oui(np.random.default_rng(0).random((4, 3))), ("boolean",)),
    (lambda: skew.oui.pairwise_oui(np.full((4, 3), np.nan)), ("boolean",)),
    (lambda: skew.oui.batch_oui("abc"), ("boolean array",)),
    (lambda: skew.oui.oui_from_p(np.array([1.5, -0.2])), ("[0, 1]",)),
    (lambda: skew.oui.oui_from_p("a"), ("probabilities",)),
], ids=["pairs-word", "batch-floats", "pairwise-nan", "batch-word", "p-out-of-range", "p-word"])
def test_oui_inputs_that_are_no_patterns_or_probabilities(call, words):
    _raises(call, *words)


def test_oui_accepts_0_1_ints_and_nan_p():
    assert skew.oui.batch_oui(np.array([[1, 1], [0, 1]])) == 0.5
    assert skew.oui.oui_from_p(np.array([np.nan, 0.5])) == 1.0


@pytest.mark.parametrize("argv,words", [
    (["plot", "--init", "sinusoidal", "--model", "mlp", "-o", "depth=2", "-o", "width=8", "--layer", "", "--out", "p.png"],
     ("names no layer",)),
    (["compare", *MLP, *DATA, "--inits", "sinusoidal,sinusoidal"], ("repeats a scheme",)),
], ids=["plot-layer-empty", "compare-inits-repeated"])
def test_cli_more_bad_arguments_exit_2(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(argv, capsys)
    cli_clear_error(code, err, 2)
    assert all(w in err for w in words), err
    assert list(tmp_path.iterdir()) == []


def test_a_layer_whose_weight_is_none_is_named_as_such():
    model = nn.Sequential(nn.Linear(4, 3))
    model[0].weight = None
    for call in (lambda: skew.report(model, [_x()], progress=False), lambda: skew.weights.layer_table(model)):
        _raises(call, "'0' (Linear)", "no weight tensor")  # was: "has no Linear, Conv ... layers"


def test_comparison_summary_percent_must_be_a_bool(cmp):
    _raises(lambda: cmp.summary(percent="no"), "True or False")
    assert cmp.summary(percent=True).to_numpy().max() <= 100.0


@pytest.mark.parametrize("fn", ["sinusoidal_", "idinit_", "idiz_", "arcsine_"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_in_place_inits_refuse_weights_that_cannot_hold_real_values(fn, dtype):
    weight = torch.ones(3, 4, dtype=dtype)
    _raises(lambda: getattr(skew.init, fn)(weight), "floating-point", "weight.float()")
    assert torch.equal(weight, torch.ones(3, 4, dtype=dtype))  # sinusoidal_ wrote all zeros into an int64 weight


def test_sinusoidal_amplitude_reads_only_the_shape():
    assert skew.init.sinusoidal_amplitude(torch.zeros(3, 4, dtype=torch.int64)) == skew.init.sinusoidal_amplitude(
        torch.zeros(3, 4))


# ---- report(): activation sites, loaders, meta models, empty layers, masks ------------------------------
@pytest.mark.parametrize("layers", [3, lambda name: True], ids=["int", "one-arg-predicate"])
def test_report_at_activations_names_a_layers_argument_it_cannot_read(layers):
    model = _mlp()
    with untouched(model):
        _raises(lambda: skew.report(model, [_x()], at="activations", layers=layers, progress=False), "layers")


class _BadLength:
    """A loader that iterates fine but whose len() fails with something other than TypeError."""

    def __iter__(self):
        return iter([_x()])

    def __len__(self):
        raise ValueError("__len__() should return >= 0")


def test_a_loader_whose_len_fails_is_still_read():
    rep = skew.report(_mlp(), _BadLength(), progress=True)
    assert rep.layers["samples"].tolist() == [16, 16]


@pytest.mark.parametrize("at", ["layers", "activations"])
def test_a_model_on_the_meta_device_is_named(at):
    model = _mlp().to("meta")
    _raises(lambda: skew.report(model, [_x()], at=at, progress=False), "meta device", "to_empty")


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_layers_without_output_units_are_named():
    model = nn.Sequential(nn.Linear(4, 0))
    with untouched(model):
        _raises(lambda: skew.report(model, [_x()], progress=False), "no output units")


@pytest.mark.parametrize("mask", [torch.tensor([[1, 2]]), torch.tensor([[1.0, 0.5]]), torch.tensor([[-1, 0]])],
                         ids=["int-2", "float-half", "int-minus-1"])
def test_a_mask_with_values_other_than_0_and_1_is_refused_for_every_dtype(mask):
    model, x = _mlp(), torch.randn(1, 2, 4)
    with untouched(model):
        _raises(lambda: skew.report(model, [x], mask_fn=lambda b: mask, progress=False), "other than 0 and 1")


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8, torch.float32, torch.bool])
def test_a_0_1_mask_of_any_dtype_counts_its_ones(dtype):
    mask = torch.tensor([[1, 0, 1]]).to(dtype)
    rep = skew.report(_mlp(), [torch.randn(1, 3, 4)], mask_fn=lambda b: mask, progress=False)
    assert rep.layers["samples"].tolist() == [2, 2]


# ---- positive integers (skew._checks.positive_int: models, hub models, plots) ------------------------------
@pytest.mark.parametrize("value", [0, -3, 1.5, float("nan"), True, "16", None])
def test_model_sizes_that_are_no_positive_integer_are_named(value):
    _raises(lambda: skew.models.build_model("mlp", width=value), "width=", "positive integer")


@pytest.mark.parametrize("value", [16.0, np.int64(16)])
def test_model_sizes_given_as_whole_floats_or_numpy_ints_build_the_same_model(value):
    got = skew.models.build_model("mlp", width=value, depth=2)
    want = skew.models.build_model("mlp", width=16, depth=2)
    assert [tuple(p.shape) for p in got.parameters()] == [tuple(p.shape) for p in want.parameters()]
    assert all(type(m.in_features) is int for m in got.modules() if isinstance(m, nn.Linear))
