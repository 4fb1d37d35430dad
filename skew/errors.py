"""The one exception class skew raises for problems the user can fix."""

__all__ = ["SkewError"]


class SkewError(ValueError):
    """A user-facing error: its message names the problem and the fix.

    Subclasses :class:`ValueError` so code that already catches bad-argument
    errors keeps working.

    Example:
        >>> import skew
        >>> try:
        ...     skew.init.apply(torch.nn.Linear(3, 2), "no-such-scheme")
        ... except skew.SkewError as err:
        ...     print(err)  # doctest: +SKIP
    """
