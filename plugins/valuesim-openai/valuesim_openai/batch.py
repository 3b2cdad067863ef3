"""OpenAI Batch API wire format: JSONL of chat-completion bodies, uploaded as a file.

upload (purpose "batch") -> create batch -> poll -> download the output file. The
resumable skeleton (state file, polling, fallback for failed lines) is
:class:`valuesim.BatchRunner`'s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from valuesim import BatchEntry, BatchPoll, BatchRunner, ProviderError

ENDPOINT = "/v1/chat/completions"
FAILED = {"failed", "expired", "cancelling", "cancelled"}


class OpenAIBatch(BatchRunner):
    state_folder = "openai-batches"

    def custom_id(self, request: int, draw: int) -> str:
        return f"r{request}"  # one draw per request: `n` samples travel in one body

    def payload(self, entries: Sequence[BatchEntry]) -> bytes:
        lines = [{"custom_id": e.custom_id, "method": "POST", "url": ENDPOINT, "body": e.body} for e in entries]
        return "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines).encode()

    def submit(self, entries: Sequence[BatchEntry], payload: bytes, digest: str) -> dict[str, Any]:
        p = self.provider
        uploaded = p.call(lambda: p.client.files.create(file=(f"{digest}.jsonl", payload), purpose="batch"))
        batch = p.call(
            lambda: p.client.batches.create(
                input_file_id=uploaded.id, endpoint=ENDPOINT, completion_window="24h"
            )
        )
        return {"batch_id": batch.id, "input_file_id": uploaded.id}

    def poll(self, batch_id: str) -> BatchPoll:
        batch = self.provider.call(lambda: self.provider.client.batches.retrieve(batch_id))
        if batch.status in FAILED:
            errors = getattr(batch, "errors", None)
            detail = "; ".join(e.message or "" for e in (errors.data or [])) if errors else ""
            return BatchPoll(batch.status, failure=(
                f"openai: batch {batch_id} ended {batch.status}{': ' + detail if detail else ''}; "
                "rerun to submit a new batch"
            ))
        return BatchPoll(batch.status, done=batch.status == "completed", handle=batch)

    def results(self, batch_id: str, handle: Any) -> dict[str, Any]:
        p = self.provider
        done: dict[str, Any] = {}
        if not handle.output_file_id:
            return done
        text = p.call(lambda: p.client.files.content(handle.output_file_id).text)
        for raw in text.splitlines():
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                custom_id = str(line["custom_id"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ProviderError(f"openai: batch {batch_id} output is not JSONL of batch results") from exc
            response = line.get("response") or {}
            if response.get("status_code") == 200 and isinstance(response.get("body"), dict):
                done[custom_id] = response["body"]
        return done
