"""The ``skew`` command line: plot, report, compare, inspect, figures (and train).

Every command has ``--help``, ``--debug`` and (where a seed is used) ``--seed``. Bad choices and bad
argument values (names, numbers out of range, device strings, a device this machine lacks) exit 2
with argparse's usage and a message naming the valid values, before any work. Every other failure
exits 1 with one line ``skew: error: <cause>; <fix>`` on stderr: a :class:`~skew.errors.SkewError`,
an unusable ``--out`` (checked before any long work), a file that cannot be read or written, a user
module (``pkg.module:factory``) that has a syntax error, fails to import or raises (the message
points at the user's file and line). The traceback is shown only with ``--debug``; no message ever
advises loading a file unsafely. torch, pandas, matplotlib and the analyzer load inside the commands,
so ``skew --help``, ``skew CMD --help`` and argument errors import none of them (``skew train`` loads
:mod:`skew.train` to build its parser).

Example:
    $ skew plot --init sinusoidal --shape 101 101 --out sinusoidal.png
    $ skew report --model mlp --data relu-gaussian --init xavier_uniform --out out/report
    $ skew compare --model mlp --inits xavier_uniform,orthogonal,sinusoidal --seeds 0,1 --data relu-gaussian
    $ skew figures --out figures --quick
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

from skew._argtypes import out_path as _out_arg
from skew._argtypes import seed as _seed_arg
from skew._argtypes import seed_list as _int_list
from skew._io import write_csv
from skew._version import __version__
from skew.errors import SkewError

__all__ = ["build_parser", "load_weights", "main"]

FORMATS = ("png", "pdf", "svg")
DEVICE_HELP = "torch device to run on, e.g. cpu, cuda or cuda:1 (default: cpu)"
#: Batches of generated data (and of a factory) when --batches is not given; a file is used whole.
DEFAULT_BATCHES = 4
# The registries' names, spelled here so that `skew --help` and argument errors need no torch import
# (tests/test_cli.py checks they equal skew.init.schemes(aliases=True), model_names() and data_names()).
SCHEMES = ("default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal", "lsuv",
           "sinusoidal", "idinit", "arcsine", "uniform", "glorot", "he")
MODELS = ("mlp", "cnn", "resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_v2_s", "vit_b_16", "transformer",
          "hf:gpt2", "hf:bert", "hf:llama", "hf:vit")
DATA = ("gaussian", "relu-gaussian", "uniform", "digits", "text")
# torch device types (torch.device accepts these, optionally with ":index"); "meta" holds no data to measure.
_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "xla", "hpu", "mtia", "ipu", "maia", "hip", "ve", "vulkan", "lazy",
                 "fpga", "mkldnn", "opengl", "opencl", "ideep", "privateuseone")


# ---- helpers ---------------------------------------------------------------------------------------
def _scheme_choices() -> list[str]:
    """Registry names plus aliases, in registry order (spelled in SCHEMES: no torch import)."""
    return list(SCHEMES)


def _scheme_arg(text: str) -> str:
    """argparse type for --init: a registry name or alias, optionally spelled with options ('uniform:5')."""
    choices = _scheme_choices()
    base = text.split(":", 1)[0].strip()
    if base not in choices:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(map(repr, choices))}; "
            "options are spelled like 'uniform:5' or 'sinusoidal:mode=fan_in,gain=1.4142')"
        )
    if ":" not in text:
        return text
    import skew.init  # options are checked by the registry (imports torch)

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
    if not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} has no KEY before '='; write KEY=VALUE, e.g. depth=3")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    return key.strip(), parsed


class _ModelOptions(argparse.Action):
    """``-o KEY=VALUE``, repeatable; a KEY given twice is an error (never "last wins", as for init options)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest, None) or [])
        if any(key == values[0] for key, _ in items):
            raise argparse.ArgumentError(self, f"option {values[0]!r} is given twice; pass each KEY once")
        items.append(values)
        setattr(namespace, self.dest, items)


