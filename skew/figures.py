"""The figure catalogue: regenerate every reference experiment of SPEC §4 into one directory.

:func:`generate` writes, with fixed seeds and byte-identical output on a second run:

- ``weights_sinusoidal.png``: histogram (arcsine density overlaid) and heatmap of a 101×101 sinusoidal matrix
  (paper Fig. 2-3), and ``weights_schemes.png``: heatmaps of the same shape under other schemes;
- ``rowsum_hist_fig5.png``: Fig. 5, the stacked density histogram of row sums S, skewed (α = 0.3) vs not,
  for ReLU → Linear(n→n, bias=False) with Glorot weights on N(0,1) inputs, λ marked;
- ``skew_vs_rowsum.png``: Theorem 1, measured p against S with the predicted curve;
- ``activation_states.png`` / ``activation_states_last.png``: Fig. 4 rasters, one panel per scheme;
- ``table1.csv`` / ``table1.md`` / ``skew_by_depth.png``: Table 1 (3-layer bias-free ReLU MLP);
- ``theory_curve.png``: fraction skewed vs α, measured and from the corollary, for four input laws;
- ``architectures*.{png,csv,md}``: torchvision models at initialization on digits;
- the training experiment's table and figures (``skew.train.write_figures``);
- ``README.md``: an index of every file, what it shows and its settings.

The catalogue (with the CLI) is the only place in skew that creates and saves Figures.

Example:
    >>> from skew.figures import generate
    >>> paths = generate("figures", quick=True)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from skew._io import atomic_write, save_figure, write_csv
from skew.compare import AS_BUILT, Comparison, compare

__all__ = ["Entry", "generate"]

#: Table 1's schemes and the names the paper prints for them.
TABLE1_SCHEMES: dict[str, str] = OrderedDict(
    [("xavier_uniform", "Glorot"), ("kaiming_normal", "He"), ("orthogonal", "Orthogonal"), ("lsuv", "LSUV"),
     ("sinusoidal", "Sinusoidal")]
)
#: Schemes compared on the torchvision architectures: ``as_built`` is torchvision's own constructor init
#: (He normal fan_out for ResNet convs, ...). LSUV is left out: one forward pass per try per layer.
ARCH_SCHEMES: tuple[str, ...] = (AS_BUILT, "xavier_uniform", "kaiming_normal", "orthogonal", "sinusoidal")
THEORY_LAWS: tuple[str, ...] = ("gaussian", "relu-gaussian", "uniform", "relu-uniform")


@dataclass
class Entry:
    """One file of the catalogue, as listed in figures/README.md."""

    path: Path
    what: str
    settings: str = ""


@dataclass
class _Config:
    quick: bool
    width: int = field(init=False)
    samples: int = field(init=False)
    batch: int = field(init=False)
    theory_n: int = field(init=False)
    theory_samples: int = field(init=False)
    arch: dict = field(init=False)

    def __post_init__(self):
        if self.quick:
            self.width, self.samples, self.batch = 128, 1024, 256
            self.theory_n, self.theory_samples = 128, 1024
            self.arch = {"resnet18": dict(shape=(3, 32, 32), batch_size=4)}
        else:
            self.width, self.samples, self.batch = 1000, 10_000, 1000
            self.theory_n, self.theory_samples = 1000, 4000
            self.arch = {
                "resnet50": dict(shape=(3, 128, 128), batch_size=8),
                "mobilenet_v3_small": dict(shape=(3, 128, 128), batch_size=8),
                "efficientnet_v2_s": dict(shape=(3, 128, 128), batch_size=8),
                "vit_b_16": dict(shape=(3, 224, 224), batch_size=4),
            }


# ---- helpers ---------------------------------------------------------------------------------------
def _figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _text(text: str, path: Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _markdown_table(frame: pd.DataFrame, floatfmt: str | dict[str, str] = "{:.1f}") -> str:
    """A GitHub Markdown table (no tabulate dependency); ``floatfmt`` may map column -> format."""

    def cell(column: str, v) -> str:
        if isinstance(v, (float, np.floating)):
            fmt = floatfmt.get(column, "{:.1f}") if isinstance(floatfmt, dict) else floatfmt
            return "–" if not np.isfinite(v) else fmt.format(v)
        return str(v)

    columns = [str(c) for c in frame.columns]
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"
    rows = ["| " + " | ".join(cell(c, v) for c, v in zip(columns, row)) + " |"
            for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def _seeded(fn: Callable):
    """Run ``fn`` with torch's global RNG seeded to 0 and restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        np_state = np.random.get_state()
        np.random.seed(0)
        try:
            return fn()
        finally:
            np.random.set_state(np_state)


