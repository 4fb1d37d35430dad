"""Built-in models for skew's experiments, by name: ``build_model("mlp", depth=3)``.

Names (:func:`model_names`):

- ``mlp``: the bias-free ReLU MLP of the Table 1 reference experiment (docs/experiments.md) (see :func:`mlp`).
- ``cnn``: a small 3-conv network for 3×32×32 images or 1×8×8 digits (see :func:`cnn`).
- ``resnet18``, ``resnet50``, ``mobilenet_v3_small``, ``efficientnet_v2_s``, ``vit_b_16``:
  torchvision's architectures built with ``weights=None`` (never downloads anything); options
  ``num_classes`` (default 1000) and ``image_size`` (default 224; for ``vit_b_16`` it sets the
  patch grid, for the convnets only :func:`input_shape`), other keywords go to torchvision.
- ``transformer``: a small ``nn.TransformerEncoder`` classifier on float token embeddings of shape
  (seq_len, in_features) (see :func:`transformer`).
- ``hf:gpt2``, ``hf:bert``, ``hf:llama``, ``hf:vit``: small Hugging Face ``transformers`` models built
  offline from configs, options being config fields (``n_layer=2``); and ``timm:NAME``, any ``timm``
  architecture, never pretrained (see :mod:`skew.models_hub`; extras ``neuron-skew[hf]``, ``neuron-skew[timm]``).
- ``"pkg.module:factory"``: imports ``pkg.module`` and returns ``factory(**options)`` (the prefixes
  ``hf:`` and ``timm:`` are taken by the entries above).

Layers are named after what they are (``fc1``, ``conv2``, ...), so reports read without an index.

Example:
    >>> from skew.models import build_model, input_shape
    >>> net = build_model("mlp", depth=2, width=16)
    >>> input_shape("mlp", depth=2, width=16)
    (16,)
    >>> [name for name, _ in net.named_children()]
    ['act1', 'fc1', 'act2', 'fc2']
"""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from skew import models_hub
from skew._checks import positive_int
from skew._factory import import_factory
from skew.errors import SkewError

__all__ = [
    "ACTIVATIONS",
    "TokenTransformer",
    "build_model",
    "cnn",
    "input_shape",
    "mlp",
    "model_names",
    "transformer",
]

#: Activation names accepted by :func:`mlp`, :func:`cnn` and :func:`transformer`.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}

_TORCHVISION = ("resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_v2_s", "vit_b_16")


