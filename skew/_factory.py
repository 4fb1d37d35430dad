"""Resolve a user's ``"pkg.module:factory"`` string to the callable it names."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from types import ModuleType

from skew.errors import SkewError

__all__ = ["import_factory"]


def _import_like_python_m(module_name: str) -> ModuleType:
    """Import ``module_name`` as ``python -m`` would find it: the current directory searched first.

    The ``skew`` console script starts with its own bin directory on ``sys.path``, not the current
    directory, so ``--model mymod:build`` could not see ``./mymod.py``. The current directory is put
    at the front of ``sys.path`` for this import only; the entry is removed afterwards, leaving the
    rest of ``sys.path`` (including changes the imported module makes) as it is.
    """
    cwd = os.getcwd()
    sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # the module file may have been written after start-up
    try:
        return importlib.import_module(module_name)
    finally:
        if sys.path and sys.path[0] == cwd:
            del sys.path[0]
        elif cwd in sys.path:
            sys.path.remove(cwd)


def import_factory(spec: str, kind: str, example: str) -> Callable:
    """The callable named by ``spec`` = ``"pkg.module:attr[.attr...]"``.

    The module is imported as ``python -m`` would: the current working directory is searched
    first, so a ``mymod.py`` beside you works with ``--model mymod:build``. ``kind`` ("model",
    "data") and ``example`` (a well-formed spec) go into the error messages.

    Example:
        >>> import_factory("math:sqrt", "data", "mypkg.data:make_batches")(4.0)
        2.0
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SkewError(f"{kind} {spec!r} is not 'pkg.module:factory'; write e.g. {example!r}")
    try:
        module = _import_like_python_m(module_name)
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
