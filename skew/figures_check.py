"""Compare a regenerated figure catalogue with the committed one: tables within stated tolerances.

``skew figures --check`` (:func:`skew.figures.check`) regenerates the catalogue into a temporary
directory and calls :func:`compare_catalogues`. What is compared:

- every ``*.csv`` and ``*.md`` table except ``README.md`` (the index, whose text is code): the same
  files, the same rows and columns, text cells equal, numbers equal within the tolerance of their
  column (:data:`TOLERANCES`, first matching rule wins: |a − b| ≤ abs + rel·|b|);
- Markdown prose lines (outside tables): the same words, numbers within :data:`PROSE_TOLERANCE`;
- PNG figures: only that each exists on both sides (pixels depend on fonts and the matplotlib build).

Tolerances, by column name (case-insensitive):

================================================  ==================================
column                                            tolerance
================================================  ==================================
percentages (name has ``%``)                      ±0.5 points
accuracies (``acc``)                              ±0.01
AUC (``auc``, area over up to 40 epochs)          ±0.3
epochs (``epoch``)                                ±1
OUI (``oui``)                                     ±0.01
skewed fractions and mean skew (``skew``)         ±0.005
λ, agreement, Spearman, input moments             ±0.01 + 0.1 % relative
counts of degenerate / dead / always-on neurons   ±2
layer, neuron, sample and seed counts             exact
anything else                                     ±0.001 + 0.1 % relative
================================================  ==================================

Example:
    >>> from skew.figures_check import tolerance
    >>> tolerance("layer 1 α=0.1 (%)")
    Tolerance(abs=0.5, rel=0.0, what='±0.5 points')
"""

from __future__ import annotations

import math
import numbers
import re
from pathlib import Path
from typing import NamedTuple

import pandas as pd

__all__ = ["PROSE_TOLERANCE", "TOLERANCES", "Tolerance", "compare_catalogues", "compare_tables", "tolerance"]


class Tolerance(NamedTuple):
    """Numbers a and b (committed) agree when |a − b| ≤ abs + rel·|b|."""

    abs: float
    rel: float
    what: str

    def agrees(self, a: float, b: float) -> bool:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return abs(a - b) <= self.abs + self.rel * abs(b) + 1e-12


#: (regular expression on the lower-cased column name, tolerance); the first match wins.
TOLERANCES: tuple[tuple[str, Tolerance], ...] = (
    (r"%", Tolerance(0.5, 0.0, "±0.5 points")),
    (r"acc", Tolerance(0.01, 0.0, "±0.01")),
    (r"auc", Tolerance(0.3, 0.0, "±0.3")),
    (r"epoch", Tolerance(1.0, 0.0, "±1 epoch")),
    (r"oui", Tolerance(0.01, 0.0, "±0.01")),
    (r"skew", Tolerance(0.005, 0.0, "±0.005")),
    (r"lambda|agree|spearman|input_", Tolerance(0.01, 1e-3, "±0.01 + 0.1 %")),
    (r"degenerate|dead|always_on", Tolerance(2.0, 0.0, "±2 neurons")),
    (r"^(layers|neurons|samples|index|seeds?|median samples per neuron)$", Tolerance(0.0, 0.0, "exact")),
    (r"", Tolerance(1e-3, 1e-3, "±0.001 + 0.1 %")),
)
#: Numbers in Markdown prose (verdicts, corollary values): ±0.5 or 2 %, whichever is larger.
PROSE_TOLERANCE = Tolerance(0.5, 0.02, "±0.5 or 2 %")

_NUMBER = re.compile(r"[-+−]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def tolerance(column: str) -> Tolerance:
    """The tolerance of a table column, by the rules of :data:`TOLERANCES`."""
    name = str(column).lower()
    for pattern, tol in TOLERANCES:
        if re.search(pattern, name):
            return tol
    raise AssertionError("the last rule matches everything")


def _split(text: str) -> tuple[list[str], list[float]]:
    """Words and numbers of a cell or line: ('| a | ', '1.5', ...) -> (['| a | ', ...], [1.5, ...])."""
    words, numbers, last = [], [], 0
    for m in _NUMBER.finditer(text):
        words.append(text[last:m.start()])
        numbers.append(float(m.group().replace("−", "-")))
        last = m.end()
    words.append(text[last:])
    return words, numbers


def _cells_differ(a: str, b: str, tol: Tolerance) -> bool:
    words_a, nums_a = _split(a.strip())
    words_b, nums_b = _split(b.strip())
    if words_a != words_b or len(nums_a) != len(nums_b):
        return a.strip() != b.strip()
    return not all(tol.agrees(x, y) for x, y in zip(nums_a, nums_b))


def _row_key(row: pd.Series) -> str:
    keys = [str(v) for k, v in row.items() if k in ("model", "init", "scheme", "layer", "seed")]
    return ", ".join(keys)


def _compare_csv(new: Path, old: Path) -> list[str]:
    name = old.name
    a, b = pd.read_csv(new, keep_default_na=True), pd.read_csv(old, keep_default_na=True)
    if list(a.columns) != list(b.columns):
        return [f"{name}: columns differ: regenerated {list(a.columns)} vs committed {list(b.columns)}"]
    if len(a) != len(b):
        return [f"{name}: {len(a)} rows regenerated vs {len(b)} committed"]
    out = []
    for i in range(len(b)):
        for col in b.columns:
            x, y = a.at[i, col], b.at[i, col]
            tol = tolerance(col)
            numeric = all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in (x, y))
            same = tol.agrees(float(x), float(y)) if numeric else (
                (pd.isna(x) and pd.isna(y)) or str(x) == str(y))
            if not same:
                out.append(f"{name}: row {i + 1} ({_row_key(b.iloc[i])}), column {col!r}: committed {y} vs "
                           f"regenerated {x} (tolerance {tol.what})")
    return out


