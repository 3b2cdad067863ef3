"""The provider conformance suite (valuesim.testing) against the fake OpenAI server:
flaky, rate-limited, garbage and hung servers, restarts that pay nothing twice, and a
key that reaches neither the cache nor an error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
from fake_openai_server import FakeOpenAI, make_request
from valuesim_openai import OpenAIFactory

from valuesim import ModelSpec, ScoreRequest
from valuesim.testing import ProviderConformance


class TestOpenAIConformance(ProviderConformance):
    factory = OpenAIFactory
    model = "gpt-4o-mini"
    key_env = "OPENAI_API_KEY"
    estimators = (None, "sampling")
    default_estimator = "top_logprobs"
    min_coverage: ClassVar[Mapping[str, Any]] = {"top_logprobs": 0.9}

    @pytest.fixture
    def server(self, fake: FakeOpenAI) -> FakeOpenAI:
        return fake

    def make_request(self, question: str) -> ScoreRequest:
        return make_request(question)

    def spec(self, server: Any, **fields: Any) -> ModelSpec:
        return ModelSpec(provider="openai", model=self.model, base_url=server.url, **fields)
