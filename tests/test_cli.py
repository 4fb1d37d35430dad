"""The skew command line, in-process (main([...])) and once through the console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from skew._version import __version__
from skew.cli import build_parser, load_weights, main
from skew.errors import SkewError

COMMANDS = ["plot", "report", "compare", "inspect", "figures", "train"]
MLP = ["--model", "mlp", "-o", "depth=2", "-o", "width=32", "-o", "in_features=16"]


def test_help_of_every_command_exits_zero(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    for command in COMMANDS:
        assert command in top
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: skew {command}")
    assert main([]) == 0  # no command: help, not an error
    assert "usage: skew" in capsys.readouterr().out


def test_every_command_help_ends_with_examples_that_parse(capsys):
    # a newcomer reading `skew report --help` found every flag but no complete command line to start from
    import shlex

    from skew.cli import EXAMPLES

    assert set(EXAMPLES) == set(COMMANDS)
    for command in COMMANDS:
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "\nexamples:\n" in out
        for line in EXAMPLES[command]:
            assert f"  {line}\n" in out  # kept on one line, as written
            args = shlex.split(line)[1:]
            assert args[0] == command
            build_parser().parse_args(args)  # exits 2 on an unknown flag or a bad choice


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"skew {__version__}"


def test_bad_init_exits_2_naming_the_choices(capsys):
    assert main(["plot", "--init", "nope"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "sinusoidal" in err and "xavier_uniform" in err


def test_bad_model_and_inits_exit_2_naming_the_choices(capsys):
    assert main(["report", "--model", "nope", "--data", "gaussian"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and "'mlp'" in err and "pkg.module:factory" in err
    assert main(["report", *MLP, "--data", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and "'gaussian'" in err
    assert main(["compare", *MLP, "--data", "gaussian", "--inits", "orthogonal,bogus"]) == 2
    err = capsys.readouterr().err
    assert "'bogus'" in err and "lsuv" in err
    assert main(["report", *MLP, "--data", "gaussian", "--thresholds", "0.7"]) == 2
    assert "between 0 and 0.5" in capsys.readouterr().err
    assert main(["plot", "--init", "orthogonal", "--layer", "0"]) == 2
    assert "needs --model" in capsys.readouterr().err


@pytest.mark.parametrize("argv, fix", [
    (["report", "--model", "cnn", "--data", "text"], "use one of gaussian, relu-gaussian, uniform, digits"),
    (["report", "--model", "hf:gpt2", "--data", "digits"], "use --data text"),
    (["compare", "--model", "hf:llama", "--data", "gaussian", "--inits", "he"], "use --data text"),
    # the transformer reads (tokens, features): the text message offered digits, which then failed with
    # "pass e.g. shape=(64,)", a Python keyword the command line does not have
    (["report", "--model", "transformer", "--data", "text"], "use one of gaussian, relu-gaussian, uniform\n"),
    (["report", "--model", "transformer", "--data", "digits"], "use one of gaussian, relu-gaussian, uniform\n"),
])
def test_built_in_data_of_the_wrong_kind_for_the_model_exits_2_naming_the_data_that_fit(argv, fix, capsys):
    # these failed inside the model (a dtype error in GPT-2's embedding; a shape error about "(seq_len,)") with
    # advice to pass input_fn=, which the command line has no way to do
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "argument --data" in err and fix in err


@pytest.mark.parametrize("argv, python, flags", [
    (["report", *MLP, "--data", "gaussian", "--input-shape", "5"], "input_fn=", "--input-shape"),
    (["report", *MLP, "--data", "gaussian", "--layers", "fc*x"], "layers=None", "leave out --layers"),
    (["report", *MLP, "--data", "digits", "--input-shape", "4", "4"], "shape=(64,)", "--input-shape 64"),
])
def test_errors_on_the_command_line_name_flags_not_python_keywords(argv, python, flags, capsys):
    # a newcomer on the command line was told to "pass input_fn=", "layers=None" or "shape=(64,)"
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert python not in err and flags in err, err


def test_skewerror_exits_1_without_traceback_unless_debug(tmp_path, capsys):
    argv = ["inspect", *MLP, "--weights", str(tmp_path / "missing.pt")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("skew: error: checkpoint") and "does not exist" in err
    assert "Traceback" not in err
    assert main([*argv, "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "skew: error:" in err
    assert main(["--debug", *argv]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_plot_writes_the_requested_format(tmp_path, capsys):
    assert main(["plot", "--init", "sinusoidal", "--shape", "16", "24", "--out", str(tmp_path / "w.png")]) == 0
    png = (tmp_path / "w.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", "--init", "sinusoidal", "--shape", "16", "24", "--out", str(tmp_path / "w.png")]) == 0
    assert (tmp_path / "w.png").read_bytes() == png  # byte-identical
    assert main(["plot", "--init", "orthogonal", "--format", "svg", "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o.svg").read_text().lstrip().startswith("<?xml")
    assert main(["plot", "--init", "xavier_uniform", *MLP, "--layer", "fc2", "--out", str(tmp_path / "l.pdf")]) == 0
    assert (tmp_path / "l.pdf").read_bytes()[:5] == b"%PDF-"
    assert main(["plot", "--init", "orthogonal", "--format", "pdf", "--out", str(tmp_path / "x.png")]) == 2
    assert "conflicts" in capsys.readouterr().err


def test_report_prints_table_and_writes_files(tmp_path, capsys):
    out = tmp_path / "rep"
    argv = ["report", *MLP, "--data", "relu-gaussian", "--init", "xavier_uniform", "--batches", "2",
            "--batch-size", "64", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "skewed_0.1" in text and "count estimator" in text
    layers = pd.read_csv(out / "layers.csv")
    neurons = pd.read_csv(out / "neurons.csv")
    assert len(neurons) == layers["neurons"].sum()
    assert {"neurons.csv", "layers.csv", "skew_hist.png", "rowsum_hist.png", "activation_states.png"} <= {
        p.name for p in out.iterdir()
    }


def test_report_explains_every_column_it_prints(capsys):
    # a new user reads lambda_0.1, agree_0.3, spearman_s_p ... in the terminal: each is explained under the table
    assert main(["report", *MLP, "--data", "relu-gaussian", "--batches", "1", "--thresholds", "0.2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.split()[:2] == ["layer", "type"]).split()
    legend = next(line for line in lines if line.startswith("columns: "))
    said_in_the_first_line = {"layer", "type", "shape", "neurons", "skewed_0.2"}  # and the header line
    for column in set(header) - said_in_the_first_line:
        generic = column.replace("_0.2", "_α")
        assert f"{generic} = " in legend or f"{generic}, " in legend, column


def test_inspect_explains_every_column_it_prints(capsys):
    assert main(["inspect", *MLP, "--init", "sinusoidal"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.split()[:2] == ["layer", "type"]).split()
    legend = next(line for line in lines if line.startswith("columns: "))
    for column in set(header) - {"layer", "type", "shape", "note"}:
        assert f"{column} " in legend or f"{column}," in legend, column


def test_compare_and_inspect_commands(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", *MLP, "--data", "relu-gaussian", "--inits", "xavier_uniform,sinusoidal", "--seeds", "0,1",
            "--batches", "1", "--batch-size", "128", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "sinusoidal" in text and "skewed_0.3" in text
    neurons = pd.read_csv(out / "neurons.csv")
    assert set(neurons["init"]) == {"xavier_uniform", "sinusoidal"} and set(neurons["seed"]) == {0, 1}
    assert (out / "skew_by_depth_0.3.png").exists() and (out / "tests.csv").exists()

    assert main(["inspect", *MLP, "--init", "sinusoidal", "--out", str(tmp_path / "ins")]) == 0
    text = capsys.readouterr().out
    assert "data-free" in text
    assert len(pd.read_csv(tmp_path / "ins" / "neurons.csv")) > 0


def test_inspect_takes_as_built_like_report_and_compare(tmp_path, capsys):
    # the README lists as_built among the --init schemes; inspect without --init already measures the model
    # as built, so --init as_built must give the same table (it used to exit 2: invalid choice)
    assert main(["inspect", *MLP, "--out", str(tmp_path / "plain")]) == 0
    assert main(["inspect", *MLP, "--init", "as_built", "--out", str(tmp_path / "as_built")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "plain" / "neurons.csv"),
                                  pd.read_csv(tmp_path / "as_built" / "neurons.csv"))
    assert "as_built" in _subparser_help_text("inspect")


def test_as_built_models_are_reproducible_from_seed_and_match_compare(tmp_path, capsys):
    # `skew report --model mlp` measures the constructor's own (random) init: it was drawn from the unseeded
    # global RNG, so two identical commands printed different tables. It now comes from --seed's init stream,
    # as skew compare builds its models.
    common = [*MLP, "--data", "relu-gaussian", "--batches", "1"]
    for out in ("a", "b"):
        assert main(["report", *common, "--out", str(tmp_path / out)]) == 0
    a = pd.read_csv(tmp_path / "a" / "neurons.csv")
    pd.testing.assert_frame_equal(a, pd.read_csv(tmp_path / "b" / "neurons.csv"))
    assert main(["report", *common, "--seed", "1", "--out", str(tmp_path / "c")]) == 0
    assert not a["row_sum"].equals(pd.read_csv(tmp_path / "c" / "neurons.csv")["row_sum"])
    assert main(["compare", *common, "--inits", "as_built", "--seeds", "0", "--out", str(tmp_path / "cmp")]) == 0
    cmp = pd.read_csv(tmp_path / "cmp" / "neurons.csv")
    pd.testing.assert_frame_equal(a[["layer", "neuron", "row_sum", "p"]], cmp[["layer", "neuron", "row_sum", "p"]])
    capsys.readouterr()


def _subparser_help_text(command: str) -> str:
    (sub,) = [a for a in build_parser()._actions if a.dest == "command"]
    return sub.choices[command].format_help()


def test_report_with_a_factory_model_and_a_npy_file(tmp_path, capsys, monkeypatch):
    import numpy as np

    (tmp_path / "clinets.py").write_text(
        "import torch.nn as nn\n"
        "def make(width=8):\n"
        "    return nn.Sequential(nn.ReLU(), nn.Linear(6, width, bias=False))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32))
    model = ["--model", "clinets:make", "-o", "width=5"]
    assert main(["report", *model, "--data", str(tmp_path / "x.npy"), "--batch-size", "20", "--init", "orthogonal"]) == 0
    assert "clinets:make" in capsys.readouterr().out
    # Generated data needs the per-sample shape, which a bare factory cannot tell: exit 1 naming the fix.
    assert main(["report", *model, "--data", "gaussian"]) == 1
    assert "--input-shape" in capsys.readouterr().err
    assert main(["report", *model, "--data", "gaussian", "--input-shape", "6", "--batches", "1"]) == 0
    assert main(["report", *model, "--data", "gaussian", "--input-shape", "7", "--batches", "1"]) == 1
    assert "skew: error:" in capsys.readouterr().err


def test_a_factory_with_lazy_modules_gets_its_weights_from_input_shape(tmp_path, capsys, monkeypatch):
    # nn.LazyLinear is common in user code: on the command line there is no place to run the forward pass
    # that creates its weights, so skew runs one on zeros of --input-shape (and says what to do without it)
    (tmp_path / "clilazy.py").write_text(
        "import torch.nn as nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(5))\n"
        "def eager():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = ["--model", "clilazy:make"]
    assert main(["report", *model, "--data", "gaussian", "--input-shape", "3", "8", "8", "--batches", "1",
                 "--init", "sinusoidal", "--out", str(tmp_path / "rep")]) == 0
    layers = pd.read_csv(tmp_path / "rep" / "layers.csv", dtype={"layer": str})
    row = layers.set_index("layer").loc["3"]  # the lazy layer is measured with its real shape, 4·6·6 inputs
    assert row["neurons"] == 5 and "144" in row["shape"]
    assert main(["compare", *model, "--data", "gaussian", "--input-shape", "3", "8", "8", "--batches", "1",
                 "--inits", "he,sinusoidal"]) == 0
    assert main(["inspect", *model, "--input-shape", "3", "8", "8"]) == 0
    # a checkpoint loads into the lazy model once its weights exist: the same report as the eager model's
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5)).state_dict(),
               tmp_path / "ckpt.pt")
    torch.save(torch.randn(6, 3, 8, 8), tmp_path / "batch.pt")
    for factory, out in (("clilazy:make", "lazy"), ("clilazy:eager", "eager")):
        assert main(["report", "--model", factory, "--input-shape", "3", "8", "8", "--weights", str(tmp_path / "ckpt.pt"),
                     "--data", str(tmp_path / "batch.pt"), "--out", str(tmp_path / out)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "lazy" / "neurons.csv"),
                                  pd.read_csv(tmp_path / "eager" / "neurons.csv"))
    capsys.readouterr()
    # a .npy file gives no shape: the error names the lazy module and --input-shape
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros((4, 3, 8, 8), dtype=np.float32))
    assert main(["report", *model, "--data", str(tmp_path / "x.npy")]) == 1
    err = capsys.readouterr().err
    assert "lazy modules ('3')" in err and "--input-shape" in err
    # a wrong shape: the error says the forward pass on zeros failed and to check --input-shape
    assert main(["inspect", *model, "--input-shape", "2", "8", "8"]) == 1
    assert "check --input-shape" in capsys.readouterr().err


# ---- checkpoints ---------------------------------------------------------------------------------
def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_load_weights_accepts_state_dicts(tmp_path):
    src, dst = _net(), _net()
    torch.save(src.state_dict(), tmp_path / "sd.pt")
    load_weights(dst, tmp_path / "sd.pt")
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))
    torch.save({"state_dict": src.state_dict(), "epoch": 3}, tmp_path / "wrapped.pt")
    load_weights(_net(), tmp_path / "wrapped.pt")


def test_load_weights_names_missing_unexpected_and_misshaped_keys(tmp_path):
    sd = _net().state_dict()
    sd.pop("2.bias")
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(SkewError, match=r"missing keys: 2\.bias.*unexpected keys: extra\.weight"):
        load_weights(_net(), tmp_path / "bad.pt")
    torch.save(nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).state_dict(), tmp_path / "shape.pt")
    with pytest.raises(SkewError, match=r"shape mismatches: 0\.weight \(5, 3\) vs model \(4, 3\)"):
        load_weights(_net(), tmp_path / "shape.pt")


def test_load_weights_rejects_pickled_modules_and_other_objects(tmp_path):
    torch.save(_net(), tmp_path / "module.pt")  # a whole pickled module: refused by weights_only=True
    with pytest.raises(SkewError, match="not a plain state dict"):
        load_weights(_net(), tmp_path / "module.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(SkewError, match="not a state dict of tensors"):
        load_weights(_net(), tmp_path / "list.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SkewError):
        load_weights(_net(), tmp_path / "junk.pt")


def test_report_with_mismatched_checkpoint_exits_1(tmp_path, capsys):
    torch.save(_net().state_dict(), tmp_path / "other.pt")
    assert main(["report", *MLP, "--weights", str(tmp_path / "other.pt"), "--data", "gaussian"]) == 1
    err = capsys.readouterr().err
    assert "missing keys" in err and "unexpected keys" in err and "Traceback" not in err


# ---- subprocess ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_console_script_and_python_m():
    script = Path(sys.executable).with_name("skew")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"skew {__version__}"
    result = subprocess.run([sys.executable, "-m", "skew", "plot", "--init", "bogus"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_output_piped_into_a_reader_that_leaves_early_stops_quietly():
    # `skew report ... | head -2`: the reader closes the pipe; skew used to print "skew: error: cannot access:
    # Broken pipe; check that the path exists ...", which sends a new user looking for a missing file
    import os

    read, write = os.pipe()
    os.close(read)  # the reader is gone before skew prints its first line
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with os.fdopen(write, "wb") as pipe:
        result = subprocess.run([sys.executable, "-m", "skew", "inspect", "--model", "mlp", "-o", "width=8"],
                                stdout=pipe, stderr=subprocess.PIPE, text=True, timeout=120, env=env)
    assert result.returncode == 141, result.stderr
    assert result.stderr == ""


# ---- start-up, argument checks before work --------------------------------------------------------
_PROBE = """
import runpy, sys
sys.argv = ["skew", *{argv!r}]
try:
    runpy.run_module("skew", run_name="__main__", alter_sys=True)