def _table_rows(lines: list[str], start: int) -> int:
    end = start
    while end < len(lines) and lines[end].lstrip().startswith("|"):
        end += 1
    return end


def _compare_md(new: Path, old: Path) -> list[str]:
    name = old.name
    a, b = new.read_text(encoding="utf-8").splitlines(), old.read_text(encoding="utf-8").splitlines()
    if len(a) != len(b):
        return [f"{name}: {len(a)} lines regenerated vs {len(b)} committed"]
    out, i = [], 0
    while i < len(b):
        if b[i].lstrip().startswith("|"):  # a table: header, rule, rows
            end = _table_rows(b, i)
            header = [c.strip() for c in b[i].strip().strip("|").split("|")]
            for j in range(i, end):
                cells_a = [c for c in a[j].strip().strip("|").split("|")]
                cells_b = [c for c in b[j].strip().strip("|").split("|")]
                if len(cells_a) != len(cells_b):
                    out.append(f"{name}: line {j + 1}: the table row has {len(cells_a)} cells regenerated vs "
                               f"{len(cells_b)} committed")
                    continue
                for col, x, y in zip(header, cells_a, cells_b):
                    tol = tolerance(col) if j > i + 1 else Tolerance(0.0, 0.0, "exact")
                    if _cells_differ(x, y, tol):
                        first = cells_b[0].strip()
                        out.append(f"{name}: line {j + 1} ({first}), column {col!r}: committed {y.strip()!r} vs "
                                   f"regenerated {x.strip()!r} (tolerance {tol.what})")
            i = end
            continue
        if _cells_differ(a[i], b[i], PROSE_TOLERANCE):
            out.append(f"{name}: line {i + 1}: committed {b[i]!r} vs regenerated {a[i]!r} "
                       f"(words exact, numbers {PROSE_TOLERANCE.what})")
        i += 1
    return out


def compare_tables(new: str | Path, old: str | Path) -> list[str]:
    """Differences between one regenerated table ``new`` and the committed ``old`` (CSV or Markdown).

    Each difference names the file, the row (or line) and the column, both values and the tolerance.
    An empty list means they agree.

    Example:
        >>> compare_tables("/tmp/regen/table1.csv", "figures/table1.csv")  # doctest: +SKIP
        ["table1.csv: row 5 (Sinusoidal, sinusoidal), column 'layer 2 α=0.1 (%)': committed 0 vs ..."]
    """
    new, old = Path(new), Path(old)
    return _compare_csv(new, old) if old.suffix == ".csv" else _compare_md(new, old)


def compare_catalogues(new_dir: str | Path, old_dir: str | Path) -> tuple[list[str], list[str]]:
    """(differences, byte-identical files) between a regenerated catalogue and the committed one.

    Tables (``*.csv``, ``*.md`` but ``README.md``) are compared by :func:`compare_tables`; PNGs only
    for existence; a file on one side only is a difference.

    Example:
        >>> diffs, same = compare_catalogues("/tmp/regen", "figures")  # doctest: +SKIP
    """
    new_dir, old_dir = Path(new_dir), Path(old_dir)
    kinds = (".csv", ".md", ".png")
    new = {p.name for p in new_dir.iterdir() if p.suffix in kinds and p.name != "README.md"}
    old = {p.name for p in old_dir.iterdir() if p.suffix in kinds and p.name != "README.md"}
    diffs = [f"{n}: committed but not regenerated" for n in sorted(old - new)]
    diffs += [f"{n}: regenerated but not committed in {old_dir}" for n in sorted(new - old)]
    same = []
    for n in sorted(old & new):
        if (new_dir / n).read_bytes() == (old_dir / n).read_bytes():
            same.append(n)
        elif n.endswith((".csv", ".md")):
            diffs += compare_tables(new_dir / n, old_dir / n)
    return diffs, same
