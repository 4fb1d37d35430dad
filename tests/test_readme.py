"""The README as a new user meets it: its Python example, its command lines, its links and install hints."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import torch
from torch import nn

from skew.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = sorted((ROOT / "docs").glob("*.md"))
DIST = "neuron-skew"


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def _cli_lines() -> list[str]:
    """Every ``skew ...`` line of the README's command-line section, without its comment."""
    lines = []
    for block in _blocks(_section(README, "The command line"), "bash"):
        for line in block.splitlines():
            line = line.split(" # ", 1)[0].strip()
            if line.startswith("skew "):
                lines.append(line)
    return lines


# ---- the Python example ----------------------------------------------------------------------------
def test_the_python_example_runs_as_a_script_and_prints_what_it_describes(tmp_path):
    (code,) = _blocks(_section(README, "Ten lines of Python"), "python")
    (tmp_path / "example.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # the per-layer table, the per-neuron rows and the per-scheme summary are printed
    assert "skewed_0.1" in out and "spearman_s_p" in out and "layer1.0.conv1" in out
    assert "p_pred" in out and "row_sum" in out
    assert all(s in out for s in ("xavier_uniform", "orthogonal", "sinusoidal"))
    # and the files it says it writes exist, the report loading back to the same layers
    import skew

    assert (tmp_path / "resnet18_states.png").stat().st_size > 0
    rep = skew.Report.load(tmp_path / "resnet18.skew")
    assert "conv1" in set(rep.layers["layer"]) and "fc" in set(rep.layers["layer"])


# ---- the command lines ------------------------------------------------------------------------------
def _subparser_help(command: str) -> str:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    return sub.choices[command].format_help()


def _missing_feature(args: list[str]) -> str | None:
    """A feature a README line uses that this tree does not have yet (it lands from another branch)."""
    if "--at" in args and "--at" not in _subparser_help(args[0]):
        return "--at"
    if "--check" in args and "--check" not in _subparser_help(args[0]):
        return "figures --check"
    if any(a.startswith(("hf:", "timm:")) for a in args) and importlib.util.find_spec("skew.models_hub") is None:
        return "hf:/timm: models"
    return None


def _argv(line: str) -> list[str]:
    line = line.replace("[--quick]", "--quick")
    return shlex.split(line)[1:]


CLI_LINES = _cli_lines()


def test_the_readme_shows_every_command():
    (sub,) = [a for a in build_parser()._actions if a.dest == "command"]
    assert {_argv(line)[0] for line in CLI_LINES} == set(sub.choices)


@pytest.mark.parametrize("line", CLI_LINES)
def test_every_readme_command_line_parses(line):
    args = _argv(line)
    missing = _missing_feature(args)
    if missing:
        pytest.skip(f"{missing} is not in this tree yet")
    try:
        build_parser().parse_args(args)
    except SystemExit as exit_:  # argparse rejects an unknown flag or a bad choice with exit 2
        pytest.fail(f"README line {line!r} does not parse (exit {exit_.code})")


def _write_mypkg(cwd: Path) -> None:
    """What the README's ``mypkg.nets:build`` line assumes: a package, a checkpoint and a batch file."""
    (cwd / "mypkg").mkdir()
    (cwd / "mypkg" / "__init__.py").write_text("")
    (cwd / "mypkg" / "nets.py").write_text(
        "import torch.nn as nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n"
        "                         nn.Linear(8, 10))\n"
    )
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    torch.save(net.state_dict(), cwd / "ckpt.pt")
    torch.save(torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(5)), cwd / "batch.pt")


# Lines not run end to end here, and why. Everything else runs exactly as written.
NOT_RUN = {
    "figures --out figures --quick": "tests/test_figures.py runs the quick catalogue; --out figures would "
                                     "overwrite the committed figures",
    "figures --check": "regenerates the full tables (minutes); tests/test_figures.py covers --check",
}
SLOW = ("--model resnet18 --data digits", "--model vit_b_16", "--model hf:gpt2")


def _runnable():
    for line in CLI_LINES:
        key = " ".join(_argv(line))
        if key in NOT_RUN:
            continue
        marks = [pytest.mark.slow] if any(s in line for s in SLOW) else []
        yield pytest.param(line, marks=marks, id=key[:60])


@pytest.mark.parametrize("line", list(_runnable()))
def test_readme_command_line_runs_as_written(line, tmp_path, monkeypatch, capsys):
    args = _argv(line)
    missing = _missing_feature(args)
    if missing:
        pytest.skip(f"{missing} is not in this tree yet")
    monkeypatch.chdir(tmp_path)
    if "mypkg.nets:build" in args:
        _write_mypkg(tmp_path)
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    if "--out" in args:
        target = tmp_path / args[args.index("--out") + 1]
        assert target.exists() and (target.is_file() or any(target.iterdir()))
    elif args[0] == "plot":
        assert list(tmp_path.glob("*.png")), "skew plot wrote no figure"
    else:
        assert captured.out.strip(), "the command printed nothing"


def test_every_not_run_line_is_in_the_readme():
    keys = {" ".join(_argv(line)) for line in CLI_LINES}
    assert set(NOT_RUN) <= keys