except SystemExit as exit_:
    code = exit_.code
print("HEAVY", sorted(m for m in ("torch", "matplotlib", "pandas", "scipy") if m in sys.modules), code)
"""


@pytest.mark.parametrize("argv", [["--help"], ["report", "--help"], ["train", "--help"], ["train", "--epochs", "0"], ["plot", "--init", "nope"],
                                  ["report", "--model", "mlp", "--data", "gaussian", "--device", "bogus"]])
def test_python_m_skew_help_and_argument_errors_import_no_heavy_module(argv):
    """`python -m skew --help` (and argument errors) must not import torch, matplotlib, pandas or scipy."""
    root = Path(__file__).resolve().parents[1]
    env = {**__import__("os").environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", _PROBE.format(argv=argv)], capture_output=True, text=True,
                            timeout=120, env=env, cwd=root)
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("HEAVY")][-1]
    assert line.startswith("HEAVY [] "), line
    assert line.endswith(" 0" if argv[-1] == "--help" else " 2"), line


def test_import_skew_is_light_and_the_public_api_loads_on_use():
    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys, skew\n"
        "assert 'torch' not in sys.modules and 'pandas' not in sys.modules\n"
        "names = dir(skew)\n"
        "assert set(skew.__all__) <= set(names) and 'train' in names\n"
        "from skew import *\n"
        "assert callable(report) and callable(skew.init.apply) and skew.Report.load\n"
        "assert skew.report is report and skew.weights.layer_table\n"
        "import skew.compare\n"
        "assert skew.compare is compare and callable(skew.compare)  # the function, not the submodule\n"
        "print('OK')\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(root)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.stdout.strip() == "OK", result.stderr


def test_cli_name_lists_equal_the_registries():
    """The CLI spells the registries' names so that --help needs no torch; they must not drift."""
    import skew.cli as cli
    import skew.init
    from skew.data import data_names
    from skew.models import model_names

    assert list(cli.SCHEMES) == list(skew.init.schemes(aliases=True))
    assert list(cli.MODELS) == list(model_names())
    assert list(cli.DATA) == list(data_names())