def _gaussian_batches(n_samples: int, batch: int, dim: int, law: str = "gaussian", seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_samples // batch):
        x = torch.randn(batch, dim, generator=g) if "gaussian" in law else torch.rand(batch, dim, generator=g) * 2 - 1
        out.append(x.clamp_min(0.0) if law.startswith("relu-") else x)
    return out


# ---- experiments -----------------------------------------------------------------------------------
def _weights(out: Path, cfg: _Config) -> list[Entry]:
    import skew.init
    from skew import plot

    def matrix(scheme: str, m: int = 101, n: int = 101) -> torch.Tensor:
        layer = nn.Linear(n, m, bias=False)
        data = torch.randn(64, n, generator=torch.Generator().manual_seed(0)) if scheme == "lsuv" else None
        skew.init.apply(layer, scheme, data=data, generator=torch.Generator().manual_seed(0))
        return layer.weight.detach().clone()

    w = matrix("sinusoidal")
    fig, axes = _figure(2, 1, width=4.8, height=4.0)
    plot.weight_hist(w, ax=axes[0, 0], bins=30, arcsine=True)
    plot.weight_heatmap(w, ax=axes[0, 1])
    fig.suptitle("Sinusoidal initialization, 101×101 matrix")
    entries = [Entry(save_figure(fig, out / "weights_sinusoidal.png"),
                     "Sinusoidal weights (paper Fig. 2-3): histogram with the arcsine density overlaid, and the "
                     "heatmap (diverging colormap).",
                     "101×101, Glorot-variance amplitude, 30 bins")]
    schemes = ("xavier_uniform", "orthogonal", "idinit", "arcsine", "sinusoidal")
    fig, axes = _figure(len(schemes), 1, width=3.6, height=3.4)
    for ax, scheme in zip(axes[0], schemes):
        plot.weight_heatmap(matrix(scheme), ax=ax)
        ax.set_title(scheme)
    fig.suptitle("Weight matrices at initialization, 101×101 (seed 0)")
    entries.append(Entry(save_figure(fig, out / "weights_schemes.png"),
                         "Heatmaps of a 101×101 matrix under Glorot, orthogonal, IDInit, arcsine (random values "
                         "with the sinusoidal distribution) and sinusoidal.", "seed 0"))
    return entries


def _table1(out: Path, cfg: _Config) -> tuple[list[Entry], Comparison]:
    from skew import plot, theory
    from skew.models import build_model

    loader = _gaussian_batches(cfg.samples, cfg.batch, cfg.width)
    cmp = compare(lambda: build_model("mlp", depth=3, width=cfg.width), loader, list(TABLE1_SCHEMES), seeds=(0,),
                  thresholds=(0.1, 0.3), progress=False)
    settings = (f"3 bias-free Linear({cfg.width}→{cfg.width}) layers, ReLU before each; {cfg.samples} N(0,1) "
                "samples; count estimator; seed 0")
    layers = cmp.layers
    rows = []
    for scheme, label in TABLE1_SCHEMES.items():
        sub = layers[layers["init"] == scheme].set_index("layer")
        row = {"scheme": label, "init": scheme}
        for i, name in enumerate(cmp.layer_order, start=1):
            for a in (0.1, 0.3):
                row[f"layer {i} α={a:g} (%)"] = 100.0 * float(sub.loc[name, f"skewed_{a:g}"])
        last = cmp.layer_order[-1]
        row["OUI final layer (pairwise)"] = float(sub.loc[last, "oui_pairwise"])
        row["OUI final layer (batch)"] = float(sub.loc[last, "oui_batch"])
        rows.append(row)
    table = pd.DataFrame(rows)
    mu, sigma = theory.input_moments("relu-gaussian")
    expected = {a: 100.0 * float(theory.expected_skewed_fraction(a, mu, sigma)) for a in (0.1, 0.3)}
    entries = [Entry(write_csv(table, out / "table1.csv"),
                     "Table 1 replication: % skewed neurons per layer at α = 0.1 and 0.3 per scheme, and the "
                     "final layer's OUI (pairwise: 28 pairs of 8 samples; batch).", settings)]
    md = [
        "# Table 1 replication: skewed neurons by scheme and depth",
        "",
        f"Settings: {settings}. A neuron is skewed with degree α when |P(Z > 0) − 1/2| > α, p counted over the "
        "samples; degenerate neurons (std Z ≈ 0) are left out of the fraction.",
        "",
        _markdown_table(table.drop(columns="init"), "{:.2f}").rstrip("\n"),
        "",
        f"Corollary (first layer, any i.i.d. zero-mean scheme, ReLU(N(0,1)) inputs): {expected[0.1]:.1f}% at "
        f"α = 0.1 and {expected[0.3]:.1f}% at α = 0.3.",
        "",
        "Reading the table: a bias-free ReLU network is blind to a positive rescaling of a layer, so LSUV "
        "(orthogonal, then each layer divided by its output std) has exactly orthogonal's skew. Sinusoidal's "
        "square layers have two zero rows (i = n/2 and i = n; degenerate neurons, left out of the fractions) "
        "and every other row sums to ~0, so no neuron is skewed at the first layer; deeper layers stay "
        "balanced too. OUI: the final layer's pairwise OUI (28 pairs of 8 samples) and batch OUI.",
        "",
    ]
    entries.append(Entry(_text("\n".join(md), out / "table1.md"), "Table 1 as Markdown, with the corollary's "
                         "first-layer prediction.", settings))
    fig, axes = _figure(2, 1, width=4.8, height=3.8)
    for ax, a in zip(axes[0], (0.1, 0.3)):
        plot.skew_by_depth(cmp, alpha=a, hue="init", ax=ax)
        ax.set_title(f"skewed: |p − ½| > {a:g} (LSUV's line lies on orthogonal's)", fontsize="medium")
    fig.suptitle("Skewed neurons by depth, Table 1 MLP (count estimator of p)")
    entries.append(Entry(save_figure(fig, out / "skew_by_depth.png"),
                         "Fraction of skewed neurons per layer for each scheme, α = 0.1 and α = 0.3.", settings))
    return entries, cmp


def _from_table1(out: Path, cmp: Comparison, cfg: _Config) -> list[Entry]:
    from skew import plot

    first, last = cmp.layer_order[0], cmp.layer_order[-1]
    glorot = cmp.reports[("xavier_uniform", 0)]
    settings = (f"ReLU → Linear({cfg.width}→{cfg.width}, bias=False), Glorot uniform, {cfg.samples} N(0,1) "
                "samples (first layer of the Table 1 MLP)")
    entries = []
    fig, axes = _figure(1, 1, width=6.0, height=4.2)
    ax = plot.rowsum_hist(glorot, layer=first, alpha=0.3, binwidth=0.2, ax=axes[0, 0])
    ax.set_xlim(-4.5, 4.5)
    fig.suptitle(f"Fig. 5: ReLU → Linear({cfg.width}→{cfg.width}, bias=False), Glorot uniform, N(0,1) inputs",
                 fontsize="medium")
    entries.append(Entry(save_figure(fig, out / "rowsum_hist_fig5.png"),
                         "Fig. 5: stacked density histogram of the row sums S, skewed (α = 0.3) vs not, with the "
                         "threshold ±λ of Theorem 1 marked.", settings + "; bin width 0.2, x ∈ [−4.5, 4.5]"))
    fig, axes = _figure(1, 1, width=6.0, height=4.2)
    plot.skew_vs_rowsum(glorot, layer=first, ax=axes[0, 0])
    fig.suptitle(f"Theorem 1: ReLU → Linear({cfg.width}→{cfg.width}, bias=False), Glorot uniform, N(0,1) inputs",
                 fontsize="medium")
    entries.append(Entry(save_figure(fig, out / "skew_vs_rowsum.png"),
                         "Theorem 1: each neuron's measured P(Z > 0) against its row sum S, with the predicted "
                         "curve Φ(μS/(σ‖W‖)).", settings))
    for layer, name, label in ((first, "activation_states.png", "first"), (last, "activation_states_last.png",
                                                                           "last")):
        fig, axes = _figure(len(TABLE1_SCHEMES), 1, width=3.4, height=3.6)
        for i, (ax, (scheme, title)) in enumerate(zip(axes[0], TABLE1_SCHEMES.items())):
            plot.activation_states(cmp.reports[(scheme, 0)], layer=layer, ax=ax)
            ax.set_title(f"{title} ({layer})")
            if i and ax.get_legend() is not None:
                ax.get_legend().remove()
        fig.suptitle(f"Activation states, {label} layer of the Table 1 MLP (white = active)")
        entries.append(Entry(save_figure(fig, out / name),
                             f"Fig. 4: samples × neurons raster of the {label} layer ({layer}) per scheme; vertical "
                             "bands are skewed neurons.", "Table 1 MLP, up to 250 × 250 subsample"))
    return entries


def _theory(out: Path, cfg: _Config) -> list[Entry]:
    import skew.init
    from skew import plot
    from skew.analyzer import report

    n = cfg.theory_n
    fig, axes = _figure(2, 2, width=5.0, height=3.8)
    for ax, law in zip(axes.ravel(), THEORY_LAWS):
        layer = nn.Linear(n, n, bias=False)
        skew.init.apply(layer, "xavier_uniform", generator=torch.Generator().manual_seed(0))
        loader = _gaussian_batches(cfg.theory_samples, min(cfg.theory_samples, 1000), n, law=law, seed=1)
        rep = report(layer, loader, thresholds=(0.1, 0.3), progress=False)
        plot.skew_fraction_vs_alpha(rep, laws=[law], ax=ax)
        ax.set_title(f"inputs {law}")
    fig.suptitle(f"Fraction of skewed neurons vs α: measured (Linear({n}→{n}), Glorot) vs corollary")
    return [Entry(save_figure(fig, out / "theory_curve.png"),
                  "Fraction of skewed neurons against the threshold α, measured (count estimator) and from the "
                  "corollary 2(1 − Φ((σ/|μ|)Φ⁻¹(1/2 + α))), for N(0,1), ReLU(N(0,1)), U(−1,1) and ReLU(U(−1,1)) "
                  "inputs (zero-mean inputs give no skew).",
                  f"one Linear({n}→{n}, bias=False) layer, Glorot uniform, {cfg.theory_samples} samples per law")]


def _architectures(out: Path, cfg: _Config) -> list[Entry]:
    from skew import plot
    from skew.data import build_data
    from skew.models import build_model

    results: dict[str, Comparison] = {}
    for name, opts in cfg.arch.items():
        loader = build_data("digits", shape=opts["shape"], batch_size=opts["batch_size"], batches=1, seed=0)
        results[name] = compare(partial(build_model, name, image_size=opts["shape"][-1]), loader, list(ARCH_SCHEMES), seeds=(0,),
                                thresholds=(0.1, 0.3), progress=False)
    sizes = "; ".join(f"{k}: {v['batch_size']} digits images at {'×'.join(map(str, v['shape']))}"
                      for k, v in cfg.arch.items())
    settings = (f"{sizes}; eval mode; pre-activation of every Linear/Conv; seed 0; as_built = torchvision's own "
                "constructor init (no scheme applied)")
    entries = []
    rows, layer_frames = [], []
    for name, cmp in results.items():
        nd = cmp.neurons
        keep = ~nd["degenerate"].astype(bool)
        for scheme in ARCH_SCHEMES:
            sub = nd[keep & (nd["init"] == scheme)]
            lay = cmp.layers[cmp.layers["init"] == scheme]
            rows.append({
                "model": name, "init": scheme, "layers": len(lay), "neurons": int(len(sub)),
                "skewed α=0.1 (%)": 100.0 * float((sub["skew"] > 0.1).mean()),
                "skewed α=0.3 (%)": 100.0 * float((sub["skew"] > 0.3).mean()),
                "median layer α=0.3 (%)": 100.0 * float(lay["skewed_0.3"].median()),
                "mean skew": float(sub["skew"].mean()),
                "median samples per neuron": float(lay["samples"].median()) if "samples" in lay else np.nan,
            })
        frame = cmp.layers.copy()
        frame.insert(0, "model", name)
        frame.insert(3, "index", frame["layer"].map({n: i for i, n in enumerate(cmp.layer_order)}))
        layer_frames.append(frame)
    table = pd.DataFrame(rows)
    entries.append(Entry(write_csv(table, out / "architectures.csv"),
                         "Per model and scheme: % skewed neurons pooled over all layers (α = 0.1, 0.3), median "
                         "per-layer fraction at α = 0.3, mean skew.", settings))
    md = ["# Skewed neurons in torchvision architectures at initialization", "", f"Settings: {settings}.", "",
          _markdown_table(table, {"mean skew": "{:.3f}", "median samples per neuron": "{:.0f}"}).rstrip("\n"),
          "", "Samples per neuron: every spatial position (convolutions) or token (ViT) of every image is one "
          "sample; layers with few samples per neuron read noisier skews.", ""]
    entries.append(Entry(_text("\n".join(md), out / "architectures.md"), "The same table as Markdown.", settings))
    layers = pd.concat(layer_frames, ignore_index=True)
    keep_cols = [c for c in ["model", "init", "seed", "index", "layer", "type", "neurons", "samples", "skewed_0.1",
                             "skewed_0.3", "skewed_gauss_0.1", "skewed_gauss_0.3", "mean_skew", "spearman_s_p",
                             "input_mean", "input_std", "oui_batch", "oui_pairwise", "degenerate", "dead",
                             "always_on"] if c in layers.columns]
    entries.append(Entry(write_csv(layers[keep_cols], out / "architectures_layers.csv"),
                         "Per-layer table for every model and scheme.", settings))

    names = list(results)
    fig, axes = _figure(1, len(names), width=12.0, height=3.4)
    for ax, name in zip(axes[:, 0], names):
        plot.skew_by_depth(results[name], alpha=0.3, hue="init", ax=ax)
        ax.set_title(f"{name}: skewed fraction per layer (α = 0.3, count estimator)", fontsize="medium")
        _index_ticks(ax, len(results[name].layer_order))
        ax.legend(title="init", fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    entries.append(Entry(save_figure(fig, out / "architectures_skew_by_depth.png"),
                         "Per-layer fraction of skewed neurons (α = 0.3, count estimator) for each scheme.",
                         settings))
    fig, axes = _figure(len(names), 2, width=4.6, height=3.6)
    for col, name in enumerate(names):
        plot.skew_hist(results[name], layer="all", hue="init", ax=axes[0, col])
        axes[0, col].set_title(f"{name}: skew |p − 1/2|, all layers (count estimator)", fontsize="medium")
        _rowsum_by_scheme(results[name].neurons, axes[1, col])
        axes[1, col].set_title(f"{name}: row sums in units of the row norm, all layers", fontsize="medium")
    entries.append(Entry(save_figure(fig, out / "architectures_distributions.png"),
                         "Distributions per scheme, all layers pooled: the neurons' skew (top) and their row sums in "
                         "units of the row norm, S/‖W_i‖ (bottom; Theorem 1's p ≈ Φ((μ/σ)·S/‖W_i‖); N(0,1) for "
                         "any i.i.d. zero-mean scheme, 0 for sinusoidal rows that cancel).", settings))
    return entries


def _index_ticks(ax, n_layers: int, max_named: int = 24) -> None:
    """Replace unreadable layer-name ticks by layer indices when there are many layers."""
    if n_layers <= max_named:
        return
    step = int(np.ceil(n_layers / 20))
    ticks = list(range(0, n_layers, step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks], rotation=0, ha="center")
    ax.set_xlabel("layer index, forward order (names in architectures_layers.csv)")


def _rowsum_by_scheme(neurons: pd.DataFrame, ax, limit: float = 4.0) -> None:
    """Step density histograms (log scale) of S/‖W_i‖ per init; values beyond ±limit are clipped."""
    norm = neurons["row_norm"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(norm > 0, neurons["row_sum"].to_numpy(float) / norm, np.nan)
    bins = np.linspace(-limit, limit, 81)
    grid = np.linspace(-limit, limit, 401)
    for i, init in enumerate(pd.unique(neurons["init"])):
        v = values[(neurons["init"] == init).to_numpy()]
        v = v[np.isfinite(v)]
        ax.hist(np.clip(v, -limit, limit), bins=bins, density=True, histtype="step", lw=1.4, color=f"C{i}",
                label=f"{init} ({v.size})")
    ax.plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), "k:", lw=1.2, label="N(0, 1)")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, None)
    ax.set_xlabel("S / ‖W_i‖ (row sum over row norm; clipped at ±4)")
    ax.set_ylabel("density (log scale)")
    ax.legend(title="init", fontsize="small")


