"""The calibrate stage's fits, run in worker processes.

Every (model, method) has two leave-one-question-out fits, mean-preserving and plain
temperature scaling, that share nothing but their inputs; each is one process's
work for seconds (the paper's scale: minutes). :func:`fit_runs` runs them in a pool
of processes and hands them back in the order of the runs, so what the stage writes
does not depend on how many workers ran: each fit is the same code on the same
inputs in one process, and NumPy gives its arrays the same bits in any process on
one machine.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from valuesim.analysis.blocks import FloatArray, QuestionBlock
from valuesim.calibration.fit import fit_loqo
from valuesim.calibration.tilt import LoqoFit
from valuesim.errors import ValuesimError

Key = TypeVar("Key")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0))


def fit_runs(
    runs: Iterable[tuple[Key, Sequence[QuestionBlock]]], grid: FloatArray, *, workers: int
) -> Iterator[tuple[Key, Sequence[QuestionBlock], LoqoFit, LoqoFit]]:
    """(key, blocks, mean-preserving fit, plain fit) of every run, in the order of ``runs``.

    ``workers`` <= 1 fits in this process. Otherwise the fits run in that many
    processes, and ``runs`` (which may build each run's blocks when asked) is read
    only as far as keeps every worker busy: at most ``workers`` + 1 runs' blocks are
    held at once, which bounds the memory at the paper's scale (96 runs).
    """
    if workers <= 1:
        for key, blocks in runs:
            yield key, blocks, fit_loqo(blocks, grid), fit_loqo(blocks, grid, mean_preserving=False)
        return
    # forkserver: workers start from a fresh single-threaded process that imported the
    # fitting code once, not from a fork of this one (its Polars and BLAS threads are
    # not safe to fork) nor a fresh interpreter each (~1 s of imports per worker).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["valuesim.calibration.fit"])
    pending: deque[tuple[Key, Sequence[QuestionBlock], Future[LoqoFit], Future[LoqoFit]]] = deque()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        try:
            for key, blocks in runs:
                pending.append((
                    key, blocks, pool.submit(fit_loqo, blocks, grid),
                    pool.submit(fit_loqo, blocks, grid, mean_preserving=False),
                ))
                while len(pending) > workers:
                    key, blocks, fit, plain = pending.popleft()
                    yield key, blocks, fit.result(), plain.result()
            while pending:
                key, blocks, fit, plain = pending.popleft()
                yield key, blocks, fit.result(), plain.result()
        except BaseException as exc:
            # an error, Ctrl-C or the caller stopping early: drop the queued fits
            # rather than wait for them
            pool.shutdown(wait=False, cancel_futures=True)
            if isinstance(exc, BrokenProcessPool):  # a worker died: the OS killed it (memory?)
                raise ValuesimError(
                    f"calibrate: a worker process died while fitting ({exc}); rerun with fewer "
                    "workers (--workers 1 fits in this process)"
                ) from None
            raise
