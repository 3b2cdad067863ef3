"""The prediction intervals' tables: validation (data/eval/intervals.parquet), fits
(data/eval/interval_fits.parquet), the default variant and the metrics.json leaves.

Validation is nested: a held-out cell's interval is fitted without its question
(``loqo``) or without every question of its battery (``lobo``); nothing about the
held-out question reaches its own threshold. Coverage is reported with Clopper-Pearson
95% intervals (statsmodels) overall, per country, per battery and per scale length,
widths as the mean full width of the clipped interval in scale points and over the
range. The persona bootstrap interval of ``ask`` is in the same table (variant
``persona_bootstrap``, validation ``none``): it measures simulation noise, and its
coverage of the human mean shows why it is not a prediction interval.

The default variant of a (model, method) is chosen among the per-cell variants
(``per_country``, and ``normalized`` when the difficulty is shown to predict the
residual: Spearman rho > 0, one-sided p < 0.05 over the cells) as the narrowest at
level 0.9 whose LOQO coverage is valid (its Clopper-Pearson interval reaches 0.9);
``per_country`` when none is. ``pooled`` is not a candidate: one threshold for every
country over- and under-covers countries (the audit's 0.75-0.97), and ``joint`` answers
another question (every country at once).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from valuesim.analysis import conformal
from valuesim.analysis.conformal import LEVELS, Variant
from valuesim.analysis.metric_precision import metric_value

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
DEFAULT_LEVEL = 0.9
BOOTSTRAP_LEVEL = 0.95
VALIDATIONS = ("loqo", "lobo")
CANDIDATES: tuple[Variant, ...] = ("per_country", "normalized")
PREDICTIVE_P = 0.05

INTERVAL_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.Utf8(), "method": pl.Utf8(), "kind": pl.Utf8(), "variant": pl.Utf8(),
    "level": pl.Float64(), "validation": pl.Utf8(), "group_type": pl.Utf8(), "group": pl.Utf8(),
    "n_cells": pl.Int64(), "n_covered": pl.Int64(), "coverage": pl.Float64(),
    "coverage_lo": pl.Float64(), "coverage_hi": pl.Float64(), "width_norm": pl.Float64(),
    "width_points": pl.Float64(), "simultaneous": pl.Float64(), "n_personas": pl.Int64(),
    "default": pl.Boolean(),
}
FIT_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.Utf8(), "method": pl.Utf8(), "kind": pl.Utf8(), "variant": pl.Utf8(),
    "level": pl.Float64(), "n_personas": pl.Int64(), "country": pl.Utf8(), "threshold": pl.Float64(),
    "n_questions": pl.Int64(), "loqo_coverage": pl.Float64(), "lobo_coverage": pl.Float64(),
    "default": pl.Boolean(),
}


@dataclass(frozen=True)
class CellMatrix:
    """The cells of one (model, method, kind, n_personas) as (C, Q) arrays; NaN where
    a country has no cell of a question."""

    countries: tuple[str, ...]
    questions: tuple[str, ...]
    batteries: tuple[str, ...]  # per question
    n_points: tuple[int, ...]  # per question
    lo: FloatArray  # (Q,)
    hi: FloatArray  # (Q,)
    pred: FloatArray
    human: FloatArray
    difficulty: FloatArray | None  # None: no persona disagreement to normalize by
    boot_low: FloatArray | None
    boot_high: FloatArray | None

    @property
    def exists(self) -> BoolArray:
        return ~np.isnan(self.pred) & ~np.isnan(self.human)

    @property
    def scores(self) -> FloatArray:
        return np.abs(self.pred - self.human) / (self.hi - self.lo)

    @property
    def variants(self) -> tuple[Variant, ...]:
        return conformal.VARIANTS if self.difficulty is not None else conformal.VARIANTS[:3]


def cell_matrix(cells: pl.DataFrame) -> CellMatrix:
    """:class:`CellMatrix` of rows of :data:`~valuesim.analysis.interval_cells.INTERVAL_CELL_SCHEMA`
    that share (model, method, kind, n_personas)."""
    countries = tuple(sorted(set(cells["country"].to_list())))
    per_q = cells.group_by("question").agg(pl.col("battery").first(), pl.col("lo").first(),
                                           pl.col("hi").first(), pl.col("n_points").first()).sort("question")
    questions = tuple(per_q["question"].to_list())
    ci = cells["country"].replace_strict({c: i for i, c in enumerate(countries)}, return_dtype=pl.Int64).to_numpy()
    qi = cells["question"].replace_strict({q: i for i, q in enumerate(questions)}, return_dtype=pl.Int64).to_numpy()

    def grid(col: str) -> FloatArray | None:
        values = cells[col].cast(pl.Float64).to_numpy()
        if np.all(np.isnan(values)):
            return None
        out = np.full((len(countries), len(questions)), np.nan)
        out[ci, qi] = values
        return out

    pred, human = grid("sim_mean"), grid("human_mean")
    assert pred is not None
    assert human is not None
    return CellMatrix(
        countries=countries, questions=questions, batteries=tuple(per_q["battery"].to_list()),
        n_points=tuple(int(n) for n in per_q["n_points"].to_list()),
        lo=per_q["lo"].cast(pl.Float64).to_numpy(), hi=per_q["hi"].cast(pl.Float64).to_numpy(),
        pred=pred, human=human, difficulty=grid("difficulty"),
        boot_low=grid("boot_low"), boot_high=grid("boot_high"),
    )


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95% interval of a binomial proportion k / n."""
    lo, hi = clopper_pearson_arrays(np.array([k]), np.array([n]))
    return float(lo[0]), float(hi[0])


