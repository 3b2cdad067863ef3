"""Fault tests through the engine for the cases that must fail: the run fails clearly,
every finished request stays cached, a restart never pays for it twice, and the key
reaches neither the cache nor the error. (Faults the run survives, flaky and
rate-limited servers, are in test_anthropic_provider.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_anthropic_server import ANSWERS, FAKE_KEY, FakeAnthropic, make_request
from valuesim_anthropic import AnthropicFactory

from valuesim.config import ModelSpec
from valuesim.errors import ProviderError
from valuesim.llm.engine import Engine
from valuesim.llm.types import ScoreRequest

SAMPLES = 2
QUESTIONS = [f"Question {i}?" for i in range(4)]


def engine(fake: FakeAnthropic, cache: Path, *, retries: int = 3, **options: object) -> Engine:
    spec = ModelSpec(provider="anthropic", model="claude-haiku-4-5", base_url=fake.url,
                     samples=SAMPLES, concurrency=2, options=options)
    return Engine(AnthropicFactory(), spec, cache, batch_size=2, max_retries=retries,
                  timeout_s=30, progress=False, log=lambda _: None, backoff_s=0.0)


def requests(e: Engine) -> list[ScoreRequest]:
    return [e.request(make_request(q).messages, ANSWERS) for q in QUESTIONS]


def test_garbage_fails_clearly_and_keeps_finished(fake: FakeAnthropic, tmp_path: Path) -> None:
    with engine(fake, tmp_path) as e:
        e.run(requests(e)[:2])  # these finish before the server breaks
    assert fake.counts["paid"] == 2 * SAMPLES
    fake.fault = "garbage"
    with engine(fake, tmp_path) as e, pytest.raises(ProviderError, match="unreadable response"):
        e.run(requests(e))
    fake.fault = ""
    with engine(fake, tmp_path) as e:
        results = e.run(requests(e))
        assert e.summary.cache_hits == 2
    assert len(results) == len(QUESTIONS)
    # Only the two unfinished requests are paid for after the restart.
    assert fake.counts["paid"] == len(QUESTIONS) * SAMPLES


def test_hung_server_fails_clearly(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.fault = "hang"
    with engine(fake, tmp_path, retries=1, timeout_s=0.2) as e, \
            pytest.raises(ProviderError, match=r"gave up after 2 attempts.*within 0.2 s"):
        e.run(requests(e)[:1])
    assert fake.counts["paid"] == 0


def test_key_never_reaches_cache_or_errors(fake: FakeAnthropic, tmp_path: Path) -> None:
    with engine(fake, tmp_path) as e:
        e.run(requests(e)[:2])
    fake.fault = "badkey"  # the server echoes the key in its 401 message
    with engine(fake, tmp_path, api_key_env="ANTHROPIC_API_KEY") as e, \
            pytest.raises(ProviderError, match="HTTP 401") as info:
        e.run(requests(e))
    assert FAKE_KEY not in str(info.value)
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert files  # the cache was written, so the check below looks at something
    for f in files:
        assert FAKE_KEY.encode() not in f.read_bytes(), f
