"""valuesim.report.findings: what the report says about planted summaries.

Each summary is built so that one statement must follow (a method worse than the
midpoint reference, a temperature on the grid edge, a run that cannot separate its
methods); the tests check that the text says it, and does not say the opposite.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

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
        "floor_mae": None, "floor_mae_sd": None, "n_personas": None,
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


def test_a_method_better_than_every_reference_with_its_wilcoxon_counts() -> None:
    wilcoxon = pl.DataFrame([
        {"model": "m", "country": c, "method_a": "value", "method_b": "midpoint", "n": 8,
         "statistic": 1.0, "p_value": p, "better": better, "vs_reference": True}
        for c, p, better in (("A", 0.01, "value"), ("B", 0.01, "value"), ("C", 0.01, "midpoint"),
                             ("D", 0.40, "value"))
    ], schema=WILCOXON_SCHEMA)
    out = reference_findings(frame(summary_row("value", 0.05)), references(midpoint=0.15), wilcoxon, None, NAMES)
    (verdict,) = lines_about(out, "Model M, value: MAE")
    assert verdict == ("Model M, value: MAE 0.050, better than every reference (midpoint) "
                       "(Wilcoxon p<0.05: vs midpoint better in 2, worse in 1 of 4 countries).")


def test_an_equal_mae_does_not_count_as_better() -> None:
    out = reference_findings(frame(summary_row("value", 0.15)), references(midpoint=0.15), no_tests(), None, NAMES)
    assert "no better than any reference (midpoint)" in lines_about(out, "Model M, value: MAE")[0]


def test_split_half_floor() -> None:
    out = reference_findings(frame(summary_row("value", 0.1)), references(), no_tests(),
                             {"mae": 0.0123, "wasserstein": 0.0456}, NAMES)
    assert any("Human split-half" in line and "MAE 0.012" in line and "Wasserstein 0.046" in line for line in out)


@pytest.mark.parametrize(("mae", "phrase"), [
    (0.05, "below the floor"),
    (0.11, "within the sampling noise"),
    (0.30, "3.0\u00d7 the floor"),
])
def test_the_sampling_floor_verdict(mae: float, phrase: str) -> None:
    row = summary_row("value", mae, floor_mae=0.10, floor_mae_sd=0.01, n_personas=40)
    out = reference_findings(frame(row), references(), no_tests(), None, NAMES)
    (line,) = [line for line in out if "sampling floor" in line]
    assert "with 40 personas per country" in line
    assert "MAE 0.100 ± 0.010" in line
    assert phrase in line
    others = {"below the floor", "within the sampling noise", "\u00d7 the floor"} - {phrase}
    assert not any(o in line for o in others if o not in phrase)


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
    assert f"sits on the {edge} edge of the search grid (0.25-8)" in out[0]
    assert f"widen calibration.{option}" in out[0]


def test_an_interior_temperature_is_not_flagged_but_a_plain_one_at_the_edge_is() -> None:
    temps = {"m/value": {"loqo_median": 1.3, "plain": {"loqo_median": 8.0}},
             "m/country": {"loqo_median": 2.0}}
    out = temperature_edge_findings(temps, 0.25, 8.0, NAMES)
    assert len(out) == 1
    assert "the fitted plain temperature (8," in out[0]
    assert "upper edge" in out[0]


def test_findings_without_scores() -> None:
    assert findings(pl.DataFrame(), no_tests(), {}, 0.0, False, NAMES) == ["No scores were computed."]


def test_findings_name_the_best_and_worst_method_and_an_unseparated_gap() -> None:
    summ = frame(summary_row("value", 0.10, mae_hi=0.16), summary_row("country", 0.15))
    out = findings(summ, no_tests(), {}, 0.0, False, NAMES)
    assert out[0].startswith("Model M: the lowest MAE is value (0.100, 95% CI 0.090-0.160); "
                             "the highest is country (0.150).")
    assert any("the gap between methods (0.050) lies within the best method's 95% interval" in line
               for line in out)


def test_findings_do_not_claim_an_unseparated_gap_when_the_interval_excludes_it() -> None:
    summ = frame(summary_row("value", 0.10, mae_hi=0.12), summary_row("country", 0.15))
    out = findings(summ, no_tests(), {}, 0.0, False, NAMES)
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
         "p_value": p, "better": "value", "vs_reference": False}
        for c, p in (("A", 0.01), ("B", 0.2), ("C", 0.04))
    ] + [{"model": "m", "country": "A", "method_a": "value", "method_b": "midpoint", "n": 8,
          "statistic": 1.0, "p_value": 0.001, "better": "value", "vs_reference": True}]
    summ = frame(summary_row("value", 0.1), summary_row("country", 0.2))
    out = findings(summ, pl.DataFrame(rows, schema=WILCOXON_SCHEMA), {}, 0.0, False, NAMES)
    assert any(line.startswith("Model M: 2 of 3 (country, method-pair) comparisons differ at p < 0.05")
               for line in out)


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
