"""The provider conformance suite: what every API provider must survive, through the engine.

A plugin runs it against its wire-format fake in a few lines::

    from valuesim.testing import ProviderConformance

    class TestConformance(ProviderConformance):
        factory = MyFactory
        model = "my-model"
        key_env = "MY_API_KEY"

        @pytest.fixture
        def server(self, fake):            # the plugin's fake, fault switch included
            return fake

        def make_request(self, question):  # a ScoreRequest the fake answers well
            ...

        def spec(self, server, **fields):  # a ModelSpec pointing at the fake
            return ModelSpec(provider="my", model=self.model, base_url=server.url, **fields)

The fake (:class:`FakeServer`) counts what it is sent and what it answered, and
misbehaves on request: ``fault`` = "flaky" (the first attempt of every distinct
request fails with a 5xx), "ratelimit" (the first attempt gets 429 with a
Retry-After of ``retry_after_s``), "garbage" (200 with a body that is not JSON),
"hang" (no answer until the server closes), "badkey" (an auth error quoting the
key back); "" is a healthy server. The tests check that a run completes through
transient faults and retries them, honours Retry-After, fails on garbage and hung
servers with one line (the hang within the configured timeout), never pays twice
for a finished answer when rerun, and never writes the key to the cache or an error.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pytest

from valuesim.config import ModelSpec
from valuesim.errors import ProviderError
from valuesim.llm.engine import Engine
from valuesim.llm.types import AnswerDistribution, ScoreRequest


class FakeServer(Protocol):
    """What the suite needs of a plugin's fake server."""

    url: str  # the base_url a spec points at
    fault: str  # "", "flaky", "ratelimit", "garbage", "hang", "badkey" (plus the plugin's own)
    counts: Counter[str]  # "paid": replies that carried an answer; "total": requests received


