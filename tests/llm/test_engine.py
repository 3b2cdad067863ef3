"""The engine under real (in-process) providers with injected faults.

The providers here are the edge the engine talks to; each one answers with a
distribution derived from a hash of the prompt and records what it was asked, so
the tests can count what was paid for.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from valuesim.config import ModelSpec
from valuesim.contracts import TransientProviderError
from valuesim.errors import ProviderError
from valuesim.llm.cache import ResponseCache
from valuesim.llm.engine import FLAG_NO_COVERAGE, Engine, cost_of, plan_chunks
from valuesim.llm.interrupt import RunInterrupted
from valuesim.llm.paid_journal import JOURNAL_DIR, Paid, RunJournal
from valuesim.llm.types import (
    AnswerDistribution,
    Capabilities,
    ChatMessage,
    ScoreRequest,
    Usage,
)

CAPS = Capabilities(logprobs=True, top_logprobs=5, sampling=True)


def answer_for(request: ScoreRequest) -> AnswerDistribution:
    digest = hashlib.sha256(repr(request.messages).encode()).digest()
    weights = [math.exp(b / 64) for b in digest[: len(request.answers)]]
    total = sum(weights)
    return AnswerDistribution(
        probs=tuple(w / total for w in weights),
        coverage=0.5 + digest[-1] / 512,
        estimator=request.decoding.estimator or "logprobs",
        usage=Usage(prompt_tokens=100, completion_tokens=1, cached_tokens=40),
    )


class RecordingProvider:
    """Answers every request; ``fault`` may raise or replace a call's results."""

    name = "inproc"

    def __init__(
        self,
        capabilities: Capabilities = CAPS,
        fault: Callable[[int, Sequence[ScoreRequest]], list[AnswerDistribution] | None] | None = None,
    ) -> None:
        self.model = "m"
        self.revision = None
        self.capabilities = capabilities
        self.fault = fault
        self.calls: list[list[ScoreRequest]] = []  # every call, failed ones included
        self.answered: list[ScoreRequest] = []  # requests answered successfully
        self._lock = threading.Lock()

    def score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        with self._lock:
            self.calls.append(list(requests))
            n = len(self.calls)
        if self.fault is not None:
            replaced = self.fault(n, requests)
            if replaced is not None:
                return replaced
        with self._lock:
            self.answered.extend(requests)
        return [answer_for(r) for r in requests]


class Factory:
    name = "inproc"
    package = "valuesim-tests"

    def __init__(self, provider: RecordingProvider, capabilities: Capabilities = CAPS) -> None:
        self.provider = provider
        self.capabilities = capabilities
        self.created = 0

    def create(self, spec: ModelSpec, *, state_dir: Path) -> RecordingProvider:
        assert state_dir.is_dir()
        self.created += 1
        return self.provider


def spec(**kw: object) -> ModelSpec:
    return ModelSpec(provider="inproc", model="m", **kw)  # type: ignore[arg-type]


def make_engine(
    provider: RecordingProvider, cache_dir: Path | None, *, model: ModelSpec | None = None,
    sleeps: list[float] | None = None, factory: Factory | None = None, **kw: object,
) -> Engine:
    kw.setdefault("batch_size", 4)
    kw.setdefault("backoff_s", 0.001)
    # no real backoff waits unless a test asks for them (sleep=None: the interruptible one)
    kw.setdefault("sleep", sleeps.append if sleeps is not None else (lambda _: None))
    return Engine(
        factory or Factory(provider), model or spec(concurrency=2), cache_dir,
        progress=False, log=lambda _: None, **kw,  # type: ignore[arg-type]
    )


def requests_for(engine: Engine, personas: int = 5, questions: int = 3) -> list[ScoreRequest]:
    out = []
    for p in range(personas):
        system = ChatMessage("system", f"Your persona: person {p}")
        for q in range(questions):
            user = ChatMessage("user", f"Question {q}?")
            out.append(engine.request((system, user), ("1", "2", "3", "4")))
    return out


