"""``skew.report(model, loader)``: measure every neuron's activation probability on a stream of batches.

Forward hooks on the selected layers (every Linear, ConvNd and ConvTransposeNd by default, plus
the projections of each ``nn.MultiheadAttention``) reduce each output Z, inside the hook and on
Z's device, to per-neuron sums (:mod:`skew.accumulators`); once per batch these are merged in
float64 with Chan's formula. No activation is stored: memory is O(neurons) whatever the number
of batches. Conv: channel = neuron, every position a sample; Linear on (B, T, F): every token a
sample. With ``at="activations"`` the sites are the inputs of the nonlinearity modules instead
(forward pre-hooks; one site per call position of a reused module).

Batch dimension: dim 0, except inside ``batch_first=False`` transformer modules
(``nn.MultiheadAttention``, ``nn.Transformer*``), where it is dim 1 for the attention projections
and every Linear or activation of the block; a 2-D output there is an unbatched call, one sample.
``batch_dim=`` overrides the inference. A 3-D activation input is (B, T, F) (feature = neuron)
unless the nearest preceding layer in registration order is channel-first (Conv1d, BatchNorm1d,
GroupNorm, 1-d pooling): then (B, C, L) (channel = neuron).

``nn.MultiheadAttention`` computes its q/k/v projections inside ``F.multi_head_attention_forward``
(or the fused fast path), where no module hook reaches. skew measures them with a forward pre-hook
on the attention module that recomputes ``F.linear(query, W_q, b_q)`` (one packed GEMM for
self-attention): exact, at the cost of repeating the input projection (about 3E² multiply-adds per
token, ~20–25 % of a transformer block). Pass ``layers=`` without them (e.g. a predicate that
rejects names ending in ``_proj``) to avoid that cost. ``out_proj``'s output is the attention
module's output, read by a forward hook on the module; its input is internal, so its input
moments (and p_pred, λ) are NaN.

Non-finite values are detected inside the hook from the row summaries it computed; that call is
then reduced again, from the same Z, in the careful mode of :mod:`skew.accumulators`
(non-finite values counted per neuron and excluded), so every batch runs one forward pass. On CPU
the check is free. On CUDA the one-read Triton kernels (:mod:`skew._triton`) count non-finite
values out as they read, so there is nothing to check and no hook synchronises with the host;
the eager accelerator forms read one flag per hook call. Bounded samples kept per
layer: the sign raster (the first 250 input samples × up to 250 evenly spaced neurons; for conv
and token outputs, each sample's value at the true centre position (H//2, W//2, ...) or the
middle token, recorded in ``Report.sign_positions``) and, for the pairwise OUI
(:mod:`skew.oui`), the first 8 samples' full activation patterns (every unit, at most
``OUI_MAX_UNITS`` per sample) and their channel-pooled patterns. A layer called several times per
forward pass accumulates every call.

Safety: hooks are registered and removed in ``try``/``finally`` (also on KeyboardInterrupt and on
errors from the loader or the model); every module's ``training`` flag and every buffer
(BatchNorm running statistics, spectral norm's ``_u``/``_v``, buffers re-bound in ``forward``) are
snapshot by name before anything reads the model and restored bit for bit; the run is under ``torch.no_grad()``;
no attribute is set on the user's modules and the user's own hooks are left alone. The global CPU
RNG state is forked (a forward that draws random numbers, in any mode, leaves the caller's stream
as it was), and with ``mode="train"`` each CUDA device's too, so dropout masks do not consume the
caller's random stream. PyTorch's attention fast path (``torch.backends.mha``) is off during the run and
restored after: it would hand an eval-mode ``nn.TransformerEncoder`` with a padding mask NestedTensors.

Example:
    >>> import torch, torch.nn as nn, skew
    >>> net = nn.Sequential(nn.Linear(20, 50), nn.ReLU(), nn.Linear(50, 10))
    >>> rep = skew.report(net, [torch.randn(64, 20) for _ in range(4)])
    >>> rep.layers[["layer", "neurons", "samples"]].values.tolist()
    [['0', 50, 256], ['2', 10, 256]]
"""

from __future__ import annotations

import contextlib
import math
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from skew import _triton
from skew._checks import eager_module, positive_int
from skew._checks import thresholds as check_thresholds
from skew._state import Snapshot, kept_modes, no_mha_fastpath
from skew.accumulators import (
    OUI_MAX_UNITS,
    OUI_SAMPLES,
    SIGN_NEURONS,
    SIGN_ROWS,
    DeviceStats,
    LayerState,
    Scratch,
    all_finite,
    input_partial,
    input_partial_masked,
    inputs_finite,
    level1,
    level1_masked,
    pack_units,
    packbits,
    reads_input,
    stack_packed,
    to_host,
    unpack_units,
)
from skew.batches import batch_size, describe, iter_batches, model_inputs, to_device
from skew.errors import SkewError
from skew.layers import LAYER_TYPES, LayerSpec, is_layer
from skew.result import WEIGHT_COLUMNS, Report, layer_indices

__all__ = ["report", "MODES", "AT", "ACTIVATION_TYPES", "is_activation"]

#: Valid values of ``mode``.
MODES = ("eval", "train")

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)

#: Where ``report`` measures: ``"layers"`` (Z = Wx + b, the outputs of Linear/Conv layers and
#: attention projections) or ``"activations"`` (the inputs of the nonlinearity modules).
AT = ("layers", "activations")

#: The nonlinearity modules whose inputs are the sites of ``at="activations"``. Besides these,
#: modules whose class name is a known activation name (``GELUActivation``, ``NewGELUActivation``,
#: timm's ``GELU``/``Swish``..., see :func:`is_activation`) count, so that Hugging Face and timm
#: re-implementations are found. Functional calls (``F.relu`` inside a forward) are not modules
#: and are not sites.
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Softsign, nn.Tanhshrink,
    nn.LogSigmoid, nn.Threshold,
)
_ACTIVATION_NAMES = {
    "relu", "relu6", "leakyrelu", "prelu", "elu", "celu", "selu", "gelu", "gelutanh", "quickgelu", "silu",
    "swish", "mish", "hardswish", "hardsigmoid", "hardtanh", "tanh", "sigmoid", "softplus", "starrelu",
    "squaredrelu", "relusquared", "gelupytorchtanh", "fastgelu", "newgelu", "accuratgelu", "accurategelu",
    "clippedgelu", "hardmish", "laplace", "sqrtsoftplus", "xielu",
}
# Layouts of a 3-D activation input: (B, C, L) after these modules, (B, T, F) otherwise.
_CHANNEL_LAYERS = (nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d, nn.InstanceNorm1d, nn.GroupNorm,
                   nn.MaxPool1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d)
_TOKEN_LAYERS = (nn.Linear, nn.LayerNorm, nn.Embedding, nn.MultiheadAttention, nn.Bilinear)
_TRANSFORMERS = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
                 nn.TransformerEncoder, nn.TransformerDecoder, nn.Transformer)


def is_activation(module: nn.Module) -> bool:
    """Whether ``module`` is a nonlinearity whose input is a site of ``at="activations"``.

    An instance of :data:`ACTIVATION_TYPES`, or a module without children whose class name,
    lower-cased and without a trailing ``Activation`` (or timm's ``Me``), is a known activation name
    (Hugging Face's ``GELUActivation``, timm's ``GELU``, ``SwishMe``...).

    Example:
        >>> is_activation(nn.ReLU()), is_activation(nn.Linear(2, 2)), is_activation(nn.Softmax(-1))
        (True, False, False)
    """
    if isinstance(module, ACTIVATION_TYPES):
        return True
    if next(module.children(), None) is not None:
        return False
    name = type(module).__name__.lower()
    if name.endswith("activation"):
        name = name[: -len("activation")]
    if name.endswith("me") and name[:-2] in _ACTIVATION_NAMES:  # timm's memory-efficient SwishMe, HardMishMe...
        name = name[:-2]
    return name in _ACTIVATION_NAMES


def _sequence_first(module: nn.Module) -> bool | None:
    """True/False for a transformer-like module with batch_first False/True, None for other modules."""
    if not isinstance(module, _TRANSFORMERS):
        return None
    if isinstance(module, (nn.MultiheadAttention, nn.Transformer)):
        return not module.batch_first
    if isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        return not module.self_attn.batch_first
    first = next(iter(module.layers), None)
    return None if first is None else not first.self_attn.batch_first


