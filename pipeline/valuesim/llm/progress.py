"""How far a run is: a bar in a terminal, a line now and then in a log.

The engine counts an answer the moment it is saved (an API provider reports each
request as it arrives, the local model each forward batch's answers, other providers
each chunk), from whichever thread saved it.
In a terminal that moves a tqdm bar, which shows done/total, the rate and the time
left; without one (DVC, CI, a log file) a line with the same three facts is written
at most every ``every_s`` seconds (``VALUESIM_PROGRESS_EVERY_S``, default 30), so a
log says how far a long run is without one line per answer.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable

from tqdm import tqdm

from valuesim.errors import ConfigError

#: seconds between two progress lines in a log (no terminal)
EVERY_S_ENV = "VALUESIM_PROGRESS_EVERY_S"
DEFAULT_EVERY_S = 30.0


def log_interval() -> float:
    """Seconds between progress lines in a log: ``VALUESIM_PROGRESS_EVERY_S`` or 30."""
    raw = os.environ.get(EVERY_S_ENV, "").strip()
    if not raw:
        return DEFAULT_EVERY_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{EVERY_S_ENV}={raw!r} is not a number of seconds; set it to e.g. 30")
    return value


def duration(seconds: float) -> str:
    """``3m 46s``, ``1h 02m``, ``12s``: short enough for a log line."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s}s"


def progress_line(label: str, done: int, total: int, elapsed_s: float) -> str:
    """``label: 224/1920 answers, 7.5/s, ETA 3m 46s`` (ETA ``?`` before the first answer)."""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    eta = duration((total - done) / rate) if rate > 0 else "?"
    return f"{label}: {done}/{total} answers, {rate:.3g}/s, ETA {eta}"


class Progress:
    """One run's progress over ``total`` answers; :meth:`advance` may be called from any thread."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        terminal: bool,
        log: Callable[[str], None],
        every_s: float = DEFAULT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._log = log
        self._every_s = every_s
        self._clock = clock
        self._start = clock()
        self._last_line = self._start
        self._lock = threading.Lock()
        # tqdm's default bar ends in [elapsed<remaining, rate]: the rate and the ETA.
        self._bar = (
            tqdm(
                total=total,
                unit="answer",
                desc=label,
                file=sys.stderr,
                dynamic_ncols=True,
                smoothing=0.1,
            )
            if terminal
            else None
        )

    def advance(self, n: int) -> None:
        """``n`` more answers are saved."""
        if n <= 0:
            return
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)
        self.tick()

    def tick(self) -> None:
        """Write the log line if it is due (no terminal); the engine calls this while it waits."""
        if self._bar is not None:
            return
        with self._lock:
            now = self._clock()
            if now - self._last_line < self._every_s or self.done >= self.total:
                return
            self._last_line = now
            line = progress_line(self.label, self.done, self.total, now - self._start)
        self._log(line)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
