"""Bounds (issue 22, item 10): sizes, a server's Retry-After, and SIGHUP.

- Every size, count and float in params has an upper bound and floats are finite:
  `t_grid_max: .inf`, `t_grid_size: 100000000` and `bootstrap: 1000000000000` used to
  pass the params check and then crash or run for hours. Now each is one `error:` line
  naming the key, from a real `valuesim` process, before anything runs.
- A server's `Retry-After: 3600` used to be obeyed silently on every retry (hours).
  Now the wait is capped at `simulate.timeout_s` and announced with one line; a real
  `valuesim stage simulate` talks through the real OpenAI plugin and SDK to a loopback
  server that answers the first request with 429 and `Retry-After: 3600`.
- SIGHUP (a closed terminal or ssh session) stops a run like SIGTERM: one line, exit
  130, every paid answer cached; under `nohup` (SIGHUP ignored) the run goes on.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.faults.test_interrupts import (
    FIRST_SIGNAL_EXIT_S,
    INTERRUPT_LINE,
    N_REQUESTS,
    SIMULATE,
    cached,
    paid,
    signal_and_time,
    simulate_project_dir,
    start_and_wait_for,
    stderr_lines,
)
from tests.fixtures import simulate_project
from tests.fixtures.fault_checks import one_error_line
from valuesim.config import Params
from valuesim.testing import JSONHandler, local_http_server

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]


def simulate_env(site: Path, log: Path, delay: float) -> dict[str, str]:
    """The test provider plugin (slowed by ``delay`` s a call), on top of the PYTHONPATH
    this test runs with, so the subprocess imports the valuesim under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALUESIM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env.update(VALUESIM_TEST_LOG=str(log), VALUESIM_TEST_DELAY=str(delay))
    return env

# -- sizes --------------------------------------------------------------------------

# (section, key, YAML value, what the line says): the three probes first.
UNBOUNDED = [
    ("calibration", "t_grid_max", ".inf", "finite number"),
    ("calibration", "t_grid_size", "100000000", "less than or equal to 1000"),
    ("analysis", "bootstrap", "1000000000000", "less than or equal to 100000"),
    ("calibration", "t_grid_min", ".nan", "finite number"),
    ("analysis", "subsample_repeats", "100000000", "less than or equal to 10000"),
    ("analysis", "shapley_permutations", "100000000", "less than or equal to 1000"),
    ("personas", "n_per_country", "1000000000", "less than or equal to 10000"),
    ("simulate", "batch_size", "1000000000", "less than or equal to 50000"),
    ("simulate", "timeout_s", ".inf", "finite number"),
    ("simulate", "max_retries", "1000", "less than or equal to 20"),
    ("simulate", "max_cost_usd", ".nan", "finite number"),
    ("descriptors", "max_retries", "1000", "less than or equal to 10"),
    ("data", "demo_respondents_per_country", "1000000000", "less than or equal to 100000"),
]


