"""Figure 1B's like-for-like reference: human respondents drawn item by item, as the
model respondents are, and what independence alone does to their spread."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from valuesim.culturalmap.expectations import postmaterialist_value
from valuesim.culturalmap.sampled_respondents import (
    MAP_ITEMS,
    human_positions,
    independence_bias,
    independent_human_items,
    independent_human_positions,
)
from valuesim.culturalmap.transform import DimensionFit, IWTransform
from valuesim.report.captions import sampled_map

DIRECT = ("Q164", "Q184", "Q254", "Q45", "Q182", "Q209", "Q57", "Q46")


def _transform() -> IWTransform:
    """Zero means, unit scales, positive weights: a position is sum(weight x item)."""
    w = [0.1, 0.2, 0.3, 0.4, 0.5]
    dims = {
        name: DimensionFit(name=name, items=list(items), means=[0.0] * 5, scales=[1.0] * 5, weights=w,
                           loadings=w, correlation=np.eye(5).tolist(), explained=0.5, countries=[])
        for name, items in (("secular", ("Q164", "Y003", "Q184", "Q254", "Q45")),
                            ("self_expression", ("Y002", "Q182", "Q209", "Q57", "Q46")))
    }
    return IWTransform(dimensions=dims, min_items=3)


def _population(n: int, loading: float, seed: int = 0, country: str = "AAA") -> pl.DataFrame:
    """Respondents whose map items all follow one latent trait (``loading`` 0: independent
    items), with survey weights, the source items of both indexes and the indexes
    built from them as the WVS builds them."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)

    def noisy() -> np.ndarray:
        return loading * z + rng.normal(size=n)

    cols: dict[str, np.ndarray] = {q: np.clip(np.round(2.5 + noisy()), 1, 4).astype(np.int64) for q in DIRECT}
    # mentioned (1) or not (2): independence and determination go with the trait,
    # faith and obedience against it, so the autonomy index rises with it
    for q, sign in (("Q8", 1), ("Q14", 1), ("Q15", -1), ("Q17", -1)):
        cols[q] = np.where(sign * noisy() > 0, 1, 2)
    cols["Y003"] = (cols["Q15"] + cols["Q17"]) - (cols["Q8"] + cols["Q14"])
    # a respondent's two aims: both post-materialist (2, 4) or both materialist (1, 3)
    post = noisy() > 0
    first_post = rng.random(n) < 0.5
    cols["Q154"] = np.where(post, np.where(first_post, 2, 4), np.where(first_post, 1, 3))
    cols["Q155"] = np.where(post, np.where(first_post, 4, 2), np.where(first_post, 3, 1))
    cols["Y002"] = np.array([postmaterialist_value(a, b) for a, b in zip(cols["Q154"], cols["Q155"], strict=True)])
    return pl.DataFrame({"country": [country] * n, "respondent_id": np.arange(n),
                         "weight": rng.uniform(0.5, 1.5, n), **cols})


def _bias(respondents: pl.DataFrame, n: int = 20_000) -> pl.DataFrame:
    t = _transform()
    joint = human_positions(respondents, t, ["AAA"])
    independent = independent_human_positions(respondents, t, ["AAA"], seed=0, n=n)
    return independence_bias(joint, independent)


def test_drawing_correlated_items_independently_shrinks_the_spread_and_the_correlation() -> None:
    bias = _bias(_population(20_000, loading=1.0)).row(0, named=True)
    for axis in ("secular", "self_expression"):
        ratio = bias[f"sd_{axis}_independent"] / bias[f"sd_{axis}_joint"]
        assert ratio < 0.85, (axis, ratio)
    assert bias["corr_joint"] > 0.5
    # 20,000 independent draws: the correlation's SE is ~0.007
    assert abs(bias["corr_independent"]) < 0.05


def test_independent_items_keep_their_spread() -> None:
    # the null twin: items that do not co-vary lose nothing by being drawn independently
    bias = _bias(_population(20_000, loading=0.0)).row(0, named=True)
    for axis in ("secular", "self_expression"):
        assert bias[f"sd_{axis}_independent"] / bias[f"sd_{axis}_joint"] == pytest.approx(1.0, abs=0.04)
    assert abs(bias["corr_joint"]) < 0.05


