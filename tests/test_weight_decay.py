"""The OUI-guided weight-decay controller (docs/oui.md) on scripted OUI/loss sequences, and EpochOUI."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skew.epoch_oui import EpochOUI
from skew.errors import SkewError
from skew.weight_decay import OUIWeightDecay


def _opt(wd=0.0):
    return torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=0.1, weight_decay=wd)


def _run(epochs, script, **kw):
    opt = _opt(0.5)
    ctl = OUIWeightDecay(opt, epochs=epochs, **kw)
    assert opt.param_groups[0]["weight_decay"] == 1e-4  # set to the initial value at once
    out = []
    for oui, loss in script:
        wd = ctl.step(oui, loss)
        assert opt.param_groups[0]["weight_decay"] == wd
        out.append(wd)
    return ctl, out


# -- main phase, N = 10: f = 10, the initial phase is epoch 0 only, the last 10 % is epoch 9 ------------
def test_main_rules_hand_worked():
    script = [(0.70, 1.00),  # e0 phase: first OUI 0.70 -> 1e-4
              (0.70, 0.90),  # e1 OUI > 0.65, loss improved -> *f = 1e-3
              (0.70, 0.95),  # e2 loss did not improve -> keep
              (0.60, 0.80),  # e3 between the limits -> keep
              (0.50, 0.70),  # e4 OUI < 0.55 -> /f = 1e-4, limit 0.525, factor 100
              (0.54, 0.60),  # e5 0.54 >= 0.525, not > 0.65 -> keep
              (0.52, 0.50),  # e6 OUI < 0.525 -> /100 = 1e-6, limit 0.5, factor 1000
              (0.49, 0.40),  # e7 OUI < 0.5 -> /1000 = 1e-9, limit 0.475
              (0.90, 0.30),  # e8 OUI > 0.65, improved -> *10 = 1e-8
              (0.90, 0.20)]  # e9 last 10 %: /f^4 = 1e-12 (even though OUI is high and loss improved)
    ctl, wds = _run(10, script)
    np.testing.assert_allclose(wds, [1e-4, 1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-6, 1e-9, 1e-8, 1e-12], rtol=1e-12)
    assert ctl.decisions["action"].tolist() == [
        "phase", "increase", "keep", "keep", "decrease", "keep", "decrease", "decrease", "increase", "final decay"]
    assert ctl.limit == pytest.approx(0.475) and ctl.factor == pytest.approx(1e4)
    assert not ctl.reset_requested


def test_f_and_the_last_tenth_for_n_30():
    f = 10 ** (1 / 3)
    script = [(0.7, 1.0)] * 3 + [(0.7, 1.0 - 0.01 * k) for k in range(1, 25)] + [(0.7, 0.5)] * 3
    ctl, wds = _run(30, script)
    assert ctl.f == pytest.approx(f)
    assert wds[:3] == [1e-4] * 3  # the initial phase: epochs 0, 1, 2 (< 0.1 N)
    # epochs 3..26: loss improves every epoch with OUI 0.7 -> 24 increases
    assert wds[26] == pytest.approx(1e-4 * f**24, rel=1e-12)
    # epochs 27, 28, 29 (>= 0.9 N): three final decays by f^4
    assert wds[29] == pytest.approx(1e-4 * f**24 / f**12, rel=1e-12)
    assert ctl.decisions["action"].tolist()[27:] == ["final decay"] * 3


# -- initial phase, N = 30: three epochs ----------------------------------------------------------------
def test_reset_divides_by_ten_and_restarts_the_phase():
    calls = []
    script = [(0.40, 2.0),   # e0 OUI < 0.55 in the phase: reset, 1e-5; the phase's reference is taken again
              (0.60, 2.0),   # e1 the phase's new first value
              (0.50, 1.9),   # e2 OUI < 0.55 again, still in the first 10 % (e < 3): reset, 1e-6
              (0.70, 1.8),   # e3 phase over (the run's clock): OUI > 0.65 but no loss reference after a reset
              (0.70, 1.7),   # e4 OUI > 0.65, loss improved -> *f
              (0.40, 1.6)]   # e5 no reset after the phase: OUI < 0.55 limit -> /f
    counter = iter(range(100))
    ctl, wds = _run(30, script, reset=lambda: calls.append(next(counter)))
    f = 10 ** (1 / 3)
    np.testing.assert_allclose(wds, [1e-5, 1e-5, 1e-6, 1e-6, 1e-6 * f, 1e-6], rtol=1e-12)
    assert len(calls) == 2  # called once per reset (after the steps of epochs 0 and 2)
    assert ctl.decisions.query("action == 'reset'")["epoch"].tolist() == [0, 2]
    assert ctl.decisions["action"].tolist() == ["reset", "phase", "reset", "keep", "increase", "decrease"]


def test_resets_are_bounded_by_the_first_tenth():
    ctl, wds = _run(30, [(0.3, 1.0)] * 6)  # OUI never reaches 0.55
    assert ctl.decisions["action"].tolist() == ["reset"] * 3 + ["decrease"] * 3
    f = 10 ** (1 / 3)
    np.testing.assert_allclose(wds[2:], [1e-7, 1e-7 / f, 1e-7 / f / f**2, 1e-7 / f**3 / f**3], rtol=1e-12)


def test_reset_flag_without_a_callback_and_loss_reference_cleared():
    opt = _opt()
    ctl = OUIWeightDecay(opt, epochs=10)
    ctl.step(0.3, 0.5)
    assert ctl.reset_requested and ctl.wd == pytest.approx(1e-5)
    ctl.step(0.7, 9.0)  # phase over at N = 10; no loss reference after the reset: keep
    assert not ctl.reset_requested
    # the loss reference is the post-reset epoch (9.0), not the pre-reset 0.5: 8.0 improves on it
    assert ctl.step(0.7, 8.0) == pytest.approx(1e-4)


@pytest.mark.parametrize("second, action", [(0.91, "leave phase"), (0.69, "leave phase"),
                                            (0.89, "phase"), (0.71, "phase")])
def test_phase_left_early_when_oui_moves_past_its_bounds(second, action):
    # first 0.8: leave once risen more than 0.2 (> 1.0 impossible, so use 0.7 -> 0.91) or fallen more than 0.1
    first = 0.7 if second > 0.85 else 0.8
    ctl, wds = _run(30, [(first, 1.0), (second, 0.9), (0.75, 0.8)])
    assert ctl.decisions["action"].tolist()[:2] == ["phase", action]
    f = 10 ** (1 / 3)
    if action == "leave phase":  # the third epoch (still < 0.1 N) already follows the main rules
        assert wds == pytest.approx([1e-4, 1e-4, 1e-4 * f], rel=1e-12)
    else:
        assert wds == pytest.approx([1e-4] * 3) and ctl.in_phase


def test_only_the_chosen_groups_and_bad_arguments():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = torch.optim.AdamW([{"params": [a]}, {"params": [b], "weight_decay": 0.0}])
    ctl = OUIWeightDecay(opt, epochs=10, groups=[0])
    ctl.step(0.7, 1.0)
    ctl.step(0.7, 0.5)
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(1e-3)
    assert opt.param_groups[1]["weight_decay"] == 0.0
    with pytest.raises(SkewError, match="positive integer"):
        OUIWeightDecay(opt, epochs=0)
    with pytest.raises(SkewError, match="groups"):
        OUIWeightDecay(opt, epochs=5, groups=[3])
    with pytest.raises(SkewError, match="optimizer"):
        OUIWeightDecay(object(), epochs=5)
    with pytest.raises(SkewError, match="NaN"):
        ctl.step(float("nan"), 1.0)


# -- EpochOUI ---------------------------------------------------------------------------------------------
def _pairwise(pats):
    half = pats.shape[1] // 2
    return np.mean([min(int((pats[i] != pats[j]).sum()), half) / half for i, j in combinations(range(8), 2)])


def test_epoch_oui_equals_a_brute_force_over_training_batches():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(3 * 4 * 4, 5),
                        nn.ReLU(), nn.Linear(5, 2))
    batches = [torch.randn(12, 1, 6, 6) for _ in range(3)]
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    meter = EpochOUI(net, at="activations")
    expect = {"1": [], "4": []}
    for x in batches:
        with torch.no_grad():  # the brute force: the inputs of both ReLUs, every unit flattened
            h = net[0](x)
            expect["1"].append(_pairwise((h[:8] > 0).reshape(8, -1).numpy()))
            expect["4"].append(_pairwise((net[3](net[2](torch.relu(h)))[:8] > 0).numpy()))
        loss = F.cross_entropy(net(x), torch.zeros(12, dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    net(batches[0])  # an evaluation pass is ignored
    value = meter.epoch_end()
    hist = meter.history.set_index("site")
    for site in ("1", "4"):
        assert hist.loc[site, "oui"] == pytest.approx(np.mean(expect[site]), abs=1e-12)
        assert hist.loc[site, "batches"] == 3
    assert value == pytest.approx((np.mean(expect["1"]) + np.mean(expect["4"])) / 2, abs=1e-12)
    meter.close()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_epoch_oui_per_call_sites_and_layers():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.act = nn.Linear(4, 6), nn.Linear(6, 6), nn.ReLU()

        def forward(self, x):
            return self.act(self.fc2(self.act(self.fc1(x))))

    net = Twice()
    with EpochOUI(net, at="activations") as meter:
        net(torch.randn(8, 4))
        net(torch.randn(8, 4))
        meter.epoch_end()
    assert meter.history["site"].tolist() == ["act#0", "act#1"]
    assert (meter.history["batches"] == 2).all()
    with EpochOUI(net, at="layers") as meter:
        net(torch.randn(8, 4))
        meter.epoch_end()
    assert meter.sites == ["fc1", "fc2"]
    with pytest.raises(SkewError, match="at="):
        EpochOUI(net, at="weights")
    with pytest.raises(SkewError, match="no nonlinearity"):
        EpochOUI(nn.Linear(3, 3), at="activations")


def test_epoch_oui_does_not_change_training():
    def train(meter_on):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        meter = EpochOUI(net, at="activations") if meter_on else None
        g = torch.Generator().manual_seed(1)
        for _ in range(5):
            x = torch.randn(16, 5, generator=g)
            loss = F.cross_entropy(net(x), torch.zeros(16, dtype=torch.long))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return net, meter

    plain, _ = train(False)
    tracked, meter = train(True)
    for a, b in zip(plain.parameters(), tracked.parameters()):
        assert torch.equal(a, b)
    assert 0 <= meter.epoch_end() <= 1
