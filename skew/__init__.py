"""skew: neuron-skewness analysis for PyTorch.

Measure, on any model, each neuron's activation probability p = P(Z > 0), its skew |p - 1/2|,
its weight row sum S and Theorem 1's prediction, under any initialization scheme.

Example:
    >>> import skew
    >>> skew.init.apply(model, "sinusoidal")          # doctest: +SKIP
    >>> rep = skew.report(model, loader)               # doctest: +SKIP
    >>> rep.layers[["layer", "skewed_0.1", "skewed_0.3"]]  # doctest: +SKIP
"""

from skew import layers
from skew._version import __version__
from skew.errors import SkewError

__all__ = ["SkewError", "__version__", "layers"]
