"""One-read level 1 on CUDA: Triton kernels that reduce a layer output, and a layer input, as they read it.

The GPU form of :mod:`skew.accumulators`' level 1. For each (row, neuron) of a layer output Z,
viewed as (R, C, P) or (R, P, C) with any strides, one program reads the row's P values once and
keeps only the *finite* ones (an activation's NaN or ±Inf is counted out, not propagated). With
c the row's first value (0 if it is not finite) and y = z − c over the finite values:

.. math::
    k = \\#\\{\\text{finite}\\},\\quad \\text{mean} = c + \\frac{\\sum y}{k},\\quad
    M_2 = \\sum y^2 - \\frac{(\\sum y)^2}{k},\\quad \\text{pos} = \\#\\{z > 0\\}

— the shifted sums of the CPU forms, so a constant row gives exactly M2 = 0 (how degenerate
neurons are recognised). The sums run in float32 lanes over at most 32 tiles each, then in
float64. The result is the *careful* summary of the eager forms (non-finite values excluded and
counted, ``Partial.k``) at the cost of one read of Z: no activation-sized temporary, no second
pass, and — because nothing needs to be re-checked — no host synchronisation inside the hook.
The layer input's (n, mean, M2) over its finite entries (shifted by its first entry) is read in
the *same launch* (:func:`level1`: the grid's first programs reduce Z, the others blocks of the
input); the blocks' sums are added up once per batch for every call together (:func:`combine`), so
a hook call costs one launch. :func:`moments` does the input alone, in two launches. Level 2 of a
batch (per neuron, the samples' row summaries reduced and Chan-merged into the running
accumulators, and the layer inputs' block sums likewise) is one more launch per batch
(:func:`level2`), where the torch path took about a hundred small operations.

Used for float32/float16/bfloat16 tensors on CUDA when Triton imports (it ships with PyTorch's
CUDA wheels); ``SKEW_EAGER`` (any non-empty value) or anything else keeps the eager torch forms.
Each kernel is compiled by Triton on its first use per shape class (cached on disk by Triton).
Under ``TRITON_INTERPRET=1`` the same kernels run on CPU tensors (how the tests check them); the
tests also compile every kernel ahead of time for sm_90. Should a kernel fail to build or launch
on some GPU or Triton version, :func:`disable` warns once and the eager forms take over.

Example (CUDA only; elsewhere :func:`available` is False):
    >>> import torch
    >>> if torch.cuda.is_available() and available(torch.device("cuda")):
    ...     k, mean, m2, pos = rows(torch.tensor([[[1.0, 2.0, float("nan"), 3.0]]], device="cuda"), pd=2)
    ...     print(k.item(), mean.item(), m2.item(), pos.item())
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings

import torch

__all__ = ["INPUT_DTYPES", "Buffers", "InputBlocks", "available", "combine", "disable", "guarded", "guarded_level2", "level1", "level2", "level2_usable", "moments", "rows", "sinusoidal"]

_state: dict = {}
#: Layer-input dtypes the kernels read (float64 inputs keep their exact eager forms).
INPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_MAX_BLOCKS = 4096  # partial sums of a layer input added up by the second launch
_XBLOCK = 1024  # entries per tile of a layer input


def _kernels():
    """The jitted kernels, built on first use (None when Triton does not import)."""
    if "k" in _state:
        return _state["k"]
    try:
        kern = importlib.import_module("skew._triton_kernels")
    except Exception:  # noqa: BLE001 - no Triton, or a broken install: keep the eager form
        _state["k"] = None
        return None
    _state["k"] = (kern.blocks_kernel, kern.final_kernel, kern.level1_kernel, kern.sinusoidal_kernel,
                   kern.level2_kernel)
    return _state["k"]


def disable(err: BaseException) -> None:
    """Stop using the kernels in this process (a Triton or GPU they fail on): warn once, with why."""
    if _state.get("k") is not None:
        warnings.warn(
            f"skew: the Triton kernels failed here ({type(err).__name__}: {err}); falling back to the eager "
            "torch forms (same statistics, slower). Set SKEW_EAGER=1 to skip them from the start.",
            RuntimeWarning, stacklevel=3,
        )
    # keep the first cause: a hook that already chose the kernels may still try them once after
    if _state.get("k") is not None or "error" not in _state:
        _state["error"] = f"{type(err).__name__}: {err}"
    _state["k"] = None


def guarded(fn, *args):
    """``fn(*args)``, or None after :func:`disable` when it raises (a kernel that does not build or
    run here); running out of memory is not the kernels' fault and propagates.

    Example:
        >>> guarded(lambda a, b: a + b, 1, 2)
        3
    """
    try:
        return fn(*args)
    except torch.OutOfMemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - any build or launch failure: the eager forms from now on
        disable(err)
        return None


def level2_usable() -> bool:
    """Whether :func:`level2` is still in use (it is left off alone after it failed here)."""
    return "level2" not in _state.get("off", ())


def guarded_level2(*args):
    """``level2(*args)``, or None when it raises: the level-2 kernel alone is then left off (warned
    once, the cause kept in ``_state["level2_error"]``); level 1's kernels go on, and level 2 runs
    as torch operations. Running out of memory propagates."""
    try:
        return level2(*args)
    except torch.OutOfMemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - a build or launch failure of this kernel alone
        off = _state.setdefault("off", set())
        if "level2" not in off:
            warnings.warn(
                f"skew: the Triton level-2 kernel failed here ({type(err).__name__}: {err}); level 2 runs as "
                "torch operations (same statistics, slower).", RuntimeWarning, stacklevel=2,
            )
            _state["level2_error"] = f"{type(err).__name__}: {err}"
        off.add("level2")
        return None


def available(device: torch.device) -> bool:
    """Whether level 1 on ``device`` uses these kernels: CUDA, Triton importable, ``SKEW_EAGER`` unset."""
    if device.type != "cuda" and not os.environ.get("TRITON_INTERPRET"):  # one lookup on the CPU hot path
        return False
    if os.environ.get("SKEW_EAGER"):
        return False
    return _kernels() is not None


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


class InputBlocks:
    """A layer input's partial sums from :func:`level1` (``part``: a (4, G) float64 tensor of
    k, Σy, Σy² and the shift c per block), added up later for all the calls of a batch at once by
    :func:`combine`. Keeping them as blocks saves a launch (and its host time) per hook call.
    """

    __slots__ = ("part",)

    def __init__(self, part: torch.Tensor):
        self.part = part


class Buffers:
    """The output buffers of one call site's :func:`level1` launches, reused batch after batch.

    A hook call's outputs live until level 2 reads them at the end of the batch; the next batch's
    call at the same site (and call position) can then write into the same memory instead of
    allocating it again. The compiled CPU kernel (:func:`skew._fused.neurons`) takes its (4, C)
    results from ``take(1, C, 0, cpu)`` the same way: a few KiB allocated per hook call made the C
    allocator hand memory back and the next layer's outputs fault their pages in again. ``take`` returns the (4, R, C) float64 rows buffer, its four views
    (k, mean, M2, positives) and the input's :class:`InputBlocks` for G blocks (or None), made
    anew only when the shape or device changes. Peak memory is unchanged: within a batch every
    call's outputs existed at once anyway.

    Example:
        >>> buf = Buffers()
        >>> out, k, mean, m2, pos, blocks = buf.take(2, 3, 0, torch.device("cpu"))
        >>> out.shape, k.shape, blocks is None, buf.take(2, 3, 0, torch.device("cpu"))[0] is out
        (torch.Size([4, 2, 3]), torch.Size([2, 3]), True, True)
    """

    __slots__ = ("key", "views")

    def __init__(self):
        self.key: tuple | None = None
        self.views: tuple = ()

    def take(self, R: int, C: int, G: int, device: torch.device) -> tuple:
        key = (R, C, G, device)
        if key != self.key:
            out = torch.empty(4, R, C, dtype=torch.float64, device=device)
            blocks = InputBlocks(torch.empty(4, G, dtype=torch.float64, device=device)) if G else None
            self.views = (out, *out.unbind(0), blocks)
            self.key = key
        return self.views


def rows(z3: torch.Tensor, pd: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-(row, neuron) finite count k, mean, M2 and positives of a (R, C, P) (``pd=2``) or
    (R, P, C) (``pd=1``) view of Z, each an (R, C) float64 tensor on Z's device, in one read.

    Non-finite values are left out of all four (the careful mode's definition): k ≤ P.
    """
    _, k, mean, m2, pos, _ = level1(z3, pd, None)
    return k, mean, m2, pos


