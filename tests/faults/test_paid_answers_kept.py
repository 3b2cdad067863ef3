"""Answers already paid for are kept, reported and never paid again (issue 22, item 5).

Every case runs real ``valuesim ask`` processes through the real OpenAI plugin and
SDK against a loopback server speaking the chat-completions wire format. The server
answers each request after a delay and records the prompt of every request it
answered: what the runs paid for. Signals are real signals; the lock is a real
second process holding SQLite's write lock on the cache file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.study_files import write_ask_params
from valuesim.llm.cache import DB_NAME
from valuesim.testing import JSONHandler, local_http_server

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins/valuesim-openai/tests"))
from fake_openai_server import FAKE_KEY, FakeOpenAI  # noqa: E402

CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
COUNTRIES, QUESTIONS, N = "JPN,DEU", "Q1,Q2", 20
PROMPTS = 2 * 2 * N  # 80 answers, in chunks of 32
# Generous bounds that only catch hangs: the first signal waits at most the 2 s grace.
EXIT_AFTER_SIGNAL_S = 10.0
RECEIVED = re.compile(r": (\d+) answers received in this run are saved in the response cache")


@dataclass
class SlowServer:
    delay_s: float = 0.05
    model: FakeOpenAI = field(default_factory=FakeOpenAI)
    answered: list[str] = field(default_factory=list)  # one prompt per paid request
    received: int = 0  # requests that reached the server, answered or not
    lock: threading.Lock = field(default_factory=threading.Lock)


def prompt_of(body: dict[str, Any]) -> str:
    return json.dumps(body["messages"], sort_keys=True)


class SlowHandler(JSONHandler):
    """/v1/chat/completions, each answer ``delay_s`` after the request arrived."""

    def do_POST(self) -> None:
        body = json.loads(self.read_body())
        fake: SlowServer = self.server.fake
        with fake.lock:
            fake.received += 1
        time.sleep(fake.delay_s)
        self.send_json(200, fake.model.completion(body))
        with fake.lock:
            fake.answered.append(prompt_of(body))


@pytest.fixture
def server() -> Iterator[tuple[str, SlowServer]]:
    fake = SlowServer()
    with local_http_server(SlowHandler, fake) as url:
        yield f"{url}/v1", fake


def project(tmp_path: Path, url: str) -> Path:
    write_ask_params(
        tmp_path, model="oa", provider=None,
        models={"oa": {"provider": "openai", "model": "gpt-4o-mini", "base_url": url,
                       "concurrency": 1}},
        simulate={"models": ["oa"], "methods": ["value"], "cache_dir": ".cache", "batch_size": 32,
                  "prices": {"gpt-4o-mini": {"input": 1.0, "output": 2.0}}},
    )
    return tmp_path


ASK = [*CLI, "ask", "-q", QUESTIONS, "--countries", COUNTRIES, "--model", "oa", "--n", str(N),
       "--format", "json"]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("VALUESIM_")}
    e["OPENAI_API_KEY"] = FAKE_KEY
    return e


def rows(cache_dir: Path) -> int:
    conn = sqlite3.connect(cache_dir / DB_NAME)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    finally:
        conn.close()


def wait_for(predicate: Any, proc: subprocess.Popen[str], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"{what}: the run ended ({proc.returncode}) or stalled: {err[-2000:]}")
        time.sleep(0.02)


def stop(proc: subprocess.Popen[str], *signals: int) -> tuple[float, str]:
    """Send ``signals``; seconds from the first to the exit, and stderr."""
    sent = time.monotonic()
    for s in signals:
        proc.send_signal(s)
        time.sleep(0.2)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return time.monotonic() - sent, err


def test_ctrl_c_mid_chunk_keeps_the_arrived_answers_and_the_rerun_pays_only_for_the_rest(
    server: tuple[str, SlowServer], tmp_path: Path
) -> None:
    url, fake = server
    d = project(tmp_path, url)
    # the rest of the chunk (22 answers) would take longer than the 2 s grace after Ctrl-C
    fake.delay_s = 0.15
    with subprocess.Popen(ASK, cwd=d, env=env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        # 10 answers into the first chunk of 32: nothing of it was committed before the fix
        wait_for(lambda: len(fake.answered) >= 10, proc, "10 answers")
        took, err = stop(proc, signal.SIGINT)
    first = list(fake.answered)
    print(f"ask, Ctrl-C after {len(first)} paid answers: exit {took:.2f} s after SIGINT")
    assert proc.returncode == 130, err
    assert took < EXIT_AFTER_SIGNAL_S
    assert "Traceback" not in err
    m = RECEIVED.search(err)
    assert m is not None, err
    # every paid answer is saved and reported as received: none thrown away, none invented
    assert int(m.group(1)) == len(first) == rows(d / ".cache")
    assert 10 <= len(first) < 32  # the interrupt came mid-chunk
    assert fake.received == len(first)  # no request was started after the signal

    fake.delay_s = 0.0
    rerun = subprocess.run(ASK, cwd=d, env=env(), capture_output=True, text=True, timeout=120,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr
    second = fake.answered[len(first):]
    assert len(second) == PROMPTS - len(first)  # only the unanswered prompts were sent
    assert not set(second) & set(first)
    summary = json.loads(rerun.stdout)["summary"]
    assert (summary["cache_hits"], summary["sent"]) == (len(first), PROMPTS - len(first))
    # the rerun reports what the interrupted run paid for
    assert (summary["earlier_runs"], summary["earlier_answers"]) == (1, len(first))


LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_a_locked_cache_costs_nothing_and_ctrl_c_ends_the_wait_at_once(
    server: tuple[str, SlowServer], tmp_path: Path
) -> None:
    url, fake = server
    d = project(tmp_path, url)
    fake.delay_s = 0.0
    # a cache with one answer in it (so the file exists in WAL mode), then locked
    one = [*CLI, "ask", "-q", "Q1", "--countries", "JPN", "--model", "oa", "--n", "1",
           "--format", "json"]
    assert subprocess.run(one, cwd=d, env=env(), capture_output=True, timeout=120).returncode == 0
    paid_before = len(fake.answered)
    with subprocess.Popen([sys.executable, "-c", LOCKER, str(d / ".cache" / DB_NAME)],
                          stdout=subprocess.PIPE, text=True) as locker:
        try:
            assert locker.stdout is not None
            assert locker.stdout.readline().strip() == "locked"
            with subprocess.Popen(ASK, cwd=d, env=env(), text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
                assert proc.stderr is not None
                # the run says it waits for the lock (after the plan line an ask prints first)
                waiting = ""
                for _ in range(5):
                    waiting = proc.stderr.readline()
                    if "is locked by another process" in waiting or not waiting:
                        break
                assert "is locked by another process; waiting up to 60s" in waiting, waiting
                time.sleep(1.0)  # and keeps waiting
                assert proc.poll() is None
                assert fake.received == paid_before  # nothing sent while the cache is locked
                took, err = stop(proc, signal.SIGINT)
        finally:
            locker.kill()
    print(f"ask on a locked cache: exit {took:.2f} s after SIGINT")
    assert proc.returncode == 130, err
    assert took < EXIT_AFTER_SIGNAL_S  # not the 60 s lock timeout
    assert fake.received == paid_before
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("interrupted (SIGINT): "), err
    assert "locked by another process; nothing was sent" in lines[-1]
    assert "Traceback" not in err


def test_two_concurrent_asks_on_one_cache_pay_once(
    server: tuple[str, SlowServer], tmp_path: Path
) -> None:
    url, fake = server
    d = project(tmp_path, url)
    fake.delay_s = 0.02
    procs = [subprocess.Popen(ASK, cwd=d, env=env(), text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    # every prompt paid for once, by one run or the other
    assert len(fake.answered) == PROMPTS
    assert len(set(fake.answered)) == PROMPTS
    summaries = [json.loads(out)["summary"] for out, _ in outs]
    assert sum(s["sent"] for s in summaries) == PROMPTS
    results = [json.loads(out)["results"] for out, _ in outs]
    assert results[0] == results[1]  # the same answers, whoever paid
    conn = sqlite3.connect(d / ".cache" / DB_NAME)
    assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0  # none left behind
    conn.close()
