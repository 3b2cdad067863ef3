"""A local HTTP server speaking Anthropic's wire format, with injectable faults.

/v1/messages and /v1/messages/batches (create, retrieve, results as JSONL) with the
real JSON shapes, error envelopes (``{"type": "error", "error": {...}}``) and
headers, so the real ``anthropic`` SDK runs against it via ``base_url``. Faults:
"flaky" (first attempt of every request: 500), "ratelimit" (first attempt: 429 with
retry-after), "garbage" (200, not JSON), "hang", "badkey" (401 echoing the key).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from valuesim.llm.types import ChatMessage, ScoreRequest
from valuesim.testing import JSONHandler, local_http_server

FAKE_KEY = "sk-ant-test-DONOTLEAK-0123456789abcdef"
ANSWERS = tuple(str(i) for i in range(1, 11))
# The fake model's replies, cycled: 7 (x3), 8, "10", and one off-scale reply.
REPLIES = ["7", "8", "7", "10", "7", "Well, it depends"]


def make_request(question: str = "How important is family?", persona: str = "P1") -> ScoreRequest:
    return ScoreRequest(
        messages=(
            ChatMessage("system", f"You answer surveys. Your persona: {persona}"),
            ChatMessage("user", f"Question:\n{question}\n\nRespond with ONLY the single integer (1-10):"),
        ),
        answers=ANSWERS,
    )


@dataclass
class FakeAnthropic:
    fault: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # x-api-key of each request
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_fail_ids: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    replies: Iterator[str] = field(default_factory=lambda: itertools.cycle(REPLIES))
    url: str = ""

    def message(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.counts["paid"] += 1
            self.bodies.append(body)
            text = next(self.replies)
        if "JSON object" in body["messages"][-1]["content"]:
            text = '{"7": 0.5, "8": 0.25, "10": 0.25}'
        system = body.get("system")
        cached = isinstance(system, list) and bool(system[0].get("cache_control"))
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 20, "output_tokens": 1,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 80 if cached else 0}}


def _error(status: int, type_: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"type": "error", "error": {"type": type_, "message": message}}


class _Handler(JSONHandler):
    def do_GET(self) -> None:
        self._route("GET", b"")

    def do_POST(self) -> None:
        self._route("POST", self.read_body())

    def _key(self) -> str:
        """The key as sent: ``x-api-key`` (the API's header) or a Bearer token (newer SDKs)."""
        bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
        return self.headers.get("x-api-key", "") or bearer

    def _route(self, method: str, raw: bytes) -> None:
        fake = self.server.fake
        path = self.path.split("?")[0]
        with fake.lock:
            fake.counts[path] += 1
            fake.counts["total"] += 1
            fake.keys.append(self._key())
            fake.attempts[method + path + raw.decode()] += 1
            odd = fake.attempts[method + path + raw.decode()] % 2 == 1
        key = self._key()
        if fake.fault == "badkey":
            self.send_json(*_error(401, "authentication_error", f"invalid x-api-key {key}"))
        elif fake.fault == "hang":
            fake.release.wait(10)
        elif fake.fault == "flaky" and odd:
            self.send_json(*_error(500, "api_error", "Internal server error"))
        elif fake.fault == "ratelimit" and odd:
            self.send_json(*_error(429, "rate_limit_error", "Number of requests has exceeded your rate limit"),
                       headers={"retry-after": "0.01"})
        elif fake.fault == "garbage":
            self.send_json(200, None, raw=b"\x00garbage{")
        elif path == "/v1/messages" and method == "POST":
            body = json.loads(raw)
            if "notemp" in body["model"] and "temperature" in body:
                self.send_json(*_error(400, "invalid_request_error",
                                   "temperature is not supported for this model"))
            else:
                self.send_json(200, fake.message(body))
        elif path == "/v1/messages/batches" and method == "POST":
            self._create_batch(json.loads(raw))
        elif path.startswith("/v1/messages/batches/") and path.endswith("/results"):
            self.send_json(200, None, raw=fake.batches[path.split("/")[4]]["_results"])
        elif path.startswith("/v1/messages/batches/"):
            self._poll(path.split("/")[4])
        else:
            self.send_json(*_error(404, "not_found_error", f"{method} {path} not found"))

    def _create_batch(self, body: dict[str, Any]) -> None:
        fake = self.server.fake
        bid = f"msgbatch_{len(fake.batches)}"
        fake.batches[bid] = {
            "id": bid, "type": "message_batch", "processing_status": "in_progress",
            "request_counts": {"processing": len(body["requests"]), "succeeded": 0, "errored": 0,
                               "canceled": 0, "expired": 0},
            "created_at": "2025-01-01T00:00:00Z", "expires_at": "2025-01-02T00:00:00Z",
            "ended_at": None, "cancel_initiated_at": None, "archived_at": None, "results_url": None,
            "_requests": body["requests"], "_polls": 0,
        }
        self.send_json(200, _public(fake.batches[bid]))

    def _poll(self, bid: str) -> None:
        fake = self.server.fake
        batch = fake.batches[bid]
        batch["_polls"] += 1
        if batch["_polls"] >= 2 and batch["processing_status"] == "in_progress":
            lines = []
            for entry in batch["_requests"]:
                if entry["custom_id"] in fake.batch_fail_ids:
                    result: dict[str, Any] = {"type": "errored", "error": {
                        "type": "error", "error": {"type": "api_error", "message": "boom"}}}
                else:
                    result = {"type": "succeeded", "message": fake.message(entry["params"])}
                lines.append(json.dumps({"custom_id": entry["custom_id"], "result": result}))
            batch["_results"] = ("\n".join(lines) + "\n").encode()
            batch.update(processing_status="ended", ended_at="2025-01-01T01:00:00Z",
                         results_url=f"{fake.url}/v1/messages/batches/{bid}/results")
        self.send_json(200, _public(batch))


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}


@contextmanager
def serve(fake: FakeAnthropic | None = None) -> Iterator[FakeAnthropic]:
    fake = fake or FakeAnthropic()
    with local_http_server(_Handler, fake, on_close=fake.release.set) as url:
        fake.url = url
        yield fake
