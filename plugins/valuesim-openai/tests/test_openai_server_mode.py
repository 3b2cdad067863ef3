"""Server mode's configuration: estimator, cache key, refusals (no server, no model)."""

from __future__ import annotations

import pytest
from valuesim_openai import OpenAIOptions

from valuesim.config import ModelSpec
from valuesim.errors import ProviderError
from valuesim.llm.engine import Engine
from valuesim.llm.provider_options import answer_options


def spec(**kw: object) -> ModelSpec:
    return ModelSpec(provider="openai", model="org/model", base_url="http://127.0.0.1:9/v1", **kw)


@pytest.mark.parametrize("server", ["vllm", "sglang", "auto"])
def test_server_mode_defaults_to_exact_logprobs(server: str) -> None:
    engine = Engine("openai", spec(options={"server": server}), progress=False)
    assert engine.estimator == "logprobs"
    assert engine.answer_rule == "answer_start"


@pytest.mark.parametrize("options", [{}, {"server": "openai"}])
def test_plain_mode_keeps_the_top_k_estimate(options: dict[str, object]) -> None:
    assert Engine("openai", spec(options=options), progress=False).estimator == "top_logprobs"
    # exact logprobs need server mode: refused before any provider or request
    with pytest.raises(ProviderError, match="cannot give the 'logprobs' estimator"):
        Engine("openai", spec(options=options, estimator="logprobs"), progress=False)


def test_server_and_fallback_change_answers_so_they_are_in_the_cache_key() -> None:
    raw = {"server": "vllm", "fallback_top_logprobs": True, "logprob_token_ids": False, "timeout_s": 5}
    assert answer_options(OpenAIOptions, raw) == {
        "server": "vllm", "fallback_top_logprobs": True, "logprob_token_ids": False,
    }
    a = Engine("openai", spec(options={"server": "vllm"}), progress=False)
    b = Engine("openai", spec(options={"server": "vllm", "fallback_top_logprobs": True}), progress=False)
    c = Engine("openai", spec(options={"server": "sglang"}), progress=False)
    keys = {e.key(e.request((), ("1", "2"))) for e in (a, b, c)}
    assert len(keys) == 3


def test_server_mode_has_no_batch_api_and_unknown_servers_are_refused() -> None:
    with pytest.raises(ProviderError, match="no batch API; set batch_api: false"):
        Engine("openai", spec(options={"server": "vllm"}, batch_api=True), progress=False)
    with Engine("openai", spec(options={"server": "tgi"}), progress=False) as engine, \
            pytest.raises(ProviderError) as err:
        engine.provider  # noqa: B018
    assert "\n" not in str(err.value)
    assert "options.server" in str(err.value)
