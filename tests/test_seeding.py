"""Independent random streams (issue 9 §1): weights never copy the data drawn with the same seed.

Old behaviour: ``build_data(seed=s)`` drew N(0, 1) batches from ``torch.Generator().manual_seed(s)`` and
every entry point initialized from a generator seeded with the same ``s``, so under normal-based schemes
(kaiming_normal, xavier_normal, orthogonal, lsuv) the first layer's weight rows were scaled copies of the
first data batch's samples: max |cos| = 1.0.

The bound: for x ~ N(0, I_d) independent of a fixed non-zero row w, cos(w, x) is distributed as one
coordinate of a uniform unit vector, so P(|cos| > t) <= 2 exp(-d t² / 2). A union bound over R rows
and S samples gives max |cos| <= sqrt(2 ln(2 R S / δ) / d) with probability >= 1 - δ, for every scheme
(deterministic ones included) as long as the data are isotropic Gaussian and independent of the init.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import skew.analyzer
import skew.init
from skew.cli import main
from skew.seeding import STREAMS, child_seed, child_seeds, generator, generators

DELTA = 1e-6
SCHEMES = list(skew.init.schemes())


def noise_bound(rows: int, samples: int, dim: int, delta: float = DELTA) -> float:
    return math.sqrt(2.0 * math.log(2.0 * rows * samples / delta) / dim)


def max_abs_cos(weight: torch.Tensor, batch) -> tuple[float, float]:
    """(max |cos| between non-zero weight rows and samples of the batch, the noise bound for that size)."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    x = x.detach().double().reshape(len(x), -1)
    w = weight.detach().double().reshape(weight.shape[0], -1)
    w = w[w.norm(dim=1) > 0]
    assert w.shape[1] == x.shape[1]
    cos = torch.nn.functional.normalize(w, dim=1) @ torch.nn.functional.normalize(x, dim=1).T
    return float(cos.abs().max()), noise_bound(w.shape[0], x.shape[0], x.shape[1])


def first_weight(model) -> torch.Tensor:
    from skew.layers import select_layers

    return select_layers(model)[0][1].weight.detach().clone()


@pytest.fixture
def captured(monkeypatch):
    """Record (first-layer weight, first batch) of every model measured by skew.report."""
    seen = []
    real = skew.analyzer.report

    def spy(model, loader, *args, **kwargs):
        batches = list(loader)
        seen.append((first_weight(model), batches[0]))
        return real(model, batches, *args, **kwargs)

    monkeypatch.setattr(skew.analyzer, "report", spy)
    return seen


# ---- the helper ------------------------------------------------------------------------------------
def test_child_seeds_are_the_spawned_children_and_distinct():
    for seed in (0, 1, 12345):
        spawned = np.random.SeedSequence(seed).spawn(len(STREAMS))
        for k, name in enumerate(STREAMS):
            words = spawned[k].generate_state(2, np.uint32)
            assert child_seed(seed, name) == (int(words[0]) << 31) ^ int(words[1])
        values = list(child_seeds(seed).values())
        assert len(set(values)) == len(values) and seed not in values
        assert all(0 <= v < 2**63 for v in values)
    assert child_seeds(0) != child_seeds(1)


