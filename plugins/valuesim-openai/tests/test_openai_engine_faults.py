"""The provider conformance suite (valuesim.testing) against the fake OpenAI server:
flaky, rate-limited, garbage and hung servers, restarts that pay nothing twice, and a
key that reaches neither the cache nor an error."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fake_openai_server import FakeOpenAI, _Handler, make_request
from valuesim_openai import OpenAIFactory

from valuesim import ModelSpec, ScoreRequest
from valuesim.llm.cache import DB_NAME
from valuesim.llm.engine import Engine
from valuesim.testing import ProviderConformance, local_http_server


class TestOpenAIConformance(ProviderConformance):
    factory = OpenAIFactory
    model = "gpt-4o-mini"
    key_env = "OPENAI_API_KEY"
    estimators = (None, "sampling")
    default_estimator = "top_logprobs"
    min_coverage: ClassVar[Mapping[str, Any]] = {"top_logprobs": 0.9}

    @pytest.fixture
    def server(self, fake: FakeOpenAI) -> FakeOpenAI:
        return fake

    def make_request(self, question: str) -> ScoreRequest:
        return make_request(question)

    def spec(self, server: Any, **fields: Any) -> ModelSpec:
        return ModelSpec(provider="openai", model=self.model, base_url=server.url, **fields)


class _GatedHandler(_Handler):
    """Chat completions wait for ``fake.release`` (counted in ``counts["waiting"]``)."""

    def _route(self, method: str, raw: bytes) -> None:
        fake: FakeOpenAI = self.server.fake
        if self.path.startswith("/v1/chat/completions"):
            with fake.lock:
                fake.counts["waiting"] += 1
            fake.release.wait(30)
        super()._route(method, raw)


def test_answers_arriving_together_share_one_commit_and_every_one_is_kept(
    key: str, tmp_path: Path
) -> None:
    """Eight answers that land while another connection holds the cache's write lock
    are committed in (at most) two transactions, not eight, and none is lost: the first
    thread's commit waits for the lock, the other seven queue behind it and the next
    thread commits all of them at once (rows of one transaction share their ``created``).
    """
    fake = FakeOpenAI()
    n = 8
    with local_http_server(_GatedHandler, fake, on_close=fake.release.set) as url:
        spec = ModelSpec(provider="openai", model="gpt-4o-mini", base_url=url + "/v1", concurrency=n)
        engine = Engine("openai", spec, cache_dir=tmp_path / "cache", batch_size=1, progress=False,
                        log=lambda _m: None)
        requests = [make_request(f"Question {i}?") for i in range(n)]
        result: dict[str, Any] = {}
        run = threading.Thread(target=lambda: result.update(answers=engine.run(requests)))
        run.start()
        deadline = time.monotonic() + 60  # a bound that only catches a hang
        while fake.counts["waiting"] < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fake.counts["waiting"] == n
        other = sqlite3.connect(tmp_path / "cache" / DB_NAME, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # a second writer: the engine's commits wait
            fake.release.set()
            time.sleep(2.0)  # the eight replies arrive and queue for the lock
            other.execute("ROLLBACK")
        finally:
            other.close()
        run.join(60)
        assert not run.is_alive()
    engine.close()
    assert len(result["answers"]) == n
    with sqlite3.connect(tmp_path / "cache" / DB_NAME) as con:
        rows, commits = con.execute("SELECT COUNT(*), COUNT(DISTINCT created) FROM responses").fetchone()
    assert rows == n
    assert commits <= 2, f"{commits} transactions for {n} answers that arrived together"
    assert engine.summary.sent == n
