"""A fleet of servers (``base_url`` as a list) under in-process providers, one per URL.

Each server here is a recording provider: the tests count what every server was
asked and answered, so routing, failover and "nothing paid twice" are checked on
the requests themselves. The same behaviour through the real openai SDK against
loopback servers (throughput, a server dying half-way) is in
plugins/valuesim-openai/tests/test_openai_fleet.py.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.llm.test_engine import CAPS, RecordingProvider, answer_for, requests_for
from valuesim.config import ModelSpec, load_params
from valuesim.contracts import TransientProviderError
from valuesim.errors import ConfigError, ProviderError
from valuesim.llm.answer_estimates import from_samples
from valuesim.llm.api_provider import APIProvider
from valuesim.llm.engine import Engine, RunSummary
from valuesim.llm.fleet import FleetProvider, affinity_key, create_provider
from valuesim.llm.types import AnswerDistribution, Capabilities, ChatMessage, Decoding, ScoreRequest

URLS = ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1", "http://10.0.0.3:8000/v1"]


class Server(RecordingProvider):
    """One server of the fleet: may die after ``dies_after`` answers, may list models."""

    def __init__(self, url: str, *, dies_after: int | None = None, models: Sequence[str] | None = None) -> None:
        super().__init__()
        self.url = url
        self.dies_after = dies_after
        self.in_flight = 0
        self.max_in_flight = 0
        self._models = models

    def score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        with self._lock:
            self.calls.append(list(requests))
            if self.dies_after is not None and len(self.answered) >= self.dies_after:
                raise TransientProviderError(f"inproc: cannot reach {self.url}: connection refused")
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            threading.Event().wait(0.002)  # long enough for other threads to overlap
            with self._lock:
                self.answered.extend(requests)
            return [answer_for(r) for r in requests]
        finally:
            with self._lock:
                self.in_flight -= 1


class WithModels(Server):
    def server_models(self) -> list[str]:
        return list(self._models or [])


class FleetFactory:
    name = "inproc"
    package = "valuesim-tests"
    capabilities = CAPS

    def __init__(self, servers: dict[str, Server]) -> None:
        self.servers = servers
        self.specs: list[ModelSpec] = []

    def create(self, spec: ModelSpec, *, state_dir: Path) -> Server:
        self.specs.append(spec)
        assert isinstance(spec.base_url, str), "each server's provider gets one URL"
        return self.servers[spec.base_url]


def fleet_engine(
    servers: dict[str, Server], cache: Path | None, *, concurrency: int = 2, **kw: object
) -> Engine:
    kw.setdefault("batch_size", 3)
    return Engine(
        FleetFactory(servers),
        ModelSpec(provider="inproc", model="m", base_url=list(servers), concurrency=concurrency),
        cache, progress=False, log=lambda _: None, backoff_s=0.001, sleep=lambda _: None,
        **kw,  # type: ignore[arg-type]
    )


def persona_servers(servers: dict[str, Server]) -> dict[str, set[str]]:
    """For each persona (system message), the servers that answered it."""
    seen: dict[str, set[str]] = {}
    for url, s in servers.items():
        for r in s.answered:
            seen.setdefault(r.messages[0].content, set()).add(url)
    return seen


def test_each_persona_stays_on_one_server_and_the_load_is_spread(tmp_path: Path) -> None:
    servers = {u: Server(u) for u in URLS[:2]}
    engine = fleet_engine(servers, tmp_path / "cache")
    reqs = requests_for(engine, personas=40, questions=3)
    assert engine.run(reqs) == [answer_for(r) for r in reqs]
    assert all(len(where) == 1 for where in persona_servers(servers).values())
    loads = [len(s.answered) for s in servers.values()]
    assert sum(loads) == len(reqs)
    assert max(loads) <= 1.03 * len(reqs) / 2 + 3
    per_server = engine.summary.servers
    assert [v["requests"] for v in per_server.values()] == loads
    assert per_server[URLS[0]]["prompt_tokens"] == 100 * loads[0]
    assert "per server: http://10.0.0.1:8000/v1" in engine.summary.line()
    # concurrency is per server: never more than 2 requests in flight to one server
    assert all(s.max_in_flight <= 2 for s in servers.values())


def test_rendezvous_moves_only_the_keys_of_a_server_that_left() -> None:
    servers = [Server(u) for u in URLS]
    fleet = FleetProvider(servers, URLS, concurrency=1)
    reqs = [
        ScoreRequest((ChatMessage("system", f"persona {i}"), ChatMessage("user", "q")), ("1", "2"))
        for i in range(300)
    ]
    before = [fleet._ranked(affinity_key(r))[0] for r in reqs]
    assert set(Counter(before)) == {0, 1, 2}
    fleet._live[1] = False  # server 1 leaves
    after = [fleet._ranked(affinity_key(r))[0] for r in reqs]
    moved = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]
    assert moved
    assert all(before[i] == 1 for i in moved)
    assert 1 not in after


def test_the_affinity_key_is_the_persona_even_in_multi_turn_prompts() -> None:
    system = ChatMessage("system", "persona 7")
    one = ScoreRequest((system, ChatMessage("user", "q1")), ("1",))
    two = ScoreRequest(
        (system, ChatMessage("user", "q2"), ChatMessage("assistant", "1"), ChatMessage("user", "and?")), ("1",)
    )
    assert affinity_key(one) == affinity_key(two)
    bare = ScoreRequest((ChatMessage("user", "q"),), ("1",))
    assert affinity_key(bare)  # no system message: the whole prompt


def test_a_server_that_dies_half_way_is_taken_out_and_nothing_is_paid_twice(tmp_path: Path) -> None:
    servers = {URLS[0]: Server(URLS[0], dies_after=10), URLS[1]: Server(URLS[1])}
    logs: list[str] = []
    engine = fleet_engine(servers, tmp_path / "cache", batch_size=6)
    engine._log = logs.append
    reqs = requests_for(engine, personas=30, questions=3)
    assert engine.run(reqs) == [answer_for(r) for r in reqs]
    answered = Counter(r for s in servers.values() for r in s.answered)
    assert sorted(answered.values()) == [1] * len(reqs)  # each answered exactly once
    died_after = len(servers[URLS[0]].answered)
    assert 10 <= died_after <= 10 + 2  # calls in flight when it died still land
    stats = engine.summary.servers
    assert stats[URLS[0]]["requests"] == died_after
    assert "connection refused" in str(stats[URLS[0]]["out"])
    assert stats[URLS[1]]["requests"] == len(reqs) - died_after
    assert stats[URLS[1]]["out"] == ""
    assert any("taken out of rotation" in line for line in logs)
    assert engine.summary.retries == 0  # re-routed at once, no backoff
    # a persona moved only when its server died: before that, one server
    first = persona_servers({URLS[0]: servers[URLS[0]]})
    assert all(len(v) == 1 for v in first.values())


def test_when_the_last_server_fails_the_run_stops_in_one_line_and_resumes(tmp_path: Path) -> None:
    servers = {URLS[0]: Server(URLS[0], dies_after=4), URLS[1]: Server(URLS[1], dies_after=5)}
    engine = fleet_engine(servers, tmp_path / "cache", max_retries=1)
    reqs = requests_for(engine, personas=10, questions=3)
    with pytest.raises(ProviderError) as err:
        engine.run(reqs)
    msg = str(err.value)
    assert "\n" not in msg
    assert "gave up after 2 attempts" in msg
    assert "out of rotation" in msg
    assert "cached; rerun to resume" in msg
    paid = [r for s in servers.values() for r in s.answered]
    assert 9 <= len(paid) <= 9 + 4
    assert len(set(paid)) == len(paid)
    # The server is back: a rerun sends only what did not finish (the engine's cache
    # and the fleet's memo of a failed chunk's finished answers), nothing twice.
    for server in servers.values():
        server.dies_after = None
    engine.run(reqs)
    paid = [r for s in servers.values() for r in s.answered]
    assert sorted(Counter(paid).values()) == [1] * len(reqs)


def test_the_cache_key_does_not_depend_on_the_servers(tmp_path: Path) -> None:
    one = Engine(FleetFactory({}), ModelSpec(provider="inproc", model="m", base_url=URLS[0]), None)
    two = Engine(FleetFactory({}), ModelSpec(provider="inproc", model="m", base_url=URLS[:2]), None)
    three = Engine(FleetFactory({}), ModelSpec(provider="inproc", model="m", base_url=URLS[::-1]), None)
    other = Engine(FleetFactory({}), ModelSpec(provider="inproc", model="m2", base_url=URLS[:2]), None)
    r = requests_for(one, personas=1, questions=1)[0]
    assert one.key(r) == two.key(r) == three.key(r) != other.key(r)


def test_a_list_of_one_server_is_that_server(tmp_path: Path) -> None:
    factory = FleetFactory({URLS[0]: Server(URLS[0])})
    spec = ModelSpec(provider="inproc", model="m", base_url=[URLS[0]])
    provider = create_provider(factory, spec, state_dir=tmp_path)
    assert provider is factory.servers[URLS[0]]


def test_servers_that_disagree_about_the_model_fail_before_any_request(tmp_path: Path) -> None:
    servers: dict[str, Server] = {
        URLS[0]: WithModels(URLS[0], models=["m"]),
        URLS[1]: WithModels(URLS[1], models=["other-model"]),
    }
    engine = fleet_engine(servers, tmp_path / "cache")
    with pytest.raises(ProviderError) as err:
        engine.run(requests_for(engine, personas=2, questions=2))
    msg = str(err.value)
    assert "\n" not in msg
    assert URLS[1] in msg
    assert "does not serve model 'm'" in msg
    assert "other-model" in msg
    assert not any(s.calls for s in servers.values())


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("[]", "an empty list of servers"),
        ('["http://a:8000/v1", "htp//b:8000"]', "is not an http(s) URL"),
        ('["http://a:8000/v1", "http://a:99999/v1"]', "is not an http(s) URL"),
        ('["http://a:8000/v1", "http://a:8000/v1/"]', "listed twice"),
    ],
)
def test_bad_server_lists_are_one_line_config_errors(tmp_path: Path, base_url: str, expected: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        "models:\n  fleet:\n    provider: openai\n    model: m\n"
        f"    base_url: {base_url}\nsimulate:\n  models: [fleet]\n"
    )
    with pytest.raises(ConfigError) as err:
        load_params(params)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)
    assert "models.fleet.base_url" in str(err.value)


def test_a_fleet_with_the_batch_api_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="batch_api: false or give one base_url"):
        ModelSpec(provider="openai", model="m", base_url=URLS[:2], batch_api=True)


def test_the_summary_line_lists_servers_only_for_a_fleet() -> None:
    s = RunSummary(provider="p", model="m")
    assert "per server" not in s.line()
    s.servers = {"http://a/v1": {"requests": 3, "prompt_tokens": 10, "completion_tokens": 2, "out": ""}}
    assert s.line().endswith("per server: http://a/v1 3 req 12 tok")
    assert s.to_json()["servers"] == s.servers


def test_the_report_redacts_every_server_of_a_fleet() -> None:
    from valuesim.config import Params
    from valuesim.report.tables import shown_params

    params = Params.model_validate({
        "models": {"fleet": {"provider": "openai", "model": "m", "base_url": [
            "http://user:secret@10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1?api_key=secret2"]}},
        "simulate": {"models": ["fleet"]},
    })
    shown = shown_params(params)["models"]["fleet"]["base_url"]
    assert shown == ["http://***@10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1?api_key=***"]


class Writer(Server):
    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str:
        if self.dies_after is not None:
            raise TransientProviderError(f"inproc: cannot reach {self.url}")
        return f"text from {self.url}"


def test_text_generation_fails_over_to_the_next_server() -> None:
    writers = [Writer(URLS[0], dies_after=0), Writer(URLS[1])]
    fleet = FleetProvider(writers, URLS[:2], concurrency=1)
    assert fleet.generate([ChatMessage("user", "hi")]) == f"text from {URLS[1]}"
    assert fleet.server_stats()[0].out  # the dead one left rotation


class DrawServer(APIProvider):
    """An API provider that sends one request per sampled draw (like Anthropic's)."""

    name = "drawy"
    default_url = "http://127.0.0.1:9/v1"
    estimators = ("sampling",)
    capabilities = Capabilities(sampling=True, text_generation=True)

    def make_client(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.dies_after: int | None = None
        return None

    def request_body(self, request: ScoreRequest) -> dict[str, str]:
        return {"q": request.messages[-1].content}

    def send(self, body: dict[str, str]) -> str:
        if self.dies_after is not None and len(self.sent) >= self.dies_after:
            raise TransientProviderError(f"drawy: cannot reach {self.where}")
        self.sent.append((body["q"], len(self.sent)))
        return "2"

    def distribution(self, request: ScoreRequest, replies: Sequence[object]) -> AnswerDistribution:
        return from_samples([str(r) for r in replies], request.answers)


def test_a_re_routed_request_sends_only_the_draws_that_did_not_finish(tmp_path: Path) -> None:
    spec = ModelSpec(provider="drawy", model="m", estimator="sampling", samples=5)
    a, b = (DrawServer(spec.model_copy(update={"base_url": u}), state_dir=tmp_path) for u in URLS[:2])
    fleet = FleetProvider([a, b], URLS[:2], concurrency=1)
    request = ScoreRequest(
        (ChatMessage("system", "persona"), ChatMessage("user", "q?")), ("1", "2"),
        Decoding(estimator="sampling", samples=5),
    )
    first, second = (a, b) if fleet.assign([request]) == [0] else (b, a)
    first.dies_after = 3  # dies after 3 of the 5 draws
    [dist] = fleet.score([request])
    assert dist.probs == (0.0, 1.0)
    assert len(first.sent) == 3
    assert len(second.sent) == 2  # draws 4 and 5 only: nothing paid twice
