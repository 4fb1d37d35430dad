"""Compare initialization schemes on one model: tidy frames, per-layer tests, Table-1 style summary.

:func:`compare` initializes a fresh copy of a model with each scheme (and each seed), measures it with
:func:`skew.report`, and gathers the results into a :class:`Comparison`:

- ``.neurons``: one row per (init, seed, layer, neuron), the Report's neuron columns plus ``init``, ``seed``;
- ``.layers``: one row per (init, seed, layer);
- ``.tests``: for each layer and pair of schemes, a two-sample comparison of the per-neuron skew
  ``|p - 1/2|`` (count estimator, degenerate neurons left out, seeds pooled): Kolmogorov-Smirnov and
  Mann-Whitney p-values, Cliff's delta and the difference in skewed fraction at each threshold;
- ``.reports``: the underlying :class:`skew.result.Report` objects keyed by ``(init, seed)``.

Example:
    >>> import skew, torch
    >>> factory = lambda: torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(64, 32, bias=False))
    >>> batches = [torch.randn(256, 64) for _ in range(2)]
    >>> cmp = skew.compare(factory, batches, ["xavier_uniform", "sinusoidal"])  # doctest: +SKIP
    >>> cmp.summary()  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from skew._checks import thresholds as check_thresholds
from skew._io import atomic_write, path_arg, write_csv
from skew.errors import SkewError
from skew.seeding import child_seed
from skew.seeding import generator as init_generator

__all__ = ["AS_BUILT", "Comparison", "DEFAULT_SCHEMES", "cliffs_delta", "compare"]

#: The schemes of the paper's Table 1.
DEFAULT_SCHEMES: tuple[str, ...] = ("xavier_uniform", "kaiming_uniform", "orthogonal", "lsuv", "sinusoidal")

#: Pseudo-scheme: measure the model as the factory built it (e.g. torchvision's own constructor init).
AS_BUILT = "as_built"

_MANIFEST_FORMAT = "skew.Comparison"


def cliffs_delta(a: Sequence[float], b: Sequence[float]) -> float:
    """Cliff's delta (equal to the rank-biserial correlation) between two samples.

    .. math:: \\delta = P(A > B) - P(A < B) = \\frac{2 U_A}{n_A n_B} - 1

    with :math:`U_A` the Mann-Whitney statistic of ``a`` (ties count one half). It ranges over
    [-1, 1]: +1 when every value of ``a`` exceeds every value of ``b``. NaN when a sample is empty.

    Example:
        >>> cliffs_delta([3, 4], [1, 2])
        1.0
        >>> cliffs_delta([1, 2], [1, 2])
        0.0
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.size == 0 or b.size == 0:
        return float("nan")
    b_sorted = np.sort(b)
    below = np.searchsorted(b_sorted, a, side="left")  # values of b strictly below each a
    not_above = np.searchsorted(b_sorted, a, side="right")  # values of b <= each a
    greater = below.sum()
    less = (b.size - not_above).sum()
    return float((greater - less) / (a.size * b.size))


def _is_one_shot(loader: Any) -> bool:
    from skew.batches import iter_batches

    return iter_batches(loader) is loader


def _first_input(loader: Any, input_fn: Callable | None) -> Any:
    """The first batch's model input (what LSUV forwards): a tensor when the model takes one argument."""
    from skew.batches import iter_batches, model_inputs

    batch = next(iter_batches(loader), None)
    if batch is None:
        raise SkewError("the loader yields no batches; pass a non-empty DataLoader or list of batches")
    args, kwargs = model_inputs(batch, input_fn)
    if len(args) == 1 and not kwargs:
        return args[0]
    if kwargs and not args:
        return kwargs
    return batch if input_fn is None else input_fn(batch)


