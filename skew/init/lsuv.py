"""LSUV's data-driven step: rescale each layer until its output has unit standard deviation.

Mishkin & Matas, "All you need is a good init" (ICLR 2016). :func:`skew.init.apply` first draws
orthogonal weights and constant (zero) biases, then calls :func:`lsuv_rescale`: for each layer in
forward order, forward one batch, take the std of that layer's whole output and divide the weight
by it, until :math:`|\\mathrm{std} - 1| \\le \\text{tol}` or ``max_iter`` tries.

Hook discipline: every hook is removed, every module's ``training`` flag and torch's MHA fast-path
setting are restored in ``finally``, also when the forward pass fails. The model runs in eval mode
(so BatchNorm's running statistics are not touched and dropout is off) under ``torch.no_grad()``;
each pass stops right after the layer being measured, and only one float per pass is kept.

Example:
    >>> import torch, torch.nn as nn
    >>> from skew.init import apply
    >>> net = nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 10))
    >>> table = apply(net, "lsuv", data=torch.randn(256, 20) * 3)
    >>> round(float(net[0](torch.randn(256, 20) * 3).std()), 1)   # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from skew._checks import positive_int
from skew._state import kept_modes, no_mha_fastpath
from skew.errors import SkewError

__all__ = ["LsuvTarget", "call_model", "first_batch", "lsuv_rescale"]

_DATA_HELP = (
    "pass data= a batch tensor, an (inputs, targets) tuple, a dict of keyword inputs, "
    "or a DataLoader / iterable of batches (its first batch is used)"
)


@dataclass
class LsuvTarget:
    """One tensor LSUV rescales and where to read the output it produces.

    ``kind`` is ``"output"`` (the module's output), ``"mha_output"`` (element 0 of a
    ``MultiheadAttention``'s output: its ``out_proj`` result, since ``out_proj`` is applied
    functionally and its own hooks never fire) or ``"query"``/``"key"``/``"value"`` (the
    projection ``F.linear(input, weight, bias)`` of that ``MultiheadAttention`` input, computed in
    a forward pre-hook).
    """

    name: str
    module: nn.Module
    weight: torch.Tensor
    bias: torch.Tensor | None = None
    kind: str = "output"


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the measured layer has run."""


def first_batch(data):
    """The batch LSUV forwards: ``data`` itself, or the first batch of an iterable of batches.

    A tensor, a dict and a tuple are batches themselves (a tuple reads as (inputs, targets, ...));
    any other iterable (a list of batches, a ``DataLoader``) gives its first element.

    Example:
        >>> x = torch.zeros(4, 3)
        >>> first_batch([x, x + 1]) is x
        True
    """
    if data is None:
        raise SkewError(f"scheme 'lsuv' needs a batch of data to measure layer outputs; {_DATA_HELP}")
    if isinstance(data, (torch.Tensor, Mapping, tuple)):
        return _nonempty(data)
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise SkewError(f"data={type(data).__name__} is not a batch LSUV can use; {_DATA_HELP}")
    for batch in data:
        return _nonempty(batch)
    raise SkewError(f"data is empty: it yielded no batch; {_DATA_HELP}")


def _nonempty(batch):
    """``batch``, unless its first tensor holds no values (a (0, ...) batch has no output std to match)."""
    from skew.batches import _first_tensor

    t = _first_tensor(batch)
    if t is not None and t.dim() > 0 and t.numel() == 0:
        raise SkewError(
            f"the data batch for 'lsuv' is empty (its first tensor has shape {tuple(t.shape)}), so no output std "
            f"can be measured; {_DATA_HELP}"
        )
    return batch