# ---- links and references ------------------------------------------------------------------------------
def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LMN")
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_slug_matches_github():
    assert _slug("Theorem 1: the row-sum threshold") == "theorem-1-the-row-sum-threshold"
    assert _slug("Corollary: the first-layer fraction for any i.i.d. scheme") == \
        "corollary-the-first-layer-fraction-for-any-iid-scheme"
    assert _slug("Training (Table 3's metrics)") == "training-table-3s-metrics"


@pytest.mark.parametrize("page", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor}")
    assert not bad, f"{page.name}: " + "; ".join(bad)


def test_docs_cover_what_the_readme_promises():
    assert {p.name for p in DOCS} >= {"README.md", "definitions.md", "init-schemes.md", "oui.md", "experiments.md"}
    text = " ".join(p.read_text(encoding="utf-8") for p in DOCS)
    for term in ("count", "gauss", "Theorem 1", "λ(α)", "p_pred", "degenerate", "Corollary", "ConvTranspose",
                 "Conv1D", "IDIZ", "LSUV", "arcsine", "as_built", 'fans="torch"', "pairwise", "batch OUI",
                 "OUIWeightDecay", "pattern_change", "weight_change", "SeedSequence", "AUC"):
        assert term in text, f"docs/ does not explain {term!r}"


def _sources() -> list[Path]:
    return [*sorted((ROOT / "skew").rglob("*.py")), ROOT / "README.md", ROOT / "notebooks" / "build.py",
            *sorted((ROOT / "tests").glob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py"))]


def test_no_reference_to_a_spec_page_outside_the_repository():
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in _sources() if p.name != "test_readme.py"
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if re.search(r"\bSPEC\b", line)]
    assert not hits, f"'SPEC' is not in the repository; link docs/ instead: {hits}"


def test_every_docs_path_named_in_the_sources_exists():
    missing = {m for p in _sources() for m in re.findall(r"docs/[\w-]+\.md", p.read_text(encoding="utf-8"))
               if not (ROOT / m).exists()}
    assert not missing


# ---- names, install hints, Jupyter ------------------------------------------------------------------------
def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_distribution_name_is_not_pypis_unrelated_skew_and_keeps_the_command():
    project = _pyproject()["project"]
    assert project["name"] == DIST
    assert project["scripts"] == {"skew": "skew.cli:main"}


def test_every_install_hint_names_the_distribution_and_an_existing_extra():
    extras = set(_pyproject()["project"]["optional-dependencies"])
    sources = [*sorted((ROOT / "skew").rglob("*.py")), ROOT / "README.md", ROOT / "notebooks" / "build.py", *DOCS]
    hints = [(p, m) for p in sources for m in re.findall(r"pip install ([^`\n]+)", p.read_text(encoding="utf-8"))]
    assert hints
    for path, hint in hints:
        target = hint.split()[-1]
        name, extras_given = re.match(r"""['"]?([^\[\s'"]*)(?:\[([^\]]*)\])?""", target).groups()
        assert name in (DIST, ".", "-e") or target.lstrip("'\"").startswith("."), f"{path.name}: pip install {hint}"
        for extra in filter(None, (extras_given or "").split(",")):
            assert extra in extras, f"{path.name}: extra {extra!r} of 'pip install {hint}' is not in pyproject"


def test_jupyter_is_in_the_dev_extra_pinned_and_the_readme_opens_the_notebooks():
    dev = _pyproject()["project"]["optional-dependencies"]["dev"]
    assert any(re.match(r"jupyterlab\b", req) for req in dev)
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            key = re.sub(r"[-_.]+", "-", name).lower()
            assert key not in pins, f"requirements.lock pins {name} twice"
            pins[key] = version
    for pkg in ("jupyterlab", "jupyter-server", "notebook-shim", "nbconvert", "ipykernel"):
        assert pkg in pins, f"requirements.lock does not pin {pkg}"
    assert "jupyter lab notebooks/" in README


def test_the_api_table_lists_every_report_neurons_column():
    # the README's `Report.neurons` row is where a new user learns the column names: it missed
    # row_sum_scaled and skew_gauss
    import skew

    (row,) = [line for line in README.splitlines() if line.startswith("| `Report.neurons` |")]
    listed = set(re.findall(r"[a-z_]+", re.split(r"(?<!\\)\|", row)[2].split(":", 1)[1]))
    columns = set(skew.report(nn.Linear(4, 3), torch.randn(10, 4)).neurons.columns)
    assert columns <= listed, sorted(columns - listed)


def test_the_api_table_names_every_keyword_of_report_and_every_theory_function():
    # the README's `skew.report(...)` row left out batch_dim and mask_fn, and `skew.theory` skewed_fraction_curve
    import inspect

    import skew

    (row,) = [line for line in README.splitlines() if line.startswith("| `skew.report(")]
    listed = set(re.findall(r"\b([a-z_]+)\b", row.split("|")[1]))
    keywords = {n for n, p in inspect.signature(skew.report).parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert keywords <= listed, sorted(keywords - listed)
    (row,) = [line for line in README.splitlines() if line.startswith("| `skew.theory` |")]
    functions = {n for n in skew.theory.__all__ if callable(getattr(skew.theory, n))}
    assert {n for n in functions if f"`{n}`" not in row} == set()
