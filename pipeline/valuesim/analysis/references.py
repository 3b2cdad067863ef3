"""Reference points every result is read against (no model calls).

A method's MAE means little alone: 0.25 is good if always answering the scale's
midpoint gives 0.30 and bad if it gives 0.20. The evaluate stage therefore scores,
on exactly the cells the methods are scored on:

* ``midpoint``: every country answers the scale centre. Its distribution puts the
  mass on the code(s) around (min + max) / 2 so that its mean is the centre.
* ``uniform``: every answer equally likely.
* ``other_countries``: each country predicted by the pooled human answers of the
  *other* selected countries (respondents pooled with their design weights), i.e.
  what knowing the survey but not the country gives.

and three noise floors, each named for what it is:

* **actual-answer floor** (``actual_answer_floor``): the error of N respondents' *actual
  answers*. N respondents drawn exactly as personas are drawn (``personas.sampling``),
  each answering with their own survey answer (one-hot), averaged with equal weights as
  the pipeline averages personas, against the country's weighted distribution.
  Respondents who did not answer a question are left out of that question's average.
  Repeated over resamples: mean and spread. This is what asking N real people gives; it
  is *not* what a perfect persona simulator gives, because the pipeline averages N
  personas' answer *distributions*, whose means vary far less than single answers do.
  Its normal approximation E|ybar_N - mu| ~ sqrt(2/pi) sigma / sqrt(N)
  (:func:`actual_answer_floor_normal`) checks it.
* **persona-information floor** (``persona_information_floor``): the error a perfect
  simulator of these personas would have with N personas: the same draws, each persona
  answering E[answer | persona items] (estimated on the human respondents with
  cross-fitting, :mod:`valuesim.analysis.persona_information`), averaged, against the
  country's weighted mean. Every drawn persona counts (a simulator answers every
  question). MAE only: it is a floor on the error of the mean. This is the floor a
  persona method's MAE is read against.
* **human sampling noise** (from ``split_half``): two random halves of each country's
  respondents scored against each other (each half weighted). With equal halves the
  half's distribution minus the other's is exactly twice the half's minus the whole
  sample's, and that has the spread of the whole sample's distribution around the
  population's, so the split-half MAE (and Wasserstein distance) is about twice the
  error a perfect predictor of the population has against the full sample:
  :data:`SPLIT_HALF_FACTOR`, :func:`human_sampling_noise`.

Every frame here is long: (country, question, code, share), the shape of
``data/human/distributions.parquet``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import polars as pl

from valuesim.analysis import metrics
from valuesim.analysis.persona_information import Expectations
from valuesim.errors import DataError
from valuesim.personas.sampling import sample_respondents
from valuesim.survey.bank import Answer, Item
from valuesim.survey.human import human_distributions

REFERENCE_MODEL = "reference"
REFERENCES = ("midpoint", "uniform", "other_countries")
LONG_SCHEMA = {"country": pl.Utf8, "question": pl.Utf8, "code": pl.Int64, "share": pl.Float64}
CELL_SCHEMA = {
    "country": pl.Utf8, "question": pl.Utf8, "mae": pl.Float64, "wasserstein": pl.Float64,
    "nvar": pl.Float64, "nvar_human": pl.Float64,
}
# Resample r of a floor uses seed FLOOR_SEED_STRIDE * (r + 1) + analysis.seed, far from
# the persona seeds users pick, so the floor's draws are not the run's own personas.
FLOOR_SEED_STRIDE = 1_000_003
#: split-half MAE (or Wasserstein distance) / this = human sampling noise: the error a
#: perfect predictor of the population has against the full sample (see the docstring)
SPLIT_HALF_FACTOR = 2.0


def scale_codes(human: pl.DataFrame) -> dict[str, tuple[int, ...]]:
    """Each question's answer codes. Human distributions list every code of the
    scale (zero shares included), so they define it."""
    return {
        str(q): tuple(sorted(int(c) for c in codes))
        for q, codes in human.group_by("question").agg(pl.col("code").unique()).iter_rows()
    }


def scale_items(human: pl.DataFrame, questions: Sequence[str]) -> list[Item]:
    """Minimal items for ``questions`` on the scales the human data define, so that the
    weighted distributions are computed by the same code as the human stage's."""
    codes = scale_codes(human)
    missing = [q for q in questions if q not in codes]
    if missing:
        raise DataError(f"no human answers for {', '.join(missing)}; rerun the human stage")
    return [
        Item(id=q, roles=["target"], label=q, text=q,
             answers=[Answer(code=c, label=str(c)) for c in codes[q]])
        for q in questions
    ]