def test_generators_give_independent_reproducible_draws():
    gens = generators(3)
    draws = {name: torch.randn(4096, generator=g) for name, g in gens.items()}
    for name in STREAMS:
        assert torch.equal(draws[name], torch.randn(4096, generator=generator(3, name)))
    names = list(draws)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            corr = float(torch.corrcoef(torch.stack([draws[a], draws[b]]))[0, 1])
            assert abs(corr) < 5 / math.sqrt(4096), (a, b)
    raw = torch.randn(4096, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(raw, draws["init"]) and not torch.equal(raw, draws["data"])


def test_bad_seed_or_stream_raises():
    from skew.errors import SkewError

    with pytest.raises(SkewError, match="non-negative"):
        child_seed(-1, "data")
    with pytest.raises(SkewError, match="valid streams"):
        child_seed(0, "weights")


# ---- entry points ----------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", SCHEMES)
def test_cli_report_weights_are_independent_of_the_data(scheme, captured, capsys):
    argv = ["report", "--model", "mlp", "-o", "width=64", "-o", "in_features=512", "-o", "depth=1",
            "--data", "gaussian", "--init", scheme, "--batches", "1", "--batch-size", "64", "--seed", "0"]
    assert main(argv) == 0, capsys.readouterr().err
    (weight, batch), = captured
    worst, bound = max_abs_cos(weight, batch)
    assert worst < bound, f"{scheme}: max |cos| {worst:.3f} >= noise bound {bound:.3f}"


def test_cli_compare_weights_are_independent_of_the_data(captured, capsys):
    argv = ["compare", "--model", "mlp", "-o", "width=64", "-o", "in_features=512", "-o", "depth=1",
            "--data", "gaussian", "--inits", ",".join(SCHEMES), "--seeds", "0,1", "--batches", "1",
            "--batch-size", "64", "--seed", "0"]
    assert main(argv) == 0, capsys.readouterr().err
    assert len(captured) == 2 * len(SCHEMES)
    for i, (weight, batch) in enumerate(captured):
        worst, bound = max_abs_cos(weight, batch)
        assert worst < bound, f"run {i} ({SCHEMES[i // 2]}): max |cos| {worst:.3f} >= {bound:.3f}"


@pytest.mark.parametrize("how", ["build_data", "raw generator"])
def test_compare_weights_are_independent_of_data_drawn_with_the_same_seed(how, captured):
    from skew.compare import compare
    from skew.data import build_data

    seed, dim = 2, 384
    if how == "build_data":
        data = build_data("gaussian", shape=(dim,), batch_size=64, batches=1, seed=seed)
    else:  # what a user writes by hand: the same number for their data and for compare
        data = [torch.randn(64, dim, generator=torch.Generator().manual_seed(seed))]
    cmp = compare(lambda: torch.nn.Sequential(torch.nn.Linear(dim, 96, bias=False)), data, SCHEMES, seeds=(seed,))
    assert len(captured) == len(SCHEMES)
    for scheme, (weight, batch) in zip(SCHEMES, captured):
        sums = cmp.neurons.query("init == @scheme")["row_sum"].to_numpy()
        assert np.allclose(sums, weight.double().sum(1).numpy(), atol=1e-5), scheme  # the measured weights
        worst, bound = max_abs_cos(weight, batch)
        assert worst < bound, f"{scheme}: max |cos| {worst:.3f} >= {bound:.3f}"


def test_figures_builders_weights_are_independent_of_the_data(captured, tmp_path):
    from skew import figures

    cfg = figures._Config(quick=True)
    figures._table1(tmp_path, cfg)
    figures._theory(tmp_path, cfg)
    assert len(captured) == len(figures.TABLE1_SCHEMES) + len(figures.THEORY_LAWS)
    for i, (weight, batch) in enumerate(captured[: len(figures.TABLE1_SCHEMES)]):
        worst, bound = max_abs_cos(weight, batch)
        assert worst < bound, f"table 1, {list(figures.TABLE1_SCHEMES)[i]}: {worst:.3f} >= {bound:.3f}"
    weight, batch = captured[len(figures.TABLE1_SCHEMES)]  # the N(0, 1) law of the theory curve
    worst, bound = max_abs_cos(weight, batch)
    assert worst < bound


def _spy_training(monkeypatch):
    """Record, per run, the LSUV data, the initial first-layer weight and the first training batch."""
    import skew.models

    runs = []
    real_build, real_apply = skew.models.build_model, skew.init.apply

    def build(name, **kw):
        model = real_build(name, **kw)
        run = {"lsuv": None, "weight": None, "batch": None}
        runs.append(run)

        def hook(module, args):
            if module.training and run["batch"] is None:
                run["batch"] = args[0].detach().clone()
                run["weight"] = first_weight(module)

        model.register_forward_pre_hook(hook)
        return model

    def apply(model, scheme, **kw):
        if kw.get("data") is not None:
            runs[-1]["lsuv"] = kw["data"].clone()
        return real_apply(model, scheme, **kw)

    monkeypatch.setattr(skew.models, "build_model", build)
    monkeypatch.setattr(skew.init, "apply", apply)
    return runs


def test_train_streams_are_independent(monkeypatch):
    from skew.train import run_experiment

    runs = _spy_training(monkeypatch)
    schemes = ("kaiming_normal", "xavier_normal", "orthogonal", "lsuv")
    run_experiment(models=("mlp",), schemes=schemes, seeds=(0,), epochs=1, track_every=1000)
    assert len(runs) == len(schemes)
    for scheme, run in zip(schemes, runs):
        # digits are not isotropic, so the bound uses the randomness of the rows (Haar or i.i.d. normal
        # directions): E cos² = 1/d for a row independent of the sample, whatever the sample
        x = run["batch"].double().reshape(len(run["batch"]), -1)
        w = run["weight"].double()
        cos = torch.nn.functional.normalize(w, dim=1) @ torch.nn.functional.normalize(x, dim=1).T
        assert float((cos**2).mean()) < 2.0 / x.shape[1], scheme
    # LSUV's batch (the sample stream) is not the first training batch (the shuffle stream): 256 of the
    # 1438 training samples, so about 32 · 256 / 1438 ≈ 5.7 of the first batch's 32 rows, not all 32
    lsuv, first = runs[-1]["lsuv"], runs[-1]["batch"]
    shared = sum(bool((lsuv == row).all(dim=1).any()) for row in first)
    assert shared < 16, f"{shared} of the first training batch's {len(first)} samples are LSUV's"


def test_train_cli_quick_path_streams(monkeypatch, tmp_path, capsys):
    runs = _spy_training(monkeypatch)
    argv = ["train", "--quick", "--inits", "lsuv", "--seeds", "0", "--epochs", "1", "--out", str(tmp_path)]
    assert main(argv) == 0, capsys.readouterr().err
    (run,) = runs
    shared = sum(bool((run["lsuv"] == row).all(dim=1).any()) for row in run["batch"])
    assert shared < 16
