"""culturalmap.positions: simulated runs placed on the map from their map-item answers."""

from __future__ import annotations

import polars as pl
import pytest

from tests.fixtures.iw_population import make_population
from valuesim.culturalmap.expectations import AIMS, DIRECT_ITEMS, expected_map_items
from valuesim.culturalmap.item_prompts import MAP_ANSWERS_SCHEMA
from valuesim.culturalmap.positions import MAP_POSITION_SCHEMA, map_positions
from valuesim.culturalmap.transform import IWTransform, fit
from valuesim.survey.bank import QuestionBank

SOURCES = ("Q8", "Q14", "Q15", "Q17")


def _row(persona: str, country: str, question: str, codes: list[int], probs: list[float],
         given: int | None = None, flag: str = "") -> dict[str, object]:
    return {"persona_id": persona, "country": country, "question": question, "given": given,
            "codes": codes, "probs": probs, "coverage": 1.0, "estimator": "logprobs", "flag": flag}


def _answers(country: str, direct: float, flag: str = "") -> list[dict[str, object]]:
    """Every map prompt of one persona; ``flag`` marks every answer unusable."""
    rows = [_row("p", country, q, [1, 2], [1 - direct, direct], flag=flag) for q in DIRECT_ITEMS]
    rows += [_row("p", country, q, [1, 2], [0.5, 0.5], flag=flag) for q in SOURCES]
    rows.append(_row("p", country, "Q154", list(AIMS), [0.25] * 4, flag=flag))
    rows += [_row("p", country, "Q155", [b for b in AIMS if b != a], [1 / 3] * 3, given=a, flag=flag)
             for a in AIMS]
    return rows


@pytest.fixture(scope="module")
def transform(bank: QuestionBank) -> IWTransform:
    return fit(make_population(bank, n_countries=10, n=80, seed=1), bank)


def test_each_run_and_country_is_the_projection_of_its_expected_items(transform: IWTransform) -> None:
    generic = pl.DataFrame(_answers("BBB", 0.2) + _answers("AAA", 0.9), schema=MAP_ANSWERS_SCHEMA)
    value = pl.DataFrame(_answers("AAA", 0.5), schema=MAP_ANSWERS_SCHEMA)
    got = map_positions({("m", "value"): value, ("m", "generic"): generic}, transform)
    assert got.schema == pl.Schema(MAP_POSITION_SCHEMA)
    assert got.select("model", "method", "country").rows() == [
        ("m", "generic", "AAA"), ("m", "generic", "BBB"), ("m", "value", "AAA")]  # sorted
    expected = expected_map_items(generic).filter(pl.col("country") == "BBB")
    want = transform.project_expected(dict(expected.select("item", "expected").iter_rows()))
    row = got.filter((pl.col("method") == "generic") & (pl.col("country") == "BBB")).row(0, named=True)
    assert (row["secular"], row["self_expression"]) == pytest.approx(want)


def test_no_map_or_no_usable_answers_place_nothing(transform: IWTransform) -> None:
    answers = pl.DataFrame(_answers("AAA", 0.5) + _answers("BBB", 0.5, flag="no admissible answer"),
                           schema=MAP_ANSWERS_SCHEMA)
    empty = map_positions({("m", "generic"): answers}, None)
    assert empty.is_empty()
    assert empty.schema == pl.Schema(MAP_POSITION_SCHEMA)
    got = map_positions({("m", "generic"): answers}, transform)
    assert got["country"].to_list() == ["AAA"]  # BBB: every answer flagged, too few items
    assert map_positions({}, transform).is_empty()
