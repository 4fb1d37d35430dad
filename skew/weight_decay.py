"""OUI-guided weight decay: the OUI authors' published per-epoch controller (docs/oui.md).

Once per epoch, from that epoch's mean training OUI (e.g. :class:`skew.epoch_oui.EpochOUI`) and
mean training loss, :class:`OUIWeightDecay` sets the weight decay of an optimizer. With N the
number of epochs and f = 10^(10/N):

1. WD starts at its initial value (1e-4).
2. **Initial phase**, the first 10 % of epochs (e < 0.1·N): if OUI < 0.55, ask for a
   **parameter reset**, divide WD by 10 and restart the phase (its reference OUI is taken again
   at the next epoch); otherwise the phase's first OUI is its reference, and the phase is left
   early once OUI has risen more than 0.2 or fallen more than 0.1 from it. WD is otherwise
   unchanged in the phase.
3. After the phase, every epoch, the first rule that applies:

   - in the last 10 % of epochs (e ≥ 0.9·N, counted from the first epoch of the run):
     WD ← WD / f⁴;
   - OUI below the lower limit (starts at 0.55): WD ← WD / (decrease factor), then the limit
     drops by 0.025 and the decrease factor (starts at f) is multiplied by f;
   - OUI > 0.65 and the training loss improved (strictly below the previous epoch's):
     WD ← WD · f.

Epochs are counted by :meth:`OUIWeightDecay.step` calls (0-based): the decision made with epoch
e's OUI and loss sets the WD of epoch e + 1. A reset also clears the loss reference (the first
epoch after a reset never counts as an improvement). Choices where the published description
leaves room: the OUI < 0.55 check comes before the early-leave check; the epoch that leaves the
phase keeps its WD (the rules of step 3 apply from the next epoch); a reset restarts the phase's
reference but not the run's clock, so the phase still ends at 0.1·N and there are at most
⌈0.1·N⌉ resets (a network whose early OUI stays below 0.55 whatever the WD would otherwise be
reset forever).

The authors' guidance: OUI kept in about 0.6–0.8 goes with the best validation accuracy.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(3, requires_grad=True)], lr=0.1)
    >>> ctl = OUIWeightDecay(opt, epochs=10)           # f = 10
    >>> ctl.step(0.70, 1.0), ctl.step(0.70, 0.9)       # phase (1 epoch), then OUI > 0.65 and loss improved
    (0.0001, 0.001)
    >>> opt.param_groups[0]["weight_decay"]
    0.001
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence

import pandas as pd

from skew.errors import SkewError

__all__ = ["OUIWeightDecay"]

#: The published constants.
INITIAL_WD = 1e-4
RESET_BELOW = 0.55
LOWER_LIMIT = 0.55
LIMIT_STEP = 0.025
UPPER = 0.65
RISE, FALL = 0.2, 0.1
PHASE, LAST = 0.1, 0.1


class OUIWeightDecay:
    """Adjust ``optimizer``'s weight decay once per epoch from the epoch's OUI and training loss.

    Args:
        optimizer: any ``torch.optim`` optimizer with a ``weight_decay`` option (SGD, Adam, AdamW, ...).
            Its weight decay is set to ``initial`` at once, and after every :meth:`step`.
        epochs: N, the number of epochs the run trains (sets f = 10^(10/N) and the 10 % windows).
        initial: the initial weight decay (the authors' 1e-4).
        reset: called with no arguments when the controller asks for a parameter reset (re-initialize
            the model and clear the optimizer's state there). Without it, check
            :attr:`reset_requested` after each :meth:`step` and reset yourself.
        groups: indices of the parameter groups to control (default all; e.g. leave out a group of
            biases kept at weight decay 0).

    Attributes:
        wd: the current weight decay; ``reset_requested``: whether the last step asked for a reset;
        ``log``: one dict per step (epoch, oui, loss, wd_before, wd, action), see :attr:`decisions`.

    Example:
        >>> import torch
        >>> opt = torch.optim.AdamW([torch.zeros(2, requires_grad=True)])
        >>> resets = []
        >>> ctl = OUIWeightDecay(opt, epochs=30, reset=lambda: resets.append(1))
        >>> ctl.step(0.40, 2.3)                          # OUI < 0.55 in the initial phase
        1e-05
        >>> ctl.reset_requested, len(resets)
        (True, 1)
    """

    def __init__(
        self,
        optimizer,
        epochs: int,
        *,
        initial: float = INITIAL_WD,
        reset: Callable[[], None] | None = None,
        groups: Sequence[int] | None = None,
    ) -> None:
        if not hasattr(optimizer, "param_groups"):
            raise SkewError(
                f"OUIWeightDecay needs a torch.optim optimizer, got {type(optimizer).__name__}"
            )
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise SkewError(f"epochs={epochs!r} is not a positive integer; pass the run's number of epochs")
        if isinstance(initial, bool) or not (isinstance(initial, (int, float)) and math.isfinite(initial) and initial > 0):
            raise SkewError(f"initial={initial!r} must be a positive weight decay, e.g. 1e-4")
        if reset is not None and not callable(reset):
            raise SkewError(f"reset must be a function taking no arguments, got {type(reset).__name__}")
        all_groups = list(range(len(optimizer.param_groups)))
        if groups is not None and (isinstance(groups, (str, bytes)) or not isinstance(groups, Iterable)):
            raise SkewError(f"groups={groups!r:.40} must be a list of indices of the optimizer's groups {all_groups}")
        groups = all_groups if groups is None else list(groups)
        bad = [g for g in groups if isinstance(g, bool) or not isinstance(g, numbers.Integral) or g not in all_groups]
        if bad or not groups:
            raise SkewError(f"groups={groups!r} must be indices of the optimizer's groups {all_groups}")
        if any("weight_decay" not in optimizer.param_groups[g] for g in groups):
            raise SkewError(f"{type(optimizer).__name__} has no weight_decay option to control")
        self.optimizer = optimizer
        self.epochs = epochs
        self.groups = groups
        self.reset = reset
        self.f = 10.0 ** (10.0 / epochs)
        self.wd = float(initial)
        self.limit = LOWER_LIMIT
        self.factor = self.f
        self.in_phase = True
        self.first: float | None = None
        self.prev_loss: float | None = None
        self.epoch = 0
        self.reset_requested = False
        self.log: list[dict] = []
        self._apply()

    def _apply(self) -> None:
        for g in self.groups:
            self.optimizer.param_groups[g]["weight_decay"] = self.wd

    def step(self, oui: float, loss: float) -> float:
        """Take one epoch's mean training OUI and loss; set and return the next epoch's weight decay.

        Example:
            >>> import torch
            >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
            >>> ctl = OUIWeightDecay(opt, epochs=10)
            >>> [f"{ctl.step(o, l):.0e}" for o, l in [(0.7, 1.0), (0.5, 0.9), (0.52, 0.8)]]  # limit 0.55, 0.525
            ['1e-04', '1e-05', '1e-07']
        """
        try:
            if any(isinstance(v, (bool, str, bytes)) for v in (oui, loss)):  # float("0.5") and float(True) succeed
                raise TypeError
            oui, loss = float(oui), float(loss)
        except (TypeError, ValueError):
            raise SkewError(f"step needs two numbers, got oui={oui!r:.40}, loss={loss!r:.40}; pass the epoch's mean "
                            "training OUI (in [0, 1]) and loss") from None
        if not math.isnan(oui) and not 0.0 <= oui <= 1.0:
            raise SkewError(f"oui={oui!r} is no OUI, which lies in [0, 1]; pass the epoch's mean training OUI")
        if math.isnan(oui):
            raise SkewError("oui is NaN; pass the epoch's mean training OUI (did EpochOUI see a training batch?)")
        e = self.epoch
        self.epoch += 1
        before = self.wd
        self.reset_requested = False
        action = "keep"
        if self.in_phase and e < PHASE * self.epochs:
            if oui < RESET_BELOW:
                self.wd /= 10.0
                self.first, self.prev_loss = None, None
                self.reset_requested = True
                action = "reset"
            else:
                if self.first is None:
                    self.first = oui
                    action = "phase"
                elif oui - self.first > RISE or self.first - oui > FALL:
                    self.in_phase = False
                    action = "leave phase"
                else:
                    action = "phase"
                self.prev_loss = loss
        else:
            self.in_phase = False
            if e >= (1.0 - LAST) * self.epochs:
                self.wd /= self.f**4
                action = "final decay"
            elif oui < self.limit:
                self.wd /= self.factor
                self.limit -= LIMIT_STEP
                self.factor *= self.f
                action = "decrease"
            elif oui > UPPER and self.prev_loss is not None and loss < self.prev_loss:
                self.wd *= self.f
                action = "increase"
            self.prev_loss = loss
        self._apply()
        self.log.append({"epoch": e, "oui": oui, "loss": loss, "wd_before": before, "wd": self.wd,
                         "action": action})
        if self.reset_requested and self.reset is not None:
            self.reset()
        return self.wd

    @property
    def decisions(self) -> pd.DataFrame:
        """One row per step: epoch (0-based), oui, loss, wd_before, wd, action (``phase``, ``reset``,
        ``leave phase``, ``final decay``, ``decrease``, ``increase`` or ``keep``)."""
        return pd.DataFrame(self.log, columns=["epoch", "oui", "loss", "wd_before", "wd", "action"])

    def __repr__(self) -> str:
        return (f"OUIWeightDecay(epochs={self.epochs}, wd={self.wd:g}, limit={self.limit:g}, "
                f"in_phase={self.in_phase}, steps={self.epoch})")
