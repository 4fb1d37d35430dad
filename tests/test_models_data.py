"""skew.models and skew.data: built-in models build and run on their input shape; data is shaped,
reproducible, and has the law it claims; every bad input gets a SkewError that names the fix."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from skew.data import build_data, data_names, digits_dataset, digits_tensors
from skew.errors import SkewError
from skew.models import build_model, input_shape, model_names


# ---- models -----------------------------------------------------------------------------------------
def test_model_names():
    assert model_names() == ["mlp", "cnn", "resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_v2_s",
                             "vit_b_16", "transformer", "hf:gpt2", "hf:bert", "hf:llama", "hf:vit"]


@pytest.mark.parametrize("name, options", [
    ("mlp", {"depth": 3, "width": 32}),
    ("mlp", {"depth": 1, "width": 8, "in_features": 5, "out_features": 2, "activation": "tanh"}),
    ("cnn", {"width": 4}),
    ("cnn", {"in_channels": 1, "num_classes": 10, "width": 4}),
    ("transformer", {"d_model": 16, "nhead": 2, "num_layers": 1, "dim_feedforward": 32, "seq_len": 5}),
])
def test_small_models_run_forward_on_their_input_shape(name, options):
    model = build_model(name, **options).eval()
    shape = input_shape(name, **options)
    with torch.no_grad():
        out = model(torch.randn(3, *shape))
    assert out.shape[0] == 3 and out.dim() == 2 and torch.isfinite(out).all()


def test_mlp_reference_experiment_relu_before_every_linear():
    net = build_model("mlp", depth=3, width=40)
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert len(linears) == 3 and all(m.bias is None for m in linears)
    assert all(m.weight.shape == (40, 40) for m in linears)
    assert [type(m) for m in net] == [nn.ReLU, nn.Linear] * 3  # ReLU → Linear blocks, logits at the end
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(inp[0])) for m in linears]
    try:
        net(torch.randn(64, 40))  # N(0,1) inputs
    finally:
        for h in hooks:
            h.remove()
    assert all((x >= 0).all() for x in seen)  # every Linear, the first too, sees post-ReLU inputs
    assert (seen[0] == 0).float().mean() == pytest.approx(0.5, abs=0.05)
    assert input_shape("mlp") == (1000,)


def test_mlp_options():
    net = build_model("mlp", depth=2, width=6, in_features=3, out_features=2, bias=True, pre_activation=False,
                      activation="gelu")
    assert [name for name, _ in net.named_children()] == ["fc1", "act1", "fc2"]
    assert isinstance(net.act1, nn.GELU) and net.fc1.bias is not None
    assert (net.fc1.in_features, net.fc2.out_features) == (3, 2)
    with pytest.raises(SkewError, match="relu, tanh, gelu, silu, identity"):
        build_model("mlp", activation="swish")
    with pytest.raises(SkewError, match="depth=0"):
        build_model("mlp", depth=0)


def test_cnn_input_shapes_and_structure():
    assert input_shape("cnn") == (3, 32, 32)
    assert input_shape("cnn", in_channels=1) == (1, 8, 8)
    assert input_shape("cnn", image_size=16) == (3, 16, 16)
    net = build_model("cnn", width=4, num_classes=7)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16] and net.fc.out_features == 7


def test_transformer_hooks_fire_in_eval_mode():
    """The fused inference fast path would bypass the Linear layers' hooks; the model keeps it off."""
    net = build_model("transformer", d_model=16, nhead=2, num_layers=2, dim_feedforward=32).eval()
    fired = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: fired.append(n))
             for n, m in net.named_modules() if isinstance(m, nn.Linear) and "linear" in n]
    try:
        with torch.no_grad():
            net(torch.randn(2, *input_shape("transformer", d_model=16)))
    finally:
        for h in hooks:
            h.remove()
    assert sorted(fired) == sorted(f"encoder.layers.{k}.linear{j}" for k in (0, 1) for j in (1, 2))
    with pytest.raises(SkewError, match="divisible"):
        build_model("transformer", d_model=10, nhead=3)


def test_torchvision_resnet18_tiny_forward():
    net = build_model("resnet18", num_classes=5).eval()
    assert input_shape("resnet18") == (3, 224, 224)
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_torchvision_mobilenet_tiny_forward():
    net = build_model("mobilenet_v3_small", num_classes=3).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 32, 32)).shape == (1, 3)


@pytest.mark.slow
def test_torchvision_big_models_construct():
    assert build_model("resnet50", num_classes=4).fc.out_features == 4
    assert build_model("efficientnet_v2_s", num_classes=4).classifier[-1].out_features == 4
    vit = build_model("vit_b_16", image_size=32, num_classes=4)
    assert vit.image_size == 32 and vit.heads.head.out_features == 4
    assert input_shape("vit_b_16", image_size=32) == (3, 32, 32)


