"""Is a reproduction of the study the same study? Metrics and outputs within a tolerance.

On one machine a rerun is byte-identical. On another machine the embedded model's fp32
sums run in another order, so the outputs move in their last bits (per-country MAEs by
up to 3.3e-7 seen) and DVC sees every simulate, calibrate and evaluate output changed.
This module tells such noise from a real difference: it compares the numbers of two
``reports/metrics.json`` (a git revision's, by default HEAD's, against the workspace's)
and, optionally, of two ``data/eval`` directories of parquet files, leaf by leaf, and
counts the numbers whose difference is beyond ``max(atol, rtol * max(|a|, |b|))``
(:func:`math.isclose`). Text, booleans, nulls and integers other than floats must match
exactly; a key or file on one side only is a difference beyond any tolerance.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from valuesim.analysis.metric_precision import DEFAULT_ATOL, DEFAULT_RTOL
from valuesim.errors import DataError
from valuesim.paths import METRICS

__all__ = [
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "Comparison",
    "Difference",
    "compare_eval_dirs",
    "compare_frames",
    "compare_metrics",
    "metrics_at",
]
# a decimal rounded to 4 places is not exactly representable: 0.2625 - 0.2624 is
# 1.0000000000000009e-04; that is still one unit, within DEFAULT_ATOL
_SLACK = 1e-9


@dataclass(frozen=True)
class Difference:
    """One number (or column) that differs: ``diff`` is |ours - theirs| (the largest in
    a column), None where the two cannot be subtracted (text, a missing key)."""

    where: str
    ours: Any
    theirs: Any
    diff: float | None
    beyond: int  # how many values here differ by more than the tolerance


@dataclass
class Comparison:
    """What :func:`compare_metrics` / :func:`compare_eval_dirs` found."""

    compared: int = 0  # values compared
    differences: list[Difference] = field(default_factory=list)  # every leaf or column that differs

    @property
    def beyond(self) -> int:
        return sum(d.beyond for d in self.differences)

    @property
    def ok(self) -> bool:
        return self.beyond == 0

    def largest(self, n: int) -> list[Difference]:
        """The ``n`` largest differences, those beyond subtraction first."""
        return sorted(self.differences, key=lambda d: (d.diff is not None, -(d.diff or 0.0)))[:n]

    def extend(self, other: Comparison) -> None:
        self.compared += other.compared
        self.differences.extend(other.differences)


class _Absent:
    """A key or file on one side only."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


def _is_float(x: object) -> bool:
    return isinstance(x, float) or (isinstance(x, int) and not isinstance(x, bool))


