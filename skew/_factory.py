"""Resolve a user's ``"pkg.module:factory"`` string to the callable it names."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from skew.errors import SkewError

__all__ = ["import_factory"]


def import_factory(spec: str, kind: str, example: str) -> Callable:
    """The callable named by ``spec`` = ``"pkg.module:attr[.attr...]"``.

    ``kind`` ("model", "data") and ``example`` (a well-formed spec) go into the error messages.

    Example:
        >>> import_factory("math:sqrt", "data", "mypkg.data:make_batches")(4.0)
        2.0
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SkewError(f"{kind} {spec!r} is not 'pkg.module:factory'; write e.g. {example!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        missing = getattr(err, "name", None)
        if missing and missing != module_name and not module_name.startswith(f"{missing}."):
            raise SkewError(f"module {module_name!r} for {kind} {spec!r} imports {missing!r}, which cannot be "
                            f"imported ({err}); install it or fix that import") from err
        raise SkewError(f"cannot import {module_name!r} for {kind} {spec!r} ({err}); check it is on sys.path") from err
    except SyntaxError as err:
        raise SkewError(f"module {module_name!r} for {kind} {spec!r} has a syntax error in {err.filename}, line "
                        f"{err.lineno}: {err.msg}; fix that file") from err
    except Exception as err:  # noqa: BLE001 - the user's module may raise anything while it is imported
        raise SkewError(f"importing {module_name!r} for {kind} {spec!r} raised {type(err).__name__}: "
                        f"{' '.join(str(err).split())}; fix the module (run with --debug for the traceback)") from err
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SkewError(f"module {module_name!r} has no attribute {attr!r}; check the factory name in {spec!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SkewError(f"{spec!r} is not callable; point it at a function or class that returns the {kind}")
    return obj