def _layer_name(text: str) -> str:
    """argparse type for plot's --layer: one non-empty qualified name (an empty one silently meant the first layer)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} names no layer; pass a qualified name such as fc1 or layer1.0.conv1")
    return text.strip()


def _float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers, e.g. 0.1,0.3") from None
    if not values or not all(0 < v < 0.5 for v in values):
        raise argparse.ArgumentTypeError(f"thresholds {text!r} must lie strictly between 0 and 0.5, e.g. 0.1,0.3")
    return values


def _device_arg(text: str) -> str:
    """argparse type for --device: a torch device string such as cpu, cuda or cuda:1 (checked without torch)."""
    match = re.fullmatch(r"([a-z_]+)(?::(\d+))?", text.strip())
    if not match or match.group(1) not in _DEVICE_TYPES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a torch device; write a device type with an optional index, e.g. cpu, cuda or cuda:1")
    return text.strip()


def _layers_arg(text: str) -> str:
    if not [p for p in text.split(",") if p.strip()]:
        raise argparse.ArgumentTypeError(f"{text!r} names no layer; pass a glob or comma-separated names, e.g. 'fc*'")
    return text


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
    names = list(MODELS)
    if name not in names:
        parser.error(
            f"argument --model: invalid choice: {name!r} (choose from {', '.join(map(repr, names))}, "
            "timm:NAME, or pkg.module:factory)"
        )


def _check_data_name(parser: argparse.ArgumentParser, name: str) -> None:
    if _is_external(name) or name.endswith((".pt", ".pth", ".npy")):
        return
    names = list(DATA)
    if name not in names:
        parser.error(
            f"argument --data: invalid choice: {name!r} (choose from {', '.join(map(repr, names))}, "
            "pkg.module:factory, file.pt or file.npy)"
        )


#: Built-in models that read token ids: the built-in data they take is ``text``.
TOKEN_MODELS = ("hf:gpt2", "hf:bert", "hf:llama")
#: Built-in models that read float (tokens, features) sequences: digits (images or flat vectors) do not fit.
SEQUENCE_MODELS = ("transformer",)


def _check_data_fits_model(parser: argparse.ArgumentParser, model: str, data: str) -> None:
    """A built-in model with built-in data of the wrong kind (tokens for an image model, images for a language
    model) exits 2 naming the data that fit, before anything is built: otherwise the model fails deep inside
    its first layer with a message about dtypes or shapes."""
    if data not in DATA:
        return
    if model in TOKEN_MODELS and data != "text":
        parser.error(f"argument --data: {model} reads token ids; use --data text (byte tokens of Python's docs), "
                     "a file of token ids or a pkg.module:factory")
    floats = [d for d in DATA if d != "text" and not (model in SEQUENCE_MODELS and d == "digits")]
    if model in SEQUENCE_MODELS and data == "digits":
        parser.error(f"argument --data: digits are images (or flat vectors); {model} reads (tokens, features) "
                     f"sequences: use one of {', '.join(floats)}")
    if data == "text" and (model in MODELS or model.startswith("timm:")) and model not in TOKEN_MODELS:
        fits = ", ".join(floats)
        parser.error(f"argument --data: text is token ids for the language models ({', '.join(TOKEN_MODELS)}); "
                     f"{model} takes float tensors: use one of {fits}")


def _check_device(parser: argparse.ArgumentParser, text: str | None) -> None:
    """Exit 2 before any work when --device names a device this machine cannot use."""
    if text is None:
        return
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        parser.error(f"argument --device: {text!r} is not a torch device; write e.g. cpu, cuda or cuda:1")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error(f"argument --device: {text!r}: CUDA is not available on this machine "
                         "(torch.cuda.is_available() is False); pass --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            parser.error(f"argument --device: {text!r}: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s), numbered from 0; pass e.g. --device cuda:0")
    elif device.type != "cpu":
        try:
            torch.empty(1, device=device)
        except Exception as err:  # noqa: BLE001 - torch raises several types for an absent backend
            parser.error(f"argument --device: {text!r} is not usable here ({_one_line(err)}); pass --device cpu")


def _check_out(path: str | os.PathLike, *, directory: bool = True) -> Path:
    """Raise SkewError before any long work when ``--out`` cannot be written.

    A directory ``--out`` must not be an existing file; a file ``--out`` must not be a directory;
    the nearest existing ancestor must be a directory where a file can be created (probed).
    """
    out = Path(path)
    if directory and out.exists() and not out.is_dir():
        raise SkewError(f"--out {str(out)!r} is a file, not a directory; pass a directory path (created if missing)")
    if not directory and out.is_dir():
        raise SkewError(f"--out {str(out)!r} is a directory; pass a file name such as {str(out / 'w.png')!r}")
    probe = out if directory else out.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise SkewError(f"--out {str(out)!r} lies under {str(probe)!r}, which is a file, not a directory; "
                        "pass another path")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise SkewError(f"cannot write to --out {str(out)!r}: {str(probe)!r} is not writable ({err.strerror}); "
                        "pass a directory you may write to") from None
    return out


def _one_line(err: BaseException, limit: int = 300) -> str:
    """The exception's message on one line (whitespace collapsed, cut at ``limit`` characters)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unpickling_cause(err: BaseException) -> str:
    """What torch's weights-only unpickler refused, without torch's advice to load unsafely."""
    text = " ".join(str(err).split())
    cause = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else ""
    cause = re.split(r"\. Please use|Check the documentation", cause, maxsplit=1)[0].strip().rstrip(".")
    if not cause or re.search(r"weights_only|allow_pickle|safe_globals", cause):
        cause = "it holds objects other than tensors, or is not a torch.save file"
    return cause


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
    if path.is_dir():
        raise SkewError(f"checkpoint {str(path)!r} is a directory; pass the path of a file saved with "
                        "torch.save(model.state_dict(), path)")
    if not path.is_file():
        raise SkewError(f"checkpoint {str(path)!r} does not exist; pass the path of a file saved with "
                        "torch.save(model.state_dict(), path)")
    import warnings

    try:
        with warnings.catch_warnings():  # e.g. torch's note on an unusual pickle protocol
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise SkewError(
            f"checkpoint {str(path)!r} is not a plain state dict ({_unpickling_cause(err)}); save it with "
            "torch.save(model.state_dict(), path) instead of pickling the model"
        ) from err
    except EOFError as err:
        raise SkewError(f"checkpoint {str(path)!r} is empty or truncated; pass a complete file written by "
                        "torch.save(model.state_dict(), path)") from err
    except Exception as err:  # noqa: BLE001 - torch.load raises RuntimeError, OSError, ValueError, ...
        cause = _one_line(err, 160).split(". ")[0]
        if re.search(r"weights_only|allow_pickle", cause):
            cause = type(err).__name__
        raise SkewError(f"cannot read checkpoint {str(path)!r} ({cause}); the file is damaged or not written by "
                        "torch.save; pass a file saved with torch.save(model.state_dict(), path)") from err
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


