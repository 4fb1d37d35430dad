"""In-place initializers that ``torch.nn.init`` lacks: sinusoidal, IDInit, IDIZ and arcsine.

Every function follows ``torch.nn.init``'s conventions: it fills ``tensor`` in place without
recording autograd history and returns it. A weight of shape (c_out, c_in/groups, k1, ...) is read
as the (m, n) matrix of :func:`skew.layers.weight_matrix` (dim 0 = rows = neurons, the rest
flattened row-major). Sinusoidal and arcsine amplitudes use n (row length) and m (rows) of that
view, the authors' convention; ``sinusoidal_(..., fans="torch")`` uses
``torch.nn.init._calculate_fan_in_and_fan_out`` exactly as torch does. For layers whose neurons
are not along dim 0 (ConvTranspose, Conv1D) use :func:`skew.init.apply` or
:class:`skew.layers.NeuronView`.

Example:
    >>> import torch
    >>> from skew.init import sinusoidal_
    >>> w = sinusoidal_(torch.empty(3, 5))
    >>> bool(w.sum(dim=1).abs().max() < 1e-6)   # rows of an m < n matrix cancel (Theorem 3)
    True
"""

from __future__ import annotations

import functools
import math
import numbers

import torch

from skew import _triton
from skew._checks import positive_int
from skew.errors import SkewError

__all__ = ["arcsine_", "idinit_", "idiz_", "sinusoidal_", "sinusoidal_amplitude", "sinusoidal_variance"]

_MODES = (None, "fan_in", "fan_out")
_FANS = ("authors", "torch")
# Rows per chunk in sinusoidal_ are chosen so one float64 chunk holds about this many entries
# (2 MiB): the broadcast products then stay in cache.
_CHUNK_ENTRIES = 1 << 18


def _matrix_shape(tensor: torch.Tensor, fn: str) -> tuple[int, int]:
    if not isinstance(tensor, torch.Tensor):
        raise SkewError(f"{fn} expects a torch.Tensor, got {type(tensor).__name__}; pass a weight tensor")
    if tensor.dim() < 2:
        raise SkewError(
            f"{fn} needs a weight with at least 2 dimensions (rows = neurons), got shape "
            f"{tuple(tensor.shape)}; 1-D tensors such as biases have no rows: set them with "
            "torch.nn.init.zeros_ or constant_ instead"
        )
    m = tensor.shape[0]
    n = tensor.numel() // m if m else 0
    return m, n


def _filled_shape(tensor: torch.Tensor, fn: str) -> tuple[int, int]:
    """:func:`_matrix_shape` of a weight about to be written: it must also hold real values."""
    m, n = _matrix_shape(tensor, fn)
    if not tensor.is_floating_point():  # an int/bool weight truncates the values (sinusoidal -> all 0)
        raise SkewError(
            f"{fn} needs a floating-point weight, got dtype {str(tensor.dtype).replace('torch.', '')}, which cannot "
            "hold its real values; convert it first, e.g. weight.float()"
        )
    if tensor.layout != torch.strided:  # sparse or mkldnn: no dense storage to write the values into
        raise SkewError(
            f"{fn} needs a dense weight, got layout {str(tensor.layout).replace('torch.', '')}; fill a dense tensor "
            "and convert it afterwards, e.g. w = tensor.to_dense(); fn(w); w.to_sparse()".replace("fn(", f"{fn}(")
        )
    if any(stride == 0 and size > 1 for stride, size in zip(tensor.stride(), tensor.shape)):
        raise SkewError(
            f"{fn} cannot write a weight whose entries share memory (a view made by expand(), shape "
            f"{tuple(tensor.shape)}, strides {tensor.stride()}): each entry needs its own value; fill a copy, "
            "e.g. weight = weight.clone()"
        )
    return m, n


