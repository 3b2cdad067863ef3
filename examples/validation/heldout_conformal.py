"""Held-out validation of a study's conformal prediction intervals on real WVS-7 files.

The evaluate stage fits split-conformal thresholds on the study's kept target questions
(``data/eval/interval_fits.parquet``) and checks them holding out one question (LOQO) or
one battery (LOBO) at a time. This script checks them on questions the study never saw:
WVS-7 items of other batteries (``data/questions/wvs7_heldout.yaml``), whose human
answers are in the same real files. For a finished real-data study directory it

1. asks the held-out items in every selected country with each (model, method) of the
   study, with the study's own personas and N (``valuesim.asking.run_ask`` with
   ``project_dir`` = the study: same prompts, answer rule and response cache);
2. computes their weighted human means from the study's source files with valuesim's
   readers (the study's bank extended by the held-out items) and applies the study's
   missing-data filter (``filter.max_missing``) to them as the human stage does;
3. builds the cells as the evaluate stage builds its own
   (:mod:`valuesim.analysis.interval_cells`: raw and calibrated rows, the references
   midpoint and other_countries on the same cells), applies every fitted (kind,
   variant, level) of the study with :mod:`valuesim.analysis.conformal`, and
   summarises coverage of the human mean with the evaluate stage's own
   :func:`valuesim.analysis.interval_tables.summary_rows` (pooled, per country, per
   battery, per scale length; Clopper-Pearson 95% intervals; widths), beside the
   persona bootstrap interval.

It writes aggregates only (coverage, widths, mean residuals; never respondent rows): a
markdown page and the coverage table as CSV (the columns of ``data/eval/intervals.parquet``
with validation ``heldout``). Pass criterion (issue 20): for each run's default variant
at 0.9, pooled coverage within [0.85, 0.95] and no battery's Clopper-Pearson upper bound
below 0.80.

    .venv/bin/python examples/validation/heldout_conformal.py /path/to/real-data-study \\
        --out examples/validation/results/heldout_conformal.md

The study directory must have run ``dvc repro`` through evaluate with ``data.source``
set to real WVS files (the synthetic demo has no answers to held-out items).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from valuesim import artifacts, paths
from valuesim.analysis import conformal
from valuesim.analysis.interval_cells import INTERVAL_CELL_SCHEMA, KINDS, reference_interval_cells
from valuesim.analysis.interval_tables import (
    INTERVAL_SCHEMA,
    cell_matrix,
    summary_rows,
    with_bounds,
)
from valuesim.config import Params, load_params
from valuesim.errors import ConfigError, DataError
from valuesim.survey.bank import Item, QuestionBank, load_bank

DEFAULT_QUESTIONS = Path(__file__).resolve().parents[2] / "data/questions/wvs7_heldout.yaml"
VALIDATION = "heldout"
PASS_LEVEL = 0.9
PASS_RANGE = (0.85, 0.95)
PASS_BATTERY_UPPER = 0.80
BOOTSTRAP_LEVEL = 0.95
REFERENCE_MODEL = "reference"
RUN_KEYS = ["model", "method", "kind", "n_personas"]

# per cell and (kind, variant, level): the interval applied and whether it covers
CELL_INTERVAL_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.Utf8(), "method": pl.Utf8(), "kind": pl.Utf8(), "variant": pl.Utf8(),
    "level": pl.Float64(), "n_personas": pl.Int64(), "default": pl.Boolean(),
    "country": pl.Utf8(), "question": pl.Utf8(), "battery": pl.Utf8(), "lo": pl.Float64(),
    "hi": pl.Float64(), "sim_mean": pl.Float64(), "human_mean": pl.Float64(),
    "pred_low": pl.Float64(), "pred_high": pl.Float64(), "covered": pl.Boolean(),
}


@dataclass
class Heldout:
    """What the validation ran on and what it found."""

    study: Path
    source: str
    countries: list[str]
    items: list[Item]
    kept: list[str]
    dropped: list[dict[str, Any]]
    n_personas: int
    asked: pl.DataFrame  # run_ask's rows (simulated answers; no human data)
    cells: pl.DataFrame  # INTERVAL_CELL_SCHEMA: the runs' and references' held-out cells
    intervals: pl.DataFrame  # CELL_INTERVAL_SCHEMA
    table: pl.DataFrame  # INTERVAL_SCHEMA, validation "heldout"
    in_study: pl.DataFrame | None  # the study's own data/eval/intervals.parquet
    fits_md5: str
    seconds: dict[str, float] = field(default_factory=dict)


# -- inputs ----------------------------------------------------------------------------

def heldout_items(questions: Path, bank: QuestionBank) -> list[Item]:
    """The held-out items of ``questions``; a bank item there is not held out: an error."""
    from valuesim.survey.new_questions import is_new, load_question_file

    items = load_question_file(questions, bank)
    in_bank = [i.id for i in items if not is_new(i, bank)]
    if in_bank:
        raise ConfigError(f"{questions}: {', '.join(in_bank)} are items of the study's bank, "
                          "so they are not held out; remove them from the file")
    return items


@dataclass(frozen=True)
class Human:
    respondents: pl.DataFrame  # country, respondent_id, weight, the held-out items
    distributions: pl.DataFrame  # valuesim.survey.human DISTRIBUTION_SCHEMA
    kept: list[str]
    dropped: list[dict[str, Any]]
    source: str


def human_heldout(
    study: Path, params: Params, bank: QuestionBank, items: Sequence[Item], countries: Sequence[str],
) -> Human:
    """The held-out items' human answers in ``countries``: the study's source read with
    the bank extended by the items, weighted as the human stage weights, filtered by
    the study's ``filter.max_missing`` as the human stage filters its targets."""
    from valuesim.personas.on_demand import under
    from valuesim.survey.human import human_distributions
    from valuesim.survey.missing_filter import filter_questions
    from valuesim.survey.new_questions import extend_bank
    from valuesim.survey.readers import read_source, select_countries

    source = under(study, params.data.source)
    if str(source).endswith(".json"):
        raise ConfigError(f"{study}: data.source is the synthetic demo ({params.data.source}), "
                          "which has no answers to held-out items; run the study on real WVS files")
    extended = extend_bank(bank, items)
    result = select_countries(
        read_source(source, extended, drop_duplicates=params.data.drop_duplicates), list(countries)
    )
    ids = [i.id for i in items]
    respondents = result.respondents.select("country", "respondent_id", "weight", *ids)
    dist, summary = human_distributions(respondents, extended, items=items, countries=countries)
    kept = filter_questions(summary, ids, countries, params.filter.max_missing)
    return Human(respondents, dist, kept.kept, kept.dropped, str(params.data.source))


