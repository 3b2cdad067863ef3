"""Sampled model respondents on the cultural map (paper Figure 1B).

The model gives, per persona (or country prompt), a *marginal* distribution for each
map item, not joint answers. A sampled respondent is therefore built by drawing one
persona of the country (all personas equally likely, as in
:func:`valuesim.culturalmap.expectations.expected_map_items`) and then one answer per
item from that persona's distribution, independently across items. The two indexes
are rebuilt as the WVS builds them: the autonomy index from four independent draws of
its source items, the post-materialist index from the first choice and then the second
choice *given* the first (the model's own sequential answers, so that pair is joint).
Independence across items makes the cloud of sampled respondents an illustration of
the spread the marginals imply, not a claim about how the model's answers co-vary.

Each respondent is then projected with the map's own transform
(:meth:`IWTransform.score`), exactly as the human respondents are.

Independence is not neutral: the map's axes are weighted sums of items that co-vary
within a country, so drawing them independently shrinks the spread of the positions
and removes the correlation between the two axes. The like-for-like human reference
is therefore the human respondents drawn the same way
(:func:`independent_human_positions`: each item from its weighted marginal in the
country, independently across items, the autonomy index from its four source items
drawn independently, the post-materialist index from one respondent's pair of
choices); :func:`independence_bias` measures how much independence alone changes
the humans' spread and correlation.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from valuesim.culturalmap.expectations import (
    AIMS,
    AUTONOMY_MINUS,
    AUTONOMY_PLUS,
    DIRECT_ITEMS,
    FIRST_AIM,
    MENTIONED,
    SECOND_AIM,
    postmaterialist_value,
)
from valuesim.culturalmap.transform import IWTransform

N_SAMPLED = 2000  # the paper's Figure 1B count per prompt variant
N_PANELS = 4  # the paper's four countries
MAP_ITEMS: tuple[str, ...] = (*DIRECT_ITEMS, "Y003", "Y002")
POSITION_SCHEMA = {"model": pl.Utf8, "method": pl.Utf8, "country": pl.Utf8,
                   "secular": pl.Float64, "self_expression": pl.Float64}
HUMAN_SCHEMA = {"country": pl.Utf8, "weight": pl.Float64,
                "secular": pl.Float64, "self_expression": pl.Float64}


def spread_countries(positions: pl.DataFrame, candidates: Sequence[str], k: int = N_PANELS) -> list[str]:
    """``k`` of ``candidates`` spread over the map: farthest-point selection, starting
    from the country farthest from the candidates' centroid (deterministic; ties by name).
    Returned in name order; fewer when fewer candidates have a position."""
    pos = positions.filter(pl.col("country").is_in(list(candidates))).sort("country")
    if pos.height <= k:
        return pos["country"].to_list()
    names = pos["country"].to_list()
    xy = pos.select("self_expression", "secular").to_numpy()
    chosen = [int(np.argmax(np.linalg.norm(xy - xy.mean(axis=0), axis=1)))]
    while len(chosen) < k:
        dist = np.min(np.linalg.norm(xy[:, None, :] - xy[chosen][None, :, :], axis=2), axis=1)
        dist[chosen] = -1.0
        chosen.append(int(np.argmax(dist)))
    return sorted(names[i] for i in chosen)


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A stream per (model, method, country): the same draws whatever else ran."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def _draw(rng: np.random.Generator, codes: Sequence[int], probs: Sequence[float], n: int) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    return rng.choice(np.asarray(codes, dtype=np.int64), size=n, p=p / p.sum())


def _persona_sample(rows: pl.DataFrame, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` respondents of one persona: item -> codes (float, NaN where not answerable)."""
    by_q = {(q, g): (c, p) for q, g, c, p in rows.select("question", "given", "codes", "probs").iter_rows()}
    out = {i: np.full(n, np.nan) for i in MAP_ITEMS}
    for q in DIRECT_ITEMS:  # in a fixed order, so the draws are reproducible
        if (q, None) in by_q:
            out[q] = _draw(rng, *by_q[(q, None)], n).astype(np.float64)
    sources = (*AUTONOMY_PLUS, *AUTONOMY_MINUS)
    if all((q, None) in by_q for q in sources):
        mentioned = {q: (_draw(rng, *by_q[(q, None)], n) == MENTIONED).astype(np.int64) for q in sources}
        out["Y003"] = (sum(mentioned[q] for q in AUTONOMY_PLUS)
                       - sum(mentioned[q] for q in AUTONOMY_MINUS)).astype(np.float64)
    if (FIRST_AIM, None) in by_q and all((SECOND_AIM, a) in by_q for a in AIMS):
        first = _draw(rng, *by_q[(FIRST_AIM, None)], n)
        y = np.empty(n)
        for a in AIMS:
            hit = first == a
            second = _draw(rng, *by_q[(SECOND_AIM, a)], int(hit.sum()))
            y[hit] = [postmaterialist_value(a, int(b)) for b in second]
        out["Y002"] = y
    return out