def _make_builder(model: nn.Module | Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    if isinstance(model, nn.Module):
        return lambda: copy.deepcopy(model)
    if callable(model):

        def build() -> nn.Module:
            built = model()
            if not isinstance(built, nn.Module):
                raise SkewError(
                    f"the model factory returned {type(built).__name__}, not an nn.Module; "
                    "pass a zero-argument function that builds the model, or the model itself"
                )
            return built

        return build
    raise SkewError(
        f"model must be an nn.Module or a zero-argument factory, got {type(model).__name__}; "
        "pass e.g. lambda: MyNet() or the model itself (it is deep-copied per scheme)"
    )


def _schemes_list(schemes: str | Iterable[str]) -> list[str]:
    if isinstance(schemes, str):
        schemes = [s.strip() for s in schemes.split(",") if s.strip()]
    try:
        schemes = list(schemes)
    except TypeError:
        raise SkewError(f"schemes={schemes!r} is not a list of scheme names; pass e.g. ['xavier_uniform', "
                        "'sinusoidal'] or 'xavier_uniform,sinusoidal'") from None
    if not schemes:
        raise SkewError("schemes is empty; pass at least one scheme name, e.g. ['xavier_uniform', 'sinusoidal']")
    wrong = [s for s in schemes if not isinstance(s, str)]
    if wrong:
        raise SkewError(f"schemes holds {wrong[0]!r:.60}, which is no scheme name; pass names such as "
                        "['xavier_uniform', 'sinusoidal'] (options spelled like 'uniform:5')")
    if len(set(schemes)) != len(schemes):
        raise SkewError(f"schemes {schemes} repeats a name; list each scheme once")
    return schemes


def _seeds_list(seeds: int | Iterable[int]) -> list[int]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = [int(seeds)]
    bad = f"seeds={seeds!r} is not an integer or a list of integers; pass e.g. seeds=(0, 1)"
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise SkewError(bad)
    seeds = list(seeds)
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
        raise SkewError(bad)
    seeds = [int(s) for s in seeds]
    if any(s < 0 for s in seeds):
        raise SkewError(f"seeds {seeds} holds a negative value; pass non-negative integers, e.g. seeds=(0, 1)")
    if not seeds:
        raise SkewError("seeds is empty; pass at least one seed, e.g. seeds=(0,)")
    if len(set(seeds)) != len(seeds):
        raise SkewError(f"seeds {seeds} repeats a value; list each seed once")
    return seeds


def compare(
    model: nn.Module | Callable[[], nn.Module],
    loader: Iterable,
    schemes: str | Iterable[str] = DEFAULT_SCHEMES,
    *,
    seeds: int | Iterable[int] = (0,),
    data_for_lsuv: Any = None,
    layers=None,
    thresholds: Sequence[float] = (0.1, 0.3),
    max_batches: int | None = None,
    device=None,
    progress=None,
    at: str = "layers",
    **report_kwargs,
) -> Comparison:
    """Measure one model under several initialization schemes (and seeds) and compare them.

    For each (scheme, seed): build the model (call the factory, or deep-copy the module: the
    caller's model is never modified), run
    ``skew.init.apply(m, scheme, data=data_for_lsuv or first batch, generator=skew.seeding.generator(seed, "init"))``
    and ``skew.report(m, loader, ...)``. Model construction and ``default`` init run under
    ``torch.manual_seed(skew.seeding.child_seed(seed, "init"))`` inside ``torch.random.fork_rng`` so they
    are reproducible and the caller's global RNG is untouched. The init stream is derived from ``seed``
    with ``numpy.random.SeedSequence`` (:mod:`skew.seeding`), never ``seed`` itself, so weights are
    independent of data drawn with the same number (``build_data(..., seed=seed)``, or a
    ``torch.Generator().manual_seed(seed)``). The pseudo-scheme ``"as_built"`` (:data:`AS_BUILT`) applies no
    init: it measures the model as the factory built it (torchvision's constructors, for instance,
    apply their own init, which ``"default"``, PyTorch's ``reset_parameters()``, does not). With
    ``device``, each initialized copy is moved there before it is measured. ``loader`` is iterated
    once per (scheme, seed), so it must be re-iterable (a list of batches or a DataLoader, not a
    generator). Scheme names are checked before anything runs. ``at`` is passed to
    ``skew.report`` (``"activations"`` measures at the nonlinearities; ``layers`` then selects
    among them, and the init is applied to every layer).

    Between schemes A and B on a layer (seeds pooled), ``.tests`` holds the two-sample KS and
    Mann-Whitney p-values on ``skew = |p - 1/2|`` and Cliff's delta
    :math:`\\delta = P(\\mathrm{skew}_A > \\mathrm{skew}_B) - P(\\mathrm{skew}_A < \\mathrm{skew}_B)`.

    Example:
        >>> factory = lambda: nn.Sequential(nn.ReLU(), nn.Linear(256, 128, bias=False))
        >>> x = torch.randn(2048, 256, generator=torch.Generator().manual_seed(0))   # ReLU(N(0, 1)) inputs
        >>> cmp = compare(factory, x, ["xavier_uniform", "sinusoidal"], seeds=(0, 1))
        >>> table = cmp.summary()                  # rows: layers; columns: (threshold, init); mean over seeds
        >>> float(table.loc["1", ("skewed_0.3", "sinusoidal")])   # 128 < 256: every row sums to 0
        0.0
        >>> bool(0.1 < table.loc["1", ("skewed_0.3", "xavier_uniform")] < 0.35)   # the corollary: 21.8 %
        True
        >>> bool(cmp.tests.loc[0, "cliffs_delta"] > 0.5)  # Glorot's neurons are the more skewed ones
        True
    """
    import inspect

    import skew.init
    from skew.analyzer import parse_device, report

    build = _make_builder(model)
    scheme_names = _schemes_list(schemes)
    seed_list = _seeds_list(seeds)
    thresholds = check_thresholds(thresholds)
    if device is not None:
        parse_device(device)  # a bad device fails now, not after the first model is built
    params = inspect.signature(report).parameters
    unknown = sorted(set(report_kwargs) - set(params))
    # a wrapped report (a spy, a decorator taking **kwargs) may accept more: then it decides
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        raise SkewError(f"compare got unknown keyword argument(s) {', '.join(unknown)}; it takes skew.report's "
                        "options (e.g. mode=, input_fn=, batch_dim=, mask_fn=)")
    labels: dict[str, str] = {}
    for scheme in scheme_names:  # fail fast on a typo, before minutes of measuring
        if scheme != AS_BUILT:
            try:
                label = skew.init.get_scheme(scheme).label
            except SkewError as err:
                raise SkewError(f"{err}; or {AS_BUILT!r} to measure the model as its constructor built it") \
                    from None
            if label in labels:  # 'uniform:5' and 'uniform:a=5', 'glorot' and 'xavier_uniform': one scheme twice
                raise SkewError(f"schemes {labels[label]!r} and {scheme!r} are the same scheme ({label}); list each "
                                "scheme once")
            labels[label] = scheme
    if _is_one_shot(loader):
        raise SkewError(
            "loader is a one-shot iterator (e.g. a generator) but compare reads it once per scheme and seed; "
            "pass a list of batches or a DataLoader"
        )
    data = data_for_lsuv
    if data is None:
        data = _first_input(loader, report_kwargs.get("input_fn"))

    reports: dict[tuple[str, int], Any] = {}
    for scheme, seed in itertools.product(scheme_names, seed_list):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(child_seed(seed, "init"))
            m = build()
            generator = init_generator(seed, "init")
            try:
                if scheme != AS_BUILT:
                    init_layers = layers if at == "layers" else None  # at="activations": layers= names nonlinearities
                    skew.init.apply(m, scheme, data=data, generator=generator, layers=init_layers)
            except SkewError as err:
                raise SkewError(f"init {scheme!r} (seed {seed}) failed: {err}") from err
            if device is not None:
                try:
                    m.to(device)
                except (RuntimeError, AssertionError, TypeError, ValueError) as err:  # e.g. no CUDA on this machine
                    raise SkewError(f"cannot move the model to device={device!r}: {' '.join(str(err).split())[:160]}; "
                                    "pick a device this machine has, e.g. 'cpu'") from None
            reports[(scheme, seed)] = report(
                m,
                loader,
                layers=layers,
                thresholds=thresholds,
                max_batches=max_batches,
                device=device,
                progress=progress,
                at=at,
                **report_kwargs,
            )
        del m
    return Comparison(reports, schemes=scheme_names, seeds=seed_list, thresholds=thresholds)


class Comparison:
    r"""The result of :func:`compare`: tidy frames over (init, seed), statistical tests, plots.

    Attributes:
        neurons: one row per (init, seed, layer, neuron).
        layers: one row per (init, seed, layer).
        tests: one row per (layer, init_a, init_b) with ``ks_stat``, ``ks_p``, ``mw_stat``, ``mw_p``,
            ``cliffs_delta`` and, per threshold a, ``skewed_a_{a}``, ``skewed_b_{a}``, ``diff_skewed_{a}``.
        reports: dict ``(init, seed) -> Report``.
        schemes, seeds, thresholds: what was compared.

    Cliff's delta between schemes A and B on a layer (seeds pooled) is
    :math:`\delta = P(\mathrm{skew}_A > \mathrm{skew}_B) - P(\mathrm{skew}_A < \mathrm{skew}_B)` over all pairs of
    their non-degenerate neurons, in [−1, 1].

    Example:
        >>> factory = lambda: nn.Sequential(nn.ReLU(), nn.Linear(32, 16, bias=False))
        >>> cmp = compare(factory, torch.randn(512, 32), ["orthogonal", "lsuv"], seeds=(0, 1, 2))
        >>> cmp.layers[["init", "seed", "layer", "skewed_0.3"]].shape   # one row per (init, seed, layer)
        (6, 4)
        >>> a, b = (cmp.neurons.loc[cmp.neurons["init"] == s, "skew"].to_numpy() for s in ("orthogonal", "lsuv"))
        >>> bool((a == b).all())   # bias-free ReLU: LSUV's rescaling changes no sign, so no skew either
        True
        >>> float(cmp.tests.loc[0, "cliffs_delta"])
        0.0
        >>> ax = cmp.skew_by_depth(alpha=0.3)                              # a matplotlib Axes
    """

    def __init__(
        self,
        reports: dict[tuple[str, int], Any],
        *,
        schemes: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
        thresholds: Sequence[float] = (0.1, 0.3),
    ):
        if not isinstance(reports, Mapping) or not reports:
            raise SkewError(f"a Comparison needs a non-empty dict {{(init, seed): Report}}, got {reports!r:.60}; "
                            "build one with skew.compare(...)")
        for key, rep in reports.items():
            if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)
                    and isinstance(key[1], (int, np.integer)) and not isinstance(key[1], bool)):
                raise SkewError(f"a Comparison's reports are keyed by (init name, integer seed), got key {key!r:.60}; "
                                "pass e.g. {('sinusoidal', 0): report}")
            if not all(isinstance(getattr(rep, a, None), pd.DataFrame) for a in ("neurons", "layers")):
                raise SkewError(f"reports[{key!r}] is {type(rep).__name__}, not a skew.Report; pass the Reports "
                                "that skew.report returned")
        for what, value in (("schemes", schemes), ("seeds", seeds)):
            if value is not None and (isinstance(value, (str, bytes)) or not isinstance(value, Iterable)):
                raise SkewError(f"{what}={value!r:.60} is not a list; pass a list or None (taken from the reports)")
        self.reports = dict(reports)
        self.schemes = list(schemes) if schemes is not None else list(dict.fromkeys(k[0] for k in reports))
        self.seeds = list(seeds) if seeds is not None else list(dict.fromkeys(k[1] for k in reports))
        for what, listed, held in (("schemes", self.schemes, {k[0] for k in self.reports}),
                                   ("seeds", self.seeds, {k[1] for k in self.reports})):
            if set(listed) != held:  # else summary() and the plots would silently leave reports out
                raise SkewError(f"{what}={listed!r} does not match the reports, which hold {sorted(held, key=str)!r}; "
                                f"pass {what}=None to take them from the reports")
        self.thresholds = check_thresholds(thresholds)
        self.neurons = self._stack("neurons")
        self.layers = self._stack("layers")
        self.layer_order = list(pd.unique(self.layers["layer"])) if len(self.layers) else []
        self.tests = self._tests()

    def _stack(self, attr: str) -> pd.DataFrame:
        frames = []
        for (init, seed), rep in self.reports.items():
            df = getattr(rep, attr).copy()
            df.insert(0, "seed", seed)
            df.insert(0, "init", init)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def _skew_groups(self) -> dict[tuple[str, str], np.ndarray]:
        """Finite skews of the non-degenerate neurons, per (init, layer), seeds pooled."""
        nd = self.neurons
        if "degenerate" in nd:
            nd = nd[~nd["degenerate"].astype(bool)]
        groups = {}
        for (init, layer), rows in nd.groupby(["init", "layer"], sort=False):
            values = rows["skew"].to_numpy(dtype=float)
            groups[(init, layer)] = values[np.isfinite(values)]
        return groups

    def _tests(self) -> pd.DataFrame:
        from scipy import stats

        records = []
        groups = self._skew_groups()
        empty = np.empty(0)
        for layer in self.layer_order:
            for init_a, init_b in itertools.combinations(self.schemes, 2):
                a = groups.get((init_a, layer), empty)
                b = groups.get((init_b, layer), empty)
                rec: dict[str, Any] = {"layer": layer, "init_a": init_a, "init_b": init_b,
                                       "n_a": a.size, "n_b": b.size}
                if a.size and b.size:
                    with warnings.catch_warnings():  # "exact calculation unsuccessful": asymptotic p is fine
                        warnings.simplefilter("ignore", RuntimeWarning)
                        ks = stats.ks_2samp(a, b)
                    rec["ks_stat"], rec["ks_p"] = float(ks.statistic), float(ks.pvalue)
                    if np.ptp(np.concatenate([a, b])) == 0:  # identical constants: no evidence of a difference
                        rec["mw_stat"], rec["mw_p"] = a.size * b.size / 2.0, 1.0
                    else:
                        mw = stats.mannwhitneyu(a, b, alternative="two-sided")
                        rec["mw_stat"], rec["mw_p"] = float(mw.statistic), float(mw.pvalue)
                else:
                    rec.update(ks_stat=np.nan, ks_p=np.nan, mw_stat=np.nan, mw_p=np.nan)
                rec["cliffs_delta"] = cliffs_delta(a, b)
                rec["median_skew_a"] = float(np.median(a)) if a.size else np.nan
                rec["median_skew_b"] = float(np.median(b)) if b.size else np.nan
                for alpha in self.thresholds:
                    fa = float(np.mean(a > alpha)) if a.size else np.nan
                    fb = float(np.mean(b > alpha)) if b.size else np.nan
                    rec[f"skewed_a_{alpha:g}"] = fa
                    rec[f"skewed_b_{alpha:g}"] = fb
                    rec[f"diff_skewed_{alpha:g}"] = fa - fb
                records.append(rec)
        columns = ["layer", "init_a", "init_b", "n_a", "n_b", "ks_stat", "ks_p", "mw_stat", "mw_p",
                   "cliffs_delta", "median_skew_a", "median_skew_b"]
        for alpha in self.thresholds:
            columns += [f"skewed_a_{alpha:g}", f"skewed_b_{alpha:g}", f"diff_skewed_{alpha:g}"]
        return pd.DataFrame.from_records(records, columns=columns)

    def summary(self, *, percent: bool = False) -> pd.DataFrame:
        """Table-1 style pivot: rows are layers (model order), columns (threshold, init), values the skewed
        fraction (count estimator, non-degenerate neurons), averaged over seeds.

        Values are fractions in [0, 1], the unit of ``Report.layers`` and ``.layers``; the threshold level
        names the column they come from (``skewed_0.1``). ``percent=True`` multiplies by 100 and labels the
        level ``skewed_0.1 (%)``.

        Example:
            >>> cmp.summary()  # doctest: +SKIP
            threshold  skewed_0.1                skewed_0.3
            init       sinusoidal xavier_uniform sinusoidal xavier_uniform
            layer
            1                 0.0          0.712        0.0          0.215
        """
        if not isinstance(percent, (bool, np.bool_)):  # percent="no" is truthy: it would scale by 100
            raise SkewError(f"percent={percent!r} must be True or False")
        scale = 100.0 if percent else 1.0
        parts = {}
        for alpha in self.thresholds:
            col = f"skewed_{alpha:g}"
            if col not in self.layers:
                raise SkewError(f"the reports have no {col!r} column; re-run compare with thresholds={self.thresholds}")
            pivot = self.layers.pivot_table(index="layer", columns="init", values=col, aggfunc="mean", sort=False)
            pivot = pivot.reindex(index=self.layer_order, columns=self.schemes) * scale
            parts[col + (" (%)" if percent else "")] = pivot
        out = pd.concat(parts, axis=1, names=["threshold", "init"])
        out.index.name = "layer"
        return out

    def _flat_summary(self) -> pd.DataFrame:
        s = self.summary()
        s.columns = [f"{init} {thr}" for thr, init in s.columns]
        return s.reset_index()

    def __repr__(self) -> str:
        n_layers = len(self.layer_order)
        return (f"Comparison(schemes={self.schemes}, seeds={self.seeds}, layers={n_layers}, "
                f"thresholds={self.thresholds})")

    def _repr_html_(self) -> str:
        title = (f"<p><b>skew comparison</b>: {len(self.schemes)} schemes × {len(self.seeds)} seeds, "
                 f"{len(self.layer_order)} layers; fraction of skewed neurons, |p − ½| > α (count estimator, "
                 "mean over seeds)</p>")
        return title + self.summary().to_html(float_format=lambda v: f"{v:.3f}", na_rep="–")

    # ---- plots (delegate to skew.plot) -------------------------------------------------------------
    def skew_by_depth(self, *, alpha: float = 0.3, hue: str = "init", ax=None, **kwargs):
        """Per-layer skewed fraction at ``alpha`` for each scheme (``skew.plot.skew_by_depth``); returns the Axes.

        Example:
            >>> ax = cmp.skew_by_depth(alpha=0.1)  # doctest: +SKIP
        """
        from skew import plot

        return plot.skew_by_depth(self, alpha=alpha, hue=hue, ax=ax, **kwargs)

    def skew_hist(self, *, layer: str | None = None, hue: str = "init", estimator: str = "count", ax=None,
                  **kwargs):
        """Histogram of the neurons' skew, one colour per scheme (``skew.plot.skew_hist``); returns the Axes.

        Example:
            >>> ax = cmp.skew_hist(layer="fc1")  # doctest: +SKIP
        """
        from skew import plot

        return plot.skew_hist(self, layer=layer, hue=hue, estimator=estimator, ax=ax, **kwargs)

    def rowsum_hist(self, *, layer: str | None = None, alpha: float = 0.3, binwidth: float = 0.2, seed=None,
                    axes=None, **kwargs):
        """One ``skew.plot.rowsum_hist`` panel per scheme (the first seed, unless ``seed`` is given).

        ``axes`` is a sequence with one Axes per scheme; when None a Figure with one row of panels is
        created. Returns the array of Axes.

        Example:
            >>> axes = cmp.rowsum_hist(layer="fc1", alpha=0.3)  # doctest: +SKIP
        """
        from skew import plot

        seed = self.seeds[0] if seed is None else seed
        if isinstance(seed, bool) or seed not in self.seeds:
            raise SkewError(f"seed={seed!r:.40} is not one of this comparison's seeds {self.seeds}; pass one of them "
                            "or None (the first)")
        if axes is None:
            from matplotlib.figure import Figure

            fig = Figure(figsize=(3.6 * len(self.schemes), 3.2), layout="constrained")
            axes = fig.subplots(1, len(self.schemes), squeeze=False)[0]
        axes = np.asarray(axes, dtype=object).ravel()
        if axes.size != len(self.schemes):
            raise SkewError(f"rowsum_hist needs {len(self.schemes)} Axes (one per scheme), got {axes.size}")
        common, handles = "", None
        for ax, init in zip(axes, self.schemes):
            if (init, seed) not in self.reports:
                raise SkewError(f"no report for init {init!r} with seed {seed}; seeds are {self.seeds}")
            plot.rowsum_hist(self.reports[(init, seed)], layer=layer, alpha=alpha, binwidth=binwidth, ax=ax,
                             **kwargs)
            # the shared part of the title and the legend go once into the figure; each panel names its
            # scheme, its counts and its λ (narrow panels have no room for a legend beside the bars)
            *heads, rest = ax.get_title().split("\n")
            head = ", ".join(heads)
            what, _, degenerate = rest.partition("; ")
            common = common or f"{head}, {what}" + (f", seed {seed}" if len(self.seeds) > 1 else "")
            legend = ax.get_legend()
            texts = [t.get_text() for t in legend.get_texts()] if legend is not None else []
            counts = [int(m.group(1)) for m in (re.search(r"\((\d+)\)$", t) for t in texts[:2]) if m]
            lam = next((t.split("= ", 1)[1] for t in texts[2:] if t.startswith("±λ")), None)
            facts = ([f"{counts[1]} of {sum(counts)} skewed"] if len(counts) == 2 else []) + \
                ([f"λ = {lam}"] if lam else []) + ([degenerate] if degenerate else [])
            ax.set_title(init + (f"\n{'; '.join(facts)}" if facts else ""), fontsize="medium")
            if legend is not None:
                handles = handles or legend.legend_handles
                legend.remove()
        fig = axes[0].figure
        if common:
            fig.suptitle(common, fontsize="medium")
        if handles:
            labels = ["not skewed", f"skewed, |p − ½| > {alpha:g}", "±λ, Theorem 1's threshold"][: len(handles)]
            fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize="small",
                       frameon=False)
        return axes

    # ---- saving -----------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> list[Path]:
        """Write the comparison into ``directory``; :meth:`load` reads it back.

        Files: ``neurons.csv``, ``layers.csv``, ``tests.csv``, ``summary.csv`` (fractions; for reading
        and plotting elsewhere), one :meth:`skew.result.Report.save` file per (init, seed) under
        ``reports/`` (the exact data), and the manifest ``comparison.json`` (schemes, seeds, thresholds,
        layers and which report file holds which (init, seed)). Each file is written atomically with a
        fixed float format: byte-identical on identical data.

        Example:
            >>> cmp.save("out/compare")  # doctest: +SKIP
        """
        directory = path_arg(directory, "Comparison.save", "directory", "'out/compare'")
        if directory.exists() and not directory.is_dir():
            raise SkewError(f"cannot save the comparison to {str(directory)!r}: it is a file, not a directory; "
                            "pass a directory path (created if missing)")
        files = [directory / f"{name}.csv" for name in ("neurons", "layers", "tests", "summary")]
        files += [directory / "reports" / f"{i:03d}.skew.zip" for i in range(len(self.reports))]
        files.append(directory / "comparison.json")
        blocked = [p for p in files if p.is_dir()] + [p for p in [directory / "reports"] if p.exists() and not p.is_dir()]
        if blocked:  # found before any file is written: a save never stops half-way over a directory in the way
            raise SkewError(f"cannot save the comparison to {str(directory)!r}: {str(blocked[0])!r} is in the way (a "
                            f"{'directory' if blocked[0].is_dir() else 'file'} where the comparison writes a "
                            f"{'file' if blocked[0].is_dir() else 'directory'}); remove it or pass another directory")
        try:
            return self._save(directory)
        except OSError as err:
            raise SkewError(f"cannot write the comparison to {str(directory)!r} ({err.strerror or err}); pass a "
                            "directory you may write to") from err

    def _save(self, directory: Path) -> list[Path]:
        written = []
        for name, frame in (("neurons", self.neurons), ("layers", self.layers), ("tests", self.tests),
                            ("summary", self._flat_summary())):
            written.append(write_csv(frame, directory / f"{name}.csv"))
        files = []
        for i, ((init, seed), rep) in enumerate(self.reports.items()):
            rel = f"reports/{i:03d}.skew.zip"  # numbered: scheme names may hold ':' or '='
            written.append(Path(rep.save(directory / rel)))
            files.append({"init": init, "seed": int(seed), "file": rel})
        meta = {"format": _MANIFEST_FORMAT, "version": 1, "schemes": self.schemes, "seeds": self.seeds,
                "thresholds": list(self.thresholds), "layers": self.layer_order, "reports": files}
        written.append(atomic_write(directory / "comparison.json",
                                    lambda p: p.write_text(json.dumps(meta, indent=2) + "\n")))
        return written

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Comparison:
        """Read a comparison written by :meth:`save`: the same reports, schemes, seeds and thresholds.

        Every frame (``.neurons``, ``.layers``, ``.tests``) is rebuilt from the saved reports, so it
        equals the saved comparison's exactly.

        Example:
            >>> cmp = Comparison.load("out/compare")  # doctest: +SKIP
        """
        from skew.result import Report

        directory = path_arg(directory, "Comparison.load", "directory", "'out/compare'")
        manifest = directory / "comparison.json"
        if directory.is_file():
            raise SkewError(f"{str(directory)!r} is a file; pass the directory written by Comparison.save() or "
                            "`skew compare --out`")
        if not manifest.is_file():
            raise SkewError(f"no comparison.json in {str(directory)!r}; pass a directory written by "
                            "Comparison.save() or `skew compare --out`")
        try:
            meta = json.loads(manifest.read_text())
        except json.JSONDecodeError as err:
            raise SkewError(f"{str(manifest)!r} is not valid JSON ({err}); save the comparison again") from None
        if not isinstance(meta, dict) or meta.get("format") != _MANIFEST_FORMAT or "reports" not in meta:
            raise SkewError(f"{str(manifest)!r} has no list of reports (written by an older skew?); run the "
                            "comparison again and save it with Comparison.save()")
        _check_manifest(meta, manifest)
        reports = {}
        for entry in meta["reports"]:
            path = directory / entry["file"]
            if not path.is_file():
                raise SkewError(f"the report of init {entry['init']!r}, seed {entry['seed']} is missing "
                                f"({str(path)!r}); copy the whole directory written by Comparison.save()")
            reports[(entry["init"], int(entry["seed"]))] = Report.load(path)
        try:
            return cls(reports, schemes=meta["schemes"], seeds=meta["seeds"], thresholds=meta["thresholds"])
        except SkewError as err:
            raise SkewError(f"{str(manifest)!r} does not match its reports ({err}); save the comparison again") from None