def ask_heldout(
    study: Path, params: Params, items: Sequence[Item], countries: Sequence[str], *,
    model: str, method: str, log: Callable[[str], None],
) -> pl.DataFrame:
    """The study's (model, method) asked every item in every country with its own
    personas and N: one valuesim.asking.RESULT_SCHEMA row per (country, question)."""
    from valuesim.asking import run_ask

    result = run_ask(list(items), list(countries), method=method, model=model,
                     n=params.personas.n_per_country, project_dir=study, progress=False, log=log)
    s = result.summary
    log(f"{model}/{method}: {s.requests} requests, {s.cache_hits} cached, {s.sent} sent, "
        f"{s.wall_s:.1f}s")
    return result.frame


def run_cells(
    asked: pl.DataFrame, dist: pl.DataFrame, items: Sequence[Item], n_per_country: int,
) -> pl.DataFrame:
    """INTERVAL_CELL_SCHEMA rows (both kinds) of ask's rows, as the evaluate stage makes
    its cells: the simulated mean is ask's expected answer, the difficulty
    max(persona SD / range, 0.01) for persona methods, the bootstrap ask's persona
    interval; ``n_personas`` the run's N (persona methods) or 1 (country-level methods),
    the N of the fit that ``ask`` picks. Raw and calibrated rows are equal: the
    calibration preserves every persona's mean."""
    from valuesim.analysis.interval_cells import human_means
    from valuesim.methods import persona_kind
    from valuesim.survey.batteries import battery_of

    by_id = {i.id: i for i in items}
    means = {(c, q): m for c, q, m in human_means(dist).iter_rows()}
    rows = []
    for r in asked.iter_rows(named=True):
        item, key = by_id.get(r["question"]), (r["country"], r["question"])
        if item is None or key not in means or r["expected"] is None:
            continue
        persona = persona_kind(r["method"])[0] is not None
        span = float(item.codes[-1] - item.codes[0])
        sd = r["persona_sd"]
        rows.append({
            "model": r["model"], "method": r["method"], "n_personas": n_per_country if persona else 1,
            "country": r["country"], "question": r["question"],
            "battery": battery_of(item.id, item.battery),
            "lo": item.codes[0], "hi": item.codes[-1], "n_points": len(item.codes),
            "sim_mean": r["expected"], "human_mean": means[key],
            "difficulty": (max((sd or 0.0) / span, conformal.DIFFICULTY_FLOOR) if persona else None),
            "boot_low": r["persona_ci_low"], "boot_high": r["persona_ci_high"],
        })
    base = pl.DataFrame(rows, schema={k: v for k, v in INTERVAL_CELL_SCHEMA.items() if k != "kind"})
    return pl.concat([base.with_columns(kind=pl.lit(k)) for k in KINDS]).select(list(INTERVAL_CELL_SCHEMA))


