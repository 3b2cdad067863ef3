"""One stage process per output folder at a time.

Two copies of `valuesim stage simulate` writing the same
``data/simulated/<model>/<method>`` (one left running by a killed `dvc repro`, one
started by the next `dvc repro`) would both pay for the answers not yet cached and race
to swap the folder in. So the stage holds an exclusive ``flock`` on a lock file named
after the output folder while it runs. The lock file lives in the response cache's
``locks/`` folder: outside the DVC outputs (DVC deletes those before it runs a stage,
and a lock on a deleted file would not stop the next copy) and shared by exactly the
copies that share a cache. A second copy waits :data:`WAIT_S` for a first one that is
stopping (a stop takes the engine's grace period), then refuses with one line naming
the first copy's pid. The kernel drops the lock when its process ends, however it ends
(SIGKILL included), so a lock file left behind never blocks anything; it is not
deleted, because deleting a locked file would let a third copy lock a new one.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from valuesim.errors import DataError
from valuesim.llm import interrupt

try:
    import fcntl
except ImportError:  # Windows: no flock; a run there is not guarded
    fcntl = None  # type: ignore[assignment]

#: The folder of lock files inside the response cache.
LOCKS = "locks"
#: How long a second copy waits for the first to finish stopping before it refuses.
WAIT_S = 10.0
_POLL_S = 0.2


def lock_path(out_dir: Path, lock_dir: Path) -> Path:
    """The lock file for ``out_dir``: one per absolute output folder."""
    digest = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:20]
    return lock_dir / f"{digest}.lock"


@contextmanager
def output_lock(
    out_dir: Path, lock_dir: Path, *, what: str, wait_s: float = WAIT_S
) -> Iterator[None]:
    """Hold the lock on ``out_dir`` for the block; DataError (one line) when another
    process (``what``: how to name it) holds it for more than ``wait_s``."""
    if fcntl is None:
        yield
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(out_dir, lock_dir), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DataError(_busy(out_dir, what, _holder(fd))) from None
                interrupt.sleep(_POLL_S)  # Ctrl-C ends the wait at once
        # the holder's pid, for the refusal line of a second copy
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _busy(out_dir: Path, what: str, pid: int | None) -> str:
    who = f"pid {pid}" if pid is not None else "a process that has not written its pid yet"
    stop = f"stop it with `kill {pid}`" if pid is not None else "stop it"
    return (
        f"{out_dir} is being written by another {what} ({who}, perhaps left running by a "
        f"stopped dvc repro); let it finish or {stop}, then rerun"
    )