def level1(z3: torch.Tensor, pd: int, x: torch.Tensor | None, buffers: Buffers | None = None):
    """:func:`rows` of Z and, in the same launch, the block sums of the layer input ``x`` (a
    contiguous float tensor, or None): returns (out, k, mean, m2, pos, :class:`InputBlocks` or None),
    k, mean, m2 and pos the four views of the (4, R, C) float64 tensor ``out``. With ``buffers`` the
    outputs are written into that call site's buffers of the previous batch (see :class:`Buffers`)."""
    if pd == 2:
        R, C, P = z3.shape
    else:
        R, P, C = z3.shape
    N = x.numel() if x is not None and x.is_contiguous() else 0
    tile_a, tile_b, cb, z_programs, iters, G = _plan(R, C, P, pd, N)
    out, k, mean, m2, pos, blocks = (buffers or Buffers()).take(R, C, G, z3.device)
    if z_programs == 0:  # nothing to read: k = 0 everywhere
        out.zero_()
    if G:
        xs, part = x, blocks.part
    else:
        xs, part = z3, out
    if z_programs + G == 0:
        return out, k, mean, m2, pos, blocks
    kernel = _kernels()[2]
    with _on(z3.device):
        kernel[(z_programs + G,)](z3, k, mean, m2, pos, R * C, C, P, *z3.stride(), cb, z_programs, xs, part, N,
                                  iters, PD=pd, TILE_A=tile_a, TILE_B=tile_b, XBLOCK=_XBLOCK)
    return out, k, mean, m2, pos, blocks