def _user_code(what: str, fn, *args, **kwargs):
    """Call ``fn``; an exception other than SkewError (raised by a user's factory, say) becomes a SkewError."""
    try:
        return fn(*args, **kwargs)
    except SkewError:
        raise
    except Exception as err:  # noqa: BLE001 - user code may raise anything
        if _out_of_memory(err):
            raise SkewError(f"{what}: {_OOM}") from err
        raise SkewError(f"{what} raised {type(err).__name__}: {_one_line(err)}{_where(err)}; fix it (run with "
                        "--debug for the traceback)") from err


def _where(err: BaseException) -> str:
    """' at file:line' of the innermost traceback frame outside skew and the installed packages, or ''."""
    skew_dir = str(Path(__file__).resolve().parent)
    system = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    where = ""
    tb = err.__traceback__
    while tb is not None:
        file = tb.tb_frame.f_code.co_filename
        resolved = str(Path(file).resolve()) if not file.startswith("<") else file
        inside = resolved.startswith(skew_dir) or any(resolved.startswith(p) for p in system) or file.startswith("<")
        if not inside:
            where = f" at {file}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def _build_model(args):
    """The model ``--model`` names, built (and its lazy modules materialised) from the ``init`` stream of
    ``--seed``, as :func:`skew.compare` builds its models: the constructor's own init (``as_built``) is then
    the same on every run, and equal to ``skew compare --inits as_built --seeds SEED``'s."""
    import torch

    from skew.models import build_model
    from skew.seeding import child_seed

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(child_seed(args.seed, "init"))
        model = _materialize(_user_code(f"model {args.model!r}", build_model, args.model,
                                        **dict(args.model_option or [])), args)
    if getattr(args, "weights", None):
        load_weights(model, args.weights)
    return model


def _lazy_modules(model) -> list[str]:
    """Qualified names of the modules whose parameters or buffers are still uninitialised (lazy)."""
    from torch import nn

    lazy = (nn.parameter.UninitializedParameter, nn.parameter.UninitializedBuffer)
    return [name or type(model).__name__ for name, mod in model.named_modules()
            if any(isinstance(t, lazy) for t in (*mod.parameters(recurse=False), *mod.buffers(recurse=False)))]


def _materialize(model, args):
    """Give a factory model's lazy modules (``nn.LazyLinear``, ...) their weights: one forward pass on a
    batch of 2 zero samples of the input shape, in eval mode, without gradients. A Python user runs that
    pass themselves; on the command line it needs the shape (``--input-shape`` or the factory's own)."""
    lazy = _lazy_modules(model)
    if not lazy:
        return model
    import torch

    names = ", ".join(map(repr, lazy[:3])) + (f" and {len(lazy) - 3} more" if len(lazy) > 3 else "")
    try:
        shape = _input_shape(args)
    except SkewError:
        raise SkewError(f"model {args.model!r} has lazy modules ({names}) whose weights exist only after a "
                        "forward pass; pass --input-shape (per-sample shape, e.g. --input-shape 3 64 64) so "
                        "skew can run one on zeros, or run one in the factory before returning the model") from None
    from skew._state import kept_modes

    try:
        with kept_modes(model), torch.no_grad():
            model.eval()
            model(torch.zeros(2, *shape))
    except Exception as err:  # noqa: BLE001 - the user's model may raise anything
        raise SkewError(f"model {args.model!r} has lazy modules ({names}); creating their weights with one "
                        f"forward pass on zeros of --input-shape {' '.join(map(str, shape))} raised "
                        f"{type(err).__name__}: {_one_line(err)}; check --input-shape") from err
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
        everything = _user_code(f"data {args.data!r}", build_data, args.data, shape=shape,
                                batch_size=args.batch_size, batches=None, seed=args.seed)
        loader = everything if batches is None else everything[:batches]
        total = sum(_samples(b) for b in everything)
    else:
        loader = _user_code(f"data {args.data!r}", build_data, args.data, shape=shape, batch_size=args.batch_size,
                            batches=batches, seed=args.seed)
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


