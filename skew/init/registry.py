"""The string-keyed registry of initialization schemes (docs/init-schemes.md): names, aliases and options.

A scheme is spelled ``"name"``, ``"name:value"`` (its main option, e.g. ``"uniform:5"`` for
U(-5, 5)) or ``"name:key=value,key=value"`` (e.g. ``"sinusoidal:mode=fan_in,gain=1.4142"``). An
option given twice (``"uniform:5,a=1"``, ``"sinusoidal:gain=1,gain=2"``, or in the string and as
a keyword) is an error, never "last wins".
Aliases follow each paper's own law: ``glorot`` -> ``xavier_uniform``
(``torch.nn.init.xavier_uniform_``, Glorot & Bengio's uniform law) and ``he`` -> ``kaiming_normal``
(``torch.nn.init.kaiming_normal_``, He et al.'s normal law; both He schemes use
``nonlinearity="relu"`` and ``mode="fan_in"``, i.e. Var(W) = 2/fan_in). ``as_built`` (the model as
its constructor initialized it) is no scheme here: :func:`skew.compare` and the CLI take it.

Example:
    >>> from skew.init import get_scheme, schemes
    >>> "sinusoidal" in schemes()
    True
    >>> get_scheme("uniform:5").label
    'uniform:a=5'
    >>> get_scheme("he").name
    'kaiming_normal'
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch.nn import init as tinit

from skew.errors import SkewError
from skew.init.functions import arcsine_, idinit_, sinusoidal_

__all__ = ["ALIASES", "AS_BUILT", "Scheme", "aliases", "get_scheme", "schemes"]

#: Alias -> canonical scheme name (each paper's own law).
ALIASES: dict[str, str] = {"glorot": "xavier_uniform", "he": "kaiming_normal"}
#: The pseudo-scheme of skew.compare and the CLI: the model as its constructor built it.
AS_BUILT = "as_built"

_NONLINEARITIES = ("relu", "leaky_relu", "linear", "tanh", "selu", "sigmoid")


@dataclass(frozen=True)
class _Option:
    default: object
    kind: type  # float, int or str
    choices: tuple | None = None
    positive: bool = False


@dataclass(frozen=True)
class _Entry:
    summary: str
    reference: str
    random: bool
    options: dict[str, _Option]
    primary: str | None
    fill: Callable[..., torch.Tensor] | None  # fill(tensor, generator, **options)


def _orthogonal_(tensor: torch.Tensor, gain: float, generator: torch.Generator | None) -> torch.Tensor:
    """``torch.nn.init.orthogonal_``, also for float16/bfloat16 weights: torch's QR has no half kernels
    (``"geqrf_cpu" not implemented for 'Half'``), so those are computed in float32 and rounded once."""
    if tensor.dtype not in (torch.float16, torch.bfloat16):
        return tinit.orthogonal_(tensor, gain=gain, generator=generator)
    full = torch.empty(tensor.shape, dtype=torch.float32, device=tensor.device)
    tinit.orthogonal_(full, gain=gain, generator=generator)
    with torch.no_grad():
        tensor.copy_(full)
    return tensor


def _gain() -> dict[str, _Option]:
    return {"gain": _Option(1.0, float, positive=True)}


def _kaiming() -> dict[str, _Option]:
    return {
        "mode": _Option("fan_in", str, ("fan_in", "fan_out")),
        "nonlinearity": _Option("relu", str, _NONLINEARITIES),
        "a": _Option(0.0, float),
    }


_ENTRIES: dict[str, _Entry] = {
    "default": _Entry(
        "each module's own reset_parameters() (PyTorch's default: U(±1/√fan_in) weights and biases)",
        "torch.nn.Linear / ConvNd.reset_parameters (torch.nn.init.kaiming_uniform_ with a=√5)", True, {},
        None, None,
    ),
    "xavier_uniform": _Entry(
        "Glorot uniform (alias glorot), Var(W) = gain²·2/(fan_in+fan_out)",
        "Glorot & Bengio, AISTATS 2010 (torch.nn.init.xavier_uniform_)", True, _gain(), "gain",
        lambda t, g, gain: tinit.xavier_uniform_(t, gain=gain, generator=g),
    ),
    "xavier_normal": _Entry(
        "Glorot normal, Var(W) = gain²·2/(fan_in+fan_out)",
        "Glorot & Bengio, AISTATS 2010 (torch.nn.init.xavier_normal_)", True, _gain(), "gain",
        lambda t, g, gain: tinit.xavier_normal_(t, gain=gain, generator=g),
    ),
    "kaiming_uniform": _Entry(
        "He uniform for ReLU, Var(W) = 2/fan_in",
        "He et al., ICCV 2015 (torch.nn.init.kaiming_uniform_)", True, _kaiming(), None,
        lambda t, g, mode, nonlinearity, a: tinit.kaiming_uniform_(
            t, a=a, mode=mode, nonlinearity=nonlinearity, generator=g
        ),
    ),
    "kaiming_normal": _Entry(
        "He normal for ReLU (alias he), Var(W) = 2/fan_in",
        "He et al., ICCV 2015 (torch.nn.init.kaiming_normal_)", True, _kaiming(), None,
        lambda t, g, mode, nonlinearity, a: tinit.kaiming_normal_(
            t, a=a, mode=mode, nonlinearity=nonlinearity, generator=g
        ),
    ),
    "orthogonal": _Entry(
        "(semi-)orthogonal rows or columns times gain",
        "Saxe et al., ICLR 2014 (torch.nn.init.orthogonal_)", True, _gain(), "gain",
        lambda t, g, gain: _orthogonal_(t, gain, g),
    ),
    "lsuv": _Entry(
        "orthogonal, zero bias, then each layer rescaled until its output std is 1 ± tol (needs data)",
        "Mishkin & Matas, 'All you need is a good init', ICLR 2016 (torch.nn.init.orthogonal_, "
        "then skew.init.lsuv_rescale)", True,
        {"tol": _Option(0.1, float, positive=True), "max_iter": _Option(10, int, positive=True)}, None,
        lambda t, g, tol, max_iter: _orthogonal_(t, 1.0, g),
    ),
    "sinusoidal": _Entry(
        "deterministic W[i,j] = a·sin(2πi·j/n + 2πi/m); a² = 2/(v(n+m)) (the authors' released code), "
        "fans=torch: 2/(v(fan_in+fan_out)), mode=fan_in,gain=1.4142: the authors' He-style gain²/(v·fan_in)",
        "Sinusoidal Initialization, arXiv 2505.12909 (NeurIPS 2025) (skew.init.sinusoidal_)", False,
        {
            **_gain(),
            "mode": _Option(None, str, (None, "fan_in", "fan_out")),
            "fans": _Option("authors", str, ("authors", "torch")),
        },
        "gain",
        lambda t, g, gain, mode, fans: sinusoidal_(t, gain=gain, mode=mode, fans=fans),
    ),
    "idinit": _Entry(
        "identity-preserving IDI_τ: W[r, j] = τ iff r ≡ j (mod n)",
        "Pan et al., IDInit, ICLR 2025 (re-implemented from the paper) (skew.init.idinit_)", False,
        {"tau": _Option(1.0, float)}, "tau",
        lambda t, g, tau: idinit_(t, tau=tau),
    ),
    "arcsine": _Entry(
        "i.i.d. A·cos(πU), the sinusoidal value distribution without structure, Var = 2/(m+n)",
        "control of arXiv 2505.12909 (skew.init.arcsine_)", True, _gain(), "gain",
        lambda t, g, gain: arcsine_(t, gain=gain, generator=g),
    ),
    "uniform": _Entry(
        "U(-a, a), a = 1 by default ('uniform:5' for a = 5)",
        "the classic fixed-bound init (torch.nn.init.uniform_)", True,
        {"a": _Option(1.0, float, positive=True)}, "a",
        lambda t, g, a: tinit.uniform_(t, -a, a, generator=g),
    ),
}


# How each scheme fills a weight, formatted with its options (the "reason" apply() reports).
_CALLS: dict[str, str] = {
    "default": "reset_parameters()",
    "xavier_uniform": "xavier_uniform_(gain={gain:g})",
    "xavier_normal": "xavier_normal_(gain={gain:g})",
    "kaiming_uniform": "kaiming_uniform_(a={a:g}, mode={mode!r}, nonlinearity={nonlinearity!r})",
    "kaiming_normal": "kaiming_normal_(a={a:g}, mode={mode!r}, nonlinearity={nonlinearity!r})",
    "orthogonal": "orthogonal_(gain={gain:g})",
    "lsuv": "orthogonal_(gain=1), then rescaled to unit output std (tol={tol:g}, max_iter={max_iter})",
    "sinusoidal": "sinusoidal_(gain={gain:g}, mode={mode!r}, fans={fans!r})",
    "idinit": "idinit_(tau={tau:g})",
    "arcsine": "arcsine_(gain={gain:g})",
    "uniform": "uniform_(-{a:g}, {a:g})",
}


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Scheme:
    """A resolved scheme: canonical name plus option values. Build it with :func:`get_scheme`.

    Example:
        >>> s = get_scheme("sinusoidal:mode=fan_in,gain=1.5")
        >>> s.options["mode"], s.random
        ('fan_in', False)
        >>> w = s.init_weight(torch.empty(4, 8))
    """

    name: str
    options: dict = field(default_factory=dict)

    @property
    def _entry(self) -> _Entry:
        return _ENTRIES[self.name]

    @property
    def label(self) -> str:
        """The canonical spelling: the name, then any option that differs from its default."""
        changed = [
            f"{k}={_fmt(v)}" for k, v in self.options.items() if v != self._entry.options[k].default
        ]
        return self.name + (":" + ",".join(changed) if changed else "")

    @property
    def random(self) -> bool:
        """Whether the scheme draws random numbers (and so takes a ``generator``)."""
        return self._entry.random

    @property
    def needs_data(self) -> bool:
        """Whether :func:`skew.init.apply` needs ``data=`` for this scheme (LSUV)."""
        return self.name == "lsuv"

    @property
    def summary(self) -> str:
        """One line: what the scheme draws."""
        return self._entry.summary

    @property
    def call(self) -> str:
        """How a weight is filled, e.g. ``'xavier_uniform_(gain=1)'``."""
        return _CALLS[self.name].format(**self.options)

    @property
    def reference(self) -> str:
        """The paper or torch function the scheme comes from."""
        return self._entry.reference

    def init_weight(self, tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fill one weight tensor in place (for LSUV: its first step, orthogonal).

        ``default`` has no tensor-level rule (it is each module's ``reset_parameters()``): use
        :func:`skew.init.apply` for it.
        """
        fill = self._entry.fill
        if fill is None:
            raise SkewError(
                "scheme 'default' calls each module's reset_parameters() and has no per-tensor rule; "
                "use skew.init.apply(model, 'default')"
            )
        with torch.no_grad():
            return fill(tensor, generator, **self.options)


