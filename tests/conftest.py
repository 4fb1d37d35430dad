"""Shared test set-up: headless matplotlib, few threads, deterministic seeds."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_and_close_figures():
    torch.manual_seed(0)
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(params=["eager", "compiled"])
def cpu_form(request, monkeypatch):
    """Run a test with each CPU level-1 form: eager torch, and the compiled one-pass kernel
    (:mod:`skew._fused`; skipped where no C compiler built it)."""
    import skew._fused as fused

    if request.param == "eager":
        monkeypatch.setattr(fused, "_state", {"lib": None})  # kernel() is None for this test only
    elif not fused.available():
        pytest.skip("the compiled level-1 kernel is not available here (no C compiler)")
    return request.param
