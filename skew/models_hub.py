"""Hugging Face ``transformers`` and ``timm`` models, built offline from small configs, never pretrained.

Names (used through :func:`skew.models.build_model` and the CLI's ``--model``):

- ``hf:gpt2`` (``GPT2LMHeadModel``), ``hf:bert`` (``BertForMaskedLM``), ``hf:llama`` (``LlamaForCausalLM``):
  language models on byte tokens. Defaults: ``vocab_size=256`` (the built-in ``text`` data's byte
  vocabulary), 4 layers, width 64, 4 heads, 128 positions. Input per sample: ``(seq_len,)`` token ids,
  ``seq_len`` (default 64) being a skew option that only sets :func:`skew.models.input_shape`.
- ``hf:vit`` (``ViTForImageClassification``): 3×32×32 images in 4×4 patches, 4 layers, width 64, 10
  labels. Input per sample: ``(num_channels, image_size, image_size)``.
- ``timm:NAME``: ``timm.create_model(NAME, pretrained=False, **options)`` for any timm architecture. The
  skew option ``image_size`` sets the input shape and, for models with a fixed input size (ViTs),
  timm's ``img_size``; the default input shape is the architecture's ``pretrained_cfg.input_size``.

Every other option of an ``hf:*`` model is a field of its config class, named as the config names it
(``-o n_layer=2`` for GPT-2, ``-o num_hidden_layers=2`` for the others; the config's aliases work too);
an unknown one raises :class:`SkewError` with the close matches. Nothing is ever downloaded: configs are
built locally and ``pretrained`` is refused.

Weights are the library's own: the model constructor's init (``_init_weights`` for ``transformers``,
the architecture's own init for ``timm``). This is what the pseudo-scheme ``as_built`` of
:func:`skew.compare` measures; ``skew.init``'s ``default`` scheme is PyTorch's ``reset_parameters()``
instead. GPT-2 and BERT tie the output head to the token embedding (``tie_word_embeddings``): the head is
one layer, measured once, and an init scheme applied to it also sets the embedding, which it is.

``transformers`` and ``timm`` are imported only when one of these models is built (extras
``neuron-skew[hf]`` and ``neuron-skew[timm]``).

Example:
    >>> from skew.models import build_model, input_shape
    >>> net = build_model("hf:gpt2", n_layer=2)  # doctest: +SKIP
    >>> input_shape("hf:gpt2", seq_len=32)
    (32,)
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from skew._checks import positive_int
from skew.errors import SkewError

__all__ = ["HF_MODELS", "hf_builder", "hf_input_shape", "timm_builder", "timm_input_shape"]


@dataclass(frozen=True)
class _HfSpec:
    config: str
    model: str
    defaults: dict
    kind: str  # "text" or "image"
    positions: str = "max_position_embeddings"


_WIDTH = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4)
_HF: dict[str, _HfSpec] = {
    "gpt2": _HfSpec("GPT2Config", "GPT2LMHeadModel",
                    dict(vocab_size=256, n_positions=128, n_embd=64, n_layer=4, n_head=4, bos_token_id=None,
                         eos_token_id=None), "text", "n_positions"),
    "bert": _HfSpec("BertConfig", "BertForMaskedLM",
                    dict(vocab_size=256, max_position_embeddings=128, intermediate_size=256, **_WIDTH), "text"),
    "llama": _HfSpec("LlamaConfig", "LlamaForCausalLM",
                     dict(vocab_size=256, max_position_embeddings=128, intermediate_size=172, num_key_value_heads=4,
                          bos_token_id=None, eos_token_id=None, **_WIDTH), "text"),
    "vit": _HfSpec("ViTConfig", "ViTForImageClassification",
                   dict(image_size=32, patch_size=4, num_channels=3, intermediate_size=256, num_labels=10, **_WIDTH),
                   "image"),
}

#: The ``hf:*`` names :func:`skew.models.build_model` knows.
HF_MODELS: tuple[str, ...] = tuple(f"hf:{k}" for k in _HF)

_SEQ_LEN = 64


#: The install command for each optional package, by the extra that provides it.
_INSTALL = {
    "transformers": "pip install 'neuron-skew[hf]'",
    "timm": "pip install 'neuron-skew[timm]'",
}


def _import(package: str, name: str):
    try:
        return importlib.import_module(package)
    except ImportError:
        raise SkewError(f"model {name!r} needs {package}, which is not installed; run `{_INSTALL[package]}`") from None


def _spec(name: str) -> _HfSpec:
    key = name.split(":", 1)[1]
    if key not in _HF:
        raise SkewError(f"unknown Hugging Face model {name!r}; valid ones are {', '.join(HF_MODELS)}")
    return _HF[key]


def _config_fields(config_cls) -> list[str]:
    """Option names a config class takes: its init parameters, dataclass fields, aliases, attributes."""
    names: dict[str, None] = {}
    for p in inspect.signature(config_cls.__init__).parameters.values():
        if p.name != "self" and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
            names[p.name] = None
    if dataclasses.is_dataclass(config_cls):
        names.update((f.name, None) for f in dataclasses.fields(config_cls) if not f.name.startswith("_"))
    names.update((k, None) for k in getattr(config_cls, "attribute_map", {}) or {})
    names.update((k, None) for k in vars(config_cls()) if not k.startswith("_"))
    names["num_labels"] = None
    return list(names)


def _config(name: str, options: dict):
    """The config object of ``hf:*`` model ``name`` with ``options`` (minus skew's ``seq_len``)."""
    spec = _spec(name)
    transformers = _import("transformers", name)
    config_cls = getattr(transformers, spec.config)
    options = dict(options)
    seq_len = options.pop("seq_len", None)
    if seq_len is not None and spec.kind != "text":
        raise SkewError(f"model {name!r} takes images, not token sequences: it has no option seq_len; "
                        "its input size is image_size")
    valid = _config_fields(config_cls)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        hints = [f"{k} (did you mean {', '.join(difflib.get_close_matches(k, valid, n=3))}?)"
                 if difflib.get_close_matches(k, valid, n=1) else k for k in unknown]
        raise SkewError(
            f"model {name!r} takes no option {', '.join(hints)}; its options are the fields of transformers' "
            f"{spec.config} (e.g. {', '.join(k for k in spec.defaults if k in valid)})"
            + (" and seq_len" if spec.kind == "text" else "")
        )
    # aliases (hidden_size for GPT-2's n_embd, ...) replace the default they stand for
    aliases = getattr(config_cls, "attribute_map", {}) or {}
    given = {aliases.get(k, k) for k in options}
    kwargs = {k: v for k, v in spec.defaults.items() if aliases.get(k, k) not in given}
    kwargs.update(options)
    try:
        config = config_cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise SkewError(f"transformers' {spec.config} rejected the options {sorted(options)}: {err}") from None
    if spec.kind == "text":
        seq_len = positive_int("seq_len", _SEQ_LEN if seq_len is None else seq_len, 32)
        limit = getattr(config, spec.positions)
        if seq_len > limit:
            raise SkewError(f"seq_len={seq_len} exceeds model {name!r}'s {spec.positions}={limit}; "
                            f"pass a shorter seq_len or {spec.positions}={seq_len}")
    return transformers, spec, config


def hf_builder(name: str) -> Callable[..., nn.Module]:
    """The builder of ``hf:*`` model ``name``: options are config fields (plus ``seq_len`` for text models).

    Example:
        >>> build = hf_builder("hf:llama")  # doctest: +SKIP
        >>> type(build(num_hidden_layers=1)).__name__  # doctest: +SKIP
        'LlamaForCausalLM'
    """
    _spec(name)

    def build(**options) -> nn.Module:
        transformers, spec, config = _config(name, options)
        try:
            return getattr(transformers, spec.model)(config)
        except (TypeError, ValueError) as err:
            raise SkewError(f"transformers' {spec.model} rejected the options {sorted(options)}: {err}") from None

    build.__name__ = name
    return build


def hf_input_shape(name: str, **options) -> tuple[int, ...]:
    """Per-sample input shape of an ``hf:*`` model: ``(seq_len,)`` token ids, or ``(C, H, W)`` images.

    Example:
        >>> hf_input_shape("hf:bert", seq_len=16)
        (16,)
        >>> hf_input_shape("hf:vit", image_size=64)
        (3, 64, 64)
    """
    _, spec, config = _config(name, options)  # checks the options as building would
    if spec.kind == "text":
        return (options.get("seq_len", _SEQ_LEN),)
    return (int(config.num_channels), int(config.image_size), int(config.image_size))


# ---- timm --------------------------------------------------------------------------------------------
def _timm_arch(name: str):
    """(timm, architecture) for ``timm:NAME``; an unknown NAME raises with the close matches."""
    arch = name.split(":", 1)[1]
    timm = _import("timm", name)
    if not arch or not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        hint = f"close matches: {', '.join(close)}" if close else "see timm.list_models()"
        raise SkewError(f"timm has no architecture {arch!r} (from {name!r}); {hint}")
    return timm, arch


def _pretrained_cfg(timm, arch: str) -> dict:
    try:
        cfg = timm.models.get_pretrained_cfg(arch)
    except Exception:  # an architecture without a default pretrained config
        return {}
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(vars(cfg)) if cfg is not None else {}


def timm_builder(name: str) -> Callable[..., nn.Module]:
    """The builder of ``timm:NAME``: ``timm.create_model(NAME, pretrained=False, **options)``.

    ``image_size`` is skew's option: it sets :func:`timm_input_shape` and, for architectures with a
    fixed input size, timm's ``img_size``. ``pretrained`` is refused (skew never downloads weights).

    Example:
        >>> net = timm_builder("timm:resnet18")(num_classes=10)  # doctest: +SKIP
    """
    timm, arch = _timm_arch(name)

    def build(image_size: int | None = None, **options) -> nn.Module:
        if options.get("pretrained"):
            raise SkewError(f"{name!r} is built with random weights only (skew never downloads); load "
                            "pretrained weights yourself and pass the model to skew.report")
        options.pop("pretrained", None)
        if image_size is not None:
            image_size = positive_int("image_size", image_size, 32)
            if _pretrained_cfg(timm, arch).get("fixed_input_size") and "img_size" not in options:
                options["img_size"] = image_size
        try:
            return timm.create_model(arch, pretrained=False, **options)
        except (TypeError, ValueError, AssertionError) as err:
            raise SkewError(f"timm's {arch} rejected the options {sorted(options)}: {err}") from None

    build.__name__ = name
    return build


def timm_input_shape(name: str, **options) -> tuple[int, ...]:
    """Per-sample input shape of ``timm:NAME``: (in_chans, H, W) from ``image_size``, ``img_size`` or
    the architecture's ``pretrained_cfg.input_size``.

    Example:
        >>> timm_input_shape("timm:resnet18", image_size=32)  # doctest: +SKIP
        (3, 32, 32)
    """
    timm, arch = _timm_arch(name)
    default = tuple(_pretrained_cfg(timm, arch).get("input_size") or (3, 224, 224))
    chans = positive_int("in_chans", options.get("in_chans", default[0]), 32)
    size = options.get("image_size", options.get("img_size"))
    if size is None:
        return (chans, int(default[1]), int(default[2]))
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return (chans, positive_int("img_size", size[0], 32), positive_int("img_size", size[1], 32))
    size = positive_int("image_size", size, 32)
    return (chans, size, size)
