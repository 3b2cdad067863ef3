"""The calibrate fits in worker processes: the same fits, in run order, errors kept."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from tests.calibration.test_objective import study_blocks
from valuesim.calibration.tilt import temperature_grid
from valuesim.calibration.workers import fit_runs, usable_cores
from valuesim.errors import DataError, ValuesimError

GRID = temperature_grid(0.5, 4.0, 8)


def _runs() -> list[tuple[str, list]]:
    return [(f"run{i}", study_blocks(2, seed=i)[::4]) for i in range(3)]


def test_worker_processes_give_the_in_process_fits_in_run_order() -> None:
    alone = list(fit_runs(_runs(), GRID, workers=1))
    pooled = list(fit_runs(_runs(), GRID, workers=2))
    assert [k for k, *_ in pooled] == ["run0", "run1", "run2"]
    for (ka, _, fa, pa), (kb, _, fb, pb) in zip(alone, pooled, strict=True):
        assert ka == kb
        for a, b in ((fa, fb), (pa, pb)):
            np.testing.assert_array_equal(a.temperatures, b.temperatures)
            np.testing.assert_array_equal(a.grid_objective, b.grid_objective)
            assert a.overall == b.overall
            assert a.questions == b.questions


def test_an_error_in_a_worker_reaches_the_stage_as_itself() -> None:
    runs = [*_runs()[:1], ("bad", study_blocks(2)[:1])]  # one question: no LOQO fit
    with pytest.raises(DataError, match="at least two questions"):
        list(fit_runs(runs, GRID, workers=2))


def test_usable_cores_is_this_process_affinity() -> None:
    assert usable_cores() == len(os.sched_getaffinity(0)) >= 1


class _DiesInWorker(list):
    """A run's blocks whose unpickling in the worker kills that process with SIGKILL, as
    the OS's out-of-memory killer would."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.kill, (_Pid(), signal.SIGKILL))


class _Pid(int):
    """Unpickles as the pid of the process that unpickles it."""

    def __new__(cls) -> _Pid:
        return int.__new__(cls, 0)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.getpid, ())


def test_a_worker_killed_by_the_os_is_one_error_naming_the_fix() -> None:
    runs = [("doomed", _DiesInWorker(study_blocks(2)[:3])), *_runs()[:1]]
    with pytest.raises(ValuesimError, match=r"a worker process died .*rerun with fewer workers"):
        list(fit_runs(runs, GRID, workers=2))
