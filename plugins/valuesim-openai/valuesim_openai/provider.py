"""OpenAI chat-completions wire format (also vLLM, SGLang, Ollama, llama.cpp via base_url).

Estimators: ``top_logprobs`` (default where the model gives log-probabilities: the
first generated token's top-k mapped onto the answers, see
``valuesim.llm.answer_estimates``), ``sampling`` (``n`` replies in one request) and
``verbalized`` (a JSON distribution written by the model). Both log-probability and
sampled answers measure answer rule ``answer_start``, the only one two positions of
top-k can estimate; a request for another rule is refused. The SDK never retries
(``max_retries=0``): the engine does, honouring ``TransientProviderError.retry_after``.
Keys, options, estimator checks and error mapping are :class:`valuesim.APIProvider`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from valuesim import (
    AnswerDistribution,
    APIProvider,
    Capabilities,
    ChatMessage,
    ProviderError,
    ScoreRequest,
    Usage,
    from_samples,
    from_top_logprobs,
    from_verbalized,
    merge_logprobs,
)
from valuesim_openai import OpenAIOptions
from valuesim_openai.batch import OpenAIBatch

# Reasoning models refuse logprobs and temperature and want max_completion_tokens.
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
API_MAX_TOP_LOGPROBS = 20


class OpenAIProvider(APIProvider):
    name = "openai"
    # OPENAI_API_KEY is sent only to this host; other servers need options.api_key_env.
    default_url = "https://api.openai.com/v1"
    key_env_vars = ("OPENAI_API_KEY",)
    options_model = OpenAIOptions
    sdk_module = "openai"
    batch_runner = OpenAIBatch
    samples_in_one_request = True  # `n` replies per request
    refusals: ClassVar[Mapping[str, str]] = {
        "logprobs": "the API gives top-k first-token log-probabilities, not exact ones; "
        "set estimator: top_logprobs",
        "top_logprobs": "model {model!r} returns no log-probabilities (reasoning models "
        "refuse them); set estimator: sampling or verbalized, or options.logprobs: true",
    }
    options: OpenAIOptions

    @property
    def _reasoning(self) -> bool:
        return bool(REASONING_MODEL.match(self.model))

    def model_capabilities(self) -> Capabilities:
        """Flags for this model; ``options.logprobs`` overrides the name-based guess."""
        opts = self.options
        logprobs = opts.logprobs if opts.logprobs is not None else not self._reasoning
        cap = opts.max_top_logprobs if opts.max_top_logprobs is not None else API_MAX_TOP_LOGPROBS
        width = min(cap, API_MAX_TOP_LOGPROBS)
        return Capabilities(
            top_logprobs=width if logprobs else 0, sampling=True, text_generation=True,
            batch_api=True, answer_rules=("answer_start",),
        )

    def make_client(self) -> Any:
        import openai

        return openai.OpenAI(
            api_key=self.endpoint.sdk_key, base_url=self.endpoint.url,
            timeout=self.timeout_s, max_retries=0,
        )

    def request_body(self, request: ScoreRequest) -> dict[str, Any]:
        """The chat-completions JSON body for one request (also a batch file's line body)."""
        estimator = self.estimator_for(request)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        opts = self.options
        temperature = request.decoding.temperature
        if estimator == "top_logprobs":
            # Two tokens: the second position's top-k splits "1" from "10".
            max_tokens = opts.max_tokens if opts.max_tokens is not None else 2
            body["logprobs"] = True
            body["top_logprobs"] = min(request.decoding.top_k, self.capabilities.top_logprobs)
            temperature = 0.0 if temperature is None else temperature
        elif estimator == "sampling":
            default = 8 if not self._reasoning else 2048
            max_tokens = opts.max_tokens if opts.max_tokens is not None else default
            body["n"] = request.decoding.samples
            temperature = 1.0 if temperature is None else temperature
        else:  # verbalized
            default = 300 if not self._reasoning else 4096
            max_tokens = opts.max_tokens if opts.max_tokens is not None else default
            last = messages[-1]
            messages[-1] = {**last, "content": last["content"] + self.verbalized_suffix(request, estimator)}
        default_param = "max_completion_tokens" if self._reasoning else "max_tokens"
        body[opts.max_tokens_param or default_param] = max_tokens
        omit = opts.omit_temperature if opts.omit_temperature is not None else self._reasoning
        if temperature is not None and not omit:
            body["temperature"] = temperature
        if opts.seed is not None:
            body["seed"] = opts.seed
        return body

    def send(self, body: Mapping[str, Any]) -> dict[str, Any]:
        completion = self.call(lambda: self.client.chat.completions.create(**body))
        return completion.model_dump()

    def distribution(self, request: ScoreRequest, replies: Sequence[Any]) -> AnswerDistribution:
        return self.parse(replies[0], request)

    def parse(self, completion: Mapping[str, Any], request: ScoreRequest) -> AnswerDistribution:
        """Distribution from a chat-completion JSON object; ProviderError when malformed."""
        estimator = self.estimator_for(request)
        try:
            usage = _usage(completion.get("usage") or {})
            choices = completion["choices"]
            if estimator == "top_logprobs":
                content = choices[0]["logprobs"]["content"]
                return from_top_logprobs(
                    _merge(content[0]["top_logprobs"]),
                    request.answers,
                    generated_first=content[0]["token"],
                    following=_merge(content[1]["top_logprobs"]) if len(content) > 1 else None,
                    usage=usage,
                )
            texts = [str(c["message"]["content"] or "") for c in choices]
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderError(
                f"openai: malformed chat completion from {self.where} ({type(exc).__name__}: "
                f"{exc}); the server does not speak the chat-completions format with logprobs"
            ) from exc
        if estimator == "sampling":
            return from_samples(texts, request.answers, usage=usage)
        return from_verbalized(texts[0], request.answers, usage=usage)

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            ("max_completion_tokens" if self._reasoning else "max_tokens"): max_tokens,
        }
        completion = self.call(lambda: self.client.chat.completions.create(**body))
        try:
            return str(completion.choices[0].message.content or "")
        except (AttributeError, IndexError, TypeError) as exc:
            raise ProviderError(f"openai: malformed chat completion from {self.where}") from exc


def _merge(top: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    return merge_logprobs((str(c["token"]), float(c["logprob"])) for c in top)


def _usage(u: Mapping[str, Any]) -> Usage:
    cached = int((u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return Usage(
        prompt_tokens=int(u.get("prompt_tokens") or 0),
        completion_tokens=int(u.get("completion_tokens") or 0),
        cached_tokens=cached,
    )
