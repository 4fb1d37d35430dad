"""skew.Tracker: when it measures, what it leaves behind, and that its numbers are skew.report's."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skew.errors import SkewError
from skew.tracker import Tracker


class ModeSpy(nn.Module):
    """Identity that records the training flag of every forward call."""

    def __init__(self):
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x):
        self.seen.append(self.training)
        return x


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 12), nn.ReLU(), nn.Dropout(0.3), nn.Linear(12, 10), nn.ReLU(), ModeSpy(),
        nn.Linear(10, 3),
    )


def _batches(n_steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_steps, 16, 6, generator=g) + 0.5
    y = torch.randint(0, 3, (n_steps, 16), generator=g)
    return list(zip(x, y))


def _train(model, batches, tracker=None, on_measure=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for step, (x, y) in enumerate(batches):
        if on_measure is not None and tracker is not None and step % tracker.every == 0:
            on_measure(step, model)
        if tracker is not None:
            tracker.step(step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


PROBE = torch.randn(64, 6, generator=torch.Generator().manual_seed(7)) + 0.5


def test_records_at_the_right_steps_one_row_per_layer():
    model = _net()
    tracker = Tracker(model, PROBE, every=3)
    _train(model, _batches(10), tracker)
    hist = tracker.history
    assert tracker.steps == [0, 3, 6, 9]
    assert hist.groupby("step")["layer"].apply(list).to_dict() == {s: ["0", "3", "6"] for s in (0, 3, 6, 9)}
    for col in ("skewed_0.1", "skewed_0.3", "skewed_gauss_0.3", "oui_batch", "oui_pairwise", "mean_skew"):
        assert col in hist.columns
    assert hist["skewed_0.1"].between(0, 1).all() and hist["mean_skew"].between(0, 0.5).all()
    # a fraction at a looser threshold is never below the stricter one
    assert (hist["skewed_0.1"] >= hist["skewed_0.3"]).all()


def test_default_counter_and_call_alias():
    tracker = Tracker(nn.Linear(6, 4), PROBE, every=2)
    assert [tracker() for _ in range(5)] == [True, False, True, False, True]
    assert tracker.steps == [0, 2, 4]


def test_measures_in_eval_mode_and_restores_every_flag():
    model = _net()
    model.train()
    model[2].eval()  # a mixed state the tracker must give back as it found it
    flags = [m.training for m in model.modules()]
    spy = model[5]
    Tracker(model, PROBE, every=1).step(0)
    assert spy.seen and not any(spy.seen), "measurement must run in eval mode"
    assert [m.training for m in model.modules()] == flags


def test_restores_flags_and_leaves_no_hooks_when_the_model_fails():
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    model = nn.Sequential(nn.Linear(6, 4), Boom())
    model.train()
    with pytest.raises(SkewError, match="boom"):
        Tracker(model, PROBE, every=1).step(0)
    assert all(m.training for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_leaves_no_hooks_and_does_not_change_training():
    batches = _batches(12)
    plain = _net()
    _train(plain, batches)
    tracked = _net()
    tracker = Tracker(tracked, PROBE, every=2)
    _train(tracked, batches, tracker)
    # same parameters after training, bit for bit: the tracker moved no weight and no random state
    # (the network has dropout, so a consumed random number would change the trajectory)
    for (name, a), (_, b) in zip(plain.state_dict().items(), tracked.state_dict().items()):
        assert torch.equal(a, b), name
    assert len(tracker.steps) == 6
    for m in tracked.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    assert not nn.modules.module._global_forward_hooks


def test_history_equals_a_direct_report_at_the_same_step():
    from skew.analyzer import report

    model = _net()
    tracker = Tracker(model, PROBE, every=4, thresholds=(0.1, 0.3))
    direct = {}

    def snapshot(step, m):
        twin = copy.deepcopy(m)
        direct[step] = report(twin, [PROBE], thresholds=(0.1, 0.3)).layers.set_index("layer")

    _train(model, _batches(9), tracker, on_measure=snapshot)
    hist = tracker.history
    assert sorted(direct) == tracker.steps == [0, 4, 8]
    # training moved the numbers, so equality below is not trivially the step-0 table
    assert not np.allclose(
        hist[hist.step == 0]["mean_skew"].to_numpy(), hist[hist.step == 8]["mean_skew"].to_numpy()
    )
    cols = ["skewed_0.1", "skewed_0.3", "skewed_gauss_0.1", "skewed_gauss_0.3", "mean_skew", "oui_batch",
            "oui_pairwise", "dead", "always_on", "degenerate"]
    for step, table in direct.items():
        got = hist[hist.step == step].set_index("layer")[cols]
        pd.testing.assert_frame_equal(got, table.loc[got.index, cols], check_dtype=False, check_names=False)


def test_tuple_probe_matches_tensor_probe():
    model = _net()
    a = Tracker(model, PROBE, every=1)
    b = Tracker(model, (PROBE, torch.zeros(64, dtype=torch.long)), every=1)
    a.step(0)
    b.step(0)
    pd.testing.assert_frame_equal(a.history, b.history)


def test_plot_draws_one_line_per_layer_and_rejects_unknown_metrics():
    model = _net()
    tracker = Tracker(model, PROBE, every=2)
    with pytest.raises(SkewError, match="no measurements"):
        tracker.plot()
    _train(model, _batches(5), tracker)
    ax = tracker.plot("oui_pairwise")
    assert len(ax.lines) == 3
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [0, 2, 4])
    first = tracker.history.query("layer == '0'")["oui_pairwise"].to_numpy()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), first)
    assert len(tracker.plot("skewed_0.1", layers=["3"]).lines) == 1
    with pytest.raises(SkewError, match="skewed_0.3"):
        tracker.plot("no_such_metric")
    with pytest.raises(SkewError, match="pick from"):
        tracker.plot(layers=["nope"])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"every": 0}, "positive integer"), ({"every": 2.5}, "positive integer"),
     ({"mode": "test"}, "eval, train"),
     ({"thresholds": (0.6,)}, r"\(0, 0.5\)"), ({"thresholds": "x"}, "thresholds")],
)
def test_bad_options_raise_skewerror(kwargs, match):
    with pytest.raises(SkewError, match=match):
        Tracker(nn.Linear(6, 3), PROBE, **kwargs)


# -- issue 13: structure vs weights (docs/oui.md) ----------------------------------------------------------
def _outputs(model, x):
    """Each Linear/Conv layer's output on x, in eval mode, by brute force (a deep copy)."""
    twin = copy.deepcopy(model).eval()
    seen = {}
    for name, mod in twin.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)):
            mod.register_forward_hook(lambda m, a, out, name=name: seen.setdefault(name, out.detach().clone()))
    with torch.no_grad():
        twin(x)
    return seen


