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

__all__ = ["kept_buffers"]


@contextlib.contextmanager
def kept_buffers(model: nn.Module):
    """Restore every buffer of ``model`` (object and bits) when the block ends, also on error."""
    saved = []
    for module in model.modules() if isinstance(model, nn.Module) else ():
        for local, buf in list(module._buffers.items()):
            if buf is not None:
                saved.append((module, local, buf, buf.detach().clone()))
    try:
        yield
    finally:
        with torch.no_grad():
            for module, local, buf, copy in saved:
                if module._buffers.get(local) is not buf:
                    module._buffers[local] = buf
                if buf.shape != copy.shape:
                    buf.set_(copy)  # resized in place: take the saved storage back
                elif not torch.equal(buf, copy) or buf.dtype != copy.dtype:
                    buf.copy_(copy)
