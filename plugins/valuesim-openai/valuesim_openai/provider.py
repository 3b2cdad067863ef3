"""OpenAI chat-completions provider (also vLLM, SGLang, Ollama, llama.cpp via base_url).

Estimators: ``top_logprobs`` (default where the model gives log-probabilities: the
first generated token's top-k mapped onto the answers, see
``valuesim.llm.answer_estimates``), ``sampling`` (``n`` replies in one request) and
``verbalized`` (a JSON distribution written by the model). Both log-probability and
sampled answers measure answer rule ``answer_start``, the only one two positions of
top-k can estimate; a request for another rule is refused. The SDK never retries
(``max_retries=0``): the engine does, honouring ``TransientProviderError.retry_after``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valuesim.errors import ProviderError
from valuesim.llm import answer_estimates as est
from valuesim.llm.api_support import (
    RetryMemo,
    call_sdk,
    resolve_endpoint,
    timeout_s,
)
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

# Costs come from simulate.prices (the engine); providers report tokens only.
KNOWN_OPTIONS = frozenset({
    "timeout_s", "api_key_env", "logprobs", "max_top_logprobs", "max_tokens",
    "max_tokens_param", "omit_temperature", "seed", "batch_poll_s", "batch_wait_s",
})
# Reasoning models refuse logprobs and temperature and want max_completion_tokens.
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
# OPENAI_API_KEY is sent only to this host; other servers need options.api_key_env.
DEFAULT_URL = "https://api.openai.com/v1"
API_MAX_TOP_LOGPROBS = 20


def model_capabilities(spec: ModelSpec) -> Capabilities:
    """Flags for this model; ``options.logprobs`` overrides the name-based guess."""
    reasoning = bool(REASONING_MODEL.match(spec.model))
    logprobs = bool(spec.options.get("logprobs", not reasoning))
    width = min(int(spec.options.get("max_top_logprobs", API_MAX_TOP_LOGPROBS)), API_MAX_TOP_LOGPROBS)
    return Capabilities(
        top_logprobs=width if logprobs else 0,
        sampling=True,
        text_generation=True,
        batch_api=True,
        answer_rules=("answer_start",),
    )


class OpenAIProvider:
    name = "openai"

    def __init__(self, spec: ModelSpec, *, state_dir: Path) -> None:
        import openai

        unknown = set(spec.options) - KNOWN_OPTIONS
        if unknown:
            raise ProviderError(
                f"openai: unknown options {sorted(unknown)}; known: {', '.join(sorted(KNOWN_OPTIONS))}"
            )
        self.spec = spec
        self.model = spec.model
        self.revision = spec.revision
        self.state_dir = state_dir
        self.capabilities = model_capabilities(spec)
        self.estimator: Estimator = spec.estimator or (
            "top_logprobs" if self.capabilities.top_logprobs else "sampling"
        )
        self._check_estimator(self.estimator)
        # Local OpenAI-compatible servers usually need no key, and must not get the
        # user's OpenAI key just because it is in the environment.
        self.endpoint = resolve_endpoint(
            "openai", base_url=spec.base_url, default_url=DEFAULT_URL,
            env_vars=["OPENAI_API_KEY"], api_key_env=spec.options.get("api_key_env"),
        )
        self._key = self.endpoint.key
        self.timeout_s = timeout_s(spec.options)
        self._reasoning = bool(REASONING_MODEL.match(spec.model))
        self._memo = RetryMemo()
        self.client = openai.OpenAI(
            api_key=self.endpoint.sdk_key,
            base_url=self.endpoint.url,
            timeout=self.timeout_s,
            max_retries=0,
        )

    def _check_estimator(self, estimator: str) -> None:
        if estimator == "logprobs":
            raise ProviderError(
                "openai: the API gives top-k first-token log-probabilities, not exact ones; "
                "set estimator: top_logprobs"
            )
        if estimator == "top_logprobs" and not self.capabilities.top_logprobs:
            raise ProviderError(
                f"openai: model {self.model!r} returns no log-probabilities (reasoning models "
                "refuse them); set estimator: sampling or verbalized, or options.logprobs: true"
            )

    # ----- request bodies -------------------------------------------------------------

    def _estimator_for(self, request: ScoreRequest) -> Estimator:
        estimator = request.decoding.estimator or self.estimator
        self._check_estimator(estimator)
        est.check_answer_rule("openai", request, estimator)
        return estimator

    def body(self, request: ScoreRequest) -> dict[str, Any]:
        """The chat-completions JSON body for one request (also used in batch files)."""
        estimator = self._estimator_for(request)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        opts = self.spec.options
        temperature = request.decoding.temperature
        if estimator == "top_logprobs":
            # Two tokens: the second position's top-k splits "1" from "10".
            max_tokens = int(opts.get("max_tokens", 2))
            body["logprobs"] = True
            body["top_logprobs"] = min(request.decoding.top_k, self.capabilities.top_logprobs)
            temperature = 0.0 if temperature is None else temperature
        elif estimator == "sampling":
            max_tokens = int(opts.get("max_tokens", 8 if not self._reasoning else 2048))
            body["n"] = request.decoding.samples
            temperature = 1.0 if temperature is None else temperature
        else:  # verbalized
            max_tokens = int(opts.get("max_tokens", 300 if not self._reasoning else 4096))
            last = messages[-1]
            messages[-1] = {
                **last,
                "content": f"{last['content']}\n\n{est.verbalized_instruction(request.answers)}",
            }
        default_param = "max_completion_tokens" if self._reasoning else "max_tokens"
        body[str(opts.get("max_tokens_param", default_param))] = max_tokens
        if temperature is not None and not opts.get("omit_temperature", self._reasoning):
            body["temperature"] = temperature
        if "seed" in opts:
            body["seed"] = int(opts["seed"])
        return body

    # ----- scoring --------------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        if self.spec.batch_api:
            from valuesim_openai.batch import score_in_batch

            return score_in_batch(self, requests)
        return self._memo.each(requests, self.score_one)

    def score_one(self, request: ScoreRequest) -> AnswerDistribution:
        body = self.body(request)
        completion = self.call(lambda: self.client.chat.completions.create(**body))
        return self.parse(completion.model_dump(), request)

    def parse(self, completion: Mapping[str, Any], request: ScoreRequest) -> AnswerDistribution:
        """Distribution from a chat-completion JSON object; ProviderError when malformed."""
        estimator = self._estimator_for(request)
        try:
            usage = self._usage(completion.get("usage") or {})
            choices = completion["choices"]
            if estimator == "top_logprobs":
                content = choices[0]["logprobs"]["content"]
                return est.from_top_logprobs(
                    _merge(content[0]["top_logprobs"]),
                    request.answers,
                    generated_first=content[0]["token"],
                    following=_merge(content[1]["top_logprobs"]) if len(content) > 1 else None,
                    usage=usage,
                )
            texts = [str(c["message"]["content"] or "") for c in choices]
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderError(
                f"openai: malformed chat completion from {self._where()} ({type(exc).__name__}: "
                f"{exc}); the server does not speak the chat-completions format with logprobs"
            ) from exc
        if estimator == "sampling":
            return est.from_samples(texts, request.answers, usage=usage)
        return est.from_verbalized(texts[0], request.answers, usage=usage)

    def _usage(self, u: Mapping[str, Any]) -> Usage:
        prompt = int(u.get("prompt_tokens") or 0)
        completion = int(u.get("completion_tokens") or 0)
        cached = int((u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)

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
            raise ProviderError(f"openai: malformed chat completion from {self._where()}") from exc

    # ----- errors ---------------------------------------------------------------------

    def _where(self) -> str:
        return self.endpoint.where

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run one SDK call, translating its errors (keys redacted) for the engine."""
        import openai

        return call_sdk(
            openai, fn, provider="openai", where=self._where(), key=self._key, timeout=self.timeout_s
        )

def _merge(top: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """token -> log-probability, summing the probability of repeated token texts."""
    merged: dict[str, float] = {}
    for cand in top:
        tok, lp = str(cand["token"]), float(cand["logprob"])
        if tok in merged:
            merged[tok] = math.log(math.exp(merged[tok]) + math.exp(lp))
        else:
            merged[tok] = lp
    return merged
