"""Plain-language findings computed from the scores, so the report says what the
numbers show (including when the answer is "not much") rather than what we hoped."""

from __future__ import annotations

import numpy as np
import polars as pl

from valuesim.analysis.references import SPLIT_HALF_FACTOR, human_sampling_noise
from valuesim.methods import country_blind, method_label


def country_spread(population: pl.DataFrame, human: pl.DataFrame) -> tuple[dict[str, float], float]:
    """How much country means vary: per "<model>/<method>" (predicted) and for humans.

    The standard deviation over countries of each question's mean / range, averaged
    over questions. A model value near 0 means it answers every country alike.
    """
    def sd(frame: pl.DataFrame) -> float:
        return float(frame.group_by("question").agg(pl.col("m").std(ddof=0))["m"].mean() or 0.0)

    def scaled_mean(codes: list[int], probs: list[float]) -> float:
        c = np.asarray(codes, dtype=float)
        return float(np.dot(c, probs) / (c[-1] - c[0]))

    pred: dict[str, float] = {}
    for (model, method), grp in population.group_by(["model", "method"], maintain_order=True):
        m = [scaled_mean(c, p) for c, p in grp.select("codes", "probs_raw").iter_rows()]
        pred[f"{model}/{method}"] = sd(grp.select("question").with_columns(pl.Series("m", m)))
    scale = population.group_by("question").agg(pl.col("codes").first())
    hum = human.join(scale, on="question").with_columns(
        (pl.col("code") * pl.col("share")).alias("x"),
        (pl.col("codes").list.max() - pl.col("codes").list.min()).alias("range"),
    ).group_by(["country", "question"]).agg((pl.col("x").sum() / pl.col("range").first()).alias("m"))
    return pred, sd(hum)


#: below this mean coverage the report says what it means
LOW_COVERAGE = 0.5
REFERENCE_NAMES = {"midpoint": "always the scale midpoint", "uniform": "all answers equally likely",
                   "other_countries": "the pooled answers of the other countries"}


