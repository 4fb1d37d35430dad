"""Initialize a whole model with one scheme and say, parameter by parameter, what was done.

:func:`apply` walks every Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d, Hugging Face ``Conv1D``
and every ``nn.MultiheadAttention`` projection (its packed ``in_proj_weight`` as the three (E, E)
blocks ``q_proj``, ``k_proj``, ``v_proj``; ``out_proj`` as the Linear it is) and returns one row
per parameter: set, with which scheme, or skipped, and why. Nothing is skipped silently, and
nothing is reported "set" that was not: a parametrized weight (``weight_norm``, any
``torch.nn.utils.parametrize`` registration, the old ``torch.nn.utils.weight_norm`` hook) is set
through its underlying parameters so that the effective weight is the scheme's, or refused.

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
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn
from torch.nn import init as tinit

from skew._checks import eager_module
from skew._state import kept_buffers
from skew.errors import SkewError
from skew.init.functions import check_generator, sinusoidal_amplitude
from skew.init.lsuv import LsuvTarget, first_batch, lsuv_rescale
from skew.init.registry import Scheme, get_scheme
from skew.layers import (
    LAYER_TYPES,
    LayerSpec,
    NeuronView,
    attention_projections,
    effective_note,
    is_conv1d,
    is_layer,
    neuron_view,
    select_units,
)

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
class _Store:
    """Where a layer's weight or bias really lives and how apply() writes it.

    ``how``: ``"param"`` (an ``nn.Parameter`` or a row block of one: written in place),
    ``"parametrize"`` (``torch.nn.utils.parametrize``: set by assignment, through the chain's
    ``right_inverse``), ``"weight_norm"`` (the old ``torch.nn.utils.weight_norm`` hook: ``*_g`` and
    ``*_v`` set) or ``"refuse"`` (``why`` says what it is and how to proceed).
    """

    how: str
    params: tuple = ()  # the parameters that hold it (the Parameter, or the originals)
    what: str = ""  # e.g. "weight_norm (_WeightNorm)", for the reason column
    why: str = ""


@dataclass
class _Unit:
    """One weight matrix apply() initializes, with its bias and where both live."""

    name: str  # "layer1.0.conv1", or "enc.self_attn.q_proj" for an attention block
    module: nn.Module  # the layer, or the MultiheadAttention owning the block
    weight: torch.Tensor  # the (effective) weight, or a row-block view of in_proj_weight
    bias: torch.Tensor | None
    weight_store: _Store
    bias_store: _Store | None
    view: NeuronView  # the neuron rows of ``weight``
    block: int | None = None  # 0, 1, 2 for q, k, v
    weight_rows: slice | None = None  # rows of in_proj_weight, when packed
    bias_rows: slice | None = None
    attention: nn.MultiheadAttention | None = None  # the owning MHA, for blocks and out_proj
    tied_to: str | None = field(default=None)  # set by apply(): an earlier unit holding the same weight


def _hook_for(module: nn.Module, attr: str):
    for hook in module._forward_pre_hooks.values():
        if getattr(hook, "name", None) == attr or getattr(hook, "_tensor_name", None) == attr:
            return hook
    return None


def _store(module: nn.Module, attr: str, tensor: torch.Tensor, owner: str) -> _Store:
    """How ``module.<attr>`` is stored (see :class:`_Store`)."""
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import _SpectralNorm
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    fix = (
        "remove it (torch.nn.utils.parametrize.remove_parametrizations / torch.nn.utils.remove_*), "
        "run skew.init.apply, then register it again"
    )
    if parametrize.is_parametrized(module, attr):
        chain = module.parametrizations[attr]
        kinds = ", ".join(type(p).__name__ for p in chain)
        params = tuple(p for _, p in chain.named_parameters(recurse=False))
        if any(isinstance(p, _SpectralNorm) for p in chain):
            return _Store("refuse", params, kinds, (
                f"{owner}.{attr} is spectral-normalized ({kinds}): its effective weight is W / σ(W) with σ "
                "estimated by power iteration, so no scheme's values (nor its variance) can be set through it; "
                + fix
            ))
        missing = [type(p).__name__ for p in chain if not callable(getattr(p, "right_inverse", None))]
        if missing:
            return _Store("refuse", params, kinds, (
                f"{owner}.{attr} is computed by the parametrization {', '.join(missing)}, which has no "
                "right_inverse, so its underlying parameters cannot be set to give the scheme's weight; "
                + fix
            ))
        return _Store("parametrize", params, f"parametrization {kinds}")
    hook = _hook_for(module, attr)
    if isinstance(hook, WeightNorm):
        params = (getattr(module, f"{attr}_g"), getattr(module, f"{attr}_v"))
        return _Store("weight_norm", params, "torch.nn.utils.weight_norm")
    if isinstance(tensor, nn.Parameter):
        return _Store("param", (tensor,))
    if isinstance(hook, SpectralNorm):
        what = "torch.nn.utils.spectral_norm"
        why = (
            f"{owner}.{attr} is spectral-normalized ({what}): its effective weight is W / σ(W), so no "
            "scheme's values can be set through it; " + fix
        )
    else:
        what = type(hook).__name__ if hook is not None else "not an nn.Parameter"
        why = (
            f"{owner}.{attr} is not a parameter but a tensor computed from others ({what}, e.g. "
            "torch.nn.utils.prune), so writing it would change nothing the model uses; " + fix
        )
    return _Store("refuse", (), what, why)


def _block_store(module: nn.MultiheadAttention, attr: str, tensor: torch.Tensor, owner: str) -> _Store:
    """As :func:`_store`, but a q/k/v row block can only be written into a plain Parameter."""
    store = _store(module, attr, tensor, owner)
    if store.how in ("param", "refuse"):
        return store
    return _Store("refuse", store.params, store.what, (
        f"{owner}.{attr} goes through {store.what}, and its q/k/v row blocks cannot be set one by one "
        "through it; remove the re-parametrization, run skew.init.apply, then register it again"
    ))


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
                wattr = "in_proj_weight" if packed else f"{suffix}_weight"
                wparam = getattr(module, wattr)
                units.append(
                    _Unit(
                        name=prefix + suffix,
                        module=module,
                        weight=w,
                        bias=b,
                        weight_store=_block_store(module, wattr, wparam, name or type(module).__name__),
                        bias_store=None if b is None else _block_store(
                            module, "in_proj_bias", module.in_proj_bias, name or type(module).__name__
                        ),
                        view=NeuronView(w),
                        block=k,
                        weight_rows=slice(k * e, (k + 1) * e) if packed else None,
                        bias_rows=slice(k * e, (k + 1) * e),
                        attention=module,
                    )
                )
        elif is_layer(module):
            weight = module.weight
            bias = getattr(module, "bias", None)
            bias = bias if isinstance(bias, torch.Tensor) else None
            owner = out_projs.get(id(module))
            label = name or type(module).__name__
            units.append(
                _Unit(
                    name, module, weight, bias,
                    weight_store=_store(module, "weight", weight, label),
                    bias_store=None if bias is None else _store(module, "bias", bias, label),
                    view=neuron_view(module, weight),
                    attention=owner,
                )
            )
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


def _torch_default_values(unit: _Unit) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What ``reset_parameters()`` of a Linear/ConvNd/ConvTransposeNd draws (same calls, same order)."""
    w = torch.empty(unit.weight.shape, dtype=unit.weight.dtype, device=unit.weight.device)
    tinit.kaiming_uniform_(w, a=math.sqrt(5))
    b = None
    if unit.bias is not None:
        b = torch.empty(unit.bias.shape, dtype=unit.bias.dtype, device=unit.bias.device)
        fan_in, _ = tinit._calculate_fan_in_and_fan_out(w)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        tinit.uniform_(b, -bound, bound)
    return w, b