def sample_items(map_answers: pl.DataFrame, country: str, n: int, rng: np.random.Generator) -> pl.DataFrame:
    """``n`` sampled respondents of ``country``: country, respondent_id, weight (1) and
    the ten map items (null where the persona's answer is flagged or missing)."""
    usable = map_answers.filter((pl.col("flag") == "") & (pl.col("country") == country))
    personas = sorted(set(usable["persona_id"].to_list()))
    if not personas:
        return pl.DataFrame()
    which = rng.integers(len(personas), size=n)
    items = {i: np.full(n, np.nan) for i in MAP_ITEMS}
    for k, persona in enumerate(personas):
        rows = np.flatnonzero(which == k)
        if rows.size == 0:
            continue
        drawn = _persona_sample(usable.filter(pl.col("persona_id") == persona), rows.size, rng)
        for i in MAP_ITEMS:
            items[i][rows] = drawn[i]
    return pl.DataFrame({
        "country": [country] * n, "respondent_id": np.arange(n, dtype=np.int64),
        "weight": np.ones(n),
        **{i: pl.Series(i, v).fill_nan(None).cast(pl.Int64) for i, v in items.items()},
    })


def sampled_positions(
    map_answers: Mapping[tuple[str, str], pl.DataFrame], transform: IWTransform,
    countries: Sequence[str], seed: int, n: int = N_SAMPLED,
) -> pl.DataFrame:
    """model, method, country, secular, self_expression: ``n`` sampled respondents per
    (model, method, country) that has usable map answers, projected like humans.
    Respondents without enough answered items for an axis (flagged answers) are dropped."""
    frames = []
    for (model, method), answers in sorted(map_answers.items()):
        for country in countries:
            sample = sample_items(answers, country, n, _rng(seed, model, method, country))
            if sample.is_empty():
                continue
            scored = transform.score(sample).drop_nulls(["secular", "self_expression"])
            frames.append(scored.select(
                pl.lit(model).alias("model"), pl.lit(method).alias("method"), "country",
                "secular", "self_expression",
            ))
    return pl.concat(frames).cast(POSITION_SCHEMA) if frames else pl.DataFrame(schema=POSITION_SCHEMA)  # type: ignore[arg-type]


def human_positions(respondents: pl.DataFrame, transform: IWTransform, countries: Sequence[str]) -> pl.DataFrame:
    """country, weight, secular, self_expression of every scored human respondent of
    ``countries`` (the density Figure 1B draws the samples over)."""
    rows = respondents.filter(pl.col("country").is_in(list(countries)))
    if rows.is_empty():
        return pl.DataFrame(schema=HUMAN_SCHEMA)
    scored = transform.score(rows).drop_nulls(["secular", "self_expression"])
    return scored.select("country", pl.col("weight").cast(pl.Float64), "secular",
                         "self_expression").sort("country", maintain_order=True)