def test_run_answers_in_order_and_a_rerun_pays_nothing(tmp_path: Path) -> None:
    provider = RecordingProvider()
    engine = make_engine(provider, tmp_path / "cache")
    reqs = requests_for(engine)
    reqs = [*reqs, reqs[0], reqs[4]]  # duplicates are sent once
    results = engine.run(reqs)
    assert results == [answer_for(r) for r in reqs]
    assert len(provider.answered) == 15
    assert len({engine.key(r) for r in provider.answered}) == 15
    s = engine.summary
    assert (s.requests, s.unique_requests, s.cache_hits, s.sent) == (17, 15, 0, 15)
    assert s.prompt_tokens == 1500
    engine.close()

    again = RecordingProvider()
    factory = Factory(again)
    engine2 = make_engine(again, tmp_path / "cache", factory=factory)
    assert engine2.run(reqs) == results
    assert again.calls == []
    assert factory.created == 0  # nothing to send: the model is never loaded
    assert (engine2.summary.cache_hits, engine2.summary.sent, engine2.summary.cost_usd) == (17, 0, 0.0)
    engine2.close()


def test_chunks_hold_at_most_batch_size_and_keep_personas_together() -> None:
    engine = make_engine(RecordingProvider(), None)
    reqs = requests_for(engine, personas=4, questions=3)
    chunks = plan_chunks([(engine.key(r), r) for r in reqs], 4)
    assert [len(c) for c in chunks] == [3, 3, 3, 3]  # a persona's 3 questions never split
    chunks = plan_chunks([(engine.key(r), r) for r in reqs], 7)
    assert [len(c) for c in chunks] == [6, 6]
    # a persona with more questions than a chunk holds is split, in order
    many = requests_for(engine, personas=1, questions=10)
    chunks = plan_chunks([(engine.key(r), r) for r in many], 4)
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert [r for c in chunks for _, r in c] == many
    engine.close()


def test_chunks_run_concurrently_up_to_the_limit(tmp_path: Path) -> None:
    barrier = threading.Barrier(3, timeout=10)
    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    def fault(n: int, _: Sequence[ScoreRequest]) -> None:
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        try:
            if n <= 3:
                barrier.wait()  # breaks (and fails the run) unless 3 calls are in flight at once
        finally:
            with lock:
                active["now"] -= 1

    provider = RecordingProvider(fault=fault)
    engine = make_engine(provider, tmp_path / "c", model=spec(concurrency=3))
    engine.run(requests_for(engine, personas=9))
    assert active["max"] == 3
    assert len(provider.answered) == 27
    engine.close()


def test_a_local_provider_runs_one_chunk_at_a_time(tmp_path: Path) -> None:
    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    def fault(n: int, _: Sequence[ScoreRequest]) -> None:
        with lock:
            active["max"] = max(active["max"], active["now"] + 1)
        # no watchdog thread either: local calls run on the engine's worker itself
        assert threading.current_thread().name.startswith("valuesim-engine")

    provider = RecordingProvider(fault=fault)
    provider.local = True  # type: ignore[attr-defined]
    engine = make_engine(provider, tmp_path / "c", model=spec(concurrency=8))
    engine.run(requests_for(engine, personas=6))
    assert active["max"] == 1
    engine.close()


def test_transient_failures_of_half_the_calls_are_retried(tmp_path: Path) -> None:
    def fault(n: int, _: Sequence[ScoreRequest]) -> None:
        if n % 2 == 1:
            raise TransientProviderError("HTTP 503")

    provider = RecordingProvider(fault=fault)
    sleeps: list[float] = []
    engine = make_engine(provider, tmp_path / "c", sleeps=sleeps, model=spec(concurrency=1))
    reqs = requests_for(engine)
    assert engine.run(reqs) == [answer_for(r) for r in reqs]
    assert len(provider.answered) == len(reqs)  # each answered exactly once
    assert engine.summary.retries == len(sleeps) == len(provider.calls) // 2
    assert all(0 < s <= 0.001 for s in sleeps)  # the configured backoff, with jitter
    engine.close()


