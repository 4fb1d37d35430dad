"""The one-read CUDA level 1 (skew._triton): its kernels against float64 brute force, and report()
through it against the CPU forms.

Without a GPU the kernels run under Triton's interpreter (``TRITON_INTERPRET=1``, CPU tensors) in a
subprocess, so the same kernel code is checked on every machine where Triton imports; on a CUDA
machine the CUDA tests run them compiled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import skew
from skew import _triton

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import triton  # noqa: F401

    HAVE_TRITON = True
except Exception:  # noqa: BLE001
    HAVE_TRITON = False

needs_triton = pytest.mark.skipif(not HAVE_TRITON, reason="Triton is not installed")
needs_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and HAVE_TRITON), reason="needs a CUDA device and Triton"
)

BRUTE = """
import torch

def brute(z3, pd):
    zd = z3.double()
    fin = torch.isfinite(zd)
    k = fin.sum(pd).double()
    zc = torch.where(fin, zd, 0.0)
    mean = zc.sum(pd) / k.clamp_min(1)
    d = torch.where(fin, zd - mean.unsqueeze(pd), 0.0)
    return k, mean, (d * d).sum(pd), (zc > 0).sum(pd).double()

def brute_moments(x):
    xd = x.double().reshape(-1)
    fin = torch.isfinite(xd)
    k = fin.sum().double()
    v = xd[fin]
    mean = v.mean() if v.numel() else torch.zeros((), dtype=torch.float64)
    return k, mean, ((v - mean) ** 2).sum()

def layouts(z):
    b, c = z.shape[:2]
    yield "contiguous (B, C, P)", z.reshape(b, c, -1), 2
    yield "channels_last (B, P, C)", z.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(b, -1, c), 1
    yield "strided (B, C, P)", z[:, :, ::2].reshape(b, c, -1)[:, :, 1:], 2
    yield "transposed (B, C, P), positions not contiguous", z.reshape(b, c, -1).transpose(1, 2).contiguous().transpose(1, 2), 2
    yield "strided (B, P, C)", z.reshape(b, c, -1).transpose(1, 2)[:, ::2], 1

def poison(z, every=13):
    z = z.clone()
    flat = z.view(-1)
    flat[::every] = float("nan")
    flat[5::every * 3] = float("inf")
    flat[7::every * 5] = -float("inf")
    return z
"""


def _interpreted(code: str) -> dict:
    """Run ``code`` (which sets ``result``) with Triton's interpreter; return ``result`` (JSON)."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    env.pop("SKEW_EAGER", None)
    script = BRUTE + textwrap.dedent(code) + "\nimport json\nprint('RESULT' + json.dumps(result))\n"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


@needs_triton
def test_interpreted_kernels_match_float64_brute_force_in_every_layout_and_dtype():
    result = _interpreted("""
        from skew import _triton
        torch.manual_seed(0)
        result = []
        assert _triton.available(torch.device("cpu"))
        shapes = [(3, 5, 7, 10), (2, 3, 40, 40), (4, 6, 1, 1), (1, 2, 1, 3)]   # P = 70, 1600 (> one tile), 1
        for shape in shapes:
            base = poison(torch.randn(*shape) * 3 + 1)
            for dtype in (torch.float32, torch.float16, torch.bfloat16):
                for name, z3, pd in layouts(base.to(dtype)):
                    got = _triton.rows(z3, pd)
                    ref = brute(z3, pd)
                    for g, r, what in zip(got, ref, ("k", "mean", "m2", "pos")):
                        tol = 1e-5 * (1 + r.abs())
                        bad = ((g - r).abs() > tol) | (g.isnan() != r.isnan())
                        if what in ("k", "pos"):
                            bad = g != r
                        if bool(bad.any()):
                            result.append(f"{shape} {dtype} {name} {what}: max error {(g - r).abs().max()}")
        # a constant row is exact (M2 = 0, mean = the value): how degenerate neurons are recognised
        for z3, pd in ((torch.full((3, 4, 5000), 0.1), 2), (torch.full((3, 5000, 4), -7.3), 1)):
            k, mean, m2, pos = _triton.rows(z3, pd)
            if not (m2.eq(0).all() and mean.eq(float(z3.flatten()[0])).all()):
                result.append(f"constant rows pd={pd}: M2 {m2.max()}, mean {mean.unique()}")
        # rows longer than one float32 fold (512 · 32 values)
        z3 = torch.randn(1, 2, 40000) * 0.01 + 1000.0
        got, ref = _triton.rows(z3, 2), brute(z3, 2)
        if not all(torch.allclose(g, r, rtol=1e-6) for g, r in zip(got, ref)):
            result.append("long rows")
        # a row with no finite value: k = 0, mean = M2 = pos = 0
        k, mean, m2, pos = _triton.rows(torch.full((2, 3, 4), float("nan")), 2)
        if not (k.eq(0).all() and mean.eq(0).all() and m2.eq(0).all() and pos.eq(0).all()):
            result.append("all-NaN rows")
        # empty: no rows
        k, *_ = _triton.rows(torch.zeros(0, 3, 4), 2)
        if k.shape != (0, 3):
            result.append("empty")
    """)
    assert result == []


