"""Argument checks shared by the public functions: one clear :class:`~skew.errors.SkewError` per bad value."""

from __future__ import annotations

import numbers

from skew.errors import SkewError

__all__ = ["eager_module", "positive_int"]


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
    return int(value)


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