def _reset_default(unit: _Unit, generator: torch.Generator | None) -> str:
    """PyTorch's own initialization of one unit; returns how it was done."""
    if unit.block is not None:
        # MultiheadAttention._reset_parameters: xavier_uniform_ on the whole in_proj_weight (or on
        # each separate projection weight), zero in_proj_bias. Done per block so layers= is respected.
        fan_in, fan_out = tinit._calculate_fan_in_and_fan_out(unit.weight_store.params[0])
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        _fill(unit, generator, lambda t, g: tinit.uniform_(t, -bound, bound, generator=g))
        if unit.bias is not None:
            unit.bias.zero_()
        return "as MultiheadAttention._reset_parameters: xavier_uniform_ on the projection, zero bias"
    module, kind = unit.module, type(unit.module).__name__
    plain = unit.weight_store.how == "param" and (unit.bias_store is None or unit.bias_store.how == "param")
    with _rng_from(generator, module):
        if plain and callable(getattr(module, "reset_parameters", None)):
            module.reset_parameters()
            how = f"{kind}.reset_parameters()"
        elif isinstance(module, LAYER_TYPES):
            # a re-parametrized Linear/Conv: reset_parameters() would write into the computed weight
            w, b = _torch_default_values(unit)
            _write(unit, "weight", w)
            if b is not None:
                _write(unit, "bias", b)
            how = f"as {kind}.reset_parameters() (kaiming_uniform_(a=√5), bias U(±1/√fan_in))"
        elif is_conv1d(module) and kind == "Conv1D":
            # transformers.pytorch_utils.Conv1D has no reset_parameters(): its constructor's rule
            w = torch.empty(unit.weight.shape, dtype=unit.weight.dtype, device=unit.weight.device)
            tinit.normal_(w, std=0.02)
            _write(unit, "weight", w)
            if unit.bias is not None:
                _write(unit, "bias", torch.zeros_like(unit.bias))
            how = "as Conv1D.__init__ (transformers): normal_(std=0.02), zero bias"
        else:
            raise SkewError(
                f"layer {unit.name!r} ({kind}) has no reset_parameters(), so scheme 'default' has no rule "
                "for it; use a named scheme such as 'xavier_uniform'"
            )
    if unit.attention is not None:
        if unit.bias is not None:
            _write(unit, "bias", torch.zeros_like(unit.bias))  # MultiheadAttention zeroes out_proj.bias
        return "out_proj.reset_parameters(), zero bias (as MultiheadAttention._reset_parameters)"
    return how


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


