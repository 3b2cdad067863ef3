"""Anthropic Messages provider: sampling or verbalized estimators, prompt caching, batches.

The system message (guidance plus persona) is sent as a cached block
(``cache_control: ephemeral``): every question of one persona shares it, so repeated
calls read it from Anthropic's prompt cache (models cache prefixes above a minimum
length, about 1024 tokens; shorter prefixes are simply not cached).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valuesim.errors import ProviderError
from valuesim.llm import answer_estimates as est
from valuesim.llm.api_support import RetryMemo, call_sdk, resolve_endpoint, timeout_s
from valuesim.llm.types import (
    AnswerDistribution,
    Capabilities,
    ChatMessage,
    Estimator,
    ScoreRequest,
    Usage,
)

if TYPE_CHECKING:
    from valuesim.config import ModelSpec

KNOWN_OPTIONS = frozenset({
    "timeout_s", "api_key_env", "max_tokens", "omit_temperature", "prompt_caching",
    "batch_poll_s", "batch_wait_s",
})
ESTIMATORS = ("sampling", "verbalized")
# ANTHROPIC_API_KEY is sent only to this host; other servers need options.api_key_env.
DEFAULT_URL = "https://api.anthropic.com"


class AnthropicProvider:
    name = "anthropic"
    capabilities = Capabilities(sampling=True, text_generation=True, batch_api=True)

    def __init__(self, spec: ModelSpec, *, state_dir: Path) -> None:
        import anthropic

        unknown = set(spec.options) - KNOWN_OPTIONS
        if unknown:
            raise ProviderError(
                f"anthropic: unknown options {sorted(unknown)}; known: {', '.join(sorted(KNOWN_OPTIONS))}"
            )
        self.spec = spec
        self.model = spec.model
        self.revision = spec.revision
        self.state_dir = state_dir
        self.estimator: Estimator = spec.estimator or "sampling"
        self._check_estimator(self.estimator)
        self.endpoint = resolve_endpoint(
            "anthropic", base_url=spec.base_url, default_url=DEFAULT_URL,
            env_vars=["ANTHROPIC_API_KEY"], api_key_env=spec.options.get("api_key_env"),
        )
        self._key = self.endpoint.key
        self.timeout_s = timeout_s(spec.options)
        # An explicit api_key (the placeholder when none may be sent) also stops the
        # SDK from reading ANTHROPIC_API_KEY/ANTHROPIC_AUTH_TOKEN or a profile itself.
        self.client = anthropic.Anthropic(
            api_key=self.endpoint.sdk_key, base_url=self.endpoint.url,
            timeout=self.timeout_s, max_retries=0,
        )
        self._requests = RetryMemo()
        self._samples = RetryMemo()

    def _check_estimator(self, estimator: str) -> None:
        if estimator not in ESTIMATORS:
            raise ProviderError(
                f"anthropic: the Messages API has no log-probabilities, so estimator {estimator!r} "
                "is impossible; set estimator: sampling or verbalized"
            )

    def _where(self) -> str:
        return self.endpoint.where

    def call(self, fn: Callable[[], Any]) -> Any:
        import anthropic

        return call_sdk(
            anthropic, fn, provider="anthropic", where=self._where(), key=self._key,
            timeout=self.timeout_s,
        )

    # ----- request parameters -----------------------------------------------------------

    def estimator_for(self, request: ScoreRequest) -> Estimator:
        estimator = request.decoding.estimator or self.estimator
        self._check_estimator(estimator)
        # sampled replies measure answer_start, verbalized ones are stated: no choice
        est.check_answer_rule("anthropic", request, estimator)
        return estimator

    def params(self, request: ScoreRequest) -> dict[str, Any]:
        """``messages.create`` keyword arguments for one draw (also a batch entry's params)."""
        estimator = self.estimator_for(request)
        opts = self.spec.options
        messages = [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"]
        if estimator == "verbalized":
            last = messages[-1]
            messages[-1] = {**last, "content": f"{last['content']}\n\n{est.verbalized_instruction(request.answers)}"}
        params: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": int(opts.get("max_tokens", 8 if estimator == "sampling" else 300)),
        }
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        if system:
            block: dict[str, Any] = {"type": "text", "text": system}
            if opts.get("prompt_caching", True):
                block["cache_control"] = {"type": "ephemeral"}
            params["system"] = [block]
        # Sent only when configured: newer models reject `temperature` (the SDK no
        # longer has the argument), and their default samples the model's own
        # distribution, which is what the sampling estimator wants.
        temperature = request.decoding.temperature
        if temperature is not None and not opts.get("omit_temperature", False):
            params["temperature"] = temperature
        return params

    def draws(self, request: ScoreRequest) -> int:
        return request.decoding.samples if self.estimator_for(request) == "sampling" else 1

    # ----- scoring ----------------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        if self.spec.batch_api:
            from valuesim_anthropic.batch import score_in_batch

            return score_in_batch(self, requests)
        return self._requests.each(requests, self.score_one)

    def score_one(self, request: ScoreRequest) -> AnswerDistribution:
        draws = [(request, s) for s in range(self.draws(request))]
        messages = self._samples.each(draws, lambda d: self.create(d[0]))
        return self.distribution(request, messages)

    def create(self, request: ScoreRequest) -> dict[str, Any]:
        return self.send(self.params(request))

    def send(self, params: dict[str, Any]) -> dict[str, Any]:
        """messages.create for a request body; returns the message as a dict."""
        kwargs = dict(params)
        # anthropic>=2 dropped `temperature` from messages.create (newer models reject
        # it); older models still take it, so it travels as a raw body field.
        if "temperature" in kwargs:
            kwargs["extra_body"] = {"temperature": kwargs.pop("temperature")}
        return self.call(lambda: self.client.messages.create(**kwargs)).model_dump()

    def distribution(self, request: ScoreRequest, messages: Sequence[dict[str, Any]]) -> AnswerDistribution:
        """Combine the draws' message objects into one distribution; ProviderError if malformed."""
        try:
            texts = ["".join(b.get("text") or "" for b in m["content"] if b.get("type") == "text") for m in messages]
            usage = _usage([m.get("usage") or {} for m in messages])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProviderError(f"anthropic: malformed message from {self._where()} ({exc!r})") from exc
        if self.estimator_for(request) == "sampling":
            return est.from_samples(texts, request.answers, usage=usage)
        return est.from_verbalized(texts[0], request.answers, usage=usage)

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str:
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in messages if m.role != "system"],
        }
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        if system:
            params["system"] = system
        message = self.call(lambda: self.client.messages.create(**params))
        return "".join(getattr(b, "text", "") for b in message.content)


def _usage(usages: Sequence[dict[str, Any]]) -> Usage:
    read = sum(int(u.get("cache_read_input_tokens") or 0) for u in usages)
    written = sum(int(u.get("cache_creation_input_tokens") or 0) for u in usages)
    fresh = sum(int(u.get("input_tokens") or 0) for u in usages)
    return Usage(
        prompt_tokens=fresh + read + written,
        completion_tokens=sum(int(u.get("output_tokens") or 0) for u in usages),
        cached_tokens=read,
    )
