"""Map-item prompts: which methods ask them and how the second aim follows the first."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from valuesim.culturalmap.expectations import AIMS, DIRECT_ITEMS
from valuesim.culturalmap.item_prompts import map_answers_frame, plan_map_prompts
from valuesim.llm.types import AnswerDistribution
from valuesim.methods import METHOD_NAMES, asks_map_items
from valuesim.prompts import user_message
from valuesim.survey.bank import QuestionBank, load_bank


@pytest.fixture(scope="module")
def bank(root: Path) -> QuestionBank:
    return load_bank(root / "data/questions/wvs7.yaml")


def test_only_personas_that_do_not_state_the_map_answers_ask_them() -> None:
    asking = {m for m in METHOD_NAMES if asks_map_items(m)}
    assert asking == {"default", "generic", "country", "sociodemographic", "sociodemographic_nonat"}


def test_circular_methods_plan_nothing(bank: QuestionBank) -> None:
    for method in ("value", "value_nonat", "fewshot", "fewshot_nonat"):
        assert plan_map_prompts(method, pl.DataFrame(), bank, ["JPN"], "social_science") == []


def test_country_prompts_ask_every_source_and_the_second_aim_after_each_first(bank: QuestionBank) -> None:
    prompts = plan_map_prompts("country", pl.DataFrame(), bank, ["JPN", "DEU"], "social_science")
    jpn = [p for p in prompts if p.unit.country == "JPN"]
    asked = [p.unit.question for p in jpn if p.given is None]
    assert asked == [*DIRECT_ITEMS, "Q8", "Q14", "Q15", "Q17", "Q154"]
    first = next(p for p in jpn if p.unit.question == "Q154")
    follow = [p for p in jpn if p.given is not None]
    assert [p.given for p in follow] == list(AIMS)
    for p in follow:
        rest = tuple(b for b in AIMS if b != p.given)
        assert p.unit.question == "Q155"
        assert p.codes == rest
        assert p.unit.answers == tuple(str(b) for b in rest)
        # the same conversation, with the model's first choice as its reply
        assert p.unit.messages[:2] == first.unit.messages
        assert (p.unit.messages[2].role, p.unit.messages[2].content) == ("assistant", str(p.given))
        assert p.unit.messages[3].role == "user"
        assert "next most important" in p.unit.messages[3].content
        label = bank.item("Q155").answers[p.given - 1].label
        assert label not in p.unit.messages[3].content
    assert "Japan" in first.unit.messages[0].content
    assert first.unit.messages[1].content == user_message(bank.item("Q154"))


def test_source_items_are_worded_as_questions(bank: QuestionBank) -> None:
    for q, quality in (("Q8", "independence"), ("Q17", "obedience")):
        text = bank.item(q).text
        assert text.startswith("Here is a list of qualities that children can be encouraged")
        assert f'Is "{quality}" one of the qualities you choose?' in text
    assert "aims of this country" in bank.item("Q154").text


def test_answers_frame_needs_one_result_per_prompt(bank: QuestionBank) -> None:
    prompts = plan_map_prompts("generic", pl.DataFrame(), bank, ["JPN"], "social_science")
    results = [AnswerDistribution(probs=tuple([1 / len(p.codes)] * len(p.codes)), coverage=1.0,
                                  estimator="logprobs") for p in prompts]
    frame = map_answers_frame(prompts, results)
    assert frame.height == len(prompts)
    assert frame.filter(pl.col("question") == "Q155")["given"].to_list() == list(AIMS)
    assert frame.filter(pl.col("question") != "Q155")["given"].null_count() == frame.height - len(AIMS)
    with pytest.raises(ValueError, match="map prompts but"):
        map_answers_frame(prompts, results[:-1])
