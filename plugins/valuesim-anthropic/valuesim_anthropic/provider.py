"""Anthropic Messages wire format: sampling or verbalized estimators, prompt caching.

The system message (guidance plus persona) is sent as a cached block
(``cache_control: ephemeral``): every question of one persona shares it, so repeated
calls read it from Anthropic's prompt cache (models cache prefixes above a minimum
length, about 1024 tokens; shorter prefixes are simply not cached). One request per
sampling draw. Keys, options, estimator checks and error mapping are
:class:`valuesim.APIProvider`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from valuesim import (
    AnswerDistribution,
    APIProvider,
    ChatMessage,
    ProviderError,
    ScoreRequest,
    Usage,
    from_samples,
    from_verbalized,
)
from valuesim_anthropic.batch import AnthropicBatch
from valuesim_anthropic.options import CAPABILITIES, AnthropicOptions

NO_LOGPROBS = (
    "the Messages API has no log-probabilities, so estimator {estimator!r} is impossible; "
    "set estimator: sampling or verbalized"
)


class AnthropicProvider(APIProvider):
    name = "anthropic"
    # ANTHROPIC_API_KEY is sent only to this host; other servers need options.api_key_env.
    default_url = "https://api.anthropic.com"
    key_env_vars = ("ANTHROPIC_API_KEY",)
    options_model = AnthropicOptions
    capabilities = CAPABILITIES
    estimators = ("sampling", "verbalized")
    refusals: ClassVar[Mapping[str, str]] = {"logprobs": NO_LOGPROBS, "top_logprobs": NO_LOGPROBS}
    sdk_module = "anthropic"
    batch_runner = AnthropicBatch
    options: AnthropicOptions

    def make_client(self) -> Any:
        import anthropic

        # An explicit api_key (the placeholder when none may be sent) also stops the
        # SDK from reading ANTHROPIC_API_KEY/ANTHROPIC_AUTH_TOKEN or a profile itself.
        mounts = self.endpoint.mounts  # a loopback server is reached directly, not by proxy
        return anthropic.Anthropic(
            api_key=self.endpoint.sdk_key, base_url=self.endpoint.url,
            timeout=self.timeout_s, max_retries=0,
            http_client=anthropic.DefaultHttpxClient(mounts=mounts) if mounts else None,
        )

    def request_body(self, request: ScoreRequest) -> dict[str, Any]:
        """``messages.create`` keyword arguments for one draw (also a batch entry's params)."""
        # sampled replies measure answer_start, verbalized ones are stated: no choice
        estimator = self.estimator_for(request)
        opts = self.options
        messages = [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"]
        if estimator == "verbalized":
            last = messages[-1]
            messages[-1] = {**last, "content": last["content"] + self.verbalized_suffix(request, estimator)}
        default_tokens = 8 if estimator == "sampling" else 300
        params: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": opts.max_tokens if opts.max_tokens is not None else default_tokens,
        }
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        if system:
            block: dict[str, Any] = {"type": "text", "text": system}
            if opts.prompt_caching:
                block["cache_control"] = {"type": "ephemeral"}
            params["system"] = [block]
        # Sent only when configured: newer models reject `temperature` (the SDK no
        # longer has the argument), and their default samples the model's own
        # distribution, which is what the sampling estimator wants.
        temperature = request.decoding.temperature
        if temperature is not None and not opts.omit_temperature:
            params["temperature"] = temperature
        return params

    def send(self, body: dict[str, Any]) -> dict[str, Any]:
        """messages.create for a request body; returns the message as a dict."""
        kwargs = dict(body)
        # anthropic>=2 dropped `temperature` from messages.create (newer models reject
        # it); older models still take it, so it travels as a raw body field.
        if "temperature" in kwargs:
            kwargs["extra_body"] = {"temperature": kwargs.pop("temperature")}
        return self.call(lambda: self.client.messages.create(**kwargs)).model_dump()

    def distribution(self, request: ScoreRequest, replies: Sequence[Any]) -> AnswerDistribution:
        """Combine the draws' message objects into one distribution; ProviderError if malformed."""
        try:
            texts = ["".join(b.get("text") or "" for b in m["content"] if b.get("type") == "text") for m in replies]
            usage = _usage([m.get("usage") or {} for m in replies])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProviderError(f"anthropic: malformed message from {self.where} ({exc!r})") from exc
        if self.estimator_for(request) == "sampling":
            return from_samples(texts, request.answers, usage=usage)
        return from_verbalized(texts[0], request.answers, usage=usage)

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
