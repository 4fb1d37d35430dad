"""Write the four teaching notebooks from the cell sources in this file, then execute them in place.

The notebooks are generated, not hand-edited: change a cell here and rebuild. Each notebook's first
code cell reads ``QUICK = os.environ.get("SKEW_QUICK") == "1"`` and picks small sizes then; the test
suite (tests/test_notebooks.py) runs them that way. The stored outputs are a full-size run.

Usage, from the repository root:

    .venv/bin/python notebooks/build.py               # write + execute all four at full size, store outputs
    .venv/bin/python notebooks/build.py 02 04         # only the notebooks whose name starts with 02 or 04
    .venv/bin/python notebooks/build.py --quick       # run at SKEW_QUICK=1 sizes in a temp dir; time them,
                                                      # store nothing (the committed notebooks are untouched)
    .venv/bin/python notebooks/build.py --no-execute  # write the sources only, without outputs

Execution uses nbclient with the ``python3`` kernel and ``notebooks/`` as the working directory.
Cell ids are fixed (``<notebook>-<index>``) and timing metadata is not recorded, so a rebuild only
changes what the code computes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(text: str) -> nbformat.NotebookNode:
    """A markdown cell (dedented)."""
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    """A code cell (dedented)."""
    return nbformat.v4.new_code_cell(textwrap.dedent(text).strip("\n"))


IMPORTS = """
%matplotlib inline
import copy
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from torch import nn

import skew
import skew.seeding

