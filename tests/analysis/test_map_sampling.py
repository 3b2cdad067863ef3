"""Figure 1B's sampled model respondents: per-item frequencies, the two indexes,
seeded determinism, projection with the map's transform, and the panel countries."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import polars as pl
import pytest

from valuesim.culturalmap.expectations import postmaterialist_value
from valuesim.culturalmap.item_prompts import MAP_ANSWERS_SCHEMA
from valuesim.culturalmap.sampled_respondents import (
    MAP_ITEMS,
    human_positions,
    sample_items,
    sampled_positions,
    spread_countries,
)
from valuesim.culturalmap.transform import DimensionFit, IWTransform

DIRECT = ("Q164", "Q184", "Q254", "Q45", "Q182", "Q209", "Q57", "Q46")
AUTONOMY = ("Q8", "Q14", "Q15", "Q17")


def _persona(rng: np.random.Generator, persona: str, country: str) -> list[dict]:
    rows = []

    def add(q: str, codes: list[int], probs: np.ndarray, given: int | None = None, flag: str = "") -> None:
        rows.append({"persona_id": persona, "country": country, "question": q, "given": given,
                     "codes": codes, "probs": probs.tolist(), "coverage": 1.0, "estimator": "logprobs",
                     "answer_rule": "answer_start", "flag": flag})
    for q in DIRECT:
        add(q, [1, 2, 3, 4], rng.dirichlet(np.ones(4)))
    for q in AUTONOMY:
        m = rng.uniform(0.1, 0.9)
        add(q, [1, 2], np.array([m, 1 - m]))
    add("Q154", [1, 2, 3, 4], rng.dirichlet(np.ones(4)))
    for a in (1, 2, 3, 4):
        add("Q155", [b for b in (1, 2, 3, 4) if b != a], rng.dirichlet(np.ones(3)), given=a)
    return rows


def _answers(countries: tuple[str, ...] = ("AAA",), personas: int = 2, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [r for c in countries for p in range(personas) for r in _persona(rng, f"{c}:{p}", c)]
    return pl.DataFrame(rows, schema=MAP_ANSWERS_SCHEMA)


def _dist(answers: pl.DataFrame, persona: str, q: str, given: int | None = None) -> dict[int, float]:
    row = answers.filter((pl.col("persona_id") == persona) & (pl.col("question") == q)
                         & (pl.col("given").is_null() if given is None else pl.col("given") == given))
    return dict(zip(row["codes"][0], row["probs"][0], strict=True))


def _expected_frequencies(answers: pl.DataFrame, personas: list[str]) -> dict[str, dict[int, float]]:
    """Each item's answer distribution under 'draw a persona, then each item
    independently', enumerated (no sampling) from the persona rows."""
    out: dict[str, dict[int, float]] = {}
    w = 1 / len(personas)
    for p in personas:
        for q in DIRECT:
            for code, pr in _dist(answers, p, q).items():
                out.setdefault(q, {}).setdefault(code, 0.0)
                out[q][code] += w * pr
        ment = {q: _dist(answers, p, q)[1] for q in AUTONOMY}
        for pat in itertools.product((True, False), repeat=4):
            pr = np.prod([ment[q] if m else 1 - ment[q] for q, m in zip(AUTONOMY, pat, strict=True)])
            y = pat[0] + pat[1] - pat[2] - pat[3]  # Q8 + Q14 mentioned, minus Q15 + Q17
            out.setdefault("Y003", {}).setdefault(y, 0.0)
            out["Y003"][y] += w * pr
        for a, pa in _dist(answers, p, "Q154").items():
            for b, pb in _dist(answers, p, "Q155", a).items():
                y = postmaterialist_value(a, b)
                out.setdefault("Y002", {}).setdefault(y, 0.0)
                out["Y002"][y] += w * pa * pb
    return out


def test_sampled_frequencies_match_the_predicted_distributions_within_sampling_error() -> None:
    answers = _answers(personas=3)
    n = 20_000
    sample = sample_items(answers, "AAA", n, np.random.default_rng(1))
    assert sample.height == n
    assert set(MAP_ITEMS) <= set(sample.columns)
    expected = _expected_frequencies(answers, ["AAA:0", "AAA:1", "AAA:2"])
    assert set(expected) == set(MAP_ITEMS)
    for item, dist in expected.items():
        counts = sample[item].value_counts()
        seen = dict(zip(counts[item].to_list(), counts["count"].to_list(), strict=True))
        assert set(seen) <= set(dist), item
        for code, p in dist.items():
            se = np.sqrt(p * (1 - p) / n)
            # 5 SE: over ~40 (item, code) checks a false alarm is ~1e-5
            assert abs(seen.get(code, 0) / n - p) < 5 * se + 1e-9, (item, code, seen.get(code, 0) / n, p)


