"""The CLI report/compare header: the true number of samples, the whole file by default, what was left out."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from skew.cli import main

MLP = ["--model", "mlp", "-o", "width=16", "-o", "depth=1"]


def _header(capsys) -> str:
    return capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize("n", [100, 1000])
@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_a_file_is_used_whole_and_the_header_says_how_many(tmp_path, capsys, n, suffix):
    x = np.random.default_rng(0).standard_normal((n, 16)).astype(np.float32)
    path = tmp_path / f"data{suffix}"
    np.save(path, x) if suffix == ".npy" else torch.save(torch.from_numpy(x), path)
    assert main(["report", *MLP, "--data", str(path)]) == 0
    header = _header(capsys)
    batches = -(-n // 64)
    assert f"{n} samples in {batches} batches" in header, header
    assert "left out" not in header and "4×64" not in header


def test_batches_on_a_file_says_what_was_left_out(tmp_path, capsys):
    path = tmp_path / "data.npy"
    np.save(path, np.ones((1000, 16), dtype=np.float32))
    assert main(["report", *MLP, "--data", str(path), "--batches", "2", "--batch-size", "100"]) == 0
    header = _header(capsys)
    assert "200 samples in 2 batches" in header and "the first 200 of the 1000 samples" in header
    assert "800 left out" in header


def test_generated_data_and_digits_counts(capsys):
    assert main(["report", *MLP, "--data", "gaussian", "--batch-size", "10"]) == 0
    assert "40 samples in 4 batches" in _header(capsys)  # the default of 4 batches for generated data
    assert main(["report", *MLP, "-o", "in_features=64", "--data", "digits", "--batches", "3",
                 "--batch-size", "50"]) == 0
    header = _header(capsys)
    assert re.search(r"150 samples in 3 batches \(the first 150 of the 1797 images", header), header
    assert main(["compare", *MLP, "--data", "gaussian", "--inits", "as_built,sinusoidal", "--batches", "1",
                 "--batch-size", "32"]) == 0
    assert "32 samples in 1 batch;" in _header(capsys)


def test_as_built_is_listed_and_accepted(capsys):
    assert main(["compare", *MLP, "--data", "gaussian", "--inits", "nope"]) == 2
    assert "'as_built'" in capsys.readouterr().err
    assert main(["report", "--help"]) == 0
    assert "as_built" in capsys.readouterr().out
    assert main(["report", *MLP, "--data", "gaussian", "--init", "as_built", "--batches", "1"]) == 0
    assert "(as built)" in _header(capsys)