def test_backoff_grows_exponentially(tmp_path: Path) -> None:
    def fault(n: int, _: Sequence[ScoreRequest]) -> None:
        if n <= 3:
            raise TransientProviderError("HTTP 500")

    sleeps: list[float] = []
    provider = RecordingProvider(fault=fault)
    engine = make_engine(provider, tmp_path / "c", sleeps=sleeps, backoff_s=1.0)
    engine.run(requests_for(engine, personas=1))
    assert len(sleeps) == 3
    for i, s in enumerate(sleeps):
        assert 0.5 * 2**i <= s <= 2**i
    engine.close()


def test_rate_limits_honour_retry_after(tmp_path: Path) -> None:
    def fault(n: int, _: Sequence[ScoreRequest]) -> None:
        if n <= 2:
            raise TransientProviderError("HTTP 429", retry_after=7.5)

    sleeps: list[float] = []
    provider = RecordingProvider(fault=fault)
    engine = make_engine(provider, tmp_path / "c", sleeps=sleeps, model=spec(concurrency=1))
    engine.run(requests_for(engine))
    assert sleeps == [7.5, 7.5]
    engine.close()


def poisoned(request: ScoreRequest) -> bool:
    return "person 3" in request.messages[0].content


def test_giving_up_keeps_every_finished_chunk_and_a_restart_sends_only_the_rest(
    tmp_path: Path,
) -> None:
    def fault(n: int, reqs: Sequence[ScoreRequest]) -> None:
        if any(poisoned(r) for r in reqs):
            raise TransientProviderError("HTTP 502")

    provider = RecordingProvider(fault=fault)
    engine = make_engine(provider, tmp_path / "c", max_retries=2, model=spec(concurrency=1))
    reqs = requests_for(engine)
    with pytest.raises(ProviderError, match=r"gave up after 3 attempts \(HTTP 502\).*9 finished"):
        engine.run(reqs)
    assert sum(poisoned(r) for c in provider.calls for r in c) == 3 * 3
    assert len(provider.calls) == 3 + 3  # persons 0-2, then 3 attempts; person 4 never sent
    engine.close()
    with ResponseCache(tmp_path / "c") as cache:
        assert len(cache) == 9  # persons 0-2

    healthy = RecordingProvider()
    engine = make_engine(healthy, tmp_path / "c")
    assert engine.run(reqs) == [answer_for(r) for r in reqs]
    assert sorted({r.messages[0].content for r in healthy.answered}) == [
        "Your persona: person 3", "Your persona: person 4",
    ]
    assert len(healthy.answered) == 6
    engine.close()


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        (lambda reqs: (_ for _ in ()).throw(ProviderError("malformed JSON body")), "malformed JSON body"),
        (lambda reqs: [answer_for(r) for r in reqs][:-1], r"returned \d+ results for \d+ requests"),
        (lambda reqs: [AnswerDistribution((0.5, 0.5), 1.0, "logprobs") for _ in reqs], "2 probabilities for 4"),
        (lambda reqs: [AnswerDistribution((math.nan,) * 4, 1.0, "logprobs") for _ in reqs], "invalid distribution"),
        (lambda reqs: [AnswerDistribution((0.9, 0.9, 0.1, 0.1), 1.0, "logprobs") for _ in reqs], "summing to 2"),
        (lambda reqs: [AnswerDistribution((0.25,) * 4, 1.7, "logprobs") for _ in reqs], "coverage 1.7"),
        (lambda reqs: ["4"] * len(reqs), "returned str"),
    ],
)
def test_garbage_fails_the_run_clearly_after_saving_finished_chunks(
    tmp_path: Path, garbage: Callable[[Sequence[ScoreRequest]], list[AnswerDistribution]], message: str
) -> None:
    def fault(n: int, reqs: Sequence[ScoreRequest]) -> list[AnswerDistribution] | None:
        return garbage(reqs) if any(poisoned(r) for r in reqs) else None

    provider = RecordingProvider(fault=fault)
    engine = make_engine(provider, tmp_path / "c", model=spec(concurrency=1))
    reqs = requests_for(engine)
    with pytest.raises(ProviderError, match=message):
        engine.run(reqs)
    assert len(provider.calls) == 4  # permanent: no retry, and the queued chunk is dropped
    engine.close()
    healthy = RecordingProvider()
    engine = make_engine(healthy, tmp_path / "c")
    engine.run(reqs)
    assert len(healthy.answered) == 15 - 9  # persons 0-2 were saved before the failure
    engine.close()