def clopper_pearson_arrays(k: NDArray[np.int64], n: NDArray[np.int64]) -> tuple[FloatArray, FloatArray]:
    """:func:`clopper_pearson` of many counts at once (statsmodels; NaN where n is 0)."""
    k, n = np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64)
    lo, hi = np.full(k.shape, np.nan), np.full(k.shape, np.nan)
    ok = n > 0
    if ok.any():
        lo[ok], hi[ok] = proportion_confint(k[ok], n[ok], alpha=0.05, method="beta")
    return lo, hi


def _groups(m: CellMatrix) -> Iterator[tuple[str, str, BoolArray]]:
    """(group_type, group, (C, Q) mask) for overall, countries, batteries, scale lengths."""
    shape = m.pred.shape
    yield "overall", "all", np.ones(shape, dtype=bool)
    for i, c in enumerate(m.countries):
        mask = np.zeros(shape, dtype=bool)
        mask[i] = True
        yield "country", c, mask
    batteries = np.asarray(m.batteries)
    for b in sorted(set(m.batteries)):
        yield "battery", b, np.broadcast_to(batteries == b, shape)
    points = np.asarray(m.n_points)
    for p in sorted(set(m.n_points)):
        yield "scale_length", str(p), np.broadcast_to(points == p, shape)


def summary_rows(m: CellMatrix, hit: BoolArray, width_points: FloatArray) -> list[dict[str, Any]]:
    """Coverage and width rows of every group; ``simultaneous`` on the overall row
    (the Clopper-Pearson bounds are added over all rows at once, :func:`with_bounds`)."""
    ok = m.exists
    span = m.hi - m.lo
    width_norm = width_points / span
    rows = []
    for group_type, group, mask in _groups(m):
        sel = mask & ok
        n = int(sel.sum())
        k = int((hit & sel).sum())
        simultaneous = None
        if group_type == "overall":
            asked = ok.any(axis=0)
            simultaneous = float(np.all(hit | ~ok, axis=0)[asked].mean()) if asked.any() else None
        rows.append({
            "group_type": group_type, "group": group, "n_cells": n, "n_covered": k,
            "coverage": k / n if n else float("nan"),
            "width_norm": float(width_norm[sel].mean()) if n else float("nan"),
            "width_points": float(width_points[sel].mean()) if n else float("nan"),
            "simultaneous": simultaneous,
        })
    return rows


def with_bounds(summary: pl.DataFrame) -> pl.DataFrame:
    """coverage_lo / coverage_hi of every row from its n_covered of n_cells."""
    lo, hi = clopper_pearson_arrays(summary["n_covered"].to_numpy(), summary["n_cells"].to_numpy())
    return summary.with_columns(pl.Series("coverage_lo", lo), pl.Series("coverage_hi", hi))


def held_out(m: CellMatrix, variant: Variant, level: float, validation: str) -> tuple[BoolArray, FloatArray]:
    """(covered, clipped width in points) of every cell with its interval fitted
    without its question (loqo) or its battery (lobo)."""
    groups = list(m.questions) if validation == "loqo" else list(m.batteries)
    t = conformal.heldout_thresholds(m.scores, variant, level, groups, m.difficulty)
    h = conformal.half_widths(t, variant, m.difficulty)
    return conformal.covered(m.scores, h), conformal.clipped_width(m.pred, h, m.lo, m.hi)


