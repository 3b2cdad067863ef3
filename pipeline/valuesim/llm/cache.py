"""The persistent response cache: one row per answer, addressed by its content.

Keys come from :func:`valuesim.llm.types.cache_key` (provider, model, revision,
messages, answers, answer-changing settings, sample index), so reruns, resumed
runs and ``dvc exp`` variants reuse every answer already paid for. The store is a
SQLite file in write-ahead-log mode: each answer is committed the moment it
arrives, so a process killed at any moment leaves every committed answer intact and
no half-written row. Several processes (parallel DVC experiments, two ``ask`` runs)
may share one file; SQLite serialises their writers, and a run *claims* the prompts
it is about to send (table ``claims``, :meth:`ResponseCache.claim`) so that another
run waits for those answers instead of paying for them again.

Waiting for another process's lock happens in short slices in Python, not inside
SQLite's C busy handler, so Ctrl-C ends the wait at once; a run checks that it can
write (by claiming) before it sends anything, so a locked cache costs nothing.

A damaged cache never ends in a traceback: an unreadable file (damaged pages,
wrong schema, not a SQLite file, a directory in its place, locked past the
timeout, a damaged write-ahead log) raises a one-line :class:`DataError` naming the
file and the fix, and a row that does not decode, or holds the wrong number of
probabilities, is counted in :attr:`ResponseCache.bad_rows` and treated as a miss,
so the engine re-scores it and overwrites the row. A healthy cache that cannot be
written (a read-only file system, a full disk) says so, never "unreadable": its
answers are intact. ``read_only=True`` (``valuesim cache check|stats``) opens it
without writing anything, also on a read-only mount.

Rows carry the provider, model and time they were written (schema version 2) so
``valuesim cache stats|prune`` can group and prune them, and the number of answers
the request had (version 3) so ``check`` can tell a row of the wrong shape; files
written before those columns existed are migrated in place on open (old rows get
provider, model and answer count NULL and the file's modification time as their
time: they are at least that old).
"""

from __future__ import annotations

import errno
import json
import math
import os
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from valuesim.errors import ConfigError, DataError
from valuesim.llm import interrupt
from valuesim.llm.cache_wal import WalReport, inspect_wal
from valuesim.llm.types import AnswerDistribution

T = TypeVar("T")

