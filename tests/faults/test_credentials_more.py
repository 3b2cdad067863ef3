"""Credentials, the rest: proxies, OpenAI account ids, params.yaml, compare's outputs.

* A key may go over plain http only to a loopback server, so that server must be
  reached directly: with ``HTTP_PROXY`` set, a real forwarding proxy on 127.0.0.1
  records whatever reaches it, and must see nothing (OpenAI through the real
  ``valuesim score`` command; Anthropic and Google through their providers).
* ``OPENAI_ORG_ID`` / ``OPENAI_PROJECT_ID`` name the OpenAI account: a loopback
  OpenAI-compatible server records the headers it gets, and gets neither.
* A ``base_url`` in params.yaml that carries a secret is refused before anything is
  sent (DVC would keep it in dvc.lock and its run cache).
* ``valuesim compare`` shows older runs' credentialed base_urls as the report does
  (``***``) in index.html, experiments.csv and tests.csv, from result directories and
  from real ``dvc exp run`` experiments.
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.fixtures.compare_runs import cells_frame, project_params, write_result
from tests.fixtures.credential_server import (
    INHERITED,
    NAMED,
    Recorder,
    RecordingHandler,
    params_file,
    score,
)
from tests.fixtures.fault_checks import one_error_line
from tests.fixtures.paths import ROOT
from valuesim.config import ModelSpec
from valuesim.testing import local_http_server

pytest.importorskip("valuesim_openai", reason="the OpenAI provider plugin is not installed")

ORG, PROJECT = "org-DONOTSEND-4242", "proj_DONOTSEND_4242"
PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade",
              "proxy-authorization", "proxy-authenticate", "trailer"}


@dataclass
class ProxyLog:
    """What reached the proxy: one (method, absolute URL, headers) per request."""

    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Proxy(BaseHTTPRequestHandler):
    """A plain-http forwarding proxy (absolute-URI requests), recording each one."""

    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        log: ProxyLog = self.server.fake
        headers = {k.lower(): v for k, v in self.headers.items()}
        with log.lock:
            log.seen.append((self.command, self.path, headers))
        target = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            conn.request(self.command, path, body=body or None,
                         headers={k: v for k, v in headers.items() if k not in HOP_BY_HOP})
            reply = conn.getresponse()
            data = reply.read()
        finally:
            conn.close()
        self.send_response(reply.status)
        for k, v in reply.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward


@pytest.fixture
def proxy() -> Iterator[tuple[ProxyLog, str]]:
    log = ProxyLog()
    with local_http_server(_Proxy, log) as url:
        yield log, url


@pytest.fixture
def server() -> Iterator[tuple[Recorder, str]]:
    rec = Recorder()
    with local_http_server(RecordingHandler, rec) as url:
        yield rec, url


def _proxy_env(url: str) -> dict[str, str]:
    return {var: url for var in PROXY_VARS}


def test_the_proxy_forwards_loopback_requests_when_the_environment_says_so(
    proxy: tuple[ProxyLog, str], server: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: the proxy works, and a plain httpx client sends 127.0.0.1 through it."""
    try:  # the SDKs' transport: httpx2 where installed, else httpx
        import httpx2 as httpx
    except ImportError:
        httpx = pytest.importorskip("httpx")

    log, proxy_url = proxy
    rec, url = server
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    for var, value in _proxy_env(proxy_url).items():
        monkeypatch.setenv(var, value)
    with httpx.Client() as client:
        reply = client.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": []},
                            headers={"Authorization": f"Bearer {NAMED}"})
    assert reply.status_code == 200
    assert reply.json()["choices"]
    assert [(m, u, h["authorization"]) for m, u, h in log.seen] == [
        ("POST", f"{url}/v1/chat/completions", f"Bearer {NAMED}")
    ]
    assert rec.requests[0]["authorization"] == f"Bearer {NAMED}"


