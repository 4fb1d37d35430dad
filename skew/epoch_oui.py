"""OUI during training as the OUI authors compute it: on the training batches, averaged over an epoch.

:class:`EpochOUI` leaves light hooks on a model while it trains. On every training forward pass
(module in training mode, autograd on: evaluation passes under ``eval()`` or ``torch.no_grad``
are ignored) each site reads the signs of the **first 8 samples** of the batch and adds the
pairwise OUI of their activation patterns over all 28 pairs (docs/oui.md):

.. math:: \\mathrm{OUI}_{l,b} = \\frac{1}{28}\\sum_{i<j\\le 8}
          \\frac{\\min(H_{ij}, \\lfloor d/2 \\rfloor)}{\\lfloor d/2 \\rfloor},
          \\qquad \\mathrm{OUI}_{\\text{epoch}} = \\frac{1}{L}\\sum_l \\frac{1}{|b|}\\sum_b \\mathrm{OUI}_{l,b}

with H the Hamming distance of two patterns and d the number of units of the site: every entry
of one sample's activation (for a conv, every (channel, position); for tokens, every (token,
feature)), as the authors flatten it. The authors draw k = 28 random pairs per training batch;
here the 28 pairs are those of the batch's first 8 samples. With shuffled batches these are
random samples too, so the expectation is the same, at no cost in random numbers (the training
run is unchanged, bit for bit) and with one fixed-size comparison per site and batch.

Sites (``at``):

- ``"layers"``: the output Z of every selected Linear/Conv layer (as :func:`skew.report`);
- ``"activations"``: the *input* of every nonlinearity module (ReLU, GELU, SiLU, ...), read by a
  forward pre-hook, so in-place activations are read before they overwrite it. This is where the
  authors measure (after BatchNorm in conv → BN → ReLU).

A module called several times in one forward pass gives one site per call, ``name#k`` (k = 0, 1,
...). The hooks do no host synchronisation: a hook stores the signs of the batch's first 8
samples (at most 2**20 booleans, 1 MiB, pending per site), and the Hamming distances of all
pending batches are computed together; the per-site sums stay on the device until
:meth:`EpochOUI.epoch_end`.

Example:
    >>> import torch, torch.nn as nn
    >>> net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    >>> meter = EpochOUI(net, at="activations")
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> for _ in range(4):
    ...     loss = net(torch.randn(16, 10)).pow(2).mean()
    ...     opt.zero_grad(); loss.backward(); opt.step()
    >>> 0.0 <= meter.epoch_end() <= 1.0, meter.sites
    (True, ['1'])
    >>> meter.close()
"""

from __future__ import annotations

import fnmatch
from itertools import combinations

import pandas as pd
import torch
from torch import nn

from skew.errors import SkewError
from skew.layers import LayerSpec, select_units

__all__ = ["ACTIVATIONS", "EpochOUI"]

#: Nonlinearity modules whose input is read with ``at="activations"`` ("active" means input > 0).
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish,
)
_AT = ("layers", "activations")
#: Samples per batch whose patterns are compared (all 28 pairs of the first 8).
SAMPLES = 8
#: Activation states (booleans) a site may hold before its pending batches are compared: the hooks
#: only store the first samples' signs (one kernel), and the comparisons run batched.
_PENDING_STATES = 1 << 20


