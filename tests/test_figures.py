"""The figure catalogue: every expected file, byte-identical reruns, Table 1 as docs/definitions.md predicts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from skew import theory
from skew.cli import main
from skew.figures import _markdown_table

EXPECTED = [
    "weights_sinusoidal.png", "weights_schemes.png", "table1.csv", "table1.md", "skew_by_depth.png",
    "rowsum_hist_fig5.png", "skew_vs_rowsum.png", "activation_states.png", "activation_states_last.png",
    "theory_curve.png", "architectures.csv", "architectures.md", "architectures_layers.csv",
    "architectures_skew_by_depth.png", "architectures_distributions.png", "training_table.md", "README.md",
]


def test_markdown_table():
    text = _markdown_table(pd.DataFrame({"scheme": ["a", "b"], "x": [1.234, float("nan")]}), "{:.1f}")
    assert text.splitlines() == ["| scheme | x |", "|---|---:|", "| a | 1.2 |", "| b | – |"]


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

    assert main(["figures", "--quick", "--out", str(second)]) == 0
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
