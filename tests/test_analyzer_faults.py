"""Injected faults: skew.report leaves what the user owns unchanged and says one clear thing per bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations

from skew.analyzer import report
from skew.errors import SkewError
from skew.tracker import Tracker


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}


def assert_same(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict(keep_vars=True)
    assert list(after) == list(before)
    for k, v in before.items():
        assert after[k].dtype == v.dtype and torch.equal(after[k].detach(), v), k


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_spectral_norm_buffers_are_bit_identical(mode):
    torch.manual_seed(0)
    net = nn.Sequential(parametrizations.spectral_norm(nn.Linear(6, 5)), nn.ReLU(), nn.Linear(5, 2)).train()
    before = snapshot(net)
    report(net, [torch.randn(8, 6) for _ in range(2)], mode=mode)
    assert_same(net, before)
    assert net.training
    Tracker(net, torch.randn(8, 6), mode=mode).measure(0)
    assert_same(net, before)


class Counting(nn.Module):
    """Re-binds a buffer inside forward and counts its own calls (a forward side effect)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.register_buffer("seen", torch.zeros((), dtype=torch.int64))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        self.seen = self.seen + x.shape[0]  # a new tensor object, bound under the same name
        return self.fc(x)


def test_buffer_rebound_in_forward_is_restored_by_name():
    net = Counting()
    original = net.seen
    report(net, [torch.randn(5, 4) for _ in range(3)])
    assert net.seen is original and int(net.seen) == 0
    assert list(dict(net.named_buffers())) == ["seen"]


def test_max_batches_pulls_exactly_k_items():
    pulled = []

    def loader():
        for i in range(10):
            pulled.append(i)
            yield torch.randn(4, 3)

    rep = report(nn.Linear(3, 2), loader(), max_batches=3)
    assert pulled == [0, 1, 2] and rep.meta["batches"] == 3


def test_nonfinite_batch_is_measured_without_a_second_forward():
    torch.manual_seed(0)
    net = Counting()
    user_calls = []
    handle = net.fc.register_forward_hook(lambda m, a, o: user_calls.append(1))
    x0 = torch.randn(6, 4)
    x1 = torch.randn(6, 4)
    x1[2, 1] = float("nan")
    x1[4, 0] = float("inf")
    rep = report(net, [x0, x1])
    handle.remove()
    assert net.calls == 2 and len(user_calls) == 2  # one forward per batch, the user's hook once each
    z = torch.cat([net.fc(x0), net.fc(x1)]).detach().double().numpy()
    fin = np.isfinite(z)
    nf = rep.neurons
    np.testing.assert_array_equal(nf["n"], fin.sum(0))
    np.testing.assert_array_equal(nf["nonfinite"], (~fin).sum(0))
    np.testing.assert_array_equal(nf["p"], ((z > 0) & fin).sum(0) / fin.sum(0))
    mean = np.where(fin, z, 0).sum(0) / fin.sum(0)
    np.testing.assert_allclose(nf["mean"], mean, rtol=1e-6)
    assert rep.meta["careful_calls"] == 1


def test_merge_refuses_different_modes_and_sites():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    data = [torch.randn(8, 4)]
    base = report(net, data)
    with pytest.raises(SkewError, match="mode='eval'.*mode='train'"):
        base.merge(report(net, data, mode="train"))
    with pytest.raises(SkewError, match="at='layers'.*at='activations'"):
        base.merge(report(net, data, at="activations"))
    with pytest.raises(SkewError, match="different sites"):
        base.merge(report(net, data, layers="2"))
    assert base.merge(report(net, data)).meta["batches"] == 2


def test_zero_sample_batch_gets_a_clear_error():
    with pytest.raises(SkewError, match="batch 1 has zero samples"):
        report(nn.Linear(3, 2), [torch.randn(4, 3), torch.randn(0, 3)])
    # samples without features: named as such, not as zero samples
    with pytest.warns(UserWarning, match="zero-element"):  # torch's own note on building Linear(0, 2)
        empty = nn.Linear(0, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and none from skew (a 0/0 row_sum_scaled used to warn)
        with pytest.raises(SkewError, match=r"batch 0 holds no values.*\(4, 0\), whose dimension 1 is 0"):
            report(empty, [torch.randn(4, 0)])


def test_uninitialised_lazy_module_asks_for_one_forward():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.LazyLinear(2))
    with pytest.raises(SkewError, match="run one forward pass first"):
        report(net, [torch.randn(4, 3)])
    assert isinstance(net[2].weight, nn.parameter.UninitializedParameter)  # not materialised by skew


def test_cpu_zero_is_the_models_cpu():
    rep = report(nn.Linear(3, 2), [torch.randn(4, 3)], device="cpu:0")
    assert rep.meta["device"] == "cpu"
    with pytest.raises(SkewError, match="not a torch device"):
        report(nn.Linear(3, 2), [torch.randn(4, 3)], device="bogus")


def test_old_style_spectral_norm_keeps_its_buffers_and_weight_attribute():
    torch.manual_seed(0)
    net = nn.Sequential(nn.utils.spectral_norm(nn.Linear(6, 5)), nn.ReLU(), nn.Linear(5, 2)).train()
    net(torch.randn(3, 6))
    before, weight = snapshot(net), net[0].weight
    for mode in ("eval", "train"):
        report(net, [torch.randn(8, 6)], mode=mode)
        assert_same(net, before)
        assert net[0].weight is weight
