"""Built-in data for skew's experiments, by name: ``build_data("relu-gaussian", shape=(784,))``.

Names (:func:`data_names`):

- ``gaussian``: i.i.d. N(0, 1) entries; ``relu-gaussian``: ReLU of those; ``uniform``: U(−1, 1).
  Drawn from the ``data`` stream of ``seed`` (:func:`skew.seeding.generator`), never from a generator
  seeded with ``seed`` itself, so data are independent of weights initialized with the same seed;
  the same call gives the same tensors.
- ``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download), scaled
  from [0, 16] to [0, 1] and standardised with the dataset's mean and std, shuffled with ``seed``'s
  ``data`` stream,
  then shaped for the model (see :func:`digits_tensors`). Batches are ``(x, y)``.
- ``text``: the Python standard library's own documentation (``pydoc_data.topics``) as UTF-8 bytes,
  one token per byte (vocabulary 256), cut into sequences of ``shape = (seq_len,)`` tokens. Batches
  are Hugging Face style dicts ``{"input_ids", "attention_mask"}`` (see :func:`text_batches`).
- ``"pkg.module:factory"``: ``factory(**kw)`` with whichever of shape, batch_size, batches, seed
  its signature takes (``seed`` is the ``data`` stream's child seed, not the user seed); it may
  return a tensor (split into batches) or any iterable of batches.
- ``file.pt`` / ``file.pth``: loaded with ``torch.load(weights_only=True)``; a tensor is split into
  batches, an (x, y) pair of equal-length tensors into (x, y) batches, a list is taken as batches.
- ``file.npy``: loaded with ``numpy.load(allow_pickle=False)`` and split into batches.

Every function returns a plain list of batches (small, reproducible, reusable for several passes).

Example:
    >>> from skew.data import build_data
    >>> batches = build_data("relu-gaussian", shape=(16,), batch_size=8, batches=2)
    >>> len(batches), tuple(batches[0].shape), bool((batches[0] >= 0).all())
    (2, (8, 16), True)
"""

from __future__ import annotations

import inspect
import itertools
import math
import numbers
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from skew._checks import MAX_SIZE
from skew._factory import import_factory
from skew.errors import SkewError
from skew.seeding import _user_seed, child_seed, generator

__all__ = ["build_data", "data_names", "digits_dataset", "digits_tensors", "text_batches", "text_tokens"]

_SYNTHETIC = ("gaussian", "relu-gaussian", "uniform")
_FILE_SUFFIXES = (".pt", ".pth", ".npy")


def data_names() -> list[str]:
    """Names :func:`build_data` knows (``"pkg.module:factory"``, ``file.pt`` and ``file.npy`` work too).

    Example:
        >>> data_names()
        ['gaussian', 'relu-gaussian', 'uniform', 'digits', 'text']
    """
    return [*_SYNTHETIC, "digits", "text"]


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        if isinstance(shape, (str, bytes)):  # tuple(b"x") is (120,): a word is no shape
            raise TypeError
        dims = tuple(shape)
        if any(isinstance(s, bool) or not float(s).is_integer() for s in dims):  # (4.5,) is no shape
            raise ValueError
        out = tuple(int(s) for s in dims)
    except (TypeError, ValueError, OverflowError):
        raise SkewError(f"shape must be a per-sample shape such as (784,) or (3, 32, 32), got {shape!r}") from None
    if not out or any(s < 1 for s in out):
        raise SkewError(f"shape {out} must be non-empty with positive sizes, e.g. (784,) or (3, 32, 32)")
    if math.prod(out) > MAX_SIZE:
        raise SkewError(f"shape {out} has more entries than any tensor can hold; pass e.g. (784,) or (3, 32, 32)")
    return out


