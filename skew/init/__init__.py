"""Every initialization scheme of docs/init-schemes.md, by name or as torch.nn.init-style functions.

Schemes (:func:`schemes`): ``default``, ``xavier_uniform``, ``xavier_normal``,
``kaiming_uniform``, ``kaiming_normal``, ``orthogonal``, ``lsuv``, ``sinusoidal``, ``idinit``,
``arcsine``, ``uniform``. Aliases: ``glorot`` -> ``xavier_uniform``, ``he`` -> ``kaiming_uniform``
(He schemes use ``nonlinearity="relu"``, ``mode="fan_in"``). Options are spelled
``"uniform:5"`` or ``"sinusoidal:mode=fan_in,gain=1.4142"``.

- :func:`apply` initializes a whole model and returns one row per parameter.
- :func:`sinusoidal_`, :func:`idinit_`, :func:`idiz_`, :func:`arcsine_` fill one tensor in place;
  Glorot, He, orthogonal and uniform are ``torch.nn.init``'s own functions.

Example:
    >>> import torch.nn as nn, skew
    >>> net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 1))
    >>> table = skew.init.apply(net, "sinusoidal")
    >>> table.action.tolist()
    ['set', 'set', 'set', 'set']
"""

from __future__ import annotations

from skew.init.apply import apply
from skew.init.functions import (
    arcsine_,
    idinit_,
    idiz_,
    sinusoidal_,
    sinusoidal_amplitude,
    sinusoidal_variance,
)
from skew.init.lsuv import lsuv_rescale
from skew.init.registry import ALIASES, Scheme, aliases, get_scheme, schemes

__all__ = [
    "ALIASES",
    "Scheme",
    "aliases",
    "apply",
    "arcsine_",
    "get_scheme",
    "idinit_",
    "idiz_",
    "lsuv_rescale",
    "schemes",
    "sinusoidal_",
    "sinusoidal_amplitude",
    "sinusoidal_variance",
]