def _check_writable(label: str, unit: _Unit, part: str, tensor: torch.Tensor | None) -> None:
    """Refuse, before any write, a weight or bias that cannot hold the scheme's values.

    An integer or bool tensor would silently truncate them (sinusoidal values in (-1, 1) all become
    0, a bias of 0.5 becomes 0) while the table said "set"; a complex one would get no imaginary
    part; a meta tensor has no values at all, so nothing would be set.
    """
    if tensor is None:
        return
    where = unit.name or type(unit.module).__name__
    if tensor.is_meta:
        raise SkewError(
            f"cannot apply scheme {label!r} to {where!r}: its {part} is on the meta device and has no values "
            "to set; materialize the model first (model.to_empty(device='cpu')), then apply the scheme"
        )
    if not tensor.is_floating_point():
        dtype = str(tensor.dtype).replace("torch.", "")
        raise SkewError(
            f"cannot apply scheme {label!r} to {where!r}: its {part} has dtype {dtype}, which cannot hold "
            "the scheme's real values (they would be truncated or lose their imaginary part); convert the model "
            "to a floating dtype first, e.g. model.float()"
        )


def _set_through(unit: _Unit, part: str, target: torch.Tensor) -> None:
    """Set a re-parametrized weight/bias so that its effective value is ``target``; verify it."""
    store = unit.weight_store if part == "weight" else unit.bias_store
    module = unit.module
    if store.how == "parametrize":
        try:
            setattr(module, part, target)  # parametrize runs the chain's right_inverse
        except Exception as err:
            raise SkewError(
                f"{unit.name}.{part}: the {store.what} could not take the scheme's values "
                f"({type(err).__name__}: {err}); remove the parametrization, apply, and register it again"
            ) from err
        effective = getattr(module, part)
    else:  # the old weight_norm hook: weight = g · v / ‖v‖
        hook = _hook_for(module, part)
        g, v = store.params
        v.copy_(target)
        g.copy_(torch.norm_except_dim(target, 2, hook.dim))
        effective = hook.compute_weight(module)
        setattr(module, part, effective)  # what the hook itself caches between forwards
    effective = effective.detach()
    scale = float(target.detach().abs().max()) if target.numel() else 0.0
    err = float((effective - target).abs().max()) if target.numel() else 0.0
    if not (err <= 1e-5 * scale + 1e-30):
        raise SkewError(
            f"{unit.name}.{part} goes through {store.what}, which does not reproduce the scheme's values "
            f"(largest difference {err:.3g} for entries up to {scale:.3g}; e.g. weight_norm cannot "
            "represent a zero row); remove the parametrization, apply, and register it again"
        )