def test_pattern_and_weight_change_equal_a_brute_force_count():
    model = _net()
    tracker = Tracker(model, PROBE, every=3)
    snaps = {}

    def snapshot(step, m):
        snaps[step] = (_outputs(m, PROBE), {n: p.detach().clone() for n, p in m.named_parameters()})

    _train(model, _batches(10), tracker, on_measure=snapshot)
    hist = tracker.history.set_index(["step", "layer"])
    steps = tracker.steps
    assert steps == [0, 3, 6, 9]
    assert hist.loc[0]["pattern_change"].isna().all() and hist.loc[0]["weight_change"].isna().all()
    some_flip = False
    for prev, cur in zip(steps, steps[1:]):
        for layer in ("0", "3", "6"):
            a, b = snaps[prev][0][layer] > 0, snaps[cur][0][layer] > 0
            flips = int((a != b).sum())
            some_flip |= flips > 0
            assert hist.loc[(cur, layer), "pattern_change"] == pytest.approx(flips / a.numel(), abs=0)
            w0, w1 = snaps[prev][1][f"{layer}.weight"], snaps[cur][1][f"{layer}.weight"]
            expect = float(torch.linalg.norm(w1.double() - w0.double()) / torch.linalg.norm(w0.double()))
            assert hist.loc[(cur, layer), "weight_change"] == pytest.approx(expect, rel=1e-12)
    assert some_flip, "lr 0.1 moves some activation state; otherwise the check above is vacuous"


