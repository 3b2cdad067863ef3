"""Prompt rendering (paper, appendix A.1) and planning."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from valuesim.errors import ConfigError, DataError
from valuesim.llm.types import ChatMessage
from valuesim.methods import METHOD_NAMES
from valuesim.personas.build import SCHEMA
from valuesim.prompts import (
    PromptUnit,
    answer_strings,
    guidance_keys,
    load_guidance,
    plan_prompts,
    render,
)
from valuesim.survey.bank import QuestionBank, load_bank

ROOT = Path(__file__).resolve().parents[1]
Q6_USER = (
    "Question:\nHow important is Religion in your life?\n\n"
    "Scale: 1=Very important, 2=Rather important, 3=Not very important, 4=Not at all important\n\n"
    "Respond with ONLY the single integer (1-4):"
)
SOCIAL_SCIENCE_JPN = (
    "You are participating in a social science simulation. You will be given a survey question "
    "and must answer it as someone living in Japan would, embracing this persona\u2019s values as your own."
)
COUNTRY_FREE = (
    "You are participating in a social science simulation. You will be given a survey question "
    "and must answer it as the person described below would, embracing this persona\u2019s values as your own."
)
PERSONA_TEXT = {
    ("value", True): "You live in Japan. You trust most people.",
    ("value", False): "You trust most people.",
    ("sociodemographic", True): "You live in Japan. You are a woman.",
    ("sociodemographic", False): "You are a woman.",
    ("fewshot", True): "You gave these answers in a survey:\n\nQuestion: In which country do you live?\nAnswer: Japan",
    ("fewshot", False): "You gave these answers in a survey:\n\nQuestion: x\nAnswer: 1",
}
# method -> the exact system message for Q6 in Japan with the default guidance
PINNED_SYSTEM = {
    "default": "You are a helpful assistant.",
    "generic": (
        "You are participating in a social science simulation. You will be given a survey question "
        "and must answer it as a typical human being would, embracing this person\u2019s values as your own."
    ),
    "country": SOCIAL_SCIENCE_JPN,
    "value": SOCIAL_SCIENCE_JPN + "\n\nYour persona: You live in Japan. You trust most people.",
    "sociodemographic": SOCIAL_SCIENCE_JPN + "\n\nYour persona: You live in Japan. You are a woman.",
    "fewshot": SOCIAL_SCIENCE_JPN + "\n\nYour persona: You gave these answers in a survey:\n\n"
    "Question: In which country do you live?\nAnswer: Japan",
    "value_nonat": COUNTRY_FREE + "\n\nYour persona: You trust most people.",
    "sociodemographic_nonat": COUNTRY_FREE + "\n\nYour persona: You are a woman.",
    "fewshot_nonat": COUNTRY_FREE + "\n\nYour persona: You gave these answers in a survey:\n\nQuestion: x\nAnswer: 1",
}


@pytest.fixture(scope="module")
def bank() -> QuestionBank:
    return load_bank(ROOT / "data" / "questions" / "wvs7.yaml")


def personas_frame(countries: list[str], per_country: int = 2) -> pl.DataFrame:
    rows = []
    for c in countries:
        for i in range(per_country):
            for (kind, nat), text in PERSONA_TEXT.items():
                rows.append({
                    "persona_id": f"{c}-{i}:{kind}" + ("" if nat else ":nonat"),
                    "respondent_id": f"{c}-{i}", "country": c, "kind": kind,
                    "nationality": nat, "text": text, "missing_items": [],
                })
    return pl.DataFrame(rows, schema=SCHEMA)


def test_all_table1_templates_are_there() -> None:
    keys = guidance_keys()
    assert len(keys) == 14
    assert keys[0] == "social_science"
    g = load_guidance()
    assert all("{country}" in t for t in g.templates.values())
    assert g.templates["minimal"] == (
        "Answer the following survey question as a realistic adult living in {country}. "
        "Use the persona below to determine individual views."
    )


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_one_prompt_per_method_is_pinned(bank: QuestionBank, method: str) -> None:
    units = plan_prompts(method, personas_frame(["JPN"], 1), bank, ["Q6"], ["JPN"])
    assert len(units) == 1
    (unit,) = units
    assert unit.messages == (ChatMessage("system", PINNED_SYSTEM[method]), ChatMessage("user", Q6_USER))
    assert unit.answers == ("1", "2", "3", "4")
    assert unit.country == "JPN"
    assert unit.question == "Q6"


@pytest.mark.parametrize("guidance", guidance_keys())
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_every_method_renders_with_every_guidance(bank: QuestionBank, method: str, guidance: str) -> None:
    units = plan_prompts(method, personas_frame(["JPN", "DEU"]), bank, ["Q6", "Q49"], ["JPN", "DEU"], guidance)
    per_country = 1 if method in ("default", "generic", "country") else 2
    assert len(units) == 2 * per_country * 2
    template = load_guidance().templates[guidance]
    for u in units:
        system, user = u.messages
        assert (system.role, user.role) == ("system", "user")
        assert "{" not in system.content
        assert "{" not in user.content
        assert user.content.startswith("Question:\n")
        assert user.content.endswith("):")
        name = {"JPN": "Japan", "DEU": "Germany"}[u.country]
        if method in ("country", "value", "sociodemographic", "fewshot"):
            assert system.content.startswith(template.replace("{country}", name))
        if method.endswith("_nonat") or method in ("default", "generic"):
            assert "Japan" not in system.content
            assert "Germany" not in system.content
        assert ("\n\nYour persona: " in system.content) == (method not in ("default", "generic", "country"))


def test_ten_point_scale_and_answers(bank: QuestionBank) -> None:
    (unit,) = plan_prompts("country", personas_frame([]), bank, ["Q49"], ["COL"])
    assert unit.messages[1].content.endswith(
        "Scale: 1=Completely dissatisfied, 10=Completely satisfied\n\n"
        "Respond with ONLY the single integer (1-10):"
    )
    assert unit.answers == tuple(str(i) for i in range(1, 11))
    assert answer_strings(bank.item("Q173")) == ("1", "2", "3")


def test_persona_questions_are_consecutive(bank: QuestionBank) -> None:
    units = plan_prompts("value", personas_frame(["JPN", "DEU"], 3), bank, ["Q1", "Q6", "Q49"], ["DEU", "JPN"])
    assert [u.persona_id for u in units[:3]] == ["DEU-0:value"] * 3
    assert [u.question for u in units[:3]] == ["Q1", "Q6", "Q49"]
    ids = [u.persona_id for u in units]
    assert len(set(ids)) == 6
    assert all(ids[i] == ids[i - i % 3] for i in range(len(ids)))
    # the persona is a shared prefix of every question's prompt
    assert len({u.messages[0] for u in units if u.persona_id == "JPN-1:value"}) == 1
    assert isinstance(units[0], PromptUnit)
    assert [u.persona_id for u in plan_prompts("country", personas_frame([]), bank, ["Q1"], ["JPN", "DEU"])] == [
        "JPN:country", "DEU:country",
    ]


def test_bad_inputs_fail_before_rendering(bank: QuestionBank) -> None:
    frame = personas_frame(["JPN"])
    with pytest.raises(ConfigError, match="unknown method 'vibes'"):
        plan_prompts("vibes", frame, bank, ["Q6"], ["JPN"])
    with pytest.raises(ConfigError, match="unknown guidance key 'chatty'"):
        plan_prompts("country", frame, bank, ["Q6"], ["JPN"], "chatty")
    with pytest.raises(DataError, match="unknown question id 'Q9999'"):
        plan_prompts("value", frame, bank, ["Q9999"], ["JPN"])
    with pytest.raises(DataError, match="unknown country code 'XXX'"):
        plan_prompts("country", frame, bank, ["Q6"], ["XXX"])
    with pytest.raises(DataError, match="no value personas without nationality for DEU"):
        plan_prompts("value_nonat", frame, bank, ["Q6"], ["JPN", "DEU"])
    with pytest.raises(DataError, match="Q262 is numeric"):
        plan_prompts("country", frame, bank, ["Q262"], ["JPN"])
    with pytest.raises(DataError, match="needs a persona"):
        render("value", bank.item("Q6"), country="JPN")


def test_templates_match_the_paper_verbatim() -> None:
    paper = ROOT.parent / "shared" / "paper" / "calibrated_value_personas.txt"
    if not paper.exists():
        pytest.skip(f"paper text not found at {paper}")
    text = paper.read_text(encoding="utf-8").replace("<code>", "").replace("</code>", "")
    for key, template in load_guidance().templates.items():
        assert f"{key}\t{template}\n" in text, key
    from valuesim.personas.generators import load_generation_prompts

    for variant in load_generation_prompts().variants.values():
        assert f"\t{variant}\n" in text
