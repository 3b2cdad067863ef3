"""Fault tests through the engine: the run completes or fails clearly, every finished
request is cached, and a restart never pays for a finished request twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_google_server import FAKE_KEY, FakeGemini, make_request
from valuesim_google import GoogleFactory

from valuesim.config import ModelSpec
from valuesim.errors import ProviderError
from valuesim.llm.engine import Engine
from valuesim.llm.types import ScoreRequest

QUESTIONS = [f"Question {i}?" for i in range(6)]


def engine(fake: FakeGemini, cache: Path, *, retries: int = 3, estimator: str | None = None,
           **options: object) -> Engine:
    spec = ModelSpec(provider="google", model="gemini-2.0-flash", base_url=fake.url, concurrency=2,
                     estimator=estimator, samples=3, options=options)  # type: ignore[arg-type]
    return Engine(GoogleFactory(), spec, cache, batch_size=2, max_retries=retries,
                  timeout_s=30, progress=False, log=lambda _: None, backoff_s=0.0)


def requests(e: Engine) -> list[ScoreRequest]:
    return [e.request(r.messages, r.answers) for r in (make_request(q) for q in QUESTIONS)]


@pytest.mark.parametrize("estimator", [None, "sampling"])
def test_flaky_server_completes_and_restart_is_free(
    fake: FakeGemini, tmp_path: Path, estimator: str | None
) -> None:
    fake.fault = "flaky"  # the first attempt of every request fails with 503
    # Identical sample calls alternate fail/success at the fake, so a chunk of two
    # 3-sample requests needs 7 attempts; each retry pays only for unfinished samples.
    retries = 6 if estimator == "sampling" else 3
    with engine(fake, tmp_path, estimator=estimator, retries=retries) as e:
        results = e.run(requests(e))
        assert e.summary.retries > 0
    assert fake.counts["total"] == 2 * fake.counts["paid"]  # half the requests failed
    assert [r.estimator for r in results] == [estimator or "top_logprobs"] * len(QUESTIONS)
    calls = 3 if estimator == "sampling" else 1
    paid = fake.counts["paid"]
    assert paid == calls * len(QUESTIONS)  # failed attempts are not answers
    with engine(fake, tmp_path, estimator=estimator) as e:
        again = e.run(requests(e))
        assert e.summary.cache_hits == len(QUESTIONS)
    assert again == results
    assert fake.counts["paid"] == paid


def test_rate_limited_server_completes(fake: FakeGemini, tmp_path: Path) -> None:
    fake.fault = "ratelimit"  # 429 + Retry-After on the first attempt of every request
    with engine(fake, tmp_path) as e:
        results = e.run(requests(e))
        assert e.summary.retries > 0
    assert len(results) == len(QUESTIONS)
    assert all(r.coverage > 0.9 for r in results)
    assert fake.counts["paid"] == len(QUESTIONS)


@pytest.mark.parametrize(("fault", "message"), [("garbage", "unreadable response"),
                                                ("empty", "malformed response")])
def test_broken_bodies_fail_clearly_and_keep_finished(
    fake: FakeGemini, tmp_path: Path, fault: str, message: str
) -> None:
    with engine(fake, tmp_path) as e:
        e.run(requests(e)[:2])  # these finish before the server breaks
    fake.fault = fault
    with engine(fake, tmp_path) as e, pytest.raises(ProviderError, match=message):
        e.run(requests(e))
    fake.fault = ""
    paid = fake.counts["paid"]
    with engine(fake, tmp_path) as e:
        e.run(requests(e))
        assert e.summary.cache_hits == 2
    assert fake.counts["paid"] == paid + len(QUESTIONS) - 2


def test_hung_server_fails_clearly(fake: FakeGemini, tmp_path: Path) -> None:
    fake.fault = "hang"
    with engine(fake, tmp_path, retries=1, timeout_s=0.2) as e, \
            pytest.raises(ProviderError, match=r"gave up after 2 attempts.*within 0.2 s"):
        e.run(requests(e)[:1])
    assert fake.counts["total"] == 2
    assert fake.counts["paid"] == 0


def test_key_never_reaches_cache_or_errors(fake: FakeGemini, tmp_path: Path) -> None:
    with engine(fake, tmp_path) as e:
        e.run(requests(e)[:2])
    fake.fault = "badkey"  # the server quotes the key back in its error message
    with engine(fake, tmp_path, api_key_env="GEMINI_API_KEY") as e, pytest.raises(ProviderError) as info:
        e.run(requests(e))
    assert FAKE_KEY not in str(info.value)
    assert FAKE_KEY[5:20] not in str(info.value)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert FAKE_KEY.encode() not in f.read_bytes(), f