#: What each column of ``skew report``'s table means, printed under it (docs/definitions.md has the maths).
_LEGEND = (
    "columns: samples = values of Z per neuron (a conv's every position of every sample); "
    "skewed_gauss_α = the same fraction with p = Φ(mean_Z/std_Z); lambda_α = Theorem 1's row-sum threshold "
    "(|S| > λ predicts skewed; NaN without weights or input moments); agree_α = fraction of neurons where "
    "|S| > λ and skewed agree; mean_skew = mean of |p - 1/2|; spearman_s_p = rank correlation of the row sum S "
    "with p; oui_pairwise = OUI over the 28 pairs of the first 8 samples; degenerate, dead, always_on = neurons "
    "with constant Z (left out of the fractions), p = 0, p = 1. Definitions: docs/definitions.md"
)


#: What each column of ``skew inspect``'s table means (skew.weights.layer_table has the details).
_INSPECT_LEGEND = (
    "columns: m, n = neurons (rows) × inputs per neuron; rank of the m × n matrix; zero_rows, constant_rows "
    "(all entries equal); parallel_pairs, antiparallel_pairs = row pairs with cosine +1 / -1; weight_var = "
    "Var(W); target_var = the variance the scheme aims at (NaN without --init), var_ratio = weight_var / "
    "target_var; max_abs_s_over_norm = the largest |row sum S| / ‖row‖ (0 when every row cancels, √n for a "
    "constant row)"
)


