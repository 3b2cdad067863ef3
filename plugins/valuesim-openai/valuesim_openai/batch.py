"""Score many requests through the OpenAI Batch API, resumably.

JSONL of chat-completion bodies -> upload (purpose "batch") -> create batch -> poll ->
download the output file -> parse. The batch id is written to ``state_dir`` before
polling starts, keyed by a hash of the batch file, so an interrupted or timed-out
run resumes the same batch instead of paying for a new one. Lines the batch reports
as failed are scored with ordinary requests (they were not billed).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valuesim.errors import ProviderError
from valuesim.llm import interrupt
from valuesim.llm.provider import TransientProviderError
from valuesim.llm.types import AnswerDistribution, ScoreRequest

if TYPE_CHECKING:
    from valuesim_openai.provider import OpenAIProvider

ENDPOINT = "/v1/chat/completions"
FAILED = {"failed", "expired", "cancelling", "cancelled"}


def batch_file(provider: OpenAIProvider, requests: Sequence[ScoreRequest]) -> bytes:
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": ENDPOINT, "body": provider.body(r)}
        for i, r in enumerate(requests)
    ]
    return "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines).encode()


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    Path(tmp).replace(path)


def score_in_batch(
    provider: OpenAIProvider, requests: Sequence[ScoreRequest]
) -> list[AnswerDistribution]:
    if not requests:
        return []
    payload = batch_file(provider, requests)
    digest = hashlib.sha256(payload).hexdigest()[:32]
    state_path = provider.state_dir / "openai-batches" / f"{digest}.json"
    client = provider.client
    if state_path.exists():
        batch_id = json.loads(state_path.read_text())["batch_id"]
    else:
        uploaded = provider.call(
            lambda: client.files.create(file=(f"{digest}.jsonl", payload), purpose="batch")
        )
        batch = provider.call(
            lambda: client.batches.create(
                input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h"
            )
        )
        batch_id = batch.id
        _write_atomic(state_path, {"batch_id": batch_id, "input_file_id": uploaded.id})
    batch = _wait(provider, batch_id, state_path)
    lines: dict[str, dict[str, Any]] = {}
    if batch.output_file_id:
        text = provider.call(lambda: client.files.content(batch.output_file_id).text)
        for raw in text.splitlines():
            if raw.strip():
                try:
                    line = json.loads(raw)
                    lines[str(line["custom_id"])] = line
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ProviderError(
                        f"openai: batch {batch_id} output is not JSONL of batch results"
                    ) from exc
    results: list[AnswerDistribution] = []
    for i, request in enumerate(requests):
        line = lines.get(f"r{i}")
        response = (line or {}).get("response") or {}
        if response.get("status_code") == 200 and isinstance(response.get("body"), dict):
            results.append(provider.parse(response["body"], request))
        else:
            # Failed or missing line: not billed, so one ordinary request is fair.
            results.append(provider.score_one(request))
    return results


def _wait(provider: OpenAIProvider, batch_id: str, state_path: Path) -> Any:
    opts = provider.spec.options
    poll_s = float(opts.get("batch_poll_s", 30.0))
    wait_s = float(opts.get("batch_wait_s", 24 * 3600.0))
    deadline = time.monotonic() + wait_s
    while True:
        batch = provider.call(lambda: provider.client.batches.retrieve(batch_id))
        if batch.status == "completed":
            return batch
        if batch.status in FAILED:
            # Nothing of a failed batch is billed: forget it so a rerun starts afresh.
            state_path.unlink(missing_ok=True)
            errors = getattr(batch, "errors", None)
            detail = "; ".join(e.message or "" for e in (errors.data or [])) if errors else ""
            raise ProviderError(
                f"openai: batch {batch_id} ended {batch.status}{': ' + detail if detail else ''}; "
                "rerun to submit a new batch"
            )
        if time.monotonic() >= deadline:
            raise TransientProviderError(
                f"openai: batch {batch_id} still {batch.status} after {wait_s:g} s; "
                "rerun to resume it (its id is saved)",
                retry_after=poll_s,
            )
        interrupt.sleep(poll_s)  # ends at once on Ctrl-C
