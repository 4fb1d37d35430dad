"""Atomic writes: all-or-nothing, ordinary permissions, byte-identical figures."""

from __future__ import annotations

import os
import stat

import matplotlib.pyplot as plt
import pytest

from skew._io import atomic_write, save_figure
from skew.errors import SkewError


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("injected failure while writing")

    with pytest.raises(RuntimeError, match="injected"):
        atomic_write(target, broken)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_new_file_gets_umask_permissions_and_existing_keeps_its_own(tmp_path):
    umask = os.umask(0o022)
    try:
        new = atomic_write(tmp_path / "new.txt", lambda p: p.write_text("x"))
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        kept = tmp_path / "kept.txt"
        kept.write_text("y")
        kept.chmod(0o600)
        atomic_write(kept, lambda p: p.write_text("z"))
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.read_text() == "z"
    finally:
        os.umask(umask)


@pytest.mark.parametrize("suffix", ["png", "pdf", "svg"])
def test_save_figure_is_byte_identical(tmp_path, suffix):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    a = save_figure(fig, tmp_path / f"a.{suffix}").read_bytes()
    b = save_figure(fig, tmp_path / f"b.{suffix}").read_bytes()
    assert a == b


def test_save_figure_rejects_unknown_format(tmp_path):
    fig, _ = plt.subplots()
    with pytest.raises(SkewError, match="png, .pdf or .svg"):
        save_figure(fig, tmp_path / "x.jpg")
