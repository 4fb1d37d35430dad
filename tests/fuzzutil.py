"""Helpers of the fuzz suite (tests/test_fuzz_*.py): what the user owns, snapshotted and compared.

``untouched(*models, changes=())`` is a context manager: it snapshots each model's state_dict (bit for bit),
the hook dicts of every submodule, every ``training`` flag and the global torch RNG state, and on
exit asserts that all four are unchanged (it also checks that the parameter objects, their
``requires_grad`` flags and the set of state_dict keys stayed the same).

``clear_error(excinfo)`` asserts an error message is one line that never suggests loading unsafely.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import torch
from torch import nn

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs",
               "_backward_hooks", "_backward_pre_hooks")
#: Advice to load a file unsafely, in any spelling numpy or torch use: never part of a skew message.
UNSAFE_ADVICE = re.compile(r"weights_only`?\s*(=|set to)\s*`?False|allow_pickle\s*=\s*`?True|allow_pickle=`|unsafely"
                           r"|pickle\.load\(", re.IGNORECASE)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """torch.equal, with NaNs in the same places counted equal (bit-level for IEEE floats)."""
    lazy = (nn.parameter.UninitializedParameter, nn.parameter.UninitializedBuffer)
    if isinstance(a, lazy) or isinstance(b, lazy):  # uninitialised: equal only to itself, still uninitialised
        return a is b
    if a.dtype != b.dtype or a.shape != b.shape or a.device != b.device:
        return False
    if torch.equal(a, b):
        return True
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
    return False


def _copy(t: torch.Tensor):
    """A copy of a state_dict entry; an uninitialised lazy parameter (no data to copy) is kept as itself."""
    if isinstance(t, (nn.parameter.UninitializedParameter, nn.parameter.UninitializedBuffer)):
        return t
    return t.detach().clone()


@dataclass
class Snapshot:
    """What a user owns in a model, plus the global torch RNG state."""

    state: dict[str, torch.Tensor]
    params: dict[str, tuple[int, bool]]
    hooks: dict[str, tuple]
    training: dict[str, bool]
    rng: torch.Tensor

    @classmethod
    def take(cls, model: nn.Module) -> Snapshot:
        return cls(
            state={k: _copy(v) for k, v in model.state_dict().items()},
            params={k: (id(p), p.requires_grad) for k, p in model.named_parameters()},
            hooks={name: tuple(tuple(getattr(m, d, {}).items()) for d in _HOOK_DICTS)
                   for name, m in model.named_modules()},
            training={name: m.training for name, m in model.named_modules()},
            rng=torch.get_rng_state(),
        )

    def assert_same(self, model: nn.Module, changes: tuple[str, ...] = ()) -> None:
        """Assert nothing changed, except the values of the state_dict entries named in ``changes``."""
        now = Snapshot.take(model)
        assert list(now.state) == list(self.state), "state_dict keys changed"
        changed = [k for k in self.state if k not in changes and not same_bits(self.state[k], now.state[k])]
        assert not changed, f"state_dict entries changed: {changed}"
        assert now.params == self.params, "parameter objects or requires_grad flags changed"
        assert now.hooks == self.hooks, "hooks were added or removed"
        assert now.training == self.training, "training flags changed"
        assert torch.equal(now.rng, self.rng), "the global torch RNG state changed"


@contextlib.contextmanager
def untouched(*models: nn.Module, changes: tuple[str, ...] = ()):
    """Assert on exit that each model (and the global torch RNG) is exactly as on entry.

    ``changes`` names state_dict entries whose values may change (what an init is asked to set).
    """
    snaps = [Snapshot.take(m) for m in models]
    yield
    for m, snap in zip(models, snaps):
        snap.assert_same(m, changes)


def clear_message(text: str) -> None:
    """One line, no traceback, no advice to load a file unsafely."""
    text = str(text)
    assert "\n" not in text.strip(), f"message is not one line: {text!r}"
    assert "Traceback" not in text
    assert not UNSAFE_ADVICE.search(text), f"message advises loading unsafely: {text!r}"


def cli_clear_error(code: int, err: str, want: int) -> None:
    """A CLI failure: exit ``want``; 1 → exactly one stderr line ``skew: error: …``; 2 → argparse usage + one
    ``error:`` line; never a traceback or unsafe-loading advice."""
    assert code == want, f"exit {code}, expected {want}; stderr: {err}"
    assert "Traceback" not in err, err
    assert not UNSAFE_ADVICE.search(err), f"stderr advises loading unsafely: {err}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if want == 1:
        assert len(lines) == 1 and lines[0].startswith("skew: error: "), err
    else:
        assert lines and lines[0].startswith("usage: skew") and " error: " in lines[-1], err


def raises_clear(fn, *words: str):
    """Call ``fn``; it must raise a one-line :class:`SkewError` (:func:`clear_message`) holding each of
    ``words``. Returns the error."""
    import pytest

    from skew.errors import SkewError

    with pytest.raises(SkewError) as info:
        fn()
    clear_message(info.value)
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    return info.value