def _training(out: Path, cfg: _Config) -> list[Entry]:
    try:
        from skew.train import write_figures
    except ImportError as err:
        if err.name != "skew.train":
            raise
        return []
    descriptions = {
        "training_table.csv": "Table 3's metrics per model and scheme: max validation accuracy (patience-10 early "
        "stop) and AUC (trapezoid area under the validation-accuracy curve, dx = 1 epoch), mean ± std over seeds.",
        "training_table.md": "The training table as Markdown.",
        "training_curves.png": "Validation accuracy per epoch for each scheme.",
        "training_skew.png": "Per-layer skewed fractions, OUI, pattern_change and weight_change during training "
        "(skew.Tracker; SPEC §3b).",
    }
    paths = write_figures(out, cfg.quick)
    return [Entry(Path(p), descriptions.get(Path(p).name, "Training experiment output (skew.train)."),
                  "sklearn digits; see skew.train") for p in paths]


def _training_wd(out: Path, cfg: _Config) -> list[Entry]:
    try:
        from skew.train_wd import write_weight_decay_figures
    except ImportError as err:
        if err.name not in ("skew.train", "skew.train_wd"):
            raise
        return []
    descriptions = {
        "training_wd_table.csv": "Weight-decay sweep and the OUI controller (MLP on digits): final training OUI, max "
        "validation accuracy, AUC, final weight decay per weight decay, mean ± std over seeds.",
        "training_wd_table.md": "The sweep's table as Markdown, with whether the OUI band 0.6–0.8 picked the best "
        "weight decay and whether the structure settled before the weights.",
        "training_wd_curves.png": "Training OUI (band shaded) and validation accuracy per epoch, per weight decay.",
        "training_wd_structure.png": "pattern_change (activation states flipped on a probe) and weight_change "
        "(‖ΔW‖/‖W‖) per epoch, per weight decay (SPEC §3b).",
    }
    paths = write_weight_decay_figures(out, cfg.quick)
    return [Entry(Path(p), descriptions.get(Path(p).name, "Weight-decay sweep output (skew.train)."),
                  "sklearn digits; see skew.train.run_weight_decay") for p in paths]


