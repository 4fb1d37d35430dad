"""Initialize a whole model with one scheme and say, parameter by parameter, what was done.

:func:`apply` walks every Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d and every
``nn.MultiheadAttention`` projection (its packed ``in_proj_weight`` as the three (E, E) blocks
``q_proj``, ``k_proj``, ``v_proj``; ``out_proj`` as the Linear it is) and returns one row per
parameter: set, with which scheme, or skipped, and why. Nothing is skipped silently.

Example:
    >>> import torch, torch.nn as nn
    >>> from skew.init import apply
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    >>> table = apply(net, "sinusoidal")
    >>> table[["name", "action"]].values.tolist()[:3]
    [['0.weight', 'set'], ['0.bias', 'set'], ['1.weight', 'skipped']]
"""

from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn
from torch.nn import init as tinit

from skew.errors import SkewError
from skew.init.functions import sinusoidal_amplitude
from skew.init.lsuv import LsuvTarget, first_batch, lsuv_rescale
from skew.init.registry import Scheme, get_scheme
from skew.layers import LayerSpec, attention_projections, is_layer, select_units

__all__ = ["COLUMNS", "apply"]

#: Columns of the table :func:`apply` returns.
COLUMNS = ["name", "module", "parameter", "shape", "scheme", "action", "reason"]

_NORMS = tuple(
    t
    for t in (
        nn.modules.batchnorm._BatchNorm,
        nn.modules.instancenorm._InstanceNorm,
        nn.LayerNorm,
        nn.GroupNorm,
        nn.LocalResponseNorm,
        getattr(nn, "RMSNorm", None),
    )
    if t is not None
)
_QKV = ("query", "key", "value")


@dataclass
class _Unit:
    """One weight matrix apply() initializes, with its bias and where both live."""

    name: str  # "layer1.0.conv1", or "enc.self_attn.q_proj" for an attention block
    module: nn.Module  # the layer, or the MultiheadAttention owning the block
    weight: torch.Tensor  # the parameter, or a row-block view of in_proj_weight
    bias: torch.Tensor | None
    weight_param: nn.Parameter
    bias_param: nn.Parameter | None
    block: int | None = None  # 0, 1, 2 for q, k, v
    weight_rows: slice | None = None  # rows of in_proj_weight, when packed
    bias_rows: slice | None = None
    attention: nn.MultiheadAttention | None = None  # the owning MHA, for blocks and out_proj


def _units(model: nn.Module) -> list[_Unit]:
    units: list[_Unit] = []
    out_projs: dict[int, nn.MultiheadAttention] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            prefix = f"{name}." if name else ""
            e = module.embed_dim
            out_projs[id(module.out_proj)] = module
            for k, (suffix, w, b) in enumerate(attention_projections(module)):
                packed = module.in_proj_weight is not None
                units.append(
                    _Unit(
                        name=prefix + suffix,
                        module=module,
                        weight=w,
                        bias=b,
                        weight_param=module.in_proj_weight if packed else getattr(module, f"{suffix}_weight"),
                        bias_param=module.in_proj_bias,
                        block=k,
                        weight_rows=slice(k * e, (k + 1) * e) if packed else None,
                        bias_rows=slice(k * e, (k + 1) * e),
                        attention=module,
                    )
                )
        elif is_layer(module):
            bias = getattr(module, "bias", None)
            bias = bias if isinstance(bias, torch.Tensor) else None
            owner = out_projs.get(id(module))
            units.append(_Unit(name, module, module.weight, bias, module.weight, bias, attention=owner))
    return units