def validation_rows(m: CellMatrix) -> list[dict[str, Any]]:
    """Every (variant, level, validation) summary of one cell matrix, and the persona
    bootstrap's rows where the cells have one."""
    rows = []
    for variant in m.variants:
        for level in LEVELS:
            for validation in VALIDATIONS:
                hit, width = held_out(m, variant, level, validation)
                rows += [{"variant": variant, "level": level, "validation": validation, **r}
                         for r in summary_rows(m, hit, width)]
    if m.boot_low is not None and m.boot_high is not None:
        hit = (m.boot_low <= m.human) & (m.human <= m.boot_high)
        rows += [{"variant": "persona_bootstrap", "level": BOOTSTRAP_LEVEL, "validation": "none", **r}
                 for r in summary_rows(m, hit, m.boot_high - m.boot_low)]
    return rows


def fit_rows(m: CellMatrix) -> list[dict[str, Any]]:
    """Thresholds fitted on every question of the matrix, per (variant, level, country)."""
    rows = []
    counts = m.exists.sum(axis=1)
    for variant in m.variants:
        for level in LEVELS:
            t = conformal.fit_thresholds(m.scores, variant, level, m.difficulty)
            if variant in conformal.SHARED_VARIANTS:
                rows.append({"variant": variant, "level": level, "country": "*", "threshold": float(t[0]),
                             "n_questions": len(m.questions)})
                continue
            rows += [{"variant": variant, "level": level, "country": c, "threshold": float(t[i]),
                      "n_questions": int(counts[i])} for i, c in enumerate(m.countries)]
    return rows


def difficulty_check(m: CellMatrix) -> dict[str, Any]:
    """Whether the difficulty predicts the residual: Spearman rho over the cells and its
    one-sided p (rho > 0); not predictive when either is constant or absent."""
    if m.difficulty is None:
        return {"rho": None, "p": None, "n_cells": 0, "predictive": False}
    ok = m.exists
    d, s = m.difficulty[ok], m.scores[ok]
    if d.size < 3 or np.ptp(d) == 0 or np.ptp(s) == 0:
        return {"rho": None, "p": None, "n_cells": int(d.size), "predictive": False}
    res = stats.spearmanr(d, s, alternative="greater")
    rho, p = float(res.statistic), float(res.pvalue)
    return {"rho": rho, "p": p, "n_cells": int(d.size), "predictive": rho > 0 and p < PREDICTIVE_P}


def choose_default(summary: pl.DataFrame, check: dict[str, Any]) -> dict[str, Any]:
    """The default variant from one run's overall LOQO rows at level 0.9 (see the module
    docstring), with the figures it was chosen on and a one-line reason."""
    at = summary.filter((pl.col("validation") == "loqo") & (pl.col("group_type") == "overall")
                        & (pl.col("level") == DEFAULT_LEVEL))
    figures: dict[str, dict[str, Any]] = {}
    for variant in CANDIDATES:
        row = at.filter(pl.col("variant") == variant)
        if row.is_empty():
            continue
        r = row.row(0, named=True)
        eligible = variant != "normalized" or bool(check["predictive"])
        figures[variant] = {"coverage_90": r["coverage"], "coverage_90_hi": r["coverage_hi"],
                            "width_90": r["width_norm"], "valid": bool(r["coverage_hi"] >= DEFAULT_LEVEL),
                            "eligible": eligible}
    valid = [v for v, f in figures.items() if f["valid"] and f["eligible"]]
    if valid:
        variant = min(valid, key=lambda v: figures[v]["width_90"])
        others = [v for v in figures if v != variant]
        reason = (f"{variant}: narrowest valid LOQO interval at 0.9 (coverage "
                  f"{figures[variant]['coverage_90']:.3f}, width {figures[variant]['width_90']:.3f} of the range)")
        if "normalized" in others and not figures["normalized"]["eligible"]:
            reason += "; normalized not eligible: difficulty does not predict the residual"
    else:
        variant = "per_country"
        reason = "per_country (fallback): no per-cell variant's LOQO coverage at 0.9 is valid"
    return {"variant": variant, "reason": reason, "candidates": figures, "difficulty": check}


@dataclass(frozen=True)
class IntervalTables:
    """What the evaluate stage writes about prediction intervals."""

    intervals: pl.DataFrame  # INTERVAL_SCHEMA
    fits: pl.DataFrame  # FIT_SCHEMA
    choice: dict[str, Any]  # "<model>/<method>" -> default variant, reason, figures
    metrics: dict[str, Any]  # metrics.json "interval" leaves


# metrics.json's precision: valuesim.analysis.metric_precision says why
_r = metric_value