_COLUMNS: dict = {}


def _raster_columns(neurons: int, device: torch.device) -> tuple[np.ndarray, torch.Tensor]:
    """The raster's neuron columns: min(neurons, SIGN_NEURONS) evenly spaced indices, as an array
    and a tensor on ``device``; made once per (width, device), shared by every site (never written:
    each report gets its own copy of the array)."""
    key = (neurons, device)
    if key not in _COLUMNS:
        if len(_COLUMNS) > 256:
            _COLUMNS.clear()
        cols = np.unique(np.linspace(0, neurons - 1, min(neurons, SIGN_NEURONS)).round().astype(np.int64))
        _COLUMNS[key] = (cols, torch.as_tensor(cols, device=device))
    return _COLUMNS[key]


class _Site:
    """One measured site: a module whose output hook fires, an attention projection, or the input
    of a nonlinearity at one call position (``kind="act"``, created at its first call)."""

    def __init__(self, name: str, kind: str, module: nn.Module, neurons: int | None, device: torch.device):
        self.name = name
        self.kind = kind  # "layer" | "mha_in" | "mha_out" | "act"
        self.module = module
        self.device = device
        self.spatial = (
            len(module.kernel_size) if kind == "layer" and isinstance(module, _CONV) else None
        )
        self.batch_dim = 0  # 1: sequence-first (T, B, F) outputs
        self.seq = kind in ("mha_in", "mha_out")  # inside a transformer block: 2-D outputs are unbatched
        self.tokens3d = True  # activation sites: a 3-D input is (B, T, F) (False: (B, C, L))
        self.group: Any = None  # the key of its DeviceStats in _Run.stats
        self.index = -1  # within its DeviceStats
        self.zdtype: torch.dtype | None = None
        self.bad_output: str | None = None
        self.first_shape: tuple[int, ...] | None = None
        self.units: list[torch.Tensor] = []  # packed full activation patterns of the first OUI_SAMPLES samples,
        # as (samples, bytes) blocks (one per hook call)
        self.unit_counts: list[int] = []
        self.unit_idx: dict[int, torch.Tensor] = {}
        self.sign_pos: tuple[int, ...] | None = None
        self.mask_calls = [0, 0, 0]  # applied, per-sample output, unmatched
        self.pos_shape: tuple[int, ...] = ()  # positions per sample of the last canon() output
        self.base = name  # activation sites: the module's qualified name
        self._reads: tuple | None = None  # (dtype, device, reads_input) of the last output
        self._buffers: list[_triton.Buffers] = []  # the CUDA kernels' outputs, one per call position
        self._buffers_at = (-1, 0)  # (batch, calls so far in it)
        self.neurons = 0
        if neurons is not None:
            self.allocate(neurons)

    def allocate(self, neurons: int) -> None:
        self.neurons = neurons
        self.sign_cols, self.sign_idx = _raster_columns(neurons, self.device)
        self.signs = torch.zeros(SIGN_ROWS, len(self.sign_cols), dtype=torch.bool, device=self.device)
        self.sign_map: torch.Tensor | None = None  # neuron -> raster column (or -1), for the CPU kernel
        self.sign_mid: tuple | None = None  # (positions shape, its centre, the centre's flat index)
        self.sign_filled = 0

    def centre(self) -> tuple[tuple[int, ...], int]:
        """The true centre (H//2, W//2, ...) of the last canon() output's positions, not the flattened
        P//2, and its flat index; cached per positions shape. Records it as the raster position."""
        shape = self.pos_shape
        if self.sign_mid is None or self.sign_mid[0] != shape:
            centre = tuple(s // 2 for s in shape)
            self.sign_mid = (shape, centre, int(np.ravel_multi_index(centre, shape)) if shape else 0)
        if self.sign_pos is None:
            self.sign_pos = self.sign_mid[1]
        return self.sign_mid[1], self.sign_mid[2]

    def unit_index(self, d: int, device: torch.device) -> torch.Tensor:
        """OUI_MAX_UNITS evenly spaced unit indices of a d-unit pattern (the same for every sample)."""
        if d not in self.unit_idx:
            idx = np.linspace(0, d - 1, OUI_MAX_UNITS).round().astype(np.int64)
            self.unit_idx[d] = torch.from_numpy(idx).to(device, non_blocking=True)  # no sync inside a hook
        return self.unit_idx[d]

    def channels_layout(self, z: torch.Tensor) -> bool:
        """Whether Z is (B, C, spatial...) with channel = neuron (else (..., F) with feature = neuron)."""
        if self.spatial is not None:
            return True
        if self.kind == "act":
            return z.dim() >= 4 or (z.dim() == 3 and not self.tokens3d)
        return False

    def reads_input(self, z3: torch.Tensor) -> bool:
        """:func:`skew.accumulators.reads_input`, asked once per output dtype and device of this site
        (the answer only changes with them: a kernel disabled since is caught by level 1's fallback)."""
        last = self._reads
        if last is None or last[0] != z3.dtype or last[1] != z3.device:
            last = self._reads = (z3.dtype, z3.device, reads_input(z3))
        return last[2]

    def buffers(self, batch: int) -> _triton.Buffers:
        """The output buffers of this site's next call in ``batch``: the k-th call of a batch reuses
        the k-th call's buffers of the batches before (level 2 has read them by then)."""
        at, k = self._buffers_at
        k = k if at == batch else 0
        self._buffers_at = (batch, k + 1)
        if k == len(self._buffers):
            self._buffers.append(_triton.Buffers())
        return self._buffers[k]

    def canon(self, z: torch.Tensor, chan: bool | None = None) -> tuple[torch.Tensor, int]:
        """View Z as (B, C, P) (returns pd=2) or (B, P, C) (pd=1) without copying when possible
        (``chan``: :meth:`channels_layout` of z, when the caller has it)."""
        if self.channels_layout(z) if chan is None else chan:
            if self.spatial is not None and z.dim() == self.spatial + 1:
                z = z.unsqueeze(0)
            b, c = z.shape[0], z.shape[1]
            self.pos_shape = tuple(z.shape[2:])
            if z.is_contiguous():
                return z.view(b, c, -1), 2
            perm = (0, *range(2, z.dim()), 1)
            zt = z.permute(perm)
            if zt.is_contiguous():  # channels_last
                return zt.view(b, -1, c), 1
            return z.reshape(b, c, -1), 2
        if self.seq and z.dim() == 2:  # an unbatched (T, F) call of a transformer block: one sample
            z = z.unsqueeze(0)
        elif self.batch_dim == 1 and z.dim() >= 3:
            z = z.transpose(0, 1)
        if z.dim() == 1:
            z = z.unsqueeze(0)
        self.pos_shape = tuple(z.shape[1:-1])
        return z.reshape(z.shape[0], -1, z.shape[-1]), 1

    def canon_input(self, x: torch.Tensor) -> torch.Tensor:
        """The layer input in the same sample order as :meth:`canon` gives Z (token layouts only)."""
        if self.seq and x.dim() == 2:
            return x.unsqueeze(0)
        if self.batch_dim == 1 and x.dim() >= 3:
            return x.transpose(0, 1)
        return x


def _version(x: torch.Tensor | None) -> int | None:
    """x's in-place modification counter, or None (no tensor; inference tensors keep none)."""
    if x is None:
        return None
    try:
        return x._version
    except RuntimeError:
        return None


class _Mask:
    """The attention mask of one batch: (B, T) bool on the host, copies on each device as needed."""

    def __init__(self, mask: torch.Tensor):
        self.host = mask
        self.B, self.T = mask.shape
        self.lengths = mask.sum(1)
        self.tokens = int(self.lengths.sum())  # unmasked positions: the samples of a masked site
        self.rows = torch.nonzero(self.lengths > 0).flatten()  # samples with at least one token
        # the middle unmasked token of each sample: the (k // 2)-th True position
        target = (self.lengths // 2 + 1).unsqueeze(1)
        self.mid = (mask.cumsum(1) >= target).to(torch.int8).argmax(1)
        self._on: dict[torch.device, tuple] = {}

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if device not in self._on:
            self._on[device] = tuple(t.to(device, non_blocking=True) for t in (self.host, self.rows, self.mid))
        return self._on[device]


class _Run:
    """The hooks and accumulators of one ``report()`` call."""

    def __init__(self, sites: list[_Site]):
        self.sites = list(sites)
        self.stats: dict[Any, DeviceStats] = {}
        self._add_groups([s for s in self.sites if s.neurons], 0)
        self.entries: list[tuple[_Site, Any, Any]] = []
        self.calls: list[tuple[_Site, int]] = []
        self.handles: list = []
        self.scratch = Scratch()  # one CPU work buffer for every hook of this run
        self.act_sites: dict[tuple[str, int], _Site] = {}
        self.act_calls: dict[str, int] = {}
        self.generation = 0
        self.mask: _Mask | None = None
        self.first_rows: int | None = None  # samples seen by the first site call of the batch
        self.careful_calls = 0
        self.last_input: tuple | None = None  # (weakref, version, moments) of the last layer input read
        self.batch = 0  # batches begun

    def _add_groups(self, sites: list[_Site], generation: int) -> None:
        by_device: dict[torch.device, list[_Site]] = {}
        for s in sites:
            by_device.setdefault(s.device, []).append(s)
        for dev, group in by_device.items():
            for i, s in enumerate(group):
                s.index = i
                s.group = (dev, generation)
            self.stats[(dev, generation)] = DeviceStats([s.neurons for s in group], dev)

    # -- hooks --------------------------------------------------------------------------------
    def observe(self, site: _Site, z: Any, x: Any) -> None:
        if not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.is_quantized:
            site.bad_output = f"output is not a floating-point tensor ({type(z).__name__})"
            return
        if z.numel() == 0 or (site.kind == "act" and z.dim() == 0):
            return
        chan = site.channels_layout(z)
        z3, pd_ = site.canon(z, chan)  # under no_grad: nothing to detach
        c = z3.shape[-1 if pd_ == 1 else 1]
        if site.kind == "act" and not site.neurons:
            site.allocate(int(c))
        if c != site.neurons:
            site.bad_output = f"output has {c} channels, expected {site.neurons}"
            return
        if site.first_shape is None:
            site.first_shape = tuple(z.shape[1:]) if z.dim() > 1 else tuple(z.shape)
            site.zdtype = z.dtype
        if self.first_rows is None:  # trusted for the inputs count only where dim 0 is not the batch
            unbatched = z.dim() == (site.spatial + 1 if site.spatial is not None else 1) or (site.seq and z.dim() == 2)
            self.first_rows = int(z3.shape[0]) if unbatched or site.batch_dim == 1 else -1
        valid = self._match_mask(site, z3, pd_, chan)
        stats = self.stats.get(site.group)
        have = stats.pattern_count[site.index] if stats is not None else 0
        xin = x if isinstance(x, torch.Tensor) else None
        if valid is not None:
            part = level1_masked(z3, valid)  # careful already: no check needed
        else:
            with_z = site.reads_input(z3)
            fresh = self._fresh_input(xin)  # an input not read yet: read in the same pass as Z where a kernel can
            part = level1(z3, pd_, head=OUI_SAMPLES - have, scratch=self.scratch, signs=self._sign_request(site, z3, pd_),
                          x=fresh, reads=with_z, buffers=site.buffers(self.batch))
            if part.inputs is not None:
                self._remember_input(xin, part.inputs)
        if part.inputs is not None:
            ip = part.inputs
        elif xin is not None and valid is not None:
            x3 = site.canon_input(xin)
            if x3.dim() == 3 and tuple(x3.shape[:2]) == tuple(valid.shape):
                ip = input_partial_masked(x3, valid)
            else:
                ip = input_partial(xin)
        else:
            ip = self._input_moments(xin)
        # fast summaries (an int count) must be checked; careful ones (a tensor count: masked, or
        # the one-read CUDA kernels) already left non-finite values out
        fast_ip = ip if isinstance(ip, tuple) and isinstance(ip[0], int) else None
        if part.k is None:  # one check of this call's summaries (and fast input moments)
            ok = all_finite(part, fast_ip)
        elif fast_ip is not None:
            ok = inputs_finite(fast_ip)
        else:
            ok = None
        if ok is not None and not bool(ok):  # free on CPU; else one flag read (eager accelerator forms)
            if part.k is None:
                part = level1(z3, pd_, careful=True)
                self.careful_calls += 1
            if fast_ip is not None:
                ip = input_partial(xin, careful=True)
        self.entries.append((site, part, ip))
        self.calls.append((site, self.mask.tokens if valid is not None else part.rows * part.P))
        if site.sign_filled < SIGN_ROWS:  # the raster fills in the first few batches
            if part.signed:  # the compiled kernel recorded them while it read Z
                site.sign_filled += min(SIGN_ROWS - site.sign_filled, int(z3.shape[0]))
            else:
                self._signs(site, z3, pd_, valid)
        if len(site.unit_counts) < OUI_SAMPLES:
            self._units(site, z3, pd_, valid, chan)

    def _input_moments(self, x: torch.Tensor | None):
        """input_partial(x), read once for an input that feeds several measured layers in a row (a
        ResNet block's first conv and its downsample): the same tensor object, not modified since
        (same version counter), gives the same moments. Only a weak reference is kept."""
        if x is not None and self._fresh_input(x) is None:  # the input read last, unchanged
            return self.last_input[2]
        ip = input_partial(x)
        self._remember_input(x, ip)
        return ip

    def _fresh_input(self, x: torch.Tensor | None) -> torch.Tensor | None:
        """x, unless it is the input read last (same object, same version), or None."""
        if x is None:
            return None
        version = _version(x)
        last = self.last_input
        if version is not None and last is not None and last[0]() is x and last[1] == version:
            return None
        return x

    def _remember_input(self, x: torch.Tensor | None, ip) -> None:
        version = _version(x)
        self.last_input = (weakref.ref(x), version, ip) if version is not None and ip is not None else None

    def _match_mask(self, site: _Site, z3: torch.Tensor, pd_: int, chan: bool) -> torch.Tensor | None:
        """The (B, T) validity mask for this output, or None (no mask, or it cannot be matched)."""
        if self.mask is None:
            return None
        m = self.mask
        if not chan and tuple(z3.shape[:2]) == (m.B, m.T):
            site.mask_calls[0] += 1
            return m.on(z3.device)[0]
        if z3.shape[0] == m.B and z3.shape[pd_] == 1:
            site.mask_calls[1] += 1
        else:
            site.mask_calls[2] += 1
        return None

    def _sign_request(self, site: _Site, z3: torch.Tensor, pd_: int) -> tuple | None:
        """(rows, centre position, column map, raster rows) for the CPU kernel to fill as it reads Z;
        None where it would not (raster full, not on the CPU, one position: _signs reads them)."""
        start = site.sign_filled
        if start >= SIGN_ROWS or z3.device.type != "cpu" or z3.shape[pd_] == 1:
            return None
        _, mid = site.centre()
        take = min(SIGN_ROWS - start, int(z3.shape[0]))
        if site.sign_map is None:
            site.sign_map = torch.full((site.neurons,), -1, dtype=torch.int32)
            site.sign_map[torch.as_tensor(site.sign_cols)] = torch.arange(len(site.sign_cols), dtype=torch.int32)
        return take, mid, site.sign_map, site.signs[start : start + take]

    def _signs(self, site: _Site, z3: torch.Tensor, pd_: int, valid) -> None:
        start = site.sign_filled
        if start >= SIGN_ROWS:
            return
        if valid is not None:  # the middle unmasked token of each sample with at least one token
            _, rows, mid = self.mask.on(z3.device)
            take = min(SIGN_ROWS - start, int(self.mask.rows.numel()))
            rows, mid = rows[:take], mid[rows[:take]]
            vals = z3[rows, mid]
            site.sign_pos = (-1,)
        else:
            take = min(SIGN_ROWS - start, z3.shape[0])
            _, mid = site.centre()
            vals = z3[:take, :, mid] if pd_ == 2 else z3[:take, mid, :]
        if take <= 0:
            return
        if len(site.sign_cols) != site.neurons:
            vals = vals.index_select(1, site.sign_idx)
        torch.gt(vals, 0, out=site.signs[start : start + take])  # in place: one launch, two with a subset
        site.sign_filled = start + take

    def _units(self, site: _Site, z3: torch.Tensor, pd_: int, valid, chan: bool) -> None:
        """Keep the full activation patterns (every unit) of the first OUI_SAMPLES samples."""
        need = OUI_SAMPLES - len(site.unit_counts)
        if need <= 0:
            return
        if valid is not None:
            rows = self.mask.rows[:need].tolist()
            pats = [(z3[b][valid[b]] > 0).reshape(-1) for b in rows]
        else:  # every sample has the same units: pack the rows at once
            head = z3[:need]
            if pd_ == 1 and chan:  # channels_last: read channel-major
                head = head.transpose(1, 2)
            flat = (head > 0).reshape(head.shape[0], -1)
            d = flat.shape[1]
            if d > OUI_MAX_UNITS:
                flat = flat[:, site.unit_index(d, flat.device)]
            site.units.append(packbits(flat))
            site.unit_counts.extend([int(flat.shape[1])] * flat.shape[0])
            return
        for p in pats:
            d = p.numel()
            if d > OUI_MAX_UNITS:
                p = p[site.unit_index(d, p.device)]
            site.units.append(packbits(p)[None])
            site.unit_counts.append(int(p.numel()))

    def layer_hook(self, site: _Site):
        def hook(module, args, kwargs, output):
            x = args[0] if args else kwargs.get("input")
            self.observe(site, output, x)

        return hook

    def act_hook(self, name: str, module: nn.Module, proto: _Site):
        """Forward pre-hook on a nonlinearity: its input at call position k is site (name, k)."""

        def hook(mod, args, kwargs):
            z = args[0] if args else next(iter(kwargs.values()), None)
            k = self.act_calls.get(name, 0)
            self.act_calls[name] = k + 1
            site = self.act_sites.get((name, k))
            if site is None:
                if not isinstance(z, torch.Tensor):
                    return None
                site = _Site(f"{name}#{k}", "act", module, None, z.device)
                site.batch_dim, site.seq, site.tokens3d = proto.batch_dim, proto.seq, proto.tokens3d
                site.base = name
                site.index = -1
                self.act_sites[(name, k)] = site
                self.sites.append(site)
            self.observe(site, z, None)
            return None

        return hook

    def mha_pre_hook(self, mha: nn.MultiheadAttention, sites: dict[str, _Site]):
        from skew.layers import attention_projections

        def hook(module, args, kwargs):
            names = ("query", "key", "value")
            vals = list(args[:3]) + [kwargs.get(n) for n in names[len(args[:3]) :]]
            q, k, v = vals
            projections = attention_projections(mha)
            if q is k and k is v and mha.in_proj_weight is not None:
                packed = F.linear(q, mha.in_proj_weight, mha.in_proj_bias)
                e = mha.embed_dim
                outs = {"q_proj": packed[..., :e], "k_proj": packed[..., e : 2 * e], "v_proj": packed[..., 2 * e :]}
                for suffix, site in sites.items():
                    self.observe(site, outs[suffix], q)
                return None
            inputs = {"q_proj": q, "k_proj": k, "v_proj": v}
            for suffix, w, b in projections:
                if suffix in sites:
                    self.observe(sites[suffix], F.linear(inputs[suffix], w, b), inputs[suffix])
            return None

        return hook

    def mha_out_hook(self, site: _Site):
        def hook(module, args, output):
            z = output[0] if isinstance(output, (tuple, list)) else output
            self.observe(site, z, None)

        return hook

    # -- per batch ----------------------------------------------------------------------------
    def reset_batch(self, mask: _Mask | None) -> None:
        self.batch += 1
        self.entries = []
        self.calls = []
        self.act_calls = {}
        self.mask = mask
        self.first_rows = None
        self.last_input = None

    def finish_batch(self) -> None:
        """Level 2 and commit (sites seen for the first time get their accumulators now)."""
        new = [s for s in self.sites if s.group is None and s.neurons]
        if new:
            self.generation += 1
            self._add_groups(new, self.generation)
        by_group: dict[Any, list] = {}
        for site, part, ip in self.entries:
            by_group.setdefault(site.group, []).append((site.index, part, ip))
        for key, entries in by_group.items():
            self.stats[key].fold(entries)
        for site, rows in self.calls:
            self.stats[site.group].note_call(site.index, rows)
        self.entries = []
        self.calls = []

    # -- end ----------------------------------------------------------------------------------
    def states(self) -> dict[str, LayerState]:
        distributed = _distributed()
        for st in self.stats.values():
            if distributed:
                st.all_reduce()
        out: dict[str, LayerState] = {}
        for key, st in self.stats.items():
            group = sorted((s for s in self.sites if s.group == key), key=lambda s: s.index)
            units = [u for s in group for u in s.units]
            host = to_host([s.signs[: s.sign_filled] for s in group] + units)  # one transfer per device
            signs, packed = host[: len(group)], iter(host[len(group) :])
            cols = [s.sign_cols.copy() for s in group]
            for s, state in zip(group, st.layer_states(signs, cols)):
                rows = [row for _ in s.units for row in next(packed)]  # each block's samples
                state.unit_patterns, state.unit_counts = stack_packed(rows, s.unit_counts)
                state.sign_position = np.asarray(s.sign_pos or (), dtype=np.int64)
                state.mask_calls = np.asarray(s.mask_calls, dtype=np.int64)
                out[s.name] = state
        if distributed:
            out = _gather_samples(out)
        return {s.name: out[s.name] for s in self.sites if s.name in out}


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gather_samples(states: dict[str, LayerState]) -> dict[str, LayerState]:
    """Sign rasters and OUI patterns of every rank, concatenated in rank order (counts already reduced)."""
    import torch.distributed as dist

    mine = {k: (st.signs, st.patterns, st.unit_patterns, st.unit_counts) for k, st in states.items()}
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    out = {}
    for name, st in states.items():
        signs = np.zeros((0, st.signs.shape[1]), dtype=bool)
        pats = np.zeros((0, st.patterns.shape[1]), dtype=bool)
        units: list[np.ndarray] = []
        for rank_samples in everyone:
            s, p, up, uc = rank_samples[name]
            signs = np.concatenate([signs, s[: SIGN_ROWS - signs.shape[0]]])
            pats = np.concatenate([pats, p[: OUI_SAMPLES - pats.shape[0]]])
            dense = unpack_units(up, uc)
            units += [dense[i, : int(c)] for i, c in enumerate(uc)]
        up, uc = pack_units(units[:OUI_SAMPLES])
        out[name] = LayerState(
            **{**st.__dict__, "signs": signs, "patterns": pats, "unit_patterns": up, "unit_counts": uc}
        )
    return out


# ------------------------------------------------------------------------------------ set-up
def _check_options(thresholds, max_batches, mode, progress, input_fn, at="layers", mask_fn=None) -> tuple[float, ...]:
    ths = check_thresholds(thresholds)
    if max_batches is not None:
        positive_int("max_batches", max_batches, 10)  # or None: every batch
    if mode not in MODES:
        raise SkewError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if at not in AT:
        raise SkewError(f"at must be one of {', '.join(map(repr, AT))}, got {at!r}")
    if progress is not None and not isinstance(progress, bool):
        raise SkewError(f"progress must be True, False or None (a bar on terminals), got {progress!r}")
    if input_fn is not None and not callable(input_fn):
        raise SkewError(f"input_fn must be a function batch -> model arguments, got {type(input_fn).__name__}")
    if mask_fn is not None and not callable(mask_fn):
        raise SkewError(f"mask_fn must be a function batch -> (B, T) mask, got {type(mask_fn).__name__}")
    return ths


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise SkewError(f"expected a torch.nn.Module, got {type(model).__name__}; pass the model itself")
    eager_module(model)
    for name, mod in model.named_modules():
        for t in (*mod.parameters(recurse=False), *mod.buffers(recurse=False)):
            if isinstance(t, torch.Tensor) and t.is_meta:
                raise SkewError(
                    f"module {name or type(model).__name__!r} ({type(mod).__name__}) is on the meta device: its "
                    "weights have no values; materialize the model first (model.to_empty(device='cpu') and an init)"
                )
            if isinstance(t, (nn.parameter.UninitializedParameter, nn.parameter.UninitializedBuffer)):
                raise SkewError(
                    f"module {name or type(model).__name__!r} ({type(mod).__name__}) is not initialised yet (a lazy "
                    "module); run one forward pass first, e.g. model(example_batch), so that its weights exist"
                )


def _weight_table(model: nn.Module, layers: LayerSpec) -> pd.DataFrame:
    from skew.weights import neuron_table

    if not isinstance(model, nn.Module):
        raise SkewError(f"expected a torch.nn.Module, got {type(model).__name__}; pass the model itself")
    has_any = any(is_layer(m) or isinstance(m, (*LAYER_TYPES, nn.MultiheadAttention)) for m in model.modules())
    if not has_any:
        kinds = sorted({type(m).__name__ for m in model.modules()})
        raise SkewError(
            f"{type(model).__name__} has no layer skew can analyse: it contains {', '.join(kinds)}; skew measures "
            "Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d and MultiheadAttention projections (or pass "
            "at='activations' to measure at its nonlinearities)"
        )
    return neuron_table(model, layers, tied="each")  # tied layers see different inputs: one site each


def _select_activations(model: nn.Module, layers: LayerSpec) -> list[tuple[str, nn.Module]]:
    """The nonlinearity modules that ``layers`` selects (names, globs, types or a predicate, as for layers).

    A name or glob with a call position (``"layer1.0.relu#1"``, ``"*#0"``) selects its module here;
    :func:`_keep_positions` then keeps only the matching sites."""
    import fnmatch

    found = [(n, m) for n, m in model.named_modules() if is_activation(m)]
    if not found:
        kinds = sorted({type(m).__name__ for m in model.modules()})
        raise SkewError(
            f"{type(model).__name__} has no nonlinearity module for at='activations': it contains {', '.join(kinds)}; "
            f"skew measures the inputs of {', '.join(t.__name__ for t in ACTIVATION_TYPES[:8])}, ... modules "
            "(functional calls such as F.relu are not modules); use at='layers'"
        )
    if layers is None:
        return found
    if callable(layers) and not isinstance(layers, type):
        from skew.layers import _check_predicate

        _check_predicate(layers)  # lambda name: ... named, not a TypeError
        return [(n, m) for n, m in found if layers(n, m)]
    try:
        specs = [layers] if isinstance(layers, (str, type)) or (
            isinstance(layers, tuple) and all(isinstance(t, type) for t in layers)) else list(layers)
    except TypeError:
        raise SkewError(f"layers={layers!r} is not understood; pass None, a glob such as 'layer1.*', a list of "
                        "names, a module type, or a predicate f(name, module) -> bool") from None
    names = {n for n, _ in found}
    specs = [s.split("#", 1)[0] if isinstance(s, str) else s for s in specs]
    for spec in specs:
        if isinstance(spec, str) and not any(ch in spec for ch in "*?[") and spec not in names:
            raise SkewError(
                f"no nonlinearity module named {spec!r} in {type(model).__name__}; at='activations' selects among "
                f"{', '.join(sorted(names)[:6])}{', ...' if len(names) > 6 else ''}"
            )

    def chosen(n: str, m: nn.Module) -> bool:
        return any(fnmatch.fnmatchcase(n, s) if isinstance(s, str) else isinstance(m, s) for s in specs)

    out = [(n, m) for n, m in found if chosen(n, m)]
    if not out:
        raise SkewError(f"layers={layers!r} selects none of the nonlinearity modules; check the names")
    return out


def _tokens_layout(model: nn.Module, name: str) -> bool:
    """A 3-D input of activation ``name`` is (B, T, F) unless the nearest preceding layer is channel-first."""
    previous = None
    for n, m in model.named_modules():
        if n == name:
            break
        if isinstance(m, _CHANNEL_LAYERS):
            previous = False
        elif isinstance(m, _TOKEN_LAYERS) or type(m).__name__ == "Conv1D":
            previous = True
    return True if previous is None else previous


def _batch_dims(model: nn.Module, sites: list[_Site], batch_dim) -> None:
    """Set each site's batch dimension: inferred from the nearest enclosing transformer module, or given."""
    import fnmatch

    modules = dict(model.named_modules())
    for s in sites:
        name = s.base
        if s.kind in ("mha_in", "mha_out"):
            name = name.rsplit(".", 1)[0] if "." in name else ""
        parts = name.split(".") if name else []
        for cut in range(len(parts), -1, -1):
            first = _sequence_first(modules.get(".".join(parts[:cut]), nn.Identity()))
            if first is not None:
                s.seq = True
                s.batch_dim = 1 if first else 0
                break
        chosen = None
        if isinstance(batch_dim, int):
            chosen = batch_dim
        elif isinstance(batch_dim, dict):
            chosen = next((d for g, d in batch_dim.items() if fnmatch.fnmatchcase(s.name, g)
                           or fnmatch.fnmatchcase(s.base, g)), None)
        if chosen is not None:
            s.batch_dim = chosen


def _check_batch_dim_globs(model: nn.Module, sites: list[_Site], batch_dim) -> None:
    """A ``batch_dim`` glob that matches no module of the model, and no measured site, is a typo: its
    layers would silently keep the inferred batch dimension. Refused, naming it and some real names.
    (A glob that matches layers left out by ``layers=`` is fine: one dict can serve many calls.)"""
    import fnmatch

    if not isinstance(batch_dim, dict):
        return
    names = [n for n, _ in model.named_modules() if n] + [s.name for s in sites] + [s.base for s in sites]
    for glob in batch_dim:
        bare = glob.split("#", 1)[0] if "#" in glob else glob  # 'relu#1': a call position of module 'relu'
        if not any(fnmatch.fnmatchcase(n, glob) or fnmatch.fnmatchcase(n, bare) for n in names):
            shown = ", ".join(repr(s.name) for s in sites[:4]) or ", ".join(repr(n) for n in names[:4])
            raise SkewError(
                f"batch_dim glob {glob!r} matches no layer of {type(model).__name__}; its layers are named e.g. "
                f"{shown}; fix the glob (fnmatch syntax, e.g. 'encoder.*') or drop it"
            )


def _check_batch_dim(batch_dim):
    """``batch_dim`` with numpy integers made ints; anything but None, 0, 1 or a {glob: 0 or 1} dict is refused."""
    def ok(d) -> bool:
        return isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d in (0, 1)

    if batch_dim is None or ok(batch_dim):
        return None if batch_dim is None else int(batch_dim)
    if isinstance(batch_dim, dict) and all(isinstance(k, str) and ok(v) for k, v in batch_dim.items()):
        return {k: int(v) for k, v in batch_dim.items()}
    raise SkewError(
        f"batch_dim must be None (inferred), 0, 1 or a {{layer glob: 0 or 1}} dict, got {batch_dim!r}; "
        "e.g. batch_dim={'encoder.*': 1} for sequence-first (T, B, F) layers"
    )


def _sites(model: nn.Module, table: pd.DataFrame) -> tuple[list[_Site], dict]:
    counts = {name: len(idx) for name, idx in layer_indices(table["layer"]).items()}
    modules = dict(model.named_modules())
    mha_parent = {}
    for name, mod in modules.items():
        if isinstance(mod, nn.MultiheadAttention):
            mha_parent[f"{name}.out_proj" if name else "out_proj"] = (name, mod)
    sites: list[_Site] = []
    mha_in: dict[int, tuple[nn.Module, dict]] = {}
    for name in counts:
        if name in mha_parent:
            _, mha = mha_parent[name]
            site = _Site(name, "mha_out", mha, counts[name], mha.out_proj.weight.device)
        elif name in modules:
            mod = modules[name]
            site = _Site(name, "layer", mod, counts[name], mod.weight.device)
        else:
            parent, suffix = name.rsplit(".", 1) if "." in name else ("", name)
            mha = modules[parent]
            w = mha.in_proj_weight if mha.in_proj_weight is not None else getattr(mha, f"{suffix}_weight")
            site = _Site(name, "mha_in", mha, counts[name], w.device)
            mha_in.setdefault(id(mha), (mha, {}))[1][suffix] = site
        sites.append(site)
    return sites, mha_in


def _nansum(x: np.ndarray) -> np.float64:
    """``pandas.Series.sum`` of a float64 array (NaN counted as 0), computed by numpy alone."""
    nan = np.isnan(x)
    return (np.where(nan, 0.0, x) if nan.any() else x).sum(dtype=np.float64)


def _info(sites: list[_Site], table: pd.DataFrame) -> dict[str, dict]:
    info = {}
    by_name = {s.name: s for s in sites}
    fan_in = table["fan_in"].to_numpy()
    row_sum = table["row_sum"].to_numpy()
    row_norm = table["row_norm"].to_numpy()
    for name, idx in layer_indices(table["layer"]).items():
        site = by_name[name]
        eps = float(torch.finfo(site.zdtype).eps) if site.zdtype is not None else float(np.finfo(np.float32).eps)
        if site.kind == "act":
            info[name] = {"type": type(site.module).__name__, "shape": str(site.first_shape),
                          "weight_std": float("nan"), "site": "activation", "eps": eps}
            continue
        n = int(fan_in[idx[0]])
        if site.kind == "layer":
            shape, kind = tuple(site.module.weight.shape), type(site.module).__name__
        elif site.kind == "mha_out":
            shape, kind = tuple(site.module.out_proj.weight.shape), type(site.module.out_proj).__name__
        else:
            shape, kind = (site.module.embed_dim, n), type(site.module).__name__
        total = len(idx) * n
        with np.errstate(invalid="ignore", over="ignore"):
            mean = _nansum(row_sum[idx]) / total
            var = float(_nansum(row_norm[idx] ** 2) / total - mean**2)
        info[name] = {"type": kind, "shape": str(shape), "weight_std": float("nan") if math.isnan(var) else math.sqrt(max(var, 0.0)),
                      "site": "layer", "eps": eps}
    return info


def _activation_table(sites: list[_Site], states: dict[str, LayerState]) -> pd.DataFrame:
    """The weight columns of activation sites: no weight, so fan_in 0 and NaN row sums, norms and biases."""
    if not sites:
        return pd.DataFrame({c: [] for c in WEIGHT_COLUMNS})
    sizes = [len(states[s.name].n) for s in sites]
    total = sum(sizes)
    starts = np.repeat(np.cumsum([0, *sizes[:-1]]), sizes)
    return pd.DataFrame({
        "layer": np.repeat(np.array([s.name for s in sites], dtype=object), sizes),
        "neuron": np.arange(total, dtype=np.int64) - starts,
        "fan_in": np.zeros(total, dtype=np.int64), "row_sum": np.full(total, np.nan),
        "row_sum_scaled": np.full(total, np.nan), "row_norm": np.full(total, np.nan), "bias": np.full(total, np.nan),
    })


def _skipped(model: nn.Module, sites: list[_Site], measured: set[str], never: dict[str, str]) -> pd.DataFrame:
    site_modules = {id(s.module) for s in sites if s.kind in ("layer", "act")}
    mha_measured = {id(s.module) for s in sites if s.kind in ("mha_in", "mha_out")}
    out_projs = {id(s.module.out_proj) for s in sites if s.kind == "mha_out"}
    at_acts = any(s.kind == "act" for s in sites)
    rows = []
    for name, mod in model.named_modules():
        if not name or name in measured:
            continue
        if name in never:
            rows.append((name, type(mod).__name__, never[name]))
            continue
        if id(mod) in site_modules or id(mod) in out_projs:
            continue
        if at_acts and next(mod.children(), None) is None:
            reason = ("not selected by layers=" if is_activation(mod) else
                      "not a nonlinearity (at='activations' measures the inputs of nonlinearity modules)")
        elif isinstance(mod, nn.MultiheadAttention):
            if id(mod) in mha_measured:
                continue
            reason = "not selected by layers="
        elif isinstance(mod, LAYER_TYPES):
            w = getattr(mod, "weight", None)
            if not isinstance(w, torch.Tensor) or isinstance(w, nn.parameter.UninitializedParameter):
                reason = "no weight (uninitialised lazy module or weight=None)"
            else:
                reason = "not selected by layers="
        elif next(mod.children(), None) is not None:
            reason = "container (its submodules are listed)"
        else:
            reason = "unsupported type (skew measures Linear, Conv, ConvTranspose and attention projections)"
        rows.append((name, type(mod).__name__, reason))
    for s in sites:
        if s.name in never and s.kind not in ("layer",):
            rows.append((s.name, type(s.module).__name__, never[s.name]))
    return pd.DataFrame(rows, columns=["module", "type", "reason"]).drop_duplicates("module").reset_index(drop=True)


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def parse_device(device) -> torch.device:
    """``device`` (a string such as 'cuda:1', an index or a torch.device) as a torch.device; anything torch
    cannot read as a device raises :class:`SkewError`.

    Example:
        >>> parse_device("cpu")
        device(type='cpu')
    """
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):  # ValueError: an index too large for a C long
        raise SkewError(f"device={device!r:.60} is not a torch device; pass e.g. 'cpu', 'cuda' or 'cuda:1'") from None


def _resolve_device(model: nn.Module, device) -> torch.device:
    home = _model_device(model)
    if device is None:
        return home
    dev = parse_device(device)
    if dev.type == "cuda" and dev.index is None and torch.cuda.is_available():
        dev = torch.device("cuda", torch.cuda.current_device())
    if dev.type == "cpu" and home.type == "cpu":  # 'cpu:0' is the one CPU device
        return home
    if dev != home:
        raise SkewError(
            f"the model's parameters are on {home} but device={str(dev)!r}; move the model first "
            f"(model.to({str(dev)!r})) or pass device=None to use the model's device"
        )
    return dev


@contextlib.contextmanager
def _preserved(model: nn.Module, mode: str):
    """Set eval()/train() for the run; restore every module's flag and every buffer afterwards.

    Entered before anything reads the model (reading a spectral-normed weight in train mode runs
    a power iteration that updates its ``_u``/``_v`` buffers). Buffers are restored by name, per
    module: a buffer re-bound in ``forward`` (``self.seen = self.seen + n``) gets its original
    tensor back, one added during the run is removed, and every original tensor gets its
    original values, bit for bit. Tensors held as plain attributes (the weight that the old
    ``torch.nn.utils.spectral_norm`` recomputes in a pre-hook) get their original objects back.
    """
    buffers = []
    for m in model.modules():
        table = dict(m._buffers)
        plain = {k: v for k, v in vars(m).items() if isinstance(v, torch.Tensor)}  # e.g. old spectral_norm's weight
        buffers.append((m, table, set(m._non_persistent_buffers_set), plain))
    snap = Snapshot([b for _, table, _, _ in buffers for b in table.values() if isinstance(b, torch.Tensor)])
    # the CPU RNG always (a forward may draw: noise, sampling), each CUDA device's for dropout in train mode
    cuda = []
    if mode == "train":
        cuda = sorted({b.device.index or 0 for b in model.parameters() if b.device.type == "cuda"})
    rng = torch.random.fork_rng(devices=cuda)
    try:
        with kept_modes(model), rng, no_mha_fastpath():
            model.train(mode == "train")
            yield
    finally:
        with torch.no_grad():
            for m, table, non_persistent, plain in buffers:
                m._buffers.clear()  # same names, same order, same tensor objects, same values
                m._buffers.update(table)
                m._non_persistent_buffers_set.clear()
                m._non_persistent_buffers_set.update(non_persistent)
                for k, v in plain.items():
                    if vars(m).get(k) is not v:
                        object.__setattr__(m, k, v)
            snap.restore()  # the values: only buffers whose bits changed are written


def _progress_bar(loader, max_batches, progress):
    show = sys.stderr.isatty() if progress is None else progress
    total = None
    try:
        total = len(loader)
    except Exception:  # noqa: BLE001 - only the bar's total: a loader whose __len__ fails still iterates
        pass
    if isinstance(loader, torch.Tensor):
        total = 1
    if max_batches is not None:
        total = max_batches if total is None else min(total, max_batches)
    if not show:  # tqdm.auto warns in notebooks without ipywidgets even when disabled
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="skew.report", unit="batch", leave=False)


