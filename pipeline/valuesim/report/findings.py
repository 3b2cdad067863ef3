"""Plain-language findings computed from the scores, so the report says what the
numbers show (including when the answer is "not much") rather than what we hoped."""

from __future__ import annotations

import numpy as np
import polars as pl

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
) -> list[str]:
    """Where each method stands against the references, floors and reliability."""
    out: list[str] = []
    refs = {str(m): r for m, r in zip(references["method"], references.iter_rows(named=True), strict=True)}
    if refs:
        parts = [f"{k} ({REFERENCE_NAMES.get(k, k)}) {r['mae']:.3f}" for k, r in refs.items()]
        out.append("References (no model involved), MAE on the same cells: " + "; ".join(parts) + ".")
    if split_half:
        out.append(
            f"Human split-half: two random halves of each country's respondents differ by MAE "
            f"{split_half['mae']:.3f} (Wasserstein {split_half['wasserstein']:.3f}); that is the "
            "survey's own noise at half its size, a floor for any simulator."
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
                r = w.filter(pl.col("method_b") == ref)
                if r.height:
                    won = r.filter((pl.col("p_value") < 0.05) & (pl.col("better") == method)).height
                    lost = r.filter((pl.col("p_value") < 0.05) & (pl.col("better") == ref)).height
                    tests.append(f"vs {ref} better in {won}, worse in {lost} of {r.height} countries")
            out.append(f"{name}: MAE {row['mae']:.3f}, {verdict}"
                       + (f" (Wilcoxon p<0.05: {'; '.join(tests)})." if tests else "."))
        floor = row.get("floor_mae")
        if floor is not None and floor == floor and floor > 0:
            sd = row["floor_mae_sd"]
            if row["mae"] < floor - 2 * sd:
                where = ("below the floor: its personas answer closer to the country average than "
                         "that many real respondents would, as a simulator of individuals should not.")
            elif row["mae"] <= floor + 2 * sd:
                where = ("within the sampling noise of that many personas: sample more personas "
                         "before reading differences between methods.")
            else:
                where = (f"{row['mae'] / floor:.1f}× the floor: the number of personas does not explain "  # noqa: RUF001 - the report says "times" with this sign
                         "its error.")
            out.append(
                f"{name}: with {row['n_personas']} personas per country a perfect simulator (each "
                f"sampled respondent answering as they did) would score MAE {floor:.3f} ± {sd:.3f} "
                f"(sampling floor); this method's {row['mae']:.3f} is {where}"
            )
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


def temperature_edge_findings(
    temperatures: dict[str, dict], t_min: float, t_max: float, model_names: dict[str, str]
) -> list[str]:
    """A fitted T on the edge of the search grid is a bound, not an estimate: say so."""
    out = []
    for run, fit in temperatures.items():
        model, method = run.split("/", 1)
        name = f"{model_names.get(model, model)}, {method_label(method)}"
        for label, entry in (("mean-preserving", fit), ("plain", fit.get("plain") or {})):
            t = entry.get("loqo_median")
            if t is None:
                continue
            edge = "upper" if t >= t_max * (1 - 1e-6) else "lower" if t <= t_min * (1 + 1e-6) else None
            if edge:
                out.append(
                    f"{name}: the fitted {label} temperature ({t:g}, median over held-out questions) "
                    f"sits on the {edge} edge of the search grid ({t_min:g}-{t_max:g}): the best T may "
                    f"lie beyond it; widen calibration.t_grid_{'max' if edge == 'upper' else 'min'} to "
                    "find it."
                )
    return out


def findings(summary: pl.DataFrame, wilcoxon: pl.DataFrame, spread: dict[str, float],
             human_sd: float, synthetic: bool, model_names: dict[str, str],
             references: pl.DataFrame | None = None,
             split_half: dict[str, float] | None = None) -> list[str]:
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
            f"{best['mae_lo']:.3f}-{best['mae_hi']:.3f}); the highest is {method_label(worst['method'])} "
            f"({worst['mae']:.3f}). On this scale 0.1 means the predicted country means are off "
            "by a tenth of the answer range on average."
        )
        if g.height > 1 and best["mae_hi"] >= worst["mae"]:
            out.append(
                f"{name}: the gap between methods ({worst['mae'] - best['mae']:.3f}) lies within the "
                "best method's 95% interval: this run does not separate the methods."
            )
        w = between_methods.filter(pl.col("model") == model)
        if w.height:
            sig = w.filter(pl.col("p_value") < 0.05)
            out.append(
                f"{name}: {sig.height} of {w.height} (country, method-pair) comparisons differ at "
                "p < 0.05 (Wilcoxon signed-rank across questions, not corrected for the number "
                "of comparisons, so about 5% are expected by chance alone)."
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
        out += reference_findings(summary, references, wilcoxon, split_half, model_names)
    if synthetic:
        out.append(
            "The human side of this run is the synthetic demo population (generated from "
            "shipped aggregates), not real survey respondents: the numbers show that the "
            "pipeline works end to end, not how well any model simulates a real country."
        )
    return out
