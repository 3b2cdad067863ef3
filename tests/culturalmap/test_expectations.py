"""Expected Inglehart-Welzel items from answer distributions (Figure 1's simulated positions)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from valuesim.culturalmap.expectations import (
    AIMS,
    DIRECT_ITEMS,
    expected_autonomy,
    expected_map_items,
    expected_postmaterialism,
    postmaterialist_value,
)
from valuesim.culturalmap.item_prompts import MAP_ANSWERS_SCHEMA
from valuesim.culturalmap.transform import fit
from valuesim.errors import DataError
from valuesim.survey.bank import QuestionBank
from valuesim.survey.derived import autonomy_index, postmaterialist_index
from valuesim.survey.readers import read_source

SOURCES = ("Q8", "Q14", "Q15", "Q17")


def test_expected_autonomy_by_hand() -> None:
    # P(mentioned): independence .7, determination .4, faith .2, obedience .5
    assert expected_autonomy({"Q8": 0.7, "Q14": 0.4, "Q15": 0.2, "Q17": 0.5}) == pytest.approx(0.4)
    assert expected_autonomy({"Q8": 1.0, "Q14": 1.0, "Q15": 0.0, "Q17": 0.0}) == 2.0
    assert expected_autonomy({"Q8": 0.0, "Q14": 0.0, "Q15": 1.0, "Q17": 1.0}) == -2.0


def test_expected_autonomy_is_exact_for_dependent_answers() -> None:
    """Linearity: the marginals give E[Y003] whatever the joint, here a random one
    over all 16 answer patterns, scored with the WVS definition itself."""
    rng = np.random.default_rng(3)
    patterns = list(itertools.product((1, 2), repeat=4))  # 1 = mentioned, 2 = not
    joint = rng.dirichlet(np.full(len(patterns), 0.5))
    frame = pl.DataFrame(patterns, schema=list(SOURCES), orient="row")
    y003 = frame.select(autonomy_index())["Y003"].to_numpy()
    mentioned = {q: float(sum(p for pat, p in zip(patterns, joint, strict=True) if pat[k] == 1))
                 for k, q in enumerate(SOURCES)}
    assert expected_autonomy(mentioned) == pytest.approx(float(joint @ y003), abs=1e-12)


def test_postmaterialist_value_is_the_wvs_definition() -> None:
    pairs = [(a, b) for a in AIMS for b in AIMS if a != b]
    frame = pl.DataFrame(pairs, schema=["Q154", "Q155"], orient="row")
    wvs = frame.select(postmaterialist_index())["Y002"].to_list()
    assert [postmaterialist_value(a, b) for a, b in pairs] == wvs


def test_expected_postmaterialism_is_the_chain_rule() -> None:
    rng = np.random.default_rng(7)
    pairs = [(a, b) for a in AIMS for b in AIMS if a != b]
    joint = dict(zip(pairs, rng.dirichlet(np.ones(len(pairs))), strict=True))
    first = {a: sum(p for (x, _), p in joint.items() if x == a) for a in AIMS}
    second = {a: {b: joint[(a, b)] / first[a] for b in AIMS if b != a} for a in AIMS}
    want = sum(p * postmaterialist_value(a, b) for (a, b), p in joint.items())
    assert expected_postmaterialism(first, second) == pytest.approx(want, abs=1e-12)
    # by hand: always order first, then prices -> 1; always say, then speech -> 3
    assert expected_postmaterialism({1: 1.0}, {1: {3: 1.0}}) == 1.0
    assert expected_postmaterialism({2: 0.5, 4: 0.5}, {2: {4: 1.0}, 4: {2: 1.0}}) == 3.0
    with pytest.raises(DataError, match=r"Q155 \| Q154=4"):
        expected_postmaterialism({1: 0.5, 4: 0.5}, {1: {3: 1.0}})


def _row(persona: str, country: str, question: str, codes: list[int], probs: list[float],
         given: int | None = None, flag: str = "") -> dict[str, object]:
    return {"persona_id": persona, "country": country, "question": question, "given": given,
            "codes": codes, "probs": probs, "coverage": 1.0, "estimator": "logprobs", "flag": flag}


def _full_persona(persona: str, country: str, direct: float, mentioned: float) -> list[dict[str, object]]:
    """Every map prompt of one persona: direct items one-hot on code ``direct`` (a
    two-point mix for short scales), sources mentioned with one probability, and
    first/second aims uniform."""
    rows = [_row(persona, country, q, [1, 2], [1 - direct, direct]) for q in DIRECT_ITEMS]
    rows += [_row(persona, country, q, [1, 2], [mentioned, 1 - mentioned]) for q in SOURCES]
    rows.append(_row(persona, country, "Q154", list(AIMS), [0.25] * 4))
    rows += [_row(persona, country, "Q155", [b for b in AIMS if b != a], [1 / 3] * 3, given=a) for a in AIMS]
    return rows


def test_expected_map_items_averages_personas_and_skips_flagged_answers() -> None:
    rows = _full_persona("A1", "AAA", direct=0.0, mentioned=0.5) + _full_persona("A2", "AAA", 1.0, 1.0)
    # persona A3: a flagged obedience answer drops its Y003 but not the other items
    a3 = _full_persona("A3", "AAA", 0.5, 0.0)
    a3 = [dict(r, flag="no admissible answer") if r["question"] == "Q17" else r for r in a3]
    got = expected_map_items(pl.DataFrame(rows + a3, schema=MAP_ANSWERS_SCHEMA))
    by_item = {i: (e, n) for _, i, e, n in got.iter_rows()}
    assert by_item["Q164"] == (pytest.approx((1.0 + 2.0 + 1.5) / 3), 3)
    assert by_item["Y003"] == (pytest.approx(0.0), 2)  # (0.5+0.5-0.5-0.5 + 1+1-1-1) / 2
    # uniform first choice, uniform second: 4 of 12 ordered pairs are pure -> 1/6 each at 1 and 3
    assert by_item["Y002"] == (pytest.approx(2.0), 3)
    assert set(got["country"]) == {"AAA"}


# ---- on real respondents: human distributions land on the human positions ----------

MAP_COUNTRIES = ("JPN", "DEU", "NGA", "ARG", "EGY", "NZL", "ROU", "PAK")


def _weighted_shares(frame: pl.DataFrame, item: str, codes: list[int]) -> list[float]:
    sub = frame.filter(pl.col(item).is_not_null())
    w = sub.group_by(item).agg(pl.col("weight").sum())
    total = float(w["weight"].sum())
    if total == 0:  # not asked in that country (Egypt: Q182)
        return [float("nan")] * len(codes)
    got = dict(w.iter_rows())
    return [float(got.get(c, 0.0)) / total for c in codes]


def _human_map_answers(respondents: pl.DataFrame, bank: QuestionBank) -> pl.DataFrame:
    """The map prompts' answer tables as a country's humans would fill them:
    weighted shares (each index's sources over the respondents the index is defined for)."""
    rows = []
    for (country,), grp in respondents.group_by(["country"]):
        for q in DIRECT_ITEMS:
            codes = bank.item(q).codes
            rows.append(_row("h", country, q, codes, _weighted_shares(grp, q, codes)))
        complete = grp.filter(pl.all_horizontal([pl.col(q).is_not_null() for q in SOURCES]))
        rows += [_row("h", country, q, [1, 2], _weighted_shares(complete, q, [1, 2])) for q in SOURCES]
        both = grp.filter(pl.col("Q154").is_not_null() & pl.col("Q155").is_not_null()
                          & (pl.col("Q154") != pl.col("Q155")))
        rows.append(_row("h", country, "Q154", list(AIMS), _weighted_shares(both, "Q154", list(AIMS))))
        for a in AIMS:
            rest = [b for b in AIMS if b != a]
            after = both.filter(pl.col("Q154") == a)
            if after.height:
                rows.append(_row("h", country, "Q155", rest, _weighted_shares(after, "Q155", rest), given=a))
    return pl.DataFrame(rows, schema=MAP_ANSWERS_SCHEMA)


@pytest.fixture(scope="module")
def real(wvs_dir: Path, bank: QuestionBank, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    d = tmp_path_factory.mktemp("wvs_map")
    for c in MAP_COUNTRIES:
        (d / f"{c}.csv.gz").symlink_to(wvs_dir / f"{c}.csv.gz")
    return read_source(d, bank).respondents


def test_human_distributions_project_onto_the_human_positions(real: pl.DataFrame, bank: QuestionBank) -> None:
    transform = fit(real, bank)
    expected = expected_map_items(_human_map_answers(real, bank))
    for (country,), grp in expected.group_by(["country"]):
        assert grp.height == 10, country  # every map item is rebuilt
        got = transform.project_expected(dict(grp.select("item", "expected").iter_rows()))
        want = transform.country_positions[str(country)]
        assert None not in want
        assert got == pytest.approx(tuple(want), abs=1e-9), country