def reference_findings(
    summary: pl.DataFrame, references: pl.DataFrame, wilcoxon: pl.DataFrame,
    split_half: dict[str, float] | None, model_names: dict[str, str],
    paired: pl.DataFrame | None = None,
) -> list[str]:
    """Where each method stands against the references (the paired test clustered by
    question, and per-country counts only BH-corrected), floors and reliability."""
    out: list[str] = []
    refs = {str(m): r for m, r in zip(references["method"], references.iter_rows(named=True), strict=True)}
    if refs:
        parts = [f"{k} ({REFERENCE_NAMES.get(k, k)}) {r['mae']:.3f}" for k, r in refs.items()]
        out.append("References (no model involved), MAE on the same cells: " + "; ".join(parts) + ".")
    if split_half:
        noise = human_sampling_noise(split_half)
        out.append(
            f"Human split-half: two random halves of each country's respondents differ by MAE "
            f"{split_half['mae']:.3f} (Wasserstein {split_half['wasserstein']:.3f}). One half minus the "
            f"other is {SPLIT_HALF_FACTOR:g} times one half minus the whole sample, which varies as the whole "
            f"sample does around the population, so the human sampling noise, the error even a perfect "
            f"predictor of the population has against the full sample, is about split-half / "
            f"{SPLIT_HALF_FACTOR:g}: MAE {noise['mae']:.4f} (Wasserstein {noise['wasserstein']:.4f})."
        )
    for row in summary.iter_rows(named=True):
        model, method = str(row["model"]), str(row["method"])
        name = f"{model_names.get(model, model)}, {method_label(method)}"
        beats = [k for k, r in refs.items() if row["mae"] < r["mae"]]
        loses = [k for k, r in refs.items() if row["mae"] >= r["mae"]]
        if refs:
            verdict = (f"better than every reference ({', '.join(beats)})" if not loses else
                       f"no better than any reference ({', '.join(loses)})" if not beats else
                       f"better than {', '.join(beats)} but not {', '.join(loses)}")
            w = wilcoxon.filter((pl.col("model") == model) & (pl.col("method_a") == method)
                                & pl.col("vs_reference")) if "vs_reference" in wilcoxon.columns else wilcoxon.head(0)
            tests = []
            for ref in refs:
                r = w.filter(pl.col("method_b") == ref) if "p_bh" in w.columns else w.head(0)
                if r.height:
                    won = r.filter((pl.col("p_bh") < 0.05) & (pl.col("better") == method)).height
                    lost = r.filter((pl.col("p_bh") < 0.05) & (pl.col("better") == ref)).height
                    tests.append(f"vs {ref} better in {won}, worse in {lost} of {r.height} countries")
            clustered = [_paired_phrase(t, f"vs {t['b']}") for t in _paired_rows(paired, model, method, True)]
            out.append(f"{name}: MAE {row['mae']:.3f}, {verdict}"
                       + (f"; paired over questions: {'; '.join(clustered)}" if clustered else "")
                       + (f" (per country, Wilcoxon across questions at BH-adjusted p<0.05 over the "
                          f"model's per-country tests: {'; '.join(tests)})." if tests else "."))
        line = floor_finding(name, row)
        if line:
            out.append(line)
        cov = row.get("coverage_mean")
        if cov is not None and cov == cov and cov < LOW_COVERAGE:
            out.append(
                f"{name}: mean coverage {cov:.2f} (5th percentile {row['coverage_p5']:.2f}, answer "
                f"rule {row.get('answer_rule') or '?'}): most of the model's probability goes to replies "
                "that are not an answer on the scale, so the distributions describe only the part "
                "of its behaviour that does answer; treat the scores with caution."
            )
        if row.get("mae_plain") is not None and row.get("wasserstein_plain") is not None:
            better = [m for m, a, b in (("MAE", row["mae_plain"], row["mae"]),
                                        ("Wasserstein", row["wasserstein_plain"], row["wasserstein_cal"]))
                      if a < b - 1e-12]
            why = ""
            if "MAE" in better and "midpoint" in refs:
                # flattening pulls every mean towards the scale centre
                why = (f" Plain scaling flattens the distributions and so pulls every mean towards "
                       f"the scale centre; answering the midpoint alone scores MAE "
                       f"{refs['midpoint']['mae']:.3f}, so a lower MAE from it is not a better simulator.")
            out.append(
                f"{name}: mean-preserving calibration gives MAE {row['mae']:.3f} and Wasserstein "
                f"{row['wasserstein_cal']:.3f}; plain temperature scaling fitted the same way "
                f"(leave-one-question-out, same grid) gives MAE {row['mae_plain']:.3f} and Wasserstein "
                f"{row['wasserstein_plain']:.3f}"
                + (f": plain scaling is better on {' and '.join(better)} here." if better
                   else ": the mean-preserving calibration is at least as good on both.") + why
            )
    return out


def _present(x: object) -> bool:
    return x is not None and x == x  # not None, not NaN


def floor_finding(name: str, row: dict) -> str | None:
    """Where a persona run's MAE stands against its floors (None for other runs).

    The verdict ("x times") is against the persona-information floor, what a perfect
    simulator of the run's N personas would score; the actual-answer floor (N
    respondents' own answers) is stated beside it as what asking N people would give,
    never as the method's floor: the pipeline averages personas' distributions, whose
    means vary far less than single answers."""
    n, mae = row.get("n_personas"), row["mae"]
    actual, actual_sd = row.get("answer_floor_mae"), row.get("answer_floor_mae_sd")
    floor, sd = row.get("persona_floor_mae"), row.get("persona_floor_mae_sd")
    asked = (f"N respondents' own answers would score {actual:.3f} ± {actual_sd:.3f} (actual-answer floor: "
             "what asking that many people gives)") if _present(actual) else ""
    if not (_present(floor) and floor > 0):
        if not asked:
            return None
        return (f"{name}: with {n} personas per country, {asked}. There is no persona-information floor for "
                "this method (the question bank does not say what its personas state), so its MAE is "
                f"not read against a floor; the actual-answer floor is not one for a persona simulator.")
    if mae < floor - 2 * sd:
        where = ("below it: the model's answers vary less from persona to persona than the people's "
                 "expected answers do (for example, it answers near one typical value whatever the "
                 "persona), and averaging N personas rewards that.")
    elif mae <= floor + 2 * sd:
        where = ("within the sampling noise of N personas: sample more personas before reading "
                 "differences between methods.")
    else:
        where = (f"{mae / floor:.1f}× its persona-information floor: the number of personas does not "  # noqa: RUF001 - the report says "times" with this sign
                 "explain its error.")
    return (f"{name}: with N = {n} personas per country a perfect simulator of these personas (each "
            f"answering the mean answer of respondents with the same persona items, estimated on the "
            f"survey with cross-fitting) would score MAE {floor:.3f} ± {sd:.3f} (persona-information "
            f"floor); this method's {mae:.3f} is {where}" + (f" For comparison, {asked}." if asked else ""))


