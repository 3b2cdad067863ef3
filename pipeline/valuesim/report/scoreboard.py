"""The report's scoreboard: per model, its methods sorted by error, with the
references and the floors in the same units, and each method against the best
reference by the paired test clustered by question.

One frame (:func:`scoreboard`) is the single source: the report renders it
(:func:`scoreboard_display`) and the Python API returns it, so the two cannot differ.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from valuesim.methods import method_label

#: what a reference row is, in the scoreboard's words
REFERENCE_LABELS = {
    "midpoint": "reference: scale midpoint",
    "uniform": "reference: every answer equally likely",
    "other_countries": "reference: other countries' answers",
}
#: a paired difference counts at this Benjamini-Hochberg-adjusted p
ALPHA = 0.05

SCHEMA = {
    "model": pl.Utf8, "kind": pl.Utf8, "method": pl.Utf8, "label": pl.Utf8, "rank": pl.Int64,
    "mae": pl.Float64, "mae_lo": pl.Float64, "mae_hi": pl.Float64,
    "best_reference": pl.Utf8, "vs_best_reference": pl.Float64, "vs_best_reference_lo": pl.Float64,
    "vs_best_reference_hi": pl.Float64, "vs_best_reference_p_bh": pl.Float64, "vs_best_reference_verdict": pl.Utf8,
    "wasserstein": pl.Float64, "wasserstein_cal": pl.Float64, "nvar": pl.Float64, "nvar_cal": pl.Float64,
    "nvar_human": pl.Float64, "coverage_mean": pl.Float64, "coverage_p5": pl.Float64, "n_personas": pl.Int64,
    "persona_floor_mae": pl.Float64, "answer_floor_mae": pl.Float64, "answer_rule": pl.Utf8,
    "mae_plain": pl.Float64, "wasserstein_plain": pl.Float64, "n_countries": pl.Int64,
}


def _verdict(row: Mapping[str, object] | None) -> tuple[float | None, float | None, float | None, float | None, str]:
    """(diff, lo, hi, p_bh, verdict) of a method against a reference; verdict is
    "better", "worse" or "no difference" at BH-adjusted p < ALPHA ("" untested)."""
    if row is None:
        return None, None, None, None, ""
    p = float(row["p_bh"])  # type: ignore[arg-type]
    diff = float(row["diff"])  # type: ignore[arg-type]
    verdict = "no difference" if p >= ALPHA else ("better" if diff < 0 else "worse")
    return diff, float(row["ci_lo"]), float(row["ci_hi"]), p, verdict  # type: ignore[arg-type]


def scoreboard(summary: pl.DataFrame, references: pl.DataFrame, paired: pl.DataFrame | None) -> pl.DataFrame:
    """Every model's methods (sorted by MAE, ``rank`` 1 = lowest), then the references
    (scored on the same cells) and the persona methods' floors, one row each.

    ``vs_best_reference*``: the method's MAE minus the best (lowest-MAE) reference's,
    with the paired test's 95% CI and BH-adjusted p (paired_tests.parquet)."""
    rows: list[dict[str, object]] = []
    refs = references.sort("mae")
    best_ref = str(refs["method"][0]) if refs.height else None
    for model in summary["model"].unique(maintain_order=True).to_list():
        grp = summary.filter(pl.col("model") == model).sort(["mae", "method"])
        tests = (paired.filter((pl.col("model") == model) & pl.col("vs_reference"))
                 if paired is not None and paired.height else None)
        for rank, r in enumerate(grp.iter_rows(named=True), start=1):
            test = None
            if tests is not None and best_ref is not None:
                hit = tests.filter((pl.col("a") == r["method"]) & (pl.col("b") == best_ref))
                test = hit.row(0, named=True) if hit.height else None
            diff, lo, hi, p, verdict = _verdict(test)
            rows.append({
                **{k: r.get(k) for k in SCHEMA if k in r},
                "model": model, "kind": "method", "method": r["method"], "label": method_label(r["method"]),
                "rank": rank, "best_reference": best_ref, "vs_best_reference": diff,
                "vs_best_reference_lo": lo, "vs_best_reference_hi": hi, "vs_best_reference_p_bh": p,
                "vs_best_reference_verdict": verdict,
            })
        for r in refs.iter_rows(named=True):
            rows.append({
                **{k: r.get(k) for k in SCHEMA if k in r},
                "model": model, "kind": "reference", "method": r["method"],
                "label": REFERENCE_LABELS.get(str(r["method"]), f"reference: {r['method']}"),
            })
        for r in grp.iter_rows(named=True):
            if r.get("persona_floor_mae") is not None:
                rows.append({"model": model, "kind": "floor", "method": r["method"],
                             "label": f"floor: perfect {method_label(r['method'])} personas, N = {r['n_personas']}",
                             "mae": r["persona_floor_mae"], "n_personas": r["n_personas"]})
            if r.get("answer_floor_mae") is not None:
                rows.append({"model": model, "kind": "floor", "method": r["method"],
                             "label": f"floor: {r['n_personas']} real respondents' own answers",
                             "mae": r["answer_floor_mae"], "n_personas": r["n_personas"]})
    frame = pl.DataFrame(rows, schema=SCHEMA)
    # the actual-answer floor is the same for every persona method of a model at one N
    return frame.unique(subset=["model", "kind", "label"], keep="first", maintain_order=True)


