"""The figure catalogue: regenerate every reference experiment of docs/experiments.md into one directory.

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
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from skew._io import atomic_write, save_figure, write_csv
from skew.compare import AS_BUILT, Comparison, compare
from skew.seeding import generator

__all__ = ["Entry", "check", "deterministic", "generate"]

#: Table 1's schemes and the names the paper prints for them.
TABLE1_SCHEMES: dict[str, str] = OrderedDict(
    [("xavier_uniform", "Glorot"), ("kaiming_normal", "He"), ("orthogonal", "Orthogonal"), ("lsuv", "LSUV"),
     ("sinusoidal", "Sinusoidal")]
)
#: Schemes compared on the torchvision architectures: ``as_built`` is torchvision's own constructor init
#: (He normal fan_out for ResNet convs, ...). LSUV is left out: one forward pass per try per layer.
ARCH_SCHEMES: tuple[str, ...] = (AS_BUILT, "xavier_uniform", "kaiming_normal", "orthogonal", "sinusoidal")
THEORY_LAWS: tuple[str, ...] = ("gaussian", "relu-gaussian", "uniform", "relu-uniform")
#: The one user seed of the catalogue; data and init use its independent streams (skew.seeding).
SEED = 0
#: CPU threads of a catalogue run: fixed, so float reductions split the same way on every machine. One
#: thread: no split at all, and no OpenMP contention (measured on 2 busy shared cores, OMP_NUM_THREADS unset:
#: a 5-epoch MLP training took 1.3-1.8 s with 1 thread and 21-36 s with 2).
THREADS = 1
#: The measured wall time of a full run, quoted in figures/README.md (filled in by whoever measures it).
FULL_RUN_TIME = "5 min 22 s on the 2-core development machine (one thread, the other core busy; training 201 s of it)"


@dataclass
class Entry:
    """One file of the catalogue, as listed in figures/README.md."""

    path: Path
    what: str
    settings: str = ""


@dataclass
class _Config:
    quick: bool
    seed: int = SEED
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
            if not np.isfinite(v):
                return "–"
            text = fmt.format(v)
            # "-0.00" and "0.00" are the same number: a rounding-level sign must not change the file
            return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text) else text
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
    g = generator(seed, "data")
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
        data = torch.randn(64, n, generator=generator(cfg.seed, "data")) if scheme == "lsuv" else None
        skew.init.apply(layer, scheme, data=data, generator=generator(cfg.seed, "init"))
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
    fig.suptitle(f"Weight matrices at initialization, 101×101 (seed {cfg.seed})")
    entries.append(Entry(save_figure(fig, out / "weights_schemes.png"),
                         "Heatmaps of a 101×101 matrix under Glorot, orthogonal, IDInit, arcsine (random values "
                         "with the sinusoidal distribution) and sinusoidal.", f"seed {cfg.seed}"))
    return entries


def _table1(out: Path, cfg: _Config) -> tuple[list[Entry], Comparison]:
    from skew import plot, theory
    from skew.models import build_model

    loader = _gaussian_batches(cfg.samples, cfg.batch, cfg.width, seed=cfg.seed)
    cmp = compare(lambda: build_model("mlp", depth=3, width=cfg.width), loader, list(TABLE1_SCHEMES),
                  seeds=(cfg.seed,), thresholds=(0.1, 0.3), progress=False)
    settings = (f"3 bias-free Linear({cfg.width}→{cfg.width}) layers, ReLU before each; {cfg.samples} N(0,1) "
                f"samples; count estimator; seed {cfg.seed}")
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
        ax.set_title(f"skewed: |p − ½| > {a:g}\n(LSUV's values equal orthogonal's)", fontsize="medium")
    axes[0, 0].get_legend().remove()  # same colours in both panels: one legend, at the right
    fig.suptitle("Skewed neurons by depth, Table 1 MLP (count estimator of p)")
    entries.append(Entry(save_figure(fig, out / "skew_by_depth.png"),
                         "Fraction of skewed neurons per layer for each scheme, α = 0.1 and α = 0.3.", settings))
    return entries, cmp


def _from_table1(out: Path, cmp: Comparison, cfg: _Config) -> list[Entry]:
    from skew import plot

    first, last = cmp.layer_order[0], cmp.layer_order[-1]
    glorot = cmp.reports[("xavier_uniform", cfg.seed)]
    settings = (f"ReLU → Linear({cfg.width}→{cfg.width}, bias=False), Glorot uniform, {cfg.samples} N(0,1) "
                "samples (first layer of the Table 1 MLP)")
    entries = []
    fig, axes = _figure(1, 1, width=6.0, height=4.2)
    plot.rowsum_hist(glorot, layer=first, alpha=0.3, binwidth=0.2, ax=axes[0, 0])
    fig.suptitle(f"Fig. 5: ReLU → Linear({cfg.width}→{cfg.width}, bias=False), Glorot uniform, N(0,1) inputs",
                 fontsize="medium")
    entries.append(Entry(save_figure(fig, out / "rowsum_hist_fig5.png"),
                         "Fig. 5: stacked density histogram of the row sums S, skewed (α = 0.3) vs not, with the "
                         "threshold ±λ of Theorem 1 marked.", settings + "; bin width 0.2, x range covering every row sum and ±λ"))
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
        handles = None
        for ax, (scheme, title) in zip(axes[0], TABLE1_SCHEMES.items()):
            plot.activation_states(cmp.reports[(scheme, cfg.seed)], layer=layer, ax=ax)
            ax.set_title(f"{title} ({layer})")
            if ax.get_legend() is not None:  # one key for the whole figure, below the panels
                handles = handles or ax.get_legend().legend_handles
                ax.get_legend().remove()
        if handles:
            fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncol=len(handles),
                       fontsize="small", frameon=False)
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
        skew.init.apply(layer, "xavier_uniform", generator=generator(cfg.seed, "init"))
        loader = _gaussian_batches(cfg.theory_samples, min(cfg.theory_samples, 1000), n, law=law, seed=cfg.seed)
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
        loader = build_data("digits", shape=opts["shape"], batch_size=opts["batch_size"], batches=1, seed=cfg.seed)
        results[name] = compare(partial(build_model, name, image_size=opts["shape"][-1]), loader,
                                list(ARCH_SCHEMES), seeds=(cfg.seed,), thresholds=(0.1, 0.3), progress=False)
    sizes = "; ".join(f"{k}: {v['batch_size']} digits images at {'×'.join(map(str, v['shape']))}"
                      for k, v in cfg.arch.items())
    settings = (f"{sizes}; eval mode; pre-activation of every Linear/Conv; seed {cfg.seed}; as_built = "
                "torchvision's own constructor init (no scheme applied)")
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
    fig, axes = _figure(len(names), 2, width=4.6 + 2.6 / len(names), height=3.6)  # + room for the legends
    for col, name in enumerate(names):
        plot.skew_hist(results[name], layer="all", hue="init", ax=axes[0, col])
        axes[0, col].set_title(f"{name}: skew |p − ½|, all layers", fontsize="medium")
        _rowsum_by_scheme(results[name].neurons, axes[1, col])
        axes[1, col].set_title(f"{name}: row sums over row norms, all layers", fontsize="medium")
        if col < len(names) - 1:  # the colours are the same in every column: one legend per row, at the right
            for ax in axes[:, col]:
                ax.get_legend().remove()
    entries.append(Entry(save_figure(fig, out / "architectures_distributions.png"),
                         "Distributions per scheme, all layers pooled: the neurons' skew (top) and their row sums in "
                         "units of the row norm, S/‖W_i‖ (bottom; Theorem 1's p ≈ Φ((μ/σ)·S/‖W_i‖); N(0,1) for "
                         "any i.i.d. zero-mean scheme, 0 for sinusoidal rows that cancel).", settings))
    return entries


def _language_models(out: Path, cfg: _Config) -> list[Entry]:
    """Skew by depth of small GPT-2 and Llama models (``hf:*``) on the built-in ``text`` data, per scheme."""
    import importlib.util
    import re

    from skew.data import build_data
    from skew.models import build_model

    if importlib.util.find_spec("transformers") is None:  # the [hf] extra is not installed
        return []
    depth, width, seq_len, batch, batches = (2, 32, 32, 4, 1) if cfg.quick else (8, 128, 128, 16, 4)
    models = {"GPT-2": ("hf:gpt2", dict(n_layer=depth, n_embd=width, n_head=4)),
              "Llama": ("hf:llama", dict(num_hidden_layers=depth, hidden_size=width, num_attention_heads=4,
                                         intermediate_size=width * 8 // 3))}
    loader = build_data("text", shape=(seq_len,), batch_size=batch, batches=batches, seed=0)
    settings = (f"{depth} blocks, width {width}, 4 heads, byte vocabulary 256 (tied head for GPT-2); "
                f"{batches}×{batch} sequences of {seq_len} byte tokens of Python's pydoc topics, every token a "
                "sample; eval mode; seed 0; as_built = transformers' own _init_weights (N(0, 0.02), GPT-2's "
                "residual projections N(0, 0.02/√(2·depth))); the other schemes set every Linear/Conv1D layer, "
                "token embeddings and norms keep transformers' init, except GPT-2's embedding, which is its tied "
                "head")
    frames, at03 = [], {}
    fig, axes = _figure(len(models), 2, width=5.2, height=3.4)
    for col, (label, (name, opts)) in enumerate(models.items()):
        cmp = compare(partial(build_model, name, **opts), loader, list(ARCH_SCHEMES), seeds=(0,),
                      thresholds=(0.1, 0.3), progress=False)
        frame = cmp.layers.copy()
        block = [re.search(r"\.(?:h|layers)\.(\d+)\.", n) for n in frame["layer"]]
        frame.insert(0, "model", label)
        frame.insert(3, "block", [int(m.group(1)) if m else depth for m in block])  # depth = the head
        frames.append(frame)
        nd = cmp.neurons.merge(frame[["init", "layer", "block"]], on=["init", "layer"])
        nd = nd[~nd["degenerate"].astype(bool)]
        for row, alpha in enumerate((0.1, 0.3)):
            ax = axes[row, col]
            for i, scheme in enumerate(ARCH_SCHEMES):
                sub = nd[nd["init"] == scheme]
                frac = (sub["skew"] > alpha).groupby(sub["block"]).mean().reindex(range(depth + 1))
                ax.plot(frac.index, 100.0 * frac.to_numpy(float), marker="o", ms=4, lw=1.4, color=f"C{i}",
                        label=scheme)
                if alpha == 0.3:
                    at03[(label, scheme)] = 100.0 * frac.to_numpy(float)[:depth]  # the blocks, head left out
            ax.set_xticks(range(depth + 1))
            ax.set_xticklabels([str(b) for b in range(depth)] + ["head"])
            ax.set_xlabel("block (its Linear/Conv1D layers pooled); head = lm_head")
            ax.set_ylabel(f"skewed neurons, |p − ½| > {alpha:g} (%)")
            ax.set_title(f"{label} ({name}) on text, α = {alpha:g}", fontsize="medium")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, title="init", loc="outside lower center", ncol=len(labels), fontsize="small")
    fig.suptitle("Skewed neurons by depth in small language models at initialization (count estimator)")
    layers = pd.concat(frames, ignore_index=True)
    keep = [c for c in ["model", "init", "seed", "block", "layer", "type", "neurons", "samples", "skewed_0.1",
                        "skewed_0.3", "mean_skew", "spearman_s_p", "input_mean", "input_std", "oui_pairwise",
                        "degenerate", "dead", "always_on"] if c in layers.columns]
    return [
        Entry(save_figure(fig, out / "language_models_skew_by_depth.png"),
              "Fraction of skewed neurons (α = 0.1, 0.3) per transformer block, GPT-2 and Llama, one line per scheme: "
              "per-token pre-activations of every projection in the block pooled. " + _lm_sentence(at03, models),
              settings),
        Entry(write_csv(layers[keep], out / "language_models_layers.csv"),
              "Per-layer table behind the language-model figure, every model and scheme.", settings),
    ]


def _lm_sentence(at03: dict, models: dict) -> str:
    """What the language-model figure shows, in numbers read off it (α = 0.3, % of a block's neurons)."""
    random = ("xavier_uniform", "kaiming_normal", "orthogonal")
    parts = []
    for label in models:
        sin = at03[(label, "sinusoidal")]
        first = [at03[(label, s)][0] for s in random]
        deep = [np.nanmax(at03[(label, s)][1:]) for s in random]
        parts.append(
            f"{label}: sinusoidal {sin[0]:.1f}% in block 0 (max {np.nanmax(sin):.1f}% over the blocks) against "
            f"{min(first):.1f}–{max(first):.1f}% for xavier_uniform, kaiming_normal and orthogonal (deeper blocks "
            f"up to {min(deep):.1f}–{max(deep):.1f}%), as_built {np.nanmin(at03[(label, AS_BUILT)]):.1f}–"
            f"{np.nanmax(at03[(label, AS_BUILT)]):.1f}%"
        )
    return ("What it shows (α = 0.3): " + "; ".join(parts) + ". Sinusoidal keeps few neurons skewed at every "
            "depth, but it is not alone: skew depends on the whole architecture (norms, gating, the library's "
            "small-std init), not on the scheme alone.")


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
        ax.hist(np.clip(v, -limit, limit), bins=bins, density=True, histtype="step", lw=max(1.0, 2.6 - 0.4 * i),
                color=f"C{i}", ls=("-", "--", "-.", ":")[i % 4], label=f"{init} ({v.size})")
    ax.plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), "k:", lw=1.2, label="N(0, 1)")
    ax.set_yscale("log")
    ax.set_ylim(1e-3, None)
    ax.set_xlabel("S / ‖W_i‖ (row sum over row norm; clipped at ±4)")
    ax.set_ylabel("density (log scale)")
    ax.legend(title="init", fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


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
        "(skew.Tracker; docs/oui.md).",
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
        "(‖ΔW‖/‖W‖) per epoch, per weight decay (docs/oui.md).",
    }
    paths = write_weight_decay_figures(out, cfg.quick)
    return [Entry(Path(p), descriptions.get(Path(p).name, "Weight-decay sweep output (skew.train)."),
                  "sklearn digits; see skew.train.run_weight_decay") for p in paths]