#: what each calibration becomes at T -> infinity, for the "not identified" finding
LIMIT_MEANING = {
    "mean-preserving": ("mean-preserving smoothing toward maximum entropy: in the limit each persona's "
                        "distribution becomes the maximum-entropy distribution with its own mean"),
    "plain": ("flattening toward the uniform distribution: in the limit every answer is equally likely "
              "and every mean moves to the centre of the scale"),
}


def not_identified_finding(name: str, label: str, entry: dict) -> str:
    """One (model, method, scaling) whose objective keeps falling to T = infinity."""
    curve = entry.get("curve") or {}
    t, obj, at_limit = curve.get("t") or [], curve.get("objective") or [], curve.get("objective_limit")
    where = (f" (mean Wasserstein distance {obj[-1]:.5f} at T = {t[-1]:g}, the top of the grid, and "
             f"{at_limit:.5f} at T = ∞)" if t and obj and at_limit is not None else "")
    shape = (", falling all the way up the grid" if entry.get("monotone") else "")
    loqo = entry.get("loqo") or {}
    held = (f"; {entry['loqo_at_limit']} of {len(loqo)} held-out questions also fit T = ∞"
            if "loqo_at_limit" in entry and loqo else "")
    return (f"{name}: T not identified; calibration acts as {LIMIT_MEANING[label]}. The {label} objective "
            f"is lowest at the T → ∞ limit{where}{shape}{held}. A grid reaching further would only chase "
            "infinity; the fitted T is reported as ∞.")


def temperature_edge_findings(
    temperatures: dict[str, dict], t_min: float, t_max: float, model_names: dict[str, str]
) -> list[str]:
    """Fits the objective does not pin down. A fit whose objective is lowest at the
    T -> infinity limit (``edge: "infinity"`` in temperatures.json) is "not identified";
    a fitted T on the lowest grid point is a bound, not an estimate. A temperatures.json
    written before the search reached the limit has no ``edge``: a median T on either
    edge of the grid is then called a bound, as it is."""
    out = []
    for run, fit in temperatures.items():
        model, method = run.split("/", 1)
        name = f"{model_names.get(model, model)}, {method_label(method)}"
        for label, entry in (("mean-preserving", fit), ("plain", fit.get("plain") or {})):
            if entry.get("edge") == "infinity":
                out.append(not_identified_finding(name, label, entry))
                continue
            t = entry.get("loqo_median")
            if t is None:
                continue
            if "edge" in entry:  # the search reached the limit: only the lower edge is a bound
                edge = "lower" if entry["edge"] == "lower" or t <= t_min * (1 + 1e-6) else None
            else:
                edge = "upper" if t >= t_max * (1 - 1e-6) else "lower" if t <= t_min * (1 + 1e-6) else None
            if edge:
                out.append(
                    f"{name}: the fitted {label} temperature ({t:g}, median over held-out questions) "
                    f"sits on the {edge} edge of the search grid ({t_min:g}-{t_max:g}): a bound, not an "
                    f"estimate (the best T may lie beyond it); widen "
                    f"calibration.t_grid_{'max' if edge == 'upper' else 'min'} to find it."
                )
    return out


def _paired_rows(paired: pl.DataFrame | None, model: str, method: str | None, vs_reference: bool) -> list[dict]:
    """paired_tests.parquet's rows of one model: method pairs, or ``method`` against the references."""
    if paired is None or paired.is_empty():
        return []
    rows = paired.filter((pl.col("model") == model) & (pl.col("vs_reference") == vs_reference))
    if method is not None:
        rows = rows.filter(pl.col("a") == method)
    return list(rows.iter_rows(named=True))


def _paired_phrase(t: dict, what: str) -> str:
    """One paired comparison: a - b over the cells both score, its interval and p-values."""
    return (f"{what} {t['diff']:+.3f} (95% CI {t['ci_lo']:+.3f} to {t['ci_hi']:+.3f}, questions "
            f"resampled), p = {t['p']:.2g}, p_BH = {t['p_bh']:.2g}")


