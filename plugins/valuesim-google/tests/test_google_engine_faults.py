"""The provider conformance suite (valuesim.testing) against the fake Gemini server:
flaky, rate-limited, garbage, empty and hung servers, with log-probabilities and with
sampling (one request per draw), restarts that pay nothing twice, and a key that
reaches neither the cache nor an error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from fake_google_server import FakeGemini, make_request
from valuesim_google import GoogleFactory

from valuesim import ModelSpec, ScoreRequest
from valuesim.testing import ProviderConformance


class TestGoogleConformance(ProviderConformance):
    factory = GoogleFactory
    model = "gemini-2.0-flash"
    key_env = "GEMINI_API_KEY"
    estimators = (None, "sampling")
    default_estimator = "top_logprobs"
    request_per_draw = True
    samples = 3
    min_coverage: ClassVar[Mapping[str, Any]] = {"top_logprobs": 0.9}
    broken_bodies: ClassVar[Mapping[str, Any]] = {"garbage": "unreadable response", "empty": "malformed response"}
    badkey_message = "HTTP 400"  # the Gemini API answers a bad key with 400 INVALID_ARGUMENT

    @pytest.fixture
    def server(self, fake: FakeGemini) -> FakeGemini:
        return fake

    def make_request(self, question: str) -> ScoreRequest:
        return make_request(question)

    def spec(self, server: Any, **fields: Any) -> ModelSpec:
        return ModelSpec(provider="google", model=self.model, base_url=server.url, **fields)
