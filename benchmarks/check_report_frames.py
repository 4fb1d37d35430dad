"""Exactness check for changes that must not move a single bit of a report (issue 12's set-up work).

Builds reports for a set of models (a small MLP, ResNet-18 at 32×32 also at activations, with a
glob and with ``name#k`` positions, MobileNetV3-small in eval and train mode, TransformerEncoders
batch- and sequence-first, two MultiheadAttention modules (packed; kdim/vdim without bias) with a
layer that never runs, Hugging Face Conv1D with ConvTranspose1d/2d, Conv3d, a grouped conv, tied
weights and zero rows, bfloat16 and float64 models), then stores every frame (neurons, layers,
skipped, weights, info, signs), the saved file's SHA-256, the loaded frames, ``neuron_table``,
``diagnose`` and a merge; ``compare`` rebuilds them and checks each with
``pandas.testing.assert_frame_equal(check_exact=True)`` (and exact array equality).

Usage (1 thread; run ``save`` on the tree before the change, ``compare`` after it):
    python benchmarks/check_report_frames.py save /tmp/frames.pkl
    python benchmarks/check_report_frames.py compare /tmp/frames.pkl
"""
import hashlib
import os
import pickle
import sys
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision  # noqa: E402

import skew  # noqa: E402
from skew.result import Report  # noqa: E402
from skew.weights import diagnose, neuron_table  # noqa: E402

torch.set_num_threads(1)


def models():
    """(name, model, batches, report keyword arguments) for every case."""
    torch.manual_seed(0)
    mlp = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(256, 256), nn.ReLU())])
    yield "mlp", mlp, [torch.randn(32, 256) for _ in range(2)], {}
    torch.manual_seed(1)
    r18 = torchvision.models.resnet18(weights=None)
    xb = [torch.randn(8, 3, 32, 32) for _ in range(2)]
    yield "resnet18", r18, xb, {}
    yield "resnet18_act", r18, xb, {"at": "activations"}
    yield "resnet18_glob", r18, xb, {"layers": "layer1.*"}
    yield "resnet18_actsel", r18, xb, {"at": "activations", "layers": ["layer1.0.relu#1", "relu"]}
    torch.manual_seed(2)
    mnv3 = torchvision.models.mobilenet_v3_small(weights=None)
    yield "mnv3", mnv3, [torch.randn(4, 3, 64, 64)], {}
    yield "mnv3_train", mnv3, [torch.randn(4, 3, 64, 64)], {"mode": "train"}
    torch.manual_seed(3)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2)
    yield "tenc", enc, [torch.randn(4, 10, 32)], {}
    enc2 = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=False), 2)
    yield "tenc_seqfirst", enc2, [torch.randn(10, 4, 32)], {}

    class MHA(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.MultiheadAttention(16, 2, batch_first=True)
            self.b = nn.MultiheadAttention(16, 2, kdim=8, vdim=12, batch_first=True, bias=False)
            self.fc = nn.Linear(16, 5)
            self.unused = nn.Linear(3, 3)
            self.k = torch.randn(1, 6, 8)
            self.v = torch.randn(1, 6, 12)

        def forward(self, x):
            y, _ = self.a(x, x, x)
            z, _ = self.b(y, self.k.expand(x.shape[0], -1, -1), self.v.expand(x.shape[0], -1, -1))
            return self.fc(torch.relu(z))
    torch.manual_seed(4)
    yield "mha", MHA(), [torch.randn(3, 7, 16)], {}
    yield "mha_sel", MHA(), [torch.randn(3, 7, 16)], {"layers": nn.MultiheadAttention}

    from transformers.pytorch_utils import Conv1D

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = Conv1D(12, 6)
            self.ct = nn.ConvTranspose2d(3, 4, 3, stride=2)
            self.ctg = nn.ConvTranspose1d(4, 6, 3, groups=2, bias=False)
            self.c3 = nn.Conv3d(2, 3, 2)
            self.cg = nn.Conv2d(4, 8, 3, groups=4)
            self.tie = nn.Linear(12, 12)
            self.tie2 = nn.Linear(12, 12)
            self.tie2.weight = self.tie.weight
            self.zero = nn.Linear(12, 4)
            with torch.no_grad():
                self.zero.weight.zero_()
                self.zero.weight[1] = 1.0

        def forward(self, x, img, seq, vol):
            a = self.tie2(self.tie(self.c1(x)))
            b = self.cg(self.ct(img))
            c = self.ctg(seq)
            d = self.c3(vol)
            return a.sum() + b.sum() + c.sum() + d.sum() + self.zero(a).sum()
    torch.manual_seed(5)
    mixed = Mixed()
    batch = [(torch.randn(5, 6), torch.randn(5, 3, 5, 5), torch.randn(5, 4, 9), torch.randn(5, 2, 4, 4, 4))]
    yield "mixed", mixed, batch, {"input_fn": lambda b: tuple(b)}
    torch.manual_seed(6)
    half = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32)).to(torch.bfloat16)
    yield "bf16", half, [torch.randn(16, 64).to(torch.bfloat16)], {}
    torch.manual_seed(7)
    dbl = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 32)).double()
    yield "f64", dbl, [torch.randn(16, 64).double()], {}
    yield "f64_act", dbl, [torch.randn(16, 64).double()], {"at": "activations"}


