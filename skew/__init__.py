"""skew: neuron-skewness analysis for PyTorch.

Measure, on any model, each neuron's activation probability p = P(Z > 0), its skew |p − 1/2|,
its weight row sum S = Σ_j W_ij and Theorem 1's prediction p_pred = Φ((μS + b)/(σ‖W_i‖)),
under any initialization scheme (arXiv 2505.12909).

The public surface:

- ``skew.report(model, loader)`` → :class:`Report` (per-neuron and per-layer frames, plots, save/load)
- ``skew.compare(model, loader, schemes=[...])`` → :class:`Comparison` (tidy frames with an ``init`` column)
- ``skew.init``: every scheme by name (``skew.init.apply(model, "sinusoidal")``, ``skew.init.schemes()``)
  and the in-place functions ``sinusoidal_``, ``idinit_``, ``idiz_``, ``arcsine_``
- ``skew.theory``: Theorem 1's threshold λ, predicted p, the closed-form skewed fraction, input-law moments
- ``skew.weights``: data-free diagnostics (row sums, rank, zero/constant/antiparallel rows)
- ``skew.plot``: every figure as a function taking ``ax=None`` and returning the Axes
- ``skew.Tracker``: skew and OUI through training; ``skew.train``: the convergence experiment
- ``skew.models`` / ``skew.data``: built-in models and data used by the CLI and the figures
- ``skew.seeding``: independent random streams (data, init, shuffle, dropout) from one user seed
- ``skew.oui``: the Overfitting-Underfitting Indicator from activation patterns (pairwise, batch)

Example:
    >>> import torch, skew
    >>> net = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(256, 128, bias=False))
    >>> _ = skew.init.apply(net, "sinusoidal")
    >>> rep = skew.report(net, torch.randn(512, 256))
    >>> float(rep.layers["skewed_0.1"].iloc[0])  # sinusoidal rows sum to 0: nothing is skewed
    0.0
"""

import sys
import types

from skew._version import __version__
from skew.errors import SkewError

# The public API loads on first use (PEP 562), so ``import skew`` and ``skew --help`` do not import
# torch, pandas or matplotlib; ``skew.report``, ``skew.init.apply`` etc. work as if imported eagerly.
_LAZY = {
    "Comparison": ("skew.compare", "Comparison"),
    "Report": ("skew.result", "Report"),
    "Tracker": ("skew.tracker", "Tracker"),
    "compare": ("skew.compare", "compare"),
    "report": ("skew.analyzer", "report"),
}
_SUBMODULES = ("data", "init", "layers", "models", "oui", "plot", "seeding", "theory", "weights", "train", "figures")

__all__ = [
    "Comparison",
    "Report",
    "SkewError",
    "Tracker",
    "__version__",
    "compare",
    "data",
    "init",
    "layers",
    "models",
    "plot",
    "oui",
    "report",
    "seeding",
    "theory",
    "weights",
]


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"skew.{name}")
    else:
        raise AttributeError(f"module 'skew' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))


class _Package(types.ModuleType):
    """``import skew.compare`` binds the submodule on the package; the public ``skew.compare`` is the function
    (as when the API was imported eagerly), so the binding is redirected to it."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and value.__name__ == f"skew.{name}" and _LAZY.get(name, ("",))[0] == (
                value.__name__):
            value = getattr(value, _LAZY[name][1])
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
