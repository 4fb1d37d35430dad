"""Does a balanced initialization train faster? The ``skew train`` experiment (SPEC §4, Table 3's metrics).

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

Protocol (deterministic): one fixed train/validation split (``digits_dataset(seed=0)``); for seed s,
``torch.manual_seed(s)`` before building the model (PyTorch's default init and dropout draw from it),
``skew.init.apply(model, scheme, generator=torch.Generator().manual_seed(s))`` (LSUV gets a batch of
256 training samples drawn with the same seed), and a separate ``torch.Generator().manual_seed(s)``
for the batch order, so every scheme sees the same batches for a given seed. The global random state
of the caller is restored afterwards.

Run time, measured on 2 otherwise idle CPU cores (``taskset -c 0,1``, torch 2.11): ``--quick`` (MLP,
6 schemes, 2 seeds, 10 epochs) about 13 s; the full run (MLP and CNN, 6 schemes, 3 seeds, 40 epochs)
156 s, about 80 % of it the CNN. On busy cores expect two to three times that.

Example:
    >>> res = run_experiment(("mlp",), ("default", "sinusoidal"), seeds=(0,), epochs=3)  # doctest: +SKIP
    >>> res.table[["model", "init", "max_val_acc_mean", "auc_mean"]]  # doctest: +SKIP
    >>> print(res.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from skew._io import atomic_write, save_figure, write_csv
from skew.epoch_oui import EpochOUI
from skew.errors import SkewError
from skew.tracker import Tracker
from skew.weight_decay import OUIWeightDecay

__all__ = [
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
    "run_weight_decay",
    "settling",
    "write_weight_decay_figures",
    "write_weight_decay_outputs",
    "WeightDecayResult",
]

#: The schemes compared by default (the paper's Table 3 set).
DEFAULT_SCHEMES = ("default", "xavier_uniform", "kaiming_normal", "orthogonal", "lsuv", "sinusoidal")
_OPTIMIZERS = ("sgd", "adam")
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


def early_stop(curve: Sequence[float], patience: int = 10) -> EarlyStop:
    """Max validation accuracy before a patience-``patience`` early stop (SPEC §4).

    Epochs are 1-based. An epoch *improves* when its accuracy is strictly above the best so far;
    training stops at the first epoch e with ``patience`` consecutive non-improving epochs ending
    at e, and the metric is the best accuracy up to e:

    .. math:: \\text{best} = \\max_{t \\le e} a_t, \\qquad
              e = \\min\\{t : t - \\arg\\max_{u \\le t} a_u = \\text{patience}\\}

    Example:
        >>> early_stop([0.5, 0.7, 0.6, 0.65, 0.9], patience=2)
        EarlyStop(best=0.7, best_epoch=2, stop_epoch=4)
    """
    values = [float(a) for a in curve]
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
    """Trapezoid area under a per-epoch accuracy curve, dx = 1 epoch (SPEC §4).

    .. math:: \\mathrm{AUC} = \\sum_{t=1}^{E-1} \\frac{a_t + a_{t+1}}{2}

    With accuracies as fractions the maximum is E − 1 (a curve at 1.0 throughout).

    Example:
        >>> auc([0.0, 1.0, 1.0])
        1.5
    """
    values = np.asarray(list(curve), dtype=float)
    if values.ndim != 1 or values.size == 0:
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
        ax.legend(fontsize="small", title="init")
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
        ax.legend(fontsize="small", title="init")
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
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise SkewError(f"lr={lr!r} must be a positive number; pass e.g. lr=0.01")


def _load_digits(model: str) -> tuple[torch.Tensor, ...]:
    from skew.data import digits_dataset
    from skew.models import input_shape

    shape = tuple(input_shape(model, **_MODEL_OPTIONS[model]))
    train, val = digits_dataset(shape=shape, seed=0)
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


def _train_one(model_name, scheme, seed, data, cfg) -> tuple[list[dict], pd.DataFrame]:
    from skew.init import apply, get_scheme
    from skew.models import build_model

    x_tr, y_tr, x_va, y_va = data
    n, bs = len(x_tr), cfg["batch_size"]
    steps_per_epoch = math.ceil(n / bs)
    every = cfg["track_every"] or steps_per_epoch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(model_name, **_MODEL_OPTIONS[model_name])
        init_gen = torch.Generator().manual_seed(seed)
        kwargs: dict[str, Any] = {"generator": init_gen}
        if get_scheme(scheme).needs_data:
            pick = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:_LSUV_SIZE]
            kwargs["data"] = x_tr[pick]
        apply(model, scheme, **kwargs)
        model.train()
        if cfg["optimizer"] == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        tracker = Tracker(model, x_va[:_PROBE_SIZE], every=every, thresholds=cfg["thresholds"])
        order = torch.Generator().manual_seed(seed)
        rows, step = [], 0
        for epoch in range(1, cfg["epochs"] + 1):
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
            rows.append({
                "model": model_name, "init": scheme, "seed": int(seed), "epoch": epoch,
                "train_loss": total / n, "val_acc": _accuracy(model, x_va, y_va),
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
) -> TrainResult:
    """Train each model on digits with each scheme and seed; return the metrics (SPEC §4).

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

    Example:
        >>> res = run_experiment(("mlp",), ("default", "sinusoidal"), (0,), epochs=2)  # doctest: +SKIP
        >>> res.runs[["init", "max_val_acc", "auc"]]  # doctest: +SKIP
    """
    preset = _QUICK if quick else _FULL
    models = tuple(preset["models"] if models is None else ([models] if isinstance(models, str) else models))
    schemes = tuple([schemes] if isinstance(schemes, str) else schemes)
    seeds = tuple(preset["seeds"] if seeds is None else seeds)
    epochs = preset["epochs"] if epochs is None else epochs
    if optimizer not in _OPTIMIZERS:
        raise SkewError(f"optimizer={optimizer!r} is not understood; use one of {', '.join(_OPTIMIZERS)}")
    lr = _DEFAULT_LR[optimizer] if lr is None else lr
    _check_config(models, schemes, seeds, epochs, patience, optimizer, lr, batch_size, track_every)
    cfg = {
        "models": models, "schemes": schemes, "seeds": tuple(int(s) for s in seeds), "epochs": epochs,
        "patience": patience, "optimizer": optimizer, "lr": float(lr), "batch_size": batch_size,
        "quick": bool(quick), "track_every": track_every, "thresholds": tuple(float(a) for a in thresholds),
    }
    from tqdm.auto import tqdm

    jobs = [(m, s, seed) for m in models for s in schemes for seed in cfg["seeds"]]
    curves, histories, data = [], [], {}
    for model_name, scheme, seed in tqdm(jobs, desc="skew train", disable=not progress, file=sys.stderr):
        if model_name not in data:
            data[model_name] = _load_digits(model_name)
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
    fig = Figure(figsize=(4.5 * len(metrics), 3.5 * len(models)), layout="constrained")
    grid = fig.subplots(len(models), len(metrics), squeeze=False)
    for row, model in zip(grid, models):
        for ax, metric in zip(row, metrics):
            result.plot_skew(metric, model, ax=ax)
    for ax in grid.flat[1:]:  # one legend is enough: the colours are the same in every panel
        ax.get_legend().remove()
    paths.append(save_figure(fig, out / "training_skew.png"))
    return paths


def write_figures(out_dir: str | Path, quick: bool) -> list[Path]:
    """Run the experiment (quick or full defaults) and write its table and figures into ``out_dir``.

    Example:
        >>> write_figures("figures", quick=True)  # doctest: +SKIP
    """
    return write_outputs(run_experiment(quick=quick), out_dir)


def _names(text: str) -> list[str]:
    return [t for t in (part.strip() for part in text.split(",")) if t]


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers, e.g. 0,1,2"
        ) from None


def _float_list(text: str) -> list[float]:
    try:
        return [float(t) for t in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers, e.g. 0,1e-4,1e-3,1e-2"
        ) from None


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register ``skew train`` on an ``argparse`` sub-parsers object; returns its parser."""
    p = subparsers.add_parser(
        "train",
        help="train models on digits per init scheme: max val accuracy and AUC, curves, skew over training",
        description=(
            "Train the built-in MLP and CNN on sklearn's digits with each initialization scheme and seed; "
            "write training_table.csv/.md (max validation accuracy with patience early stop, AUC; mean ± "
            "std over seeds), training_curves.png and training_skew.png."
        ),
    )
    p.add_argument("--models", type=_names, default=None, help="comma-separated, e.g. mlp,cnn (default both)")
    p.add_argument("--inits", type=_names, default=None,
                   help=f"comma-separated scheme names (default {','.join(DEFAULT_SCHEMES)}; "
                        "with --weight-decay/--auto-wd: default)")
    p.add_argument("--seeds", type=_int_list, default=None, help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epoch budget per run (default 40; 10 with --quick)")
    p.add_argument("--patience", type=int, default=10, help="early-stop patience in epochs (default 10)")
    p.add_argument("--optimizer", choices=_OPTIMIZERS, default="sgd", help="default sgd (momentum 0.9)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 0.01 for sgd, 1e-3 for adam)")
    p.add_argument("--batch-size", type=int, default=32, help="training batch size (default 32)")
    p.add_argument("--track-every", type=int, default=None,
                   help="Tracker period in steps (default: each epoch)")
    p.add_argument("--quick", action="store_true",
                   help="small run: mlp, seeds 0,1, 10 epochs (about 15 s)")
    p.add_argument("--out", default="figures", help="output directory (default figures)")
    wd = p.add_argument_group(
        "weight decay (OUI paper)",
        "with --weight-decay and/or --auto-wd, sweep the weight decay instead of comparing inits: write "
        "training_wd_table.csv/.md (final training OUI, max val accuracy, AUC per weight decay; whether the "
        "OUI band 0.6-0.8 picked the best one), training_wd_curves.png and training_wd_structure.png "
        "(pattern_change and weight_change: does the structure settle before the weights?)",
    )
    wd.add_argument("--weight-decay", type=_float_list, default=None, metavar="LIST",
                    help="comma-separated weight decays, e.g. 0,1e-4,1e-3,1e-2 (default 30 epochs, seeds 0,1)")
    wd.add_argument("--auto-wd", action="store_true",
                    help="also run the OUI authors' weight-decay controller (skew.train.OUIWeightDecay)")
    wd.add_argument("--oui-at", choices=("layers", "activations"), default=None,
                    help=f"where the training OUI is read (default {OUI_AT})")
    p.set_defaults(func=run_cli)
    return p


def run_cli(args: argparse.Namespace) -> int:
    """Run ``skew train`` from parsed arguments; prints the Markdown table and the files written."""
    if getattr(args, "weight_decay", None) is not None or getattr(args, "auto_wd", False):
        return _run_wd_cli(args)
    result = run_experiment(
        models=args.models, schemes=DEFAULT_SCHEMES if args.inits is None else args.inits, seeds=args.seeds, epochs=args.epochs,
        patience=args.patience, optimizer=args.optimizer, lr=args.lr, batch_size=args.batch_size,
        quick=args.quick, track_every=args.track_every, progress=True,
    )
    paths = write_outputs(result, args.out)
    print(result.to_markdown())
    for path in paths:
        print(f"wrote {path}")
    return 0


# -- weight decay: a sweep and the OUI controller (issue 13) -----------------------------------
#: Where the training OUI is read (EpochOUI's ``at``): layer outputs; the authors read nonlinearity
#: inputs ("activations").
OUI_AT = "layers"
#: The authors' guidance: a training OUI in this band goes with the best validation accuracy.
OUI_BAND = (0.6, 0.8)
_WD_QUICK = {"models": ("mlp",), "seeds": (0, 1), "epochs": 10}
_WD_FULL = {"models": ("mlp",), "seeds": (0, 1), "epochs": 30}
#: Structure (or weights) has settled from the first epoch after which its per-epoch change stays at
#: or below this fraction of its first epoch's change.
SETTLED = 0.1


@dataclass
class WeightDecayResult:
    """What :func:`run_weight_decay` measured.

    Attributes:
        curves: one row per (model, init, weight_decay, seed, epoch): ``wd`` (the weight decay used in
            that epoch), train_loss, train_oui (:class:`skew.epoch_oui.EpochOUI`, pairwise, mean
            over the epoch's training batches and the sites), val_acc, reset (the controller
            asked for a parameter reset after that epoch).
        runs: one row per (model, init, weight_decay, seed): final_oui (the last epoch's training
            OUI), max_val_acc (patience early stop), best_epoch, auc, final_wd.
        table: one row per (model, init, weight_decay): ``seeds``, mean and std over seeds of the
            runs' numbers, and ``in_band`` (mean final OUI within :data:`OUI_BAND`).
        history: Tracker histories (per layer, once per epoch on a validation probe) with
            ``pattern_change`` and ``weight_change``, with model, init, weight_decay, seed, epoch.
        config: the settings.

    ``weight_decay`` is a label: the value as written (``"0.001"``), or ``"auto"`` for the controller.
    """

    curves: pd.DataFrame
    runs: pd.DataFrame
    table: pd.DataFrame
    history: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        cfg = self.config
        return (f"WeightDecayResult(models={list(cfg.get('models', ()))}, schemes={list(cfg.get('schemes', ()))}, "
                f"weight_decays={list(cfg.get('labels', ()))}, seeds={list(cfg.get('seeds', ()))}, "
                f"epochs={cfg.get('epochs')})")

    def band_verdict(self) -> dict[tuple[str, str], str]:
        """Per (model, init), a sentence: did the OUI band 0.6–0.8 pick the best fixed weight decay?

        Among the fixed weight decays (not ``auto``), the best is the one with the highest mean max
        validation accuracy; the band picks it when the best is in the band and every weight decay
        in the band beats every one outside it. Computed from :attr:`table`.
        """
        lo, hi = OUI_BAND
        out = {}
        fixed = self.table[self.table["weight_decay"] != "auto"]
        for (model, init), part in fixed.groupby(["model", "init"], sort=False):
            part = part.set_index("weight_decay")
            top = part["max_val_acc_mean"].max()
            tied = [wd for wd, acc in part["max_val_acc_mean"].items() if acc == top]
            best = tied[0]
            inside = part[part["in_band"]]
            outside = part[~part["in_band"]]
            desc = ", ".join(
                f"{wd}: OUI {r.final_oui_mean:.2f}, acc {r.max_val_acc_mean:.4f}" for wd, r in part.iterrows()
            )
            best_text = (f"the best weight decay is {best} (max val acc {top:.4f})" if len(tied) == 1 else
                         f"the best weight decays are {' and '.join(tied)} (tied, max val acc {top:.4f})")
            if len(part) < 2:
                out[(model, init)] = f"only one weight decay was run; nothing to pick ({desc})."
            elif inside.empty:
                out[(model, init)] = (f"No: no weight decay kept the final training OUI in {lo}–{hi}; "
                                      f"{best_text} ({desc}).")
            elif set(tied) <= set(inside.index) and (outside.empty or inside["max_val_acc_mean"].min()
                                                     > outside["max_val_acc_mean"].max()):
                out[(model, init)] = (f"Yes: {best_text}, inside the band, and every weight decay in the band "
                                      f"beats every one outside it ({desc}).")
            elif set(tied) & set(inside.index):
                out[(model, init)] = (f"Partly: {best_text}, inside the band, but the band also holds "
                                      f"weight decays that do worse than some outside it ({desc}).")
            else:
                out[(model, init)] = (f"No: {best_text}, with final training OUI "
                                      f"{part.loc[best, 'final_oui_mean']:.2f}, outside the band ({desc}).")
            if len(tied) > 1 and set(tied) & set(inside.index) and not set(tied) <= set(inside.index):
                out[(model, init)] = (f"Partly: {best_text}; only some of them are inside the band ({desc}).")
        return out

    def structure_verdict(self) -> str:
        """A sentence: does the structure (activation patterns) settle before the weights here?

        Per epoch, pattern_change and weight_change are averaged over layers, seeds, schemes and weight
        decays; each *settles* from the first epoch after which it stays at or below
        :data:`SETTLED` × its first epoch's value. See :func:`settling`.
        """
        return _structure_sentence(self.history)

    def to_markdown(self) -> str:
        """The table (mean ± std over seeds), the protocol and the two verdicts, as Markdown."""
        cfg = self.config
        lo, hi = OUI_BAND
        lines = [
            "# Weight decay on digits: training OUI, validation accuracy and the OUI band",
            "",
            f"Models {', '.join(cfg['models'])}; inits {', '.join(cfg['schemes'])}; optimizer {cfg['optimizer']} "
            f"(lr {cfg['lr']:g}{', momentum 0.9' if cfg['optimizer'] == 'sgd' else ''}), batch size "
            f"{cfg['batch_size']}, {cfg['epochs']} epochs, seeds {', '.join(str(s) for s in cfg['seeds'])}. "
            f"Weight decays {', '.join(cfg['labels'])} (`auto`: the OUI authors' controller, "
            "skew.train.OUIWeightDecay, from 1e-4).",
            f"Final OUI: the pairwise OUI on the last epoch's training batches (first 8 samples of each batch, "
            f"all 28 pairs; at {cfg['oui_at']}), mean over the epoch and the sites. Max val acc: best validation "
            f"accuracy before a patience-{cfg['patience']} early stop. AUC: trapezoid area under the per-epoch "
            f"validation-accuracy curve (dx = 1 epoch). Final WD: the weight decay the last epoch trained with. Values "
            f"are mean ± std (ddof = 1) over seeds; in band: mean final OUI in {lo}–{hi}.",
            "",
            "| model | init | weight decay | final training OUI | max val acc | AUC | final WD | in band |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.table.to_dict("records"):
            lines.append(
                f"| {r['model']} | {r['init']} | {r['weight_decay']} | {_pm(r['final_oui_mean'], r['final_oui_std'], 3)} "
                f"| {_pm(r['max_val_acc_mean'], r['max_val_acc_std'])} | {_pm(r['auc_mean'], r['auc_std'], 3)} "
                f"| {r['final_wd_mean']:.3g} | {'yes' if r['in_band'] else 'no'} |"
            )
        lines += ["", f"**Did the OUI band ({lo}–{hi}) pick the best weight decay at this scale?**", ""]
        lines += [f"- {m}, {i}: {text}" for (m, i), text in self.band_verdict().items()]
        lines += ["", "**Does the structure settle before the weights on digits?** (SPEC §3b)", "",
                  self.structure_verdict()]
        return "\n".join(lines) + "\n"

    def plot_oui_acc(self, model: str | None = None, init: str | None = None, *, axes=None):
        """Training OUI (left) and validation accuracy (right) per epoch, one line per weight decay
        (mean over seeds), the OUI band shaded; returns the two Axes."""
        model = model or self.config["models"][0]
        init = init or self.config["schemes"][0]
        if axes is None:
            import matplotlib.pyplot as plt

            _, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        part = self.curves[(self.curves["model"] == model) & (self.curves["init"] == init)]
        for i, label in enumerate(self.config["labels"]):
            stats = part[part["weight_decay"] == label].groupby("epoch")[["train_oui", "val_acc"]].mean()
            style = {"color": f"C{i % 10}", "linewidth": 1.5, "label": label,
                     "linestyle": "--" if label == "auto" else "-"}
            axes[0].plot(stats.index, stats["train_oui"], **style)
            axes[1].plot(stats.index, stats["val_acc"], **style)
        axes[0].axhspan(*OUI_BAND, color="0.85", zorder=0, label="OUI band")
        axes[0].set_ylabel("training OUI (pairwise)")
        axes[1].set_ylabel("validation accuracy")
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.set_title(f"{model}, {init}")
        axes[0].legend(title="weight decay", fontsize="small")
        return axes

    def plot_structure(self, *, axes=None):
        """pattern_change and weight_change per epoch (mean over layers and seeds), one line per weight
        decay, log scale; returns the two Axes."""
        return _plot_structure(self.history, "weight_decay", list(self.config["labels"]), axes=axes)


def settling(values: Sequence[float], fraction: float = SETTLED) -> int | None:
    """Index of the first entry from which ``values`` stay ≤ ``fraction`` × the first finite entry.

    None when that never happens (or no finite entry). ``values`` are per-epoch changes, the first
    one the change over the first epoch.

    Example:
        >>> settling([0.2, 0.05, 0.01, 0.015, 0.01], fraction=0.1)
        2
        >>> settling([0.2, 0.1, 0.1]) is None
        True
    """
    v = np.asarray(list(values), dtype=float)
    finite = np.flatnonzero(np.isfinite(v))
    if finite.size == 0:
        return None
    ref = v[finite[0]]
    above = np.flatnonzero(~(v <= fraction * ref))
    start = 0 if above.size == 0 else int(above[-1]) + 1
    return None if start >= len(v) else start


def _epoch_changes(history: pd.DataFrame) -> pd.DataFrame:
    """Per epoch (> 0): mean over layers, then over everything else, of pattern_change and weight_change."""
    cols = ["pattern_change", "weight_change"]
    if history.empty or any(c not in history.columns for c in cols):
        return pd.DataFrame(columns=cols)
    hist = history[np.isfinite(history["pattern_change"]) & (history["epoch"] > 0)]
    return hist.groupby("epoch")[cols].mean()


def _structure_sentence(history: pd.DataFrame) -> str:
    per_epoch = _epoch_changes(history)
    if len(per_epoch) < 2:
        return "Not measured: the Tracker recorded fewer than two epochs of pattern and weight changes."
    epochs = per_epoch.index.to_numpy()
    pc, wc = per_epoch["pattern_change"].to_numpy(), per_epoch["weight_change"].to_numpy()
    sp, sw = settling(pc), settling(wc)
    last = (f"in the last epoch {100 * pc[-1]:.2f} % of the probe's activation states flipped "
            f"({100 * pc[-1] / pc[0]:.0f} % of the first epoch's {100 * pc[0]:.2f} %) while the weights moved by "
            f"{100 * wc[-1]:.2f} % ({100 * wc[-1] / wc[0]:.0f} % of the first epoch's {100 * wc[0]:.2f} %)")
    rule = f"settled: staying at or below {SETTLED:g} × the first epoch's change"
    if sp is not None and (sw is None or sp < sw):
        when_w = "never within the run" if sw is None else f"from epoch {epochs[sw]:g}"
        return (f"Yes: the structure settled from epoch {epochs[sp]:g}, the weights {when_w} ({rule}); {last}.")
    if sp is None and sw is None:
        ratio_p, ratio_w = pc[-1] / pc[0], wc[-1] / wc[0]
        lead = "faster" if ratio_p < ratio_w else "no faster"
        return (f"Not within this run: neither settled ({rule}); relative to its first epoch the structure's "
                f"change fell {lead} than the weights'; {last}.")
    when_p = "never within the run" if sp is None else f"from epoch {epochs[sp]:g}"
    return f"No: the weights settled from epoch {epochs[sw]:g}, the structure {when_p} ({rule}); {last}."


def _plot_structure(history: pd.DataFrame, by: str, labels: list, *, axes=None):
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, label in enumerate(labels):
        part = history[history[by] == label]
        per_epoch = _epoch_changes(part)
        for ax, col in zip(axes, ("pattern_change", "weight_change")):
            ax.plot(per_epoch.index, per_epoch[col], color=f"C{i % 10}", linewidth=1.5, label=str(label),
                    linestyle="--" if label == "auto" else "-")
    axes[0].set_ylabel("pattern_change (fraction of states flipped)")
    axes[1].set_ylabel("weight_change  ‖ΔW‖ / ‖W‖")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
    axes[0].legend(title=by.replace("_", " "), fontsize="small")
    axes[0].set_title("structure: activation states on the probe")
    axes[1].set_title("weights")
    return axes


def _wd_label(value: float) -> str:
    return "0" if value == 0 else f"{value:g}"


def _build(model_name: str, scheme: str, seed: int, x_tr: torch.Tensor) -> nn.Module:
    """The model of one run, initialized exactly as :func:`run_experiment` does (global RNG forked by the caller)."""
    from skew.init import apply, get_scheme
    from skew.models import build_model

    torch.manual_seed(seed)
    model = build_model(model_name, **_MODEL_OPTIONS[model_name])
    kwargs: dict[str, Any] = {"generator": torch.Generator().manual_seed(seed)}
    if get_scheme(scheme).needs_data:
        pick = torch.randperm(len(x_tr), generator=torch.Generator().manual_seed(seed))[:_LSUV_SIZE]
        kwargs["data"] = x_tr[pick]
    apply(model, scheme, **kwargs)
    return model


def _train_wd(model_name, scheme, seed, wd, data, cfg) -> tuple[list[dict], pd.DataFrame]:
    """One run with a fixed weight decay (a float) or the controller (wd = None)."""
    x_tr, y_tr, x_va, y_va = data
    n, bs, epochs = len(x_tr), cfg["batch_size"], cfg["epochs"]
    steps_per_epoch = math.ceil(n / bs)
    label = "auto" if wd is None else _wd_label(wd)
    with torch.random.fork_rng(devices=[]):
        model = _build(model_name, scheme, seed, x_tr)
        model.train()
        start_wd = 0.0 if wd is None else float(wd)
        if cfg["optimizer"] == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=0.9, weight_decay=start_wd)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=start_wd)

        def reset() -> None:  # the controller's parameter reset: the run's initial weights, fresh optimizer
            with torch.random.fork_rng(devices=[]):
                fresh = _build(model_name, scheme, seed, x_tr)
            model.load_state_dict(fresh.state_dict())
            opt.state.clear()

        ctl = None if wd is not None else OUIWeightDecay(opt, epochs=epochs, reset=reset)
        tracker = Tracker(model, x_va[:_PROBE_SIZE], every=steps_per_epoch, thresholds=cfg["thresholds"])
        meter = EpochOUI(model, at=cfg["oui_at"])
        order = torch.Generator().manual_seed(seed)
        rows, step = [], 0
        try:
            for epoch in range(1, epochs + 1):
                used = opt.param_groups[0]["weight_decay"]
                perm = torch.randperm(n, generator=order)
                total = 0.0
                for begin in range(0, n, bs):
                    tracker.step(step)
                    idx = perm[begin : begin + bs]
                    loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                    step += 1
                oui = meter.epoch_end()
                train_loss = total / n
                if ctl is not None:
                    ctl.step(oui, train_loss)
                rows.append({
                    "model": model_name, "init": scheme, "weight_decay": label, "seed": int(seed), "epoch": epoch,
                    "wd": float(used), "train_loss": train_loss, "train_oui": oui,
                    "val_acc": _accuracy(model, x_va, y_va), "reset": bool(ctl is not None and ctl.reset_requested),
                })
            if tracker.steps[-1] != step:
                tracker.measure(step)
        finally:
            meter.close()
    rows[-1]["final_wd"] = rows[-1]["wd"]  # the weight decay the last epoch trained with
    hist = tracker.history
    hist.insert(0, "epoch", hist["step"] / steps_per_epoch)
    for col, value in (("seed", int(seed)), ("weight_decay", label), ("init", scheme), ("model", model_name)):
        hist.insert(0, col, value)
    return rows, hist