def _close(a: float, b: float, atol: float, rtol: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol * (1 + _SLACK))


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of nested JSON keyed by dotted path (as `dvc metrics diff` names them)."""
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(tree, list):
        out = {}
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: tree}


def compare_metrics(
    ours: Any, theirs: Any, *, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL
) -> Comparison:
    """Leaf by leaf: numbers within the tolerance, everything else equal."""
    a, b = flatten(ours), flatten(theirs)
    result = Comparison()
    for key in sorted(a.keys() | b.keys()):
        result.compared += 1
        if key not in a or key not in b:
            result.differences.append(Difference(key, a.get(key, ABSENT), b.get(key, ABSENT),
                                                 None, 1))
            continue
        x, y = a[key], b[key]
        if _is_float(x) and _is_float(y) and not (isinstance(x, int) and isinstance(y, int)):
            if x != y:
                diff = abs(float(x) - float(y))
                within = _close(float(x), float(y), atol, rtol)
                result.differences.append(Difference(key, x, y, diff, 0 if within else 1))
        elif x != y or type(x) is not type(y):
            result.differences.append(Difference(key, x, y, None, 1))
    return result


def _float_columns(frame: pl.DataFrame) -> list[str]:
    return [c for c, t in frame.schema.items() if t.is_float()
            or (isinstance(t, pl.List | pl.Array) and t.inner is not None and t.inner.is_float())]


def compare_frames(
    name: str, ours: pl.DataFrame, theirs: pl.DataFrame, *, atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
) -> Comparison:
    """Two tables row by row (the stages write them sorted): float columns (and lists of
    floats) within the tolerance, every other column equal. One :class:`Difference` per
    column that differs, with its largest difference and the row where it is."""
    result = Comparison()
    if ours.columns != theirs.columns or ours.height != theirs.height:
        result.compared += 1
        result.differences.append(Difference(
            f"{name}: shape", f"{ours.height} rows, columns {', '.join(ours.columns)}",
            f"{theirs.height} rows, columns {', '.join(theirs.columns)}", None, 1))
        return result
    floats = set(_float_columns(ours)) & set(_float_columns(theirs))
    for col in ours.columns:
        x, y = ours.get_column(col), theirs.get_column(col)
        if col in floats and x.dtype != pl.Float64 and x.dtype != pl.Float32:
            lengths_differ = (x.list.len() != y.list.len()).fill_null(True).any()
            if lengths_differ or (x.is_null() != y.is_null()).any():
                result.compared += ours.height
                result.differences.append(Difference(f"{name}: {col}", "lists", "lists of other lengths",
                                                     None, 1))
                continue
            x, y = x.explode(), y.explode()
        if col in floats:
            result.compared += x.len()
            d, beyond = _float_differences(x, y, atol, rtol)
            if d.size and d.max() > 0:
                i = int(d.argmax())
                result.differences.append(Difference(f"{name}: {col} (row {i + 1})", x[i], y[i],
                                                     float(d[i]), beyond))
        else:
            result.compared += x.len()
            same = (x == y) | (x.is_null() & y.is_null())
            unequal = int((~same.fill_null(False)).sum())
            if unequal:
                i = int((~same.fill_null(False)).arg_true()[0])
                result.differences.append(Difference(f"{name}: {col} (row {i + 1})", x[i], y[i], None,
                                                     unequal))
    return result


def _float_differences(
    x: pl.Series, y: pl.Series, atol: float, rtol: float
) -> tuple[np.ndarray, int]:
    """|x - y| per value (0 where both are equal, NaN or null; inf where only one is
    NaN or null) and how many are beyond the tolerance."""
    a = x.cast(pl.Float64).fill_null(np.nan).to_numpy()
    b = y.cast(pl.Float64).fill_null(np.nan).to_numpy()
    with np.errstate(invalid="ignore"):
        d = np.abs(a - b)
    d[np.isnan(d)] = np.inf
    d[(a == b) | (np.isnan(a) & np.isnan(b))] = 0.0
    d[(x.is_null() != y.is_null()).to_numpy()] = np.inf
    with np.errstate(invalid="ignore"):
        bound = np.maximum(atol * (1 + _SLACK), rtol * np.fmax(np.abs(a), np.abs(b)))
    return d, int((d > np.nan_to_num(bound, nan=atol)).sum())


def compare_eval_dirs(
    ours: Path, theirs: Path, *, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL
) -> Comparison:
    """Every parquet file of two ``data/eval`` directories (one on one side only is a
    difference)."""
    for d in (ours, theirs):
        if not d.is_dir():
            raise DataError(f"{d} is not a directory; give the data/eval directory of the other run")
    names = sorted({p.name for d in (ours, theirs) for p in d.glob("*.parquet")})
    if not names:
        raise DataError(f"no parquet files in {ours} or {theirs}; run the evaluate stage first")
    result = Comparison()
    for name in names:
        a, b = ours / name, theirs / name
        if not (a.is_file() and b.is_file()):
            result.compared += 1
            result.differences.append(Difference(name, "present" if a.is_file() else ABSENT,
                                                 "present" if b.is_file() else ABSENT, None, 1))
            continue
        result.extend(compare_frames(name, _read(a), _read(b), atol=atol, rtol=rtol))
    return result


def _read(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0]}; rerun the stage that "
                        f"writes it") from exc


def read_metrics(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path} not found; run the study (`dvc repro`) or give the metrics file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise DataError(f"{path} is not readable JSON ({exc}); rerun the evaluate stage") from exc


def metrics_at(against: str, project: Path, committed: Path = METRICS) -> tuple[Any, str]:
    """The metrics to compare with, and what they are: ``against`` is a metrics file, or
    a git revision whose ``committed`` file (a path within ``project``) is read."""
    given = Path(against)
    if given.is_file():
        return read_metrics(given), str(given)
    rel = committed
    try:
        proc = subprocess.run(
            ["git", "show", f"{against}:./{rel.as_posix()}"], cwd=project, capture_output=True,
            text=True, timeout=60, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"cannot run git to read {rel} at {against} ({exc}); give a metrics file "
                        f"with --against PATH") from exc
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["git failed"])[0]
        raise DataError(f"cannot read {rel} at revision {against!r}: {why}; give a revision that "
                        f"has it, or a metrics file with --against PATH")
    try:
        return json.loads(proc.stdout), f"{rel} at {against}"
    except ValueError as exc:
        raise DataError(f"{rel} at {against} is not valid JSON ({exc})") from exc
