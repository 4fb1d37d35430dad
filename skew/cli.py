"""The ``skew`` command line: plot, report, compare, inspect, figures (and train).

Every command has ``--help``. Bad arguments exit 2 with a message naming the valid choices; a
:class:`~skew.errors.SkewError` exits 1 printing ``skew: error: <message>`` (the traceback only with
``--debug``). Heavy modules (torchvision, matplotlib, scipy, the analyzer) load inside the commands so
``skew --help`` stays fast.

Example:
    $ skew plot --init sinusoidal --shape 101 101 --out sinusoidal.png
    $ skew report --model mlp --data relu-gaussian --init xavier_uniform --out out/report
    $ skew compare --model mlp --inits xavier_uniform,orthogonal,sinusoidal --seeds 0,1 --data relu-gaussian
    $ skew figures --out figures --quick
"""

from __future__ import annotations

import argparse
import ast
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from skew._io import write_csv
from skew._version import __version__
from skew.errors import SkewError

__all__ = ["build_parser", "load_weights", "main"]

FORMATS = ("png", "pdf", "svg")
DEVICE_HELP = "torch device to run on, e.g. cpu or cuda (default: cpu)"
#: Batches of generated data (and of a factory) when --batches is not given; a file is used whole.
DEFAULT_BATCHES = 4


# ---- helpers ---------------------------------------------------------------------------------------
def _scheme_choices() -> list[str]:
    """Registry names plus aliases, in registry order (skew.init is light: torch only)."""
    import skew.init

    return list(skew.init.schemes(aliases=True))


def _scheme_arg(text: str) -> str:
    """argparse type for --init: a registry name or alias, optionally spelled with options ('uniform:5')."""
    import skew.init

    choices = _scheme_choices()
    base = text.split(":", 1)[0].strip()
    if base not in choices:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(map(repr, choices))}; "
            "options are spelled like 'uniform:5' or 'sinusoidal:mode=fan_in,gain=1.4142')"
        )
    try:
        skew.init.get_scheme(text)
    except SkewError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _scheme_or_as_built(text: str) -> str:
    """argparse type for report/compare: a scheme (see :func:`_scheme_arg`) or ``as_built`` (no init applied)."""
    if text.strip() == "as_built":
        return "as_built"
    try:
        return _scheme_arg(text)
    except argparse.ArgumentTypeError as err:
        msg = str(err)
        if msg.startswith("invalid choice"):
            msg = msg.replace("(choose from ", "(choose from 'as_built' (the model as its constructor built it), ", 1)
        raise argparse.ArgumentTypeError(msg) from None


def _is_lsuv(scheme: str) -> bool:
    import skew.init

    return skew.init.get_scheme(scheme).name == "lsuv"


def _model_option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. depth=3, activation=relu, bias=False)")
    key, value = text.split("=", 1)
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    return key.strip(), parsed


def _float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers, e.g. 0.1,0.3") from None
    if not values or not all(0 < v < 0.5 for v in values):
        raise argparse.ArgumentTypeError(f"thresholds {text!r} must lie strictly between 0 and 0.5, e.g. 0.1,0.3")
    return values


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 0,1,2") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one integer, e.g. 0,1,2")
    return values


def _seed_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed, e.g. 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed {value} is negative; pass a non-negative integer, e.g. 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _layers_spec(text: str | None):
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return parts[0] if len(parts) == 1 else parts


def _is_external(spec: str) -> bool:
    return ":" in spec


def _check_model_name(parser: argparse.ArgumentParser, name: str) -> None:
    if _is_external(name):
        return
    from skew.models import model_names

    names = list(model_names())
    if name not in names:
        parser.error(
            f"argument --model: invalid choice: {name!r} (choose from {', '.join(map(repr, names))}, "
            "or pkg.module:factory)"
        )