def _jsonable(x: Any) -> Any:
    """NaN and inf as null: JSON has neither."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def interval_tables(cells: pl.DataFrame) -> IntervalTables:
    """Validation rows, fits, default variants and metrics of every (model, method,
    kind, n_personas) of ``cells`` (:data:`~valuesim.analysis.interval_cells.INTERVAL_CELL_SCHEMA`).

    Each (model, method) chooses its default on its largest n_personas (the run's N),
    calibrated kind where present; the choice holds for every kind, n and level.
    """
    run_keys = ["model", "method", "kind", "n_personas"]
    summaries, fits, matrices = [], [], {}
    for key, grp in cells.sort([*run_keys, "country", "question"]).group_by(run_keys, maintain_order=True):
        m = cell_matrix(grp)
        matrices[key] = m
        head = dict(zip(run_keys, key, strict=True))
        summaries += [{**head, **r} for r in validation_rows(m)]
        fits += [{**head, **r} for r in fit_rows(m)]
    bare = {k: v for k, v in INTERVAL_SCHEMA.items() if k not in ("default", "coverage_lo", "coverage_hi")}
    summary = with_bounds(pl.DataFrame(summaries, schema=bare))
    choice: dict[str, Any] = {}
    for model, method in cells.select("model", "method").unique(maintain_order=True).iter_rows():
        own = cells.filter((pl.col("model") == model) & (pl.col("method") == method))
        n = int(own["n_personas"].max())  # type: ignore[arg-type]
        kind = "calibrated" if "calibrated" in set(own["kind"].to_list()) else "raw"
        at = summary.filter((pl.col("model") == model) & (pl.col("method") == method)
                            & (pl.col("kind") == kind) & (pl.col("n_personas") == n))
        choice[f"{model}/{method}"] = {"n_personas": n, "kind": kind,
                                       **choose_default(at, difficulty_check(matrices[(model, method, kind, n)]))}
    defaults = pl.DataFrame({"model": [k.split("/", 1)[0] for k in choice], "method": [k.split("/", 1)[1] for k in choice],
                             "_default": [c["variant"] for c in choice.values()]},
                            schema={"model": pl.Utf8, "method": pl.Utf8, "_default": pl.Utf8})

    def flag(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.join(defaults, on=["model", "method"], how="left").with_columns(
            (pl.col("variant") == pl.col("_default")).fill_null(False).alias("default")).drop("_default")

    intervals = flag(summary).select(list(INTERVAL_SCHEMA))
    overall = summary.filter(pl.col("group_type") == "overall").pivot(
        on="validation", index=[*run_keys, "variant", "level"], values="coverage")
    fit_frame = flag(
        pl.DataFrame(fits, schema={k: v for k, v in FIT_SCHEMA.items()
                                   if k not in ("loqo_coverage", "lobo_coverage", "default")})
        .join(overall.select(*run_keys, "variant", "level", pl.col("loqo").alias("loqo_coverage"),
                             pl.col("lobo").alias("lobo_coverage")),
              on=[*run_keys, "variant", "level"], how="left")
    ).select(list(FIT_SCHEMA))
    return IntervalTables(intervals=intervals, fits=fit_frame, choice=_jsonable(choice),
                          metrics=interval_metrics(intervals, choice))


def interval_metrics(intervals: pl.DataFrame, choice: dict[str, Any]) -> dict[str, Any]:
    """metrics.json ``interval`` leaves: per "<model>/<method>", the default variant's
    overall LOQO coverage and normalized width at each level (run's N, calibrated kind
    where present), its LOBO coverage at 0.9 and the persona bootstrap's coverage."""
    out: dict[str, Any] = {}
    overall = intervals.filter(pl.col("group_type") == "overall")
    for run, c in choice.items():
        model, method = run.split("/", 1)
        own = overall.filter((pl.col("model") == model) & (pl.col("method") == method)
                             & (pl.col("kind") == c["kind"]) & (pl.col("n_personas") == c["n_personas"]))

        def pick(variant: str, validation: str, level: float, col: str, own: pl.DataFrame = own) -> float | None:
            row = own.filter((pl.col("variant") == variant) & (pl.col("validation") == validation)
                             & (pl.col("level") == level))
            return _r(row[col][0]) if row.height else None

        leaf: dict[str, Any] = {"variant": c["variant"], "n": c["n_personas"]}
        for level in LEVELS:
            pct = round(level * 100)
            leaf[f"coverage_{pct}"] = pick(c["variant"], "loqo", level, "coverage")
            leaf[f"width_{pct}"] = pick(c["variant"], "loqo", level, "width_norm")
        leaf["lobo_coverage_90"] = pick(c["variant"], "lobo", DEFAULT_LEVEL, "coverage")
        if model != "reference":
            leaf["persona_bootstrap_coverage_95"] = pick("persona_bootstrap", "none", BOOTSTRAP_LEVEL, "coverage")
        out[run] = leaf
    return out
