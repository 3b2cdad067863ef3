"""Prediction intervals for answers nobody has asked: the study's conformal fits, applied.

The evaluate stage fits split-conformal thresholds on the study's own questions, where
the human answers are known (:mod:`valuesim.analysis.conformal`), and writes them to
``data/eval/interval_fits.parquet``: for every (model, method, kind, variant, level,
number of personas) a normalized half-width per country (``"*"`` for the variants with
one threshold). This module finds the fit that matches an ask (same model and method,
the study's default variant, the asked level, the nearest number of personas) and turns
a simulated expected answer into an interval on the item's scale:

    pred = expected -/+ threshold * (hi - lo), clipped to [lo, hi]

(for the ``normalized`` variant the threshold is multiplied by the cell's difficulty,
the personas' spread). The interval says where the *population's* mean answer lies,
with the coverage the study measured holding out whole questions -- valid when the new
question is exchangeable with the study's questions. It is not the persona bootstrap
(``persona_ci_*``), which measures only how much the answer moves with other personas.

A country the study did not include gets the ``pooled`` threshold (all the study's
cells together): exchangeable countries are then the assumption, and ``pred_source``
says so. No fit for (model, method): no interval is claimed, and the note says why.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from valuesim.analysis.conformal import DIFFICULTY_FLOOR as MIN_DIFFICULTY
from valuesim.analysis.conformal import LEVELS
from valuesim.errors import ConfigError
from valuesim.paths import EVAL

INTERVAL_FITS = EVAL / "interval_fits.parquet"
DEFAULT_LEVEL = 0.9


def check_level(level: float) -> float:
    """The level as fitted, or a one-line error listing the fitted levels."""
    for fitted in LEVELS:
        if math.isclose(level, fitted):
            return fitted
    raise ConfigError(
        f"level {level:g} is not fitted; use --level {', '.join(f'{x:g}' for x in LEVELS)}"
    )


@dataclass(frozen=True)
class IntervalFit:
    """The thresholds of one (model, method, kind, variant, level, n_personas)."""

    model: str
    method: str
    kind: str
    variant: str
    level: float
    n_personas: int
    n_questions: int
    loqo_coverage: float
    lobo_coverage: float | None
    thresholds: dict[str, float]  # country (ISO3) -> normalized half-width
    pooled: float  # the "pooled" variant's threshold: countries outside the study
    path: str
    md5: str

    def describe(self, asked_n: int | None, country: str) -> str:
        """pred_source: which study, variant and N the interval of ``country`` came from."""
        variant = self.variant if country in self.thresholds else "pooled (country not in the study)"
        n_note = "" if asked_n in (None, self.n_personas) else f", asked with N={asked_n}"
        lobo = "" if self.lobo_coverage is None else f", LOBO {self.lobo_coverage:.2f}"
        return (f"{self.model}/{self.method} N={self.n_personas}{n_note} {variant}, "
                f"{self.n_questions} questions, LOQO coverage {self.loqo_coverage:.2f}{lobo} "
                f"at {self.level:g}, {self.path} (md5 {self.md5[:8]})")

    def half_width(self, country: str, difficulty: float | None) -> float:
        """Normalized half-width for ``country``; ``difficulty``: the cell's persona
        spread / range (used by the normalized variant only)."""
        if country not in self.thresholds:
            return self.pooled
        t = self.thresholds[country]
        if self.variant == "normalized":
            d = MIN_DIFFICULTY if difficulty is None or not math.isfinite(difficulty) else difficulty
            return t * max(d, MIN_DIFFICULTY)
        return t

    def interval(
        self, expected: float, lo: float, hi: float, country: str, difficulty: float | None = None
    ) -> tuple[float, float]:
        """[low, high] on the item's scale around ``expected``, clipped to [lo, hi]."""
        h = self.half_width(country, difficulty) * (hi - lo)
        if not math.isfinite(h):
            return float(lo), float(hi)
        return max(float(lo), expected - h), min(float(hi), expected + h)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()  # an id of the fit, not security


def load_fits(project: Path) -> pl.DataFrame | None:
    """The study's interval fits, or None when the evaluate stage has not written them."""
    from valuesim.artifacts import read_parquet

    path = project / INTERVAL_FITS
    return read_parquet(path, "evaluate") if path.exists() else None


