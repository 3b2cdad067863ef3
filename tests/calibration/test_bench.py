"""`python -m valuesim.calibration.bench`: it runs and the two tilts agree."""

from __future__ import annotations

import pytest

from valuesim.calibration.bench import main


def test_bench_runs_and_agrees(capsys: pytest.CaptureFixture[str]):
    main(["--rows", "3000", "--naive-rows", "50"])
    out = capsys.readouterr().out
    assert "speed-up" in out
    diff = float(out.split("max |diff| ")[1].split(")")[0])
    assert diff < 1e-9