def test_pattern_change_counts_every_position_of_a_conv():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 5 * 5, 4))
    probe = torch.randn(6, 2, 5, 5)
    tracker = Tracker(model, probe, every=1)
    tracker.step(0)
    before = _outputs(model, probe)["0"] > 0
    with torch.no_grad():
        model[0].bias[1] += 0.3  # flips the states near zero of channel 1, at every position
        model[0].weight[2, 0, 1, 1] *= -1
    tracker.step(1)
    after = _outputs(model, probe)["0"] > 0
    row = tracker.history.query("step == 1 and layer == '0'").iloc[0]
    flips = int((before != after).sum())
    assert flips > 0
    assert row["pattern_change"] == flips / before.numel()  # (6 samples × 3 channels × 25 positions)
    w_now = model[0].weight.detach().double()
    w_before = w_now.clone()
    w_before[2, 0, 1, 1] *= -1
    assert row["weight_change"] == pytest.approx(
        float(torch.linalg.norm(w_now - w_before) / torch.linalg.norm(w_before)), rel=1e-12
    )
    # the bias moved the structure of channel 1 but not the weight matrix of the last layer
    assert tracker.history.query("step == 1 and layer == '3'")["weight_change"].iloc[0] == 0.0


def test_conv_history_equals_a_direct_report():
    from skew.analyzer import report

    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Conv2d(6, 5, 3, bias=False), nn.ReLU(),
                          nn.Flatten(), nn.Linear(5 * 3 * 3, 4))
    probe = torch.randn(20, 2, 7, 7) + 0.2
    tracker = Tracker(model, probe, every=1)
    tracker.step(0)
    cols = ["skewed_0.1", "skewed_0.3", "skewed_gauss_0.1", "skewed_gauss_0.3", "mean_skew", "oui_batch",
            "oui_pairwise", "neurons", "dead", "always_on", "degenerate"]
    direct = report(model, [probe]).layers.set_index("layer")[cols]
    got = tracker.history.set_index("layer")[cols]
    pd.testing.assert_frame_equal(got, direct.loc[got.index], check_dtype=False, check_names=False)


def test_attention_layers_take_the_report_path():
    torch.manual_seed(0)
    model = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    probe = torch.randn(4, 5, 8)
    tracker = Tracker(model, probe, every=1)
    tracker.step(0)
    tracker.step(1)
    hist = tracker.history
    assert "self_attn.q_proj" in set(hist["layer"])
    assert (hist.query("step == 1")["weight_change"] == 0).all()  # nothing trained in between
    assert (hist.query("step == 1 and layer == 'linear1'")["pattern_change"] == 0).all()


def test_at_activations_needs_a_report_that_measures_them():
    from skew.analyzer import report

    tracker = Tracker(_net(), PROBE, every=1, at="activations")
    try:
        report(_net(), [PROBE], at="activations")
    except TypeError:
        with pytest.raises(SkewError, match="at='activations'"):
            tracker.step(0)
    else:  # a skew.report with at= is present: the tracker passes it through
        tracker.step(0)
        assert len(tracker.history) > 0
    with pytest.raises(SkewError, match="layers, activations"):
        Tracker(_net(), PROBE, at="weights")


def _assert_history_is_report(tracker, model, probe, step=0, **kwargs):
    """Every recorded layer column of the tracker at ``step`` equals a direct skew.report's."""
    from skew.analyzer import report
    from skew.tracker import _LAYER_SCALARS

    cols = [c for c in tracker.history.columns if c.startswith("skewed")] + list(_LAYER_SCALARS)
    direct = report(model, [probe], thresholds=tracker.thresholds, **kwargs).layers.set_index("layer")
    got = tracker.history.query(f"step == {step}").set_index("layer")[cols]
    assert list(got.index) == list(direct.index)
    pd.testing.assert_frame_equal(got, direct.loc[got.index, cols], check_dtype=False, check_names=False)
    return direct