def check_generator(generator, fn: str) -> None:
    """Refuse anything but None or a ``torch.Generator`` as ``fn``'s ``generator`` argument.

    Example:
        >>> check_generator(torch.Generator().manual_seed(0), "arcsine_")  # fine: returns None
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise SkewError(
            f"{fn}: generator must be a torch.Generator, got {type(generator).__name__}; "
            "pass e.g. generator=torch.Generator().manual_seed(0)"
        )


def _fans(tensor: torch.Tensor) -> tuple[int, int]:
    return torch.nn.init._calculate_fan_in_and_fan_out(tensor)


def _check_real(value, what: str, fn: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise SkewError(f"{fn}: {what} must be a finite real number, got {value!r}; pass e.g. {what}=1.0")
    if positive and float(value) <= 0:
        raise SkewError(f"{fn}: {what} must be positive, got {value!r}; pass e.g. {what}=1.0")
    return float(value)


def _turns_sincos(q: torch.Tensor, period: int) -> tuple[torch.Tensor, torch.Tensor]:
    """sin and cos of 2π·q/period for integers 0 <= q < period, in float64.

    The angle is reduced to a quadrant with integer arithmetic first, so quarter turns give
    exact 0 and ±1 (a sinusoidal row that should vanish is exactly zero).
    """
    q4 = q * 4
    quadrant = torch.div(q4, period, rounding_mode="floor")
    theta = (q4 - quadrant * period).to(torch.float64) * (math.pi / 2 / period)
    s0, c0 = torch.sin(theta), torch.cos(theta)
    sin = torch.where(quadrant == 0, s0, torch.where(quadrant == 1, c0, torch.where(quadrant == 2, -s0, -c0)))
    cos = torch.where(quadrant == 0, c0, torch.where(quadrant == 1, -s0, torch.where(quadrant == 2, -c0, s0)))
    return sin, cos


@functools.lru_cache(maxsize=64)
def _angle_tables(m: int, n: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """sin and cos of 2πr/n (r < n) and of the row phases 2π(i mod m)/m (i = 1..m), float64 on
    ``device`` (computed on the CPU with exact angle reduction, one transfer; kept per shape, read only)."""
    tables = torch.cat(
        [*_turns_sincos(torch.arange(n, dtype=torch.int64), n), *_turns_sincos(torch.arange(1, m + 1) % m, m)]
    ).to(device)
    return tuple(tables.split([n, n, m, m]))


@functools.lru_cache(maxsize=256)
def _device_scalar(value: float, device: torch.device) -> torch.Tensor:
    """A 1-element float64 tensor holding ``value`` on ``device`` (kept: amplitudes repeat per shape)."""
    return torch.tensor([value], dtype=torch.float64).to(device)


def _bump_version(tensor: torch.Tensor) -> None:
    """Count a write made outside torch (a Triton kernel) in the tensor's version, as in-place ops do."""
    bump = getattr(torch.autograd.graph, "increment_version", None)
    if bump is not None:
        bump(tensor)


def sinusoidal_variance(m: int, n: int) -> float:
    r"""Unbiased variance (ddof = 1) of the entries of the unit-amplitude sinusoidal (m, n) matrix.

    Closed form, O(m): with :math:`\phi_i = 2\pi i/m`, row i sums to :math:`n\sin\phi_i` when
    :math:`n \mid i` (else 0) and its squares to :math:`\tfrac n2(1-\cos 2\phi_i)` when
    :math:`n \mid 2i` (else :math:`\tfrac n2`); then

    .. math:: v = \frac{\sum_{ij} W_{ij}^2 - (\sum_{ij} W_{ij})^2 / (mn)}{mn - 1}.

    Example:
        >>> round(sinusoidal_variance(64, 200), 4)   # m < n/2: every row is a full sine, v ≈ 1/2
        0.5
        >>> round(sinusoidal_variance(100, 200), 4)  # row n/2 = 100 is zero
        0.495
    """
    return _sinusoidal_variance(positive_int("m", m, 64), positive_int("n", n, 200))