# tqdm.auto (used for skew's progress bar, which notebooks do not show) warns when ipywidgets is missing
warnings.filterwarnings("ignore", message="IProgress not found")
torch.manual_seed(0)
pd.set_option("display.precision", 3)
pd.set_option("display.max_columns", 30)
pd.set_option("display.width", 160)
pd.set_option("display.max_colwidth", 120)
"""


# ==================================================================================================
# 01 — quickstart
# ==================================================================================================
def quickstart() -> list:
    return [
        md("""
        # Quickstart: neuron skew in a torchvision ResNet-18

        **skew** measures, for every neuron of a PyTorch model, how often it fires. A *neuron* is one output
        unit of a `Linear` layer or one output channel of a convolution; its *pre-activation* `Z` is the
        layer's output before the nonlinearity. For each neuron skew reports

        * `p = P(Z > 0)`, estimated by the **count** estimator (the fraction of samples with `Z > 0`; every
          spatial position of a convolution is a sample), and by the **gauss** estimator `Φ(mean_Z / std_Z)`;
        * its *skew* `|p − ½|`; a neuron is **skewed with degree α** when `|p − ½| > α`
          (α = 0.3 means it fires on fewer than 20 % or more than 80 % of the samples);
        * its weight **row sum** `S = Σⱼ Wᵢⱼ` and Theorem 1's prediction `p_pred = Φ((μS + b) / (σ‖Wᵢ‖))`,
          with μ, σ the measured mean and std of the layer's input.

        This notebook builds a model and data, runs `skew.report`, reads its tables and plots, saves and
        reloads a report, and selects layers. The other notebooks explain the theory (02), compare
        initialization schemes (03) and dissect the sinusoidal initialization (04).
        """),
        code("""
        import os

        QUICK = os.environ.get("SKEW_QUICK") == "1"  # the test suite sets SKEW_QUICK=1 for small sizes
        IMAGE_SIZE = 32 if QUICK else 64  # digits resized to IMAGE_SIZE × IMAGE_SIZE, 3 channels
        BATCHES, BATCH_SIZE = (2, 16) if QUICK else (8, 64)
        """),
        code(IMPORTS + "import torchvision\n"),
        md("""
        ## A model and some data

        Any `nn.Module` works. Here: torchvision's ResNet-18 with random weights (`weights=None`, nothing is
        downloaded) and 10 classes. The data are scikit-learn's bundled 8×8 handwritten digits
        (`skew.data.build_data("digits", ...)`): pixels scaled to [0, 1], standardised with the dataset's
        mean and std, resized and replicated to 3 channels. Each batch is an `(x, y)` pair; `skew.report`
        feeds only `x` to the model. Any iterable of batches works: a list, a `DataLoader`, a generator.
        """),
        code("""
        model = torchvision.models.resnet18(weights=None, num_classes=10)
        data = skew.data.build_data("digits", shape=(3, IMAGE_SIZE, IMAGE_SIZE), batch_size=BATCH_SIZE,
                                    batches=BATCHES)
        x, y = data[0]
        print(f"{len(data)} batches of (x, y): x {tuple(x.shape)}, first labels {y[:10].tolist()}")
        """),
        md("""
        ## Measure: `skew.report`

        One call runs the batches through the model with forward hooks on every `Linear` and `Conv` layer,
        reduces each output to per-neuron counts and moments on the fly (no activation is stored) and
        removes the hooks. By default the model runs in **eval mode** (BatchNorm uses its running
        statistics), under `torch.no_grad()`; afterwards the model is exactly as it was.
        The last expression of the cell shows the report's HTML view.
        """),
        code("""
        rep = skew.report(model, data)
        rep
        """),
        code("""
        print("model.training is still", model.training, "(torchvision builds models in training mode)")
        print(f"{len(rep.skipped)} modules not measured, by reason:")
        print(rep.skipped["reason"].value_counts().to_string())
        """),
        md("""
        ## The per-layer table: `rep.layers`

        One row per measured layer, in forward order. The columns used most:

        | column | meaning |
        |---|---|
        | `samples` | samples per neuron: batch × spatial positions |
        | `skewed_0.1`, `skewed_0.3` | fraction of neurons with `|p − ½| > α`, **count estimator**, non-degenerate neurons only |
        | `skewed_gauss_0.3` | the same with the gauss estimator `Φ(mean/std)` |
        | `lambda_0.3` | Theorem 1's threshold λ(α) on `|S|`, from the measured input mean and std |
        | `agree_0.3` | fraction of neurons where `|S| > λ` and "skewed" agree |
        | `spearman_s_p` | rank correlation between `S` and `p` |
        | `oui_pairwise` | the Overfitting–Underfitting Indicator of the layer's activation patterns |
        | `degenerate`, `dead`, `always_on` | neurons with `std_Z = 0` up to rounding (relative to the neuron's own scale), `p = 0`, `p = 1` |
        """),
        code("""
        cols = ["layer", "type", "shape", "neurons", "samples", "skewed_0.1", "skewed_0.3", "skewed_gauss_0.3",
                "lambda_0.3", "agree_0.3", "spearman_s_p", "oui_pairwise", "dead", "always_on"]
        rep.layers[cols]
        """),
        code("""
        first, last = rep.layers.iloc[0], rep.layers.iloc[-1]
        overall = (rep.neurons.loc[~rep.neurons["degenerate"], "skew"] > 0.3).mean()
        print(f"first layer {first.layer}: {100 * first['skewed_0.3']:.1f}% skewed at α = 0.3 (count estimator)")
        print(f"last layer  {last.layer}: {100 * last['skewed_0.3']:.1f}% skewed at α = 0.3")
        print(f"whole model: {100 * overall:.1f}% of {len(rep.neurons)} neurons skewed at α = 0.3")
        """),
        md("""
        The first convolution sees the standardised digits, whose overall mean is close to 0, so Theorem 1
        predicts almost no skew there (its λ is huge); the layers after it see post-ReLU inputs with a positive
        mean — compare their `skewed_0.3` with the first layer's (notebook 02 explains both effects and where
        the theorem stops applying). The weights are the ones torchvision's constructor draws (Kaiming-normal,
        fan-out); BatchNorm has its fresh running statistics (mean 0, variance 1), so in eval mode it is almost
        the identity.

        ## The per-neuron table: `rep.neurons`

        One row per neuron, tidy: filter, group and plot it with pandas or seaborn. (Read the skew column as
        `rep.neurons["skew"]`: `rep.neurons.skew` is pandas' skewness method.)
        """),
        code("""
        rep.neurons.head()
        """),
        code("""
        summary = rep.neurons.groupby("layer", sort=False).agg(
            neurons=("neuron", "size"), mean_p=("p", "mean"), mean_skew=("skew", "mean"),
            dead=("dead", "sum"), always_on=("always_on", "sum"))
        summary.tail(6)
        """),
        md("""
        ## Plots

        Every plot is a method of the report (and a function of `skew.plot` taking a report, a comparison or
        a frame); each takes `ax=` and returns the Axes. Titles name the estimator and the threshold.

        **Skew histogram** over all layers, thresholds α = 0.1 and 0.3 marked:
        """),
        code("""
        ax = rep.plot_skew_hist(layer="all")
        """),
        md("""
        **Row sums** of one layer, stacked by skewed / not skewed at α = 0.3, with ±λ(0.3) marked
        (Theorem 1: a neuron is skewed when `|S| > λ`). `layer1.0.conv1` sees post-ReLU inputs:
        """),
        code("""
        LAYER = "layer1.0.conv1"
        ax = rep.plot_rowsum_hist(layer=LAYER, alpha=0.3)
        """),
        md("""
        **S against p** for the same layer, with Theorem 1's curve `Φ(μS / (σ‖W‖))` for the measured μ, σ:
        """),
        code("""
        ax = rep.plot_skew_vs_rowsum(layer=LAYER)
        """),
        md("""
        **Activation states**: a samples × neurons raster of the signs of `Z` (white = active), from the
        report's reproducible sample of at most 250 × 250 signs. A skewed neuron is a vertical band that is
        almost all white or all black.
        """),
        code("""
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
        rep.plot_activation_states(layer="conv1", ax=axes[0])
        rep.plot_activation_states(layer="layer3.1.conv2", ax=axes[1])
        plt.show()
        """),
        md("""
        ## Save, load and merge

        `rep.save(path)` writes one zip file atomically; `skew.Report.load(path)` reads it back exactly.
        The demo writes to a temporary directory.
        """),
        code("""
        with tempfile.TemporaryDirectory() as tmp:
            path = rep.save(Path(tmp) / "resnet18.skew.zip")
            print(f"{path.name}: {path.stat().st_size / 1024:.0f} KiB")
            back = skew.Report.load(path)
        pd.testing.assert_frame_equal(back.neurons, rep.neurons, check_exact=True)
        pd.testing.assert_frame_equal(back.layers, rep.layers, check_exact=True)
        print("loaded report equals the original:", back.layers.equals(rep.layers))
        """),
        md("""
        A report keeps raw counts and moments, so two reports of the same model on different data merge
        exactly into the report of all the data:
        """),
        code("""
        half = len(data) // 2
        merged = skew.report(model, data[:half]).merge(skew.report(model, data[half:]))
        same_p = np.array_equal(merged.neurons["p"], rep.neurons["p"])
        max_mean_diff = (merged.neurons["mean"] - rep.neurons["mean"]).abs().max()
        print(f"merged halves: identical p = {same_p}, largest difference in mean Z = {max_mean_diff:.2g}")
        """),
        md("""
        ## Selecting layers

        `layers=` takes a glob on qualified names, a list of names, module type(s) or a predicate
        `f(name, module)`; the rest is listed in `.skipped` with the reason.
        """),
        code("""
        rep4 = skew.report(model, data, layers="layer4.*")
        rep4.layers[["layer", "neurons", "samples", "skewed_0.1", "skewed_0.3"]]
        """),
        code("""
        rep_fc = skew.report(model, data, layers=nn.Linear)
        rep_down = skew.report(model, data, layers=lambda name, module: "downsample" in name)
        print("by type:", rep_fc.layers["layer"].tolist())
        print("by predicate:", rep_down.layers["layer"].tolist())
        """),
        md("""
        ## From the command line

        The same measurement without Python: `skew report --model resnet18 -o num_classes=10
        -o image_size=64 --data digits --out out/` prints the per-layer table and writes the frames, the
        report file and the figures; `skew compare` does the same for several init schemes.
        """),
    ]


# ==================================================================================================
# 02 — Theorem 1
# ==================================================================================================
def theorem1() -> list:
    return [
        md(r"""
        # Theorem 1: row sums decide which neurons are skewed — and where that stops

        Take a neuron `Z = Σⱼ Wⱼ Xⱼ` with weights `W₁..Wₙ` i.i.d. (mean 0, variance θ²) and inputs `X₁..Xₙ`
        i.i.d., independent of `W`, with mean μ ≠ 0 and variance σ², no bias. Conditioned on the weights, the
        CLT gives

        $$P(Z > 0 \mid W) \approx \Phi\!\left(\frac{\mu S}{\sigma \lVert W \rVert_2}\right), \qquad S = \sum_j W_j,
        \qquad \lVert W\rVert_2^2 \approx n\theta^2 .$$

        So the neuron is skewed with degree α (`|p − ½| > α`) **if and only if** `|S| > λ(α)`, with

        $$\lambda(\alpha) = \frac{\sigma\,\theta\sqrt{n}}{|\mu|}\,\Phi^{-1}\!\left(\tfrac12 + \alpha\right).$$

        **Corollary** (first layer, any i.i.d. zero-mean init): `S ~ N(0, nθ²)`, so the expected fraction of
        skewed neurons is `2 (1 − Φ((σ/|μ|) Φ⁻¹(½ + α)))` — it depends only on the inputs' coefficient of
        variation σ/μ, not on the width or on which i.i.d. scheme drew the weights.

        Part 1 checks all of this on a wide first layer. Part 2 breaks the assumptions one at a time: depth,
        a random bias, BatchNorm, real (correlated) inputs. Unless a cell says otherwise, p is the **count**
        estimator (fraction of samples with `Z > 0`) and the thresholds are α = 0.1 and α = 0.3. Every number
        quoted comes from the cells' output; the markdown says what to look for.
        """),
        code("""
        import os

        QUICK = os.environ.get("SKEW_QUICK") == "1"  # the test suite sets SKEW_QUICK=1 for small sizes
        N = 1000                                  # fan-in = fan-out of the wide first layer
        SAMPLES = 2000 if QUICK else 10000        # input samples (batches of 1000)
        DEPTH, DEEP_WIDTH = (4, 256) if QUICK else (8, 1000)
        BN_WIDTH = 256 if QUICK else 512
        """),
        code(IMPORTS + """
def spearman(a, b):
    \"\"\"Spearman rank correlation of two 1-D arrays.\"\"\"
    return float(spearmanr(np.asarray(a, float), np.asarray(b, float)).statistic)


def gaussian_batches(width, seed=0):
    return skew.data.build_data("gaussian", shape=(width,), batch_size=1000, batches=SAMPLES // 1000, seed=seed)
"""),
        md("""
        ## Part 1 — a wide first layer

        The Fig. 5 setup of [docs/experiments.md](../docs/experiments.md): `ReLU → Linear(N → N, bias=False)` with Glorot-uniform weights, fed N(0, 1) samples, so
        the `Linear` sees i.i.d. ReLU(N(0, 1)) inputs with μ = 1/√(2π) and σ² = ½ − 1/(2π).
        """),
        code("""
        wide = nn.Sequential(nn.ReLU(), nn.Linear(N, N, bias=False))
        skew.init.apply(wide, "xavier_uniform", generator=skew.seeding.generator(0, "init"))
        data = gaussian_batches(N)
        rep = skew.report(wide, data)
        layer = rep.layers.iloc[0]
        mu, sigma = skew.theory.input_moments("relu-gaussian")
        theta = wide[1].weight.std().item()
        print(f"input mean μ: measured {layer.input_mean:.4f}, theory {mu:.4f}")
        print(f"input std σ:  measured {layer.input_std:.4f}, theory {sigma:.4f}")
        print(f"weight std θ: {theta:.5f} (Glorot: √(2/(n+m)) = {np.sqrt(2 / (2 * N)):.5f})")
        for a in rep.thresholds:
            lam = skew.theory.threshold(a, N, theta, mu, sigma)
            print(f"λ({a:g}) = {lam:.3f} from the theory's μ, σ; {layer[f'lambda_{a:g}']:.3f} in rep.layers "
                  f"(measured μ, σ)")
        """),
        md("""
        Each dot below is a neuron: its row sum `S` against its measured `p`, with Theorem 1's curve. The
        dotted horizontal lines mark `p = ½ ± α`.
        """),
        code("""
        ax = rep.plot_skew_vs_rowsum()
        """),
        code("""
        nd = rep.neurons
        err = (nd["p"] - nd["p_pred"]).abs()
        se = np.sqrt(0.25 / SAMPLES)
        print(f"|p − p_pred|: mean {err.mean():.4f}, max {err.max():.4f} "
              f"(binomial standard error of p at p = ½ with {SAMPLES} samples: {se:.4f})")
        print(f"Spearman(S, p) = {layer.spearman_s_p:.4f}")
        """),
        md("""
        The row-sum histogram ([Fig. 5 view](../docs/experiments.md)), stacked by skewed / not skewed at α = 0.3. If Theorem 1
        holds, the red (skewed) part lies outside ±λ and the blue part inside.
        """),
        code("""
        ax = rep.plot_rowsum_hist(alpha=0.3)
        """),
        md("""
        **Agreement** of the two criteria, neuron by neuron: `|S| > λ(α)` against `|p − ½| > α`. The
        disagreements should sit right at the threshold, where sampling noise in p decides.
        """),
        code("""
        s = nd["row_sum"].to_numpy()
        rows = []
        for a in rep.thresholds:
            lam = layer[f"lambda_{a:g}"]
            by_s = np.abs(s) > lam
            by_p = nd["skew"].to_numpy() > a
            wrong = by_s != by_p
            rows.append({"α": a, "λ(α)": lam, "skewed by p": by_p.mean(), "skewed by |S| > λ": by_s.mean(),
                         "agreement": 1 - wrong.mean(), "agree_α in rep.layers": layer[f"agree_{a:g}"],
                         "disagreements": int(wrong.sum()),
                         "max ||S| − λ| among them": np.abs(np.abs(s[wrong]) - lam).max() if wrong.any() else 0.0,
                         "std of S": s.std()})
        pd.DataFrame(rows)
        """),
        md("""
        ### The corollary: fraction skewed against α

        Measured fractions over a grid of α against the corollary `2(1 − Φ((σ/|μ|) Φ⁻¹(½ + α)))`, once with
        the theoretical moments of ReLU(N(0, 1)) and once with the moments measured on these batches. Then
        the same for inputs ReLU(U(−1, 1)) (σ/μ differs, so does the curve).
        """),
        code("""
        alphas = np.array([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45])
        live = nd[~nd["degenerate"]]
        pd.DataFrame({
            "α": alphas,
            "measured (count)": [(live["skew"] > a).mean() for a in alphas],
            "measured (gauss)": [(live["skew_gauss"] > a).mean() for a in alphas],
            "corollary, ReLU(N(0,1)) moments": skew.theory.expected_skewed_fraction(alphas, mu, sigma),
            "corollary, measured moments": skew.theory.expected_skewed_fraction(alphas, layer.input_mean,
                                                                                layer.input_std),
        })
        """),
        code("""
        uniform_data = skew.data.build_data("uniform", shape=(N,), batch_size=1000, batches=SAMPLES // 1000)
        rep_u = skew.report(wide, uniform_data)  # ReLU(U(−1, 1)) reaches the Linear
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
        rep.plot_skew_fraction_vs_alpha(laws=["relu-gaussian"], ax=axes[0])
        rep_u.plot_skew_fraction_vs_alpha(laws=["relu-uniform"], ax=axes[1])
        axes[0].set_title("Fraction skewed vs α, wide first layer, inputs ReLU(N(0, 1))", fontsize="medium")
        axes[1].set_title("Fraction skewed vs α, wide first layer, inputs ReLU(U(−1, 1))", fontsize="medium")
        plt.show()
        """),
        md("""
        **Scheme independence.** The corollary says every i.i.d. zero-mean scheme gives the same fraction at
        the first layer, whatever its variance. Same layer, same inputs, six schemes:
        """),
        code("""
        rows = []
        for scheme in ["xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "default", "arcsine"]:
            net = nn.Sequential(nn.ReLU(), nn.Linear(N, N, bias=False))
            skew.init.apply(net, scheme, generator=skew.seeding.generator(1, "init"))
            r = skew.report(net, data).layers.iloc[0]
            rows.append({"scheme": scheme, "weight std": net[1].weight.std().item(),
                         "skewed_0.1": r["skewed_0.1"], "skewed_0.3": r["skewed_0.3"],
                         "agree_0.3": r["agree_0.3"]})
        schemes_table = pd.DataFrame(rows)
        expected = skew.theory.expected_skewed_fraction([0.1, 0.3], mu, sigma)
        print(f"corollary: {expected[0]:.3f} at α = 0.1, {expected[1]:.3f} at α = 0.3; "
              f"binomial s.e. of a fraction of {N} neurons ≤ {np.sqrt(0.25 / N):.3f}")
        schemes_table
        """),
        md("""
        ## Part 2 — where Theorem 1 stops holding

        ### Depth

        Past the first layer a neuron's inputs no longer share one mean: input `j` of layer `k` is the ReLU of
        neuron `j` of layer `k − 1`, whose mean depends on that neuron's own skew. Then
        `E[Z | W] = Σⱼ μⱼ Wⱼ` is no longer proportional to `S`. A deep bias-free ReLU MLP
        (`skew.models.build_model("mlp")`: `ReLU → Linear` repeated, Glorot-uniform, N(0, 1) inputs):
        """),
        code("""
        deep = skew.models.build_model("mlp", depth=DEPTH, width=DEEP_WIDTH)
        skew.init.apply(deep, "xavier_uniform", generator=skew.seeding.generator(0, "init"))
        deep_data = gaussian_batches(DEEP_WIDTH)
        rep_deep = skew.report(deep, deep_data)
        depth_table = rep_deep.layers[["layer", "input_mean", "input_std", "skewed_0.1", "skewed_0.3",
                                       "agree_0.3", "spearman_s_p"]].copy()
        depth_table.insert(5, "corollary_0.3", skew.theory.expected_skewed_fraction(
            0.3, depth_table["input_mean"].to_numpy(), depth_table["input_std"].to_numpy()))
        depth_table
        """),
        md("""
        Why: for each layer, the spread of the per-input means μⱼ (their coefficient of variation across `j`),
        and how well `S` and the mean-weighted sum `Σⱼ μⱼ Wⱼ` rank the neurons' `p`. This cell computes the
        layers' inputs directly, once (the report itself never stores activations).
        """),
        code("""
        x = torch.cat(deep_data)
        rows = []
        with torch.no_grad():
            h = x
            for name, module in deep.named_children():
                if isinstance(module, nn.Linear):
                    mu_j = h.double().mean(0)
                    w = module.weight.double()
                    p = rep_deep.neurons.loc[rep_deep.neurons["layer"] == name, "p"].to_numpy()
                    rows.append({"layer": name, "CV of input means μⱼ": (mu_j.std() / mu_j.mean()).item(),
                                 "Spearman(S, p)": spearman(w.sum(1), p),
                                 "Spearman(Σⱼ μⱼ Wⱼ, p)": spearman(w @ mu_j, p)})
                h = module(h)
        why_depth = pd.DataFrame(rows)
        why_depth
        """),
        code("""
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), layout="constrained")
        skew.plot.skew_by_depth(rep_deep.layers, alpha=0.3, hue=None, ax=axes[0])
        rep_deep.plot_skew_vs_rowsum(layer="fc1", ax=axes[1])
        rep_deep.plot_skew_vs_rowsum(layer=f"fc{DEPTH}", ax=axes[2])
        plt.show()
        first, last = depth_table.iloc[0], depth_table.iloc[-1]
        print(f"fc1 → fc{DEPTH}: skewed at α = 0.3 {first['skewed_0.3']:.3f} → {last['skewed_0.3']:.3f}; "
              f"Spearman(S, p) {first.spearman_s_p:.3f} → {last.spearman_s_p:.3f}; "
              f"Spearman(Σ μⱼWⱼ, p) {why_depth.iloc[0, 3]:.3f} → {why_depth.iloc[-1, 3]:.3f}")
        """),
        md("""
        Read the table and the printed line: where the per-input means spread out (CV grows), `S` loses its
        grip on `p` while the mean-weighted sum keeps it, and the corollary (computed from each layer's pooled
        μ, σ) no longer matches the measured fractions.

        ### A random bias (PyTorch's default init)

        PyTorch's `Linear` draws its bias from U(±1/√n), independently of the weights, so it shifts each
        neuron's `p` in a direction that has nothing to do with `S`. The same default-initialised MLP twice:
        with its biases, and with the biases set to zero.
        """),
        code("""
        biased = skew.models.build_model("mlp", depth=DEPTH, width=BN_WIDTH, bias=True)
        skew.init.apply(biased, "default", generator=skew.seeding.generator(0, "init"))
        unbiased = copy.deepcopy(biased)
        with torch.no_grad():
            for module in unbiased.modules():
                if isinstance(module, nn.Linear):
                    module.bias.zero_()
        bias_data = gaussian_batches(BN_WIDTH)
        rep_b, rep_0 = skew.report(biased, bias_data), skew.report(unbiased, bias_data)
        rows = []
        for name, g in rep_b.neurons.groupby("layer", sort=False):
            g0 = rep_0.neurons[rep_0.neurons["layer"] == name]
            lay = rep_b.layers.set_index("layer").loc[name]
            rows.append({"layer": name,
                         "spread of μS": abs(lay.input_mean) * g["row_sum"].std(),
                         "spread of b": g["bias"].std(),
                         "Spearman(S, p)": spearman(g["row_sum"], g["p"]),
                         "Spearman(b, p)": spearman(g["bias"], g["p"]),
                         "Spearman(p_pred, p)": spearman(g["p_pred"], g["p"]),
                         "Spearman(S, p), b = 0": spearman(g0["row_sum"], g0["p"]),
                         "skewed_0.3": lay["skewed_0.3"],
                         "skewed_0.3, b = 0": rep_0.layers.set_index("layer").loc[name, "skewed_0.3"]})
        bias_table = pd.DataFrame(rows)
        bias_table
        """),
        md("""
        `spread of μS` is the standard deviation of the signal term μS across neurons, `spread of b` that of
        the bias. With default init each layer scales its signal down while the bias keeps its 1/√n size, so
        look at how their ratio moves with depth, and whether `Spearman(S, p)` follows it. `p_pred` includes the
        bias (`Φ((μS + b)/(σ‖W‖))`), which is why its correlation with `p` can stay high when `S` alone fails.
        """),
        code("""
        last = f"fc{DEPTH}"
        g = rep_b.neurons[rep_b.neurons["layer"] == last]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), layout="constrained")
        sc = axes[0].scatter(g["row_sum"], g["p"], c=g["bias"], cmap="coolwarm", s=10)
        fig.colorbar(sc, ax=axes[0], label="bias b")
        axes[0].set(title=f"{last} with PyTorch's random bias (count estimator)", xlabel="row sum S",
                    ylabel="p = P(Z > 0)")
        rep_0.plot_skew_vs_rowsum(layer=last, ax=axes[1])
        axes[1].set_title(f"{last}, same weights, bias set to 0")
        plt.show()
        """),
        md("""
        ### BatchNorm

        `Linear → BatchNorm → ReLU` blocks. skew measures at the `Linear`'s output, *before* BatchNorm, and in
        eval mode by default ([docs/definitions.md](../docs/definitions.md)). In **train mode** BatchNorm re-centres every channel on each batch, so
        (a) the BatchNorm output itself is never skewed, whatever the `Linear` does, and (b) every channel
        that reaches the next layer has the same mean, which restores Theorem 1's "one shared input mean"
        there. Fresh running statistics (mean 0, variance 1) make eval-mode BatchNorm almost the identity.
        """),
        code("""
        from collections import OrderedDict


        def bn_net(width):
            parts = [("act0", nn.ReLU())]
            for k in (1, 2, 3):
                parts += [(f"fc{k}", nn.Linear(width, width, bias=False)), (f"bn{k}", nn.BatchNorm1d(width)),
                          (f"act{k}", nn.ReLU())]
            parts.append(("fc4", nn.Linear(width, width, bias=False)))
            return nn.Sequential(OrderedDict(parts))


        bn = bn_net(BN_WIDTH)
        skew.init.apply(bn, "xavier_uniform", generator=skew.seeding.generator(0, "init"))
        bn_data = gaussian_batches(BN_WIDTH)
        cols = ["layer", "skewed_0.1", "skewed_0.3", "spearman_s_p", "agree_0.3"]
        rep_eval = skew.report(bn, bn_data)                  # mode="eval", the default
        rep_train = skew.report(bn, bn_data, mode="train")   # BatchNorm uses batch statistics
        pd.concat({"eval mode (default)": rep_eval.layers[cols].set_index("layer"),
                   "train mode": rep_train.layers[cols].set_index("layer")}, axis=1)
        """),
        md("""
        And the BatchNorm output itself, measured by hand on one batch (on a copy, so the running
        statistics of `bn` stay fresh): fraction of channels skewed at α = 0.3 before BatchNorm, after it in
        eval mode, after it in train mode.
        """),
        code("""
        probe = copy.deepcopy(bn)
        x = bn_data[0]
        with torch.no_grad():
            probe.eval()
            z_linear = probe.fc1(probe.act0(x))
            z_bn_eval = probe.bn1(z_linear)
            probe.train()
            z_bn_train = probe.bn1(z_linear)


        def skewed_fraction(z, alpha=0.3):
            return ((z > 0).double().mean(0) - 0.5).abs().gt(alpha).double().mean().item()


        pd.Series({"fc1 output (what skew measures)": skewed_fraction(z_linear),
                   "bn1 output, eval mode": skewed_fraction(z_bn_eval),
                   "bn1 output, train mode": skewed_fraction(z_bn_train)}, name="skewed at α = 0.3").to_frame()
        """),
        md("""
        ### Correlated real inputs: digits

        The theorem needs i.i.d. inputs. Pixels of handwritten digits are neither identically distributed
        (border pixels are almost always blank) nor independent. One `Linear(64 → 1000, bias=False)` layer,
        Glorot-uniform, fed all 1,797 digits standardised (overall mean ≈ 0), and the ReLU of them (mean > 0).
        As a control, the same pixels **shuffled within each image** (each image's values in a random order):
        the marginal distribution is unchanged, the per-pixel structure is gone.

        Besides Theorem 1's `p_pred`, the last column uses the real per-pixel means `m` and covariance `C`:
        `Φ(W·m / √(Wᵀ C W))`, the CLT without the i.i.d. assumption.
        """),
        code("""
        digits = skew.data.build_data("digits", shape=(64,), batch_size=599, batches=3)
        pixels = torch.cat([xb for xb, _ in digits])
        g = skew.seeding.generator(1, "shuffle")
        shuffled = torch.stack([img[torch.randperm(64, generator=g)] for img in pixels])
        weights = nn.Linear(64, 1000, bias=False)
        skew.init.apply(weights, "xavier_uniform", generator=skew.seeding.generator(0, "init"))


        def digits_row(label, front, inputs):
            net = nn.Sequential(front, copy.deepcopy(weights))
            r = skew.report(net, list(inputs.split(599)))
            lay, nd = r.layers.iloc[0], r.neurons
            xin = front(inputs).double()
            m, cov = xin.mean(0), torch.cov(xin.T)
            w = net[1].weight.detach().double()
            p_mvn = torch.special.ndtr(w @ m / ((w @ cov) * w).sum(1).sqrt()).numpy()
            return {"inputs": label, "μ": lay.input_mean, "σ": lay.input_std,
                    "skewed_0.1": lay["skewed_0.1"], "skewed_0.3": lay["skewed_0.3"],
                    "corollary_0.3": skew.theory.expected_skewed_fraction(0.3, lay.input_mean, lay.input_std),
                    "agree_0.3": lay["agree_0.3"],
                    "mean |p − p_pred|": (nd["p"] - nd["p_pred"]).abs().mean(),
                    "mean |p − Φ(W·m/√WᵀCW)|": np.abs(nd["p"].to_numpy() - p_mvn).mean()}


        digits_table = pd.DataFrame([
            digits_row("digits", nn.Identity(), pixels),
            digits_row("digits, shuffled", nn.Identity(), shuffled),
            digits_row("ReLU(digits)", nn.ReLU(), pixels),
            digits_row("ReLU(digits), shuffled", nn.ReLU(), shuffled),
        ])
        digits_table
        """),
        md("""
        Compare each real-input row with its shuffled control: the shuffled rows test Theorem 1 on the same
        values without the pixel structure, the real rows show how far correlated, non-identical inputs move
        the measured skew away from `p_pred` and the corollary, and the last column shows what replaces
        Theorem 1 there (per-input means and covariances, not one μ and σ).

        ## Recap, from this run's numbers
        """),
        code("""
        print(f"wide first layer: agreement of |S| > λ with skewed: {layer['agree_0.1']:.3f} (α = 0.1), "
              f"{layer['agree_0.3']:.3f} (α = 0.3); measured {layer['skewed_0.3']:.3f} vs corollary "
              f"{skew.theory.expected_skewed_fraction(0.3, mu, sigma):.3f} skewed at α = 0.3")
        print(f"six i.i.d. schemes at the first layer: skewed_0.3 from {schemes_table['skewed_0.3'].min():.3f} "
              f"to {schemes_table['skewed_0.3'].max():.3f}")
        print(f"depth (fc1 → fc{DEPTH}): Spearman(S, p) {depth_table.spearman_s_p.iloc[0]:.3f} → "
              f"{depth_table.spearman_s_p.iloc[-1]:.3f}, skewed_0.3 {depth_table['skewed_0.3'].iloc[0]:.3f} → "
              f"{depth_table['skewed_0.3'].iloc[-1]:.3f}")
        print(f"random bias, last layer: Spearman(S, p) {bias_table['Spearman(S, p)'].iloc[-1]:.3f} with bias, "
              f"{bias_table['Spearman(S, p), b = 0'].iloc[-1]:.3f} without")
        print(f"BatchNorm, last Linear: skewed_0.3 {rep_eval.layers['skewed_0.3'].iloc[-1]:.3f} (eval) vs "
              f"{rep_train.layers['skewed_0.3'].iloc[-1]:.3f} (train)")
        d = digits_table.set_index("inputs")
        print(f"ReLU(digits): mean |p − p_pred| {d.loc['ReLU(digits)', 'mean |p − p_pred|']:.3f}, shuffled "
              f"control {d.loc['ReLU(digits), shuffled', 'mean |p − p_pred|']:.3f}")
        """),
    ]


# ==================================================================================================
# 03 — compare initializations
# ==================================================================================================
def compare_inits() -> list:
    return [
        md("""
        # Comparing initialization schemes

        `skew.compare(model_or_factory, data, schemes)` builds a fresh copy of the model per scheme (and
        seed), initializes it with `skew.init.apply`, measures it with `skew.report` and collects everything in
        a `Comparison`: tidy `.neurons` / `.layers` frames with `init` and `seed` columns, a Table-1 style
        `.summary()`, pairwise `.tests`, and the underlying `.reports`.

        Part 1 reproduces the [Table 1 setup](../docs/experiments.md) with **every** scheme: a bias-free MLP of 3 `ReLU → Linear`
        layers of 1000 units fed 10,000 N(0, 1) samples (smaller in quick mode). Part 2 does the same on a
        ResNet-18 with digits. Skew is `|p − ½|` with p the **count** estimator; a neuron is skewed at α
        when its skew exceeds α (α = 0.1 and 0.3).
        """),
        code("""
        import os

        QUICK = os.environ.get("SKEW_QUICK") == "1"  # the test suite sets SKEW_QUICK=1 for small sizes
        WIDTH, SAMPLES = (256, 2000) if QUICK else (1000, 10000)
        IMAGE_SIZE, BATCHES, BATCH_SIZE = (32, 1, 16) if QUICK else (64, 2, 32)  # ResNet-18 on digits
        """),
        code(IMPORTS + """import torchvision

# compare's Kolmogorov–Smirnov tests fall back to the asymptotic p-value on large samples and say so
warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful")
"""),
        md("""
        ## The schemes

        `skew.init.schemes()` lists them; `skew.init.get_scheme(name)` describes one.
        """),
        code("""
        SCHEMES = skew.init.schemes()
        pd.DataFrame([{"scheme": s, "draws": skew.init.get_scheme(s).summary,
                       "random": skew.init.get_scheme(s).random} for s in SCHEMES]).set_index("scheme")
        """),
        md("""
        ## Part 1 — a deep bias-free MLP (Table 1)

        `skew.models.build_model("mlp", depth=3, width=WIDTH)` is `act1 → fc1 → act2 → fc2 → act3 → fc3` with
        ReLU activations and no bias. LSUV gets the first batch as its data.
        """),
        code("""
        data = skew.data.build_data("gaussian", shape=(WIDTH,), batch_size=1000, batches=SAMPLES // 1000)
        cmp = skew.compare(lambda: skew.models.build_model("mlp", depth=3, width=WIDTH), data, SCHEMES, seeds=0)
        cmp
        """),
        md("""
        The same table as a DataFrame, transposed so that each scheme is a row: % of skewed neurons per layer
        at α = 0.1 and α = 0.3, next to the pairwise OUI of the last layer (its activation patterns' diversity:
        1 = patterns differ in half the units or more, 0 = every sample gives the same pattern).
        """),
        code("""
        table1 = cmp.summary(percent=True).T.unstack("threshold").sort_index(axis=1, level=0)
        table1 = table1.reindex(SCHEMES)
        last = cmp.layers[cmp.layers["layer"] == "fc3"].set_index("init")
        table1[("fc3", "OUI (pairwise)")] = last["oui_pairwise"]
        table1[("all", "degenerate")] = cmp.layers.groupby("init")["degenerate"].sum()
        table1.round(3)
        """),
        md("""
        **Schemes that differ only in scale measure the same.** In a bias-free ReLU network, multiplying a
        layer's weights by c > 0 multiplies every later pre-activation by c and leaves every sign unchanged, so
        p is scale-invariant. `compare` draws every random scheme from a generator with the same seed, and
        `torch.nn.init`'s uniform (and normal) fills are the same draws rescaled — so such schemes should give
        the same p, up to float rounding (which can flip the sign of a `Z` within rounding error of 0 on a few
        samples). Grouping the schemes whose per-neuron p differ by at most 0.001 everywhere:
        """),
        code("""
        p = {s: cmp.neurons.loc[cmp.neurons["init"] == s, "p"].to_numpy() for s in SCHEMES}
        groups = []
        for s in SCHEMES:
            for group in groups:
                if np.abs(p[group[0]] - p[s]).max() <= 1e-3:
                    group.append(s)
                    break
            else:
                groups.append([s])
        for group in groups:
            if len(group) > 1:
                gap = max(np.abs(p[group[0]] - p[t]).max() for t in group[1:])
                print(f"same p (largest difference {gap:.1e}): {', '.join(group)}")
        print("unlike any other:", ", ".join(g[0] for g in groups if len(g) == 1))
        """),
        md("""
        ### Skew by depth

        The fraction of skewed neurons per layer and scheme (α = 0.1 left, α = 0.3 right):
        """),
        code("""
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), layout="constrained")
        cmp.skew_by_depth(alpha=0.1, ax=axes[0])
        cmp.skew_by_depth(alpha=0.3, ax=axes[1])
        for ax in axes:
            ax.legend(fontsize="x-small", ncol=2, title="init")
        plt.show()
        """),
        md("""
        ### Activation states

        One raster per scheme of layer `fc3`: 250 samples (rows) × 250 neurons (columns), white = active.
        Vertical bands are skewed neurons; a balanced layer looks like noise.
        """),
        code("""
        fig, axes = plt.subplots(3, 4, figsize=(16, 11), layout="constrained")
        for ax, s in zip(axes.flat, SCHEMES):
            skew.plot.activation_states(cmp.reports[(s, 0)], layer="fc3", ax=ax)
            frac = cmp.reports[(s, 0)].layers.set_index("layer").loc["fc3", "skewed_0.3"]
            ax.set_title(f"{s}: fc3, {100 * frac:.0f}% skewed at α = 0.3", fontsize="medium")
            ax.get_legend().remove()
        axes.flat[-1].axis("off")
        fig.suptitle("Activation states of fc3 (white = Z > 0, black = Z ≤ 0)")
        plt.show()
        """),
        md("""
        ### Row sums and skew

        The row sums `S` of `fc1` per scheme, split by skewed / not skewed at α = 0.3, with ±λ(0.3). At the
        first layer the inputs are i.i.d. ReLU(N(0, 1)), so Theorem 1 applies (notebook 02). Each panel has its
        own x range: `uniform` (U(−1, 1) weights, Var(S) = n/3) has far wider row sums, and λ scales with them.
        """),
        code("""
        fig, axes = plt.subplots(3, 4, figsize=(16, 10), layout="constrained")
        cmp.rowsum_hist(layer="fc1", alpha=0.3, xlim=None, axes=axes.flat[:len(SCHEMES)])
        for ax, s in zip(axes.flat, SCHEMES):
            ax.set_title(s, fontsize="medium")
        axes.flat[-1].axis("off")
        fig.suptitle("Row sums S of fc1 per scheme, stacked by skewed / not skewed at α = 0.3 (count estimator of p); "
                     "dashed: ±λ(0.3)")
        plt.show()
        """),
        md("""
        The variance of `S` is what separates the schemes at the first layer; `skew.theory.rowsum_variance`
        gives it in closed form (NaN for LSUV, which depends on the data):
        """),
        code("""
        shape = (WIDTH, WIDTH)
        first = cmp.neurons[cmp.neurons["layer"] == "fc1"]
        pd.DataFrame([{"scheme": s, "Var(S) measured": first.loc[first["init"] == s, "row_sum"].var(ddof=0),
                       "Var(S) theory": skew.theory.rowsum_variance(s, shape)} for s in SCHEMES]).set_index("scheme")
        """),
        md("""
        Distribution of the neurons' skew in the last layer for the five schemes of the paper's Table 1
        (`skew.compare.DEFAULT_SCHEMES`):
        """),
        code("""
        from skew.compare import DEFAULT_SCHEMES

        subset = cmp.neurons[cmp.neurons["init"].isin(DEFAULT_SCHEMES)]
        ax = skew.plot.skew_hist(subset, layer="fc3", hue="init")
        """),
        md("""
        `cmp.tests` holds, per layer and pair of schemes, two-sample tests on the per-neuron skew
        (Kolmogorov–Smirnov and Mann–Whitney p-values, Cliff's delta δ = P(skew_A > skew_B) − P(skew_A < skew_B)).
        Sinusoidal against the others in `fc3`:
        """),
        code("""
        t = cmp.tests
        t[(t["layer"] == "fc3") & ((t["init_a"] == "sinusoidal") | (t["init_b"] == "sinusoidal"))][
            ["init_a", "init_b", "median_skew_a", "median_skew_b", "ks_p", "mw_p", "cliffs_delta",
             "diff_skewed_0.3"]]
        """),
        md("""
        ## Part 2 — ResNet-18 on digits

        Every scheme (four in quick mode) applied to every `Conv2d` / `Linear` of torchvision's ResNet-18 (`weights=None`, 10
        classes), BatchNorm at its fresh statistics, measured in eval mode on digits resized to
        IMAGE_SIZE × IMAGE_SIZE. For reference, the model as torchvision's constructor initializes it
        (Kaiming-normal, fan-out) is measured too: `default` is PyTorch's per-module default, not that.
        """),
        code("""
        digits = skew.data.build_data("digits", shape=(3, IMAGE_SIZE, IMAGE_SIZE), batch_size=BATCH_SIZE,
                                      batches=BATCHES)
        RESNET_SCHEMES = ["default", "xavier_uniform", "orthogonal", "sinusoidal"] if QUICK else SCHEMES


        def resnet():
            return torchvision.models.resnet18(weights=None, num_classes=10)


        cmp_r = skew.compare(resnet, digits, RESNET_SCHEMES, seeds=0)
        torch.manual_seed(skew.seeding.child_seed(0, "init"))  # the constructor's init: compare's init stream
        constructor = skew.report(resnet(), digits).layers.assign(init="torchvision constructor", seed=0)
        layers_r = pd.concat([cmp_r.layers, constructor], ignore_index=True)
        fig, axes = plt.subplots(2, 1, figsize=(13, 9), layout="constrained")
        for ax, alpha in zip(axes, (0.1, 0.3)):
            skew.plot.skew_by_depth(layers_r, alpha=alpha, ax=ax)
            ax.legend(fontsize="x-small", ncol=3, title="init")
        plt.show()
        """),
        md("""
        Per scheme, the mean over layers of the skewed fraction (each layer counts once), at both thresholds,
        and the number of degenerate neurons (pre-activation variance zero up to rounding):
        """),
        code("""
        layers_r.groupby("init", sort=False).agg(
            skewed_01=("skewed_0.1", "mean"), skewed_03=("skewed_0.3", "mean"),
            degenerate=("degenerate", "sum"), dead=("dead", "sum"), always_on=("always_on", "sum")
        ).rename(columns={"skewed_01": "mean skewed_0.1", "skewed_03": "mean skewed_0.3"})
        """),
        md("""
        Caveat when reading the deepest layers: at IMAGE_SIZE × IMAGE_SIZE inputs `layer4` works on a small
        spatial grid, so each of its neurons sees few samples (the `samples` column of `cmp_r.layers`) and its
        p is a noisier estimate.
        """),
        code("""
        cmp_r.layers.loc[cmp_r.layers["init"] == "xavier_uniform", ["layer", "neurons", "samples"]].T
        """),
    ]


# ==================================================================================================
# 04 — sinusoidal structure
# ==================================================================================================
def sinusoidal() -> list:
    return [
        md(r"""
        # The structure of sinusoidal weights

        The sinusoidal initialization (arXiv 2505.12909) is deterministic:

        $$W_{ij} = a \sin\!\left(2\pi i\,\frac{j}{n} + \frac{2\pi i}{m}\right), \qquad i = 1..m,\ j = 0..n-1,$$

        row `i` makes exactly `i` full oscillations, and `a` sets Glorot's variance. Its values follow the
        arcsine law, but the matrix has structure that random schemes lack:

        1. **Row cancellation** (m < n): every row sums to 0, so `S = 0` for every neuron.
        2. **Rank loss** of square layers (m = n even): row `n − i` is minus row `i`, rows `n/2` and `n` are
           zero: rank `n/2 − 1`.
        3. **Constant rows** when m ≥ n: rows `i = n, 2n, …` are constant (largest possible `|S|/‖W‖ = √n`);
           rows `i` and `n − i` share a frequency.

        Each section shows one property with `skew.init.sinusoidal_` and `skew.weights`, and the last measures
        what it does to the skew (`skew.report`, ReLU(N(0, 1)) inputs, count estimator of p, α = 0.1 and 0.3).
        Careful with indices: the formula's row `i` is neuron `i − 1` in skew's 0-based tables.
        """),
        code("""
        import os

        QUICK = os.environ.get("SKEW_QUICK") == "1"  # the test suite sets SKEW_QUICK=1 for small sizes
        BIG = 256 if QUICK else 1000          # the large square layer
        SAMPLES = 2000 if QUICK else 10000    # input samples for the skew measurements
        """),
        code(IMPORTS + """

