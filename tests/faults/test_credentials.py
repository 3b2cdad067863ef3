"""Credentials: which key goes to which server, and URLs shown without their secrets.

Each case runs the real ``valuesim score`` command (the OpenAI plugin, the real SDK)
against a loopback server that records every request's headers. The refusal case
points the process's HTTP proxy at that server too, so a request that slipped past
the refusal would be recorded instead of leaving the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.fault_checks import one_error_line
from valuesim.testing import JSONHandler, local_http_server

pytest.importorskip("valuesim_openai", reason="the OpenAI provider plugin is not installed")

CLI = [sys.executable, "-c", "from valuesim.cli import main; main()"]
INHERITED = "sk-inherited-DONOTSEND-0123456789abcdef"
NAMED = "local-vllm-secret-42"
UNROUTABLE = "http://192.0.2.1/v1"  # TEST-NET-1: documentation only, never contacted


@dataclass
class Recorder:
    """What the loopback server saw, and how it answers ("ok", "500" or "garbage")."""

    mode: str = "ok"
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    """A chat completion whose first token is "4" with top-k log-probabilities."""
    top = [{"token": t, "logprob": lp, "bytes": list(t.encode())}
           for t, lp in (("4", -0.1), ("3", -2.5), ("2", -4.0), ("1", -5.0))]
    content = [{"token": "4", "logprob": -0.1, "bytes": [52], "top_logprobs": top}]
    return {"id": "c", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": {"content": content},
                         "message": {"role": "assistant", "content": "4"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}


class _Handler(JSONHandler):
    def do_POST(self) -> None:
        rec: Recorder = self.server.fake
        raw = self.read_body()
        with rec.lock:
            rec.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        if rec.mode == "500":
            self.send_json(500, {"error": {"message": "internal error", "type": "server_error"}})
        elif rec.mode == "garbage":
            self.send_json(200, None, raw=b"<html>502 Bad Gateway</html>{{{")
        else:
            self.send_json(200, _completion(json.loads(raw or b"{}")))


@pytest.fixture
def server() -> Iterator[tuple[Recorder, str]]:
    rec = Recorder()
    with local_http_server(_Handler, rec) as url:
        yield rec, url


def _params(tmp_path: Path, root: Path, models: dict[str, Any] | None = None) -> Path:
    """The project's params with a private cache, no retries and extra model entries."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["simulate"]["cache_dir"] = str(tmp_path / "cache")
    params["simulate"]["max_retries"] = 0
    params.setdefault("models", {}).update(models or {})
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump(params))
    return out


def _score(root: Path, params: Path, *args: str, env: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k.upper() not in ("OPENAI_BASE_URL", "NO_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
    cmd = [*CLI, "score", *args, "--method", "value", "--country", "JPN", "--question", "Q6",
           "--format", "json", "--params", str(params)]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120,
                          env={**base, "OPENAI_API_KEY": INHERITED, **(env or {})})



def test_inherited_openai_key_is_not_sent_to_a_local_server(
    server: tuple[Recorder, str], tmp_path: Path, root: Path
) -> None:
    rec, url = server
    proc = _score(root, _params(tmp_path, root), "--provider", "openai", "--model", "local",
                  "--base-url", f"{url}/v1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["distribution"]["4"] > 0.5  # the server really answered
    assert len(rec.requests) == 1
    assert rec.requests[0]["authorization"] == "Bearer valuesim-no-key"
    assert not any(INHERITED in v for r in rec.requests for v in r.values())


def test_key_named_by_api_key_env_is_sent(server: tuple[Recorder, str], tmp_path: Path, root: Path) -> None:
    rec, url = server
    models = {"vllm": {"provider": "openai", "model": "local", "base_url": f"{url}/v1",
                       "options": {"api_key_env": "LOCAL_VLLM_KEY"}}}
    proc = _score(root, _params(tmp_path, root, models), "--model", "vllm", env={"LOCAL_VLLM_KEY": NAMED})
    assert proc.returncode == 0, proc.stderr
    assert [r["authorization"] for r in rec.requests] == [f"Bearer {NAMED}"]


def test_key_over_plain_http_to_a_remote_host_is_refused_before_any_request(
    server: tuple[Recorder, str], tmp_path: Path, root: Path
) -> None:
    rec, url = server
    proxy = {"HTTP_PROXY": url, "http_proxy": url, "ALL_PROXY": url, "all_proxy": url,
             "LOCAL_VLLM_KEY": NAMED}
    keyed = {"provider": "openai", "model": "remote", "base_url": UNROUTABLE,
             "options": {"api_key_env": "LOCAL_VLLM_KEY"}}
    params = _params(tmp_path, root, {"keyed": keyed, "keyless": {**keyed, "options": {}}})
    line = one_error_line(_score(root, params, "--model", "keyed", env=proxy))
    assert line == (
        f"error: openai: refusing to send an API key over plain http to {UNROUTABLE}; "
        "use an https:// base_url (plain http is allowed only to localhost)"
    )
    assert rec.requests == []
    # control: without a key the same URL is used, and the proxy catches the request
    proc = _score(root, params, "--model", "keyless", env=proxy)
    assert proc.returncode == 0, proc.stderr
    assert [r["path"] for r in rec.requests] == [f"{UNROUTABLE}/chat/completions"]
    assert not any(NAMED in v or INHERITED in v for r in rec.requests for v in r.values())


@pytest.mark.parametrize("mode", ["500", "garbage"])
def test_password_in_base_url_is_not_printed(
    server: tuple[Recorder, str], tmp_path: Path, root: Path, mode: str
) -> None:
    rec, url = server
    rec.mode = mode
    port = url.rsplit(":", 1)[1]
    proc = _score(root, _params(tmp_path, root), "--provider", "openai", "--model", "local",
                  "--base-url", f"http://user:secret@127.0.0.1:{port}/v1")
    line = one_error_line(proc)
    assert rec.requests, "the server was reached"
    assert f"http://***@127.0.0.1:{port}/v1" in line
    assert "secret" not in proc.stderr + proc.stdout
    assert INHERITED not in proc.stderr + proc.stdout
    for f in (tmp_path / "cache").rglob("*"):
        if f.is_file():
            assert b"secret" not in f.read_bytes(), f


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:secret@127.0.0.1:8000/v1", "http://***@127.0.0.1:8000/v1"),
        ("https://h.example/v1?key=AIzaSECRET&alt=sse", "https://h.example/v1?key=***&alt=sse"),
        ("https://h.example/v1?api_key=secret#frag", "https://h.example/v1?api_key=***"),
        ("https://api.openai.com/v1", "https://api.openai.com/v1"),
        ("http://h:99999999/", "<malformed URL>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    from valuesim.llm.api_support import redact, redact_url

    assert redact_url(url) == shown
    assert redact(f"cannot reach {url}.") == f"cannot reach {shown}."
