"""Argument checks shared by the public functions: one clear :class:`~skew.errors.SkewError` per bad value."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

from skew.errors import SkewError

__all__ = ["MAX_SIZE", "eager_module", "positive_int", "thresholds"]

#: The largest size a tensor dimension (or element count) can have: torch sizes are signed 64-bit.
MAX_SIZE = 2**63 - 1


def positive_int(name: str, value, example: int = 16) -> int:
    """``value`` as an int n ≥ 1: an integer (Python or numpy) or a whole float (``2.0``), never a bool;
    anything else (0, -1, 1.5, NaN, a word) raises :class:`SkewError` naming ``name`` and ``example``.

    Example:
        >>> positive_int("bins", 30.0), positive_int("width", 16)
        (30, 16)
        >>> positive_int("bins", 1.5)
        Traceback (most recent call last):
        ...
        skew.errors.SkewError: bins=1.5 must be a positive integer; pass e.g. bins=16
    """
    whole = isinstance(value, numbers.Integral) or (isinstance(value, numbers.Real) and float(value).is_integer())
    if isinstance(value, bool) or not whole or value < 1:
        raise SkewError(f"{name}={value!r} must be a positive integer; pass e.g. {name}={example}")
    if value > MAX_SIZE:
        raise SkewError(f"{name}={value!r} is larger than any tensor size ({MAX_SIZE}); pass e.g. {name}={example}")
    return int(value)


def thresholds(value, name: str = "thresholds") -> tuple[float, ...]:
    """Skew degrees α as a tuple of floats, each strictly between 0 and 1/2, none repeated.

    A list, tuple, numpy array or tensor of numbers, or one number; anything else (a word, None, a bool,
    a nested list, NaN, an empty list) raises :class:`SkewError` naming ``name``.

    Example:
        >>> thresholds([0.1, 0.3]), thresholds(0.3)
        ((0.1, 0.3), (0.3,))
    """
    items = value.tolist() if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) else value
    if isinstance(items, numbers.Real):
        items = [items]
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        items = [value]
    items = list(items)
    if any(isinstance(a, bool) or not isinstance(a, numbers.Real) for a in items) or not items or any(
            not 0.0 < float(a) < 0.5 for a in items):
        raise SkewError(f"{name}={value!r:.80} must be skew degrees α in (0, 0.5), strictly between 0 and 1/2; "
                        f"pass e.g. {name}=(0.1, 0.3)")
    values = tuple(float(a) for a in items)
    if len({f"{a:g}" for a in values}) != len(values):
        raise SkewError(f"{name}={value!r:.80} repeat a value; pass distinct degrees such as (0.1, 0.3)")
    return values


def eager_module(model) -> None:
    """Raise :class:`SkewError` when ``model`` is, or contains, a TorchScript module (``torch.jit.script`` /
    ``torch.jit.trace``): those take no forward hooks and hide the layer types skew reads.

    Example:
        >>> import torch
        >>> eager_module(torch.nn.Linear(2, 2))
        >>> eager_module(torch.jit.script(torch.nn.Linear(2, 2)))  # doctest: +SKIP
        SkewError: RecursiveScriptModule is a TorchScript module (torch.jit.script/trace): ...
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        return
    for name, mod in model.named_modules():
        if isinstance(mod, torch.jit.ScriptModule):
            what = type(model).__name__ if not name else f"{type(model).__name__}'s module {name!r}"
            raise SkewError(
                f"{what} is a TorchScript module (torch.jit.script/trace): it takes no forward hooks and hides its "
                "layer types; pass the eager nn.Module it was made from"
            )