def _new_figure(width: float = 6.4, height: float = 4.0, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


# ---- commands --------------------------------------------------------------------------------------
def _cmd_plot(args, parser) -> int:
    import torch
    from torch import nn

    from skew import plot, seeding
    from skew._io import save_figure
    from skew.layers import effective_note, neuron_rows, select_layers

    if args.layer and not args.model:
        parser.error("argument --layer: needs --model (the layer is looked up in that model)")
    if not args.model and (args.model_option or getattr(args, "input_shape", None)):  # else silently ignored
        flag = "-o/--model-option" if args.model_option else "--input-shape"
        parser.error(f"argument {flag}: needs --model (it configures that model; without --model --shape M N sets "
                     "the matrix)")
    if args.model and args.shape_given:
        parser.error("argument --shape: not allowed with --model (the layer's own shape is used)")
    fmt = args.format
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        _check_out(out, directory=False)  # names the problem: a directory where a file is expected
    if out is not None and out.suffix:
        suffix = out.suffix.lstrip(".").lower()
        if suffix not in FORMATS:
            parser.error(f"argument --out: unknown suffix {out.suffix!r} (choose from {', '.join(FORMATS)})")
        if fmt and fmt != suffix:
            parser.error(f"argument --format: {fmt!r} conflicts with the suffix of --out {str(out)!r}")
        fmt = suffix
    fmt = fmt or "png"
    if out is None:
        out = Path(f"{args.init}_weights.{fmt}")
    elif not out.suffix:
        out = out.with_suffix(f".{fmt}")
    if args.model:
        _check_model_name(parser, args.model)
    _check_out(out, directory=False)
    if args.model:
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
        weight = neuron_rows(module)  # (neurons, inputs): ConvTranspose and Conv1D read right
        what = f"{args.model} layer {name!r}, {tuple(weight.shape)[0]}×{tuple(weight.shape)[1]} (seed {args.seed})"
        note = effective_note(module)
        if note:  # e.g. a weight-standardised conv: the rows drawn are not the values the scheme wrote
            what += f"\nthe weight forward computes with ({note}), not the stored one {args.init} wrote"
            print(f"note: {name!r} is a {type(module).__name__}: the figure shows the weight its forward computes "
                  f"with ({note}, as every skew table reads it), not the stored values {args.init} wrote")
    else:
        m, n = args.shape
        layer = nn.Linear(n, m, bias=False)
        data = torch.randn(64, n, generator=seeding.generator(args.seed, "data")) if _is_lsuv(args.init) else None
        _apply_init(layer, args.init, args.seed, data)
        weight = layer.weight.detach()
        what = f"a fresh {m}×{n} weight matrix (seed {args.seed})"
    fig, (ax_hist, ax_map) = _new_figure(6.0, 4.4, ncols=2)
    plot.weight_hist(weight, ax=ax_hist, scheme=args.init)
    plot.weight_heatmap(weight, ax=ax_map, scheme=args.init)
    fig.suptitle(f"{args.init} initialization: {what}")
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
    if rep.meta.get("at") == "activations":  # no weights at nonlinearities: no row sums to draw
        jobs = [job for job in jobs if "rowsum" not in job[0]]
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
    _check_data_fits_model(parser, args.model, args.data)
    if args.init and args.weights:
        parser.error("argument --init: not allowed with --weights (measure a checkpoint, or a fresh init, not both)")
    _check_device(parser, args.device)
    if args.out:
        _check_out(args.out)
    from skew.analyzer import report

    model = _build_model(args)
    loader = _build_loader(args)
    if args.init and args.init != "as_built":
        _apply_init(model, args.init, args.seed, _first_input(loader))
    if args.device:
        model.to(args.device)
    rep = report(model, loader, layers=_layers_spec(args.layers), thresholds=args.thresholds, device=args.device,
                 mode=args.mode, at=args.at)
    what = f"init {args.init}" if args.init and args.init != "as_built" else (
        f"weights {args.weights}" if args.weights else "as built")
    print(f"skew report: {args.model} ({what}), data {args.data}: {args.data_note}; "
          "skewed = fraction of non-degenerate neurons with |p - 1/2| > α (count estimator)")
    _print_frame(rep.layers, _layers_columns(rep.thresholds))
    print(_LEGEND)
    _note_nonfinite(rep.layers)
    if len(rep.skipped):
        counts = rep.skipped.groupby(["type", "reason"], sort=False).size().reset_index(name="modules")
        print(f"\nnot measured: {len(rep.skipped)} module(s)" + (" (listed in skipped.csv)" if args.out else ""))
        _print_frame(counts[["modules", "type", "reason"]])
    if args.out:
        out = Path(args.out)
        written = _save_report(rep, out) + _report_figures(rep, out, args.format)
        print(f"\nwrote {len(written)} files to {out}")
    return 0


def _note_nonfinite(layers) -> None:
    """Say on stderr when layers saw NaN/Inf outputs: the table then shows NaN or counts on fewer samples."""
    if "nonfinite" not in layers.columns:
        return
    hit = layers[layers["nonfinite"].fillna(0) > 0]
    if len(hit):
        names = ", ".join(map(str, hit["layer"].head(5))) + (", ..." if len(hit) > 5 else "")
        print(f"skew: note: {len(hit)} layer(s) ({names}) produced {int(hit['nonfinite'].sum())} non-finite "
              "values (NaN/Inf), left out of p; a neuron with no finite value has p = NaN. Check --data and "
              "--weights for NaN/Inf", file=sys.stderr)


def _cmd_compare(args, parser) -> int:
    _check_model_name(parser, args.model)
    _check_data_name(parser, args.data)
    _check_data_fits_model(parser, args.model, args.data)
    inits = [s.strip() for s in args.inits.split(",") if s.strip()]
    if not inits:
        parser.error("argument --inits: give at least one scheme, e.g. --inits xavier_uniform,sinusoidal")
    if len(set(inits)) != len(inits):
        parser.error(f"argument --inits: {args.inits!r} repeats a scheme; list each once, e.g. --inits "
                     "xavier_uniform,sinusoidal")
    for scheme in inits:
        try:
            _scheme_or_as_built(scheme)
        except argparse.ArgumentTypeError as err:
            parser.error(f"argument --inits: {err}")
    _check_device(parser, args.device)
    if args.out:
        _check_out(args.out)
    from skew.compare import compare
    from skew.models import build_model

    options = dict(args.model_option or [])
    loader = _build_loader(args)
    def factory():
        return _materialize(_user_code(f"model {args.model!r}", build_model, args.model, **options), args)

    cmp = compare(factory, loader, inits, seeds=args.seeds, layers=_layers_spec(args.layers), thresholds=args.thresholds,
                  device=args.device, mode=args.mode, at=args.at)
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

        if args.at == "layers":  # no weights at nonlinearities: no row sums to draw
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
    if args.out:
        _check_out(args.out)
    from skew.weights import layer_table, neuron_table

    if args.init == "as_built":  # the model as its constructor built it: what no --init gives
        args.init = None
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
    print(_INSPECT_LEGEND)
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
    _check_out(args.out)
    written = generate(args.out, quick=args.quick, verbose=True, seed=args.seed)
    for path in written:
        print(path)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


# ---- parser ----------------------------------------------------------------------------------------
#: Example command lines shown at the end of each subcommand's ``--help`` (tests/test_cli.py parses every one).
EXAMPLES = {
    "plot": ["skew plot --init sinusoidal",
             "skew plot --init orthogonal --model resnet18 --layer layer1.0.conv1 --out w.pdf"],
    "report": ["skew report --model mlp -o depth=3 --data relu-gaussian --init glorot",
               "skew report --model resnet18 --data digits --init sinusoidal --batches 4 --out out/resnet18",
               "skew report --model mypkg.nets:build --input-shape 3 32 32 --weights ckpt.pt --data batch.pt",
               "skew report --model hf:gpt2 -o n_layer=2 --data text --at activations"],
    "compare": ["skew compare --model mlp -o depth=3 -o width=512 --data relu-gaussian "
                "--inits glorot,he,orthogonal,lsuv,sinusoidal --seeds 0,1,2 --out out/cmp"],
    "inspect": ["skew inspect --model vit_b_16 --init sinusoidal",
                "skew inspect --model mypkg.nets:build --weights ckpt.pt --out out/inspect"],
    "figures": ["skew figures --out my-figures --quick", "skew figures --check"],
    "train": ["skew train --quick --out out/train",
              "skew train --models mlp --inits default,sinusoidal --seeds 0,1 --out out/train",
              "skew train --models mlp --weight-decay 0,1e-4,1e-3 --auto-wd --out out/wd"],
}


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that an ``examples:`` epilog keeps its lines as written."""

    def _fill_text(self, text, width, indent):
        if text.startswith("examples:\n"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


def _examples(command: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[command])


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``skew`` command (subcommands plot, report, compare, inspect, figures, train).

    Building it imports no torch (``train``'s arguments live in :mod:`skew.train_cli`).
    """
    parser = argparse.ArgumentParser(
        prog="skew",
        description="Neuron-skewness analysis for PyTorch: measure P(Z > 0), skew |p - 1/2| and the row-sum link "
        "of every Linear/Conv neuron, under any initialization scheme.",
    )
    parser.add_argument("--version", action="version", version=f"skew {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")

    debug_opt = argparse.ArgumentParser(add_help=False)
    debug_opt.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                           help="show the full traceback on errors")
    common = argparse.ArgumentParser(add_help=False, parents=[debug_opt])
    common.add_argument("--seed", type=_seed_arg, default=0,
                        help="the one random seed: independent streams for data and init are derived from it "
                        "(skew.seeding; default: 0)")

    schemes = _scheme_choices()
    model_opts = argparse.ArgumentParser(add_help=False)
    model_opts.add_argument("--model", required=True,
                            help="built-in model name (mlp, cnn, resnet18, ..., transformer; hf:gpt2, hf:bert, "
                            "hf:llama, hf:vit; see skew.models.model_names), timm:NAME (any timm architecture, "
                            "random weights) or pkg.module:factory")
    model_opts.add_argument("-o", "--model-option", type=_model_option, action=_ModelOptions, metavar="KEY=VALUE",
                            help="option passed to the model builder, repeatable (e.g. -o depth=3 -o width=256)")
    model_opts.add_argument("--layers", type=_layers_arg, help="which layers: a glob or comma-separated names (default: all)")
    model_opts.add_argument("--input-shape", type=_positive_int, nargs="+", metavar="D",
                            help="per-sample input shape when the model is a factory, e.g. 3 64 64")

    data_opts = argparse.ArgumentParser(add_help=False)
    data_opts.add_argument("--data", required=True,
                           help="built-in data name (gaussian, relu-gaussian, uniform, digits, text: byte "
                           "tokens of Python's own docs for hf:gpt2/bert/llama), "
                           "pkg.module:factory, file.pt or file.npy")
    data_opts.add_argument("--batches", type=_positive_int, default=None,
                           help=f"number of batches (default: {DEFAULT_BATCHES} of generated data or a factory; "
                           "a file is used whole)")
    data_opts.add_argument("--batch-size", type=_positive_int, default=64, help="samples per batch (default: 64)")
    data_opts.add_argument("--thresholds", type=_float_list, default=(0.1, 0.3),
                           help="skew thresholds α, comma-separated (default: 0.1,0.3)")
    data_opts.add_argument("--device", type=_device_arg, default=None, help=DEVICE_HELP)
    data_opts.add_argument("--mode", choices=("eval", "train"), default="eval",
                           help="model mode while measuring (default: eval; train lets BatchNorm re-centre)")
    data_opts.add_argument("--format", choices=FORMATS, default="png", help="figure format (default: png)")

    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plot", formatter_class=_HelpFormatter, epilog=_examples("plot"),
                       parents=[common], help="weight histogram beside heatmap for one init scheme",
                       description="Draw a scheme's weight histogram beside its heatmap, for a fresh M×N matrix "
                       "(default 101×101, as in the paper's Fig. 2-3) or one layer of a model.")
    p.add_argument("--init", required=True, type=_scheme_arg, metavar="SCHEME",
                   help=f"initialization scheme: {', '.join(schemes)}")
    p.add_argument("--shape", type=_positive_int, nargs=2, metavar=("M", "N"), default=None,
                   help="matrix shape: M output neurons, N inputs (default: 101 101)")
    p.add_argument("--model", help="take the weight from this model (built-in name or pkg.module:factory)")
    p.add_argument("--layer", type=_layer_name, help="qualified name of the layer in --model (default: its first layer)")
    p.add_argument("-o", "--model-option", type=_model_option, action=_ModelOptions, metavar="KEY=VALUE",
                   help="option passed to the model builder, repeatable")
    p.add_argument("--input-shape", type=_positive_int, nargs="+", metavar="D",
                   help="per-sample input shape of a factory model, for lsuv and lazy modules (e.g. 3 64 64)")
    p.add_argument("--out", type=_out_arg, help="output file (default: <init>_weights.<format>)")
    p.add_argument("--format", choices=FORMATS, default=None, help="figure format (default: from --out, else png)")
    p.set_defaults(func=_cmd_plot, command_parser=p)

    p = sub.add_parser("report", formatter_class=_HelpFormatter, epilog=_examples("report"),
                       parents=[common, model_opts, data_opts],
                       help="measure every neuron's activation skew on data",
                       description="Run the model on data, print the per-layer skew table and (with --out) write "
                       "neurons.csv, layers.csv, the report file and figures.")
    p.add_argument("--weights", help="checkpoint (a state dict saved with torch.save) to load into the model")
    p.add_argument("--init", type=_scheme_or_as_built, metavar="SCHEME",
                   help=f"initialize the model with this scheme first: {', '.join(schemes)}; or as_built (the "
                   "model's own constructor init, no scheme applied: the default)")
    p.add_argument("--out", type=_out_arg, help="output directory")
    p.add_argument("--at", choices=("layers", "activations"), default="layers",
                   help="where to measure: layer outputs Z = Wx + b (default) or the inputs of the nonlinearities")
    p.set_defaults(func=_cmd_report, command_parser=p)

    p = sub.add_parser("compare", formatter_class=_HelpFormatter, epilog=_examples("compare"),
                       parents=[common, model_opts, data_opts],
                       help="compare init schemes (and seeds) on one model",
                       description="Initialize the model with each scheme and seed, measure it, print the "
                       "Table-1 style summary and (with --out) write the frames, tests and figures.")
    p.add_argument("--inits", required=True,
                   help=f"comma-separated schemes, choose from {', '.join(schemes)}, or as_built (the model's "
                   "own constructor init, no scheme applied)")
    p.add_argument("--seeds", type=_int_list, default=[0],
                   help="comma-separated init seeds, one run per scheme and seed (default: 0); the data come "
                   "from --seed, each on its own stream (skew.seeding)")
    p.add_argument("--out", type=_out_arg, help="output directory")
    p.add_argument("--at", choices=("layers", "activations"), default="layers",
                   help="where to measure: layer outputs Z = Wx + b (default) or the inputs of the nonlinearities")
    p.set_defaults(func=_cmd_compare, command_parser=p)

    p = sub.add_parser("inspect", formatter_class=_HelpFormatter, epilog=_examples("inspect"),
                       parents=[common, model_opts],
                       help="data-free weight diagnostics (row sums, norms, per-layer tables)",
                       description="Print skew.weights.layer_table for the model after an init scheme or a "
                       "checkpoint; with --out write layers.csv and neurons.csv.")
    p.add_argument("--init", type=_scheme_or_as_built, metavar="SCHEME",
                   help=f"initialize the model with this scheme first: {', '.join(schemes)}; or as_built (the "
                   "model's own constructor init, no scheme applied: the default)")
    p.add_argument("--weights", help="checkpoint (a state dict saved with torch.save) to load into the model")
    p.add_argument("--out", type=_out_arg, help="output directory")
    p.set_defaults(func=_cmd_inspect, command_parser=p)

    p = sub.add_parser("figures", formatter_class=_HelpFormatter, epilog=_examples("figures"),
                       parents=[common], help="regenerate every reference figure and table",
                       description="Regenerate every figure of docs/experiments.md and the replication tables (CSV "
                       "and Markdown); byte-identical on a second run on the same machine. With --check, "
                       "regenerate into a temporary directory and compare the tables with those in --out "
                       "within stated tolerances (PNGs: existence only); exit 1 on a mismatch.")
    p.add_argument("--out", type=_out_arg, default="figures",
                   help="output directory; with --check, the committed catalogue to compare with (default: figures)")
    p.add_argument("--quick", action="store_true", help="small sizes (about a minute), for tests")
    p.add_argument("--check", action="store_true",
                   help="compare a fresh regeneration with --out instead of writing there; names every file, "
                   "row and column that differs beyond its tolerance")
    p.set_defaults(func=_cmd_figures, command_parser=p)

    from skew.train_cli import add_cli  # light: the arguments only, no torch

    p = add_cli(sub)
    p.formatter_class, p.epilog = _HelpFormatter, _examples("train")
    p.set_defaults(command_parser=p)
    return parser