def test_a_hung_call_times_out_and_is_retried(tmp_path: Path) -> None:
    release = threading.Event()

    def fault(n: int, _: Sequence[ScoreRequest]) -> None:
        if n == 1:
            release.wait(30)
            raise TransientProviderError("released")

    provider = RecordingProvider(fault=fault)
    engine = make_engine(provider, tmp_path / "c", timeout_s=0.2, model=spec(concurrency=1))
    reqs = requests_for(engine, personas=1)
    try:
        assert engine.run(reqs) == [answer_for(r) for r in reqs]
    finally:
        release.set()
    assert engine.summary.retries == 1
    assert engine.summary.provider_calls == 2
    engine.close()


def test_coverage_zero_is_flagged_kept_and_not_resent_unless_asked(tmp_path: Path) -> None:
    def fault(n: int, reqs: Sequence[ScoreRequest]) -> list[AnswerDistribution] | None:
        return [
            AnswerDistribution((0.0,) * 4, 0.0, "top_logprobs") if poisoned(r) else answer_for(r)
            for r in reqs
        ]

    provider = RecordingProvider(fault=fault)
    engine = make_engine(provider, tmp_path / "c")
    reqs = requests_for(engine)
    results = engine.run(reqs)
    assert [r.flag == FLAG_NO_COVERAGE for r in results] == [poisoned(r) for r in reqs]
    assert engine.summary.flagged == 3
    engine.close()

    again = RecordingProvider()
    engine = make_engine(again, tmp_path / "c")
    assert [r.flag for r in engine.run(reqs)] == [r.flag for r in results]  # still flagged
    assert again.calls == []
    engine.close()

    engine = make_engine(again, tmp_path / "c", retry_flagged=True)
    assert not any(r.flag for r in engine.run(reqs))
    assert len(again.answered) == 3
    engine.close()


def test_asking_for_an_estimator_the_provider_lacks_fails_before_loading(tmp_path: Path) -> None:
    factory = Factory(RecordingProvider(), capabilities=Capabilities(top_logprobs=20))
    with pytest.raises(ProviderError, match=r"cannot give the 'logprobs' estimator.*top_logprobs"):
        Engine(factory, spec(estimator="logprobs"), tmp_path / "c")
    with pytest.raises(ProviderError, match="no batch API"):
        Engine(factory, spec(batch_api=True), tmp_path / "c")
    with pytest.raises(ProviderError, match="no way to score"):
        Engine(Factory(RecordingProvider(), capabilities=Capabilities()), spec(), tmp_path / "c")
    assert factory.created == 0


def test_a_loaded_model_with_fewer_capabilities_fails_before_any_request(tmp_path: Path) -> None:
    provider = RecordingProvider(capabilities=Capabilities(sampling=True))  # e.g. a reasoning model
    engine = make_engine(provider, tmp_path / "c", model=spec(estimator="top_logprobs"))
    with pytest.raises(ProviderError, match="cannot give the 'top_logprobs' estimator"):
        engine.run(requests_for(engine))
    assert provider.calls == []
    engine.close()