def _readme(out: Path, entries: Sequence[Entry], cfg: _Config) -> Path:
    command = ("skew figures --out figures" + (" --quick" if cfg.quick else "")
               + (f" --seed {cfg.seed}" if cfg.seed != SEED else ""))
    lines = [
        "# skew figures",
        "",
        f"Regenerated by `{command}` (`skew.figures.generate`). Skew of a neuron: |p − 1/2| with p = P(Z > 0) "
        "counted over the samples (the `count` estimator) unless a figure says `gauss`; skewed with degree α when "
        "the skew exceeds α. Degenerate neurons (std Z ≈ 0) are excluded from the fractions.",
        "",
        "## Reproducing",
        "",
        f"Every random draw of the figures and tables comes from the one seed {cfg.seed}, split into independent "
        "streams for data and init (`skew.seeding`; the training experiment's run seeds are split the same way, "
        f"see `skew.train`); the run uses {THREADS} CPU thread{'s' if THREADS > 1 else ''} (whatever the machine), "
        "`torch.use_deterministic_algorithms`, no dates in file metadata and fixed float formats.",
        "",
        "- **Byte-identical:** every file, when regenerated on the same machine with the same software "
        "(two runs agree byte for byte).",
        "- **Within tolerance:** on another machine, numbers that go through floating-point reductions "
        "(matrix products, convolutions, training steps) may differ in their last digits, and a count can "
        "change when a pre-activation lies within rounding of 0. `" + command.replace(" --out", " --check --out")
        + "` regenerates into a temporary directory and compares every table (CSV and Markdown) with the "
        "files here: text exactly, numbers within per-column tolerances (percentages ±0.5 points, accuracies "
        "±0.01, AUC ±0.3, skewed fractions and mean skew ±0.005, OUI ±0.01, epochs ±1, layer/neuron/sample "
        "counts exact; the full list is in `skew.figures_check`). It names each file, row and column that "
        "differs and exits 1 on a mismatch.",
        "- **Existence only:** PNG figures (their pixels depend on fonts and the matplotlib build).",
        "",
        f"A full run took {FULL_RUN_TIME}.",
        "",
        "| file | what it shows | settings |",
        "|---|---|---|",
    ]
    for e in entries:
        rel = os.path.relpath(e.path, out)
        lines.append(f"| [{rel}]({rel}) | {e.what} | {e.settings} |")
    lines.append("")
    return _text("\n".join(lines), out / "README.md")


