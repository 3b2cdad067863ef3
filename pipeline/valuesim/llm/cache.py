"""The persistent response cache: one row per answer, addressed by its content.

Keys come from :func:`valuesim.llm.types.cache_key` (provider, model, revision,
messages, answers, answer-changing settings, sample index), so reruns, resumed
runs and ``dvc exp`` variants reuse every answer already paid for. The store is a
SQLite file in write-ahead-log mode: each chunk of answers is committed in one
transaction, so a process killed at any moment leaves every committed answer
intact and no half-written row. Several processes (parallel DVC experiments) may
share one file; SQLite serialises their writers.

A damaged cache never ends in a traceback: an unreadable file (damaged pages,
wrong schema, not a SQLite file, a directory in its place, locked past the
timeout) raises a one-line :class:`DataError` naming the file and the fix, and a
row that does not decode is counted in :attr:`ResponseCache.bad_rows` and treated
as a miss, so the engine re-scores it and overwrites the row.

Rows carry the provider, model and time they were written (schema version 2) so
``valuesim cache stats|prune`` can group and prune them; files written before
those columns existed are migrated in place on open (old rows get provider and
model NULL and the file's modification time as their time: they are at least
that old).
"""

from __future__ import annotations

import json
import math
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from valuesim.errors import ConfigError, DataError
from valuesim.llm.types import AnswerDistribution

DB_NAME = "responses.sqlite"
# Relative cache directories are resolved against the main project, not DVC's
# temporary experiment copies (<repo>/.dvc/tmp/exps/<tmp>), so queued
# experiments share the answers paid for in the workspace.
_DVC_EXP_DIR = (".dvc", "tmp", "exps")
# SQLite caps the number of bound parameters per statement.
_MAX_PARAMS = 900
SCHEMA_VERSION = 2
# Columns added by schema version 2 (nullable, so old files migrate with ALTER TABLE).
_V2_COLUMNS = (("provider", "TEXT"), ("model", "TEXT"), ("created", "REAL"))
_MOVE_AWAY = "move it away to start afresh (its answers will be re-scored)"


def project_root(cwd: Path | None = None) -> Path:
    """The project directory, seen through any DVC temporary experiment workspace."""
    here = (cwd or Path.cwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - len(_DVC_EXP_DIR)):
        if parts[i : i + len(_DVC_EXP_DIR)] == _DVC_EXP_DIR:
            return Path(*parts[:i])
    return here


def resolve_cache_dir(cache_dir: str | Path, cwd: Path | None = None) -> Path:
    p = Path(cache_dir).expanduser()
    return p if p.is_absolute() else project_root(cwd) / p


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What :meth:`ResponseCache.check` found; ``ok`` when nothing is damaged."""

    path: Path
    rows: int
    bad_rows: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.bad_rows == 0

    def summary(self) -> str:
        """One line: what is damaged and what to do about it."""
        if self.ok:
            return f"response cache {self.path}: {self.rows} rows, integrity ok"
        parts = []
        if self.problems:
            parts.append(f"{len(self.problems)} integrity problem(s), first: {self.problems[0]}")
        if self.bad_rows:
            parts.append(f"{self.bad_rows} of {self.rows} rows undecodable")
        fix = (
            _MOVE_AWAY if self.problems
            else "they count as misses and are re-scored on the next run, or run "
            "`valuesim cache prune --bad` to drop them"
        )
        return f"response cache {self.path} is damaged ({'; '.join(parts)}); {fix}"


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Rows of one provider/model (None: written before the cache recorded it)."""

    provider: str | None
    model: str | None
    rows: int
    oldest: float | None
    newest: float | None


def decode_row(value: object) -> AnswerDistribution | None:
    """The stored answer, or None when the row is not a valid answer."""
    try:
        d = json.loads(value)  # type: ignore[arg-type]
        dist = AnswerDistribution.from_json(d)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    # from_json trusts its input; a row of strings or NaNs would poison every mean.
    if not dist.probs or not all(
        isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p)
        for p in dist.probs
    ):
        return None
    return dist


