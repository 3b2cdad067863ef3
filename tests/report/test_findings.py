"""valuesim.report.findings: what the report says about planted summaries.

Each summary is built so that one statement must follow (a method worse than the
midpoint reference, a temperature on the grid edge, a run that cannot separate its
methods); the tests check that the text says it, and does not say the opposite.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from valuesim.analysis.paired import TABLE_SCHEMA as PAIRED_SCHEMA
from valuesim.report.findings import (
    LOW_COVERAGE,
    country_spread,
    findings,
    reference_findings,
    temperature_edge_findings,
)

NAMES = {"m": "Model M"}
WILCOXON_SCHEMA = {
    "model": pl.Utf8, "country": pl.Utf8, "method_a": pl.Utf8, "method_b": pl.Utf8, "n": pl.Int64,
    "statistic": pl.Float64, "p_value": pl.Float64, "better": pl.Utf8, "vs_reference": pl.Boolean,
}


def summary_row(method: str, mae: float, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "model": "m", "method": method, "mae": mae, "mae_lo": mae - 0.01, "mae_hi": mae + 0.01,
        "mae_cal": mae, "wasserstein": 0.2, "wasserstein_cal": 0.1, "nvar": 0.3, "nvar_cal": 0.5,
        "nvar_human": 0.6, "mae_plain": None, "wasserstein_plain": None,
        "answer_floor_mae": None, "answer_floor_mae_sd": None, "persona_floor_mae": None,
        "persona_floor_mae_sd": None, "n_personas": None,
        "coverage_mean": None, "coverage_p5": None, "answer_rule": None,
    }
    row.update(extra)
    return row


def frame(*rows: dict[str, object]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), infer_schema_length=None)


def references(**maes: float) -> pl.DataFrame:
    return pl.DataFrame({"model": ["reference"] * len(maes), "method": list(maes), "mae": list(maes.values())})


def no_tests() -> pl.DataFrame:
    return pl.DataFrame(schema=WILCOXON_SCHEMA)


def paired_tests(*rows: tuple[str, str, bool, float, float, float, float, float]) -> pl.DataFrame:
    """paired_tests.parquet rows of model "m": (a, b, vs_reference, diff, ci_lo, ci_hi, p, p_bh)."""
    return pl.DataFrame([
        {"model": "m", "a": a, "b": b, "vs_reference": ref, "n_questions": 32, "n_cells": 320,
         "n_unmatched": 0, "mean_a": None, "mean_b": None, "diff": d, "ci_lo": lo, "ci_hi": hi, "p": p,
         "p_bh": q, "better": a if d < 0 else b, "test": "sign-flip", "ci_resamples": "questions"}
        for a, b, ref, d, lo, hi, p, q in rows
    ], schema=PAIRED_SCHEMA)


def lines_about(lines: list[str], prefix: str) -> list[str]:
    return [line for line in lines if line.startswith(prefix)]


def test_a_method_worse_than_the_midpoint_is_said_to_be_worse() -> None:
    out = reference_findings(frame(summary_row("value", 0.20)), references(midpoint=0.15, uniform=0.30),
                             no_tests(), None, NAMES)
    assert out[0] == "References (no model involved), MAE on the same cells: midpoint (always the scale " \
                     "midpoint) 0.150; uniform (all answers equally likely) 0.300."
    (verdict,) = lines_about(out, "Model M, value: MAE")
    assert "better than uniform but not midpoint" in verdict
    assert "better than every reference" not in verdict


def test_a_method_worse_than_every_reference() -> None:
    out = reference_findings(frame(summary_row("country", 0.40)), references(midpoint=0.15, uniform=0.30),
                             no_tests(), None, NAMES)
    (verdict,) = lines_about(out, "Model M, country: MAE")
    assert verdict == "Model M, country: MAE 0.400, no better than any reference (midpoint, uniform)."


def test_a_method_better_than_every_reference_with_its_paired_test_and_corrected_counts() -> None:
    wilcoxon = pl.DataFrame([
        {"model": "m", "country": c, "method_a": "value", "method_b": "midpoint", "n": 8,
         "statistic": 1.0, "p_value": p, "better": better, "vs_reference": True, "p_bh": q}
        # B is significant uncorrected but not after BH: it must not be counted
        for c, p, q, better in (("A", 0.01, 0.04, "value"), ("B", 0.01, 0.06, "value"),
                                ("C", 0.01, 0.03, "midpoint"), ("D", 0.40, 0.40, "value"))
    ], schema={**WILCOXON_SCHEMA, "p_bh": pl.Float64})
    paired = paired_tests(("value", "midpoint", True, -0.1, -0.12, -0.08, 0.001, 0.002))
    out = reference_findings(frame(summary_row("value", 0.05)), references(midpoint=0.15), wilcoxon, None, NAMES,
                             paired)
    (verdict,) = lines_about(out, "Model M, value: MAE")
    assert verdict == ("Model M, value: MAE 0.050, better than every reference (midpoint); paired over "
                       "questions: vs midpoint -0.100 (95% CI -0.120 to -0.080, questions resampled), "
                       "p = 0.001, p_BH = 0.002 (per country, Wilcoxon across questions at BH-adjusted "
                       "p<0.05 over the model's per-country tests: vs midpoint better in 1, worse in 1 of "
                       "4 countries).")


def test_uncorrected_per_country_tests_are_not_counted() -> None:
    wilcoxon = pl.DataFrame([{"model": "m", "country": "A", "method_a": "value", "method_b": "midpoint", "n": 8,
                              "statistic": 1.0, "p_value": 0.001, "better": "value", "vs_reference": True}],
                            schema=WILCOXON_SCHEMA)
    out = reference_findings(frame(summary_row("value", 0.05)), references(midpoint=0.15), wilcoxon, None, NAMES)
    assert lines_about(out, "Model M, value: MAE") == [
        "Model M, value: MAE 0.050, better than every reference (midpoint)."]


def test_an_equal_mae_does_not_count_as_better() -> None:
    out = reference_findings(frame(summary_row("value", 0.15)), references(midpoint=0.15), no_tests(), None, NAMES)
    assert "no better than any reference (midpoint)" in lines_about(out, "Model M, value: MAE")[0]


def test_split_half_is_restated_as_sampling_noise_with_its_factor() -> None:
    out = reference_findings(frame(summary_row("value", 0.1)), references(), no_tests(),
                             {"mae": 0.0123, "mae_sd": 0.001, "wasserstein": 0.0456, "wasserstein_sd": 0.002}, NAMES)
    (line,) = [line for line in out if "Human split-half" in line]
    assert "MAE 0.012" in line
    assert "Wasserstein 0.046" in line
    # halves against each other count the noise twice: the sampling noise is half of it
    assert "human sampling noise" in line
    assert "MAE 0.0062" in line
    assert "Wasserstein 0.0228" in line
    assert "a floor for any simulator" not in line


@pytest.mark.parametrize(("mae", "phrase"), [
    (0.05, "below it"),
    (0.11, "within the sampling noise"),
    (0.30, "3.0\u00d7 its persona-information floor"),
])
def test_the_floor_verdict_is_against_the_persona_information_floor(mae: float, phrase: str) -> None:
    row = summary_row("value", mae, persona_floor_mae=0.10, persona_floor_mae_sd=0.01,
                      answer_floor_mae=0.25, answer_floor_mae_sd=0.02, n_personas=40)
    out = reference_findings(frame(row), references(), no_tests(), None, NAMES)
    (line,) = [line for line in out if "persona-information floor" in line]
    assert "with N = 40 personas per country" in line
    assert "MAE 0.100 ± 0.010 (persona-information floor)" in line
    assert phrase in line
    others = {"below it", "within the sampling noise", "\u00d7 its persona-information floor"} - {phrase}
    assert not any(o in line for o in others if o not in phrase)
    # the actual-answer floor is stated as what asking people gives, never as the verdict's yardstick
    assert "0.250 ± 0.020 (actual-answer floor" in line
    assert "should not" not in line
    assert "1.2\u00d7" not in line


def test_without_a_persona_information_floor_there_is_no_ratio() -> None:
    row = summary_row("value", 0.30, answer_floor_mae=0.10, answer_floor_mae_sd=0.01, n_personas=6)
    out = reference_findings(frame(row), references(), no_tests(), None, NAMES)
    (line,) = [line for line in out if "actual-answer floor" in line]
    assert "0.100 ± 0.010" in line
    assert "\u00d7" not in line
    assert "not read against a floor" in line
    plain = summary_row("country", 0.30)
    assert not [line for line in reference_findings(frame(plain), references(), no_tests(), None, NAMES)
                if "floor" in line]


def test_low_coverage_is_flagged_and_enough_coverage_is_not() -> None:
    low = summary_row("value", 0.1, coverage_mean=LOW_COVERAGE - 0.01, coverage_p5=0.1, answer_rule="first_token")
    ok = summary_row("country", 0.1, coverage_mean=LOW_COVERAGE, coverage_p5=0.3)
    out = reference_findings(frame(low, ok), references(), no_tests(), None, NAMES)
    flagged = [line for line in out if "mean coverage" in line]
    assert len(flagged) == 1
    assert flagged[0].startswith("Model M, value: mean coverage 0.49 (5th percentile 0.10, answer rule first_token)")


def test_plain_scaling_winning_on_mae_is_explained_by_the_midpoint() -> None:
    row = summary_row("value", 0.20, mae_plain=0.15, wasserstein_plain=0.30, wasserstein_cal=0.10)
    out = reference_findings(frame(row), references(midpoint=0.14), no_tests(), None, NAMES)
    (line,) = [line for line in out if "plain temperature scaling" in line]
    assert "plain scaling is better on MAE here." in line
    assert "answering the midpoint alone scores MAE 0.140" in line


def test_mean_preserving_at_least_as_good_on_both() -> None:
    row = summary_row("value", 0.20, mae_plain=0.25, wasserstein_plain=0.30, wasserstein_cal=0.10)
    out = reference_findings(frame(row), references(midpoint=0.14), no_tests(), None, NAMES)
    (line,) = [line for line in out if "plain temperature scaling" in line]
    assert line.endswith(": the mean-preserving calibration is at least as good on both.")


@pytest.mark.parametrize(("t", "edge", "option"), [(8.0, "upper", "t_grid_max"), (0.25, "lower", "t_grid_min")])
def test_a_temperature_at_a_bound_is_flagged(t: float, edge: str, option: str) -> None:
    out = temperature_edge_findings({"m/value": {"loqo_median": t}}, 0.25, 8.0, NAMES)
    assert len(out) == 1
    assert out[0].startswith(f"Model M, value: the fitted mean-preserving temperature ({t:g}, median")
    assert f"sits on the {edge} edge of the search grid (0.25-8): a bound, not an estimate" in out[0]
    assert f"widen calibration.{option}" in out[0]


def test_an_interior_temperature_is_not_flagged_but_a_plain_one_at_the_edge_is() -> None:
    temps = {"m/value": {"loqo_median": 1.3, "plain": {"loqo_median": 8.0}},
             "m/country": {"loqo_median": 2.0}}
    out = temperature_edge_findings(temps, 0.25, 8.0, NAMES)
    assert len(out) == 1
    assert "the fitted plain temperature (8," in out[0]
    assert "upper edge" in out[0]


def test_an_objective_falling_to_the_limit_is_reported_as_not_identified() -> None:
    entry = {"loqo_median": float("inf"), "edge": "infinity", "identified": False, "monotone": True,
             "loqo": {"Q1": float("inf"), "Q2": 9.5}, "loqo_at_limit": 1,
             "curve": {"t": [0.25, 8.0], "objective": [0.3, 0.26912], "objective_limit": 0.26896},
             "plain": {"loqo_median": 5.1, "edge": None, "identified": True}}
    out = temperature_edge_findings({"m/value": entry}, 0.25, 8.0, NAMES)
    (line,) = out  # the plain fit is interior: nothing to say about it
    assert line.startswith("Model M, value: T not identified; calibration acts as mean-preserving smoothing "
                           "toward maximum entropy")
    assert "0.26912 at T = 8, the top of the grid, and 0.26896 at T = ∞" in line
    assert "1 of 2 held-out questions also fit T = ∞" in line
    assert "widen" not in line
    assert "bound" not in line
    # a plain fit at the limit flattens toward uniform
    plain = {"m/value": {"loqo_median": 2.0, "edge": None, "plain": {**entry, "loqo_at_limit": 2}}}
    (line,) = temperature_edge_findings(plain, 0.25, 8.0, NAMES)
    assert "T not identified; calibration acts as flattening toward the uniform distribution" in line


def test_with_the_limit_in_the_search_only_the_lower_edge_is_a_bound() -> None:
    temps = {"m/value": {"loqo_median": 8.0, "edge": None},  # a finite optimum at 8 is an estimate now
             "m/country": {"loqo_median": 0.25, "edge": "lower"}}
    (line,) = temperature_edge_findings(temps, 0.25, 8.0, NAMES)
    assert line.startswith("Model M, country: the fitted mean-preserving temperature (0.25, median")
    assert "a bound, not an estimate" in line
    assert "widen calibration.t_grid_min" in line


def test_findings_without_scores() -> None:
    assert findings(pl.DataFrame(), no_tests(), {}, 0.0, False, NAMES) == ["No scores were computed."]


def test_findings_name_the_best_and_worst_method_and_an_unseparated_gap() -> None:
    summ = frame(summary_row("value", 0.10, mae_hi=0.16), summary_row("country", 0.15))
    paired = paired_tests(("country", "value", False, 0.05, -0.01, 0.11, 0.2, 0.3))
    out = findings(summ, no_tests(), {}, 0.0, False, NAMES, paired=paired)
    assert out[0].startswith("Model M: the lowest MAE is value (0.100, 95% CI 0.090-0.160 resampling its "
                             "country MAEs); the highest is country (0.150).")
    (line,) = lines_about(out, "Model M: paired MAE differences")
    assert "sign-flip test over 32 questions" in line
    assert "country - value +0.050 (95% CI -0.010 to +0.110, questions resampled), p = 0.2, p_BH = 0.3" in line
    assert line.endswith("So no pair of methods differs at BH-adjusted p < 0.05: this run does not separate "
                         "the methods.")
    # the old reading (the gap against the best method's country-resampled interval) is gone
    assert not any("95% interval" in line for line in out)


def test_findings_follow_the_paired_test_not_the_country_interval() -> None:
    # the gap (0.05) is inside the best method's interval, yet the paired test separates them
    summ = frame(summary_row("value", 0.10, mae_hi=0.16), summary_row("country", 0.15))
    paired = paired_tests(("country", "value", False, 0.05, 0.03, 0.07, 0.0001, 0.0002),
                          ("value", "midpoint", True, 0.01, -0.02, 0.04, 0.5, 0.5))
    out = findings(summ, no_tests(), {}, 0.0, False, NAMES, paired=paired)
    (line,) = lines_about(out, "Model M: paired MAE differences")
    assert "Benjamini-Hochberg over this model's 2 paired tests" in line
    assert line.endswith("So 1 of 1 method pairs differ at BH-adjusted p < 0.05.")
    assert not any("does not separate" in line for line in out)


def test_findings_on_country_spread() -> None:
    summ = frame(summary_row("generic", 0.2), summary_row("country", 0.2), summary_row("value", 0.2))
    spread = {"m/generic": 0.01, "m/country": 0.02, "m/value": 0.09}
    out = findings(summ, no_tests(), spread, human_sd=0.1, synthetic=False, model_names=NAMES)
    # a prompt without the country: the same answers everywhere is by design
    assert any(line.startswith("Model M, generic: the prompt does not name the country") for line in out)
    # a prompt that names the country but barely moves the answers
    (alike,) = [line for line in out if "nearly alike" in line]
    assert alike.startswith("Model M, country: predicted country means vary only 20% as much")
    assert not any(line.startswith("Model M, value: predicted") for line in out)


def test_findings_count_significant_method_pairs_and_leave_references_out() -> None:
    rows = [
        {"model": "m", "country": c, "method_a": "country", "method_b": "value", "n": 8, "statistic": 1.0,
         "p_value": p, "better": "value", "vs_reference": False, "p_bh": q}
        for c, p, q in (("A", 0.01, 0.03), ("B", 0.2, 0.2), ("C", 0.04, 0.08))  # C: only uncorrected
    ] + [{"model": "m", "country": "A", "method_a": "value", "method_b": "midpoint", "n": 8,
          "statistic": 1.0, "p_value": 0.001, "better": "value", "vs_reference": True, "p_bh": 0.004}]
    summ = frame(summary_row("value", 0.1), summary_row("country", 0.2))
    schema = {**WILCOXON_SCHEMA, "p_bh": pl.Float64}
    out = findings(summ, pl.DataFrame(rows, schema=schema), {}, 0.0, False, NAMES)
    assert any(line.startswith("Model M: 1 of 3 (country, method-pair) comparisons differ at "
                               "Benjamini-Hochberg-adjusted p < 0.05") and "the model's 4 per-country tests" in line
               for line in out)
    # a table without corrected p-values (an older run): no count at all
    old = findings(summ, pl.DataFrame(rows, schema=schema).drop("p_bh"), {}, 0.0, False, NAMES)
    assert not any("comparisons differ" in line for line in old)


def test_findings_report_variance_before_and_after_calibration_and_the_synthetic_caveat() -> None:
    summ = frame(summary_row("value", 0.1, nvar=0.31, nvar_cal=0.52, nvar_human=0.6,
                             wasserstein=0.2345, wasserstein_cal=0.1234))
    out = findings(summ, no_tests(), {}, 0.0, True, NAMES)
    assert any(line.startswith("Model M, value: normalized variance 0.31 before and 0.52 after "
                               "calibration (humans 0.60); Wasserstein 0.234 → 0.123") for line in out)
    assert "synthetic demo population" in out[-1]
    assert not any("synthetic" in line for line in findings(summ, no_tests(), {}, 0.0, False, NAMES))


def test_findings_include_the_references_when_given() -> None:
    summ = frame(summary_row("value", 0.2))
    out = findings(summ, no_tests(), {}, 0.0, False, NAMES, references=references(midpoint=0.1))
    assert any("no better than any reference (midpoint)" in line for line in out)


def test_country_spread_against_a_hand_computation() -> None:
    # codes 1..3 (range 2); scaled mean = E[r] / range, as the module defines it
    population = pl.DataFrame({
        "model": ["m"] * 4, "method": ["value"] * 4, "country": ["A", "B", "A", "B"],
        "question": ["Q1", "Q1", "Q2", "Q2"], "codes": [[1, 2, 3]] * 4,
        "probs_raw": [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0], [0.5, 0.5, 0.0]],
    })
    human = pl.DataFrame({
        "country": ["A", "B", "A", "B"], "question": ["Q1", "Q1", "Q2", "Q2"],
        "code": [2, 3, 1, 3], "share": [1.0, 1.0, 1.0, 1.0],
    })
    pred, human_sd = country_spread(population, human)
    # Q1: means 1/2 and 3/2 -> population sd 0.5; Q2: 0.75 both -> 0; averaged: 0.25
    assert pred == {"m/value": pytest.approx(0.25)}
    # Q1: 1 and 1.5 -> 0.25; Q2: 0.5 and 1.5 -> 0.5; averaged: 0.375
    assert human_sd == pytest.approx(np.mean([0.25, 0.5]))
