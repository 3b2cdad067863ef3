"""valuesim.prediction: the study's conformal fits applied to new answers (issue 20)."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from valuesim.asking import RESULT_SCHEMA
from valuesim.errors import ConfigError
from valuesim.prediction import (
    INTERVAL_FITS,
    add_prediction_intervals,
    check_level,
    find_fit,
)

FIT_SCHEMA = {
    "model": pl.Utf8, "method": pl.Utf8, "kind": pl.Utf8, "variant": pl.Utf8,
    "level": pl.Float64, "n_personas": pl.Int64, "country": pl.Utf8, "threshold": pl.Float64,
    "n_questions": pl.Int64, "loqo_coverage": pl.Float64, "lobo_coverage": pl.Float64,
    "default": pl.Boolean,
}


def fit_rows(variant: str = "per_country", n: int = 6, jpn: float = 0.2, deu: float = 0.3,
             pooled: float = 0.25) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for kind in ("raw", "calibrated"):
        for level in (0.8, 0.9, 0.95):
            scale = {0.8: 0.5, 0.9: 1.0, 0.95: 1.5}[level]
            base = {"model": "m", "method": "value", "kind": kind, "level": level,
                    "n_personas": n, "n_questions": 32, "loqo_coverage": 0.91,
                    "lobo_coverage": 0.84}
            rows += [
                {**base, "variant": variant, "country": "JPN", "threshold": jpn * scale, "default": True},
                {**base, "variant": variant, "country": "DEU", "threshold": deu * scale, "default": True},
                {**base, "variant": "pooled", "country": "*", "threshold": pooled * scale,
                 "default": False},
            ]
    return rows


def write_fits(project: Path, rows: list[dict[str, object]]) -> None:
    (project / INTERVAL_FITS).parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows, schema=FIT_SCHEMA).write_parquet(project / INTERVAL_FITS)


def result_rows(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=RESULT_SCHEMA)


def test_per_country_threshold_scales_to_the_item_and_clips(tmp_path: Path) -> None:
    write_fits(tmp_path, fit_rows())
    fit, note = find_fit(tmp_path, "m", "value")
    assert note == ""
    assert fit is not None
    frame = result_rows([
        {"country": "JPN", "question": "A", "codes": [1, 2, 3, 4], "expected": 2.5},
        {"country": "DEU", "question": "B", "codes": list(range(1, 11)), "expected": 9.0},
        {"country": "DEU", "question": "C", "codes": [1, 2], "expected": None},
    ])
    out = add_prediction_intervals(frame, fit, asked_n=6, level=0.9)
    jpn, deu, empty = out.iter_rows(named=True)
    assert (jpn["pred_low"], jpn["pred_high"]) == pytest.approx((2.5 - 0.6, 2.5 + 0.6))
    # DEU on a 1-10 item: 0.3 * 9 = 2.7 either side, clipped at the scale's top
    assert (deu["pred_low"], deu["pred_high"]) == pytest.approx((9.0 - 2.7, 10.0))
    assert jpn["pred_level"] == 0.9
    assert "m/value N=6 per_country, 32 questions, LOQO coverage 0.91, LOBO 0.84 at 0.9" in jpn["pred_source"]
    assert empty["pred_low"] is None
    assert empty["pred_source"] is None


def test_a_country_outside_the_study_gets_the_pooled_threshold_and_says_so(tmp_path: Path) -> None:
    write_fits(tmp_path, fit_rows())
    fit, _ = find_fit(tmp_path, "m", "value", level=0.95)
    frame = result_rows([{"country": "NGA", "question": "A", "codes": [1, 2, 3, 4], "expected": 2.0}])
    row = add_prediction_intervals(frame, fit, asked_n=6, level=0.95).row(0, named=True)
    half = 0.25 * 1.5 * 3
    assert (row["pred_low"], row["pred_high"]) == pytest.approx((max(1.0, 2.0 - half), min(4.0, 2.0 + half)))
    assert "pooled (country not in the study)" in row["pred_source"]


def test_an_infinite_threshold_is_the_whole_scale(tmp_path: Path) -> None:
    write_fits(tmp_path, fit_rows(jpn=math.inf))
    fit, _ = find_fit(tmp_path, "m", "value")
    frame = result_rows([{"country": "JPN", "question": "A", "codes": [0, 5, 10], "expected": 3.0}])
    row = add_prediction_intervals(frame, fit, asked_n=None, level=0.9).row(0, named=True)
    assert (row["pred_low"], row["pred_high"]) == (0.0, 10.0)


def test_the_normalized_variant_multiplies_by_the_cells_persona_spread(tmp_path: Path) -> None:
    write_fits(tmp_path, fit_rows(variant="normalized", jpn=4.0))
    fit, _ = find_fit(tmp_path, "m", "value")
    frame = result_rows([
        {"country": "JPN", "question": "A", "codes": [1, 2, 3, 4], "expected": 2.5, "persona_sd": 0.3},
        # every persona agrees: the difficulty floor keeps the interval from collapsing
        {"country": "JPN", "question": "B", "codes": [1, 2, 3, 4], "expected": 2.0, "persona_sd": 0.0},
    ])
    a, b = add_prediction_intervals(frame, fit, asked_n=6, level=0.9).iter_rows(named=True)
    assert a["pred_high"] - a["pred_low"] == pytest.approx(2 * 4.0 * (0.3 / 3) * 3)
    assert b["pred_high"] - b["pred_low"] == pytest.approx(2 * 4.0 * 0.01 * 3)


def test_the_fitted_n_is_the_largest_not_above_the_asked_n(tmp_path: Path) -> None:
    write_fits(tmp_path, fit_rows(n=3, jpn=0.4) + fit_rows(n=6, jpn=0.2))
    picks = {asked: find_fit(tmp_path, "m", "value", n=asked)[0] for asked in (2, 3, 5, 6, 50)}
    assert {k: v.n_personas for k, v in picks.items() if v} == {2: 3, 3: 3, 5: 3, 6: 6, 50: 6}
    assert picks[50] is not None
    frame = result_rows([{"country": "JPN", "question": "A", "codes": [1, 2, 3, 4], "expected": 2.0}])
    row = add_prediction_intervals(frame, picks[50], asked_n=50, level=0.9).row(0, named=True)
    assert "N=6, asked with N=50" in row["pred_source"]


def test_no_fit_means_no_interval_and_a_note_that_says_how_to_get_one(tmp_path: Path) -> None:
    fit, note = find_fit(tmp_path, "m", "value")
    assert fit is None
    assert "interval_fits.parquet not found" in note
    assert "dvc repro evaluate" in note
    write_fits(tmp_path, fit_rows())
    fit, note = find_fit(tmp_path, "m", "generic")
    assert fit is None
    assert "no prediction interval for m/generic" in note
    assert "m/value" in note


def test_levels_are_the_fitted_ones() -> None:
    assert check_level(0.9) == 0.9
    with pytest.raises(ConfigError, match=r"level 0.99 is not fitted; use --level 0.8, 0.9, 0.95"):
        check_level(0.99)