def _check_train(args, parser: argparse.ArgumentParser) -> None:
    """Exit 2 on bad ``skew train`` values before any training; exit 1 when --out cannot be written."""
    for dest in ("epochs", "patience", "batch_size", "track_every", "threads"):
        value = getattr(args, dest, None)
        if value is not None and value < 1:
            parser.error(f"argument --{dest.replace('_', '-')}: {value} must be at least 1")
    lr = getattr(args, "lr", None)
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        parser.error(f"argument --lr: {lr} must be a finite number above 0, e.g. 0.01")
    inits = getattr(args, "inits", None)
    if inits is not None:
        if not inits:
            parser.error("argument --inits: give at least one scheme, e.g. --inits default,sinusoidal")
        if len(set(inits)) != len(inits):
            parser.error(f"argument --inits: {','.join(inits)} repeats a scheme; list each once")
        for scheme in inits:
            try:
                _scheme_arg(scheme)
            except argparse.ArgumentTypeError as err:
                parser.error(f"argument --inits: {err}")
    models = getattr(args, "models", None)
    if models is not None:
        from skew.train_cli import MODELS as trainable
        bad = [m for m in models if m not in trainable]
        if not models or bad:
            parser.error(f"argument --models: invalid choice: {','.join(bad) or repr('')} "
                         f"(choose from {', '.join(map(repr, trainable))})")
    if getattr(args, "out", None):
        _check_out(args.out)


