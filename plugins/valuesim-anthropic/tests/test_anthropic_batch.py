"""Message Batches lifecycle against the fake server: create, poll, results, resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from fake_anthropic_server import FakeAnthropic, make_request
from valuesim_anthropic.provider import AnthropicProvider

from valuesim.config import ModelSpec
from valuesim.contracts import TransientProviderError
from valuesim.llm.types import Decoding

REQS = [replace(make_request(f"Q{i}?"), decoding=Decoding(estimator="sampling", samples=3)) for i in range(2)]


def batch_provider(fake: FakeAnthropic, state: Path, **options: object) -> AnthropicProvider:
    spec = ModelSpec(provider="anthropic", model="claude-haiku-4-5", base_url=fake.url,
                     batch_api=True, options={"batch_poll_s": 0.01, **options})
    return AnthropicProvider(spec, state_dir=state)


def test_batch_lifecycle_and_resume(fake: FakeAnthropic, tmp_path: Path) -> None:
    with pytest.raises(TransientProviderError, match="still in_progress"):
        batch_provider(fake, tmp_path, batch_wait_s=0).score(REQS)
    assert fake.counts["/v1/messages/batches"] == 1
    results = batch_provider(fake, tmp_path).score(REQS)  # a new process resumes it
    assert fake.counts["/v1/messages/batches"] == 1  # not submitted twice
    entries = fake.batches["msgbatch_0"]["_requests"]
    assert [e["custom_id"] for e in entries] == ["r0-s0", "r0-s1", "r0-s2", "r1-s0", "r1-s1", "r1-s2"]
    assert entries[0]["params"]["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert fake.counts["paid"] == 6
    assert fake.counts["/v1/messages"] == 0
    assert len(results) == 2
    assert all(r.estimator == "sampling" for r in results)


def test_errored_entries_are_sent_directly(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.batch_fail_ids = {"r1-s2"}
    results = batch_provider(fake, tmp_path).score(REQS)
    assert fake.counts["/v1/messages"] == 1
    assert fake.counts["paid"] == 6
    assert len(results) == 2
