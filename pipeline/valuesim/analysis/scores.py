"""Per-cell scores and their aggregates (the evaluate stage's tables and metrics.json)."""

from __future__ import annotations

import numpy as np
import polars as pl

from valuesim.analysis import metrics, paired
from valuesim.analysis.metric_precision import metric_value
from valuesim.analysis.references import human_sampling_noise
from valuesim.errors import DataError

SCORE_SCHEMA = {
    "model": pl.Utf8, "method": pl.Utf8, "country": pl.Utf8, "question": pl.Utf8,
    "mae": pl.Float64, "mae_cal": pl.Float64, "wasserstein": pl.Float64,
    "wasserstein_cal": pl.Float64, "nvar": pl.Float64, "nvar_cal": pl.Float64,
    "nvar_human": pl.Float64, "temperature": pl.Float64,
    "mae_plain": pl.Float64, "wasserstein_plain": pl.Float64, "nvar_plain": pl.Float64,
}
# the per-cell means that by_country and summary carry along
MEAN_COLUMNS = ("mae", "mae_cal", "wasserstein", "wasserstein_cal", "nvar", "nvar_cal",
                "nvar_human", "mae_plain", "wasserstein_plain", "nvar_plain")


def score_cells(population: pl.DataFrame, human: pl.DataFrame) -> pl.DataFrame:
    """One row per (model, method, country, question) of data/calibrated/population.

    ``mae`` is the absolute error of the mean / range (its mean over questions is
    the paper's MAE); ``nvar*`` the normalized variances; ``*_cal`` after the
    mean-preserving calibration, ``*_plain`` after plain temperature scaling fitted
    the same way.
    """
    if population.is_empty():
        raise DataError("data/calibrated/population.parquet is empty; run `dvc repro calibrate`")
    frames = []
    for (_question,), grp in population.group_by(["question"], maintain_order=True):
        codes, raw = metrics.dense(grp, "probs_raw")
        _, cal = metrics.dense(grp, "probs_cal")
        _, flat = metrics.dense(grp, "probs_plain")
        values = np.asarray(codes, dtype=np.float64)
        hum = metrics.human_arrays(human, grp.select("country", "question"), codes)
        frames.append(grp.select("model", "method", "country", "question", "temperature").with_columns(
            pl.Series("mae", metrics.abs_error(raw, hum, values)),
            pl.Series("mae_cal", metrics.abs_error(cal, hum, values)),
            pl.Series("wasserstein", metrics.wasserstein(raw, hum, values)),
            pl.Series("wasserstein_cal", metrics.wasserstein(cal, hum, values)),
            pl.Series("nvar", metrics.normalized_variance(raw, values)),
            pl.Series("nvar_cal", metrics.normalized_variance(cal, values)),
            pl.Series("nvar_human", metrics.normalized_variance(hum, values)),
            pl.Series("mae_plain", metrics.abs_error(flat, hum, values)),
            pl.Series("wasserstein_plain", metrics.wasserstein(flat, hum, values)),
            pl.Series("nvar_plain", metrics.normalized_variance(flat, values)),
        ))
    out = pl.concat(frames).select(list(SCORE_SCHEMA))
    return out.sort(["model", "method", "country", "question"])


def by_country(cells: pl.DataFrame) -> pl.DataFrame:
    """Mean over questions per (model, method, country)."""
    return cells.group_by(["model", "method", "country"]).agg(
        *(pl.col(c).mean() for c in MEAN_COLUMNS), pl.len().alias("n_questions"),
    ).sort(["model", "method", "country"])


def summary(cells: pl.DataFrame, n_resamples: int, seed: int) -> pl.DataFrame:
    """Per (model, method): the means over all cells and a bootstrap 95% CI of the MAE.

    The MAE is averaged per country first and then over countries, as in the paper
    (every country weighs the same whatever its number of kept questions); the CI
    resamples the per-country MAEs.
    """
    rows = []
    countries = by_country(cells)
    for (model, method), grp in countries.group_by(["model", "method"], maintain_order=True):
        lo, hi = metrics.bootstrap_ci(grp["mae"].to_numpy(), n_resamples, seed)
        rows.append({
            "model": model, "method": method, "mae": grp["mae"].mean(), "mae_lo": lo, "mae_hi": hi,
            **{c: grp[c].mean() for c in MEAN_COLUMNS if c != "mae"},
            "n_countries": grp.height,
        })
    return pl.DataFrame(rows).sort(["model", "method"])