def _num(x: float | None, digits: int = 3) -> str:
    return "" if x is None or x != x else f"{x:.{digits}f}"


def _pair(a: float | None, b: float | None, digits: int = 3) -> str:
    return "" if a is None or b is None else f"{a:.{digits}f} → {b:.{digits}f}"


def _vs(row: Mapping[str, object]) -> str:
    diff = row["vs_best_reference"]
    if diff is None:
        return ""
    p = row["vs_best_reference_p_bh"]
    return (f"{diff:+.3f} ({row['vs_best_reference_lo']:+.3f} to {row['vs_best_reference_hi']:+.3f}), "
            f"{row['vs_best_reference_verdict']}, p_BH {p:.2g}")


def scoreboard_display(board: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The scoreboard as the page shows it: (headline columns, detail columns), both
    with readable headers and formatted text, rows in the scoreboard's order."""
    several = board["model"].n_unique() > 1
    best = board["best_reference"].drop_nulls()
    vs_header = (f"vs best reference ({REFERENCE_LABELS.get(str(best[0]), str(best[0])).removeprefix('reference: ')})"
                 if best.len() else "vs best reference")
    head, detail = [], []
    for r in board.iter_rows(named=True):
        name = (f"{r['model']}: " if several and r["kind"] == "method" else "") + str(r["label"])
        ci = (f"{r['mae_lo']:.3f}-{r['mae_hi']:.3f}" if r["mae_lo"] is not None and r["mae_hi"] is not None
              else "")
        head.append({
            "method, reference or floor": (f"{r['rank']}. " if r["rank"] is not None else "") + name,
            "error (MAE / range)": _num(r["mae"]),
            "95% CI": ci,
            vs_header: _vs(r) if r["kind"] == "method" else "",
            "distribution distance (Wasserstein), raw → calibrated": _pair(r["wasserstein"], r["wasserstein_cal"]),
            "coverage": (f"{r['coverage_mean']:.2f} (5th pct {r['coverage_p5']:.2f})"
                         if r["coverage_mean"] is not None else ""),
        })
        if r["kind"] == "method":
            detail.append({
                "method": name, "answer rule": r["answer_rule"] or "",
                "personas per country": "" if r["n_personas"] is None else str(r["n_personas"]),
                "normalized variance, raw → calibrated": _pair(r["nvar"], r["nvar_cal"], 2),
                "humans": _num(r["nvar_human"], 2),
                "plain temperature: MAE / Wasserstein": (f"{r['mae_plain']:.3f} / {r['wasserstein_plain']:.3f}"
                                                         if r["mae_plain"] is not None else ""),
                "countries": "" if r["n_countries"] is None else str(r["n_countries"]),
            })
    return pl.DataFrame(head), pl.DataFrame(detail)


def scoreboard_html(board: pl.DataFrame, note: str = "") -> str:
    """The scoreboard as the report shows it: the headline table (references and floors
    styled apart), the detail columns folded away, and ``note`` under them."""
    import html

    from valuesim.report.html_page import table

    head, detail = scoreboard_display(board)
    classes = [k if k != "method" else "" for k in board["kind"].to_list()]
    return (table(head, row_classes=classes)
            + "<details><summary>More columns: answer rule, personas, answer spread, plain temperature "
              "scaling, countries</summary>" + table(detail) + "</details>"
            + (f"<p>{html.escape(note)}</p>" if note else ""))
