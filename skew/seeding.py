"""Independent random streams from one user seed: data, init, shuffling, dropout.

One number (``--seed``, ``seeds=``) must never seed two consumers directly: a
``torch.Generator().manual_seed(0)`` that draws an N(0, 1) data batch and another that draws a
kaiming_normal weight produce the *same* normals, so the first layer's weight rows are a scaled copy
of the first data batch (cosine 1.0) and the measured skew is wrong. Every consumer instead takes the
child seed of its own named stream,

.. math:: \\text{child}(s, k) = \\text{SeedSequence}(s, \\text{spawn\\_key}=(k,)).\\text{generate\\_state}(2)

for the stream's index k in :data:`STREAMS`, which is exactly the k-th child of
``numpy.random.SeedSequence(s).spawn(len(STREAMS))``. Children are statistically independent of each
other and of the raw seed ``s``; the same ``s`` always gives the same children (on every machine).

Streams:

- ``data``: synthetic batches, the digits shuffle and train/validation split, data factories;
- ``init``: initialization schemes' generators, model construction and PyTorch's ``default`` init
  (``torch.manual_seed`` of the global RNG, inside ``fork_rng``);
- ``shuffle``: mini-batch order in training;
- ``dropout``: the global RNG during training (dropout masks);
- ``sample``: which samples a method picks from given data (LSUV's batch in training).

Example:
    >>> from skew.seeding import child_seed, generator
    >>> child_seed(0, "data") != child_seed(0, "init")
    True
    >>> child_seed(0, "init") == child_seed(0, "init")
    True
    >>> g = generator(0, "init")           # a torch.Generator seeded with the init stream of seed 0
    >>> bool(torch.randn(3, generator=g).ne(torch.randn(3, generator=generator(0, "data"))).all())
    True
"""

from __future__ import annotations

import numpy as np
import torch

from skew.errors import SkewError

__all__ = ["STREAMS", "child_seed", "child_seeds", "generator", "generators"]

#: Stream names, in spawn order. New streams are appended (never inserted) so existing children keep
#: their values.
STREAMS: tuple[str, ...] = ("data", "init", "shuffle", "dropout", "sample")


def _user_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise SkewError(f"seed={seed!r} must be a non-negative integer; pass e.g. seed=0")
    return int(seed)


def child_seed(seed: int, stream: str) -> int:
    """The 63-bit seed of ``stream`` derived from the user ``seed`` (see the module docstring).

    Example:
        >>> child_seed(0, "data") == child_seed(0, "data"), 0 <= child_seed(0, "data") < 2**63
        (True, True)
    """
    seed = _user_seed(seed)
    if stream not in STREAMS:
        raise SkewError(f"unknown random stream {stream!r}; valid streams are {', '.join(STREAMS)}")
    words = np.random.SeedSequence(seed, spawn_key=(STREAMS.index(stream),)).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])  # < 2**63: valid for torch, numpy and random


def child_seeds(seed: int) -> dict[str, int]:
    """Every stream's child seed of ``seed``, ``{name: seed}`` in :data:`STREAMS` order.

    Equal to ``SeedSequence(seed).spawn(len(STREAMS))`` children's states, named.

    Example:
        >>> list(child_seeds(3)) == list(STREAMS)
        True
    """
    return {name: child_seed(seed, name) for name in STREAMS}


def generator(seed: int, stream: str, device=None) -> torch.Generator:
    """A fresh ``torch.Generator`` (on ``device``, default CPU) seeded with ``child_seed(seed, stream)``.

    Example:
        >>> x = torch.randn(2, generator=generator(0, "data"))
        >>> torch.equal(x, torch.randn(2, generator=generator(0, "data")))
        True
    """
    seed = child_seed(seed, stream)
    try:
        gen = torch.Generator() if device is None else torch.Generator(device=device)
    except (RuntimeError, TypeError, ValueError) as err:  # ValueError: an index too large for a C long
        raise SkewError(f"device={device!r:.60} is not a device a torch.Generator can live on ({' '.join(str(err).split())[:120]}); "
                        "pass e.g. 'cpu' or 'cuda'") from None
    return gen.manual_seed(seed)


def generators(seed: int) -> dict[str, torch.Generator]:
    """One fresh CPU ``torch.Generator`` per stream, ``{name: generator}``.

    Example:
        >>> sorted(generators(0)) == sorted(STREAMS)
        True
    """
    return {name: generator(seed, name) for name in STREAMS}
