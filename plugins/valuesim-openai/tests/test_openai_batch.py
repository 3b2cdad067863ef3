"""Batch API lifecycle against the fake server: upload, create, poll, download, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAI, make_request
from valuesim_openai.provider import OpenAIProvider

from valuesim.config import ModelSpec
from valuesim.contracts import TransientProviderError
from valuesim.errors import ProviderError

REQS = [make_request(f"Q{i}?") for i in range(3)]


def batch_provider(fake: FakeOpenAI, state: Path, **options: object) -> OpenAIProvider:
    spec = ModelSpec(provider="openai", model="gpt-4o-mini", base_url=fake.url, batch_api=True,
                     options={"batch_poll_s": 0.01, **options})
    return OpenAIProvider(spec, state_dir=state)


def test_lifecycle_create_poll_download(fake: FakeOpenAI, tmp_path: Path) -> None:
    results = batch_provider(fake, tmp_path).score(REQS)
    assert fake.counts["/v1/files"] == 1
    assert fake.counts["/v1/batches"] == 1
    assert fake.counts["/v1/batches/batch_0"] == 2  # in_progress, then completed
    assert fake.counts["/v1/chat/completions"] == 0  # nothing went the synchronous way
    lines = [json.loads(x) for x in fake.files["file-0"].decode().splitlines()]
    assert [x["custom_id"] for x in lines] == ["r0", "r1", "r2"]
    assert lines[0]["url"] == "/v1/chat/completions"
    assert lines[0]["body"]["top_logprobs"] == 20
    direct = batch_provider(fake, tmp_path / "other").score_one(REQS[0])
    assert [r.probs for r in results] == [direct.probs] * 3
    saved = list((tmp_path / "openai-batches").glob("*.json"))
    assert len(saved) == 1
    assert json.loads(saved[0].read_text())["batch_id"] == "batch_0"


def test_resume_by_saved_batch_id(fake: FakeOpenAI, tmp_path: Path) -> None:
    # First run gives up while the batch is still in progress (wait 0 s) ...
    with pytest.raises(TransientProviderError, match=r"still in_progress.*rerun to resume"):
        batch_provider(fake, tmp_path, batch_wait_s=0).score(REQS)
    assert fake.counts["/v1/batches"] == 1
    # ... a new process (new provider) resumes the same batch instead of paying again.
    results = batch_provider(fake, tmp_path).score(REQS)
    assert fake.counts["/v1/batches"] == 1
    assert fake.counts["/v1/files"] == 1
    assert fake.counts["paid"] == len(REQS)
    assert len(results) == len(REQS)


def test_failed_lines_are_scored_directly(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.batch_fail_ids = {"r1"}
    results = batch_provider(fake, tmp_path).score(REQS)
    assert fake.counts["/v1/chat/completions"] == 1
    assert "Q1?" in fake.bodies[-1]["messages"][-1]["content"]
    assert all(r.coverage > 0.9 for r in results)
    assert fake.counts["paid"] == len(REQS)


def test_failed_batch_is_forgotten(fake: FakeOpenAI, tmp_path: Path) -> None:
    p = batch_provider(fake, tmp_path)
    p.score(REQS[:1])
    fake.batches["batch_0"]["status"] = "expired"
    state = next((tmp_path / "openai-batches").glob("*.json"))
    with pytest.raises(ProviderError, match=r"ended expired.*submit a new batch"):
        p.score(REQS[:1])
    assert not state.exists()
