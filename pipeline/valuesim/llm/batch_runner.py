"""Score a chunk through a vendor's batch API, resumably: one skeleton, wire formats apart.

entries (one per draw) -> digest -> state file -> submit -> poll -> collect -> answers.
The batch id is written to the provider's ``state_dir`` (keyed by a hash of the
entries) before polling starts, so an interrupted run, or one that gave up waiting
(``batch_wait_s``), resumes the same batch on rerun instead of paying for a new
one. Entries the batch did not answer (failed, expired, missing) were not billed and
go out as ordinary requests. A batch that ended without results is forgotten so the
rerun submits a new one. Patterned on inspect_ai's ``_providers/util/batch.py``.

A subclass gives the vendor's wire format: :meth:`BatchRunner.payload`,
:meth:`~BatchRunner.submit`, :meth:`~BatchRunner.poll` and :meth:`~BatchRunner.results`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from valuesim.artifacts import write_json
from valuesim.contracts import TransientProviderError
from valuesim.errors import ProviderError
from valuesim.llm import interrupt
from valuesim.llm.types import AnswerDistribution, ScoreRequest


class BatchProvider(Protocol):
    """What a batch runner uses of its provider, a
    :class:`~valuesim.llm.api_provider.APIProvider`. A protocol, not that class: the
    provider names its runner class (``batch_runner``), so naming the provider here,
    even for type checking only, would make the two modules import each other."""

    name: ClassVar[str]
    options: Any
    state_dir: Path
    client: Any

    def request_body(self, request: ScoreRequest) -> Any: ...
    def send(self, body: Any) -> Any: ...
    def distribution(self, request: ScoreRequest, replies: Sequence[Any]) -> AnswerDistribution: ...
    def draws(self, request: ScoreRequest) -> int: ...
    def call(self, fn: Callable[[], Any]) -> Any: ...


@dataclass(frozen=True)
class BatchPoll:
    """One look at a batch: finished, still running, or ended without results."""

    status: str  # the vendor's word for it, shown in messages
    done: bool = False
    failure: str | None = None  # the one-line message when the batch ended without results
    handle: Any = None  # whatever :meth:`BatchRunner.results` needs (the batch object)


@dataclass(frozen=True)
class BatchEntry:
    """One draw of one request: its custom id and the body an ordinary request would send."""

    custom_id: str
    body: Any


class BatchRunner:
    """Runs one chunk of an :class:`~valuesim.llm.api_provider.APIProvider` as one batch."""

    #: folder under the provider's state_dir holding one state file per pending batch
    state_folder: ClassVar[str]

    def __init__(self, provider: BatchProvider) -> None:
        self.provider = provider
        self.poll_s = float(provider.options.batch_poll_s)
        self.wait_s = float(provider.options.batch_wait_s)

    # ----- the wire format ---------------------------------------------------------------

    def custom_id(self, request: int, draw: int) -> str:
        return f"r{request}-s{draw}"

    def payload(self, entries: Sequence[BatchEntry]) -> bytes:
        """The batch's content: what its digest (the state file's name) is taken of."""
        raise NotImplementedError

    def submit(self, entries: Sequence[BatchEntry], payload: bytes, digest: str) -> dict[str, Any]:
        """Create the batch; the state to save (``batch_id`` and anything else worth keeping)."""
        raise NotImplementedError

    def poll(self, batch_id: str) -> BatchPoll:
        raise NotImplementedError

    def results(self, batch_id: str, handle: Any) -> dict[str, Any]:
        """custom id -> reply (as :meth:`APIProvider.send` returns it), succeeded entries only."""
        raise NotImplementedError

    # ----- the skeleton ------------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest]) -> list[AnswerDistribution]:
        if not requests:
            return []
        p = self.provider
        per_request = [
            [BatchEntry(self.custom_id(i, s), p.request_body(r)) for s in range(p.draws(r))]
            for i, r in enumerate(requests)
        ]
        entries = [e for group in per_request for e in group]
        payload = self.payload(entries)
        digest = hashlib.sha256(payload).hexdigest()[:32]
        state_path = p.state_dir / self.state_folder / f"{digest}.json"
        if state_path.exists():
            batch_id = str(json.loads(state_path.read_text())["batch_id"])
        else:
            state = self.submit(entries, payload, digest)
            batch_id = str(state["batch_id"])
            write_json(state, state_path, indent=None, newline=False)
        handle = self._wait(batch_id, state_path)
        done = self.results(batch_id, handle)
        answers = []
        for request, group in zip(requests, per_request, strict=True):
            # An entry without a result was not billed: one ordinary request instead.
            replies = [done[e.custom_id] if e.custom_id in done else p.send(e.body) for e in group]
            answers.append(p.distribution(request, replies))
        return answers

    def _wait(self, batch_id: str, state_path: Path) -> Any:
        deadline = time.monotonic() + self.wait_s
        while True:
            polled = self.poll(batch_id)
            if polled.done:
                return polled.handle
            if polled.failure is not None:
                # Nothing of a batch without results is billed: forget it so a rerun starts afresh.
                state_path.unlink(missing_ok=True)
                raise ProviderError(polled.failure)
            if time.monotonic() >= deadline:
                raise TransientProviderError(
                    f"{self.provider.name}: batch {batch_id} still {polled.status} after "
                    f"{self.wait_s:g} s; rerun to resume it (its id is saved)",
                    retry_after=self.poll_s,
                )
            interrupt.sleep(self.poll_s)  # ends at once on Ctrl-C