def reference_cells(human: Human, keys: pl.DataFrame, items: Sequence[Item], countries: Sequence[str]) -> pl.DataFrame:
    """The model-free references' cells on ``keys``, as the evaluate stage makes its
    own (:func:`valuesim.analysis.interval_cells.reference_interval_cells`): the scale
    midpoint, and each country predicted by the weighted pool of the other countries."""
    from valuesim.analysis.references import constant_reference, other_countries_reference

    ids = [i.id for i in items]
    dist = human.distributions.filter(pl.col("question").is_in(ids))
    predictions = {
        "midpoint": constant_reference(dist, "midpoint"),
        "other_countries": other_countries_reference(human.respondents, dist, countries, ids),
    }
    return reference_interval_cells(
        predictions, dist, keys, {i.id: i.codes for i in items},
        {i.id: i.battery for i in items if i.battery},
    )


# -- applying the fits -------------------------------------------------------------------

def pick_n(available: Sequence[int], asked: int) -> int:
    """The fitted N ``ask`` uses for ``asked`` personas (valuesim.prediction's rule)."""
    from valuesim.prediction import pick_n as pick

    return pick(sorted(set(available)), asked)


def country_thresholds(fit: pl.DataFrame, pooled: float, countries: Sequence[str]) -> np.ndarray:
    """(C,) thresholds of one (variant, level) fit for ``countries``: a country's own,
    the one shared value (country "*": pooled, joint), else the pooled threshold (a
    country the study lacks, as ``ask`` does)."""
    own = dict(fit.select("country", "threshold").iter_rows())
    shared = own.get("*")
    return np.array([float(own.get(c, shared if shared is not None else pooled)) for c in countries])


