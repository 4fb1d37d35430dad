"""skew.report leaves the model as it found it, whatever fails, and says clearly what went wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from skew.analyzer import report
from skew.errors import SkewError


class Boom(nn.Module):
    """Raises on its ``fail_on``-th call (1-based)."""

    def __init__(self, fail_on: int, exc=RuntimeError):
        super().__init__()
        self.fail_on, self.exc, self.count = fail_on, exc, 0

    def forward(self, x):
        self.count += 1
        if self.count == self.fail_on:
            raise self.exc("injected failure")
        return x


def make_model(boom: nn.Module | None = None) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), boom or nn.Identity(),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.Dropout(0.5),
    )


def snapshot(model: nn.Module) -> dict:
    """Everything report() must not change: hooks, flags, attributes, parameters and buffers."""
    return {
        name: {
            "fwd": dict(m._forward_hooks),
            "fwd_kw": dict(m._forward_hooks_with_kwargs),
            "pre": dict(m._forward_pre_hooks),
            "pre_kw": dict(m._forward_pre_hooks_with_kwargs),
            "training": m.training,
            "attrs": sorted(k for k in vars(m) if k not in ("count",)),
            "state": {k: v.detach().clone() for k, v in m.state_dict(keep_vars=False).items()},
        }
        for name, m in model.named_modules()
    }


def assert_unchanged(before: dict, model: nn.Module) -> None:
    after = snapshot(model)
    assert before.keys() == after.keys()
    for name in before:
        b, a = before[name], after[name]
        for key in ("fwd", "fwd_kw", "pre", "pre_kw", "training", "attrs"):
            assert b[key] == a[key], (name, key)
        for k in b["state"]:
            assert torch.equal(b["state"][k], a["state"][k]), (name, k)


def batches(n: int, fail_at: int | None = None, exc=RuntimeError):
    for i in range(n):
        if i == fail_at:
            raise exc("loader broke")
        yield (torch.randn(4, 3, 8, 8), torch.zeros(4, dtype=torch.int64))


@pytest.fixture
def user_model():
    """A model in train mode with one submodule frozen in eval, and hooks of its own."""
    model = make_model()
    model.train()
    model[1].eval()
    seen = []
    model[0].register_forward_hook(lambda m, a, o: seen.append("hook"))
    model[5].register_forward_pre_hook(lambda m, a: None)
    return model, seen


def test_successful_run_leaves_model_untouched_and_user_hooks_fire(user_model):
    model, seen = user_model
    before = snapshot(model)
    rep = report(model, batches(3))
    assert_unchanged(before, model)
    assert seen == ["hook"] * 3
    assert list(rep.layers["layer"]) == ["0", "5"]


@pytest.mark.parametrize("where", ["loader", "model", "interrupt-loader", "interrupt-model"])
def test_failures_remove_every_hook_and_restore_state(user_model, where):
    model, _ = user_model
    if where.endswith("model"):
        exc = KeyboardInterrupt if where.startswith("interrupt") else RuntimeError
        model[3] = Boom(2, exc)
    before = snapshot(model)
    exc = KeyboardInterrupt if where.startswith("interrupt") else RuntimeError
    loader = batches(4, fail_at=2 if where.endswith("loader") else None, exc=exc)
    expected = {"loader": RuntimeError, "model": SkewError}.get(where, KeyboardInterrupt)
    with pytest.raises(expected) as info:
        report(model, loader, mode="train")
    assert_unchanged(before, model)
    if where == "model":
        msg = str(info.value)
        assert "'3' (Boom)" in msg and "tuple(Tensor[4,3,8,8] float32, Tensor[4] int64)" in msg
        assert "batch 1" in msg and isinstance(info.value.__cause__, RuntimeError)


def test_train_mode_restores_batchnorm_running_stats_and_rng():
    model = make_model()
    model.eval()
    before = snapshot(model)
    rng = torch.get_rng_state()
    rep_train = report(model, batches(3), mode="train")
    assert_unchanged(before, model)
    assert torch.equal(rng, torch.get_rng_state())
    # BatchNorm in train mode re-centres with batch statistics, so the model really ran in train mode:
    # the layer after BN sees a different input distribution than in eval mode
    rep_eval = report(model, batches(3))
    assert rep_eval.meta["mode"] == "eval" and rep_train.meta["mode"] == "train"
    assert not np.allclose(rep_train.layers["input_mean"].iloc[1], rep_eval.layers["input_mean"].iloc[1])


def test_a_rejected_batch_names_the_layer_and_structure():
    model = make_model()
    bad = [{"x": torch.randn(2, 5)}]
    with pytest.raises(SkewError, match=r"none of the batch's keys \['x'\]"):
        report(model, bad)
    with pytest.raises(SkewError) as info:
        report(model, [torch.randn(2, 3, 9, 9)])  # wrong spatial size reaches the Linear
    msg = str(info.value)
    assert "module '5' (Linear)" in msg and "Tensor[2,3,9,9] float32" in msg


def test_no_layer_and_empty_loader_and_never_executed():
    with pytest.raises(SkewError, match="no layer skew can analyse: it contains .*ReLU"):
        report(nn.Sequential(nn.ReLU(), nn.Tanh()), [torch.randn(2, 3)])
    with pytest.raises(SkewError, match="no batches"):
        report(make_model(), [])

    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(3, 2), nn.Linear(3, 2)

        def forward(self, x):
            return self.used(x)

    rep = report(Skips(), [torch.randn(4, 3)])
    assert list(rep.layers["layer"]) == ["used"]
    reasons = rep.skipped.set_index("module")["reason"]
    assert reasons["unused"].startswith("never executed")
    with pytest.raises(SkewError, match="none of the 1 selected layers ran"):
        report(Skips(), [torch.randn(4, 3)], layers=["unused"])


def test_skipped_lists_every_module_not_analysed_with_a_reason():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(3, 4), nn.ReLU()), nn.LayerNorm(4), nn.Linear(4, 2))
    rep = report(model, [torch.randn(5, 3)], layers="0.*")
    reasons = rep.skipped.set_index("module")["reason"].to_dict()
    assert set(reasons) == {"0", "0.1", "1", "2"}
    assert reasons["0"].startswith("container")
    assert reasons["2"].startswith("not selected")
    assert reasons["1"].startswith("unsupported type")


def test_bad_options_are_explained():
    model = make_model()
    data = [torch.randn(2, 3, 8, 8)]
    for kwargs, pattern in [
        ({"thresholds": (0.1, 0.6)}, "strictly between 0 and 1/2"),
        ({"mode": "training"}, "'eval', 'train'"),
        ({"max_batches": 0}, "positive integer"),
        ({"progress": "yes"}, "True, False or None"),
        ({"input_fn": 3}, "input_fn must be a function"),
        ({"device": "meta"}, "move the model first"),
        ({"layers": "nonexistent"}, "no module named"),
    ]:
        with pytest.raises(SkewError, match=pattern):
            report(model, data, **kwargs)
    with pytest.raises(SkewError, match="iterable of batches"):
        report(model, 42)
    # a map-style Dataset (a natural first try) yields single samples: the message said "wrap a single batch
    # as [batch]", which would feed the whole dataset object to the model; it names the DataLoader now
    dataset = torch.utils.data.TensorDataset(torch.randn(16, 4))
    with pytest.raises(SkewError, match=r"TensorDataset, a dataset of single samples.*DataLoader\(dataset"):
        report(model, dataset)


def test_dict_batches_input_fn_and_max_batches():
    torch.manual_seed(0)

    class KW(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 4), nn.Linear(2, 4)

        def forward(self, x, y, scale=1.0):
            return self.a(x) * scale + self.b(y)

    model = KW()
    x, y = torch.randn(6, 3), torch.randn(6, 2)
    dict_rep = report(model, [{"x": x, "y": y, "label": torch.zeros(6)}] * 3, max_batches=2)
    assert dict_rep.meta["batches"] == 2 and dict_rep.meta["inputs"] == 12
    fn_rep = report(model, [(x, y)] * 2, input_fn=lambda b: {"x": b[0], "y": b[1]})
    tuple_rep = report(model, [((x, y), torch.zeros(6))] * 2)
    for rep in (fn_rep, tuple_rep):
        np.testing.assert_array_equal(rep.neurons["p"], dict_rep.neurons["p"])
        np.testing.assert_allclose(rep.neurons["mean"], dict_rep.neurons["mean"])
    single = report(nn.Linear(3, 2), torch.randn(7, 3))  # a single tensor is one batch
    assert single.meta["batches"] == 1 and single.layers["samples"].iloc[0] == 7


def test_mixed_dtype_parameters_and_progress_bar(capsys):
    torch.manual_seed(0)

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.lo = nn.Linear(4, 6)
            self.hi = nn.Linear(6, 3).double()

        def forward(self, x):
            return self.hi(torch.relu(self.lo(x)).double())

    rep = report(Mixed(), [torch.randn(8, 4) for _ in range(3)], progress=True)
    assert rep.neurons["n"].eq(24).all()
    assert "skew.report" in capsys.readouterr().err


def test_no_host_sync_inside_hooks_is_not_needed_for_correctness_on_repeated_calls():
    """A layer called several times per forward (weight sharing) accumulates every call."""
    torch.manual_seed(0)
    shared = nn.Linear(5, 5)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared = shared

        def forward(self, x):
            return self.shared(torch.relu(self.shared(x)))

    x = torch.randn(10, 5)
    rep = report(Twice(), [x, x])
    first = shared(x).detach()
    second = shared(torch.relu(first)).detach()
    z = torch.cat([first, second, first, second]).double()
    assert rep.layers["calls"].iloc[0] == 4 and rep.layers["samples"].iloc[0] == 40
    np.testing.assert_allclose(rep.neurons["mean"], z.mean(0).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(rep.neurons["p"], (z > 0).double().mean(0).numpy())
