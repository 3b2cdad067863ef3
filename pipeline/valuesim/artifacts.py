"""Reading and writing pipeline artifacts, in one place.

Writes are atomic: the bytes go to a hidden temporary file next to the target, which
is then renamed over it, so a killed stage never leaves a file (or directory) that
looks complete. Reads of another stage's output go through :func:`require` /
:func:`read_json` / :func:`read_parquet`, which turn a missing or damaged file into a
one-line :class:`DataError` naming the file and the stage that makes it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from valuesim import paths
from valuesim.errors import DataError


def write_atomic(path: Path, write: Callable[[Path], None], *, mode: int | None = None) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    ``mode`` sets the file's permissions (``mkstemp`` makes files owner-only, which
    is wrong for shipped or shared files). The temporary file never survives a failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        if mode is not None:
            tmp.chmod(mode)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes, *, mode: int | None = 0o644) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data), mode=mode)


def write_text(path: Path, text: str, *, mode: int | None = 0o644) -> None:
    # UTF-8 whatever the locale: reports and YAML carry non-ASCII text (±, names)
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), mode=mode)


def write_json(
    data: Any, path: Path, *, indent: int | None = 2, sort_keys: bool = False, newline: bool = True
) -> None:
    """``data`` as JSON; the defaults are the stages' format (indented, trailing newline)."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys) + ("\n" if newline else "")
    write_text(path, text)


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    write_atomic(path, lambda tmp: frame.write_parquet(tmp), mode=0o644)


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    write_atomic(path, lambda tmp: frame.write_csv(tmp), mode=0o644)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Build a directory in a temporary sibling; it replaces ``path`` only on success.

    The old directory is moved aside first and deleted after the swap, so at every
    moment either the old or the new complete directory is at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    tmp.chmod(0o755)
    try:
        yield tmp
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def missing(path: Path, stage: str, detail: str = "") -> DataError:
    """The one error for an absent stage output: names the file and how to make it."""
    extra = f" ({detail})" if detail else ""
    return DataError(f"{path} not found{extra}; run the {stage} stage first (`dvc repro {stage}`)")


def unreadable(path: Path, stage: str, why: str) -> DataError:
    """The one error for a damaged stage output: names the file, why, and how to remake it."""
    return DataError(f"{path} is unreadable ({why}); rerun `dvc repro {stage}`")


def require(path: Path, stage: str, detail: str = "") -> Path:
    """``path`` when it exists, else the :func:`missing` error."""
    if not Path(path).exists():
        raise missing(path, stage, detail)
    return Path(path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_parquet(path: Path, stage: str) -> pl.DataFrame:
    """A stage output table; a missing or damaged file is a one-line DataError that
    names the file and the stage that makes it (instead of a polars traceback)."""
    path = require(path, stage)
    try:
        return pl.read_parquet(path)
    # a truncated or overwritten file fails in the Rust reader: ComputeError, OSError,
    # or (for some corruptions) a PanicException, which is not an Exception subclass
    except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
        raise unreadable(path, stage, f"not a parquet table: {_first_line(exc)}") from exc


def read_csv(path: Path, stage: str) -> pl.DataFrame:
    """A stage output CSV table, with the same one-line errors as :func:`read_parquet`."""
    path = require(path, stage)
    try:
        return pl.read_csv(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise unreadable(path, stage, _first_line(exc)) from exc


def read_json(path: Path, stage: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """A stage output JSON object, with ``keys`` checked present; a missing, damaged
    or incomplete file is a one-line DataError naming the file and its stage."""
    path = require(path, stage)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise unreadable(path, stage, f"invalid JSON: {exc}") from exc
    except OSError as exc:
        raise unreadable(path, stage, exc.strerror or type(exc).__name__) from exc
    if not isinstance(data, dict):
        raise unreadable(path, stage, f"a JSON {type(data).__name__}, not an object")
    absent = [k for k in keys if k not in data]
    if absent:
        raise unreadable(path, stage, f"no {', '.join(repr(k) for k in absent)} key")
    return data


# Typed readers of the artifacts that several stages and commands share. Each knows
# its file and the stage that makes it, so every reader fails with the same line.


def _string_list(path: Path, stage: str, key: str) -> list[str]:
    values = read_json(path, stage, keys=(key,))[key]
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise unreadable(path, stage, f"{key!r} is not a list of strings")
    return list(values)


def selected_countries(path: Path | None = None) -> list[str]:
    """The map stage's country selection (ISO3 codes); an empty one is an error,
    since every later stage would silently produce nothing."""
    path = paths.SELECTED_COUNTRIES if path is None else Path(path)
    countries = _string_list(path, "map", "countries")
    if not countries:
        raise DataError(f"{path} selects no countries; check params countries.select")
    return countries


def kept_questions(path: Path | None = None) -> list[str]:
    """The question ids that pass the human stage's missing-data filter."""
    return _string_list(paths.KEPT_QUESTIONS if path is None else Path(path), "human", "kept")


def method_personas(method: str) -> pl.DataFrame:
    """The persona table of one prompting method (``data/personas/methods/<method>.parquet``)."""
    return read_parquet(paths.personas_for(method), "personas")


def all_personas() -> pl.DataFrame:
    """Every persona row the personas stage wrote (every kind, both nationality flags)."""
    return read_parquet(paths.PERSONAS, "personas")
