"""OpenAI chat-completions wire format (also vLLM, SGLang, Ollama, llama.cpp via base_url).

Estimators: ``logprobs`` (``options.server: vllm``, ``sglang`` or ``auto`` only: exact
prefix scoring, one request for the answers' first tokens plus one per answer that
prefixes a longer one, continuing the assistant turn with it; on vLLM the answers'
tokens are read by id (``logprob_token_ids``), elsewhere from the first token's top-k;
the arithmetic is ``valuesim.llm.prefix_scoring``'s, see this plugin's README,
"Server mode"), ``top_logprobs`` (default where the model gives log-probabilities: the
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
from valuesim.llm.prefix_scoring import (
    MAX_TOKEN_IDS,
    answer_token_trie,
    continuation_prefixes,
    extend_prefixes,
    from_prefix_continuations,
    from_token_logprobs,
    slot_token_ids,
)
from valuesim_openai.batch import OpenAIBatch
from valuesim_openai.options import EXACT_SERVERS, OpenAIOptions

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
# Reading chosen token ids at the generated position, vLLM's chat request fields
# (vllm/entrypoints/openai/chat_completion/protocol.py, ChatCompletionRequest, at
# vllm-project/vllm@002032ee2b18e1f7bd924ec47b62504ba3866063): ``logprob_token_ids``
# (at most 128 ids; needs ``logprobs: true``; ``top_logprobs`` is then not used, so
# --max-logprobs does not cap it) and ``return_tokens_as_token_ids`` (each token written
# ``token_id:N``, so ids that decode alike stay apart). The reply lists every asked id,
# besides the generated token, under ``choices[0].logprobs.content[0].top_logprobs``
# (chat_completion/serving.py ``_create_chat_logprobs``, @006c49d485f9ca479bf4989cbb694d0ac02f44b5).
# A vLLM without the field drops it unread (its request models allow unknown fields).
TOKEN_ID_PREFIX = "token_id:"


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
        self._ids_off: str | None = None  # why answers are not read by token id here
        self._answer_tokens: dict[str, tuple[int, ...]] = {}  # answer text -> its token ids
        self._token_texts: dict[tuple[int, ...], str] = {}  # a trie context -> its text
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
        if self._reads_ids(kind):
            by_id = self._exact_by_ids(request, kind)
            if by_id is not None:
                return by_id
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
            following[answer], used = _merge(reply[0]), reply[1]
            usages.append(used)
            extend_prefixes(reach, answer, following[answer], request.answers)
        self._forget(request)
        return from_prefix_continuations(top, following, request.answers, usage=_sum(usages))

    def _forget(self, request: ScoreRequest) -> None:
        with self._lock:
            for key in [k for k in self._paid if k[0] == request]:
                del self._paid[key]

    # -- reading the answers' tokens by id (vLLM's logprob_token_ids) ------------------

    def _reads_ids(self, kind: str) -> bool:
        """Whether server mode reads answers by token id on this server (see TOKEN_ID_PREFIX)."""
        wanted = self.options.logprob_token_ids
        if wanted is True and kind != "vllm":
            raise ProviderError(
                f"openai: options.logprob_token_ids: true needs a vLLM server, and {self.where} "
                f"is server: {kind}; remove the option (or set options.server: vllm)"
            )
        return kind == "vllm" and wanted is not False and self._ids_off is None

    def _exact_by_ids(self, request: ScoreRequest, kind: str) -> AnswerDistribution | None:
        """The ``answer_start`` distribution from the log-probabilities of the answers'
        own token ids: one request for their first tokens and one per trie context (the
        prefix answer "1", asking for the digits that continue it). None, said once in
        one line, where the server does not read token ids (the top-k path then runs)."""
        try:
            trie = answer_token_trie(self._tokens_of(request))
            wanted = slot_token_ids(trie)
            if max(len(w) for w in wanted) > MAX_TOKEN_IDS:
                raise _Ignored(f"the answers need more than {MAX_TOKEN_IDS} token ids at one position")
            body = self.request_body(request)
            body.pop("top_logprobs", None)  # vLLM does not use it once ids are asked for
            first = self._once(request, "\x00ids", lambda: self._send_ids({
                **body, "extra_body": {"logprob_token_ids": list(wanted[0]), "return_tokens_as_token_ids": True},
            }))
            slots = [_by_id(first["choices"][0]["logprobs"]["content"][0]["top_logprobs"], wanted[0])]
            usages = [_usage(first.get("usage") or {})]
            for slot, context in enumerate(trie.contexts, start=1):
                extra = {**CONTINUE_FIELDS[kind], "logprob_token_ids": list(wanted[slot]),
                         "return_tokens_as_token_ids": True}
                reply = self._continue(request, body, self._text_of(context), kind, usages[0], extra=extra)
                if reply is None:  # the server ignores the continuation fields; fallback allowed
                    return self._top_k_fallback(request)
                slots.append(_by_id(reply[0], wanted[slot]))
                usages.append(reply[1])
        except _Ignored as why:
            self._no_ids(str(why))
            return None
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ProviderError(
                f"openai: malformed chat completion from {self.where} ({type(exc).__name__}: "
                f"{exc}); the server does not speak the chat-completions format with logprobs"
            ) from exc
        self._forget(request)
        return from_token_logprobs(trie, slots, usage=_sum(usages))

    def _no_ids(self, why: str) -> None:
        """Token ids cannot be read here: stop (options.logprob_token_ids: true) or say once
        that the first token's top-k is read instead."""
        if self.options.logprob_token_ids:
            raise ProviderError(
                f"openai: {self.where} does not read answers by token id ({why}); use a vLLM "
                "with logprob_token_ids, or remove options.logprob_token_ids to read the top-k"
            )
        with self._lock:
            first_time = self._ids_off is None
            self._ids_off = why
        if first_time:
            print(
                f"openai: {self.where} does not read answers by token id ({why}); reading them "
                "from the first token's top-k instead (answers outside it are floored: raise "
                "--max-logprobs and options.max_top_logprobs)",
                file=sys.stderr,
            )

    def _send_ids(self, body: Mapping[str, Any]) -> dict[str, Any]:
        import openai

        try:
            return self.client.chat.completions.create(**body).model_dump()
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            detail = redact(str(getattr(exc, "message", exc)), self.endpoint.key)[:160]
            raise _Ignored(f"it refused logprob_token_ids: HTTP {exc.status_code}: {detail}") from None
        except Exception as exc:
            self.translate_error(exc)
            raise

    def _post_route(self, route: str, payload: Mapping[str, Any]) -> Any:
        """POST ``route`` (beside /v1, like vLLM's /tokenize); _Ignored on a 4xx."""
        import openai

        root = self.endpoint.url.rstrip("/").removesuffix("/v1")
        try:
            return self.call(lambda: self.client.post(root + route, cast_to=object,
                                                      body={"model": self.model, **payload}))
        except (ProviderError, openai.APIStatusError) as exc:
            raise _Ignored(f"POST {route}: {str(exc).splitlines()[0][:160]}") from None

    def _tokens_of(self, request: ScoreRequest) -> list[tuple[int, ...]]:
        """Each answer's token ids as the model spells it after the generation prompt (the
        server's chat template and tokenizer, ``POST /tokenize``), once per answer text.

        Read as the local engine reads them: the prompt continued by the answer, less
        the prompt; the same for any conversation, so the first request's serve all.
        """
        with self._lock:
            new = [a for a in dict.fromkeys(request.answers) if a not in self._answer_tokens]
        if new:
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            prompt = self._post_route("/tokenize", {"messages": messages, "add_generation_prompt": True})["tokens"]
            for answer in new:
                full = self._post_route("/tokenize", {
                    "messages": [*messages, {"role": "assistant", "content": answer}],
                    "add_generation_prompt": False, "continue_final_message": True,
                })["tokens"]
                if len(full) <= len(prompt) or full[: len(prompt)] != prompt:
                    raise _Ignored(f"its chat template does not continue the prompt with the answer {answer!r}")
                with self._lock:
                    self._answer_tokens[answer] = tuple(int(t) for t in full[len(prompt):])
        with self._lock:
            return [self._answer_tokens[a] for a in request.answers]

    def _text_of(self, tokens: tuple[int, ...]) -> str:
        """The text of an answer's first tokens (``POST /detokenize``), to continue the turn with."""
        with self._lock:
            hit = self._token_texts.get(tokens)
        if hit is None:
            hit = str(self._post_route("/detokenize", {"tokens": list(tokens)})["prompt"])
            with self._lock:
                self._token_texts[tokens] = hit
        return hit

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
        first_usage: Usage, extra: Mapping[str, Any] | None = None,
    ) -> tuple[list[Any], Usage] | None:
        """The next position's ``top_logprobs`` entries after the assistant turn begun
        with ``text`` (``extra``: the extension fields, the continuation's by default).

        None when the server turned out not to continue turns and the fallback is
        allowed; ProviderError (one line) when it is not.
        """
        import openai

        messages = [*first_body["messages"], {"role": "assistant", "content": text}]
        fields = dict(extra if extra is not None else CONTINUE_FIELDS[kind])
        body = {**first_body, "messages": messages, "extra_body": fields}
        memo = text if extra is None else "\x00ids" + text

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
            reply = self._once(request, memo, send)
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
            top = list(reply["choices"][0]["logprobs"]["content"][0]["top_logprobs"])
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
        self._forget(request)
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


def _by_id(top: Sequence[Mapping[str, Any]], wanted: Sequence[int]) -> dict[int, float]:
    """token id -> log-probability from ``token_id:N`` entries; _Ignored unless every
    ``wanted`` id is there (a server that drops the field lists none, or the top-k)."""
    got = {
        int(str(c["token"])[len(TOKEN_ID_PREFIX):]): float(c["logprob"])
        for c in top if str(c["token"]).startswith(TOKEN_ID_PREFIX)
    }
    missing = [t for t in wanted if t not in got]
    if missing:
        raise _Ignored(
            f"the reply has no log-probability for token id {missing[0]}: it ignores "
            "logprob_token_ids (a vLLM before the field)"
        )
    return got


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