def test_cache_key_ignores_how_a_run_is_done_but_not_what_is_asked(tmp_path: Path) -> None:
    base = make_engine(RecordingProvider(), None)
    req = requests_for(base, personas=1, questions=1)[0]
    same = [
        make_engine(RecordingProvider(), None, timeout_s=5, max_retries=0, batch_size=1),
        make_engine(RecordingProvider(), None, model=spec(concurrency=64, batch_api=False)),
        # samples and temperature cannot change a logprobs answer
        make_engine(RecordingProvider(), None, model=spec(samples=3, temperature=0.7)),
        # transport options: timeouts, batch polling, where the key is read from
        make_engine(RecordingProvider(), None, model=spec(options={"timeout_s": 9, "batch_wait_s": 1})),
    ]
    different = [
        make_engine(RecordingProvider(), None, model=spec(precision="bf16")),  # default fp32
        make_engine(RecordingProvider(), None, model=spec(revision="v2")),
        make_engine(RecordingProvider(), None, model=spec(options={"device": "cuda"})),
        make_engine(RecordingProvider(), None, model=spec(estimator="sampling")),
    ]
    k = base.key(req)
    assert all(e.key(e.request(req.messages, req.answers)) == k for e in same)
    keys = {e.key(e.request(req.messages, req.answers)) for e in different}
    assert k not in keys
    assert len(keys) == len(different)
    sampled = make_engine(RecordingProvider(), None, model=spec(estimator="sampling", samples=3))
    assert sampled.key(sampled.request(req.messages, req.answers)) not in keys


def test_each_answer_rule_has_its_own_cache_key_and_an_unoffered_one_is_refused() -> None:
    every_rule = Capabilities(logprobs=True, answer_rules=(
        "answer_start", "answer_eot", "first_token", "leading_integer"))
    keys = {}
    for rule in ("answer_start", "answer_eot", "first_token", "leading_integer"):
        provider = RecordingProvider(every_rule)
        engine = make_engine(provider, None, model=spec(answer_rule=rule), factory=Factory(provider, every_rule))
        req = requests_for(engine, personas=1, questions=1)[0]
        assert req.decoding.answer_rule == rule
        keys[rule] = engine.key(req)
    assert len(set(keys.values())) == 4
    # a provider that offers answer_start only (the API plugins) refuses leading_integer
    with pytest.raises(ProviderError, match="cannot measure answer_rule 'leading_integer'"):
        make_engine(RecordingProvider(), None, model=spec(answer_rule="leading_integer"))


def test_cost_comes_from_the_price_table_or_the_provider() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000, cached_tokens=200_000, cost_usd=9.0)
    assert cost_of(usage, {"input": 1.0, "output": 4.0, "cached_input": 0.5}) == pytest.approx(
        0.8 + 0.1 + 2.0
    )
    assert cost_of(usage, {"input": 1.0, "output": 4.0}) == pytest.approx(1.0 + 2.0)
    assert cost_of(usage, None) == 9.0


def test_summary_cost_uses_prices_for_the_model(tmp_path: Path) -> None:
    engine = make_engine(
        RecordingProvider(), tmp_path / "c", prices={"m": {"input": 2.0, "output": 10.0}}
    )
    engine.run(requests_for(engine, personas=2, questions=5))
    # 10 requests x (100 prompt tokens at $2/M + 1 completion token at $10/M)
    assert engine.summary.cost_usd == pytest.approx(10 * (100 * 2.0 + 10.0) / 1e6)
    assert engine.summary.line().startswith("inproc/m: 10 requests, 0 cached, 10 sent")
    engine.close()


def test_without_a_cache_dir_nothing_persists(tmp_path: Path) -> None:
    provider = RecordingProvider()
    engine = make_engine(provider, None)
    reqs = requests_for(engine, personas=1)
    engine.run(reqs)
    engine.run(reqs)
    assert len(provider.answered) == 6
    engine.close()


# -- interrupts and paid-answer carry-over ---------------------------------------------


def interrupt_when(event: threading.Event, cancel: threading.Event) -> threading.Thread:
    """Set ``cancel`` (what the CLI's Ctrl-C handler sets) once ``event`` happens."""
    t = threading.Thread(target=lambda: (event.wait(30), cancel.set()), daemon=True)
    t.start()
    return t


