"""Reading and writing pipeline artifacts, in one place.

Writes are atomic: the bytes go to a hidden temporary file next to the target, which
is then renamed over it, so a killed stage never leaves a file (or directory) that
looks complete. A stage's outputs are written together or not at all: inside
``with output_set():`` every write (these functions and :func:`atomic_dir`) is only
staged as a temporary beside its target, and all are renamed into place when the
block ends without an error; on an error every temporary goes and the old outputs
stay. A target that exists and is not a regular file is refused, and a write the
file system refuses is one line (``valuesim.output_targets``). Reads of another
stage's output go through :func:`require` / :func:`read_json` / :func:`read_parquet`,
which turn a missing or damaged file into a one-line :class:`DataError` naming the
file and the stage that makes it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import polars as pl

from valuesim import output_targets, paths
from valuesim.errors import DataError, OutputError


class OutputSet:
    """Outputs staged as temporaries beside their targets, renamed into place together.

    :meth:`file` writes a temporary file, :meth:`directory` makes a temporary folder
    for the caller to fill; :meth:`commit` renames them all over their targets (an old
    folder is moved aside first and deleted after), :meth:`discard` removes them and
    any folder made for them. Nothing is renamed until every output was written, so a
    full disk, a read-only mount or an error in the stage leaves the old outputs.
    """

    def __init__(self) -> None:
        self._files: dict[Path, Path] = {}  # target -> temporary, in staging order
        self._dirs: dict[Path, Path] = {}
        self._made: list[Path] = []  # parent folders created for the temporaries

    def holds(self, path: Path) -> bool:
        """True when ``path`` lies inside one of the staged temporary folders (it is
        written directly: the folder is renamed into place as a whole)."""
        return any(tmp in Path(path).parents for tmp in self._dirs.values())

    def _parent(self, path: Path) -> None:
        missing = [p for p in reversed(path.parents) if not p.exists()]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_targets.output_error(path, exc) from exc
        self._made.extend(missing)

    def file(self, path: Path, write: Callable[[Path], None], *, mode: int | None = None) -> None:
        """Stage ``path``: ``write(tmp)`` on a temporary file beside it; ``mode`` sets its
        permissions (``mkstemp`` makes files owner-only, wrong for shared files)."""
        path = Path(path)
        what = output_targets.kind_of(path)
        if what is not None:
            raise output_targets.not_a_file(path, what)
        self._parent(path)
        try:
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise output_targets.output_error(path, exc) from exc
        os.close(fd)
        tmp = Path(name)
        try:
            write(tmp)
            if mode is not None:
                tmp.chmod(mode)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            # a full disk reaches us as OSError, or as a polars error naming the errno
            if isinstance(
                exc, OSError | pl.exceptions.PolarsError
            ) and output_targets.write_refused(exc):
                raise output_targets.output_error(path, exc) from exc
            raise
        old = self._files.pop(path, None)  # written twice in one set: the last one counts
        if old is not None:
            old.unlink(missing_ok=True)
        self._files[path] = tmp

    def directory(self, path: Path) -> Path:
        """Stage the folder ``path``: a temporary sibling folder (mode 0755) to fill."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise OutputError(
                f"cannot write the folder {path}: {output_targets.kind_of(path) or 'a file'} "
                "of that name is in the way; remove it or write elsewhere"
            )
        self._parent(path)
        try:
            tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        except OSError as exc:
            raise output_targets.output_error(path, exc) from exc
        tmp.chmod(0o755)
        old = self._dirs.pop(path, None)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._dirs[path] = tmp
        return tmp

    def commit(self) -> None:
        """Rename every staged output over its target. Renames within a folder take no
        space, so once every temporary exists this step does not run out of disk."""
        for path in self._files:  # a target that became a device/folder since staging
            what = output_targets.kind_of(path)
            if what is not None:
                raise output_targets.not_a_file(path, what)
        aside: list[Path] = []
        try:
            for path, tmp in self._files.items():
                tmp.replace(path)
            for path, tmp in self._dirs.items():
                old = path.with_name(f".{path.name}.old")
                if old.exists():
                    shutil.rmtree(old)
                if path.exists():
                    path.rename(old)
                    aside.append(old)
                try:
                    tmp.rename(path)
                except OSError:
                    if old in aside and not path.exists():  # the old folder back in place
                        old.rename(path)
                        aside.remove(old)
                    raise
        except OSError as exc:
            raise output_targets.output_error(path, exc) from exc
        self._files.clear()
        self._dirs.clear()
        self._made.clear()
        for old in aside:
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        """Remove every staged temporary and the folders made for them; targets stay."""
        for tmp in self._files.values():
            tmp.unlink(missing_ok=True)
        for tmp in self._dirs.values():
            shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(self._made):
            try:
                folder.rmdir()
            except OSError:  # not empty (another writer) or already gone: leave it
                pass
        self._files.clear()
        self._dirs.clear()
        self._made.clear()


# The set that the module's writers stage into, while a ``with output_set():`` runs.
_ACTIVE: ContextVar[OutputSet | None] = ContextVar("valuesim_output_set", default=None)


@contextmanager
def output_set() -> Iterator[OutputSet]:
    """Write a stage's outputs together or not at all (see :class:`OutputSet`).

    While the block runs, :func:`write_atomic` and :func:`atomic_dir` (and so every
    ``write_*`` here) stage into the set; they are renamed into place when the block
    ends, and removed when it raises. A nested block joins the outer set.
    """
    outer = _ACTIVE.get()
    if outer is not None:
        yield outer
        return
    staged = OutputSet()
    token = _ACTIVE.set(staged)
    try:
        yield staged
        _ACTIVE.reset(token)
        token = None
        staged.commit()
    finally:
        if token is not None:
            _ACTIVE.reset(token)
        staged.discard()


def write_atomic(path: Path, write: Callable[[Path], None], *, mode: int | None = None) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``
    (inside an :func:`output_set`: when the set ends).

    ``mode`` sets the file's permissions (``mkstemp`` makes files owner-only, which
    is wrong for shipped or shared files). The temporary file never survives a failure.
    """
    active = _ACTIVE.get()
    if active is not None and not active.holds(path):
        active.file(path, write, mode=mode)
        return
    single = OutputSet()
    try:
        single.file(path, write, mode=mode)
        single.commit()
    finally:
        single.discard()


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
    """Build a directory in a temporary sibling; it replaces ``path`` only on success
    (inside an :func:`output_set`: when the set ends).

    The old directory is moved aside first and deleted after the swap, so at every
    moment either the old or the new complete directory is at ``path``.
    """
    with output_set() as staged:
        yield staged.directory(Path(path))


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
