"""A stage that `dvc repro` runs stops when that `dvc repro` dies.

DVC runs a stage's command as its child (``$SHELL -c '<cmd>'``) and does not pass a
SIGTERM of its own on: `kill <dvc pid>` (a CI job cancelled, a scheduler,
``timeout --foreground dvc repro``) ended DVC at once and left `valuesim stage
simulate` running as an orphan, still paying, while the next `dvc repro` started a
second copy on the same outputs (:mod:`valuesim.stage_lock` keeps that one out). So
under DVC (``DVC_STAGE`` set) a daemon thread watches the process that started the
stage and, when it is gone, stops the run exactly as a SIGTERM does
(:func:`valuesim.llm.interrupt.stop`): finished answers are committed, calls in flight
get their grace period, one line, exit 130.

"Gone" means re-parented: our parent pid changes when the parent dies. bash and zsh
exec a ``-c`` command, so the parent is DVC; dash (``/bin/sh``, DVC's shell when
``$SHELL`` is unset) forks, so when the parent is a shell the shell's own parent is
watched too (Linux ``/proc``; elsewhere only the parent is).

Polling rather than ``prctl(PR_SET_PDEATHSIG)``: that signal fires when the parent
*thread* that started the process exits, not the parent process, and it is Linux only;
``getppid`` is POSIX and a poll every :data:`POLL_S` costs nothing. Outside DVC there is
no watch: a run started by a shell that goes away under ``nohup`` must go on.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from valuesim.llm import interrupt

#: How often the parent pid is checked: the bound on noticing that DVC died.
POLL_S = 0.5
# Shells that may stand between DVC and the stage (they fork the -c command).
_SHELLS = frozenset({"sh", "dash", "bash", "zsh", "ksh", "mksh", "fish", "busybox"})


def under_dvc(environ: Mapping[str, str] = os.environ) -> bool:
    """True when DVC started this process (DVC sets DVC_STAGE for every stage command)."""
    return bool(environ.get("DVC_STAGE"))


def _proc(pid: int) -> tuple[str, int] | None:
    """(command name, parent pid) of ``pid`` from Linux /proc; None when unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name, _, rest = text.partition(" (")[2].rpartition(")")
    fields = rest.split()
    return (name, int(fields[1])) if len(fields) > 1 else None


def _parent_of(pid: int) -> int | None:
    if pid == os.getpid():
        return os.getppid()
    found = _proc(pid)
    return found[1] if found is not None else None


def watched() -> list[tuple[int, int]]:
    """(process, its parent now) pairs whose parent changing means DVC is gone."""
    me, parent = os.getpid(), os.getppid()
    pairs = [(me, parent)]
    found = _proc(parent)
    if found is not None and found[0] in _SHELLS and found[1] > 1:
        pairs.append((parent, found[1]))  # a forking shell: DVC is its parent
    return pairs


@contextmanager
def stop_when_parent_dies(poll_s: float = POLL_S) -> Iterator[None]:
    """For the block, stop like SIGTERM as soon as the process that started it is gone."""
    pairs = watched()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(poll_s):
            for pid, parent in pairs:
                if _parent_of(pid) != parent:
                    starter = pairs[-1][1]
                    interrupt.stop(
                        signal.SIGTERM, f"dvc repro (pid {starter}) that ran this stage exited"
                    )
                    return

    thread = threading.Thread(target=watch, name="valuesim-parent-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
