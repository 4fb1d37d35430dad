"""Argument checks shared by the public functions: one clear :class:`~skew.errors.SkewError` per bad value."""

from __future__ import annotations

import numbers

from skew.errors import SkewError

__all__ = ["positive_int"]


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