@functools.lru_cache(maxsize=256)
def _sinusoidal_variance(m: int, n: int) -> float:
    """:func:`sinusoidal_variance` of checked positive ints (kept per shape)."""
    if m * n < 2:
        raise SkewError(
            f"the sinusoidal pattern of a ({m}, {n}) matrix has fewer than 2 entries, so its variance "
            "is undefined; sinusoidal_ needs a weight with at least 2 entries"
        )
    i = torch.arange(1, m + 1, dtype=torch.int64)
    phi = (2 * math.pi / m) * i.to(torch.float64)
    row_sum = torch.where(i % n == 0, n * torch.sin(phi), torch.zeros_like(phi))
    row_sq = torch.where((2 * i) % n == 0, (n / 2) * (1 - torch.cos(2 * phi)), torch.full_like(phi, n / 2))
    total, sq = float(row_sum.sum()), float(row_sq.sum())
    size = m * n
    return max((sq - total * total / size) / (size - 1), 0.0)


def _sinusoidal_fans(tensor: torch.Tensor, fans: str) -> tuple[int, int]:
    """(fan_in, fan_out) of the amplitude rule: the authors' (n, m) or torch's."""
    if fans == "authors":
        return _matrix_shape(tensor, "sinusoidal_")[::-1]
    return _fans(tensor)


def sinusoidal_amplitude(
    tensor: torch.Tensor, gain: float = 1.0, mode: str | None = None, fans: str = "authors"
) -> float:
    r"""The amplitude a that :func:`sinusoidal_` uses for ``tensor`` (validating every argument).

    With v the ddof=1 variance of the a = 1 pattern (:func:`sinusoidal_variance`), (m, n) the
    matrix view (rows, row length) and fan_in, fan_out the fans of ``fans``
    (``"authors"``: fan_in = n, fan_out = m; ``"torch"``: ``torch.nn.init``'s):

    .. math:: a = \text{gain}\sqrt{\frac{2}{v\,(\text{fan\_in}+\text{fan\_out})}} \ \text{(mode None)},
        \qquad a = \frac{\text{gain}}{\sqrt{v\cdot\text{fan}}} \ \text{(mode "fan_in"/"fan_out")}

    Raises :class:`SkewError` where the pattern cannot be scaled (fewer than 2 entries, or a
    pattern that is zero everywhere, such as the (1, 2) one). Returns 0.0 for an empty tensor.

    Example:
        >>> round(sinusoidal_amplitude(torch.empty(2, 3)) ** 2, 6)   # 2 / (v (m + n)), v = 3/5
        0.666667
        >>> conv = torch.empty(8, 4, 3, 3)                           # n = 36, m = 8 (authors)
        >>> v = sinusoidal_variance(8, 36)
        >>> math.isclose(sinusoidal_amplitude(conv), math.sqrt(2 / (v * (36 + 8))))
        True
        >>> math.isclose(sinusoidal_amplitude(conv, fans="torch"), math.sqrt(2 / (v * (36 + 72))))
        True
    """
    m, n = _matrix_shape(tensor, "sinusoidal_")
    gain = _check_real(gain, "gain", "sinusoidal_", positive=True)
    if mode not in _MODES:
        raise SkewError(f"sinusoidal_: unknown mode {mode!r}; valid modes are None, 'fan_in', 'fan_out'")
    if fans not in _FANS:
        raise SkewError(f"sinusoidal_: unknown fans {fans!r}; valid values are 'authors' (default) and 'torch'")
    if tensor.numel() == 0:
        return 0.0
    v = sinusoidal_variance(m, n)
    if v <= 1e-12:
        raise SkewError(
            f"the sinusoidal pattern of a ({m}, {n}) matrix is zero everywhere, so no amplitude can give it "
            "a variance; use another scheme for this tensor"
        )
    fan_in, fan_out = _sinusoidal_fans(tensor, fans)
    if mode is None:
        return gain * math.sqrt(2.0 / (v * (fan_in + fan_out)))
    return gain / math.sqrt(v * (fan_in if mode == "fan_in" else fan_out))