def method_difference_findings(name: str, model: str, paired: pl.DataFrame | None) -> list[str]:
    """Which methods differ, by the paired test clustered by question (paired_tests.parquet)."""
    rows = _paired_rows(paired, model, None, False)
    if paired is None or not rows:
        return []
    family = paired.filter(pl.col("model") == model).height
    parts = [_paired_phrase(t, f"{method_label(t['a'])} - {method_label(t['b'])}") for t in rows]
    n_q = max(int(t["n_questions"]) for t in rows)
    differ = [t for t in rows if t["p_bh"] < 0.05]
    verdict = ("no pair of methods differs at BH-adjusted p < 0.05: this run does not separate the methods"
               if not differ else
               f"{len(differ)} of {len(rows)} method pairs differ at BH-adjusted p < 0.05")
    return [f"{name}: paired MAE differences on the cells both methods score (sign-flip test over "
            f"{n_q} questions, each averaged over countries; Benjamini-Hochberg over this model's "
            f"{family} paired tests, references included): {'; '.join(parts)}. So {verdict}."]


def findings(summary: pl.DataFrame, wilcoxon: pl.DataFrame, spread: dict[str, float],
             human_sd: float, synthetic: bool, model_names: dict[str, str],
             references: pl.DataFrame | None = None,
             split_half: dict[str, float] | None = None,
             paired: pl.DataFrame | None = None) -> list[str]:
    out: list[str] = []
    if summary.is_empty():
        return ["No scores were computed."]
    if "vs_reference" in wilcoxon.columns:
        between_methods = wilcoxon.filter(~pl.col("vs_reference"))
    else:
        between_methods = wilcoxon
    for (model,), grp in summary.group_by(["model"], maintain_order=True):
        name = model_names.get(str(model), str(model))
        g = grp.sort("mae")
        best, worst = g.row(0, named=True), g.row(-1, named=True)
        out.append(
            f"{name}: the lowest MAE is {method_label(best['method'])} ({best['mae']:.3f}, 95% CI "
            f"{best['mae_lo']:.3f}-{best['mae_hi']:.3f} resampling its country MAEs); the highest is {method_label(worst['method'])} "
            f"({worst['mae']:.3f}). On this scale 0.1 means the predicted country means are off "
            "by a tenth of the answer range on average."
        )
        out += method_difference_findings(name, str(model), paired)
        w = between_methods.filter(pl.col("model") == model)
        if w.height and "p_bh" in w.columns:  # per-country counts only corrected
            sig = w.filter(pl.col("p_bh") < 0.05)
            n_all = wilcoxon.filter(pl.col("model") == model).height
            out.append(
                f"{name}: {sig.height} of {w.height} (country, method-pair) comparisons differ at "
                "Benjamini-Hochberg-adjusted p < 0.05 (Wilcoxon signed-rank across questions per "
                f"country, corrected over the model's {n_all} per-country tests, references included)."
            )
        for row in g.iter_rows(named=True):
            key = f"{model}/{row['method']}"
            if key in spread and human_sd > 0:
                ratio = spread[key] / human_sd
                if ratio < 0.25 and country_blind(row["method"]):
                    out.append(
                        f"{name}, {method_label(row['method'])}: the prompt does not name the country, so every "
                        "country gets the same prediction (by design)."
                    )
                elif ratio < 0.25:
                    out.append(
                        f"{name}, {method_label(row['method'])}: predicted country means vary only {ratio:.0%} as "
                        "much across countries as the human means do: the model answers the "
                        "countries nearly alike."
                    )
        nv = g.select("method", "nvar", "nvar_cal", "nvar_human").rows()
        for method, nvar, nvar_cal, nvar_h in nv:
            out.append(
                f"{name}, {method_label(method)}: normalized variance {nvar:.2f} before and {nvar_cal:.2f} after "
                f"calibration (humans {nvar_h:.2f}); Wasserstein "
                f"{grp.filter(pl.col('method') == method)['wasserstein'][0]:.3f} → "
                f"{grp.filter(pl.col('method') == method)['wasserstein_cal'][0]:.3f}; the MAE is "
                "unchanged by construction."
            )
    if references is not None:
        out += reference_findings(summary, references, wilcoxon, split_half, model_names, paired)
    if synthetic:
        out.append(
            "The human side of this run is the synthetic demo population (generated from "
            "shipped aggregates), not real survey respondents: the numbers show that the "
            "pipeline works end to end, not how well any model simulates a real country."
        )
    return out
