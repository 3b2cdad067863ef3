"""One thread for all of this process's torch work on a local model.

Why: PyTorch's CPU kernels run on libgomp (OpenMP), which gives every thread that
starts a parallel region a team of its own and counts all teams' threads. Once they
outnumber the usable cores, libgomp cuts its spin-wait from ~300,000 iterations to
a few hundred ("throttled"), and every parallel region then wakes its workers through
the kernel. A model loaded in the main thread and scored in the engine's worker thread
made two teams, and the scoring ran 15-19% slower than in the loading thread (measured
on 2 cores: 15.0-15.7 s against 13.0-13.2 s for the same 128 requests; the same
requests on one thread for loading and scoring: 13.1-13.2 s). So loading, scoring and
generating all go through :func:`on_torch_thread`, and one team serves them all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_here = threading.local()


def _mark() -> None:
    _here.torch_thread = True


def on_torch_thread(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` run on the process's torch thread (directly when called
    from it); its result or its exception."""
    global _executor
    if getattr(_here, "torch_thread", False):
        return fn(*args, **kwargs)
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(1, thread_name_prefix="valuesim-torch", initializer=_mark)
        executor = _executor
    return executor.submit(fn, *args, **kwargs).result()


def is_torch_thread() -> bool:
    """Whether the calling thread is the torch thread (for tests and assertions)."""
    return bool(getattr(_here, "torch_thread", False))
