"""Which modules skew measures and initializes, and how a user picks among them.

A *layer* is a module whose output is a pre-activation Z = W x + b: ``nn.Linear``
(and subclasses such as ``MultiheadAttention.out_proj``), ``nn.Conv1d/2d/3d`` and
``nn.ConvTranspose1d/2d/3d``. A weight of shape (c_out, c_in/groups, k1, k2, ...)
is read as the matrix (c_out, prod(shape[1:])), row-major, exactly as
``torch.nn.init`` computes fans, so row i is neuron i.

Example:
    >>> import torch.nn as nn
    >>> from skew.layers import select_layers, weight_matrix
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> [name for name, _ in select_layers(net, "*")]
    ['0', '2']
    >>> weight_matrix(nn.Conv2d(2, 5, 3).weight).shape
    torch.Size([5, 18])
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable
from typing import Union

import torch
from torch import nn

from skew.errors import SkewError

__all__ = [
    "LAYER_TYPES",
    "LayerSpec",
    "attention_projections",
    "is_layer",
    "select_layers",
    "weight_matrix",
]

#: Module types whose output is a pre-activation with one neuron per output channel.
LAYER_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)

#: What ``layers=`` accepts everywhere in skew.
LayerSpec = Union[
    None,
    str,
    Iterable[str],
    type,
    tuple,
    Callable[[str, nn.Module], bool],
]


def is_layer(module: nn.Module) -> bool:
    """True for a module skew treats as a layer (Linear, ConvNd, ConvTransposeNd) with a weight.

    Example:
        >>> is_layer(nn.Conv2d(3, 8, 3)), is_layer(nn.BatchNorm2d(8))
        (True, False)
    """
    return isinstance(module, LAYER_TYPES) and isinstance(getattr(module, "weight", None), torch.Tensor)


def weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """View a weight as the (m, n) matrix of SPEC's notation: rows are neurons.

    .. math:: W_{(c_{out},\\,c_{in}/g \\cdot k_1 \\cdots k_d)} = \\mathrm{reshape}(W, (c_{out}, -1))

    For ``ConvTranspose`` weights (c_in, c_out/g, k...) this follows ``torch.nn.init``'s own
    convention (dim 0 read as rows), which is what the init functions need.

    Example:
        >>> weight_matrix(torch.zeros(8, 4, 3, 3)).shape
        torch.Size([8, 36])
    """
    if weight.dim() < 2:
        raise SkewError(
            f"a weight matrix needs at least 2 dimensions, got shape {tuple(weight.shape)}; "
            "1-D tensors (biases, norms) have no rows to read"
        )
    return weight.reshape(weight.shape[0], -1)


def _matches(spec, name: str, module: nn.Module) -> bool:
    if isinstance(spec, str):
        return fnmatch.fnmatchcase(name, spec)
    if isinstance(spec, type):
        return isinstance(module, spec)
    if isinstance(spec, tuple) and all(isinstance(t, type) for t in spec):
        return isinstance(module, spec)
    raise TypeError  # handled by the caller


def select_layers(
    model: nn.Module,
    layers: LayerSpec = None,
    *,
    kinds: tuple[type[nn.Module], ...] = LAYER_TYPES,
) -> list[tuple[str, nn.Module]]:
    """The (qualified name, module) pairs of ``model`` that ``layers`` selects, in registration order.

    ``layers`` may be None (every layer), a glob on qualified names (``"features.*"``), a list of
    exact names or globs, a module type or tuple of types, or a predicate ``f(name, module) -> bool``.
    Only modules of ``kinds`` with a weight tensor are returned. An explicit name that matches no
    module raises :class:`SkewError` listing the closest names.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
        >>> [n for n, _ in select_layers(net, nn.Conv2d)]
        ['0']
    """
    if not isinstance(model, nn.Module):
        raise SkewError(f"expected a torch.nn.Module, got {type(model).__name__}; pass the model itself")
    named = list(model.named_modules())
    candidates = [
        (name, mod)
        for name, mod in named
        if isinstance(mod, kinds) and isinstance(getattr(mod, "weight", None), torch.Tensor)
        and not isinstance(getattr(mod, "weight", None), nn.parameter.UninitializedParameter)
    ]
    if layers is None:
        return candidates
    if callable(layers) and not isinstance(layers, type):
        return [(n, m) for n, m in candidates if layers(n, m)]
    if isinstance(layers, (str, type)) or (
        isinstance(layers, tuple) and layers and all(isinstance(t, type) for t in layers)
    ):
        specs = [layers]
    else:
        try:
            specs = list(layers)
        except TypeError:
            raise SkewError(
                f"layers={layers!r} is not understood; pass None, a glob such as 'features.*', "
                "a list of module names, a module type, or a predicate f(name, module) -> bool"
            ) from None
    all_names = [n for n, _ in named]
    for spec in specs:
        if isinstance(spec, str) and not any(ch in spec for ch in "*?[") and spec not in all_names:
            close = difflib.get_close_matches(spec, all_names, n=3)
            hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
            raise SkewError(
                f"no module named {spec!r} in {type(model).__name__}; {hint}"
                "use qualified names from model.named_modules(), or a glob such as 'features.*'"
            )
    out = []
    for name, mod in candidates:
        try:
            if any(_matches(spec, name, mod) for spec in specs):
                out.append((name, mod))
        except TypeError:
            raise SkewError(
                f"layers entry {specs!r} is not a name, glob or module type; "
                "pass names such as 'layer1.0.conv1' or types such as torch.nn.Conv2d"
            ) from None
    return out


def attention_projections(mha: nn.MultiheadAttention) -> list[tuple[str, torch.Tensor, torch.Tensor | None]]:
    """The q/k/v input projections of a ``nn.MultiheadAttention`` as (suffix, weight, bias) views.

    Packed ``in_proj_weight`` (3E, E) is split into its three (E, E) row blocks; with separate
    ``q_proj_weight``/``k_proj_weight``/``v_proj_weight`` (kdim/vdim != embed_dim) those are used.
    The views share storage with the parameters, so in-place init on them writes the module.
    Qualified names are ``f"{mha_name}.{suffix}"`` with suffix ``q_proj``, ``k_proj``, ``v_proj``;
    ``out_proj`` is an ``nn.Linear`` submodule and is found by :func:`select_layers` itself.

    Example:
        >>> mha = nn.MultiheadAttention(8, 2)
        >>> [(s, tuple(w.shape)) for s, w, _ in attention_projections(mha)]
        [('q_proj', (8, 8)), ('k_proj', (8, 8)), ('v_proj', (8, 8))]
    """
    e = mha.embed_dim
    bias = mha.in_proj_bias
    biases = [None, None, None] if bias is None else [bias[:e], bias[e : 2 * e], bias[2 * e :]]
    if mha.in_proj_weight is not None:
        w = mha.in_proj_weight
        weights = [w[:e], w[e : 2 * e], w[2 * e :]]
    else:
        weights = [mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight]
    return [(s, wt, b) for s, wt, b in zip(("q_proj", "k_proj", "v_proj"), weights, biases)]
