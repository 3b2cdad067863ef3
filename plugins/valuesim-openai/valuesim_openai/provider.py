"""OpenAI chat-completions wire format (also vLLM, SGLang, Ollama, llama.cpp via base_url).

Estimators: ``logprobs`` (``options.server: vllm``, ``sglang`` or ``auto`` only: exact
prefix scoring, the first token's top-k plus one request per answer that prefixes a
longer one, continuing the assistant turn with it; see ``valuesim_openai.prefix_split``
and this plugin's README, "Server mode"), ``top_logprobs`` (default where the model gives log-probabilities: the
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
import sys
import threading
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
from valuesim.llm.api_support import redact
from valuesim_openai import EXACT_SERVERS, OpenAIOptions
from valuesim_openai.batch import OpenAIBatch
from valuesim_openai.prefix_split import (
    continuation_prefixes,
    extend_prefixes,
    from_prefix_continuations,
)

# Reasoning models refuse logprobs and temperature and want max_completion_tokens.
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")
API_MAX_TOP_LOGPROBS = 20
# server: auto looks for these routes (GET, relative to the URL without /v1): SGLang's
# server info first (vLLM has /server_info only in its dev mode), then vLLM's /version.
PROBES = (("/get_server_info", "sglang"), ("/version", "vllm"), ("/server_info", "sglang"))
# The extension fields that continue a final assistant message instead of starting a
# new turn. vLLM (protocol.py ChatCompletionRequest) refuses both flags true; SGLang
# has continue_final_message only (it pops the final assistant message, renders the
# rest with the generation prompt and appends the message's tokens).
CONTINUE_FIELDS: Mapping[str, Mapping[str, bool]] = {
    "vllm": {"continue_final_message": True, "add_generation_prompt": False},
    "sglang": {"continue_final_message": True},
}


class OpenAIProvider(APIProvider):
    name = "openai"
    # OPENAI_API_KEY is sent only to this host; other servers need options.api_key_env.
    default_url = "https://api.openai.com/v1"
    key_env_vars = ("OPENAI_API_KEY",)
    options_model = OpenAIOptions
    sdk_module = "openai"
    batch_runner = OpenAIBatch
    samples_in_one_request = True  # `n` replies per request
    estimators = ("logprobs", "top_logprobs", "sampling", "verbalized")
    refusals: ClassVar[Mapping[str, str]] = {
        "logprobs": "the API gives top-k first-token log-probabilities, not exact ones; "
        "set estimator: top_logprobs (or options.server: vllm or sglang for a vLLM/SGLang server)",
        "top_logprobs": "model {model!r} returns no log-probabilities (reasoning models "
        "refuse them); set estimator: sampling or verbalized, or options.logprobs: true",
    }
    options: OpenAIOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # exact-mode state, shared by the engine's threads
        self._kind: str | None = None  # the server kind (server: auto probes once)
        self._fallen_back = False  # the server ignores the continuation fields
        self._lock = threading.Lock()
        self._paid: dict[tuple[Any, str], dict[str, Any]] = {}  # replies of unfinished requests
        super().__init__(*args, **kwargs)

    @property
    def exact_mode(self) -> bool:
        """``options.server`` asks for exact prefix scoring (vLLM, SGLang or auto)."""
        return self.options.server in EXACT_SERVERS

    @property
    def _reasoning(self) -> bool:
        return bool(REASONING_MODEL.match(self.model))

    def model_capabilities(self) -> Capabilities:
        """Flags for this model; ``options.logprobs`` overrides the name-based guess."""
        opts = self.options
        logprobs = opts.logprobs if opts.logprobs is not None else not self._reasoning
        cap = opts.max_top_logprobs if opts.max_top_logprobs is not None else API_MAX_TOP_LOGPROBS
        # OpenAI caps k at 20; a vLLM server allows what its --max-logprobs says, and a
        # wider first-token top-k leaves fewer answers to floor in server mode.
        width = cap if self.exact_mode else min(cap, API_MAX_TOP_LOGPROBS)
        exact = self.exact_mode and logprobs
        return Capabilities(
            logprobs=exact, top_logprobs=width if logprobs else 0, sampling=True,
            text_generation=True, batch_api=not self.exact_mode, answer_rules=("answer_start",),
        )

    def _usable(self, estimator: str) -> bool:
        if estimator == "logprobs":
            return self.capabilities.logprobs
        return super()._usable(estimator)

    def server_models(self) -> list[str]:
        """The model ids the server serves (``GET /v1/models``), for fleet checks."""
        page = self.call(lambda: self.client.models.list())
        return [str(m.id) for m in page.data]

    def make_client(self) -> Any:
        import openai

        mounts = self.endpoint.mounts  # a loopback server is reached directly, not by proxy
        client = openai.OpenAI(
            api_key=self.endpoint.sdk_key, base_url=self.endpoint.url,
            timeout=self.timeout_s, max_retries=0,
            http_client=openai.DefaultHttpxClient(mounts=mounts) if mounts else None,
        )
        if not self.endpoint.vendor_host:
            # The SDK reads OPENAI_ORG_ID / OPENAI_PROJECT_ID (and OPENAI_ADMIN_KEY) from
            # the environment whatever the base_url; like OPENAI_API_KEY they name the
            # OpenAI account and go to api.openai.com only, never to a vLLM or a proxy.
            client.organization = None
            client.project = None
            client.admin_api_key = None
        return client

    def request_body(self, request: ScoreRequest) -> dict[str, Any]:
        """The chat-completions JSON body for one request (also a batch file's line body)."""
        estimator = self.estimator_for(request)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        opts = self.options
        temperature = request.decoding.temperature
        if estimator in ("top_logprobs", "logprobs"):
            # top_logprobs: two tokens, the second position's top-k splits "1" from "10"
            # when "1" is generated; logprobs: one, the split has requests of its own.
            default_tokens = 2 if estimator == "top_logprobs" else 1
            max_tokens = opts.max_tokens if opts.max_tokens is not None else default_tokens
            body["logprobs"] = True
            width = self.capabilities.top_logprobs
            body["top_logprobs"] = width if estimator == "logprobs" else min(request.decoding.top_k, width)
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
        reply: dict[str, Any] = self.call(lambda: self._post(body))
        return reply

    def _post(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST one chat completion (``extra_body`` merged in); the reply's JSON object.

        Through the SDK client's ``post`` (its headers, timeout and error classes), not
        ``chat.completions.create(**body).model_dump()``: that walks the body through
        the SDK's typed-dict transform and builds a pydantic ``ChatCompletion`` only to
        turn it back into this dict, over half the client's CPU per request (docs/scale.md).
        """
        extra = body.get("extra_body") or {}
        json_body = {**{k: v for k, v in body.items() if k != "extra_body"}, **extra}
        reply = self.client.post("/chat/completions", body=json_body, cast_to=object)
        if not isinstance(reply, dict):
            raise ProviderError(
                f"openai: malformed chat completion from {self.where} (a {type(reply).__name__}, "
                "not a JSON object); the server does not speak the chat-completions format"
            )
        return reply

    def distribution(self, request: ScoreRequest, replies: Sequence[Any]) -> AnswerDistribution:
        return self.parse(replies[0], request)

    def parse(
        self, completion: Mapping[str, Any], request: ScoreRequest, estimator: str | None = None
    ) -> AnswerDistribution:
        """Distribution from a chat-completion JSON object; ProviderError when malformed."""
        estimator = estimator or self.estimator_for(request)
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

    # -- exact prefix scoring (server: vllm / sglang / auto) ------------------------------

    def score_one(self, request: ScoreRequest) -> AnswerDistribution:
        if self.estimator_for(request) != "logprobs":
            return super().score_one(request)
        return self._exact(request)

    def _exact(self, request: ScoreRequest) -> AnswerDistribution:
        """First-token top-k, then one continuation per reachable prefix answer.

        Replies are remembered until the answer is complete, so an engine retry after a
        failed continuation pays only for what failed.
        """
        kind = self._server_kind()
        if self._fallen_back:
            return self._top_k_fallback(request)
        first_body = self.request_body(request)
        first = self._once(request, "", lambda: self.send(first_body))
        try:
            top = _merge(first["choices"][0]["logprobs"]["content"][0]["top_logprobs"])
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderError(
                f"openai: malformed chat completion from {self.where} ({type(exc).__name__}: "
                f"{exc}); the server does not speak the chat-completions format with logprobs"
            ) from exc
        usages = [_usage(first.get("usage") or {})]
        reach = continuation_prefixes(top, request.answers)
        following: dict[str, dict[str, float]] = {}
        # shortest first: a longer prefix ("10" of "100") is reached through a shorter one
        for answer in sorted(request.answers, key=len):
            if answer not in reach:
                continue
            text = reach[answer]
            reply = self._continue(request, first_body, text, kind, usages[0])
            if reply is None:  # the server ignores the fields; fallback allowed
                return self._top_k_fallback(request)
            following[answer], used = reply
            usages.append(used)
            extend_prefixes(reach, answer, following[answer], request.answers)
        with self._lock:
            for key in [k for k in self._paid if k[0] == request]:
                del self._paid[key]
        return from_prefix_continuations(top, following, request.answers, usage=_sum(usages))

    def _once(self, request: ScoreRequest, text: str, send: Any) -> dict[str, Any]:
        with self._lock:
            hit = self._paid.get((request, text))
        if hit is None:
            hit = send()
            with self._lock:
                self._paid[(request, text)] = hit
        return hit

    def _continue(
        self, request: ScoreRequest, first_body: Mapping[str, Any], text: str, kind: str,
        first_usage: Usage,
    ) -> tuple[dict[str, float], Usage] | None:
        """The next token's top-k after the assistant turn begun with ``text``.

        None when the server turned out not to continue turns and the fallback is
        allowed; ProviderError (one line) when it is not.
        """
        import openai

        messages = [*first_body["messages"], {"role": "assistant", "content": text}]
        body = {**first_body, "messages": messages, "extra_body": dict(CONTINUE_FIELDS[kind])}

        def send() -> dict[str, Any]:
            try:
                return self._post(body)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                # a plain OpenAI server refuses fields it does not know
                detail = redact(str(getattr(exc, "message", exc)), self.endpoint.key)[:160]
                raise _Ignored(f"it refused them: HTTP {exc.status_code}: {detail}") from None
            except Exception as exc:
                self.translate_error(exc)
                raise

        try:
            reply = self._once(request, text, send)
            used = _usage(reply.get("usage") or {})
            grew = used.prompt_tokens - first_usage.prompt_tokens
            # A continued turn is the question's prompt plus the prefix's tokens (at most
            # one per byte); a fresh turn adds the end of the assistant's turn and a new
            # header besides. Servers that ignore the fields answer a fresh turn.
            if not 1 <= grew <= len(text.encode()):
                raise _Ignored(
                    f"it answered a fresh turn: the prompt grew by {grew} tokens for the "
                    f"{len(text.encode())}-byte prefix {text!r} (or the chat template renders "
                    "a continued turn unlike a new one)"
                )
            top = _merge(reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"])
        except _Ignored as why:
            return self._ignored(kind, str(why))
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderError(
                f"openai: malformed continuation reply from {self.where} "
                f"({type(exc).__name__}: {exc}); the server does not give logprobs there"
            ) from exc
        return top, used

    def _ignored(self, kind: str, why: str) -> None:
        """The server does not continue an assistant turn: fall back or stop, in one line."""
        if not self.options.fallback_top_logprobs:
            raise ProviderError(
                f"openai: {self.where} ignores the continuation fields of server: {kind} ({why}); "
                "point base_url at a vLLM or SGLang server, or set options.fallback_top_logprobs: "
                "true to use the top-k estimate (or options.server: openai)"
            )
        with self._lock:
            first_time = not self._fallen_back
            self._fallen_back = True
        if first_time:
            print(
                f"openai: {self.where} ignores the continuation fields of server: {kind} ({why}); "
                "falling back to the top-k estimate (options.fallback_top_logprobs)",
                file=sys.stderr,
            )
        return None

    def _top_k_fallback(self, request: ScoreRequest) -> AnswerDistribution:
        """The plain top_logprobs estimate (two positions of top-k) for ``request``."""
        from dataclasses import replace

        plain = replace(request, decoding=replace(request.decoding, estimator="top_logprobs"))
        body = self.request_body(plain)
        reply = self._once(request, "\x00top-k", lambda: self.send(body))
        with self._lock:
            for key in [k for k in self._paid if k[0] == request]:
                del self._paid[key]
        return self.parse(reply, plain, "top_logprobs")

    def _server_kind(self) -> str:
        """vllm or sglang; ``server: auto`` asks the server once (:data:`PROBES`)."""
        if self.options.server != "auto":
            return str(self.options.server)
        with self._lock:
            if self._kind is not None:
                return self._kind
        kind = self._probe()
        with self._lock:
            self._kind = kind
        if kind == "openai":
            self._ignored("auto", "GET " + ", ".join(p for p, _ in PROBES) + " found neither vLLM nor SGLang")
            return "openai"
        return kind

    def _probe(self) -> str:
        import openai

        root = self.endpoint.url.rstrip("/").removesuffix("/v1")
        for path, kind in PROBES:
            try:
                self.call(lambda path=path: self.client.get(root + path, cast_to=object))
            except ProviderError:
                continue  # 4xx: not this server's route
            except openai.APIStatusError:
                continue
            return kind
        return "openai"

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


class _Ignored(Exception):
    """The server does not continue a final assistant message (why, in words)."""


def _sum(usages: Sequence[Usage]) -> Usage:
    return Usage(
        prompt_tokens=sum(u.prompt_tokens for u in usages),
        completion_tokens=sum(u.completion_tokens for u in usages),
        cached_tokens=sum(u.cached_tokens for u in usages),
    )


def _usage(u: Mapping[str, Any]) -> Usage:
    cached = int((u.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return Usage(
        prompt_tokens=int(u.get("prompt_tokens") or 0),
        completion_tokens=int(u.get("completion_tokens") or 0),
        cached_tokens=cached,
    )