def _readme(out: Path, entries: Sequence[Entry], cfg: _Config) -> Path:
    lines = [
        "# skew figures",
        "",
        "Regenerated by `skew figures --out figures" + (" --quick" if cfg.quick else "") + "` (`skew.figures.generate`); "
        "byte-identical on a second run (fixed seeds, no dates in file metadata, fixed CSV float format). "
        "Skew of a neuron: |p − 1/2| with p = P(Z > 0) counted over the samples (the `count` estimator) unless a "
        "figure says `gauss`; skewed with degree α when the skew exceeds α. Degenerate neurons (std Z ≈ 0) are "
        "excluded from the fractions.",
        "",
        "| file | what it shows | settings |",
        "|---|---|---|",
    ]
    for e in entries:
        rel = os.path.relpath(e.path, out)
        lines.append(f"| [{rel}]({rel}) | {e.what} | {e.settings} |")
    lines.append("")
    return _text("\n".join(lines), out / "README.md")


def generate(out_dir: str | os.PathLike = "figures", quick: bool = False, *, verbose: bool = False) -> list[Path]:
    """Write every SPEC §4 figure and replication table into ``out_dir``; returns the paths written.

    ``quick=True`` uses small sizes (Table 1 MLP width 128, resnet18 only at 32×32) for tests; the full
    run (width 1000, 10,000 samples, resnet50 / mobilenet_v3_small / efficientnet_v2_s / vit_b_16) takes
    a few minutes on two CPU cores. Global RNG state is restored afterwards; output is byte-identical on
    a second run in the same environment.

    Example:
        >>> generate("figures", quick=True)  # doctest: +SKIP
        [PosixPath('figures/weights_sinusoidal.png'), ...]
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = _Config(bool(quick))
    entries: list[Entry] = []

    def step(label: str, fn: Callable):
        start = time.perf_counter()
        result = _seeded(fn)
        if verbose:
            print(f"[skew figures] {label}: {time.perf_counter() - start:.1f} s", flush=True)
        return result

    entries += step("weights", lambda: _weights(out, cfg))
    table_entries, cmp = step("table 1", lambda: _table1(out, cfg))
    entries += table_entries
    entries += step("fig 4-5", lambda: _from_table1(out, cmp, cfg))
    entries += step("theory", lambda: _theory(out, cfg))
    entries += step("architectures", lambda: _architectures(out, cfg))
    entries += step("training", lambda: _training(out, cfg))
    entries += step("weight decay", lambda: _training_wd(out, cfg))
    readme = _readme(out, entries, cfg)
    return [e.path for e in entries] + [readme]