def sinusoidal_layer(m, n, dtype=torch.float32):
    \"\"\"A bias-free Linear(n → m) with sinusoidal weights.\"\"\"
    layer = nn.Linear(n, m, bias=False, dtype=dtype)
    skew.init.sinusoidal_(layer.weight)
    return layer
"""),
        md("""
        ## The values: heatmap and arcsine histogram

        A 101 × 101 sinusoidal matrix (the paper's Fig. 3) and the histogram of its values with the arcsine
        density `1/(π√(a² − w²))` (Fig. 2). For comparison, the `arcsine` scheme draws i.i.d. values with the
        same law, no structure.
        """),
        code("""
        w101 = sinusoidal_layer(101, 101).weight.detach()
        w_arc = torch.empty(101, 101)
        skew.init.arcsine_(w_arc, generator=skew.seeding.generator(0, "init"))
        fig, axes = plt.subplots(1, 3, figsize=(17, 4.6), layout="constrained")
        skew.plot.weight_heatmap(w101, scheme="sinusoidal", ax=axes[0])
        skew.plot.weight_hist(w101, scheme="sinusoidal", ax=axes[1])
        skew.plot.weight_hist(w_arc, scheme="arcsine", ax=axes[2])
        plt.show()
        """),
        md("""
        ## 1. Row cancellation (m < n)

        `Σⱼ sin(2π i j/n + φ) = 0` whenever `i` is not a multiple of `n`; with m < n no row index is. The
        largest `|S|` over all rows, for a few shapes, in float32 and float64, against Glorot-uniform weights of
        the same shape:
        """),
        code("""
        rows = []
        for m, n in [(10, 64), (100, 784), (300, 1000), (999, 1000)]:
            glorot = torch.empty(m, n)
            torch.nn.init.xavier_uniform_(glorot, generator=skew.seeding.generator(0, "init"))
            rows.append({"shape (m, n)": (m, n),
                         "max |S| float32": sinusoidal_layer(m, n).weight.sum(1).abs().max().item(),
                         "max |S| float64": sinusoidal_layer(m, n, torch.float64).weight.sum(1).abs().max().item(),
                         "max |S| Glorot": glorot.sum(1).abs().max().item(),
                         "std of S, Glorot": glorot.sum(1).std().item()})
        pd.DataFrame(rows)
        """),
        md("""
        ## 2. Rank loss of square layers

        For m = n, row `n − i` has phase `2π(n − i)/n = −2π i/n` and frequency `−i` modulo n: it is exactly
        minus row `i`. Rows `n/2` and `n` (n even) are `sin(πj + π) = 0` and `sin(2πj + 2π) = 0`. So a square
        layer keeps `n/2 − 1` independent rows. `skew.weights.layer_table` reads rank, zero rows and
        antiparallel pairs off the weights; odd n is included to show where the rule changes.
        """),
        code("""
        rows = []
        for n in [6, 7, 10, 64, 101, BIG]:
            t = skew.weights.layer_table(sinusoidal_layer(n, n), scheme="sinusoidal").iloc[0]
            rows.append({"n": n, "rank": t["rank"], "n/2 − 1": n / 2 - 1, "zero rows": t.zero_rows,
                         "antiparallel pairs": t.antiparallel_pairs, "constant rows": t.constant_rows,
                         "var ratio (to Glorot)": t.var_ratio})
        pd.DataFrame(rows)
        """),
        code("""
        w = sinusoidal_layer(BIG, BIG, torch.float64).weight.detach()
        norms = w.norm(dim=1)
        zero = (norms < 1e-9 * norms.max()).nonzero().flatten() + 1  # 1-based row index i
        i = torch.arange(1, BIG // 2)
        gap = (w[BIG - i - 1] + w[i - 1]).abs().max().item()  # row n − i plus row i
        print(f"n = {BIG}: zero rows at i = {zero.tolist()}; max |row(n − i) + row(i)| over i < n/2: {gap:.2g}")
        """),
        md("""
        ## 3. m ≥ n: constant rows and shared frequencies

        With m ≥ n the frequency `i` wraps around modulo n: rows `i = n, 2n, …` have frequency 0, i.e.
        `W_ij = a sin(2π i/m)` for every j — constant rows with `|S|/‖W‖ = √n`, the largest possible; rows `i`
        and `n − i` (and `i + n`) share a frequency. A small 40 × 16 example, then the tables for 250 × 100:
        """),
        code("""
        small = sinusoidal_layer(40, 16).weight.detach()
        fig, axes = plt.subplots(1, 2, figsize=(14, 4.2), layout="constrained")
        skew.plot.weight_heatmap(small, scheme="sinusoidal", ax=axes[0])
        for i in (3, 13, 16, 32):
            axes[1].plot(range(16), small[i - 1], marker="o", ms=3, label=f"row i = {i} (S = {small[i - 1].sum():.2f})")
        axes[1].set(title="rows of a 40 × 16 sinusoidal matrix: 3 and 13 = 16 − 3 share a frequency,\\n"
                          "16 and 32 are constant", xlabel="input j", ylabel="weight")
        axes[1].legend(fontsize="small")
        plt.show()
        """),
        code("""
        M_TALL, N_TALL = 250, 100
        tall = sinusoidal_layer(M_TALL, N_TALL)
        neurons = skew.weights.neuron_table(tall)
        big_s = neurons[neurons["row_sum"].abs() > 1e-3].assign(i=lambda d: d["neuron"] + 1)
        print("rows with |S| > 1e-3:")
        print(big_s[["i", "row_sum", "row_norm", "row_sum_scaled"]].to_string(index=False))
        print(f"√n = {np.sqrt(N_TALL):.4f}; |S|/‖W‖ of those rows: "
              f"{(big_s['row_sum'].abs() / big_s['row_norm']).round(4).tolist()}")
        skew.weights.layer_table(tall, scheme="sinusoidal")[
            ["layer", "m", "n", "rank", "zero_rows", "constant_rows", "parallel_pairs", "antiparallel_pairs",
             "max_abs_s_over_norm"]]
        """),
        md("""
        The table also counts a zero row: for this shape row `i = 250` is `sin(5πj + 2π) = 0` for every integer
        `j` (any row with `2i/n` an integer and `2i/m` an integer is zero).
        """),
        md("""
        ## 4. What each property does to the measured skew

        `ReLU → Linear(n → m, bias=False)` fed N(0, 1) samples, so the layer sees i.i.d. ReLU(N(0, 1)) inputs
        (μ > 0): Theorem 1 applies and a neuron's skew follows its row sum. Three shapes, sinusoidal against
        Glorot-uniform:

        * m < n: all `S = 0` → expect no skewed neuron (rows with `2i/n` and `2i/m` both integers are zero, such
          as `i = n/2` when m = n/2: degenerate neurons);
        * square: zero rows → degenerate neurons (`std_Z = 0`, reported separately, never counted as skewed
          or balanced);
        * m ≥ n: constant rows → `Z = a sin(2πi/m) Σⱼ xⱼ` has one sign for every sample: dead or always on.
        """),
        code("""
        rows, flagged, reports = [], [], {}
        for m, n in [(BIG // 2, BIG), (BIG, BIG), (M_TALL, N_TALL)]:
            data = skew.data.build_data("gaussian", shape=(n,), batch_size=1000, batches=SAMPLES // 1000)
            for scheme in ("sinusoidal", "xavier_uniform"):
                net = nn.Sequential(nn.ReLU(), nn.Linear(n, m, bias=False))
                skew.init.apply(net, scheme, generator=skew.seeding.generator(0, "init"))
                r = reports[(m, n, scheme)] = skew.report(net, data)
                lay = r.layers.iloc[0]
                rows.append({"shape (m, n)": (m, n), "scheme": scheme, "skewed_0.1": lay["skewed_0.1"],
                             "skewed_0.3": lay["skewed_0.3"], "degenerate": lay.degenerate, "dead": lay.dead,
                             "always_on": lay.always_on, "max |S|": r.neurons["row_sum"].abs().max()})
                if scheme == "sinusoidal":
                    nd = r.neurons
                    odd = nd[nd["degenerate"] | nd["dead"] | nd["always_on"] | (nd["skew"] > 0.1)]
                    flagged.append(odd.assign(shape=f"{m}×{n}", i=odd["neuron"] + 1))
        pd.DataFrame(rows)
        """),
        md("""
        The sinusoidal neurons that are degenerate, dead, always on or skewed at α = 0.1, with their row
        index `i` (1-based, as in the formula):
        """),
        code("""
        pd.concat(flagged)[["shape", "i", "row_sum", "row_norm", "p", "skew", "std", "degenerate", "dead",
                            "always_on"]]
        """),
        code("""
        r = reports[(M_TALL, N_TALL, "sinusoidal")]
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.3), layout="constrained")
        r.plot_skew_vs_rowsum(ax=axes[0])
        const = r.neurons[r.neurons["dead"] | r.neurons["always_on"]]
        axes[0].scatter(const["row_sum"], const["p"], s=90, facecolors="none", edgecolors="k", label="constant rows")
        for _, row in const.iterrows():
            axes[0].annotate(f"i = {row.neuron + 1}", (row.row_sum, row.p), textcoords="offset points",
                             xytext=(10, -14 if row.p > 0.5 else 8))
        axes[0].legend(fontsize="small", loc="center left")
        r.plot_activation_states(ax=axes[1])
        for ax in axes:
            ax.set_title(f"sinusoidal {M_TALL} × {N_TALL}: " + ax.get_title(), fontsize="medium")
        plt.show()
        """),
        md("""
        Left: every neuron with `S = 0` sits at `p ≈ ½`; the constant rows sit far out at `p = 0` or `p = 1`.
        Right: in the raster (all 250 neurons) they are the only solid columns — white for a positive
        `sin(2πi/m)`, black for a negative one — and the zero row's column is black because its `Z` is exactly
        0 (a degenerate neuron, left out of the left panel). Every other neuron fires on about half of the
        samples. So at
        the first layer the sinusoidal scheme removes skew by construction when m < n, costs degenerate
        neurons in square layers, and creates a few maximally skewed ones when m ≥ n. Deeper layers see
        non-i.i.d. inputs and Theorem 1 no longer ties skew to `S` (notebook 02); notebook 03 measures the
        sinusoidal scheme there against the others.
        """),
    ]


NOTEBOOKS: dict[str, Callable[[], list]] = {
    "01-quickstart": quickstart,
    "02-theorem-1": theorem1,
    "03-compare-inits": compare_inits,
    "04-sinusoidal-structure": sinusoidal,
}


# ---- writing and executing -----------------------------------------------------------------------
def make(stem: str) -> nbformat.NotebookNode:
    """The notebook ``stem`` without outputs, with fixed cell ids."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNEL)
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = NOTEBOOKS[stem]()
    for i, cell in enumerate(nb.cells):
        cell.id = f"{stem.split('-')[0]}-{i:02d}"
    nbformat.validate(nb)
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path, quick: bool) -> float:
    """Run every cell in place (kernel ``python3``, working directory ``cwd``); returns the seconds taken."""
    saved = os.environ.get("SKEW_QUICK")
    os.environ["SKEW_QUICK"] = "1" if quick else "0"
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=1200, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(cwd)}}).execute()
        return time.perf_counter() - start
    finally:
        if saved is None:
            os.environ.pop("SKEW_QUICK", None)
        else:
            os.environ["SKEW_QUICK"] = saved


def _write(nb: nbformat.NotebookNode, path: Path) -> None:
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="build only notebooks whose name starts with one of these")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="execute at SKEW_QUICK=1 sizes in a temp dir, store nothing")
    group.add_argument("--no-execute", action="store_true", help="write the notebooks without running them")
    args = parser.parse_args(argv)
    stems = [s for s in NOTEBOOKS if not args.only or any(s.startswith(o) for o in args.only)]
    if not stems:
        parser.error(f"no notebook matches {args.only}; names are {', '.join(NOTEBOOKS)}")
    for stem in stems:
        nb = make(stem)
        if args.no_execute:
            _write(nb, HERE / f"{stem}.ipynb")
            print(f"{stem}: written (not executed)")
        elif args.quick:
            with tempfile.TemporaryDirectory() as tmp:
                seconds = execute(nb, Path(tmp), quick=True)
            print(f"{stem}: quick run {seconds:.1f} s (nothing stored)")
        else:
            seconds = execute(nb, HERE, quick=False)
            _write(nb, HERE / f"{stem}.ipynb")
            print(f"{stem}: executed at full size in {seconds:.1f} s, written with outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
