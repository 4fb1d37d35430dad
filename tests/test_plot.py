"""skew.plot: every figure draws what it claims, on hand-made frames built by brute force.

The fake Report is computed here from stored activations of a Glorot layer fed ReLU(N(0,1)) inputs
(never from skew.analyzer), so the plots are checked against independent numbers.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from scipy.stats import norm

from skew import plot
from skew.errors import SkewError

N_IN, N_OUT, SAMPLES = 200, 400, 3000


def _layer_rows(name, weight, x, *, zero_rows=()):
    w = weight.clone()
    for r in zero_rows:
        w[r] = 0.0
    z = (x @ w.T).double()
    p = (z > 0).double().mean(0).numpy()
    mean, std = z.mean(0).numpy(), z.std(0).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        p_gauss = np.where(std > 0, norm.cdf(mean / std), np.nan)
    w64 = w.double()
    frame = pd.DataFrame({
        "layer": name, "neuron": np.arange(w.shape[0]), "fan_in": w.shape[1],
        "row_sum": w64.sum(1).numpy(), "row_norm": w64.norm(dim=1).numpy(), "bias": 0.0, "n": len(x),
        "p": p, "p_gauss": p_gauss, "p_pred": np.nan, "skew": np.abs(p - 0.5), "skew_gauss": np.abs(p_gauss - 0.5),
        "mean": mean, "std": std, "degenerate": std == 0, "dead": p == 0, "always_on": p == 1, "nonfinite": 0,
    })
    live = frame[~frame["degenerate"]]
    row = {"layer": name, "type": "Linear", "neurons": len(frame), "input_mean": float(x.double().mean()),
           "input_std": float(x.double().std())}
    for a in (0.1, 0.3):
        row[f"skewed_{a:g}"] = float((live["skew"] > a).mean())
        row[f"skewed_gauss_{a:g}"] = float((live["skew_gauss"] > a).mean())
    return frame, row, (z > 0).numpy()


@pytest.fixture(scope="module")
def report():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(SAMPLES, N_IN, generator=gen).clamp_min(0.0)
    w1 = torch.empty(N_OUT, N_IN)
    torch.nn.init.xavier_uniform_(w1, generator=gen)
    f1, r1, s1 = _layer_rows("fc1", w1, x, zero_rows=(3, 7))
    h = torch.relu(x @ w1.T)
    w2 = torch.empty(50, N_OUT)
    torch.nn.init.xavier_uniform_(w2, generator=gen)
    f2, r2, s2 = _layer_rows("fc2", w2, h)
    return SimpleNamespace(neurons=pd.concat([f1, f2], ignore_index=True), layers=pd.DataFrame([r1, r2]),
                           signs={"fc1": s1[:300], "fc2": s2[:300]}, thresholds=(0.1, 0.3))


def _sinusoidal(m, n):
    i = torch.arange(1, m + 1, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    return torch.sin(2 * math.pi * i * j / n + 2 * math.pi * i / m)


def _calls(rep):
    w = torch.randn(20, 30)
    return {
        "weight_hist": lambda ax: plot.weight_hist(w, ax=ax),
        "weight_heatmap": lambda ax: plot.weight_heatmap(w, ax=ax),
        "rowsum_hist": lambda ax: plot.rowsum_hist(rep, ax=ax),
        "skew_hist": lambda ax: plot.skew_hist(rep, ax=ax),
        "skew_vs_rowsum": lambda ax: plot.skew_vs_rowsum(rep, ax=ax),
        "activation_states": lambda ax: plot.activation_states(rep, ax=ax),
        "skew_fraction_vs_alpha": lambda ax: plot.skew_fraction_vs_alpha(rep, ax=ax, laws=["relu-gaussian"]),
        "skew_by_depth": lambda ax: plot.skew_by_depth(rep, ax=ax),
    }


NAMES = list(_calls(None))


@pytest.mark.parametrize("name", NAMES)
def test_draws_on_given_axes_without_new_figures_or_global_changes(report, name):
    fig, ax = plt.subplots()
    before_rc = dict(matplotlib.rcParams)
    before_figs = plt.get_fignums()
    out = _calls(report)[name](ax)
    assert out is ax
    assert plt.get_fignums() == before_figs
    assert dict(matplotlib.rcParams) == before_rc
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


@pytest.mark.parametrize("name", NAMES)
def test_creates_one_figure_when_no_axes(report, name, monkeypatch):
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(1))
    before = set(plt.get_fignums())
    ax = _calls(report)[name](None)
    assert isinstance(ax, Axes)
    assert len(set(plt.get_fignums()) - before) == 1
    assert not shown


def test_all_public_functions_are_tested():
    assert sorted(plot.__all__) == sorted(NAMES)


# ---- weights ----------------------------------------------------------------------------------------
def _arcsine_lines(ax):
    return [ln for ln in ax.get_lines() if "arcsine" in str(ln.get_label())]


def test_weight_hist_is_a_density_and_the_arcsine_overlay_is_the_arcsine_density():
    w = 0.3 * _sinusoidal(101, 101)
    ax = plot.weight_hist(w, bins=30)
    bars = ax.patches
    area = sum(b.get_height() * b.get_width() for b in bars)
    assert len(bars) == 30 and area == pytest.approx(1.0)
    (line,) = _arcsine_lines(ax)  # auto: the values look sinusoidal
    a = float(w.abs().max())
    x, y = line.get_data()
    assert np.allclose(y, 1.0 / (np.pi * np.sqrt(a * a - x * x)))
    assert x.min() > -a and x.max() < a


def test_weight_hist_auto_overlay_only_for_arcsine_like_values():
    gen = torch.Generator().manual_seed(1)
    gauss = torch.randn(100, 100, generator=gen)
    unif = torch.rand(100, 100, generator=gen) * 2 - 1
    arcsine = torch.cos(math.pi * torch.rand(100, 100, generator=gen))
    assert not _arcsine_lines(plot.weight_hist(gauss))
    assert not _arcsine_lines(plot.weight_hist(unif))
    assert _arcsine_lines(plot.weight_hist(arcsine))
    assert _arcsine_lines(plot.weight_hist(gauss, arcsine=True))
    assert _arcsine_lines(plot.weight_hist(gauss, scheme="sinusoidal"))
    assert not _arcsine_lines(plot.weight_hist(_sinusoidal(64, 64), arcsine=False))


def test_weight_hist_reads_layers_and_conv_weights():
    conv = torch.nn.Conv2d(3, 8, 3)
    ax = plot.weight_hist(conv)
    assert "8×27" in ax.get_title()
    with pytest.raises(SkewError, match="NaN"):
        plot.weight_hist(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(SkewError, match="no weight"):
        plot.weight_hist(torch.nn.ReLU())


def test_weight_heatmap_diverging_symmetric_with_colorbar():
    w = torch.tensor([[0.5, -2.0, 1.0], [0.0, 0.25, -0.75]])
    fig, ax = plt.subplots()
    plot.weight_heatmap(w, ax=ax)
    assert len(fig.axes) == 2  # the colorbar's own Axes
    (im,) = ax.get_images()
    assert im.get_clim() == (-2.0, 2.0)
    assert np.array_equal(im.get_array(), w.numpy())
    assert im.get_cmap().name == "RdBu_r"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("input", "output neuron")
    zero = plot.weight_heatmap(torch.zeros(3, 3))
    assert zero.get_images()[0].get_clim() == (-1.0, 1.0)


# ---- row sums ---------------------------------------------------------------------------------------
def _stacks(ax):
    """The two stacked bar containers of a rowsum_hist: (not skewed, skewed) heights and bottoms."""
    bars = [p for p in ax.patches if p.get_width() > 0]
    half = len(bars) // 2
    return bars[:half], bars[half:]


def test_rowsum_hist_stacks_integrate_to_one_and_split_at_alpha(report):
    bw = 0.2
    ax = plot.rowsum_hist(report, layer="fc1", alpha=0.3, binwidth=bw)
    low, high = _stacks(ax)
    assert len(low) == len(high)
    tops = np.array([b.get_y() + b.get_height() for b in high])
    assert float(tops.sum() * bw) == pytest.approx(1.0)
    edges = np.array([b.get_x() for b in low])
    assert np.allclose(edges / bw, np.round(edges / bw))  # bins aligned on multiples of the width
    live = report.neurons.query("layer == 'fc1' and not degenerate")
    skewed = live["row_sum"][live["skew"] > 0.3].to_numpy()
    counts = np.array([b.get_height() for b in high]) * bw * len(live)
    expected, _ = np.histogram(skewed, bins=np.append(edges, edges[-1] + bw))
    assert np.allclose(counts, expected)
    assert "2 degenerate left out" in ax.get_title() and "α = 0.3" in ax.get_title()
    lo, hi = ax.get_xlim()  # every row sum and ±λ are inside the range
    lam = max(abs(x) for x in _vlines(ax))
    assert lo < min(live["row_sum"].min(), -lam) and hi > max(live["row_sum"].max(), lam)


def test_rowsum_hist_range_never_hides_lambda_or_data(report):
    rep = SimpleNamespace(**vars(report))
    rep.layers = report.layers.assign(**{"lambda_0.3": [1.234, 9.0]})  # λ far beyond the old fixed ±4.5
    for xlim in (None, (-4.5, 4.5), (-0.1, 0.1)):
        ax = plot.rowsum_hist(rep, layer="fc2", alpha=0.3, xlim=xlim)
        lo, hi = ax.get_xlim()
        assert lo < -9.0 and hi > 9.0, xlim
        s = report.neurons.query("layer == 'fc2'")["row_sum"]
        assert lo < s.min() and hi > s.max()


def _vlines(ax):
    return sorted({round(float(ln.get_xdata()[0]), 9) for ln in ax.get_lines()
                   if len(set(np.atleast_1d(ln.get_xdata()))) == 1 and ln.get_linestyle() == "--"})


def test_rowsum_hist_lambda_from_layers_column(report):
    rep = SimpleNamespace(**vars(report))
    rep.layers = report.layers.assign(**{"lambda_0.3": [1.234, 9.0]})
    ax = plot.rowsum_hist(rep, layer="fc1", alpha=0.3)
    assert _vlines(ax) == [-1.234, 1.234]


def test_rowsum_hist_lambda_computed_by_theorem_1_when_absent(report):
    ax = plot.rowsum_hist(report, alpha=0.3)  # layer None -> fc1: its ReLU(N(0,1)) input has mean > 0
    assert "layer fc1 (first layer)" in ax.get_title()
    live = report.neurons.query("layer == 'fc1' and not degenerate")
    lay = report.layers.iloc[0]
    theta = math.sqrt(float((live["row_norm"] ** 2).mean()) / N_IN)
    lam = lay["input_std"] * theta * math.sqrt(N_IN) / lay["input_mean"] * norm.ppf(0.8)
    assert _vlines(ax) == pytest.approx([-lam, lam])
    # Theorem 1: |S| > λ agrees with "skewed" for most neurons of a wide first layer
    agree = ((live["row_sum"].abs() > lam) == (live["skew"] > 0.3)).mean()
    assert agree > 0.9


def test_rowsum_hist_without_moments_draws_no_lambda(report):
    ax = plot.rowsum_hist(report.neurons, layer="fc2", alpha=0.1, xlim=None)
    assert _vlines(ax) == []
    with pytest.raises(SkewError, match="alpha"):
        plot.rowsum_hist(report, alpha=0.7)
    with pytest.raises(SkewError, match="valid layers are 'fc1', 'fc2'"):
        plot.rowsum_hist(report, layer="fc9")


# ---- skew -------------------------------------------------------------------------------------------
def test_skew_hist_counts_and_threshold_lines(report):
    ax = plot.skew_hist(report, layer="fc1", estimator="gauss", bins=25)
    live = report.neurons.query("layer == 'fc1' and not degenerate")
    expected, _ = np.histogram(live["skew_gauss"], bins=np.linspace(0, 0.5, 26))
    assert [b.get_height() for b in ax.patches] == list(expected)
    xs = sorted(float(ln.get_xdata()[0]) for ln in ax.get_lines())
    assert xs == [0.1, 0.3]
    assert "gauss estimator" in ax.get_xlabel()


def test_skew_hist_hue_from_comparison_frames(report):
    a = report.neurons.assign(init="glorot", seed=0)
    b = report.neurons.assign(init="sinusoidal", seed=0, skew=0.0)
    cmp = SimpleNamespace(neurons=pd.concat([a, b], ignore_index=True), layers=None)
    ax = plot.skew_hist(cmp, layer="all")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("glorot") for t in labels) and any(t.startswith("sinusoidal") for t in labels)
    assert ax.get_legend().get_title().get_text() == "init"
    with pytest.raises(SkewError, match="hue='nope'"):
        plot.skew_hist(cmp, hue="nope")
    with pytest.raises(SkewError, match="count, gauss"):
        plot.skew_hist(cmp, estimator="mean")


def test_skew_vs_rowsum_curve_is_theorem_1_and_matches_measurement(report):
    ax = plot.skew_vs_rowsum(report, layer="fc1")
    live = report.neurons.query("layer == 'fc1' and not degenerate")
    (points,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert np.allclose(points.get_offsets(), live[["row_sum", "p"]].to_numpy())
    (curve,) = [ln for ln in ax.get_lines() if "Theorem 1" in str(ln.get_label())]
    s, p = curve.get_data()
    lay = report.layers.iloc[0]
    med = float(np.median(live["row_norm"]))
    assert np.allclose(p, norm.cdf(lay["input_mean"] * s / (lay["input_std"] * med)))
    # theory vs Monte Carlo: the measured p lie on the curve
    pred = norm.cdf(lay["input_mean"] * live["row_sum"] / (lay["input_std"] * med))
    assert float(np.mean(np.abs(pred - live["p"]))) < 0.03


def test_skew_vs_rowsum_all_layers_one_curve_each(report):
    ax = plot.skew_vs_rowsum(report, layer="all")
    assert len([ln for ln in ax.get_lines() if "Theorem 1" in str(ln.get_label())]) == 2
    assert len([c for c in ax.collections if isinstance(c, PathCollection)]) == 2


# ---- activation states ------------------------------------------------------------------------------
def test_activation_states_white_is_active():
    signs = np.zeros((4, 5), dtype=bool)
    signs[:, 2] = True
    ax = plot.activation_states(signs)
    (im,) = ax.get_images()
    assert np.array_equal(np.asarray(im.get_array()), signs.astype(float))
    assert im.get_cmap().name == "gray" and im.get_clim() == (0.0, 1.0)
    assert im.get_cmap()(1.0)[:3] == (1.0, 1.0, 1.0)


def test_activation_states_from_report_and_subsampling(report):
    ax = plot.activation_states(report)
    assert "fc1" in ax.get_title() and "first layer" in ax.get_title()
    big = torch.rand(1000, 600, generator=torch.Generator().manual_seed(0)) > 0.5
    im = plot.activation_states(big).get_images()[0]
    assert np.asarray(im.get_array()).shape == (250, 250)
    ax = plot.activation_states(report, layer="fc2")
    shown = np.asarray(ax.get_images()[0].get_array())
    rows = np.linspace(0, 299, 250).round().astype(int)  # evenly spaced, first and last kept
    assert np.array_equal(shown, report.signs["fc2"][rows].astype(float))
    with pytest.raises(SkewError, match="valid layers"):
        plot.activation_states(report, layer="fc3")
    with pytest.raises(SkewError, match="2-D"):
        plot.activation_states(np.ones(5, dtype=bool))


# ---- theory curve -----------------------------------------------------------------------------------
def test_skew_fraction_vs_alpha_measured_and_corollary(report):
    alphas = [0.05, 0.1, 0.2, 0.3, 0.4]
    ax = plot.skew_fraction_vs_alpha(report, layer="fc1", alphas=alphas, laws=["relu-gaussian", "gaussian"])
    live = report.neurons.query("layer == 'fc1' and not degenerate")
    lines = {str(ln.get_label()).split(" (")[0]: ln for ln in ax.get_lines()}
    measured = lines["measured"].get_ydata()
    assert np.allclose(measured, [(live["skew"] > a).mean() for a in alphas])
    mu, sd = 1 / math.sqrt(2 * math.pi), math.sqrt(0.5 - 1 / (2 * math.pi))
    law = [ln for ln in ax.get_lines() if "relu-gaussian" in str(ln.get_label())][0]
    assert np.allclose(law.get_ydata(), 2 * (1 - norm.cdf(sd / mu * norm.ppf(0.5 + np.array(alphas)))))
    zero = [ln for ln in ax.get_lines() if str(ln.get_label()).startswith("gaussian")][0]
    assert not np.any(zero.get_ydata())
    # corollary vs Monte Carlo on a wide first layer
    assert np.max(np.abs(measured - law.get_ydata())) < 0.08


def test_skew_fraction_vs_alpha_without_data_and_errors():
    ax = plot.skew_fraction_vs_alpha()
    labels = [str(ln.get_label()) for ln in ax.get_lines()]
    assert any("relu-gaussian" in t for t in labels) and any("relu-uniform" in t for t in labels)
    with pytest.raises(SkewError, match="nothing to plot"):
        plot.skew_fraction_vs_alpha(laws=[])
    with pytest.raises(SkewError, match="between 0 and 0.5"):
        plot.skew_fraction_vs_alpha(alphas=[0.6])
    with pytest.raises(SkewError, match="valid laws"):
        plot.skew_fraction_vs_alpha(laws=["cauchy"])


# ---- depth ------------------------------------------------------------------------------------------
def test_skew_by_depth_means_over_seeds_in_forward_order():
    rows = []
    values = {"glorot": (0.2, 0.4, 0.5), "sinusoidal": (0.0, 0.1, 0.3)}
    for init, vals in values.items():
        for seed in (0, 1):
            for layer, v in zip(("fc1", "b", "a"), vals):  # forward order is not alphabetical
                rows.append({"layer": layer, "init": init, "seed": seed, "skewed_0.3": v + 0.1 * seed})
    ax = plot.skew_by_depth(pd.DataFrame(rows), alpha=0.3)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fc1", "b", "a"]
    lines = {c.get_label(): c.lines[0] for c in ax.containers}
    assert set(lines) == {"glorot", "sinusoidal"}
    assert np.allclose(lines["glorot"].get_ydata(), np.array(values["glorot"]) + 0.05)
    # the two schemes are dodged symmetrically around the layer positions
    assert np.allclose(lines["sinusoidal"].get_xdata() + lines["glorot"].get_xdata(), [0, 2, 4])
    assert np.allclose(np.diff(lines["sinusoidal"].get_xdata()), 1.0)
    assert ax.containers and ax.containers[0].has_yerr
    assert "α = 0.3" in ax.get_ylabel()


def test_skew_by_depth_from_neurons_frame_equals_brute_force(report):
    ax = plot.skew_by_depth(report.neurons, alpha=0.1)
    live = report.neurons[~report.neurons["degenerate"]]
    expected = [(live.query("layer == @name")["skew"] > 0.1).mean() for name in ("fc1", "fc2")]
    (line,) = [c.lines[0] for c in ax.containers if c.get_label() == "measured"]
    assert np.allclose(line.get_ydata(), expected)
    with pytest.raises(SkewError, match="skewed_0.2"):
        plot.skew_by_depth(report.layers, alpha=0.2)


def test_bad_data_is_rejected():
    with pytest.raises(SkewError, match="'layer' column"):
        plot.skew_hist(pd.DataFrame({"x": [1]}))
    with pytest.raises(SkewError, match="cannot plot"):
        plot.skew_hist(object())
    with pytest.raises(SkewError, match="row_sum"):
        plot.rowsum_hist(pd.DataFrame({"layer": ["a"], "neuron": [0], "skew": [0.1]}))


def test_neurons_without_a_finite_skew_are_left_out():
    frame = pd.DataFrame({"layer": "a", "neuron": [0, 1, 2, 3], "row_sum": [0.1, -2.0, 0.5, 0.0],
                          "skew": [0.05, 0.45, np.nan, 0.0], "degenerate": [False, False, False, True]})
    ax = plot.skew_hist(frame)
    assert sum(b.get_height() for b in ax.patches) == 2
    assert "1 degenerate left out" in ax.get_title()
    ax = plot.rowsum_hist(frame, alpha=0.3)
    low, high = _stacks(ax)
    # 2 live neurons with a finite skew, 1 of them skewed: each stack holds half of the density
    assert sum(b.get_height() for b in high) * 0.2 == pytest.approx(0.5)
    assert sum(b.get_height() for b in low) * 0.2 == pytest.approx(0.5)


def test_every_plot_reads_a_real_report():
    analyzer = pytest.importorskip("skew.analyzer")
    from skew.data import build_data
    from skew.models import build_model

    net = build_model("mlp", depth=2, width=48)
    rep = analyzer.report(net, build_data("gaussian", shape=(48,), batch_size=128, batches=2), progress=False)
    for name in NAMES[2:]:
        fig, ax = plt.subplots()
        assert getattr(plot, name)(rep, ax=ax) is ax
        assert "fc1" in ax.get_title() or name == "skew_by_depth"
    ax = plot.skew_by_depth(rep, alpha=0.1)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fc1", "fc2"]


# ---- defaults that do not mislead -------------------------------------------------------------------
def test_default_layer_skips_a_layer_fed_zero_mean_data(report):
    # an image model's first conv sees standardised, zero-mean pixels: nothing to see there
    rep = SimpleNamespace(**vars(report))
    rep.layers = report.layers.assign(input_mean=[0.0, float(report.layers["input_mean"].iloc[1])])
    assert plot.default_layer(["fc1", "fc2"], rep.layers) == ("fc2", "first layer with input mean ≠ 0")
    for name in ("rowsum_hist", "skew_hist", "skew_vs_rowsum", "activation_states"):
        ax = getattr(plot, name)(rep)
        assert "layer fc2 (first layer with input mean ≠ 0)" in ax.get_title(), name
    none = report.layers.assign(input_mean=0.0)
    assert plot.default_layer(["fc1", "fc2"], none) == ("fc1", "first layer; no layer has input mean ≠ 0")
    assert plot.default_layer(["fc1", "fc2"], None) == ("fc1", "first layer")


@pytest.mark.parametrize("name", NAMES)
def test_titles_hold_no_api_hints(report, name):
    fig, ax = plt.subplots()
    _calls(report)[name](ax)
    assert "pass " not in ax.get_title() and "=)" not in ax.get_title()


def _data_points_under_legend(ax) -> int:
    """Data points (line vertices, scatter points, bar tops) drawn under the axes' legend, in pixels."""
    from matplotlib.patches import Rectangle

    ax.figure.canvas.draw()
    legend = ax.get_legend()
    if legend is None:
        return 0
    box = legend.get_window_extent()
    points = []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if len(xy) > 1 and not (np.ptp(xy[:, 0]) == 0 or np.ptp(xy[:, 1]) == 0):  # not a reference rule
            points.append(line.get_transform().transform(xy))
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets(), dtype=float)
        if len(offsets):
            points.append(coll.get_offset_transform().transform(offsets))
    for patch in ax.patches:
        if isinstance(patch, Rectangle) and patch.get_height() > 0:
            top = (patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height())
            points.append(patch.get_data_transform().transform([top]))
    if not points:
        return 0
    xy = np.concatenate(points)
    inside = (xy[:, 0] > box.x0) & (xy[:, 0] < box.x1) & (xy[:, 1] > box.y0) & (xy[:, 1] < box.y1)
    return int(inside.sum())


