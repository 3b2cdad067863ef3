"""One fake OpenAI-compatible server in its own process, for the fleet tests.

A GPU server is another machine: its work must not compete with the client for
the test process's interpreter lock, or the throughput measured would be the fake's
and not valuesim's. This runs :class:`fake_openai_server.FakeOpenAI`'s wire format
with a fixed ``--latency`` per chat completion, lists ``--models`` at /v1/models,
and appends every answered request (its body and when it started and ended) to the
``--record`` file as one JSON line, after the reply was written: that file is what
"answered" means in the tests. SIGTERM, or ``--die-after`` answers, shuts it down
the way a server stops: the port refuses new connections at once, and requests
already being answered still get their reply.

Run as ``python fleet_server_process.py --record FILE ...``; prints its base URL.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fake_openai_server import FakeOpenAI, _Handler

from valuesim.testing import local_http_server


class _Fake(FakeOpenAI):
    latency: float = 0.0
    models: tuple[str, ...] = ()
    record: Any = None  # the open --record file
    die_after: int | None = None
    stop: threading.Event
    in_flight: int = 0
    answered: int = 0


class _SlowHandler(_Handler):
    def _route(self, method: str, raw: bytes) -> None:
        fake: _Fake = self.server.fake
        path = self.path.split("?")[0]
        if path == "/v1/models" and method == "GET":
            self.send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in fake.models
            ]})
            return
        if path != "/v1/chat/completions":
            super()._route(method, raw)
            return
        with fake.lock:
            fake.in_flight += 1
        start = time.monotonic()
        try:
            time.sleep(fake.latency)  # the model's time on the GPU
            # Before the reply is written: the client cannot start its next request on
            # this slot before then, so [start, end] intervals measure requests in flight.
            end = time.monotonic()
            super()._route(method, raw)  # no fault is set: every request is answered
            with fake.lock:
                line = {"body": json.loads(raw), "start": start, "end": end}
                fake.record.write(json.dumps(line) + "\n")
                fake.record.flush()
                fake.answered += 1
                if fake.die_after is not None and fake.answered >= fake.die_after:
                    fake.stop.set()
        finally:
            with fake.lock:
                fake.in_flight -= 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--record", type=Path, required=True)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--models", default="served-model")
    ap.add_argument("--die-after", type=int, default=None)
    args = ap.parse_args()
    fake = _Fake()
    fake.latency, fake.models, fake.die_after = args.latency, tuple(args.models.split(",")), args.die_after
    fake.stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: fake.stop.set())
    with args.record.open("a") as record:
        fake.record = record
        with local_http_server(_SlowHandler, fake) as url:
            print(url + "/v1", flush=True)
            fake.stop.wait()
        # The port is closed; let the requests being answered finish, as a server would.
        while fake.in_flight:
            time.sleep(0.01)
    sys.exit(0)


if __name__ == "__main__":
    main()
