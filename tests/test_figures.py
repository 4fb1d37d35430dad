"""The figure catalogue: every expected file, byte-identical reruns, Table 1 as docs/definitions.md predicts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from skew import theory
from skew.cli import main
from skew.figures import _markdown_table
from skew.figures_check import compare_catalogues, compare_tables, tolerance

EXPECTED = [
    "weights_sinusoidal.png", "weights_schemes.png", "table1.csv", "table1.md", "skew_by_depth.png",
    "rowsum_hist_fig5.png", "skew_vs_rowsum.png", "activation_states.png", "activation_states_last.png",
    "theory_curve.png", "architectures.csv", "architectures.md", "architectures_layers.csv",
    "architectures_skew_by_depth.png", "architectures_distributions.png", "training_table.md", "README.md",
]


def test_markdown_table():
    text = _markdown_table(pd.DataFrame({"scheme": ["a", "b"], "x": [1.234, float("nan")]}), "{:.1f}")
    assert text.splitlines() == ["| scheme | x |", "|---|---:|", "| a | 1.2 |", "| b | – |"]
    # a rounding-level negative number must not write "-0.0" on one machine and "0.0" on another
    text = _markdown_table(pd.DataFrame({"x": [-1e-9, -0.04, -0.06]}), "{:.1f}")
    assert text.splitlines()[2:] == ["| 0.0 |", "| 0.0 |", "| -0.1 |"]


def test_tolerances_by_column():
    assert tolerance("layer 1 α=0.1 (%)").abs == 0.5
    assert tolerance("skewed α=0.3 (%)").abs == 0.5
    assert tolerance("max_val_acc_mean").abs == 0.01 and tolerance("max val acc").abs == 0.01
    assert tolerance("auc_std").abs == 0.3
    assert tolerance("OUI final layer (pairwise)").abs == 0.01
    assert tolerance("skewed_0.3").abs == 0.005 and tolerance("mean skew").abs == 0.005
    assert tolerance("neurons").abs == 0 and tolerance("samples").rel == 0


def _catalogue(path, pct=71.1, acc="0.9500 ± 0.0100", verdict="Yes", png=True):
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"scheme": ["Glorot", "Sinusoidal"], "init": ["xavier_uniform", "sinusoidal"],
                  "layer 1 α=0.1 (%)": [pct, 0.0], "neurons": [1000, 998]}).to_csv(path / "table1.csv", index=False)
    (path / "training_table.md").write_text(
        "# Training\n\nSettings: 40 epochs.\n\n| model | init | max val acc |\n|---|---|---:|\n"
        f"| mlp | sinusoidal | {acc} |\n\n- mlp: {verdict}: AUC 0.123 above default.\n")
    (path / "README.md").write_text("index")
    if png:
        (path / "a.png").write_bytes(b"png")
    return path


def test_compare_catalogues_tolerances_and_names(tmp_path):
    ref = _catalogue(tmp_path / "ref")
    diffs, same = compare_catalogues(_catalogue(tmp_path / "same"), ref)
    assert diffs == [] and same == ["a.png", "table1.csv", "training_table.md"]
    # within tolerance: percentages ±0.5 points, accuracies ±0.01
    close = _catalogue(tmp_path / "close", pct=71.5, acc="0.9560 ± 0.0140")
    diffs, same = compare_catalogues(close, ref)
    assert diffs == [] and same == ["a.png"]
    # beyond: each difference names the file, the row and the column
    far = _catalogue(tmp_path / "far", pct=72.0, acc="0.9700 ± 0.0100", verdict="No", png=False)
    diffs, _ = compare_catalogues(far, ref)
    assert any(d.startswith("table1.csv: row 1 (Glorot, xavier_uniform), column 'layer 1 α=0.1 (%)': "
                            "committed 71.1 vs regenerated 72.0") for d in diffs), diffs
    assert any(d.startswith("training_table.md: line 7 (mlp), column 'max val acc'") for d in diffs), diffs
    assert any(d.startswith("training_table.md: line 9") and "Yes" in d for d in diffs), diffs
    assert "a.png: committed but not regenerated" in diffs
    assert len(diffs) == 4
    assert compare_tables(far / "table1.csv", ref / "table1.csv") == [d for d in diffs if d.startswith("table1")]


def _fake_training(out_dir, quick):
    # skew.train has its own tests (and takes ~30 s); here only the catalogue's use of it is checked.
    assert quick is True
    path = Path(out_dir) / "training_table.md"
    path.write_text("| model | init |\n|---|---|\n")
    return [path]


@pytest.mark.slow
def test_quick_catalogue_is_complete_correct_and_byte_identical(tmp_path, capsys, monkeypatch):
    import skew.train

    monkeypatch.setattr(skew.train, "write_figures", _fake_training)
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["figures", "--quick", "--out", str(first)]) == 0
    printed = capsys.readouterr().out
    files = sorted(p.name for p in first.iterdir() if p.is_file())
    assert set(EXPECTED) <= set(files)
    assert not [f for f in files if f.endswith(".tmp")]
    readme = (first / "README.md").read_text()
    for name in files:
        if name != "README.md":
            assert f"[{name}]({name})" in readme, name
        assert name in printed

    table = pd.read_csv(first / "table1.csv").set_index("init")
    mu, sigma = theory.input_moments("relu-gaussian")
    for alpha in (0.1, 0.3):
        expected = 100 * theory.expected_skewed_fraction(alpha, mu, sigma)
        for scheme in ("xavier_uniform", "kaiming_normal", "orthogonal"):  # 128 first-layer neurons: binomial sd <= 4.5 points
            assert table.loc[scheme, f"layer 1 α={alpha:g} (%)"] == pytest.approx(expected, abs=15)
        # Square sinusoidal layer: rows n/2 and n are zero (degenerate), every other row sums to ~0.
        assert table.loc["sinusoidal", f"layer 1 α={alpha:g} (%)"] == 0.0
    # LSUV only rescales a bias-free ReLU net's layers: its skew equals orthogonal's.
    for col in [c for c in table.columns if c.startswith("layer")]:
        assert table.loc["lsuv", col] == pytest.approx(table.loc["orthogonal", col], abs=1e-9)

    # the second run is --check's regeneration: byte-identical on the same machine, so no difference
    from skew.figures import check

    diffs, same = check(first, quick=True, work_dir=second)
    assert diffs == []
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert set(same) == {f for f in files if f != "README.md"}
    # the CLI: a cell changed beyond its tolerance is named, and the exit code is 1
    table = pd.read_csv(first / "table1.csv")
    table.loc[0, "layer 1 α=0.1 (%)"] += 3.0
    table.to_csv(first / "table1.csv", index=False)
    capsys.readouterr()
    assert main(["figures", "--quick", "--check", "--out", str(first)]) == 1
    printed = capsys.readouterr().out
    assert "differs: table1.csv: row 1 (Glorot, xavier_uniform), column 'layer 1 α=0.1 (%)'" in printed
    assert "MISMATCH" in printed and "existence only" in printed
    assert main(["figures", "--check", "--out", str(first)]) == 1  # a quick catalogue checked as a full one
    assert "--quick" in capsys.readouterr().err


def test_deterministic_sets_and_restores_threads_and_flags():
    import torch

    from skew.figures import THREADS, deterministic

    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    with deterministic():
        assert torch.get_num_threads() == THREADS
        assert torch.are_deterministic_algorithms_enabled()
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before
    try:
        with deterministic(1):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before
