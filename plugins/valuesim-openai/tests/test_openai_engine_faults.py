"""Fault tests through the engine: the run completes or fails clearly, every finished
request is cached, and a restart never pays for a finished request twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_openai_server import FAKE_KEY, FakeOpenAI, make_request
from valuesim_openai import OpenAIFactory

from valuesim.config import ModelSpec
from valuesim.errors import ProviderError
from valuesim.llm.engine import Engine

QUESTIONS = [f"Question {i}?" for i in range(6)]


def engine(fake: FakeOpenAI, cache: Path, *, retries: int = 3, **options: object) -> Engine:
    spec = ModelSpec(provider="openai", model="gpt-4o-mini", base_url=fake.url,
                     concurrency=2, options=options)
    return Engine(OpenAIFactory(), spec, cache, batch_size=2, max_retries=retries,
                  timeout_s=30, progress=False, log=lambda _: None, backoff_s=0.0)


def requests(e: Engine) -> list:
    return [e.request(r.messages, r.answers) for r in (make_request(q) for q in QUESTIONS)]


def test_flaky_server_completes_and_restart_is_free(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.fault = "flaky"  # every other request fails with 500
    with engine(fake, tmp_path) as e:
        results = e.run(requests(e))
        assert e.summary.retries > 0
    assert len(results) == len(QUESTIONS)
    assert all(r.coverage > 0.9 for r in results)
    paid = fake.counts["paid"]
    assert paid == len(QUESTIONS)  # failed attempts are not answers
    with engine(fake, tmp_path) as e:
        again = e.run(requests(e))
        assert e.summary.cache_hits == len(QUESTIONS)
    assert again == results
    assert fake.counts["paid"] == paid


def test_rate_limited_server_completes(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.fault = "ratelimit"  # 429 + Retry-After on every other request
    with engine(fake, tmp_path) as e:
        results = e.run(requests(e))
        assert e.summary.retries > 0
    assert len(results) == len(QUESTIONS)
    assert fake.counts["paid"] == len(QUESTIONS)


def test_garbage_fails_clearly_and_keeps_finished(fake: FakeOpenAI, tmp_path: Path) -> None:
    with engine(fake, tmp_path) as e:
        e.run(requests(e)[:2])  # these finish before the server breaks
    fake.fault = "garbage"
    with engine(fake, tmp_path) as e, pytest.raises(ProviderError, match="unreadable response"):
        e.run(requests(e))
    fake.fault = ""
    paid = fake.counts["paid"]
    with engine(fake, tmp_path) as e:
        e.run(requests(e))
        assert e.summary.cache_hits == 2
    assert fake.counts["paid"] == paid + len(QUESTIONS) - 2


def test_hung_server_fails_clearly(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.fault = "hang"
    with engine(fake, tmp_path, retries=1, timeout_s=0.2) as e, \
            pytest.raises(ProviderError, match=r"gave up after 2 attempts.*within 0.2 s"):
        e.run(requests(e)[:1])


def test_key_never_reaches_cache_or_errors(fake: FakeOpenAI, tmp_path: Path) -> None:
    with engine(fake, tmp_path) as e:
        e.run(requests(e)[:2])
    fake.fault = "badkey"
    with engine(fake, tmp_path, api_key_env="OPENAI_API_KEY") as e, pytest.raises(ProviderError) as info:
        e.run(requests(e))
    assert FAKE_KEY not in str(info.value)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert FAKE_KEY.encode() not in f.read_bytes(), f
