"""The report file behind :meth:`Report.save` and :meth:`Report.load`: one zip, read as untrusted input.

Layout (format ``"skew-report"``, version 1):

- ``report.json``: format, version, thresholds, meta, layer names, per-layer info, and the columns
  and dtypes of the three frames;
- ``neurons.csv``, ``layers.csv``, ``skipped.csv``: the frames, floats in round-trip precision
  (``%.17g``), UTF-8;
- ``state/{i}/{field}.npy``: each :class:`~skew.accumulators.LayerState` field of the i-th layer.

Writing is atomic (a temporary file renamed onto the target). Loading checks everything before
trusting it: the member list (nothing missing, nothing extra, no duplicates), sizes (each member at
most :data:`MAX_MEMBER_BYTES`; an ``.npy`` header must declare exactly the bytes that follow it, so
nothing is allocated beyond what the file holds), dtypes and shapes against the frames, the header
against the CSV columns, UTF-8 text and JSON. Arrays are read with ``allow_pickle=False``. Any
problem raises :class:`~skew.errors.SkewError` naming the file and the problem.

Example:
    >>> import torch, skew
    >>> rep = skew.report(torch.nn.Linear(3, 2), torch.randn(16, 3))
    >>> path = rep.save(tmp / "run.skew.zip")  # doctest: +SKIP
    >>> skew.Report.load(path).neurons.equals(rep.neurons)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from skew._io import atomic_write, path_arg
from skew.accumulators import LayerState
from skew.errors import SkewError

__all__ = ["FORMAT", "MAX_MEMBER_BYTES", "VERSION", "load_report", "save_report"]

FORMAT = "skew-report"
VERSION = 1
#: The largest member (uncompressed) a report file may hold; larger declared sizes are refused unread.
MAX_MEMBER_BYTES = 1 << 30
_FRAMES = ("neurons", "layers", "skipped")
_DTYPE = re.compile(r"(float|int|uint)(8|16|32|64)|bool|object|str|string")
# LayerState fields: (dtype kinds, dimensions); "n" = one value per neuron. Fields not listed here
# (added later) must be numeric or boolean arrays.
_PER_NEURON_INT = ("n", "pos", "nonfinite")
_PER_NEURON_FLOAT = ("mean", "m2", "oui_sum")
_SCALAR_INT = ("oui_batches", "calls", "rows", "in_n")
_SCALAR_FLOAT = ("in_mean", "in_m2")


# ---- writing ---------------------------------------------------------------------------------
def save_report(rep, path) -> Path:
    """Write ``rep`` to ``path`` atomically (see the module docstring for the layout); returns the path.

    Example:
        >>> save_report(rep, "out/run.skew.zip")  # doctest: +SKIP
    """
    target = path_arg(path, "Report.save", "file", "'run.skew.zip'")
    if target.is_dir():
        raise SkewError(f"cannot save the report to {str(target)!r}: it is a directory; pass a file name such "
                        f"as {str(target / 'run.skew.zip')!r}")
    names = list(rep._states)
    frames = {"neurons": rep.neurons, "layers": rep.layers, "skipped": rep.skipped}
    header = {
        "format": FORMAT,
        "version": VERSION,
        "thresholds": list(rep.thresholds),
        "meta": _jsonable(rep.meta),
        "layers": names,
        "info": {k: _jsonable(v) for k, v in rep._info.items()},
        "dtypes": {k: {c: str(t) for c, t in f.dtypes.items()} for k, f in frames.items()},
        "columns": {k: list(f.columns) for k, f in frames.items()},
    }

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:

            def put(name: str, data: str | bytes) -> None:  # fixed date: same report, same bytes
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)

            put("report.json", json.dumps(header, indent=1, sort_keys=True))
            for key, frame in frames.items():
                put(f"{key}.csv", frame.to_csv(index=False, float_format="%.17g", na_rep=""))
            for i, name in enumerate(names):
                for field, arr in rep._states[name].arrays().items():
                    buf = io.BytesIO()
                    np.save(buf, arr, allow_pickle=False)
                    put(f"state/{i}/{field}.npy", buf.getvalue())

    try:
        return atomic_write(target, write)
    except OSError as err:
        raise SkewError(f"cannot write the report to {str(target)!r} ({err.strerror or err}); pass a path in a "
                        "directory you may write to") from err


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, int, float, str)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


# ---- reading ---------------------------------------------------------------------------------
class _Bad(Exception):
    """A problem found in the file (turned into a SkewError naming the file)."""


def load_report(cls, path):
    """Read a report written by :func:`save_report` into an instance of ``cls`` (:class:`Report`).

    Example:
        >>> rep = load_report(Report, "out/run.skew.zip")  # doctest: +SKIP
    """
    source = path_arg(path, "Report.load", "file", "'run.skew.zip'")
    name = repr(str(source))
    if not source.is_file():
        what = "it is a directory" if source.is_dir() else "no such file"
        raise SkewError(f"no report file at {name} ({what}); pass the path given to Report.save()")
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, EOFError, ValueError) as err:
        raise SkewError(f"{name} is not a saved skew report (not a zip file); pass a Report.save() file") from err
    try:
        with zf:
            return _read(cls, zf, name)
    except _Bad as err:
        raise SkewError(f"{name} is not a valid skew report: {err}; pass a file written by Report.save() "
                        "(save it again if it was edited)") from None
    except SkewError:
        raise
    except MemoryError as err:
        raise SkewError(f"{name} is too large to load; pass a file written by Report.save()") from err
    except Exception as err:  # noqa: BLE001 - zlib, CRC, numpy and pandas errors on damaged data
        raise SkewError(f"{name} is damaged ({type(err).__name__}: {' '.join(str(err).split())[:200]}); pass a "
                        "file written by Report.save()") from err


def _read(cls, zf: zipfile.ZipFile, name: str):
    infos = {}
    for info in zf.infolist():
        if info.filename in infos:
            raise _Bad(f"member {info.filename!r} appears twice")
        infos[info.filename] = info
    if "report.json" not in infos:
        raise SkewError(f"{name} is not a saved skew report (no report.json); pass a file written by Report.save()")
    header = _read_json(zf, infos["report.json"])
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SkewError(f"{name} is not a saved skew report; pass a file written by Report.save()")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _Bad(f"report.json has version {version!r}, not a positive integer")
    if version > VERSION:
        raise SkewError(f"{name} was written by a newer skew (format {version}); upgrade skew")
    layers, thresholds = _check_header(header)
    fields = [f.name for f in dataclasses.fields(LayerState)]
    expected = {"report.json", *(f"{k}.csv" for k in _FRAMES)}
    expected |= {f"state/{i}/{f}.npy" for i in range(len(layers)) for f in fields}
    missing, extra = sorted(expected - set(infos)), sorted(set(infos) - expected)
    if missing:
        raise _Bad(f"missing member(s) {_few(missing)}")
    if extra:
        raise _Bad(f"unexpected member(s) {_few(extra)}")
    frames = {k: _read_frame(zf, infos[f"{k}.csv"], header["columns"][k], header["dtypes"][k]) for k in _FRAMES}
    counts = _check_frames(frames, layers, thresholds)
    states = {}
    for i, layer in enumerate(layers):
        arrays = {f: _read_npy(zf, infos[f"state/{i}/{f}.npy"]) for f in fields}
        _check_state(layer, arrays, counts[layer])
        if "n" in frames["neurons"].columns and not np.array_equal(
                frames["neurons"]["n"].to_numpy()[frames["neurons"]["layer"].to_numpy() == layer], arrays["n"]):
            raise _Bad(f"layer {layer!r}: the sample counts n of neurons.csv differ from its saved state")
        states[layer] = LayerState.from_arrays(arrays)

    from skew.result import WEIGHT_COLUMNS

    rep = cls.__new__(cls)
    rep._states = states
    rep._weights = frames["neurons"][list(WEIGHT_COLUMNS)].copy()
    rep._info = {k: dict(v) for k, v in header["info"].items()}
    rep.thresholds = thresholds
    rep.meta = header["meta"]
    rep.skipped = frames["skipped"]
    rep.signs = {k: st.signs for k, st in states.items()}
    rep.sign_neurons = {k: st.sign_neurons for k, st in states.items()}
    rep.neurons = frames["neurons"]
    rep.layers = frames["layers"]
    return rep


def _few(items: list[str]) -> str:
    return ", ".join(map(repr, items[:5])) + (f" (and {len(items) - 5} more)" if len(items) > 5 else "")


def _read_bytes(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    if info.file_size > MAX_MEMBER_BYTES:
        raise _Bad(f"member {info.filename!r} declares {info.file_size} bytes, more than the "
                   f"{MAX_MEMBER_BYTES} a report member may hold")
    return zf.read(info)


def _read_text(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    try:
        return _read_bytes(zf, info).decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Bad(f"{info.filename} is not UTF-8 text (byte {err.start})") from None


def _read_json(zf: zipfile.ZipFile, info: zipfile.ZipInfo):
    text = _read_text(zf, info)
    try:
        return json.loads(text)
    except ValueError as err:
        raise _Bad(f"{info.filename} is not valid JSON ({err})") from None


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_header(header: dict) -> tuple[list[str], tuple[float, ...]]:
    """The layer names and thresholds, after checking every field of report.json."""
    for key in ("thresholds", "meta", "layers", "info", "dtypes", "columns"):
        if key not in header:
            raise _Bad(f"report.json lacks {key!r}")
    thresholds = header["thresholds"]
    if not isinstance(thresholds, list) or not all(_number(a) and 0 < a < 0.5 for a in thresholds):
        raise _Bad(f"report.json thresholds {thresholds!r} are not numbers strictly between 0 and 0.5")
    if not isinstance(header["meta"], dict):
        raise _Bad("report.json meta is not an object")
    layers = header["layers"]
    if not isinstance(layers, list) or not all(isinstance(n, str) for n in layers) or len(set(layers)) != len(layers):
        raise _Bad("report.json layers is not a list of distinct names")
    info = header["info"]
    if not isinstance(info, dict) or set(info) != set(layers) or not all(isinstance(v, dict) for v in info.values()):
        raise _Bad("report.json info does not hold one object per layer")
    for layer, entry in info.items():
        if not (isinstance(entry.get("type"), str) and isinstance(entry.get("shape"), str)
                and _number(entry.get("weight_std"))):
            raise _Bad(f"report.json info of layer {layer!r} lacks its type, shape or numeric weight_std")
    for key in ("dtypes", "columns"):
        if not isinstance(header[key], dict) or set(header[key]) != set(_FRAMES):
            raise _Bad(f"report.json {key} does not describe exactly the frames {', '.join(_FRAMES)}")
    for frame in _FRAMES:
        columns, dtypes = header["columns"][frame], header["dtypes"][frame]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) or (
                len(set(columns)) != len(columns)):
            raise _Bad(f"report.json columns of {frame} are not distinct names")
        if not isinstance(dtypes, dict) or set(dtypes) != set(columns):
            raise _Bad(f"report.json dtypes of {frame} do not match its columns")
        for col, kind in dtypes.items():
            if not isinstance(kind, str) or not _DTYPE.fullmatch(kind):
                raise _Bad(f"report.json gives column {col!r} of {frame} the unsupported dtype {kind!r}")
    return layers, tuple(float(a) for a in thresholds)


def _read_frame(zf: zipfile.ZipFile, info: zipfile.ZipInfo, columns: list[str], dtypes: dict[str, str]):
    """Parse a CSV written by save_report back to the exact frame (values and dtypes)."""
    member = info.filename
    text = _read_text(zf, info)
    if not columns:
        if text.strip():
            raise _Bad(f"{member} holds data but report.json lists no columns for it")
        return pd.DataFrame()
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as err:
        raise _Bad(f"{member} is not a readable CSV ({' '.join(str(err).split())})") from None
    if list(raw.columns) != list(columns):
        raise _Bad(f"{member} has columns {_few(list(raw.columns))}, report.json lists {_few(list(columns))}")
    out = {}
    for col in columns:
        values, kind = raw[col], dtypes[col]
        try:
            if kind.startswith("float"):
                out[col] = np.array([float(v) if v != "" else np.nan for v in values], dtype=kind)
            elif kind.startswith(("int", "uint")):
                out[col] = np.array([int(v) for v in values], dtype=kind)
            elif kind == "bool":
                if not values.isin(["True", "False"]).all():
                    raise ValueError("not True/False")
                out[col] = (values == "True").to_numpy()
            else:
                out[col] = values.to_numpy(dtype=object)
        except (ValueError, OverflowError):
            raise _Bad(f"{member} column {col!r} holds values that are not {kind}") from None
    return pd.DataFrame(out, columns=columns)


def _check_frames(frames: dict, layers: list[str], thresholds: tuple[float, ...]) -> dict[str, int]:
    """Neurons per layer, after checking that the frames agree with each other and with report.json."""
    from skew.result import WEIGHT_COLUMNS

    neurons, table = frames["neurons"], frames["layers"]
    if not layers:
        if len(neurons) or len(table):
            raise _Bad("report.json lists no layers but the frames hold rows")
        return {}
    lacking = [c for c in ("layer", *WEIGHT_COLUMNS) if c not in neurons.columns]
    lacking += [c for c in ("layer", "neurons") if c not in table.columns]
    lacking += [f"skewed_{a:g}" for a in thresholds if f"skewed_{a:g}" not in table.columns]
    if lacking:
        raise _Bad(f"the frames lack column(s) {_few(lacking)} that report.json implies")
    if list(table["layer"]) != layers:
        raise _Bad("layers.csv does not list the layers of report.json in order")
    counts = dict(zip(layers, (int(c) for c in table["neurons"])))
    if any(c < 0 for c in counts.values()) or len(neurons) != sum(counts.values()):
        raise _Bad(f"neurons.csv holds {len(neurons)} rows but layers.csv counts {sum(counts.values())} neurons")
    if not np.array_equal(neurons["layer"].to_numpy(dtype=object), np.repeat(np.array(layers, dtype=object),
                                                                          list(counts.values()))):
        raise _Bad("neurons.csv does not hold each layer's neurons together, in the order of report.json")
    ids = neurons["neuron"].to_numpy()
    starts = np.cumsum([0, *counts.values()])[:-1]
    if not np.array_equal(ids, np.arange(len(ids)) - np.repeat(starts, list(counts.values()))):
        raise _Bad("neurons.csv neuron ids do not run 0..n-1 within each layer")
    return counts


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """An .npy member, after checking its header declares exactly the bytes that follow (no pickles)."""
    member = info.filename
    raw = _read_bytes(zf, info)
    buf = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
        else:
            raise ValueError(f"npy version {version}")
    except ValueError as err:
        raise _Bad(f"{member} is not a valid .npy array ({' '.join(str(err).split())[:120]})") from None
    if dtype.hasobject or dtype.kind not in "biuf":
        raise _Bad(f"{member} holds dtype {dtype}, not numbers or booleans")
    declared = math.prod(shape) * dtype.itemsize
    if declared != len(raw) - buf.tell():
        raise _Bad(f"{member} declares shape {shape} ({declared} bytes) but holds {len(raw) - buf.tell()} bytes")
    buf.seek(0)
    return np.load(buf, allow_pickle=False)


def _check_state(layer: str, arrays: dict[str, np.ndarray], count: int) -> None:
    def bad(field: str, want: str) -> _Bad:
        arr = arrays[field]
        return _Bad(f"layer {layer!r} state {field!r} is {arr.dtype} of shape {arr.shape}, expected {want}")

    for field, arr in arrays.items():
        if field in _PER_NEURON_INT and (arr.dtype.kind not in "iu" or arr.shape != (count,)):
            raise bad(field, f"integers of shape ({count},)")
        if field in _PER_NEURON_FLOAT and (arr.dtype.kind != "f" or arr.shape != (count,)):
            raise bad(field, f"floats of shape ({count},)")
        if field in _SCALAR_INT and (arr.dtype.kind not in "iu" or arr.shape != ()):
            raise bad(field, "one integer")
        if field in _SCALAR_FLOAT and (arr.dtype.kind not in "fiu" or arr.shape != ()):
            raise bad(field, "one number")
    if "n" in arrays and "pos" in arrays:
        n, pos = arrays["n"], arrays["pos"]
        if (n < 0).any() or (pos < 0).any() or (pos > n).any():
            raise _Bad(f"layer {layer!r} state has negative counts or more positive than finite samples")
    if "patterns" in arrays:
        pat = arrays["patterns"]
        if pat.dtype != bool or pat.ndim != 2 or (pat.shape[0] and pat.shape[1] != count):
            raise bad("patterns", f"booleans of shape (samples, {count})")
    if "sign_neurons" in arrays and "signs" in arrays:
        idx, signs = arrays["sign_neurons"], arrays["signs"]
        if idx.dtype.kind not in "iu" or idx.ndim != 1 or ((idx < 0) | (idx >= count)).any() or (
                len(np.unique(idx)) != len(idx)):
            raise bad("sign_neurons", f"distinct neuron indices in [0, {count})")
        if signs.dtype != bool or signs.ndim != 2 or (signs.shape[0] and signs.shape[1] != len(idx)):
            raise bad("signs", f"booleans of shape (samples, {len(idx)})")
