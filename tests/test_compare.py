"""skew.compare: scheme ordering from docs/definitions.md, statistics vs brute force, reproducibility, saving."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from skew import theory
from skew.compare import Comparison, cliffs_delta, compare
from skew.errors import SkewError

N_IN, WIDTH = 512, 256


def small_mlp() -> nn.Sequential:
    # ReLU before each Linear: the first layer sees ReLU(N(0,1)) inputs; m = 256 < n = 512.
    return nn.Sequential(nn.ReLU(), nn.Linear(N_IN, WIDTH, bias=False), nn.ReLU(), nn.Linear(WIDTH, WIDTH, bias=False))


def gaussian_batches(n_batches: int = 2, batch: int = 1024, dim: int = N_IN, seed: int = 123) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, dim, generator=g) for _ in range(n_batches)]


@pytest.fixture(scope="module")
def cmp() -> Comparison:
    return compare(small_mlp, gaussian_batches(), ["xavier_uniform", "kaiming_normal", "sinusoidal"], seeds=(0, 1))


def test_cliffs_delta_matches_brute_force_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.integers(0, 6, size=rng.integers(1, 30))
        b = rng.integers(0, 6, size=rng.integers(1, 30))
        brute = np.mean([np.sign(x - y) for x, y in itertools.product(a, b)])
        assert cliffs_delta(a, b) == pytest.approx(brute, abs=1e-12)
        assert cliffs_delta(b, a) == pytest.approx(-brute, abs=1e-12)
    assert np.isnan(cliffs_delta([], [1.0]))


def test_cliffs_delta_equals_rank_biserial_from_mann_whitney():
    from scipy import stats

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=40), rng.normal(0.5, size=25)
    u = stats.mannwhitneyu(a, b, alternative="two-sided").statistic
    assert cliffs_delta(a, b) == pytest.approx(2 * u / (a.size * b.size) - 1)


def test_tidy_frames_have_init_and_seed(cmp):
    assert {"init", "seed", "layer", "neuron", "skew", "row_sum"} <= set(cmp.neurons.columns)
    counts = cmp.neurons.groupby(["init", "seed"]).size()
    assert len(counts) == 6 and (counts == 2 * WIDTH).all()
    assert len(cmp.layers) == 3 * 2 * 2
    assert cmp.layer_order == ["1", "3"]
    assert set(cmp.reports) == set(itertools.product(["xavier_uniform", "kaiming_normal", "sinusoidal"], [0, 1]))


def test_sinusoidal_first_layer_has_no_skewed_neurons(cmp):
    # Theorem 3: m < n so every row sums to zero and p ~ 1/2 for every neuron.
    first = cmp.layers[(cmp.layers["init"] == "sinusoidal") & (cmp.layers["layer"] == "1")]
    assert (first["skewed_0.1"] == 0).all()
    s = cmp.neurons[(cmp.neurons["init"] == "sinusoidal") & (cmp.neurons["layer"] == "1")]
    assert np.abs(s["row_sum"]).max() < 1e-4


@pytest.mark.parametrize("scheme", ["xavier_uniform", "kaiming_normal"])
@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_random_schemes_match_the_corollary(cmp, scheme, alpha):
    mu, sigma = theory.input_moments("relu-gaussian")
    expected = theory.expected_skewed_fraction(alpha, mu, sigma)  # 0.711 at 0.1, 0.218 at 0.3
    first = cmp.neurons[(cmp.neurons["init"] == scheme) & (cmp.neurons["layer"] == "1")]
    measured = float((first["skew"] > alpha).mean())  # 512 neurons pooled over 2 seeds
    assert measured == pytest.approx(expected, abs=0.08)


def test_summary_is_the_seed_mean_as_a_fraction_like_report_layers(cmp):
    s = cmp.summary()
    assert list(s.index) == ["1", "3"]
    assert list(s.columns.get_level_values("init")[:3]) == ["xavier_uniform", "kaiming_normal", "sinusoidal"]
    assert list(dict.fromkeys(s.columns.get_level_values("threshold"))) == ["skewed_0.1", "skewed_0.3"]
    pct = cmp.summary(percent=True)
    lay = cmp.layers
    for layer, init, alpha in itertools.product(["1", "3"], cmp.schemes, [0.1, 0.3]):
        rows = lay[(lay["layer"] == layer) & (lay["init"] == init)]
        col = f"skewed_{alpha:g}"  # the same column name and unit as Report.layers
        assert s.loc[layer, (col, init)] == pytest.approx(rows[col].mean())
        assert 0.0 <= s.loc[layer, (col, init)] <= 1.0
        assert pct.loc[layer, (f"{col} (%)", init)] == pytest.approx(100 * rows[col].mean())
    assert s.loc["1", ("skewed_0.1", "sinusoidal")] < s.loc["1", ("skewed_0.1", "xavier_uniform")]
    html = cmp._repr_html_()
    assert "<table" in html and "sinusoidal" in html and "fraction" in html


def test_tests_frame_separates_schemes_and_agrees_with_brute_force(cmp):
    t = cmp.tests
    assert len(t) == 2 * 3  # 2 layers x 3 pairs
    row = t[(t["layer"] == "1") & (t["init_a"] == "xavier_uniform") & (t["init_b"] == "sinusoidal")].iloc[0]
    assert row["ks_p"] < 1e-10 and row["mw_p"] < 1e-10 and row["cliffs_delta"] > 0.5
    assert row["diff_skewed_0.1"] > 0.5
    same = t[(t["layer"] == "1") & (t["init_a"] == "xavier_uniform") & (t["init_b"] == "kaiming_normal")].iloc[0]
    assert same["ks_p"] > 1e-3 and abs(same["cliffs_delta"]) < 0.2  # the corollary: scheme-independent
    live = cmp.neurons[~cmp.neurons["degenerate"]]  # sinusoidal 256x512: row i = 256 is sin(pi j) = 0
    a = live.query("init == 'xavier_uniform' and layer == '1'")["skew"].to_numpy()
    b = live.query("init == 'sinusoidal' and layer == '1'")["skew"].to_numpy()
    assert row["n_b"] == b.size == 2 * (WIDTH - 1)
    from scipy import stats

    assert row["ks_stat"] == pytest.approx(stats.ks_2samp(a, b).statistic)
    assert row["skewed_a_0.3"] == pytest.approx(np.mean(a > 0.3))


def test_module_is_deep_copied_and_matches_the_factory():
    torch.manual_seed(5)
    net = small_mlp()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng_before = torch.random.get_rng_state()
    data = gaussian_batches(1, 256)
    from_module = compare(net, data, ["xavier_uniform"], seeds=(3,))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert torch.equal(rng_before, torch.random.get_rng_state())
    from_factory = compare(small_mlp, data, ["xavier_uniform"], seeds=(3,))
    pd.testing.assert_frame_equal(from_module.neurons, from_factory.neurons)


def test_default_scheme_is_reproducible_per_seed():
    data = gaussian_batches(1, 128)
    a = compare(small_mlp, data, ["default"], seeds=(0, 1))
    b = compare(small_mlp, data, ["default"], seeds=(0, 1))
    pd.testing.assert_frame_equal(a.neurons, b.neurons)
    rs = a.neurons.pivot_table(index=["layer", "neuron"], columns="seed", values="row_sum")
    assert not np.allclose(rs[0], rs[1])


def test_save_writes_identical_files(tmp_path, cmp):
    first = cmp.save(tmp_path / "a")
    second = cmp.save(tmp_path / "b")
    names = [p.relative_to(tmp_path / "a").as_posix() for p in first]
    assert names[:4] == ["neurons.csv", "layers.csv", "tests.csv", "summary.csv"]
    assert names[-1] == "comparison.json"
    assert names[4:-1] == [f"reports/{i:03d}.skew.zip" for i in range(len(cmp.reports))]
    for p, q in zip(first, second):
        assert p.read_bytes() == q.read_bytes()
    back = pd.read_csv(tmp_path / "a" / "neurons.csv")
    assert len(back) == len(cmp.neurons)
    assert np.allclose(back["skew"], cmp.neurons["skew"], atol=1e-5, equal_nan=True)
    assert not list((tmp_path / "a").glob(".*tmp"))


def test_load_is_the_pair_of_save(tmp_path, cmp):
    cmp.save(tmp_path / "c")
    back = Comparison.load(tmp_path / "c")
    assert back.schemes == cmp.schemes and back.seeds == cmp.seeds and back.thresholds == cmp.thresholds
    assert set(back.reports) == set(cmp.reports) and back.layer_order == cmp.layer_order
    pd.testing.assert_frame_equal(back.neurons, cmp.neurons, check_exact=True)
    pd.testing.assert_frame_equal(back.layers, cmp.layers, check_exact=True)
    pd.testing.assert_frame_equal(back.tests, cmp.tests, check_exact=True)
    pd.testing.assert_frame_equal(back.summary(), cmp.summary())
    for key, rep in cmp.reports.items():
        for layer, signs in rep.signs.items():
            assert np.array_equal(back.reports[key].signs[layer], signs)
    with pytest.raises(SkewError, match="comparison.json"):
        Comparison.load(tmp_path / "nowhere")
    (tmp_path / "c" / "reports" / "000.skew.zip").unlink()
    with pytest.raises(SkewError, match="missing"):
        Comparison.load(tmp_path / "c")


def test_plot_methods_return_axes(cmp):
    from matplotlib.axes import Axes

    assert isinstance(cmp.skew_by_depth(), Axes)
    assert isinstance(cmp.skew_hist(layer="1"), Axes)
    axes = cmp.rowsum_hist(layer="1")
    assert len(axes) == 3 and all(isinstance(ax, Axes) for ax in axes)
    # each panel names its scheme only; the shared description is the figure's title, once
    assert [ax.get_title().split("\n")[0] for ax in axes] == cmp.schemes
    assert "Row sums S, layer 1" in axes[0].figure.get_suptitle()


def test_bad_input_raises_skewerror():
    data = gaussian_batches(1, 64)
    with pytest.raises(SkewError, match="one-shot"):
        compare(small_mlp, (x for x in data), ["xavier_uniform"])
    with pytest.raises(SkewError, match="empty"):
        compare(small_mlp, data, [])
    with pytest.raises(SkewError, match="repeats"):
        compare(small_mlp, data, ["orthogonal"], seeds=(1, 1))
    with pytest.raises(SkewError, match="nn.Module or a zero-argument factory"):
        compare(42, data, ["orthogonal"])
    with pytest.raises(SkewError, match="factory returned"):
        compare(lambda: "not a model", data, ["orthogonal"])
    with pytest.raises(SkewError, match="no-such.*'as_built'"):
        compare(small_mlp, data, ["no-such-scheme"])
    with pytest.raises(SkewError, match="negative"):
        compare(small_mlp, data, ["orthogonal"], seeds=(-1,))


def test_as_built_measures_the_model_without_any_init():
    torch.manual_seed(7)
    net = small_mlp()
    with torch.no_grad():
        net[1].weight.add_(0.01)  # a custom init no scheme would produce
    got = compare(net, gaussian_batches(1, 128), ["as_built", "orthogonal"])
    rows = got.neurons.query("init == 'as_built' and layer == '1'")
    assert np.allclose(rows["row_sum"], net[1].weight.detach().sum(1).numpy(), atol=1e-4)
    ortho = got.neurons.query("init == 'orthogonal' and layer == '1'")
    assert not np.allclose(ortho["row_sum"], rows["row_sum"])