def _weighted_spread(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Weighted SD of ``x`` and of ``y`` and their weighted correlation (NaN when undefined)."""
    if len(x) < 2 or w.sum() <= 0:
        return float("nan"), float("nan"), float("nan")
    p = w / w.sum()
    dx, dy = x - p @ x, y - p @ y
    vx, vy, cxy = p @ (dx * dx), p @ (dy * dy), p @ (dx * dy)
    corr = cxy / np.sqrt(vx * vy) if vx > 0 and vy > 0 else float("nan")
    return float(np.sqrt(vx)), float(np.sqrt(vy)), float(corr)


def independent_human_items(
    respondents: pl.DataFrame, country: str, n: int, rng: np.random.Generator
) -> pl.DataFrame:
    """``n`` human respondents of ``country`` drawn item by item: each map item's answer
    is a respondent's answer to it, that respondent drawn anew for every item (with
    probability proportional to the survey weight), so each item keeps its weighted
    marginal and the items are independent, as in :func:`sample_items`. When the
    source items are there, the autonomy index is rebuilt from four independent
    draws of Q8, Q14, Q15 and Q17 and the post-materialist index from one
    respondent's (Q154, Q155) pair, exactly as the model respondents are built;
    otherwise each index is drawn from its own marginal. Missing answers are drawn
    as missing, with their share."""
    rows = respondents.filter(pl.col("country") == country)
    if rows.is_empty():
        return pl.DataFrame()
    w = rows["weight"].cast(pl.Float64).to_numpy()
    p = w / w.sum()

    def draw(item: str) -> np.ndarray:
        values = rows[item].cast(pl.Float64).fill_null(np.nan).to_numpy()
        return values[rng.choice(len(values), size=n, p=p)]

    items = {q: draw(q) for q in DIRECT_ITEMS}
    sources = (*AUTONOMY_PLUS, *AUTONOMY_MINUS)
    if set(sources) <= set(rows.columns):
        drawn = {q: draw(q) for q in sources}
        mentioned = {q: (v == MENTIONED).astype(np.float64) for q, v in drawn.items()}
        y003 = sum(mentioned[q] for q in AUTONOMY_PLUS) - sum(mentioned[q] for q in AUTONOMY_MINUS)
        items["Y003"] = np.where(np.isnan(np.vstack(list(drawn.values()))).any(axis=0), np.nan, y003)
    else:
        items["Y003"] = draw("Y003")
    if {FIRST_AIM, SECOND_AIM} <= set(rows.columns):
        pick = rng.choice(rows.height, size=n, p=p)
        pairs = rows.select(FIRST_AIM, SECOND_AIM)[pick].to_numpy().astype(np.float64)
        items["Y002"] = np.array([
            np.nan if np.isnan(a) or np.isnan(b) else postmaterialist_value(int(a), int(b)) for a, b in pairs
        ])
    else:
        items["Y002"] = draw("Y002")
    return pl.DataFrame({
        "country": [country] * n, "respondent_id": np.arange(n, dtype=np.int64), "weight": np.ones(n),
        **{i: pl.Series(i, items[i]).fill_nan(None).cast(pl.Int64) for i in MAP_ITEMS},
    })


def independent_human_positions(
    respondents: pl.DataFrame, transform: IWTransform, countries: Sequence[str], seed: int,
    n: int = N_SAMPLED,
) -> pl.DataFrame:
    """country, weight (1), secular, self_expression of ``n`` human respondents per
    country drawn item by item (:func:`independent_human_items`), projected like the
    model respondents: Figure 1B's like-for-like reference for them."""
    frames = []
    for country in countries:
        drawn = independent_human_items(respondents, country, n, _rng(seed, "humans, item by item", country))
        if drawn.is_empty():
            continue
        scored = transform.score(drawn).drop_nulls(["secular", "self_expression"])
        frames.append(scored.select("country", "weight", "secular", "self_expression"))
    return pl.concat(frames).cast(HUMAN_SCHEMA) if frames else pl.DataFrame(schema=HUMAN_SCHEMA)  # type: ignore[arg-type]


BIAS_SCHEMA = {"country": pl.Utf8, "sd_secular_joint": pl.Float64, "sd_secular_independent": pl.Float64,
               "sd_self_expression_joint": pl.Float64, "sd_self_expression_independent": pl.Float64,
               "corr_joint": pl.Float64, "corr_independent": pl.Float64}


def independence_bias(humans: pl.DataFrame, independent: pl.DataFrame) -> pl.DataFrame:
    """Per country: the (weighted) SD of each axis and the correlation between the axes,
    for the human respondents as they answered (``humans``, joint) and drawn item by
    item (``independent``). The SD ratio independent / joint is what independence
    alone does to the spread; the model respondents of Figure 1B are drawn the same
    way as ``independent``."""
    rows = []
    for country in sorted(set(humans["country"].to_list()) & set(independent["country"].to_list())):
        stats = []
        for frame in (humans, independent):
            sub = frame.filter(pl.col("country") == country)
            stats.append(_weighted_spread(sub["secular"].to_numpy(), sub["self_expression"].to_numpy(),
                                          sub["weight"].cast(pl.Float64).to_numpy()))
        (sj, ej, cj), (si, ei, ci) = stats
        rows.append((country, sj, si, ej, ei, cj, ci))
    return pl.DataFrame(rows, schema=BIAS_SCHEMA, orient="row")


def spread_by_group(sample: pl.DataFrame) -> pl.DataFrame:
    """model, method, country, sd_secular, sd_self_expression of sampled model
    respondents (equal weights)."""
    rows = []
    for (model, method, country), sub in sorted(sample.group_by(["model", "method", "country"]),
                                                key=lambda kv: tuple(str(k) for k in kv[0])):
        sd_s, sd_e, _ = _weighted_spread(sub["secular"].to_numpy(), sub["self_expression"].to_numpy(),
                                         np.ones(sub.height))
        rows.append((model, method, country, sd_s, sd_e))
    return pl.DataFrame(rows, schema={"model": pl.Utf8, "method": pl.Utf8, "country": pl.Utf8,
                                      "sd_secular": pl.Float64, "sd_self_expression": pl.Float64},
                        orient="row")