@needs_triton
def test_interpreted_input_moments_match_float64_brute_force():
    result = _interpreted("""
        from skew import _triton
        torch.manual_seed(1)
        result = []
        for n in (1, 7, 4096, 4097, 4096 * 1024 + 5):     # one block, several, several per program
            x = torch.randn(n) * 2 + 3
            if n > 7:
                x = poison(x, every=101)
            for dtype in (torch.float32, torch.bfloat16):
                xx = x.to(dtype)
                got = torch.stack(_triton.moments(xx))
                ref = torch.stack(brute_moments(xx))
                if not torch.allclose(got, ref, rtol=1e-6, atol=1e-9):
                    result.append(f"{n} {dtype}: {got.tolist()} vs {ref.tolist()}")
        if _triton.moments(torch.randn(4, 6).t()) is not None:
            result.append("a non-contiguous input must go back to the eager form")
        x = torch.full((10,), float("nan"))
        if torch.stack(_triton.moments(x)).tolist() != [0.0, 0.0, 0.0]:
            result.append("all-NaN input")
    """)
    assert result == []


REPORT_CASE = """
import skew
from torch import nn

class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(4, 12)
        self.fc = nn.Linear(12, 6)
    def forward(self, x):                      # (B, T, 4) -> (B, T, 6)
        return self.fc(torch.relu(self.emb(x)))

class Twice(nn.Module):                        # one conv called twice per forward (two call positions)
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(3, 4)
    def forward(self, x):
        return self.fc(self.conv(torch.relu(self.conv(x))).mean((2, 3)))

class Shared(nn.Module):
    # two convs read the same input (read once), a Linear reads a non-contiguous one (eager moments)
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(6, 5)
    def forward(self, x):
        y = torch.relu(self.a(x) + self.b(x))            # (B, 4, 6, 6)
        return self.fc(y.mean(1).transpose(1, 2))        # input (B, 6, 6) transposed: not contiguous

def frames(device="cpu"):
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 8, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 6 * 6, 10), nn.ReLU(), nn.Linear(10, 4))
    conv[0].weight.data[3] = 0.0             # a dead filter: constant rows (degenerate neuron 3)
    batches = [torch.randn(8, 3, 10, 10) for _ in range(3)]
    batches[2][0, 0, 4, 4] = float("nan")      # spreads to many outputs of the layers after it
    batches[1][1, 1, 2, 2] = float("inf")
    tokens = Tokens()
    seqs = [torch.randn(5, 7, 4) for _ in range(2)]
    seqs[1][2, 3, 1] = float("nan")
    shared = Shared()
    images = [torch.randn(4, 3, 6, 6) for _ in range(2)]
    images[1][0, 2, 1, 1] = float("nan")
    twice = Twice()
    sized = [torch.randn(b, 3, 5, 5) for b in (6, 3, 6)]
    sized[1][2, 1, 2, 2] = float("nan")
    out = {}
    for name, model, data in (("conv", conv, batches), ("tokens", tokens, seqs), ("shared", shared, images),
                              ("twice", twice, sized)):
        rep = skew.report(model.to(device), [d.to(device) for d in data], progress=False)
        out[name] = {"neurons": rep.neurons.to_json(orient="split", double_precision=15),
                     "layers": rep.layers.to_json(orient="split", double_precision=15),
                     "signs": {k: v.astype(int).tolist() for k, v in rep.signs.items()},
                     "careful_calls": rep.meta["careful_calls"]}
    return out
"""


def _frames_here() -> dict:
    scope: dict = {}
    exec(BRUTE + REPORT_CASE, scope)  # noqa: S102 - the same case, run in this process (CPU forms)
    return scope["frames"]()


def _assert_same(got: dict, ref: dict) -> None:
    for case in ref:
        for what in ("neurons", "layers"):
            a = pd.read_json(__import__("io").StringIO(got[case][what]), orient="split")
            b = pd.read_json(__import__("io").StringIO(ref[case][what]), orient="split")
            pd.testing.assert_frame_equal(a, b, rtol=1e-5, atol=1e-6, check_dtype=False)
        assert got[case]["signs"] == ref[case]["signs"]


