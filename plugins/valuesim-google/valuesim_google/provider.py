"""Google GenAI wire format: first-token top-k log-probabilities (``response_logprobs``).

``logprobs`` (the top-k width) is at most 20. Models without log-probabilities are
used only when the config says so explicitly: ``estimator: sampling`` (or
``verbalized``) with ``options.logprobs: false``; nothing falls back silently.
Multi-token answers ("10") follow ``valuesim.llm.answer_estimates``: two output
tokens are requested so the second position's top-k splits "1" from "10". The
answers measure answer rule ``answer_start`` (the only one the top-k can estimate);
a request for another rule is refused. One request per sampling draw. The SDK never
retries (``HttpRetryOptions(attempts=1)``); the engine does. Keys, options and
estimator checks are :class:`valuesim.APIProvider`'s; the SDK's errors are mapped here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from valuesim import (
    AnswerDistribution,
    APIProvider,
    Capabilities,
    ChatMessage,
    Estimator,
    ProviderError,
    ScoreRequest,
    TransientProviderError,
    Usage,
    from_samples,
    from_top_logprobs,
    from_verbalized,
    merge_logprobs,
    redact,
    retry_after_seconds,
)
from valuesim_google.options import GoogleOptions

API_MAX_TOP_LOGPROBS = 20
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
HINTS = {
    400: "check the model supports these options (logprobs)",
    401: "check GEMINI_API_KEY",
    403: "check GEMINI_API_KEY",
    404: "check the model name and base_url",
}


class GoogleProvider(APIProvider):
    name = "google"
    # The key variables are sent only to this host; other servers need options.api_key_env.
    default_url = "https://generativelanguage.googleapis.com/"
    key_env_vars = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    options_model = GoogleOptions
    refusals: ClassVar[Mapping[str, str]] = {
        "logprobs": "the API gives top-k log-probabilities, not exact ones; set estimator: top_logprobs",
        "top_logprobs": "options.logprobs is false for {model!r}; set estimator: sampling "
        "(or verbalized) explicitly to estimate without log-probabilities",
    }
    options: GoogleOptions

    def model_capabilities(self) -> Capabilities:
        cap = self.options.max_top_logprobs
        width = min(cap if cap is not None else API_MAX_TOP_LOGPROBS, API_MAX_TOP_LOGPROBS)
        return Capabilities(
            top_logprobs=width if self.options.logprobs else 0, sampling=True, text_generation=True,
            answer_rules=("answer_start",),
        )

    def default_estimator(self) -> Estimator:
        return "top_logprobs"  # without log-probabilities the config must choose explicitly

    def make_client(self) -> Any:
        from google import genai
        from google.genai import types

        self._types = types
        # a loopback server is reached directly, never through HTTP_PROXY/ALL_PROXY
        mounts = self.endpoint.mounts
        # vertexai=False: an ambient GOOGLE_GENAI_USE_VERTEXAI must not reroute requests
        # (and credentials) away from the key read above.
        return genai.Client(
            vertexai=False,
            # never None: the SDK would read GEMINI_API_KEY/GOOGLE_API_KEY itself
            api_key=self.endpoint.sdk_key,
            http_options=types.HttpOptions(
                base_url=self.endpoint.url,
                timeout=max(1, int(self.timeout_s * 1000)),  # milliseconds
                retry_options=types.HttpRetryOptions(attempts=1),
                client_args={"mounts": mounts} if mounts else None,
                async_client_args={"mounts": mounts} if mounts else None,
            ),
        )

    def translate_error(self, exc: Exception) -> None:
        """The SDK's errors, mapped (keys redacted, status errors not chained)."""
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            code = int(exc.code or 0)
            detail = redact(str(exc.message or exc.status or ""), self.endpoint.key)[:300]
            if code in TRANSIENT_STATUS:
                headers = getattr(exc.response, "headers", None)
                raise TransientProviderError(
                    f"google: HTTP {code} from {self.where}: {detail}",
                    retry_after=retry_after_seconds(dict(headers) if headers else None),
                ) from None
            hint = HINTS.get(code, "check the request")
            raise ProviderError(f"google: HTTP {code} from {self.where}: {detail}; {hint}") from None
        if isinstance(exc, ValueError):
            # A body that is not JSON surfaces as a JSON decode error from the SDK.
            raise ProviderError(
                f"google: unreadable response from {self.where}: {redact(str(exc), self.endpoint.key)[:200]}"
            ) from None
        # The SDK's transport is httpx or httpx2, whichever is installed, so its
        # errors are recognised by class name instead of importing either.
        names = {c.__name__ for c in type(exc).__mro__}
        if "TimeoutException" in names:
            raise TransientProviderError(
                f"google: no response from {self.where} within {self.timeout_s:g} s "
                "(raise options.timeout_s if the server is just slow)"
            ) from None
        if "TransportError" in names:
            raise TransientProviderError(f"google: cannot reach {self.where}") from None

    def request_body(self, request: ScoreRequest) -> tuple[list[Any], Any]:
        """(contents, config) of one generate_content call."""
        estimator = self.estimator_for(request)
        contents = self._contents(request.messages, self.verbalized_suffix(request, estimator))
        return contents, self._config(request, estimator)

    def send(self, body: tuple[list[Any], Any]) -> Any:
        contents, config = body
        return self.call(
            lambda: self.client.models.generate_content(model=self.model, contents=contents, config=config)
        )

    def distribution(self, request: ScoreRequest, replies: Sequence[Any]) -> AnswerDistribution:
        estimator = self.estimator_for(request)
        try:
            usage = _usage(replies)
            if estimator == "top_logprobs":
                result = replies[0].candidates[0].logprobs_result
                first = _merge(result.top_candidates[0].candidates)
                following = _merge(result.top_candidates[1].candidates) if len(result.top_candidates) > 1 else None
                return from_top_logprobs(
                    first, request.answers, generated_first=result.chosen_candidates[0].token,
                    following=following, usage=usage,
                )
            texts = [_text(r) for r in replies]
        except (AttributeError, IndexError, TypeError) as exc:
            expected = "candidates with logprobsResult" if estimator == "top_logprobs" else "candidates"
            raise ProviderError(
                f"google: malformed response from {self.where} ({type(exc).__name__}{_finish(replies)}); "
                f"expected {expected} (thinking models: set options.thinking_budget: 0)"
            ) from None
        if estimator == "sampling":
            return from_samples(texts, request.answers, usage=usage)
        return from_verbalized(texts[0], request.answers, usage=usage)

    def generate(self, messages: Sequence[ChatMessage], *, max_tokens: int = 2048) -> str:
        system = "\n\n".join(m.content for m in messages if m.role == "system") or None
        config = self._types.GenerateContentConfig(system_instruction=system, max_output_tokens=max_tokens)
        response = self.send((self._contents(messages), config))
        try:
            return _text(response)
        except (AttributeError, IndexError, TypeError) as exc:
            raise ProviderError(
                f"google: malformed response from {self.where} ({type(exc).__name__}); expected candidates"
            ) from None

    def _config(self, request: ScoreRequest, estimator: Estimator) -> Any:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system") or None
        opts = self.options
        temperature = request.decoding.temperature
        kwargs: dict[str, Any] = {"system_instruction": system}
        if opts.thinking_budget is not None:
            # Thinking models spend max_output_tokens on thoughts; 0 turns thinking off
            # so the first output token is the answer.
            kwargs["thinking_config"] = self._types.ThinkingConfig(thinking_budget=opts.thinking_budget)

        def tokens(default: int) -> int:
            return opts.max_tokens if opts.max_tokens is not None else default

        if estimator == "top_logprobs":
            kwargs.update(
                response_logprobs=True,
                logprobs=min(request.decoding.top_k, self.capabilities.top_logprobs),
                max_output_tokens=tokens(2),
                temperature=0.0 if temperature is None else temperature,
            )
        elif estimator == "sampling":
            kwargs.update(max_output_tokens=tokens(8), temperature=1.0 if temperature is None else temperature)
        else:  # verbalized
            kwargs.update(max_output_tokens=tokens(300), temperature=temperature)
        return self._types.GenerateContentConfig(**kwargs)

    def _contents(self, messages: Sequence[ChatMessage], suffix: str = "") -> list[Any]:
        turns = [m for m in messages if m.role != "system"]
        out = []
        for i, m in enumerate(turns):
            text = m.content + (suffix if i == len(turns) - 1 else "")
            role = "model" if m.role == "assistant" else "user"
            out.append(self._types.Content(role=role, parts=[self._types.Part(text=text)]))
        return out


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
    return merge_logprobs((str(c.token), float(c.log_probability)) for c in candidates)


def _usage(responses: Sequence[Any]) -> Usage:
    prompt = completion = cached = 0
    for r in responses:
        u = r.usage_metadata
        if u is not None:
            prompt += u.prompt_token_count or 0
            completion += u.candidates_token_count or 0
            cached += u.cached_content_token_count or 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached)