def coverage_summary(answers: dict[tuple[str, str], pl.DataFrame]) -> pl.DataFrame:
    """Per (model, method): mean and 5th-percentile coverage over every answer row
    (flagged rows count with their coverage 0), and the share of rows flagged."""
    rows = []
    for (model, method), frame in answers.items():
        cov = frame["coverage"].fill_null(0.0).to_numpy()
        flagged = frame["flag"].fill_null("") != "" if "flag" in frame.columns else pl.Series([False])
        rows.append({
            "model": model, "method": method,
            "coverage_mean": float(np.mean(cov)) if cov.size else float("nan"),
            "coverage_p5": float(np.percentile(cov, 5)) if cov.size else float("nan"),
            "flagged_share": float(flagged.mean() or 0.0),  # type: ignore[arg-type]
            "answer_rule": ",".join(sorted(set(frame["answer_rule"].to_list())))
            if "answer_rule" in frame.columns else "answer_eot",
        })
    schema = {"model": pl.Utf8, "method": pl.Utf8, "coverage_mean": pl.Float64,
              "coverage_p5": pl.Float64, "flagged_share": pl.Float64, "answer_rule": pl.Utf8}
    return pl.DataFrame(rows, schema=schema).sort(["model", "method"])


# metrics.json's precision: valuesim.analysis.metric_precision says why
_r = metric_value


def metrics_json(
    summary_frame: pl.DataFrame,
    countries: pl.DataFrame,
    coverage: pl.DataFrame | None = None,
    floors: dict[str, dict[str, float]] | None = None,
    split_half: dict[str, float] | None = None,
    *,
    persona_floors: dict[str, dict[str, float]] | None = None,
    normal_floors: dict[int, float] | None = None,
) -> dict[str, object]:
    """reports/metrics.json: short, stable keys so `dvc exp show` columns read well.

    {"mae": {"<model>/<method>": x, "reference/midpoint": x, ...}, "mae_cal": ...,
     "wasserstein": ..., "wasserstein_cal": ..., "mae_plain": ..., "wasserstein_plain": ...,
     "nvar": ..., "nvar_cal": ..., "nvar_human": x,
     "coverage": {"<model>/<method>": {"mean": x, "p5": x}},
     "actual_answer_floor": {"<model>/<method>": {"n": N, "mae": x, "mae_sd": x, ...,
                                                  "mae_normal": x}},
     "persona_information_floor": {"<model>/<method>": {"n": N, "mae": x, "mae_sd": x, "r2": x}},
     "split_half": {"mae": x, "mae_sd": x, "wasserstein": x, "wasserstein_sd": x},
     "human_sampling_noise": {"mae": x, ...},  # split_half / references.SPLIT_HALF_FACTOR
     "by_country": {"<model>/<method>": {"<ISO3>": {"mae": x, "wasserstein_cal": x}}}}

    Reference rows (model "reference") are in the per-key maps beside the methods. The
    floors are those of :mod:`valuesim.analysis.references`: ``actual_answer_floor``
    (N respondents' actual answers; ``mae_normal`` its normal approximation, from
    ``normal_floors`` by N), ``persona_information_floor`` (a perfect simulator of N
    personas); ``human_sampling_noise`` is the split-half divided by its factor.
    """
    out: dict[str, object] = {}
    for key in ("mae", "mae_cal", "wasserstein", "wasserstein_cal", "mae_plain",
                "wasserstein_plain", "nvar", "nvar_cal"):
        out[key] = {
            f"{m}/{k}": _r(v) for m, k, v in summary_frame.select("model", "method", key).iter_rows()
        }
    methods = countries.filter(pl.col("model") != "reference")
    out["nvar_human"] = _r(methods["nvar_human"].mean()) if methods.height else None
    if coverage is not None:
        out["coverage"] = {
            f"{m}/{k}": {"mean": _r(c), "p5": _r(p)}
            for m, k, c, p in coverage.select("model", "method", "coverage_mean", "coverage_p5").iter_rows()
        }
    if floors is not None:
        normal = normal_floors or {}
        out["actual_answer_floor"] = {
            k: {**{f: (int(v) if f == "n" else _r(v)) for f, v in d.items()},
                **({"mae_normal": _r(normal[int(d["n"])])} if int(d["n"]) in normal else {})}
            for k, d in floors.items()}
    if persona_floors is not None:
        out["persona_information_floor"] = {k: {f: (int(v) if f == "n" else _r(v)) for f, v in d.items()}
                                            for k, d in persona_floors.items()}
    if split_half is not None:
        out["split_half"] = {k: _r(v) for k, v in split_half.items()}
        out["human_sampling_noise"] = {k: _r(v) for k, v in human_sampling_noise(split_half).items()}
    by: dict[str, dict[str, dict[str, float | None]]] = {}
    for model, method, country, mae, w in countries.select(
        "model", "method", "country", "mae", "wasserstein_cal"
    ).iter_rows():
        by.setdefault(f"{model}/{method}", {})[country] = {"mae": _r(mae), "wasserstein_cal": _r(w)}
    out["by_country"] = by
    return out


