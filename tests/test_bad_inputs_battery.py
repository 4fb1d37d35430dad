"""Bad-input battery over the public surface: every class of bad value (wrong type, None, bool for a number,
tensors that cannot be written, hand-built objects, ...) gets one clear one-line SkewError naming the argument,
and nothing the user owns changes; valid-but-unusual values (bfloat16, tensors that require grad) keep working.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fuzzutil import raises_clear as _raises
from fuzzutil import untouched
from torch import nn

import skew
from skew import theory
from skew.init.lsuv import LsuvTarget


# ---- theory: None and bools are no numbers; tensors of any real dtype are -------------------------------
@pytest.mark.parametrize("call,name", [
    (lambda v: theory.predicted_p(v, 1.0, 0.5, 1.0), "row_sum"),
    (lambda v: theory.predicted_p(1.0, v, 0.5, 1.0), "row_norm"),
    (lambda v: theory.predicted_p(1.0, 1.0, 0.5, 1.0, bias=v), "bias"),
    (lambda v: theory.threshold(0.3, v, 0.1, 0.5, 1.0), "n"),
    (lambda v: theory.expected_skewed_fraction(0.3, 0.5, v), "input_std"),
], ids=["row_sum", "row_norm", "bias", "n", "input_std"])
@pytest.mark.parametrize("value", [None, True, [None, 1.0], np.array([True, False]), torch.tensor([True])],
                         ids=["none", "bool", "list-with-none", "bool-array", "bool-tensor"])
def test_theory_refuses_none_and_bools_instead_of_reading_nan_or_one(call, name, value):
    _raises(lambda: call(value), f"{name} must be a real number")  # None read as NaN, True as 1


@pytest.mark.parametrize("value", [torch.tensor([1.0, 2.0], dtype=torch.bfloat16), torch.ones(2, requires_grad=True),
                                   torch.tensor([1, 2]), torch.tensor([1.0, 2.0], dtype=torch.float16)],
                         ids=["bfloat16", "requires-grad", "int64", "float16"])
def test_theory_reads_tensors_of_any_real_dtype(value):
    want = theory.predicted_p(value.detach().double().numpy(), 1.0, 0.5, 1.0)
    assert np.array_equal(theory.predicted_p(value, 1.0, 0.5, 1.0), want)


def test_theory_refuses_meta_and_complex_tensors():
    _raises(lambda: theory.predicted_p(torch.empty(2, device="meta"), 1.0, 0.5, 1.0), "row_sum must be a real")
    _raises(lambda: theory.threshold(torch.ones(2, dtype=torch.complex64), 10, 0.1, 0.5, 1.0), "alpha must be a real")


def test_skewed_fraction_curve_with_no_alphas_is_named():
    _raises(lambda: theory.skewed_fraction_curve(alphas=[]), "alphas is empty")  # was: an empty table


# ---- skew.init: in-place functions, sinusoidal_variance, hand-built Schemes, lsuv_rescale ---------------
_FILLS = {"sinusoidal_": lambda t: skew.init.sinusoidal_(t), "idinit_": lambda t: skew.init.idinit_(t),
          "idiz_": lambda t: skew.init.idiz_(t), "arcsine_": lambda t: skew.init.arcsine_(t)}


@pytest.mark.parametrize("fn", list(_FILLS))
def test_in_place_inits_refuse_sparse_tensors(fn):
    w = torch.ones(3, 4).to_sparse()
    _raises(lambda: _FILLS[fn](w), fn, "dense", "sparse_coo")
    assert torch.equal(w.to_dense(), torch.ones(3, 4))


@pytest.mark.parametrize("fn", list(_FILLS))
def test_in_place_inits_refuse_expanded_views(fn):
    base = torch.ones(1, 4)
    _raises(lambda: _FILLS[fn](base.expand(3, 4)), fn, "share memory", "clone()")
    assert torch.equal(base, torch.ones(1, 4))


@pytest.mark.parametrize("fn", list(_FILLS))
def test_in_place_inits_still_fill_non_contiguous_views(fn):
    w = torch.zeros(4, 3).t()  # a transposed view: strides (1, 3), every entry its own memory
    want = _FILLS[fn](torch.zeros(3, 4)) if fn != "arcsine_" else None
    _FILLS[fn](w)
    if want is not None:
        assert torch.equal(w, want)
    assert w.abs().sum() > 0


@pytest.mark.parametrize("generator", ["x", 0, object()], ids=["word", "int", "object"])
def test_arcsine_names_a_generator_that_is_none(generator):
    w = torch.zeros(3, 4)
    state = torch.get_rng_state()
    _raises(lambda: skew.init.arcsine_(w, generator=generator), "arcsine_: generator must be a torch.Generator")
    assert not w.any() and torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("m,n,word", [("8", 4, "m="), (8, None, "n="), ([8], 4, "m="), (8, 1.5, "n="),
                                      (True, 4, "m="), (0, 4, "m="), (8, float("nan"), "n=")],
                         ids=["m-word", "n-none", "m-list", "n-float", "m-bool", "m-zero", "n-nan"])
def test_sinusoidal_variance_names_a_size_that_is_no_positive_integer(m, n, word):
    _raises(lambda: skew.init.sinusoidal_variance(m, n), word, "positive integer")


def test_sinusoidal_variance_still_takes_whole_floats_and_numpy_ints():
    assert skew.init.sinusoidal_variance(64.0, np.int64(200)) == skew.init.sinusoidal_variance(64, 200)


@pytest.mark.parametrize("scheme,words", [
    (skew.init.Scheme("nope"), ("unknown init scheme 'nope'",)),
    (skew.init.Scheme("uniform", options=3), ("options must be a dict",)),
    (skew.init.Scheme("uniform", options={"a": "x"}), ("a='x'",)),
    (skew.init.Scheme("uniform", options={"b": 1.0}), ("no option b",)),
    (skew.init.Scheme(3), ("Scheme name must be a name",)),
], ids=["unknown-name", "options-int", "option-word", "option-unknown", "name-int"])
def test_hand_built_schemes_are_checked_like_spelled_ones(scheme, words):
    model = nn.Linear(4, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _raises(lambda: skew.init.apply(model, scheme), *words)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_hand_built_scheme_without_options_gets_the_defaults():
    table = skew.init.apply(nn.Linear(4, 3), skew.init.Scheme("orthogonal"), generator=torch.Generator().manual_seed(0))
    assert (table.loc[table.parameter == "weight", "action"] == "set").all()
    assert skew.init.get_scheme(skew.init.Scheme("glorot")) == skew.init.get_scheme("xavier_uniform")


@pytest.mark.parametrize("value", ["yes", None, 1], ids=["word", "none", "int"])
def test_schemes_aliases_must_be_a_bool(value):
    _raises(lambda: skew.init.schemes(aliases=value), f"aliases={value!r} must be True or False")


def _lsuv_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    return net, [LsuvTarget(str(i), net[i], net[i].weight) for i in (0, 2)]


@pytest.mark.parametrize("kwargs,words", [
    ({"model": "net"}, ("torch.nn.Module",)),
    ({"targets": "0"}, ("list of LsuvTarget",)),
    ({"targets": [0, 2]}, ("list of LsuvTarget", "int")),
    ({"tol": "x"}, ("tol='x'",)),
    ({"tol": math.nan}, ("tol=nan",)),
    ({"tol": 0}, ("tol=0",)),
    ({"max_iter": 0}, ("max_iter=0",)),
    ({"max_iter": 2.5}, ("max_iter=2.5",)),
], ids=["model-word", "targets-word", "targets-ints", "tol-word", "tol-nan", "tol-zero", "max-iter-zero",
        "max-iter-float"])
def test_lsuv_rescale_checks_its_arguments_before_any_write(kwargs, words):
    net, targets = _lsuv_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    args = {"model": net, "targets": targets, "data": torch.randn(32, 8), **kwargs}
    _raises(lambda: skew.init.lsuv_rescale(args.pop("model"), args.pop("targets"), args.pop("data"), **args), *words)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# ---- report / compare / Tracker: thresholds, counts and devices read one way everywhere -----------------
def _mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def _x() -> torch.Tensor:
    return torch.randn(16, 4, generator=torch.Generator().manual_seed(2))


def _counted():
    calls = []

    def factory():
        calls.append(1)
        return _mlp()

    return factory, calls


_BAD_THRESHOLDS = [None, "a", True, (0.1, 0.1), [[0.1, 0.3]], {"a": 0.1}, (0.1, math.nan)]
_BAD_IDS = ["none", "word", "bool", "repeated", "nested", "dict", "nan"]


@pytest.mark.parametrize("value", _BAD_THRESHOLDS, ids=_BAD_IDS)
def test_bad_thresholds_are_named_by_report_compare_tracker_and_comparison(value):
    model = _mlp()
    with untouched(model):
        _raises(lambda: skew.report(model, [_x()], thresholds=value, progress=False), "thresholds=")
        _raises(lambda: skew.Tracker(model, _x(), thresholds=value), "thresholds=")
    factory, calls = _counted()
    _raises(lambda: skew.compare(factory, [_x()], ["orthogonal"], thresholds=value), "thresholds=")
    assert not calls  # refused before any model was built (was: a raw TypeError or ValueError)
    rep = skew.report(_mlp(), [_x()], progress=False)
    _raises(lambda: skew.Comparison({("default", 0): rep}, thresholds=value), "thresholds=")


@pytest.mark.parametrize("value", [np.array([0.1, 0.3]), torch.tensor([0.1, 0.3], dtype=torch.float64), [0.1, 0.3]],
                         ids=["numpy", "tensor", "list"])
def test_thresholds_given_as_arrays_work_everywhere(value):
    rep = skew.report(_mlp(), [_x()], thresholds=value, progress=False)  # numpy was refused by report
    assert rep.thresholds == (0.1, 0.3) and "skewed_0.3" in rep.layers
    assert skew.Tracker(_mlp(), _x(), thresholds=value).thresholds == (0.1, 0.3)
    assert skew.compare(_mlp, [_x()], ["orthogonal"], thresholds=value).thresholds == (0.1, 0.3)


def test_whole_float_and_numpy_counts_are_read_as_ints():
    rep = skew.report(_mlp(), [_x(), _x(), _x()], max_batches=np.int64(2), progress=False)
    assert rep.meta["batches"] == 2
    assert skew.report(_mlp(), [_x(), _x()], max_batches=1.0, progress=False).meta["batches"] == 1
    assert skew.Tracker(_mlp(), _x(), every=np.int64(5)).every == 5
    _raises(lambda: skew.Tracker(_mlp(), _x(), every=2.5), "every=2.5", "positive integer")


@pytest.mark.parametrize("device", [10**30, -1, [], "gpu"], ids=["index-too-large", "negative", "list", "word"])
def test_bad_devices_are_named_before_any_work(device):
    model = _mlp()
    with untouched(model):
        _raises(lambda: skew.report(model, [_x()], device=device, progress=False), "device=")
        _raises(lambda: skew.Tracker(model, _x(), device=device), "device=")
    factory, calls = _counted()
    _raises(lambda: skew.compare(factory, [_x()], ["orthogonal"], device=device), "device=")
    assert not calls  # was: a raw error from model.to() after the model was built


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_compare_on_a_device_this_machine_lacks_is_one_line():
    _raises(lambda: skew.compare(_mlp, [_x()], ["orthogonal"], device="cuda"), "cannot move the model",
            "device='cuda'")


@pytest.mark.parametrize("schemes", [["orthogonal", None], [["orthogonal"]], [3]], ids=["none", "nested", "int"])
def test_compare_schemes_that_hold_no_names(schemes):
    factory, calls = _counted()
    _raises(lambda: skew.compare(factory, [_x()], schemes), "which is no scheme name")  # was: unhashable type
    assert not calls


def test_compare_names_an_unknown_keyword_before_any_work():
    factory, calls = _counted()
    _raises(lambda: skew.compare(factory, [_x()], ["orthogonal"], mdoe="train"), "mdoe")
    assert not calls


@pytest.fixture
def tracked():
    import matplotlib

    matplotlib.use("Agg")
    tracker = skew.Tracker(_mlp(), _x(), every=1)
    tracker.step(0)
    yield tracker
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("kwargs,words", [
    ({"ax": "x"}, ("ax must be a matplotlib Axes",)),
    ({"ax": 3}, ("ax must be a matplotlib Axes",)),
    ({"layers": []}, ("names no tracked layer",)),
    ({"layers": ""}, ("were not tracked",)),
    ({"layers": 3}, ("names no tracked layer",)),
], ids=["ax-word", "ax-int", "layers-empty", "layers-blank", "layers-int"])
def test_tracker_plot_names_a_bad_ax_or_layers(tracked, kwargs, words):
    _raises(lambda: tracked.plot(**kwargs), *words)  # was: AttributeError/TypeError, or an empty plot


def test_tracker_plot_takes_one_layer_name(tracked):
    assert len(tracked.plot(layers="2").lines) == 1


# ---- plots and Comparison: argument types named, not raised from pandas/matplotlib ------------------------
@pytest.fixture(scope="module")
def rep_cmp():
    import matplotlib

    matplotlib.use("Agg")
    rep = skew.report(_mlp(), [_x()], progress=False)
    cmp = skew.compare(_mlp, [_x()], ["orthogonal", "sinusoidal"])
    yield rep, cmp
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("call,words", [
    (lambda r, c: r.plot_rowsum_hist(xlim="ab"), ("xlim='ab'", "two finite numbers")),
    (lambda r, c: r.plot_rowsum_hist(xlim=3), ("xlim=3",)),
    (lambda r, c: r.plot_rowsum_hist(xlim=(0, math.inf)), ("xlim=(0, inf)",)),
    (lambda r, c: r.plot_rowsum_hist(xlim=[]), ("xlim=[]",)),
    (lambda r, c: r.plot_activation_states(layer=["0"]), ("no activation signs for layer ['0']",)),
    (lambda r, c: r.plot_skew_hist(hue=["init"]), ("hue=['init']",)),
    (lambda r, c: c.skew_by_depth(hue={"a": 1}), ("hue={'a': 1}",)),
    (lambda r, c: c.skew_hist(hue=[]), ("hue=[]",)),
    (lambda r, c: r.plot_skew_fraction_vs_alpha(laws=3), ("laws=3",)),
    (lambda r, c: r.plot_skew_fraction_vs_alpha(laws=["nope"]), ("unknown input law 'nope'",)),
    (lambda r, c: r.plot_skew_hist(bins=10**12), ("bins=1000000000000",)),
    (lambda r, c: c.rowsum_hist(seed=[0]), ("seed=[0]",)),
    (lambda r, c: c.rowsum_hist(seed=False), ("seed=False",)),
    (lambda r, c: c.rowsum_hist(seed=7), ("seed=7", "[0]")),
], ids=["xlim-word", "xlim-int", "xlim-inf", "xlim-empty", "layer-list", "hue-list", "hue-dict", "hue-empty",
        "laws-int", "laws-unknown", "bins-huge", "seed-list", "seed-bool", "seed-unknown"])
def test_report_and_comparison_plots_name_the_bad_argument(rep_cmp, call, words):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    _raises(lambda: call(*rep_cmp), *words)  # was: TypeError/ValueError/IndexError/KeyError from deep inside
    assert plt.get_fignums() == before  # refused before a figure was made


def test_rowsum_hist_xlim_pairs_of_any_number_type_still_work(rep_cmp):
    rep, _ = rep_cmp
    for xlim in ([-3, 3], (np.float32(-3), 3.0), np.array([-3.0, 3.0])):
        lo, hi = rep.plot_rowsum_hist(xlim=xlim).get_xlim()
        assert lo <= -3 and hi >= 3


@pytest.mark.parametrize("call,words", [
    (lambda: skew.plot.weight_hist(torch.randn(4, 4), arcsine="no"), ("arcsine='no'",)),
    (lambda: skew.plot.weight_hist(torch.randn(4, 4), scheme=["sinusoidal"]), ("scheme=['sinusoidal']",)),
    (lambda: skew.plot.weight_hist(torch.randn(4, 4), bins=10**9), ("bins=1000000000",)),
    (lambda: skew.plot.activation_states(torch.empty(4, 3, dtype=torch.bool, device="meta")), ("meta device",)),
], ids=["arcsine-word", "scheme-list", "bins-huge", "signs-meta"])
def test_weight_and_state_plots_name_the_bad_argument(call, words):
    _raises(call, *words)


def test_sparse_weights_and_signs_are_plotted_as_their_dense_values():
    import matplotlib.pyplot as plt

    w = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    dense = skew.plot.weight_heatmap(w).get_images()[0].get_array()
    assert np.array_equal(skew.plot.weight_heatmap(w.to_sparse()).get_images()[0].get_array(), dense)
    assert skew.plot.weight_hist(w.to_sparse(), bins=4).get_title().startswith("weight values (2×2")
    skew.plot.activation_states((torch.rand(5, 3) > 0.5).to_sparse())
    plt.close("all")


@pytest.mark.parametrize("reports,words", [
    ("abc", ("non-empty dict",)),
    ([1, 2], ("non-empty dict",)),
    ({"sinusoidal": None}, ("keyed by (init name, integer seed)",)),
    ({("a", 0, 1): None}, ("keyed by (init name, integer seed)",)),
    ({("a", True): None}, ("keyed by (init name, integer seed)",)),
    ({("a", 0): 3}, ("not a skew.Report",)),
], ids=["word", "list", "key-word", "key-triple", "key-bool-seed", "value-int"])
def test_a_hand_built_comparison_names_what_is_wrong(reports, words):
    _raises(lambda: skew.Comparison(reports), *words)  # was: ValueError/IndexError/AttributeError


@pytest.mark.parametrize("kwargs", [{"schemes": 3}, {"seeds": "01"}], ids=["schemes-int", "seeds-word"])
def test_comparison_schemes_and_seeds_must_be_lists(rep_cmp, kwargs):
    _, cmp = rep_cmp
    _raises(lambda: skew.Comparison(cmp.reports, **kwargs), "is not a list")


# ---- layers, models, data, oui, train: the lower-level public functions -------------------------------
@pytest.mark.parametrize("call,words", [
    (lambda: skew.layers.weight_matrix("w"), ("weight_matrix needs a torch.Tensor", "str")),
    (lambda: skew.layers.weight_matrix(None), ("NoneType",)),
    (lambda: skew.layers.attention_projections(nn.Linear(4, 4)), ("MultiheadAttention", "Linear")),
    (lambda: skew.layers.NeuronView(torch.zeros(4, 3, 3), layout="transposed", groups="2"), ("groups='2'",)),
    (lambda: skew.layers.NeuronView(torch.zeros(4, 3, 3), layout="transposed", groups=math.nan), ("groups=nan",)),
    (lambda: skew.layers.NeuronView(torch.zeros(4, 3, 3), layout="transposed", groups=1.5), ("groups=1.5",)),
    (lambda: skew.layers.NeuronView(torch.zeros(4, 3, 3), groups=True), ("groups=True",)),
], ids=["matrix-word", "matrix-none", "projections-linear", "groups-word", "groups-nan", "groups-float",
        "groups-bool"])
def test_layer_helpers_name_what_they_cannot_read(call, words):
    _raises(call, *words)  # was: AttributeError/ValueError/OverflowError, or groups=1.5 read as 1


@pytest.mark.parametrize("call,words", [
    (lambda: skew.models.mlp(depth=1, width=4, activation=["relu"]), ("unknown activation ['relu']",)),
    (lambda: skew.models.mlp(depth=10**30, width=4), ("depth=", "larger than any tensor size")),
    (lambda: skew.models.mlp(depth=1, width=4, in_features=2**70), ("in_features=",)),
    (lambda: skew.models.TokenTransformer("8", 8, 2, 1, 16, 10, "relu", 0.0), ("in_features='8'",)),
    (lambda: skew.models.TokenTransformer(8, 8, 3, 1, 16, 10, "relu", 0.0), ("not divisible by nhead=3",)),
    (lambda: skew.models.TokenTransformer(8, 8, 2, 1, 16, 10, "tanh", 0.0), ("relu, gelu",)),
    (lambda: skew.models.TokenTransformer(8, 8, 2, 1, 16, 10, "relu", 2.0), ("dropout=2.0",)),
    (lambda: skew.models.TokenTransformer(True, 8, 2, 1, 16, 10, "relu", 0.0), ("in_features=True",)),
], ids=["activation-list", "depth-huge", "in-features-huge", "tt-word", "tt-nhead", "tt-activation",
        "tt-dropout", "tt-bool"])
def test_model_builders_name_the_bad_size_or_option(call, words):
    _raises(call, *words)  # the class itself is checked too, not only transformer()


def test_token_transformer_built_directly_still_works():
    net = skew.models.TokenTransformer(8, 8, 2, 1, 16, 10, torch.nn.functional.gelu, 0.0)
    assert net(torch.randn(3, 5, 8)).shape == (3, 10)
    assert isinstance(skew.models.transformer(d_model=8, nhead=2, num_layers=1, dim_feedforward=16),
                      skew.models.TokenTransformer)


@pytest.mark.parametrize("call,words", [
    (lambda: skew.data.build_data("gaussian", shape=b"x"), ("per-sample shape", "b'x'")),
    (lambda: skew.data.digits_tensors(shape="64"), ("per-sample shape",)),
    (lambda: skew.data.build_data("gaussian", shape=(10**30,)), ("more entries than any tensor",)),
    (lambda: skew.data.build_data("gaussian", shape=(4,), batches=10**30), ("batches=",)),
    (lambda: skew.data.build_data("gaussian", shape=(4,), batch_size=10**30), ("batch_size=",)),
    (lambda: skew.data.digits_dataset(val_fraction="x"), ("val_fraction='x'",)),
    (lambda: skew.data.digits_dataset(val_fraction=None), ("val_fraction=None",)),
    (lambda: skew.data.digits_dataset(val_fraction=True), ("val_fraction=True",)),
    (lambda: skew.data.text_batches(seed="x"), ("seed='x'",)),
    (lambda: skew.data.text_batches(seed=1.5), ("seed=1.5",)),
    (lambda: skew.data.text_batches(seed=-3), ("seed=-3",)),
    (lambda: skew.data.text_batches(seed=2**64), ("seed=", "2**64")),
    (lambda: skew.data.text_batches(ragged="yes"), ("ragged='yes'",)),
], ids=["shape-bytes", "shape-word", "shape-huge", "batches-huge", "batch-size-huge", "val-word", "val-none",
        "val-bool", "text-seed-word", "text-seed-float", "text-seed-negative", "text-seed-huge", "ragged-word"])
def test_data_builders_name_the_bad_argument(call, words):
    _raises(call, *words)  # bytes read as a shape of byte values; seeds and fractions raised raw errors


@pytest.mark.parametrize("call,words", [
    (lambda: skew.oui.pairwise_oui(np.ones((4, 6), bool), pairs="ab"), ("pairs must be",)),
    (lambda: skew.oui.pairwise_oui(np.ones((4, 6), bool), pairs=[0, 1]), ("pairs must be", "shape (2,)")),
    (lambda: skew.oui.pairwise_oui(np.ones((4, 6), bool), pairs=[(0.0, 1.5)]), ("pairs must be",)),
    (lambda: skew.oui.pairwise_oui(np.ones((4, 6), bool), pairs=[(0, -1)]), ("sample -1",)),
    (lambda: skew.oui.pairwise_oui(np.ones((4, 6), bool), units=[6, 6, 2.5, 6]), ("units must be",)),
    (lambda: skew.oui.pairwise_oui(np.ones((4, 6), bool), units="abcd"), ("units must be",)),
    (lambda: skew.oui.default_pairs(10**30), ("samples must be",)),
    (lambda: skew.oui.oui_from_p(None), ("p must be an array of probabilities",)),
    (lambda: skew.oui.oui_from_p(np.array([True, False])), ("p must be an array of probabilities",)),
], ids=["pairs-word", "pairs-flat", "pairs-float", "pairs-negative", "units-float", "units-word", "samples-huge",
        "p-none", "p-bool"])
def test_oui_names_pairs_units_and_p_it_cannot_read(call, words):
    _raises(call, *words)  # a negative pair index wrapped to the last sample; 2.5 units were truncated


def test_oui_still_reads_integer_pairs_and_tensors_of_p():
    pats = np.array([[1, 0, 1, 1], [0, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)
    assert skew.oui.pairwise_oui(pats, pairs=np.array([[0, 1]])) == 1.0
    assert skew.oui.pairwise_oui(pats, pairs=[]) != skew.oui.pairwise_oui(pats, pairs=[])  # NaN: no pair
    assert skew.oui.oui_from_p(torch.tensor([0.5, 0.5], dtype=torch.bfloat16)) == 1.0


@pytest.mark.parametrize("curve", ["abc", b"ab", None, 3, [0.5, None], [True, False], [[0.5], [0.6]]],
                         ids=["word", "bytes", "none", "int", "holds-none", "bools", "nested"])
def test_accuracy_curves_that_are_no_numbers_are_named(curve):
    _raises(lambda: skew.train.auc(curve), "auc needs a 1-D sequence")
    _raises(lambda: skew.train.early_stop(curve), "early_stop needs a 1-D sequence")


def test_accuracy_curves_as_arrays_and_tensors_still_work():
    assert skew.train.auc(np.array([0.0, 1.0, 1.0])) == 1.5 == skew.train.auc(torch.tensor([0.0, 1.0, 1.0]))
    assert skew.train.early_stop(torch.tensor([0.5, 0.7, 0.6]), patience=1).best_epoch == 2


@pytest.mark.parametrize("quick", [None, "yes", 1], ids=["none", "word", "int"])
def test_write_figures_checks_quick_before_running_the_experiment(quick, monkeypatch, tmp_path):
    monkeypatch.setattr(skew.train, "run_experiment", lambda **kw: pytest.fail("the experiment started"))
    _raises(lambda: skew.train.write_figures(tmp_path, quick), f"quick={quick!r}")


def test_write_figures_checks_the_directory_before_running_the_experiment(monkeypatch, tmp_path):
    monkeypatch.setattr(skew.train, "run_experiment", lambda **kw: pytest.fail("the experiment started"))
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    _raises(lambda: skew.train.write_figures(afile / "figs", True), "is a file, not a directory")
    _raises(lambda: skew.train.write_figures(afile, True), "is a file, not a directory")
    _raises(lambda: skew.train.write_figures(None, True), "write_figures needs a directory path")
    assert afile.read_text() == "keep me\n"


@pytest.mark.parametrize("kwargs,words", [
    ({"initial": True}, ("initial=True",)),
    ({"groups": 0}, ("groups=0",)),
    ({"groups": [True]}, ("groups=[True]",)),
    ({"groups": [0.0]}, ("groups=[0.0]",)),
], ids=["initial-bool", "groups-int", "groups-bool", "groups-float"])
def test_oui_weight_decay_names_bad_initial_and_groups(kwargs, words):
    opt = torch.optim.SGD(nn.Linear(4, 3).parameters(), lr=0.1, weight_decay=0.0)
    _raises(lambda: skew.train.OUIWeightDecay(opt, 10, **kwargs), *words)
    assert opt.param_groups[0]["weight_decay"] == 0.0


# ---- valid but unusual: bfloat16 in the Tracker, sparse data files; one scheme spelled twice ------------
def test_tracker_measures_a_bfloat16_model_as_report_does():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).bfloat16()
    x = torch.randn(16, 4).bfloat16()
    with untouched(model):
        tracker = skew.Tracker(model, x, every=1)
        tracker.step(0)  # was: TypeError: Got unsupported ScalarType BFloat16 (the bias read with .numpy())
    want = skew.report(model, [x], progress=False).layers.set_index("layer")
    got = tracker.history.set_index("layer")
    assert np.allclose(got["mean_skew"], want.loc[got.index, "mean_skew"])


def test_cli_reads_a_sparse_data_file_as_its_dense_values(tmp_path, capsys):
    from skew.cli import main

    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    torch.save(x.to_sparse(), tmp_path / "sparse.pt")
    torch.save(x, tmp_path / "dense.pt")
    argv = ["report", "--model", "mlp", "-o", "depth=2", "-o", "width=8", "-o", "in_features=4", "--data"]
    assert main([*argv, str(tmp_path / "sparse.pt"), "--out", str(tmp_path / "a")]) == 0
    _, err = capsys.readouterr()
    assert "Traceback" not in err and "sparse" not in err  # was: exit 1 with a torch NotImplementedError + a warning
    assert main([*argv, str(tmp_path / "dense.pt"), "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "layers.csv").read_text() == (tmp_path / "b" / "layers.csv").read_text()


@pytest.mark.parametrize("schemes", [["uniform:5", "uniform:a=5"], ["glorot", "xavier_uniform"]],
                         ids=["option-spellings", "alias"])
def test_compare_names_one_scheme_listed_twice_under_two_spellings(schemes):
    factory, calls = _counted()
    _raises(lambda: skew.compare(factory, [_x()], schemes), "are the same scheme")
    assert not calls


# ---- the training experiment and its weight-decay controller ---------------------------------------------
@pytest.mark.parametrize("kwargs,words", [
    ({"models": 3}, ("models=3 is not a list",)),
    ({"schemes": None}, ("schemes=None is not a list",)),
    ({"seeds": True}, ("seeds=True is not a list",)),
    ({"thresholds": "a"}, ("thresholds='a'",)),
    ({"quick": "no"}, ("quick='no'",)),
    ({"progress": None}, ("progress=None",)),
    ({"data_seed": "x"}, ("seed='x'",)),
    ({"data_seed": -1}, ("seed=-1",)),
    ({"lr": True}, ("lr=True",)),
], ids=["models-int", "schemes-none", "seeds-bool", "thresholds-word", "quick-word", "progress-none",
        "data-seed-word", "data-seed-negative", "lr-bool"])
def test_run_experiment_checks_every_argument_before_training(kwargs, words, monkeypatch):
    monkeypatch.setattr(skew.train, "_load_digits", lambda *a, **k: pytest.fail("training started"))
    _raises(lambda: skew.train.run_experiment(**{"models": ("mlp",), "epochs": 1, **kwargs}), *words)


@pytest.mark.parametrize("oui,loss,words", [
    ("0.5", 1.0, ("step needs two numbers",)), (0.5, None, ("step needs two numbers",)),
    (True, 1.0, ("step needs two numbers",)), (0.5, [1.0], ("step needs two numbers",)),
    (1.5, 1.0, ("oui=1.5", "[0, 1]")), (-0.1, 1.0, ("oui=-0.1",)),
], ids=["oui-word", "loss-none", "oui-bool", "loss-list", "oui-above-1", "oui-negative"])
def test_oui_weight_decay_step_names_what_is_no_oui_or_loss(oui, loss, words):
    opt = torch.optim.SGD(nn.Linear(4, 3).parameters(), lr=0.1, weight_decay=0.0)
    ctl = skew.train.OUIWeightDecay(opt, 10)
    _raises(lambda: ctl.step(oui, loss), *words)
    assert ctl.epoch == 0 and opt.param_groups[0]["weight_decay"] == ctl.wd  # nothing was stepped


def test_oui_weight_decay_step_takes_tensors_and_a_diverged_loss():
    opt = torch.optim.SGD(nn.Linear(4, 3).parameters(), lr=0.1)
    ctl = skew.train.OUIWeightDecay(opt, 10)
    assert ctl.step(torch.tensor(0.7), torch.tensor(1.0)) > 0 and ctl.step(0.6, math.inf) > 0


# ---- init.apply / weights on edge-case models ----------------------------------------------------------
@pytest.mark.parametrize("dtype,bias", [(torch.float32, 1e300), (torch.float16, 1e5), (torch.bfloat16, -1e300)],
                         ids=["float32", "float16", "bfloat16"])
def test_a_bias_the_dtype_cannot_hold_is_named_before_any_write(dtype, bias):
    model = _mlp().to(dtype)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _raises(lambda: skew.init.apply(model, "orthogonal", bias=bias), f"bias={bias:g} does not fit",
            str(dtype).replace("torch.", ""))  # was: RuntimeError 'value cannot be converted to type float'
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_weights_of_an_uninitialised_lazy_model_are_named_as_lazy():
    model = nn.Sequential(nn.LazyLinear(3))
    for call in (skew.weights.layer_table, skew.weights.neuron_table, skew.weights.diagnose):
        _raises(lambda call=call: call(model), "'0' (LazyLinear)", "not initialised yet")  # was: "has no Linear"


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_weights_of_a_layer_without_inputs_are_zero_rows():
    table = skew.weights.layer_table(nn.Sequential(nn.Linear(0, 4)))  # was: IndexError from max() over no entries
    assert table.loc[0, "zero_rows"] == 4 and table.loc[0, "constant_rows"] == 0 and table.loc[0, "rank"] == 0


# ---- saving: something in the way is found before anything is written -----------------------------------
@pytest.mark.parametrize("obstacle", ["reports-file", "manifest-dir", "csv-dir"])
def test_comparison_save_writes_nothing_when_a_path_is_in_the_way(rep_cmp, tmp_path, obstacle):
    _, cmp = rep_cmp
    out = tmp_path / "c"
    out.mkdir()
    if obstacle == "reports-file":
        (out / "reports").write_text("mine\n")
    else:
        (out / ("comparison.json" if obstacle == "manifest-dir" else "summary.csv")).mkdir()
    before = sorted(p.name for p in out.iterdir())
    _raises(lambda: cmp.save(out), "is in the way")  # was: the CSVs written, then an OSError half-way
    assert sorted(p.name for p in out.iterdir()) == before


def test_cli_names_the_output_file_that_is_a_directory(tmp_path, capsys, monkeypatch):
    from fuzzutil import cli_clear_error

    from skew.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "out" / "layers.csv").mkdir(parents=True)
    code = main(["report", "--model", "mlp", "-o", "depth=2", "-o", "width=8", "-o", "in_features=4", "--data",
                 "gaussian", "--batches", "1", "--batch-size", "8", "--out", "out"])
    _, err = capsys.readouterr()
    cli_clear_error(code, err, 1)
    assert "'out/layers.csv'" in err and ".tmp" not in err  # was: the hidden temporary file's name


@pytest.mark.parametrize("name,key", [("mlp", "in_features"), ("mlp", "width"), ("cnn", "image_size"),
                                      ("cnn", "in_channels"), ("transformer", "seq_len"), ("resnet18", "image_size")])
@pytest.mark.parametrize("value", [0, -3, "abc", math.nan, 1.5, True], ids=["zero", "negative", "word", "nan",
                                                                             "fraction", "bool"])
def test_input_shape_checks_sizes_as_build_model_does(name, key, value):
    _raises(lambda: skew.models.input_shape(name, **{key: value}), f"{key}=", "positive integer")  # was: (-3,),
    # (1000,) for in_features=0, or a raw ValueError/TypeError/OverflowError


def test_input_shape_of_valid_options_is_unchanged():
    assert skew.models.input_shape("mlp", width=16) == (16,) == skew.models.input_shape("mlp", in_features=16.0)
    assert skew.models.input_shape("cnn", in_channels=1) == (1, 8, 8)
    assert skew.models.input_shape("transformer", d_model=8) == (16, 8)


def test_seeding_generator_names_a_device_index_too_large():
    _raises(lambda: skew.seeding.generator(0, "data", device=10**30), "is not a device a torch.Generator can live on")


# ---- report(): numpy batch dims, meta and sparse masks ---------------------------------------------------
def _x3() -> torch.Tensor:
    return torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))


def test_batch_dim_given_as_a_numpy_integer_is_read_as_the_int():
    want = skew.report(_mlp(), [_x3()], batch_dim=1, progress=False).layers
    for value in (np.int64(1), {"*": np.int64(1)}):
        got = skew.report(_mlp(), [_x3()], batch_dim=value, progress=False).layers  # was: refused
        assert got["samples"].tolist() == want["samples"].tolist()


def test_a_meta_mask_is_named_and_a_sparse_mask_is_read_as_its_values():
    model = _mlp()
    with untouched(model):
        _raises(lambda: skew.report(model, [_x3()], mask_fn=lambda b: torch.ones(2, 3, device="meta"),
                                    progress=False), "meta device")  # was: "is not a tensor (Tensor)"
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    dense = skew.report(_mlp(), [_x3()], mask_fn=lambda b: mask, progress=False).layers
    sparse = skew.report(_mlp(), [_x3()], mask_fn=lambda b: mask.to_sparse(), progress=False).layers  # was raw
    assert sparse["samples"].tolist() == dense["samples"].tolist() == [3, 3]


@pytest.mark.parametrize("extra,flag", [(["-o", "depth=2"], "-o/--model-option"), (["--input-shape", "4"],
                                                                                     "--input-shape")],
                         ids=["model-option", "input-shape"])
def test_cli_plot_model_flags_without_a_model_exit_2(extra, flag, tmp_path, capsys, monkeypatch):
    from fuzzutil import cli_clear_error

    from skew.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["plot", "--init", "orthogonal", *extra])
    _, err = capsys.readouterr()
    cli_clear_error(code, err, 2)
    assert f"argument {flag}: needs --model" in err and list(tmp_path.iterdir()) == []  # was: ignored, plot written


@pytest.mark.parametrize("bins,words", [("abc", ("no numpy bin rule",)), ([], ("at least two increasing",)),
                                        ([3, 1], ("at least two increasing",)), ({"a": 1}, ("bins={'a': 1}",)),
                                        (b"x", ("bins=b'x'",)), ([[1, 2]], ("at least two",))],
                         ids=["rule-unknown", "edges-empty", "edges-decreasing", "dict", "bytes", "nested"])
def test_weight_hist_bins_that_are_no_count_rule_or_edges_are_named(bins, words):
    _raises(lambda: skew.plot.weight_hist(torch.randn(5, 5), bins=bins), *words)  # was: numpy/matplotlib errors


def test_weight_hist_bin_rules_and_edges_still_work():
    import matplotlib.pyplot as plt

    w = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    assert "auto bins" in skew.plot.weight_hist(w, bins="auto").get_title()
    assert len(skew.plot.weight_hist(w, bins=np.linspace(-3, 3, 5)).patches) == 4
    plt.close("all")


@pytest.mark.parametrize("value", [[], "", False, 0], ids=["empty-list", "empty-word", "false", "zero"])
@pytest.mark.parametrize("method", ["plot_skew_hist", "plot_skew_vs_rowsum"])
def test_plot_thresholds_that_are_falsy_are_refused_not_read_as_the_defaults(rep_cmp, method, value):
    import matplotlib.pyplot as plt

    rep, _ = rep_cmp
    before = plt.get_fignums()
    _raises(lambda: getattr(rep, method)(thresholds=value), "thresholds=", "strictly between 0 and 0.5")
    assert plt.get_fignums() == before  # refused before a figure was made