def schemes(aliases: bool = False) -> list[str]:
    """The canonical scheme names, in registry order; with ``aliases=True`` the aliases follow them.

    Example:
        >>> schemes()[:3]
        ['default', 'xavier_uniform', 'xavier_normal']
        >>> schemes(aliases=True)[-2:]
        ['glorot', 'he']
    """
    if not isinstance(aliases, bool):  # aliases="no" is truthy: it would list the aliases
        raise SkewError(f"aliases={aliases!r} must be True or False; pass e.g. aliases=True")
    names = list(_ENTRIES)
    return names + list(ALIASES) if aliases else names


def aliases() -> dict[str, str]:
    """A copy of the alias table, alias -> canonical name.

    Example:
        >>> aliases()["glorot"]
        'xavier_uniform'
    """
    return dict(ALIASES)


def _parse_value(scheme: str, key: str, raw, opt: _Option):
    if opt.kind is str:
        value = None if isinstance(raw, str) and raw.lower() == "none" else raw
        if value is not None and not isinstance(value, str):
            value = str(value)
    else:
        value = None
        if not isinstance(raw, bool):
            try:
                number = float(raw)
            except (TypeError, ValueError):
                number = math.nan
            if math.isfinite(number):
                value = number if opt.kind is float else (int(number) if number == int(number) else None)
        if value is None:
            raise SkewError(
                f"scheme {scheme!r}: option {key}={raw!r} is not a finite {opt.kind.__name__}; "
                f"pass e.g. {scheme}:{key}={_fmt(opt.default)}"
            )
        if opt.positive and value <= 0:
            raise SkewError(f"scheme {scheme!r}: option {key}={raw!r} must be positive")
    if opt.choices is not None and value not in opt.choices:
        raise SkewError(
            f"scheme {scheme!r}: option {key}={raw!r} is not valid; valid values are "
            + ", ".join(map(repr, opt.choices))
        )
    return value


