"""The persistent response cache: one row per answer, addressed by its content.

Keys come from :func:`valuesim.llm.types.cache_key` (provider, model, revision,
messages, answers, answer-changing settings, sample index), so reruns, resumed
runs and ``dvc exp`` variants reuse every answer already paid for. The store is a
SQLite file in write-ahead-log mode: each chunk of answers is committed in one
transaction, so a process killed at any moment leaves every committed answer
intact and no half-written row. Several processes (parallel DVC experiments) may
share one file; SQLite serialises their writers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from valuesim.errors import ConfigError
from valuesim.llm.types import AnswerDistribution

DB_NAME = "responses.sqlite"
# Relative cache directories are resolved against the main project, not DVC's
# temporary experiment copies (<repo>/.dvc/tmp/exps/<tmp>), so queued
# experiments share the answers paid for in the workspace.
_DVC_EXP_DIR = (".dvc", "tmp", "exps")
# SQLite caps the number of bound parameters per statement.
_MAX_PARAMS = 900


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


class ResponseCache:
    """Content-addressed store of :class:`AnswerDistribution` values.

    Thread-safe: the engine's worker threads store their chunks as soon as they
    return, through one connection guarded by a lock.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the response cache at {self.directory} ({exc.strerror}); "
                "set simulate.cache_dir to a writable directory"
            ) from exc
        self.path = self.directory / DB_NAME
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=60.0, isolation_level=None, check_same_thread=False
        )
        try:
            # WAL: readers never block the writer, and a commit is durable against a
            # killed process (NORMAL syncs at checkpoints; only an OS crash could
            # lose the last commits, never corrupt the file).
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ConfigError(
                f"response cache {self.path} is unreadable ({exc}); move it away to start afresh"
            ) from exc

    def state_dir(self, provider: str) -> Path:
        """A private, persistent directory for one provider (converted weights, batch ids)."""
        d = self.directory / "state" / provider
        d.mkdir(parents=True, exist_ok=True)
        return d

    def get_many(self, keys: Sequence[str]) -> dict[str, AnswerDistribution]:
        found: dict[str, AnswerDistribution] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), _MAX_PARAMS):
                part = unique[start : start + _MAX_PARAMS]
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT key, value FROM responses WHERE key IN ({marks})", part
                ).fetchall()
                for key, value in rows:
                    found[key] = AnswerDistribution.from_json(json.loads(value))
        return found

    def put_many(self, items: Iterable[tuple[str, AnswerDistribution]]) -> None:
        """Store answers in one transaction: all of them are kept, or none."""
        rows = [(k, json.dumps(v.to_json(), separators=(",", ":"))) for k, v in items]
        if not rows:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", rows
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

