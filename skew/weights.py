"""Data-free weight diagnostics: row sums, norms and the structure of every layer's weight matrix.

Any model in, tidy pandas DataFrames out. A *neuron* is one output unit (row i of the layer's
(m, n) matrix, n = fan-in); its row sum S = Σ_j W[i, j] drives Theorem 1's skew. Covered: every
layer :func:`skew.layers.select_units` finds (Linear, ConvNd, ConvTransposeNd, Hugging Face
``Conv1D``) and the q/k/v input projections of each ``nn.MultiheadAttention`` (named
``f"{mha}.q_proj"`` etc.; ``out_proj`` is an ordinary Linear).

Rows are :func:`skew.layers.neuron_rows`, skew's one definition. For Linear and ConvNd, row c is
``weight[c].flatten()`` (c_in/groups · k1 · k2 ..., row-major, as torch.nn.init computes fans). For
ConvTransposeNd (weight (c_in, c_out/groups, k...)) the neuron is output channel
c = g · (c_out/groups) + c', and its row is ``weight[g-th block of c_in, c', ...]`` flattened: every
weight that feeds output channel c. (An output pixel of a strided transposed convolution meets only
part of the kernel; the row is what an interior pixel of a stride-1 one sees.) For Conv1D (weight
(in, out)) row c is ``weight[:, c]``.

Rows are those of the weight the layer computes with (:func:`skew.layers.effective_weight`): for
timm's weight-standardised convolutions (``StdConv2d``, ``ScaledStdConv2d`` and their ``Same``
variants) the standardised weight, whose rows sum to ≈ 0 whatever is stored; ``layer_table``'s
note then says ``effective weight (weight standardisation)``.

Reading never changes the model: every buffer comes back bit-identical (reading a spectral-normed
weight in train mode would otherwise run a power iteration on ``_u``/``_v``), and a Parameter shared
by several layers (tied weights) is reported once, under the first layer that holds it.

Example:
    >>> import torch.nn as nn
    >>> from skew.weights import neuron_table, layer_table
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2, bias=False))
    >>> neuron_table(net).shape
    (5, 7)
    >>> layer_table(net, scheme="default")[["layer", "m", "n", "rank"]].values.tolist()
    [['0', 3, 4, 3], ['2', 2, 3, 2]]
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from skew import _fused, theory
from skew._state import kept_buffers
from skew.accumulators import to_host
from skew.errors import SkewError
from skew.layers import LayerSpec, neuron_rows, select_units

__all__ = ["PAIR_LIMIT", "diagnose", "layer_table", "neuron_rows", "neuron_table"]

#: Layers with more rows than this get NaN parallel/antiparallel pair counts (the Gram matrix is m × m).
PAIR_LIMIT = 4096
#: Rank is computed only when min(m, n) is at most this (an SVD costs m n min(m, n)).
RANK_LIMIT = 4096
#: Cosine tolerance for parallel (≥ 1 − COS_TOL) and antiparallel (≤ −1 + COS_TOL) row pairs.
COS_TOL = 1e-6
#: The std transformers' ``Conv1D.__init__`` draws its weight with (scheme ``default`` repeats it).
CONV1D_DEFAULT_STD = 0.02

_TIED = ("once", "each")


@dataclass
class _Block:
    name: str
    type: str
    weight: torch.Tensor  # the parameter (or view) in torch's layout
    rows: torch.Tensor  # (m, n) neuron rows, float64, cpu (as64=False: the weight's dtype and device)
    bias: torch.Tensor | None  # (m,), float64, cpu (as64=False: its own dtype and device)
    shape: tuple[int, ...]  # the rows as torch.nn.init should read fans (NeuronView.shape)
    packed_default: tuple[int, ...] | None = None  # MHA: shape PyTorch's default init drew from
    effective: str | None = None  # what forward does to the stored weight (rows are the result), if anything


def _as64(t: torch.Tensor) -> torch.Tensor:
    if t.is_meta:
        raise SkewError("weights on the meta device have no values; materialize the model (to_empty + init) first")
    return t.detach().to(device="cpu", dtype=torch.float64)


def _blocks(model: nn.Module, layers: LayerSpec, tied: str = "once", as64: bool = True) -> Iterator[_Block]:
    """Every selected layer and MHA projection, in registration order, as float64 neuron rows.

    ``tied="once"`` yields a weight Parameter shared by several layers only for the first of them.
    ``as64=False`` leaves the rows and the bias in their own dtype and device (detached, a view where
    one exists): for callers that convert them a few rows at a time, or copy many at once.
    """
    rows_of = _as64 if as64 else _rows_view  # the bias too
    if tied not in _TIED:
        raise SkewError(f"tied={tied!r} is not understood; pass 'once' (a shared weight reported once) or 'each'")
    found = False
    seen: set[int] = set()
    for u in select_units(model, layers):
        found = True
        if u.block is None and isinstance(u.weight, nn.Parameter):
            if tied == "once" and id(u.weight) in seen:
                continue
            seen.add(id(u.weight))
        bias = None if u.bias is None else rows_of(u.bias)
        view = u.rows_view  # the weight forward computes with (weight standardisation applied)
        if u.block is None:
            yield _Block(u.name, type(u.module).__name__, u.weight, rows_of(view.matrix()), bias, tuple(view.shape),
                         effective=u.note)
        else:
            mha = u.module
            default_shape = tuple((mha.in_proj_weight if mha.in_proj_weight is not None else u.weight).shape)
            yield _Block(
                u.name, type(mha).__name__, u.weight, rows_of(view.matrix()), bias, tuple(view.shape), default_shape
            )
    if not found:
        from skew.layers import LAYER_TYPES

        hollow = [f"{n!r} ({type(m).__name__})" for n, m in model.named_modules()
                  if isinstance(m, LAYER_TYPES) and not isinstance(getattr(m, "weight", None), torch.Tensor)]
        lazy = [f"{n!r} ({type(m).__name__})" for n, m in model.named_modules()
                if isinstance(getattr(m, "weight", None), nn.parameter.UninitializedParameter)]
        if lazy:
            raise SkewError(
                f"{type(model).__name__}'s layers {', '.join(lazy[:5])} are not initialised yet (lazy modules); run one "
                "forward pass first, e.g. model(example_batch), so that their weights exist"
            )
        if layers is None and hollow:
            raise SkewError(
                f"{type(model).__name__}'s layers {', '.join(hollow[:5])} have no weight tensor (weight is None or "
                "was deleted); give them a weight (e.g. rebuild the layer) before analysing the model"
            )
        what = "has no Linear, Conv or MultiheadAttention layers" if layers is None else (
            f"has no layer selected by layers={layers!r}"
        )
        names = [n for n, m in model.named_modules() if n and len(list(m.children())) == 0][:8]
        raise SkewError(
            f"{type(model).__name__} {what}; pass layers=None, a glob such as '*.q_proj' or names from "
            f"{names}"
        )


def _rows_view(t: torch.Tensor) -> torch.Tensor:
    if t.is_meta:
        _as64(t)  # raises the meta-device error
    return t.detach()


#: Float64 values converted at once by :func:`_row_stats`: one reused block that stays in cache (a
#: whole large weight converted in one go costs several times the arithmetic in page faults).
_CHUNK_VALUES = 1 << 16
#: Values converted to float64 at once on an accelerator (128 MiB).
_DEVICE_VALUES = 1 << 24


def _row_stats(rows: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-row float64 sums and L2 norms of an (m, n) matrix of any float dtype and device.

    Float32 CPU rows go through the compiled kernel (:func:`skew._fused.row_stats`: each value
    widened to float64 exactly and summed in float64 lanes, one read). Rows on an accelerator are
    reduced there, in float64, and only the two (m,) results are copied to the host (one copy per
    layer, where a block-by-block copy cost one transfer and one synchronisation per block).
    Otherwise, and without a C compiler, the rows are converted to float64 on the CPU a block of
    rows at a time, into one reused buffer; each row's reductions are those of the whole float64
    matrix (bit-identical), without a full float64 copy. All agree to float64 rounding
    (~n·2⁻⁵³ relative).

    Example:
        >>> s, q = _row_stats(torch.tensor([[1.0, 2.0, 2.0], [0.0, -3.0, 4.0]]))
        >>> s.tolist(), q.tolist()
        ([5.0, 1.0], [3.0, 5.0])
    """
    stats = _row_stats_lazy(rows)
    if isinstance(stats, torch.Tensor):
        host = stats.cpu().numpy()
        return host[0], host[1]
    return stats


