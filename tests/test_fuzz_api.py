"""Fuzz suite, library side (issue 10): adversarial inputs to report, init.apply, compare, Tracker and weights.

Every case asserts either a clear SkewError (one line, never advice to load unsafely) or the correct
result, and (``fuzzutil.untouched``) that the model's state_dict is bit-identical, its hooks and
``training`` flags are the same and the global torch RNG state did not move. ``init.apply`` cases
may change exactly the weights and biases they initialise, nothing else. Case ids start with
``err-`` (a clear error is the right outcome) or ``ok-`` (the correct result). Cases marked xfail
describe behaviour being fixed on another branch (the reason names it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from fuzzutil import clear_message, untouched
from torch import nn
from torch.nn.utils import parametrizations

import skew
from skew.errors import SkewError


def _mlp(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def _sn_net() -> nn.Module:
    """A spectral-normed layer whose power iteration has not converged: any train-mode read moves _u/_v."""
    model = nn.Sequential(parametrizations.spectral_norm(nn.Linear(4, 3))).train()
    sn = model[0].parametrizations.weight[0]
    with torch.no_grad():
        sn._u.copy_(torch.nn.functional.normalize(torch.ones_like(sn._u), dim=0))
        sn._v.copy_(torch.nn.functional.normalize(torch.arange(1.0, 5.0), dim=0))
    return model


def _x(n: int = 16, d: int = 4, seed: int = 2) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


class _Seen(nn.Module):
    """Re-binds a buffer inside forward (``self.seen = self.seen + n``), as counters often do."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x):
        self.seen = self.seen + x.shape[0]
        return self.fc(x)