@contextlib.contextmanager
def _rng_from(generator: torch.Generator | None, module: nn.Module):
    """Run ``reset_parameters()`` on global RNGs seeded from ``generator``, restoring them after."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    cuda = sorted({p.device.index or 0 for p in module.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def _reset_default(unit: _Unit, generator: torch.Generator | None) -> str:
    """PyTorch's own initialization of one unit; returns how it was done."""
    if unit.block is not None:
        # MultiheadAttention._reset_parameters: xavier_uniform_ on the whole in_proj_weight (or on
        # each separate projection weight), zero in_proj_bias. Done per block so layers= is respected.
        fan_in, fan_out = tinit._calculate_fan_in_and_fan_out(unit.weight_param)
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        _fill(unit.weight, generator, lambda t, g: tinit.uniform_(t, -bound, bound, generator=g))
        if unit.bias is not None:
            unit.bias.zero_()
        return "as MultiheadAttention._reset_parameters: xavier_uniform_ on the projection, zero bias"
    with _rng_from(generator, unit.module):
        unit.module.reset_parameters()
    if unit.attention is not None:
        if unit.bias is not None:
            unit.bias.zero_()  # MultiheadAttention zeroes out_proj.bias
        return "out_proj.reset_parameters(), zero bias (as MultiheadAttention._reset_parameters)"
    return f"{type(unit.module).__name__}.reset_parameters()"


def _default_order(units: list[_Unit]) -> list[_Unit]:
    """Units with each attention's out_proj moved before its q/k/v blocks.

    ``MultiheadAttention.__init__`` builds ``out_proj`` (drawing its weights) before
    ``_reset_parameters`` draws ``in_proj_weight``; keeping that order makes ``default`` under a
    given seed reproduce a freshly constructed module exactly.
    """
    out_projs = {id(u.attention): u for u in units if u.block is None and u.attention is not None}
    with_blocks = {id(u.attention) for u in units if u.block is not None}
    ordered: list[_Unit] = []
    for u in units:
        if u.block is None and u.attention is not None and id(u.attention) in with_blocks:
            continue  # placed before its blocks
        if u.block is not None and id(u.attention) in out_projs:
            ordered.append(out_projs.pop(id(u.attention)))
        ordered.append(u)
    return ordered


def _skip_reason(owner: nn.Module, local: str) -> str:
    kind = type(owner).__name__
    if isinstance(owner, _NORMS):
        return f"normalization parameter ({kind}): not a layer weight; left as is"
    if isinstance(owner, (nn.Embedding, nn.EmbeddingBag)):
        return f"embedding table ({kind}): a lookup, not a pre-activation layer; left as is"
    if isinstance(owner, nn.MultiheadAttention):
        return f"attention {local}: an appended key/value vector, not a projection; left as is"
    if is_layer(owner):
        return f"{local} of a {kind} is neither its weight nor its bias; left as is"
    if isinstance(owner, nn.PReLU):
        return "activation parameter (PReLU): left as is"
    return f"not part of a Linear/Conv/attention layer ({kind} parameter); left as is"


def _cannot_apply(label: str, unit: _Unit, err: Exception) -> SkewError:
    shape = tuple(unit.weight.shape)
    return SkewError(f"cannot apply scheme {label!r} to the weight of {unit.name!r} (shape {shape}): {err}")


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise SkewError(
            f"generator must be a torch.Generator, got {type(generator).__name__}; "
            "pass e.g. generator=torch.Generator().manual_seed(0)"
        )


def _fill(weight: torch.Tensor, generator: torch.Generator | None, fill) -> None:
    """``fill(weight, generator)``; a generator on another device draws there, then copies (same values)."""
    if generator is None or generator.device.type == weight.device.type:
        fill(weight, generator)
        return
    staged = torch.empty(weight.shape, dtype=weight.dtype, device=generator.device)
    fill(staged, generator)
    weight.copy_(staged)


