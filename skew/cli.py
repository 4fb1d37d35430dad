"""The ``skew`` command line (stub: commands arrive with the CLI issue)."""

from __future__ import annotations

import argparse

from skew._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skew", description="Neuron-skewness analysis for PyTorch.")
    parser.add_argument("--version", action="version", version=f"skew {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    build_parser().parse_args(argv)
    return 0