class ProviderConformance:
    """Subclass as ``Test...`` in a plugin's tests; set the attributes, override the three hooks."""

    #: the plugin's factory class (a fresh instance per engine)
    factory: ClassVar[Any]
    #: the model name every spec uses
    model: ClassVar[str]
    #: a variable holding the test key, named in ``options.api_key_env`` so it reaches the fake
    key_env: ClassVar[str]
    #: estimators the fault runs are repeated with (None: the provider's default)
    estimators: ClassVar[tuple[str | None, ...]] = (None,)
    #: the provider's default estimator (what answers say when the spec names none)
    default_estimator: ClassVar[str] = "sampling"
    #: True when each sampled draw is its own request (else one request returns all draws)
    request_per_draw: ClassVar[bool] = False
    #: ``samples`` of every spec
    samples: ClassVar[int] = 2
    #: estimator -> coverage every answer of the fake exceeds (estimators not named: unchecked)
    min_coverage: ClassVar[Mapping[str, float]] = {}
    #: fault -> what the one-line error says (bodies the provider cannot read)
    broken_bodies: ClassVar[Mapping[str, str]] = {"garbage": "unreadable response"}
    #: what the error says when the fake refuses the key
    badkey_message: ClassVar[str] = "HTTP 401"
    #: the Retry-After (seconds) the fake sends with a 429
    retry_after_s: ClassVar[float] = 0.01
    #: requests per run
    questions: ClassVar[int] = 6

    # ----- the plugin's hooks -------------------------------------------------------------

    @pytest.fixture
    def server(self) -> Iterator[FakeServer]:
        """Override: start the plugin's fake server (a fault switch in ``.fault``)."""
        raise NotImplementedError("a ProviderConformance subclass must override the `server` fixture")

    def make_request(self, question: str) -> ScoreRequest:
        """Override: a request (messages and answers) the healthy fake answers well."""
        raise NotImplementedError

    def spec(self, server: FakeServer, **fields: Any) -> ModelSpec:
        """Override: a ModelSpec for ``self.model`` whose base_url is the fake's."""
        raise NotImplementedError

    # ----- parametrisation and helpers --------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "estimator" in metafunc.fixturenames:
            metafunc.parametrize("estimator", self.estimators, ids=lambda e: e or "default")
        if "broken" in metafunc.fixturenames:
            metafunc.parametrize("broken", sorted(self.broken_bodies))

    def draws(self, estimator: str | None) -> int:
        """Paid requests per answer."""
        sampled = (estimator or self.default_estimator) == "sampling"
        return self.samples if sampled and self.request_per_draw else 1

    def engine(
        self, server: FakeServer, cache: Path, *, retries: int = 3, estimator: str | None = None,
        sleeps: list[float] | None = None, **options: Any,
    ) -> Engine:
        spec = self.spec(server, estimator=estimator, samples=self.samples, concurrency=2, options=options)
        return Engine(
            self.factory(), spec, cache, batch_size=2, max_retries=retries, timeout_s=30,
            progress=False, log=lambda _: None, backoff_s=0.0,
            **({"sleep": sleeps.append} if sleeps is not None else {}),  # type: ignore[arg-type]
        )

    def requests(self, engine: Engine) -> list[ScoreRequest]:
        made = (self.make_request(f"Question {i}?") for i in range(self.questions))
        return [engine.request(r.messages, r.answers) for r in made]

    def check_coverage(self, results: list[AnswerDistribution], estimator: str | None) -> None:
        floor = self.min_coverage.get(estimator or self.default_estimator)
        if floor is not None:
            assert all(r.coverage > floor for r in results)

    def retries_through_faults(self, estimator: str | None) -> int:
        # Identical draws alternate fail/success at the fake and a retry resends only
        # unfinished draws, so a chunk of two requests needs one retry per draw.
        return 2 * self.draws(estimator) + 1

    # ----- the suite --------------------------------------------------------------------

    def test_flaky_server_completes_and_restart_is_free(
        self, server: FakeServer, tmp_path: Path, estimator: str | None
    ) -> None:
        server.fault = "flaky"
        n = self.questions
        with self.engine(server, tmp_path, estimator=estimator,
                         retries=self.retries_through_faults(estimator)) as e:
            results = e.run(self.requests(e))
            assert e.summary.retries > 0
        assert [r.estimator for r in results] == [estimator or self.default_estimator] * n
        self.check_coverage(results, estimator)
        assert server.counts["total"] == 2 * server.counts["paid"]  # half the requests failed
        paid = server.counts["paid"]
        assert paid == self.draws(estimator) * n  # failed attempts are not answers
        with self.engine(server, tmp_path, estimator=estimator) as e:
            again = e.run(self.requests(e))
            assert e.summary.cache_hits == n
        assert again == results
        assert server.counts["paid"] == paid

    def test_rate_limited_server_completes_honouring_retry_after(
        self, server: FakeServer, tmp_path: Path, estimator: str | None
    ) -> None:
        server.fault = "ratelimit"
        sleeps: list[float] = []
        with self.engine(server, tmp_path, estimator=estimator, sleeps=sleeps,
                         retries=self.retries_through_faults(estimator)) as e:
            results = e.run(self.requests(e))
            assert e.summary.retries > 0
        assert len(results) == self.questions
        self.check_coverage(results, estimator)
        assert sleeps
        assert sleeps == pytest.approx([self.retry_after_s] * len(sleeps))  # the server's wait
        paid = server.counts["paid"]
        assert paid == self.draws(estimator) * self.questions
        server.fault = ""
        with self.engine(server, tmp_path, estimator=estimator) as e:
            assert e.run(self.requests(e)) == results
        assert server.counts["paid"] == paid

    def test_broken_body_fails_in_one_line_and_a_rerun_pays_nothing_twice(
        self, server: FakeServer, tmp_path: Path, broken: str
    ) -> None:
        draws = self.draws(None)
        with self.engine(server, tmp_path) as e:
            e.run(self.requests(e)[:2])  # these finish before the server breaks
        assert server.counts["paid"] == 2 * draws
        server.fault = broken
        with self.engine(server, tmp_path) as e, pytest.raises(ProviderError) as info:
            e.run(self.requests(e))
        message = str(info.value)
        assert self.broken_bodies[broken] in message
        assert "\n" not in message
        assert "Traceback" not in message
        server.fault = ""
        paid = server.counts["paid"]
        with self.engine(server, tmp_path) as e:
            results = e.run(self.requests(e))
            assert e.summary.cache_hits == 2
        assert len(results) == self.questions
        # Only the unfinished requests are paid for after the restart.
        assert server.counts["paid"] == paid + (self.questions - 2) * draws
        assert server.counts["paid"] == self.questions * draws

    def test_hung_server_times_out_within_the_configured_timeout(
        self, server: FakeServer, tmp_path: Path
    ) -> None:
        server.fault = "hang"
        started = time.monotonic()
        with self.engine(server, tmp_path, retries=1, timeout_s=0.2) as e, \
                pytest.raises(ProviderError, match=r"gave up after 2 attempts.*within 0.2 s") as info:
            e.run(self.requests(e)[:1])
        # two attempts of 0.2 s each, far below the engine's 30 s watchdog and the fake's 10 s hang
        assert time.monotonic() - started < 8.0
        assert "\n" not in str(info.value)
        assert server.counts["total"] == 2
        assert server.counts["paid"] == 0

    def test_key_never_reaches_cache_or_errors(
        self, server: FakeServer, tmp_path: Path, key: str
    ) -> None:
        with self.engine(server, tmp_path) as e:
            e.run(self.requests(e)[:2])
        server.fault = "badkey"  # the server quotes the key back in its error
        with self.engine(server, tmp_path, api_key_env=self.key_env) as e, \
                pytest.raises(ProviderError, match=self.badkey_message) as info:
            e.run(self.requests(e))
        message = str(info.value)
        assert key not in message
        assert key[:16] not in message
        assert key[5:20] not in message
        files = [f for f in tmp_path.rglob("*") if f.is_file()]
        assert files  # the cache was written, so the check below looks at something
        for f in files:
            assert key.encode() not in f.read_bytes(), f