class ResponseCache:
    """Content-addressed store of :class:`AnswerDistribution` values.

    Thread-safe: the engine's worker threads store their chunks as soon as they
    return, through one connection guarded by a lock.
    """

    def __init__(self, directory: str | Path, *, timeout_s: float = 60.0) -> None:
        self.directory = Path(directory)
        self.timeout_s = timeout_s
        #: rows that did not decode, seen by :meth:`get_many` (treated as misses)
        self.bad_rows = 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the response cache at {self.directory} ({exc.strerror}); "
                "set simulate.cache_dir to a writable directory"
            ) from exc
        self.path = self.directory / DB_NAME
        self._check_file_type()
        self._lock = threading.Lock()
        # Old rows are at least as old as the file's last change (read before SQLite
        # touches it).
        mtime = self.path.stat().st_mtime if self.path.exists() else time.time()
        with self._translated():
            self._conn = sqlite3.connect(
                self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
        try:
            with self._translated():
                # WAL: readers never block the writer, and a commit is durable against
                # a killed process (NORMAL syncs at checkpoints; only an OS crash could
                # lose the last commits, never corrupt the file).
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                    "provider TEXT, model TEXT, created REAL)"
                )
                self._migrate(mtime)
        except BaseException:
            self._conn.close()
            raise

    # -- opening -----------------------------------------------------------------

    def _check_file_type(self) -> None:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise DataError(f"response cache {self.path} is unreadable ({exc.strerror}); {_MOVE_AWAY}") from exc
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise DataError(f"response cache {self.path} is {kind}, not a SQLite file; {_MOVE_AWAY}")

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn SQLite's errors into one line that names the file and the fix."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            msg = str(exc)
            if "locked" in msg or "busy" in msg:
                raise DataError(
                    f"response cache {self.path} is locked by another process "
                    f"(waited {self.timeout_s:g}s); let that run finish or stop it, then retry"
                ) from exc
            if "readonly" in msg:
                raise DataError(
                    f"response cache {self.path} is read-only ({msg}); make it writable or set "
                    "simulate.cache_dir to a writable directory"
                ) from exc
            raise DataError(f"response cache {self.path} is unreadable ({msg}); {_MOVE_AWAY}") from exc
        except sqlite3.DatabaseError as exc:
            raise DataError(f"response cache {self.path} is unreadable ({exc}); {_MOVE_AWAY}") from exc

    def _columns(self) -> list[str]:
        return [r[1] for r in self._conn.execute("PRAGMA table_info(responses)")]

    def _migrate(self, mtime: float) -> None:
        """Check the schema and bring a version-1 file (key, value) up to version 2."""
        cols = self._columns()
        if "key" not in cols or "value" not in cols:
            raise DataError(
                f"response cache {self.path} has an unexpected schema (table responses has "
                f"columns {', '.join(cols) or 'none'}); {_MOVE_AWAY}"
            )
        if all(name in cols for name, _ in _V2_COLUMNS):
            return
        # Another process may be migrating the same file: re-read inside the lock.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            cols = self._columns()
            for name, kind in _V2_COLUMNS:
                if name not in cols:
                    self._conn.execute(f"ALTER TABLE responses ADD COLUMN {name} {kind}")
            self._conn.execute("UPDATE responses SET created = ? WHERE created IS NULL", (mtime,))
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def state_dir(self, provider: str) -> Path:
        """A private, persistent directory for one provider (converted weights, batch ids)."""
        d = self.directory / "state" / provider
        d.mkdir(parents=True, exist_ok=True)
        return d

    # -- the engine's interface ---------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> dict[str, AnswerDistribution]:
        """Stored answers by key; rows that do not decode are misses (and counted)."""
        found: dict[str, AnswerDistribution] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock, self._translated():
            for start in range(0, len(unique), _MAX_PARAMS):
                part = unique[start : start + _MAX_PARAMS]
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT key, value FROM responses WHERE key IN ({marks})", part
                ).fetchall()
                for key, value in rows:
                    dist = decode_row(value)
                    if dist is None:
                        self.bad_rows += 1
                    else:
                        found[key] = dist
        return found

    def put_many(
        self,
        items: Iterable[tuple[str, AnswerDistribution]],
        *,
        provider: str | None = None,
        model: str | None = None,
    ) -> None:
        """Store answers in one transaction: all of them are kept, or none.

        ``provider`` and ``model`` label the rows for ``valuesim cache stats|prune``.
        """
        now = time.time()
        rows = [
            (k, json.dumps(v.to_json(), separators=(",", ":")), provider, model, now)
            for k, v in items
        ]
        if not rows:
            return
        with self._lock, self._translated():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO responses (key, value, provider, model, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock, self._translated():
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    # -- maintenance (valuesim cache) ---------------------------------------------

    def check(self) -> CheckReport:
        """SQLite's integrity check plus decoding every row; never raises on damage."""
        problems: list[str] = []
        rows = bad = 0
        with self._lock:
            try:
                found = [r[0] for r in self._conn.execute("PRAGMA integrity_check(20)")]
                if found != ["ok"]:
                    # SQLite packs several findings into one value, with a heading line.
                    problems.extend(
                        line.strip() for text in found for line in str(text).splitlines()
                        if line.strip() and not line.startswith("***")
                    )
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    with self._translated():
                        raise
                problems.append(str(exc))
            except sqlite3.DatabaseError as exc:
                problems.append(str(exc))
            try:
                cur = self._conn.execute("SELECT value FROM responses")
                while batch := cur.fetchmany(2000):
                    for (value,) in batch:
                        rows += 1
                        bad += decode_row(value) is None
            except sqlite3.DatabaseError as exc:
                problems.append(f"reading rows stopped after {rows}: {exc}")
        return CheckReport(self.path, rows, bad, problems)

    def stats(self) -> list[GroupStats]:
        """Row counts and age range per provider/model."""
        with self._lock, self._translated():
            rows = self._conn.execute(
                "SELECT provider, model, COUNT(*), MIN(created), MAX(created) FROM responses "
                "GROUP BY provider, model ORDER BY provider, model"
            ).fetchall()
        return [GroupStats(p, m, int(n), lo, hi) for p, m, n, lo, hi in rows]

    def prune(
        self,
        *,
        model: str | None = None,
        older_than_s: float | None = None,
        bad: bool = False,
        dry_run: bool = False,
    ) -> int:
        """Delete (or with ``dry_run`` count) rows matching every criterion given.

        ``bad`` selects rows that do not decode (decoded here, not in SQL).
        """
        if model is None and older_than_s is None and not bad:
            raise ConfigError("nothing to prune: give --model, --older-than and/or --bad")
        where: list[str] = ["1"]
        args: list[object] = []
        if model is not None:
            where.append("model = ?")
            args.append(model)
        if older_than_s is not None:
            where.append("created < ?")
            args.append(time.time() - older_than_s)
        sql_where = " AND ".join(where)
        with self._lock, self._translated():
            # A dry run only reads: it must not take (or wait for) the write lock.
            self._conn.execute("BEGIN" if dry_run else "BEGIN IMMEDIATE")
            try:
                if bad:
                    keys = [
                        (k,) for k, v in self._conn.execute(
                            f"SELECT key, value FROM responses WHERE {sql_where}", args
                        )
                        if decode_row(v) is None
                    ]
                    n = len(keys)
                    if not dry_run:
                        self._conn.executemany("DELETE FROM responses WHERE key = ?", keys)
                elif dry_run:
                    n = int(self._conn.execute(
                        f"SELECT COUNT(*) FROM responses WHERE {sql_where}", args
                    ).fetchone()[0])
                else:
                    n = self._conn.execute(f"DELETE FROM responses WHERE {sql_where}", args).rowcount
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("ROLLBACK" if dry_run else "COMMIT")
        return n

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