class _Cancel(nn.Module):
    """Conv filters 0 and 1 weigh the RGB channels (a, b, −(a+b)): exactly zero on grey images in real
    arithmetic, float32 rounding noise (std ~1e-8) in practice."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.conv = nn.Conv2d(3, 4, 3)
        with torch.no_grad():
            a, b = torch.randn(2, 2, 3, 3)
            self.conv.weight[:2] = torch.stack([a, b, -(a + b)], 1)
            self.conv.bias[:2] = torch.tensor([0.3, -0.2])
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


def test_degenerate_neurons_follow_reports_relative_rule():
    grey = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(2)).expand(32, 3, 8, 8).contiguous()
    model = _Cancel()
    tracker = Tracker(model, grey, every=1, thresholds=(0.1, 0.3))
    tracker.step(0)
    assert tracker._light
    direct = _assert_history_is_report(tracker, model, grey)
    # the cancelling filters are rounding noise, not constant to 1e-12: only the scale-relative rule flags them
    assert direct.loc["conv", "degenerate"] == 2
    z = model.conv(grey).detach()[:, :2].double()
    assert (z.std((0, 2, 3)) > 1e-12).all()


def test_square_sinusoidal_layer_equals_a_direct_report():
    from skew.init import apply

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))
    apply(model, "sinusoidal")
    probe = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    tracker = Tracker(model, probe, every=1)
    tracker.step(0)
    assert tracker._light
    _assert_history_is_report(tracker, model, probe)


def test_conv_bn_oui_pairwise_is_the_authors_unit_reading():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5))
    model.train()
    for _ in range(3):  # running statistics away from their initial values
        model(torch.randn(16, 3, 6, 6) + 0.3)
    probe = torch.randn(12, 3, 6, 6, generator=torch.Generator().manual_seed(9))
    tracker = Tracker(model, probe, every=1)
    tracker.step(0)
    assert tracker._light and model.training  # measured in eval mode, flags restored
    direct = _assert_history_is_report(tracker, model, probe, mode="eval")
    # units are C×H×W, not channels: the two readings differ on these layers
    assert (direct["oui_pairwise"] != direct["oui_pairwise_pooled"]).any()


def test_sequence_first_transformer_falls_back_and_agrees():
    torch.manual_seed(0)
    model = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=False).eval()
    probe = torch.randn(5, 4, 8, generator=torch.Generator().manual_seed(3))  # (T, B, F)
    tracker = Tracker(model, probe, every=1, layers=["linear1", "linear2"])
    tracker.step(0)
    assert not tracker._light
    _assert_history_is_report(tracker, model, probe, layers=["linear1", "linear2"])


class _Masked(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.proj = nn.Linear(5, 7)
        self.out = nn.Linear(7, 2)

    def forward(self, x, attention_mask):
        return self.out(torch.relu(self.proj(x)))


def test_attention_mask_batches_fall_back_and_agree():
    g = torch.Generator().manual_seed(8)
    mask = torch.ones(6, 4, dtype=torch.long)
    mask[:3, 2:] = 0
    x = torch.randn(6, 4, 5, generator=g)
    x[mask == 0] = 50.0  # padding that would dominate the statistics if it were measured
    probe = {"x": x, "attention_mask": mask}
    model = _Masked()
    tracker = Tracker(model, probe, every=1)
    tracker.step(0)
    assert not tracker._light
    direct = _assert_history_is_report(tracker, model, probe)
    assert (direct["mask"] == "applied").all()


def test_light_rows_match_report_for_tokens_and_repeated_calls():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(2)
            self.lin = nn.Linear(6, 6)

        def forward(self, x):
            return self.lin(torch.tanh(self.lin(x)))

    probe = torch.randn(10, 3, 6, generator=torch.Generator().manual_seed(4))  # (B, T, F) tokens
    model = Twice()
    tracker = Tracker(model, probe, every=1)
    tracker.step(0)
    assert tracker._light
    _assert_history_is_report(tracker, model, probe)
