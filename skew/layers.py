"""Which modules skew measures and initializes, and how a user picks among them.

A *layer* is a module whose output is a pre-activation Z = W x + b: ``nn.Linear``
(and subclasses such as ``MultiheadAttention.out_proj``), ``nn.Conv1d/2d/3d``,
``nn.ConvTranspose1d/2d/3d`` and any module with the contract of Hugging Face's
``transformers.pytorch_utils.Conv1D`` (weight stored (in, out), output x @ W + b, attribute ``nf``;
found by that contract, so ``transformers`` is never imported here).

A *neuron's row* is every weight that feeds one output unit, and :class:`NeuronView` is the one
definition skew uses to read and write it (init, ``skew.weights`` and ``report`` alike):

- Linear, ConvNd (weight (c_out, c_in/g, k1, ...)): row c is ``weight[c].flatten()``, the matrix
  (c_out, prod(shape[1:])) read row-major exactly as ``torch.nn.init`` computes fans;
- ConvTransposeNd (weight (c_in, c_out/g, k1, ...)): the neuron is output channel
  c = g·(c_out/g) + c', and its row is ``weight[g-th block of c_in/g input channels, c', ...]``
  flattened (c_in/g · k1 · ... entries);
- Conv1D (weight (in, out)): row c is column c, ``weight[:, c]``.

Rows are READ from the weight the layer computes with (:func:`effective_weight`): the stored
``weight`` for ordinary layers, and for layers that transform it inside ``forward`` (timm's
weight-standardised ``StdConv2d``/``ScaledStdConv2d``, or classes registered with
:func:`register_effective_weight`) the transformed one. Writing (``skew.init.apply``) always writes
the stored parameter.

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
import inspect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Union

import torch
from torch import nn

from skew._checks import eager_module, positive_int
from skew.errors import SkewError

__all__ = [
    "LAYER_TYPES",
    "LayerSpec",
    "NeuronView",
    "WeightUnit",
    "attention_projections",
    "effective_note",
    "effective_weight",
    "is_conv1d",
    "is_layer",
    "neuron_rows",
    "neuron_view",
    "register_effective_weight",
    "select_layers",
    "select_units",
    "weight_matrix",
]

#: Module types whose output is a pre-activation with one neuron per output channel. Layers with
#: the Conv1D contract (``is_conv1d``) are layers too, found by duck typing: test with
#: :func:`is_layer`, not ``isinstance(module, LAYER_TYPES)``.
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


_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _usable(weight) -> bool:
    return isinstance(weight, torch.Tensor) and not isinstance(weight, nn.parameter.UninitializedParameter)


def is_conv1d(module: nn.Module) -> bool:
    """True for a layer with the contract of ``transformers.pytorch_utils.Conv1D``.

    The contract (GPT-2's layers): an integer attribute ``nf`` (output features), a 2-D weight
    stored (in, out) with ``weight.shape[1] == nf`` (and ``weight.shape[0] == nx`` when the module
    has ``nx``), output :math:`x W + b`. Detected by that contract, so any module honouring it is
    a layer and ``transformers`` need not be imported.

    Example:
        >>> class Conv1D(nn.Module):                 # the shape of GPT-2's layer
        ...     def __init__(self, nf, nx):
        ...         super().__init__()
        ...         self.nf, self.nx = nf, nx
        ...         self.weight = nn.Parameter(torch.zeros(nx, nf))
        ...         self.bias = nn.Parameter(torch.zeros(nf))
        >>> is_conv1d(Conv1D(6, 4)), is_conv1d(nn.Linear(4, 6))
        (True, False)
    """
    if isinstance(module, LAYER_TYPES):
        return False
    nf = getattr(module, "nf", None)
    if isinstance(nf, bool) or not isinstance(nf, int):
        return False
    weight = getattr(module, "weight", None)
    if not _usable(weight) or weight.dim() != 2 or weight.shape[1] != nf:
        return False
    nx = getattr(module, "nx", None)
    return nx is None or (isinstance(nx, int) and nx == weight.shape[0])


def is_layer(module: nn.Module) -> bool:
    """True for a module skew treats as a layer (Linear, ConvNd, ConvTransposeNd, Conv1D) with a weight.

    Example:
        >>> is_layer(nn.Conv2d(3, 8, 3)), is_layer(nn.BatchNorm2d(8))
        (True, False)
    """
    if isinstance(module, LAYER_TYPES):
        return _usable(getattr(module, "weight", None))
    return is_conv1d(module)


# -- the weight a layer computes with --------------------------------------------------------------


def _standardized(module: nn.Module, gain: torch.Tensor | None = None) -> torch.Tensor:
    """timm's weight standardisation, call for call: ``F.batch_norm`` over each output channel's
    fan-in (biased variance, ``module.eps``), times ``gain`` per channel when given."""
    import torch.nn.functional as F

    w = module.weight
    return F.batch_norm(
        w.reshape(1, module.out_channels, -1), None, None, weight=gain, training=True, momentum=0.0, eps=module.eps
    ).reshape_as(w)


def _std_conv(module: nn.Module) -> torch.Tensor:
    return _standardized(module)


def _scaled_std_conv(module: nn.Module) -> torch.Tensor:
    return _standardized(module, (module.gain * module.scale).view(-1))


_WS = "weight standardisation"
#: "module.qualname" of a class -> (function module -> the weight its forward computes with, what it is).
#: Keys are strings, so timm is never imported; a subclass inherits its closest registered base's entry.
_EFFECTIVE: dict[str, tuple[Callable[[nn.Module], torch.Tensor], str]] = {
    f"{package}.std_conv.{cls}": (fn, note)
    for package in ("timm.layers", "timm.models.layers")  # timm >= 0.9 and the older home of the module
    for cls, fn, note in (
        ("StdConv2d", _std_conv, _WS),
        ("StdConv2dSame", _std_conv, _WS),
        ("ScaledStdConv2d", _scaled_std_conv, f"scaled {_WS}"),
        ("ScaledStdConv2dSame", _scaled_std_conv, f"scaled {_WS}"),
    )
}


def _class_key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register_effective_weight(
    cls: type | str, fn: Callable[[nn.Module], torch.Tensor] | None, note: str = "transformed in forward"
) -> None:
    r"""Declare that layers of class ``cls`` compute with ``fn(module)`` instead of their stored weight.

    ``cls`` is a class or its ``"module.qualname"`` (a string needs no import); ``fn(module)``
    returns the weight the layer's ``forward`` really uses, shaped as ``module.weight``; ``note``
    names the transform in ``layer_table``'s note. ``fn=None`` removes an entry. Subclasses inherit
    the entry of their closest registered base. timm's ``StdConv2d``, ``StdConv2dSame``,
    ``ScaledStdConv2d`` and ``ScaledStdConv2dSame`` are registered:

    .. math:: W^{\text{eff}}_{i} = g_i\,\gamma\,n^{-1/2}\,
        \frac{W_i - \bar W_i}{\sqrt{\tfrac1n \sum_j (W_{ij} - \bar W_i)^2 + \varepsilon}}
        \quad (\text{StdConv: } g_i \gamma n^{-1/2} = 1)

    Example:
        >>> class Halved(nn.Linear):                     # forward uses weight / 2
        ...     def forward(self, x):
        ...         return nn.functional.linear(x, self.weight / 2, self.bias)
        >>> register_effective_weight(Halved, lambda m: m.weight / 2, "halved")
        >>> layer = Halved(3, 2)
        >>> bool(torch.equal(effective_weight(layer), layer.weight / 2)), effective_note(layer)
        (True, 'halved')
        >>> register_effective_weight(Halved, None)
    """
    key = cls if isinstance(cls, str) else _class_key(cls) if isinstance(cls, type) else None
    if key is None:
        raise SkewError(f"register_effective_weight needs a class or a 'module.qualname' string, got {cls!r}")
    if fn is None:
        _EFFECTIVE.pop(key, None)
        return
    if not callable(fn):
        raise SkewError(f"fn={fn!r} is not callable; pass a function module -> the weight its forward uses")
    _EFFECTIVE[key] = (fn, str(note))


def _transform(module: nn.Module) -> tuple[Callable[[nn.Module], torch.Tensor], str] | None:
    if not _EFFECTIVE:
        return None
    for cls in type(module).__mro__:
        entry = _EFFECTIVE.get(_class_key(cls))
        if entry is not None:
            return entry
    return None


def _check_module(module, fn: str) -> None:
    if not isinstance(module, nn.Module):
        raise SkewError(f"{fn} needs a torch.nn.Module (a layer), got {type(module).__name__}; pass e.g. model.conv1")


def effective_note(module: nn.Module) -> str | None:
    """What :func:`effective_weight` applies to ``module``'s stored weight, or None when nothing.

    Example:
        >>> effective_note(nn.Conv2d(3, 4, 3)) is None
        True
    """
    _check_module(module, "effective_note")
    entry = _transform(module)
    return None if entry is None else entry[1]


def effective_weight(module: nn.Module) -> torch.Tensor:
    r"""The weight ``module``'s forward multiplies by: ``module.weight`` itself for ordinary layers
    (for a parametrized one that is already its computed value), the transformed weight for a
    registered class (:func:`register_effective_weight`), computed as its forward does, in the
    weight's dtype, without autograd. Timm's weight-standardised convolutions:

    .. math:: W^{\text{eff}}_{i} = \frac{W_i - \bar W_i}{\sqrt{\operatorname{Var}_b(W_i) + \varepsilon}}
        \cdot g_i \gamma / \sqrt{n}\ \text{(Scaled)}, \qquad \textstyle\sum_j W^{\text{eff}}_{ij} \approx 0

    Example:
        >>> conv = nn.Conv2d(2, 3, 3)
        >>> effective_weight(conv) is conv.weight
        True
    """
    _check_module(module, "effective_weight")
    weight = getattr(module, "weight", None)
    entry = _transform(module)
    if entry is None:
        return weight
    fn, note = entry
    if not _usable(weight):
        return weight
    try:
        with torch.no_grad():
            out = fn(module)
    except Exception as err:
        raise SkewError(
            f"computing the effective weight of {type(module).__name__} ({note}) failed: {type(err).__name__}: "
            f"{err}; fix or unregister it with skew.layers.register_effective_weight({type(module).__name__}, None)"
        ) from err
    if not isinstance(out, torch.Tensor) or out.shape != weight.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SkewError(
            f"the effective weight of {type(module).__name__} ({note}) has shape {got}, not its weight's "
            f"{tuple(weight.shape)}; the registered function must return the weight forward uses, shaped as weight"
        )
    return out.detach()


class NeuronView:
    r"""A layer's weight seen as its neurons' rows: the one definition of "a neuron's row" in skew.

    ``shape`` is the weight as ``torch.nn.init`` should see it, rows first:
    (c_out, c_in/g, k1, ...) for ConvNd and ConvTransposeNd, (out, in) for Linear and Conv1D, so
    fans computed on it are a neuron's (fan_in = the row length n). :meth:`matrix` reads the (m, n)
    rows; :meth:`write` and :meth:`fill` write rows in place into the layer's own weight (the
    parameter is never re-bound). ``layout`` is ``"rows"`` (Linear, ConvNd, attention blocks),
    ``"columns"`` (Conv1D) or ``"transposed"`` (ConvTransposeNd with ``groups``).

    .. math:: W^{\text{rows}}_{c,\,(i,\,\kappa)} = W_{g\cdot c_{in}/g + i,\; c',\; \kappa}
        \quad (c = g \cdot c_{out}/g + c',\ \text{ConvTranspose})

    Example:
        >>> up = nn.ConvTranspose2d(4, 6, 3, groups=2)
        >>> view = neuron_view(up)
        >>> tuple(view.shape), (view.m, view.n)
        ((6, 2, 3, 3), (6, 18))
        >>> view.write(torch.zeros(6, 18)); float(up.weight.detach().abs().sum())
        0.0
    """

    def __init__(self, weight: torch.Tensor, layout: str = "rows", groups: int = 1):
        if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
            shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
            raise SkewError(
                f"a neuron view needs a weight with at least 2 dimensions, got {shape}; 1-D tensors "
                "(biases, norms) have no rows"
            )
        if layout not in ("rows", "columns", "transposed"):
            raise SkewError(f"unknown row layout {layout!r}; use 'rows', 'columns' or 'transposed'")
        self.weight, self.layout, self.groups = weight, layout, positive_int("groups", groups, 1)
        if layout == "rows":
            self.shape = weight.shape
        elif layout == "columns":
            if weight.dim() != 2:
                raise SkewError(f"a Conv1D weight is 2-D (in, out), got shape {tuple(weight.shape)}")
            self.shape = torch.Size((weight.shape[1], weight.shape[0]))
        else:
            c_in, cout_g, g = weight.shape[0], weight.shape[1], self.groups
            if g < 1 or c_in % g:
                raise SkewError(f"groups={g} does not divide the {c_in} input channels of shape {tuple(weight.shape)}")
            self.shape = torch.Size((g * cout_g, c_in // g, *weight.shape[2:]))
        self.m = int(self.shape[0])
        self.n = int(math.prod(self.shape[1:]))

    def _blocks(self) -> torch.Tensor:
        """The transposed layout as a view (g, c_out/g, c_in/g, k...) of the weight."""
        w, g = self.weight, self.groups
        split = w.unflatten(0, (g, w.shape[0] // g))
        return split.transpose(1, 2)

    def tensor(self) -> torch.Tensor | None:
        """A tensor of :attr:`shape` sharing storage with the weight, or None where none exists.

        None only for a grouped ConvTranspose (groups > 1), whose rows are no single strided view.
        """
        if self.layout == "rows":
            return self.weight
        if self.layout == "columns":
            return self.weight.t()
        if self.groups == 1:
            return self.weight.transpose(0, 1)
        return None

    def matrix(self) -> torch.Tensor:
        """The (m, n) rows, detached: a view of the weight where one exists, else a copy."""
        t = self.tensor()
        if t is None:
            return self._blocks().detach().reshape(self.m, self.n)
        return t.detach().reshape(self.m, self.n)

    def write(self, values: torch.Tensor) -> None:
        """Copy ``values`` (shape :attr:`shape` or (m, n)) into the rows, in place, without autograd."""
        with torch.no_grad():
            if self.layout == "transposed" and self.groups > 1:
                g = self.groups
                self._blocks().copy_(values.reshape(g, self.m // g, *self.shape[1:]))
            else:
                self.tensor().copy_(values.reshape(self.shape))

    def fill(self, fn: Callable[[torch.Tensor], object], device: torch.device | None = None) -> None:
        """Run the in-place initializer ``fn`` on a tensor of :attr:`shape` and land it in the rows.

        ``fn`` gets the view itself when it is contiguous on the weight's device, else a contiguous
        staging tensor (on ``device`` when given, e.g. a generator's) that is then copied in, so
        the values laid out along the rows do not depend on the weight's memory layout.
        """
        target = self.tensor()
        device = self.weight.device if device is None else torch.device(device)
        if target is not None and target.is_contiguous() and device.type == self.weight.device.type:
            with torch.no_grad():
                fn(target)
            return
        staged = torch.empty(self.shape, dtype=self.weight.dtype, device=device)
        with torch.no_grad():
            fn(staged)
        self.write(staged.to(self.weight.device))


def _layout(module: nn.Module) -> tuple[str, int]:
    if isinstance(module, _CONV_T):
        return "transposed", int(module.groups)
    if is_conv1d(module):
        return "columns", 1
    return "rows", 1


def neuron_view(module: nn.Module, weight: torch.Tensor | None = None) -> NeuronView:
    """The :class:`NeuronView` of a layer's weight (or of ``weight``, laid out as that layer's).

    Example:
        >>> neuron_view(nn.ConvTranspose1d(3, 5, 2)).shape
        torch.Size([5, 3, 2])
    """
    w = getattr(module, "weight", None) if weight is None else weight
    if not _usable(w) or w.dim() < 2:
        raise SkewError(
            f"{type(module).__name__} has no weight matrix; pass a Linear, ConvNd, ConvTransposeNd or "
            "Conv1D layer"
        )
    layout, groups = _layout(module)
    return NeuronView(w, layout, groups)


def neuron_rows(module: nn.Module) -> torch.Tensor:
    r"""The (m, n) matrix of a layer's neuron rows (row i feeds output unit i), sharing no storage.

    Read from :func:`effective_weight`: a weight-standardised conv's rows are its standardised ones.

    .. math:: W_{(c_{out},\; c_{in}/g \cdot k_1 \cdots k_d)}

    Linear/ConvNd: ``weight.reshape(c_out, -1)``. ConvTransposeNd (weight (c_in, c_out/g, k...)):
    row c = g·(c_out/g) + c' is ``weight[g·(c_in/g):(g+1)·(c_in/g), c', ...]`` flattened. Conv1D
    (weight (in, out)): ``weight.T``. Returned in the weight's dtype on its device.

    Example:
        >>> neuron_rows(nn.ConvTranspose2d(4, 6, 3, groups=2)).shape
        torch.Size([6, 18])
    """
    return neuron_view(module, effective_weight(module)).matrix().clone()


def weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """View a weight as the (m, n) matrix of docs/definitions.md's notation: rows are neurons.

    .. math:: W_{(c_{out},\\,c_{in}/g \\cdot k_1 \\cdots k_d)} = \\mathrm{reshape}(W, (c_{out}, -1))

    This reads a bare tensor, dim 0 as rows (``torch.nn.init``'s own convention). A
    ``ConvTranspose`` weight (c_in, c_out/g, k...) or a ``Conv1D`` weight (in, out) does not keep
    its neurons along dim 0: read a layer's rows with :func:`neuron_rows` / :func:`neuron_view`.

    Example:
        >>> weight_matrix(torch.zeros(8, 4, 3, 3)).shape
        torch.Size([8, 36])
    """
    if not isinstance(weight, torch.Tensor):
        raise SkewError(f"weight_matrix needs a torch.Tensor, got {type(weight).__name__}; pass a layer's weight, "
                        "e.g. model.fc1.weight")
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

    def _view(self, weight: torch.Tensor) -> NeuronView:
        return NeuronView(weight) if self.block is not None else neuron_view(self.module, weight)

    @property
    def view(self) -> NeuronView:
        """The unit's :class:`NeuronView` (attention blocks are (E, E) row blocks): for writing."""
        return self._view(self.weight)

    @property
    def effective(self) -> torch.Tensor:
        """The weight the unit computes with (:func:`effective_weight`), in torch's layout: ``weight``
        itself except for a layer whose forward transforms it (a fresh tensor then)."""
        if self.block is not None or _transform(self.module) is None:
            return self.weight
        return effective_weight(self.module)

    @property
    def rows_view(self) -> NeuronView:
        """The :class:`NeuronView` of :attr:`effective`: for reading rows (never write through it)."""
        return self._view(self.effective)

    @property
    def note(self) -> str | None:
        """:func:`effective_note` of the layer (None for attention blocks and ordinary layers)."""
        return None if self.block is not None else effective_note(self.module)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _is_types(spec) -> bool:
    return isinstance(spec, type) or (
        isinstance(spec, tuple) and len(spec) > 0 and all(isinstance(t, type) for t in spec)
    )


def _check_predicate(layers) -> None:
    """Raise :class:`SkewError` when a ``layers`` predicate cannot be called as ``f(name, module)``.

    Checked once, from the signature, before any module is visited (a predicate written for one
    argument, ``lambda name: ...``, would otherwise fail with a bare TypeError deep inside).
    """
    if not callable(layers) or isinstance(layers, type):
        return
    try:
        signature = inspect.signature(layers)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    try:
        signature.bind("name", nn.Identity())
    except TypeError as err:
        raise SkewError(
            f"layers={getattr(layers, '__name__', type(layers).__name__)} must be a predicate called as "
            f"f(name, module) -> bool, but {err}; write it as lambda name, module: ..."
        ) from None


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
    eager_module(model)
    units = _all_units(model)
    if layers is None:
        return units
    if callable(layers) and not isinstance(layers, type):
        _check_predicate(layers)
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
            if close:
                hint = f"did you mean {', '.join(map(repr, close))}? "
            else:  # nothing close (a Sequential's layers are called '0', '1', ...): show what there is
                names = [u.name for u in units]
                more = f" and {len(names) - 8} more" if len(names) > 8 else ""
                hint = (f"its layers are {', '.join(map(repr, names[:8]))}{more}; " if names else "")
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
    if not isinstance(mha, nn.MultiheadAttention):
        raise SkewError(f"attention_projections needs a torch.nn.MultiheadAttention, got {type(mha).__name__}")
    e = mha.embed_dim
    bias = mha.in_proj_bias
    biases = [None, None, None] if bias is None else [bias[:e], bias[e : 2 * e], bias[2 * e :]]
    if mha.in_proj_weight is not None:
        w = mha.in_proj_weight
        weights = [w[:e], w[e : 2 * e], w[2 * e :]]
    else:
        weights = [mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight]
    return [(s, wt, b) for s, wt, b in zip(("q_proj", "k_proj", "v_proj"), weights, biases)]