def wilcoxon_table(cells: pl.DataFrame, references: pl.DataFrame | None = None) -> pl.DataFrame:
    """Wilcoxon signed-rank tests per (model, country) across questions: every pair of
    methods, and every method against every reference (``vs_reference``; the method
    is ``method_a``, the reference ``method_b``). ``p_bh``: Benjamini-Hochberg over
    every row of one model (all its countries, pairs and references), the p-value that
    per-country counts and Figure 11's stars use."""
    return _with_bh(_wilcoxon_rows(cells, references))


def _with_bh(table: pl.DataFrame) -> pl.DataFrame:
    if table.is_empty():
        return table.with_columns(pl.lit(None, dtype=pl.Float64).alias("p_bh"))
    frames = [grp.with_columns(pl.Series("p_bh", paired.bh(grp["p_value"].to_numpy()), dtype=pl.Float64))
              for _, grp in table.group_by(["model"], maintain_order=True)]
    return pl.concat(frames)


def _wilcoxon_rows(cells: pl.DataFrame, references: pl.DataFrame | None) -> pl.DataFrame:
    errors = cells.select("model", "country", "method", "question", pl.col("mae").alias("value"))
    table = metrics.wilcoxon_methods(errors).with_columns(pl.lit(False).alias("vs_reference"))
    if references is None or references.is_empty():
        return table
    frames = [table]
    refs = references.select("country", "method", "question", pl.col("mae").alias("value"))
    for (model,), grp in errors.group_by(["model"], maintain_order=True):
        for (method,), own in grp.group_by(["method"], maintain_order=True):
            for (ref,), r in refs.group_by(["method"], maintain_order=True):
                pair = pl.concat([
                    own.with_columns(pl.lit("a").alias("method")),
                    r.with_columns(pl.lit(model).alias("model"), pl.lit("b").alias("method"))
                    .select(own.columns),
                ])
                res = metrics.wilcoxon_methods(pair).with_columns(
                    pl.lit(method).alias("method_a"), pl.lit(ref).alias("method_b"),
                    pl.when(pl.col("better") == "a").then(pl.lit(method))
                    .when(pl.col("better") == "b").then(pl.lit(ref)).otherwise(None).alias("better"),
                    pl.lit(True).alias("vs_reference"),
                )
                frames.append(res.select(table.columns))
    return pl.concat(frames)


#: the label of mann_whitney.parquet's rows: the paper's test, kept beside paired_tests.parquet
UNPAIRED = "Mann-Whitney U, unpaired (ignores that both methods score the same cells)"


def method_tests(cells: pl.DataFrame) -> pl.DataFrame:
    """Mann-Whitney U between methods per model over all (country, question) errors,
    BH-corrected: the paper's unpaired test, labelled so in its ``test`` column. The
    default comparison is paired_tests.parquet (:mod:`valuesim.analysis.paired`)."""
    frames = []
    for (model,), grp in cells.group_by(["model"], maintain_order=True):
        groups = {m: g["mae"].to_numpy() for (m,), g in grp.group_by(["method"])}
        frames.append(metrics.mann_whitney_bh(groups).with_columns(pl.lit(model).alias("model"),
                                                                   pl.lit(UNPAIRED).alias("test")))
    return pl.concat(frames) if frames else pl.DataFrame()