_PLANS: dict = {}


def _plan(R: int, C: int, P: int, pd: int, N: int) -> tuple[int, int, int, int, int, int]:
    """:func:`level1`'s launch geometry for an (R, C, P) output and an N-entry input (0: none):
    (TILE_A, TILE_B, neuron blocks, programs on Z, tiles per input program, input programs);
    computed once per shape (the steady state of every batch after the first)."""
    key = (R, C, P, pd, N)
    plan = _PLANS.get(key)
    if plan is None:
        if pd == 2:
            tile_b = min(512, _pow2(P))
            tile_a = max(1, 1024 // tile_b)
            cb, z_programs = 1, _cdiv(R * C, tile_a)
        else:
            tile_b = min(64, _pow2(C))
            tile_a = max(1, min(_pow2(P), 1024 // tile_b))
            cb = _cdiv(C, tile_b)
            z_programs = R * cb
        if P == 0 or R * C == 0:
            z_programs = 0
        iters = max(1, _cdiv(N, _XBLOCK * _MAX_BLOCKS)) if N else 0
        G = _cdiv(N, _XBLOCK * iters) if N else 0
        if len(_PLANS) > 1024:
            _PLANS.clear()
        plan = _PLANS[key] = (tile_a, tile_b, cb, z_programs, iters, G)
    return plan


_HERE = contextlib.nullcontext()  # reusable: entering it does nothing


def _on(device: torch.device):
    """Triton launches on the current CUDA device: make it ``device`` when it is another one."""
    if device.type == "cuda" and device.index is not None and device.index != torch.cuda.current_device():
        return torch.cuda.device(device)
    return _HERE


def moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(n, mean, M2) of the finite entries of a contiguous tensor, as 0-d float64 tensors on its
    device (no host synchronisation); None for a non-contiguous one (the caller's eager form).

    n counts the finite entries; mean and M2 are over them (0 and 0 when there are none).
    """
    if not x.is_contiguous() or x.numel() == 0:
        return None
    blocks_kernel, final_kernel = _kernels()[:2]
    N = x.numel()
    iters = max(1, _cdiv(N, _XBLOCK * _MAX_BLOCKS))
    G = _cdiv(N, _XBLOCK * iters)
    part = torch.empty(4 * G + 3, dtype=torch.float64, device=x.device)
    out = part[4 * G :]
    with _on(x.device):
        blocks_kernel[(G,)](x, part, N, iters, BLOCK=_XBLOCK)
        final_kernel[(1,)](part, out, G, BLOCK=min(1024, _pow2(G)))
    return out[0], out[1], out[2]


_SEGMENTS: dict = {}


def combine(blocks: list[InputBlocks]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(n, mean, M2) vectors, one entry per :class:`InputBlocks`, in a few launches for all of them.

    .. math:: n = \\sum k,\\quad \\text{mean} = c + \\frac{\\sum \\Sigma y}{n},\\quad
        M_2 = \\sum \\Sigma y^2 - \\frac{(\\sum \\Sigma y)^2}{n}

    Example (one input of 5 finite entries in two blocks, shifted by its first entry c = 1):
        >>> blocks = InputBlocks(torch.tensor([[3.0, 2.0], [3.0, 5.0], [5.0, 13.0], [1.0, 1.0]], dtype=torch.float64))
        >>> [round(float(v[0]), 6) for v in combine([blocks])]     # values 1, 2, 3, 3, 4 (y = 0, 1, 2, 2, 3)
        [5.0, 2.6, 5.2]
    """
    parts = [b.part for b in blocks]
    device = parts[0].device
    sizes = tuple(int(p.shape[1]) for p in parts)
    key = (device, sizes)
    if key not in _SEGMENTS:  # which block belongs to which input, and each input's first block
        if len(_SEGMENTS) > 64:
            _SEGMENTS.clear()
        counts = torch.tensor(sizes)
        seg = torch.repeat_interleave(torch.arange(len(sizes)), counts)
        first = torch.cumsum(counts, 0) - counts
        _SEGMENTS[key] = (seg.to(device, non_blocking=True), first.to(device, non_blocking=True))
    seg, first = _SEGMENTS[key]
    allp = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
    sums = torch.zeros(3, len(parts), dtype=torch.float64, device=device).index_add_(1, seg, allp[:3])
    n, s1, s2 = sums.unbind(0)
    kk = n.clamp_min(1)
    mean = torch.where(n > 0, allp[3, first] + s1 / kk, 0.0)
    m2 = (s2 - s1 * s1 / kk).clamp_min_(0)
    return n, mean, m2


_L2_BLOCK = 128  # columns per program of level2_kernel


def level2(stacked: torch.Tensor, scale: torch.Tensor, cols: torch.Tensor | None, acc: tuple, B: int,
           inputs: tuple | None = None) -> bool:
    """Level 2 and commit of one group of a batch's calls in one launch, from their row summaries
    ``stacked`` (a contiguous (4, R, C) float64 tensor: k, mean, M2 and positives per sample and
    column, R = B samples): per column, over the samples,

    .. math:: n = \\sum_r k_r,\\quad \\bar z = \\frac{\\sum_r k_r \\bar z_r}{n},\\quad
        M_2 = \\sum_r k_r (\\bar z_r - \\bar z)^2 + \\sum_r M_{2,r},\\quad s = \\#\\{r: \\bar z_r > 0, k_r > 0\\}

    Chan-merged into the accumulators ``acc`` = (n, mean, M2, pos, nonfinite, oui_sum) at the
    columns ``cols`` (an int64 index tensor; None: every column, in order), with the positives,
    the non-finite values ``scale``·R − n (``scale``: float64 values per row, per column) and
    min(s, B − s)/⌊B/2⌋ (B ≥ 2) added: the torch path's (:meth:`skew.accumulators.DeviceStats.commit`
    of :meth:`~skew.accumulators.DeviceStats.reduce`) float64 operations, without FMA contraction.
    ``inputs`` = (allp, first, counts, idx, most, (in_n, in_mean, in_m2)) also folds the group's
    layer inputs in the same launch: input i's ``counts[i]`` blocks from column ``first[i]`` of
    ``allp`` (the :class:`InputBlocks` parts side by side, (4, G) float64) added up as
    :func:`combine` does and Chan-merged into the input accumulators at ``idx[i]`` (int64
    tensors; ``most`` = max counts). Returns True once launched (:func:`guarded` gives None when
    the kernel cannot run here).
    """
    _, R, CT = stacked.shape
    kernel = _kernels()[4]
    whole = cols is None
    grid = _cdiv(CT, _L2_BLOCK)
    if inputs is None:
        ins = (scale, 0, scale, scale, scale, 0, 0, scale, scale, scale)
    else:
        allp, first, counts, idx, most, (in_n, in_mean, in_m2) = inputs
        ins = (allp, allp.shape[1], first, counts, idx, len(first), most, in_n, in_mean, in_m2)
        grid += _cdiv(len(first), _L2_BLOCK)
    with _on(stacked.device):
        kernel[(grid,)](stacked, R, CT, scale, scale if whole else cols, *acc, B, *ins, WHOLE=whole, OUI=B >= 2,
                        INPUTS=inputs is not None, BLOCK=_L2_BLOCK, enable_fp_fusion=False)
    return True


def sinusoidal(out: torch.Tensor, tables: tuple, amplitude: torch.Tensor, block: int) -> bool:
    """Write :func:`skew.init.sinusoidal_`'s (m, n) pattern into the contiguous float32/float64 matrix
    ``out`` in one launch, from its angle ``tables`` (sin and cos of 2πr/n and of the row phases,
    float64 on out's device) and the float64 ``amplitude`` (a 1-element tensor: a Python float
    would reach the kernel as float32). Every product and sum is rounded separately, as in the
    torch form, so the bits are the same. Returns True once launched (:func:`guarded` gives None
    when the kernel cannot run here: the caller then takes the torch form).
    """
    kernel = _kernels()[3]
    m, n = out.shape
    sin_t, cos_t, sin_p, cos_p = tables
    width = min(256, _pow2(n))
    rows_ = max(1, 1024 // width)
    with _on(out.device):
        kernel[(_cdiv(m, rows_), _cdiv(n, width))](out, sin_t, cos_t, sin_p, cos_p, amplitude, m, n, block,
                                                   ROWS=rows_, BLOCK=width, WIDE=m * n >= 2**31,
                                                   enable_fp_fusion=False)
    return True


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)