def apply(
    model: nn.Module,
    scheme: str | Scheme,
    *,
    data=None,
    generator: torch.Generator | None = None,
    bias: float = 0.0,
    layers: LayerSpec = None,
) -> pd.DataFrame:
    """Initialize every layer of ``model`` in place with ``scheme``; return what was done per parameter.

    Layers are Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d (weights read as (m, n) matrices, see
    :func:`skew.layers.weight_matrix`) and ``nn.MultiheadAttention`` projections: the packed
    ``in_proj_weight`` as three (E, E) blocks named ``<mha>.q_proj``, ``<mha>.k_proj``,
    ``<mha>.v_proj`` (each initialized as its own matrix, so sinusoidal and IDInit see square
    blocks) and ``out_proj`` as a Linear, once. Weights get the scheme
    (:func:`skew.init.schemes`); biases get the constant ``bias``:

    .. math:: W \\leftarrow \\text{scheme}(W), \\qquad b \\leftarrow \\text{bias}

    except for ``default``, which calls each layer's own ``reset_parameters()`` (PyTorch's random
    bias kept; attention blocks as ``MultiheadAttention._reset_parameters``: xavier_uniform_ over
    the packed matrix, zero biases). ``default`` is PyTorch's module default, not the custom init
    a model constructor (torchvision's ResNet, say) may apply after building its layers.

    ``lsuv`` needs ``data`` (a batch tensor, an (x, y) tuple, a dict of keyword inputs, or an
    iterable/DataLoader whose first batch is used); ``data`` is ignored by the other schemes.
    Random schemes draw from ``generator`` when given (the same seed gives identical weights, for
    ``default`` too; a generator on another device than the weights draws there, so a CPU generator
    gives a CUDA model the same weights as a CPU one, except under ``default``); ``sinusoidal`` and
    ``idinit`` are deterministic. Parameters of other modules
    (BatchNorm, LayerNorm, embeddings, position embeddings, class tokens) are reported as
    skipped with the reason. ``layers`` restricts the layers (None, a glob, names, types or a
    predicate, as :func:`skew.layers.select_units`; attention blocks by their ``q_proj``... names).

    Returns a DataFrame with columns ``name`` (qualified parameter name; ``[a:b]`` marks a row
    block of ``in_proj``), ``module``, ``parameter``, ``shape``, ``scheme``, ``action``
    (``"set"``/``"skipped"``) and ``reason``.

    Example:
        >>> net = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32), 1, enable_nested_tensor=False)
        >>> table = apply(net, "xavier_uniform", generator=torch.Generator().manual_seed(0))
        >>> table.loc[table.action == "set", "module"].unique().tolist()[:4]  # doctest: +NORMALIZE_WHITESPACE
        ['layers.0.self_attn.q_proj', 'layers.0.self_attn.k_proj', 'layers.0.self_attn.v_proj',
         'layers.0.self_attn.out_proj']
    """
    if not isinstance(model, nn.Module):
        raise SkewError(f"expected a torch.nn.Module, got {type(model).__name__}; pass the model itself")
    resolved = get_scheme(scheme)
    if isinstance(bias, bool) or not isinstance(bias, numbers.Real) or not math.isfinite(float(bias)):
        raise SkewError(f"bias must be a finite number, got {bias!r}; pass e.g. bias=0.0 or bias=0.001")
    bias = float(bias)
    if resolved.name == "default" and bias != 0.0:
        raise SkewError(
            "scheme 'default' keeps each layer's own random bias from reset_parameters(), so bias= "
            "cannot apply; use another scheme to set a constant bias, or leave bias=0.0"
        )
    for pname, p in model.named_parameters():
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise SkewError(
                f"parameter {pname!r} is an uninitialized lazy parameter; run one forward pass through "
                f"{type(model).__name__} before skew.init.apply"
            )
    units = _units(model)
    if not units:
        raise SkewError(
            f"{type(model).__name__} has no Linear, Conv, ConvTranspose or MultiheadAttention layer to "
            "initialize; pass a model that contains some"
        )
    chosen = {u.name for u in select_units(model, layers)}  # skew's one selection rule
    selected = [u for u in units if u.name in chosen]
    if not selected:
        raise SkewError(
            f"layers={layers!r} selects none of the {len(units)} layers of {type(model).__name__} "
            f"(e.g. {', '.join(repr(u.name) for u in units[:3])}); pass names, globs or types that match"
        )
    _check_generator(generator)
    batch = first_batch(data) if resolved.needs_data else None  # fail before touching any weight
    label = resolved.label
    if resolved.name == "sinusoidal":
        for u in selected:  # the shapes sinusoidal cannot scale, found before touching any weight
            try:
                sinusoidal_amplitude(u.weight, **resolved.options)
            except SkewError as err:
                raise _cannot_apply(label, u, err) from err

    with _all_or_nothing(model):
        return _apply_selected(model, units, selected, resolved, label, generator, bias, batch)