def _summarise_wd(curves: pd.DataFrame, cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    keys = ["model", "init", "weight_decay", "seed"]
    records = []
    for key, part in curves.groupby(keys, sort=False):
        part = part.sort_values("epoch")
        acc = part["val_acc"].to_numpy()
        stop = early_stop(acc, cfg["patience"])
        records.append({
            **dict(zip(keys, key)), "final_oui": float(part["train_oui"].iloc[-1]), "max_val_acc": stop.best,
            "best_epoch": stop.best_epoch, "auc": auc(acc), "final_wd": float(part["final_wd"].iloc[-1]),
        })
    runs = pd.DataFrame(records)
    metrics = ["final_oui", "max_val_acc", "auc", "best_epoch", "final_wd"]
    grouped = runs.groupby(keys[:3], sort=False)
    table = grouped[metrics].agg(["mean", "std"])
    table.columns = [f"{c}_{stat}" for c, stat in table.columns]
    table.insert(0, "seeds", grouped.size())
    table = table.reset_index()
    lo, hi = OUI_BAND
    table["in_band"] = table["final_oui_mean"].between(lo, hi)
    return runs, table


def run_weight_decay(
    weight_decays: Sequence[float] = (0.0, 1e-4, 1e-3, 1e-2),
    *,
    auto: bool = False,
    models: Sequence[str] | None = None,
    schemes: Sequence[str] = ("default",),
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    patience: int = 10,
    optimizer: str = "sgd",
    lr: float | None = None,
    batch_size: int = 32,
    quick: bool = False,
    oui_at: str | None = None,
    thresholds: Sequence[float] = (0.1, 0.3),
    progress: bool = False,
) -> WeightDecayResult:
    """Train on digits with each fixed weight decay (and the OUI controller if ``auto``); see
    :class:`WeightDecayResult`.

    Each run records, per epoch, the training OUI (:class:`skew.epoch_oui.EpochOUI` at ``oui_at``,
    default :data:`OUI_AT`), the training loss and the validation accuracy, and a Tracker measures
    ``pattern_change`` and ``weight_change`` once per epoch on the first 256 validation samples.
    The protocol (split, seeds, batch order) is :func:`run_experiment`'s, and every weight decay
    sees the same initial weights and batches for a given seed. The global random state is
    restored afterwards. Defaults: MLP, seeds (0, 1), 30 epochs; 10 epochs if ``quick``.

    Example:
        >>> res = run_weight_decay((0.0, 1e-3), auto=True, seeds=(0,), epochs=3)  # doctest: +SKIP
        >>> print(res.to_markdown())  # doctest: +SKIP
    """
    preset = _WD_QUICK if quick else _WD_FULL
    models = tuple(preset["models"] if models is None else ([models] if isinstance(models, str) else models))
    schemes = tuple([schemes] if isinstance(schemes, str) else schemes)
    seeds = tuple(preset["seeds"] if seeds is None else seeds)
    epochs = preset["epochs"] if epochs is None else epochs
    if optimizer not in _OPTIMIZERS:
        raise SkewError(f"optimizer={optimizer!r} is not understood; use one of {', '.join(_OPTIMIZERS)}")
    lr = _DEFAULT_LR[optimizer] if lr is None else lr
    _check_config(models, schemes, seeds, epochs, patience, optimizer, lr, batch_size, None)
    try:
        wds = [float(w) for w in weight_decays]
    except (TypeError, ValueError):
        raise SkewError(f"weight_decays={weight_decays!r} must be numbers, e.g. (0, 1e-4, 1e-3)") from None
    if any(not math.isfinite(w) or w < 0 for w in wds):
        raise SkewError(f"weight_decays={weight_decays!r} must be finite and >= 0, e.g. (0, 1e-4, 1e-3)")
    labels = [_wd_label(w) for w in wds]
    if len(set(labels)) != len(labels):
        raise SkewError(f"weight_decays {wds} repeat a value; list each once")
    if not wds and not auto:
        raise SkewError("nothing to run: pass weight decays (e.g. 0,1e-4,1e-3) and/or auto=True")
    oui_at = OUI_AT if oui_at is None else oui_at
    if oui_at not in ("layers", "activations"):
        raise SkewError(f"oui_at={oui_at!r} is not understood; use layers or activations")
    cfg = {
        "models": models, "schemes": schemes, "seeds": tuple(int(s) for s in seeds), "epochs": epochs,
        "patience": patience, "optimizer": optimizer, "lr": float(lr), "batch_size": batch_size,
        "quick": bool(quick), "thresholds": tuple(float(a) for a in thresholds), "oui_at": oui_at,
        "weight_decays": tuple(wds), "auto": bool(auto), "labels": tuple(labels + (["auto"] if auto else [])),
    }
    from tqdm.auto import tqdm

    settings = [*wds, *([None] if auto else [])]
    jobs = [(m, s, w, seed) for m in models for s in schemes for w in settings for seed in cfg["seeds"]]
    curves, histories, data = [], [], {}
    for model_name, scheme, wd, seed in tqdm(jobs, desc="skew train (weight decay)", disable=not progress,
                                             file=sys.stderr):
        if model_name not in data:
            data[model_name] = _load_digits(model_name)
        rows, hist = _train_wd(model_name, scheme, seed, wd, data[model_name], cfg)
        curves.extend(rows)
        histories.append(hist)
    curves_df = pd.DataFrame(curves)
    curves_df["final_wd"] = curves_df.groupby(["model", "init", "weight_decay", "seed"], sort=False)[
        "final_wd"].transform("last")
    runs, table = _summarise_wd(curves_df, cfg)
    curves_df = curves_df.drop(columns="final_wd")
    return WeightDecayResult(curves_df, runs, table, pd.concat(histories, ignore_index=True), cfg)


def write_weight_decay_outputs(result: WeightDecayResult, out_dir: str | Path) -> list[Path]:
    """Write training_wd_table.csv/.md, training_wd_curves.png and training_wd_structure.png.

    Atomic writes with a fixed float format: equal results give byte-identical files.

    Example:
        >>> write_weight_decay_outputs(run_weight_decay(quick=True, auto=True), "figures")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    out = Path(out_dir)
    paths = [
        write_csv(result.table, out / "training_wd_table.csv", float_format=_FLOAT),
        atomic_write(out / "training_wd_table.md",
                     lambda p: p.write_text(result.to_markdown(), encoding="utf-8")),
    ]
    pairs = [(m, s) for m in result.config["models"] for s in result.config["schemes"]]
    fig = Figure(figsize=(10, 3.8 * len(pairs)), layout="constrained")
    grid = fig.subplots(len(pairs), 2, squeeze=False)
    for axes, (model, scheme) in zip(grid, pairs):
        result.plot_oui_acc(model, scheme, axes=axes)
    paths.append(save_figure(fig, out / "training_wd_curves.png"))
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    result.plot_structure(axes=fig.subplots(1, 2))
    paths.append(save_figure(fig, out / "training_wd_structure.png"))
    return paths


def write_weight_decay_figures(out_dir: str | Path, quick: bool) -> list[Path]:
    """The figure catalogue's weight-decay sweep: MLP, default init, weight decays 0, 1e-4, 1e-3, 1e-2 and
    the controller, seeds 0 and 1, 30 epochs (quick: 0, 1e-3, 1e-2 and the controller, seed 0, 4 epochs).

    Example:
        >>> write_weight_decay_figures("figures", quick=True)  # doctest: +SKIP
    """
    if quick:
        result = run_weight_decay((0.0, 1e-3, 1e-2), auto=True, seeds=(0,), epochs=4)
    else:
        result = run_weight_decay((0.0, 1e-4, 1e-3, 1e-2), auto=True, seeds=(0, 1), epochs=30)
    return write_weight_decay_outputs(result, out_dir)


def _run_wd_cli(args: argparse.Namespace) -> int:
    """``skew train --weight-decay ... [--auto-wd]``: the sweep's table, verdicts and files."""
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
