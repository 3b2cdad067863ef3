"""valuesim.survey.batteries: WVS-7 questionnaire sections, and the optional ``battery``
of bank items and question files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures.paths import SHARED_WVS
from valuesim.prompts import user_message
from valuesim.survey.bank import QuestionBank
from valuesim.survey.batteries import BATTERIES, OTHER, SECTIONS, battery_of
from valuesim.survey.new_questions import QuestionFileError, load_question_file


@pytest.mark.parametrize(("item", "battery"), [
    ("Q1", "social_values"), ("Q45", "social_values"), ("Q46", "wellbeing"), ("Q56", "wellbeing"),
    ("Q57", "social_capital_trust"), ("Q105", "social_capital_trust"), ("Q106", "economic_values"),
    ("Q111", "economic_values"), ("Q112", "corruption"), ("Q121", "migration"), ("Q131", "security"),
    ("Q152", "postmaterialism"), ("Q158", "science_technology"), ("Q164", "religious_values"),
    ("Q176", "ethical_values"), ("Q198", "ethical_values"), ("Q199", "political_participation"),
    ("Q234", "political_participation"), ("Q235", "political_culture"), ("Q259", "political_culture"),
    ("Q260", "demographics"), ("Q290", "demographics"),
    # WVS variants of a Q-number keep its section
    ("Q82_AFRICANUNION", "social_capital_trust"), ("Q288R", "demographics"),
    # past the core questionnaire, not a Q-number, derived indexes
    ("Q291", OTHER), ("AI_TRUST", OTHER), ("Q", OTHER), ("QX1", OTHER),
    ("Y002", "postmaterialism"), ("Y003", "social_values"),
])
def test_items_fall_in_their_questionnaire_section(item: str, battery: str) -> None:
    assert battery_of(item) == battery


def test_an_explicit_battery_wins() -> None:
    assert battery_of("Q1", "migration") == "migration"
    assert battery_of("AI_TRUST", "science_technology") == "science_technology"
    assert battery_of("Q1", None) == battery_of("Q1", "") == "social_values"


def test_sections_tile_q1_to_q290_in_order() -> None:
    numbers = [n for _, first, last in SECTIONS for n in range(first, last + 1)]
    assert numbers == list(range(1, 291))
    assert BATTERIES[-1] == OTHER
    assert len(set(BATTERIES)) == len(BATTERIES)


def test_every_target_of_the_shipped_bank_has_a_section(shipped_bank: QuestionBank) -> None:
    assert all(battery_of(i.id, i.battery) != OTHER for i in shipped_bank.targets)


@pytest.mark.realdata
def test_section_starts_are_the_questionnaires_headings() -> None:
    path = SHARED_WVS / "master_questionnaire.txt"
    if not path.exists():
        pytest.skip(f"{path} not found")
    lines = path.read_text(errors="replace").splitlines()
    headings = ["SOCIAL VALUES, ATTITUDES", "HAPPINESS AND WELL-BEING", "SOCIAL CAPITAL, TRUST",
                "ECONOMIC VALUES", "CORRUPTION", "MIGRATION", "SECURITY", "POSTMATERIALIST INDEX",
                "SCIENCE & TECHNOLOGY", "RELIGIOUS VALUES", "ETHICAL VALUES AND NORMS",
                "POLITICAL INTEREST & POLITICAL PARTICIPATION", "POLITICAL CULTURE & POLITICAL REGIMES",
                "DEMOGRAPHICS"]
    firsts = []
    for heading in headings:
        # the section's own heading is a centred line (the table of contents has dots)
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(heading) and "...." not in line)
        first = next(m for line in lines[at:] for m in re.findall(r"\bQ(\d+)", line))
        firsts.append(int(first))
    assert firsts == [first for _, first, _ in SECTIONS]


def test_question_files_accept_a_battery(tmp_path: Path, shipped_bank: QuestionBank) -> None:
    f = tmp_path / "q.yaml"
    f.write_text("items:\n- id: AI_TRUST\n  text: Do you trust AI?\n  battery: science_technology\n"
                 "  answers: [{code: 1, label: Agree}, {code: 2, label: Disagree}]\n- id: AI_USE\n"
                 "  text: Do you use AI?\n  answers: [{code: 1, label: Agree}, {code: 2, label: Disagree}]\n")
    with_battery, without = load_question_file(f, shipped_bank)
    assert with_battery.battery == "science_technology"
    assert without.battery is None
    # the field is metadata: the prompt is the same with or without it
    assert user_message(with_battery) == user_message(without).replace("use", "trust")


@pytest.mark.parametrize("value", ["Science Tech", "1x", "[a]"])
def test_a_bad_battery_is_one_line_naming_the_item(tmp_path: Path, shipped_bank: QuestionBank, value: str) -> None:
    f = tmp_path / "q.yaml"
    f.write_text(f"- id: AI_TRUST\n  text: Do you trust AI?\n  battery: {value}\n"
                 "  answers: [{code: 1, label: Agree}, {code: 2, label: Disagree}]\n")
    with pytest.raises(QuestionFileError) as err:
        load_question_file(f, shipped_bank)
    msg = str(err.value)
    assert "\n" not in msg
    assert "item AI_TRUST" in msg
    assert "battery" in msg