def midpoint_distribution(codes: Sequence[int]) -> np.ndarray:
    """All mass at the scale centre, split between the two codes around it when the
    centre is not a code (so the mean is exactly the centre)."""
    r = np.asarray(codes, dtype=np.float64)
    centre = (r[0] + r[-1]) / 2
    p = np.zeros(len(r))
    hit = np.flatnonzero(np.isclose(r, centre))
    if hit.size:
        p[hit[0]] = 1.0
        return p
    upper = int(np.searchsorted(r, centre))
    lower = upper - 1
    w = (centre - r[lower]) / (r[upper] - r[lower])
    p[lower], p[upper] = 1.0 - w, w
    return p


def _long(rows: list[tuple[str, str, int, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=LONG_SCHEMA, orient="row")


def constant_reference(human: pl.DataFrame, kind: str) -> pl.DataFrame:
    """``midpoint`` or ``uniform`` for every (country, question) of ``human``."""
    codes = scale_codes(human)
    rows = []
    for country, question in human.select("country", "question").unique().sort(["country", "question"]).iter_rows():
        c = codes[question]
        p = midpoint_distribution(c) if kind == "midpoint" else np.full(len(c), 1.0 / len(c))
        rows += [(country, question, code, float(s)) for code, s in zip(c, p, strict=True)]
    return _long(rows)


def other_countries_reference(
    respondents: pl.DataFrame, human: pl.DataFrame, countries: Sequence[str], questions: Sequence[str]
) -> pl.DataFrame:
    """Each country predicted by the weighted pool of the other selected countries."""
    if len(countries) < 2:
        return pl.DataFrame(schema=LONG_SCHEMA)
    items = scale_items(human, questions)
    frames = []
    for country in countries:
        others = respondents.filter(
            pl.col("country").is_in([c for c in countries if c != country])
        ).with_columns(pl.lit(country).alias("country"))
        dist, _ = human_distributions(others, None, items=items)
        frames.append(dist)
    return pl.concat(frames).cast(LONG_SCHEMA)


def _dense(frame: pl.DataFrame, codes: dict[str, tuple[int, ...]], countries: Sequence[str]) -> dict[str, np.ndarray]:
    """question -> (len(countries), K) shares; rows of absent (country, question) are 0.

    One pass over the columns as NumPy arrays: the floors call this hundreds of times,
    and per-question DataFrame operations cost more than the arithmetic.
    """
    pos = {c: i for i, c in enumerate(countries)}
    qpos = {q: i for i, q in enumerate(codes)}
    f = frame.filter(pl.col("country").is_in(list(pos)) & pl.col("question").is_in(list(qpos)))
    ci = f["country"].replace_strict(pos, return_dtype=pl.Int64).to_numpy()
    qi = f["question"].replace_strict(qpos, return_dtype=pl.Int64).to_numpy()
    code, share = f["code"].to_numpy(), f["share"].to_numpy()
    out: dict[str, np.ndarray] = {}
    for q, i in qpos.items():
        m = qi == i
        if not m.any():
            continue
        scale = np.asarray(codes[q])
        k = np.minimum(np.searchsorted(scale, code[m]), len(scale) - 1)
        if np.any(scale[k] != code[m]):
            raise DataError(f"an answer code of {q} is not on its scale; check data/human")
        arr = np.zeros((len(countries), len(scale)))
        np.add.at(arr, (ci[m], k), share[m])
        out[q] = arr
    return out


def score_long(pred: pl.DataFrame, human: pl.DataFrame, questions: Sequence[str]) -> pl.DataFrame:
    """Per (country, question) present in both: MAE and W1 (/ range), normalized variances."""
    codes = scale_codes(human)
    countries = sorted(set(pred["country"].to_list()) & set(human["country"].to_list()))
    p_all, h_all = _dense(pred, codes, countries), _dense(human, codes, countries)
    frames = []
    for q in questions:
        if q not in p_all or q not in h_all:
            continue
        p, h = p_all[q], h_all[q]
        ok = (p.sum(axis=1) > 0) & (h.sum(axis=1) > 0)
        if not ok.any():
            continue
        p = p[ok] / p[ok].sum(axis=1, keepdims=True)
        h = h[ok] / h[ok].sum(axis=1, keepdims=True)
        values = np.asarray(codes[q], dtype=np.float64)
        frames.append(pl.DataFrame({
            "country": [c for c, keep in zip(countries, ok, strict=True) if keep],
            "question": [q] * int(ok.sum()),
            "mae": metrics.abs_error(p, h, values),
            "wasserstein": metrics.wasserstein(p, h, values),
            "nvar": metrics.normalized_variance(p, values),
            "nvar_human": metrics.normalized_variance(h, values),
        }, schema=CELL_SCHEMA))
    if not frames:
        return pl.DataFrame(schema=CELL_SCHEMA)
    return pl.concat(frames).sort(["country", "question"])


def reference_cells(
    human: pl.DataFrame, respondents: pl.DataFrame, countries: Sequence[str], questions: Sequence[str],
) -> pl.DataFrame:
    """Scores of the three references in the evaluate stage's cell schema
    (model "reference"; calibrated columns equal the raw ones: nothing is calibrated)."""
    hum = human.filter(pl.col("question").is_in(list(questions)) & pl.col("country").is_in(list(countries)))
    preds = {
        "midpoint": constant_reference(hum, "midpoint"),
        "uniform": constant_reference(hum, "uniform"),
        "other_countries": other_countries_reference(respondents, hum, countries, questions),
    }
    frames = []
    for name, pred in preds.items():
        cells = score_long(pred, hum, questions)
        frames.append(cells.with_columns(
            pl.lit(REFERENCE_MODEL).alias("model"), pl.lit(name).alias("method"),
            pl.col("mae").alias("mae_cal"), pl.col("wasserstein").alias("wasserstein_cal"),
            pl.col("nvar").alias("nvar_cal"), pl.lit(None, dtype=pl.Float64).alias("temperature"),
            pl.col("mae").alias("mae_plain"), pl.col("wasserstein").alias("wasserstein_plain"),
            pl.col("nvar").alias("nvar_plain"),
        ))
    return pl.concat(frames)


def _per_country_means(cells: pl.DataFrame) -> pl.DataFrame:
    return cells.group_by("country").agg(pl.col("mae").mean(), pl.col("wasserstein").mean())


def floor_draws(
    respondents: pl.DataFrame, countries: Sequence[str], sizes: Sequence[int], repeats: int, seed: int,
) -> Iterator[tuple[int, int, pl.DataFrame]]:
    """(n, repeat, drawn respondents) of every floor: n respondents per country drawn
    as personas are drawn, with resample r's seed FLOOR_SEED_STRIDE * (r + 1) + seed.
    Both floors use these draws, so they are paired resample by resample."""
    for n in sorted(set(sizes)):
        if n < 1:
            raise DataError(f"sample size {n} is not a positive number of personas; fix analysis.sample_sizes")
        for rep in range(repeats):
            yield n, rep, sample_respondents(respondents, countries, n, FLOOR_SEED_STRIDE * (rep + 1) + seed)


FLOOR_SCHEMA = {"n": pl.Int64, "repeat": pl.Int64, "country": pl.Utf8, "mae": pl.Float64,
                "wasserstein": pl.Float64}
PERSONA_FLOOR_SCHEMA = {"n": pl.Int64, "repeat": pl.Int64, "country": pl.Utf8, "mae": pl.Float64}


def actual_answer_floor(
    respondents: pl.DataFrame, human: pl.DataFrame,
    countries: Sequence[str], questions: Sequence[str], sizes: Sequence[int],
    repeats: int, seed: int, draws: Sequence[tuple[int, int, pl.DataFrame]] | None = None,
) -> pl.DataFrame:
    """MAE and W1 of N respondents' actual answers, per (n, repeat, country).

    The MAE of a repeat is averaged per country over questions, as the methods'
    MAE is (then over countries by the caller). ``draws``: :func:`floor_draws` of the
    same arguments, when the caller has them already.
    """
    items = scale_items(human, questions)
    hum = human.filter(pl.col("question").is_in(list(questions)))
    rows = []
    for n, rep, drawn in draws if draws is not None else floor_draws(respondents, countries, sizes, repeats, seed):
        # equal weights: personas count once each, whatever their design weight
        dist, _ = human_distributions(drawn.with_columns(pl.lit(1.0).alias("weight")), None, items=items)
        per_country = _per_country_means(score_long(dist, hum, questions))
        rows += [{"n": n, "repeat": rep, "country": c, "mae": m, "wasserstein": w}
                 for c, m, w in per_country.iter_rows()]
    return pl.DataFrame(rows, schema=FLOOR_SCHEMA).sort(["n", "repeat", "country"])


def scaled_means(human: pl.DataFrame, countries: Sequence[str], questions: Sequence[str]) -> np.ndarray:
    """(countries, questions): each weighted human mean rescaled to [0, 1] by its scale;
    NaN where a country has no answers to a question."""
    codes = scale_codes(human)
    dense = _dense(human, {q: codes[q] for q in questions if q in codes}, countries)
    out = np.full((len(countries), len(questions)), np.nan)
    for j, q in enumerate(questions):
        if q not in dense:
            continue
        c = np.asarray(codes[q], dtype=np.float64)
        total = dense[q].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, j] = np.where(total > 0, (dense[q] @ c / total - c[0]) / (c[-1] - c[0]), np.nan)
    return out


def persona_information_floor(
    expected: Expectations, respondents: pl.DataFrame, human: pl.DataFrame,
    countries: Sequence[str], questions: Sequence[str], sizes: Sequence[int], repeats: int, seed: int,
    draws: Sequence[tuple[int, int, pl.DataFrame]] | None = None,
) -> pl.DataFrame:
    """MAE of a perfect simulator of N personas, per (n, repeat, country): the mean of
    the drawn personas' E[answer | persona] against the country's mean, / range,
    averaged over questions (the draws of :func:`actual_answer_floor`, or ``draws``).
    MAE only: the floor is on the mean."""
    col = {q: j for j, q in enumerate(expected.questions)}
    missing = [q for q in questions if q not in col]
    if missing:
        raise DataError(f"no persona expectations for {', '.join(missing)}; they were fitted on other questions")
    values = expected.values[:, [col[q] for q in questions]]
    row_of = {rid: i for i, rid in enumerate(expected.respondent_ids)}
    mu = scaled_means(human, countries, questions)
    rows = []
    for n, rep, drawn in draws if draws is not None else floor_draws(respondents, countries, sizes, repeats, seed):
        by_country = {str(c): list(ids) for c, ids in drawn.group_by("country").agg(pl.col("respondent_id")).iter_rows()}
        for ci, country in enumerate(countries):
            ids = by_country.get(country, [])
            idx = [row_of[r] for r in ids if r in row_of]
            if not idx:
                continue
            err = np.abs(np.nanmean(values[idx], axis=0) - mu[ci])
            if np.isfinite(err).any():
                rows.append({"n": n, "repeat": rep, "country": country, "mae": float(np.nanmean(err))})
    return pl.DataFrame(rows, schema=PERSONA_FLOOR_SCHEMA).sort(["n", "repeat", "country"])


def actual_answer_floor_normal(
    respondents: pl.DataFrame, human: pl.DataFrame, countries: Sequence[str], questions: Sequence[str], n: int,
) -> float:
    """The actual-answer floor's normal approximation: per (country, question)
    E|ybar_N - mu| ~ sqrt(2/pi) sigma / sqrt(N_q) / range, sigma the weighted SD of the
    answers, N_q = N x the share who answered, times the finite-population correction
    sqrt((M - N_q) / (M - 1)) of drawing without replacement from M answers; averaged
    over questions per country, then over countries (as the floor is)."""
    codes = scale_codes(human)
    per_country = []
    for country in countries:
        pool = respondents.filter(pl.col("country") == country)
        errs = []
        for q in questions:
            if q not in pool.columns or q not in codes:
                continue
            y = pool[q].cast(pl.Float64).to_numpy()
            w = pool["weight"].to_numpy().astype(np.float64)
            seen = ~np.isnan(y)
            m = int(seen.sum())
            if m < 2:
                continue
            c = np.asarray(codes[q], dtype=np.float64)
            yy, ww = (y[seen] - c[0]) / (c[-1] - c[0]), w[seen]
            sigma = math.sqrt(float(ww @ (yy - ww @ yy / ww.sum()) ** 2 / ww.sum()))
            n_q = min(float(n) * m / pool.height, float(m))
            fpc = math.sqrt(max(m - n_q, 0.0) / (m - 1))
            errs.append(math.sqrt(2.0 / math.pi) * sigma / math.sqrt(n_q) * fpc)
        if errs:
            per_country.append(float(np.mean(errs)))
    return float(np.mean(per_country)) if per_country else float("nan")


def human_sampling_noise(split: Mapping[str, float]) -> dict[str, float]:
    """Split-half MAE and Wasserstein (and their SDs) divided by
    :data:`SPLIT_HALF_FACTOR`: the error a perfect predictor of the population has
    against the full sample, the survey's own noise at its full size."""
    return {k: float(v) / SPLIT_HALF_FACTOR for k, v in split.items()
            if k in ("mae", "mae_sd", "wasserstein", "wasserstein_sd")}


def split_half(
    respondents: pl.DataFrame, human: pl.DataFrame, countries: Sequence[str],
    questions: Sequence[str], repeats: int, seed: int,
) -> pl.DataFrame:
    """Two random halves of each country's respondents (weighted) against each
    other: MAE and W1 per (repeat, country), averaged over questions."""
    items = scale_items(human, questions)
    pool = respondents.filter(pl.col("country").is_in(list(countries))).sort(["country", "respondent_id"])
    rng = np.random.default_rng(seed)
    rows = []
    for rep in range(repeats):
        half = np.zeros(pool.height, dtype=bool)
        for idx in pool.with_row_index("i").group_by("country", maintain_order=True).agg(pl.col("i"))["i"]:
            ids = np.asarray(idx.to_list())
            half[rng.permutation(ids)[: len(ids) // 2]] = True
        flag = pl.Series("half", half)
        a, _ = human_distributions(pool.filter(flag), None, items=items)
        b, _ = human_distributions(pool.filter(~flag), None, items=items)
        per_country = _per_country_means(score_long(a, b, questions))
        rows += [{"repeat": rep, "country": c, "mae": m, "wasserstein": w}
                 for c, m, w in per_country.iter_rows()]
    schema = {"repeat": pl.Int64, "country": pl.Utf8, "mae": pl.Float64, "wasserstein": pl.Float64}
    return pl.DataFrame(rows, schema=schema).sort(["repeat", "country"])


def spread(frame: pl.DataFrame, by: Sequence[str] = ()) -> pl.DataFrame:
    """Mean over countries per repeat, then mean, SD and 2.5/97.5% over repeats."""
    # sorted, and groups kept in order: float sums in a fixed order give byte-identical
    # outputs from run to run (DVC hashes them)
    cols = [c for c in ("mae", "wasserstein") if c in frame.columns]
    per_rep = (
        frame.sort([*by, "repeat", "country"])
        .group_by([*by, "repeat"], maintain_order=True)
        .agg(pl.col(c).mean() for c in cols)
    )
    aggs = []
    for col in cols:
        aggs += [
            pl.col(col).mean().alias(col), pl.col(col).std(ddof=1).fill_null(0.0).alias(f"{col}_sd"),
            pl.col(col).quantile(0.025, "linear").alias(f"{col}_lo"),
            pl.col(col).quantile(0.975, "linear").alias(f"{col}_hi"),
        ]
    if by:
        return per_rep.group_by(list(by), maintain_order=True).agg(aggs).sort(list(by))
    return per_rep.select(aggs)