def _check_data_name(parser: argparse.ArgumentParser, name: str) -> None:
    if _is_external(name) or name.endswith((".pt", ".pth", ".npy")):
        return
    from skew.data import data_names

    names = list(data_names())
    if name not in names:
        parser.error(
            f"argument --data: invalid choice: {name!r} (choose from {', '.join(map(repr, names))}, "
            "pkg.module:factory, file.pt or file.npy)"
        )


def load_weights(model, path: str | Path):
    """Load a checkpoint into ``model`` with ``torch.load(weights_only=True)``; returns the model.

    Accepts a state dict, or a dict holding one under ``state_dict``, ``model_state_dict`` or ``model``.
    Anything else (a pickled module, mismatched keys or shapes) raises :class:`SkewError` naming the
    missing, unexpected or mis-shaped keys.

    Example:
        >>> torch.save(net.state_dict(), "ckpt.pt"); load_weights(net, "ckpt.pt")  # doctest: +SKIP
    """
    import pickle
    from collections.abc import Mapping

    import torch

    path = Path(path)
    if not path.is_file():
        raise SkewError(f"checkpoint {str(path)!r} does not exist; pass the path of a file saved with "
                        "torch.save(model.state_dict(), path)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SkewError(
            f"checkpoint {str(path)!r} is not a plain state dict ({first}); save it with "
            "torch.save(model.state_dict(), path) instead of pickling the model"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise SkewError(f"cannot read checkpoint {str(path)!r} ({err}); pass a file written by torch.save") from err
    if isinstance(state, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = state.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                state = inner
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SkewError(
            f"checkpoint {str(path)!r} holds a {type(state).__name__}, not a state dict of tensors; "
            "save it with torch.save(model.state_dict(), path)"
        )
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]

    def few(keys: list[str]) -> str:
        return ", ".join(keys[:5]) + (f" (and {len(keys) - 5} more)" if len(keys) > 5 else "")

    problems = []
    if missing:
        problems.append(f"missing keys: {few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {few(unexpected)}")
    if mis_shaped:
        problems.append(f"shape mismatches: {few(mis_shaped)}")
    if problems:
        raise SkewError(
            f"checkpoint {str(path)!r} does not match {type(model).__name__}: {'; '.join(problems)}; "
            "pass the checkpoint of this model (same --model and --model-option values)"
        )
    model.load_state_dict(state)
    return model


def _build_model(args):
    from skew.models import build_model

    model = build_model(args.model, **dict(args.model_option or []))
    if getattr(args, "weights", None):
        load_weights(model, args.weights)
    return model


def _input_shape(args) -> tuple[int, ...]:
    if getattr(args, "input_shape", None):
        return tuple(args.input_shape)
    from skew.models import input_shape

    try:
        return tuple(input_shape(args.model, **dict(args.model_option or [])))
    except SkewError as err:
        raise SkewError(f"{err}; or pass --input-shape (per-sample shape, e.g. --input-shape 3 64 64)") from err


def _build_loader(args):
    """The batches ``--data`` names, and a note saying how many samples they hold and what was left out.

    Generated data (gaussian, ...) and factories give ``--batches`` batches (default
    :data:`DEFAULT_BATCHES`); a file is used whole unless ``--batches`` is given; digits say how many
    of the 1,797 images were taken.
    """
    from skew.data import build_data, data_names, digits_tensors

    if args.data in data_names():
        shape = _input_shape(args)  # generated data needs the model's per-sample shape
    else:
        try:  # files and factories: the shape only validates the samples
            shape = _input_shape(args)
        except SkewError:
            shape = None
    is_file = args.data.endswith((".pt", ".pth", ".npy"))
    batches = args.batches if (args.batches is not None or is_file) else DEFAULT_BATCHES
    if is_file:
        everything = build_data(args.data, shape=shape, batch_size=args.batch_size, batches=None, seed=args.seed)
        loader = everything if batches is None else everything[:batches]
        total = sum(_samples(b) for b in everything)
    else:
        loader = build_data(args.data, shape=shape, batch_size=args.batch_size, batches=batches, seed=args.seed)
        total = len(digits_tensors((64,), seed=None)[0]) if args.data == "digits" else None
    used = sum(_samples(b) for b in loader)
    note = f"{used} samples in {len(loader)} batch{'es' if len(loader) != 1 else ''}"
    if total is not None and total > used:
        what = "images of the digits" if args.data == "digits" else f"samples of {args.data}"
        note += f" (the first {used} of the {total} {what}; {total - used} left out: raise --batches or --batch-size)"
    args.data_note = note
    return loader


def _samples(batch) -> int:
    """Number of samples in one batch: the leading size of its first tensor (0 when there is none)."""
    import torch

    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (tuple, list)):
        for item in batch:
            if isinstance(item, torch.Tensor):
                return _samples(item)
    return 0