@contextlib.contextmanager
def _all_or_nothing(model: nn.Module):
    """Restore every parameter of ``model`` when the block raises (also on KeyboardInterrupt).

    A scheme that fails on layer k must not leave layers 0..k-1 re-initialized behind the user's
    back. Costs one copy of the parameters while the scheme runs.
    """
    with torch.no_grad():
        saved = [(p, p.detach().clone()) for p in model.parameters()]
    try:
        yield
    except BaseException:
        with torch.no_grad():
            for p, copy in saved:
                p.copy_(copy)
        raise


def _apply_selected(model, units, selected, resolved, label, generator, bias, batch) -> pd.DataFrame:
    reasons: dict[tuple[int, str], str] = {}
    with torch.no_grad():
        for u in _default_order(selected) if resolved.name == "default" else selected:
            if resolved.name == "default":
                how = _reset_default(u, generator)
                reasons[(id(u), "weight")] = how
                reasons[(id(u), "bias")] = how
                continue
            try:
                _fill(u.weight, generator, resolved.init_weight)
            except (SkewError, ValueError, RuntimeError) as err:
                raise _cannot_apply(label, u, err) from err
            reasons[(id(u), "weight")] = resolved.call
            if u.bias is not None:
                u.bias.fill_(bias)
                reasons[(id(u), "bias")] = f"constant {bias:g}"
    if resolved.needs_data:
        targets = []
        for u in selected:
            if u.block is not None:
                targets.append(LsuvTarget(u.name, u.module, u.weight, u.bias, _QKV[u.block]))
            elif u.attention is not None:
                targets.append(LsuvTarget(u.name, u.attention, u.weight, u.bias, "mha_output"))
            else:
                targets.append(LsuvTarget(u.name, u.module, u.weight, u.bias, "output"))
        opts = resolved.options
        notes = lsuv_rescale(model, targets, batch, tol=opts["tol"], max_iter=opts["max_iter"])
        for u in selected:
            reasons[(id(u), "weight")] = notes[u.name]
    return _table(model, units, {id(u) for u in selected}, reasons, label)


def _table(
    model: nn.Module, units: list[_Unit], selected: set[int], reasons: dict, label: str
) -> pd.DataFrame:
    index: dict[int, tuple[int, str]] = {}
    for k, (pname, p) in enumerate(model.named_parameters()):
        index[id(p)] = (k, pname)
    rows: list[tuple] = []
    covered: set[int] = set()
    for u in units:
        chosen = id(u) in selected
        for part, tensor, param, block_rows in (
            ("weight", u.weight, u.weight_param, u.weight_rows),
            ("bias", u.bias, u.bias_param, u.bias_rows),
        ):
            if tensor is None or param is None or id(param) not in index:
                continue
            covered.add(id(param))
            k, pname = index[id(param)]
            if block_rows is not None:
                pname = f"{pname}[{block_rows.start}:{block_rows.stop}]"
            reason = reasons.get((id(u), part), "") if chosen else "not selected by layers="
            rows.append(
                (
                    (k, u.block or 0),
                    pname,
                    u.name,
                    part,
                    tuple(tensor.shape),
                    label if chosen else "",
                    "set" if chosen else "skipped",
                    reason,
                )
            )
    for mname, module in model.named_modules():
        for local, p in module.named_parameters(recurse=False):
            if id(p) in covered or id(p) not in index:
                continue
            covered.add(id(p))
            k, pname = index[id(p)]
            reason = _skip_reason(module, local)
            rows.append(((k, 0), pname, mname, local, tuple(p.shape), "", "skipped", reason))
    rows.sort(key=lambda r: r[0])
    return pd.DataFrame([r[1:] for r in rows], columns=COLUMNS)
