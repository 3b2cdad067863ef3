"""The Anthropic provider driven through the real SDK against a local fake server."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fake_anthropic_server import ANSWERS, FAKE_KEY, FakeAnthropic, make_request
from valuesim_anthropic.provider import AnthropicProvider

from valuesim.config import ModelSpec
from valuesim.contracts import TransientProviderError
from valuesim.errors import ProviderError
from valuesim.llm.engine import Engine
from valuesim.llm.types import ChatMessage, Decoding
from valuesim.plugins import providers

SAMPLING = Decoding(estimator="sampling", samples=12, temperature=0.8)


def provider(fake: FakeAnthropic, tmp_path: Path, **kw: object) -> AnthropicProvider:
    fields: dict[str, object] = {"model": "claude-haiku-4-5", **kw}
    spec = ModelSpec(provider="anthropic", base_url=fake.url, **fields)  # type: ignore[arg-type]
    return AnthropicProvider(spec, state_dir=tmp_path)


def sampled(question: str = "How important is family?") -> object:
    return replace(make_request(question), decoding=SAMPLING)


def test_registered_without_logprobs() -> None:
    factory = providers()["anthropic"]
    assert factory.package == "valuesim-anthropic"
    assert factory.capabilities.top_logprobs == 0
    assert factory.capabilities.sampling


def test_sampling_draws_n_replies_with_cached_persona(fake: FakeAnthropic, tmp_path: Path) -> None:
    (dist,) = provider(fake, tmp_path).score([sampled()])
    assert fake.counts["paid"] == 12
    body = fake.bodies[0]
    assert body["system"] == [{"type": "text", "text": "You answer surveys. Your persona: P1",
                               "cache_control": {"type": "ephemeral"}}]
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["temperature"] == 0.8
    p = dict(zip(ANSWERS, dist.probs, strict=True))
    # 12 draws of the cycle 7, 8, 7, 10, 7, off-scale: 6x "7", 2x "8", 2x "10"
    assert dist.estimator == "sampling"
    assert dist.answer_rule == "answer_start"  # a reply counts when it starts with the answer
    assert dist.coverage == pytest.approx(10 / 12)
    assert (p["7"], p["8"], p["10"], p["1"]) == pytest.approx((0.6, 0.2, 0.2, 0.0))
    assert dist.usage.cached_tokens == 12 * 80
    assert dist.usage.prompt_tokens == 12 * 100


def test_verbalized_distribution(fake: FakeAnthropic, tmp_path: Path) -> None:
    req = replace(make_request(), decoding=Decoding(estimator="verbalized"))
    (dist,) = provider(fake, tmp_path).score([req])
    assert fake.counts["paid"] == 1
    assert "temperature" not in fake.bodies[0]
    assert dist.estimator == "verbalized"
    assert dist.answer_rule == "stated"
    assert dist.probs[6] == pytest.approx(0.5)
    assert dist.probs[9] == pytest.approx(0.25)


def test_answer_rules_other_than_the_estimators_own_are_refused(fake: FakeAnthropic, tmp_path: Path) -> None:
    spec = ModelSpec(provider="anthropic", model="claude-haiku-4-5", base_url=fake.url, answer_rule="answer_eot")
    with pytest.raises(ProviderError, match="answer_start"):
        Engine("anthropic", spec, progress=False)  # before any request
    for decoding in (replace(SAMPLING, answer_rule="first_token"),
                     Decoding(estimator="verbalized", answer_rule="answer_start")):
        with pytest.raises(ProviderError, match="answer_rule"):
            provider(fake, tmp_path).score([replace(make_request(), decoding=decoding)])
    assert fake.counts["paid"] == 0


def test_model_rejecting_temperature(fake: FakeAnthropic, tmp_path: Path) -> None:
    spec = {"model": "claude-notemp-5"}
    with pytest.raises(ProviderError, match=r"HTTP 400.*temperature"):
        provider(fake, tmp_path, **spec).score([sampled()])
    (dist,) = provider(fake, tmp_path, options={"omit_temperature": True}, **spec).score([sampled()])
    assert "temperature" not in fake.bodies[-1]
    assert dist.coverage > 0


def test_prompt_caching_can_be_switched_off(fake: FakeAnthropic, tmp_path: Path) -> None:
    provider(fake, tmp_path, options={"prompt_caching": False}).score([sampled()])
    assert "cache_control" not in fake.bodies[0]["system"][0]


def test_logprob_estimators_fail_at_creation(fake: FakeAnthropic, tmp_path: Path) -> None:
    for estimator in ("logprobs", "top_logprobs"):
        with pytest.raises(ProviderError, match="no log-probabilities"):
            provider(fake, tmp_path, estimator=estimator)
    assert fake.counts["total"] == 0


def test_generate(fake: FakeAnthropic, tmp_path: Path) -> None:
    text = provider(fake, tmp_path).generate(
        [ChatMessage("system", "Be brief."), ChatMessage("user", "Descriptors?")], max_tokens=99
    )
    assert text == "7"
    assert fake.bodies[0]["max_tokens"] == 99
    assert fake.bodies[0]["system"] == "Be brief."


def test_missing_key_fails_before_any_request(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ProviderError, match="set ANTHROPIC_API_KEY"):  # api.anthropic.com
        AnthropicProvider(ModelSpec(provider="anthropic", model="claude-haiku-4-5"), state_dir=tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "  ")  # blank counts as missing
    with pytest.raises(ProviderError, match="set ANTHROPIC_API_KEY"):  # named for another server
        provider(fake, tmp_path, options={"api_key_env": "ANTHROPIC_API_KEY"})
    assert fake.counts["total"] == 0


def test_inherited_key_stays_home_and_named_key_is_sent(
    fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    provider(fake, tmp_path).generate([ChatMessage("user", "Hi")], max_tokens=4)
    assert fake.keys == ["valuesim-no-key"]  # ANTHROPIC_API_KEY is for api.anthropic.com only
    monkeypatch.setenv("PROXY_KEY", "proxy-secret")
    provider(fake, tmp_path, options={"api_key_env": "PROXY_KEY"}).generate([ChatMessage("user", "Hi")])
    assert fake.keys[-1] == "proxy-secret"
    with pytest.raises(ProviderError, match="refusing to send an API key over plain http"):
        AnthropicProvider(ModelSpec(provider="anthropic", model="claude-haiku-4-5", base_url="http://192.0.2.1",
                                    options={"api_key_env": "PROXY_KEY"}), state_dir=tmp_path)


def test_errors_are_classified_and_key_free(fake: FakeAnthropic, tmp_path: Path) -> None:
    p = provider(fake, tmp_path, options={"timeout_s": 0.2, "api_key_env": "ANTHROPIC_API_KEY"})
    fake.fault = "badkey"
    with pytest.raises(ProviderError, match="HTTP 401") as info:
        p.score([sampled()])
    assert FAKE_KEY not in str(info.value)
    fake.fault = "ratelimit"
    with pytest.raises(TransientProviderError, match="429") as rate:
        p.score([sampled("rate?")])
    assert rate.value.retry_after == pytest.approx(0.01)
    fake.fault = "garbage"
    with pytest.raises(ProviderError, match="unreadable response"):
        p.score([sampled("garbage?")])
    fake.fault = "hang"
    with pytest.raises(TransientProviderError, match=r"within 0.2 s"):
        p.score([sampled("hang?")])
