"""Ctrl-C, SIGTERM and SIGHUP: stop paying promptly, keep every finished answer, exit 130.

The CLI installs :func:`handlers_installed`. The first SIGINT, SIGTERM or SIGHUP (a
closed terminal or ssh session, without nohup) sets
:data:`CANCEL` (every engine worker, watchdog and backoff sleep watches it) and
raises :class:`Interrupted` in the main thread, so the engine cancels its queued
chunks, gives calls in flight a short grace to land (their answers are paid for),
commits what finished and reports one line. A second signal exits at once.

:class:`Interrupted` is a ``BaseException`` but not a ``KeyboardInterrupt``: click
turns a KeyboardInterrupt into "Aborted!" and exit 1, and ``except Exception``
blocks must not swallow it either.

Plugins that wait on their own (batch pollers) should wait with :func:`sleep`
instead of ``time.sleep`` so that an interrupt ends the wait at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

#: The signals that stop a run. SIGHUP does not exist on Windows.
STOP_SIGNALS: tuple[int, ...] = tuple(
    int(s) for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None
)

#: Set by the first stop signal (or by a caller that wants running engines to stop).
CANCEL = threading.Event()


class Interrupted(BaseException):
    """The run was stopped by a signal (or :data:`CANCEL`); ``signum`` says which."""

    def __init__(self, message: str = "", signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """130 for SIGINT, SIGTERM and SIGHUP alike: the run stopped cleanly on request,
        whichever signal asked (README, "What valuesim survives")."""
        return 130


class RunInterrupted(Interrupted):
    """An engine run was interrupted; the message says what was saved and how to resume."""


_received: list[int] = []
# Why a stop this process asked for itself (:func:`stop`) was asked, for the interrupt line.
_reason: list[str] = []


def received_signal() -> int:
    """The first signal received, SIGINT when none was (a programmatic cancel)."""
    return _received[0] if _received else int(signal.SIGINT)


def sleep(seconds: float, cancel: threading.Event | None = None) -> None:
    """``time.sleep`` that returns at once, raising :class:`Interrupted`, on a cancel."""
    event = CANCEL if cancel is None else cancel
    if event.wait(max(0.0, seconds)):
        raise Interrupted(signum=received_signal())


def stop(signum: int, reason: str) -> None:
    """Stop the run as if ``signum`` had come from outside (from any thread), with
    ``reason`` in the interrupt line; e.g. when the process that started this one died
    (:mod:`valuesim.parent_watch`). One path for every stop: the handler's."""
    _reason[:] = [reason]
    os.kill(os.getpid(), signum)


def _handler(signum: int, frame: FrameType | None) -> None:
    if _received:
        # Second signal: the user does not want to wait for anything. Committed
        # answers are safe (each chunk is one SQLite transaction).
        name = signal.Signals(signum).name
        os.write(2, f"\n{name} again: exiting now without waiting\n".encode())
        os._exit(128 + signum)
    _received.append(signum)
    CANCEL.set()
    raise Interrupted(signum=signum)


@contextmanager
def handlers_installed(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Install the two-stage handler for ``signals`` (main thread only), restoring after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    _received.clear()
    _reason.clear()
    CANCEL.clear()
    previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
    for s in signals:
        if s == getattr(signal, "SIGHUP", None) and signal.getsignal(s) == signal.SIG_IGN:
            continue  # started under nohup: a hangup was asked not to stop the run
        previous[s] = signal.signal(s, _handler)
    try:
        yield
    finally:
        # After an interrupt the process is on its way out: a second signal during
        # interpreter teardown must still exit at once, not print a traceback.
        if not _received:
            for s, h in previous.items():
                signal.signal(s, h if h is not None else signal.SIG_DFL)


def message(exc: Interrupted) -> str:
    """The one line the CLI prints for an interrupt."""
    name = signal.Signals(exc.signum).name
    if _reason:
        name = f"{name}: {_reason[0]}"
    text = str(exc) or "answers received so far are in the response cache; rerun the same command to resume"
    return f"interrupted ({name}): {text}"


def write_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