def test_key_to_a_loopback_server_never_goes_through_the_proxy(
    proxy: tuple[ProxyLog, str], server: tuple[Recorder, str], tmp_path: Path, root: Path
) -> None:
    log, proxy_url = proxy
    rec, url = server
    models = {"vllm": {"provider": "openai", "model": "local", "base_url": f"{url}/v1",
                       "options": {"api_key_env": "LOCAL_VLLM_KEY"}},
              "by-name": {"provider": "openai", "model": "local-2",  # not a cache hit
                          "base_url": f"http://localhost:{urlsplit(url).port}/v1",
                          "options": {"api_key_env": "LOCAL_VLLM_KEY"}}}
    params = params_file(tmp_path, root, models)
    env = {**_proxy_env(proxy_url), "LOCAL_VLLM_KEY": NAMED}
    for model in models:
        proc = score(root, params, "--model", model, env=env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["distribution"]["4"] > 0.5  # the server really answered
    assert [r["authorization"] for r in rec.requests] == [f"Bearer {NAMED}"] * 2
    assert log.seen == []


@pytest.mark.parametrize("plugin", ["anthropic", "google"])
def test_anthropic_and_google_reach_a_loopback_server_directly(
    proxy: tuple[ProxyLog, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin: str
) -> None:
    """Each plugin's own provider and SDK, against its plugin's wire-format fake."""
    from valuesim.llm.types import Decoding
    from valuesim.plugins import providers

    log, proxy_url = proxy
    fakes = ROOT / f"plugins/valuesim-{plugin}/tests"
    pytest.importorskip(f"valuesim_{plugin}", reason=f"the {plugin} provider plugin is not installed")
    if not fakes.is_dir():
        pytest.skip(f"{fakes} (the plugin's fake server) is not in this checkout")
    monkeypatch.syspath_prepend(str(fakes))
    fake_server = importlib.import_module(f"fake_{plugin}_server")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    for var, value in _proxy_env(proxy_url).items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("LOCAL_KEY", NAMED)
    request = fake_server.make_request()
    if plugin == "anthropic":  # the Messages API samples; no log-probabilities
        request = replace(request, decoding=Decoding(estimator="sampling", samples=2))
    with fake_server.serve() as fake:
        spec = ModelSpec(provider=plugin, model="m", base_url=fake.url, options={"api_key_env": "LOCAL_KEY"})
        (dist,) = providers()[plugin].create(spec, state_dir=tmp_path).score([request])
        assert sum(dist.probs) > 0  # the fake really answered
        assert fake.keys
        assert set(fake.keys) == {NAMED}
    assert log.seen == []


def test_openai_org_and_project_ids_go_only_to_openai(
    server: tuple[Recorder, str], tmp_path: Path, root: Path
) -> None:
    rec, url = server
    env = {"OPENAI_ORG_ID": ORG, "OPENAI_PROJECT_ID": PROJECT, "OPENAI_ADMIN_KEY": INHERITED}
    models = {"vllm": {"provider": "openai", "model": "local-2", "base_url": f"{url}/v1",
                       "options": {"api_key_env": "LOCAL_VLLM_KEY"}}}
    params = params_file(tmp_path, root, models)
    # without a key (the placeholder), and with one named by api_key_env
    for args in (("--provider", "openai", "--model", "local", "--base-url", f"{url}/v1"),
                 ("--model", "vllm")):
        proc = score(root, params, *args, env={**env, "LOCAL_VLLM_KEY": NAMED})
        assert proc.returncode == 0, proc.stderr
    assert len(rec.requests) == 2
    for r in rec.requests:
        assert "openai-organization" not in r, r
        assert "openai-project" not in r, r
        assert not any(s in v for v in r.values() for s in (ORG, PROJECT, INHERITED)), r


def test_openai_org_and_project_ids_still_go_to_openai(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other half of the rule, without a request: the client for api.openai.com
    carries the ids the SDK read, as its default headers."""
    from valuesim_openai.provider import OpenAIProvider

    monkeypatch.setenv("OPENAI_API_KEY", INHERITED)
    monkeypatch.setenv("OPENAI_ORG_ID", ORG)
    monkeypatch.setenv("OPENAI_PROJECT_ID", PROJECT)
    provider = OpenAIProvider(ModelSpec(provider="openai", model="gpt-4o-mini"), state_dir=tmp_path)
    headers = provider.client.default_headers
    assert (headers["OpenAI-Organization"], headers["OpenAI-Project"]) == (ORG, PROJECT)
    assert provider.endpoint.mounts == {}  # api.openai.com keeps the environment's proxy


@pytest.mark.parametrize(
    ("url", "secret", "what"),
    [
        ("http://user:SECRETPW@127.0.0.1:{port}/v1", "SECRETPW", "a user:password@ part"),
        ("http://127.0.0.1:{port}/v1?api_key=SECRETQ", "SECRETQ", "the api_key= query parameter"),
    ],
)
def test_secret_in_a_params_base_url_is_refused_before_any_request(
    server: tuple[Recorder, str], tmp_path: Path, root: Path, url: str, secret: str, what: str
) -> None:
    rec, base = server
    port = urlsplit(base).port
    full = url.format(port=port)
    for model, value in (("vllm", full), ("fleet", [f"{base}/v1", full])):
        # refused at params load, before the model is created or anything sent
        folder = tmp_path / model
        folder.mkdir()
        params = params_file(folder, root, {model: {"provider": "openai", "model": "local", "base_url": value}})
        proc = score(root, params, "--model", model)
        line = one_error_line(proc)
        assert proc.returncode == 2  # a configuration error
        assert line.startswith(f"error: {params}: models.{model}.base_url: Value error, base_url '"), line
        assert f"carries {what}, which would be kept in git, dvc.lock and DVC's run cache; " in line
        assert line.endswith("put the secret in an environment variable and name it in options.api_key_env")
        assert secret not in proc.stderr + proc.stdout
    assert rec.requests == []


CREDENTIALED = {
    "a": "http://alice:PW-ALICE-123@gpu-a.example:8000/v1?api_key=QK-ALICE-456",
    "b": "https://bob:PW-BOB-789@gpu-b.example/v1?token=QK-BOB-000&alt=sse",
}
SECRETS = ("PW-ALICE-123", "QK-ALICE-456", "PW-BOB-789", "QK-BOB-000", "alice", "bob")


def _with_model_url(params: dict[str, Any], url: str) -> dict[str, Any]:
    params["models"]["vllm"] = {"provider": "openai", "model": "local", "base_url": url}
    return params


def _assert_no_secret(out: Path) -> None:
    for name in ("index.html", "experiments.csv", "tests.csv"):
        text = (out / name).read_text(encoding="utf-8")
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {name}"


def test_compare_of_result_directories_shows_no_base_url_credential(tmp_path: Path) -> None:
    dirs = []
    for i, (tag, url) in enumerate(CREDENTIALED.items()):
        params = _with_model_url(project_params(**{"prompts.guidance": ("minimal", "decisive")[i]}), url)
        folder = tmp_path / f"run-{tag}"
        folder.mkdir()
        dirs.append(write_result(folder, params, cells_frame({"country": 0.05 * i}, seed=i)))
    out = tmp_path / "compare"
    valuesim = [sys.executable, "-c", "from valuesim.cli import main; main()"]
    done = subprocess.run([*valuesim, "compare", *map(str, dirs), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    _assert_no_secret(out)
    for secret in SECRETS:
        assert secret not in done.stdout + done.stderr
    experiments = (out / "experiments.csv").read_text(encoding="utf-8")
    # the URLs still tell the runs apart, as the report shows them
    assert "http://***@gpu-a.example:8000/v1?api_key=***" in experiments
    assert "https://***@gpu-b.example/v1?token=***&alt=sse" in experiments


@pytest.mark.slow  # runs DVC: about 15 s
def test_compare_of_dvc_experiments_shows_no_base_url_credential(tmp_path: Path) -> None:
    """Experiments made before params refused credentials: their params.yaml, read at
    each experiment's revision, still holds the secret; compare's folder must not."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}

    def run(*args: str) -> None:
        done = subprocess.run(args, cwd=repo, capture_output=True, text=True, check=False, env=env,
                              timeout=300)
        assert done.returncode == 0, f"{args}: {done.stderr}"

    repo = tmp_path / "project"
    (repo / "inputs").mkdir(parents=True)
    for i, guidance in enumerate(("social_science", "minimal", "decisive")):
        cells_frame({"country": 0.05 * i}, seed=i).write_parquet(repo / "inputs" / f"{guidance}.parquet")
    (repo / "stage.py").write_text(
        "import shutil, yaml\nfrom pathlib import Path\n"
        "g = yaml.safe_load(open('params.yaml'))['prompts']['guidance']\n"
        "Path('data/eval').mkdir(parents=True, exist_ok=True)\n"
        "shutil.copy(Path('inputs') / f'{g}.parquet', 'data/eval/cells.parquet')\n"
    )
    params = _with_model_url(project_params(), "http://127.0.0.1:8000/v1")
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluate": {
        "cmd": f"{sys.executable} stage.py", "deps": ["stage.py", "inputs"],
        "params": ["prompts.guidance", "models.vllm.base_url"], "outs": ["data/eval"],
    }}}))
    run("git", "init", "-q")
    run("git", "config", "user.email", "test@example.com")
    run("git", "config", "user.name", "test")
    run(sys.executable, "-m", "dvc", "init", "-q")
    run(sys.executable, "-m", "dvc", "repro", "-q")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    for tag, guidance in (("a", "minimal"), ("b", "decisive")):
        run(sys.executable, "-m", "dvc", "exp", "run", "-q", "-n", f"cred-{tag}",
            "-S", f"prompts.guidance={guidance}", "-S", f"models.vllm.base_url='{CREDENTIALED[tag]}'")  # quoted for Hydra
    out = tmp_path / "compare"
    valuesim = Path(sys.executable).with_name("valuesim")
    cmd = [str(valuesim), "compare", "cred-*", "--out", str(out)] if valuesim.exists() else [
        sys.executable, "-c", "from valuesim.cli import main; main()", "compare", "cred-*", "--out", str(out)]
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=False, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    _assert_no_secret(out)
    experiments = (out / "experiments.csv").read_text(encoding="utf-8")
    assert "http://***@gpu-a.example:8000/v1?api_key=***" in experiments
