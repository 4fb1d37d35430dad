"""The training experiment: metrics on hand-worked curves, aggregation, verdict, determinism, files."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import pytest
import torch

from skew.errors import SkewError
from skew.train import TrainResult, _summarise, add_cli, auc, early_stop, run_experiment, write_outputs


# -- metrics -----------------------------------------------------------------------------------
def test_auc_hand_worked():
    assert auc([0.0, 1.0, 1.0]) == pytest.approx(1.5)  # 0.5 + 1
    assert auc([0.2, 0.4, 0.6, 0.8]) == pytest.approx(0.3 + 0.5 + 0.7)
    assert auc([0.9] * 11) == pytest.approx(9.0)  # constant a over E epochs: a (E - 1)
    assert auc([0.7]) == 0.0


def test_auc_rejects_empty():
    with pytest.raises(SkewError, match="non-empty"):
        auc([])


def test_early_stop_hand_worked():
    # best 0.7 at epoch 2; epochs 3 and 4 do not improve -> stop at 4 with patience 2, 0.9 never seen
    assert early_stop([0.5, 0.7, 0.6, 0.65, 0.9], patience=2) == (0.7, 2, 4)
    # patience never runs out: the whole curve counts
    assert early_stop([0.5, 0.7, 0.6, 0.65, 0.9], patience=3) == (0.9, 5, 5)
    # a tie is not an improvement
    assert early_stop([0.5, 0.5, 0.5, 0.8], patience=2) == (0.5, 1, 3)
    # patience 10 as in the paper: a late peak after 10 flat epochs is not reached
    curve = [0.1, 0.6] + [0.55] * 10 + [0.99]
    assert early_stop(curve, patience=10) == (0.6, 2, 12)
    assert early_stop(curve[:11], patience=10).stop_epoch == 11


def test_early_stop_equals_a_loop_that_really_stops():
    rng = np.random.default_rng(0)
    for _ in range(200):
        curve = np.round(rng.uniform(0, 1, size=rng.integers(1, 30)), 1)  # rounding makes ties common
        patience = int(rng.integers(1, 6))
        seen, best, since = [], -1.0, 0
        for acc in curve:  # a training loop that stops: it only ever sees the epochs it ran
            seen.append(acc)
            if acc > best:
                best, since = acc, 0
            else:
                since += 1
                if since == patience:
                    break
        res = early_stop(curve, patience)
        assert res.stop_epoch == len(seen)
        assert res.best == max(seen)
        assert res.best_epoch == 1 + seen.index(max(seen))


@pytest.mark.parametrize("patience", [0, -1, 1.5, True])
def test_early_stop_bad_patience(patience):
    with pytest.raises(SkewError, match="patience"):
        early_stop([0.1, 0.2], patience)


# -- aggregation and verdict -------------------------------------------------------------------
def _fake_curves(acc: dict) -> pd.DataFrame:
    rows = []
    for (init, seed), curve in acc.items():
        for epoch, a in enumerate(curve, start=1):
            rows.append({"model": "mlp", "init": init, "seed": seed, "epoch": epoch, "train_loss": 1.0,
                         "val_acc": a})
    return pd.DataFrame(rows)


def _fake_history(inits, seeds, skewed):
    rows = []
    for init in inits:
        for seed in seeds:
            for layer, frac in zip(("0", "2"), skewed[init]):
                rows.append({"model": "mlp", "init": init, "seed": seed, "step": 0, "layer": layer,
                             "skewed_0.1": frac, "skewed_0.3": frac / 2, "oui_pairwise": 0.5})
    return pd.DataFrame(rows)


def test_summarise_means_and_stds_over_seeds():
    acc = {
        ("a", 0): [0.1, 0.5, 0.7], ("a", 1): [0.3, 0.5, 0.9],
        ("b", 0): [0.2, 0.2, 0.2], ("b", 1): [0.4, 0.4, 0.4],
    }
    cfg = {"thresholds": (0.1, 0.3), "patience": 10, "schemes": ("b", "a"), "models": ("mlp",)}
    hist = _fake_history(["a", "b"], [0, 1], {"a": (0.2, 0.4), "b": (0.0, 1.0)})
    runs, table = _summarise(_fake_curves(acc), hist, cfg)
    assert list(table["init"]) == ["b", "a"]  # the schemes' order, not alphabetical
    a = table.set_index("init").loc["a"]
    aucs = [0.3 + 0.6, 0.4 + 0.7]
    assert a["auc_mean"] == pytest.approx(np.mean(aucs))
    assert a["auc_std"] == pytest.approx(np.std(aucs, ddof=1))
    assert a["max_val_acc_mean"] == pytest.approx(0.8)
    assert a["seeds"] == 2
    assert a["skewed_0.1_init_mean"] == pytest.approx(0.3)  # mean over layers, then seeds
    assert a["skewed_0.3_init_mean"] == pytest.approx(0.15)
    b = table.set_index("init").loc["b"]
    assert b["auc_mean"] == pytest.approx(0.6) and b["best_epoch_mean"] == 1
    assert len(runs) == 4 and set(runs.columns) >= {"max_val_acc", "auc", "best_epoch", "stop_epoch"}


def _result_with(aucs: dict) -> TrainResult:
    rows = []
    for init, values in aucs.items():
        rows.append({"model": "mlp", "init": init, "seeds": len(values), "auc_mean": np.mean(values),
                     "auc_std": np.std(values, ddof=1) if len(values) > 1 else np.nan,
                     "max_val_acc_mean": np.mean(values) / 10, "max_val_acc_std": 0.01,
                     "best_epoch_mean": 5.0, "skewed_0.3_init_mean": 0.1})
    cfg = {"models": ("mlp",), "schemes": tuple(aucs), "thresholds": (0.1, 0.3), "optimizer": "sgd",
           "lr": 0.01, "batch_size": 32, "epochs": 11, "seeds": (0, 1, 2), "patience": 10}
    return TrainResult(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(rows), pd.DataFrame(), cfg)


def test_verdict_reads_the_numbers():
    clear = _result_with({"default": [8.0, 8.1, 7.9], "sinusoidal": [9.0, 9.1, 8.9]})
    assert clear.verdict()["mlp"].startswith("Yes")
    noisy = _result_with({"default": [8.0, 9.0, 7.0], "sinusoidal": [8.2, 9.2, 7.2]})
    assert noisy.verdict()["mlp"].startswith("Not clearly")
    worse = _result_with(
        {"default": [9.0, 9.1, 8.9], "orthogonal": [8.5, 8.5, 8.5], "sinusoidal": [8.0, 8.1, 7.9]}
    )
    text = worse.verdict()["mlp"]
    assert text.startswith("No") and "ranks 3 of 3" in text and "beyond seed noise" in text
    tied = _result_with({"default": [8.0, 9.0, 7.0], "sinusoidal": [7.9, 8.9, 6.9]}).verdict()["mlp"]
    assert tied.startswith("No") and "within seed noise" in tied
    md = worse.to_markdown()
    assert "| mlp | sinusoidal | 0.8000 ± 0.0100 | 8.000 ± 0.100 |" in md
    assert "- mlp: No" in md and "at most 10" in md
    assert "not run" in _result_with({"default": [1.0, 2.0]}).verdict()["mlp"]


# -- the experiment ----------------------------------------------------------------------------
def test_bad_configuration_raises_before_training():
    with pytest.raises(SkewError, match="unknown init scheme"):
        run_experiment(models=("mlp",), schemes=("nope",), seeds=(0,), epochs=1)
    with pytest.raises(SkewError, match="sgd, adam"):
        run_experiment(models=("mlp",), seeds=(0,), epochs=1, optimizer="rmsprop")
    with pytest.raises(SkewError, match="mlp"):
        run_experiment(models=("resnet50",), seeds=(0,), epochs=1)
    with pytest.raises(SkewError, match="epochs"):
        run_experiment(models=("mlp",), seeds=(0,), epochs=0)


def test_small_run_is_deterministic_and_restores_the_random_state():
    kw = dict(models=("mlp",), schemes=("default", "sinusoidal"), seeds=(0, 1), epochs=2, track_every=20)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = run_experiment(**kw)
    assert torch.equal(torch.get_rng_state(), before)
    second = run_experiment(**kw)
    pd.testing.assert_frame_equal(first.curves, second.curves)
    pd.testing.assert_frame_equal(first.history, second.history)
    pd.testing.assert_frame_equal(first.table, second.table)
    # seeds differ from each other and the net learns something in 2 epochs
    runs = first.runs.set_index(["init", "seed"])
    assert runs.loc[("default", 0), "auc"] != runs.loc[("default", 1), "auc"]
    assert (first.curves["val_acc"] > 0.2).all()
    # the tracker measured at step 0, every 20 steps, and once more at the end
    steps = sorted(first.history["step"].unique())
    assert steps[0] == 0 and all(s % 20 == 0 for s in steps[:-1])
    assert math.isclose(first.history["epoch"].max(), 2.0)


@pytest.mark.slow
def test_quick_figures_written_and_byte_identical(tmp_path):
    from skew.train import write_figures

    first = write_figures(tmp_path / "a", quick=True)
    names = sorted(p.name for p in first)
    assert names == ["training_curves.png", "training_skew.png", "training_table.csv", "training_table.md"]
    table = pd.read_csv(tmp_path / "a" / "training_table.csv")
    assert len(table) == 6 and (table["seeds"] == 2).all()
    md = (tmp_path / "a" / "training_table.md").read_text()
    assert "Does the sinusoidal advantage show" in md and "- mlp: " in md
    second = write_figures(tmp_path / "b", quick=True)
    for a, b in zip(sorted(first), sorted(second)):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_cli_parses_and_writes(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="skew")
    add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--models", "mlp", "--inits", "default,sinusoidal", "--seeds", "0",
                              "--epochs", "2", "--optimizer", "adam", "--out", str(tmp_path)])
    assert args.inits == ["default", "sinusoidal"] and args.seeds == [0] and args.lr is None
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "optimizer adam (lr 0.001)" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "training_curves.png", "training_skew.png", "training_table.csv", "training_table.md"]
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--seeds", "a,b"])


def test_write_outputs_table_round_trips(tmp_path):
    res = _result_with({"default": [8.0, 8.1, 7.9], "sinusoidal": [9.0, 9.1, 8.9]})
    res.curves = _fake_curves({("default", 0): [0.1, 0.2], ("sinusoidal", 0): [0.3, 0.4]})
    res.history = _fake_history(
        ["default", "sinusoidal"], [0], {"default": (0.1, 0.2), "sinusoidal": (0.0, 0.0)}
    )
    res.history["epoch"] = 0.0
    write_outputs(res, tmp_path)
    back = pd.read_csv(tmp_path / "training_table.csv")
    np.testing.assert_allclose(back["auc_mean"], res.table["auc_mean"], atol=1e-4)


# -- defaults: where files go, the one data seed, --help ---------------------------------------
def test_train_writes_to_its_own_directory_by_default(tmp_path, monkeypatch, capsys):
    from skew.cli import build_parser, main
    from skew.train import DEFAULT_OUT

    monkeypatch.chdir(tmp_path)
    assert DEFAULT_OUT == "skew-train"
    parser = build_parser()
    assert parser.parse_args(["train"]).out == "skew-train"
    assert parser.parse_args(["figures"]).out == "figures"  # only `skew figures` writes figures/
    assert main(["train", "--models", "mlp", "--inits", "default", "--seeds", "0", "--epochs", "1"]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == [f"skew-train/{n}" for n in
                       ("training_curves.png", "training_skew.png", "training_table.csv", "training_table.md")]
    assert not (tmp_path / "figures").exists()
    assert "skew-train/training_table.csv" in capsys.readouterr().out


def test_train_help_shows_seed_and_debug(capsys):
    from skew.cli import main

    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--seed SEED" in text and "--debug" in text and "default skew-train" in text
    assert main(["train", "--seed", "-1"]) == 2
    assert "negative" in capsys.readouterr().err


def test_data_seed_draws_the_split_and_run_seeds_do_not():
    kw = dict(models=("mlp",), schemes=("default",), seeds=(0,), epochs=1, track_every=1000)
    a, b = run_experiment(**kw), run_experiment(**kw, data_seed=1)
    assert a.config["data_seed"] == 0 and b.config["data_seed"] == 1
    assert not np.allclose(a.curves["train_loss"], b.curves["train_loss"])  # another split, another run
    with pytest.raises(SkewError, match="negative"):
        run_experiment(**{**kw, "seeds": (-1,)})
# -- weight decay: sweep, controller, verdicts (issue 13) ---------------------------------------
def test_weight_decay_sweep_records_what_it_claims():
    from skew.train_wd import run_weight_decay
    from skew.weight_decay import OUIWeightDecay

    torch.manual_seed(5)
    before = torch.get_rng_state()
    res = run_weight_decay((0.0, 1e-2), auto=True, seeds=(0,), epochs=3)
    assert torch.equal(torch.get_rng_state(), before)
    t = res.table.set_index("weight_decay")
    assert list(t.index) == ["0", "0.01", "auto"] and (t["seeds"] == 1).all()
    c = res.curves
    assert set(c.query("weight_decay == '0.01'")["wd"]) == {0.01}
    auto = c.query("weight_decay == 'auto'").sort_values("epoch")
    # the controller's weight decays are what OUIWeightDecay decides from the run's own OUI and loss
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    ctl = OUIWeightDecay(opt, epochs=3)
    expected = [1e-4] + [ctl.step(o, loss) for o, loss in zip(auto["train_oui"], auto["train_loss"])][:-1]
    np.testing.assert_allclose(auto["wd"], expected, rtol=1e-12)
    assert (auto["val_acc"] > 0.3).all()  # measured before a reset, never on freshly reset weights
    for label, part in c.groupby("weight_decay"):
        part = part.sort_values("epoch")
        row = res.runs.set_index("weight_decay").loc[label]
        assert row["final_oui"] == part["train_oui"].iloc[-1]
        assert row["final_wd"] == part["wd"].iloc[-1]
        assert row["max_val_acc"] == early_stop(part["val_acc"].to_numpy(), 10).best
        assert row["auc"] == pytest.approx(auc(part["val_acc"].to_numpy()))
        assert part["train_oui"].between(0, 1).all()
    # weight decay changes training: same seed, same batches, different curves
    assert not np.allclose(c.query("weight_decay == '0'")["train_loss"], c.query("weight_decay == '0.01'")["train_loss"])
    hist = res.history
    first = hist[hist["step"] == 0]
    assert first["pattern_change"].isna().all() and first["weight_change"].isna().all()
    later = hist[hist["epoch"] > 0]
    assert (later["weight_change"] > 0).all() and later["pattern_change"].between(0, 1).all()
    md = res.to_markdown()
    assert "| mlp | default | auto |" in md and "Did the OUI band (0.6–0.8) pick" in md
    assert "settle before the weights" in md


def _wd_result(rows):
    from skew.train_wd import WeightDecayResult

    table = pd.DataFrame([{"model": "mlp", "init": "default", "weight_decay": wd, "seeds": 2,
                           "final_oui_mean": oui, "final_oui_std": 0.01, "max_val_acc_mean": acc,
                           "max_val_acc_std": 0.01, "auc_mean": 1.0, "auc_std": 0.1, "final_wd_mean": 0.0,
                           "final_wd_std": 0.0, "in_band": 0.6 <= oui <= 0.8} for wd, oui, acc in rows])
    return WeightDecayResult(pd.DataFrame(), pd.DataFrame(), table, pd.DataFrame(), {})


@pytest.mark.parametrize("rows, start", [
    ([("0", 0.85, 0.95), ("0.001", 0.7, 0.97), ("0.01", 0.5, 0.90)], "Yes:"),
    ([("0", 0.85, 0.98), ("0.001", 0.7, 0.97), ("0.01", 0.5, 0.90)], "No: the best weight decay is 0 "),
    ([("0", 0.65, 0.98), ("0.001", 0.7, 0.90), ("0.01", 0.5, 0.95)], "Partly:"),
    ([("0", 0.85, 0.98), ("0.01", 0.5, 0.90)], "No: no weight decay kept"),
    ([("0", 0.65, 0.98), ("0.01", 0.7, 0.90)], "Not decisive: every weight decay kept"),
    ([("0", 0.7, 0.98), ("0.001", 0.85, 0.98), ("auto", 0.7, 0.99)], "Partly: the best weight decays are 0 and 0.001"),
])
def test_band_verdict_reads_the_table(rows, start):
    assert _wd_result(rows).band_verdict()[("mlp", "default")].startswith(start)


def test_settling_and_structure_sentence():
    from skew.train_wd import _structure_sentence, settling

    assert settling([1.0, 0.5, 0.09, 0.2, 0.05, 0.01]) == 4  # 0.2 > 0.1 at index 3
    assert settling([1.0, 0.5, 0.2]) is None
    assert settling([np.nan, 0.4, 0.04, 0.03]) == 2
    rows = []
    for epoch, (pc, wc) in enumerate([(np.nan, np.nan), (0.3, 0.2), (0.02, 0.15), (0.01, 0.1), (0.01, 0.08)]):
        for layer in ("0", "2"):
            rows.append({"epoch": float(epoch), "layer": layer, "pattern_change": pc, "weight_change": wc})
    text = _structure_sentence(pd.DataFrame(rows))
    assert text.startswith("Yes: the structure settled from epoch 2, the weights never within the run")
    swapped = pd.DataFrame(rows).rename(columns={"pattern_change": "weight_change", "weight_change": "pattern_change"})
    assert _structure_sentence(swapped).startswith("No: the weights settled from epoch 2")
    same = pd.DataFrame(rows).assign(weight_change=lambda f: f["pattern_change"] * 2)
    assert _structure_sentence(same).startswith("Not before: structure and weights settled together, from epoch 2")


def test_cli_weight_decay_sweep_writes_its_files(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="skew")
    add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--weight-decay", "0,1e-3", "--auto-wd", "--quick", "--seeds", "0",
                              "--epochs", "2", "--oui-at", "activations", "--out", str(tmp_path)])
    assert args.weight_decay == [0.0, 1e-3] and args.auto_wd and args.inits is None
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "at activations" in out and "| mlp | default | 0.001 |" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "training_wd_curves.png", "training_wd_structure.png", "training_wd_table.csv", "training_wd_table.md"]
    table = pd.read_csv(tmp_path / "training_wd_table.csv")
    assert table["weight_decay"].astype(str).tolist() == ["0", "0.001", "auto"]
    assert table["final_wd_mean"].tolist()[:2] == [0.0, 0.001]
    assert 0 < table["final_wd_mean"].iloc[2] <= 1e-4  # the controller's, small but not rounded to 0
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--weight-decay", "a,b"])
    with pytest.raises(SkewError, match=">= 0"):
        from skew.train_wd import run_weight_decay

        run_weight_decay((-1.0,), seeds=(0,), epochs=1)


def test_controller_reset_restarts_from_the_initial_weights(monkeypatch):
    import skew.train_wd as train_wd

    script = iter([0.40, 0.70, 0.70])  # epoch 1's OUI < 0.55 in the initial phase: reset

    class Scripted(train_wd.EpochOUI):
        def epoch_end(self):
            super().epoch_end()
            return next(script)

    monkeypatch.setattr(train_wd, "EpochOUI", Scripted)
    res = train_wd.run_weight_decay((), auto=True, seeds=(0,), epochs=3)
    c = res.curves.sort_values("epoch")
    assert c["reset"].tolist() == [True, False, False]
    np.testing.assert_allclose(c["wd"], [1e-4, 1e-5, 1e-5], rtol=1e-12)
    assert (c["val_acc"] > 0.3).all()  # read before the reset
    loss = c["train_loss"].to_numpy()
    # epoch 2 starts again from the initial weights: its mean loss is near epoch 1's, far above epoch 3's
    assert abs(loss[1] - loss[0]) < 0.05 * loss[0] and loss[2] < 0.6 * loss[1]


def test_init_experiment_reports_pattern_and_weight_change():
    res = run_experiment(models=("mlp",), schemes=("default",), seeds=(0,), epochs=2)
    hist = res.history
    assert hist.loc[hist["step"] == 0, "pattern_change"].isna().all()
    assert (hist.loc[hist["step"] > 0, "weight_change"] > 0).all()
    md = res.to_markdown()
    assert "**Does the structure settle before the weights?**" in md
    tail = md.split("settle before the weights?**")[1]
    assert any(tail.split("\n\n")[1].startswith(w) for w in ("Yes", "No", "Not"))


def test_the_light_cli_lists_the_models_train_knows():
    import skew.train as train
    from skew.train_cli import MODELS

    assert tuple(train._MODEL_OPTIONS) == MODELS


@pytest.mark.parametrize("extra, threads", [([], 1), (["--threads", "2"], 2), (["--weight-decay", "0"], 1)])
def test_skew_train_trains_on_the_threads_it_is_given_and_restores_them(extra, threads, monkeypatch, tmp_path):
    # torch's default threads on 2 busy shared cores made `skew train --quick` take 150-260 s, against 8 s on
    # one thread (what `skew figures` trains with): the command now defaults to one and says so in --help
    import skew.train
    import skew.train_wd
    from skew.cli import main

    seen = []

    def stop(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise SkewError("stop here")

    monkeypatch.setattr(skew.train, "run_experiment", stop)
    monkeypatch.setattr(skew.train_wd, "run_weight_decay", stop)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # the suite runs on one thread (conftest): start from another count
    try:
        assert main(["train", "--quick", "--out", str(tmp_path), *extra]) == 1
        assert seen == [threads] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_skew_train_threads_must_be_positive(capsys, tmp_path):
    from skew.cli import main

    assert main(["train", "--threads", "0", "--out", str(tmp_path)]) == 2
    assert "--threads" in capsys.readouterr().err