class _NoBar:
    """Stands in for a disabled progress bar."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _batch_mask(batch, mask_fn, index: int) -> _Mask | None:
    """The (B, T) attention mask of a batch: ``mask_fn(batch)``, else a mapping's ``attention_mask``."""
    from collections.abc import Mapping

    if mask_fn is not None:
        raw = mask_fn(batch)
        source = "mask_fn(batch)"
    elif isinstance(batch, Mapping) and "attention_mask" in batch:
        raw = batch["attention_mask"]
        source = "batch['attention_mask']"
    else:
        return None
    if raw is None:
        return None
    if isinstance(raw, torch.Tensor) and raw.is_meta:
        raise SkewError(f"{source} of batch {index} is on the meta device and holds no values; return a (B, T) mask "
                        "with data")
    try:
        mask = torch.as_tensor(raw).detach().to("cpu")
        if mask.layout != torch.strided:  # a sparse mask: its values are what counts
            mask = mask.to_dense()
    except (TypeError, ValueError, RuntimeError):
        raise SkewError(f"{source} of batch {index} is not a tensor ({type(raw).__name__}); return a (B, T) mask") from None
    if mask.dim() != 2:
        raise SkewError(
            f"{source} of batch {index} has shape {tuple(mask.shape)}; a mask must be (batch, tokens) with 1 for "
            "real tokens and 0 for padding: pass mask_fn= returning one (or mask_fn=lambda batch: None to "
            "measure every position)"
        )
    if mask.dtype != torch.bool:
        if mask.is_complex() or not torch.isin(mask, torch.tensor([0, 1], dtype=mask.dtype, device=mask.device)).all():
            raise SkewError(f"{source} of batch {index} holds values other than 0 and 1; pass a 0/1 or bool mask")
        mask = mask != 0
    return _Mask(mask)


