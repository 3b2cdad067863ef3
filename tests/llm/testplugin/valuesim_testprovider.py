"""A deterministic provider plugin for the engine's tests (registered via entry point).

It answers every request with a distribution derived from a hash of the prompt, so
two runs give identical numbers, and appends one line per answered request to the
file named by ``VALUESIM_TEST_LOG`` (what was "paid for"). ``VALUESIM_TEST_DELAY``
(seconds per call) makes it slow enough to be killed mid-run. A prompt containing
``[no-coverage]`` gets no probability on any answer; a call with a prompt containing
``VALUESIM_TEST_FAIL_MARKER`` fails for good. It is a real provider under the engine:
the engine is what the tests exercise.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from valuesim import hookimpl
from valuesim.errors import ProviderError
from valuesim.llm.types import AnswerDistribution, Capabilities, ScoreRequest, Usage

CAPABILITIES = Capabilities(logprobs=True, top_logprobs=5, sampling=True)


def request_digest(request: ScoreRequest) -> str:
    blob = "\x1f".join([*(m.role + ":" + m.content for m in request.messages), *request.answers])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def hashed_distribution(request: ScoreRequest) -> AnswerDistribution:
    if any("[no-coverage]" in m.content for m in request.messages):
        return AnswerDistribution(
            probs=(0.0,) * len(request.answers), coverage=0.0,
            estimator=request.decoding.estimator or "logprobs",
        )
    digest = request_digest(request)
    logits = [int(digest[2 * i : 2 * i + 2] or "0", 16) / 64 for i, _ in enumerate(request.answers)]
    top = max(logits)
    weights = [math.exp(x - top) for x in logits]
    total = sum(weights)
    coverage = 0.5 + int(digest[-2:], 16) / 512
    tokens = sum(len(m.content.split()) for m in request.messages)
    return AnswerDistribution(
        probs=tuple(w / total for w in weights),
        coverage=coverage,
        estimator=request.decoding.estimator or "logprobs",
        usage=Usage(prompt_tokens=tokens, completion_tokens=1),
    )


class HashProvider:
    name = "testprovider"
    capabilities = CAPABILITIES

    def __init__(self, model: str, revision: str | None) -> None:
        self.model = model
        self.revision = revision
        self.log = os.environ.get("VALUESIM_TEST_LOG")
        self.delay = float(os.environ.get("VALUESIM_TEST_DELAY", "0"))

    def score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        if self.delay:
            time.sleep(self.delay)
        marker = os.environ.get("VALUESIM_TEST_FAIL_MARKER")
        if marker and any(marker in m.content for r in requests for m in r.messages):
            raise ProviderError("the server returned a malformed body")
        out = [hashed_distribution(r) for r in requests]
        if self.log:
            with Path(self.log).open("a") as fh:
                fh.writelines(f"{request_digest(r)}\n" for r in requests)
                fh.flush()
        return out


class HashFactory:
    name = "testprovider"
    package = "valuesim-testprovider"
    capabilities = CAPABILITIES

    def create(self, spec, *, state_dir: Path) -> HashProvider:  # type: ignore[no-untyped-def]
        return HashProvider(spec.model, spec.revision)


@hookimpl
def register_providers(register: Callable[[HashFactory], None]) -> None:
    register(HashFactory())
