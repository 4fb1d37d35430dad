"""Does a balanced initialization train faster? ``skew train`` (docs/experiments.md, Table 3's metrics).

Trains the built-in models on sklearn's bundled digits with each initialization scheme and several
seeds, and reports, per (model, scheme), the mean ± standard deviation over seeds of

- **max validation accuracy**: the best validation accuracy before a patience-10 early stop on
  validation accuracy (:func:`early_stop`);
- **AUC**: the trapezoid area under the per-epoch validation-accuracy curve, accuracy as a fraction,
  dx = 1 epoch (:func:`auc`), over the **whole epoch budget**. Every run trains the same number of
  epochs, so the areas compare like for like (an area over the epochs a run happened to run would
  reward a run that stopped early less). The early-stop maximum is read off the same curve: the
  stopping rule only looks at past epochs, so this equals what a run that really stopped reports.

A :class:`skew.Tracker` records per-layer skew fractions and OUI on a fixed probe batch (the first
256 validation samples) during every run, so the table also shows each scheme's skew at step 0.

Protocol (deterministic): one fixed train/validation split (``digits_dataset(seed=data_seed)``, the
``data`` stream of ``data_seed``, default 0); for run seed s, independent streams derived from s with
``numpy.random.SeedSequence`` (:mod:`skew.seeding`, never s itself): ``torch.manual_seed(child_seed(s,
"init"))`` before building the model (PyTorch's default init draws from it),
``skew.init.apply(model, scheme, generator=generator(s, "init"))`` (LSUV gets 256 training samples
picked by the ``sample`` stream), the ``shuffle`` stream for the batch order (every scheme sees the
same batches for a given seed) and ``torch.manual_seed(child_seed(s, "dropout"))`` for the global RNG
during training (dropout masks). The global random state of the caller is restored afterwards.

Run time, measured on 2 otherwise idle CPU cores (``taskset -c 0,1``, torch 2.11): ``--quick`` (MLP,
6 schemes, 2 seeds, 10 epochs) about 13 s; the full run (MLP and CNN, 6 schemes, 3 seeds, 40 epochs)
156 s, about 80 % of it the CNN. On busy cores expect two to three times that. ``skew train`` trains on
one CPU thread (``--threads``), as ``skew figures`` does: on 2 busy shared cores torch's default of 2 threads
made ``--quick`` take 150-260 s against 8 s with one.

Example:
    >>> res = run_experiment(("mlp",), ("default", "sinusoidal"), seeds=(0,), epochs=3)  # doctest: +SKIP
    >>> res.table[["model", "init", "max_val_acc_mean", "auc_mean"]]  # doctest: +SKIP
    >>> print(res.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import math
import numbers
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from skew._checks import thresholds as check_thresholds
from skew._io import atomic_write, path_arg, save_figure, write_csv
from skew.epoch_oui import EpochOUI
from skew.errors import SkewError
from skew.seeding import _user_seed, child_seed, generator
from skew.tracker import Tracker
from skew.train_cli import _OPTIMIZERS, DEFAULT_OUT, DEFAULT_SCHEMES, add_cli
from skew.weight_decay import OUIWeightDecay

__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_SCHEMES",
    "EarlyStop",
    "EpochOUI",
    "OUIWeightDecay",
    "TrainResult",
    "add_cli",
    "auc",
    "early_stop",
    "run_cli",
    "run_experiment",
    "write_figures",
]
#: Names of the weight-decay experiment (skew.train_wd), served lazily from here.
_WD_NAMES = ("OUI_AT", "OUI_BAND", "WeightDecayResult", "run_weight_decay", "settling",
             "write_weight_decay_figures", "write_weight_decay_outputs")


def __getattr__(name: str):
    if name in _WD_NAMES:
        import skew.train_wd

        return getattr(skew.train_wd, name)
    raise AttributeError(f"module 'skew.train' has no attribute {name!r}")

_DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3}
#: Model options used for digits (8×8 grey images, 10 classes).
_MODEL_OPTIONS: dict[str, dict[str, Any]] = {
    "mlp": {"in_features": 64, "out_features": 10, "depth": 3, "width": 128, "bias": True,
            "pre_activation": False},
    "cnn": {"in_channels": 1, "num_classes": 10, "width": 16},
}
_QUICK = {"models": ("mlp",), "seeds": (0, 1), "epochs": 10}
_FULL = {"models": ("mlp", "cnn"), "seeds": (0, 1, 2), "epochs": 40}
_PROBE_SIZE = 256
_LSUV_SIZE = 256
_FLOAT = "%.4f"


# -- metrics -----------------------------------------------------------------------------------
class EarlyStop(NamedTuple):
    """Outcome of patience-based early stopping on a per-epoch validation-accuracy curve.

    ``best`` is the maximum accuracy seen up to the stop, ``best_epoch`` the first epoch (1-based)
    reaching it, ``stop_epoch`` the last epoch run (the curve's length when patience never ran out).
    """

    best: float
    best_epoch: int
    stop_epoch: int


def _curve(curve, fn: str) -> np.ndarray:
    """A per-epoch accuracy curve as a 1-D float array; a word, bytes, None, bools or a nested list are refused."""
    try:
        if isinstance(curve, (str, bytes)) or not isinstance(curve, Iterable):
            raise TypeError
        items = curve.tolist() if hasattr(curve, "tolist") else list(curve)
        if any(isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Real) for a in items):
            raise TypeError
        return np.asarray(items, dtype=float)
    except (TypeError, ValueError):
        raise SkewError(f"{fn} needs a 1-D sequence of per-epoch accuracies (numbers), got {curve!r:.60}; "
                        "pass e.g. [0.5, 0.7, 0.8]") from None


def early_stop(curve: Sequence[float], patience: int = 10) -> EarlyStop:
    """Max validation accuracy before a patience-``patience`` early stop (docs/experiments.md).

    Epochs are 1-based. An epoch *improves* when its accuracy is strictly above the best so far;
    training stops at the first epoch e with ``patience`` consecutive non-improving epochs ending
    at e, and the metric is the best accuracy up to e:

    .. math:: \\text{best} = \\max_{t \\le e} a_t, \\qquad
              e = \\min\\{t : t - \\arg\\max_{u \\le t} a_u = \\text{patience}\\}

    Example:
        >>> early_stop([0.5, 0.7, 0.6, 0.65, 0.9], patience=2)
        EarlyStop(best=0.7, best_epoch=2, stop_epoch=4)
    """
    values = _curve(curve, "early_stop").tolist()
    if not values:
        raise SkewError("early_stop needs at least one epoch's accuracy; pass a non-empty curve")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise SkewError(f"patience={patience!r} is not a positive integer; pass e.g. patience=10")
    best, best_epoch, wait = -math.inf, 0, 0
    for epoch, acc in enumerate(values, start=1):
        if acc > best:  # NaN never improves
            best, best_epoch, wait = acc, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return EarlyStop(best, best_epoch, epoch)
    if best_epoch == 0:  # every value NaN
        return EarlyStop(float("nan"), 1, len(values))
    return EarlyStop(best, best_epoch, len(values))


def auc(curve: Sequence[float]) -> float:
    """Trapezoid area under a per-epoch accuracy curve, dx = 1 epoch (docs/experiments.md).

    .. math:: \\mathrm{AUC} = \\sum_{t=1}^{E-1} \\frac{a_t + a_{t+1}}{2}

    With accuracies as fractions the maximum is E − 1 (a curve at 1.0 throughout).

    Example:
        >>> auc([0.0, 1.0, 1.0])
        1.5
    """
    values = _curve(curve, "auc")
    if values.size == 0:
        raise SkewError("auc needs a 1-D, non-empty sequence of per-epoch accuracies")
    return float(np.trapezoid(values, dx=1.0))


# -- result ------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What :func:`run_experiment` measured.

    Attributes:
        curves: one row per (model, init, seed, epoch): train_loss (mean over the epoch's batches)
            and val_acc (fraction).
        runs: one row per (model, init, seed): max_val_acc, best_epoch, stop_epoch, auc,
            final_val_acc, and the step-0 skew (``skewed_α_init``: mean over layers) and
            ``oui_pairwise_init``.
        table: one row per (model, init): ``seeds`` and the mean and std (ddof = 1) over seeds of
            the runs' numbers (``*_mean``, ``*_std``).
        history: the Tracker histories, with model, init, seed and ``epoch`` (= step / steps per
            epoch) columns added.
        config: the settings the experiment ran with.
    """

    curves: pd.DataFrame
    runs: pd.DataFrame
    table: pd.DataFrame
    history: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"TrainResult(models={list(cfg.get('models', ()))}, schemes={list(cfg.get('schemes', ()))}, "
            f"seeds={list(cfg.get('seeds', ()))}, epochs={cfg.get('epochs')}, runs={len(self.runs)})"
        )

    def verdict(self) -> dict[str, str]:
        """Per model, a sentence saying whether sinusoidal converges faster (higher AUC) here.

        "Yes" when sinusoidal has the highest mean AUC and leads the runner-up by more than two
        standard errors of the difference (sqrt(s₁²/n₁ + s₂²/n₂)); "Not clearly" when it leads
        by less; "No" otherwise, saying whether the gap to the best scheme is within that noise.
        Computed from :attr:`table`, never hard-coded.
        """
        out = {}
        for model, part in self.table.groupby("model", sort=False):
            part = part.set_index("init")
            if "sinusoidal" not in part.index:
                out[model] = "sinusoidal was not run."
                continue
            if len(part) < 2:
                out[model] = "only sinusoidal was run; nothing to compare with."
                continue
            sin = part.loc["sinusoidal"]
            others = part.drop(index="sinusoidal").sort_values("auc_mean", ascending=False, kind="stable")
            rival_name, rival = others.index[0], others.iloc[0]
            rank = 1 + int((others["auc_mean"] > sin["auc_mean"]).sum())
            gap = sin["auc_mean"] - rival["auc_mean"]
            se = math.sqrt(
                _sq_over(sin["auc_std"], sin["seeds"]) + _sq_over(rival["auc_std"], rival["seeds"])
            )
            acc_rank = 1 + int((others["max_val_acc_mean"] > sin["max_val_acc_mean"]).sum())
            acc_note = f"its max validation accuracy ranks {acc_rank} of {len(part)}"
            if gap > 0 and gap > 2 * se:
                zs = "" if se == 0 else f", {gap / se:.1f} standard errors"
                out[model] = (
                    f"Yes: sinusoidal has the highest AUC, {gap:.3f} above {rival_name}{zs}; {acc_note}."
                )
            elif gap > 0:
                out[model] = (
                    f"Not clearly: sinusoidal has the highest mean AUC but leads {rival_name} by only "
                    f"{gap:.3f}, within seed noise (2 standard errors = {2 * se:.3f}); {acc_note}."
                )
            elif -gap <= 2 * se:
                out[model] = (
                    f"No: sinusoidal's AUC ranks {rank} of {len(part)}, {-gap:.3f} below {rival_name}, "
                    f"a gap within seed noise (2 standard errors = {2 * se:.3f}); {acc_note}."
                )
            else:
                out[model] = (
                    f"No: sinusoidal's AUC ranks {rank} of {len(part)}, {-gap:.3f} below {rival_name} "
                    f"(beyond seed noise: 2 standard errors = {2 * se:.3f}); {acc_note}."
                )
        return out

    def to_markdown(self) -> str:
        """The table (mean ± std over seeds), the protocol and the verdict, as Markdown."""
        cfg = self.config
        alpha = f"{max(cfg.get('thresholds', (0.3,))):g}"
        lines = [
            "# Training on digits: convergence by initialization scheme",
            "",
            f"Models {', '.join(cfg.get('models', ()))}; optimizer {cfg.get('optimizer')} "
            f"(lr {cfg.get('lr'):g}{', momentum 0.9' if cfg.get('optimizer') == 'sgd' else ''}), "
            f"batch size {cfg.get('batch_size')}, {cfg.get('epochs')} epochs, seeds "
            f"{', '.join(str(s) for s in cfg.get('seeds', ()))}.",
            f"Max val acc: best validation accuracy before a patience-{cfg.get('patience')} early stop on "
            "validation accuracy. AUC: trapezoid area under the per-epoch validation-accuracy curve over "
            f"all {cfg.get('epochs')} epochs (accuracy as a fraction, dx = 1 epoch; at most "
            f"{int(cfg.get('epochs', 1)) - 1}). Values are mean ± std (ddof = 1) over seeds. "
            f"Skewed at init: fraction of neurons with |p − 1/2| > {alpha} at step 0 on the probe batch, "
            "mean over layers.",
            "",
            f"| model | init | max val acc | AUC | best epoch | skewed at init (α = {alpha}) |",
            "|---|---|---|---|---|---|",
        ]
        for rec in self.table.to_dict("records"):
            lines.append(
                f"| {rec['model']} | {rec['init']} | {_pm(rec['max_val_acc_mean'], rec['max_val_acc_std'])} "
                f"| {_pm(rec['auc_mean'], rec['auc_std'], 3)} | {rec['best_epoch_mean']:.1f} "
                f"| {rec[f'skewed_{alpha}_init_mean']:.3f} |"
            )
        lines += ["", "**Does the sinusoidal advantage show at this scale?**", ""]
        lines += [f"- {model}: {text}" for model, text in self.verdict().items()]
        if "pattern_change" in self.history.columns:  # docs/oui.md, from the Tracker's probe measurements
            from skew.train_wd import _structure_sentence

            lines += ["", "**Does the structure settle before the weights?** (pattern_change and "
                      "weight_change on the probe, mean over layers, schemes and seeds)", "",
                      _structure_sentence(self.history)]
        return "\n".join(lines) + "\n"

    def plot_curves(self, model: str | None = None, *, ax=None):
        """Validation accuracy per epoch, mean over seeds with a ±1 std band, one line per scheme.

        Example:
            >>> ax = result.plot_curves("mlp")  # doctest: +SKIP
        """
        model = self._one_model(model)
        ax = _axes(ax)
        part = self.curves[self.curves["model"] == model]
        for i, init in enumerate(self.config["schemes"]):
            stats = part[part["init"] == init].groupby("epoch")["val_acc"].agg(["mean", "std"])
            color = f"C{i % 10}"
            ax.plot(stats.index, stats["mean"], color=color, label=init, linewidth=1.5)
            ax.fill_between(
                stats.index, stats["mean"] - stats["std"].fillna(0), stats["mean"] + stats["std"].fillna(0),
                color=color, alpha=0.15, linewidth=0,
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"{model} on digits")
        ax.legend(fontsize="small", title="init", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        return ax

    def plot_skew(self, metric: str = "skewed_0.3", model: str | None = None, *, ax=None):
        """A Tracker metric over training (mean over layers and seeds), one line per scheme.

        Example:
            >>> ax = result.plot_skew("oui_pairwise", "mlp")  # doctest: +SKIP
        """
        model = self._one_model(model)
        keys = ("model", "init", "seed", "step", "epoch", "layer")
        valid = [c for c in self.history.columns if c not in keys]
        if metric not in valid:
            raise SkewError(f"metric={metric!r} was not tracked; use one of {', '.join(valid)}")
        ax = _axes(ax)
        part = self.history[self.history["model"] == model]
        for i, init in enumerate(self.config["schemes"]):
            per_seed = part[part["init"] == init].groupby(["seed", "epoch"])[metric].mean()
            stats = per_seed.groupby("epoch").mean()
            ax.plot(stats.index, stats.values, color=f"C{i % 10}", label=init, linewidth=1.5)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{metric} (mean over layers)")
        ax.set_title(f"{model}: {metric}")
        ax.legend(fontsize="small", title="init", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        return ax

    def _one_model(self, model: str | None) -> str:
        models = list(self.config["models"])
        if model is None:
            return models[0]
        if model not in models:
            raise SkewError(f"model {model!r} was not trained; pick one of {', '.join(models)}")
        return model


def _sq_over(std: float, n: float) -> float:
    return 0.0 if not np.isfinite(std) or n < 2 else float(std) ** 2 / float(n)


def _pm(mean: float, std: float, digits: int = 4) -> str:
    s = "n/a" if not np.isfinite(std) else f"{std:.{digits}f}"
    return f"{mean:.{digits}f} ± {s}"


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    return ax


# -- the experiment ----------------------------------------------------------------------------
def _check_config(models, schemes, seeds, epochs, patience, optimizer, lr, batch_size, track_every) -> None:
    from skew.init import get_scheme
    from skew.models import model_names

    if not models:
        raise SkewError("models is empty; pass e.g. models=('mlp', 'cnn')")
    bad = [m for m in models if m not in _MODEL_OPTIONS]
    if bad:
        have = [m for m in _MODEL_OPTIONS if m in model_names()]
        raise SkewError(f"cannot train {bad} on digits; the experiment supports {', '.join(have)}")
    if not schemes:
        raise SkewError("schemes is empty; pass e.g. schemes=('default', 'sinusoidal')")
    for scheme in schemes:
        get_scheme(scheme)  # raises SkewError naming the valid schemes
    if len(set(schemes)) != len(schemes):
        raise SkewError(f"schemes {list(schemes)} repeat a name; list each scheme once")
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in seeds):
        raise SkewError(f"seeds={seeds!r} must be a non-empty list of integers; pass e.g. seeds=(0, 1, 2)")
    if len(set(seeds)) != len(seeds):
        raise SkewError(f"seeds {list(seeds)} repeat a value; list each seed once")
    if any(s < 0 for s in seeds):
        raise SkewError(f"seeds {list(seeds)} hold a negative value; pass non-negative integers, e.g. (0, 1, 2)")
    for name, value in (("epochs", epochs), ("patience", patience), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SkewError(f"{name}={value!r} is not a positive integer; pass e.g. {name}=10")
    if track_every is not None and (isinstance(track_every, bool) or not isinstance(track_every, int)
                                    or track_every < 1):
        raise SkewError(
            f"track_every={track_every!r} is not a positive integer; pass e.g. track_every=50 or None"
        )
    if optimizer not in _OPTIMIZERS:
        raise SkewError(f"optimizer={optimizer!r} is not understood; use one of {', '.join(_OPTIMIZERS)}")
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise SkewError(f"lr={lr!r} must be a positive number; pass e.g. lr=0.01")


def _load_digits(model: str, data_seed: int = 0) -> tuple[torch.Tensor, ...]:
    from skew.data import digits_dataset
    from skew.models import input_shape

    shape = tuple(input_shape(model, **_MODEL_OPTIONS[model]))
    train, val = digits_dataset(shape=shape, seed=data_seed)
    x_tr, y_tr = train.tensors[:2]
    x_va, y_va = val.tensors[:2]
    return x_tr.float(), y_tr.long(), x_va.float(), y_va.long()


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            pred = model(x).argmax(dim=1)
    finally:
        model.train(was)
    return float((pred == y).double().mean())


def _build_run_model(model_name: str, scheme: str, seed: int, x_tr: torch.Tensor) -> nn.Module:
    """The model of run seed ``seed``: built from its ``init`` stream, initialized with ``scheme`` (LSUV's batch
    drawn from the ``sample`` stream); the caller forks the global RNG."""
    from skew.init import apply, get_scheme
    from skew.models import build_model

    torch.manual_seed(child_seed(seed, "init"))
    model = build_model(model_name, **_MODEL_OPTIONS[model_name])
    kwargs: dict[str, Any] = {"generator": generator(seed, "init")}
    if get_scheme(scheme).needs_data:
        pick = torch.randperm(len(x_tr), generator=generator(seed, "sample"))[:_LSUV_SIZE]
        kwargs["data"] = x_tr[pick]
    apply(model, scheme, **kwargs)
    return model


def _optimizer(model: nn.Module, cfg: dict, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 or Adam, at ``cfg["lr"]``."""
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9, weight_decay=weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=weight_decay)


def _train_epoch(model, opt, x_tr, y_tr, bs: int, order: torch.Generator, tracker, step: int) -> tuple[float, int]:
    """One epoch of mini-batch cross-entropy training in an order drawn from ``order``; the tracker sees
    every step. Returns the epoch's mean training loss and the next step."""
    n = len(x_tr)
    perm = torch.randperm(n, generator=order)
    total = 0.0
    for start in range(0, n, bs):
        tracker.step(step)
        idx = perm[start : start + bs]
        loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
        step += 1
    return total / n, step


def _train_one(model_name, scheme, seed, data, cfg) -> tuple[list[dict], pd.DataFrame]:
    x_tr, y_tr, x_va, y_va = data
    n, bs = len(x_tr), cfg["batch_size"]
    steps_per_epoch = math.ceil(n / bs)
    every = cfg["track_every"] or steps_per_epoch
    with torch.random.fork_rng(devices=[]):
        model = _build_run_model(model_name, scheme, seed, x_tr)
        torch.manual_seed(child_seed(seed, "dropout"))
        model.train()
        opt = _optimizer(model, cfg)
        tracker = Tracker(model, x_va[:_PROBE_SIZE], every=every, thresholds=cfg["thresholds"])
        order = generator(seed, "shuffle")
        rows, step = [], 0
        for epoch in range(1, cfg["epochs"] + 1):
            train_loss, step = _train_epoch(model, opt, x_tr, y_tr, bs, order, tracker, step)
            rows.append({
                "model": model_name, "init": scheme, "seed": int(seed), "epoch": epoch,
                "train_loss": train_loss, "val_acc": _accuracy(model, x_va, y_va),
            })
        if tracker.steps[-1] != step:  # the state after the last update
            tracker.measure(step)
    hist = tracker.history
    hist.insert(0, "epoch", hist["step"] / steps_per_epoch)
    for col, value in (("seed", int(seed)), ("init", scheme), ("model", model_name)):
        hist.insert(0, col, value)
    return rows, hist


def _summarise(curves: pd.DataFrame, history: pd.DataFrame, cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    keys = ["model", "init", "seed"]
    skew_cols = [f"skewed_{a:g}" for a in cfg["thresholds"]] + ["oui_pairwise"]
    at_init = (
        history[history["step"] == 0].groupby(keys, sort=False)[skew_cols].mean()
        .rename(columns={c: f"{c}_init" for c in skew_cols})
    )
    records = []
    for key, part in curves.groupby(keys, sort=False):
        acc = part.sort_values("epoch")["val_acc"].to_numpy()
        stop = early_stop(acc, cfg["patience"])
        records.append({
            **dict(zip(keys, key)), "max_val_acc": stop.best, "best_epoch": stop.best_epoch,
            "stop_epoch": stop.stop_epoch, "auc": auc(acc), "final_val_acc": float(acc[-1]),
        })
    runs = pd.DataFrame(records).merge(at_init.reset_index(), on=keys, how="left")
    metrics = [c for c in runs.columns if c not in keys]
    grouped = runs.groupby(["model", "init"], sort=False)
    table = grouped[metrics].agg(["mean", "std"])
    table.columns = [f"{c}_{stat}" for c, stat in table.columns]
    table.insert(0, "seeds", grouped.size())
    table = table.reset_index()
    order = {s: i for i, s in enumerate(cfg["schemes"])}
    morder = {m: i for i, m in enumerate(cfg["models"])}
    table = table.sort_values(["model", "init"], key=lambda s: s.map(morder if s.name == "model" else order))
    return runs, table.reset_index(drop=True)


def run_experiment(
    models: Sequence[str] | None = None,
    schemes: Sequence[str] = DEFAULT_SCHEMES,
    seeds: Sequence[int] | None = None,
    *,
    epochs: int | None = None,
    patience: int = 10,
    optimizer: str = "sgd",
    lr: float | None = None,
    batch_size: int = 32,
    quick: bool = False,
    track_every: int | None = None,
    thresholds: Sequence[float] = (0.1, 0.3),
    progress: bool = False,
    data_seed: int = 0,
) -> TrainResult:
    """Train each model on digits with each scheme and seed; return the metrics (docs/experiments.md).

    Per run: max validation accuracy before a patience-``patience`` early stop
    (:func:`early_stop`) and AUC = Σ_t (a_t + a_{t+1}) / 2 over the full ``epochs`` budget
    (:func:`auc`); the table holds mean and std over seeds. See the module docstring for the
    protocol and its determinism.

    Args:
        models: built-in model names (``"mlp"``, ``"cnn"``); default both, ``("mlp",)`` if quick.
        schemes: ``skew.init`` scheme names.
        seeds: default (0, 1, 2); (0, 1) if quick.
        epochs: epoch budget per run; default 40, 10 if quick.
        patience: early-stopping patience in epochs (on validation accuracy).
        optimizer: ``"sgd"`` (momentum 0.9) or ``"adam"``; ``lr`` defaults to 0.01 and 1e-3.
        batch_size: training batch size.
        quick: the small defaults above (they apply only where an argument is left as None).
        track_every: Tracker period in steps; default once per epoch.
        thresholds: α values tracked.
        progress: show a progress bar over runs (stderr).
        data_seed: seed of the train/validation split (its ``data`` stream shuffles the digits).

    Example:
        >>> res = run_experiment(("mlp",), ("default", "sinusoidal"), (0,), epochs=2)  # doctest: +SKIP
        >>> res.runs[["init", "max_val_acc", "auc"]]  # doctest: +SKIP
    """
    for name, flag in (("quick", quick), ("progress", progress)):
        if not isinstance(flag, (bool, np.bool_)):  # quick="no" is truthy
            raise SkewError(f"{name}={flag!r:.40} must be True or False; pass e.g. {name}=True")
    preset = _QUICK if quick else _FULL
    for name, value in (("models", models), ("schemes", schemes), ("seeds", seeds)):
        if (value is not None or name == "schemes") and not isinstance(value, (str, Iterable)):  # None: preset
            raise SkewError(f"{name}={value!r:.40} is not a list; pass e.g. models=('mlp',), "
                            "schemes=('default', 'sinusoidal'), seeds=(0, 1)")
    models = tuple(preset["models"] if models is None else ([models] if isinstance(models, str) else models))
    schemes = tuple([schemes] if isinstance(schemes, str) else schemes)
    seeds = tuple(preset["seeds"] if seeds is None else seeds)
    thresholds = check_thresholds(thresholds)
    data_seed = _user_seed(data_seed)
    epochs = preset["epochs"] if epochs is None else epochs
    if optimizer not in _OPTIMIZERS:
        raise SkewError(f"optimizer={optimizer!r} is not understood; use one of {', '.join(_OPTIMIZERS)}")
    lr = _DEFAULT_LR[optimizer] if lr is None else lr
    _check_config(models, schemes, seeds, epochs, patience, optimizer, lr, batch_size, track_every)
    cfg = {
        "models": models, "schemes": schemes, "seeds": tuple(int(s) for s in seeds), "epochs": epochs,
        "patience": patience, "optimizer": optimizer, "lr": float(lr), "batch_size": batch_size,
        "quick": bool(quick), "track_every": track_every, "thresholds": tuple(float(a) for a in thresholds),
        "data_seed": int(data_seed),
    }
    from tqdm.auto import tqdm

    jobs = [(m, s, seed) for m in models for s in schemes for seed in cfg["seeds"]]
    curves, histories, data = [], [], {}
    for model_name, scheme, seed in tqdm(jobs, desc="skew train", disable=not progress, file=sys.stderr):
        if model_name not in data:
            data[model_name] = _load_digits(model_name, cfg["data_seed"])
        rows, hist = _train_one(model_name, scheme, seed, data[model_name], cfg)
        curves.extend(rows)
        histories.append(hist)
    curves_df = pd.DataFrame(curves)
    history = pd.concat(histories, ignore_index=True)
    runs, table = _summarise(curves_df, history, cfg)
    return TrainResult(curves=curves_df, runs=runs, table=table, history=history, config=cfg)


# -- files, figures, CLI -----------------------------------------------------------------------
def write_outputs(result: TrainResult, out_dir: str | Path) -> list[Path]:
    """Write training_table.csv/.md, training_curves.png and training_skew.png into ``out_dir``.

    Files are written atomically with a fixed float format, so equal results give byte-identical
    files.

    Example:
        >>> write_outputs(run_experiment(quick=True), "figures")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    out = Path(out_dir)
    paths = [
        write_csv(result.table, out / "training_table.csv", float_format=_FLOAT),
        atomic_write(out / "training_table.md",
                     lambda p: p.write_text(result.to_markdown(), encoding="utf-8")),
    ]
    models = list(result.config["models"])
    fig = Figure(figsize=(5.5 * len(models), 4), layout="constrained")
    for ax, model in zip(fig.subplots(1, len(models), squeeze=False)[0], models):
        result.plot_curves(model, ax=ax)
    paths.append(save_figure(fig, out / "training_curves.png"))

    metrics = [f"skewed_{a:g}" for a in result.config["thresholds"]] + ["oui_pairwise"]
    metrics += [c for c in ("pattern_change", "weight_change") if c in result.history.columns]  # docs/oui.md
    fig = Figure(figsize=(4.5 * len(metrics), 3.5 * len(models)), layout="constrained")
    grid = fig.subplots(len(models), len(metrics), squeeze=False)
    for row, model in zip(grid, models):
        for ax, metric in zip(row, metrics):
            result.plot_skew(metric, model, ax=ax)
    for ax in list(grid.flat)[:-1]:  # one legend, beside the last panel: the colours are the same in every panel
        ax.get_legend().remove()
    paths.append(save_figure(fig, out / "training_skew.png"))
    return paths


def write_figures(out_dir: str | Path, quick: bool) -> list[Path]:
    """Run the experiment (quick or full defaults) and write its table and figures into ``out_dir``.

    Example:
        >>> write_figures("figures", quick=True)  # doctest: +SKIP
    """
    if not isinstance(quick, (bool, np.bool_)):  # quick="no" is truthy; quick=None ran the full experiment
        raise SkewError(f"quick={quick!r:.40} must be True or False; pass e.g. quick=True")
    out = path_arg(out_dir, "write_figures", "directory", "'figures'")
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():  # checked now: the experiment runs for minutes before anything is written
        raise SkewError(f"cannot write figures to {str(out)!r}: {str(probe)!r} is a file, not a directory; "
                        "pass a directory path (created if missing)")
    return write_outputs(run_experiment(quick=bool(quick)), out)


def run_cli(args: argparse.Namespace) -> int:
    """Run ``skew train`` from parsed arguments; prints the Markdown table and the files written.

    Training runs on ``--threads`` CPU threads (default 1, as ``skew figures`` trains), restored after.
    """
    saved = torch.get_num_threads()
    torch.set_num_threads(int(getattr(args, "threads", 1) or 1))
    try:
        if getattr(args, "weight_decay", None) is not None or getattr(args, "auto_wd", False):
            return _run_wd_cli(args)
        return _run_cli(args)
    finally:
        torch.set_num_threads(saved)


def _run_cli(args: argparse.Namespace) -> int:
    """``skew train`` comparing init schemes: the table and the files written."""
    result = run_experiment(
        models=args.models, schemes=DEFAULT_SCHEMES if args.inits is None else args.inits, seeds=args.seeds, epochs=args.epochs,
        patience=args.patience, optimizer=args.optimizer, lr=args.lr, batch_size=args.batch_size,
        quick=args.quick, track_every=args.track_every, progress=True, data_seed=getattr(args, "seed", 0),
    )
    paths = write_outputs(result, args.out)
    print(result.to_markdown())
    for path in paths:
        print(f"wrote {path}")
    return 0


def _run_wd_cli(args: argparse.Namespace) -> int:
    """``skew train --weight-decay ... [--auto-wd]``: the sweep's table, verdicts and files."""
    from skew.train_wd import run_weight_decay, write_weight_decay_outputs

    result = run_weight_decay(
        args.weight_decay or (), auto=args.auto_wd, models=args.models,
        schemes=("default",) if args.inits is None else args.inits, seeds=args.seeds, epochs=args.epochs,
        patience=args.patience, optimizer=args.optimizer, lr=args.lr, batch_size=args.batch_size,
        quick=args.quick, oui_at=args.oui_at, progress=True,
    )
    paths = write_weight_decay_outputs(result, args.out)
    print(result.to_markdown())
    for path in paths:
        print(f"wrote {path}")
    return 0
