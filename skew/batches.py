"""Turning the items of a loader into a model's arguments, on the right device.

Conventions (the ones :func:`skew.report` documents):

- a ``Tensor`` is the model's single positional input: ``model(batch)``;
- a ``tuple`` or ``list`` is ``(inputs, targets, ...)``: only the first item reaches the model,
  ``model(batch[0])`` (and ``model(*batch[0])`` when that first item is itself a tuple or list);
- a ``dict`` (Hugging Face style, e.g. from a ``DataLoader`` over a tokenized dataset) is passed as
  keyword arguments, ``model(**batch)``; when the model's ``forward`` takes no ``**kwargs`` only
  the keys it names are passed (so a ``"label"`` or ``"idx"`` column does not break it), as the
  Hugging Face Trainer does. ``labels`` and ``attention_mask`` reach a model that names them (or
  takes ``**kwargs``: every ``transformers`` model). When the model names none of the keys but the
  dict holds exactly one of the standard input keys (:data:`INPUT_KEYS`: ``input_ids``,
  ``pixel_values``, ...), that value is the model's single positional input, ``model(batch[key])``
  (a timm or plain PyTorch model fed by a Hugging Face image or text pipeline);
- with ``input_fn``, ``input_fn(batch)`` decides: a tuple (or list) is positional arguments, a
  dict keyword arguments, anything else the single positional argument.

Example:
    >>> import torch
    >>> args, kwargs = model_inputs((torch.zeros(4, 3), torch.zeros(4)))
    >>> [tuple(a.shape) for a in args], kwargs
    ([(4, 3)], {})
    >>> describe((torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64)))
    'tuple(Tensor[4,3] float32, Tensor[4] int64)'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch

from skew.errors import SkewError

__all__ = ["INPUT_KEYS", "batch_size", "describe", "iter_batches", "model_inputs", "to_device"]

#: Keys Hugging Face pipelines use for a model's main input, in the order they are looked for.
INPUT_KEYS: tuple[str, ...] = ("input_ids", "pixel_values", "input_values", "input_features", "inputs_embeds")


def iter_batches(loader: Any) -> Iterator[Any]:
    """Iterate over ``loader``'s batches; a single tensor (or dict of tensors) is one batch.

    Example:
        >>> len(list(iter_batches(torch.zeros(8, 3))))
        1
    """
    if isinstance(loader, (torch.Tensor, Mapping)):
        return iter([loader])
    if isinstance(loader, torch.utils.data.Dataset) and not isinstance(loader, Iterable):
        raise SkewError(
            f"loader is a {type(loader).__name__}, a dataset of single samples, not an iterable of batches; "
            "pass torch.utils.data.DataLoader(dataset, batch_size=64) instead"
        )
    if isinstance(loader, (str, bytes)) or not isinstance(loader, Iterable):
        raise SkewError(
            f"loader must be an iterable of batches (a DataLoader, a list of tensors, a generator), "
            f"got {type(loader).__name__}; wrap a single batch as [batch]"
        )
    return iter(loader)


def _forward_keywords(model: torch.nn.Module | None) -> set[str] | None:
    """Names ``model.forward`` accepts as keywords, or None when it takes ``**kwargs``."""
    if model is None:
        return None
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {
        p.name for p in params if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def _from_dict(batch: Mapping, model: torch.nn.Module | None) -> tuple[tuple, dict]:
    accepted = _forward_keywords(model)
    kwargs = {str(k): v for k, v in batch.items()}
    if accepted is not None:
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        inputs = [k for k in INPUT_KEYS if k in batch]
        if not kwargs and len(inputs) == 1 and accepted:
            return (batch[inputs[0]],), {}
        if not kwargs:
            raise SkewError(
                f"none of the batch's keys {sorted(map(str, batch))} is an argument of "
                f"{type(model).__name__}.forward {sorted(accepted)}; rename the keys or pass "
                "input_fn=lambda batch: ... returning the model's arguments"
            )
    return (), kwargs


def model_inputs(
    batch: Any,
    input_fn: Callable[[Any], Any] | None = None,
    model: torch.nn.Module | None = None,
) -> tuple[tuple, dict]:
    """The ``(args, kwargs)`` to call the model with, following the module's conventions.

    Example:
        >>> model_inputs({"x": torch.ones(2, 3)})[1]["x"].shape
        torch.Size([2, 3])
    """
    if input_fn is not None:
        out = input_fn(batch)
        if isinstance(out, Mapping):
            return (), {str(k): v for k, v in out.items()}
        if isinstance(out, (tuple, list)):
            return tuple(out), {}
        return (out,), {}
    if isinstance(batch, Mapping):
        return _from_dict(batch, model)
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise SkewError("a batch is an empty tuple/list; yield (inputs, targets) or a tensor")
        first = batch[0]
        if isinstance(first, Mapping):
            return _from_dict(first, model)
        if isinstance(first, (tuple, list)):
            return tuple(first), {}
        return (first,), {}
    return (batch,), {}


def to_device(obj: Any, device: torch.device | None) -> Any:
    """``obj`` with every tensor inside (tuples, lists, dicts) moved to ``device`` (None: unchanged).

    Example:
        >>> to_device({"x": torch.ones(1)}, torch.device("cpu"))["x"].device.type
        'cpu'
    """
    if device is None:
        return obj
    if isinstance(obj, torch.Tensor):
        if obj.is_meta and torch.device(device).type != "meta":
            raise SkewError(
                f"the batch holds a {describe(obj)} tensor: meta tensors have a shape but no values, so they "
                f"cannot be moved to {device}; yield real data (e.g. torch.randn(...) of that shape)"
            )
        return obj.to(device)
    if isinstance(obj, Mapping):
        moved = {k: to_device(v, device) for k, v in obj.items()}
        try:
            return type(obj)(moved)
        except Exception:
            return moved
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(to_device(v, device) for v in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def describe(obj: Any, *, depth: int = 0) -> str:
    """A short structural description of a batch: ``tuple(Tensor[64,3,32,32] float32, Tensor[64] int64)``.

    Example:
        >>> describe({"ids": torch.zeros(2, 5, dtype=torch.int64)})
        'dict(ids=Tensor[2,5] int64)'
    """
    if isinstance(obj, torch.Tensor):
        dims = ",".join(str(s) for s in obj.shape)
        dtype = str(obj.dtype).replace("torch.", "")
        dev = "" if obj.device.type == "cpu" else f" {obj.device}"
        return f"Tensor[{dims}] {dtype}{dev}"
    if depth >= 3:
        return type(obj).__name__
    if isinstance(obj, Mapping):
        items = list(obj.items())
        inner = ", ".join(f"{k}={describe(v, depth=depth + 1)}" for k, v in items[:8])
        return f"{type(obj).__name__}({inner}{', ...' if len(items) > 8 else ''})"
    if isinstance(obj, (tuple, list)):
        inner = ", ".join(describe(v, depth=depth + 1) for v in obj[:8])
        return f"{type(obj).__name__}({inner}{', ...' if len(obj) > 8 else ''})"
    return type(obj).__name__


def _first_tensor(obj: Any) -> torch.Tensor | None:
    if isinstance(obj, torch.Tensor):
        return obj
    values = obj.values() if isinstance(obj, Mapping) else obj if isinstance(obj, (tuple, list)) else ()
    for v in values:
        t = _first_tensor(v)
        if t is not None:
            return t
    return None


def batch_size(args: tuple, kwargs: dict) -> int:
    """Number of input samples: dim 0 of the first tensor argument (1 for a 0-d or no tensor).

    Example:
        >>> batch_size((torch.zeros(5, 2),), {})
        5
    """
    t = _first_tensor((args, kwargs))
    if t is None or t.dim() == 0:
        return 1
    return int(t.shape[0])