def _check_count(name: str, value, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_SIZE:
        extra = " or None (all)" if allow_none else ""
        raise SkewError(f"{name}={value!r} must be a positive integer{extra} (at most {MAX_SIZE}); pass e.g. {name}=4")
    return int(value)


def _synthetic(name: str, shape, batch_size: int, batches: int, seed: int) -> list[torch.Tensor]:
    gen = generator(seed, "data")
    out = []
    for _ in range(batches):
        if name == "uniform":
            x = torch.rand((batch_size, *shape), generator=gen) * 2.0 - 1.0
        else:
            x = torch.randn((batch_size, *shape), generator=gen)
            if name == "relu-gaussian":
                x = x.clamp_min(0.0)
        out.append(x)
    return out


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SkewError("the digits data needs scikit-learn, which is not installed; run `pip install 'neuron-skew[data]'`") \
            from None
    d = load_digits()
    return d.data.astype(np.float32), d.target.astype(np.int64)


def digits_tensors(shape: Sequence[int] = (64,), seed: int | None = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as (x, y) tensors shaped for a model with per-sample input ``shape``.

    Pixels p ∈ [0, 16] become u = p / 16, then x = (u − mean(u)) / std(u) with the mean and std over
    the whole dataset (one scalar each). Then:

    - ``(F,)``: F = 64 flattens the 8×8 image; F = s² resizes it to s×s (bilinear) and flattens;
      any other F resamples the flat 64-vector linearly to length F.
    - ``(C, H, W)``: resized to H×W (bilinear, ``F.interpolate``) and replicated to C channels.

    ``seed`` shuffles the samples (``torch.randperm`` drawn from the ``data`` stream of that seed,
    :func:`skew.seeding.generator`); ``None`` keeps sklearn's order.

    Example:
        >>> x, y = digits_tensors((3, 16, 16))
        >>> tuple(x.shape), int(y.max())
        ((1797, 3, 16, 16), 9)
    """
    shape = _check_shape(shape)
    if len(shape) not in (1, 3):
        raise SkewError(
            f"digits can be shaped as (F,) for an MLP or (C, H, W) for an image model, not {shape}; "
            "pass e.g. shape=(64,) or shape=(3, 32, 32)"
        )
    data, target = _load_digits()
    u = data / 16.0
    x = torch.from_numpy((u - u.mean()) / u.std())
    y = torch.from_numpy(target)
    if seed is not None:
        perm = torch.randperm(len(x), generator=generator(seed, "data"))
        x, y = x[perm], y[perm]
    img = x.reshape(-1, 1, 8, 8)
    if len(shape) == 3:
        c, h, w = shape
        if (h, w) != (8, 8):
            img = F.interpolate(img, size=(h, w), mode="bilinear", align_corners=False)
        return img.expand(-1, c, h, w).contiguous(), y
    (f,) = shape
    if f == 64:
        return img.reshape(-1, 64), y
    side = math.isqrt(f)
    if side * side == f:
        return F.interpolate(img, size=(side, side), mode="bilinear", align_corners=False).reshape(-1, f), y
    return F.interpolate(img.reshape(-1, 1, 64), size=f, mode="linear", align_corners=False).reshape(-1, f), y


def digits_dataset(shape: Sequence[int] = (64,), seed: int = 0, val_fraction: float = 0.2
                   ) -> tuple[TensorDataset, TensorDataset]:
    """A fixed (train, validation) split of the digits as ``TensorDataset`` s of (x, y).

    The samples are shuffled with ``seed`` (see :func:`digits_tensors` for the shaping) and the last
    ``round(val_fraction · 1797)`` of them form the validation set: the same seed gives the same split.

    Example:
        >>> train, val = digits_dataset((64,), seed=0)
        >>> len(train), len(val)
        (1438, 359)
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real) or not 0.0 < float(val_fraction) < 1.0:
        raise SkewError(f"val_fraction={val_fraction!r} must lie strictly between 0 and 1; pass e.g. 0.2")
    x, y = digits_tensors(shape, seed=seed)
    n_val = int(round(float(val_fraction) * len(x)))
    n_val = min(max(n_val, 1), len(x) - 1)
    cut = len(x) - n_val
    return TensorDataset(x[:cut], y[:cut]), TensorDataset(x[cut:], y[cut:])


def _batch_count(n: int, batch_size: int, batches: int | None, have: str, other: str) -> int:
    """``batches`` batches of ``batch_size`` out of ``n`` items (None: all, the last one short);
    SkewError naming both counts when there are too few."""
    if batches is None:
        return math.ceil(n / batch_size)
    if batches * batch_size > n:
        raise SkewError(
            f"{have}, fewer than batches × batch_size = {batches} × {batch_size}; "
            f"ask for at most {n // batch_size} batches of {batch_size} {other}"
        )
    return batches


def _digits(shape, batch_size: int, batches: int | None, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = digits_tensors(shape, seed=seed)
    n = len(x)
    batches = _batch_count(n, batch_size, batches, f"digits has {n} samples", "(or batches=None for all)")
    return [(x[i * batch_size:(i + 1) * batch_size], y[i * batch_size:(i + 1) * batch_size]) for i in range(batches)]


#: Sequence length of the ``text`` data when no shape is given (the ``hf:*`` language models' default).
TEXT_SEQ_LEN = 64


def text_tokens() -> torch.Tensor:
    """The ``text`` corpus as one long tensor of byte tokens in [0, 255].

    The strings of the standard library's ``pydoc_data.topics`` (the help texts behind ``help("if")``)
    in sorted key order, each encoded as UTF-8 and concatenated: no download, no tokenizer, 466,117
    tokens on CPython 3.11 (the texts change with the Python version, so do the tokens). Byte 0 never
    occurs in them, which makes it a safe padding token.

    Example:
        >>> t = text_tokens()
        >>> t.dtype, int(t.min()) > 0, int(t.max()) < 256
        (torch.int64, True, True)
    """
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    data = b"".join(topics[k].encode("utf-8") for k in sorted(topics))
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


def text_batches(seq_len: int = TEXT_SEQ_LEN, batch_size: int = 64, batches: int | None = 4, seed: int = 0,
                 ragged: bool = False) -> list[dict[str, torch.Tensor]]:
    """Batches of byte-token sequences from :func:`text_tokens`, as Hugging Face style dicts.

    The corpus is cut into ``n = len // seq_len`` non-overlapping windows, window k holding tokens
    [k·seq_len, (k+1)·seq_len); their order is shuffled with ``torch.randperm(n, seed)``, and batch b
    takes windows b·batch_size .. (b+1)·batch_size − 1 of that order (``batches=None``: all of them, the
    last batch possibly shorter). Each batch is ``{"input_ids": (B, seq_len) int64, "attention_mask":
    (B, seq_len) int64}``: the mask is all ones, except with ``ragged=True``, where sequence i keeps
    only its first L_i tokens, L_i uniform in 1..seq_len (drawn from the same seeded generator), and
    positions ≥ L_i hold the padding token 0 with mask 0 (right padding, as tokenizers pad). The same
    arguments give the same batches (on the same Python version). A model sees ``model(**batch)``;
    pair it with a vocabulary of at least 256 (the ``hf:*`` models' default).

    Example:
        >>> b = text_batches(seq_len=8, batch_size=2, batches=1, ragged=True)[0]
        >>> tuple(b["input_ids"].shape), bool((b["input_ids"][b["attention_mask"] == 0] == 0).all())
        ((2, 8), True)
    """
    seq_len = _check_count("seq_len", seq_len)
    batch_size = _check_count("batch_size", batch_size)
    batches = _check_count("batches", batches, allow_none=True)
    seed = _user_seed(seed)
    if seed >= 2**64:  # the order is torch.randperm drawn from torch.Generator().manual_seed(seed)
        raise SkewError(f"seed={seed} is larger than a torch seed (< 2**64); pass e.g. seed=0")
    if not isinstance(ragged, (bool, np.bool_)):  # ragged="no" is truthy: it would pad the batches
        raise SkewError(f"ragged={ragged!r} must be True or False; pass e.g. ragged=True")
    tokens = text_tokens()
    n = len(tokens) // seq_len
    if n < 1:
        raise SkewError(f"seq_len={seq_len} is longer than the whole text ({len(tokens)} tokens); pass a shorter one")
    batches = _batch_count(n, batch_size, batches, f"text has {n} sequences of {seq_len} tokens",
                           "or shorter sequences")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    windows = tokens[: n * seq_len].reshape(n, seq_len)
    out = []
    for b in range(batches):
        ids = windows[order[b * batch_size:(b + 1) * batch_size]]
        mask = torch.ones_like(ids)
        if ragged:
            lengths = torch.randint(1, seq_len + 1, (len(ids), 1), generator=gen)
            mask = (torch.arange(seq_len) < lengths).long()
            ids = ids * mask
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def _split(obj, batch_size: int, batches: int | None, shape, source: str) -> list:
    """A tensor, or an (x, y) pair of equal-length tensors, cut into batches of ``batch_size``."""
    if isinstance(obj, tuple) and len(obj) >= 2 and all(isinstance(t, torch.Tensor) for t in obj) \
            and len({len(t) for t in obj}) == 1:
        _check_sample_shape(obj[0], shape, source)
        n = len(obj[0])
        count = math.ceil(n / batch_size) if batches is None else min(batches, math.ceil(n / batch_size))
        return [tuple(t[i * batch_size:(i + 1) * batch_size] for t in obj) for i in range(count)]
    if isinstance(obj, torch.Tensor):
        if obj.dim() == 0:
            raise SkewError(f"{source} holds a scalar; save a tensor of shape (samples, *input_shape)")
        _check_sample_shape(obj, shape, source)
        chunks = list(torch.split(obj, batch_size))
        return chunks if batches is None else chunks[:batches]
    raise TypeError


def _check_sample_shape(x: torch.Tensor, shape, source: str) -> None:
    if shape is not None and x.is_floating_point() and tuple(x.shape[1:]) != tuple(shape):
        raise SkewError(
            f"{source} holds samples of shape {tuple(x.shape[1:])} but the model expects {tuple(shape)}; "
            "save data shaped (samples, *input_shape) or pass a matching --input-shape"
        )


def _as_batches(obj, batch_size: int, batches: int | None, shape, source: str) -> list:
    try:
        return _split(obj, batch_size, batches, shape, source)
    except TypeError:
        pass
    if isinstance(obj, dict):
        return [obj]
    if isinstance(obj, (str, bytes)) or not hasattr(obj, "__iter__"):
        raise SkewError(
            f"{source} gave a {type(obj).__name__}; it must be a tensor, an (x, y) pair of tensors, "
            "or an iterable of batches"
        )
    items = obj if batches is None else itertools.islice(obj, batches)
    out = list(items)
    if not out:
        raise SkewError(f"{source} yields no batches; give it at least one batch of data")
    return out


def _dense(obj):
    """``obj`` with every sparse tensor (at the top, or in a list, tuple or dict) made dense: batches are
    sliced and fed to models, which sparse layouts do not support."""
    if isinstance(obj, torch.Tensor):
        return obj.to_dense() if obj.layout != torch.strided else obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_dense(v) for v in obj)
    if isinstance(obj, dict):
        return {k: _dense(v) for k, v in obj.items()}
    return obj


def _from_file(path: Path, batch_size: int, batches: int | None, shape) -> list:
    if not path.is_file():
        raise SkewError(f"data file {str(path)!r} does not exist; check the path")
    source = f"data file {str(path)!r}"
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise SkewError(f"{source} cannot be read without pickle ({err}); save a plain numeric array") from None
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if t.is_floating_point():
            t = t.float()
        return _as_batches(t, batch_size, batches, shape, source)
    try:
        with warnings.catch_warnings():  # torch warns that it validates sparse tensors: they are densified below
            warnings.filterwarnings("ignore", message="Validating sparse tensor invariants")
            obj = _dense(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # torch raises UnpicklingError/RuntimeError for unsafe or corrupt files
        raise SkewError(
            f"{source} cannot be loaded with torch.load(weights_only=True) ({type(err).__name__}); "
            "save plain tensors, e.g. torch.save(x, path) or torch.save([x1, x2], path)"
        ) from None
    if isinstance(obj, list):
        out = obj if batches is None else obj[:batches]
        if not out:
            raise SkewError(f"{source} holds an empty list; save at least one batch")
        for b in out:
            if isinstance(b, torch.Tensor):
                _check_sample_shape(b, shape, source)
        return out
    return _as_batches(obj, batch_size, batches, shape, source)


def _from_factory(spec: str, shape, batch_size: int, batches: int | None, seed: int) -> list:
    fn = import_factory(spec, "data", "mypkg.data:make_batches")
    offered = {"shape": shape, "batch_size": batch_size, "batches": batches, "seed": child_seed(seed, "data")}
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = offered
    else:
        kwargs = {k: v for k, v in offered.items() if k in params}
    return _as_batches(fn(**kwargs), batch_size, batches, shape, f"data factory {spec!r}")


def build_data(name: str | os.PathLike, *, shape: Sequence[int] | None = None, batch_size: int = 64,
               batches: int | None = 4, seed: int = 0) -> list:
    """A list of ``batches`` batches of ``batch_size`` samples, each sample of per-sample ``shape``.

    Synthetic laws (``gaussian`` N(0, 1), ``relu-gaussian`` max(0, N(0, 1)), ``uniform`` U(−1, 1))
    give tensors (batch_size, *shape); ``digits`` gives (x, y) pairs; ``text`` gives dicts of
    ``input_ids`` and ``attention_mask``, (batch_size, seq_len) each, with ``shape = (seq_len,)``
    (default (64,); see :func:`text_batches`). Files and factories are split
    into batches of ``batch_size`` (at most ``batches`` of them; ``batches=None`` keeps all) and,
    when ``shape`` is given, their float samples must have that shape. ``shape`` is required for
    the other built-in names. Bad names, shapes or counts raise :class:`SkewError`.

    Example:
        >>> x = build_data("uniform", shape=(3, 4, 4), batch_size=2, batches=1, seed=1)[0]
        >>> tuple(x.shape), bool(x.abs().max() <= 1)
        ((2, 3, 4, 4), True)
    """
    batch_size = _check_count("batch_size", batch_size)
    batches = _check_count("batches", batches, allow_none=True)
    if shape is not None:
        shape = _check_shape(shape)
    spec = os.fspath(name) if isinstance(name, os.PathLike) else name
    if not isinstance(spec, str):
        raise SkewError(f"data name must be a string such as 'gaussian', got {type(name).__name__}")
    if spec == "text":
        if shape is not None and len(shape) != 1:
            raise SkewError(f"text data are token sequences: shape must be (seq_len,), e.g. (64,), not {shape}")
        return text_batches(shape[0] if shape else TEXT_SEQ_LEN, batch_size, batches, child_seed(seed, "data"))
    if spec in _SYNTHETIC or spec == "digits":
        if shape is None:
            raise SkewError(f"data {spec!r} needs shape=, the per-sample input shape, e.g. shape=(784,)")
        if spec == "digits":
            return _digits(shape, batch_size, batches, seed)
        if batches is None:
            raise SkewError(f"data {spec!r} is unbounded; pass a number of batches, e.g. batches=4")
        return _synthetic(spec, shape, batch_size, batches, seed)
    if spec.endswith(_FILE_SUFFIXES):
        return _from_file(Path(spec), batch_size, batches, shape)
    if ":" in spec and not os.path.exists(spec):
        return _from_factory(spec, shape, batch_size, batches, seed)
    raise SkewError(
        f"unknown data {spec!r}; valid data are {', '.join(data_names())}, 'pkg.module:factory', "
        "file.pt or file.npy"
    )
