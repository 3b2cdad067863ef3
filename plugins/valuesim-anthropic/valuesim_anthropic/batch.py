"""Score many requests through Anthropic's Message Batches API, resumably.

One batch entry per draw (custom_id ``r<request>-s<sample>``). The batch id is saved
in ``state_dir`` (keyed by a hash of the entries) before polling, so an interrupted
run resumes the same batch. Entries that errored, expired or were canceled are not
billed and are sent again as ordinary requests.
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
    from valuesim_anthropic.provider import AnthropicProvider


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    Path(tmp).replace(path)


def score_in_batch(
    provider: AnthropicProvider, requests: Sequence[ScoreRequest]
) -> list[AnswerDistribution]:
    if not requests:
        return []
    entries = [
        {"custom_id": f"r{i}-s{s}", "params": provider.params(r)}
        for i, r in enumerate(requests)
        for s in range(provider.draws(r))
    ]
    digest = hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()[:32]
    state_path = provider.state_dir / "anthropic-batches" / f"{digest}.json"
    batches = provider.client.messages.batches
    if state_path.exists():
        batch_id = json.loads(state_path.read_text())["batch_id"]
    else:
        batch_id = provider.call(lambda: batches.create(requests=entries)).id
        _write_atomic(state_path, {"batch_id": batch_id})
    _wait(provider, batch_id, state_path)
    succeeded: dict[str, dict[str, Any]] = {}
    for line in provider.call(lambda: list(batches.results(batch_id))):
        if line.result.type == "succeeded":
            succeeded[line.custom_id] = line.result.message.model_dump()
    params_by_id = {e["custom_id"]: e["params"] for e in entries}
    results = []
    for i, request in enumerate(requests):
        messages = []
        for s in range(provider.draws(request)):
            cid = f"r{i}-s{s}"
            if cid not in succeeded:
                # Not billed: one ordinary request instead.
                succeeded[cid] = provider.send(params_by_id[cid])
            messages.append(succeeded[cid])
        results.append(provider.distribution(request, messages))
    return results


def _wait(provider: AnthropicProvider, batch_id: str, state_path: Path) -> None:
    opts = provider.spec.options
    poll_s = float(opts.get("batch_poll_s", 30.0))
    wait_s = float(opts.get("batch_wait_s", 24 * 3600.0))
    deadline = time.monotonic() + wait_s
    while True:
        batch = provider.call(lambda: provider.client.messages.batches.retrieve(batch_id))
        if batch.processing_status == "ended":
            return
        if batch.processing_status == "canceling":
            state_path.unlink(missing_ok=True)
            raise ProviderError(f"anthropic: batch {batch_id} is being canceled; rerun to submit a new one")
        if time.monotonic() >= deadline:
            raise TransientProviderError(
                f"anthropic: batch {batch_id} still {batch.processing_status} after {wait_s:g} s; "
                "rerun to resume it (its id is saved)",
                retry_after=poll_s,
            )
        interrupt.sleep(poll_s)  # ends at once on Ctrl-C
