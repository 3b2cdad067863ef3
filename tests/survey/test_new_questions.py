"""Question files (issue 12): the shipped example loads; every bad input is one line
naming the file, the item and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from valuesim.errors import ValuesimError
from valuesim.prompts import user_message
from valuesim.survey.bank import QuestionBank
from valuesim.survey.new_questions import (
    QuestionFileError,
    extend_bank,
    is_new,
    load_question_file,
    load_question_files,
)

GOOD = {
    "id": "NEW1",
    "text": "How much do you like new questions?",
    "answers": [{"code": 1, "label": "A lot"}, {"code": 2, "label": "A little"}],
}


def write(tmp_path: Path, data: object, name: str = "items.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_example_file_loads_a_4_point_and_an_11_point_item(
    root: Path, shipped_bank: QuestionBank
) -> None:
    items = load_question_file(root / "data/questions/new_items_example.yaml", shipped_bank)
    assert [len(i.codes) for i in items] == [4, 11]
    four, eleven = items
    assert four.codes == [1, 2, 3, 4]
    assert eleven.codes == list(range(11))
    assert all(i.roles == [] and is_new(i, shipped_bank) for i in items)
    # unlabelled points are written as their number, as the bank writes them, and the
    # prompt shows only the labelled ends
    assert eleven.answers[5].label == "5"
    assert "Scale: 0=Not at all willing, 10=Completely willing" in user_message(eleven)
    assert user_message(eleven).endswith("(0-10):")


def test_layouts_single_mapping_plain_list_and_bank_ids(
    tmp_path: Path, shipped_bank: QuestionBank
) -> None:
    assert [i.id for i in load_question_file(write(tmp_path, GOOD), shipped_bank)] == ["NEW1"]
    items = load_question_file(write(tmp_path, [GOOD, "Q164"]), shipped_bank)
    assert [i.id for i in items] == ["NEW1", "Q164"]
    assert items[1] == shipped_bank.item("Q164")  # the bank's own item, roles included
    assert not is_new(items[1], shipped_bank)
    bank = extend_bank(shipped_bank, items)
    assert bank.item("NEW1") == items[0]
    assert len(bank.items) == len(shipped_bank.items) + 1
    assert bank.targets == shipped_bank.targets  # a new item is never a target by role
    assert items[0].label == GOOD["text"]  # no label: the text stands in


BAD: list[tuple[str, object, str]] = [
    ("duplicate ids", {"items": [GOOD, GOOD]}, "item NEW1: id appears twice"),
    ("duplicate bank ids", {"items": ["Q1", "Q1"]}, "item Q1: id appears twice"),
    ("bank clash", {"items": [{**GOOD, "id": "Q1"}]}, "item Q1: id clashes with the WVS item Q1"),
    ("unknown bank id", {"items": ["Q99999"]}, "item Q99999: not a WVS item"),
    ("numeric bank item", {"items": ["Q262"]}, "item Q262: is numeric"),
    ("one answer", {"items": [{**GOOD, "answers": [{"code": 1, "label": "x"}]}]},
     "item NEW1: answers: 1 given, an item needs at least two"),
    ("no answers", {"items": [{**GOOD, "answers": None}]}, "item NEW1: answers must be a list"),
    ("string code", {"items": [{**GOOD, "answers": [{"code": "1", "label": "a"},
                                                     {"code": 2, "label": "b"}]}]},
     "item NEW1: answers[0].code '1' is not an integer"),
    ("float code", {"items": [{**GOOD, "answers": [{"code": 1, "label": "a"},
                                                    {"code": 2.5, "label": "b"}]}]},
     "item NEW1: answers[1].code 2.5 is not an integer"),
    ("bool code", {"items": [{**GOOD, "answers": [{"code": True, "label": "a"},
                                                   {"code": 2, "label": "b"}]}]},
     "item NEW1: answers[0].code True is not an integer"),
    ("unordered codes", {"items": [{**GOOD, "answers": [{"code": 2, "label": "a"},
                                                         {"code": 1, "label": "b"}]}]},
     "item NEW1: answers: codes [2, 1] are not in ascending order"),
    ("repeated code", {"items": [{**GOOD, "answers": [{"code": 1, "label": "a"},
                                                       {"code": 1, "label": "b"}]}]},
     "item NEW1: answers: code(s) 1 appear twice"),
    ("empty label", {"items": [{**GOOD, "answers": [{"code": 1, "label": " "},
                                                     {"code": 2, "label": "b"}]}]},
     "item NEW1: answers[0].label is empty"),
    ("empty text", {"items": [{**GOOD, "text": ""}]}, "item NEW1: text is empty"),
    ("no text", {"items": [{k: v for k, v in GOOD.items() if k != "text"}]},
     "item NEW1: text is empty"),
    ("empty item label", {"items": [{**GOOD, "label": ""}]}, "item NEW1: label is empty"),
    ("no id", {"items": [{k: v for k, v in GOOD.items() if k != "id"}]},
     "items[0]: id is missing or empty"),
    ("bad id", {"items": [{**GOOD, "id": "my item"}]}, "item my item: id must start with a letter"),
    ("unknown field", {"items": [{**GOOD, "roles": ["target"]}]},
     "item NEW1: unknown field(s) roles"),
    ("unknown answer field", {"items": [{**GOOD, "answers": [{"code": 1, "label": "a", "x": 1},
                                                              {"code": 2, "label": "b"}]}]},
     "item NEW1: answers[0]: unknown field(s) x"),
    ("missing code is an answer", {"items": [{**GOOD, "missing": {1: "dont_know"}}]},
     "item NEW1: missing: code 1 is also an answer code"),
    ("bad missing reason", {"items": [{**GOOD, "missing": {-1: "shrug"}}]},
     "item NEW1: missing.-1: reason 'shrug'"),
    ("empty file list", {"items": []}, "file: no items"),
    ("not items", {"questions": [GOOD]}, "file: unknown top-level key(s) questions"),
    ("a number", 5, "file: expected `items:`"),
    ("a number entry", {"items": [5]}, "items[0]: an item is a mapping"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_items_fail_with_one_line_naming_file_item_and_field(
    tmp_path: Path, shipped_bank: QuestionBank, case: str, data: object, message: str
) -> None:
    path = write(tmp_path, data)
    with pytest.raises(QuestionFileError) as err:
        load_question_file(path, shipped_bank)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: ")
    assert message in text
    assert isinstance(err.value, ValuesimError)  # the CLI prints it as one `error:` line


YAML_BOOLEANS = [
    ("  - {code: 1, label: Yes}\n  - {code: 2, label: No}\n",
     "item YESNO: answers[0].label is the YAML boolean true: quote it: label: 'Yes'"),
    ("  - {code: 1, label: 'Yes'}\n  - {code: 2, label: No}\n",
     "item YESNO: answers[1].label is the YAML boolean false: quote it: label: 'No'"),
]


@pytest.mark.parametrize(("answers", "message"), YAML_BOOLEANS, ids=["yes", "no"])
def test_an_unquoted_yes_or_no_label_names_the_yaml_boolean(
    tmp_path: Path, shipped_bank: QuestionBank, answers: str, message: str
) -> None:
    """Written by hand as a user writes it (yaml.safe_dump would quote the words): the
    error names the real cause, at the 0-based position of the answer."""
    path = tmp_path / "yesno.yaml"
    path.write_text("items:\n- id: YESNO\n  text: Do you vote?\n  answers:\n" + answers)
    with pytest.raises(QuestionFileError) as err:
        load_question_file(path, shipped_bank)
    assert str(err.value) == f"{path}: {message}"


def test_an_unquoted_boolean_id_or_item_label_is_named_too(
    tmp_path: Path, shipped_bank: QuestionBank
) -> None:
    path = tmp_path / "q.yaml"
    answers = "  answers: [{code: 1, label: a}, {code: 2, label: b}]\n"
    path.write_text("- id: OK1\n  label: Yes\n  text: t\n" + answers)
    with pytest.raises(QuestionFileError, match=r"item OK1: label is the YAML boolean true: "
                       r"quote it: label: 'Yes'"):
        load_question_file(path, shipped_bank)
    path.write_text("- id: OK1\n  text: t\n" + answers + "- id: No\n  text: t\n" + answers)
    with pytest.raises(QuestionFileError, match=r"items\[1\]: id is the YAML boolean false"):
        load_question_file(path, shipped_bank)


def test_file_level_errors(tmp_path: Path, shipped_bank: QuestionBank) -> None:
    with pytest.raises(QuestionFileError, match="not found"):
        load_question_file(tmp_path / "absent.yaml", shipped_bank)
    broken = tmp_path / "broken.yaml"
    broken.write_text("items: [\n")
    with pytest.raises(QuestionFileError, match=r"broken.yaml: not valid YAML") as err:
        load_question_file(broken, shipped_bank)
    assert "\n" not in str(err.value)


def test_an_id_in_two_files_names_both(tmp_path: Path, shipped_bank: QuestionBank) -> None:
    a, b = write(tmp_path, GOOD, "a.yaml"), write(tmp_path, [GOOD], "b.yaml")
    with pytest.raises(QuestionFileError) as err:
        load_question_files([a, b], shipped_bank)
    assert str(err.value).startswith(f"{b}: item NEW1: id duplicates")
    assert str(a) in str(err.value)
    with pytest.raises(QuestionFileError, match="no question files"):
        load_question_files([], shipped_bank)
    other = write(tmp_path, {**GOOD, "id": "NEW2"}, "c.yaml")
    assert [i.id for i in load_question_files([a, other], shipped_bank)] == ["NEW1", "NEW2"]
