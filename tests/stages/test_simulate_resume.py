"""Kill a running `valuesim stage simulate` for real, rerun it, compare with a clean run.

The provider is the test plugin, installed through an entry point on PYTHONPATH so
the subprocess discovers it like any installed plugin; it appends one line per
answered request to a log, which is what the run paid for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import yaml

from tests.fixtures.simulate_project import COUNTRIES, PER_COUNTRY, QUESTIONS, make_project
from valuesim.answer_tables import run_stats_path
from valuesim.llm.cache import ResponseCache

N_REQUESTS = len(COUNTRIES) * PER_COUNTRY * len(QUESTIONS)
BATCH, CONCURRENCY = 2, 2


def write_params(directory: Path, root: Path) -> None:
    params = {
        "data": {"questions": str(root / "data/questions/wvs7.yaml")},
        "countries": {"select": COUNTRIES},
        "models": {"fake": {"provider": "testprovider", "model": "hash-1", "concurrency": CONCURRENCY}},
        "simulate": {"models": ["fake"], "methods": ["value"], "cache_dir": ".cache", "batch_size": BATCH},
    }
    (directory / "params.yaml").write_text(yaml.safe_dump(params))


def command() -> list[str]:
    return [str(Path(sys.executable).with_name("valuesim")), "stage", "simulate",
            "--model", "fake", "--method", "value"]


def env_for(site: Path, log: Path, delay: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUESIM_")}
    env.update(PYTHONPATH=str(site), VALUESIM_TEST_LOG=str(log), VALUESIM_TEST_DELAY=str(delay))
    return env


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_a_killed_simulate_resumes_without_repeating_or_losing_a_request(
    tmp_path: Path, root: Path, testplugin_site: Path
) -> None:
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for d in (clean, killed):
        d.mkdir()
        make_project(d)
        write_params(d, root)

    subprocess.run(command(), cwd=clean, env=env_for(testplugin_site, clean / "paid.log", 0.0),
                   check=True, capture_output=True)
    assert len(lines(clean / "paid.log")) == N_REQUESTS

    log = killed / "paid.log"
    with subprocess.Popen(command(), cwd=killed, env=env_for(testplugin_site, log, 0.15),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        deadline = time.monotonic() + 60
        while len(lines(log)) < N_REQUESTS // 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "data/simulated/fake/value").exists()  # no half-written output
    paid_first = lines(log)
    with ResponseCache(killed / ".cache") as cache:
        saved = len(cache)
    assert 0 < saved < N_REQUESTS  # killed mid-run, with finished chunks saved
    # at most the chunks in flight at the kill were paid without being saved
    assert len(paid_first) - saved <= BATCH * CONCURRENCY

    subprocess.run(command(), cwd=killed, env=env_for(testplugin_site, log, 0.0),
                   check=True, capture_output=True)
    paid_second = lines(log)[len(paid_first):]
    assert len(paid_second) == N_REQUESTS - saved  # only what was not saved is sent again
    assert set(paid_first) | set(paid_second) == set(lines(clean / "paid.log"))  # nothing lost
    repeated = len(paid_first) + len(paid_second) - N_REQUESTS
    assert repeated == len(paid_first) - saved <= BATCH * CONCURRENCY

    for name in ("answers.parquet", "population.parquet"):
        a = pl.read_parquet(clean / "data/simulated/fake/value" / name)
        b = pl.read_parquet(killed / "data/simulated/fake/value" / name)
        assert a.equals(b), name
    summary = json.loads((killed / run_stats_path("fake", "value")).read_text())
    assert (summary["cache_hits"], summary["sent"]) == (saved, N_REQUESTS - saved)

    # and a third run pays for nothing
    subprocess.run(command(), cwd=killed, env=env_for(testplugin_site, log, 0.0),
                   check=True, capture_output=True)
    assert len(lines(log)) == len(paid_first) + len(paid_second)