def apply_fits(cells: pl.DataFrame, fits: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(coverage table, per-cell intervals) of every fitted (kind, variant, level) of
    each run's fit applied to ``cells`` (INTERVAL_CELL_SCHEMA).

    Each (model, method, kind, n_personas) of the cells takes the fit ``ask`` would
    take (same model, method and kind; the N rule of :mod:`valuesim.prediction`) and
    gets, per cell, pred -/+ threshold * range (x difficulty for normalized), clipped
    to the scale (:mod:`valuesim.analysis.conformal`). The coverage rows come from the
    evaluate stage's ``summary_rows``; the persona bootstrap 95% interval is scored
    the same way (variant ``persona_bootstrap``, level 0.95).
    """
    table: list[dict[str, Any]] = []
    long: list[pl.DataFrame] = []
    for key, grp in cells.sort([*RUN_KEYS, "country", "question"]).group_by(RUN_KEYS, maintain_order=True):
        model, method, kind, n = key
        own = fits.filter((pl.col("model") == model) & (pl.col("method") == method) & (pl.col("kind") == kind))
        if own.is_empty():
            continue
        n_fit = pick_n(own["n_personas"].to_list(), int(n))  # type: ignore[call-overload]
        own = own.filter(pl.col("n_personas") == n_fit)
        m = cell_matrix(grp)
        head = {"model": model, "method": method, "kind": kind, "validation": VALIDATION, "n_personas": n_fit}
        for (variant, level), fit in own.group_by(["variant", "level"], maintain_order=True):
            if variant == "normalized" and m.difficulty is None:
                continue
            pooled = own.filter((pl.col("variant") == "pooled") & (pl.col("level") == level))
            t = country_thresholds(fit, float(pooled["threshold"][0]) if pooled.height else math.inf,
                                   m.countries)
            h = conformal.half_widths(np.repeat(t[:, None], len(m.questions), axis=1), variant, m.difficulty)
            hit = conformal.covered(m.scores, h)
            low, high = conformal.interval(m.pred, h, m.lo, m.hi)
            default = bool(fit["default"][0])
            extra = {**head, "variant": variant, "level": float(level), "default": default}
            table += [{**extra, **r} for r in summary_rows(m, hit, high - low)]
            long.append(_long(m, extra, low, high, hit))
        if model != REFERENCE_MODEL and m.boot_low is not None and m.boot_high is not None:
            hit = (m.boot_low <= m.human) & (m.human <= m.boot_high)
            extra = {**head, "variant": "persona_bootstrap", "level": BOOTSTRAP_LEVEL, "default": False,
                     "validation": "none"}
            table += [{**extra, **r} for r in summary_rows(m, hit, m.boot_high - m.boot_low)]
            long.append(_long(m, extra, m.boot_low, m.boot_high, hit))
    if not table:
        return pl.DataFrame(schema=INTERVAL_SCHEMA), pl.DataFrame(schema=CELL_INTERVAL_SCHEMA)
    bare = {k: v for k, v in INTERVAL_SCHEMA.items() if k not in ("coverage_lo", "coverage_hi")}
    frame = with_bounds(pl.DataFrame(table, schema=bare)).select(list(INTERVAL_SCHEMA))
    return frame.sort("model", "method", "kind", "variant", "level", "group_type", "group"), pl.concat(long)


def _long(m: Any, head: dict[str, Any], low: np.ndarray, high: np.ndarray, hit: np.ndarray) -> pl.DataFrame:
    """One CELL_INTERVAL_SCHEMA row per existing cell of a CellMatrix."""
    ci, qi = np.nonzero(m.exists)
    return pl.DataFrame({
        **{k: [head[k]] * ci.size for k in ("model", "method", "kind", "variant", "level", "n_personas",
                                              "default")},
        "country": [m.countries[i] for i in ci], "question": [m.questions[j] for j in qi],
        "battery": [m.batteries[j] for j in qi], "lo": m.lo[qi], "hi": m.hi[qi],
        "sim_mean": m.pred[ci, qi], "human_mean": m.human[ci, qi],
        "pred_low": low[ci, qi], "pred_high": high[ci, qi], "covered": hit[ci, qi],
    }, schema=CELL_INTERVAL_SCHEMA)


# -- verdict and residuals -----------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    run: str
    variant: str
    kind: str
    coverage: float
    low: float
    high: float
    n_cells: int
    width_norm: float
    worst_battery: str
    worst_upper: float
    failing: list[str]  # one line per failure

    @property
    def passed(self) -> bool:
        return not self.failing


def verdicts(table: pl.DataFrame, kind: str = "calibrated") -> list[Verdict]:
    """The issue's pass criterion for each run's (and reference's) default variant at 0.9."""
    rows = table.filter(pl.col("default") & (pl.col("kind") == kind) & (pl.col("level") == PASS_LEVEL))
    if kind != "raw":  # the references have raw fits only
        rows = pl.concat([rows, table.filter(pl.col("default") & (pl.col("model") == REFERENCE_MODEL)
                                             & (pl.col("kind") == "raw") & (pl.col("level") == PASS_LEVEL))])
    out = []
    for (model, method), g in rows.group_by(["model", "method"], maintain_order=True):
        overall = g.filter(pl.col("group_type") == "overall").row(0, named=True)
        batteries = g.filter(pl.col("group_type") == "battery").sort("coverage_hi")
        worst = batteries.row(0, named=True)
        failing = []
        if not PASS_RANGE[0] <= overall["coverage"] <= PASS_RANGE[1]:
            side = "below" if overall["coverage"] < PASS_RANGE[0] else "above"
            failing.append(f"pooled coverage {overall['coverage']:.3f} is {side} "
                           f"[{PASS_RANGE[0]}, {PASS_RANGE[1]}]")
        for b in batteries.filter(pl.col("coverage_hi") < PASS_BATTERY_UPPER).iter_rows(named=True):
            failing.append(f"{b['group']} {b['n_covered']}/{b['n_cells']} "
                           f"(upper bound {b['coverage_hi']:.3f} < {PASS_BATTERY_UPPER})")
        out.append(Verdict(f"{model}/{method}", str(overall["variant"]), str(overall["kind"]),
                           overall["coverage"], overall["coverage_lo"], overall["coverage_hi"],
                           overall["n_cells"], overall["width_norm"], str(worst["group"]),
                           worst["coverage_hi"], failing))
    return out


def residuals(intervals: pl.DataFrame, kind: str = "calibrated") -> pl.DataFrame:
    """Per (model, method, battery): mean signed residual (simulated - human) / range,
    mean |residual| / range, and, for the default variant at 0.9, the share of cells
    whose human mean lies above / below the interval: which way a failure goes."""
    d = intervals.filter(pl.col("default") & (pl.col("level") == PASS_LEVEL)
                         & ((pl.col("kind") == kind) | (pl.col("model") == REFERENCE_MODEL)))
    rng = pl.col("hi") - pl.col("lo")
    return d.group_by("model", "method", "battery").agg(
        n_cells=pl.len(),
        signed=((pl.col("sim_mean") - pl.col("human_mean")) / rng).mean(),
        absolute=((pl.col("sim_mean") - pl.col("human_mean")).abs() / rng).mean(),
        human_above=(pl.col("human_mean") > pl.col("pred_high")).mean(),
        human_below=(pl.col("human_mean") < pl.col("pred_low")).mean(),
    ).sort("model", "method", "battery")


# -- the run -----------------------------------------------------------------------------

def validate(
    study: Path, questions: Path = DEFAULT_QUESTIONS, *, methods: Sequence[str] | None = None,
    models: Sequence[str] | None = None, log: Callable[[str], None] = print,
) -> Heldout:
    """The whole validation on ``study`` (a finished real-data study directory)."""
    from valuesim.personas.on_demand import under

    study = study.resolve()
    start = time.perf_counter()
    params = load_params(study / "params.yaml")
    bank = load_bank(under(study, params.data.questions))
    items = heldout_items(questions, bank)
    countries = artifacts.selected_countries(study / paths.SELECTED_COUNTRIES)
    fits_path = study / paths.EVAL / "interval_fits.parquet"
    if not fits_path.exists():
        raise DataError(f"{fits_path} not found; run the study's evaluate stage (`dvc repro`) first")
    fits = pl.read_parquet(fits_path)
    in_study_path = study / paths.EVAL / "intervals.parquet"
    in_study = pl.read_parquet(in_study_path) if in_study_path.exists() else None

    human = human_heldout(study, params, bank, items, countries)
    kept = [i for i in items if i.id in set(human.kept)]
    log(f"held-out items: {len(items)} in {questions.name}, {len(kept)} kept by the missing "
        f"filter in {len(countries)} countries")
    if not kept:
        raise DataError(f"no held-out item of {questions} passes filter.max_missing in {', '.join(countries)}")
    seconds = {"human": time.perf_counter() - start}

    t = time.perf_counter()
    asked = pl.concat([
        ask_heldout(study, params, kept, countries, model=model, method=method, log=log)
        for model in (models or params.simulate.models) for method in (methods or params.simulate.methods)
    ], how="vertical_relaxed")
    seconds["ask"] = time.perf_counter() - t
    runs = run_cells(asked, human.distributions, kept, params.personas.n_per_country)
    refs = reference_cells(human, runs.select("country", "question").unique(), kept, countries)
    cells = pl.concat([runs, refs])
    table, intervals = apply_fits(cells, fits)
    return Heldout(
        study=study, source=human.source, countries=countries, items=items, kept=[i.id for i in kept],
        dropped=human.dropped, n_personas=params.personas.n_per_country, asked=asked, cells=cells,
        intervals=intervals, table=table, in_study=in_study,
        fits_md5=hashlib.md5(fits_path.read_bytes()).hexdigest(),  # an id of the fit, not security
        seconds={**seconds, "total": time.perf_counter() - start},
    )


# -- markdown ----------------------------------------------------------------------------

def _f(x: object, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else "inf"
    return f"{x:.{digits}f}"  # type: ignore[str-format]


def _cov(r: dict[str, Any]) -> str:
    return f"{r['n_covered']}/{r['n_cells']} = {_f(r['coverage'])} [{_f(r['coverage_lo'])}, {_f(r['coverage_hi'])}]"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _in_study(in_study: pl.DataFrame | None, r: dict[str, Any]) -> str:
    """The study's own LOQO / LOBO overall coverage of the same (run, kind, variant, level, N)."""
    if in_study is None:
        return ""
    sel = in_study.filter(
        (pl.col("model") == r["model"]) & (pl.col("method") == r["method"]) & (pl.col("kind") == r["kind"])
        & (pl.col("variant") == r["variant"]) & (pl.col("level") == r["level"])
        & (pl.col("n_personas") == r["n_personas"]) & (pl.col("group_type") == "overall")
    )
    got = dict(sel.select("validation", "coverage").iter_rows())
    if "none" in got:  # the persona bootstrap: nothing is fitted, nothing held out
        return f"{_f(got['none'])} (no fit)"
    return " / ".join(_f(got.get(v)) for v in ("loqo", "lobo")) if got else ""


def _shown(table: pl.DataFrame, kind: str) -> pl.DataFrame:
    """The rows of ``kind``, and the references' raw rows (they have no calibrated kind)."""
    return table.filter((pl.col("kind") == kind)
                        | ((pl.col("model") == REFERENCE_MODEL) & (pl.col("kind") == "raw")))


def group_tables(t: pl.DataFrame, group_type: str, title: str) -> list[str]:
    """Per level, one row per group: every run's and reference's default variant."""
    sel = t.filter((pl.col("group_type") == group_type) & pl.col("default"))
    runs = sel.select("model", "method").unique(maintain_order=True).sort(
        pl.col("model") == REFERENCE_MODEL, "model", "method").rows()
    groups = sorted(set(sel["group"].to_list()), key=lambda g: (int(g), g) if g.isdigit() else (0, g))
    lines: list[str] = []
    for level in sorted(set(sel["level"].to_list())):
        header = [title, "cells", *[f"{a}/{b} ({sel.filter((pl.col('model') == a) & (pl.col('method') == b))['variant'][0]})"
                                    for a, b in runs]]
        rows = []
        for g in groups:
            at = sel.filter((pl.col("group") == g) & (pl.col("level") == level))
            row: list[object] = [g, at["n_cells"].max()]
            for a, b in runs:
                hit = at.filter((pl.col("model") == a) & (pl.col("method") == b))
                if hit.is_empty():
                    row.append("")
                    continue
                r = hit.row(0, named=True)
                row.append(f"{_f(r['coverage'])} [{_f(r['coverage_lo'])}, {_f(r['coverage_hi'])}] "
                           f"w {_f(r['width_norm'])}")
            rows.append(row)
        lines += [f"Level {level:g}:", "", *_md_table(header, rows)]
    return lines


def per_question(h: Heldout, kind: str) -> list[str]:
    """One row per held-out question: where the humans are, what each run says, and
    how many of its countries the run's default interval at 0.9 covers."""
    d = _shown(h.intervals, kind).filter(pl.col("default") & (pl.col("level") == PASS_LEVEL))
    runs = d.select("model", "method").unique().sort(pl.col("model") == REFERENCE_MODEL, "model", "method").rows()
    human = d.group_by("question").agg(
        pl.col("battery").first(), (pl.col("hi") - pl.col("lo") + 1).first().cast(pl.Int64).alias("points"),
        pl.col("human_mean").mean().alias("mean"), pl.col("human_mean").min().alias("low"),
        pl.col("human_mean").max().alias("high"))
    labels = {i.id: i.label for i in h.items}
    rows = []
    for r in human.sort("battery", "question").iter_rows(named=True):
        row: list[object] = [r["question"], labels.get(r["question"], ""), r["battery"], r["points"],
                             f"{r['mean']:.2f} ({r['low']:.2f} - {r['high']:.2f})"]
        for a, b in runs:
            g = d.filter((pl.col("question") == r["question"]) & (pl.col("model") == a) & (pl.col("method") == b))
            row.append(f"{int(g['covered'].sum())}/{g.height}, {g['sim_mean'].mean():.2f}" if g.height else "")
        rows.append(row)
    return _md_table(["question", "label", "battery", "points", "human mean",
                      *[f"{a}/{b}" for a, b in runs]], rows)


def markdown(h: Heldout, kind: str = "calibrated") -> str:
    """The results page: verdicts, pooled coverage, per battery / country / scale length."""
    t = _shown(h.table, kind)
    raw = h.table.filter((pl.col("kind") == "raw") & (pl.col("model") != REFERENCE_MODEL))
    mine = h.table.filter((pl.col("kind") == kind) & (pl.col("model") != REFERENCE_MODEL))
    cols = [c for c in INTERVAL_SCHEMA if c != "kind"]
    same = raw.select(cols).sort(cols).equals(mine.select(cols).sort(cols))
    n_cells = h.cells.filter(pl.col("model") != REFERENCE_MODEL).select("country", "question").unique().height
    lines = [
        "# Held-out validation of the prediction intervals on real WVS-7 files", "",
        f"Study `{h.study.name}`: source `{h.source}`, countries {', '.join(h.countries)}, "
        f"N = {h.n_personas} personas per country. Interval fits: the study's "
        f"`data/eval/interval_fits.parquet` (md5 {h.fits_md5[:8]}), fitted on its kept target "
        f"questions only. Held-out: {len(h.items)} WVS-7 items the study does not ask "
        f"(`data/questions/wvs7_heldout.yaml`), {len(h.kept)} kept by the study's missing-data "
        f"filter; {n_cells} (country, question) cells per run. Human means: W_WEIGHT-weighted "
        "means of the substantive answers. A cell is covered when its interval (closed) holds "
        "the human mean. Brackets: Clopper-Pearson 95% intervals of the coverage; w and width: "
        "mean full width of the clipped interval over the scale range (norm.) or in scale "
        "points. Only aggregates are shown.", "",
        f"Kind shown: {kind} (the references: raw, their only kind). "
        + ("The raw rows are identical (the calibration preserves every persona's mean)."
           if same else "The raw rows differ: see the CSV."), "",
    ]
    if h.dropped:
        by_q: dict[str, list[str]] = {}
        for d in h.dropped:
            by_q.setdefault(str(d["question"]), []).append(str(d["country"]))
        lines += ["Dropped by the missing filter: "
                  + "; ".join(f"{q} ({', '.join(cs)})" for q, cs in by_q.items()) + ".", ""]

    lines += ["## Verdict (each run's default variant, level 0.9)", "",
              f"Pass: pooled coverage within [{PASS_RANGE[0]}, {PASS_RANGE[1]}] and no battery's "
              f"upper bound below {PASS_BATTERY_UPPER}.", ""]
    lines += _md_table(
        ["run", "variant", "pooled coverage", "cells", "width (norm.)", "lowest battery upper bound", "result"],
        [[v.run, v.variant, f"{v.coverage:.3f} [{v.low:.3f}, {v.high:.3f}]", v.n_cells, _f(v.width_norm),
          f"{v.worst_battery} {v.worst_upper:.3f}", "pass" if v.passed else "FAIL: " + "; ".join(v.failing)]
         for v in verdicts(h.table, kind)])

    lines += ["## Pooled coverage: every variant and level", "",
              "In-study: the study's own leave-one-question-out / leave-one-battery-out "
              "coverage of the same fit (data/eval/intervals.parquet).", ""]
    overall = t.filter(pl.col("group_type") == "overall").sort(
        pl.col("model") == REFERENCE_MODEL, "model", "method", "variant", "level")
    lines += _md_table(
        ["run", "variant", "level", "held-out coverage", "width (norm.)", "width (points)",
         "all countries at once", "in-study LOQO / LOBO"],
        [[f"{r['model']}/{r['method']}", r["variant"] + (" (default)" if r["default"] else ""),
          f"{r['level']:g}", _cov(r), _f(r["width_norm"]), _f(r["width_points"], 2), _f(r["simultaneous"]),
          _in_study(h.in_study, r)] for r in overall.iter_rows(named=True)])

    for group_type, title in (("battery", "battery"), ("country", "country"),
                              ("scale_length", "answer points")):
        lines += [f"## Coverage per {title} (default variants)", ""]
        lines += group_tables(t, group_type, title)

    lines += ["## Residuals per battery (default variant, level 0.9)", "",
              "Signed: mean (simulated - human) / range; above / below: share of cells whose "
              "human mean lies above / below the interval.", ""]
    lines += _md_table(
        ["run", "battery", "cells", "signed", "mean abs", "human above", "human below"],
        [[f"{r['model']}/{r['method']}", r["battery"], r["n_cells"], f"{r['signed']:+.3f}",
          _f(r["absolute"]), _f(r["human_above"]), _f(r["human_below"])]
         for r in residuals(h.intervals, kind).iter_rows(named=True)])
    lines += ["## Per question (default variants, level 0.9)", "",
              "Human: the weighted mean, averaged over the countries (lowest - highest); "
              "each run: cells covered and its simulated mean averaged over the countries.", ""]
    lines += per_question(h, kind)
    lines += [f"Made by `examples/validation/heldout_conformal.py` in {h.seconds.get('total', 0):.0f} s "
              f"({h.seconds.get('ask', 0):.0f} s asking).", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("study", type=Path, help="a finished real-data study directory")
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--methods", help="comma-separated (default: the study's simulate.methods)")
    parser.add_argument("--models", help="comma-separated (default: the study's simulate.models)")
    parser.add_argument("--out", type=Path, default=Path("examples/validation/results/heldout_conformal.md"))
    args = parser.parse_args(argv)
    try:
        h = validate(args.study, args.questions.resolve(),
                     methods=args.methods.split(",") if args.methods else None,
                     models=args.models.split(",") if args.models else None,
                     log=lambda m: print(m, file=sys.stderr))
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(h))
    h.table.write_csv(args.out.with_suffix(".csv"))
    print(json.dumps([{"run": v.run, "variant": v.variant, "coverage_90": round(v.coverage, 4),
                       "passed": v.passed, "failing": v.failing} for v in verdicts(h.table)], indent=1))
    print(f"wrote {args.out} and {args.out.with_suffix('.csv')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
