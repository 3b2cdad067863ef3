"""What the report says first: a short verdict per model and one table of checks
(method x check), computed from the scoreboard, the paired tests and the calibration
fits. The long findings in words (``valuesim.report.findings``) stay on the page,
folded away, for readers who want every number.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import polars as pl

from valuesim.analysis.references import human_sampling_noise
from valuesim.methods import country_blind
from valuesim.report.findings import LOW_COVERAGE, method_difference_findings
from valuesim.report.scoreboard import ALPHA, REFERENCE_LABELS

#: below this share of the humans' spread of country means, a method "answers the countries alike"
ALIKE = 0.25

SYNTHETIC_BANNER = (
    "Synthetic data: the human side of this run is the demo population, generated from shipped "
    "aggregates, not real survey respondents. The numbers show that the pipeline works end to end, "
    "not how well any model simulates a real country."
)


def _ref_name(ref: str) -> str:
    return REFERENCE_LABELS.get(ref, ref).removeprefix("reference: ")


def _tests(paired: pl.DataFrame | None, model: str) -> dict[tuple[str, str], dict[str, Any]]:
    if paired is None or paired.is_empty():
        return {}
    rows = paired.filter(pl.col("model") == model).iter_rows(named=True)
    return {(str(r["a"]), str(r["b"])): r for r in rows}


def _outcome(test: Mapping[str, Any] | None) -> str:
    if test is None:
        return "untested"
    if test["p_bh"] >= ALPHA:
        return "no difference"
    return "better" if test["diff"] < 0 else "worse"


def _span(values: list[float], digits: int) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}" if round(lo, digits) == round(hi, digits) else f"{lo:.{digits}f}-{hi:.{digits}f}"


def _identified(temps: Mapping[str, Any], model: str, method: str) -> bool | None:
    entry = temps.get(f"{model}/{method}")
    if not entry or "edge" not in entry:
        return None
    return entry["edge"] is None


def model_verdict(
    model: str, name: str, board: pl.DataFrame, paired: pl.DataFrame | None, temps: Mapping[str, Any],
) -> list[str]:
    """The verdict on one model, as plain sentences (HTML-escaped by the caller)."""
    rows = board.filter(pl.col("model") == model)
    methods = list(rows.filter(pl.col("kind") == "method").iter_rows(named=True))
    refs = list(rows.filter(pl.col("kind") == "reference").iter_rows(named=True))
    if not methods:
        return [f"{name}: no scores were computed."]
    best = methods[0]
    out = [f"Best method: {best['label']}, error {best['mae']:.3f} (95% CI {best['mae_lo']:.3f}-"
           f"{best['mae_hi']:.3f}; MAE / range: 0.1 is a tenth of the answer scale)."]
    tests = _tests(paired, model)
    for ref in refs:
        if ref["method"] == "uniform":
            continue  # same means as the midpoint, so the same MAE
        outcomes = {m["label"]: _outcome(tests.get((m["method"], ref["method"]))) for m in methods}
        better = [k for k, v in outcomes.items() if v == "better"]
        worse = [k for k, v in outcomes.items() if v == "worse"]
        what = f"{_ref_name(str(ref['method']))} (error {ref['mae']:.3f})"
        if better:
            out.append(f"Beats {what}: {', '.join(better)}; paired test over questions, p_BH < {ALPHA}.")
        elif len(worse) == len(methods):
            out.append(f"Every method is worse than {what}; paired test over questions, p_BH < {ALPHA}.")
        elif worse:
            out.append(f"No method beats {what}; {', '.join(worse)} significantly worse, the rest no "
                       f"different at p_BH < {ALPHA}.")
        elif all(v == "untested" for v in outcomes.values()):
            lower = [m["label"] for m in methods if m["mae"] < ref["mae"]]
            out.append(f"Below {what}: {', '.join(lower) or 'no method'} (no paired test in this run).")
        else:
            out.append(f"No method differs from {what} at p_BH < {ALPHA}.")
    floors = [(m, m["mae"] / m["persona_floor_mae"]) for m in methods
              if m.get("persona_floor_mae") and m["persona_floor_mae"] > 0]
    for m, ratio in floors:
        out.append(f"{m['label']}: {ratio:.1f} times its persona-information floor "
                   f"({m['persona_floor_mae']:.3f} at N = {m['n_personas']}): more personas would not close the gap."
                   if ratio > 2 else
                   f"{m['label']}: near its persona-information floor ({m['persona_floor_mae']:.3f} at N = "
                   f"{m['n_personas']}): sample more personas before reading differences.")
    low = [m for m in methods if m["coverage_mean"] is not None and m["coverage_mean"] < LOW_COVERAGE]
    if low:
        out.append(f"Low coverage: only {_span([m['coverage_mean'] for m in low], 2)} of the model's probability "
                   f"lands on an admissible answer ({', '.join(m['label'] for m in low)}); the distributions "
                   "describe only the part of its behaviour that answers, so read the scores with caution.")
    nvar = [m for m in methods if m["nvar"] is not None and m["nvar_cal"] is not None]
    if nvar:
        human = nvar[0]["nvar_human"]
        ident = [_identified(temps, model, m["method"]) for m in nvar]
        fit = ("" if all(i is None for i in ident) else
               " The temperature is not identified for any method (the fit keeps improving toward T = ∞, "
               "so calibration acts as smoothing)." if not any(ident) else
               " The temperature is identified for every method." if all(ident) else
               f" The temperature is not identified for {sum(1 for i in ident if i is False)} of {len(ident)} methods.")
        out.append(
            f"Calibration moved the answer spread (normalized variance) from {_span([m['nvar'] for m in nvar], 2)} "
            f"to {_span([m['nvar_cal'] for m in nvar], 2)} (humans {human:.2f}) and the distribution distance "
            f"from {_span([m['wasserstein'] for m in nvar], 3)} to {_span([m['wasserstein_cal'] for m in nvar], 3)}, "
            f"without moving any mean (so the error above is unchanged).{fit}")
    return out


def verdict_html(board: pl.DataFrame, paired: pl.DataFrame | None, temps: Mapping[str, Any],
                 names: Mapping[str, str], synthetic: bool) -> str:
    """The page's opening: the synthetic-data banner (when it applies) and each model's verdict."""
    parts = [f"<p class='banner'>{html.escape(SYNTHETIC_BANNER)}</p>"] if synthetic else []
    for model in board.filter(pl.col("kind") == "method")["model"].unique(maintain_order=True).to_list():
        lines = model_verdict(model, names.get(model, model), board, paired, temps)
        parts.append(f"<div class='verdict'><h3>{html.escape(names.get(model, model))}</h3><ul>"
                     + "".join(f"<li>{html.escape(s)}</li>" for s in lines) + "</ul></div>")
    return "\n".join(parts)


def checks_table(board: pl.DataFrame, paired: pl.DataFrame | None, spread: Mapping[str, float],
                 human_sd: float, temps: Mapping[str, Any]) -> pl.DataFrame:
    """One row per (model, method), one column per check, in words a reader can scan."""
    several = board["model"].n_unique() > 1
    rows = []
    for model in board["model"].unique(maintain_order=True).to_list():
        tests = _tests(paired, model)
        refs = board.filter((pl.col("model") == model) & (pl.col("kind") == "reference"))
        for m in board.filter((pl.col("model") == model) & (pl.col("kind") == "method")).iter_rows(named=True):
            row: dict[str, str] = {"method": (f"{model}: " if several else "") + str(m["label"])}
            for ref in refs["method"].to_list():
                if ref == "uniform":
                    continue
                t = tests.get((str(m["method"]), str(ref)))
                row[f"vs {_ref_name(str(ref))}"] = (
                    "" if t is None else f"{_outcome(t)} ({t['diff']:+.3f}, p_BH {t['p_bh']:.2g})")
            ratio = spread.get(f"{model}/{m['method']}")
            row["tells countries apart"] = (
                "no: names no country (by design)" if country_blind(str(m["method"])) else
                "" if ratio is None or human_sd <= 0 else
                f"{'barely' if ratio / human_sd < ALIKE else 'yes'}: spread {ratio / human_sd:.0%} of the humans'")
            row["answer spread after calibration (humans)"] = (
                f"{m['nvar_cal']:.2f} ({m['nvar_human']:.2f})" if m["nvar_cal"] is not None else "")
            floor = m.get("persona_floor_mae")
            row["x persona-information floor"] = f"{m['mae'] / floor:.1f}" if floor else ""
            cov = m["coverage_mean"]
            row["coverage"] = "" if cov is None else f"{cov:.2f}" + (" (low)" if cov < LOW_COVERAGE else "")
            ident = _identified(temps, model, str(m["method"]))
            row["temperature identified"] = "" if ident is None else ("yes" if ident else "no (T → ∞)")
            rows.append(row)
    return pl.DataFrame(rows)



def model_wide_notes(summary: pl.DataFrame, names: Mapping[str, str], paired: pl.DataFrame | None,
                     split_half: Mapping[str, float] | None) -> list[str]:
    """What holds for a model (or the whole run) rather than one method, said once:
    which methods differ from each other, and the human sampling noise."""
    out: list[str] = []
    for model in summary["model"].unique(maintain_order=True).to_list():
        out += method_difference_findings(names.get(model, model), str(model), paired)
    if split_half:
        noise = human_sampling_noise(split_half)
        out.append(f"Human sampling noise: two random halves of each country's respondents differ by MAE "
                   f"{split_half['mae']:.3f}, so even a perfect predictor of the population scores about "
                   f"{noise['mae']:.4f} against the full sample.")
    return out