def test_model_errors():
    with pytest.raises(SkewError, match="valid models are mlp, cnn, resnet18"):
        build_model("resnet19")
    with pytest.raises(SkewError, match="no option widht; its options are depth, width"):
        build_model("mlp", widht=3)
    with pytest.raises(SkewError, match="no option"):
        input_shape("cnn", colour=True)
    with pytest.raises(SkewError, match="divisible by 16"):
        build_model("vit_b_16", image_size=40)
    with pytest.raises(SkewError, match="rejected"):
        build_model("resnet18", not_an_option=1)


def test_missing_torchvision_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(SkewError, match=r"pip install 'neuron-skew\[vision\]'"):
        build_model("resnet18")


@pytest.fixture
def user_pkg(tmp_path, monkeypatch):
    (tmp_path / "h4_user_pkg.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def net(width=4):
            return nn.Linear(3, width)
        net.input_shape = (3,)

        def sized(n=2):
            return nn.Linear(n, 1)
        sized.input_shape = lambda n=2: (n,)

        def not_a_model():
            return 42

        def batches(seed=0):
            g = torch.Generator().manual_seed(seed)
            return torch.randn(10, 3, generator=g)

        def loader(shape, batch_size):
            return [torch.ones(batch_size, *shape) * k for k in range(5)]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "h4_user_pkg"
    sys.modules.pop("h4_user_pkg", None)


def test_external_model_factory(user_pkg):
    net = build_model(f"{user_pkg}:net", width=6)
    assert isinstance(net, nn.Linear) and net.out_features == 6
    assert input_shape(f"{user_pkg}:net") == (3,)
    assert input_shape(f"{user_pkg}:sized", n=5) == (5,)
    with pytest.raises(SkewError, match="not a torch.nn.Module"):
        build_model(f"{user_pkg}:not_a_model")
    with pytest.raises(SkewError, match="no attribute"):
        build_model(f"{user_pkg}:missing")
    with pytest.raises(SkewError, match="cannot import"):
        build_model("no_such_pkg_h4:net")
    with pytest.raises(SkewError, match="input_shape"):
        input_shape(f"{user_pkg}:not_a_model")
    with pytest.raises(SkewError, match="its options are width"):
        build_model(f"{user_pkg}:net", depth=2)


# ---- synthetic data ---------------------------------------------------------------------------------
def test_data_names():
    assert data_names() == ["gaussian", "relu-gaussian", "uniform", "digits", "text"]


@pytest.mark.parametrize("name", ["gaussian", "relu-gaussian", "uniform"])
def test_synthetic_shapes_and_determinism(name):
    a = build_data(name, shape=(3, 4, 4), batch_size=5, batches=3, seed=7)
    b = build_data(name, shape=(3, 4, 4), batch_size=5, batches=3, seed=7)
    c = build_data(name, shape=(3, 4, 4), batch_size=5, batches=3, seed=8)
    assert len(a) == 3 and all(x.shape == (5, 3, 4, 4) and x.dtype == torch.float32 for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[0], a[1])


@pytest.mark.parametrize("name, mean, var", [
    ("gaussian", 0.0, 1.0),
    ("relu-gaussian", 1 / np.sqrt(2 * np.pi), 0.5 - 1 / (2 * np.pi)),
    ("uniform", 0.0, 1 / 3),
])
def test_synthetic_laws_match_their_moments(name, mean, var):
    x = torch.cat(build_data(name, shape=(100,), batch_size=100, batches=4, seed=0)).double()
    assert float(x.mean()) == pytest.approx(mean, abs=0.01)
    assert float(x.var()) == pytest.approx(var, rel=0.03)
    if name == "uniform":
        assert float(x.abs().max()) <= 1.0
    if name == "relu-gaussian":
        assert float(x.min()) == 0.0 and float((x == 0).double().mean()) == pytest.approx(0.5, abs=0.02)


# ---- digits -----------------------------------------------------------------------------------------
def test_digits_pixels_and_labels():
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = digits_tensors((64,), seed=None)
    u = d.data / 16.0
    assert np.allclose(x.numpy(), (u - u.mean()) / u.std(), atol=1e-5)
    assert np.array_equal(y.numpy(), d.target)
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-5) and float(x.std()) == pytest.approx(1.0, abs=1e-3)
    # shuffling keeps every image with its own label
    xs, ys = digits_tensors((64,), seed=3)
    match = torch.cdist(xs, x).argmin(dim=1)
    assert torch.equal(ys, y[match]) and not torch.equal(ys, y)


