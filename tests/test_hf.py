"""Hugging Face transformers and timm models end to end: built offline from small configs, measured by
report, initialized by init.apply (as_built = the library's own init), compared; dict batches from a
Hugging Face style DataLoader; optional imports stay optional."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may touch the hub
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import skew  # noqa: E402
from skew.batches import model_inputs  # noqa: E402
from skew.data import build_data, text_batches  # noqa: E402
from skew.errors import SkewError  # noqa: E402
from skew.layers import is_layer  # noqa: E402
from skew.models import build_model, input_shape, model_names  # noqa: E402

TEXT = dict(seq_len=16)
GPT2 = dict(n_embd=32, n_head=4, n_layer=2, **TEXT)
BERT = dict(hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=64, **TEXT)
LLAMA = dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
             intermediate_size=64, **TEXT)
HF_VIT = dict(hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=64)
TIMM_VIT = dict(image_size=32, patch_size=8, depth=2, num_classes=10)

#: (model name, options, package) for the end-to-end tests.
MODELS = [
    ("hf:gpt2", GPT2, "transformers"),
    ("hf:bert", BERT, "transformers"),
    ("hf:llama", LLAMA, "transformers"),
    ("hf:vit", HF_VIT, "transformers"),
    ("timm:vit_tiny_patch16_224", TIMM_VIT, "timm"),
    ("timm:convnext_atto", dict(image_size=32, num_classes=10), "timm"),
    ("timm:resnet18", dict(image_size=32, num_classes=10), "timm"),
]


def _data(name: str, options: dict, batch_size: int = 4, batches: int = 2, seed: int = 0) -> list:
    shape = input_shape(name, **options)
    kind = "text" if len(shape) == 1 else "digits"
    return build_data(kind, shape=shape, batch_size=batch_size, batches=batches, seed=seed)


def _layer_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if is_layer(m)]


def _tokens(batches: list) -> int:
    """Samples of a per-token site: every (sequence, position) of text, or every image."""
    return sum(int(b["attention_mask"].numel()) if isinstance(b, dict) else len(b[0]) for b in batches)


# ---- optional imports, names, errors -------------------------------------------------------------------
def test_skew_imports_neither_transformers_nor_timm_for_a_plain_model():
    code = textwrap.dedent("""
        import sys, torch, skew
        import skew.cli, skew.compare, skew.data, skew.models, skew.figures
        net = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(3, 4))
        skew.report(net, [torch.randn(8, 3)])
        skew.init.apply(net, "sinusoidal")
        skew.models.build_model("mlp", depth=1, width=4)
        skew.models.model_names()
        skew.data.build_data("text", shape=(8,), batch_size=2, batches=1)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("transformers", "timm", "huggingface_hub")))
    """)
    root = str(Path(skew.__file__).resolve().parents[1])  # this checkout's skew, wherever pytest runs
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_names_and_input_shapes():
    assert [n for n in model_names() if n.startswith("hf:")] == ["hf:gpt2", "hf:bert", "hf:llama", "hf:vit"]
    assert input_shape("hf:gpt2") == (64,) and input_shape("hf:llama", seq_len=12) == (12,)
    assert input_shape("hf:vit") == (3, 32, 32) and input_shape("hf:vit", image_size=48, num_channels=1) == (1, 48, 48)
    pytest.importorskip("timm")
    assert input_shape("timm:resnet18") == (3, 224, 224)
    assert input_shape("timm:resnet18", image_size=40) == (3, 40, 40)
    assert input_shape("timm:vit_tiny_patch16_224", img_size=48, in_chans=1) == (1, 48, 48)


def test_missing_packages_say_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(SkewError, match=r"needs transformers.*pip install .neuron-skew\[hf\]"):
        build_model("hf:gpt2")
    with pytest.raises(SkewError, match=r"needs timm.*pip install .neuron-skew\[timm\]"):
        build_model("timm:resnet18")
    with pytest.raises(SkewError, match=r"pip install .neuron-skew\[hf\]"):
        input_shape("hf:llama")


def test_bad_names_and_options_get_a_skew_error_naming_the_fix():
    pytest.importorskip("transformers")
    with pytest.raises(SkewError, match="valid ones are hf:gpt2, hf:bert, hf:llama, hf:vit"):
        build_model("hf:gpt3")
    with pytest.raises(SkewError, match="no option n_layers .*did you mean n_layer"):
        build_model("hf:gpt2", n_layers=2)
    with pytest.raises(SkewError, match="no option n_layers"):
        input_shape("hf:gpt2", n_layers=2)
    with pytest.raises(SkewError, match="seq_len=500 exceeds .*n_positions=128"):
        build_model("hf:gpt2", seq_len=500)
    with pytest.raises(SkewError, match="no option seq_len"):
        build_model("hf:vit", seq_len=4)
    with pytest.raises(SkewError, match="divisible"):
        build_model("hf:gpt2", n_embd=30)
    with pytest.raises(SkewError, match="valid models are .*hf:vit, 'timm:NAME'"):
        build_model("gpt2")
    pytest.importorskip("timm")
    with pytest.raises(SkewError, match="timm has no architecture 'resnet81'.*close matches: resnet18"):
        build_model("timm:resnet81")
    with pytest.raises(SkewError, match="never downloads"):
        build_model("timm:resnet18", pretrained=True)
    with pytest.raises(SkewError, match="rejected the options \\['colour'\\]"):
        build_model("timm:resnet18", colour=1)


def test_options_map_onto_the_config():
    pytest.importorskip("transformers")
    gpt2 = build_model("hf:gpt2", n_layer=3, hidden_size=16)  # hidden_size: GPT2Config's alias of n_embd
    assert gpt2.config.n_layer == 3 and len(gpt2.transformer.h) == 3 and gpt2.config.n_embd == 16
    assert gpt2.config.vocab_size == 256 and gpt2.lm_head.out_features == 256  # the text data's bytes
    llama = build_model("hf:llama", **LLAMA)
    assert len(llama.model.layers) == 2 and llama.model.layers[0].self_attn.k_proj.out_features == 16
    vit = build_model("hf:vit", image_size=16, patch_size=8, num_labels=3)
    assert vit(torch.randn(2, 3, 16, 16)).logits.shape == (2, 3)


# ---- as_built is the library's own init ----------------------------------------------------------------
def test_as_built_is_the_libraries_own_init():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(3)
    ours = build_model("hf:llama", **LLAMA)
    config = transformers.LlamaConfig(vocab_size=256, max_position_embeddings=128, bos_token_id=None,
                                      eos_token_id=None, **{k: v for k, v in LLAMA.items() if k != "seq_len"})
    torch.manual_seed(3)
    theirs = transformers.LlamaForCausalLM(config)
    a, b = ours.state_dict(), theirs.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # _init_weights draws N(0, initializer_range = 0.02), not PyTorch's U(±1/sqrt(fan_in)) (std 0.10 here)
    w = ours.model.layers[0].mlp.up_proj.weight
    assert abs(float(w.detach().std()) - 0.02) < 0.003
    timm = pytest.importorskip("timm")
    torch.manual_seed(3)
    ours = build_model("timm:resnet18", num_classes=10)
    torch.manual_seed(3)
    theirs = timm.create_model("resnet18", pretrained=False, num_classes=10)
    a, b = ours.state_dict(), theirs.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---- end to end: report, init.apply, compare -----------------------------------------------------------
@pytest.mark.parametrize("name, options, package", MODELS, ids=[m[0] for m in MODELS])
def test_end_to_end(name, options, package):
    pytest.importorskip(package)
    torch.manual_seed(skew.seeding.child_seed(0, "init"))  # as compare builds seed 0's model (its init stream)
    model = build_model(name, **options)
    batches = _data(name, options)
    layers = _layer_names(model)

    rep = skew.report(model, batches)  # HF dicts (text) and (x, y) tuples (images) without input_fn
    assert sorted(rep.layers["layer"]) == sorted(layers)  # every Linear/Conv, once
    samples = rep.layers["samples"]
    if len(input_shape(name, **options)) == 1:  # text: every layer is per token, B·T samples
        assert (samples == _tokens(batches)).all()
    else:  # images: at least one sample per image (one per position or token in the body)
        assert (samples >= _tokens(batches)).all() and samples.max() > _tokens(batches)
    assert rep.layers["neurons"].sum() == len(rep.neurons) > 0

    before = {k: v.clone() for k, v in model.state_dict().items()}
    for scheme in ("xavier_uniform", "orthogonal", "sinusoidal"):
        table = skew.init.apply(model, scheme, generator=torch.Generator().manual_seed(1))
        set_modules = set(table.loc[table["action"] == "set", "module"])
        assert set(layers) <= set_modules, f"{scheme} left {sorted(set(layers) - set_modules)}"
    modules = dict(model.named_modules())
    for layer in layers:  # sinusoidal is deterministic: every layer's weight is its closed form
        rows = skew.layers.neuron_rows(modules[layer])  # (neurons, inputs): Conv1D is read transposed
        assert torch.equal(rows, skew.init.sinusoidal_(torch.empty_like(rows)))
        assert not torch.equal(modules[layer].weight.detach(), before[f"{layer}.weight"])
    rep2 = skew.report(model, batches)
    assert list(rep2.layers["layer"]) == layers and not rep2.neurons["p"].equals(rep.neurons["p"])

    cmp = skew.compare(partial(build_model, name, **options), batches, ["as_built", "sinusoidal"], seeds=(0,))
    assert set(cmp.layers["init"]) == {"as_built", "sinusoidal"}
    built = cmp.reports[("as_built", 0)].neurons  # as_built = built under seed 0, nothing applied
    pd.testing.assert_frame_equal(built, rep.neurons)
    sin = cmp.reports[("sinusoidal", 0)].neurons
    pd.testing.assert_frame_equal(sin, rep2.neurons)


def test_gpt2_lm_head_stays_tied_and_is_reported_once():
    pytest.importorskip("transformers")
    model = build_model("hf:gpt2", **GPT2)
    assert model.lm_head.weight is model.transformer.wte.weight
    rep = skew.report(model, _data("hf:gpt2", GPT2))
    assert list(rep.layers["layer"]).count("lm_head") == 1 and "transformer.wte" not in set(rep.layers["layer"])
    table = skew.init.apply(model, "sinusoidal")
    assert model.lm_head.weight is model.transformer.wte.weight  # still one tensor, now sinusoidal
    assert torch.equal(model.transformer.wte.weight.detach(),
                       skew.init.sinusoidal_(torch.empty_like(model.lm_head.weight)))
    tied = table[table["name"] == "transformer.wte.weight"]
    assert len(tied) == 1 and tied["action"].item() == "set" and tied["module"].item() == "lm_head"
    assert not table["name"].duplicated().any()


# ---- dict batches from a Hugging Face style DataLoader ------------------------------------------------
def _hf_loader(n: int = 8, seq: int = 12, batch_size: int = 4) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(1, 256, (seq,), generator=g), "attention_mask": torch.ones(seq, dtype=torch.long),
             "labels": torch.tensor(i % 2), "idx": torch.tensor(i)} for i in range(n)]
    return DataLoader(rows, batch_size=batch_size)  # default_collate: dicts of stacked tensors


def test_hf_dataloader_dicts_need_no_input_fn():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=256, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                     intermediate_size=64, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    loader = _hf_loader()
    batch = next(iter(loader))
    args, kwargs = model_inputs(batch, model=model)
    assert args == () and {"input_ids", "attention_mask", "labels"} <= set(kwargs)  # the mask stays
    rep = skew.report(model, loader)
    manual = skew.report(model, loader, input_fn=lambda b: {"input_ids": b["input_ids"],
                                                            "attention_mask": b["attention_mask"]})
    pd.testing.assert_frame_equal(rep.neurons, manual.neurons)  # labels change no activation

    class Named(nn.Module):  # a forward without **kwargs gets only the keys it names
        def __init__(self):
            super().__init__()
            self.embed, self.fc = nn.Embedding(256, 8), nn.Linear(8, 3)

        def forward(self, input_ids, attention_mask=None):
            return self.fc(self.embed(input_ids) * attention_mask[..., None])

    args, kwargs = model_inputs(batch, model=Named())
    assert set(kwargs) == {"input_ids", "attention_mask"}
    assert skew.report(Named(), loader).layers["samples"].item() == 8 * 12


def test_standard_input_key_reaches_a_single_input_model():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.fc = nn.Embedding(256, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.fc(self.embed(x))

    text = text_batches(seq_len=6, batch_size=3, batches=2)
    args, kwargs = model_inputs(text[0], model=Plain())
    assert kwargs == {} and args[0] is text[0]["input_ids"]
    torch.manual_seed(0)
    model = Plain()
    pd.testing.assert_frame_equal(skew.report(model, text).neurons,
                                  skew.report(model, [b["input_ids"] for b in text]).neurons)
    with pytest.raises(SkewError, match="none of the batch's keys"):  # two candidates: ambiguous
        skew.report(model, [{"input_ids": text[0]["input_ids"], "pixel_values": torch.zeros(3, 2)}])
    timm = pytest.importorskip("timm")
    net = timm.create_model("resnet18", pretrained=False, num_classes=10)
    x, y = build_data("digits", shape=(3, 16, 16), batch_size=4, batches=1)[0]
    hf_style = skew.report(net, [{"pixel_values": x, "labels": y}])
    pd.testing.assert_frame_equal(hf_style.neurons, skew.report(net, [(x, y)]).neurons)


# ---- CLI -----------------------------------------------------------------------------------------------
def test_cli_report_on_hf_gpt2_with_text_and_timm_on_digits(capsys):
    pytest.importorskip("transformers")
    from skew.cli import main

    assert main(["report", "--model", "hf:llama", "--data", "text", "-o", "num_hidden_layers=1",
                 "-o", "hidden_size=32", "-o", "seq_len=8", "--batches", "1", "--batch-size", "4",
                 "--init", "sinusoidal"]) == 0
    out = capsys.readouterr().out
    assert "model.layers.0.mlp.down_proj" in out and "lm_head" in out
    assert main(["report", "--model", "hf:gpt2", "--data", "text", "-o", "n_layer=1", "--batches", "1",
                 "--batch-size", "2"]) == 0
    assert "lm_head" in capsys.readouterr().out
    pytest.importorskip("timm")
    assert main(["compare", "--model", "timm:resnet18", "--data", "digits", "-o", "image_size=16",
                 "--inits", "as_built,sinusoidal", "--batches", "1", "--batch-size", "4"]) == 0
    assert "layer4.1.conv2" in capsys.readouterr().out
    assert main(["report", "--model", "timm:resnet81", "--data", "digits"]) == 1
    assert "close matches: resnet18" in capsys.readouterr().err


# ---- the language-model figure -------------------------------------------------------------------------
def test_language_model_figure_quick(tmp_path):
    pytest.importorskip("transformers")
    from skew.figures import ARCH_SCHEMES, _Config, _language_models

    entries = _language_models(tmp_path, _Config(True))
    assert [e.path.name for e in entries] == ["language_models_skew_by_depth.png", "language_models_layers.csv"]
    assert all(e.path.stat().st_size > 0 and e.what and e.settings for e in entries)
    table = pd.read_csv(entries[1].path)
    assert set(table["model"]) == {"GPT-2", "Llama"} and set(table["init"]) == set(ARCH_SCHEMES)
    llama = table[(table["model"] == "Llama") & (table["init"] == "sinusoidal")].set_index("layer")
    assert llama.loc["model.layers.1.mlp.up_proj", "block"] == 1 and llama.loc["lm_head", "block"] == 2
    assert len(llama) == 2 * 7 + 1


# ---- needs other branches ------------------------------------------------------------------------------
def test_gpt2_blocks_are_measured_and_initialized():
    pytest.importorskip("transformers")
    model = build_model("hf:gpt2", **GPT2)
    batches = _data("hf:gpt2", GPT2)
    rep = skew.report(model, batches)
    expected = [f"transformer.h.{i}.{s}" for i in range(2) for s in ("attn.c_attn", "attn.c_proj", "mlp.c_fc",
                                                                      "mlp.c_proj")] + ["lm_head"]
    assert list(rep.layers["layer"]) == expected
    assert (rep.layers.set_index("layer")["samples"] == _tokens(batches)).all()
    neurons = rep.layers.set_index("layer")["neurons"]
    assert neurons["transformer.h.0.attn.c_attn"] == 96 and neurons["transformer.h.0.mlp.c_fc"] == 128
    # rows are output features: Conv1D's weight is (in, out), so neuron j's row is weight[:, j]
    c_fc = model.transformer.h[0].mlp.c_fc
    row = rep.neurons[rep.neurons["layer"] == "transformer.h.0.mlp.c_fc"]
    np.testing.assert_allclose(row["row_sum"], c_fc.weight.detach().double().sum(0).numpy(), rtol=1e-6)
    table = skew.init.apply(model, "sinusoidal")
    assert set(expected) <= set(table.loc[table["action"] == "set", "module"])
    assert torch.equal(c_fc.weight.detach().T, skew.init.sinusoidal_(torch.empty(128, 32)))


@pytest.mark.parametrize("name, options", [("hf:llama", LLAMA), ("hf:bert", BERT)])
def test_padding_changes_nothing(name, options):
    """A batch with padding gives the report of the same sequences without it (one per batch)."""
    pytest.importorskip("transformers")
    model = build_model(name, **options)
    (padded,) = text_batches(seq_len=16, batch_size=6, batches=1, seed=2, ragged=True)
    lengths = padded["attention_mask"].sum(1)
    assert lengths.min() < 16  # there is padding
    unpadded = [{"input_ids": padded["input_ids"][i:i + 1, :n], "attention_mask": torch.ones(1, int(n))}
                for i, n in enumerate(lengths.tolist())]
    a, b = skew.report(model, [padded]), skew.report(model, unpadded)
    assert (a.layers["samples"] == int(lengths.sum())).all()  # every layer of these models is per token
    cols = ["layer", "neuron", "n", "p", "mean", "std"]
    pd.testing.assert_frame_equal(a.neurons[cols], b.neurons[cols], rtol=1e-4, atol=1e-5)


def test_activation_sites_on_a_language_model():
    pytest.importorskip("transformers")
    model = build_model("hf:llama", **LLAMA)
    (padded,) = text_batches(seq_len=16, batch_size=4, batches=1, seed=1, ragged=True)
    rep = skew.report(model, [padded], at="activations")
    assert len(rep.layers) > 0 and (rep.layers["samples"] == int(padded["attention_mask"].sum())).all()