def _row_stats_lazy(rows: torch.Tensor) -> tuple[np.ndarray, np.ndarray] | torch.Tensor:
    """:func:`_row_stats`, but rows on an accelerator give their (2, m) float64 sums and norms as a
    tensor there (no copy, no synchronisation: the caller copies many layers' at once)."""
    fused = _fused.row_stats(rows)  # float32 on the CPU: one read, float64 sums (compiled)
    if fused is not None:
        return fused
    m, n = rows.shape
    if rows.device.type not in ("cpu", "meta"):  # on the device, in float64
        step = max(1, _DEVICE_VALUES // max(n, 1))
        both = torch.empty(2, m, dtype=torch.float64, device=rows.device)
        for src, s_out, q_out in zip(rows.split(step), both[0].split(step), both[1].split(step)):
            block = src.to(torch.float64)
            torch.sum(block, dim=1, out=s_out)
            torch.linalg.vector_norm(block, dim=1, out=q_out)
        return both
    sums = torch.empty(m, dtype=torch.float64)
    norms = torch.empty(m, dtype=torch.float64)
    step = max(1, _CHUNK_VALUES // max(n, 1))
    buf = torch.empty(min(step, m), n, dtype=torch.float64)
    for src, s_out, q_out in zip(rows.split(step), sums.split(step), norms.split(step)):
        block = buf if src.shape[0] == buf.shape[0] else buf[: src.shape[0]]
        block.copy_(src)
        torch.sum(block, dim=1, out=s_out)
        torch.linalg.vector_norm(block, dim=1, out=q_out)
    return sums.numpy(), norms.numpy()



def _neuron_columns(b: _Block, stats: tuple[np.ndarray, np.ndarray] | None = None,
                    bias: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """One layer's :func:`neuron_table` columns (all but ``layer``) as arrays (``stats``: its row
    sums and norms, ``bias``: its bias on the host, where the caller already has them)."""
    m, n = b.rows.shape
    s, norms = _row_stats(b.rows) if stats is None else stats
    if bias is None and b.bias is not None:
        bias = b.bias.numpy()
    return {
        "neuron": np.arange(m, dtype=np.int64),
        "fan_in": np.full(m, n, dtype=np.int64),
        "row_sum": s,
        "row_sum_scaled": s / math.sqrt(n) if n else np.full(m, np.nan),  # a row of no entries: undefined
        "row_norm": norms,
        "bias": np.full(m, np.nan) if b.bias is None else bias.astype(np.float64),
    }


def _neuron_frame(blocks: list[tuple[str, dict[str, np.ndarray]]]) -> pd.DataFrame:
    """The :func:`neuron_table` frame of (layer name, :func:`_neuron_columns`) pairs: one frame, no concat."""
    sizes = [len(c["neuron"]) for _, c in blocks]
    out = {"layer": np.repeat(np.array([name for name, _ in blocks], dtype=object), sizes)}
    for col in ("neuron", "fan_in", "row_sum", "row_sum_scaled", "row_norm", "bias"):
        out[col] = np.concatenate([c[col] for _, c in blocks])
    return pd.DataFrame(out)


def neuron_table(model: nn.Module, layers: LayerSpec = None, *, tied: str = "once") -> pd.DataFrame:
    """One row per neuron: layer, neuron, fan_in, row_sum, row_sum_scaled, row_norm, bias.

    .. math:: S_i = \\sum_j W_{ij}, \\quad S_i/\\sqrt{n}, \\quad \\lVert W_i \\rVert_2

    Computed in float64, vectorised per layer; ``bias`` is NaN for a layer without one. ``layers``
    selects as in :func:`skew.layers.select_units`: MHA projections match by their qualified name
    (``"*.q_proj"``), by the attention module's own name, by ``nn.MultiheadAttention`` as a type,
    or by a predicate called with the projection's name and the attention module. A weight
    Parameter shared by several layers is listed once, under the first (``tied="each"`` lists it
    under every layer holding it, as ``skew.report`` needs: each layer sees its own inputs).
    Every buffer of ``model`` is left bit-identical.

    Example:
        >>> net = nn.Sequential(nn.Linear(3, 2, bias=False))
        >>> with torch.no_grad():
        ...     _ = net[0].weight.copy_(torch.tensor([[1., 2., 2.], [0., -3., 4.]]))
        >>> neuron_table(net)[["row_sum", "row_norm"]].values.tolist()
        [[5.0, 3.0], [1.0, 5.0]]
    """
    with kept_buffers(model), torch.no_grad():
        blocks = list(_blocks(model, layers, tied, as64=False))
        stats = [_row_stats_lazy(b.rows) for b in blocks]
        biases = [None if b.bias is None else b.bias.to(torch.float64) for b in blocks]
        # row statistics left on an accelerator, and the biases, come back in one copy per device
        tensors = [t for pair in zip(stats, biases) for t in pair if isinstance(t, torch.Tensor)]
        host = dict(zip(map(id, tensors), to_host(tensors)))
        columns = []
        for b, st, bias in zip(blocks, stats, biases):
            if isinstance(st, torch.Tensor):
                st = (host[id(st)][0], host[id(st)][1])
            columns.append((b.name, _neuron_columns(b, st, None if bias is None else host[id(bias)])))
    return _neuron_frame(columns)


def _screen(p: torch.Tensor, chunk: int) -> Iterator[tuple[float, torch.Tensor, torch.Tensor]]:
    """(sign, a, b) index pairs a < b whose projections lie within the screening radius of ±each other."""
    k = p.shape[0]
    sq = (p * p).sum(dim=1, keepdim=True)
    ones = torch.ones_like(sq)
    # ‖p_i ∓ p_j‖² = [∓2 p_i, |p_i|², 1] · [p_j, 1, |p_j|²]: one matmul per sign and chunk
    right = torch.cat([p, ones, sq], dim=1).T
    reach = 2.0 * COS_TOL * (1.0 + 1e-6) + 1e-12  # screening radius², with a rounding margin
    for start in range(0, k, chunk):
        stop = min(start + chunk, k)
        for sign in (1.0, -1.0):
            left = torch.cat([-2.0 * sign * p[start:stop], sq[start:stop], ones[start:stop]], dim=1)
            a, b = ((left @ right[:, start:]) <= reach).nonzero(as_tuple=True)
            a, b = a + start, b + start
            keep = a < b
            yield sign, a[keep], b[keep]


def _pair_counts(rows: torch.Tensor, live: torch.Tensor, chunk: int = 1024) -> tuple[int, int]:
    """(parallel, antiparallel) pairs i < j among non-zero rows: cos ≥ 1 − COS_TOL / ≤ −1 + COS_TOL.

    Exact, and near-linear on the structures that make pairs numerous:

    1. Unit rows u_i equal up to sign, bit for bit (repeated or negated rows: the normalisation of
       −w is exactly −u), form one group, found by sorting (``torch.unique``). A group with k₊ rows
       of one sign and k₋ of the other holds C(k₊, 2) + C(k₋, 2) parallel and k₊ k₋ antiparallel pairs.
    2. Pairs of groups are found among their representatives: each is projected onto k = 32
       orthonormal directions Q (fixed seed). A projection never lengthens a vector, so a pair with
       ‖u_i ∓ u_j‖² = 2 ∓ 2 cos ≤ 2·COS_TOL also has ‖Qᵀ(u_i ∓ u_j)‖² ≤ 2·COS_TOL: screening the
       Gram of the projections keeps every true pair; candidates are then checked with the full
       float64 dot product (a matrix product per chunk) and counted with their groups' multiplicities.

    Example:
        >>> w = torch.tensor([[1., 2.], [2., 4.], [-1., -2.], [1., 0.]], dtype=torch.float64)
        >>> _pair_counts(w, torch.ones(4, dtype=torch.bool))
        (1, 2)
    """
    u = rows[live]
    k, n = u.shape
    if k < 2:
        return 0, 0
    u = u / torch.linalg.vector_norm(u, dim=1, keepdim=True)
    first = (u != 0).to(torch.int8).argmax(dim=1)
    sign = torch.where(u[torch.arange(k), first] < 0, -1.0, 1.0).to(u.dtype)
    reps, inverse = torch.unique(u * sign[:, None], dim=0, return_inverse=True)
    r = reps.shape[0]
    pos = torch.bincount(inverse[sign > 0], minlength=r).to(torch.int64)
    neg = torch.bincount(inverse[sign < 0], minlength=r).to(torch.int64)
    par = int((pos * (pos - 1) // 2 + neg * (neg - 1) // 2).sum())
    anti = int((pos * neg).sum())
    if r < 2:
        return par, anti
    dim = 32
    if n > 2 * dim:
        gen = torch.Generator().manual_seed(0)
        q, _ = torch.linalg.qr(torch.randn(n, dim, generator=gen, dtype=torch.float64))
        p = reps @ q
    else:
        p = reps
    for sign_, a, b in _screen(p, chunk):
        if not a.numel():
            continue
        cols, where = torch.unique(b, return_inverse=True)
        lo = int(a.min())
        hi = int(a.max()) + 1
        cos = (reps[lo:hi] @ reps[cols].T)[a - lo, where]  # exact float64 dot products, one matmul
        hit = cos >= 1.0 - COS_TOL if sign_ > 0 else cos <= -1.0 + COS_TOL
        a, b = a[hit], b[hit]
        same = int((pos[a] * pos[b] + neg[a] * neg[b]).sum())
        cross = int((pos[a] * neg[b] + neg[a] * pos[b]).sum())
        if sign_ > 0:
            par, anti = par + same, anti + cross
        else:
            par, anti = par + cross, anti + same
    return par, anti


def _rank(rows: torch.Tensor, rtol: float) -> int:
    """Numerical rank: singular values above rtol · σ_max.

    For weights stored below float64 precision (rtol ≫ 1e-8) the eigenvalues of the smaller
    Gram matrix (σ² with float64 error ~1e-13 σ_max², far under the rtol² cut) give the same
    answer as an SVD at a fraction of the cost; float64 weights use the SVD.
    """
    m, n = rows.shape
    if rtol >= 1e-6 and min(m, n) >= 64:
        g = rows.T @ rows if m >= n else rows @ rows.T
        ev = torch.linalg.eigvalsh(g).clamp_min(0.0)
        return int((ev > (rtol**2) * ev.max()).sum())
    return int(torch.linalg.matrix_rank(rows, rtol=rtol))


def _scheme(scheme, options: dict):
    """The resolved skew.init Scheme (validated up front), or None without one."""
    if scheme is None:
        if options:
            raise SkewError(f"options {sorted(options)} need a scheme; pass scheme='name' with them")
        return None
    from skew.init.registry import get_scheme

    return get_scheme(scheme, **options)


def _layer_row(b: _Block, scheme) -> dict:
    rows = b.rows
    m, n = rows.shape
    eps = torch.finfo(b.weight.dtype).eps if b.weight.dtype.is_floating_point else 0.0
    norms = torch.linalg.vector_norm(rows, dim=1)
    scale = float(norms.max()) if m else 0.0
    close = math.sqrt(eps) if eps else 0.0  # "numerically equal" at the weight's own precision
    zero = norms <= close * scale
    if n:
        spread = rows.max(dim=1).values - rows.min(dim=1).values
        constant = (~zero) & (spread <= close * rows.abs().max(dim=1).values)
    else:  # rows of no entries (a layer with no inputs) are all zero rows
        constant = torch.zeros(m, dtype=torch.bool, device=rows.device)
    notes = [] if b.effective is None else [f"effective weight ({b.effective})"]
    if min(m, n) <= RANK_LIMIT:
        # tolerance at the weight's own precision (torch's rule with eps of the stored dtype)
        rank = _rank(rows, max(m, n) * eps) if scale > 0 else 0
    else:
        rank = float("nan")
        notes.append(f"rank skipped: min(m, n) > {RANK_LIMIT}")
    if m <= PAIR_LIMIT:
        par, anti = _pair_counts(rows, ~zero)
    else:
        par = anti = float("nan")
        notes.append(f"row pairs skipped: m > {PAIR_LIMIT}")
    flat = rows.reshape(-1)
    weight_var = float(flat.var()) if flat.numel() > 1 else float("nan")
    target = float("nan")
    if scheme is not None:
        if b.packed_default is not None and scheme.name == "default":
            # nn.MultiheadAttention's own reset: xavier_uniform_ on the packed in_proj_weight
            target = theory.weight_variance("xavier_uniform", b.packed_default)
        elif scheme.name == "default" and b.type == "Conv1D":
            target = CONV1D_DEFAULT_STD**2  # transformers' Conv1D.__init__: normal_(std=0.02)
        elif scheme.name == "default":
            # the module's own reset_parameters() reads fans off the stored weight: for a ConvTranspose
            # (c_in, c_out/g, k...) that is fan_in = (c_out/g)·k..., not its neurons' row length
            target = theory.weight_variance("default", tuple(b.weight.shape))
        else:
            target = theory.weight_variance(scheme, b.shape)  # fans of the neuron rows
    live = ~zero
    s_over = (rows.sum(dim=1)[live].abs() / norms[live]) if bool(live.any()) else torch.zeros(0)
    return {
        "layer": b.name,
        "type": b.type,
        "shape": tuple(int(s) for s in b.weight.shape),
        "m": m,
        "n": n,
        "rank": rank,
        "zero_rows": int(zero.sum()),
        "constant_rows": int(constant.sum()),
        "parallel_pairs": par,
        "antiparallel_pairs": anti,
        "weight_var": weight_var,
        "target_var": target,
        "var_ratio": weight_var / target if target and not math.isnan(target) else float("nan"),
        "max_abs_s_over_norm": float(s_over.max()) if s_over.numel() else float("nan"),
        "note": "; ".join(notes),
    }


def layer_table(model: nn.Module, layers: LayerSpec = None, scheme: str | None = None, **options) -> pd.DataFrame:
    """One row per layer: its structure, read from the weights alone.

    Columns: layer, type, shape (the parameter's own shape), m, n (neuron rows × fan-in), rank,
    zero_rows, constant_rows (all entries equal and non-zero), parallel_pairs / antiparallel_pairs
    (row pairs i < j, zero rows excluded, with cosine ≥ 1 − 1e-6 / ≤ −1 + 1e-6), weight_var (ddof = 1),
    target_var (:func:`skew.theory.weight_variance` of ``scheme`` with ``options``, NaN without a
    scheme, on the neuron rows; under ``default`` what the module's own init draws: for MHA q/k/v Xavier
    on the packed in_proj_weight, for a ConvTranspose fans read off its stored weight as its
    ``reset_parameters`` does, for a Hugging Face ``Conv1D`` 0.02²),
    var_ratio = weight_var / target_var, max_abs_s_over_norm = max_i |S_i| / ‖W_i‖ (≤ √n, reached
    by constant rows), and note (what was skipped on huge layers; ``effective weight (...)`` where the
rows are the weight forward computes with rather than the stored one, e.g. weight standardisation:
weight_var, rank and the rest then describe that weight, and var_ratio compares it with the init).

    "Zero" and "equal" are judged at the weight's own precision: |x| ≤ √eps · scale with eps of the
    parameter's dtype; the rank uses ``torch.linalg.matrix_rank`` in float64 with rtol = max(m, n) · eps
    of that dtype, so a float32 sinusoidal square layer shows its rank loss. Pair counts need the m × m
    Gram matrix: NaN when m > PAIR_LIMIT (4096); rank is NaN when min(m, n) > RANK_LIMIT.

    .. math:: \\cos(W_i, W_k) = \\frac{W_i \\cdot W_k}{\\lVert W_i\\rVert\\,\\lVert W_k\\rVert}

    Example:
        >>> net = nn.Linear(6, 6, bias=False)
        >>> with torch.no_grad():
        ...     net.weight[3] = -net.weight[1]; net.weight[5] = 0
        >>> layer_table(net)[["rank", "zero_rows", "antiparallel_pairs"]].values.tolist()
        [[4, 1, 1]]
    """
    resolved = _scheme(scheme, options)
    with kept_buffers(model), torch.no_grad():
        return pd.DataFrame([_layer_row(b, resolved) for b in _blocks(model, layers)])


def diagnose(
    model: nn.Module, layers: LayerSpec = None, scheme: str | None = None, **options
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables at once: ``(neuron_table(model, layers), layer_table(model, layers, scheme))``.

    Example:
        >>> neurons, per_layer = diagnose(nn.Linear(5, 4), scheme="default")
        >>> len(neurons), len(per_layer)
        (4, 1)
    """
    resolved = _scheme(scheme, options)
    neurons, rows = [], []
    with kept_buffers(model), torch.no_grad():
        for b in _blocks(model, layers):
            neurons.append((b.name, _neuron_columns(b)))
            rows.append(_layer_row(b, resolved))
    return _neuron_frame(neurons), pd.DataFrame(rows)
