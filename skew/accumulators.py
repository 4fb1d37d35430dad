"""Streaming per-neuron statistics of pre-activations: counts, Chan-merged moments, sign samples.

A layer's output Z is viewed as ``(B, C, P)`` (or ``(B, P, C)``): B input samples, C neurons, P
positions per sample (conv: every spatial position; Linear on (B, T, F): every token; Linear on
(B, F): P = 1). Each of the B·P values of a neuron is one sample of that neuron. Nothing of Z is
kept: a forward hook reduces it at once, in two levels.

*Level 1* (inside the hook, on Z's device, no host synchronisation): per (sample b, neuron c) row,
the row's mean, its M2 = Σ_p (Z − mean)² and its number of positive values. On CUDA with Triton
(float32/16/bf16) one kernel launch per call reads Z once and returns the *careful* summaries
directly (finite values only: :mod:`skew._triton`), reading the layer input in the same launch;
otherwise on accelerators this is ``torch.var_mean`` (Welford, one read of Z) plus one comparison; on CPU,
where that kernel is slow, the row is shifted by its own first value c_bc and summed:
s1 = Σ_p (Z − c_bc), s2 = Σ_p (Z − c_bc)², mean = c_bc + s1/P, M2 = s2 − s1²/P. Both make a
constant row exact (M2 = 0), which is how degenerate neurons are recognised, and avoid the
cancellation of the textbook Σz² − (Σz)²/n. The eager CPU form writes one reused activation-sized
buffer (:class:`Scratch`) twice: the 0/1 comparison Z > 0 (summed: the positives) and Z − c_bc
(summed: s1; s2 as its norm where the rows run along memory, else squared in place and summed,
as a strided norm is several times slower).

*Compiled CPU form* (float32 Z, the default where a C compiler is present, :mod:`skew._fused`):
the same per-row shifted sums in **one read of Z**, each row then merged into its neuron with
Chan's formula inside the kernel, which returns one collapsed row per neuron (n = B·P values),
the number of samples whose row mean is > 0 (``Partial.act``), the first samples' pattern bits,
the sign raster and a host-side finiteness flag; the layer input's Σx and Σx² take one read too.
Without a compiler, or with ``SKEW_EAGER`` set, the eager form runs; both give the same
statistics to float32 rounding.

*Level 2* (once per batch, vectorised over all layers, float64): the row summaries are combined
over the B rows and then into the running accumulator with Chan's parallel formula:

.. math::
    n = n_a + n_b,\\quad \\delta = \\bar x_b - \\bar x_a,\\quad
    \\bar x = \\bar x_a + \\delta \\frac{n_b}{n},\\quad
    M_2 = M_{2,a} + M_{2,b} + \\delta^2 \\frac{n_a n_b}{n}.

Under autocast Z may be fp16/bf16: signs are exact and level 1 runs in float32 (level 2 in
float64). **Non-finite values** (NaN, ±Inf) show up as non-finite row summaries
(:func:`all_finite`); the analyzer then reduces that call's Z again in the *careful* mode, which
counts the non-finite values of each neuron and excludes them from its n, positive count and
moments (so p = pos/n is over finite values only). The careful mode works in float64 and is
slower; it only runs for calls that contain non-finite values, and for masked token outputs
(:func:`level1_masked`: padding positions are excluded the same way).

Example:
    >>> import torch
    >>> z = torch.randn(64, 5, 10)                      # (B, C, P)
    >>> part = level1(z, pd=2)
    >>> st = DeviceStats([5], torch.device("cpu"))
    >>> res = st.reduce([(0, part, None)])
    >>> st.commit(res)
    >>> torch.allclose(st.mean, z.double().mean((0, 2))), torch.allclose(st.m2 / st.n, z.double().var((0, 2), correction=0))
    (True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from skew import _fused, _triton

__all__ = [
    "DeviceStats",
    "LayerState",
    "Partial",
    "Scratch",
    "all_finite",
    "chan_merge",
    "input_partial",
    "input_partial_masked",
    "inputs_finite",
    "level1",
    "level1_masked",
    "reads_input",
    "merge_states",
    "pack_units",
    "packbits",
    "stack_packed",
    "to_host",
    "unpack_units",
    "SIGN_ROWS",
    "SIGN_NEURONS",
    "OUI_SAMPLES",
    "OUI_MAX_UNITS",
]

#: Bounds of the activation-sign sample kept per layer (rows = samples, columns = neurons).
SIGN_ROWS = 250
SIGN_NEURONS = 250
#: Number of samples whose activation patterns feed the pairwise OUI (all 28 pairs of 8 samples).
OUI_SAMPLES = 8
#: Most units kept per sample for the pairwise OUI: a larger flattened pattern (C·H·W or T·F) is
#: subsampled to this many evenly spaced units (the same indices for every sample), bounding memory
#: at OUI_SAMPLES · OUI_MAX_UNITS bytes per site (8 MiB).
OUI_MAX_UNITS = 1 << 20


def chan_merge(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Chan et al.'s parallel combination of two (count, mean, M2) summaries; numpy or torch.

    .. math::
        \\bar x = \\bar x_a + \\delta\\, n_b/n, \\qquad
        M_2 = M_{2,a} + M_{2,b} + \\delta^2 n_a n_b / n, \\qquad \\delta = \\bar x_b - \\bar x_a.

    Works elementwise; an empty side (n = 0) leaves the other unchanged.

    Example:
        >>> a, b = np.array([1.0, 2.0]), np.array([3.0, 5.0, 7.0])
        >>> n, m, m2 = chan_merge(2, a.mean(), a.var() * 2, 3, b.mean(), b.var() * 3)
        >>> n, float(m), bool(np.isclose(m2 / n, np.r_[a, b].var()))
        (5, 3.6, True)
    """
    n = n_a + n_b
    if isinstance(n, torch.Tensor):  # int64 / int64 would give float32 in torch: divide in float64
        w = torch.as_tensor(n_b, dtype=torch.float64, device=n.device) / n.clamp_min(1).to(torch.float64)
    else:
        w = np.divide(n_b, np.maximum(n, 1), dtype=np.float64)
    delta = mean_b - mean_a
    mean = mean_a + delta * w
    m2 = m2_a + m2_b + delta * delta * n_a * w
    return n, mean, m2