@needs_triton
def test_interpreted_report_matches_the_cpu_forms_with_non_finite_values():
    got = _interpreted(REPORT_CASE + "\nresult = frames()\n")
    ref = _frames_here()
    _assert_same(got, ref)
    assert ref["conv"]["careful_calls"] > 0  # the CPU forms re-read the poisoned calls carefully
    assert got["conv"]["careful_calls"] == 0 and got["tokens"]["careful_calls"] == 0  # one read, no re-check
    assert ref["shared"]["careful_calls"] > 0 and got["shared"]["careful_calls"] == 0
    nonfinite = pd.read_json(__import__("io").StringIO(got["conv"]["neurons"]), orient="split")["nonfinite"]
    assert nonfinite.sum() > 0


def test_without_cuda_or_interpreter_the_kernels_are_not_used(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not _triton.available(torch.device("cpu"))
    monkeypatch.setenv("SKEW_EAGER", "1")
    assert not _triton.available(torch.device("cuda"))


def test_a_failed_triton_import_keeps_the_eager_form(monkeypatch):
    monkeypatch.setattr(_triton, "_state", {})
    monkeypatch.setitem(sys.modules, "skew._triton_kernels", None)  # import raises ImportError
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.delenv("SKEW_EAGER", raising=False)
    assert not _triton.available(torch.device("cpu"))


# ------------------------------------------------------------------------------------------ CUDA
@needs_cuda
def test_cuda_kernels_match_float64_brute_force():
    scope: dict = {}
    exec(BRUTE, scope)  # noqa: S102
    torch.manual_seed(2)
    for shape in [(64, 256, 56, 56), (3, 5, 7, 10), (4, 6, 1, 1), (8, 3, 97, 13)]:
        base = scope["poison"](torch.randn(*shape, device="cuda") * 3 + 1)
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            for name, z3, pd_ in scope["layouts"](base.to(dtype)):
                got = _triton.rows(z3, pd_)
                ref = scope["brute"](z3, pd_)
                for g, r, what in zip(got, ref, ("k", "mean", "m2", "pos")):
                    if what in ("k", "pos"):
                        assert torch.equal(g, r), (shape, dtype, name, what)
                    else:
                        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5, msg=f"{shape} {dtype} {name} {what}")
    x = scope["poison"](torch.randn(5_000_001, device="cuda") + 2, every=1001)
    torch.testing.assert_close(torch.stack(_triton.moments(x)), torch.stack(scope["brute_moments"](x)), rtol=1e-6, atol=0)


@needs_cuda
def test_cuda_report_through_the_kernels_matches_the_eager_forms(monkeypatch):
    scope: dict = {}
    exec(BRUTE + REPORT_CASE, scope)  # noqa: S102
    monkeypatch.delenv("SKEW_EAGER", raising=False)
    got = scope["frames"]("cuda")
    monkeypatch.setenv("SKEW_EAGER", "1")
    ref = scope["frames"]("cuda")
    _assert_same(got, ref)
    _assert_same(got, _frames_here())  # and the CPU forms
    assert got["conv"]["careful_calls"] == 0 and ref["conv"]["careful_calls"] > 0


@needs_cuda
def test_cuda_to_host_packs_every_dtype_into_one_copy():
    from skew.accumulators import to_host

    tensors = [torch.tensor([1.5, -2.0], dtype=torch.float64), torch.tensor([[True, False, True]]),
               torch.arange(5), torch.tensor([7, 255], dtype=torch.uint8), torch.zeros(0, 3, dtype=torch.bool)]
    got = to_host([t.cuda() for t in tensors] + [tensors[0]])
    for g, t in zip(got, tensors + [tensors[0]]):
        assert g.dtype == t.numpy().dtype and g.shape == tuple(t.shape)
        np.testing.assert_array_equal(g, t.numpy())


