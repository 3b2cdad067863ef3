"""A fourth provider, written from the README's plugin example, needs no core edit.

``fourthplugin/valuesim_mymodels.py`` imports from ``valuesim`` only. Registered
through a pluggy plugin manager, its transport option (``poll_interval_s``) stays
out of the cache key while its answer-changing option (``max_tokens``) is in, just
by how its options model declares them; an unknown option is a one-line error; and
it passes the provider conformance suite against a fake of its wire format.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from valuesim import ChatMessage, ModelSpec, ProviderError, ScoreRequest, plugins
from valuesim.llm.engine import Engine
from valuesim.testing import JSONHandler, ProviderConformance, local_http_server

PLUGIN_DIR = Path(__file__).with_name("fourthplugin")
FAKE_KEY = "mm-test-DONOTLEAK-0123456789abcdef"
ANSWERS = ("1", "2", "3", "4")
REPLIES = ["2", "3", "2", "1", "4", "maybe"]


@dataclass
class FakeMyModels:
    """The made-up vendor's API: ``POST /v1/complete`` -> ``n`` replies, with fault switches."""

    fault: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""


class _Handler(JSONHandler):
    def do_POST(self) -> None:
        fake: FakeMyModels = self.server.fake
        raw = self.read_body()
        with fake.lock:
            fake.counts["total"] += 1
            fake.attempts[raw.decode()] += 1
            first_attempt = fake.attempts[raw.decode()] % 2 == 1
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if fake.fault == "badkey":
            self.send_json(401, {"error": f"invalid key {key}"})
        elif fake.fault == "hang":
            fake.release.wait(10)
        elif fake.fault == "flaky" and first_attempt:
            self.send_json(503, {"error": "overloaded"})
        elif fake.fault == "ratelimit" and first_attempt:
            self.send_json(429, {"error": "slow down"}, headers={"Retry-After": "0.01"})
        elif fake.fault == "garbage":
            self.send_json(200, None, raw=b"<html>oops")
        else:
            body = json.loads(raw)
            with fake.lock:
                fake.counts["paid"] += 1
                fake.bodies.append(body)
                start = len(fake.bodies)
            replies = [REPLIES[(start + i) % len(REPLIES)] for i in range(body["n"])]
            self.send_json(200, {"replies": replies, "usage": {"input_tokens": 30, "output_tokens": body["n"]}})


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MYMODELS_API_KEY", FAKE_KEY)
    return FAKE_KEY


@pytest.fixture
def fake(key: str) -> Iterator[FakeMyModels]:
    fake = FakeMyModels()
    with local_http_server(_Handler, fake, on_close=fake.release.set) as url:
        fake.url = url + "/v1"
        yield fake


def _load_plugin() -> ModuleType:
    """The plugin module, as an installed distribution's entry point would load it."""
    spec = importlib.util.spec_from_file_location("valuesim_mymodels", PLUGIN_DIR / "valuesim_mymodels.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mymodels = _load_plugin()


def make_request(question: str) -> ScoreRequest:
    return ScoreRequest(
        (ChatMessage("system", "Your persona: P1"), ChatMessage("user", f"{question} Answer 1-4:")), ANSWERS
    )


def test_the_plugin_imports_from_valuesim_only() -> None:
    tree = ast.parse((PLUGIN_DIR / "valuesim_mymodels.py").read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    ours = {m for m in modules if m and m.split(".")[0] == "valuesim"}
    assert ours == {"valuesim"}


def test_registered_through_a_plugin_manager_its_transport_option_stays_out_of_the_key(
    fake: FakeMyModels, tmp_path: Path
) -> None:
    pm = plugins.make_plugin_manager()
    pm.register(mymodels, name="mymodels")
    factory = plugins.get_provider_factory("mymodels", pm)

    def run(**options: Any) -> list[Any]:
        spec = ModelSpec(provider="mymodels", model="mm-1", base_url=fake.url, samples=4, options=options)
        with Engine(factory, spec, tmp_path / "cache", progress=False, log=lambda _: None) as engine:
            reqs = [engine.request(make_request(f"Q{i}?").messages, ANSWERS) for i in range(3)]
            keys = [engine.key(r) for r in reqs]
            engine.run(reqs)
            return [keys, engine.summary.cache_hits]

    keys, hits = run(poll_interval_s=0.5)
    assert (hits, fake.counts["paid"]) == (0, 3)
    assert all(b["n"] == 4 and b["max_tokens"] == 8 for b in fake.bodies)
    # Only the transport option differs: same keys, answers come from the cache.
    same_keys, hits = run(poll_interval_s=2.0, timeout_s=30)
    assert same_keys == keys
    assert (hits, fake.counts["paid"]) == (3, 3)
    # The answer-changing option differs: new keys, paid for again.
    other_keys, hits = run(poll_interval_s=0.5, max_tokens=16)
    assert not set(other_keys) & set(keys)
    assert (hits, fake.counts["paid"]) == (0, 6)
    assert fake.bodies[-1]["max_tokens"] == 16


def test_an_unknown_option_is_a_one_line_error(fake: FakeMyModels, tmp_path: Path) -> None:
    spec = ModelSpec(provider="mymodels", model="mm-1", base_url=fake.url, options={"poll_intervall_s": 1})
    with pytest.raises(ProviderError) as info:
        mymodels.MyFactory().create(spec, state_dir=tmp_path)
    message = str(info.value)
    assert message.startswith("mymodels: unknown options ['poll_intervall_s']; known: ")
    assert "poll_interval_s" in message
    assert "\n" not in message
    assert fake.counts["total"] == 0


class TestMyModelsConformance(ProviderConformance):
    """The shared fault suite, run by the fourth provider in a few lines."""

    factory = mymodels.MyFactory
    model = "mm-1"
    key_env = "MYMODELS_API_KEY"
    default_estimator = "sampling"
    samples = 4
    badkey_message = "HTTP 401"

    @pytest.fixture
    def server(self, fake: FakeMyModels) -> FakeMyModels:
        return fake

    def make_request(self, question: str) -> ScoreRequest:
        return make_request(question)

    def spec(self, server: Any, **fields: Any) -> ModelSpec:
        return ModelSpec(provider="mymodels", model=self.model, base_url=server.url, **fields)
