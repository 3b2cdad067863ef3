"""The response cache's messages say what is really wrong (issue 22, item 8).

A healthy cache that cannot be written (a real read-only mount, a real full tmpfs)
is called read-only or full, never "unreadable, move it away" (which would throw
away paid answers), and ``valuesim cache check|stats`` still read it. Damage the
old checks missed is found: a row of the wrong shape, an empty file, a damaged
write-ahead log. Every case is a real file (mounts are real tmpfs mounts, always
unmounted) and the one-line checks run the real ``valuesim`` CLI in a subprocess.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from valuesim.errors import DataError
from valuesim.llm.cache import DB_NAME, ResponseCache
from valuesim.llm.types import AnswerDistribution

GOOD = AnswerDistribution(probs=(0.25, 0.75), coverage=0.9, estimator="logprobs")
CLI = "from valuesim.cli import main; main()"


def valuesim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def one_line_error(proc: subprocess.CompletedProcess[str], path: Path, *patterns: str) -> str:
    """Exit 2, one ``error: ...`` line naming the file and each pattern, no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    assert str(path) in lines[0]
    for pattern in patterns:
        assert pattern in lines[0], lines[0]
    return lines[0]


def fill(directory: Path, rows: int = 10) -> Path:
    with ResponseCache(directory) as cache:
        cache.put_many([(f"key-{i:04d}", GOOD) for i in range(rows)], provider="p", model="m")
    return directory / DB_NAME


def digest(directory: Path) -> dict[str, str]:
    """The database and its log (not -shm: SQLite's shared-memory index, rebuilt by any reader)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.is_file() and not p.name.endswith("-shm")}


@pytest.fixture
def mount_point(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs, unmounted afterwards whatever happens."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_up(filler: Path) -> None:
    """Write ``filler`` until its file system is full to the last byte."""
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 512):
            pass
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)


def remount(mnt: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mnt)], check=True)


def test_a_read_only_mount_is_called_read_only_and_check_and_stats_still_work(
    mount_point: Path,
) -> None:
    cache_dir = mount_point / "c"
    path = fill(cache_dir)
    remount(mount_point, "ro")
    before = digest(cache_dir)
    d = str(cache_dir)
    ok = valuesim("cache", "check", "--cache-dir", d, cwd=mount_point.parent)
    assert (ok.returncode, ok.stdout.strip()) == (0, f"response cache {path}: 10 rows, integrity ok"), ok.stderr
    stats = valuesim("cache", "stats", "--cache-dir", d, "--format", "json", cwd=mount_point.parent)
    assert stats.returncode == 0, stats.stderr
    assert [g["rows"] for g in json.loads(stats.stdout)["groups"]] == [10]
    dry = valuesim("cache", "prune", "--model", "m", "--dry-run", "--cache-dir", d, cwd=mount_point.parent)
    assert (dry.returncode, dry.stdout.strip()) == (0, f"would delete 10 rows from {path}"), dry.stderr
    line = one_line_error(
        valuesim("cache", "prune", "--model", "m", "--cache-dir", d, cwd=mount_point.parent),
        path, "is on a read-only file system; its answers are intact",
    )
    assert "unreadable" not in line
    assert "move it away" not in line
    # the engine's open says the same, before any request could be paid
    with pytest.raises(DataError, match="read-only file system; its answers are intact") as err:
        ResponseCache(cache_dir)
    assert "move it away" not in str(err.value)
    assert digest(cache_dir) == before  # looking wrote nothing


def test_a_full_disk_is_called_full_and_keeps_every_saved_answer(mount_point: Path) -> None:
    cache_dir = mount_point / "c"
    path = fill(cache_dir, rows=5)
    cache = ResponseCache(cache_dir)  # a run under way when the disk fills up
    filler = mount_point / "filler"
    fill_up(filler)
    big = AnswerDistribution(probs=(0.5, 0.5), coverage=1.0, estimator="logprobs",
                             floored=tuple(f"x{i}" for i in range(20000)))
    try:
        with pytest.raises(DataError) as err:
            cache.put_many([(f"big-{i}", big) for i in range(20)], provider="p", model="m")
    finally:
        cache.close()
    message = str(err.value)
    assert "the disk holding it is full" in message
    assert "its answers are intact" in message
    assert "unreadable" not in message
    assert "move it away" not in message
    with ResponseCache(cache_dir) as again:  # a new run still opens it and finds every answer
        assert len(again) == 5
        with pytest.raises(DataError, match="the disk holding it is full"):
            again.put_many([("one-more", big)])
    # check still reads it on the full disk; the answers saved before are all there
    ok = valuesim("cache", "check", "--cache-dir", str(cache_dir), cwd=mount_point.parent)
    assert (ok.returncode, ok.stdout.strip()) == (0, f"response cache {path}: 5 rows, integrity ok"), ok.stderr
    filler.unlink()
    with ResponseCache(cache_dir) as cache:
        assert len(cache) == 5
        cache.put_many([("after", GOOD)])  # space again: writes work
        assert len(cache) == 6


def test_a_row_of_the_wrong_shape_fails_check_and_prune_bad_drops_it(tmp_path: Path) -> None:
    path = fill(tmp_path / "c")
    conn = sqlite3.connect(path)
    row = json.loads(conn.execute("SELECT value FROM responses WHERE key = 'key-0003'").fetchone()[0])
    row["probs"] = [0.2, 0.3, 0.5]  # decodes fine, but the request had two answers
    conn.execute("UPDATE responses SET value = ? WHERE key = 'key-0003'", (json.dumps(row),))
    conn.commit()
    conn.close()
    d = str(tmp_path / "c")
    one_line_error(valuesim("cache", "check", "--cache-dir", d, cwd=tmp_path), path,
                   "1 of 10 rows hold the wrong number of probabilities")
    dry = valuesim("cache", "prune", "--bad", "--dry-run", "--cache-dir", d, cwd=tmp_path)
    assert (dry.returncode, dry.stdout.strip()) == (0, f"would delete 1 rows from {path}")
    assert valuesim("cache", "prune", "--bad", "--cache-dir", d, cwd=tmp_path).returncode == 0
    ok = valuesim("cache", "check", "--cache-dir", d, cwd=tmp_path)
    assert (ok.returncode, ok.stdout.strip()) == (0, f"response cache {path}: 9 rows, integrity ok")


def test_the_engine_treats_a_cached_answer_of_the_wrong_shape_as_a_miss(tmp_path: Path) -> None:
    """Rows written before the cache recorded answer counts are checked against the
    request when read: the engine passes each key's number of answers."""
    path = fill(tmp_path / "c", rows=3)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE responses SET answers = NULL")  # as an older cache has them
    conn.commit()
    conn.close()
    with ResponseCache(tmp_path / "c") as cache:
        keys = ["key-0000", "key-0001", "key-0002"]
        found = cache.get_many(keys, {"key-0000": 2, "key-0001": 4, "key-0002": 2})
        assert sorted(found) == ["key-0000", "key-0002"]
        assert cache.bad_rows == 1


