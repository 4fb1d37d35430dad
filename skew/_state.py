"""Keep what the user owns: every buffer of a model comes back bit-identical after a read.

Reading a parametrized weight may run code that writes buffers (``spectral_norm`` in train mode
runs a power iteration that updates ``_u``/``_v``). :func:`kept_buffers` snapshots every buffer by
qualified name and restores it afterwards: the same tensor object re-bound where the module
re-bound it, the same values copied back where it was changed in place.

Example:
    >>> import torch, torch.nn as nn
    >>> bn = nn.BatchNorm1d(3)
    >>> with kept_buffers(bn):
    ...     _ = bn(torch.randn(8, 3))                    # updates running_mean in train mode
    >>> bool(bn.running_mean.eq(0).all())
    True
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["Snapshot", "kept_buffers", "no_mha_fastpath"]


def _bytes(t: torch.Tensor) -> torch.Tensor | None:
    """t's bits as a flat uint8 tensor (a view where t is contiguous, else a copy), or None where
    there is no such view (quantized, sparse or meta tensors: they are kept as clones)."""
    if t.layout != torch.strided or t.is_quantized or t.device.type == "meta":
        return None
    try:
        return t.detach().reshape(-1).view(torch.uint8)
    except (RuntimeError, TypeError):  # a dtype without a byte view
        return None


#: Bytes compared at once (the current bits are concatenated per chunk, a transient copy of that
#: size); a larger tensor is a chunk of its own, compared in place.
_CHUNK_BYTES = 64 << 20


def _chunks(items: list[tuple[int, torch.Tensor]]) -> list[list[tuple[int, torch.Tensor]]]:
    """``items`` (index, bytes) in order, cut into runs of at most _CHUNK_BYTES (or one larger item)."""
    out: list[list] = []
    size = _CHUNK_BYTES
    for item in items:
        n = item[1].numel()
        if not out or size + n > _CHUNK_BYTES:
            out.append([])
            size = 0
        out[-1].append(item)
        size += n
    return out


class Snapshot:
    """The bits of some tensors, kept in one flat byte copy per device; :meth:`restore` writes back
    only the tensors whose bits changed.

    Checking them all costs one concatenation and one comparison per device and 64 MiB (one host
    synchronisation on a GPU, not one per tensor), and a tensor left unchanged is not written:
    its version counter stays as it was (a graph that saved it still runs backward). Bits, not
    values, are compared: a NaN stays the same NaN, −0.0 is not +0.0. A tensor resized in place
    gets its original shape and storage back (``set_``), one whose dtype was changed through
    ``.data`` its original dtype (``.data``).

    Example:
        >>> t = torch.tensor([1.0, float("nan")])
        >>> snap = Snapshot([t])
        >>> _ = t.add_(1.0)
        >>> v = t._version
        >>> snap.restore()
        [0]
        >>> t.tolist()[0], t._version > v
        (1.0, True)
        >>> snap.restore()                                  # unchanged now: nothing written
        []
    """

    def __init__(self, tensors):
        self.tensors = list(tensors)
        self._meta = [(t.shape, t.dtype) for t in self.tensors]
        self._clones: dict[int, torch.Tensor] = {}
        groups: dict[torch.device, list[tuple[int, torch.Tensor]]] = {}
        for i, t in enumerate(self.tensors):
            raw = _bytes(t)
            if raw is None:
                if t.device.type != "meta":  # a meta tensor has no values to keep
                    self._clones[i] = t.detach().clone()
            else:
                groups.setdefault(t.device, []).append((i, raw))
        self._flat: list[tuple[list[int], list[int], torch.Tensor]] = []
        for items in groups.values():
            for chunk in _chunks(items):
                raws = [r for _, r in chunk]
                flat = torch.cat(raws) if len(raws) > 1 else raws[0].clone()
                self._flat.append(([i for i, _ in chunk], [r.numel() for r in raws], flat))

    def _original(self, i: int, raw: torch.Tensor) -> torch.Tensor:
        shape, dtype = self._meta[i]
        return raw.clone().view(dtype).view(shape)  # a fresh storage: any offset views as any dtype

    def restore(self) -> list[int]:
        """Write back the tensors whose bits changed; returns their indices (in the given order)."""
        written: list[int] = []
        with torch.no_grad():
            for idx, sizes, flat in self._flat:
                now = [_bytes(self.tensors[i]) for i in idx]
                if all(r is not None and r.numel() == n for r, n in zip(now, sizes)):
                    current = torch.cat(now) if len(now) > 1 else now[0]
                    if torch.equal(current, flat):  # the usual case: one comparison for the device
                        continue
                start = 0
                for i, n, raw in zip(idx, sizes, now):
                    saved = flat[start : start + n]
                    start += n
                    if raw is None or raw.numel() != n or not torch.equal(raw, saved):
                        self._put(i, self._original(i, saved))
                        written.append(i)
            for i, saved in self._clones.items():
                t = self.tensors[i]
                if t.shape != saved.shape or t.dtype != saved.dtype or not torch.equal(t, saved):
                    self._put(i, saved.clone())
                    written.append(i)
        return sorted(written)

    def _put(self, i: int, original: torch.Tensor) -> None:
        t = self.tensors[i]
        if t.dtype != original.dtype:
            t.data = original
        elif t.shape != original.shape:
            t.set_(original)  # resized in place: the original shape and values in a storage of its own
        else:
            t.copy_(original)


@contextlib.contextmanager
def kept_modes(model: nn.Module):
    """Restore every module's own ``training`` flag when the block ends, also on error
    (``model.train(flag)`` would set all the children alike, losing a submodule kept in eval).

    Example:
        >>> m = nn.Sequential(nn.Linear(2, 2), nn.Dropout()); _ = m[1].eval()
        >>> with kept_modes(m):
        ...     _ = m.train()
        >>> m.training, m[1].training
        (True, False)
    """
    flags = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


@contextlib.contextmanager
def no_mha_fastpath():
    """Turn PyTorch's fused attention fast path off for the block, restoring the setting after.

    With it on, an eval-mode ``nn.TransformerEncoder`` (``enable_nested_tensor=True``, the default)
    given a ``src_key_padding_mask`` turns its input into a NestedTensor and runs every layer on it,
    which no hook can read as (batch, token, feature); the layer-by-layer path computes the same values.

    Example:
        >>> with no_mha_fastpath():
        ...     torch.backends.mha.get_fastpath_enabled()
        False
    """
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


@contextlib.contextmanager
def kept_buffers(model: nn.Module):
    """Restore every buffer of ``model`` (object and bits) when the block ends, also on error.

    A buffer re-bound to another tensor gets its own tensor back; one changed in place (also
    through ``.data``, which no version counter sees) its original bits (:class:`Snapshot`).
    """
    owners = []
    for module in model.modules() if isinstance(model, nn.Module) else ():
        for local, buf in list(module._buffers.items()):
            if buf is not None:
                owners.append((module, local, buf))
    snap = Snapshot([buf for _, _, buf in owners])
    try:
        yield
    finally:
        for module, local, buf in owners:
            if module._buffers.get(local) is not buf:
                module._buffers[local] = buf
        snap.restore()