def _to(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


def call_model(model: nn.Module, batch):
    """Run ``model`` on one batch: ``model(x)``, ``model(**batch)`` (dict) or ``model(batch[0])`` (tuple).

    Example:
        >>> call_model(nn.Identity(), (torch.ones(2), torch.zeros(2)))
        tensor([1., 1.])
    """
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise SkewError(f"the data batch is an empty {type(batch).__name__}; {_DATA_HELP}")
        return model(batch[0])
    return model(batch)


def _std(t) -> float:
    if not isinstance(t, torch.Tensor) or t.numel() < 2:
        return math.nan
    return float(t.detach().to(torch.float64).std())


def _shape(t) -> tuple[int, ...] | None:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else None


def _mha_input(kind: str, args: tuple, kwargs: dict):
    index = ("query", "key", "value").index(kind)
    return args[index] if len(args) > index else kwargs.get(kind)


def lsuv_rescale(
    model: nn.Module,
    targets: list[LsuvTarget],
    data,
    *,
    tol: float = 0.1,
    max_iter: int = 10,
) -> dict[str, str]:
    r"""Rescale each target's weight in forward order until its output std is within ``tol`` of 1.

    .. math:: W \leftarrow W / \mathrm{std}(Z), \text{ repeated until } |\mathrm{std}(Z) - 1| \le \text{tol}

    The weights must already hold LSUV's first step (orthogonal, constant biases). Returns, per
    target name, a sentence saying what was done (the rescaling count and the output std, or why a
    layer was not rescaled: never reached by the forward pass, or an output std of zero).

    Example:
        >>> net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
        >>> targets = [LsuvTarget(str(i), net[i], net[i].weight) for i in (0, 2)]
        >>> notes = lsuv_rescale(net, targets, torch.randn(64, 8) * 5)
        >>> sorted(notes)
        ['0', '2']
    """
    if not isinstance(model, nn.Module):
        raise SkewError(f"lsuv_rescale expects a torch.nn.Module, got {type(model).__name__}; pass the model")
    if isinstance(targets, (str, bytes)) or not isinstance(targets, Iterable):
        raise SkewError(f"targets must be a list of LsuvTarget, got {type(targets).__name__}; "
                        "pass e.g. [LsuvTarget('0', net[0], net[0].weight)]")
    targets = list(targets)
    wrong = [t for t in targets if not isinstance(t, LsuvTarget)]
    if wrong:
        raise SkewError(f"targets must be a list of LsuvTarget, but it holds {type(wrong[0]).__name__} "
                        f"{wrong[0]!r:.60}; pass e.g. [LsuvTarget('0', net[0], net[0].weight)]")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 < float(tol) < math.inf:
        raise SkewError(f"tol={tol!r} must be a positive finite number; pass e.g. tol=0.1")
    max_iter = positive_int("max_iter", max_iter, 10)
    batch = first_batch(data)
    param = next(model.parameters(), None)
    batch = _to(batch, param.device if param is not None else torch.device("cpu"))
    state = {"phase": "order", "target": None, "std": math.nan, "shape": None}
    order: list[str] = []
    by_name = {t.name: t for t in targets}

    def seen(name: str) -> None:
        if name not in order:
            order.append(name)

    def output_hook(target: LsuvTarget) -> Callable:
        def hook(module, args, output):
            if state["phase"] == "order":
                seen(target.name)
            elif state["target"] == target.name:
                out = output[0] if target.kind == "mha_output" and isinstance(output, tuple) else output
                state["std"], state["shape"] = _std(out), _shape(out)
                raise _Stop

        return hook

    def input_hook(target: LsuvTarget) -> Callable:
        def hook(module, args, kwargs):
            if state["phase"] == "order":
                seen(target.name)
            elif state["target"] == target.name:
                x = _mha_input(target.kind, args, kwargs)
                z = F.linear(x, target.weight, target.bias) if x is not None else None
                state["std"], state["shape"] = _std(z), _shape(z)
                raise _Stop
            return None

        return hook

    def run(what: str) -> None:
        try:
            call_model(model, batch)
        except _Stop:
            pass
        except SkewError:
            raise
        except Exception as err:
            raise SkewError(
                f"LSUV failed while {what}: {type(err).__name__}: {err}. Check that data= holds inputs "
                f"{type(model).__name__} accepts; the weights of the layers before it are already set"
            ) from err

    handles = []
    notes: dict[str, str] = {}
    try:
        # TransformerEncoderLayer's fused eval path bypasses its submodules (and their hooks)
        with kept_modes(model), no_mha_fastpath():
            model.eval()
            for t in targets:
                if t.kind in ("query", "key", "value"):
                    handles.append(t.module.register_forward_pre_hook(input_hook(t), with_kwargs=True))
                else:
                    handles.append(t.module.register_forward_hook(output_hook(t)))
            with torch.no_grad(), torch.random.fork_rng(devices=[]):  # a forward that draws keeps the caller's stream
                run("running the batch once to find the layer order")
                state["phase"] = "measure"
                for name in order:
                    target = by_name[name]
                    state["target"] = name
                    first = last = math.nan
                    rescaled = 0
                    for _ in range(max_iter):
                        state["std"], state["shape"] = math.nan, None
                        run(f"measuring the output of layer {name!r}")
                        last = state["std"]
                        shape = state["shape"]
                        if shape is not None and math.prod(shape) < 2:
                            fix = ("select layers with output units with layers=" if 0 in shape[1:] else
                                   "pass a batch of more samples")
                            raise SkewError(
                                f"LSUV cannot rescale layer {name!r}: its output on the data batch has shape {shape}, "
                                f"{math.prod(shape)} value(s), and a std needs at least 2; {fix}"
                            )
                        if math.isnan(last) or math.isinf(last):
                            raise SkewError(
                                f"LSUV cannot rescale layer {name!r}: its output std on the data batch is {last:g} "
                                "(the batch holds NaN/Inf values, or the layer's output overflows); pass a batch of "
                                "finite data of the model's input scale"
                            )
                        first = last if rescaled == 0 else first
                        if last <= 0 or abs(last - 1) <= tol:
                            break
                        target.weight.div_(last)
                        rescaled += 1
                    if not math.isfinite(last) or last <= 0:
                        notes[name] = f"orthogonal; output std is {last:g}, so it cannot be rescaled"
                    elif abs(last - 1) <= tol:
                        notes[name] = (
                            f"orthogonal, rescaled {rescaled} time(s): output std {first:.3g} -> {last:.3g}"
                        )
                    else:
                        notes[name] = (
                            f"orthogonal, rescaled {rescaled} time(s) (max_iter reached): output std "
                            f"{first:.3g}, last measured {last:.3g}"
                        )
    finally:
        for h in handles:
            h.remove()
    for t in targets:
        notes.setdefault(t.name, "orthogonal; not reached by the forward pass, so not rescaled")
    return notes