def get_scheme(scheme: str | Scheme, **options) -> Scheme:
    """Resolve a scheme name, alias or spelled form (plus keyword options) to a :class:`Scheme`.

    Raises :class:`SkewError` for an unknown name (listing the valid ones and the closest match),
    an unknown option (listing the scheme's options) or a bad option value.

    Example:
        >>> get_scheme("uniform:5").options
        {'a': 5.0}
        >>> get_scheme("kaiming_normal", mode="fan_out").label
        'kaiming_normal:mode=fan_out'
    """
    if isinstance(scheme, Scheme):  # built by hand, perhaps: its name and options are checked like spelled ones
        if not isinstance(scheme.options, Mapping) or not all(isinstance(k, str) for k in scheme.options):
            raise SkewError(
                f"Scheme {scheme.name!r}: options must be a dict of option names to values, got "
                f"{scheme.options!r:.80}; build schemes with skew.init.get_scheme, e.g. get_scheme('uniform', a=5)"
            )
        if not isinstance(scheme.name, str):
            raise SkewError(f"Scheme name must be a name such as 'sinusoidal', got {type(scheme.name).__name__}; "
                            f"valid names: {', '.join(schemes(aliases=True))}")
        return get_scheme(scheme.name, **{**scheme.options, **options})
    if not isinstance(scheme, str):
        raise SkewError(
            f"scheme must be a name such as 'sinusoidal', got {type(scheme).__name__}; "
            f"valid names: {', '.join(schemes(aliases=True))}"
        )
    text = scheme.strip()
    name, _, spec = text.partition(":")
    name = name.strip().lower().replace("-", "_")
    if name == AS_BUILT:
        raise SkewError(
            f"{AS_BUILT!r} is not an init scheme: it means the model exactly as its constructor initialized "
            f"it, so there is nothing to apply; skew.compare and the CLI's --init accept it. Init schemes: "
            f"{', '.join(schemes())}"
        )
    name = ALIASES.get(name, name)
    if name not in _ENTRIES:
        close = difflib.get_close_matches(name, schemes(aliases=True), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SkewError(
            f"unknown init scheme {scheme!r}{hint} Valid schemes: {', '.join(schemes())} "
            f"(aliases: {', '.join(f'{a}->{t}' for a, t in ALIASES.items())}; skew.compare and the CLI "
            f"also take {AS_BUILT}, the model's own constructor init)"
        )
    entry = _ENTRIES[name]
    given: dict[str, object] = {}
    spelled: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, eq, raw = part.partition("=")
        if not eq:
            if entry.primary is None:
                valid = ", ".join(entry.options) or "none"
                raise SkewError(
                    f"scheme {name!r} has no main option to set with {text!r}; spell options as "
                    f"{name}:key=value (options: {valid})"
                )
            key, raw = entry.primary, part
        key = key.strip()
        if key in given:
            raise SkewError(
                f"scheme {name!r}: option {key} is given twice in {text!r} ({spelled[key]!r} and {part!r}); "
                f"give each option once, e.g. {name}:{key}={raw.strip()}"
            )
        given[key] = raw.strip()
        spelled[key] = part
    for key, raw in options.items():
        if key in given:
            raise SkewError(
                f"scheme {name!r}: option {key} is given twice, as {spelled[key]!r} in {text!r} and as "
                f"the keyword {key}={raw!r}; give it once"
            )
        given[key] = raw
    unknown = sorted(set(given) - set(entry.options))
    if unknown:
        valid = ", ".join(entry.options) or "none"
        raise SkewError(f"scheme {name!r} has no option {', '.join(unknown)}; its options are: {valid}")
    values = {k: opt.default for k, opt in entry.options.items()}
    for key, raw in given.items():
        values[key] = _parse_value(name, key, raw, entry.options[key])
    return Scheme(name, values)