DB_NAME = "responses.sqlite"
# Relative cache directories are resolved against the main project, not DVC's
# temporary experiment copies (<repo>/.dvc/tmp/exps/<tmp>), so queued
# experiments share the answers paid for in the workspace.
_DVC_EXP_DIR = (".dvc", "tmp", "exps")
# SQLite caps the number of bound parameters per statement.
_MAX_PARAMS = 900
SCHEMA_VERSION = 3
# Columns added by schema versions 2 and 3 (nullable, so old files migrate with ALTER TABLE).
_NEW_COLUMNS = (("provider", "TEXT"), ("model", "TEXT"), ("created", "REAL"), ("answers", "INTEGER"))
_MOVE_AWAY = "move it away to start afresh (its answers will be re-scored)"
_INTACT = "its answers are intact"
# SQLite waits for a lock in this slice at a time; between slices Python runs, so a
# signal handler (Ctrl-C) and the cancel event are seen within it.
_BUSY_SLICE_S = 0.1
_HOST = socket.gethostname()
# A claim from another machine (a cache on a network file system) cannot be checked
# for a live process: it counts until it is this old.
_FOREIGN_CLAIM_S = 3600.0
# An I/O error with less free space than this is taken for a full disk.
_LOW_SPACE = 1 << 20
_WAL_FIX = (
    "copy the cache directory aside to keep the evidence, then run `valuesim cache prune "
    "--wal-tail` to go on with what SQLite keeps (the dropped answers are re-scored when asked)"
)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    msg = str(exc)
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in msg or "busy" in msg


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
    bad_rows: int  # rows that do not decode or hold the wrong number of probabilities
    problems: list[str] = field(default_factory=list)
    wrong_shape: int = 0  # of bad_rows: decodable, but not one probability per answer
    fix: str | None = None  # what to do, when it is not the generic advice

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
        undecodable = self.bad_rows - self.wrong_shape
        if undecodable:
            parts.append(f"{undecodable} of {self.rows} rows undecodable")
        if self.wrong_shape:
            parts.append(
                f"{self.wrong_shape} of {self.rows} rows hold the wrong number of probabilities"
            )
        fix = self.fix or (
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


def decode_row(value: object, answers: int | None = None) -> AnswerDistribution | None:
    """The stored answer, or None when the row is not a valid answer (or, with
    ``answers``, does not hold one probability per answer)."""
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
    if answers is not None and len(dist.probs) != answers:
        return None
    return dist


def _fs_read_only(path: Path) -> bool:
    """Whether the file system holding ``path`` (or its nearest existing parent) is mounted read-only."""
    for p in (path, *path.parents):
        try:
            return bool(os.statvfs(p).f_flag & os.ST_RDONLY)
        except OSError:
            continue
    return False


def _free_bytes(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


class ResponseCache:
    """Content-addressed store of :class:`AnswerDistribution` values.

    Thread-safe: the engine's worker threads store answers as soon as they arrive,
    through one connection guarded by a lock.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        timeout_s: float = 60.0,
        read_only: bool = False,
        cancel: threading.Event | None = None,
        accept_wal_loss: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """``read_only``: open without writing anything (the file must exist); works on a
        read-only mount. ``cancel``: ends a wait for another process's lock (default:
        the CLI's Ctrl-C event). ``accept_wal_loss``: open even when the write-ahead
        log is damaged, letting SQLite drop its damaged tail (``cache prune --wal-tail``).
        ``log``: told once per wait that another process holds the lock."""
        self.directory = Path(directory)
        self.timeout_s = timeout_s
        self.read_only = read_only
        self._cancel = cancel if cancel is not None else interrupt.CANCEL
        self._log = log
        #: rows that did not decode (or had the wrong shape), seen by :meth:`get_many`
        self.bad_rows = 0
        self.path = self.directory / DB_NAME
        #: this object's name on the claims it takes (see :meth:`claim`)
        self.owner = f"{_HOST}:{os.getpid()}:{id(self):x}:{time.time_ns()}"
        if not read_only:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create the response cache at {self.directory} ({self._os_reason(exc)}); "
                    "set simulate.cache_dir to a writable directory"
                ) from exc
        self._check_file_type()
        #: the write-ahead log's damage, when it has some (``check`` reports it)
        self.wal: WalReport | None = None
        if self.path.exists():
            wal = inspect_wal(Path(f"{self.path}-wal"))
            if wal is not None and wal.damaged:
                self.wal = wal
                if not read_only and not accept_wal_loss:
                    # Opening it for writing would make SQLite drop the tail for good.
                    raise DataError(f"response cache {self.path}: {wal.describe()}; {_WAL_FIX}")
        self._lock = threading.Lock()
        # Old rows are at least as old as the file's last change (read before SQLite
        # touches it).
        mtime = self.path.stat().st_mtime if self.path.exists() else time.time()
        with self._translated():
            self._conn = self._connect()
        try:
            with self._translated():
                if read_only:
                    self._columns_checked()
                else:
                    # WAL: readers never block the writer, and a commit is durable against
                    # a killed process (NORMAL syncs at checkpoints; only an OS crash could
                    # lose the last commits, never corrupt the file).
                    self._busy(lambda: self._conn.execute("PRAGMA journal_mode=WAL"))
                    self._conn.execute("PRAGMA synchronous=NORMAL")
                    self._busy(lambda: self._conn.execute(
                        "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                        "provider TEXT, model TEXT, created REAL, answers INTEGER)"
                    ))
                    self._busy(lambda: self._conn.execute(
                        "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
                        "host TEXT NOT NULL, pid INTEGER NOT NULL, started REAL NOT NULL)"
                    ))
                    self._migrate(mtime)
        except BaseException:
            self._conn.close()
            raise

    # -- opening -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # A short busy timeout: longer waits loop in Python (see _busy).
        kw = {"timeout": _BUSY_SLICE_S, "isolation_level": None, "check_same_thread": False}
        if not self.read_only:
            return sqlite3.connect(self.path, **kw)  # type: ignore[arg-type]
        if self.path.stat().st_size == 0:
            # SQLite would take it for a fresh, empty database (and a writer would write one).
            raise DataError(
                f"response cache {self.path} is an empty file (0 bytes), not a database: it holds "
                "no answers; delete it and the next run starts a fresh cache"
            )
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        wal = Path(f"{self.path}-wal")
        if _fs_read_only(self.path) and not (wal.exists() and wal.stat().st_size > 0):
            # mode=ro needs to create the -shm file beside a WAL database, impossible on a
            # read-only mount; immutable is safe there: nobody can change the file, and
            # there is no log whose answers immutable would skip.
            uri += "&immutable=1"
        return sqlite3.connect(uri, uri=True, **kw)  # type: ignore[arg-type]

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

    def _busy(self, op: Callable[[], T]) -> T:
        """``op``, retried while another process holds the lock, up to ``timeout_s``.

        The wait is in Python between short SQLite waits, so Ctrl-C (its handler, or
        the cancel event in a worker thread) ends it at once with :class:`Interrupted`.
        """
        deadline = time.monotonic() + self.timeout_s
        told = False
        while True:
            try:
                return op()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            if not told and self._log is not None:
                told = True
                self._log(
                    f"response cache {self.path} is locked by another process; waiting up to "
                    f"{self.timeout_s:g}s for it (Ctrl-C stops)"
                )
            interrupt.sleep(_BUSY_SLICE_S, self._cancel)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn SQLite's errors into one line that names the file, the cause and the fix."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._sqlite_error(exc) from exc

    def _sqlite_error(self, exc: sqlite3.Error) -> DataError:
        name = str(getattr(exc, "sqlite_errorname", "") or "")
        msg = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
            return DataError(
                f"response cache {self.path} is locked by another process "
                f"(waited {self.timeout_s:g}s); let that run finish or stop it, then retry"
            )
        if name.startswith("SQLITE_FULL") or "disk is full" in msg:
            return self._disk_full()
        if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR")) or "readonly" in msg:
            # CANTOPEN: no -shm/-wal can be created beside the file; IOERR: a write failed.
            if _fs_read_only(self.path):
                return self._read_only_fs()
            if name.startswith("SQLITE_IOERR") and (_free_bytes(self.directory) or 0) < _LOW_SPACE:
                return self._disk_full()
            if name.startswith("SQLITE_READONLY") or "readonly" in msg or not os.access(self.directory, os.W_OK):
                return DataError(
                    f"response cache {self.path} is read-only ({msg}); {_INTACT}: make it writable "
                    "or set simulate.cache_dir to a writable directory"
                )
            return DataError(
                f"response cache {self.path} cannot be opened or written ({msg}); check the disk "
                f"and the permissions of {self.directory}"
            )
        return DataError(f"response cache {self.path} is unreadable ({msg}); {_MOVE_AWAY}")

    def _read_only_fs(self) -> DataError:
        return DataError(
            f"response cache {self.path} is on a read-only file system; {_INTACT}: mount it "
            "writable (or set simulate.cache_dir to a writable directory) to add answers; "
            "`valuesim cache check` and `stats` read it as it is"
        )

    def _disk_full(self) -> DataError:
        free = _free_bytes(self.directory)
        left = f" ({free} bytes free)" if free is not None else ""
        return DataError(
            f"response cache {self.path}: the disk holding it is full{left}; {_INTACT} (every "
            "answer saved so far is kept): free space there or set simulate.cache_dir to another "
            "disk, then rerun to resume"
        )

    def _os_reason(self, exc: OSError) -> str:
        if exc.errno == errno.EROFS:
            return "read-only file system"
        if exc.errno == errno.ENOSPC:
            return "disk full"
        return exc.strerror or str(exc)

    def os_error(self, exc: OSError, what: str) -> DataError:
        """One line for a failed write beside the database (state, journals)."""
        if exc.errno == errno.EROFS:
            return self._read_only_fs()
        if exc.errno == errno.ENOSPC:
            return self._disk_full()
        return DataError(f"response cache {self.directory}: cannot write {what} ({exc.strerror}); "
                         f"check the permissions of {self.directory}")

    def _columns(self) -> list[str]:
        return [r[1] for r in self._conn.execute("PRAGMA table_info(responses)")]

    def _columns_checked(self) -> list[str]:
        cols = self._busy(self._columns)
        if "key" not in cols or "value" not in cols:
            raise DataError(
                f"response cache {self.path} has an unexpected schema (table responses has "
                f"columns {', '.join(cols) or 'none'}); {_MOVE_AWAY}"
            )
        return cols

    def _migrate(self, mtime: float) -> None:
        """Check the schema and bring an older file up to the current version."""
        cols = self._columns_checked()
        if all(name in cols for name, _ in _NEW_COLUMNS):
            return
        # Another process may be migrating the same file: re-read inside the lock.
        with self._transaction():
            cols = self._columns()
            for name, kind in _NEW_COLUMNS:
                if name not in cols:
                    self._conn.execute(f"ALTER TABLE responses ADD COLUMN {name} {kind}")
            self._conn.execute("UPDATE responses SET created = ? WHERE created IS NULL", (mtime,))
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE", commit: bool = True) -> Iterator[None]:
        """One transaction, waiting (interruptibly) for the write lock; rolled back on error.

        SQLite rolls back by itself on some errors (a full disk): the original error
        must not be replaced by "cannot rollback - no transaction is active"."""
        self._busy(lambda: self._conn.execute(begin))
        try:
            yield
            self._conn.execute("COMMIT" if commit else "ROLLBACK")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _has(self, column: str) -> bool:
        return column in self._columns()

    def _writable(self) -> None:
        if self.read_only:
            raise RuntimeError("this ResponseCache was opened read-only")

    def _intact_wal(self) -> None:
        """Reading through a damaged log would show less than the file holds."""
        if self.wal is not None:
            raise DataError(f"response cache {self.path}: {self.wal.describe()}; {_WAL_FIX}")

    def state_dir(self, provider: str) -> Path:
        """A private, persistent directory for one provider (converted weights, batch ids)."""
        d = self.directory / "state" / provider
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.os_error(exc, f"the state directory {d}") from exc
        return d

    # -- the engine's interface ---------------------------------------------------

    def get_many(
        self, keys: Sequence[str], answers: Mapping[str, int] | None = None
    ) -> dict[str, AnswerDistribution]:
        """Stored answers by key; rows that do not decode are misses (and counted).

        ``answers``: how many answer options each key's request has; a row with another
        number of probabilities is a miss too (and counted), so it is re-scored instead
        of reaching an analysis that would blame the question bank.
        """
        self._intact_wal()
        found: dict[str, AnswerDistribution] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock, self._translated():
            for start in range(0, len(unique), _MAX_PARAMS):
                part = unique[start : start + _MAX_PARAMS]
                marks = ",".join("?" * len(part))
                rows = self._busy(lambda marks=marks, part=part: self._conn.execute(
                    f"SELECT key, value FROM responses WHERE key IN ({marks})", part
                ).fetchall())
                for key, value in rows:
                    dist = decode_row(value, None if answers is None else answers.get(key))
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
        """Store answers in one transaction: all of them are kept, or none. Any claims
        on their keys (:meth:`claim`) end in the same transaction.

        ``provider`` and ``model`` label the rows for ``valuesim cache stats|prune``.
        """
        self._writable()
        now = time.time()
        # The engine stores only answers with one probability per answer option, so
        # the count is the request's number of answers (``check`` verifies rows by it).
        rows = [
            (k, json.dumps(v.to_json(), separators=(",", ":")), provider, model, now, len(v.probs))
            for k, v in items
        ]
        if not rows:
            return
        with self._lock, self._translated(), self._transaction():
            self._conn.executemany(
                "INSERT OR REPLACE INTO responses (key, value, provider, model, created, answers) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._conn.executemany("DELETE FROM claims WHERE key = ?", [(r[0],) for r in rows])

    # -- claims: two runs on one cache pay once --------------------------------------

    def claim(self, keys: Sequence[str]) -> dict[str, str]:
        """Claim ``keys`` for this object before sending them; the ones another live run
        has claimed, as key -> ``host:pid`` (wait for their answers instead of paying).

        Taking the write lock here is also the check that the cache can be written
        before anything is paid: a locked cache makes this wait (interruptibly) and
        then fail with the locked message, and nothing has been sent. Claims of dead
        processes (same host, pid gone) or foreign hosts' claims older than an hour
        are stale and taken over.
        """
        self._writable()
        unique = list(dict.fromkeys(keys))
        with self._lock, self._translated(), self._transaction():
            theirs = self._live_claims(unique)
            now = time.time()
            self._conn.executemany(
                "INSERT OR REPLACE INTO claims (key, owner, host, pid, started) VALUES (?, ?, ?, ?, ?)",
                [(k, self.owner, _HOST, os.getpid(), now) for k in unique if k not in theirs],
            )
        return theirs

    def claimed_by_others(self, keys: Sequence[str]) -> dict[str, str]:
        """Of ``keys``, those another live run has claimed (key -> ``host:pid``)."""
        with self._lock, self._translated():
            return self._busy(lambda: self._live_claims(list(dict.fromkeys(keys))))

    def _live_claims(self, keys: list[str]) -> dict[str, str]:
        now = time.time()
        live: dict[str, bool] = {}
        theirs: dict[str, str] = {}
        for start in range(0, len(keys), _MAX_PARAMS):
            part = keys[start : start + _MAX_PARAMS]
            marks = ",".join("?" * len(part))
            for key, owner, host, pid, started in self._conn.execute(
                f"SELECT key, owner, host, pid, started FROM claims WHERE key IN ({marks})", part
            ).fetchall():
                if owner == self.owner:
                    continue
                if owner not in live:
                    # A dead process's claims are stale (it was killed: nobody answers them).
                    live[owner] = (
                        _pid_alive(int(pid)) if host == _HOST
                        else now - float(started) < _FOREIGN_CLAIM_S
                    )
                if live[owner]:
                    theirs[key] = f"{host}:{pid}"
        return theirs

    def release_claims(self) -> None:
        """Drop this object's remaining claims (prompts it did not get answers for)."""
        if self.read_only:
            return
        with self._lock, self._translated():
            self._busy(lambda: self._conn.execute("DELETE FROM claims WHERE owner = ?", (self.owner,)))

    def __len__(self) -> int:
        self._intact_wal()
        with self._lock, self._translated():
            return int(self._busy(
                lambda: self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            ))

    # -- maintenance (valuesim cache) ---------------------------------------------

    def check(self) -> CheckReport:
        """SQLite's integrity check, decoding every row and checking its shape, and the
        write-ahead log's checksums; never raises on damage."""
        problems: list[str] = []
        rows = bad = wrong_shape = 0
        fix = None
        if self.wal is not None:
            problems.append(self.wal.describe())
            fix = _WAL_FIX
        with self._lock:
            try:
                found = [r[0] for r in self._busy(
                    lambda: self._conn.execute("PRAGMA integrity_check(20)").fetchall()
                )]
                if found != ["ok"]:
                    # SQLite packs several findings into one value, with a heading line.
                    problems.extend(
                        line.strip() for text in found for line in str(text).splitlines()
                        if line.strip() and not line.startswith("***")
                    )
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    with self._translated():
                        raise
                problems.append(str(exc))
            except sqlite3.DatabaseError as exc:
                problems.append(str(exc))
            try:
                # Rows written before schema 3 have no answer count: their shape is
                # checked when the engine reads them (it knows the request).
                counted = self._has("answers")
                cur = self._conn.execute(
                    "SELECT value, answers FROM responses" if counted
                    else "SELECT value, NULL FROM responses"
                )
                while batch := cur.fetchmany(2000):
                    for value, n in batch:
                        rows += 1
                        if decode_row(value) is None:
                            bad += 1
                        elif n is not None and decode_row(value, int(n)) is None:
                            bad += 1
                            wrong_shape += 1
            except sqlite3.DatabaseError as exc:
                problems.append(f"reading rows stopped after {rows}: {exc}")
        return CheckReport(self.path, rows, bad, problems, wrong_shape, fix)

    def stats(self) -> list[GroupStats]:
        """Row counts and age range per provider/model."""
        self._intact_wal()
        with self._lock, self._translated():
            cols = self._columns()
            # A read-only open does not migrate: a version-1 file has no such columns.
            sel = ", ".join(c if c in cols else "NULL" for c in ("provider", "model"))
            created = "created" if "created" in cols else "NULL"
            rows = self._busy(lambda: self._conn.execute(
                f"SELECT {sel}, COUNT(*), MIN({created}), MAX({created}) FROM responses "
                "GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall())
        return [GroupStats(p, m, int(n), lo, hi) for p, m, n, lo, hi in rows]

    def models(self) -> list[str]:
        """The models that have rows (rows of unknown model left out)."""
        with self._lock, self._translated():
            return [r[0] for r in self._busy(lambda: self._conn.execute(
                "SELECT DISTINCT model FROM responses WHERE model IS NOT NULL ORDER BY model"
            ).fetchall())]

    def prune(
        self,
        *,
        model: str | None = None,
        older_than_s: float | None = None,
        bad: bool = False,
        dry_run: bool = False,
    ) -> int:
        """Delete (or with ``dry_run`` count) rows matching every criterion given.

        ``bad`` selects rows that do not decode or have the wrong shape (checked here,
        not in SQL). A ``model`` no row has is an error naming the models there are
        (a typo must not look like "nothing to delete").
        """
        if model is None and older_than_s is None and not bad:
            raise ConfigError("nothing to prune: give --model, --older-than and/or --bad")
        if not dry_run:
            self._writable()
        self._intact_wal()
        if model is not None:
            present = self.models()
            if model not in present:
                raise ConfigError(
                    f"no answers of model {model!r} in {self.path}; its models are: "
                    f"{', '.join(present) or 'none recorded'} (see `valuesim cache stats`)"
                )
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
            counted = "answers" if self._has("answers") else "NULL"
            # A dry run only reads: it must not take (or wait for) the write lock.
            with self._transaction("BEGIN" if dry_run else "BEGIN IMMEDIATE", commit=not dry_run):
                if bad:
                    keys = [
                        (k,) for k, v, n in self._conn.execute(
                            f"SELECT key, value, {counted} FROM responses WHERE {sql_where}", args
                        )
                        if decode_row(v, None if n is None else int(n)) is None
                    ]
                    n_rows = len(keys)
                    if not dry_run:
                        self._conn.executemany("DELETE FROM responses WHERE key = ?", keys)
                elif dry_run:
                    n_rows = int(self._conn.execute(
                        f"SELECT COUNT(*) FROM responses WHERE {sql_where}", args
                    ).fetchone()[0])
                else:
                    n_rows = self._conn.execute(f"DELETE FROM responses WHERE {sql_where}", args).rowcount
        return n_rows

    def checkpoint(self) -> None:
        """Move the log's good frames into the database file and empty the log."""
        self._writable()
        with self._lock, self._translated():
            self._busy(lambda: self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
