"""A wire-format fake of a vendor API on 127.0.0.1, for provider plugin tests.

Plugin tests drive the real SDK against a small HTTP server that speaks the
vendor's JSON (see ``plugins/*/tests/fake_*_server.py``); this runs one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JSONHandler(BaseHTTPRequestHandler):
    """Base for a fake API's request handler: quiet, reads bodies, writes JSON replies."""

    server: Any  # local_http_server's; ``self.server.fake`` is the fake's state

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> None:
        """Reply ``payload`` as JSON (or ``raw`` bytes as they are, for malformed bodies)."""
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler that hangs on purpose must not block shutdown
    fake: Any


@contextmanager
def local_http_server(
    handler: type[BaseHTTPRequestHandler],
    fake: Any,
    *,
    on_close: Callable[[], None] | None = None,
) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port in a thread; yield its base URL.

    Handlers reach ``fake`` (the server's state and its fault switches) as
    ``self.server.fake``. ``on_close`` runs before shutdown, e.g. to release
    handlers that are hanging on purpose.
    """
    server = _Server(("127.0.0.1", 0), handler)
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        if on_close is not None:
            on_close()
        server.shutdown()
        server.server_close()
        thread.join()