def test_digits_shapes_for_image_models_and_mlps():
    flat, _ = digits_tensors((64,), seed=0)
    img, _ = digits_tensors((1, 8, 8), seed=0)
    assert torch.equal(img.reshape(-1, 64), flat)
    rgb, _ = digits_tensors((3, 32, 32), seed=0)
    assert rgb.shape == (1797, 3, 32, 32)
    assert torch.equal(rgb[:, 0], rgb[:, 1]) and torch.equal(rgb[:, 0], rgb[:, 2])
    # bilinear resizing keeps the image: a 4× upsample averaged back over 4×4 blocks correlates with it
    back = rgb[:, 0].reshape(-1, 8, 4, 8, 4).mean(dim=(2, 4))
    assert float(np.corrcoef(back.ravel().numpy(), img[:, 0].ravel().numpy())[0, 1]) > 0.95
    assert digits_tensors((100,))[0].shape == (1797, 100)
    assert digits_tensors((50,))[0].shape == (1797, 50)
    with pytest.raises(SkewError, match=r"\(F,\) for an MLP or \(C, H, W\)"):
        digits_tensors((8, 8))


def test_build_data_digits_batches():
    batches = build_data("digits", shape=(1, 8, 8), batch_size=32, batches=3, seed=0)
    assert len(batches) == 3
    for x, y in batches:
        assert x.shape == (32, 1, 8, 8) and y.dtype == torch.int64 and y.min() >= 0 and y.max() <= 9
    first = torch.cat([x for x, _ in batches])
    assert torch.equal(first, digits_tensors((1, 8, 8), seed=0)[0][:96])
    assert len(build_data("digits", shape=(64,), batch_size=500, batches=None)) == 4
    with pytest.raises(SkewError, match="at most 28 batches of 64"):
        build_data("digits", shape=(64,), batch_size=64, batches=30)


def test_digits_dataset_fixed_split():
    train, val = digits_dataset((64,), seed=0)
    train2, val2 = digits_dataset((64,), seed=0)
    assert (len(train), len(val)) == (1438, 359)
    assert torch.equal(val.tensors[0], val2.tensors[0]) and torch.equal(train.tensors[1], train2.tensors[1])
    assert set(train.tensors[1].tolist()) == set(range(10)) == set(val.tensors[1].tolist())
    def rows(x):
        return sorted(r.tobytes() for r in x.numpy())

    # a partition of the whole dataset: every image exactly once, in train or in val
    assert rows(torch.cat([train.tensors[0], val.tensors[0]])) == rows(digits_tensors((64,), seed=None)[0])
    with pytest.raises(SkewError, match="val_fraction"):
        digits_dataset(val_fraction=1.5)


def test_missing_sklearn_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(SkewError, match=r"pip install 'neuron-skew\[data\]'"):
        build_data("digits", shape=(64,))


# ---- text --------------------------------------------------------------------------------------------
def test_text_tokens_are_the_bytes_of_pythons_own_docs():
    import pydoc_data.topics

    from skew.data import text_tokens

    tokens = text_tokens()
    topics = pydoc_data.topics.topics
    expected = b"".join(topics[k].encode("utf-8") for k in sorted(topics))
    assert tokens.dtype == torch.int64 and bytes(tokens.to(torch.uint8).tolist()) == expected
    assert 0 < int(tokens.min()) and int(tokens.max()) < 256  # byte vocabulary; 0 is free for padding


