from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from valuesim.errors import ConfigError, DataError
from valuesim.llm.cache import (
    DB_NAME,
    SCHEMA_VERSION,
    ResponseCache,
    decode_row,
    project_root,
    resolve_cache_dir,
)
from valuesim.llm.types import AnswerDistribution, Usage


def dist(i: int, flag: str = "") -> AnswerDistribution:
    p = (i % 7 + 1) / 10
    return AnswerDistribution(
        probs=(p, 1 - p), coverage=0.1 + 1 / 3, estimator="logprobs",
        usage=Usage(prompt_tokens=i, cost_usd=1e-7 * i), floored=("2",) if i % 2 else (), flag=flag,
    )


def test_values_round_trip_exactly_and_persist(tmp_path: Path) -> None:
    with ResponseCache(tmp_path / "c") as cache:
        cache.put_many([(f"k{i}", dist(i)) for i in range(5)])
        cache.put_many([("flagged", dist(9, flag="coverage 0"))])
    with ResponseCache(tmp_path / "c") as cache:
        got = cache.get_many([f"k{i}" for i in range(7)] + ["flagged", "k1"])
        assert len(cache) == 6
    assert got == {**{f"k{i}": dist(i) for i in range(5)}, "flagged": dist(9, flag="coverage 0")}


def test_lookups_of_many_keys_are_chunked(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        cache.put_many((f"k{i}", dist(i)) for i in range(2500))
        got = cache.get_many([f"k{i}" for i in range(0, 5000, 2)])
    assert len(got) == 1250
    assert got["k2498"] == dist(2498)


def test_a_failing_batch_stores_nothing(tmp_path: Path) -> None:
    def items() -> Iterator[tuple[str, AnswerDistribution]]:
        yield "a", dist(1)
        raise RuntimeError("provider died mid-batch")

    with ResponseCache(tmp_path) as cache:
        with pytest.raises(RuntimeError):
            cache.put_many(items())
        assert len(cache) == 0


def test_threads_write_concurrently(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        def work(t: int) -> None:
            for j in range(20):
                cache.put_many([(f"{t}-{j}-{k}", dist(k)) for k in range(5)])

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(cache) == 4 * 20 * 5


WRITER = textwrap.dedent(
    """
    import sys
    from valuesim.llm.cache import ResponseCache
    from valuesim.llm.types import AnswerDistribution
    cache = ResponseCache(sys.argv[1])
    d = AnswerDistribution(probs=(0.25, 0.75), coverage=0.9, estimator="logprobs")
    i = 0
    while True:
        cache.put_many([(f"{i}-{k}", d) for k in range(50)])
        i += 1
        if i == 3:
            print("ready", flush=True)
    """
)


def test_a_killed_writer_leaves_only_whole_batches(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with ResponseCache(tmp_path) as cache:
        n = len(cache)
        assert n >= 150
        assert n % 50 == 0  # every batch is all there, or not at all
        assert cache.get_many(["0-0"])["0-0"].probs == (0.25, 0.75)


def test_unusable_locations_fail_clearly(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"cannot create the response cache.*simulate.cache_dir"):
        ResponseCache(blocker / "cache")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match=r"unreadable.*move it away"):
        ResponseCache(corrupt)


def test_relative_cache_dirs_resolve_to_the_main_project_from_dvc_temp_workspaces(
    tmp_path: Path,
) -> None:
    exp = tmp_path / "proj" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    exp.mkdir(parents=True)
    assert project_root(exp) == tmp_path / "proj"
    assert resolve_cache_dir(".valuesim-cache", exp) == tmp_path / "proj" / ".valuesim-cache"
    assert resolve_cache_dir(".valuesim-cache", tmp_path) == tmp_path / ".valuesim-cache"
    assert resolve_cache_dir(tmp_path / "abs", exp) == tmp_path / "abs"


def test_each_provider_gets_a_persistent_state_dir(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        d = cache.state_dir("transformers")
        assert d == tmp_path / "state" / "transformers"
        assert d.is_dir()


def test_a_version_1_file_is_migrated_and_keeps_its_answers(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.executemany(
        "INSERT INTO responses VALUES (?, ?)",
        [(f"old{i}", '{"probs":[0.5,0.5],"coverage":0.9,"estimator":"logprobs"}') for i in range(3)],
    )
    conn.commit()
    conn.close()
    ten_days_ago = time.time() - 10 * 86400
    os.utime(tmp_path / DB_NAME, (ten_days_ago, ten_days_ago))
    with ResponseCache(tmp_path) as cache:
        assert cache.get_many(["old0"])["old0"].probs == (0.5, 0.5)
        cache.put_many([("new", dist(1))], provider="inproc", model="m")
        groups = {(g.provider, g.model): g for g in cache.stats()}
    assert groups[(None, None)].rows == 3
    # old rows are dated by the file's last change: at least that old
    assert groups[(None, None)].oldest == pytest.approx(ten_days_ago, abs=1)
    assert groups[("inproc", "m")].newest == pytest.approx(time.time(), abs=60)
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    with ResponseCache(tmp_path) as cache:  # a second open migrates nothing
        assert cache.prune(older_than_s=5 * 86400, dry_run=True) == 3
        assert len(cache) == 4
        assert cache.prune(older_than_s=5 * 86400) == 3
        assert cache.get_many(["old0", "new"]).keys() == {"new"}


def test_prune_by_model_combines_with_age_and_dry_run_deletes_nothing(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        cache.put_many([(f"a{i}", dist(i)) for i in range(4)], provider="p", model="a")
        cache.put_many([(f"b{i}", dist(i)) for i in range(2)], provider="p", model="b")
        assert cache.prune(model="a", dry_run=True) == 4
        assert len(cache) == 6
        assert cache.prune(model="a", older_than_s=3600) == 0  # all are newer
        assert cache.prune(model="a") == 4
        assert [(g.model, g.rows) for g in cache.stats()] == [("b", 2)]
        with pytest.raises(ConfigError, match="nothing to prune"):
            cache.prune()


def test_rows_that_do_not_decode_are_misses_and_counted(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as cache:
        cache.put_many([(f"k{i}", dist(i)) for i in range(4)])
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE responses SET value = '{\"probs\": [0.5' WHERE key = 'k0'")
    conn.execute("UPDATE responses SET value = '{\"p\": [1.0]}' WHERE key = 'k1'")
    conn.execute("UPDATE responses SET value = '[1, 2]' WHERE key = 'k2'")
    conn.commit()
    conn.close()
    with ResponseCache(tmp_path) as cache:
        assert cache.get_many([f"k{i}" for i in range(4)]) == {"k3": dist(3)}
        assert cache.bad_rows == 3
        report = cache.check()
        assert (report.rows, report.bad_rows, report.problems, report.ok) == (4, 3, [], False)
        assert "3 of 4 rows undecodable" in report.summary()
        assert cache.prune(bad=True) == 3
        assert cache.check().ok


@pytest.mark.parametrize(
    "value",
    [
        '{"probs": ["a", "b"], "coverage": 1, "estimator": "logprobs"}',
        '{"probs": [NaN, 1.0], "coverage": 1, "estimator": "logprobs"}',
        '{"probs": [], "coverage": 1, "estimator": "logprobs"}',
        '{"probs": [0.5, 0.5], "coverage": 1, "estimator": "logprobs", "usage": 3}',
        "null",
        "",
    ],
)
def test_decode_row_rejects_what_would_poison_results(value: str) -> None:
    assert decode_row(value) is None


def test_a_read_only_cache_file_says_so(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes through file permissions")
    with ResponseCache(tmp_path) as cache:
        cache.put_many([("a", dist(1))])
    (tmp_path / DB_NAME).chmod(0o444)
    try:
        with ResponseCache(tmp_path) as cache:
            assert cache.get_many(["a"]) == {"a": dist(1)}
            with pytest.raises(DataError, match=r"is read-only.*make it writable"):
                cache.put_many([("b", dist(2))])
    finally:
        (tmp_path / DB_NAME).chmod(0o644)
