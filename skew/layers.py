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
from dataclasses import dataclass
from typing import Union

import torch
from torch import nn

from skew.errors import SkewError

__all__ = [
    "LAYER_TYPES",
    "LayerSpec",
    "WeightUnit",
    "attention_projections",
    "is_layer",
    "select_layers",
    "select_units",
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
    weight = getattr(module, "weight", None)
    return (
        isinstance(module, LAYER_TYPES)
        and isinstance(weight, torch.Tensor)
        and not isinstance(weight, nn.parameter.UninitializedParameter)
    )


def weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """View a weight as the (m, n) matrix of docs/definitions.md's notation: rows are neurons.

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


@dataclass(frozen=True)
class WeightUnit:
    """One weight matrix skew reads or writes: a layer, or one q/k/v block of an attention module.

    ``module`` is the layer itself, or the owning ``nn.MultiheadAttention`` for a block;
    ``weight``/``bias`` are the parameters, or row-block views of ``in_proj_weight``/``in_proj_bias``;
    ``block`` is ``"q_proj"``, ``"k_proj"`` or ``"v_proj"`` for attention blocks, else None.
    """

    name: str
    module: nn.Module
    weight: torch.Tensor
    bias: torch.Tensor | None
    block: str | None = None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _is_types(spec) -> bool:
    return isinstance(spec, type) or (
        isinstance(spec, tuple) and len(spec) > 0 and all(isinstance(t, type) for t in spec)
    )


def _all_units(model: nn.Module) -> list[WeightUnit]:
    units = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.MultiheadAttention):
            for suffix, w, b in attention_projections(mod):
                units.append(WeightUnit(_join(name, suffix), mod, w, b, suffix))
        elif is_layer(mod):
            bias = mod.bias if isinstance(getattr(mod, "bias", None), torch.Tensor) else None
            units.append(WeightUnit(name, mod, mod.weight, bias))
    return units


def select_units(model: nn.Module, layers: LayerSpec = None) -> list[WeightUnit]:
    """Every layer and attention q/k/v block of ``model`` that ``layers`` selects, in forward-registration order.

    The one selection rule of skew (``skew.init.apply``, ``skew.weights``, ``skew.report`` and the
    Tracker all use it). ``layers`` may be:

    - None: everything;
    - a glob or exact qualified name (``"features.*"``, ``"layer1.0.conv1"``, ``"*.q_proj"``); the
      exact name of a ``MultiheadAttention`` selects its q/k/v blocks and its ``out_proj``;
    - a module type or tuple of types (attention blocks match ``nn.MultiheadAttention``);
    - a list mixing names, globs and types;
    - a predicate ``f(name, module) -> bool`` (for blocks, ``module`` is the attention module).

    An exact name that matches nothing raises :class:`SkewError` with the closest names.

    Example:
        >>> enc = nn.TransformerEncoderLayer(8, 2, 16)
        >>> [u.name for u in select_units(enc, "self_attn")]
        ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj']
        >>> [u.name for u in select_units(enc, ["linear*", "*.v_proj"])]
        ['self_attn.v_proj', 'linear1', 'linear2']
    """
    if not isinstance(model, nn.Module):
        raise SkewError(f"expected a torch.nn.Module, got {type(model).__name__}; pass the model itself")
    units = _all_units(model)
    if layers is None:
        return units
    if callable(layers) and not isinstance(layers, type):
        return [u for u in units if layers(u.name, u.module)]
    if isinstance(layers, str) or _is_types(layers):
        specs = [layers]
    else:
        try:
            specs = list(layers)  # a generator is read once, here
        except TypeError:
            raise SkewError(
                f"layers={layers!r} is not understood; pass None, a glob such as 'features.*', "
                "a list of module names, a module type, or a predicate f(name, module) -> bool"
            ) from None
    for spec in specs:
        if not (isinstance(spec, str) or _is_types(spec)):
            raise SkewError(
                f"layers entry {spec!r} is not a name, glob or module type; "
                "pass names such as 'layer1.0.conv1' or types such as torch.nn.Conv2d"
            )
    named = dict(model.named_modules())
    known = list(named) + [u.name for u in units if u.block is not None]
    for spec in specs:
        if isinstance(spec, str) and not any(ch in spec for ch in "*?[") and spec not in known:
            close = difflib.get_close_matches(spec, known, n=3)
            hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
            raise SkewError(
                f"no module named {spec!r} in {type(model).__name__}; {hint}"
                "use qualified names from model.named_modules(), or a glob such as 'features.*'"
            )
    attention = {
        _join(name, part)
        for name, mod in named.items()
        if isinstance(mod, nn.MultiheadAttention) and name in specs
        for part in ("q_proj", "k_proj", "v_proj", "out_proj")
    }

    def chosen(u: WeightUnit) -> bool:
        return u.name in attention or any(
            fnmatch.fnmatchcase(u.name, spec) if isinstance(spec, str) else isinstance(u.module, spec)
            for spec in specs
        )

    return [u for u in units if chosen(u)]


def select_layers(model: nn.Module, layers: LayerSpec = None) -> list[tuple[str, nn.Module]]:
    """The (qualified name, module) pairs of the *modules* ``layers`` selects (no attention blocks).

    Same rule as :func:`select_units`, keeping the layers that are modules of their own (Linear,
    ConvNd, ConvTransposeNd, and ``out_proj``).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
        >>> [n for n, _ in select_layers(net, nn.Conv2d)]
        ['0']
    """
    return [(u.name, u.module) for u in select_units(model, layers) if u.block is None]


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