def _empty_batch(args: tuple, kwargs: dict) -> torch.Tensor | None:
    from skew.batches import _first_tensor

    t = _first_tensor((args, kwargs))
    return t if t is not None and t.dim() > 0 and t.numel() == 0 else None


# ----------------------------------------------------------------------------------------- API
def report(
    model: nn.Module,
    loader,
    *,
    layers: LayerSpec = None,
    thresholds: Sequence[float] = (0.1, 0.3),
    max_batches: int | None = None,
    device=None,
    mode: str = "eval",
    progress: bool | None = None,
    input_fn: Callable[[Any], Any] | None = None,
    at: str = "layers",
    batch_dim: int | dict[str, int] | None = None,
    mask_fn: Callable[[Any], Any] | None = None,
) -> Report:
    """Measure every selected neuron's P(Z > 0), skew |p − 1/2| and Theorem 1's prediction.

    .. math:: p = \\frac{\\#\\{Z > 0\\}}{n}, \\quad p_{gauss} = \\Phi(\\bar Z / s_Z), \\quad
              p_{pred} = \\Phi\\Big(\\frac{\\mu S + b}{\\sigma \\lVert W_i \\rVert}\\Big)

    Args:
        model: any ``nn.Module``; it is left exactly as it was (flags, parameters, buffers, hooks).
        loader: an iterable of batches — tensors, ``(inputs, targets)`` tuples/lists (only the inputs
            reach the model), dicts of tensors (keyword arguments), or whatever ``input_fn`` maps to the
            model's arguments. A single tensor is one batch. See :mod:`skew.batches`.
        layers: None (every Linear/ConvNd/ConvTransposeNd and attention projection), a glob on
            qualified names, a list of names, module type(s), or a predicate ``f(name, module)``.
            With ``at="activations"`` it selects among the nonlinearity modules; a name or glob
            with a call position (``"layer1.0.relu#1"``) keeps only that site of a reused module.
        thresholds: the skew degrees α of the ``skewed_{α}`` / ``lambda_{α}`` / ``agree_{α}`` columns.
        max_batches: stop after this many batches (None: the whole loader); exactly this many items
            are pulled from the loader.
        device: where batches are sent; must be the model's device (None: the model's).
        mode: ``"eval"`` (default; docs/definitions.md) or ``"train"`` (BatchNorm uses batch statistics;
            running statistics are restored afterwards).
        progress: show a tqdm bar (None: only when stderr is a terminal).
        input_fn: ``batch -> args`` (a tuple is positional arguments, a dict keyword arguments,
            anything else the single input).
        at: ``"layers"`` (default: Z = W x + b at each layer's output, the paper's pre-activation) or
            ``"activations"``: the inputs of the nonlinearity modules (:data:`ACTIVATION_TYPES`),
            where the OUI authors record patterns (after BatchNorm when there is one). A module
            called once per forward is the site ``name``; one called K > 1 times (torchvision's
            BasicBlock reuses ``relu``) gives the sites ``name#0`` ... ``name#{K-1}``, by call
            order within a forward. There is no weight: row sums, norms, bias, p_pred and λ are NaN.
        batch_dim: which dimension of a site's output is the batch. None (default) infers it: dim 1
            for sites inside a ``batch_first=False`` ``nn.MultiheadAttention`` / ``Transformer*``
            module (the nearest enclosing one decides), dim 0 elsewhere; inside such modules a 2-D
            output is an unbatched call (one sample). An int (0 or 1) sets every site; a dict
            ``{glob: 0 or 1}`` sets the sites whose names match (first match wins; others inferred;
            a glob that matches no name in the model is refused as a typo).
            It applies to token layouts (B, T, F) / (T, B, F); conv maps are always (B, C, ...). With
            an int, the ``inputs`` count reads that dimension of the batch's first tensor.
        mask_fn: ``batch -> (B, T) mask`` (bool or 0/1, 1 = real token). Without it, a batch that is
            a mapping with an ``attention_mask`` uses that. Masked positions are not samples (see
            below).

    Returns:
        a :class:`skew.result.Report`.

    Raises:
        SkewError: no analysable layer, an empty loader, a batch with zero samples, a padding mask
        that leaves no token at any site (inverted or all zero), a ``batch_dim`` glob that matches
        no layer, an uninitialised lazy module, a batch the model rejects (the message names the
        module reached and the batch's structure), bad options.

    **Masks.** A mask (B, T) is matched to a site's output after the batch dimension is put
    first: an output of shape (B, T, ..., F) in token layout (Linear/Conv1D outputs, attention
    projections, activation inputs; (T, B, F) at sequence-first sites) has its masked tokens
    left out of the counts, moments, signs, the raster (which shows each sample's middle
    unmasked token) and the OUI patterns (the unmasked tokens' units). Such a call runs the
    float64 careful reduction. Outputs with no token axis (B, F) are per sample; any other shape
    (conv maps, another T) cannot be matched and is measured unmasked: the layer table's
    ``mask`` column says ``applied``, ``per-sample``, ``unmatched`` (some calls) or is empty
    without a mask.

    **Non-finite values** are found inside the hook, from the row summaries it computed anyway;
    that call is then reduced again from the same Z in the careful mode, so the forward runs once
    per batch (user hooks and side effects run once). On CPU the check costs nothing. On CUDA
    (float32/16/bf16 outputs, Triton present) each call is reduced in one read that leaves
    non-finite values out as it goes, so there is no check and no host synchronisation inside a
    hook; the eager accelerator forms (``SKEW_EAGER=1``, other dtypes) read one flag per call.

    Under ``torch.distributed`` every rank must call ``report`` (same model, its own data); each
    rank then returns the Report of the union of all ranks' data (ranks in order).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4))
        >>> _ = net(torch.zeros(1, 3, 8, 8))              # materialise the lazy layer
        >>> rep = report(net, [(torch.randn(16, 3, 8, 8), torch.zeros(16))])
        >>> rep.layers["neurons"].tolist()
        [8, 4]
        >>> report(net, [torch.randn(16, 3, 8, 8)], at="activations").layers["layer"].tolist()
        ['1']
    """
    ths = _check_options(thresholds, max_batches, mode, progress, input_fn, at, mask_fn)
    max_batches = None if max_batches is None else int(max_batches)  # 2.0 and numpy ints are whole numbers
    batch_dim = _check_batch_dim(batch_dim)
    _check_model(model)
    dev = _resolve_device(model, device)
    batches = inputs = 0
    bar = None
    with _preserved(model, mode), torch.no_grad():
        if at == "layers":
            table = _weight_table(model, layers)
            sites, mha_in = _sites(model, table)
            protos = []
        else:
            table, sites, mha_in = None, [], {}
            protos = []
            for name, mod in _select_activations(model, layers):
                proto = _Site(name, "act", mod, None, dev)
                proto.tokens3d = _tokens_layout(model, name)
                protos.append(proto)
            _batch_dims(model, protos, batch_dim)
        _batch_dims(model, sites, batch_dim)
        _check_batch_dim_globs(model, sites + protos, batch_dim)
        run = _Run(sites)
        try:
            for site in sites:
                if site.kind == "layer":
                    run.handles.append(site.module.register_forward_hook(run.layer_hook(site), with_kwargs=True))
                elif site.kind == "mha_out":
                    run.handles.append(site.module.register_forward_hook(run.mha_out_hook(site)))
            for mha, by_suffix in mha_in.values():
                run.handles.append(
                    mha.register_forward_pre_hook(run.mha_pre_hook(mha, by_suffix), with_kwargs=True)
                )
            for proto in protos:
                run.handles.append(proto.module.register_forward_pre_hook(
                    run.act_hook(proto.name, proto.module, proto), with_kwargs=True))
            bar = _progress_bar(loader, max_batches, progress)
            if max_batches is None or max_batches > 0:
                for batch in iter_batches(loader):
                    args, kwargs = model_inputs(batch, input_fn, model)
                    empty = _empty_batch(args, kwargs)
                    if empty is not None and empty.shape[0] > 0:  # e.g. (8, 0): samples without features
                        zero = list(empty.shape).index(0)
                        raise SkewError(
                            f"batch {batches} holds no values: its first tensor has shape {tuple(empty.shape)}, whose "
                            f"dimension {zero} is 0 (no features or tokens, or an empty batch of sequence-first "
                            "data); pass inputs with at least one value per sample, e.g. shape (B, n) with n >= 1"
                        )
                    if empty is not None:
                        raise SkewError(
                            f"batch {batches} has zero samples (its first tensor has shape {tuple(empty.shape)}); "
                            "make the loader skip empty batches (e.g. a DataLoader over a non-empty dataset)"
                        )
                    mask = _batch_mask(batch, mask_fn, batches)
                    args, kwargs = to_device(args, dev), to_device(kwargs, dev)
                    run.reset_batch(mask)
                    _forward(model, args, kwargs, run, batch, batches)
                    rows = run.first_rows
                    run.finish_batch()
                    batches += 1
                    inputs += _count_inputs(args, kwargs, batch_dim, rows)
                    bar.update(1)
                    if max_batches is not None and batches >= max_batches:
                        break  # pull exactly max_batches items
        finally:
            for h in run.handles:
                h.remove()
            run.handles.clear()
            if bar is not None:
                bar.close()
        if batches == 0:
            raise SkewError("the loader yielded no batches; pass a non-empty iterable of batches (check the dataset size)")
        _name_activation_sites(run)
        drop = _keep_positions(run, layers) if at == "activations" and layers is not None else set()
        states = {k: v for k, v in run.states().items() if k not in drop}
        local_batches = batches
        if _distributed():
            batches, inputs = _sum_over_ranks([batches, inputs], dev)
        sites = [s for s in run.sites if s.name not in drop]
        never = {}
        for s in sites:
            if s.name not in states or states[s.name].calls == 0:
                never[s.name] = s.bad_output or "never executed (the forward pass did not call it)"
        called = {base for base, _ in run.act_sites}
        for proto in protos:  # a selected nonlinearity the forward never called has no site of its own
            if proto.name not in called:
                never[proto.name] = "never executed (the forward pass did not call it)"
        measured = {k: v for k, v in states.items() if k not in never}
        if not sites and not protos:  # every selected layer has zero output units (Linear(n, 0), Conv2d(c, 0, k))
            raise SkewError(
                f"the selected layers of {type(model).__name__} have no output units (zero out_features/channels); "
                "select layers with at least one neuron with layers="
            )
        if not measured:
            what = "nonlinearity modules" if at == "activations" else "layers"
            listed = ", ".join(list(never)[:5]) or ", ".join(p.name for p in protos[:5])
            count = len(sites) or len(protos)
            raise SkewError(
                f"none of the {count} selected {what} ran during the forward pass ({listed}...); "
                "check that the model's forward calls them, or select others with layers="
            )
        if all(st.rows == 0 for st in measured.values()):  # only a mask removes every sample of every call
            raise SkewError(
                f"the padding mask left nothing to measure: every token of all {batches} batch(es) is masked out at "
                f"every selected site; a mask marks real tokens with 1 (True) and padding with 0 (check that "
                "mask_fn / the batch's attention_mask is not inverted or all zero)"
            )
        if table is None:
            table = _activation_table([s for s in sites if s.name in measured], measured)
        if any(s.name not in measured for s in sites):  # else nothing to filter (and no copy)
            table = table[table["layer"].isin(measured)]
        # read the weights (shapes, lazy checks) while the buffers are still protected
        info = _info(sites, table)
        skipped = _skipped(model, sites, set(measured), never)
    meta = {
        "model": type(model).__name__,
        "batches": batches,
        "inputs": inputs,
        "device": str(dev),
        "mode": mode,
        "at": at,
        "max_batches": max_batches,
        "layers_spec": "None" if layers is None else repr(layers),
        "world_size": _world_size(),
        "local_batches": local_batches,
        "careful_calls": run.careful_calls,
        "torch": torch.__version__,
    }
    from skew._version import __version__

    meta["skew"] = __version__
    return Report(
        measured,
        table[list(WEIGHT_COLUMNS)],
        info,
        thresholds=ths,
        meta=meta,
        skipped=skipped,
    )


