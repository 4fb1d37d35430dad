"""Atomic file writing and reproducible figure saving (no timestamps in metadata)."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from skew.errors import SkewError

__all__ = ["CSV_FLOAT_FORMAT", "atomic_write", "save_figure", "write_csv"]

#: Float format of every CSV skew writes: short, and the same bytes on every run.
CSV_FLOAT_FORMAT = "%.6g"


def path_arg(path, what: str, kind: str, example: str) -> Path:
    """``path`` as a Path, or a one-line SkewError when it is no usable path (not a str or
    os.PathLike, bytes, or empty), naming ``what`` wanted it, the ``kind`` of path and an ``example``.

    Example:
        >>> path_arg("out/run.zip", "Report.save", "file", "'run.skew.zip'")
        PosixPath('out/run.zip')
    """
    if isinstance(path, (str, os.PathLike)) and not isinstance(path, bytes):
        text = os.fspath(path)
        if isinstance(text, str) and text.strip():
            return Path(text)
    got = repr(path) if isinstance(path, str) else type(path).__name__
    raise SkewError(f"{what} needs a {kind} path (a str or pathlib.Path), got {got}; pass e.g. {example}")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    The target is either left untouched (when ``write`` raises) or replaced whole; a reader
    never sees a half-written file. The temporary file lives in the target's directory so the
    final ``os.replace`` is atomic on POSIX.

    Example:
        >>> atomic_write("out.csv", lambda p: df.to_csv(p))  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():  # else the error names the temporary file, only when the rename fails
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, _mode_for(path))
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def _mode_for(path: Path) -> int:
    """The replaced file's permissions, or the ones a plain open() would give (mkstemp uses 0600)."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_csv(frame, path: str | os.PathLike, *, float_format: str = CSV_FLOAT_FORMAT) -> Path:
    """Write a DataFrame as CSV atomically and reproducibly (fixed float format, ``\\n`` line ends).

    Example:
        >>> write_csv(rep.layers, "out/layers.csv")  # doctest: +SKIP
    """

    def write(tmp: Path) -> None:
        frame.to_csv(tmp, index=False, float_format=float_format, lineterminator="\n")

    return atomic_write(path, write)


_NO_DATE = {
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None},
    "svg": {"Creator": None, "Date": None},
}


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Save a matplotlib Figure atomically, byte-identical across runs (no dates or versions).

    The format is taken from the suffix (png, pdf or svg).

    Example:
        >>> fig, ax = plt.subplots(); save_figure(fig, "figures/x.png")  # doctest: +SKIP
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in _NO_DATE:
        from skew.errors import SkewError

        raise SkewError(f"cannot save a figure as {fmt!r}; use a .png, .pdf or .svg file name")
    kwargs = {"format": fmt, "dpi": dpi, "metadata": _NO_DATE[fmt]}
    if fmt == "svg":
        import matplotlib

        def write(tmp: Path) -> None:
            with matplotlib.rc_context({"svg.hashsalt": "skew"}):
                fig.savefig(tmp, **kwargs)
    else:

        def write(tmp: Path) -> None:
            fig.savefig(tmp, **kwargs)

    return atomic_write(path, write)
