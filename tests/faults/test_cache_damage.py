"""A damaged response cache ends in one line naming the file and the fix.

Every case is a real file on disk (a real SQLite cache with pages overwritten,
rows rewritten behind the cache's back, a directory or a text file in its place,
a real second process holding the lock) and the one-line checks run the real
``valuesim`` CLI in a subprocess. A row that does not decode is not an error: the
real Engine treats it as a miss and re-scores it through the test provider.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from valuesim.config import ModelSpec
from valuesim.errors import DataError
from valuesim.llm.cache import DB_NAME, ResponseCache
from valuesim.llm.engine import Engine
from valuesim.llm.types import AnswerDistribution, ChatMessage, ScoreRequest

GOOD = AnswerDistribution(probs=(0.25, 0.75), coverage=0.9, estimator="logprobs")
CLI = "from valuesim.cli import main; main()"


def valuesim(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def assert_one_line(proc: subprocess.CompletedProcess[str], path: Path, pattern: str) -> str:
    """Exit 2 and a first stderr line ``error: ...`` that names the file, no traceback."""
    assert proc.returncode == 2, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("error: "), proc.stderr
    assert str(path) in first
    assert pattern in first, first
    assert "Traceback" not in proc.stderr
    return first


def filled_cache(directory: Path, rows: int = 3000) -> Path:
    with ResponseCache(directory) as cache:
        cache.put_many(
            [(f"key-{i:06d}-" + "x" * 40, GOOD) for i in range(rows)], provider="p", model="m"
        )
    conn = sqlite3.connect(directory / DB_NAME)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
    conn.close()
    return directory / DB_NAME


def test_garbage_pages_in_the_middle(tmp_path: Path) -> None:
    path = filled_cache(tmp_path / "c")
    size = path.stat().st_size
    assert size > 40 * 4096
    with path.open("r+b") as fh:  # the header (page 1) stays intact
        fh.seek(size // 2 // 4096 * 4096)
        fh.write(b"\xde\xad\xbe\xef" * 4096)  # four pages of garbage
    first = assert_one_line(
        valuesim("cache", "check", "--cache-dir", str(tmp_path / "c"), cwd=tmp_path),
        path, "is damaged (",
    )
    assert "integrity problem" in first
    assert "move it away" in first
    # a command that reads every row fails in one line too
    assert_one_line(
        valuesim("cache", "stats", "--cache-dir", str(tmp_path / "c"), cwd=tmp_path),
        path, "is unreadable (database disk image is malformed); move it away",
    )
    # and so does the engine's lookup
    with ResponseCache(tmp_path / "c") as cache, pytest.raises(DataError, match="malformed"):
        cache.get_many([f"key-{i:06d}-" + "x" * 40 for i in range(3000)])


def test_bad_rows_fail_check_and_prune_bad_repairs(tmp_path: Path) -> None:
    path = filled_cache(tmp_path / "c", rows=10)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE responses SET value = '{\"probs\": [0.2, ' WHERE rowid = 1")
    conn.execute("UPDATE responses SET value = '{\"p\": 1}' WHERE rowid = 2")
    conn.commit()
    conn.close()
    d = str(tmp_path / "c")
    assert_one_line(valuesim("cache", "check", "--cache-dir", d, cwd=tmp_path), path,
                    "2 of 10 rows undecodable")
    dry = valuesim("cache", "prune", "--bad", "--dry-run", "--cache-dir", d, cwd=tmp_path)
    assert (dry.returncode, dry.stdout.strip()) == (0, f"would delete 2 rows from {path}")
    done = valuesim("cache", "prune", "--bad", "--cache-dir", d, "--format", "json", cwd=tmp_path)
    assert done.returncode == 0
    assert '"rows": 2' in done.stdout
    ok = valuesim("cache", "check", "--cache-dir", d, cwd=tmp_path)
    assert (ok.returncode, ok.stdout.strip()) == (0, f"response cache {path}: 8 rows, integrity ok")


def test_a_directory_in_place_of_the_file(tmp_path: Path) -> None:
    (tmp_path / "c" / DB_NAME).mkdir(parents=True)
    assert_one_line(
        valuesim("cache", "stats", "--cache-dir", str(tmp_path / "c"), cwd=tmp_path),
        tmp_path / "c" / DB_NAME, "is a directory, not a SQLite file; move it away",
    )


def test_a_text_file_in_place_of_the_database(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / DB_NAME).write_text("key,value\n" * 500)
    assert_one_line(
        valuesim("cache", "check", "--cache-dir", str(tmp_path / "c"), cwd=tmp_path),
        tmp_path / "c" / DB_NAME, "is unreadable (file is not a database); move it away",
    )


def test_a_database_of_another_schema(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    conn = sqlite3.connect(tmp_path / "c" / DB_NAME)
    conn.execute("CREATE TABLE responses (id INTEGER PRIMARY KEY, blob BLOB)")
    conn.commit()
    conn.close()
    assert_one_line(
        valuesim("cache", "stats", "--cache-dir", str(tmp_path / "c"), cwd=tmp_path),
        tmp_path / "c" / DB_NAME, "has an unexpected schema (table responses has columns id, blob)",
    )


def test_a_missing_cache_is_not_created_by_looking_at_it(tmp_path: Path) -> None:
    proc = valuesim("cache", "stats", "--cache-dir", str(tmp_path / "typo"), cwd=tmp_path)
    assert_one_line(proc, tmp_path / "typo" / DB_NAME, "no response cache at")
    assert not (tmp_path / "typo").exists()


LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    """A version-1 (rollback-journal) cache file that another process holds exclusively."""
    (tmp_path / "c").mkdir()
    path = tmp_path / "c" / DB_NAME
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.commit()
    conn.close()
    with held_exclusively(path):
        yield path


@contextmanager
def held_exclusively(path: Path) -> Iterator[None]:
    """Another process holds an exclusive lock on the SQLite file ``path`` meanwhile."""
    with subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "locked"
            yield
        finally:
            proc.kill()


def test_a_cache_locked_past_the_timeout(locked: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    proc = valuesim(
        "cache", "check", "--cache-dir", str(locked.parent), "--lock-timeout", "0.5", cwd=tmp_path,
    )
    assert_one_line(proc, locked, "is locked by another process (waited 0.5s); let that run finish")
    assert time.monotonic() - t0 < 30
    with pytest.raises(DataError, match="locked by another process"):
        ResponseCache(locked.parent, timeout_s=0.2)


def test_a_writer_locked_out_of_a_wal_cache(tmp_path: Path) -> None:
    path = filled_cache(tmp_path / "c", rows=5)
    with held_exclusively(path):
        # WAL readers still read; writers wait, then fail in one line
        prune = valuesim("cache", "prune", "--model", "m", "--lock-timeout", "0.5",
                         "--cache-dir", str(path.parent), cwd=tmp_path)
        assert_one_line(prune, path, "is locked by another process")
        with ResponseCache(path.parent, timeout_s=0.2) as cache:
            assert len(cache.get_many([f"key-{i:06d}-" + "x" * 40 for i in range(5)])) == 5
            with pytest.raises(DataError, match=f"{path}.*locked"):
                cache.put_many([("new", GOOD)])


def test_bad_rows_are_rescored_through_the_engine(
    tmp_path: Path, testplugin_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(testplugin_site))
    from valuesim_testprovider import HashFactory  # type: ignore[import-not-found]

    paid = tmp_path / "paid.log"
    monkeypatch.setenv("VALUESIM_TEST_LOG", str(paid))
    spec = ModelSpec(provider="testprovider", model="m")

    def engine() -> Engine:
        return Engine(HashFactory(), spec, tmp_path / "c", progress=False, log=lambda _: None)

    def requests(e: Engine) -> list[ScoreRequest]:
        return [
            e.request((ChatMessage("user", f"Question {q}?"),), ("1", "2", "3")) for q in range(6)
        ]

    first = engine()
    reqs = requests(first)
    answers = first.run(reqs)
    first.close()
    assert len(paid.read_text().splitlines()) == 6
    conn = sqlite3.connect(tmp_path / "c" / DB_NAME)
    keys = [first.key(r) for r in reqs]
    conn.execute("UPDATE responses SET value = '{not json' WHERE key = ?", (keys[0],))
    conn.execute("UPDATE responses SET value = '{\"answer\": 2}' WHERE key = ?", (keys[3],))
    conn.commit()
    conn.close()

    second = engine()
    assert second.run(requests(second)) == answers
    assert second.cache is not None
    assert second.cache.bad_rows == 2
    assert (second.summary.cache_hits, second.summary.sent) == (4, 2)
    second.close()
    assert len(paid.read_text().splitlines()) == 8  # only the two bad rows were paid again

    third = engine()  # the re-scored answers replaced the bad rows
    assert third.run(requests(third)) == answers
    assert third.cache is not None
    assert third.cache.bad_rows == 0
    assert third.summary.sent == 0
    third.close()