def test_build_parser_registers_the_full_train_command(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    out = capsys.readouterr().out
    assert "--epochs" in out and "--seed" in out and "--debug" in out


def test_train_seed_is_the_data_seed_and_values_are_checked_before_training(monkeypatch, tmp_path, capsys):
    import skew.train as train

    seen = {}

    def fake_run(**kwargs):
        seen.update(kwargs)
        raise SkewError("stop here")

    monkeypatch.setattr(train, "run_experiment", fake_run)
    assert main(["train", "--seed", "7", "--seeds", "3", "--quick", "--out", str(tmp_path / "t")]) == 1
    assert seen["data_seed"] == 7 and list(seen["seeds"]) == [3]
    assert "stop here" in capsys.readouterr().err


def test_unusable_out_is_found_before_the_model_is_built(tmp_path, monkeypatch, capsys):
    (tmp_path / "cli_marker_factory.py").write_text(
        "import pathlib, torch.nn as nn\n"
        f"def make():\n    pathlib.Path({str(tmp_path / 'built')!r}).touch()\n"
        "    return nn.Sequential(nn.Linear(4, 3))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "taken").write_text("x")
    for command in (["report", "--data", "gaussian"], ["inspect"]):
        argv = [*command, "--model", "cli_marker_factory:make", "--input-shape", "4", "--out", str(tmp_path / "taken")]
        if command[0] == "inspect":
            argv.remove("--input-shape"), argv.remove("4")
        assert main(argv) == 1
        assert "is a file" in capsys.readouterr().err
    assert not (tmp_path / "built").exists()
    assert (tmp_path / "taken").read_text() == "x"


def test_report_save_errors_are_one_line_naming_the_target(tmp_path, capsys, monkeypatch):
    """An OSError while writing outputs (here: a read-only target injected) is one line, exit 1."""
    import skew._io as io_mod

    def refuse(path, write):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(io_mod, "atomic_write", refuse)
    monkeypatch.setattr("skew.cli.write_csv", lambda frame, path: refuse(path, None))
    rc = main(["report", *MLP, "--data", "gaussian", "--batches", "1", "--batch-size", "8", "--out",
               str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and err.startswith("skew: error: cannot access")
    assert "Permission denied" in err and str(tmp_path / "o") in err
