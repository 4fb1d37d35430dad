"""Under torch.distributed every rank's Report equals the one-process Report over all ranks' data."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

from skew.analyzer import report
from skew.result import Report

WORLD = 2


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 4 * 4, 7), nn.ReLU(),
                         nn.Linear(7, 3))


def rank_data(rank: int) -> list[torch.Tensor]:
    """Rank 0 holds 2 batches of 3 samples (fewer than the 8 OUI samples), rank 1 three batches of 4."""
    gen = torch.Generator().manual_seed(100 + rank)
    count, size = (2, 3) if rank == 0 else (3, 4)
    return [torch.randn(size, 3, 6, 6, generator=gen) for _ in range(count)]


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        rep = report(make_model(), rank_data(rank))
        rep.save(os.path.join(out_dir, f"rank{rank}.zip"))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process_over_the_union(tmp_path):
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    single = report(make_model(), rank_data(0) + rank_data(1))
    for rank in range(WORLD):
        rep = Report.load(tmp_path / f"rank{rank}.zip")
        a, b = rep.neurons, single.neurons
        for col in ("n", "p", "nonfinite", "degenerate", "dead", "always_on"):
            np.testing.assert_array_equal(a[col], b[col], err_msg=col)
        for col in ("mean", "std", "p_gauss", "p_pred"):
            np.testing.assert_allclose(a[col], b[col], rtol=1e-10, atol=1e-13, err_msg=col)
        la, lb = rep.layers, single.layers
        for col in ("calls", "samples"):
            np.testing.assert_array_equal(la[col], lb[col])
        for col in ("oui_batch", "oui_pairwise", "input_mean", "input_std", "lambda_0.3", "skewed_0.1"):
            np.testing.assert_allclose(la[col], lb[col], rtol=1e-10, err_msg=col)
        for name in single.signs:
            np.testing.assert_array_equal(rep.signs[name], single.signs[name])
        assert rep.meta["world_size"] == WORLD and rep.meta["local_batches"] == 2 + rank
        assert rep.meta["batches"] == single.meta["batches"] == 5 and rep.meta["inputs"] == single.meta["inputs"]
