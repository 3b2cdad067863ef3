from __future__ import annotations

import polars as pl
import pytest

from tests.fixtures.personas import make_respondents
from valuesim.errors import ConfigError, DataError
from valuesim.personas.build import SCHEMA, build_personas, persona_text
from valuesim.personas.descriptors import DescriptorSet
from valuesim.survey.bank import QuestionBank

ROW = {"country": "JPN", "respondent_id": "JPN-1", "weight": 1.0, "T1": 1, "T2": 3,
       "P1": 2, "P2": None, "P3": -1, "S1": 2, "AGE": 47}


def test_value_persona_with_and_without_nationality(tiny_bank, tiny_value_set, tiny_socio_set) -> None:
    text, missing = persona_text(ROW, "value", True, tiny_bank, tiny_value_set, tiny_socio_set)
    assert text == "You live in Japan. You are careful with people. You sit at autonomy -1."
    assert missing == ["P2"]
    text, missing = persona_text(ROW, "value", False, tiny_bank, tiny_value_set, tiny_socio_set)
    assert text == "You are careful with people. You sit at autonomy -1."
    assert missing == ["P2"]


def test_sociodemographic_persona_uses_age_template(tiny_bank, tiny_value_set, tiny_socio_set) -> None:
    text, missing = persona_text(ROW, "sociodemographic", True, tiny_bank, tiny_value_set, tiny_socio_set)
    assert text == "You live in Japan. You are a woman. You are 47 years old."
    assert missing == []


def test_fewshot_persona_shows_raw_answers(tiny_bank, tiny_value_set, tiny_socio_set) -> None:
    row = {**ROW, "P2": 7}
    text, missing = persona_text(row, "fewshot", True, tiny_bank, tiny_value_set, tiny_socio_set)
    assert text == (
        "You gave these answers in a survey:\n\n"
        "Question: In which country do you live?\nAnswer: Japan\n\n"
        "Question: Can most people be trusted?\n"
        "Scale: 1=Most people can be trusted, 2=Need to be very careful\n"
        "Answer: 2=Need to be very careful\n\n"
        "Question: Is abortion justifiable?\nScale: 1=Never justifiable, 10=Always justifiable\n"
        "Answer: 7\n\n"
        "Question: Which child qualities?\n"
        "Scale: -2=level -2, -1=level -1, 0=level 0, 1=level 1, 2=level 2\nAnswer: -1=level -1"
    )
    assert missing == []
    nonat, _ = persona_text(row, "fewshot", False, tiny_bank, tiny_value_set, tiny_socio_set)
    assert "Japan" not in nonat
    assert nonat.startswith("You gave these answers in a survey:\n\nQuestion: Can most")


def test_build_all_kinds_and_flags(tiny_bank, tiny_value_set, tiny_socio_set) -> None:
    sample = make_respondents(tiny_bank, ["JPN", "DEU"], 4)
    out = build_personas(sample, tiny_bank, tiny_value_set, tiny_socio_set)
    assert out.schema == pl.Schema(SCHEMA)
    assert out.height == 8 * 3 * 2
    assert out["persona_id"].is_unique().all()
    assert set(zip(out["kind"], out["nationality"], strict=True)) == {
        (k, n) for k in ("value", "sociodemographic", "fewshot") for n in (True, False)
    }
    # missing items are exactly the null persona items of the respondent
    for row in out.filter(pl.col("kind") == "value").iter_rows(named=True):
        src = sample.filter(pl.col("respondent_id") == row["respondent_id"]).row(0, named=True)
        assert row["missing_items"] == [i for i in ("P1", "P2", "P3") if src[i] is None]
    deu = out.filter((pl.col("country") == "DEU") & pl.col("nationality"))
    assert all("Germany" in t for t in deu["text"])
    assert not any("Germany" in t for t in out.filter(~pl.col("nationality"))["text"])


def test_bad_kind_missing_columns_and_unknown_codes(tiny_bank, tiny_value_set, tiny_socio_set) -> None:
    sample = make_respondents(tiny_bank, ["JPN"], 2)
    with pytest.raises(ConfigError, match="unknown persona kind 'values'"):
        build_personas(sample, tiny_bank, tiny_value_set, tiny_socio_set, kinds=["values"])
    with pytest.raises(DataError, match="lack item columns P2"):
        build_personas(sample.drop("P2"), tiny_bank, tiny_value_set, tiny_socio_set)
    with pytest.raises(DataError, match="P1=7"):
        persona_text({**ROW, "P1": 7}, "value", True, tiny_bank, tiny_value_set, tiny_socio_set)
    with pytest.raises(DataError, match="P1=7"):
        persona_text({**ROW, "P1": 7}, "fewshot", True, tiny_bank, tiny_value_set, tiny_socio_set)


def test_descriptor_sentence_for_unlisted_code(tiny_value_set: DescriptorSet) -> None:
    with pytest.raises(DataError, match="no sentence for P1=9"):
        tiny_value_set.sentence("P1", 9)


def test_shipped_sets_build_for_the_shipped_bank(root, shipped_bank: QuestionBank) -> None:
    from valuesim.personas import descriptors

    v = descriptors.load(root / "data/descriptors/value_handwritten.yaml", shipped_bank, kind="value")
    s = descriptors.load(root / "data/descriptors/sociodemographic.yaml", shipped_bank, kind="sociodemographic")
    sample = make_respondents(shipped_bank, ["COL"], 3, missing=0.0)
    out = build_personas(sample, shipped_bank, v, s)
    value = out.filter((pl.col("kind") == "value") & pl.col("nationality"))
    assert all(t.startswith("You live in Colombia. You ") for t in value["text"])
    assert all(t.count("You") >= len(shipped_bank.persona_items) for t in value["text"])