def sinusoidal_(
    tensor: torch.Tensor, gain: float = 1.0, mode: str | None = None, fans: str = "authors"
) -> torch.Tensor:
    r"""Fill ``tensor`` with the deterministic sinusoidal initialization.

    From "Sinusoidal Initialization, Time for a New Start" (arXiv 2505.12909, NeurIPS 2025). On the
    (m, n) matrix view (rows i = 1..m are neurons, columns j = 0..n-1, dims 1.. flattened
    row-major as ``torch.nn.init`` does):

    .. math::
        W_{ij} = a \sin\!\left(2\pi i \frac{j}{n} + \frac{2\pi i}{m}\right)

    Row i makes exactly i full oscillations, so for m < n every row sums to zero. With v the
    unbiased variance (ddof = 1) of the a = 1 matrix (:func:`sinusoidal_variance`), the amplitude is

    - default (``mode=None, fans="authors"``), **the authors' released initializer** (the code
      published with the NeurIPS paper): :math:`a = \text{gain}\sqrt{2 / (v\,(n + m))}` with
      n the row length (c_in/groups · k1 · k2 ··· for a convolution) and m the number of rows
      (c_out). For a Linear layer this is Glorot's variance 2/(fan_in + fan_out); for a
      convolution it is not torch's (torch's fan_out is c_out · k1 · k2 ···);
    - ``fans="torch"``: the same rule with ``torch.nn.init``'s fans,
      :math:`a = \text{gain}\sqrt{2 / (v\,(\text{fan\_in} + \text{fan\_out}))}`, so sinusoidal and
      ``xavier_*`` give every layer the same variance;
    - ``mode="fan_in"`` (or ``"fan_out"``), **the authors' later He-style code**, used with
      ``gain=math.sqrt(2)``: :math:`a = \text{gain}/\sqrt{v\cdot\text{fan}}`, fan_in = n
      (fan_out = m, or torch's with ``fans="torch"``).

    The tensor's dim 0 is read as the rows. A ``ConvTranspose`` weight (c_in, c_out/g, k...) or a
    Hugging Face ``Conv1D`` weight (in, out) keeps its neurons elsewhere: initialize such layers
    with :func:`skew.init.apply`, or fill ``skew.layers.neuron_view(layer).fill(sinusoidal_)``.

    The values are computed in float64 (angles reduced exactly with integer arithmetic, the few
    sines on the CPU, the rest by angle addition with exactly rounded products and sums on the
    tensor's device) and cast to the tensor's dtype, so the result is identical, bit for bit, on
    every call and on every device (CPU and CUDA). A contiguous float32/float64 CUDA tensor is
    filled by one Triton kernel (:func:`skew._triton.sinusoidal`: the same operations, launched
    without fused multiply-adds) from sine tables cached per shape and device.

    Args:
        tensor: an n-dimensional ``torch.Tensor`` with n >= 2.
        gain: positive scaling factor.
        mode: ``None`` (Glorot-style amplitude), ``"fan_in"`` or ``"fan_out"``.
        fans: ``"authors"`` (n and m of the matrix view, the default) or ``"torch"``.

    Example:
        >>> w = torch.empty(64, 128)
        >>> _ = sinusoidal_(w)
        >>> round(float(w.var()) * (64 + 128), 4)        # Glorot variance 2 / (fan_in + fan_out)
        2.0
        >>> conv = torch.nn.Conv2d(16, 32, 3)
        >>> _ = sinusoidal_(conv.weight)                 # Var = 2 / (16·9 + 32), the authors' rule
        >>> round(float(conv.weight.detach().var()) * (16 * 9 + 32), 4)
        2.0
        >>> _ = sinusoidal_(conv.weight, gain=math.sqrt(2), mode="fan_in")
    """
    _filled_shape(tensor, "sinusoidal_")
    amplitude = sinusoidal_amplitude(tensor, gain, mode, fans)
    if tensor.numel() == 0:
        return tensor
    m, n = _matrix_shape(tensor, "sinusoidal_")

    # Columns j = j1·B + j0 (B ≈ C ≈ √n). With α = 2π(i·j0 mod n)/n, γ = 2π(i·j1·B mod n)/n and
    # φ = 2π i/m, W[i, j] = a·sin(α + γ + φ) = sin(α)·cos(γ + φ)·a + cos(α)·sin(γ + φ)·a.
    # Only sin/cos of 2πr/n (r < n) and of φ (m values) are transcendental, computed on the CPU
    # with exact angle reduction; everything else is gathers and separately rounded float64 mul/add
    # (no fused multiply-add), so every device that computes in float64 gives the same bits.
    block = max(1, math.isqrt(n))
    if tensor.dtype in (torch.float32, torch.float64) and tensor.is_contiguous() and _triton.available(tensor.device):
        with torch.no_grad():  # one launch (CUDA, Triton); None if the kernel cannot run here
            done = _triton.guarded(_triton.sinusoidal, tensor.view(m, n), _angle_tables(m, n, tensor.device),
                                   _device_scalar(amplitude, tensor.device), block)
        if done is not None:
            _bump_version(tensor)
            return tensor
    device = tensor.device if tensor.device.type in ("cpu", "cuda") else torch.device("cpu")
    sin_t, cos_t, sin_p, cos_p = _angle_tables(m, n, device)
    blocks = -(-n // block)
    i = torch.arange(1, m + 1, dtype=torch.int64, device=device)
    idx_a = torch.outer(i, torch.arange(block, dtype=torch.int64, device=device)) % n
    idx_g = torch.outer(i, torch.arange(blocks, dtype=torch.int64, device=device) * block) % n
    sin_a, cos_a = sin_t[idx_a], cos_t[idx_a]
    sin_g, cos_g = sin_t[idx_g], cos_t[idx_g]
    sin_b = (sin_g * cos_p[:, None]).add_(cos_g * sin_p[:, None]).mul_(amplitude)  # a·sin(γ + φ)
    cos_b = (cos_g * cos_p[:, None]).sub_(sin_g * sin_p[:, None]).mul_(amplitude)  # a·cos(γ + φ)

    direct = tensor.device == device and tensor.is_contiguous()
    target = tensor if direct else torch.empty(tensor.shape, dtype=tensor.dtype, device=device)
    with torch.no_grad():
        out = target.view(m, n)
        entries = _CHUNK_ENTRIES if device.type == "cpu" else 64 * _CHUNK_ENTRIES
        rows = max(1, entries // (block * blocks))
        buf = torch.empty(2, min(rows, m), blocks, block, dtype=torch.float64, device=device)
        for r0 in range(0, m, rows):
            r1 = min(m, r0 + rows)
            chunk, other = buf[0, : r1 - r0], buf[1, : r1 - r0]
            torch.mul(sin_b[r0:r1, :, None], cos_a[r0:r1, None, :], out=chunk)
            torch.mul(cos_b[r0:r1, :, None], sin_a[r0:r1, None, :], out=other)
            chunk.add_(other)
            out[r0:r1].copy_(chunk.view(r1 - r0, blocks * block)[:, :n])
        if not direct:
            tensor.copy_(target)
    return tensor


def idinit_(tensor: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    r"""Fill ``tensor`` with the identity-preserving IDInit pattern :math:`\mathrm{IDI}_\tau`.

    From Pan et al., "IDInit: A Universal and Stable Initialization Method for Neural Network
    Training" (ICLR 2025). This is a re-implementation from the paper's description, not the
    authors' code. On the (m, n) matrix view:

    .. math:: W_{rj} = \tau \ \text{if}\ r \equiv j \pmod n \ \text{else}\ 0

    i.e. a partial identity :math:`[\tau I, 0]` when m < n and stacked identity blocks when m > n.
    Convolutions use the same rule on (c_out, c_in·k·k) ("patch-maintain").

    Args:
        tensor: an n-dimensional ``torch.Tensor`` with n >= 2.
        tau: the value on the (wrapped) diagonal.

    Example:
        >>> idinit_(torch.empty(3, 2))
        tensor([[1., 0.],
                [0., 1.],
                [1., 0.]])
    """
    m, n = _filled_shape(tensor, "idinit_")
    tau = _check_real(tau, "tau", "idinit_")
    if tensor.numel() == 0:
        return tensor
    r = torch.arange(m)
    mat = torch.zeros(m, n, dtype=tensor.dtype)
    mat[r, r % n] = tau
    with torch.no_grad():
        tensor.copy_(mat.view(tensor.shape))
    return tensor


def idiz_(tensor: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    r"""Fill ``tensor`` with the zero-preserving IDInit pattern :math:`\mathrm{IDIZ}_\varepsilon`.

    From Pan et al., "IDInit" (ICLR 2025), for the last layer of a residual branch: the branch
    starts almost at zero, but not exactly, so no neuron is dead. Re-implemented from the paper's
    description. On the (m, n) matrix view:

    .. math::
        W_{r,\,r \bmod n} = \varepsilon, \quad W_{r,\,(r+1) \bmod n} = -\varepsilon, \quad 0 \text{ elsewhere}

    (the two patterns are added, so for n = 1 they cancel).

    Args:
        tensor: an n-dimensional ``torch.Tensor`` with n >= 2.
        eps: the magnitude of the two non-zero entries per row.

    Example:
        >>> idiz_(torch.empty(2, 3), eps=1.0)
        tensor([[ 1., -1.,  0.],
                [ 0.,  1., -1.]])
    """
    m, n = _filled_shape(tensor, "idiz_")
    eps = _check_real(eps, "eps", "idiz_")
    if tensor.numel() == 0:
        return tensor
    r = torch.arange(m)
    mat = torch.zeros(m, n, dtype=torch.float64)
    mat.index_put_((r, r % n), torch.full((m,), eps, dtype=torch.float64), accumulate=True)
    mat.index_put_((r, (r + 1) % n), torch.full((m,), -eps, dtype=torch.float64), accumulate=True)
    with torch.no_grad():
        tensor.copy_(mat.view(tensor.shape))
    return tensor


def arcsine_(
    tensor: torch.Tensor, gain: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Fill ``tensor`` with i.i.d. arcsine-distributed values of Glorot variance.

    The control of the sinusoidal paper (arXiv 2505.12909): same value distribution as a
    sinusoidal matrix, no structure.

    .. math::
        W = A\cos(\pi U),\quad U \sim \mathcal U(0, 1),\quad
        A = \text{gain}\sqrt{2 \cdot \frac{2}{m + n}}

    on the (m, n) matrix view (n the row length, m the rows), so
    :math:`\mathrm{Var}(W) = A^2/2 = \text{gain}^2 \cdot 2/(m+n)`: the variance of the default
    sinusoidal amplitude (the authors' convention; Glorot's for a Linear layer).

    Args:
        tensor: an n-dimensional ``torch.Tensor`` with n >= 2.
        gain: positive scaling factor.
        generator: the ``torch.Generator`` to sample from (default: the global one).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> w = arcsine_(torch.empty(256, 512), generator=g)
        >>> bool(w.abs().max() <= math.sqrt(4 / 768))
        True
    """
    m, n = _filled_shape(tensor, "arcsine_")
    gain = _check_real(gain, "gain", "arcsine_", positive=True)
    check_generator(generator, "arcsine_")
    if tensor.numel() == 0:
        return tensor
    amplitude = gain * math.sqrt(2.0 * 2.0 / (m + n))
    with torch.no_grad():
        tensor.uniform_(0.0, 1.0, generator=generator)
        tensor.mul_(math.pi).cos_().mul_(amplitude)
    return tensor