@pytest.mark.parametrize(("section", "key", "value", "says"), UNBOUNDED)
def test_a_size_without_a_sane_bound_is_one_line_before_anything_runs(
    tmp_path: Path, section: str, key: str, value: str, says: str
) -> None:
    # written as text: `.inf` and `.nan` are YAML's own spellings
    (tmp_path / "params.yaml").write_text(f"{section}:\n  {key}: {value}\n")
    proc = subprocess.run([*CLI, "stage", "calibrate"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    line = one_error_line(proc)
    assert proc.returncode == 2
    assert line.startswith(f"error: params.yaml: {section}.{key}: "), line
    assert says in line, line
    assert not (tmp_path / "data").exists()  # nothing ran


@pytest.mark.parametrize(
    ("model_key", "value", "says"),
    [("concurrency", 100_000, "less than or equal to 256"),
     ("samples", 10**9, "less than or equal to 1000"),
     ("temperature", math.inf, "finite number")],
)
def test_a_models_sizes_are_bounded_too(tmp_path: Path, model_key: str, value: object, says: str) -> None:
    spec: dict[str, Any] = {"provider": "transformers", "model": "embedded", model_key: value}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"models": {"smollm2": spec}}))
    proc = subprocess.run([*CLI, "stage", "calibrate"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    line = one_error_line(proc)
    assert line.startswith(f"error: params.yaml: models.smollm2.{model_key}: "), line
    assert says in line, line


def test_the_shipped_params_and_defaults_are_inside_the_bounds(root: Path) -> None:
    from valuesim.config import load_params

    load_params(root / "params.yaml")
    Params()
    for path in sorted((root / "examples").rglob("params*.yaml")):
        load_params(path)


# -- Retry-After ----------------------------------------------------------------------


@dataclass
class RateLimited:
    """Answers the first request with 429 and ``retry_after``, every later one."""

    retry_after: str = "3600"
    requests: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class RateLimitedHandler(JSONHandler):
    def do_POST(self) -> None:
        body = json.loads(self.read_body())
        fake: RateLimited = self.server.fake
        with fake.lock:
            fake.requests += 1
            first = fake.refused == 0
            if first:
                fake.refused += 1
        if first:
            self.send_json(429, {"error": {"message": "Rate limit reached for requests", "type": "requests",
                                           "param": None, "code": "rate_limit_exceeded"}},
                           headers={"Retry-After": fake.retry_after})
            return
        # the OpenAI wire format: first-token log-probabilities
        top = [{"token": t, "logprob": lp, "bytes": list(t.encode())}
               for t, lp in (("2", -0.4), ("3", -1.4), ("4", -2.4), ("5", -3.0))]
        k = int(body.get("top_logprobs") or 0)
        content = [{"token": "2", "logprob": -0.4, "bytes": [50], "top_logprobs": top[:k]}]
        self.send_json(200, {
            "id": f"chatcmpl-{fake.requests}", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": {"content": content},
                         "message": {"role": "assistant", "content": "2"}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 1, "total_tokens": 51},
        })


@pytest.fixture
def rate_limited() -> Iterator[tuple[str, RateLimited]]:
    fake = RateLimited()
    with local_http_server(RateLimitedHandler, fake) as url:
        yield url, fake


CAP_S = 6  # simulate.timeout_s: above the 5 s from which a wait is announced


def test_a_retry_after_of_an_hour_is_capped_at_the_timeout_and_announced(
    tmp_path: Path, rate_limited: tuple[str, RateLimited]
) -> None:
    url, server = rate_limited
    project = tmp_path / "project"
    project.mkdir()
    simulate_project.make_project(project)
    (project / "params.yaml").write_text(yaml.safe_dump({
        "data": {"questions": str(ROOT / "data/questions/wvs7.yaml")},
        "countries": {"select": simulate_project.COUNTRIES},
        "models": {"m": {"provider": "openai", "model": "m", "base_url": f"{url}/v1", "concurrency": 2}},
        "simulate": {"models": ["m"], "methods": ["value"], "cache_dir": ".cache", "batch_size": 6,
                     "timeout_s": CAP_S, "max_retries": 1},
    }))
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY" and not k.startswith("VALUESIM_")}
    # Without the cap this waits an hour: the timeout fails the test instead.
    proc = subprocess.run([*CLI, "stage", "simulate"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    waits = [line for line in proc.stderr.splitlines() if "waiting" in line]
    assert len(waits) == 1, proc.stderr  # one line, not one per chunk or per request
    assert waits[0].startswith("simulate m/value: "), waits[0]
    assert "HTTP 429" in waits[0]
    assert waits[0].endswith(
        f"waiting {CAP_S} s before attempt 2 of 2 (the server asked for 3600 s; capped at "
        "simulate.timeout_s)"
    ), waits[0]
    assert server.refused == 1
    assert (project / "data/simulated/m/value/answers.parquet").is_file()


def test_a_short_retry_after_is_obeyed_silently(tmp_path: Path, rate_limited: tuple[str, RateLimited]) -> None:
    url, server = rate_limited
    server.retry_after = "1"
    project = tmp_path / "project"
    project.mkdir()
    simulate_project.make_project(project)
    (project / "params.yaml").write_text(yaml.safe_dump({
        "data": {"questions": str(ROOT / "data/questions/wvs7.yaml")},
        "countries": {"select": simulate_project.COUNTRIES},
        "models": {"m": {"provider": "openai", "model": "m", "base_url": f"{url}/v1"}},
        "simulate": {"models": ["m"], "methods": ["value"], "cache_dir": ".cache", "max_retries": 1},
    }))
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY" and not k.startswith("VALUESIM_")}
    proc = subprocess.run([*CLI, "stage", "simulate"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "waiting" not in proc.stderr
    assert server.refused == 1


# -- SIGHUP ---------------------------------------------------------------------------


def test_sighup_stops_like_sigterm(tmp_path: Path, testplugin_site: Path) -> None:
    project = simulate_project_dir(tmp_path)
    log = project / "paid.log"
    proc = start_and_wait_for(project, simulate_env(testplugin_site, log, 0.4), log, 2)
    with proc:
        took = signal_and_time(proc, signal.SIGHUP)
        lines = stderr_lines(proc)
    print(f"simulate: exit {took:.2f} s after SIGHUP")
    assert proc.returncode == 130, lines  # not -1: the default SIGHUP action killed it
    assert took < FIRST_SIGNAL_EXIT_S
    assert "Traceback" not in "\n".join(lines)
    found = re.match(INTERRUPT_LINE.pattern.replace("SIGINT|SIGTERM", "SIGHUP"), lines[-1])
    assert found is not None, lines
    assert cached(project) == int(found.group(2)) == len(paid(log)) < N_REQUESTS
    assert not (project / "data/simulated/fake/value").exists()


def test_under_nohup_a_sighup_does_not_stop_the_run(tmp_path: Path, testplugin_site: Path) -> None:
    project = simulate_project_dir(tmp_path)
    log = project / "paid.log"
    env = simulate_env(testplugin_site, log, 0.2)
    # what `nohup` does before it execs the command: SIGHUP ignored
    with subprocess.Popen(SIMULATE, cwd=project, env=env, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE,
                          preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)) as proc:
        assert proc.stderr is not None
        assert "to send in" in proc.stderr.readline()
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert len(paid(log)) == N_REQUESTS
    assert (project / "data/simulated/fake/value/answers.parquet").is_file()