# ----------------------------------------------------------------------------------------- level 1
@dataclass
class Partial:
    """Level-1 summary of one call of one layer: per (sample, neuron) row statistics, shape (B, C).

    ``mean`` and ``m2`` (Σ (z − mean)², None when P = 1) describe each row of P values; with
    ``m2_is_var`` the ``m2`` field holds the variance (M2 / P), scaled in level 2. ``k`` (finite
    values per row) and ``nonfinite`` (per neuron) are None in the fast mode, where every row holds
    P finite values (a non-finite value shows up as a non-finite mean). The one-read CUDA kernels
    (:mod:`skew._triton`) give ``k`` with ``nonfinite`` None: every value a row's k leaves out was
    non-finite, so level 2 counts them as P·rows − Σk.
    """

    mean: torch.Tensor
    m2: torch.Tensor | None
    pos: torch.Tensor
    P: int
    k: torch.Tensor | None = None
    nonfinite: torch.Tensor | None = None
    m2_is_var: bool = False
    samples: int | None = None  # input samples B, when the rows are collapsed (one row of B values)
    head: torch.Tensor | None = None  # activation patterns (Z > 0) of the first samples, collapsed rows
    finite: bool | None = None  # known on the host (compiled CPU kernel): every value of Z was finite
    act: torch.Tensor | None = None  # collapsed rows: samples whose row mean is > 0 (default: pos)
    signed: bool = False  # the compiled kernel wrote the sign raster requested by ``signs``
    inputs: object | None = None  # the layer input, read in the same pass: its block sums (CUDA kernels) or
    # its input_partial tuple (the compiled CPU kernel)
    stacked: torch.Tensor | None = None  # (4, rows, C) float64: k, mean, m2, pos in one tensor (CUDA kernels)

    @property
    def B(self) -> int:
        return int(self.mean.shape[0]) if self.samples is None else self.samples

    @property
    def rows(self) -> int:
        return int(self.mean.shape[0])


class Scratch:
    """One reusable work buffer for the CPU reductions, as large as the largest layer output.

    Each fast-mode reduction writes one activation-sized temporary. Allocated afresh on every
    hook call, its pages are handed back and faulted in again each time (a few ms per large conv
    output, the cost of several passes of arithmetic); reusing one buffer per run avoids that.
    Peak memory is unchanged (the temporary existed anyway) and it is dropped with the run.

    Example:
        >>> buf = Scratch()
        >>> buf.like(torch.zeros(2, 3)).shape
        torch.Size([2, 3])
    """

    def __init__(self) -> None:
        self._buf: torch.Tensor | None = None

    def like(self, t: torch.Tensor) -> torch.Tensor:
        """A contiguous tensor of ``t``'s shape, dtype and device, sharing the one buffer."""
        n = t.numel()
        buf = self._buf
        if buf is None or buf.numel() < n or buf.dtype != t.dtype or buf.device != t.device:
            buf = self._buf = torch.empty(n, dtype=t.dtype, device=t.device)
        return buf[:n].view(t.shape)


def level1(
    z3: torch.Tensor, pd: int, careful: bool = False, head: int = 0, scratch: Scratch | None = None,
    signs: tuple | None = None, x: torch.Tensor | None = None, reads: bool | None = None,
    buffers: _triton.Buffers | None = None,
) -> Partial:
    """Reduce a (B, C, P) (``pd=2``) or (B, P, C) (``pd=1``) view of Z to per-row summaries.

    See the module docstring for the fast forms (CPU and accelerators); ``careful`` (float64)
    excludes and counts non-finite values. When P = 1 (Linear on (B, F)) the fast forms collapse
    the B rows at once into one row of B values (a (B, C) float64 intermediate would cost more
    than the layer), keeping the activation patterns of the first ``head`` samples for OUI. The
    compiled CPU kernel (:func:`skew._fused.neurons`) collapses every layout so: it merges the
    rows per neuron itself (Chan's formula) and returns one row of B·P values, with ``act`` the
    number of samples whose row mean is > 0 and ``head`` those samples' pattern bits; given
    ``signs`` (see :func:`skew._fused.neurons`) it also records the sign raster as it reads Z
    (``Partial.signed``; P > 1 only). Given the layer input ``x``, the one-read CUDA kernels also
    sum it in the same launch (``Partial.inputs``, a :class:`skew._triton.InputBlocks`, added up
    in level 2), and the compiled CPU kernel in the same pass (``Partial.inputs`` is then
    :func:`input_partial` (x), bit for bit, where x is a dense float32 CPU tensor and the work is
    not split over threads); the other forms ignore ``x`` (``Partial.inputs`` None). ``reads``
    is :func:`reads_input` (z3) when the caller already knows it (None: ask). ``buffers``
    (:class:`skew._triton.Buffers`, one per call site and call position) lets the CUDA kernels and
    the compiled CPU kernel write into the memory of that site's previous batch; the caller must
    have finished level 2 of that batch.

    Example:
        >>> part = level1(torch.tensor([[[1.0, 2.0, 3.0]]]), pd=2)
        >>> part.mean.item(), round(part.m2.item(), 5), part.pos.item()
        (2.0, 2.0, 3.0)
    """
    P = int(z3.shape[pd])
    if careful:
        return _level1_careful(z3, pd, P)
    if reads_input(z3) if reads is None else reads:
        part = _triton.guarded(_level1_triton, z3, pd, P, head, x, buffers)
        if part is not None:
            return part
    if z3.dtype not in (torch.float32, torch.float64):
        z3 = z3.float()
    if z3.dtype == torch.float32 and not _welford(z3.device):
        out = None
        if buffers is not None:  # the (4, C) float64 results in this call site's buffer of the batch before
            out = buffers.take(1, int(z3.shape[1 if pd == 2 else 2]), 0, z3.device)[0].view(4, -1)
        fused = _fused.neurons(z3, pd, head, signs=signs, x=x, out=out)  # one read of Z (and x), rows merged
        if fused is not None:
            mean, m2, pos, act, bits, finite, xsums = fused
            B = int(z3.shape[0])
            return Partial(mean[None], m2[None], pos[None], B * P, samples=B, head=bits, finite=finite,
                           act=act[None], signed=signs is not None and P > 1,
                           inputs=_from_sums(x.numel(), xsums) if xsums is not None else None)
    if P == 1:
        zz = z3.squeeze(pd)  # (B, C): collapse the B samples into one row of B values
        part = _moments(zz.unsqueeze(0), 1, zz.shape[0], scratch)
        part.samples = int(zz.shape[0])
        part.head = zz[:head] > 0 if head > 0 else None
        return part
    return _moments(z3, pd, P, scratch)


def reads_input(z3: torch.Tensor) -> bool:
    """Whether :func:`level1` reads the layer input in the same pass as Z (the one-launch CUDA
    kernels of :mod:`skew._triton`); elsewhere the caller reads it with :func:`input_partial`.

    Example:
        >>> reads_input(torch.zeros(2, 3, 4))   # a CPU tensor
        False
    """
    return z3.dtype in _triton.INPUT_DTYPES and _triton.available(z3.device)


