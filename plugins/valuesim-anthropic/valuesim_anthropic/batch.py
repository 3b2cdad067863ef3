"""Anthropic Message Batches wire format: one entry per draw (custom_id ``r<request>-s<draw>``).

The resumable skeleton (state file, polling, ordinary requests for entries that
errored, expired or were canceled) is :class:`valuesim.BatchRunner`'s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from valuesim import BatchEntry, BatchPoll, BatchRunner


class AnthropicBatch(BatchRunner):
    state_folder = "anthropic-batches"

    def payload(self, entries: Sequence[BatchEntry]) -> bytes:
        return json.dumps(_wire(entries), sort_keys=True).encode()

    def submit(self, entries: Sequence[BatchEntry], payload: bytes, digest: str) -> dict[str, Any]:
        batches = self.provider.client.messages.batches
        return {"batch_id": self.provider.call(lambda: batches.create(requests=_wire(entries))).id}

    def poll(self, batch_id: str) -> BatchPoll:
        batch = self.provider.call(lambda: self.provider.client.messages.batches.retrieve(batch_id))
        status = batch.processing_status
        if status == "canceling":
            return BatchPoll(status, failure=f"anthropic: batch {batch_id} is being canceled; rerun to submit a new one")
        return BatchPoll(status, done=status == "ended")

    def results(self, batch_id: str, handle: Any) -> dict[str, Any]:
        lines = self.provider.call(lambda: list(self.provider.client.messages.batches.results(batch_id)))
        return {
            line.custom_id: line.result.message.model_dump()
            for line in lines
            if line.result.type == "succeeded"
        }


def _wire(entries: Sequence[BatchEntry]) -> list[dict[str, Any]]:
    return [{"custom_id": e.custom_id, "params": e.body} for e in entries]