@needs_triton
def test_interpreted_level2_kernel_equals_the_torch_path():
    """The one-launch level 2 (and commit) gives the torch path's accumulators: every column of a
    group (whole) or some (a layer called twice: its second call's group has only that layer),
    batches of one sample (no OUI term), non-finite values, and the first batch (patterns still
    being collected) left to torch. A level-2 kernel that fails here is left off alone."""
    got = _interpreted(REPORT_CASE + """
import warnings

import numpy as np
import pandas as pd
from skew import _triton, accumulators

launches = []
real = _triton.level2

def spy(*args, **kwargs):
    launches.append([int(v) for v in args[0].shape] + [args[2] is None, len(args) > 5 and args[5] is not None])
    return real(*args, **kwargs)

torch.manual_seed(3)
plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 5, 3))  # every layer once: whole columns
data = [torch.randn(b, 3, 7, 7) for b in (9, 4, 1, 6, 5)]
data[3][0, 1, 2, 2] = float("nan")
data[4][2, 0, 1, 1] = float("inf")
fold = accumulators.DeviceStats._fold_group
diff = {}
for name, model in (("twice", Twice()), ("plain", plain)):
    _triton.level2, accumulators.DeviceStats._fold_group = spy, fold
    fast = skew.report(model, data, progress=False)
    _triton.level2, accumulators.DeviceStats._fold_group = real, lambda self, group: False
    slow = skew.report(model, data, progress=False)
    for what in ("neurons", "layers"):
        a, b = getattr(fast, what), getattr(slow, what)
        assert list(a.columns) == list(b.columns)
        for col in a.columns:
            if a[col].dtype.kind == "f":
                d = (a[col] - b[col]).abs().max()
                diff[name + "." + what + "." + col] = 0.0 if d != d else float(d)
            else:
                diff[name + "." + what + "." + col] = 0.0 if a[col].equals(b[col]) else 1.0
error = _triton._state.get("error")

def broken(*args, **kwargs):  # a level-2 kernel that fails to build here: warn, and torch folds the group
    raise RuntimeError("PassManager::run failed")

_triton.level2, accumulators.DeviceStats._fold_group = broken, fold
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    after = skew.report(plain, data, progress=False)
same = bool(np.allclose(after.neurons["mean"], slow.neurons["mean"], rtol=1e-12, atol=1e-12, equal_nan=True)
            and after.neurons["n"].equals(slow.neurons["n"]) and after.neurons["p"].equals(slow.neurons["p"]))
result = {"launches": launches, "diff": diff, "error": error,
          "fallback": [same, _triton._state.get("level2_error"), _triton._state.get("k") is not None,
                       after.meta["careful_calls"], [str(w.message)[:60] for w in seen]]}
""")
    assert got["error"] is None
    same, error, level1_on, careful, warned = got["fallback"]
    assert same and "PassManager" in error and any("level-2 kernel failed here" in w for w in warned)
    assert level1_on and careful == 0  # level 1's kernels went on (no eager re-reads)
    launches = got["launches"]
    assert launches and any(whole for *_, whole, _ in launches) and any(not whole for *_, whole, _ in launches)
    assert any(rows == 1 for _, rows, _, _, _ in launches)  # a one-sample batch
    assert any(inputs for *_, inputs in launches)  # layer inputs folded in the same launch
    bad = {k: v for k, v in got["diff"].items() if v > 1e-12}
    assert not bad, bad


SINUSOIDAL_SHAPES = [((12, 20), "float32"), ((7, 3), "float64"), ((64, 128), "float32"), ((8, 3, 3, 3), "float64")]


@needs_triton
def test_interpreted_sinusoidal_kernel_fills_the_tensor_alone_with_the_torch_forms_bits():
    """Where the kernel runs, it is the whole fill: the torch form must not run after it (that
    once happened silently, costing 12× the time on a GPU), and its bits are the torch form's."""
    from skew.init import sinusoidal_

    got = _interpreted(f"""
        import torch
        from skew.init import sinusoidal_

        def torch_form(*args, **kwargs):
            raise AssertionError("the torch form ran after the kernel")

        torch.outer = torch_form  # only the torch form calls it
        result = []
        for shape, dtype in {SINUSOIDAL_SHAPES!r}:
            w = sinusoidal_(torch.empty(shape, dtype=getattr(torch, dtype)), gain=1.5)
            result.append(w.double().reshape(-1).tolist())
    """)
    for (shape, dtype), values in zip(SINUSOIDAL_SHAPES, got):
        ref = sinusoidal_(torch.empty(shape, dtype=getattr(torch, dtype)), gain=1.5)
        np.testing.assert_array_equal(np.asarray(values), ref.double().reshape(-1).numpy())