def test_a_cancel_abandons_a_hung_call_after_the_grace_and_keeps_finished_chunks(
    tmp_path: Path,
) -> None:
    release, hung = threading.Event(), threading.Event()

    def fault(n: int, reqs: Sequence[ScoreRequest]) -> None:
        if any(poisoned(r) for r in reqs):
            hung.set()
            release.wait(30)
            raise TransientProviderError("released")

    cancel = threading.Event()
    interrupt_when(hung, cancel)
    provider = RecordingProvider(fault=fault)
    engine = make_engine(provider, tmp_path / "c", model=spec(concurrency=1), cancel=cancel,
                         grace_s=0.3, sleep=None)
    reqs = requests_for(engine)
    t0 = time.monotonic()
    try:
        with pytest.raises(RunInterrupted, match=r"9 answers received in this run are saved.*6 still to send"):
            engine.run(reqs)
    finally:
        release.set()
    assert time.monotonic() - t0 < 5  # not the 120 s watchdog, and no retry cycle
    assert engine.summary.provider_calls == 4  # persons 0-2, the hung call; person 4 never sent
    engine.close()
    with ResponseCache(tmp_path / "c") as cache:
        assert len(cache) == 9


def test_a_call_landing_within_the_grace_is_saved(tmp_path: Path) -> None:
    started = threading.Event()

    def fault(n: int, _: Sequence[ScoreRequest]) -> None:
        if n == 2:
            started.set()  # both chunks in flight
        time.sleep(0.3)  # lands after the cancel, within the grace

    cancel = threading.Event()
    interrupt_when(started, cancel)
    provider = RecordingProvider(fault=fault)
    engine = make_engine(provider, tmp_path / "c", model=spec(concurrency=2), cancel=cancel, grace_s=5)
    with pytest.raises(RunInterrupted, match="6 answers received"):
        engine.run(requests_for(engine))
    assert len(provider.answered) == 6  # two chunks in flight, none started after the cancel
    engine.close()
    with ResponseCache(tmp_path / "c") as cache:
        assert len(cache) == 6


def test_a_cancel_ends_a_backoff_wait_at_once(tmp_path: Path) -> None:
    failed = threading.Event()

    def fault(n: int, _: Sequence[ScoreRequest]) -> None:
        failed.set()
        raise TransientProviderError("HTTP 429", retry_after=60)

    cancel = threading.Event()
    interrupt_when(failed, cancel)
    engine = make_engine(RecordingProvider(fault=fault), tmp_path / "c", cancel=cancel, sleep=None)
    t0 = time.monotonic()
    with pytest.raises(RunInterrupted):
        engine.run(requests_for(engine, personas=1))
    assert time.monotonic() - t0 < 3
    assert engine.summary.provider_calls == 1  # no retry after the cancel
    engine.close()


def test_a_cancel_abandons_a_batch_api_wait(tmp_path: Path) -> None:
    release, waiting = threading.Event(), threading.Event()

    def fault(n: int, _: Sequence[ScoreRequest]) -> None:
        waiting.set()  # a batch poller sleeping between polls
        release.wait(30)

    caps = Capabilities(logprobs=True, batch_api=True)
    cancel = threading.Event()
    interrupt_when(waiting, cancel)
    provider = RecordingProvider(capabilities=caps, fault=fault)
    engine = make_engine(provider, tmp_path / "c", factory=Factory(provider, caps),
                         model=spec(batch_api=True), cancel=cancel, grace_s=0.2)
    t0 = time.monotonic()
    try:
        with pytest.raises(RunInterrupted):
            engine.run(requests_for(engine, personas=1))
    finally:
        release.set()
    assert time.monotonic() - t0 < 3
    engine.close()


