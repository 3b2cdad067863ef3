"""`python -m valuesim.calibration.fit_bench`: it runs, and the three ways fit alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from valuesim.calibration.fit_bench import main

TINY_STUDY = """\
countries: {select: [JPN, TWN]}
personas: {n_per_country: 3}
analysis: {sample_sizes: [1, 2, 3]}
simulate: {methods: [generic, value], models: [tiny]}
models: {tiny: {provider: transformers, model: embedded}}
"""


def test_fit_bench_compares_the_three_ways_and_scales_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = tmp_path / "params.yaml"
    study.write_text(TINY_STUDY)
    main(["--synthetic", "--questions", "4", "--grid-size", "5", "--workers", "2",
          "--paper-scale", str(study), "--evaluations", "2"])
    out = capsys.readouterr().out
    assert "same fitted temperatures (bitwise): yes" in out
    assert "ratio" in out
    # 1 model x 2 methods: one persona run, one country-level run, 2 x 2 fits
    assert "1 persona runs" in out
    assert "1 country-level runs" in out
    assert "calibrate on one core:" in out