def _activation(activation: str) -> nn.Module:
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise SkewError(f"unknown activation {activation!r}; valid activations are {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[activation]()


def _flag(name: str, value) -> bool:
    """A yes/no option: True/False (or 1/0; 'true'/'false' as typed on the command line, ``-o bias=false``).

    Anything else is refused: ``bool('no')`` is True, so ``bias='no'`` would silently build biases.
    """
    if value is None or isinstance(value, (bool, np.bool_)):  # None: no (as bool(None) always read)
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise SkewError(f"{name}={value!r} must be True or False; pass e.g. {name}=False")


def mlp(
    depth: int = 3,
    width: int = 1000,
    in_features: int | None = None,
    out_features: int | None = None,
    activation: str = "relu",
    bias: bool = False,
    pre_activation: bool = True,
) -> nn.Sequential:
    """A multilayer perceptron of ``depth`` Linear layers named ``fc1`` .. ``fc{depth}``.

    Feature sizes: in_features → width → ... → width → out_features (``in_features`` and
    ``out_features`` default to ``width``). With ``pre_activation=True`` (the default) every Linear
    is preceded by the activation, ``act_k → fc_k``, and no activation follows the last one:

    .. math:: h_0 = x,\\quad h_k = W_k\\,\\phi(h_{k-1}) \\;(+ b_k)

    so with the defaults (ReLU, no bias, width 1000, depth 3) fed N(0, 1) inputs this is exactly
    Table 1 of docs/experiments.md, "ReLU before every Linear": every layer, the first included,
    sees post-ReLU inputs with mean > 0, as Theorem 1 needs. ``pre_activation=False`` gives the
    usual ``fc1 → act1 → ... → fc{depth}``.

    Example:
        >>> net = mlp(depth=2, width=8, in_features=4, out_features=3, pre_activation=False)
        >>> net(torch.randn(5, 4)).shape
        torch.Size([5, 3])
    """
    depth = positive_int("depth", depth)
    width = positive_int("width", width)
    in_features = width if in_features is None else positive_int("in_features", in_features)
    out_features = width if out_features is None else positive_int("out_features", out_features)
    _activation(activation)
    bias, pre_activation = _flag("bias", bias), _flag("pre_activation", pre_activation)
    sizes = [in_features] + [width] * (depth - 1) + [out_features]
    parts: list[tuple[str, nn.Module]] = []
    for k in range(1, depth + 1):
        if pre_activation:
            parts.append((f"act{k}", _activation(activation)))
        parts.append((f"fc{k}", nn.Linear(sizes[k - 1], sizes[k], bias=bool(bias))))
        if not pre_activation and k < depth:
            parts.append((f"act{k}", _activation(activation)))
    return nn.Sequential(OrderedDict(parts))


def cnn(
    in_channels: int = 3,
    num_classes: int = 10,
    width: int = 16,
    image_size: int | None = None,
    activation: str = "relu",
    bias: bool = True,
) -> nn.Sequential:
    """A small CNN: three 3×3 convolutions (width, 2·width, 4·width), a 2×2 max-pool after the
    second, global average pooling and a Linear classifier ``fc``.

    ``conv1 → act1 → conv2 → act2 → pool → conv3 → act3 → gap → flatten → fc``. Padding keeps
    the spatial size, so any image of side ≥ 2 works; ``image_size`` only sets :func:`input_shape`
    (default 8 for ``in_channels=1``, i.e. sklearn's 8×8 digits, else 32).

    Example:
        >>> net = cnn(in_channels=1, width=4)
        >>> net(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    in_channels = positive_int("in_channels", in_channels)
    num_classes = positive_int("num_classes", num_classes)
    w = positive_int("width", width)
    if image_size is not None and positive_int("image_size", image_size) < 2:
        raise SkewError(f"image_size={image_size} is too small for the 2×2 pooling; pass image_size >= 2")
    _activation(activation)
    bias = _flag("bias", bias)
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, w, 3, padding=1, bias=bias)),
        ("act1", _activation(activation)),
        ("conv2", nn.Conv2d(w, 2 * w, 3, padding=1, bias=bias)),
        ("act2", _activation(activation)),
        ("pool", nn.MaxPool2d(2)),
        ("conv3", nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=bias)),
        ("act3", _activation(activation)),
        ("gap", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(4 * w, num_classes)),
    ]))


class TokenTransformer(nn.Module):
    """Token classifier: ``embed`` (Linear) → ``encoder`` (nn.TransformerEncoder) → mean over tokens → ``head``.

    Input: float tensor (batch, seq_len, in_features). There is no positional encoding (tokens are
    a set; add one yourself if order matters). The encoder runs sequence-first internally, which
    keeps PyTorch's fused inference path off so forward hooks on its Linear layers
    (``linear1``/``linear2``) fire in eval mode too.
    """

    def __init__(self, in_features: int, d_model: int, nhead: int, num_layers: int, dim_feedforward: int,
                 num_classes: int, activation: str, dropout: float) -> None:
        super().__init__()
        d_model = positive_int("d_model", d_model)
        nhead = positive_int("nhead", nhead)
        if d_model % nhead:
            raise SkewError(f"d_model={d_model} is not divisible by nhead={nhead}; pick e.g. d_model={nhead * 16}")
        if not callable(activation) and (not isinstance(activation, str) or activation not in ("relu", "gelu")):
            raise SkewError(f"transformer activation must be one of relu, gelu; got {activation!r}")
        try:
            rate = float(dropout)
        except (TypeError, ValueError):
            rate = math.nan
        if isinstance(dropout, bool) or not 0.0 <= rate < 1.0:
            raise SkewError(f"dropout={dropout!r} must lie in [0, 1); pass e.g. dropout=0.0")
        self.embed = nn.Linear(positive_int("in_features", in_features), d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, positive_int("dim_feedforward", dim_feedforward),
                                           dropout=rate, activation=activation, batch_first=False)
        self.encoder = nn.TransformerEncoder(layer, positive_int("num_layers", num_layers), enable_nested_tensor=False)
        self.head = nn.Linear(d_model, positive_int("num_classes", num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise SkewError(
                f"TokenTransformer expects (batch, seq_len, features) floats, got shape {tuple(x.shape)}; "
                "reshape your batch or build the data with shape=input_shape('transformer', ...)"
            )
        h = self.encoder(self.embed(x).transpose(0, 1))
        return self.head(h.mean(dim=0))


def transformer(
    seq_len: int = 16,
    in_features: int | None = None,
    d_model: int = 64,
    nhead: int = 4,
    num_layers: int = 2,
    dim_feedforward: int = 128,
    num_classes: int = 10,
    activation: str = "relu",
    dropout: float = 0.0,
) -> TokenTransformer:
    """A small Transformer-encoder classifier on float token embeddings (see :class:`TokenTransformer`).

    Input per sample: (seq_len, in_features) floats (``in_features`` defaults to ``d_model``), so
    the built-in Gaussian/uniform data feed it directly. ``seq_len`` only sets :func:`input_shape`.
    ``activation`` is ``relu`` or ``gelu`` (the encoder's feed-forward nonlinearity).

    Example:
        >>> net = transformer(d_model=8, nhead=2, num_layers=1, dim_feedforward=16)
        >>> net(torch.randn(3, 5, 8)).shape
        torch.Size([3, 10])
    """
    d_model = positive_int("d_model", d_model)
    positive_int("seq_len", seq_len)  # only checked: it sets input_shape()
    in_features = d_model if in_features is None else in_features
    return TokenTransformer(in_features, d_model, nhead, num_layers, dim_feedforward, num_classes, activation,
                            dropout)


def _torchvision_builder(name: str) -> Callable[..., nn.Module]:
    try:
        import torchvision.models as tvm
    except ImportError:
        raise SkewError(
            f"model {name!r} needs torchvision, which is not installed; run `pip install 'neuron-skew[vision]'`"
        ) from None
    fn = getattr(tvm, name)

    def build(num_classes: int = 1000, image_size: int = 224, **kwargs) -> nn.Module:
        num_classes, image_size = positive_int("num_classes", num_classes), positive_int("image_size", image_size)
        if name == "vit_b_16":
            if image_size % 16:
                raise SkewError(f"vit_b_16 needs image_size divisible by 16 (patch size), got {image_size}")
            kwargs["image_size"] = image_size
        try:
            return fn(weights=None, num_classes=num_classes, **kwargs)
        except TypeError as err:
            raise SkewError(f"torchvision's {name} rejected the options {sorted(kwargs)}: {err}") from None

    return build


_BUILTIN: dict[str, Callable[..., nn.Module]] = {"mlp": mlp, "cnn": cnn, "transformer": transformer}


def model_names() -> list[str]:
    """Names :func:`build_model` knows (``"timm:NAME"`` and ``"pkg.module:factory"`` work too).

    Example:
        >>> "mlp" in model_names() and "resnet18" in model_names()
        True
    """
    return ["mlp", "cnn", *_TORCHVISION, "transformer", *models_hub.HF_MODELS]


def _external(spec: str) -> Callable[..., nn.Module]:
    return import_factory(spec, "model", "mypkg.nets:make_net")


def _check_options(name: str, fn: Callable, options: dict, extra: tuple[str, ...] = ()) -> None:
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()) and name not in _BUILTIN:
        return
    valid = [p for p in params if params[p].kind is not inspect.Parameter.VAR_KEYWORD] + list(extra)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise SkewError(f"model {name!r} takes no option {', '.join(unknown)}; its options are {', '.join(valid)}")


def _resolve(name: str) -> Callable[..., nn.Module]:
    if not isinstance(name, str):
        raise SkewError(f"model name must be a string such as 'mlp', got {type(name).__name__}")
    if name in _BUILTIN:
        return _BUILTIN[name]
    if name in _TORCHVISION:
        return _torchvision_builder(name)
    if name.startswith("hf:"):
        return models_hub.hf_builder(name)
    if name.startswith("timm:"):
        return models_hub.timm_builder(name)
    if ":" in name:
        return _external(name)
    raise SkewError(
        f"unknown model {name!r}; valid models are {', '.join(model_names())}, 'timm:NAME' (any timm "
        "architecture), or 'pkg.module:factory'"
    )


def build_model(name: str, **options) -> nn.Module:
    """Build a model by name with keyword options (see the module docstring for names and options).

    ``"pkg.module:factory"`` imports ``pkg.module`` and calls ``factory(**options)``, which must
    return an ``nn.Module``. Unknown names or options raise :class:`SkewError` listing the valid ones.

    Example:
        >>> net = build_model("cnn", in_channels=1, width=4)
        >>> sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
        3
    """
    fn = _resolve(name)
    _check_options(name, fn, options)
    try:
        model = fn(**options)
    except SkewError:
        raise
    except TypeError as err:
        raise SkewError(f"model {name!r} rejected the options {sorted(options)}: {err}") from None
    if not isinstance(model, nn.Module):
        raise SkewError(f"model factory {name!r} returned {type(model).__name__}, not a torch.nn.Module; return the model")
    return model


def input_shape(name: str, **options) -> tuple[int, ...]:
    """Per-sample input shape of the model ``build_model(name, **options)`` would build (no batch dim).

    mlp: (in_features,); cnn: (in_channels, s, s) with s = image_size (default 8 for one channel,
    else 32); torchvision models: (3, s, s), s = image_size (default 224); transformer: (seq_len,
    in_features); ``hf:gpt2/bert/llama``: (seq_len,) token ids (default 64); ``hf:vit``: (3, 32, 32);
    ``timm:NAME``: (in_chans, s, s) from ``image_size`` or the architecture's default. A
    ``"pkg.module:factory"`` answers when the factory has an ``input_shape`` attribute (a tuple, or a callable taking the same options); otherwise :class:`SkewError`.

    Example:
        >>> input_shape("cnn", in_channels=1)
        (1, 8, 8)
        >>> input_shape("resnet18", image_size=64)
        (3, 64, 64)
    """
    fn = _resolve(name)
    _check_options(name, fn, options)
    def size(key: str, default: int) -> int:  # checked as build_model checks it (0, -3, 'abc', NaN: named)
        value = options.get(key)
        return default if value is None else positive_int(key, value)

    if name == "mlp":
        return (size("in_features", size("width", 1000)),)
    if name == "cnn":
        c = size("in_channels", 3)
        s = size("image_size", 8 if c == 1 else 32)
        return (c, s, s)
    if name in _TORCHVISION:
        s = size("image_size", 224)
        return (3, s, s)
    if name == "transformer":
        return (size("seq_len", 16), size("in_features", size("d_model", 64)))
    if name.startswith("hf:"):
        return models_hub.hf_input_shape(name, **options)
    if name.startswith("timm:"):
        return models_hub.timm_input_shape(name, **options)
    shape = getattr(fn, "input_shape", None)
    if callable(shape):
        shape = shape(**options)
    if shape is None:
        raise SkewError(
            f"cannot tell the input shape of {name!r}; give the factory an `input_shape` attribute "
            "(a tuple, or a function of the same options)"
        )
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise SkewError(f"{name!r}.input_shape gave {shape!r}; it must be a tuple of ints such as (3, 32, 32)") from None
    if not shape or any(s < 1 or not math.isfinite(s) for s in shape):
        raise SkewError(f"{name!r}.input_shape gave {shape!r}; every size must be a positive integer")
    return shape
