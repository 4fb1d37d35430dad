"""``pkg.module:factory`` specs resolve against the current directory, as ``python -m`` would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from skew._factory import import_factory
from skew.errors import SkewError

ROOT = Path(__file__).resolve().parents[1]

MODEL_MODULE = textwrap.dedent(
    """
    import torch.nn as nn

    def build(width=5):
        return nn.Sequential(nn.ReLU(), nn.Linear(6, width, bias=False))
    """
)
DATA_MODULE = textwrap.dedent(
    """
    import torch

    def batches(batch_size=16, batches=2, seed=0):
        g = torch.Generator().manual_seed(seed + 123)
        return [torch.randn(batch_size, 6, generator=g) for _ in range(batches)]
    """
)
# What the installed ``skew`` console script does: a script outside the current directory, so
# sys.path[0] is the script's own folder and the current directory is not searched.
LAUNCHER = "import sys\nfrom skew.cli import main\nsys.exit(main())\n"


def _run_skew_console(cwd: Path, launcher_dir: Path, *args: str) -> subprocess.CompletedProcess:
    launcher = launcher_dir / "skew_console.py"
    launcher.write_text(LAUNCHER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONSAFEPATH", None)
    return subprocess.run([sys.executable, str(launcher), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def project(tmp_path):
    """A user's project folder holding a model factory and a data factory, plus a separate bin folder."""
    work, bin_dir = tmp_path / "work", tmp_path / "bin"
    work.mkdir()
    bin_dir.mkdir()
    (work / "mymod_cwd.py").write_text(MODEL_MODULE)
    (work / "mydata_cwd.py").write_text(DATA_MODULE)
    return work, bin_dir


def test_console_script_finds_model_and_data_factories_in_the_current_directory(project):
    work, bin_dir = project
    proc = _run_skew_console(work, bin_dir, "report", "--model", "mymod_cwd:build", "-o", "width=7",
                             "--data", "mydata_cwd:batches", "--batch-size", "16", "--batches", "2")
    assert proc.returncode == 0, proc.stderr
    assert "mymod_cwd:build" in proc.stdout and "mydata_cwd:batches" in proc.stdout
    # the factory's width=7 Linear (7 neurons, 6 inputs), measured on the data factory's 2×16 samples
    row = next(line for line in proc.stdout.splitlines() if "Linear" in line).split()
    assert "(7," in row and "6)" in row and "7" in row and "32" in row


def test_python_m_skew_finds_factories_in_the_current_directory(project):
    work, _ = project
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "skew", "report", "--model", "mymod_cwd:build",
                           "--data", "mydata_cwd:batches", "--batches", "1"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_a_missing_module_is_a_one_line_error(project):
    work, bin_dir = project
    proc = _run_skew_console(work, bin_dir, "report", "--model", "no_such_mod_xyz:build", "--data", "gaussian",
                             "--input-shape", "6")
    assert proc.returncode == 1
    assert "no_such_mod_xyz" in proc.stderr and "Traceback" not in proc.stderr


def test_import_factory_searches_cwd_and_restores_sys_path(tmp_path, monkeypatch):
    (tmp_path / "factory_in_cwd_mod.py").write_text("def make():\n    return 42\n")
    monkeypatch.chdir(tmp_path)
    cwd = os.getcwd()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", cwd)])
    monkeypatch.delitem(sys.modules, "factory_in_cwd_mod", raising=False)
    before = list(sys.path)
    assert import_factory("factory_in_cwd_mod:make", "model", "mypkg.nets:make_net")() == 42
    assert sys.path == before  # the current directory was on sys.path for the import only
    sys.modules.pop("factory_in_cwd_mod", None)


def test_import_factory_restores_sys_path_when_the_import_fails(tmp_path, monkeypatch):
    (tmp_path / "factory_broken_mod.py").write_text("raise ImportError('broken on purpose')\n")
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    with pytest.raises(SkewError, match="broken on purpose"):
        import_factory("factory_broken_mod:make", "data", "mypkg.data:make_batches")
    assert sys.path == before