_OOM = ("out of memory; use fewer or smaller batches (--batches, --batch-size), a smaller --shape or a smaller "
        "model")


def _out_of_memory(err: BaseException) -> bool:
    """A failed allocation: MemoryError, or torch's RuntimeError from its CPU/CUDA allocators."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


def _describe(err: BaseException) -> str:
    """One line naming the cause of an error that is not a SkewError, and what to do about it."""
    if isinstance(err, SyntaxError):
        return f"syntax error in {err.filename}, line {err.lineno}: {err.msg}; fix that file"
    if isinstance(err, ImportError):
        return (f"cannot import {err.name or 'a module'} ({_one_line(err)}); install it or put it on sys.path "
                "(e.g. PYTHONPATH)")
    if isinstance(err, OSError):
        where = f" {str(err.filename)!r}" if err.filename else ""
        return (f"cannot access{where}: {err.strerror or _one_line(err)}; check that the path exists and that you "
                "may read or write it")
    if _out_of_memory(err):
        return _OOM
    where = _where(err)
    fix = ("fix it (run with --debug for the traceback)" if where else
           "run with --debug for the traceback; if the inputs are valid, please report it as a skew bug")
    return f"{type(err).__name__}: {_one_line(err)}{where}; {fix}"


# Advice to load a file unsafely (quoted from numpy or torch inside a message): never printed.
_UNSAFE = re.compile(r"weights_only`?\s*(?:=|set to)\s*`?False|allow_pickle\s*=\s*`?True|allow_pickle=`|unsafely"
                     r"|pickle\.load\(", re.IGNORECASE)


def _safe(message: str) -> str:
    """``message`` on one line, without any parenthesis or sentence that advises loading a file unsafely."""
    text = " ".join(message.split())
    if not _UNSAFE.search(text):
        return text
    parts, depth, start = [], 0, 0  # split into top-level parenthesised groups and the text between them
    for i, ch in enumerate(text):
        if ch == "(":
            if depth == 0:
                parts.append(text[start:i])
                start = i
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0:
                parts.append(text[start:i + 1])
                start = i + 1
    parts.append(text[start:])
    text = "".join(p for p in parts if not (p.startswith("(") and _UNSAFE.search(p)))
    text = re.sub(r"\s+([;,.])", r"\1", " ".join(text.split()))
    if _UNSAFE.search(text):
        text = " ".join(part for part in re.split(r"(?<=[.;])\s+", text) if not _UNSAFE.search(part))
    return text


#: Advice in library messages that names a Python keyword, and what the command line offers instead.
_CLI_ADVICE = (
    ("Make the loader yield what the model expects, or pass input_fn= to map a batch to the model's arguments",
     "Pass data the model reads: another --data, --input-shape for generated data, or the model's own -o "
     "options (e.g. -o in_features=...)"),
    ("; pass layers=None, a glob such as", "; leave out --layers, or pass a glob such as"),
    ("pass e.g. shape=(64,) or shape=(3, 32, 32)", "pass e.g. --input-shape 64 or --input-shape 3 32 32"),
)


def _cli_message(message: str) -> str:
    """A library message in command-line terms: its Python keyword advice (input_fn=, layers=None, shape=)
    becomes the flags that do the same."""
    for python, flags in _CLI_ADVICE:
        message = message.replace(python, flags)
    return message


def _fail(err: BaseException, debug: bool, message: str) -> int:
    if debug:
        traceback.print_exc()
    print(f"skew: error: {_safe(message)}", file=sys.stderr)
    return 1


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
            _check_train(args, args.command_parser)  # before the heavy import: bad values exit 2 at once
            import skew.train as train

            return int(train.run_cli(args) or 0)
        return int(args.func(args, args.command_parser) or 0)
    except SystemExit as exit_:  # argparse: --help/--version (0) and bad arguments (2)
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except SkewError as err:
        return _fail(err, debug, _cli_message(str(err)))
    except KeyboardInterrupt:
        print("skew: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `skew report ... | head`: the reader left; stop quietly, as other tools do
        try:  # and keep Python's own flush of stdout at exit from failing on the closed pipe again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a file descriptor (captured, redirected in-process)
            pass
        return 141  # 128 + SIGPIPE, the status a shell reports for a writer killed by a closed pipe
    except Exception as err:  # noqa: BLE001 - OSError, ImportError, SyntaxError, errors in user code: one line
        return _fail(err, debug, _describe(err))
