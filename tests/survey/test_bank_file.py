"""The shipped question bank against the paper and the WVS-7 codebook."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from valuesim.survey.bank import QuestionBank

PAPER = Path(__file__).resolve().parents[3] / "shared/paper/calibrated_value_personas.txt"


def test_targets_are_the_papers_table_2(bank: QuestionBank) -> None:
    if not PAPER.exists():
        pytest.skip(f"paper text not found at {PAPER}")
    text = PAPER.read_text()
    table = text[text.index("Table 2: Target WVS") : text.index("B Supplementary Results")]
    ids = re.findall(r"^(Q\d+)\t", table, flags=re.MULTILINE)
    assert [i.id for i in bank.targets] == ids
    assert len(ids) == 35
    q1 = bank.item("Q1")
    assert q1.text == "How important is Family in your life?"
    assert (q1.min, q1.max) == (1, 4)


def test_persona_items_and_dimensions(bank: QuestionBank) -> None:
    dims = {i.id: i.dimension for i in bank.persona_items}
    assert dims == {
        "Q164": "secular",
        "Y003": "secular",
        "Q184": "secular",
        "Q254": "secular",
        "Q45": "secular",
        "Y002": "self_expression",
        "Q182": "self_expression",
        "Q209": "self_expression",
        "Q57": "self_expression",
        "Q46": "self_expression",
    }
    assert bank.item("Y003").codes == [-2, -1, 0, 1, 2]
    assert bank.item("Y003").derived_from == ["Q8", "Q14", "Q15", "Q17"]
    assert bank.item("Y002").codes == [1, 2, 3]
    q254 = bank.item("Q254")
    assert q254.codes == [1, 2, 3, 4]
    assert q254.missing[5] == "not_applicable"


def test_sociodemographic_items(bank: QuestionBank) -> None:
    assert [i.id for i in bank.sociodemographic] == [
        "Q260",
        "Q262",
        "Q275",
        "Q273",
        "Q279",
        "Q287",
        "Q288",
        "Q289",
        "H_URBRURAL",
    ]
    assert bank.item("Q262").numeric


def test_labels_and_missing_codes_match_codebook(bank: QuestionBank, codebook_path: Path) -> None:
    codebook = json.loads(codebook_path.read_text())
    for item in bank.items:
        if item.id not in codebook:
            assert item.derived_from, f"{item.id} is neither in the codebook nor derived"
            continue
        choices = {int(k): v.strip() for k, v in codebook[item.id]["choices"].items()}
        for a in item.answers:
            assert choices[a.code] == a.label, item.id
        declared = set(item.codes) | set(item.missing)
        assert declared == set(choices), item.id