def _first_input(loader):
    for batch in loader:
        return batch[0] if isinstance(batch, (tuple, list)) else batch
    raise SkewError("the data yields no batches; pass --batches 1 or more, or a non-empty data file")


def _apply_init(model, scheme: str, seed: int, data) -> None:
    """Initialize from the ``init`` stream of ``seed`` (skew.seeding): independent of data drawn with it."""
    import torch

    import skew.init
    from skew.seeding import child_seed, generator

    torch.manual_seed(child_seed(seed, "init"))
    skew.init.apply(model, scheme, data=data, generator=generator(seed, "init"))


def _print_frame(frame, columns: Sequence[str] | None = None) -> None:
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def _layers_columns(thresholds: Sequence[float]) -> list[str]:
    cols = ["layer", "type", "shape", "neurons", "samples"]
    for a in thresholds:
        cols += [f"skewed_{a:g}", f"skewed_gauss_{a:g}", f"lambda_{a:g}", f"agree_{a:g}"]
    return cols + ["mean_skew", "spearman_s_p", "oui_pairwise", "degenerate", "dead", "always_on"]


def _new_figure(width: float = 6.4, height: float = 4.0, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


# ---- commands --------------------------------------------------------------------------------------
def _cmd_plot(args, parser) -> int:
    import torch
    from torch import nn

    from skew import plot
    from skew._io import save_figure
    from skew.layers import select_layers, weight_matrix

    if args.layer and not args.model:
        parser.error("argument --layer: needs --model (the layer is looked up in that model)")
    if args.model and args.shape_given:
        parser.error("argument --shape: not allowed with --model (the layer's own shape is used)")
    fmt = args.format
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix:
        suffix = out.suffix.lstrip(".").lower()
        if suffix not in FORMATS:
            parser.error(f"argument --out: unknown suffix {out.suffix!r} (choose from {', '.join(FORMATS)})")
        if fmt and fmt != suffix:
            parser.error(f"argument --format: {fmt!r} conflicts with the suffix of --out {str(out)!r}")
        fmt = suffix
    fmt = fmt or "png"
    if args.model:
        _check_model_name(parser, args.model)
        model = _build_model(args)
        data = None
        if _is_lsuv(args.init):
            from skew.data import build_data

            data = _first_input(build_data("gaussian", shape=_input_shape(args), batch_size=32, batches=1,
                                           seed=args.seed))
        _apply_init(model, args.init, args.seed, data)
        selected = select_layers(model, args.layer if args.layer else None)
        if not selected:
            raise SkewError(f"{type(model).__name__} has no Linear/Conv layer to plot; pass another --model")
        name, module = selected[0]
        weight = weight_matrix(module.weight.detach())
        what = f"{args.model} layer {name!r}, {tuple(weight.shape)[0]}×{tuple(weight.shape)[1]} (seed {args.seed})"
    else:
        m, n = args.shape
        layer = nn.Linear(n, m, bias=False)
        data = torch.randn(64, n, generator=torch.Generator().manual_seed(args.seed)) if _is_lsuv(args.init) else None
        _apply_init(layer, args.init, args.seed, data)
        weight = layer.weight.detach()
        what = f"a fresh {m}×{n} weight matrix (seed {args.seed})"
    fig, (ax_hist, ax_map) = _new_figure(6.0, 4.4, ncols=2)
    plot.weight_hist(weight, ax=ax_hist, scheme=args.init)
    plot.weight_heatmap(weight, ax=ax_map, scheme=args.init)
    fig.suptitle(f"{args.init} initialization: {what}")
    if out is None:
        out = Path(f"{args.init}_weights.{fmt}")
    elif not out.suffix:
        out = out.with_suffix(f".{fmt}")
    save_figure(fig, out)
    print(f"wrote {out}")
    return 0


def _report_figures(rep, out: Path, fmt: str = "png") -> list[Path]:
    from skew._io import save_figure

    # layer=None: skew.plot.default_layer, the first layer whose input has a non-zero mean (an image
    # model's first conv sees zero-mean pixels and shows nothing); each title names the layer shown
    written = []
    jobs = [
        ("skew_hist", lambda ax: rep.plot_skew_hist(layer="all", ax=ax)),
        ("rowsum_hist", lambda ax: rep.plot_rowsum_hist(layer=None, ax=ax)),
        ("skew_vs_rowsum", lambda ax: rep.plot_skew_vs_rowsum(layer=None, ax=ax)),
        ("activation_states", lambda ax: rep.plot_activation_states(layer=None, ax=ax)),
        ("skew_fraction_vs_alpha", lambda ax: rep.plot_skew_fraction_vs_alpha(layer=None, ax=ax)),
    ]
    for name, draw in jobs:
        fig, (ax,) = _new_figure()
        try:
            draw(ax)
        except SkewError as err:  # e.g. a first layer with only degenerate neurons: keep the other figures
            print(f"skew: note: no {name} figure: {err}", file=sys.stderr)
            continue
        written.append(save_figure(fig, out / f"{name}.{fmt}"))
    return written


def _save_report(rep, out: Path) -> list[Path]:
    written = [write_csv(rep.neurons, out / "neurons.csv"), write_csv(rep.layers, out / "layers.csv")]
    if len(rep.skipped):
        written.append(write_csv(rep.skipped, out / "skipped.csv"))
    written.append(Path(rep.save(out / "report.skew.zip")))
    return written


def _cmd_report(args, parser) -> int:
    _check_model_name(parser, args.model)
    _check_data_name(parser, args.data)
    if args.init and args.weights:
        parser.error("argument --init: not allowed with --weights (measure a checkpoint, or a fresh init, not both)")
    from skew.analyzer import report

    model = _build_model(args)
    loader = _build_loader(args)
    if args.init and args.init != "as_built":
        _apply_init(model, args.init, args.seed, _first_input(loader))
    if args.device:
        model.to(args.device)
    rep = report(model, loader, layers=_layers_spec(args.layers), thresholds=args.thresholds, device=args.device,
                 mode=args.mode)
    what = f"init {args.init}" if args.init and args.init != "as_built" else (
        f"weights {args.weights}" if args.weights else "as built")
    print(f"skew report: {args.model} ({what}), data {args.data}: {args.data_note}; "
          "skewed = fraction of non-degenerate neurons with |p - 1/2| > α (count estimator)")
    _print_frame(rep.layers, _layers_columns(rep.thresholds))
    if len(rep.skipped):
        counts = rep.skipped.groupby(["type", "reason"], sort=False).size().reset_index(name="modules")
        print(f"\nnot measured: {len(rep.skipped)} module(s)" + (" (listed in skipped.csv)" if args.out else ""))
        _print_frame(counts[["modules", "type", "reason"]])
    if args.out:
        out = Path(args.out)
        written = _save_report(rep, out) + _report_figures(rep, out, args.format)
        print(f"\nwrote {len(written)} files to {out}")
    return 0


def _cmd_compare(args, parser) -> int:
    _check_model_name(parser, args.model)
    _check_data_name(parser, args.data)
    inits = [s.strip() for s in args.inits.split(",") if s.strip()]
    if not inits:
        parser.error("argument --inits: give at least one scheme, e.g. --inits xavier_uniform,sinusoidal")
    for scheme in inits:
        try:
            _scheme_or_as_built(scheme)
        except argparse.ArgumentTypeError as err:
            parser.error(f"argument --inits: {err}")
    from skew.compare import compare
    from skew.models import build_model

    options = dict(args.model_option or [])
    loader = _build_loader(args)
    cmp = compare(lambda: build_model(args.model, **options), loader, inits, seeds=args.seeds,
                  layers=_layers_spec(args.layers), thresholds=args.thresholds, device=args.device, mode=args.mode)
    print(f"skew compare: {args.model}, data {args.data}: {args.data_note}; init seeds {args.seeds}; "
          "skewed_α = fraction of non-degenerate neurons with |p - 1/2| > α (count estimator), mean over seeds")
    print(cmp.summary().to_string(float_format=lambda v: f"{v:.3f}"))
    if args.out:
        from skew._io import save_figure

        out = Path(args.out)
        written = cmp.save(out)
        for alpha in cmp.thresholds:
            fig, (ax,) = _new_figure(7.0, 4.0)
            cmp.skew_by_depth(alpha=alpha, ax=ax)
            written.append(save_figure(fig, out / f"skew_by_depth_{alpha:g}.{args.format}"))
        fig, (ax,) = _new_figure()
        cmp.skew_hist(ax=ax)
        written.append(save_figure(fig, out / f"skew_hist.{args.format}"))
        from matplotlib.figure import Figure

        fig = Figure(figsize=(3.6 * len(cmp.schemes), 3.4), layout="constrained")
        axes = fig.subplots(1, len(cmp.schemes), squeeze=False)[0]
        cmp.rowsum_hist(layer=None, axes=axes)
        written.append(save_figure(fig, out / f"rowsum_hist.{args.format}"))
        print(f"\nwrote {len(written)} files to {out}")
    return 0


def _cmd_inspect(args, parser) -> int:
    _check_model_name(parser, args.model)
    if args.init and args.weights:
        parser.error("argument --init: not allowed with --weights (inspect a checkpoint, or a fresh init, not both)")
    from skew.weights import layer_table, neuron_table

    model = _build_model(args)
    if args.init:
        data = None
        if _is_lsuv(args.init):
            from skew.data import build_data

            data = _first_input(build_data("gaussian", shape=_input_shape(args), batch_size=64, batches=1,
                                           seed=args.seed))
        _apply_init(model, args.init, args.seed, data)
    layers = _layers_spec(args.layers)
    table = layer_table(model, layers=layers, scheme=args.init)
    what = f"init {args.init}" if args.init else (f"weights {args.weights}" if args.weights else "as built")
    print(f"skew inspect: {args.model} ({what}); data-free weight diagnostics")
    _print_frame(table)
    if args.out:
        out = Path(args.out)
        written = [write_csv(table, out / "layers.csv"),
                   write_csv(neuron_table(model, layers=layers), out / "neurons.csv")]
        print(f"\nwrote {len(written)} files to {out}")
    return 0


def _cmd_figures(args, parser) -> int:
    from skew.figures import check, generate

    if args.check:
        diffs, same = check(args.out, quick=args.quick, verbose=True, seed=args.seed)
        for line in diffs:
            print(f"differs: {line}")
        verdict = "MISMATCH" if diffs else "ok"
        print(f"skew figures --check: {verdict}: {len(diffs)} difference(s) against {args.out}; {len(same)} file(s) "
              "byte-identical; tables compared within the tolerances of skew.figures_check (percentages ±0.5 "
              "points, accuracies ±0.01, ...); PNGs compared for existence only")
        return 1 if diffs else 0
    written = generate(args.out, quick=args.quick, verbose=True, seed=args.seed)
    for path in written:
        print(path)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


# ---- parser ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``skew`` command (subcommands plot, report, compare, inspect, figures, train)."""
    parser = argparse.ArgumentParser(
        prog="skew",
        description="Neuron-skewness analysis for PyTorch: measure P(Z > 0), skew |p - 1/2| and the row-sum link "
        "of every Linear/Conv neuron, under any initialization scheme.",
    )
    parser.add_argument("--version", action="version", version=f"skew {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    common.add_argument("--seed", type=_seed_arg, default=0,
                        help="the one random seed: independent streams for data and init are derived from it "
                        "(skew.seeding; default: 0)")

    schemes = _scheme_choices()
    model_opts = argparse.ArgumentParser(add_help=False)
    model_opts.add_argument("--model", required=True,
                            help="built-in model name (see skew.models.model_names) or pkg.module:factory")
    model_opts.add_argument("-o", "--model-option", type=_model_option, action="append", metavar="KEY=VALUE",
                            help="option passed to the model builder, repeatable (e.g. -o depth=3 -o width=256)")
    model_opts.add_argument("--layers", help="which layers: a glob or comma-separated names (default: all)")
    model_opts.add_argument("--input-shape", type=_positive_int, nargs="+", metavar="D",
                            help="per-sample input shape when the model is a factory, e.g. 3 64 64")

    data_opts = argparse.ArgumentParser(add_help=False)
    data_opts.add_argument("--data", required=True,
                           help="built-in data name (gaussian, relu-gaussian, uniform, digits), "
                           "pkg.module:factory, file.pt or file.npy")
    data_opts.add_argument("--batches", type=_positive_int, default=None,
                           help=f"number of batches (default: {DEFAULT_BATCHES} of generated data or a factory; "
                           "a file is used whole)")
    data_opts.add_argument("--batch-size", type=_positive_int, default=64, help="samples per batch (default: 64)")
    data_opts.add_argument("--thresholds", type=_float_list, default=(0.1, 0.3),
                           help="skew thresholds α, comma-separated (default: 0.1,0.3)")
    data_opts.add_argument("--device", default=None, help=DEVICE_HELP)
    data_opts.add_argument("--mode", choices=("eval", "train"), default="eval",
                           help="model mode while measuring (default: eval; train lets BatchNorm re-centre)")
    data_opts.add_argument("--format", choices=FORMATS, default="png", help="figure format (default: png)")

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plot", parents=[common], help="weight histogram beside heatmap for one init scheme",
                       description="Draw a scheme's weight histogram beside its heatmap, for a fresh M×N matrix "
                       "(default 101×101, as in the paper's Fig. 2-3) or one layer of a model.")
    p.add_argument("--init", required=True, type=_scheme_arg, metavar="SCHEME",
                   help=f"initialization scheme: {', '.join(schemes)}")
    p.add_argument("--shape", type=_positive_int, nargs=2, metavar=("M", "N"), default=None,
                   help="matrix shape: M output neurons, N inputs (default: 101 101)")
    p.add_argument("--model", help="take the weight from this model (built-in name or pkg.module:factory)")
    p.add_argument("--layer", help="qualified name of the layer in --model (default: its first layer)")
    p.add_argument("-o", "--model-option", type=_model_option, action="append", metavar="KEY=VALUE",
                   help="option passed to the model builder, repeatable")
    p.add_argument("--input-shape", type=_positive_int, nargs="+", metavar="D",
                   help="per-sample input shape for lsuv on a factory model")
    p.add_argument("--out", help="output file (default: <init>_weights.<format>)")
    p.add_argument("--format", choices=FORMATS, default=None, help="figure format (default: from --out, else png)")
    p.set_defaults(func=_cmd_plot, command_parser=p)

    p = sub.add_parser("report", parents=[common, model_opts, data_opts],
                       help="measure every neuron's activation skew on data",
                       description="Run the model on data, print the per-layer skew table and (with --out) write "
                       "neurons.csv, layers.csv, the report file and figures.")
    p.add_argument("--weights", help="checkpoint (a state dict saved with torch.save) to load into the model")
    p.add_argument("--init", type=_scheme_or_as_built, metavar="SCHEME",
                   help=f"initialize the model with this scheme first: {', '.join(schemes)}; or as_built (the "
                   "model's own constructor init, no scheme applied: the default)")
    p.add_argument("--out", help="output directory")
    p.set_defaults(func=_cmd_report, command_parser=p)

    p = sub.add_parser("compare", parents=[common, model_opts, data_opts],
                       help="compare init schemes (and seeds) on one model",
                       description="Initialize the model with each scheme and seed, measure it, print the "
                       "Table-1 style summary and (with --out) write the frames, tests and figures.")
    p.add_argument("--inits", required=True,
                   help=f"comma-separated schemes, choose from {', '.join(schemes)}, or as_built (the model's "
                   "own constructor init, no scheme applied)")
    p.add_argument("--seeds", type=_int_list, default=[0],
                   help="comma-separated init seeds, one run per scheme and seed (default: 0); the data come "
                   "from --seed, each on its own stream (skew.seeding)")
    p.add_argument("--out", help="output directory")
    p.set_defaults(func=_cmd_compare, command_parser=p)

    p = sub.add_parser("inspect", parents=[common, model_opts],
                       help="data-free weight diagnostics (row sums, norms, per-layer tables)",
                       description="Print skew.weights.layer_table for the model after an init scheme or a "
                       "checkpoint; with --out write layers.csv and neurons.csv.")
    p.add_argument("--init", type=_scheme_arg, metavar="SCHEME",
                   help=f"initialize the model with this scheme first: {', '.join(schemes)}")
    p.add_argument("--weights", help="checkpoint (a state dict saved with torch.save) to load into the model")
    p.add_argument("--out", help="output directory")
    p.set_defaults(func=_cmd_inspect, command_parser=p)

    p = sub.add_parser("figures", parents=[common], help="regenerate every reference figure and table",
                       description="Regenerate every figure of SPEC §4 and the replication tables (CSV and "
                       "Markdown); byte-identical on a second run on the same machine. With --check, "
                       "regenerate into a temporary directory and compare the tables with those in --out "
                       "within stated tolerances (PNGs: existence only); exit 1 on a mismatch.")
    p.add_argument("--out", default="figures",
                   help="output directory; with --check, the committed catalogue to compare with (default: figures)")
    p.add_argument("--quick", action="store_true", help="small sizes (about a minute), for tests")
    p.add_argument("--check", action="store_true",
                   help="compare a fresh regeneration with --out instead of writing there; names every file, "
                   "row and column that differs beyond its tolerance")
    p.set_defaults(func=_cmd_figures, command_parser=p)

    try:
        import skew.train as train
    except ImportError as err:
        if err.name not in ("skew.train",):
            raise
    else:
        train.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``skew`` command line; returns the process exit code (0 ok, 1 error, 2 bad arguments).

    Example:
        >>> main(["plot", "--init", "sinusoidal", "--out", "w.png"])  # doctest: +SKIP
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        debug = bool(getattr(args, "debug", False))
        if args.command is None:
            parser.print_help()
            return 0
        args.shape_given = getattr(args, "shape", None) is not None
        if getattr(args, "shape", 0) is None:
            args.shape = (101, 101)
        if args.command == "train":
            import skew.train as train

            return int(train.run_cli(args) or 0)
        return int(args.func(args, args.command_parser) or 0)
    except SystemExit as exit_:  # argparse: --help/--version (0) and bad arguments (2)
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except SkewError as err:
        if debug:
            traceback.print_exc()
        print(f"skew: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("skew: interrupted", file=sys.stderr)
        return 130
    return 0