def _level1_triton(z3: torch.Tensor, pd: int, P: int, head: int, x: torch.Tensor | None,
                   buffers: _triton.Buffers | None = None) -> Partial:
    """Careful-mode row summaries (finite values only, ``k`` per row) in one read on CUDA
    (:mod:`skew._triton`), with the layer input's block sums from the same launch; P = 1 collapses
    the B rows into one row of B values as the fast form does."""
    if x is not None and (x.dtype not in _triton.INPUT_DTYPES or x.device != z3.device):
        x = None  # float64 or elsewhere: input_partial's own forms
    if P == 1:
        zz = z3.squeeze(pd)  # (B, C)
        out, k, mean, m2, pos, blocks = _triton.level1(zz.unsqueeze(0), 1, x, buffers)
        B = int(zz.shape[0])
        return Partial(mean, m2, pos, B, k=k, samples=B, head=zz[:head] > 0 if head > 0 else None, act=pos,
                       inputs=blocks, stacked=out)
    out, k, mean, m2, pos, blocks = _triton.level1(z3, pd, x, buffers)
    return Partial(mean, m2, pos, P, k=k, inputs=blocks, stacked=out)



def _moments(z3: torch.Tensor, pd: int, P: int, scratch: Scratch | None = None) -> Partial:
    """Fast-mode row summaries of a (R, C, P) / (R, P, C) view (see the module docstring)."""
    if P == 1:
        zz = z3.squeeze(pd)
        return Partial(zz.to(torch.float64, copy=True), None, _positives(z3, pd), 1)
    if _welford(z3.device):
        var, mean = torch.var_mean(z3, dim=pd, correction=0)
        return Partial(mean, var, _positives(z3, pd), P, m2_is_var=True)
    # One activation-sized temporary at a time: with two alive at once, the CPU allocator hands
    # the pages back and faults them in again on every call (about 10x the arithmetic's cost).
    work = scratch.like(z3) if scratch is not None else None
    pos = _positives(z3, pd, work)
    c = z3.narrow(pd, 0, 1)
    y = torch.sub(z3, c) if work is None else torch.sub(z3, c, out=work)
    s1 = y.sum(pd).to(torch.float64)
    if pd == z3.dim() - 1 and y.stride(pd) == 1:  # rows along memory: the norm is one fast read
        s2 = torch.linalg.vector_norm(y, 2, dim=pd).to(torch.float64).square_()
    else:  # a strided norm is slow on CPU: square in place, then a (vectorised) sum across rows
        s2 = y.mul_(y).sum(pd).to(torch.float64)
    del y
    mean = c.squeeze(pd).to(torch.float64) + s1 / P
    m2 = (s2 - s1 * s1 / P).clamp_min_(0)
    return Partial(mean, m2, pos, P)


def _welford(device: torch.device) -> bool:
    """Use torch.var_mean (one fused pass) for row moments: on accelerators, not on CPU (slow there)."""
    return device.type != "cpu"


def _positives(z3: torch.Tensor, pd: int, work: torch.Tensor | None = None) -> torch.Tensor:
    """Number of values > 0 per row, as floats (exact: integers below 2**24 per row)."""
    if not _welford(z3.device):  # a float 0/1 comparison and a float sum vectorise best on CPU
        ones = (z3 > 0).to(z3.dtype) if work is None else torch.gt(z3, 0, out=work)
        return ones.sum(pd)
    return (z3 > 0).sum(pd, dtype=torch.float32)  # fewer bytes written on accelerators


def _level1_careful(z3: torch.Tensor, pd: int, P: int, valid: torch.Tensor | None = None) -> Partial:
    zf = z3.to(torch.float64)
    finite = torch.isfinite(zf)
    fin = finite if valid is None else finite & valid
    k = fin.sum(pd)
    zc = torch.where(fin, zf, 0.0)
    mean = zc.sum(pd) / k.clamp_min(1)
    y = torch.where(fin, zf - mean.unsqueeze(pd), 0.0)
    m2 = (y * y).sum(pd)
    pos = (zc > 0).sum(pd).to(torch.float64)
    bad = ~finite if valid is None else ~finite & valid
    nonfinite = bad.sum((0, pd))
    return Partial(mean, m2, pos, P, k=k, nonfinite=nonfinite)


def level1_masked(z3: torch.Tensor, valid: torch.Tensor) -> Partial:
    """Row summaries of a (B, T, C) view of Z keeping only the positions where ``valid`` (B, T) is True.

    Masked positions (padding) are not samples: they are left out of n, the positive count and
    the moments, as non-finite values are in the careful mode (float64, per-row counts ``k``).

    Example:
        >>> z = torch.tensor([[[1.0], [3.0], [-50.0]]])          # one sample, 3 tokens, 1 neuron
        >>> part = level1_masked(z, torch.tensor([[True, True, False]]))
        >>> part.k.tolist(), part.mean.tolist(), part.pos.tolist()
        ([[2]], [[2.0]], [[2.0]])
    """
    return _level1_careful(z3, 1, int(z3.shape[1]), valid.unsqueeze(-1))


def all_finite(part: Partial, inputs: tuple | None = None) -> bool | torch.Tensor:
    """Every row summary of a fast-mode Partial (and the mean and M2 of a fast :func:`input_partial`,
    when given) is finite, i.e. no NaN/Inf in Z (or the input): a bool where the compiled CPU kernel
    already knows it (no tensor work), else a 0-d bool tensor on Z's device.

    One float64 sum of the summaries is tested: a NaN or ±Inf anywhere makes it non-finite. Finite
    summaries of float32/fp16 values cannot overflow it (their means are below 3.5e38, their M2
    below n·1.2e77); a sum that still overflows (float64 values near 1e308) only sends the call to
    the careful mode, which gives the same statistics.

    Example:
        >>> ok = all_finite(level1(torch.tensor([[[1.0, float("nan")]]]), pd=2))
        >>> bool(ok), bool(all_finite(level1(torch.ones(2, 3, 4), pd=2)))
        (False, True)
    """
    if part.finite is not None and (inputs is None or isinstance(inputs[1], float)):
        return part.finite and (inputs is None or math.isfinite(inputs[1] + inputs[2]))  # host values
    check = part.mean.sum()
    if part.m2 is not None:
        check = check + part.m2.sum()
    if inputs is not None:
        check = check + inputs[1] + inputs[2]
    return torch.isfinite(check)


def inputs_finite(ip: tuple) -> bool | torch.Tensor:
    """Whether the mean and M2 of an :func:`input_partial` are finite (a bool, or a 0-d bool tensor on
    its device when they are tensors).

    Example:
        >>> bool(inputs_finite(input_partial(torch.tensor([1.0, float("inf")]))))
        False
    """
    if isinstance(ip[1], float):
        return math.isfinite(ip[1] + ip[2])
    return torch.isfinite(ip[1] + ip[2])


