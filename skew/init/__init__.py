"""Every initialization scheme of docs/init-schemes.md, by name or as torch.nn.init-style functions.

Schemes (:func:`schemes`): ``default``, ``xavier_uniform``, ``xavier_normal``,
``kaiming_uniform``, ``kaiming_normal``, ``orthogonal``, ``lsuv``, ``sinusoidal``, ``idinit``,
``arcsine``, ``uniform``. Aliases, each paper's own law: ``glorot`` -> ``xavier_uniform``
(``torch.nn.init.xavier_uniform_``), ``he`` -> ``kaiming_normal`` (``torch.nn.init.kaiming_normal_``;
He schemes use ``nonlinearity="relu"``, ``mode="fan_in"``). ``as_built`` (the model as its
constructor initialized it) is taken by :func:`skew.compare` and the CLI. Options are spelled
``"uniform:5"``, ``"sinusoidal:fans=torch"`` or ``"sinusoidal:mode=fan_in,gain=1.4142"``; an
option given twice is an error. Sinusoidal's default amplitude is the authors' released
initializer (a² = 2/(v(n+m)), n = row length, m = rows); ``fans="torch"`` uses torch's fans.

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
from skew.init.registry import ALIASES, AS_BUILT, Scheme, aliases, get_scheme, schemes

__all__ = [
    "ALIASES",
    "AS_BUILT",
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