@contextmanager
def deterministic(threads: int | None = None):
    """Run a block with ``threads`` CPU threads and deterministic algorithms; restores both afterwards.

    Sets ``torch.set_num_threads(threads)`` (default :data:`THREADS`: reductions are split the same
    way on every machine), ``torch.use_deterministic_algorithms(True, warn_only=True)`` and, for CUDA,
    ``cudnn.deterministic = True``, ``cudnn.benchmark = False``.

    Example:
        >>> with deterministic(1):
        ...     torch.get_num_threads()
        1
    """
    threads = THREADS if threads is None else int(threads)
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[3], saved[4]


def generate(out_dir: str | os.PathLike = "figures", quick: bool = False, *, verbose: bool = False,
             threads: int | None = None, seed: int = SEED) -> list[Path]:
    """Write every figure and table of docs/experiments.md into ``out_dir``; returns the paths written.

    ``seed`` is the one user seed of the figures and tables (default :data:`SEED`; data and init use
    its independent streams, :mod:`skew.seeding`). ``quick=True`` uses small sizes (Table 1 MLP width 128, resnet18 only at 32×32) for tests; the full
    run (width 1000, 10,000 samples, resnet50 / mobilenet_v3_small / efficientnet_v2_s / vit_b_16) takes
    a few minutes on two CPU cores. The run uses ``threads`` CPU threads (default :data:`THREADS`) and
    deterministic algorithms (:func:`deterministic`); the global RNG state, thread count and
    determinism flags are restored afterwards. Output is byte-identical on a second run in the same
    environment; on another machine tables agree within the tolerances :func:`check` states.

    Example:
        >>> generate("figures", quick=True)  # doctest: +SKIP
        [PosixPath('figures/weights_sinusoidal.png'), ...]
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = _Config(bool(quick), int(seed))
    entries: list[Entry] = []

    def step(label: str, fn: Callable):
        start = time.perf_counter()
        result = _seeded(fn)
        if verbose:
            print(f"[skew figures] {label}: {time.perf_counter() - start:.1f} s", flush=True)
        return result

    with deterministic(threads):
        entries += step("weights", lambda: _weights(out, cfg))
        table_entries, cmp = step("table 1", lambda: _table1(out, cfg))
        entries += table_entries
        entries += step("fig 4-5", lambda: _from_table1(out, cmp, cfg))
        entries += step("theory", lambda: _theory(out, cfg))
        entries += step("architectures", lambda: _architectures(out, cfg))
        entries += step("language models", lambda: _language_models(out, cfg))
        entries += step("training", lambda: _training(out, cfg))
        entries += step("weight decay", lambda: _training_wd(out, cfg))
    readme = _readme(out, entries, cfg)
    return [e.path for e in entries] + [readme]


def check(reference_dir: str | os.PathLike = "figures", quick: bool = False, *, work_dir=None,
          verbose: bool = False, threads: int | None = None, seed: int = SEED) -> tuple[list[str], list[str]]:
    """Regenerate the catalogue and compare it with ``reference_dir``: (differences, byte-identical files).

    Regenerates into ``work_dir`` (default: a temporary directory, removed afterwards) with the same
    ``quick`` setting as the reference (its README.md says which; a mismatch raises
    :class:`~skew.errors.SkewError`), then :func:`skew.figures_check.compare_catalogues`: tables within
    the tolerances of :data:`skew.figures_check.TOLERANCES`, PNGs for existence only.

    Example:
        >>> diffs, same = check("figures")  # doctest: +SKIP
        >>> diffs  # doctest: +SKIP
        []
    """
    import tempfile

    from skew.errors import SkewError
    from skew.figures_check import compare_catalogues

    ref = Path(reference_dir)
    readme = ref / "README.md"
    if not readme.is_file():
        raise SkewError(f"{str(ref)!r} holds no catalogue (no README.md); pass --out with the directory "
                        "`skew figures` wrote, e.g. --out figures")
    made_by = re.search(r"Regenerated by `([^`]*)`", readme.read_text(encoding="utf-8"))
    ref_quick = made_by is not None and "--quick" in made_by.group(1).split()
    if ref_quick != bool(quick):
        raise SkewError(f"{str(ref)!r} was generated {'with' if ref_quick else 'without'} --quick; check it "
                        f"{'with' if ref_quick else 'without'} --quick too")
    if work_dir is not None:
        generate(work_dir, quick=quick, verbose=verbose, threads=threads, seed=seed)
        return compare_catalogues(work_dir, ref)
    with tempfile.TemporaryDirectory(prefix="skew-figures-check-") as tmp:
        generate(tmp, quick=quick, verbose=verbose, threads=threads, seed=seed)
        return compare_catalogues(tmp, ref)
