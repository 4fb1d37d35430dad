"""Pairwise OUI over ragged unit patterns and the bit-packed storage of the first samples' patterns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from skew.accumulators import OUI_MAX_UNITS, pack_units, unpack_units
from skew.analyzer import report
from skew.errors import SkewError
from skew.oui import pairwise_oui


def test_ragged_pairs_compare_the_units_both_samples_have():
    rng = np.random.default_rng(0)
    rows = [rng.random(d) > 0.5 for d in (10, 7, 12, 3)]
    packed, counts = pack_units(rows)
    dense = unpack_units(packed, counts)
    for r, row in enumerate(rows):
        np.testing.assert_array_equal(dense[r, : len(row)], row)
    expect = []
    for i in range(4):
        for j in range(i + 1, 4):
            d = min(len(rows[i]), len(rows[j]))
            h = int((rows[i][:d] != rows[j][:d]).sum())
            expect.append(min(h, d // 2) / (d // 2))
    assert pairwise_oui(dense, units=counts) == pytest.approx(np.mean(expect), abs=1e-15)
    equal = np.stack([r[:3] for r in rows])
    assert pairwise_oui(equal, units=np.full(4, 3)) == pytest.approx(pairwise_oui(equal), abs=1e-15)
    with pytest.raises(SkewError, match="units"):
        pairwise_oui(dense, units=np.array([1, 2]))


def test_report_keeps_at_most_eight_full_patterns_and_merges_them_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1))
    gen = torch.Generator().manual_seed(4)
    xs = [torch.randn(3, 2, 5, 5, generator=gen) for _ in range(4)]
    whole = report(net, xs)
    merged = report(net, xs[:2]).merge(report(net, xs[2:]))
    st = whole._states["0"]
    assert st.unit_counts.tolist() == [75] * 8
    assert merged.layers.loc[0, "oui_pairwise"] == whole.layers.loc[0, "oui_pairwise"]
    z = torch.cat([net(x) for x in xs]).detach()[:8]
    np.testing.assert_array_equal(unpack_units(st.unit_patterns, st.unit_counts), (z > 0).reshape(8, -1).numpy())


def test_huge_patterns_are_read_at_a_bounded_number_of_units():
    net = nn.Sequential(nn.Conv2d(1, 1, 1))
    side = int(np.ceil(np.sqrt(OUI_MAX_UNITS))) + 1
    rep = report(net, [torch.randn(2, 1, side, side)])
    assert rep._states["0"].unit_counts.tolist() == [OUI_MAX_UNITS] * 2


@pytest.mark.parametrize("shape", [(1,), (9,), (16,), (3, 13), (8, 64), (2, 0), (5, 1001)])
def test_packbits_numpy_and_torch_forms_give_the_same_bytes(shape):
    from skew.accumulators import _packbits_torch, packbits

    bits = torch.rand(shape, generator=torch.Generator().manual_seed(sum(shape))) < 0.4
    want = np.packbits(bits.numpy(), axis=-1)  # first unit in the high bit, zero padding
    assert np.array_equal(packbits(bits).numpy(), want)
    assert np.array_equal(_packbits_torch(bits).numpy(), want)
    assert np.array_equal(packbits(bits.to(torch.uint8)).numpy(), want)
    if bits.dim() == 2:  # a transposed (non-contiguous) view packs as its contiguous copy
        t = bits.t().contiguous().t()
        assert not t.is_contiguous() or t.shape[0] == 1 or t.shape[1] <= 1
        assert np.array_equal(_packbits_torch(t).numpy(), want)