def pick_n(available: list[int], asked: int | None) -> int:
    """The fitted N for an ask with ``asked`` personas: the largest fitted N <= asked
    (more personas only lower the simulation noise, so a smaller N's interval is at
    least as wide as needed), else the smallest fitted N."""
    if asked is None:
        return max(available)
    below = [n for n in available if n <= asked]
    return max(below) if below else min(available)


def find_fit(
    project: Path, model: str, method: str, *, level: float = DEFAULT_LEVEL,
    n: int | None = None, calibrated: bool = False, fits: pl.DataFrame | None = None,
) -> tuple[IntervalFit | None, str]:
    """The default variant's fit for (model, method) at ``level``, or None and a note."""
    run = f"{model}/{method}"
    if fits is None:
        fits = load_fits(project)
    if fits is None:
        return None, (f"no prediction interval: {INTERVAL_FITS} not found; run the study "
                      f"(`dvc repro evaluate`) with {run} to fit one")
    kind = "calibrated" if calibrated else "raw"
    level = check_level(level)
    rows = fits.filter(
        (pl.col("model") == model) & (pl.col("method") == method) & (pl.col("kind") == kind)
        & ((pl.col("level") - level).abs() < 1e-9)
    )
    default = rows.filter(pl.col("default"))
    if default.is_empty():
        fitted = sorted({f"{a}/{b}" for a, b in fits.select("model", "method").iter_rows()})
        return None, (f"no prediction interval for {run}: the study's interval fits cover "
                      f"{', '.join(fitted) or 'no run'}; add {run} to simulate.models/methods "
                      "and run `dvc repro evaluate`")
    n_fit = pick_n(sorted(set(default["n_personas"].to_list())), n)
    chosen = default.filter(pl.col("n_personas") == n_fit)
    pooled = rows.filter((pl.col("variant") == "pooled") & (pl.col("n_personas") == n_fit))
    first = chosen.row(0, named=True)
    lobo = first.get("lobo_coverage")
    fit = IntervalFit(
        model=model, method=method, kind=kind, variant=str(first["variant"]), level=level,
        n_personas=n_fit, n_questions=int(first["n_questions"]),
        loqo_coverage=float(first["loqo_coverage"]),
        lobo_coverage=None if lobo is None or not math.isfinite(lobo) else float(lobo),
        thresholds={str(c): float(t) for c, t in chosen.select("country", "threshold").iter_rows()
                    if c != "*"},
        pooled=float(pooled["threshold"][0]) if pooled.height else float("inf"),
        path=str(INTERVAL_FITS), md5=_md5(project / INTERVAL_FITS),
    )
    return fit, ""


PRED_COLUMNS = ("pred_low", "pred_high", "pred_level", "pred_source")


def add_prediction_intervals(
    frame: pl.DataFrame, fit: IntervalFit | None, *, asked_n: int | None, level: float,
) -> pl.DataFrame:
    """``frame`` (valuesim.asking.RESULT_SCHEMA rows) with pred_low/high/level/source
    filled from ``fit`` (null everywhere when there is no fit or no expected answer)."""
    lows, highs, levels, sources = [], [], [], []
    for row in frame.iter_rows(named=True):
        if fit is None or row["expected"] is None or not row["codes"]:
            lows.append(None), highs.append(None), levels.append(None), sources.append(None)
            continue
        lo, hi = float(row["codes"][0]), float(row["codes"][-1])
        spread = row.get("persona_sd")
        difficulty = None if spread is None or hi == lo else spread / (hi - lo)
        low, high = fit.interval(float(row["expected"]), lo, hi, row["country"], difficulty)
        lows.append(low), highs.append(high), levels.append(level)
        sources.append(fit.describe(asked_n, row["country"]))
    return frame.with_columns(
        pl.Series("pred_low", lows, dtype=pl.Float64), pl.Series("pred_high", highs, dtype=pl.Float64),
        pl.Series("pred_level", levels, dtype=pl.Float64),
        pl.Series("pred_source", sources, dtype=pl.Utf8),
    )
