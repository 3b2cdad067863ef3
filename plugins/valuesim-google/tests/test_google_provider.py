"""The Google GenAI provider driven through the real SDK against a local fake server."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from fake_google_server import ANSWERS, FAKE_KEY, FakeGemini, make_request, serve
from valuesim_google.provider import GoogleProvider

from valuesim.config import ModelSpec
from valuesim.contracts import TransientProviderError
from valuesim.errors import ProviderError
from valuesim.llm.types import ChatMessage, Decoding
from valuesim.plugins import providers


def provider(fake: FakeGemini, tmp_path: Path, model: str = "gemini-2.5-flash", **kw: object) -> GoogleProvider:
    spec = ModelSpec(provider="google", model=model, base_url=fake.url, **kw)  # type: ignore[arg-type]
    return GoogleProvider(spec, state_dir=tmp_path)


def test_registered() -> None:
    factory = providers()["google"]
    assert factory.package == "valuesim-google"
    assert factory.capabilities.top_logprobs == 20


def test_top_logprobs(fake: FakeGemini, tmp_path: Path) -> None:
    (dist,) = provider(fake, tmp_path).score([make_request()])
    config = fake.bodies[0]["generationConfig"]
    assert config["responseLogprobs"] is True
    assert config["logprobs"] == 20
    assert fake.bodies[0]["systemInstruction"]["parts"][0]["text"].endswith("Your persona: P1")
    assert fake.paths[0].endswith("/models/gemini-2.5-flash:generateContent")
    p = dict(zip(ANSWERS, dist.probs, strict=True))
    assert dist.estimator == "top_logprobs"
    assert dist.answer_rule == "answer_start"
    assert dist.coverage == pytest.approx(0.55 + 0.25 + 0.1 + 0.04)
    assert p["2"] / p["1"] == pytest.approx(0.65 / 0.25)
    assert dist.floored == ("4",)
    assert 0 < p["4"] < p["3"]
    assert dist.usage.prompt_tokens == 50
    assert dist.usage.cached_tokens == 30


def test_only_answer_start_is_offered(fake: FakeGemini, tmp_path: Path) -> None:
    assert providers()["google"].capabilities.answer_rules == ("answer_start",)
    req = replace(make_request(), decoding=Decoding(answer_rule="answer_eot"))
    with pytest.raises(ProviderError, match="set answer_rule to one of: answer_start"):
        provider(fake, tmp_path).score([req])
    assert not fake.bodies  # refused before sending


def test_multi_token_answer_split_by_second_position(fake: FakeGemini, tmp_path: Path) -> None:
    # "1" could start "10": the second position's top-k ("0" vs end of answer) splits it.
    fake.positions = [("1", {"1": math.log(0.6), "5": math.log(0.3), "Sure": math.log(0.05)}),
                      ("0", {"0": math.log(0.75), "\n": math.log(0.25)})]
    answers = tuple(str(i) for i in range(1, 11))
    (dist,) = provider(fake, tmp_path).score([replace(make_request(), answers=answers)])
    assert fake.bodies[0]["generationConfig"]["maxOutputTokens"] == 2
    p = dict(zip(answers, dist.probs, strict=True))
    assert p["10"] / p["1"] == pytest.approx(0.75 / 0.25)
    assert p["5"] / p["1"] == pytest.approx(0.3 / 0.15)
    assert dist.coverage == pytest.approx(0.9)
    assert set(dist.floored) == {"2", "3", "4", "6", "7", "8", "9"}
    assert all(0 < p[a] < p["1"] for a in dist.floored)


def test_key_from_google_api_key_and_thinking_budget(
    fake: FakeGemini, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-other-key")
    home = GoogleProvider(ModelSpec(provider="google", model="gemini-2.5-flash"), state_dir=tmp_path)
    assert home.endpoint.key == "AIza-other-key"  # the fallback variable, for Google's own host
    provider(fake, tmp_path, options={"thinking_budget": 0}).score([make_request()])
    assert fake.keys == ["valuesim-no-key"]  # neither variable reaches another server
    provider(fake, tmp_path, options={"api_key_env": "GOOGLE_API_KEY"}).score([make_request("named?")])
    assert fake.keys[-1] == "AIza-other-key"
    # The SDK sends this field in snake_case; the API's JSON parser accepts both spellings.
    assert fake.bodies[0]["generationConfig"]["thinkingConfig"] in ({"thinkingBudget": 0}, {"thinking_budget": 0})


def test_sampling_only_when_configured(fake: FakeGemini, tmp_path: Path) -> None:
    # No temperature configured: sampling draws at 1.0.
    req = replace(make_request(), decoding=Decoding(estimator="sampling", samples=5))
    (dist,) = provider(fake, tmp_path).score([req])
    assert fake.counts["paid"] == 5
    assert "responseLogprobs" not in fake.bodies[0]["generationConfig"]
    assert fake.bodies[0]["generationConfig"]["temperature"] == 1.0
    assert dist.estimator == "sampling"
    assert dist.coverage == pytest.approx(4 / 5)
    assert dist.probs == pytest.approx((0.25, 0.5, 0.25, 0.0))


def test_model_without_logprobs_needs_explicit_sampling(fake: FakeGemini, tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="set estimator: sampling"):
        provider(fake, tmp_path, options={"logprobs": False})
    with pytest.raises(ProviderError, match=r"HTTP 400.*Logprobs is not supported"):
        provider(fake, tmp_path, model="gemini-nologprobs").score([make_request()])
    p = provider(fake, tmp_path, model="gemini-nologprobs", estimator="sampling", options={"logprobs": False})
    (dist,) = p.score([replace(make_request(), decoding=Decoding(estimator="sampling", samples=2))])
    assert dist.estimator == "sampling"


def test_verbalized_and_generate(fake: FakeGemini, tmp_path: Path) -> None:
    p = provider(fake, tmp_path)
    (dist,) = p.score([replace(make_request(), decoding=Decoding(estimator="verbalized"))])
    assert dist.estimator == "verbalized"
    assert dist.probs == pytest.approx((0.1, 0.7, 0.2, 0.0))
    text = p.generate([ChatMessage("user", "Descriptors?")], max_tokens=64)
    assert text in {"2", "1", "3", "Two"}
    assert fake.bodies[-1]["generationConfig"]["maxOutputTokens"] == 64


def test_plain_http_key_is_refused_before_any_request(
    fake: FakeGemini, key: str, tmp_path: Path
) -> None:
    # 192.0.2.1 is a documentation address that is never contacted: the refusal comes first
    spec = ModelSpec(provider="google", model="gemini-2.5-flash", base_url="http://192.0.2.1/",
                     options={"api_key_env": "GEMINI_API_KEY"})
    with pytest.raises(ProviderError, match="refusing to send an API key over plain http"):
        GoogleProvider(spec, state_dir=tmp_path)
    GoogleProvider(spec.model_copy(update={"options": {}}), state_dir=tmp_path)  # no key: allowed


def test_missing_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        GoogleProvider(ModelSpec(provider="google", model="gemini-2.5-flash"), state_dir=tmp_path)


def test_errors_are_classified_and_key_free(fake: FakeGemini, tmp_path: Path) -> None:
    p = provider(fake, tmp_path, options={"timeout_s": 0.3, "api_key_env": "GEMINI_API_KEY"})
    fake.fault = "badkey"
    with pytest.raises(ProviderError, match="HTTP 400") as info:
        p.score([make_request()])
    assert FAKE_KEY not in str(info.value)
    assert info.value.__cause__ is None
    fake.fault = "ratelimit"
    with pytest.raises(TransientProviderError, match="429") as rate:
        p.score([make_request("rate?")])
    assert rate.value.retry_after == pytest.approx(0.01)
    fake.fault = "flaky"
    with pytest.raises(TransientProviderError, match="503"):
        p.score([make_request("flaky?")])
    fake.fault = "garbage"
    with pytest.raises(ProviderError, match="unreadable response"):
        p.score([make_request("garbage?")])
    fake.fault = "empty"
    with pytest.raises(ProviderError, match="malformed response"):
        p.score([make_request("empty?")])
    fake.fault = "hang"
    with pytest.raises(TransientProviderError, match=r"within 0.3 s"):
        p.score([make_request("hang?")])
    assert fake.counts["paid"] == 0


def test_unreachable_server_is_transient(key: str, tmp_path: Path) -> None:
    with serve() as gone:
        url = gone.url  # the port is closed once the server stops
    spec = ModelSpec(provider="google", model="gemini-2.5-flash", base_url=url)
    with pytest.raises(TransientProviderError, match="cannot reach"):
        GoogleProvider(spec, state_dir=tmp_path).score([make_request()])
