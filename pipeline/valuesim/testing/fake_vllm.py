"""A fake vLLM (or SGLang) chat-completions server with real numbers, on 127.0.0.1.

It answers ``POST /v1/chat/completions`` in vLLM's wire format from a local causal
LM's own logits (the embedded SmolLM2 through transformers, loaded by
:mod:`valuesim.llm.local_model`), as ``vllm serve`` would serve that model: the
request's messages rendered with the model's chat template and tokenized as a whole
(``add_special_tokens`` off, vLLM's chat default), greedy generation (temperature 0)
of ``max_tokens`` tokens, and for each generated position the generated token and the
top-``top_logprobs`` tokens with their log-softmax log-probabilities. vLLM's
extension fields are honoured: ``continue_final_message`` with
``add_generation_prompt: false`` continues a final assistant message (the template's
rendering of it, cut after its content, as transformers' ``apply_chat_template``
does); both true is a 400, as vLLM's request validator says. ``logprob_token_ids``
(with ``logprobs: true``) gives, at each generated position, the log-probabilities of
exactly those token ids besides the generated token's, whatever ``top_logprobs`` and
``--max-logprobs`` say, and ``return_tokens_as_token_ids`` writes tokens as
``token_id:N``, as vLLM does (vllm/entrypoints/openai/chat_completion/protocol.py at
vllm-project/vllm@002032ee2b18e1f7bd924ec47b62504ba3866063: the field, its checks
and ``to_sampling_params``; chat_completion/serving.py at
@006c49d485f9ca479bf4989cbb694d0ac02f44b5: ``_create_chat_logprobs`` lists every
returned id under ``top_logprobs``). ``token_ids`` makes it an older vLLM that
``"ignored"`` the field (vLLM's request models allow unknown fields and drop them)
or one in front of a strict proxy that ``"rejected"`` it with a 400. Also
``GET /v1/models``, ``GET /version``, ``POST /tokenize`` and ``POST /detokenize``
(vllm/entrypoints/serve/tokenize/protocol.py: the chat form renders messages as a
chat request does).

``flavor`` makes it another server:

- ``"sglang"``: SGLang's ``continue_final_message`` (no ``add_generation_prompt``
  field: the final assistant message is popped, the rest rendered with the generation
  prompt, and the message's tokens appended), ``GET /server_info`` and
  ``/get_server_info`` instead of ``/version``;
- ``"openai"``: the OpenAI API, which refuses unknown request fields with a 400;
- ``"ignore"``: a server that ignores unknown fields (llama.cpp-like): a final
  assistant message is rendered as a finished turn and a fresh one is started.

Prompts share their keys and values like a server's prefix cache: a few recent
prompts (the persona's head and whole questions) are kept, and a request runs the
model only on what follows the longest cached prefix of its tokens.

torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import copy
import inspect
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from valuesim.testing._server import JSONHandler, local_http_server

Flavor = Literal["vllm", "sglang", "openai", "ignore"]
#: How a vLLM flavour treats ``logprob_token_ids``: a current vLLM honours it.
TokenIds = Literal["honoured", "ignored", "rejected"]
#: vLLM's MAX_LOGPROB_TOKEN_IDS (vllm/sampling_params.py).
MAX_LOGPROB_TOKEN_IDS = 128
#: vLLM floors a returned log-probability here (ChatCompletionLogProb).
LOGPROB_FLOOR = -9999.0
#: The fields a plain OpenAI server refuses (vLLM and SGLang extensions).
EXTENSION_FIELDS = ("continue_final_message", "add_generation_prompt", "echo", "chat_template_kwargs")
_OPENAI_FIELDS = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "logprobs", "top_logprobs",
    "temperature", "n", "seed", "stream", "stop", "top_p",
})
#: Prompts kept with their keys and values (each ~46 KB a token for SmolLM2-135M).
KV_ENTRIES = 6


class RequestError(Exception):
    """A 4xx reply: status and the server's message."""

    def __init__(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


@dataclass
class FakeVLLM:
    """The server's state: the loaded model, its flavour, what it was sent."""

    lm: Any  # valuesim.llm.local_model.LoadedModel
    flavor: Flavor = "vllm"
    model_name: str = "smollm2-served"
    latency_s: float = 0.0  # added to every completion (fleet tests)
    max_logprobs: int = 20  # vLLM's --max-logprobs: a wider top_logprobs is a 400
    token_ids: TokenIds = "honoured"  # logprob_token_ids (vllm flavour)
    lock: threading.Lock = field(default_factory=threading.Lock)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    tokenized: list[dict[str, Any]] = field(default_factory=list)  # /tokenize bodies
    # the greedy first token, by the request's messages as sent
    generated: dict[str, str] = field(default_factory=dict)
    _kv: OrderedDict[tuple[int, ...], tuple[Any, Any]] = field(default_factory=OrderedDict)

    # -- rendering ---------------------------------------------------------------------

    def prompt_ids(self, body: Mapping[str, Any]) -> list[int]:
        """The prompt's tokens, as this flavour renders the request."""
        tok = self.lm.tokenizer
        messages = [dict(m) for m in body["messages"]]
        final_assistant = messages[-1]["role"] == "assistant"
        if self.flavor == "sglang" and body.get("continue_final_message") and final_assistant:
            text = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
            ids = list(tok(text, add_special_tokens=False)["input_ids"])
            return ids + list(tok(messages[-1]["content"], add_special_tokens=False)["input_ids"])
        if self.flavor == "vllm":
            cont = bool(body.get("continue_final_message", False))
            gen = bool(body.get("add_generation_prompt", True))
            if cont and gen:
                raise RequestError(
                    400, "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
                )
            if cont and not final_assistant:
                raise RequestError(400, "continue_final_message needs a final assistant message")
        else:  # ignore (and sglang without a final assistant message): a fresh turn
            cont, gen = False, True
        text = tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=gen, continue_final_message=cont
        )
        return list(tok(text, add_special_tokens=False)["input_ids"])

    def _head(self, body: Mapping[str, Any]) -> list[int]:
        """The persona's head: the tokens before the last user message's text."""
        tok = self.lm.tokenizer
        messages = list(body["messages"])
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        probe = [*messages[:last_user], {"role": "user", "content": ""}]
        text = tok.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
        return list(tok(text, add_special_tokens=False)["input_ids"])

    # -- the model ---------------------------------------------------------------------

    def _prompt_state(self, ids: Sequence[int], head: Sequence[int]) -> tuple[Any, Any, int]:
        """(KV cache after ``ids``, logits of its last position, tokens reused)."""

        model = self.lm.model
        key = tuple(ids)
        if key in self._kv:
            self._kv.move_to_end(key)
            kv, logits = self._kv[key]
            return kv, logits, len(ids)
        # the persona's head first, so that every question of that persona reuses it
        n = min(_common_prefix(ids, head), len(ids) - 1)
        if n > 0:
            past, reused = self._cached_prefix(ids[: n + 1])
            if reused < n:
                out = _forward(model, ids[reused:n], copy.deepcopy(past) if past is not None else None)
                self._remember(tuple(ids[:n]), _kv(out), out.logits[0, -1])
        past, reused = self._cached_prefix(ids)
        out = _forward(model, ids[reused:], copy.deepcopy(past) if past is not None else None)
        kv, logits = _kv(out), out.logits[0, -1]
        self._remember(key, kv, logits)
        return kv, logits, reused

    def _cached_prefix(self, ids: Sequence[int]) -> tuple[Any, int]:
        """The longest cached proper prefix of ``ids`` (at least one token left to run)."""
        best: tuple[int, ...] | None = None
        for key in self._kv:
            if len(key) < len(ids) and (best is None or len(key) > len(best)) and tuple(ids[: len(key)]) == key:
                best = key
        if best is None:
            return None, 0
        self._kv.move_to_end(best)
        return self._kv[best][0], len(best)

    def _remember(self, key: tuple[int, ...], kv: Any, logits: Any) -> None:
        self._kv[key] = (kv, logits)
        while len(self._kv) > KV_ENTRIES:
            self._kv.popitem(last=False)

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat-completion reply to ``body``; RequestError for a 4xx."""
        import torch

        if self.flavor == "openai":
            unknown = sorted(set(body) - _OPENAI_FIELDS)
            if unknown:
                raise RequestError(400, f"Unrecognized request argument supplied: {unknown[0]}")
        if body.get("model") != self.model_name:
            raise RequestError(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
        k = int(body.get("top_logprobs") or 0)
        if k and not body.get("logprobs"):
            raise RequestError(400, "when using `top_logprobs`, `logprobs` must be set to true.")
        chosen_ids = self._chosen_ids(body)
        # vLLM passes logprobs=None to the sampler when the ids are given: no k to cap
        if chosen_ids is None and k > self.max_logprobs:
            raise RequestError(400, f"Requested sample logprobs of {k}, which is greater than max allowed: {self.max_logprobs}")
        as_ids = self.flavor == "vllm" and bool(body.get("return_tokens_as_token_ids"))
        if self.latency_s:
            time.sleep(self.latency_s)
        tok, model = self.lm.tokenizer, self.lm.model
        ids = self.prompt_ids(body)
        head = self._head(body)
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        content: list[dict[str, Any]] = []
        chosen: list[int] = []
        with self.lock, torch.inference_mode():
            kv, logits, reused = self._prompt_state(ids, head)
            for position in range(max_tokens):
                logp = torch.log_softmax(logits.double(), dim=-1)
                best = int(torch.argmax(logp))  # temperature 0: the argmax is generated
                if body.get("logprobs"):
                    if chosen_ids is not None:
                        # the generated token first, then the asked ids (vLLM's order)
                        order = [best, *(i for i in chosen_ids if i != best)]
                        pairs = [(i, float(logp[i])) for i in order]
                    else:
                        top = torch.topk(logp, max(k, 1))
                        pairs = list(zip(top.indices.tolist(), top.values.tolist(), strict=True))[:k]
                    content.append(_entry(tok, best, float(logp[best]), pairs, as_ids=as_ids))
                chosen.append(best)
                if best in self.lm.end_token_ids or position + 1 == max_tokens:
                    break
                if position == 0:
                    kv = copy.deepcopy(kv)  # the cached prompt state stays as it is
                out = _forward(model, [best], kv)
                kv, logits = _kv(out), out.logits[0, -1]
            self.bodies.append(body)
            self.generated[json.dumps(body["messages"])] = _text(tok, chosen[0])
        return {
            "id": f"chatcmpl-{len(self.bodies)}", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{
                "index": 0, "finish_reason": "length",
                "logprobs": {"content": content} if body.get("logprobs") else None,
                "message": {"role": "assistant", "content": tok.decode(chosen, skip_special_tokens=True)},
            }],
            "usage": {
                "prompt_tokens": len(ids), "completion_tokens": len(chosen),
                "total_tokens": len(ids) + len(chosen),
                "prompt_tokens_details": {"cached_tokens": reused},
            },
        }

    def _chosen_ids(self, body: Mapping[str, Any]) -> list[int] | None:
        """``logprob_token_ids`` when this server honours it (after vLLM's checks)."""
        ids = body.get("logprob_token_ids")
        if ids is None or self.flavor != "vllm" or self.token_ids == "ignored":
            return None
        if self.token_ids == "rejected":
            raise RequestError(400, "Extra inputs are not permitted: logprob_token_ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise RequestError(400, "`logprob_token_ids` must be a list of integers.")
        if not ids:
            raise RequestError(400, "`logprob_token_ids` must not be an empty list.")
        if not body.get("logprobs"):
            raise RequestError(400, "when using `logprob_token_ids`, `logprobs` must be set to true.")
        if len(ids) > MAX_LOGPROB_TOKEN_IDS:
            raise RequestError(
                400, f"Requested logprob_token_ids of length {len(ids)}, which is greater than "
                f"max allowed: {MAX_LOGPROB_TOKEN_IDS}"
            )
        vocab = len(self.lm.tokenizer)
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise RequestError(
                400, f"token_id(s) {bad} in logprob_token_ids contain out-of-vocab token ids. "
                f"Vocabulary size: {vocab}"
            )
        return list(ids)

    def tokenize(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /tokenize``: the chat form (``messages``) or the completion form (``prompt``)."""
        if self.flavor != "vllm":
            raise RequestError(404, "Not Found", "NotFoundError")
        if "messages" in body:
            ids = self.prompt_ids(body)
        else:
            add = bool(body.get("add_special_tokens", True))
            ids = list(self.lm.tokenizer(str(body["prompt"]), add_special_tokens=add)["input_ids"])
        with self.lock:
            self.tokenized.append(dict(body))
        return {"count": len(ids), "max_model_len": 8192, "tokens": ids}

    def detokenize(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /detokenize``: the text of ``tokens``."""
        if self.flavor != "vllm":
            raise RequestError(404, "Not Found", "NotFoundError")
        return {"prompt": str(self.lm.tokenizer.decode(list(body["tokens"])))}

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        """Replies to the GET routes this flavour has."""
        if path == "/v1/models":
            owner = {"vllm": "vllm", "sglang": "sglang"}.get(self.flavor, "system")
            return 200, {"object": "list", "data": [
                {"id": self.model_name, "object": "model", "created": 0, "owned_by": owner}
            ]}
        if path == "/version" and self.flavor == "vllm":
            return 200, {"version": "0.10.1"}
        if path in ("/server_info", "/get_server_info") and self.flavor == "sglang":
            return 200, {"model_path": self.model_name, "version": "0.5.0"}
        return 404, {"error": {"message": f"no route {path}", "type": "NotFoundError", "code": 404}}


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _kv(out: Any) -> Any:
    # transformers 5 calls the model output's key/value cache "cache"
    return out.get("cache") or out.get("past_key_values")


def _forward(model: Any, ids: Sequence[int], past: Any) -> Any:
    """The model on ``ids`` after the cached ``past`` (None: from the start)."""
    import torch

    kwargs: dict[str, Any] = {}
    if past is not None:
        name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        kwargs[name] = past
    return model(input_ids=torch.tensor([list(ids)]), use_cache=True, logits_to_keep=1, **kwargs)


def _text(tok: Any, token_id: int) -> str:
    # SmolLM2's byte-level BPE: decode gives each token's text ("1", "0", " ", "\n",
    # "<|im_end|>"; every digit is a token of its own). Tokens holding part of a UTF-8
    # character read as "\ufffd" (vLLM writes "bytes:..."): no answer either way.
    return str(tok.decode([token_id]))


def _entry(
    tok: Any, token_id: int, logprob: float, top: Iterable[tuple[int, float]], *, as_ids: bool = False
) -> dict[str, Any]:
    """One ``logprobs.content`` entry: the generated token and the top-k candidates
    (or the asked token ids); ``as_ids`` writes each token as ``token_id:N``."""
    def one(i: int, lp: float) -> dict[str, Any]:
        text = f"token_id:{i}" if as_ids else _text(tok, i)
        return {"token": text, "logprob": max(lp, LOGPROB_FLOOR), "bytes": list(text.encode())}

    return {**one(token_id, logprob), "top_logprobs": [one(i, lp) for i, lp in top]}


class FakeVLLMHandler(JSONHandler):
    """HTTP routes of :class:`FakeVLLM` (``self.server.fake``)."""

    def do_GET(self) -> None:
        status, payload = self.server.fake.get(self.path.split("?")[0])
        self.send_json(status, payload)

    def do_POST(self) -> None:
        fake = self.server.fake
        route = {
            "/v1/chat/completions": fake.completion, "/tokenize": fake.tokenize,
            "/detokenize": fake.detokenize,
        }.get(self.path.split("?")[0])
        if route is None:
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "NotFoundError"}})
            return
        try:
            body = json.loads(self.read_body())
            self.send_json(200, route(body))
        except RequestError as exc:
            self.send_json(exc.status, {"error": {
                "message": str(exc), "type": exc.kind, "param": None, "code": exc.status,
            }})


@contextmanager
def serve_fake_vllm(
    lm: Any,
    *,
    flavor: Flavor = "vllm",
    model_name: str = "smollm2-served",
    latency_s: float = 0.0,
    max_logprobs: int = 20,
    token_ids: TokenIds = "honoured",
) -> Iterator[tuple[str, FakeVLLM]]:
    """Serve ``lm`` (a :class:`~valuesim.llm.local_model.LoadedModel`) on a loopback
    port; yield the base URL to give the openai plugin (``.../v1``) and the state."""
    fake = FakeVLLM(
        lm, flavor=flavor, model_name=model_name, latency_s=latency_s, max_logprobs=max_logprobs,
        token_ids=token_ids,
    )
    with local_http_server(FakeVLLMHandler, fake) as url:
        yield f"{url}/v1", fake


__all__ = ["EXTENSION_FIELDS", "FakeVLLM", "FakeVLLMHandler", "serve_fake_vllm"]
