"""The Report object: exact save/load round trip, exact merge, display and plot delegation."""

from __future__ import annotations

import zipfile

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from skew.analyzer import report
from skew.errors import SkewError
from skew.result import Report


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 5 * 5, 8, bias=False),
                        nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        net[3].weight[2] = 0.0  # a degenerate neuron: NaN columns must survive the round trip
    return net


def data(seed: int, batches: int = 3, size: int = 5):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(size, 2, 7, 7, generator=gen) for _ in range(batches)]


def test_save_load_round_trip_is_exact(model, tmp_path):
    rep = report(model, data(1), thresholds=(0.05, 0.2, 0.3))
    path = rep.save(tmp_path / "sub" / "run.skew.zip")
    assert path.exists() and not list(path.parent.glob(".*tmp"))
    back = Report.load(path)
    for attr in ("neurons", "layers", "skipped"):
        pd.testing.assert_frame_equal(getattr(back, attr), getattr(rep, attr), check_exact=True)
    assert back.thresholds == rep.thresholds and back.meta == rep.meta
    for name in rep.signs:
        np.testing.assert_array_equal(back.signs[name], rep.signs[name])
        np.testing.assert_array_equal(back.sign_neurons[name], rep.sign_neurons[name])
    assert rep.neurons["p_gauss"].isna().any()  # NaNs were really exercised
    # what was loaded can still be merged exactly
    other = report(model, data(2), thresholds=(0.05, 0.2, 0.3))
    pd.testing.assert_frame_equal(back.merge(other).neurons, rep.merge(other).neurons, check_exact=True)


def test_save_is_atomic_and_load_rejects_foreign_files(model, tmp_path):
    rep = report(model, data(1))
    target = tmp_path / "r.zip"
    target.write_bytes(b"old")

    class Boom(Exception):
        pass

    import skew.result as result

    orig = result.LayerState.arrays

    def broken(self):
        raise Boom

    result.LayerState.arrays = broken
    try:
        with pytest.raises(Boom):
            rep.save(target)
    finally:
        result.LayerState.arrays = orig
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(SkewError, match="not a zip"):
        Report.load(target)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("x.txt", "hi")
    with pytest.raises(SkewError, match="not a saved skew report"):
        Report.load(tmp_path / "other.zip")
    with pytest.raises(SkewError, match="no report file"):
        Report.load(tmp_path / "missing.zip")


def test_merge_equals_one_run_over_both_datasets(model):
    a, b = data(3, batches=2, size=3), data(4, batches=3, size=4)  # 6 samples then 12: OUI and raster span both
    merged = report(model, a).merge(report(model, b))
    whole = report(model, a + b)
    for col in ("n", "p", "degenerate", "dead", "always_on", "nonfinite"):
        np.testing.assert_array_equal(merged.neurons[col], whole.neurons[col])
    for col in ("mean", "std", "p_gauss", "p_pred", "skew"):
        np.testing.assert_allclose(merged.neurons[col], whole.neurons[col], rtol=1e-12, atol=1e-15)
    for col in ("samples", "calls", "oui_pairwise", "oui_batch", "input_mean", "input_std", "lambda_0.1",
                "skewed_0.3", "spearman_s_p"):
        np.testing.assert_allclose(merged.layers[col], whole.layers[col], rtol=1e-12)
    for name in whole.signs:
        np.testing.assert_array_equal(merged.signs[name], whole.signs[name])
    assert merged.meta["batches"] == 5 and merged.meta["inputs"] == 18


def test_merge_refuses_reports_of_different_weights(model):
    torch.manual_seed(1)  # same structure, other weights
    other = nn.Sequential(nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(150, 8, bias=False),
                          nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(SkewError, match="different weights in layer '0'"):
        report(model, data(1)).merge(report(other, data(1)))
    with pytest.raises(SkewError, match="another Report"):
        report(model, data(1)).merge(42)


def test_summary_repr_and_html(model):
    rep = report(model, data(1))
    s = rep.summary()
    assert list(s["layer"]) == ["0", "3", "5"] and "skewed_0.3" in s.columns
    text = repr(rep)
    assert text.startswith("skew.Report of Sequential: 3 layers, 17 neurons, 3 batches")
    live = ~rep.neurons["degenerate"]
    frac = (rep.neurons.loc[live, "skew"] > 0.3).mean()
    assert f"α=0.3: {100 * frac:.1f}%" in text
    one = report(nn.Sequential(nn.Linear(4, 1)), torch.randn(5, 4))  # singular where there is one
    assert repr(one).startswith("skew.Report of Sequential: 1 layer, 1 neuron, 1 batch; ")
    html = rep._repr_html_()
    assert html.startswith("<div>") and "<table" in html and "skewed_0.1" in html


def test_layers_columns_follow_the_shared_contract(model):
    rep = report(model, data(1), thresholds=(0.1, 0.3))
    neuron_cols = {"layer", "neuron", "fan_in", "row_sum", "row_norm", "bias", "n", "p", "p_gauss", "p_pred",
                   "skew", "skew_gauss", "mean", "std", "degenerate", "dead", "always_on", "nonfinite"}
    assert neuron_cols <= set(rep.neurons.columns)
    layer_cols = {"layer", "type", "shape", "neurons", "calls", "samples", "mean_skew", "spearman_s_p",
                  "input_mean", "input_std", "oui_batch", "oui_pairwise", "degenerate", "dead", "always_on"}
    for a in ("0.1", "0.3"):
        layer_cols |= {f"skewed_{a}", f"skewed_gauss_{a}", f"lambda_{a}", f"agree_{a}"}
    assert layer_cols <= set(rep.layers.columns)
    lay = rep.layers.set_index("layer")
    assert lay.loc["3", "degenerate"] == 1 and rep.neurons.query("layer == '3'")["bias"].isna().all()
    # fractions are over non-degenerate neurons, and the count column agrees with the neuron flags
    nf = rep.neurons[rep.neurons["layer"] == "3"]
    live = ~nf["degenerate"]
    assert lay.loc["3", "skewed_0.1"] == pytest.approx((nf.loc[live, "skew"] > 0.1).mean())


def test_plot_methods_delegate_to_skew_plot(model):
    pytest.importorskip("skew.plot")
    matplotlib.use("Agg")
    rep = report(model, data(1))
    for method, kwargs in [("plot_skew_hist", {"layer": "0"}), ("plot_rowsum_hist", {"layer": "0"}),
                           ("plot_skew_vs_rowsum", {"layer": "0"}), ("plot_activation_states", {"layer": "3"}),
                           ("plot_skew_fraction_vs_alpha", {"layer": "0"})]:
        ax = getattr(rep, method)(**kwargs)
        assert isinstance(ax, matplotlib.axes.Axes), method


def test_spearman_column_matches_scipy(model):
    from scipy.stats import spearmanr

    rep = report(model, data(5, batches=4, size=8))
    for name, sub in rep.neurons.groupby("layer", sort=False):
        live = sub[~sub["degenerate"]]
        expected = spearmanr(live["row_sum"], live["p"]).statistic
        got = rep.layers.set_index("layer").loc[name, "spearman_s_p"]
        assert got == pytest.approx(expected, abs=1e-12), name


def test_saved_report_carries_no_timestamp(tmp_path):
    """Two saves of one report are byte-identical: zip entries carry a fixed date, not the clock."""
    net = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    rep = report(net, torch.randn(32, 6))
    a = rep.save(tmp_path / "a.skew")
    with zipfile.ZipFile(a) as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    b = rep.save(tmp_path / "b.skew")
    assert a.read_bytes() == b.read_bytes()
