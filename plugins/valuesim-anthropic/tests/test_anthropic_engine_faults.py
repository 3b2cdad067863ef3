"""The provider conformance suite (valuesim.testing) against the fake Anthropic server:
flaky, rate-limited, garbage and hung servers (one request per sampling draw), restarts
that pay nothing twice, and a key that reaches neither the cache nor an error."""

from __future__ import annotations

from typing import Any

import pytest
from fake_anthropic_server import FakeAnthropic, make_request
from valuesim_anthropic import AnthropicFactory

from valuesim import ModelSpec, ScoreRequest
from valuesim.testing import ProviderConformance


class TestAnthropicConformance(ProviderConformance):
    factory = AnthropicFactory
    model = "claude-haiku-4-5"
    key_env = "ANTHROPIC_API_KEY"
    default_estimator = "sampling"
    request_per_draw = True
    samples = 2
    questions = 4

    @pytest.fixture
    def server(self, fake: FakeAnthropic) -> FakeAnthropic:
        return fake

    def make_request(self, question: str) -> ScoreRequest:
        return make_request(question)

    def spec(self, server: Any, **fields: Any) -> ModelSpec:
        return ModelSpec(provider="anthropic", model=self.model, base_url=server.url, **fields)