def _write(unit: _Unit, part: str, values: torch.Tensor) -> None:
    """Write ``values`` (the tensor's own layout) into the unit's weight or bias, however stored."""
    store = unit.weight_store if part == "weight" else unit.bias_store
    tensor = unit.weight if part == "weight" else unit.bias
    if store.how == "param":
        tensor.copy_(values)
    else:
        _set_through(unit, part, values.to(dtype=tensor.dtype, device=tensor.device))


def _fill(unit: _Unit, generator: torch.Generator | None, fill) -> None:
    """``fill(rows, generator)`` on the unit's neuron rows, landing in the weight however it is stored.

    The scheme sees the :class:`skew.layers.NeuronView` of the weight (rows = output units), staged
    where needed; a generator on another device draws there, then copies (same values).
    """
    device = None if generator is None else generator.device
    if unit.weight_store.how == "param":
        unit.view.fill(lambda t: fill(t, generator), device)
        return
    target = torch.empty(unit.weight.shape, dtype=unit.weight.dtype, device=unit.weight.device)
    NeuronView(target, unit.view.layout, unit.view.groups).fill(lambda t: fill(t, generator), device)
    _set_through(unit, "weight", target)


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

    Every scheme fills the layer's neuron rows (:class:`skew.layers.NeuronView`: output units),
    so fans are a neuron's: a ``Conv1D`` (weight (in, out)) gets exactly what the equivalent
    ``nn.Linear`` gets, transposed, and a ConvTranspose weight (c_in, c_out/g, k...) is read as
    (c_out, c_in/g, k...): kaiming's fan_in is c_in/g·k, not the c_out/g·k ``torch.nn.init`` reads
    on the raw tensor. A Parameter shared by several layers (tied weights) is initialized once, by
    the first, and reported once. Re-parametrized weights are set through what they are computed
    from: any ``torch.nn.utils.parametrize`` registration with ``right_inverse`` (e.g.
    ``parametrizations.weight_norm``, ``orthogonal``) by assignment, the old
    ``torch.nn.utils.weight_norm`` hook through ``weight_g``/``weight_v``; the effective weight is
    then checked to equal the scheme's. ``spectral_norm`` (old and new; its effective weight is
    W/σ(W), so no scheme's values or variance can hold), parametrizations without
    ``right_inverse``, ``torch.nn.utils.prune`` and other computed weights are refused with a
    :class:`SkewError`, before any weight changes. Buffers are left bit-identical.

    A layer whose ``forward`` transforms its stored weight (timm's weight-standardised
    ``StdConv2d``/``ScaledStdConv2d``, see :func:`skew.layers.effective_weight`) gets the scheme in
    its stored parameter V; it computes with the standardisation of V, each row centred and scaled
    to unit (biased) variance (times gain·γ/√n when scaled). Its row sums are then ≈ 0 and its row
    norms √n (γ·g), whatever the scheme, and that is what ``skew.weights`` and ``report`` show.
    ``lsuv`` leaves such a layer orthogonal and unscaled, saying why in ``reason``: rescaling V
    would only be felt through eps (V shrank until eps dominated, a stored std of ~2e-4).

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
    eager_module(model)  # before kept_buffers: a TorchScript module's buffers cannot be re-bound
    with kept_buffers(model):  # reading a parametrized weight may run code that writes buffers
        return _apply(model, scheme, data, generator, bias, layers)


