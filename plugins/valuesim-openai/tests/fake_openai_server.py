"""A local HTTP server speaking the OpenAI wire format, with injectable faults.

It answers /v1/chat/completions (with logprobs/top_logprobs and ``n``), /v1/files and
/v1/batches like the real API (same JSON shapes, error envelopes and headers), so the
real ``openai`` SDK can be driven against it via ``base_url``. ``fault`` selects a
misbehaviour: "flaky" (the first attempt of every request fails with 500),
"ratelimit" (the first attempt of every request gets 429 with Retry-After), "garbage" (200 with a body that is not JSON),
"notobject" (200 with JSON that is not an object),
"hang" (no answer until the test ends), "badkey" (401 echoing the key, as real
servers partly do).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from valuesim.llm.types import ChatMessage, ScoreRequest
from valuesim.testing import JSONHandler, local_http_server

# The fake model: first-token log-probabilities (digits split like Qwen/Gemma
# tokenizers do, so "10" is "1" then "0"), and what follows a leading "1".
FIRST = {"7": math.log(0.5), " 7": math.log(0.1), "8": math.log(0.2), "1": math.log(0.1),
         "Sure": math.log(0.05), "5": math.log(0.03), "3": math.log(0.01)}
AFTER_ONE = {"0": math.log(0.6), "<|eot|>": math.log(0.3), "5": math.log(0.1)}

FAKE_KEY = "sk-test-DONOTLEAK-0123456789abcdefXYZ"
ANSWERS = tuple(str(i) for i in range(1, 11))


def make_request(question: str = "How important is family?", persona: str = "P1") -> ScoreRequest:
    return ScoreRequest(
        messages=(
            ChatMessage("system", f"You answer surveys. Your persona: {persona}"),
            ChatMessage("user", f"Question:\n{question}\n\nRespond with ONLY the single integer (1-10):"),
        ),
        answers=ANSWERS,
    )


@dataclass
class FakeOpenAI:
    fault: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)  # per request body
    bodies: list[dict[str, Any]] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    batch_fail_ids: set[str] = field(default_factory=set)  # batch lines that error
    first_token: str = "7"  # the token the model "generates" first
    url: str = ""

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        k = int(body.get("top_logprobs") or 0)
        n = int(body.get("n") or 1)
        choices = []
        if body.get("logprobs"):
            top1 = sorted(FIRST.items(), key=lambda t: -t[1])[:k]
            content = [{"token": self.first_token, "logprob": FIRST[self.first_token],
                        "bytes": list(self.first_token.encode()),
                        "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                                         for t, lp in top1]}]
            text = self.first_token
            if self.first_token == "1":
                top2 = sorted(AFTER_ONE.items(), key=lambda t: -t[1])[:k]
                content.append({"token": "0", "logprob": AFTER_ONE["0"], "bytes": [48],
                                "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                                                 for t, lp in top2]})
                text = "10"
            choices.append({"index": 0, "finish_reason": "stop", "logprobs": {"content": content},
                            "message": {"role": "assistant", "content": text}})
        else:
            rng = random.Random(json.dumps(body, sort_keys=True))
            last = body["messages"][-1]["content"]
            for i in range(n):
                if "JSON object" in last:
                    text = 'Here: {"7": 0.6, "8": 0.3, "9": 0.1}'
                else:
                    text = rng.choices(["7", "8.", "I think 7", "10"], weights=[5, 3, 1, 1])[0]
                choices.append({"index": i, "finish_reason": "stop", "logprobs": None,
                                "message": {"role": "assistant", "content": text}})
        return {"id": f"chatcmpl-{len(self.bodies)}", "object": "chat.completion",
                "created": int(time.time()), "model": body["model"], "choices": choices,
                "usage": {"prompt_tokens": 100, "completion_tokens": 2 * n, "total_tokens": 100 + 2 * n,
                          "prompt_tokens_details": {"cached_tokens": 40}}}


def _error(status: int, message: str, type_: str, code: str | None = None) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": message, "type": type_, "param": None, "code": code}}


class _Handler(JSONHandler):
    def do_GET(self) -> None:
        self._route("GET", b"")

    def do_POST(self) -> None:
        self._route("POST", self.read_body())

    def _route(self, method: str, raw: bytes) -> None:
        fake = self.server.fake
        path = self.path.split("?")[0]
        with fake.lock:
            fake.counts[path] += 1
            fake.counts["total"] += 1
            fake.auth_headers.append(self.headers.get("Authorization", ""))
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        with fake.lock:
            # "Fails half its requests": the 1st, 3rd, ... attempt of each request.
            fake.attempts[method + path + raw.decode(errors="replace")] += 1
            odd = fake.attempts[method + path + raw.decode(errors="replace")] % 2 == 1
        if fake.fault == "badkey":
            self.send_json(*_error(401, f"Incorrect API key provided: {key}. You can find your "
                                    "API key at https://platform.openai.com.", "invalid_request_error",
                               "invalid_api_key"))
            return
        if fake.fault == "hang":
            fake.release.wait(10)
            return
        if fake.fault == "flaky" and odd:
            self.send_json(*_error(500, "The server had an error while processing your request.",
                               "server_error"))
            return
        if fake.fault == "ratelimit" and odd:
            self.send_json(*_error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded"),
                       headers={"Retry-After": "0.01"})
            return
        if fake.fault == "garbage":
            self.send_json(200, None, raw=b"<html>502 Bad Gateway</html>{{{")
            return
        if fake.fault == "notobject":
            self.send_json(200, ["JSON", "but", "not", "a", "chat", "completion"])
            return
        if path == "/v1/chat/completions" and method == "POST":
            body = json.loads(raw)
            with fake.lock:
                fake.counts["paid"] += 1
                fake.bodies.append(body)
            if body["model"].startswith("o3") and body.get("logprobs"):
                self.send_json(*_error(400, "logprobs is not supported with this model",
                                   "invalid_request_error"))
                return
            self.send_json(200, fake.completion(body))
        elif path == "/v1/files" and method == "POST":
            self._upload(raw)
        elif path.startswith("/v1/files/") and path.endswith("/content"):
            self.send_json(200, None, raw=fake.files[path.split("/")[3]])
        elif path == "/v1/batches" and method == "POST":
            body = json.loads(raw)
            bid = f"batch_{len(fake.batches)}"
            fake.batches[bid] = {"id": bid, "object": "batch", "endpoint": body["endpoint"],
                                 "input_file_id": body["input_file_id"], "completion_window": "24h",
                                 "status": "validating", "created_at": int(time.time()),
                                 "output_file_id": None, "error_file_id": None, "polls": 0}
            self.send_json(200, _public(fake.batches[bid]))
        elif path.startswith("/v1/batches/") and method == "GET":
            self._poll(path.split("/")[3])
        else:
            self.send_json(*_error(404, f"Unknown request URL: {method} {path}", "invalid_request_error"))

    def _upload(self, raw: bytes) -> None:
        fake = self.server.fake
        # multipart/form-data: the file is the part with a filename
        boundary = self.headers["Content-Type"].split("boundary=")[1].encode()
        content = b""
        purpose = ""
        for part in raw.split(b"--" + boundary):
            head, _, data = part.partition(b"\r\n\r\n")
            if b'name="file"' in head:
                content = data.rsplit(b"\r\n", 1)[0]
            elif b'name="purpose"' in head:
                purpose = data.rsplit(b"\r\n", 1)[0].decode()
        fid = f"file-{len(fake.files)}"
        fake.files[fid] = content
        self.send_json(200, {"id": fid, "object": "file", "bytes": len(content), "created_at": 0,
                         "filename": "input.jsonl", "purpose": purpose, "status": "processed"})

    def _poll(self, bid: str) -> None:
        fake = self.server.fake
        batch = fake.batches[bid]
        batch["polls"] += 1
        if batch["polls"] == 1:
            batch["status"] = "in_progress"
        elif batch["status"] == "in_progress":
            out = []
            for line in fake.files[batch["input_file_id"]].decode().splitlines():
                req = json.loads(line)
                if req["custom_id"] in fake.batch_fail_ids:
                    result = {"id": "x", "custom_id": "r1", "response": None,
                              "error": {"code": "server_error", "message": "boom"}}
                else:
                    with fake.lock:
                        fake.counts["paid"] += 1
                    result = {"id": f"batch_req_{req['custom_id']}", "custom_id": req["custom_id"],
                              "response": {"status_code": 200, "request_id": "r",
                                           "body": fake.completion(req["body"])}, "error": None}
                out.append(json.dumps(result))
            ofid = f"file-{len(fake.files)}"
            fake.files[ofid] = ("\n".join(out) + "\n").encode()
            batch.update(status="completed", output_file_id=ofid)
        self.send_json(200, _public(batch))


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if k != "polls"}


@contextmanager
def serve(fake: FakeOpenAI | None = None) -> Iterator[FakeOpenAI]:
    fake = fake or FakeOpenAI()
    with local_http_server(_Handler, fake, on_close=fake.release.set) as url:
        fake.url = url + "/v1"
        yield fake