def pack_units(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged boolean unit patterns (one 1-D array per sample) -> (packed bits (S, ⌈d_max/8⌉), counts (S,)).

    Example:
        >>> packed, counts = pack_units([np.array([1, 0, 1], bool), np.array([1], bool)])
        >>> counts.tolist(), unpack_units(packed, counts)[0].astype(int).tolist()
        ([3, 1], [1, 0, 1])
    """
    counts = np.asarray([len(r) for r in rows], dtype=np.int64)
    width = int(counts.max()) if len(rows) else 0
    dense = np.zeros((len(rows), width), dtype=bool)
    for i, r in enumerate(rows):
        dense[i, : len(r)] = r
    return np.packbits(dense, axis=1), counts


_BIT_WEIGHTS: dict[torch.device, torch.Tensor] = {}


def packbits(active: torch.Tensor) -> torch.Tensor:
    """Pack a bool tensor along its last dimension into uint8 bytes on its own device, first unit in
    the high bit (``numpy.packbits``' order): (..., d) -> (..., ⌈d/8⌉), so an 8-sample pattern store
    costs d bytes, not 8·d. Rows of a 2-D tensor are packed at once (one call, not one per row).

    Example:
        >>> packbits(torch.tensor([True, False, True, True, False, False, False, False, True])).tolist()
        [176, 128]
        >>> packbits(torch.tensor([[True] * 9, [False] * 8 + [True]])).tolist()
        [[255, 128], [0, 128]]
    """
    if active.device.type == "cpu":  # numpy's own packing: the same bytes, ~25x faster than the torch form
        bits = active if active.dtype == torch.bool else active != 0
        return torch.from_numpy(np.packbits(bits.numpy(), axis=-1))
    return _packbits_torch(active)


def _packbits_torch(active: torch.Tensor) -> torch.Tensor:
    """:func:`packbits` in torch operations, on any device (no host copy)."""
    pad = (-active.shape[-1]) % 8
    if active.device not in _BIT_WEIGHTS:  # 128, 64, ..., 1 made on the device (no host copy inside a hook)
        _BIT_WEIGHTS[active.device] = torch.bitwise_left_shift(
            torch.ones(8, dtype=torch.uint8, device=active.device),
            torch.arange(7, -1, -1, dtype=torch.uint8, device=active.device))
    bits = active if active.dtype == torch.bool else active != 0  # bool × uint8 weights gives uint8
    bytes8 = torch.nn.functional.pad(bits, (0, pad)) if pad else bits
    bytes8 = bytes8.reshape(*active.shape[:-1], -1, 8)  # a view where it can be (any layout)
    return (bytes8 * _BIT_WEIGHTS[active.device]).sum(-1, dtype=torch.uint8)


def stack_packed(rows: list[np.ndarray], counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows already packed by :func:`packbits` -> the (packed (S, ⌈d_max/8⌉), counts (S,)) of :func:`pack_units`."""
    counts_a = np.asarray(counts, dtype=np.int64)
    width = (int(counts_a.max()) + 7) // 8 if len(rows) else 0
    out = np.zeros((len(rows), width), dtype=np.uint8)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out, counts_a


def unpack_units(packed: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_units`: a dense (S, d_max) bool array (entries past a sample's count are False)."""
    width = int(np.max(counts)) if len(counts) else 0
    if packed.shape[0] == 0:
        return np.zeros((0, width), dtype=bool)
    return np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=1, count=width).astype(bool)


def _every(at) -> bool:
    """Whether an accumulator index (a slice or an index tensor) is every entry, in order."""
    return isinstance(at, slice) and at == slice(None)


def _stacked(parts: list[Partial]) -> torch.Tensor:
    """The CUDA kernels' (4, R, C_i) row summaries of a group's calls side by side: (4, R, ΣC_i)."""
    return parts[0].stacked if len(parts) == 1 else torch.cat([p.stacked for p in parts], 2)


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate (B, C_i) blocks along the neurons, in float64 (one conversion, not one per layer)."""
    out = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
    return out.to(torch.float64)


def input_partial(x: torch.Tensor | None, careful: bool = False):
    """(count, mean, M2) of all entries of a layer's input; None when there is nothing to measure.

    The count is an int (a 0-d tensor when ``careful``, which excludes non-finite entries and works
    in float64); mean and M2 are 0-d tensors on x's device (no host synchronisation), or host
    floats where the compiled CPU kernel (:mod:`skew._fused`) computed Σx and Σx² in one read:
    mean = Σx/n, M2 = Σx² − n·mean². Otherwise CPU uses Σx and ‖x‖, accelerators ``torch.var_mean``.

    Example:
        >>> n, mean, m2 = input_partial(torch.tensor([1.0, 2.0, 3.0]))
        >>> n, float(mean), round(float(m2), 5)
        (3, 2.0, 2.0)
    """
    if x is None or not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.numel() == 0:
        return None
    if careful:
        xf = x.to(torch.float64).reshape(-1)
        fin = torch.isfinite(xf)
        n = fin.sum()
        xc = torch.where(fin, xf, 0.0)
        mean = xc.sum() / n.clamp_min(1)
        d = torch.where(fin, xf - mean, 0.0)
        return (n, mean, (d * d).sum())
    if x.dtype in _triton.INPUT_DTYPES and _triton.available(x.device):
        found = _triton.guarded(_triton.moments, x)  # finite entries only, one read, a 0-d tensor count
        if found is not None:
            return found
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    n = x.numel()
    if _welford(x.device):
        var, mean = torch.var_mean(x, correction=0)
        return (n, mean, var * n)
    both = _fused.sums(x)  # CPU float32: Σx and Σx² in one read, as host floats
    if both is not None:
        return _from_sums(n, both)
    s = x.sum(dtype=torch.float64) if x.dtype == torch.float64 else x.sum().to(torch.float64)
    ss = torch.linalg.vector_norm(x).to(torch.float64).square_()
    mean = s / n
    return (n, mean, (ss - s * mean).clamp_min_(0))


def _from_sums(n: int, both: tuple[float, float]) -> tuple[int, float, float]:
    """(count, mean, M2) from the float64 sums (Σx, Σx²) of n values: mean = Σx/n, M2 = Σx² − Σx·mean."""
    mean = both[0] / n
    return (n, mean, max(both[1] - both[0] * mean, 0.0))


def input_partial_masked(x3: torch.Tensor, valid: torch.Tensor):
    """(count, mean, M2) of the finite entries of a (B, T, F) layer input at the tokens where ``valid``
    (B, T) is True, in float64, as 0-d tensors on x's device (no host synchronisation).

    Example:
        >>> x = torch.tensor([[[1.0, 3.0], [100.0, 100.0]]])
        >>> n, mean, m2 = input_partial_masked(x, torch.tensor([[True, False]]))
        >>> n.item(), mean.item(), m2.item()
        (2, 2.0, 2.0)
    """
    if not x3.is_floating_point() or x3.numel() == 0:
        return None
    xf = x3.to(torch.float64)
    fin = torch.isfinite(xf) & valid.unsqueeze(-1)
    n = fin.sum()
    mean = torch.where(fin, xf, 0.0).sum() / n.clamp_min(1)
    d = torch.where(fin, xf - mean, 0.0)
    return (n, mean, (d * d).sum())


# ----------------------------------------------------------------------------------------- level 2
def _group_key(part: Partial) -> tuple:
    """Calls with equal keys are reduced together: same samples, rows and kind of summary."""
    return part.B, part.rows, part.k is None, part.nonfinite is None


def _host_ready(part: Partial, ip: tuple | None) -> bool:
    """A call :meth:`DeviceStats.fold` takes on the host: collapsed by the compiled kernel, all finite."""
    return (part.finite is True and part.rows == 1 and part.k is None and part.m2 is not None
            and (ip is None or (isinstance(ip[0], int) and isinstance(ip[1], float))))


def _stack64(values: list, device: torch.device) -> torch.Tensor:
    """A float64 vector of scalars that are host floats (the compiled kernel) or 0-d tensors."""
    if all(isinstance(v, float) for v in values):
        return torch.tensor(values, dtype=torch.float64, device=device)
    return torch.stack([torch.as_tensor(v, device=device) for v in values]).to(torch.float64)


@dataclass
class BatchResult:
    """Level-2 per-neuron results of one group of calls, columns ordered as ``cols``."""

    cols: torch.Tensor | slice
    layers: list[int]
    B: int
    n: torch.Tensor
    mean: torch.Tensor
    m2: torch.Tensor
    pos: torch.Tensor
    nonfinite: torch.Tensor | None
    active: torch.Tensor | None
    oui: torch.Tensor | None
    inputs: tuple | None
    heads: list | None = None


class DeviceStats:
    """Running accumulators of every layer on one device, stored flat (neurons of all layers).

    ``sizes[i]`` neurons belong to layer i; per-neuron arrays have ``sum(sizes)`` entries, per-layer
    arrays ``len(sizes)``. Memory is O(neurons) and does not grow with the number of batches.
    """

    def __init__(self, sizes: list[int], device: torch.device):
        self.sizes = list(sizes)
        self.device = device
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        total = int(self.offsets[-1])
        i64 = {"dtype": torch.int64, "device": device}
        f64 = {"dtype": torch.float64, "device": device}
        self.n = torch.zeros(total, **i64)
        self.pos = torch.zeros(total, **i64)
        self.nonfinite = torch.zeros(total, **i64)
        self.mean = torch.zeros(total, **f64)
        self.m2 = torch.zeros(total, **f64)
        self.oui_sum = torch.zeros(total, **f64)
        nl = len(self.sizes)
        self.in_n = torch.zeros(nl, **i64)
        self.in_mean = torch.zeros(nl, **f64)
        self.in_m2 = torch.zeros(nl, **f64)
        self.calls = [0] * nl
        self.rows = [0] * nl
        self.oui_batches = [0] * nl
        self.patterns: list[torch.Tensor | None] = [None] * nl
        self.pattern_count = [0] * nl
        self._cache: dict = {}

    # -- helpers ------------------------------------------------------------------------------
    def _columns(self, layers: tuple[int, ...]):
        key = ("cols", layers)
        if key not in self._cache:
            if layers == tuple(range(len(self.sizes))):
                self._cache[key] = slice(None)
            else:
                idx = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in layers])
                self._cache[key] = torch.as_tensor(idx, device=self.device)
        return self._cache[key]

    def _scales(self, layers: tuple[int, ...], ps: tuple[int, ...]) -> torch.Tensor:
        """A per-column float64 vector holding, for each layer's neurons, that layer's entry of ``ps``."""
        key = ("P", layers, ps)
        if key not in self._cache:
            vec = np.concatenate([np.full(self.sizes[i], p, dtype=np.float64) for i, p in zip(layers, ps)])
            self._cache[key] = torch.as_tensor(vec, device=self.device)
        return self._cache[key]

    # -- level 2 ------------------------------------------------------------------------------
    def reduce(self, entries: list[tuple[int, Partial, tuple | None]]) -> list[BatchResult]:
        """Level 2 for one batch: ``entries`` are (layer index, Partial, input partial) in call order.

        Calls are grouped so that each group holds at most one call per layer and a single
        batch size; each group is one vectorised float64 computation over its layers' neurons.
        """
        return [self._reduce_group(g) for g in self._groups(entries)]

    @staticmethod
    def _groups(entries: list[tuple[int, Partial, tuple | None]]) -> list[list]:
        """The calls of a batch in groups: at most one call per layer, one kind of summary each."""
        groups: list[list] = []
        seen: list[set] = []
        for entry in entries:
            li, part, _ = entry
            for g, s in zip(groups, seen):
                first = g[0][1]
                if li not in s and _group_key(first) == _group_key(part):
                    g.append(entry)
                    s.add(li)
                    break
            else:
                groups.append([entry])
                seen.append({li})
        return groups

    def _fold_group(self, group: list) -> bool:
        """Level 2 and commit of one group in one launch of :func:`skew._triton.level2`, where every
        call was reduced by the CUDA kernels into per-sample rows and every layer's OUI patterns are
        complete (the usual batch after the first); False where it does not apply (the torch path)."""
        parts = [p for _, p, _ in group]
        if not all(p.stacked is not None and p.samples is None and p.nonfinite is None and p.m2 is not None
                   and not p.m2_is_var for p in parts):
            return False
        layers = tuple(li for li, _, _ in group)
        if (any(self.pattern_count[li] < OUI_SAMPLES for li in layers) or not _triton.available(self.device)
                or not _triton.level2_usable()):
            return False
        stacked = _stacked(parts)
        cols = self._columns(layers)
        B = parts[0].B
        acc = (self.n, self.mean, self.m2, self.pos, self.nonfinite, self.oui_sum)
        scale = self._scales(layers, tuple(p.P for p in parts))
        items = [(li, ip) for li, _, ip in group if ip is not None]
        blocks = bool(items) and all(isinstance(ip, _triton.InputBlocks) for _, ip in items)
        fused = self._input_blocks(items) if blocks else None  # the inputs in the same launch
        if _triton.guarded_level2(stacked, scale, None if isinstance(cols, slice) else cols, acc, B, fused) is None:
            return False
        if B >= 2:
            for li in layers:
                self.oui_batches[li] += 1
        inputs = None if blocks else self._reduce_inputs(group)
        if inputs is not None:
            idx, mean_b, m2_b, n_b = inputs
            self._merge(("in_n", "in_mean", "in_m2"), idx, n_b, mean_b, m2_b)
        return True

    def _input_blocks(self, items: list) -> tuple:
        """:func:`skew._triton.level2`'s ``inputs`` for (layer, InputBlocks) items: the blocks side
        by side, each input's first block and count and its layer (index tensors kept per layout)."""
        parts = [ip.part for _, ip in items]
        sizes = tuple(int(p.shape[1]) for p in parts)
        key = ("l2in", tuple(li for li, _ in items), sizes)
        if key not in self._cache:
            counts = np.asarray(sizes, dtype=np.int64)
            host = np.stack([np.cumsum(counts) - counts, counts, np.asarray(key[1], dtype=np.int64)])
            first, cnt, idx = torch.as_tensor(host, device=self.device).unbind(0)
            self._cache[key] = (first, cnt, idx, int(counts.max()))
        first, cnt, idx, most = self._cache[key]
        allp = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        return allp, first, cnt, idx, most, (self.in_n, self.in_mean, self.in_m2)

    def _reduce_group(self, group) -> BatchResult:
        layers = tuple(li for li, _, _ in group)
        parts = [p for _, p, _ in group]
        B, R = parts[0].B, parts[0].rows
        careful = parts[0].k is not None
        f64 = torch.float64
        m2_bc = None
        if all(p.stacked is not None and p.m2 is not None for p in parts):  # CUDA kernels: one concatenation
            k_bc, mean_bc, m2_bc, pos_bc = _stacked(parts).unbind(0)
        else:
            k_bc = _cat([p.k for p in parts]) if careful else None
            mean_bc = _cat([p.mean for p in parts])
            pos_bc = _cat([p.pos for p in parts])
        if m2_bc is None and any(p.m2 is not None for p in parts):
            m2_bc = _cat([p.m2 if p.m2 is not None else p.mean.new_zeros(()).expand_as(p.mean) for p in parts])
            if any(p.m2_is_var for p in parts):
                m2_bc = m2_bc * self._scales(layers, tuple(p.P if p.m2_is_var else 1 for p in parts))
        if careful:
            k = k_bc
            n = k.sum(0)
            mean = (k * mean_bc).sum(0) / n.clamp_min(1)
            dev = torch.where(k > 0, mean_bc - mean, 0.0)
            m2 = (k * dev * dev).sum(0)
            active = (mean_bc > 0) & (k > 0) if R == B else None
            if parts[0].nonfinite is None:  # one-read kernel: every value not counted in k was non-finite
                nonfinite = (self._scales(layers, tuple(p.P for p in parts)) * R - n).to(torch.int64)
            else:
                nonfinite = torch.cat([p.nonfinite for p in parts])
            n = n.to(torch.int64)
        else:
            kv = self._scales(layers, tuple(p.P for p in parts))
            n = (kv * R).to(torch.int64)
            if R == 1:
                mean, m2 = mean_bc[0], torch.zeros_like(mean_bc[0])
            else:
                mean = mean_bc.mean(0)
                dev = mean_bc - mean
                m2 = (dev * dev).sum(0) * kv
            active = mean_bc > 0 if R == B else None  # collapsed rows carry their patterns in `head`
            nonfinite = None
        if m2_bc is not None:
            m2 = m2 + m2_bc.sum(0)
        pos = pos_bc.sum(0)
        oui = None
        if B >= 2:
            if active is not None:
                s = active.sum(0)
            else:  # collapsed: s_k = samples with row mean > 0 (P = 1: with Z > 0)
                s = _cat([p.act if p.act is not None else p.pos for p in parts])[0]
            oui = torch.minimum(s, B - s).to(f64) / (B // 2)
        inputs = self._reduce_inputs(group)
        heads = None if active is not None else [p.head for p in parts]
        return BatchResult(
            self._columns(layers), list(layers), B, n, mean, m2, pos.round().to(torch.int64), nonfinite, active,
            oui, inputs, heads,
        )

    def _reduce_inputs(self, group):
        items = [(li, ip) for li, _, ip in group if ip is not None]
        if not items:
            return None
        blocks = [ip for _, ip in items if isinstance(ip, _triton.InputBlocks)]
        if blocks:  # block sums of the CUDA kernels: all added up at once
            n, mean, m2 = _triton.combine(blocks)
            if len(blocks) == len(items):
                key = ("blocks", tuple(li for li, _ in items))
                if key not in self._cache:
                    every = key[1] == tuple(range(len(self.sizes)))
                    self._cache[key] = slice(None) if every else torch.as_tensor(key[1], device=self.device)
                return self._cache[key], mean, m2, n.to(torch.int64)
            done = iter(zip(n, mean, m2))
            items = [(li, next(done) if isinstance(ip, _triton.InputBlocks) else ip) for li, ip in items]
        fixed = all(isinstance(ip[0], int) for _, ip in items)
        key = ("inputs", tuple(li for li, _ in items), tuple(ip[0] for _, ip in items) if fixed else None)
        if key not in self._cache:
            idx = torch.as_tensor([li for li, _ in items], device=self.device)
            counts = torch.as_tensor(key[2], dtype=torch.int64, device=self.device) if fixed else None
            self._cache[key] = (idx, counts)
        idx, counts = self._cache[key]
        if counts is None:
            counts = torch.stack([torch.as_tensor(ip[0], device=self.device) for _, ip in items]).to(torch.int64)
        mean = _stack64([ip[1] for _, ip in items], self.device)
        m2 = _stack64([ip[2] for _, ip in items], self.device)
        return idx, mean, m2, counts

    # -- host fast path -----------------------------------------------------------------------
    def fold(self, entries: list[tuple[int, Partial, tuple | None]]) -> None:
        """Level 2 and commit of one batch: ``commit(reduce(entries))``, computed on the host by the
        compiled kernel's ``skew_fold`` (:mod:`skew._fused`), one call at a time, when every call was
        reduced by the compiled CPU kernel (one collapsed row per neuron, every value finite);
        otherwise the vectorised torch path.

        Per call and neuron, with the call's n_b = B·P values, mean_b, M2_b, positives and active
        samples s: Chan's merge n = n_a + n_b, w = n_b/n, δ = mean_b − mean_a, mean = mean_a + δw,
        M2 = (M2_a + M2_b) + δ²·n_a·w; pos += round(pos_b); OUI sum += min(s, B − s)/⌊B/2⌋ (B ≥ 2).
        These are the torch path's float64 operations in the same order, uncontracted, so both give
        the same bits; one compiled loop per call costs a fraction of the ~20 small array operations
        it replaces, which matters once per call per batch.
        """
        lib = _fused.kernel() if self.device.type == "cpu" else None
        if lib is None or not entries or not all(_host_ready(p, ip) for _, p, ip in entries):
            for group in self._groups(entries):  # in order: a group the CUDA kernel takes, or torch's
                if not self._fold_group(group):
                    self.commit([self._reduce_group(group)])
            return
        ptr = {k: getattr(self, k).data_ptr() for k in ("n", "mean", "m2", "pos", "oui_sum")}
        in_n, in_mean, in_m2 = self.in_n.numpy(), self.in_mean.numpy(), self.in_m2.numpy()
        for li, part, ip in entries:
            a, size, B = int(self.offsets[li]), self.sizes[li], part.B
            act = part.act if part.act is not None else part.pos
            lib.skew_fold(size, ptr["n"] + 8 * a, ptr["mean"] + 8 * a, ptr["m2"] + 8 * a, ptr["pos"] + 8 * a,
                          ptr["oui_sum"] + 8 * a, part.mean.data_ptr(), part.m2.data_ptr(), part.pos.data_ptr(),
                          act.data_ptr(), part.P, B)  # B·P finite values per neuron
            if B >= 2:
                self.oui_batches[li] += 1
            if ip is not None:
                in_n[li], in_mean[li], in_m2[li] = chan_merge(
                    in_n[li], in_mean[li], in_m2[li], np.int64(ip[0]), np.float64(ip[1]), np.float64(ip[2]))
            if self.pattern_count[li] < OUI_SAMPLES and part.head is not None:
                self._add_patterns(li, part.head)

    # -- commit -------------------------------------------------------------------------------
    def commit(self, results: list[BatchResult]) -> None:
        """Chan-merge a batch's level-2 results into the running accumulators."""
        for r in results:
            cols = r.cols
            self._merge(("n", "mean", "m2"), cols, r.n, r.mean, r.m2)
            self._add("pos", cols, r.pos)
            if r.nonfinite is not None:
                self._add("nonfinite", cols, r.nonfinite)
            if r.oui is not None:
                self._add("oui_sum", cols, r.oui)
                for li in r.layers:
                    self.oui_batches[li] += 1
            if r.inputs is not None:
                idx, mean_b, m2_b, n_b = r.inputs
                self._merge(("in_n", "in_mean", "in_m2"), idx, n_b, mean_b, m2_b)
            start = 0
            for j, li in enumerate(r.layers):
                size = self.sizes[li]
                if self.pattern_count[li] < OUI_SAMPLES:
                    if r.active is not None:
                        self._add_patterns(li, r.active[:, start : start + size])
                    elif r.heads[j] is not None:
                        self._add_patterns(li, r.heads[j])
                start += size

    def _merge(self, names: tuple[str, str, str], at, n_b, mean_b, m2_b) -> None:
        """Chan-merge (n_b, mean_b, M2_b) into the accumulators ``names`` at ``at`` (a slice or an
        index tensor). Where ``at`` is every entry, the merged tensors replace the accumulators
        (no gather, no scatter: three fewer copies per call on an accelerator)."""
        old = [getattr(self, k) for k in names]
        whole = _every(at)
        merged = chan_merge(*(old if whole else [t[at] for t in old]), n_b, mean_b, m2_b)
        for k, t, new in zip(names, old, merged):
            if whole and new.shape == t.shape and new.dtype == t.dtype:
                setattr(self, k, new)
            else:
                t[at] = new

    def _add(self, name: str, at, values: torch.Tensor) -> None:
        t = getattr(self, name)
        if _every(at):
            t += values
        else:
            t[at] += values

    def _add_patterns(self, li: int, active: torch.Tensor) -> None:
        have = self.pattern_count[li]
        take = min(OUI_SAMPLES - have, active.shape[0])
        if self.patterns[li] is None:
            self.patterns[li] = torch.zeros(OUI_SAMPLES, self.sizes[li], dtype=torch.bool, device=self.device)
        self.patterns[li][have : have + take] = active[:take]
        self.pattern_count[li] = have + take

    def note_call(self, li: int, rows: int) -> None:
        """Count one executed call of layer ``li`` that produced ``rows`` samples per neuron."""
        self.calls[li] += 1
        self.rows[li] += rows

    # -- distributed --------------------------------------------------------------------------
    def all_reduce(self) -> None:
        """Sum this device's accumulators over all ranks of the default process group.

        Counts are summed; moments are combined exactly with the identities
        n·mean = Σ_r n_r·mean_r and M2 = Σ_r [M2_r + n_r (mean_r − mean)²] (two all-reduces).
        """
        import torch.distributed as dist

        cuda = dist.get_backend() == "nccl"

        def reduce_(t: torch.Tensor) -> torch.Tensor:
            moved = t.cuda() if cuda and t.device.type != "cuda" else t
            dist.all_reduce(moved)
            return moved.to(t.device)

        for counts, means, m2s in ((("n", "mean", "m2")), ("in_n", "in_mean", "in_m2")):
            n_r, mean_r, m2_r = getattr(self, counts), getattr(self, means), getattr(self, m2s)
            n = reduce_(n_r.clone())
            mean = reduce_(n_r.to(torch.float64) * mean_r) / n.clamp_min(1)
            dev = mean_r - mean
            m2 = reduce_(m2_r + n_r * dev * dev)
            setattr(self, counts, n)
            setattr(self, means, mean)
            setattr(self, m2s, m2)
        for name in ("pos", "nonfinite", "oui_sum"):
            setattr(self, name, reduce_(getattr(self, name).clone()))
        ints = torch.as_tensor(self.calls + self.rows + self.oui_batches, dtype=torch.int64, device=self.device)
        ints = reduce_(ints).tolist()
        nl = len(self.sizes)
        self.calls, self.rows, self.oui_batches = ints[:nl], ints[nl : 2 * nl], ints[2 * nl :]

    def layer_states(self, signs: list[np.ndarray], sign_neurons: list[np.ndarray]) -> list[LayerState]:
        """The host-side :class:`LayerState` of every layer (one device→host copy per flat array)."""
        keys = ("n", "pos", "nonfinite", "mean", "m2", "oui_sum", "in_n", "in_mean", "in_m2")
        kept = [li for li, p in enumerate(self.patterns) if p is not None]
        arrays = to_host([getattr(self, k) for k in keys] + [self.patterns[li][: self.pattern_count[li]] for li in kept])
        host = dict(zip(keys, arrays))
        found = dict(zip(kept, arrays[len(keys):]))
        out = []
        for li, size in enumerate(self.sizes):
            a, b = int(self.offsets[li]), int(self.offsets[li + 1])
            patterns = found[li] if li in found else np.zeros((0, size), dtype=bool)
            out.append(
                LayerState(
                    n=host["n"][a:b].copy(),
                    pos=host["pos"][a:b].copy(),
                    nonfinite=host["nonfinite"][a:b].copy(),
                    mean=host["mean"][a:b].copy(),
                    m2=host["m2"][a:b].copy(),
                    oui_sum=host["oui_sum"][a:b].copy(),
                    oui_batches=int(self.oui_batches[li]),
                    calls=int(self.calls[li]),
                    rows=int(self.rows[li]),
                    in_n=int(host["in_n"][li]),
                    in_mean=float(host["in_mean"][li]),
                    in_m2=float(host["in_m2"][li]),
                    patterns=patterns,
                    signs=signs[li],
                    sign_neurons=sign_neurons[li],
                )
            )
        return out


def to_host(tensors: list[torch.Tensor]) -> list[np.ndarray]:
    """numpy copies of ``tensors``: those on an accelerator in one device→host transfer (their bytes
    packed into one buffer), so n small arrays cost one synchronisation, not n.

    Example:
        >>> [a.tolist() for a in to_host([torch.tensor([1.5, 2.0]), torch.tensor([True, False])])]
        [[1.5, 2.0], [True, False]]
    """
    out: list[np.ndarray | None] = [None] * len(tensors)
    remote = [i for i, t in enumerate(tensors) if t.device.type != "cpu"]
    for i, t in enumerate(tensors):
        if t.device.type == "cpu":
            out[i] = t.numpy().copy()
    if remote:
        flat = [tensors[i].contiguous().reshape(-1).view(torch.uint8) for i in remote]
        packed = (flat[0] if len(flat) == 1 else torch.cat(flat)).cpu().numpy()
        start = 0
        for i, f in zip(remote, flat):
            t = tensors[i]
            raw = packed[start : start + f.numel()]
            start += f.numel()
            out[i] = raw.view(torch.empty(0, dtype=t.dtype).numpy().dtype).reshape(tuple(t.shape)).copy()
    return out


# ------------------------------------------------------------------------------------ host state
@dataclass
class LayerState:
    """Raw accumulator values of one layer, on the host (numpy): what a Report keeps to merge exactly.

    Per neuron: ``n`` finite samples, ``pos`` positive samples, ``nonfinite`` count, ``mean`` and
    ``m2`` (Σ (z − mean)²), ``oui_sum`` (Σ over batches of min(s, B − s)/⌊B/2⌋). Per layer:
    ``oui_batches`` (batches with B ≥ 2), ``calls``, ``rows`` (samples per neuron), input moments
    (``in_n``, ``in_mean``, ``in_m2``), the first ≤ 8 samples' activation ``patterns`` (samples ×
    neurons) and the sign raster ``signs`` (≤ 250 samples × ``sign_neurons``).

    The pairwise OUI at the authors' units (docs/oui.md): ``unit_patterns`` holds the first ≤ 8
    samples' full flattened patterns (every (channel, position) or (token, feature)), bit-packed
    with :func:`pack_units`, ``unit_counts`` their number of units. ``sign_position`` is the
    position of the raster's values in each sample's output (e.g. (H//2, W//2); empty when the
    output has no positions, (-1,) for the middle unmasked token). ``mask_calls`` counts the calls made
    while the batch had an attention mask: [mask applied, output per sample (no token axis),
    output not matched to the mask (measured unmasked)].
    """

    n: np.ndarray
    pos: np.ndarray
    nonfinite: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    oui_sum: np.ndarray
    oui_batches: int = 0
    calls: int = 0
    rows: int = 0
    in_n: int = 0
    in_mean: float = 0.0
    in_m2: float = 0.0
    patterns: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    signs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    sign_neurons: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    unit_patterns: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.uint8))
    unit_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sign_position: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    mask_calls: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))

    def arrays(self) -> dict[str, np.ndarray]:
        """Every field as a numpy array (scalars as 0-d arrays), for saving."""
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LayerState:
        """Inverse of :meth:`arrays`."""
        kw = {}
        for f in fields(cls):
            if f.name not in arrays and f.name in _LATER_FIELDS:  # written before these existed
                continue
            v = np.asarray(arrays[f.name])
            if f.name in ("oui_batches", "calls", "rows", "in_n"):
                kw[f.name] = int(v)
            elif f.name in ("in_mean", "in_m2"):
                kw[f.name] = float(v)
            else:
                kw[f.name] = v
        return cls(**kw)


_LATER_FIELDS = ("unit_patterns", "unit_counts", "sign_position", "mask_calls")


def merge_states(a: LayerState, b: LayerState) -> LayerState:
    """Combine the states of one layer measured on two disjoint sets of data (``a``'s data first).

    Counts and sums add, moments combine with :func:`chan_merge`; the sign raster and the OUI
    patterns keep ``a``'s samples then ``b``'s, up to their bounds, exactly as one run over
    ``a``'s batches followed by ``b``'s would.

    Example:
        >>> z = np.zeros(2)
        >>> s = LayerState(n=np.array([2, 2]), pos=np.array([1, 0]), nonfinite=z.astype(int),
        ...                mean=np.array([0.0, -1.0]), m2=np.array([2.0, 0.0]), oui_sum=z)
        >>> merge_states(s, s).m2.tolist()
        [4.0, 0.0]
    """
    n, mean, m2 = chan_merge(a.n, a.mean, a.m2, b.n, b.mean, b.m2)
    in_n, in_mean, in_m2 = chan_merge(a.in_n, a.in_mean, a.in_m2, b.in_n, b.in_mean, b.in_m2)
    patterns = _stack_rows(a.patterns, b.patterns, OUI_SAMPLES)
    signs = _stack_rows(a.signs, b.signs, SIGN_ROWS)
    units = _stack_units(a, b)
    return LayerState(
        n=np.asarray(n, dtype=np.int64),
        pos=a.pos + b.pos,
        nonfinite=a.nonfinite + b.nonfinite,
        mean=np.asarray(mean, dtype=np.float64),
        m2=np.asarray(m2, dtype=np.float64),
        oui_sum=a.oui_sum + b.oui_sum,
        oui_batches=a.oui_batches + b.oui_batches,
        calls=a.calls + b.calls,
        rows=a.rows + b.rows,
        in_n=int(in_n),
        in_mean=float(in_mean),
        in_m2=float(in_m2),
        patterns=patterns,
        signs=signs,
        sign_neurons=a.sign_neurons if len(a.sign_neurons) else b.sign_neurons,
        unit_patterns=units[0],
        unit_counts=units[1],
        sign_position=a.sign_position if len(a.signs) else b.sign_position,
        mask_calls=np.asarray(a.mask_calls) + np.asarray(b.mask_calls),
    )


def _stack_units(a: LayerState, b: LayerState) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    for st in (a, b):
        dense = unpack_units(st.unit_patterns, st.unit_counts)
        rows += [dense[i, : int(c)] for i, c in enumerate(st.unit_counts)]
    return pack_units(rows[:OUI_SAMPLES])


def _stack_rows(a: np.ndarray, b: np.ndarray, limit: int) -> np.ndarray:
    if a.shape[0] == 0:
        return b[:limit].copy()
    if b.shape[0] == 0 or a.shape[0] >= limit:
        return a[:limit].copy()
    return np.concatenate([a, b[: limit - a.shape[0]]], axis=0)