def test_text_batches_are_shuffled_windows_of_the_corpus():
    from skew.data import text_batches, text_tokens

    corpus = text_tokens()
    batches = build_data("text", shape=(32,), batch_size=8, batches=3, seed=4)
    assert len(batches) == 3
    starts = []
    for b in batches:
        assert set(b) == {"input_ids", "attention_mask"}
        assert b["input_ids"].shape == b["attention_mask"].shape == (8, 32)
        assert b["input_ids"].dtype == b["attention_mask"].dtype == torch.int64
        assert bool((b["attention_mask"] == 1).all())
        for row in b["input_ids"]:  # each sequence is window k of the corpus: tokens [32k, 32k + 32)
            hits = [k for k in range(len(corpus) // 32) if torch.equal(corpus[32 * k:32 * k + 32], row)]
            assert hits
            starts.append(hits[0])
    assert len(set(starts)) == 24 and starts != sorted(starts)  # distinct windows, shuffled
    again = build_data("text", shape=(32,), batch_size=8, batches=3, seed=4)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches, again))
    other = build_data("text", shape=(32,), batch_size=8, batches=3, seed=5)
    assert not torch.equal(other[0]["input_ids"], batches[0]["input_ids"])
    assert build_data("text", batch_size=2, batches=1)[0]["input_ids"].shape == (2, 64)  # default seq_len
    n = len(corpus) // 4096
    everything = text_batches(seq_len=4096, batch_size=16, batches=None)
    assert sum(len(b["input_ids"]) for b in everything) == n and len(everything) == -(-n // 16)


def test_ragged_text_batches_pad_on_the_right():
    from skew.data import text_batches

    plain, = text_batches(seq_len=24, batch_size=32, batches=1, seed=3)
    ragged, = text_batches(seq_len=24, batch_size=32, batches=1, seed=3, ragged=True)
    mask, lengths = ragged["attention_mask"], ragged["attention_mask"].sum(1)
    assert torch.equal(ragged["input_ids"], plain["input_ids"] * mask)  # same windows, padded with 0
    assert lengths.min() >= 1 and lengths.max() <= 24 and len(set(lengths.tolist())) > 5
    assert torch.equal(mask, (torch.arange(24) < lengths[:, None]).long())  # ones, then zeros


def test_text_errors():
    with pytest.raises(SkewError, match=r"shape must be \(seq_len,\)"):
        build_data("text", shape=(3, 8, 8))
    with pytest.raises(SkewError, match="at most .* batches of 64"):
        build_data("text", shape=(4096,), batch_size=64, batches=10)
    with pytest.raises(SkewError, match="longer than the whole text"):
        build_data("text", shape=(10**7,), batch_size=1, batches=1)


# ---- files and factories ----------------------------------------------------------------------------
def test_pt_files(tmp_path):
    x = torch.randn(10, 3)
    torch.save(x, tmp_path / "x.pt")
    batches = build_data(tmp_path / "x.pt", shape=(3,), batch_size=4, batches=None)
    assert [len(b) for b in batches] == [4, 4, 2] and torch.equal(torch.cat(batches), x)
    assert len(build_data(str(tmp_path / "x.pt"), shape=(3,), batch_size=4, batches=2)) == 2
    y = torch.arange(10)
    torch.save((x, y), tmp_path / "xy.pt")
    pairs = build_data(str(tmp_path / "xy.pt"), shape=(3,), batch_size=5)
    assert len(pairs) == 2 and torch.equal(pairs[1][1], y[5:])
    torch.save([x[:2], x[2:]], tmp_path / "list.pt")
    assert [len(b) for b in build_data(str(tmp_path / "list.pt"), shape=(3,))] == [2, 8]
    with pytest.raises(SkewError, match=r"samples of shape \(3,\) but the model expects \(4,\)"):
        build_data(str(tmp_path / "x.pt"), shape=(4,))
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")
    with pytest.raises(SkewError, match="weights_only=True"):
        build_data(str(tmp_path / "module.pt"), shape=(2,))
    with pytest.raises(SkewError, match="does not exist"):
        build_data(str(tmp_path / "nope.pt"), shape=(3,))


def test_npy_files(tmp_path):
    arr = np.arange(24, dtype=np.float64).reshape(6, 2, 2)
    np.save(tmp_path / "a.npy", arr)
    batches = build_data(str(tmp_path / "a.npy"), shape=(2, 2), batch_size=4)
    assert batches[0].dtype == torch.float32 and [len(b) for b in batches] == [4, 2]
    assert np.array_equal(torch.cat(batches).numpy(), arr)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SkewError, match="without pickle"):
        build_data(str(tmp_path / "obj.npy"), shape=(1,))


def test_data_factories(user_pkg):
    a = build_data(f"{user_pkg}:batches", shape=(3,), batch_size=4, seed=1)
    b = build_data(f"{user_pkg}:batches", shape=(3,), batch_size=4, seed=1)
    assert [len(t) for t in a] == [4, 4, 2] and torch.equal(a[0], b[0])
    out = build_data(f"{user_pkg}:loader", shape=(2,), batch_size=3, batches=2)
    assert len(out) == 2 and out[1].shape == (3, 2) and float(out[1][0, 0]) == 1.0


def test_data_errors():
    with pytest.raises(SkewError, match="valid data are gaussian, relu-gaussian, uniform, digits"):
        build_data("cifar", shape=(3,))
    with pytest.raises(SkewError, match="needs shape="):
        build_data("gaussian")
    with pytest.raises(SkewError, match="batch_size=0"):
        build_data("gaussian", shape=(3,), batch_size=0)
    with pytest.raises(SkewError, match="unbounded"):
        build_data("gaussian", shape=(3,), batches=None)
    with pytest.raises(SkewError, match="positive sizes"):
        build_data("uniform", shape=(0, 3))
