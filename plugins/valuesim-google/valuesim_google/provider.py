"""Google GenAI provider: first-token top-k log-probabilities (``response_logprobs``).

``logprobs`` (the top-k width) is at most 20. Models without log-probabilities are
used only when the config says so explicitly: ``estimator: sampling`` (or
``verbalized``) with ``options.logprobs: false``; nothing falls back silently.
Multi-token answers ("10") follow ``valuesim.llm.answer_estimates``: two output
tokens are requested so the second position's top-k splits "1" from "10". The
answers measure answer rule ``answer_start`` (the only one the top-k can estimate);
a request for another rule is refused.
The SDK never retries (``HttpRetryOptions(attempts=1)``); the engine does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valuesim.errors import ProviderError
from valuesim.llm import answer_estimates as est
from valuesim.llm.api_support import (
    RetryMemo,
    redact,
    resolve_endpoint,
    retry_after_seconds,
    timeout_s,
)
from valuesim.llm.provider import TransientProviderError
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
    "timeout_s", "api_key_env", "logprobs", "max_top_logprobs", "max_tokens", "thinking_budget",
})
KEY_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
# KEY_VARS are sent only to this host; other servers need options.api_key_env.
DEFAULT_URL = "https://generativelanguage.googleapis.com/"
API_MAX_TOP_LOGPROBS = 20
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class GoogleProvider:
    name = "google"

    def __init__(self, spec: ModelSpec, *, state_dir: Path) -> None:
        from google import genai
        from google.genai import types

        unknown = set(spec.options) - KNOWN_OPTIONS
        if unknown:
            raise ProviderError(
                f"google: unknown options {sorted(unknown)}; known: {', '.join(sorted(KNOWN_OPTIONS))}"
            )
        self.spec = spec
        self.model = spec.model
        self.revision = spec.revision
        self.state_dir = state_dir
        width = min(int(spec.options.get("max_top_logprobs", API_MAX_TOP_LOGPROBS)), API_MAX_TOP_LOGPROBS)
        logprobs = bool(spec.options.get("logprobs", True))
        self.capabilities = Capabilities(
            top_logprobs=width if logprobs else 0, sampling=True, text_generation=True,
            answer_rules=("answer_start",),
        )
        self.estimator: Estimator = spec.estimator or "top_logprobs"
        self._check_estimator(self.estimator)
        self.endpoint = resolve_endpoint(
            "google", base_url=spec.base_url, default_url=DEFAULT_URL,
            env_vars=KEY_VARS, api_key_env=spec.options.get("api_key_env"),
        )
        self._key = self.endpoint.key
        self.timeout_s = timeout_s(spec.options)
        # vertexai=False: an ambient GOOGLE_GENAI_USE_VERTEXAI must not reroute requests
        # (and credentials) away from the key read above.
        self.client = genai.Client(
            vertexai=False,
            # never None: the SDK would read GEMINI_API_KEY/GOOGLE_API_KEY itself
            api_key=self.endpoint.sdk_key,
            http_options=types.HttpOptions(
                base_url=self.endpoint.url,
                timeout=max(1, int(self.timeout_s * 1000)),  # milliseconds
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
        self._types = types
        self._requests = RetryMemo()
        self._samples = RetryMemo()

    def _check_estimator(self, estimator: str) -> None:
        if estimator == "logprobs":
            raise ProviderError(
                "google: the API gives top-k log-probabilities, not exact ones; set estimator: top_logprobs"
            )
        if estimator == "top_logprobs" and not self.capabilities.top_logprobs:
            raise ProviderError(
                f"google: options.logprobs is false for {self.model!r}; set estimator: sampling "
                "(or verbalized) explicitly to estimate without log-probabilities"
            )

    def estimator_for(self, request: ScoreRequest) -> Estimator:
        estimator = request.decoding.estimator or self.estimator
        self._check_estimator(estimator)
        est.check_answer_rule("google", request, estimator)
        return estimator

    def _where(self) -> str:
        return self.endpoint.where

    # ----- calls ------------------------------------------------------------------------

    def _config(self, request: ScoreRequest, estimator: Estimator) -> Any:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system") or None
        opts = self.spec.options
        temperature = request.decoding.temperature
        kwargs: dict[str, Any] = {"system_instruction": system}
        if "thinking_budget" in opts:
            # Thinking models spend max_output_tokens on thoughts; 0 turns thinking off
            # so the first output token is the answer.
            kwargs["thinking_config"] = self._types.ThinkingConfig(thinking_budget=int(opts["thinking_budget"]))
        if estimator == "top_logprobs":
            kwargs.update(
                response_logprobs=True,
                logprobs=min(request.decoding.top_k, self.capabilities.top_logprobs),
                max_output_tokens=int(opts.get("max_tokens", 2)),
                temperature=0.0 if temperature is None else temperature,
            )
        elif estimator == "sampling":
            kwargs.update(
                max_output_tokens=int(opts.get("max_tokens", 8)),
                temperature=1.0 if temperature is None else temperature,
            )
        else:  # verbalized
            kwargs.update(max_output_tokens=int(opts.get("max_tokens", 300)), temperature=temperature)
        return self._types.GenerateContentConfig(**kwargs)

    def _contents(self, messages: Sequence[ChatMessage], suffix: str = "") -> list[Any]:
        turns = [m for m in messages if m.role != "system"]
        out = []
        for i, m in enumerate(turns):
            text = m.content + (suffix if i == len(turns) - 1 else "")
            role = "model" if m.role == "assistant" else "user"
            out.append(self._types.Content(role=role, parts=[self._types.Part(text=text)]))
        return out

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run one SDK call, mapping its errors (keys redacted, not chained)."""
        from google.genai import errors

        try:
            return fn()
        except errors.APIError as exc:
            code = int(exc.code or 0)
            detail = redact(str(exc.message or exc.status or ""), self._key)[:300]
            if code in TRANSIENT_STATUS:
                headers = getattr(exc.response, "headers", None)
                raise TransientProviderError(
                    f"google: HTTP {code} from {self._where()}: {detail}",
                    retry_after=retry_after_seconds(dict(headers) if headers else None),
                ) from None
            hint = {400: "check the model supports these options (logprobs)",
                    401: "check GEMINI_API_KEY", 403: "check GEMINI_API_KEY",
                    404: "check the model name and base_url"}.get(code, "check the request")
            raise ProviderError(f"google: HTTP {code} from {self._where()}: {detail}; {hint}") from None
        except ValueError as exc:
            # A body that is not JSON surfaces as a JSON decode error from the SDK.
            raise ProviderError(
                f"google: unreadable response from {self._where()}: {redact(str(exc), self._key)[:200]}"
            ) from None
        except Exception as exc:
            # The SDK's transport is httpx or httpx2, whichever is installed, so its
            # errors are recognised by class name instead of importing either.
            names = {c.__name__ for c in type(exc).__mro__}
            if "TimeoutException" in names:
                raise TransientProviderError(
                    f"google: no response from {self._where()} within {self.timeout_s:g} s "
                    "(raise options.timeout_s if the server is just slow)"
                ) from None
            if "TransportError" in names:
                raise TransientProviderError(f"google: cannot reach {self._where()}") from None
            raise

    def _generate(self, request: ScoreRequest, estimator: Estimator) -> Any:
        suffix = f"\n\n{est.verbalized_instruction(request.answers)}" if estimator == "verbalized" else ""
        contents = self._contents(request.messages, suffix)
        config = self._config(request, estimator)
        return self.call(
            lambda: self.client.models.generate_content(model=self.model, contents=contents, config=config)
        )

    # ----- scoring ----------------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        return self._requests.each(requests, self.score_one)

    def score_one(self, request: ScoreRequest) -> AnswerDistribution:
        estimator = self.estimator_for(request)
        n = request.decoding.samples if estimator == "sampling" else 1
        responses = self._samples.each(
            [(request, s) for s in range(n)], lambda d: self._generate(d[0], estimator)
        )
        try:
            usage = _usage(responses)
            if estimator == "top_logprobs":
                result = responses[0].candidates[0].logprobs_result
                first = _merge(result.top_candidates[0].candidates)
                following = _merge(result.top_candidates[1].candidates) if len(result.top_candidates) > 1 else None
                return est.from_top_logprobs(
                    first, request.answers, generated_first=result.chosen_candidates[0].token,
                    following=following, usage=usage,
                )
            texts = [_text(r) for r in responses]
        except (AttributeError, IndexError, TypeError) as exc:
            expected = "candidates with logprobsResult" if estimator == "top_logprobs" else "candidates"
            raise ProviderError(
                f"google: malformed response from {self._where()} ({type(exc).__name__}{_finish(responses)}); "
                f"expected {expected} (thinking models: set options.thinking_budget: 0)"
            ) from None
        if estimator == "sampling":
            return est.from_samples(texts, request.answers, usage=usage)
        return est.from_verbalized(texts[0], request.answers, usage=usage)

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str:
        system = "\n\n".join(m.content for m in messages if m.role == "system") or None
        config = self._types.GenerateContentConfig(system_instruction=system, max_output_tokens=max_tokens)
        contents = self._contents(messages)
        response = self.call(
            lambda: self.client.models.generate_content(model=self.model, contents=contents, config=config)
        )
        try:
            return _text(response)
        except (AttributeError, IndexError, TypeError) as exc:
            raise ProviderError(
                f"google: malformed response from {self._where()} ({type(exc).__name__}); expected candidates"
            ) from None


def _text(response: Any) -> str:
    """The first candidate's text; "" when it has none (blocked or cut off: an unparsed reply)."""
    content = response.candidates[0].content
    return "".join(p.text or "" for p in (content.parts or [])) if content is not None else ""


def _finish(responses: Sequence[Any]) -> str:
    """", finish reason X" for the first response that says why it stopped, else ""."""
    for r in responses:
        for c in getattr(r, "candidates", None) or []:
            if c.finish_reason:
                return f", finish reason {getattr(c.finish_reason, 'value', c.finish_reason)}"
    return ""


def _merge(candidates: Sequence[Any]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for c in candidates:
        tok, lp = str(c.token), float(c.log_probability)
        merged[tok] = math.log(math.exp(merged[tok]) + math.exp(lp)) if tok in merged else lp
    return merged


def _usage(responses: Sequence[Any]) -> Usage:
    prompt = completion = cached = 0
    for r in responses:
        u = r.usage_metadata
        if u is not None:
            prompt += u.prompt_token_count or 0
            completion += u.candidates_token_count or 0
            cached += u.cached_content_token_count or 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)