@pytest.mark.parametrize("name", ["rowsum_hist", "skew_hist", "skew_vs_rowsum", "skew_by_depth",
                                  "skew_fraction_vs_alpha"])
def test_legends_do_not_cover_data(report, name):
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    _calls(report)[name](ax)
    assert _data_points_under_legend(ax) == 0, name


def test_activation_states_legend_is_outside_the_raster(report):
    fig, ax = plt.subplots(layout="constrained")
    plot.activation_states(report, ax=ax)
    fig.canvas.draw()
    legend, raster = ax.get_legend().get_window_extent(), ax.get_images()[0].get_window_extent()
    assert not legend.overlaps(raster)


def test_coinciding_schemes_stay_distinguishable(report):
    # two schemes with identical measurements (e.g. uniform schemes that differ only in scale)
    lay = pd.concat([report.layers.assign(init="glorot", seed=0), report.layers.assign(init="he", seed=0)],
                    ignore_index=True)
    ax = plot.skew_by_depth(lay, alpha=0.3)
    lines = [c.lines[0] for c in ax.containers if c.get_label() in ("glorot", "he")]
    assert len(lines) == 2
    (a, b) = lines
    assert a.get_linestyle() != b.get_linestyle() and a.get_marker() != b.get_marker()
    assert not np.allclose(a.get_xdata(), b.get_xdata())  # shifted sideways, by less than half a layer
    assert np.abs(np.asarray(a.get_xdata()) - np.asarray(b.get_xdata())).max() < 0.5
    nd = pd.concat([report.neurons.assign(init="glorot"), report.neurons.assign(init="he")], ignore_index=True)
    ax = plot.skew_hist(nd, layer="fc1", hue="init")
    steps = [p for p in ax.patches if p.get_label() in ("glorot (398)", "he (398)")]
    assert len(steps) == 2 and steps[0].get_linestyle() != steps[1].get_linestyle()