class _Counting(nn.Module):
    """Counts forward calls in a plain attribute (a side effect the user owns)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.fc(x)


def _hooked():
    model = _mlp()
    seen = []
    model[0].register_forward_hook(lambda mod, inp, out: seen.append(out.shape[0]))
    return model, seen


def _pulled(items: int):
    pulled = []

    def gen():
        for i in range(items):
            pulled.append(i)
            yield _x(8, seed=i)

    return gen(), pulled


def _raising_loader():
    yield _x(8)
    raise RuntimeError("loader boom")


class _Boom(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        self.fc(x)
        raise RuntimeError("forward boom")


@dataclass
class Case:
    build: Callable[[], tuple]  # -> (model, *args); runs before the snapshot
    run: Callable[..., object]  # run(model, *args)
    error: str | tuple[type, str] | None = None  # SkewError match (or (type, match)); None: check the result
    check: Callable[..., None] | None = None  # check(result, model, *args)
    changes: tuple[str, ...] = ()  # state_dict keys the call may change (init.apply)


def _ok(check=None, **kw):
    return Case(check=check, **kw)


def _cases(prefix: str, table: dict) -> list:
    out = []
    for name, case in table.items():
        marks = ()
        if isinstance(case, tuple):
            case, reason = case
            marks = (pytest.mark.xfail(reason=reason, strict=False),)
        kind = "err" if case.error is not None else "ok"
        out.append(pytest.param(case, id=f"{kind}-{prefix}-{name}", marks=marks))
    return out


def _run_case(case: Case) -> None:
    model, *args = case.build()
    with untouched(model, changes=case.changes):
        if case.error is None:
            result = case.run(model, *args)
            if case.check is not None:
                case.check(result, model, *args)
            return
        kind, match = (SkewError, case.error) if isinstance(case.error, str) else case.error
        with pytest.raises(kind, match=match) as info:
            case.run(model, *args)
        if kind is SkewError:
            clear_message(info.value)


# ---- skew.report -----------------------------------------------------------------------------
def _p_in_unit(rep, *_):
    p = rep.neurons["p"].to_numpy()
    assert len(p) and np.all((p >= 0) & (p <= 1))


def _nonfinite_counted(rep, model, x):
    assert rep.neurons["nonfinite"].sum() > 0 and rep.layers["samples"].iloc[0] == x.shape[0]


def _once_per_batch(rep, model, pair, x):
    assert pair[1] == [x.shape[0]], f"user hook ran {len(pair[1])} times for one batch"


def _hook_model_nan():
    model, seen = _hooked()
    x = _x(8)
    x[0, 0] = float("nan")
    return model, (model, seen), x


REPORT = {
    "empty-list": Case(lambda: (_mlp(),), lambda m: skew.report(m, []), "no batches"),
    "none-loader": Case(lambda: (_mlp(),), lambda m: skew.report(m, None), "iterable"),
    "string-loader": Case(lambda: (_mlp(),), lambda m: skew.report(m, "abc"), "iterable"),
    "int-loader": Case(lambda: (_mlp(),), lambda m: skew.report(m, 3), "iterable"),
    "zero-sample-batch": (Case(lambda: (_mlp(), torch.empty(0, 4)), lambda m, x: skew.report(m, [x]),
                               r"(?i)empty|zero samples|no samples|0 samples")),
    "wrong-feature-dim": Case(lambda: (_mlp(), _x(8, 5)), lambda m, x: skew.report(m, [x]), "rejected batch"),
    "integer-batch": Case(lambda: (_mlp(), torch.ones(8, 4, dtype=torch.long)), lambda m, x: skew.report(m, [x]),
                          "rejected batch"),
    "all-nan-batch": _ok(build=lambda: (_mlp(), torch.full((8, 4), float("nan"))),
                         run=lambda m, x: skew.report(m, [x]), check=_nonfinite_counted),
    "inf-batch": _ok(build=lambda: (_mlp(), torch.full((8, 4), float("inf"))),
                     run=lambda m, x: skew.report(m, [x]), check=_nonfinite_counted),
    "nan-batch-runs-forward-once": (
        _ok(build=_hook_model_nan, run=lambda m, pair, x: skew.report(m, [x]), check=_once_per_batch)),
    "threshold-above-half": Case(lambda: (_mlp(), _x()), lambda m, x: skew.report(m, x, thresholds=(0.7,)),
                                 "between 0 and 1/2"),
    "threshold-empty": Case(lambda: (_mlp(), _x()), lambda m, x: skew.report(m, x, thresholds=()),
                            "between 0 and 1/2"),
    "threshold-nan": Case(lambda: (_mlp(), _x()), lambda m, x: skew.report(m, x, thresholds=(math.nan,)),
                          "between 0 and 1/2"),
    "layers-unknown": Case(lambda: (_mlp(), _x()), lambda m, x: skew.report(m, x, layers="nope"), "nope"),
    "layers-empty-list": Case(lambda: (_mlp(), _x()), lambda m, x: skew.report(m, x, layers=[]), "no layer"),
    "max-batches-zero": Case(lambda: (_mlp(), _x()), lambda m, x: skew.report(m, x, max_batches=0), "max_batches"),
    "max-batches-negative": Case(lambda: (_mlp(), _x()), lambda m, x: skew.report(m, x, max_batches=-1),
                                 "max_batches"),
    "max-batches-float": Case(lambda: (_mlp(), _x()), lambda m, x: skew.report(m, x, max_batches=1.5),
                              "max_batches"),
    "max-batches-pulls-exactly-k": (
        _ok(build=lambda: (_mlp(), *_pulled(5)), run=lambda m, it, pulled: skew.report(m, it, max_batches=2),
            check=lambda rep, m, it, pulled: (_check(pulled == [0, 1], f"pulled {pulled}"),
                                              _check(rep.meta["batches"] == 2, "batches")))),
    "no-analysable-layer": Case(lambda: (nn.Sequential(nn.ReLU()), _x()), lambda m, x: skew.report(m, x),
                                "no layer skew can analyse"),
    "not-a-module": Case(lambda: (_mlp(), _x()), lambda m, x: skew.report(lambda t: t, x), "nn.Module"),
    "mode-unknown": Case(lambda: (_mlp(), _x()), lambda m, x: skew.report(m, x, mode="bogus"), "mode"),
    "device-bogus": Case(lambda: (_mlp(), _x()), lambda m, x: skew.report(m, x, device="bogus"),
                         "not a torch device"),
    "device-cpu0-equals-cpu": (
        _ok(build=lambda: (_mlp(), _x()), run=lambda m, x: skew.report(m, x, device="cpu:0"), check=_p_in_unit)),
    "loader-raises": Case(lambda: (_mlp(), _raising_loader()), lambda m, it: skew.report(m, it),
                          (RuntimeError, "loader boom")),
    "forward-raises": Case(lambda: (_Boom(), _x()), lambda m, x: skew.report(m, x), r"(?s)forward boom"),
    "train-mode-model-eval-measure": _ok(build=lambda: (_mlp().train(), _x()), run=lambda m, x: skew.report(m, x),
                                         check=_p_in_unit),
    "batchnorm-dropout-train-mode": _ok(
        build=lambda: (nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Dropout(0.5), nn.Linear(6, 3)).eval(),
                       _x()),
        run=lambda m, x: skew.report(m, x, mode="train"), check=_p_in_unit),
    "user-hook-kept-and-run-once": _ok(
        build=lambda: (*_hooked(), _x(8)),
        run=lambda m, seen, x: skew.report(m, [x]),
        check=lambda rep, m, seen, x: _check(seen == [8], f"user hook saw {seen}")),
    "tuple-and-dict-batches": _ok(build=lambda: (_mlp(), _x(8)),
                                  run=lambda m, x: skew.report(m, [(x, torch.zeros(8)), (x, torch.ones(8))]),
                                  check=lambda rep, m, x: _check(rep.meta["batches"] == 2, "batches")),
    "float64-model-and-data": _ok(build=lambda: (_mlp().double(), _x().double()),
                                  run=lambda m, x: skew.report(m, x), check=_p_in_unit),
    "uninitialised-lazy-linear": (
        Case(lambda: (nn.Sequential(nn.LazyLinear(3)), _x()), lambda m, x: skew.report(m, x),
             r"(?i)lazy|uninitiali[sz]ed")),
    "buffer-rebound-in-forward": (
        _ok(build=lambda: (_Seen(), _x()), run=lambda m, x: skew.report(m, x), check=_p_in_unit)),
    "spectral-norm-train-mode": (
        _ok(build=lambda: (_sn_net(), _x()),
            run=lambda m, x: skew.report(m, x, mode="train"), check=_p_in_unit)),
}


def _check(cond: bool, what: str) -> None:
    assert cond, what


@pytest.mark.parametrize("case", _cases("report", REPORT))
def test_report_fuzz(case):
    _run_case(case)


# ---- skew.init.apply -------------------------------------------------------------------------
_WEIGHTS = ("0.weight", "0.bias", "2.weight", "2.bias")


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _is_sinusoidal(table, model, *_):
    for layer in (model[0], model[2]):  # the reference function, zero biases
        assert torch.equal(layer.weight.detach(), skew.init.sinusoidal_(torch.empty_like(layer.weight)))
        assert not layer.bias.detach().any()


def _weight_norm_net():
    return (nn.Sequential(parametrizations.weight_norm(nn.Linear(8, 6))),)


def _effective_sinusoidal(table, model):
    w = model[0].weight.detach()
    assert w.sum(1).abs().max() < 1e-5, "the effective weight does not follow the scheme"
    assert (table["action"] != "set").any() or w.abs().sum() > 0


def _conv1d_net():
    from transformers.pytorch_utils import Conv1D  # weight (in, out): neurons are columns

    return (nn.Sequential(Conv1D(6, 8)),)


def _conv1d_rows(table, model):
    w = model[0].weight.detach()  # (8 inputs, 6 outputs)
    assert w.sum(0).abs().max() < 1e-5, "Conv1D neurons (columns) do not sum to zero"


INIT = {
    "unknown-scheme": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, "nope", generator=_gen()), "nope"),
    "scheme-none": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, None), "scheme"),
    "scheme-int": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, 5), "scheme"),
    "option-not-a-number": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, "uniform:abc"), "not a finite"),
    "option-negative": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, "uniform:-1"), "positive"),
    "option-nan": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, "sinusoidal:gain=nan"), "finite"),
    "option-inf": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, "xavier_uniform:gain=inf"), "finite"),
    "option-unknown": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, "xavier_uniform:foo=1"), "foo"),
    "option-conflict-positional-and-named": Case(
        lambda: (_mlp(),), lambda m: skew.init.apply(m, "uniform:5,a=1", generator=_gen()), r"\ba\b"),
    "option-given-twice": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, "sinusoidal:gain=1,gain=2"), "gain"),
    "layers-unknown": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, "orthogonal", layers="nope"), "nope"),
    "no-layers": Case(lambda: (nn.Sequential(nn.ReLU()),), lambda m: skew.init.apply(m, "orthogonal"),
                      "no Linear"),
    "lsuv-without-data": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, "lsuv"), "needs a batch"),
    "lsuv-wrong-shape": Case(lambda: (_mlp(), _x(16, 5)), lambda m, x: skew.init.apply(m, "lsuv", data=x, generator=_gen()),
                             "LSUV failed"),
    "lsuv-nan-data": Case(
        lambda: (_mlp(), torch.full((16, 4), math.nan)), lambda m, x: skew.init.apply(m, "lsuv", data=x),
        r"(?i)finite|nan"),
    "bias-nan": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, "orthogonal", bias=math.nan), "bias"),
    "bias-string": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, "orthogonal", bias="x"), "bias"),
    "not-a-module": Case(lambda: (_mlp(),), lambda m: skew.init.apply("x", "orthogonal"), "nn.Module"),
    "generator-not-a-generator": Case(lambda: (_mlp(),), lambda m: skew.init.apply(m, "orthogonal", generator="x"),
                                      "generator"),
    "sinusoidal-on-train-mode-hooked-model": _ok(
        build=lambda: (_hooked()[0].train(),), run=lambda m: skew.init.apply(m, "sinusoidal"),
        check=_is_sinusoidal, changes=_WEIGHTS),
    "frozen-parameters-stay-frozen": _ok(
        build=lambda: (_mlp().requires_grad_(False),), run=lambda m: skew.init.apply(m, "orthogonal", generator=_gen()),
        check=lambda t, m: _check(not any(p.requires_grad for p in m.parameters()), "requires_grad"),
        changes=_WEIGHTS),
    "generator-leaves-global-rng": _ok(
        build=lambda: (_mlp(),), run=lambda m: skew.init.apply(m, "kaiming_normal", generator=_gen()),
        check=lambda t, m: _check(bool(torch.isfinite(m[0].weight).all()), "finite"), changes=_WEIGHTS),
    "weight-norm-parametrization": _ok(
        build=_weight_norm_net, run=lambda m: skew.init.apply(m, "sinusoidal"), check=_effective_sinusoidal,
        changes=("0.bias", "0.parametrizations.weight.original0", "0.parametrizations.weight.original1")),
    "hf-conv1d": _ok(
        build=_conv1d_net, run=lambda m: skew.init.apply(m, "sinusoidal"), check=_conv1d_rows,
        changes=("0.weight", "0.bias")),
}


@pytest.mark.parametrize("case", _cases("init", INIT))
def test_init_apply_fuzz(case):
    _run_case(case)


# ---- skew.compare ----------------------------------------------------------------------------
def _cmp_ok(cmp, model, x):
    assert set(cmp.neurons["init"]) == {"orthogonal", "sinusoidal"}


COMPARE = {
    "no-schemes": Case(lambda: (_mlp(), [_x()]), lambda m, x: skew.compare(m, x, []), "empty"),
    "unknown-scheme": Case(lambda: (_mlp(), [_x()]), lambda m, x: skew.compare(m, x, ["nope"]), "nope"),
    "repeated-scheme": Case(lambda: (_mlp(), [_x()]), lambda m, x: skew.compare(m, x, ["orthogonal"] * 2),
                            "repeats"),
    "no-seeds": Case(lambda: (_mlp(), [_x()]), lambda m, x: skew.compare(m, x, ["orthogonal"], seeds=[]), "seeds"),
    "seed-not-an-integer": Case(
        lambda: (_mlp(), [_x()]), lambda m, x: skew.compare(m, x, ["orthogonal"], seeds="a"), "seed"),
    "seed-float": Case(
        lambda: (_mlp(), [_x()]), lambda m, x: skew.compare(m, x, ["orthogonal"], seeds=(0, 1.5)), "seed"),
    "factory-returns-non-module": Case(lambda: (_mlp(), [_x()]), lambda m, x: skew.compare(lambda: 3, x, ["default"]),
                                       "nn.Module"),
    "one-shot-generator": Case(lambda: (_mlp(), [_x()]),
                               lambda m, x: skew.compare(m, (b for b in x), ["orthogonal", "sinusoidal"]),
                               "one-shot"),
    "instance-is-copied-not-changed": _ok(build=lambda: (_hooked()[0].train(), [_x()]),
                                          run=lambda m, x: skew.compare(m, x, ["orthogonal", "sinusoidal"]),
                                          check=_cmp_ok),
}


@pytest.mark.parametrize("case", _cases("compare", COMPARE))
def test_compare_fuzz(case):
    _run_case(case)


# ---- skew.Tracker ----------------------------------------------------------------------------
def _tracked(tracker, model, x):
    assert tracker.steps == [0] and len(tracker.history) > 0


TRACKER = {
    "every-zero": Case(lambda: (_mlp(), _x()), lambda m, x: skew.Tracker(m, x, every=0), "every"),
    "every-float": Case(lambda: (_mlp(), _x()), lambda m, x: skew.Tracker(m, x, every=2.5), "every"),
    "probe-none": Case(lambda: (_mlp(),), lambda m: skew.Tracker(m, None).step(0), "probe"),
    "probe-wrong-shape": Case(lambda: (_mlp(), _x(16, 5)), lambda m, x: skew.Tracker(m, x).step(0), "rejected"),
    "not-a-module": Case(lambda: (_mlp(), _x()), lambda m, x: skew.Tracker("m", x), "nn.Module"),
    "mode-unknown": Case(lambda: (_mlp(), _x()), lambda m, x: skew.Tracker(m, x, mode="bogus"), "mode"),
    "layers-unknown": Case(lambda: (_mlp(), _x()), lambda m, x: skew.Tracker(m, x, layers="nope").step(0), "nope"),
    "step-not-an-integer": Case(lambda: (_mlp(), _x()), lambda m, x: skew.Tracker(m, x).step("a"), "step"),
    "bn-dropout-train-mode": _ok(
        build=lambda: (nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Dropout(0.3), nn.Linear(6, 3)).train(),
                       _x()),
        run=lambda m, x: _step(skew.Tracker(m, x, every=1, mode="train")), check=_tracked),
    "spectral-norm-train-mode": (
        _ok(build=lambda: (_sn_net(), _x()),
            run=lambda m, x: _step(skew.Tracker(m, x, every=1, mode="train")), check=_tracked)),
    "buffer-rebound-in-forward": (
        _ok(build=lambda: (_Seen(), _x()), run=lambda m, x: _step(skew.Tracker(m, x, every=1)), check=_tracked)),
}


def _step(tracker):
    tracker.step(0)
    return tracker


@pytest.mark.parametrize("case", _cases("tracker", TRACKER))
def test_tracker_fuzz(case):
    _run_case(case)


# ---- skew.weights ----------------------------------------------------------------------------
def _nan_weight_net():
    model = _mlp()
    with torch.no_grad():
        model[0].weight[0] = math.nan
    return (model,)


def _constant_net():
    model = _mlp()
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    return (model,)


def _constant_rows(table, model):
    row = table.iloc[0]
    assert row["rank"] == 1 and row["constant_rows"] == 6 and row["parallel_pairs"] == 15  # C(6, 2)


WEIGHTS = {
    "not-a-module": Case(lambda: (_mlp(),), lambda m: skew.weights.layer_table("x"), "nn.Module"),
    "layers-unknown": Case(lambda: (_mlp(),), lambda m: skew.weights.layer_table(m, layers="nope"), "nope"),
    "no-layers": Case(lambda: (nn.ReLU(),), lambda m: skew.weights.layer_table(m), "no Linear"),
    "scheme-unknown": Case(lambda: (_mlp(),), lambda m: skew.weights.layer_table(m, scheme="nope"), "nope"),
    "nan-weights-layer-table": _ok(build=_nan_weight_net, run=lambda m: skew.weights.layer_table(m),
                                   check=lambda t, m: _check(len(t) == 2, "two layers")),
    "nan-weights-neuron-table": _ok(build=_nan_weight_net, run=lambda m: skew.weights.neuron_table(m),
                                    check=lambda t, m: _check(len(t) == 9, "nine neurons")),
    "identical-rows": _ok(build=_constant_net, run=lambda m: skew.weights.layer_table(m), check=_constant_rows),
    "spectral-norm-train-mode": _ok(
        build=lambda: (_sn_net(),),
        run=lambda m: skew.weights.neuron_table(m), check=lambda t, m: _check(len(t) == 3, "rows")),
}


@pytest.mark.parametrize("case", _cases("weights", WEIGHTS))
def test_weights_fuzz(case):
    _run_case(case)