def _apply(model, scheme, data, generator, bias, layers) -> pd.DataFrame:
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
    check_generator(generator, "skew.init.apply")
    batch = first_batch(data) if resolved.needs_data else None  # fail before touching any weight
    label = resolved.label
    for u in selected:  # what cannot be set, found before touching any weight
        for store in (u.weight_store, u.bias_store):
            if store is not None and store.how == "refuse":
                raise SkewError(f"cannot apply scheme {label!r} to {u.name!r}: {store.why}")
        for part, tensor in (("weight", u.weight), ("bias", u.bias)):
            _check_writable(label, u, part, tensor)
        if u.bias is not None and abs(bias) > torch.finfo(u.bias.dtype).max:  # 1e300 overflows float32, 1e5 half
            raise SkewError(
                f"bias={bias:g} does not fit the {str(u.bias.dtype).replace('torch.', '')} bias of {u.name!r} "
                f"(at most {torch.finfo(u.bias.dtype).max:.4g} in magnitude); pass a smaller bias, e.g. bias=0.001"
            )
        if resolved.needs_data and u.weight_store.how != "param":
            raise SkewError(
                f"cannot apply scheme {label!r} to {u.name!r}: its weight goes through {u.weight_store.what}, "
                "and LSUV rescales weights in place between forward passes, which that would not follow; "
                "remove the re-parametrization, apply, and register it again"
            )
    if resolved.name == "sinusoidal":
        for u in selected:  # the shapes sinusoidal cannot scale, found before touching any weight
            try:
                sinusoidal_amplitude(torch.empty(u.view.shape, device="meta"), **resolved.options)
            except SkewError as err:
                raise _cannot_apply(label, u, err) from err

    with _all_or_nothing(model, units):
        return _apply_selected(model, units, selected, resolved, label, generator, bias, batch)


@contextlib.contextmanager
def _all_or_nothing(model: nn.Module, units: list[_Unit]):
    """Restore every parameter of ``model`` when the block raises (also on KeyboardInterrupt).

    A scheme that fails on layer k must not leave layers 0..k-1 re-initialized behind the user's
    back. Costs one copy of the parameters while the scheme runs. The weight an old-style
    ``weight_norm`` hook caches on its module is restored too, and so is the global CPU RNG state
    (a failed call consumes none of the caller's random stream).
    """
    rng = torch.get_rng_state()
    with torch.no_grad():
        saved = [(p, p.detach().clone()) for p in model.parameters()]
        cached = [
            (u.module, part, getattr(u.module, part))
            for u in units
            for part, store in (("weight", u.weight_store), ("bias", u.bias_store))
            if store is not None and store.how == "weight_norm"
        ]
    try:
        yield
    except BaseException:
        with torch.no_grad():
            for p, copy in saved:
                if p.shape != copy.shape:
                    p.set_(copy)
                else:
                    p.copy_(copy)
            for module, part, value in cached:
                setattr(module, part, value)
        torch.set_rng_state(rng)
        raise


def _through(store: _Store) -> str:
    return "" if store.how == "param" else f", set through {store.what} so the effective {'{}'} is exactly that"


