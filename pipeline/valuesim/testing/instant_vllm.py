"""A zero-latency vLLM-like chat-completions server, in its own process, for client benchmarks.

It answers ``POST /v1/chat/completions`` at once with a fixed reply in vLLM's wire
format (first-token top-k log-probabilities; after ``continue_final_message`` with
an assistant turn "1", the continuing digit's top-k, and a prompt one token longer,
as a server that continues the turn reports it), ``GET /v1/models`` and vLLM's
``GET /version``. There is no model: what it measures is the client (the openai
plugin, the engine, the response cache), not the server. It runs in a process of
its own so that its work does not compete for the client's interpreter lock, and
``GET /bench/stats`` tells the requests it answered and its own CPU seconds, so a
benchmark can report the client's CPU apart from the server's.

HTTP/1.1 with keep-alive, as vLLM's uvicorn server: one connection per client slot,
reused. Run ``python -m valuesim.testing.instant_vllm [--port N]``: prints the base
URL (``http://127.0.0.1:PORT/v1``) on one line, serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import signal
import sys
import threading
from typing import Any

from valuesim.testing._server import JSONHandler, _Server

MODEL = "instant-served"
# The first generated token's candidates (a 1-10 scale: "1" also begins "10") and
# what follows a leading "1" (SmolLM2-like: each digit a token, "<|im_end|>" ends).
FIRST = {"7": 0.4, "5": 0.2, "8": 0.15, "1": 0.1, "6": 0.05, "3": 0.04, "9": 0.03, "2": 0.02, "4": 0.01}
AFTER_ONE = {"0": 0.6, "<|im_end|>": 0.3, "5": 0.1}
PROMPT_TOKENS = 120


def _content(top: dict[str, float], k: int) -> list[dict[str, Any]]:
    ranked = sorted(top.items(), key=lambda t: -t[1])[: max(k, 1)]
    token, p = ranked[0]
    entry = {"token": token, "logprob": math.log(p), "bytes": list(token.encode())}
    return [{**entry, "top_logprobs": [
        {"token": t, "logprob": math.log(q), "bytes": list(t.encode())} for t, q in ranked[:k]
    ]}]


class _Handler(JSONHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connections
    # One write per reply (headers and body together), as uvicorn writes: written in two
    # pieces, Nagle's algorithm holds the body until the client's delayed ACK (~40 ms).
    wbufsize = -1

    def send_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> None:
        super().send_json(status, payload, headers, raw)
        self.wfile.flush()

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [
                {"id": MODEL, "object": "model", "created": 0, "owned_by": "vllm"}
            ]})
        elif path == "/version":
            self.send_json(200, {"version": "0.10.1"})
        elif path == "/bench/stats":
            ru = resource.getrusage(resource.RUSAGE_SELF)
            self.send_json(200, {"requests": self.server.fake["requests"], "cpu_s": ru.ru_utime + ru.ru_stime})
        else:
            self.send_json(404, {"error": {"message": f"no route {path}", "type": "NotFoundError"}})

    def do_POST(self) -> None:
        body = json.loads(self.read_body())
        if self.path.split("?")[0] != "/v1/chat/completions" or body.get("model") != MODEL:
            self.send_json(404, {"error": {"message": "no such route or model", "type": "NotFoundError"}})
            return
        messages = body["messages"]
        continued = bool(body.get("continue_final_message")) and messages[-1]["role"] == "assistant"
        top = AFTER_ONE if continued and messages[-1]["content"] == "1" else FIRST
        k = int(body.get("top_logprobs") or 0)
        content = _content(top, k)
        prompt = PROMPT_TOKENS + (len(messages[-1]["content"].encode()) if continued else 0)
        with self.server.lock:
            self.server.fake["requests"] += 1
            n = self.server.fake["requests"]
        self.send_json(200, {
            "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": MODEL,
            "choices": [{
                "index": 0, "finish_reason": "length",
                "logprobs": {"content": content} if body.get("logprobs") else None,
                "message": {"role": "assistant", "content": content[0]["token"]},
            }],
            "usage": {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1,
                      "prompt_tokens_details": {"cached_tokens": 0}},
        })


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = _Server(("127.0.0.1", args.port), _Handler)
    server.fake = {"requests": 0}
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    print(f"http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
