"""Fuzz suite, report files (issue 10): Report.save / load / merge on malformed, tampered and hostile input.

Each tampered file must give a SkewError naming the file and the problem, on one line, without advice
to load unsafely, and without allocating what a forged header declares or running a pickle. Case ids
start with ``err-`` (clear error) or ``ok-`` (correct result).
"""

from __future__ import annotations

import io
import json
import os
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from fuzzutil import clear_message, untouched
from torch import nn

import skew
import skew.report_file as report_file
from skew.errors import SkewError
from skew.result import Report


def _model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


def _data(seed: int):
    return [torch.randn(12, 5, generator=torch.Generator().manual_seed(seed))]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rep = skew.report(_model(), _data(0))
    path = tmp_path_factory.mktemp("rep") / "run.skew.zip"
    rep.save(path)
    return rep, path


def _members(path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def _write(path, members) -> None:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore")  # a duplicate member name is the point of one case
        for name, data in members:
            zf.writestr(name, data)


def _npy(arr, **kw) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


def _edit(name: str, fn):
    """A tamper that replaces member ``name`` by ``fn(old bytes)``."""
    return lambda ms: [(n, fn(d) if n == name else d) for n, d in ms]


def _header(fn):
    def change(raw: bytes) -> bytes:
        header = json.loads(raw)
        fn(header)
        return json.dumps(header).encode()

    return _edit("report.json", change)


def _csv(name: str, fn):
    def change(raw: bytes) -> bytes:
        frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
        return fn(frame).to_csv(index=False).encode()

    return _edit(name, change)


def _set(frame, col, row, value):
    frame.loc[row, col] = value
    return frame


class _Evil:
    """Unpickling this would create a marker file: no loader may run it."""

    marker = None

    def __reduce__(self):
        return (open, (str(_Evil.marker), "w"))


def _absurd_npy(_old: bytes) -> bytes:
    # a valid header declaring 10**12 int64 values, followed by 8 bytes
    header = {"descr": "<i8", "fortran_order": False, "shape": (10**12,)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + b"\x00" * 8


TAMPER = {
    "missing-neurons-csv": (lambda ms: [(n, d) for n, d in ms if n != "neurons.csv"], "missing member"),
    "missing-state-array": (lambda ms: [(n, d) for n, d in ms if n != "state/1/pos.npy"], "missing member"),
    "extra-member": (lambda ms: [*ms, ("notes.txt", b"hi")], "unexpected member"),
    "extra-state-layer": (lambda ms: [*ms, ("state/7/n.npy", _npy(np.zeros(3, np.int64)))], "unexpected member"),
    "duplicate-member": (lambda ms: [*ms, ms[1]], "appears twice"),
    "json-not-json": (_edit("report.json", lambda d: b"{not json"), "not valid JSON"),
    "json-not-utf8": (_edit("report.json", lambda d: d.replace(b'"skew-report"', b'"skew-r\xe9port"')), "UTF-8"),
    "json-not-an-object": (_edit("report.json", lambda d: b"[1, 2]"), "not a saved skew report"),
    "json-newer-version": (_header(lambda h: h.update(version=99)), "newer skew"),
    "json-version-string": (_header(lambda h: h.update(version="1")), "version"),
    "json-threshold-out-of-range": (_header(lambda h: h.update(thresholds=[0.7])), "thresholds"),
    "json-layers-not-a-list": (_header(lambda h: h.update(layers="0")), "layers"),
    "json-missing-info": (_header(lambda h: h.pop("info")), "info"),
    "json-info-weight-std-not-a-number": (_header(lambda h: h["info"]["0"].update(weight_std="x")), "weight_std"),
    "json-columns-inconsistent": (_header(lambda h: h["columns"]["neurons"].reverse()), "columns"),
    "json-unsupported-dtype": (_header(lambda h: h["dtypes"]["neurons"].update(p="datetime64[ns]")), "dtype"),
    "json-dtype-missing-column": (_header(lambda h: h["dtypes"]["layers"].pop("neurons")), "dtypes"),
    "json-threshold-without-column": (_header(lambda h: h.update(thresholds=[0.1, 0.2])), "skewed_0.2"),
    "csv-not-utf8": (_edit("layers.csv", lambda d: d + b"\xff\xfe"), "UTF-8"),
    "csv-float-garbage": (_csv("neurons.csv", lambda f: _set(f, "p", 0, "abc")), "'p'"),
    "csv-int-garbage": (_csv("neurons.csv", lambda f: _set(f, "n", 0, "1.5")), "'n'"),
    "csv-bool-garbage": (_csv("neurons.csv", lambda f: _set(f, "dead", 0, "maybe")), "'dead'"),
    "csv-dropped-column": (_csv("neurons.csv", lambda f: f.drop(columns=["p"])), "columns"),
    "csv-dropped-row": (_csv("neurons.csv", lambda f: f.iloc[:-1]), "rows"),
    "csv-layer-renamed": (_csv("layers.csv", lambda f: _set(f, "layer", 0, "evil")), "layers"),
    "csv-neuron-ids-shuffled": (_csv("neurons.csv", lambda f: _set(f, "neuron", 0, "3")), "neuron ids"),
    "csv-counts-differ-from-state": (_csv("neurons.csv", lambda f: _set(f, "n", 0, "999")), "differ"),
    "npy-absurd-size": (_edit("state/0/n.npy", _absurd_npy), "declares shape"),
    "npy-wrong-dtype": (_edit("state/0/n.npy", lambda d: _npy(np.zeros(4, np.float64))), "expected integers"),
    "npy-wrong-shape": (_edit("state/0/mean.npy", lambda d: _npy(np.zeros(5))), r"shape \(4,\)"),
    "npy-scalar-not-scalar": (_edit("state/0/calls.npy", lambda d: _npy(np.zeros(2, np.int64))), "one integer"),
    "npy-truncated": (_edit("state/0/m2.npy", lambda d: d[:-3]), "holds"),
    "npy-not-npy": (_edit("state/0/m2.npy", lambda d: b"garbage!"), "not a valid .npy"),
    "npy-string-dtype": (_edit("state/0/m2.npy", lambda d: _npy(np.array(["a", "b"]))), "not numbers"),
    "npy-negative-counts": (_edit("state/0/pos.npy", lambda d: _npy(-np.ones(4, np.int64))), "negative"),
    "npy-signs-out-of-range": (_edit("state/0/sign_neurons.npy", lambda d: _npy(np.arange(4) + 10)),
                               "neuron indices"),
}


@pytest.mark.parametrize("name", [pytest.param(k, id=f"err-load-{k}") for k in TAMPER])
def test_tampered_file_is_refused_naming_file_and_problem(saved, tmp_path, name):
    _, path = saved
    tamper, match = TAMPER[name]
    bad = tmp_path / f"{name}.skew.zip"
    _write(bad, tamper(_members(path)))
    with pytest.raises(SkewError, match=match) as info:
        Report.load(bad)
    assert str(bad) in str(info.value)
    clear_message(info.value)


def test_pickled_npy_is_refused_and_never_run(saved, tmp_path):
    """id: err-load-pickled-object-array."""
    _, path = saved
    _Evil.marker = tmp_path / "pwned"
    evil = _npy(np.array([_Evil()], dtype=object), allow_pickle=True)
    bad = tmp_path / "evil.skew.zip"
    _write(bad, _edit("state/0/mean.npy", lambda d: evil)(_members(path)))
    with pytest.raises(SkewError, match="not numbers") as info:
        Report.load(bad)
    clear_message(info.value)
    assert not _Evil.marker.exists()


BYTES = {
    "empty-file": lambda raw: b"",
    "random-bytes": lambda raw: bytes(range(256)) * 4,
    "truncated-zip": lambda raw: raw[: len(raw) // 2],
    "flipped-compressed-bytes": lambda raw: raw[:200] + bytes(b ^ 0x5A for b in raw[200:260]) + raw[260:],
}


@pytest.mark.parametrize("name", [pytest.param(k, id=f"err-load-{k}") for k in BYTES])
def test_damaged_bytes_are_refused(saved, tmp_path, name):
    _, path = saved
    bad = tmp_path / "damaged.skew.zip"
    bad.write_bytes(BYTES[name](path.read_bytes()))
    with pytest.raises(SkewError) as info:
        Report.load(bad)
    assert str(bad) in str(info.value)
    clear_message(info.value)


@pytest.mark.parametrize("arg", [pytest.param(None, id="err-load-none"), pytest.param(3, id="err-load-int"),
                                 pytest.param(b"x.zip", id="err-load-bytes"), pytest.param("", id="err-load-empty")])
def test_load_needs_a_path(arg):
    with pytest.raises(SkewError, match="needs a file path") as info:
        Report.load(arg)
    clear_message(info.value)


def test_load_of_a_directory_or_missing_file(tmp_path):
    """ids: err-load-directory, err-load-missing."""
    with pytest.raises(SkewError, match="directory"):
        Report.load(tmp_path)
    with pytest.raises(SkewError, match="no report file"):
        Report.load(tmp_path / "missing.zip")


# ---- save ------------------------------------------------------------------------------------
@pytest.mark.parametrize("arg", [pytest.param(None, id="err-save-none"), pytest.param(1.5, id="err-save-float"),
                                 pytest.param(["a"], id="err-save-list")])
def test_save_needs_a_path(saved, arg):
    rep, _ = saved
    with pytest.raises(SkewError, match="needs a file path") as info:
        rep.save(arg)
    clear_message(info.value)


def test_save_errors_name_the_target_and_leave_no_temporary(saved, tmp_path, monkeypatch):
    """ids: err-save-directory, err-save-under-a-file, err-save-disk-error."""
    rep, _ = saved
    with pytest.raises(SkewError, match="is a directory"):
        rep.save(tmp_path)
    (tmp_path / "file").write_text("x")
    target = tmp_path / "file" / "run.skew.zip"
    with pytest.raises(SkewError) as info:
        rep.save(target)
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    target = tmp_path / "out" / "run.skew.zip"
    monkeypatch.setattr(zipfile.ZipFile, "writestr", full)
    with pytest.raises(SkewError, match="No space left") as info:
        rep.save(target)
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)
    assert not target.exists() and os.listdir(target.parent) == []


def test_save_load_round_trip_and_the_model_is_untouched(tmp_path):
    """id: ok-save-load-merge-round-trip."""
    model, a, b = _model().train(), _data(1), _data(2)
    with untouched(model):
        ra, rb = skew.report(model, a), skew.report(model, b)
        back = Report.load(ra.save(tmp_path / "a.zip")).merge(Report.load(rb.save(tmp_path / "b.zip")))
        pd.testing.assert_frame_equal(back.neurons, ra.merge(rb).neurons, check_exact=True)
        pd.testing.assert_frame_equal(back.neurons, skew.report(model, a + b).neurons, check_exact=True)


def test_saved_file_size_limit_is_checked_before_reading(saved, tmp_path, monkeypatch):
    """id: err-load-member-too-large (the declared size is refused unread)."""
    _, path = saved
    monkeypatch.setattr(report_file, "MAX_MEMBER_BYTES", 64)
    with pytest.raises(SkewError, match="declares") as info:
        Report.load(path)
    clear_message(info.value)


# ---- merge -----------------------------------------------------------------------------------
def test_merge_refuses_other_objects_and_other_weights():
    """ids: err-merge-not-a-report, err-merge-different-weights."""
    rep = skew.report(_model(), _data(0))
    with pytest.raises(SkewError, match="another Report"):
        rep.merge("x")
    other = _model()
    with torch.no_grad():
        other[0].weight.add_(1.0)
    with pytest.raises(SkewError, match="different weights"):
        rep.merge(skew.report(other, _data(0)))


def test_merge_refuses_reports_measured_in_different_modes():
    """id: err-merge-different-modes."""
    model = _model()
    a, b = skew.report(model, _data(0), mode="eval"), skew.report(model, _data(1), mode="train")
    with pytest.raises(SkewError, match="mode"):
        a.merge(b)
