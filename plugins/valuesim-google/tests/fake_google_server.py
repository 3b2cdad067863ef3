"""A local HTTP server speaking the Gemini API wire format, with injectable faults.

``POST /{version}/models/{model}:generateContent`` answers with the real JSON shape
(camelCase ``candidates[].logprobsResult.topCandidates/chosenCandidates``,
``usageMetadata``) and the Google error envelope (``{"error": {"code", "message",
"status"}}``), so the real ``google-genai`` SDK runs against it via ``base_url``.
Faults: "flaky" (first attempt of every request: 503, so half of all requests fail),
"ratelimit" (first attempt: 429 with Retry-After), "garbage" (not JSON), "empty"
(JSON without candidates), "hang", "badkey" (400 echoing the key). Requests that
produced an answer are counted as "paid".
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from valuesim.llm.types import ChatMessage, ScoreRequest
from valuesim.testing import JSONHandler, local_http_server

FAKE_KEY = "AIza-test-DONOTLEAK-0123456789abcdef"
ANSWERS = ("1", "2", "3", "4")
# First-token distribution of the fake model (" 2" merges with "2").
TOP = {"2": math.log(0.55), "1": math.log(0.25), " 2": math.log(0.1), "**": math.log(0.05),
       "3": math.log(0.04)}
REPLIES = ["2", "2", "1", "3", "Two"]


def make_request(question: str = "How important is family?") -> ScoreRequest:
    return ScoreRequest(
        messages=(
            ChatMessage("system", "You answer surveys. Your persona: P1"),
            ChatMessage("user", f"Question:\n{question}\n\nRespond with ONLY the single integer (1-4):"),
        ),
        answers=ANSWERS,
    )


@dataclass
class FakeGemini:
    fault: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # x-goog-api-key of each request
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    replies: Iterator[str] = field(default_factory=lambda: itertools.cycle(REPLIES))
    url: str = ""
    # Logprob positions the fake model generates: (chosen token, top-k at that position).
    positions: list[tuple[str, dict[str, float]]] = field(default_factory=lambda: [("2", TOP)])

    def generate(self, body: dict[str, Any]) -> dict[str, Any]:
        config = body.get("generationConfig", {})
        with self.lock:
            self.counts["paid"] += 1
            self.bodies.append(body)
            text = next(self.replies)
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"},
                                     "finishReason": "STOP", "index": 0}
        if config.get("responseLogprobs"):
            k = int(config.get("logprobs") or 0)
            positions = self.positions[: int(config.get("maxOutputTokens") or 1)]
            candidate["content"]["parts"][0]["text"] = "".join(tok for tok, _ in positions)
            candidate["logprobsResult"] = {
                "topCandidates": [
                    {"candidates": [{"token": t, "logProbability": lp}
                                    for t, lp in sorted(top.items(), key=lambda t: -t[1])[:k]]}
                    for _, top in positions
                ],
                "chosenCandidates": [{"token": tok, "logProbability": top[tok]} for tok, top in positions],
            }
        elif "JSON object" in body["contents"][-1]["parts"][0]["text"]:
            candidate["content"]["parts"][0]["text"] = '```json\n{"1": 0.1, "2": 0.7, "3": 0.2}\n```'
        return {"candidates": [candidate], "modelVersion": "fake",
                "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 1,
                                  "totalTokenCount": 51, "cachedContentTokenCount": 30}}


def _error(code: int, status: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {"error": {"code": code, "message": message, "status": status}}


class _Handler(JSONHandler):
    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.read_body()
        with fake.lock:
            fake.counts["total"] += 1
            fake.paths.append(self.path)
            fake.attempts[self.path + raw.decode()] += 1
            odd = fake.attempts[self.path + raw.decode()] % 2 == 1
        key = self.headers.get("x-goog-api-key", "")
        with fake.lock:
            fake.keys.append(key)
        if fake.fault == "badkey":
            self.send_json(*_error(400, "INVALID_ARGUMENT", f"API key not valid: {key}. Please pass a valid API key."))
        elif fake.fault == "hang":
            fake.release.wait(10)
        elif fake.fault == "flaky" and odd:
            self.send_json(*_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."))
        elif fake.fault == "ratelimit" and odd:
            self.send_json(*_error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted"),
                       headers={"Retry-After": "0.01"})
        elif fake.fault == "garbage":
            self.send_json(200, None, raw=b"not json at all")
        elif fake.fault == "empty":
            self.send_json(200, {"usageMetadata": {"promptTokenCount": 50}})
        elif self.path.endswith(":generateContent") and "/models/" in self.path:
            body = json.loads(raw)
            if "nologprobs" in self.path and body.get("generationConfig", {}).get("responseLogprobs"):
                self.send_json(*_error(400, "INVALID_ARGUMENT", "Logprobs is not supported for the current model."))
            else:
                self.send_json(200, fake.generate(body))
        else:
            self.send_json(*_error(404, "NOT_FOUND", f"{self.path} not found"))


@contextmanager
def serve(fake: FakeGemini | None = None) -> Iterator[FakeGemini]:
    fake = fake or FakeGemini()
    with local_http_server(_Handler, fake, on_close=fake.release.set) as url:
        fake.url = url
        yield fake