def test_an_empty_file_is_not_reported_healthy_nor_written(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    path = tmp_path / "c" / DB_NAME
    path.touch()
    for cmd in ("check", "stats"):
        one_line_error(valuesim("cache", cmd, "--cache-dir", str(path.parent), cwd=tmp_path), path,
                       "is an empty file (0 bytes), not a database: it holds no answers")
    assert path.stat().st_size == 0
    assert sorted(p.name for p in path.parent.iterdir()) == [DB_NAME]


WRITER = textwrap.dedent(
    """
    import os, sys
    from valuesim.llm.cache import ResponseCache
    from valuesim.llm.types import AnswerDistribution
    cache = ResponseCache(sys.argv[1])
    cache._conn.execute("PRAGMA wal_autocheckpoint=0")  # every commit stays in the log
    d = AnswerDistribution(probs=(0.25, 0.75), coverage=0.9, estimator="logprobs")
    for i in range(12):
        cache.put_many([(f"key-{i:04d}", d)], provider="p", model="m")
    os._exit(0)  # killed: no checkpoint, the log holds the 12 answers
    """
)


def test_a_damaged_write_ahead_log_is_reported_not_silently_dropped(tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    subprocess.run([sys.executable, "-c", WRITER, str(cache_dir)], check=True, timeout=60)
    path = cache_dir / DB_NAME
    wal = Path(f"{path}-wal")
    data = bytearray(wal.read_bytes())
    page = int.from_bytes(data[8:12], "big")
    frames = (len(data) - 32) // (24 + page)
    assert frames >= 12
    data[32 + (frames // 2) * (24 + page) + 24 + 100] ^= 0xFF  # one byte of a middle frame
    wal.write_bytes(data)
    before = digest(cache_dir)
    d = str(cache_dir)
    line = one_line_error(valuesim("cache", "check", "--cache-dir", d, cwd=tmp_path), path,
                          f"write-ahead log {wal} is damaged at byte", "silently drop the",
                          "valuesim cache prune --wal-tail")
    assert "integrity ok" not in line
    # the engine refuses to open it (opening it for writing would drop the tail for good)
    with pytest.raises(DataError, match=r"write-ahead log .* is damaged"):
        ResponseCache(cache_dir)
    assert digest(cache_dir) == before  # nothing was touched
    dropped = valuesim("cache", "prune", "--wal-tail", "--cache-dir", d, cwd=tmp_path)
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stdout.startswith(f"dropped the damaged tail of {wal} ("), dropped.stdout
    ok = valuesim("cache", "check", "--cache-dir", d, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    kept = int(ok.stdout.split(": ")[1].split(" rows")[0])
    assert 0 < kept < 12  # the answers before the damage are kept


def test_prune_of_an_unknown_model_names_the_models_there_are(tmp_path: Path) -> None:
    path = fill(tmp_path / "c")
    proc = valuesim("cache", "prune", "--model", "nosuch", "--cache-dir", str(tmp_path / "c"),
                    cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        f"error: no answers of model 'nosuch' in {path}; its models are: m "
        "(see `valuesim cache stats`)"
    )
    with ResponseCache(tmp_path / "c") as cache:
        assert len(cache) == 10