class EpochOUI:
    """Pairwise OUI on training batches, averaged per epoch; hooks stay until :meth:`close`.

    Args:
        model: the network being trained (left as it is: hooks only read, and are removed by
            :meth:`close` or on leaving a ``with`` block).
        at: ``"layers"`` (Linear/Conv outputs) or ``"activations"`` (nonlinearity inputs).
        layers: which sites: for ``"layers"`` anything :func:`skew.layers.select_units` accepts;
            for ``"activations"`` None (all), a glob or a list of globs on module names.

    Call :meth:`epoch_end` after each epoch: it returns that epoch's OUI (mean over sites of the
    per-site mean over batches) and starts the next epoch. :attr:`history` holds one row per
    (epoch, site).

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> with EpochOUI(net) as meter:
        ...     _ = net(torch.randn(8, 4))              # a training-mode forward with autograd on
        ...     value = meter.epoch_end()
        >>> meter.history["site"].tolist()
        ['0', '2']
    """

    def __init__(self, model: nn.Module, *, at: str = "layers", layers: LayerSpec = None) -> None:
        if not isinstance(model, nn.Module):
            raise SkewError(f"EpochOUI needs a torch.nn.Module, got {type(model).__name__}; pass the model")
        if at not in _AT:
            raise SkewError(f"at={at!r} is not understood; use one of {', '.join(_AT)}")
        self.model = model
        self.at = at
        self._sums: dict[tuple[str, int], torch.Tensor] = {}
        self._counts: dict[tuple[str, int], int] = {}
        self._pending: dict[tuple[str, int], list[torch.Tensor]] = {}
        self._calls: dict[str, int] = {}
        self._multi: set[str] = set()
        self._pairs: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}
        self._rows: list[dict] = []
        self.epochs = 0
        modules = self._modules(layers)
        if not modules:
            what = "nonlinearity modules" if at == "activations" else "Linear/Conv layers"
            raise SkewError(
                f"{type(model).__name__} has no {what} selected by layers={layers!r}; "
                f"pick at={'layers' if at == 'activations' else 'activations'!r} or other layers"
            )
        self._handles = [model.register_forward_pre_hook(self._new_forward)]
        for name, mod in modules:
            if at == "activations":
                self._handles.append(mod.register_forward_pre_hook(self._pre_hook(name)))
            else:
                self._handles.append(mod.register_forward_hook(self._post_hook(name)))

    def _modules(self, layers) -> list[tuple[str, nn.Module]]:
        if self.at == "layers":
            return [(u.name, u.module) for u in select_units(self.model, layers) if u.block is None]
        if layers is None:
            globs = ["*"]
        elif isinstance(layers, str):
            globs = [layers]
        elif isinstance(layers, (list, tuple)) and all(isinstance(g, str) for g in layers):
            globs = list(layers)
        else:
            raise SkewError(
                f"layers={layers!r} is not understood with at='activations'; pass None, a glob or a list "
                "of globs on module names such as 'features.*'"
            )
        return [
            (name, mod) for name, mod in self.model.named_modules()
            if isinstance(mod, ACTIVATIONS) and any(fnmatch.fnmatchcase(name, g) for g in globs)
        ]

    # -- hooks --------------------------------------------------------------------------------
    def _new_forward(self, module, args) -> None:
        self._calls = {}

    def _pre_hook(self, name: str):
        def hook(module, args):
            if args and isinstance(args[0], torch.Tensor):
                self._observe(name, module, args[0])

        return hook

    def _post_hook(self, name: str):
        def hook(module, args, output):
            if isinstance(output, torch.Tensor):
                self._observe(name, module, output)

        return hook

    def _observe(self, name: str, module: nn.Module, v: torch.Tensor) -> None:
        k = self._calls.get(name, 0)
        self._calls[name] = k + 1
        if k:
            self._multi.add(name)
        if not (module.training and torch.is_grad_enabled()) or v.dim() < 2 or not v.is_floating_point():
            return
        pats = v.detach()[:SAMPLES] > 0  # one kernel here; the comparisons run batched in _flush
        key = (name, k)
        if key not in self._sums:
            self._sums[key] = torch.zeros((), dtype=torch.float64, device=v.device)
            self._counts[key] = 0
        pend = self._pending.setdefault(key, [])
        if pend and pend[0].shape != pats.shape:
            self._flush(key)
        pend.append(pats)
        if len(pend) * pats.numel() >= _PENDING_STATES:
            self._flush(key)

    def _flush(self, key: tuple[str, int]) -> None:
        """Pairwise OUI of the pending batches of one site, in one vectorised pass; added to its sum."""
        pend = self._pending.get(key)
        if not pend:
            return
        self._pending[key] = []
        with torch.no_grad():
            stack = torch.stack(pend).reshape(len(pend), pend[0].shape[0], -1)  # (batches, b, d)
            b, d = stack.shape[1], stack.shape[2]
            half = d // 2
            if b < 2 or half == 0:
                return
            i, j = self._pair_index(b, stack.device)
            hamming = (stack[:, i] != stack[:, j]).sum(2)  # (batches, pairs)
            per_batch = hamming.clamp_(max=half).sum(1).to(torch.float64) / (half * len(i))
            self._sums[key] += per_batch.sum()
        self._counts[key] += len(pend)

    def _pair_index(self, b: int, device: torch.device):
        key = (b, device)
        if key not in self._pairs:
            i, j = zip(*combinations(range(b), 2))
            self._pairs[key] = (torch.tensor(i, device=device), torch.tensor(j, device=device))
        return self._pairs[key]

    # -- results ------------------------------------------------------------------------------
    def _site(self, name: str, k: int) -> str:
        return f"{name}#{k}" if name in self._multi else name

    def epoch_end(self) -> float:
        """This epoch's OUI (mean over sites of the mean over its training batches); resets the sums.

        NaN when no training batch was seen since the last call.

        Example:
            >>> meter = EpochOUI(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), at="activations")
            >>> meter.epoch_end()
            nan
        """
        self.epochs += 1
        for key in list(self._pending):
            self._flush(key)
        values = []
        for (name, k), total in self._sums.items():  # insertion order: forward order of the first batch
            if not self._counts[(name, k)]:
                continue
            value = float(total) / self._counts[(name, k)]
            values.append(value)
            self._rows.append({"epoch": self.epochs, "site": self._site(name, k), "oui": value,
                               "batches": self._counts[(name, k)]})
        self._sums, self._counts, self._pending = {}, {}, {}
        return float(sum(values) / len(values)) if values else float("nan")

    @property
    def sites(self) -> list[str]:
        """The sites measured in the last finished epoch, in forward order."""
        last = [r["site"] for r in self._rows if r["epoch"] == self.epochs]
        return last

    @property
    def history(self) -> pd.DataFrame:
        """One row per (epoch, site): epoch (1-based), site, oui (the site's mean over batches), batches."""
        return pd.DataFrame(self._rows, columns=["epoch", "site", "oui", "batches"])

    def close(self) -> None:
        """Remove every hook (idempotent)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> EpochOUI:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EpochOUI(model={type(self.model).__name__}, at={self.at!r}, epochs={self.epochs})"
