"""What the user owns comes back: buffers restored bit for bit, and untouched ones not written.

:class:`skew._state.Snapshot` keeps every buffer's bits in one flat copy per device and writes
back only what changed; ``report`` and ``kept_buffers`` rely on it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import skew
from skew._state import Snapshot, kept_buffers
from skew.weights import neuron_table


def _mixed() -> list[torch.Tensor]:
    """Buffers of every kind a model may hold: odd byte sizes, 0-d, bool, complex, non-contiguous."""
    return [
        torch.tensor(3, dtype=torch.int64),
        torch.tensor([True, False, True]),
        torch.arange(5, dtype=torch.int8),
        torch.randn(3, 4).t(),  # non-contiguous
        torch.tensor([1.0, float("nan"), -0.0]),
        torch.randn(2, dtype=torch.complex64),
        torch.randn(7, dtype=torch.float16),
        torch.empty(0),
    ]


@pytest.mark.parametrize("victim", range(7))
def test_only_the_changed_tensor_is_written_back_with_its_original_bits(victim):
    tensors = _mixed()
    before = [t.clone() for t in tensors]
    snap = Snapshot(tensors)
    t, first = tensors[victim], (0,) * tensors[victim].dim()
    with torch.no_grad():
        t[first] = ~t[first] if t.dtype == torch.bool else t[first] + 1
    versions = [t._version for t in tensors]
    assert snap.restore() == [victim]
    for i, (t, b) in enumerate(zip(tensors, before)):
        assert t.dtype == b.dtype and t.shape == b.shape
        assert torch.equal(t.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)), i
        assert (t._version > versions[i]) == (i == victim), i  # the others are not written


def test_bits_not_values_are_compared():
    nan_buf, zero = torch.tensor([float("nan"), 1.0]), torch.tensor([0.0, 2.0])
    snap = Snapshot([nan_buf, zero])
    zero.mul_(-1.0)  # -0.0 == 0.0 as values, not as bits
    v = nan_buf._version
    assert snap.restore() == [1]
    assert torch.equal(zero.view(torch.int32), torch.tensor([0.0, 2.0]).view(torch.int32))
    assert nan_buf._version == v  # an unchanged NaN is not "changed"


def test_resized_and_retyped_tensors_get_their_shape_and_dtype_back():
    a, b = torch.arange(6.0), torch.arange(4, dtype=torch.float32)
    snap = Snapshot([a, b])
    a.resize_(2)
    b.data = b.data.double()
    assert snap.restore() == [0, 1]
    assert a.shape == (6,) and torch.equal(a, torch.arange(6.0))
    assert b.dtype == torch.float32 and torch.equal(b, torch.arange(4, dtype=torch.float32))


class Sneaky(nn.Module):
    """Writes its buffers through ``.data`` (no version counter sees it) and in place."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.register_buffer("ema", torch.zeros(3))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("still", torch.ones(2))

    def forward(self, x):
        z = self.fc(x)
        self.ema.data.mul_(0.5).add_(z.mean(0))
        self.steps += 1
        return z


def test_report_restores_buffers_written_behind_the_version_counter():
    net = Sneaky()
    report = skew.report(net, [torch.randn(5, 4) for _ in range(3)])
    assert report.layers["layer"].tolist() == ["fc"]
    assert torch.equal(net.ema, torch.zeros(3)) and int(net.steps) == 0


def test_kept_buffers_restores_on_error_and_leaves_untouched_buffers_unwritten():
    net = Sneaky()
    still = net.still._version
    with pytest.raises(RuntimeError, match="boom"), kept_buffers(net):
        net(torch.randn(2, 4))
        raise RuntimeError("boom")
    assert torch.equal(net.ema, torch.zeros(3)) and int(net.steps) == 0
    assert net.still._version == still


def test_a_graph_that_saved_a_buffer_still_runs_backward_after_report():
    """Eval BatchNorm saves its running statistics for backward: report() must not write them."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    out = net(x)
    skew.report(net, [torch.randn(2, 3, 6, 6)])
    neuron_table(net)
    out.sum().backward()  # "modified by an inplace operation" if a saved buffer was written
    assert x.grad is not None


def test_large_buffers_are_compared_in_chunks_without_a_copy_of_everything(monkeypatch):
    import skew._state as state

    monkeypatch.setattr(state, "_CHUNK_BYTES", 64)  # bytes: every few tensors a chunk of their own
    tensors = [torch.arange(n, dtype=torch.float32) for n in (3, 40, 5, 5, 2, 17)]  # 12, 160, 20, 20, 8, 68 B
    assert [len(c) for c in state._chunks([(i, state._bytes(t)) for i, t in enumerate(tensors)])] == [1, 1, 3, 1]
    before = [t.clone() for t in tensors]
    snap = Snapshot(tensors)
    with torch.no_grad():
        tensors[1][7] = -1.0
        tensors[4][0] = 9.0
    assert snap.restore() == [1, 4]
    assert all(torch.equal(t, b) for t, b in zip(tensors, before))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_buffers_on_two_devices_are_restored_and_untouched_ones_not_written():
    gpu = [torch.arange(6.0, device="cuda"), torch.tensor([True, False], device="cuda"), torch.zeros((), device="cuda")]
    cpu = [torch.arange(3, dtype=torch.int64)]
    tensors = gpu + cpu
    before = [t.clone() for t in tensors]
    snap = Snapshot(tensors)
    with torch.no_grad():
        tensors[0][2] = -1.0
        tensors[3][0] = 7
    versions = [t._version for t in tensors]
    assert snap.restore() == [0, 3]
    assert all(torch.equal(t, b) for t, b in zip(tensors, before))
    assert [t._version > v for t, v in zip(tensors, versions)] == [True, False, False, True]