def test_kernels_that_fail_here_fall_back_to_the_eager_forms_with_one_warning(monkeypatch):
    """A Triton that cannot build or launch the kernels (another version, another GPU) must not
    break report() or sinusoidal_: the first failure warns, disables them, and the call goes on eagerly."""
    from skew.init import sinusoidal_

    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    data = [torch.randn(6, 3, 6, 6) for _ in range(2)]
    ref = skew.report(model, data, progress=False)
    ref_w = sinusoidal_(torch.empty(12, 20))

    def broken(*args, **kwargs):
        raise RuntimeError("PassManager::run failed")

    monkeypatch.setenv("TRITON_INTERPRET", "1")  # so that the CPU counts as a device with kernels
    monkeypatch.delenv("SKEW_EAGER", raising=False)
    for name in ("level1", "moments", "sinusoidal"):
        monkeypatch.setattr(_triton, name, broken)
    monkeypatch.setattr(_triton, "_state", {"k": ("kernels",)})
    with pytest.warns(RuntimeWarning, match="PassManager::run failed"):
        got = skew.report(model, data, progress=False)
    assert _triton._state["k"] is None and "PassManager" in _triton._state["error"]
    pd.testing.assert_frame_equal(got.neurons, ref.neurons)
    pd.testing.assert_frame_equal(got.layers, ref.layers)
    monkeypatch.setattr(_triton, "_state", {"k": ("kernels",)})
    with pytest.warns(RuntimeWarning, match="falling back"):
        w = sinusoidal_(torch.empty(12, 20))
    assert torch.equal(w, ref_w)


@needs_triton
def test_kernels_compile_for_hopper_ahead_of_time():
    """Every kernel goes through Triton's whole CUDA pipeline (to PTX and a cubin for sm_90) on any
    machine, GPU or not: what the interpreter cannot check (constexpr globals, types, lowering)."""
    try:
        from triton.backends import backends
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
    except ImportError:
        pytest.skip("this Triton has no ahead-of-time compile API")
    if "nvidia" not in backends:
        pytest.skip("this Triton has no CUDA backend")
    import triton

    from skew import _triton_kernels as K

    target = GPUTarget("cuda", 90, 32)

    def build(fn, sig, consts, **opts):
        return triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts), target=target, options=opts)

    outs = {n: "*fp64" for n in ("k_out", "mean_out", "m2_out", "pos_out")}
    ints = {n: "i32" for n in ("RC", "C", "P", "s_0", "s_1", "s_2", "CB", "GZ")}
    for zt, xt in (("*fp32", "*fp32"), ("*bf16", "*fp16")):
        for pd_, ta, tb in ((2, 2, 512), (2, 16, 64), (1, 16, 64), (1, 1, 8)):
            sig = {"z": zt, **outs, **ints, "x": xt, "part": "*fp64", "N": "i32", "ITERS": "i32",
                   "PD": "constexpr", "TILE_A": "constexpr", "TILE_B": "constexpr", "XBLOCK": "constexpr"}
            build(K.level1_kernel, sig, {"PD": pd_, "TILE_A": ta, "TILE_B": tb, "XBLOCK": 1024})
    build(K.blocks_kernel, {"x": "*fp32", "part": "*fp64", "N": "i32", "ITERS": "i32", "BLOCK": "constexpr"},
          {"BLOCK": 1024})
    build(K.final_kernel, {"part": "*fp64", "out": "*fp64", "G": "i32", "BLOCK": "constexpr"}, {"BLOCK": 1024})
    sig = {"stk": "*fp64", "R": "i32", "CT": "i32", "scale": "*fp64", "cols": "*i64", "n_acc": "*i64",
           "mean_acc": "*fp64", "m2_acc": "*fp64", "pos_acc": "*i64", "nf_acc": "*i64", "oui_acc": "*fp64",
           "B": "i32", "allp": "*fp64", "GP": "i32", "first": "*i64", "cnt": "*i64", "idx": "*i64", "L": "i32",
           "GMAX": "i32", "in_n": "*i64", "in_mean": "*fp64", "in_m2": "*fp64",
           "WHOLE": "constexpr", "OUI": "constexpr", "INPUTS": "constexpr", "BLOCK": "constexpr"}
    for whole, oui, inputs in ((True, True, True), (False, False, False), (True, False, True)):
        l2 = build(K.level2_kernel, sig, {"WHOLE": whole, "OUI": oui, "INPUTS": inputs, "BLOCK": 128},
                   enable_fp_fusion=False)
        assert "fma.rn.f64" not in l2.asm["ptx"]  # separately rounded, as the torch path
    sig = {"out": "*fp32", "sin_t": "*fp64", "cos_t": "*fp64", "sin_p": "*fp64", "cos_p": "*fp64", "amp": "*fp64",
           "m": "i32", "n": "i32", "B": "i32", "ROWS": "constexpr", "BLOCK": "constexpr", "WIDE": "constexpr"}
    for wide in (False, True):
        sin = build(K.sinusoidal_kernel, sig, {"ROWS": 4, "BLOCK": 256, "WIDE": wide}, enable_fp_fusion=False)
        ptx = sin.asm["ptx"]
        assert "mul.rn.f64" in ptx and "fma.rn.f64" not in ptx  # separately rounded, as the torch form
