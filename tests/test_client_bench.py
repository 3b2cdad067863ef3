"""`valuesim bench-client`: a real (small) run against real loopback server processes.

Only shapes and counts are checked, never times: the figures themselves are run by
hand (docs/scale.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import pytest

from valuesim.client_bench import PATHS, bench_requests, run_client_bench
from valuesim.errors import ConfigError
from valuesim.llm.types import AnswerDistribution, Usage

pytest.importorskip("valuesim_openai", reason="bench-client drives the openai plugin")

CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]


def test_every_path_on_one_server_and_a_fleet_counts_what_the_servers_answered() -> None:
    out = subprocess.run(
        [*CLI, "bench-client", "--json", "--answers", "40", "--servers", "1", "--servers", "2",
         "--concurrency", "2", "--batch-size", "8"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    rows = {(r["servers"], r["path"]): r for r in result["rows"]}
    assert set(rows) == {(n, p) for n in (1, 2) for p in PATHS}
    for (_, path), row in rows.items():
        assert row["answers"] == 40
        # server mode: a first request per answer, and one continuation after "1"
        # (which begins "10"); the bare SDK paths send the first request only
        assert row["requests"] == (40 if path.startswith("sdk-") else 80), path
        assert row["client_cpu_s"] > 0
        assert row["server_cpu_s"] > 0
        assert row["client_cpu_ms_per_request"] == pytest.approx(
            1e3 * row["client_cpu_s"] / row["requests"], abs=1e-3
        )
    assert set(result["create_over_post_cpu"]) == {"1", "2"}


def test_an_unknown_path_is_one_line_before_any_server_starts() -> None:
    with pytest.raises(ConfigError, match="unknown path 'sdk'; choose from sdk-create, sdk-post"):
        run_client_bench(paths=["sdk"])


def test_bench_requests_are_distinct_prompts_sharing_each_persona() -> None:
    reqs = bench_requests(60, "t")
    assert len(set(reqs)) == 60
    assert len({r.messages[0].content for r in reqs}) == 2  # 30 questions a persona
    assert reqs[0].answers == tuple(str(i) for i in range(1, 11))


def test_answer_distribution_json_is_what_asdict_gives() -> None:
    # to_json is built field by field (cheaper than asdict on the hot path); a field
    # added to the class and not to to_json would silently leave the response cache.
    dist = AnswerDistribution(
        (0.25, 0.75), 0.9, "logprobs", usage=Usage(3, 1, 2, 0.5), floored=("2",), flag="f",
        answer_rule="answer_start",
    )
    assert dist.to_json() == asdict(dist)
    assert list(dist.to_json()) == list(asdict(dist))
    assert AnswerDistribution.from_json(json.loads(json.dumps(dist.to_json()))) == dist
