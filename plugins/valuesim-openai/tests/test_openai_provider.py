"""The OpenAI provider driven through the real SDK against a local fake server."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from fake_openai_server import ANSWERS, FAKE_KEY, FakeOpenAI, make_request
from valuesim_openai.provider import OpenAIProvider

from valuesim.config import ModelSpec
from valuesim.contracts import TransientProviderError
from valuesim.errors import ProviderError
from valuesim.llm.types import ChatMessage, Decoding
from valuesim.plugins import providers


def provider(fake: FakeOpenAI, tmp_path: Path, model: str = "gpt-4o-mini", **kw: object) -> OpenAIProvider:
    spec = ModelSpec(provider="openai", model=model, base_url=fake.url, **kw)  # type: ignore[arg-type]
    return OpenAIProvider(spec, state_dir=tmp_path)


def test_registered_through_entry_point() -> None:
    factory = providers()["openai"]
    assert factory.package == "valuesim-openai"
    assert factory.capabilities.top_logprobs == 20


def test_top_logprobs_maps_first_token_onto_answers(fake: FakeOpenAI, tmp_path: Path) -> None:
    (dist,) = provider(fake, tmp_path).score([make_request()])
    body = fake.bodies[0]
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 20
    assert body["temperature"] == 0.0
    # "7" and " 7" merge; "Sure" is off-scale; 2, 4, 6, 9, 10 never appear.
    assert dist.estimator == "top_logprobs"
    assert dist.coverage == pytest.approx(0.5 + 0.1 + 0.2 + 0.1 + 0.03 + 0.01)
    assert set(dist.floored) == {"2", "4", "6", "9", "10"}
    p = dict(zip(ANSWERS, dist.probs, strict=True))
    assert math.fsum(dist.probs) == pytest.approx(1.0)
    assert p["7"] / p["8"] == pytest.approx(0.6 / 0.2)
    smallest_observed = 0.01 / math.fsum([0.94, *[p[a] for a in dist.floored]])
    assert all(0 < p[a] < smallest_observed for a in dist.floored)
    assert dist.usage.prompt_tokens == 100
    assert dist.usage.cached_tokens == 40


def test_narrower_top_k_floors_more(fake: FakeOpenAI, tmp_path: Path) -> None:
    req = replace(make_request(), decoding=Decoding(top_k=2))
    (dist,) = provider(fake, tmp_path).score([req])
    assert fake.bodies[0]["top_logprobs"] == 2
    assert dist.coverage == pytest.approx(0.7)  # "7" and "8" only
    assert "1" in dist.floored
    assert "7" not in dist.floored


def test_prefix_answer_split_by_next_token(fake: FakeOpenAI, tmp_path: Path) -> None:
    # The model starts with "1" (0.1): the next position says "0" (0.6), end (0.3), "5"
    # (0.1). answer_start: "10" gets 0.1 x 0.6, and "1" everything that does not go on
    # into a longer answer, "15" included: 0.1 x (1 - 0.6).
    fake.first_token = "1"
    (dist,) = provider(fake, tmp_path).score([make_request()])
    p = dict(zip(ANSWERS, dist.probs, strict=True))
    assert "10" not in dist.floored
    assert dist.answer_rule == "answer_start"
    assert p["10"] / p["1"] == pytest.approx(0.06 / 0.04)
    assert p["1"] / p["7"] == pytest.approx(0.04 / 0.6)
    assert dist.coverage == pytest.approx(0.94)  # all of "1"'s mass is admissible now


def test_other_answer_rules_are_refused(fake: FakeOpenAI, tmp_path: Path) -> None:
    from valuesim.llm.engine import Engine

    # The engine refuses the config before any request ...
    spec = ModelSpec(provider="openai", model="gpt-4o-mini", base_url=fake.url, answer_rule="answer_eot")
    with pytest.raises(ProviderError, match="set answer_rule to one of: answer_start") as info:
        Engine("openai", spec, progress=False)
    assert "\n" not in str(info.value)
    # ... and the provider a request that asks anyway, without sending it.
    for rule, estimator in [("answer_eot", None), ("first_token", "sampling"), ("answer_start", "verbalized")]:
        req = replace(make_request(), decoding=Decoding(estimator=estimator, answer_rule=rule))  # type: ignore[arg-type]
        with pytest.raises(ProviderError, match="answer_rule") as info:
            provider(fake, tmp_path).score([req])
        assert "\n" not in str(info.value)
    assert fake.counts["paid"] == 0
    sampled = replace(make_request(), decoding=Decoding(estimator="sampling", samples=4))
    verbalized = replace(make_request(), decoding=Decoding(estimator="verbalized"))
    got = provider(fake, tmp_path).score([sampled, verbalized])
    assert [d.answer_rule for d in got] == ["answer_start", "stated"]


def test_sampling_uses_n_and_parses_replies(fake: FakeOpenAI, tmp_path: Path) -> None:
    req = replace(make_request(), decoding=Decoding(estimator="sampling", samples=40, temperature=0.7))
    (dist,) = provider(fake, tmp_path).score([req])
    assert fake.bodies[0]["n"] == 40
    assert fake.bodies[0]["temperature"] == 0.7
    assert "logprobs" not in fake.bodies[0]
    assert dist.estimator == "sampling"
    p = dict(zip(ANSWERS, dist.probs, strict=True))
    assert p["7"] > p["8"] > 0
    assert p["10"] > 0
    assert p["1"] == 0
    assert 0.5 < dist.coverage < 1.0  # "I think 7" does not parse


def test_verbalized_reads_a_json_distribution(fake: FakeOpenAI, tmp_path: Path) -> None:
    req = replace(make_request(), decoding=Decoding(estimator="verbalized"))
    (dist,) = provider(fake, tmp_path).score([req])
    assert "JSON object" in fake.bodies[0]["messages"][-1]["content"]
    assert dist.estimator == "verbalized"
    assert dist.probs[6] == pytest.approx(0.6)
    assert dist.coverage == pytest.approx(1.0)


def test_generate_returns_text(fake: FakeOpenAI, tmp_path: Path) -> None:
    text = provider(fake, tmp_path).generate([ChatMessage("user", "Write descriptors")], max_tokens=50)
    assert text in {"7", "8.", "I think 7", "10"}
    assert fake.bodies[0]["max_tokens"] == 50


def test_reasoning_model_without_logprobs_fails_before_any_request(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    with pytest.raises(ProviderError, match="no log-probabilities"):
        provider(fake, tmp_path, model="o3-mini", estimator="top_logprobs")
    with pytest.raises(ProviderError, match="top_logprobs"):
        provider(fake, tmp_path, estimator="logprobs")
    assert fake.counts["total"] == 0
    p = provider(fake, tmp_path, model="o3-mini")
    assert p.capabilities.top_logprobs == 0
    assert p.estimator == "sampling"
    p.score([make_request()])
    body = fake.bodies[0]
    assert "temperature" not in body
    assert "max_completion_tokens" in body


def test_model_specific_top_k_cap(fake: FakeOpenAI, tmp_path: Path) -> None:
    p = provider(fake, tmp_path, options={"max_top_logprobs": 5})
    p.score([make_request()])
    assert p.capabilities.top_logprobs == 5
    assert fake.bodies[0]["top_logprobs"] == 5


def test_unknown_option_is_rejected(fake: FakeOpenAI, tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="unknown options"):
        provider(fake, tmp_path, options={"timout_s": 3})


def test_missing_key_fails_before_first_request(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        OpenAIProvider(ModelSpec(provider="openai", model="gpt-4o-mini"), state_dir=tmp_path)


def test_local_server_needs_no_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fake_openai_server import serve

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with serve() as fake:
        (dist,) = provider(fake, tmp_path, model="Qwen/Qwen2.5-7B-Instruct").score([make_request()])
    assert dist.coverage > 0.9


def test_inherited_key_is_not_sent_to_another_host(fake: FakeOpenAI, tmp_path: Path) -> None:
    provider(fake, tmp_path).score([make_request()])  # OPENAI_API_KEY is set (the key fixture)
    assert fake.auth_headers == ["Bearer valuesim-no-key"]


def test_key_over_plain_http_to_remote_host_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VLLM_KEY", "vllm-secret")
    # a documentation address, never contacted: the refusal comes before any request
    spec = ModelSpec(provider="openai", model="m", base_url="http://192.0.2.1/v1",
                     options={"api_key_env": "VLLM_KEY"})
    with pytest.raises(ProviderError, match=r"refusing to send an API key over plain http to http://192\.0\.2\.1/v1"):
        OpenAIProvider(spec, state_dir=tmp_path)
    assert OpenAIProvider(spec.model_copy(update={"options": {}}), state_dir=tmp_path).endpoint.key is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-home")
    home = ModelSpec(provider="openai", model="m", base_url="http://api.openai.com/v1")
    with pytest.raises(ProviderError, match="plain http"):
        OpenAIProvider(home, state_dir=tmp_path)


def test_ambient_base_url_variable_cannot_redirect_the_key(
    key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # the SDK would follow it
    p = OpenAIProvider(ModelSpec(provider="openai", model="gpt-4o-mini"), state_dir=tmp_path)
    assert str(p.client.base_url).startswith("https://api.openai.com/v1")
    assert p.endpoint.key == key


def test_base_url_must_be_http(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = ModelSpec(provider="openai", model="m", base_url="localhost:8000/v1")
    with pytest.raises(ProviderError, match="not an http\\(s\\) URL"):
        OpenAIProvider(spec, state_dir=tmp_path)


def test_key_from_custom_env_var(monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI, tmp_path: Path) -> None:
    monkeypatch.setenv("VLLM_KEY", "vllm-secret")
    provider(fake, tmp_path, options={"api_key_env": "VLLM_KEY"}).score([make_request()])
    assert fake.auth_headers[-1] == "Bearer vllm-secret"


def test_rejected_key_is_not_echoed(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.fault = "badkey"
    # the fake is not api.openai.com: OPENAI_API_KEY goes there only when named explicitly
    p = provider(fake, tmp_path, options={"api_key_env": "OPENAI_API_KEY"})
    with pytest.raises(ProviderError, match="HTTP 401") as info:
        p.score([make_request()])
    assert FAKE_KEY not in str(info.value)
    assert FAKE_KEY[:16] not in str(info.value)
    assert info.value.__cause__ is None  # the SDK's message (with the key) is not chained
    assert fake.auth_headers[-1] == f"Bearer {FAKE_KEY}"  # the key was really sent


def test_rate_limit_carries_retry_after(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.fault = "ratelimit"
    with pytest.raises(TransientProviderError, match="429") as info:
        provider(fake, tmp_path).score([make_request()])
    assert info.value.retry_after == pytest.approx(0.01)


def test_server_error_is_transient(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.fault = "flaky"
    with pytest.raises(TransientProviderError, match="500"):
        provider(fake, tmp_path).score([make_request()])


def test_garbage_body_is_a_clear_permanent_error(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.fault = "garbage"
    with pytest.raises(ProviderError, match="unreadable response"):
        provider(fake, tmp_path).score([make_request()])


def test_json_that_is_not_an_object_is_a_clear_permanent_error(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.fault = "notobject"
    with pytest.raises(ProviderError, match="malformed chat completion") as err:
        provider(fake, tmp_path).score([make_request()])
    assert "\n" not in str(err.value)
    assert "not a JSON object" in str(err.value)


def test_send_puts_on_the_wire_what_the_sdk_method_would_and_returns_the_reply_as_sent(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    # send posts the JSON body itself (no typed transform, no pydantic reply): the
    # server must see the same body as through chat.completions.create, extra_body
    # merged at the top level, and the plugin must get the reply's JSON unchanged.
    p = provider(fake, tmp_path)
    body = p.request_body(make_request())
    extra = {"continue_final_message": True, "add_generation_prompt": False}
    for sent in (body, {**body, "extra_body": extra}):
        reply = p.send(sent)
        p.client.chat.completions.create(**sent)
        assert fake.bodies[-2] == fake.bodies[-1]
        assert type(reply) is dict
        assert reply == {**fake.completion(fake.bodies[-1]), "id": reply["id"], "created": reply["created"]}
    assert fake.bodies[-1]["continue_final_message"] is True
    assert "extra_body" not in fake.bodies[-1]


def test_wrong_shape_is_a_clear_permanent_error(fake: FakeOpenAI, tmp_path: Path) -> None:
    p = provider(fake, tmp_path)
    with pytest.raises(ProviderError, match="malformed chat completion"):
        p.parse({"choices": [{"message": {"content": "7"}}]}, make_request())


def test_hung_server_times_out(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.fault = "hang"
    with pytest.raises(TransientProviderError, match=r"within 0.2 s"):
        provider(fake, tmp_path, options={"timeout_s": 0.2}).score([make_request()])


def test_bad_request_is_permanent(fake: FakeOpenAI, tmp_path: Path) -> None:
    # The fake refuses logprobs for o3 models, as the real API does.
    p = provider(fake, tmp_path, model="o3", options={"logprobs": True})
    with pytest.raises(ProviderError, match=r"HTTP 400.*logprobs is not supported"):
        p.score([make_request()])
