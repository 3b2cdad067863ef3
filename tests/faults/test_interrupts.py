"""Ctrl-C and SIGTERM on a real `valuesim` process: prompt exit, nothing paid is lost.

Every case is a real subprocess sent a real signal. `valuesim score` talks through
the real OpenAI plugin and SDK to a loopback server that accepts the request and
never answers; `valuesim stage simulate` runs the test provider plugin (installed
through an entry point on PYTHONPATH), slowed by VALUESIM_TEST_DELAY, which logs one
line per answered request to VALUESIM_TEST_LOG: what the run paid for.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.fixtures import simulate_project
from valuesim.llm.cache import ResponseCache
from valuesim.testing import JSONHandler, local_http_server

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
# The first signal gives calls in flight 2 s (GRACE_S) to land, then the interpreter
# exits; a loaded 2-core machine needs some slack on top.
FIRST_SIGNAL_EXIT_S = 6.0
SECOND_SIGNAL_EXIT_S = 1.0
INTERRUPT_LINE = re.compile(
    r"^interrupted \((SIGINT|SIGTERM)\): .*: (\d+) answers received in this run are saved in the "
    r"response cache \((\d+) tokens, \$(\d+\.\d{4})\), (\d+) still to send; "
    r"rerun the same command to resume$"
)

N_REQUESTS = len(simulate_project.COUNTRIES) * simulate_project.PER_COUNTRY * len(simulate_project.QUESTIONS)
BATCH, CONCURRENCY = 2, 2


def stderr_lines(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stderr is not None
    return [line for line in proc.stderr.read().splitlines() if line.strip()]


def signal_and_time(proc: subprocess.Popen[str], *signals: int, gap_s: float = 0.3) -> float:
    """Send ``signals`` (``gap_s`` apart); seconds from the last one to the exit."""
    for i, s in enumerate(signals):
        if i:
            time.sleep(gap_s)
        proc.send_signal(s)
        sent = time.monotonic()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return time.monotonic() - sent


# -- (a) `valuesim score` against a server that never replies --------------------------


@dataclass
class HungServer:
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    requests: int = 0


class HangingHandler(JSONHandler):
    """Accepts a chat-completions request and never answers (until the test ends)."""

    def do_POST(self) -> None:
        self.read_body()
        fake: HungServer = self.server.fake
        fake.requests += 1
        fake.arrived.set()
        fake.release.wait(60)


@pytest.fixture
def hung_url() -> Iterator[tuple[str, HungServer]]:
    fake = HungServer()
    with local_http_server(HangingHandler, fake, on_close=fake.release.set) as url:
        yield url, fake


def score_command(url: str, tmp_path: Path) -> list[str]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["simulate"]["cache_dir"] = str(tmp_path / "cache")  # private: a shared one might answer
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return [*CLI, "score", "--provider", "openai", "--base-url", f"{url}/v1", "--model", "m",
            "--method", "country", "--country", "JPN", "--question", "Q6",
            "--params", str(tmp_path / "params.yaml")]


def test_ctrl_c_stops_a_call_to_a_hung_server_within_seconds(
    hung_url: tuple[str, HungServer], tmp_path: Path
) -> None:
    url, server = hung_url
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    with subprocess.Popen(score_command(url, tmp_path), cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert server.arrived.wait(60), "the request never reached the server"
        took = signal_and_time(proc, signal.SIGINT)
        lines = stderr_lines(proc)
    print(f"score, hung server: exit {took:.2f} s after SIGINT")
    assert proc.returncode == 130
    assert took < FIRST_SIGNAL_EXIT_S
    assert len(lines) == 1, lines  # one line, no traceback, no "Aborted!"
    m = INTERRUPT_LINE.match(lines[0])
    assert m is not None, lines[0]
    assert (m.group(1), m.group(2), m.group(5)) == ("SIGINT", "0", "1")
    assert server.requests == 1  # the abandoned call was not retried


# -- (b, c, d) `valuesim stage simulate` through the test provider ---------------------


def simulate_project_dir(tmp_path: Path) -> Path:
    d = tmp_path / "project"
    d.mkdir()
    simulate_project.make_project(d)
    params = {
        "data": {"questions": str(ROOT / "data/questions/wvs7.yaml")},
        "countries": {"select": simulate_project.COUNTRIES},
        "models": {"fake": {"provider": "testprovider", "model": "hash-1", "concurrency": CONCURRENCY}},
        "simulate": {
            "models": ["fake"], "methods": ["value"], "cache_dir": ".cache", "batch_size": BATCH,
            "prices": {"hash-1": {"input": 1.0, "output": 2.0}},  # a cost to carry over
        },
    }
    (d / "params.yaml").write_text(yaml.safe_dump(params))
    return d


SIMULATE = [*CLI, "stage", "simulate", "--model", "fake", "--method", "value"]


def simulate_env(site: Path, log: Path, delay: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUESIM_")}
    env.update(PYTHONPATH=str(site), VALUESIM_TEST_LOG=str(log), VALUESIM_TEST_DELAY=str(delay))
    return env


def paid(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def start_and_wait_for(project: Path, env: dict[str, str], log: Path, answers: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(SIMULATE, cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(paid(log)) < answers and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    if proc.poll() is not None or len(paid(log)) < answers:
        proc.kill()
        proc.wait()
        pytest.fail(f"the run ended ({proc.returncode}) or did not get going: {proc.stderr.read()}")
    return proc


def cached(project: Path) -> int:
    with ResponseCache(project / ".cache") as cache:
        return len(cache)


def test_ctrl_c_mid_simulate_keeps_every_paid_answer_and_the_rerun_reports_them(
    tmp_path: Path, testplugin_site: Path
) -> None:
    project = simulate_project_dir(tmp_path)
    log = project / "paid.log"
    proc = start_and_wait_for(project, simulate_env(testplugin_site, log, 0.4), log, N_REQUESTS // 4)
    with proc:
        took = signal_and_time(proc, signal.SIGINT)
        lines = stderr_lines(proc)
    print(f"simulate, slow provider: exit {took:.2f} s after SIGINT")
    assert proc.returncode == 130
    assert took < FIRST_SIGNAL_EXIT_S
    interrupt_lines = [line for line in lines if line.startswith("interrupted")]
    assert len(interrupt_lines) == 1, lines
    assert "Traceback" not in "\n".join(lines), lines
    m = INTERRUPT_LINE.match(interrupt_lines[0])
    assert m is not None, interrupt_lines[0]
    saved, tokens, cost, left = int(m.group(2)), int(m.group(3)), m.group(4), int(m.group(5))
    assert not (project / "data/simulated/fake/value").exists()  # no half-written output
    first = paid(log)
    # Calls in flight landed within the grace period: everything paid is saved.
    assert cached(project) == saved == len(first) < N_REQUESTS
    assert left == N_REQUESTS - saved
    assert tokens > 0
    assert float(cost) > 0

    rerun = subprocess.run(SIMULATE, cwd=project, env=simulate_env(testplugin_site, log, 0.0),
                           capture_output=True, text=True, timeout=60, check=False)
    assert rerun.returncode == 0, rerun.stderr
    second = paid(log)[len(first):]
    assert len(second) == N_REQUESTS - saved  # only the rest is sent
    assert not set(second) & set(first)
    summary = json.loads((project / "reports/runs/fake-value.json").read_text())  # run statistics
    assert (summary["cache_hits"], summary["sent"]) == (saved, N_REQUESTS - saved)
    assert (summary["earlier_runs"], summary["earlier_answers"]) == (1, saved)
    assert (summary["earlier_tokens"], f"{summary['earlier_cost_usd']:.4f}") == (tokens, cost)
    assert f"(incl. {saved} answers paid by an interrupted run: {tokens} tokens, ${cost})" in rerun.stdout

    # reported once: a third run carries nothing over and pays nothing
    third = subprocess.run(SIMULATE, cwd=project, env=simulate_env(testplugin_site, log, 0.0),
                           capture_output=True, text=True, timeout=60, check=False)
    assert third.returncode == 0, third.stderr
    assert "incl." not in third.stdout
    assert len(paid(log)) == N_REQUESTS


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path, testplugin_site: Path) -> None:
    project = simulate_project_dir(tmp_path)
    log = project / "paid.log"
    # calls that outlast the grace period, so the first signal alone would wait it out
    with subprocess.Popen(SIMULATE, cwd=project, env=simulate_env(testplugin_site, log, 30.0),
                          text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stderr is not None
        started = proc.stderr.readline()  # the engine's "... to send in N chunks" line
        assert "to send in" in started, started
        time.sleep(0.5)  # calls in flight
        took = signal_and_time(proc, signal.SIGINT, signal.SIGINT, gap_s=0.3)
        lines = stderr_lines(proc)
    print(f"simulate: exit {took:.2f} s after the second SIGINT")
    assert proc.returncode == 130
    assert took < SECOND_SIGNAL_EXIT_S
    assert lines == ["SIGINT again: exiting now without waiting"], lines
    assert paid(log) == []


def test_sigterm_stops_like_ctrl_c(tmp_path: Path, testplugin_site: Path) -> None:
    project = simulate_project_dir(tmp_path)
    log = project / "paid.log"
    proc = start_and_wait_for(project, simulate_env(testplugin_site, log, 0.4), log, 2)
    with proc:
        took = signal_and_time(proc, signal.SIGTERM)
        lines = stderr_lines(proc)
    print(f"simulate: exit {took:.2f} s after SIGTERM")
    assert proc.returncode == 130  # a clean stop on request, whichever signal asked
    assert took < FIRST_SIGNAL_EXIT_S
    m = INTERRUPT_LINE.match(lines[-1])
    assert m is not None, lines
    assert m.group(1) == "SIGTERM"
    assert cached(project) == int(m.group(2)) == len(paid(log))