def _apply_selected(model, units, selected, resolved, label, generator, bias, batch) -> pd.DataFrame:
    reasons: dict[tuple[int, str], str] = {}
    holder: dict[int, str] = {}  # id(weight Parameter) -> the unit that initialized it
    with torch.no_grad():
        for u in _default_order(selected) if resolved.name == "default" else selected:
            key = id(u.weight_store.params[0]) if u.block is None and u.weight_store.params else None
            if key is not None and key in holder:  # a tied weight: initialized once, by the first layer
                u.tied_to = holder[key]
                reasons[(id(u), "weight")] = f"tied to {holder[key]!r}'s weight: set once there"
                if u.bias is not None and u.bias_store.params and id(u.bias_store.params[0]) not in holder:
                    if resolved.name == "default":
                        _, b = _torch_default_values(u) if isinstance(u.module, LAYER_TYPES) else (None, None)
                        _write(u, "bias", torch.zeros_like(u.bias) if b is None else b)
                        reasons[(id(u), "bias")] = "as reset_parameters() for the bias (weight tied)"
                    else:
                        _write(u, "bias", torch.full_like(u.bias, bias))
                        reasons[(id(u), "bias")] = f"constant {bias:g}"
                continue
            if key is not None:
                holder[key] = u.name
            if resolved.name == "default":
                how = _reset_default(u, generator)
                reasons[(id(u), "weight")] = how + _through(u.weight_store).format("weight")
                if u.bias is not None:
                    reasons[(id(u), "bias")] = how + _through(u.bias_store).format("bias")
                continue
            try:
                _fill(u, generator, resolved.init_weight)
            except (SkewError, ValueError, RuntimeError) as err:
                raise _cannot_apply(label, u, err) from err
            reasons[(id(u), "weight")] = resolved.call + _through(u.weight_store).format("weight")
            if u.bias is not None:
                if u.bias_store.how == "param":
                    u.bias.fill_(bias)
                else:
                    _write(u, "bias", torch.full_like(u.bias, bias))
                reasons[(id(u), "bias")] = f"constant {bias:g}" + _through(u.bias_store).format("bias")
    if resolved.needs_data:
        targets = []
        for u in selected:
            if u.tied_to is not None:
                continue
            transform = effective_note(u.module) if u.block is None and u.attention is None else None
            if transform is not None:  # forward normalises the stored weight: rescaling it changes nothing
                reasons[(id(u), "weight")] = (
                    f"orthogonal; not rescaled: the layer's forward applies {transform} to its weight, so its "
                    "output scale does not follow the stored weight's"
                )
                continue
            if u.block is not None:
                targets.append(LsuvTarget(u.name, u.module, u.weight, u.bias, _QKV[u.block]))
            elif u.attention is not None:
                targets.append(LsuvTarget(u.name, u.attention, u.weight, u.bias, "mha_output"))
            else:
                targets.append(LsuvTarget(u.name, u.module, u.weight, u.bias, "output"))
        opts = resolved.options
        notes = lsuv_rescale(model, targets, batch, tol=opts["tol"], max_iter=opts["max_iter"])
        for u in selected:
            if u.tied_to is None and u.name in notes:
                reasons[(id(u), "weight")] = notes[u.name]
    return _table(model, units, {id(u) for u in selected}, reasons, label)


def _table(
    model: nn.Module, units: list[_Unit], selected: set[int], reasons: dict, label: str
) -> pd.DataFrame:
    index: dict[int, tuple[int, str]] = {}
    for k, (pname, p) in enumerate(model.named_parameters()):
        index[id(p)] = (k, pname)
    aliases: dict[int, list[str]] = {}
    for pname, p in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(p), []).append(pname)

    def tied(param) -> str:
        names = aliases.get(id(param), [])
        return f" (tied: one Parameter named {', '.join(names)}; initialized once)" if len(names) > 1 else ""

    rows: list[tuple] = []
    covered: set[int] = set()
    # selected units first, so a tied parameter is reported by the layer that set it (rows are sorted below)
    for u in [u for u in units if id(u) in selected] + [u for u in units if id(u) not in selected]:
        chosen = id(u) in selected
        for part, tensor, store, block_rows in (
            ("weight", u.weight, u.weight_store, u.weight_rows),
            ("bias", u.bias, u.bias_store, u.bias_rows),
        ):
            if tensor is None or store is None:
                continue
            for param in store.params:
                if id(param) not in index or (block_rows is None and id(param) in covered):
                    continue  # a tied parameter is reported once, by the first layer holding it
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
                        tuple(param.shape) if store.how != "param" else tuple(tensor.shape),
                        label if chosen else "",
                        "set" if chosen else "skipped",
                        reason + tied(param),
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