def _keep_positions(run: _Run, layers: LayerSpec) -> set[str]:
    """The activation sites that a ``name#k`` entry of ``layers`` leaves out (see _select_activations)."""
    import fnmatch

    specs = [layers] if isinstance(layers, str) else list(layers) if isinstance(layers, (list, tuple)) else []
    strs = [s for s in specs if isinstance(s, str)]
    if not any("#" in s for s in strs):
        return set()

    def kept(site: _Site) -> bool:
        for spec in specs:
            if not isinstance(spec, str):
                if isinstance(site.module, spec):
                    return True
            elif "#" not in spec:
                if fnmatch.fnmatchcase(site.base, spec):
                    return True
            elif fnmatch.fnmatchcase(site.name, spec) or (site.name == site.base and spec == f"{site.base}#0"):
                return True
        return False

    return {s.name for s in run.sites if s.kind == "act" and not kept(s)}


def _name_activation_sites(run: _Run) -> None:
    """An activation module called once per forward keeps its name; K > 1 call positions get ``name#k``."""
    positions: dict[str, int] = {}
    for base, k in run.act_sites:
        positions[base] = max(positions.get(base, 0), k + 1)
    for (base, k), site in run.act_sites.items():
        site.name = base if positions[base] == 1 else f"{base}#{k}"
    order = {id(s): i for i, s in enumerate(run.sites)}
    acts = sorted((s for s in run.sites if s.kind == "act"), key=lambda s: order[id(s)])
    run.sites = [s for s in run.sites if s.kind != "act"] + acts


