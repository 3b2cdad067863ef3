"""Which paid answers no run summary has reported yet: one small journal per run.

The response cache keeps every answer a killed or interrupted run received, but
that run never printed a summary, so its tokens and cost would appear nowhere.
Each engine run therefore appends one JSON line per saved chunk (answers, tokens,
cost) to ``<cache>/paid/<run id>.jsonl`` while holding an exclusive ``flock`` on
it, and deletes the file when its run completes (its summary reports them). A
journal whose lock can be taken belongs to a run that died: the next completed
run of the same provider and model takes it over, adds it to its own summary
("incl. N answers paid by an interrupted run") and deletes it. Live runs sharing
the cache (parallel DVC experiments) hold their locks, so nobody takes theirs.

Each line is written with one ``os.write`` on an ``O_APPEND`` descriptor, so a
kill leaves whole lines; an unreadable line (a damaged file) is skipped, never
fatal: this is bookkeeping, the answers themselves live in the cache.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

try:  # POSIX; elsewhere there is no way to tell a dead run's journal from a live one
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

JOURNAL_DIR = "paid"


@dataclass
class Paid:
    """Answers paid for and the tokens and cost they took."""

    answers: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    runs: int = 0

    def add(self, other: Paid) -> None:
        self.answers += other.answers
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_tokens += other.cached_tokens
        self.cost_usd += other.cost_usd


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock without waiting; False when another run holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@dataclass
class RunJournal:
    """This run's journal (created at its first saved chunk) and the dead runs' it took over."""

    directory: Path
    provider: str
    model: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _fd: int | None = None
    _taken: list[tuple[Path, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def enabled(self) -> bool:
        return fcntl is not None

    @property
    def path(self) -> Path:
        return self.directory / f"{self.run_id}.jsonl"

    def record(self, paid: Paid) -> None:
        """Append one chunk's answers. Called from worker threads; one write per line."""
        if not self.enabled or paid.answers == 0:
            return
        line = {
            "provider": self.provider, "model": self.model, "answers": paid.answers,
            "prompt_tokens": paid.prompt_tokens, "completion_tokens": paid.completion_tokens,
            "cached_tokens": paid.cached_tokens, "cost_usd": paid.cost_usd,
        }
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        with self._lock:
            if self._fd is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)  # a new file nobody else has: never blocks
                self._fd = fd
            os.write(self._fd, data)

    def take_over_dead(self) -> Paid:
        """Lock the journals of dead runs of this provider/model; what they paid.

        They stay locked (so no concurrent run counts them too) until
        :meth:`finish` deletes them or :meth:`release` leaves them for a later run.
        """
        total = Paid()
        if not self.enabled or not self.directory.is_dir():
            return total
        for path in sorted(self.directory.glob("*.jsonl")):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue  # taken and deleted by another run meanwhile
            keep = False
            try:
                # the inode check: another run may have deleted it after we opened it
                if _try_lock(fd) and path.stat().st_ino == os.fstat(fd).st_ino:
                    paid = _read(fd, self.provider, self.model)
                    if paid is not None:
                        total.add(paid)
                        total.runs += 1
                        self._taken.append((path, fd))
                        keep = True
            except OSError:
                pass
            finally:
                if not keep:
                    os.close(fd)
        return total

    def finish(self) -> None:
        """The run completed and its summary reports all of this: delete the journals."""
        for path, fd in self._taken:
            path.unlink(missing_ok=True)
            os.close(fd)
        self._taken.clear()
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

    def release(self) -> None:
        """The run did not complete: keep every journal for the next run to report."""
        for _, fd in self._taken:
            os.close(fd)
        self._taken.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read(fd: int, provider: str, model: str) -> Paid | None:
    """A journal's total, or None when it belongs to another provider/model."""
    with os.fdopen(os.dup(fd), "rb") as fh:
        data = fh.read()
    paid = Paid()
    for raw in data.splitlines():
        try:
            line = json.loads(raw)
            if line["provider"] != provider or line["model"] != model:
                return None
            paid.add(Paid(
                answers=int(line["answers"]),
                prompt_tokens=int(line["prompt_tokens"]),
                completion_tokens=int(line["completion_tokens"]),
                cached_tokens=int(line["cached_tokens"]),
                cost_usd=float(line["cost_usd"]),
            ))
        except (ValueError, KeyError, TypeError):
            continue  # a damaged line: bookkeeping only, skip it
    return paid