def _check_manifest(meta: dict, manifest: Path) -> None:
    """Raise SkewError when comparison.json's entries are not what Comparison.save() writes."""

    def bad(problem: str) -> SkewError:
        return SkewError(f"{str(manifest)!r} is damaged: {problem}; save the comparison again with "
                         "Comparison.save()")

    entries = meta["reports"]
    if not isinstance(entries, list) or not entries:
        raise bad("'reports' is not a non-empty list")
    seen = set()
    for entry in entries:
        if not isinstance(entry, dict) or not {"init", "seed", "file"} <= set(entry):
            raise bad(f"a report entry {entry!r:.80} lacks init, seed or file")
        init, seed, file = entry["init"], entry["seed"], entry["file"]
        if not isinstance(init, str) or isinstance(seed, bool) or not isinstance(seed, int):
            raise bad(f"a report entry has init {init!r:.40} and seed {seed!r:.40} (want a name and an integer)")
        rel = Path(file) if isinstance(file, str) else None
        if rel is None or rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise bad(f"report file {file!r:.80} is not a path inside the directory")
        if (init, seed) in seen:
            raise bad(f"init {init!r}, seed {seed} is listed twice")
        seen.add((init, seed))
    for key, kind in (("schemes", str), ("seeds", int), ("thresholds", (int, float))):
        value = meta.get(key)
        if not isinstance(value, list) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
            raise bad(f"{key!r} is not a list of {'names' if kind is str else 'numbers'}")
