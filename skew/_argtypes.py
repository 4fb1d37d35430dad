"""argparse types shared by the ``skew`` command and ``skew train`` (light: no torch).

Example:
    >>> seed_list("0,1,2"), names(" mlp, cnn ,"), float_list("0,1e-3")
    ([0, 1, 2], ['mlp', 'cnn'], [0.0, 0.001])
"""

from __future__ import annotations

import argparse

__all__ = ["float_list", "names", "out_path", "seed", "seed_list"]


def names(text: str) -> list[str]:
    """Comma-separated names, blanks dropped."""
    return [t for t in (part.strip() for part in text.split(",")) if t]


def seed(text: str) -> int:
    """A seed: an integer in [0, 2**63)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer seed, e.g. 0") from None
    if not 0 <= value < 2**63:
        what = "is negative" if value < 0 else "is too large"
        raise argparse.ArgumentTypeError(f"seed {value} {what}; pass an integer in [0, 2**63), e.g. 0")
    return value


def seed_list(text: str) -> list[int]:
    """Comma-separated seeds: at least one, each a :func:`seed`, none repeated."""
    try:
        values = [int(v) for v in names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers, e.g. 0,1,2") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one integer, e.g. 0,1,2")
    for value in values:
        seed(str(value))
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} repeats a value; list each seed once, e.g. 0,1,2")
    return values


def float_list(text: str) -> list[float]:
    """Comma-separated numbers."""
    try:
        return [float(t) for t in names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of numbers, e.g. 0,1e-4,1e-3,1e-2"
        ) from None


def out_path(text: str) -> str:
    """argparse type for ``--out``: a non-empty path (an empty one would silently write nothing, or into '.')."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is an empty path; pass a directory or file name, e.g. --out out")
    return text
