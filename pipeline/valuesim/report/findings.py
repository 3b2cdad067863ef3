"""Plain-language findings computed from the scores, so the report says what the
numbers show (including when the answer is "not much") rather than what we hoped."""

from __future__ import annotations

import numpy as np
import polars as pl

PERSONA_METHODS = ("value", "sociodemographic", "fewshot")


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


def findings(summary: pl.DataFrame, wilcoxon: pl.DataFrame, spread: dict[str, float],
             human_sd: float, synthetic: bool, model_names: dict[str, str]) -> list[str]:
    out: list[str] = []
    if summary.is_empty():
        return ["No scores were computed."]
    for (model,), grp in summary.group_by(["model"], maintain_order=True):
        name = model_names.get(str(model), str(model))
        g = grp.sort("mae")
        best, worst = g.row(0, named=True), g.row(-1, named=True)
        out.append(
            f"{name}: the lowest MAE is {best['method']} ({best['mae']:.3f}, 95% CI "
            f"{best['mae_lo']:.3f}-{best['mae_hi']:.3f}); the highest is {worst['method']} "
            f"({worst['mae']:.3f}). On this scale 0.1 means the predicted country means are off "
            "by a tenth of the answer range on average."
        )
        if g.height > 1 and best["mae_hi"] >= worst["mae"]:
            out.append(
                f"{name}: the gap between methods ({worst['mae'] - best['mae']:.3f}) lies within the "
                "best method's 95% interval: this run does not separate the methods."
            )
        w = wilcoxon.filter(pl.col("model") == model)
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
                if ratio < 0.25 and row["method"] in ("generic", "default"):
                    out.append(
                        f"{name}, {row['method']}: the prompt does not name the country, so every "
                        "country gets the same prediction (by design)."
                    )
                elif ratio < 0.25:
                    out.append(
                        f"{name}, {row['method']}: predicted country means vary only {ratio:.0%} as "
                        "much across countries as the human means do: the model answers the "
                        "countries nearly alike."
                    )
        nv = g.select("method", "nvar", "nvar_cal", "nvar_human").rows()
        for method, nvar, nvar_cal, nvar_h in nv:
            out.append(
                f"{name}, {method}: normalized variance {nvar:.2f} before and {nvar_cal:.2f} after "
                f"calibration (humans {nvar_h:.2f}); Wasserstein "
                f"{grp.filter(pl.col('method') == method)['wasserstein'][0]:.3f} → "
                f"{grp.filter(pl.col('method') == method)['wasserstein_cal'][0]:.3f}; the MAE is "
                "unchanged by construction."
            )
    if synthetic:
        out.append(
            "The human side of this run is the synthetic demo population (generated from "
            "shipped aggregates), not real survey respondents: the numbers show that the "
            "pipeline works end to end, not how well any model simulates a real country."
        )
    return out