def _count_inputs(args: tuple, kwargs: dict, batch_dim, first_rows: int | None) -> int:
    """Input samples in a batch: dim ``batch_dim`` (an int) of the first tensor; else, when the first
    measured call was sequence-first or unbatched, the samples it saw; else dim 0 of the first tensor."""
    from skew.batches import _first_tensor

    if isinstance(batch_dim, int):
        t = _first_tensor((args, kwargs))
        if t is not None and t.dim() > batch_dim:
            return int(t.shape[batch_dim])
    if first_rows is not None and first_rows >= 0:
        return first_rows
    return batch_size(args, kwargs)


def _sum_over_ranks(values: list[int], device: torch.device) -> list[int]:
    import torch.distributed as dist

    on = device if dist.get_backend() != "nccl" or device.type == "cuda" else torch.device("cuda")
    t = torch.as_tensor(values, dtype=torch.int64, device=on)
    dist.all_reduce(t)
    return [int(v) for v in t.tolist()]


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _forward(model: nn.Module, args: tuple, kwargs: dict, run: _Run, batch, index: int) -> None:
    try:
        model(*args, **kwargs)
    except Exception as err:
        found = _failing_module(err, model)
        where = "in the model's own forward" if found is None else (
            f"in module {found[0]!r} ({type(found[1]).__name__})" if found[0] else
            f"in {type(model).__name__}.forward itself")
        raise SkewError(
            f"{type(model).__name__} rejected batch {index} = {describe(batch)}: {type(err).__name__} raised "
            f"{where}: {err}. Make the loader yield what the model expects, or pass input_fn= to map a "
            "batch to the model's arguments"
        ) from err


def _failing_module(err: BaseException, model: nn.Module) -> tuple[str, nn.Module] | None:
    """The innermost submodule of ``model`` whose code is on the exception's traceback.

    Read from the frames' ``self`` after the fact, so that no hook has to track every module
    during the run (which would slow every forward).
    """
    names = {id(m): n for n, m in model.named_modules()}
    found = None
    tb = err.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if obj is not None and id(obj) in names:
            found = (names[id(obj)], obj)
        tb = tb.tb_next
    return found
