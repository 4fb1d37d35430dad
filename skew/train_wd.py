"""The weight-decay experiment of ``skew train --weight-decay/--auto-wd`` (issue 13; docs/oui.md).

Trains the digits models of :mod:`skew.train` with several fixed weight decays and, with ``auto``,
with the OUI authors' controller (:class:`skew.weight_decay.OUIWeightDecay`), recording per epoch
the training OUI (:class:`skew.epoch_oui.EpochOUI`: pairwise, on the training batches), the
training loss and the validation accuracy, and, once per epoch on a fixed validation probe,
each layer's ``pattern_change`` and ``weight_change`` (:class:`skew.Tracker`). It answers two
questions in plain sentences: did the OUI band 0.6–0.8 pick the best weight decay at this scale,
and does the structure (activation patterns) settle before the weights?

Protocol: :func:`skew.train.run_experiment`'s (one fixed split; for seed s the same initial
weights and batch order for every weight decay). The names are also reachable as
``skew.train.run_weight_decay`` etc.

Example:
    >>> res = run_weight_decay((0.0, 1e-3), auto=True, seeds=(0,), epochs=3)  # doctest: +SKIP
    >>> print(res.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from skew._io import atomic_write, save_figure, write_csv
from skew.epoch_oui import EpochOUI
from skew.errors import SkewError
from skew.seeding import child_seed, generator
from skew.tracker import Tracker
from skew.train import (
    _DEFAULT_LR,
    _FLOAT,
    _OPTIMIZERS,
    _PROBE_SIZE,
    _accuracy,
    _build_run_model,
    _check_config,
    _load_digits,
    _optimizer,
    _pm,
    _train_epoch,
    auc,
    early_stop,
)
from skew.weight_decay import OUIWeightDecay

__all__ = [
    "OUI_AT",
    "OUI_BAND",
    "WeightDecayResult",
    "run_weight_decay",
    "settling",
    "write_weight_decay_figures",
    "write_weight_decay_outputs",
]

#: Where the training OUI is read (EpochOUI's ``at``): the nonlinearity inputs, as the OUI authors do
#: ("activations"); "layers" reads the Linear/Conv outputs instead.
OUI_AT = "activations"
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
            elif outside.empty:
                out[(model, init)] = (f"Not decisive: every weight decay kept the final training OUI in {lo}–{hi}, "
                                      f"so the band cannot choose among them; {best_text} ({desc}).")
            elif inside.empty:
                out[(model, init)] = (f"No: no weight decay kept the final training OUI in {lo}–{hi}; "
                                      f"{best_text} ({desc}).")
            elif set(tied) <= set(inside.index) and (inside["max_val_acc_mean"].min()
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

        Per epoch, pattern_change and weight_change are averaged over layers, seeds, schemes and the
        fixed weight decays (the controller's resets would restart both); each *settles* from the
        first epoch after which it stays at or below :data:`SETTLED` × its first epoch's value.
        See :func:`settling`.
        """
        hist = self.history
        if "weight_decay" in hist.columns:
            hist = hist[hist["weight_decay"] != "auto"]
        return _structure_sentence(hist)

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
        lines += ["", "**Does the structure settle before the weights on digits?** (docs/oui.md; pattern_change "
                  "and weight_change on the probe, mean over layers, seeds and the fixed weight decays)", "",
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
    if sp == sw:
        return (f"Not before: structure and weights settled together, from epoch {epochs[sp]:g} ({rule}); "
                f"{last}.")
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


def _train_wd(model_name, scheme, seed, wd, data, cfg) -> tuple[list[dict], pd.DataFrame]:
    """One run with a fixed weight decay (a float) or the controller (wd = None)."""
    x_tr, y_tr, x_va, y_va = data
    n, bs, epochs = len(x_tr), cfg["batch_size"], cfg["epochs"]
    steps_per_epoch = math.ceil(n / bs)
    label = "auto" if wd is None else _wd_label(wd)
    with torch.random.fork_rng(devices=[]):
        model = _build_run_model(model_name, scheme, seed, x_tr)
        torch.manual_seed(child_seed(seed, "dropout"))
        model.train()
        start_wd = 0.0 if wd is None else float(wd)
        opt = _optimizer(model, cfg, start_wd)

        def reset() -> None:  # the controller's parameter reset: the run's initial weights, fresh optimizer
            with torch.random.fork_rng(devices=[]):
                fresh = _build_run_model(model_name, scheme, seed, x_tr)
            model.load_state_dict(fresh.state_dict())
            opt.state.clear()

        ctl = None if wd is not None else OUIWeightDecay(opt, epochs=epochs, reset=reset)
        tracker = Tracker(model, x_va[:_PROBE_SIZE], every=steps_per_epoch, thresholds=cfg["thresholds"])
        meter = EpochOUI(model, at=cfg["oui_at"])
        order = generator(seed, "shuffle")
        rows, step = [], 0
        try:
            for epoch in range(1, epochs + 1):
                used = opt.param_groups[0]["weight_decay"]
                train_loss, step = _train_epoch(model, opt, x_tr, y_tr, bs, order, tracker, step)
                oui = meter.epoch_end()
                val_acc = _accuracy(model, x_va, y_va)  # before the controller may reset the parameters
                if ctl is not None:
                    ctl.step(oui, train_loss)
                rows.append({
                    "model": model_name, "init": scheme, "weight_decay": label, "seed": int(seed), "epoch": epoch,
                    "wd": float(used), "train_loss": train_loss, "train_oui": oui, "val_acc": val_acc,
                    "reset": bool(ctl is not None and ctl.reset_requested),
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
    table = result.table.copy()
    for col in ("final_wd_mean", "final_wd_std"):  # weight decays span many decades: 4 significant digits
        table[col] = [("" if not np.isfinite(v) else f"{v:.4g}") for v in table[col]]
    paths = [
        write_csv(table, out / "training_wd_table.csv", float_format=_FLOAT),
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