def test_each_item_keeps_its_weighted_marginal_and_its_missing_share() -> None:
    people = _population(5_000, loading=1.0)
    people = people.with_columns(
        pl.when(pl.col("respondent_id") % 10 == 0).then(None).otherwise(pl.col("Q164")).alias("Q164"))
    n = 40_000
    drawn = independent_human_items(people, "AAA", n, np.random.default_rng(3))
    assert drawn.height == n
    assert set(MAP_ITEMS) <= set(drawn.columns)
    w = people["weight"].to_numpy()
    for q in DIRECT:
        for code in (1, 2, 3, 4):
            p = float(w[(people[q] == code).fill_null(False).to_numpy()].sum() / w.sum())
            got = float((drawn[q] == code).fill_null(False).mean())
            assert abs(got - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-9, (q, code, got, p)
    missing = float(w[people["Q164"].is_null().to_numpy()].sum() / w.sum())
    assert drawn["Q164"].null_count() / n == pytest.approx(missing, abs=5 * np.sqrt(missing * (1 - missing) / n))


def test_the_indexes_are_built_like_the_model_respondents() -> None:
    people = _population(5_000, loading=1.0)
    drawn = independent_human_items(people, "AAA", 40_000, np.random.default_rng(4))
    # one respondent's pair of aims: never a mix, as the source pairs never are
    assert set(drawn["Y002"].unique().to_list()) <= {1, 3}
    # the autonomy index from four independent draws: its variance is the sum of the
    # four mentions' variances (the humans' own index co-varies and spreads more)
    w = people["weight"].to_numpy()
    p = {q: float(w[(people[q] == 1).to_numpy()].sum() / w.sum()) for q in ("Q8", "Q14", "Q15", "Q17")}
    var = sum(x * (1 - x) for x in p.values())
    assert float(drawn["Y003"].var()) == pytest.approx(var, rel=0.05)
    assert float(people["Y003"].var()) > 1.5 * var
    # without the source items each index comes from its own marginal
    bare = people.drop("Q8", "Q14", "Q15", "Q17", "Q154", "Q155").with_columns(pl.lit(2).alias("Y002"))
    drawn_bare = independent_human_items(bare, "AAA", 1_000, np.random.default_rng(5))
    assert drawn_bare["Y002"].unique().to_list() == [2]
    assert independent_human_items(people, "ZZZ", 10, np.random.default_rng(0)).is_empty()


def test_the_draws_are_seeded() -> None:
    people = _population(500, loading=1.0)
    t = _transform()
    one = independent_human_positions(people, t, ["AAA"], seed=1, n=300)
    assert one.equals(independent_human_positions(people, t, ["AAA"], seed=1, n=300))
    assert not one.equals(independent_human_positions(people, t, ["AAA"], seed=2, n=300))
    assert one["weight"].to_list() == [1.0] * one.height


def _sample(sd: float, n: int = 4_000) -> pl.DataFrame:
    rng = np.random.default_rng(7)
    return pl.DataFrame({"model": ["m"] * n, "method": ["generic"] * n, "country": ["AAA"] * n,
                         "secular": rng.normal(0, sd, n), "self_expression": rng.normal(0, sd, n)})


def test_the_caption_states_the_direction_and_the_run_s_numbers() -> None:
    bias = _bias(_population(20_000, loading=1.0))
    row = bias.row(0, named=True)
    text = sampled_map(_sample(1.0), seed=0, bias=bias)
    assert "narrows the cloud and removes the correlation" in text
    assert "makes the model look narrower than it is" in text
    assert "dashed contours" in text
    ratio = row["sd_secular_independent"] / row["sd_secular_joint"]
    assert f"secular {ratio:.2f}" in text
    assert f"from {row['corr_joint']:.2f} to" in text
    # the model respondents against the humans drawn the same way
    sample = _sample(1.0)
    ratios = [float(sample[a].std(ddof=0)) / row[f"sd_{a}_independent"] for a in ("secular", "self_expression")]
    assert f"SD is {min(ratios):.2f}-{max(ratios):.2f} times the item-by-item humans'" in text


def test_without_item_by_item_draws_the_caption_still_states_the_direction() -> None:
    text = sampled_map(_sample(1.0), seed=0, bias=None)
    assert "makes the model look narrower than it is" in text
    assert "re-run the evaluate stage" in text