def dump() -> dict:
    """Everything to compare, per case."""
    out = {}
    for name, model, batches, kw in models():
        torch.manual_seed(123)
        rep = skew.report(model, batches, progress=False, **kw)
        with tempfile.TemporaryDirectory() as d:
            p = rep.save(os.path.join(d, "r.skew.zip"))
            raw = open(p, "rb").read()
            back = Report.load(p)
        out[name] = {"neurons": rep.neurons, "layers": rep.layers, "skipped": rep.skipped,
                     "weights": rep._weights, "info": rep._info, "file": hashlib.sha256(raw).hexdigest(),
                     "loaded": (back.neurons, back.layers, back.skipped), "signs": rep.signs,
                     "sign_neurons": rep.sign_neurons}
        if kw.get("at") != "activations":
            nt = neuron_table(model)
            out[name]["neuron_table"] = nt
            out[name]["neuron_table_each"] = neuron_table(model, tied="each")
            if name in ("mlp", "mixed", "mha", "bf16", "tenc"):
                out[name]["diagnose"] = diagnose(model, scheme="default")
        # merge
        if name in ("mlp", "mha", "resnet18_act"):
            rep2 = skew.report(model, batches[:1], progress=False, **kw)
            m = rep.merge(rep2)
            out[name]["merged"] = (m.neurons, m.layers, m.skipped, m._weights)
    return out


def compare(a: dict, b: dict) -> int:
    """Print each mismatch; the number of them."""
    bad = 0
    for name in a:
        for k in a[name]:
            x, y = a[name][k], b[name][k]
            try:
                cmp(x, y)
            except AssertionError as e:
                bad += 1
                print("MISMATCH", name, k, str(e)[:400])
    print("compared", len(a), "cases;", "bad", bad)
    return bad


def cmp(x, y) -> None:
    """Assert x and y are exactly equal (frames, arrays, dicts, tuples, NaN floats)."""
    if isinstance(x, pd.DataFrame):
        pd.testing.assert_frame_equal(x, y, check_exact=True)
        assert list(x.index) == list(y.index)
        assert x.index.dtype == y.index.dtype and type(x.index) is type(y.index), (x.index, y.index)
    elif isinstance(x, (tuple, list)):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            cmp(u, v)
    elif isinstance(x, dict):
        assert list(x) == list(y), (list(x), list(y))
        for k in x:
            cmp(x[k], y[k])
    elif isinstance(x, np.ndarray):
        assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), "array"
    elif isinstance(x, float) and np.isnan(x):
        assert isinstance(y, float) and np.isnan(y)
    else:
        assert type(x) is type(y) and x == y, (x, y)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("save", "compare"):
        raise SystemExit(__doc__)
    current = dump()
    if sys.argv[1] == "save":
        with open(sys.argv[2], "wb") as fh:
            pickle.dump(current, fh)
        print("saved", len(current), "cases")
    else:
        with open(sys.argv[2], "rb") as fh:
            sys.exit(1 if compare(pickle.load(fh), current) else 0)