def interrupted_run(cache_dir: Path, personas: int, **kw: object) -> tuple[int, int]:
    """Run until a cancel stops it after ``personas`` chunks; its (answers, tokens) paid."""
    cancel = threading.Event()
    answered = threading.Event()

    def fault(n: int, _: Sequence[ScoreRequest]) -> None:
        if n > personas:
            answered.set()
            cancel.wait(30)  # hangs past the grace: paid nowhere
            raise TransientProviderError("released")

    interrupt_when(answered, cancel)
    provider = RecordingProvider(fault=fault)
    engine = make_engine(provider, cache_dir, model=spec(concurrency=1), cancel=cancel, grace_s=0.1, **kw)
    with pytest.raises(RunInterrupted):
        engine.run(requests_for(engine))
    engine.close()
    return engine.summary.sent, engine.summary.prompt_tokens + engine.summary.completion_tokens


def test_a_run_reports_what_an_interrupted_run_paid_once(tmp_path: Path) -> None:
    prices = {"m": {"input": 2.0, "output": 10.0}}
    answers, tokens = interrupted_run(tmp_path / "c", 2, prices=prices)
    assert (answers, tokens) == (6, 6 * 101)

    engine = make_engine(RecordingProvider(), tmp_path / "c", carry_over=True, prices=prices)
    engine.run(requests_for(engine))
    s = engine.summary
    assert (s.cache_hits, s.sent) == (6, 9)
    assert (s.earlier_runs, s.earlier_answers, s.earlier_tokens) == (1, 6, 606)
    assert s.earlier_cost_usd == pytest.approx(6 * (100 * 2.0 + 10.0) / 1e6)
    assert s.prompt_tokens + s.completion_tokens == 15 * 101  # this run's 9 and the earlier 6
    assert s.cost_usd == pytest.approx(15 * (100 * 2.0 + 10.0) / 1e6)
    assert "(incl. 6 answers paid by an interrupted run: 606 tokens, $0.0013)" in s.line()
    engine.close()

    engine = make_engine(RecordingProvider(), tmp_path / "c", carry_over=True)
    engine.run(requests_for(engine))
    assert engine.summary.earlier_runs == 0  # reported once
    assert "incl." not in engine.summary.line()
    engine.close()
    assert list((tmp_path / "c" / JOURNAL_DIR).iterdir()) == []


def test_carry_over_leaves_live_runs_other_models_and_non_reporting_engines_alone(
    tmp_path: Path,
) -> None:
    interrupted_run(tmp_path / "c", 1)
    journal = tmp_path / "c" / JOURNAL_DIR
    (dead,) = journal.iterdir()
    # a damaged line is skipped, not fatal
    with dead.open("a") as fh:
        fh.write('{"provider": "inproc", "model": "m", "answ\n')
    # a run still going (its journal locked) and one of another model
    live = RunJournal(journal, "inproc", "m")
    live.record(Paid(answers=5, prompt_tokens=500))
    other = RunJournal(journal, "inproc", "other-model")
    other.record(Paid(answers=7))
    other.release()

    # an engine whose summary nobody prints (valuesim score) reports nothing
    quiet = make_engine(RecordingProvider(), tmp_path / "c")
    quiet.run(requests_for(quiet, personas=1, questions=1)[:1])
    assert quiet.summary.earlier_runs == 0
    quiet.close()
    assert len(list(journal.iterdir())) == 3  # its own journal is gone, the others stay

    engine = make_engine(RecordingProvider(), tmp_path / "c", carry_over=True)
    engine.run(requests_for(engine))
    assert (engine.summary.earlier_runs, engine.summary.earlier_answers) == (1, 3)
    engine.close()
    assert sorted(journal.iterdir()) == sorted([live.path, other.path])
    live.release()


def test_the_interruptible_sleep_for_batch_pollers_ends_on_a_cancel() -> None:
    from valuesim.llm import interrupt

    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(interrupt.Interrupted):
        interrupt.sleep(30, cancel)
    assert time.monotonic() - t0 < 2
    interrupt.sleep(0.01, threading.Event())  # no cancel: an ordinary sleep
