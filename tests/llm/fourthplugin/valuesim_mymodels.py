"""A fourth provider plugin, written from the README's example (imports from ``valuesim`` only).

``mymodels`` is a made-up vendor whose HTTP API answers ``POST /v1/complete`` with
``{"replies": [...], "usage": {...}}``. Its "SDK" is the standard library here; a
real plugin imports its vendor's SDK inside ``make_client``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from valuesim import (
    AnswerDistribution,
    APIProvider,
    Capabilities,
    ModelSpec,
    ProviderError,
    ProviderFactory,
    ProviderOptions,
    ScoreRequest,
    TransientProviderError,
    Usage,
    from_samples,
    hookimpl,
    http_status_error,
    transport,
)


class MyOptions(ProviderOptions):  # timeout_s and api_key_env come with the base
    poll_interval_s: float = transport(0.5, description="wait between polls of a queued reply")
    max_tokens: int = 8  # changes answers: part of the cache key


class MyProvider(APIProvider):
    name = "mymodels"
    default_url = "https://api.mymodels.example/v1"
    key_env_vars = ("MYMODELS_API_KEY",)  # sent to default_url's host only
    options_model = MyOptions
    capabilities = Capabilities(sampling=True, text_generation=True)
    estimators = ("sampling",)
    samples_in_one_request = True  # one request returns all `n` replies

    def make_client(self) -> Any:  # import the vendor's SDK here, its retries off
        return _Client(self.endpoint.url, self.endpoint.sdk_key, self.timeout_s, self.options.poll_interval_s)

    def request_body(self, request: ScoreRequest) -> dict[str, Any]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        return {"model": self.model, "messages": messages, "n": request.decoding.samples,
                "max_tokens": self.options.max_tokens}

    def send(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.call(lambda: self.client.complete(body))

    def distribution(self, request: ScoreRequest, replies: list[dict[str, Any]]) -> AnswerDistribution:
        u = replies[0].get("usage", {})
        usage = Usage(prompt_tokens=u.get("input_tokens", 0), completion_tokens=u.get("output_tokens", 0))
        return from_samples(replies[0]["replies"], request.answers, usage=usage)

    def translate_error(self, exc: Exception) -> None:  # what the engine retries, in one line
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()
            raise http_status_error(self.name, self.where, exc.code, exc.reason, headers=exc.headers,
                                    key=self.endpoint.key) from None
        if isinstance(exc, TimeoutError):
            raise TransientProviderError(f"{self.name}: no response from {self.where} within {self.timeout_s:g} s") from None
        if isinstance(exc, urllib.error.URLError):
            raise TransientProviderError(f"{self.name}: cannot reach {self.where}") from None
        if isinstance(exc, ValueError):  # a body that is not JSON
            raise ProviderError(f"{self.name}: unreadable response from {self.where}") from None


class MyFactory:
    name, package = "mymodels", "valuesim-mymodels"
    capabilities, options = MyProvider.capabilities, MyOptions

    def create(self, spec: ModelSpec, *, state_dir: Path) -> MyProvider:
        return MyProvider(spec, state_dir=state_dir)


@hookimpl
def register_providers(register: Callable[[ProviderFactory], None]) -> None:
    register(MyFactory())


class _Client:
    """The vendor's SDK, as far as this test needs one."""

    def __init__(self, url: str, key: str, timeout: float, poll_interval_s: float) -> None:
        self.url, self.key, self.timeout, self.poll_interval_s = url, key, timeout, poll_interval_s

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        while True:
            request = urllib.request.Request(
                f"{self.url}/complete", data=json.dumps(body).encode(), method="POST",
                headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply: dict[str, Any] = json.loads(response.read())
            if reply.get("status") != "queued":
                return reply
            time.sleep(self.poll_interval_s)