def test_sampling_is_seeded_and_independent_of_what_else_ran() -> None:
    answers = _answers(("AAA", "BBB"))
    t = _transform()
    one = sampled_positions({("m", "generic"): answers}, t, ["AAA", "BBB"], seed=3, n=500)
    again = sampled_positions({("m", "generic"): answers}, t, ["AAA", "BBB"], seed=3, n=500)
    assert one.equals(again)
    # another run beside it and a different country list leave this stream unchanged
    more = sampled_positions({("a", "x"): answers, ("m", "generic"): answers}, t, ["BBB"], seed=3, n=500)
    assert more.filter(pl.col("model") == "m").equals(one.filter(pl.col("country") == "BBB"))
    other = sampled_positions({("m", "generic"): answers}, t, ["AAA", "BBB"], seed=4, n=500)
    assert not other.equals(one)


def _transform() -> IWTransform:
    """Zero means, unit scales, known weights: a position is sum(weight x item)."""
    w = [0.1, 0.2, 0.3, 0.4, 0.5]
    dims = {
        name: DimensionFit(name=name, items=list(items), means=[0.0] * 5, scales=[1.0] * 5, weights=w,
                           loadings=w, correlation=np.eye(5).tolist(), explained=0.5, countries=[])
        for name, items in (("secular", ("Q164", "Y003", "Q184", "Q254", "Q45")),
                            ("self_expression", ("Y002", "Q182", "Q209", "Q57", "Q46")))
    }
    return IWTransform(dimensions=dims, min_items=3)


def test_sampled_respondents_are_placed_with_the_map_transform() -> None:
    answers = _answers(("AAA",))
    t = _transform()
    placed = sampled_positions({("m", "country"): answers}, t, ["AAA"], seed=0, n=50)
    items = sample_items(answers, "AAA", 50, np.random.default_rng(
        [0, *(zlib.crc32(k.encode()) for k in ("m", "country", "AAA"))]))
    x = items.select([pl.col(i).cast(pl.Float64) for i in t.items]).to_numpy()
    assert placed["secular"].to_numpy() == pytest.approx(x[:, :5] @ np.array(t.dimensions["secular"].weights))
    assert placed["self_expression"].to_numpy() == pytest.approx(
        x[:, 5:] @ np.array(t.dimensions["self_expression"].weights))
    # humans go through the same transform
    humans = items.with_columns(pl.Series("weight", np.full(50, 2.0)))
    hp = human_positions(humans, t, ["AAA"])
    assert hp["secular"].to_numpy() == pytest.approx(placed["secular"].to_numpy())
    assert hp["weight"].to_list() == [2.0] * 50


def test_flagged_answers_are_not_sampled() -> None:
    answers = _answers(("AAA",), personas=1).with_columns(
        pl.when(pl.col("question") == "Q164").then(pl.lit("no admissible answer")).otherwise(pl.col("flag"))
        .alias("flag"))
    sample = sample_items(answers, "AAA", 100, np.random.default_rng(0))
    assert sample["Q164"].null_count() == 100
    assert sample["Q184"].null_count() == 0
    assert sample_items(answers, "ZZZ", 10, np.random.default_rng(0)).is_empty()


def test_panel_countries_are_spread_over_the_map() -> None:
    pos = pl.DataFrame({
        "country": ["MID", "NE", "NW", "SE", "SW", "NEAR"],
        "self_expression": [0.0, 2.0, -2.0, 2.1, -2.0, 0.1],
        "secular": [0.0, 2.0, 2.0, -2.0, -2.2, 0.1],
    })
    assert spread_countries(pos, pos["country"].to_list()) == ["NE", "NW", "SE", "SW"]
    assert spread_countries(pos, ["MID", "NE"]) == ["MID", "NE"]
    # the one farthest from the centroid (NW), then the one farthest from it (NE)
    assert spread_countries(pos, ["NE", "NW", "MID", "NEAR"], k=2) == ["NE", "NW"]
