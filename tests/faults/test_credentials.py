"""Credentials: which key goes to which server, and URLs shown without their secrets.

Each case runs the real ``valuesim score`` command (the OpenAI plugin, the real SDK)
against a loopback server that records every request's headers. The refusal case
points the process's HTTP proxy at that server too, so a request that slipped past
the refusal would be recorded instead of leaving the machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.credential_server import (
    INHERITED,
    NAMED,
    Recorder,
    RecordingHandler,
    params_file,
    score,
)
from tests.fixtures.fault_checks import one_error_line
from valuesim.testing import local_http_server

pytest.importorskip("valuesim_openai", reason="the OpenAI provider plugin is not installed")

UNROUTABLE = "http://192.0.2.1/v1"  # TEST-NET-1: documentation only, never contacted


@pytest.fixture
def server() -> Iterator[tuple[Recorder, str]]:
    rec = Recorder()
    with local_http_server(RecordingHandler, rec) as url:
        yield rec, url


def test_inherited_openai_key_is_not_sent_to_a_local_server(
    server: tuple[Recorder, str], tmp_path: Path, root: Path
) -> None:
    rec, url = server
    proc = score(root, params_file(tmp_path, root), "--provider", "openai", "--model", "local",
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
    proc = score(root, params_file(tmp_path, root, models), "--model", "vllm", env={"LOCAL_VLLM_KEY": NAMED})
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
    params = params_file(tmp_path, root, {"keyed": keyed, "keyless": {**keyed, "options": {}}})
    line = one_error_line(score(root, params, "--model", "keyed", env=proxy))
    assert line == (
        f"error: openai: refusing to send an API key over plain http to {UNROUTABLE}; "
        "use an https:// base_url (plain http is allowed only to localhost)"
    )
    assert rec.requests == []
    # control: without a key the same URL is used, and the proxy catches the request
    proc = score(root, params, "--model", "keyless", env=proxy)
    assert proc.returncode == 0, proc.stderr
    assert [r["path"] for r in rec.requests] == [f"{UNROUTABLE}/chat/completions"]
    assert not any(NAMED in v or INHERITED in v for r in rec.requests for v in r.values())


@pytest.mark.parametrize("mode", ["500", "garbage"])
def test_password_in_base_url_is_refused_and_not_printed(
    server: tuple[Recorder, str], tmp_path: Path, root: Path, mode: str
) -> None:
    """A --base-url carrying a secret is refused before anything is created or sent, as
    in params.yaml (it would stay in the shell's history and the process list); the
    refusal shows the URL redacted."""
    rec, url = server
    rec.mode = mode
    port = url.rsplit(":", 1)[1]
    proc = score(root, params_file(tmp_path, root), "--provider", "openai", "--model", "local",
                  "--base-url", f"http://user:secret@127.0.0.1:{port}/v1")
    line = one_error_line(proc)
    assert not rec.requests, "nothing reached the server"
    assert f"--base-url 'http://***@127.0.0.1:{port}/v1' carries a user:password@ part" in line
    assert "secret" not in proc.stderr + proc.stdout
    assert INHERITED not in proc.stderr + proc.stdout
    assert not (tmp_path / "cache").exists()


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
