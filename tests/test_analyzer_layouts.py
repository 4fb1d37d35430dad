"""Token layouts: attention masks (padding is not a sample) and sequence-first (T, B, F) transformer blocks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from skew.analyzer import report
from skew.errors import SkewError


class TinyLM(nn.Module):
    """input_ids + attention_mask -> per-token logits, through an nn.TransformerEncoder (batch first)."""

    def __init__(self, vocab: int = 20, d: int = 16):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True, activation=nn.GELU())
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)
        self.pool = nn.Linear(d, 3)  # a per-sequence head on pooled features

    def forward(self, input_ids, attention_mask):
        h = self.enc(self.emb(input_ids), src_key_padding_mask=attention_mask == 0)
        pooled = (h * attention_mask.unsqueeze(-1)).sum(1) / attention_mask.sum(1, keepdim=True)
        return self.head(h), self.pool(pooled)


def padded(ids: torch.Tensor, pad: int) -> dict:
    b, t = ids.shape
    out = torch.cat([ids, torch.zeros(b, pad, dtype=ids.dtype)], 1)
    mask = torch.cat([torch.ones(b, t, dtype=torch.int64), torch.zeros(b, pad, dtype=torch.int64)], 1)
    return {"input_ids": out, "attention_mask": mask}


@pytest.mark.parametrize("at", ["layers", "activations"])
def test_right_padding_changes_nothing(at):
    torch.manual_seed(0)
    model = TinyLM().eval()
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(1, 20, (5, 7), generator=gen) for _ in range(2)]
    plain = report(model, [{"input_ids": b, "attention_mask": torch.ones_like(b)} for b in batches], at=at)
    pad = report(model, [padded(b, 4) for b in batches], at=at)
    a, b = plain.neurons, pad.neurons
    np.testing.assert_array_equal(a["n"], b["n"])
    np.testing.assert_allclose(a["p"], b["p"], atol=1e-12)
    np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a["std"], b["std"], rtol=1e-4, atol=1e-6)
    la, lb = plain.layers.set_index("layer"), pad.layers.set_index("layer")
    for col in ("samples", "oui_pairwise", "oui_pairwise_pooled", "oui_batch", "input_mean"):
        np.testing.assert_allclose(la[col].astype(float), lb[col].astype(float), rtol=1e-5, atol=1e-6, err_msg=col)
    for name in plain.signs:
        np.testing.assert_array_equal(plain.signs[name], pad.signs[name])
    assert plain.meta["inputs"] == pad.meta["inputs"] == 10
    # without the mask the padding counts: the same report would differ
    unmasked = report(model, [padded(b, 4) for b in batches], at=at, mask_fn=lambda batch: None)
    assert (unmasked.neurons["n"].to_numpy() > a["n"].to_numpy()).any()
    mask_col = lb["mask"].to_dict()
    if at == "layers":
        assert mask_col["head"] == "applied" and mask_col["pool"] == "per-sample"
        assert mask_col["enc.layers.0.self_attn.q_proj"] == "applied"
    else:
        assert set(mask_col.values()) == {"applied"}


def test_mask_fn_and_unmatched_layers_are_flagged():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    x = torch.randn(3, 5, 4)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[0, 3:] = False
    rep = report(net, [x], mask_fn=lambda batch: mask)
    assert rep.layers["mask"].tolist() == ["applied", "applied"]
    assert rep.layers["samples"].tolist() == [13, 13]
    z = net[0](x).detach()[mask].double().numpy()
    np.testing.assert_array_equal(rep.neurons["p"][:6], (z > 0).mean(0))
    wrong = torch.ones(3, 9, dtype=torch.bool)
    rep = report(net, [x], mask_fn=lambda batch: wrong)
    assert rep.layers["mask"].tolist() == ["unmatched", "unmatched"]
    assert rep.layers["samples"].tolist() == [15, 15]
    with pytest.raises(SkewError, match="batch, tokens"):
        report(net, [x], mask_fn=lambda batch: torch.ones(3))
    with pytest.raises(SkewError, match="other than 0 and 1"):
        report(net, [x], mask_fn=lambda batch: torch.full((3, 5), 0.5))


def pair(d: int = 8):
    torch.manual_seed(0)
    sf = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.0, batch_first=False)
    bf = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.0, batch_first=True)
    bf.load_state_dict(sf.state_dict())
    return sf.eval(), bf.eval()


def test_sequence_first_blocks_take_dim_1_as_the_batch():
    sf, bf = pair()
    x = torch.randn(6, 10, 8)  # (B, T, E)
    a = report(bf, [x])
    b = report(sf, [x.transpose(0, 1).contiguous()])  # (T, B, E)
    assert a.meta["inputs"] == b.meta["inputs"] == 6
    la, lb = a.layers.set_index("layer"), b.layers.set_index("layer")
    for col in ("samples", "oui_pairwise", "oui_pairwise_pooled", "oui_batch"):
        np.testing.assert_allclose(la[col], lb[col], rtol=1e-6, err_msg=col)
    np.testing.assert_allclose(a.neurons["p"], b.neurons["p"], atol=1e-12)
    for name in a.signs:
        np.testing.assert_array_equal(a.signs[name], b.signs[name], err_msg=name)
    # an explicit override wins: dim 0 of (T, B, E) is the token axis, which is what it then reads
    c = report(sf, [x.transpose(0, 1).contiguous()], batch_dim={"linear*": 0})
    lc = c.layers.set_index("layer")
    assert lc.loc["linear1", "oui_pairwise_pooled"] != lb.loc["linear1", "oui_pairwise_pooled"]
    assert lc.loc["self_attn.q_proj", "oui_pairwise"] == lb.loc["self_attn.q_proj", "oui_pairwise"]
    with pytest.raises(SkewError, match="batch_dim"):
        report(sf, [x], batch_dim=2)


def test_unbatched_inputs_are_one_sample():
    sf, bf = pair()
    x = torch.randn(10, 8)  # one sequence, no batch dimension
    for model in (sf, bf):
        rep = report(model, [x])
        assert rep.meta["inputs"] == 1
        assert rep.layers["samples"].tolist() == [10] * len(rep.layers)  # ten tokens of one sample
        assert np.isnan(rep.layers["oui_pairwise"]).all()  # one sample: no pair
        assert all(s.shape[0] == 1 for s in rep.signs.values())


def test_sequence_first_inside_a_wrapper_is_inferred():
    sf, _ = pair()
    net = nn.Sequential(copy.deepcopy(sf), nn.Linear(8, 3))
    x = torch.randn(10, 6, 8)  # (T, B, E) for the encoder; the head then sees (T, B, 8) too
    rep = report(net, [x], batch_dim={"1": 1})
    assert rep.meta["inputs"] == 6
    raster = rep.signs["1"]
    assert raster.shape[0] == 6


def test_unbatched_plain_layers_count_one_input():
    assert report(nn.Linear(5, 3), [torch.randn(5)]).meta["inputs"] == 1
    assert report(nn.Conv2d(3, 2, 1), [torch.randn(3, 4, 4)]).meta["inputs"] == 1
    assert report(nn.Linear(5, 3), [torch.randn(7, 5)]).meta["inputs"] == 7


def test_nonfinite_values_at_masked_positions_are_not_samples():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    x = torch.randn(3, 5, 4)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 2:] = False
    clean = report(net, [x], mask_fn=lambda batch: mask)
    x = x.clone()
    x[1, 3] = float("nan")  # padding garbage
    rep = report(net, [x], mask_fn=lambda batch: mask)
    assert (rep.neurons["nonfinite"] == 0).all()
    pd_cols = ["n", "p", "mean", "std"]
    np.testing.assert_array_equal(rep.neurons[pd_cols].to_numpy(), clean.neurons[pd_cols].to_numpy())
    np.testing.assert_array_equal(rep.layers["input_mean"], clean.layers["input_mean"])



def test_a_batch_dim_glob_that_matches_no_layer_is_refused_as_a_typo():
    """{'linaer*': 0} would silently leave every layer on the inferred dimension: refused, naming the
    glob and real layer names, before any hook is placed. A glob for a layer that layers= leaves out,
    and one with a call position at activation sites, are real names and stay accepted."""
    sf, _ = pair()
    x = torch.randn(10, 6, 8)  # (T, B, E)
    before = copy.deepcopy(sf.state_dict())
    with pytest.raises(SkewError, match=r"batch_dim glob 'linaer\*' matches no layer.*'self_attn"):
        report(sf, [x], batch_dim={"linear1": 1, "linaer*": 0})
    assert not sf._forward_hooks and all(not m._forward_hooks for m in sf.modules())
    assert all(torch.equal(v, sf.state_dict()[k]) for k, v in before.items())
    kept = report(sf, [x], layers="linear1", batch_dim={"linear2": 0, "linear1": 1})  # linear2 left out: fine
    assert kept.meta["inputs"] == 6
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU())
    acts = report(net, [torch.randn(4, 5, 8)], at="activations", batch_dim={"1#0": 0, "3": 0})
    assert len(acts.layers) == 2
    with pytest.raises(SkewError, match="batch_dim glob '5' matches no layer"):
        report(net, [torch.randn(4, 5, 8)], at="activations", batch_dim={"5": 0})


def test_a_mask_that_removes_every_token_is_refused():
    """An all-zero (or inverted, on all-real data) mask left every site with 0 samples and a table of NaN:
    refused, saying how masks read. One batch all padding among others is fine."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    x = torch.randn(3, 5, 4)
    zeros, ones = torch.zeros(3, 5, dtype=torch.bool), torch.ones(3, 5, dtype=torch.bool)
    with pytest.raises(SkewError, match="padding mask left nothing to measure.*1 \\(True\\)"):
        report(net, [x, x], mask_fn=lambda batch: zeros)
    masks = iter([zeros, ones])
    rep = report(net, [x, x], mask_fn=lambda batch: next(masks))  # the second batch has real tokens
    assert rep.layers["samples"].tolist() == [15, 15]
