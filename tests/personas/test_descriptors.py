from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.fixtures.personas import socio_set_dict, value_set_dict
from valuesim.errors import DataError
from valuesim.personas import descriptors
from valuesim.survey.bank import QuestionBank


def _write(tmp_path: Path, data: dict, name: str = "set.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, allow_unicode=True))
    return p


@pytest.mark.parametrize(
    ("path", "kind"),
    [("data/descriptors/value_handwritten.yaml", "value"),
     ("data/descriptors/value_nohedge_handwritten.yaml", "value"),
     ("data/descriptors/value_bare_handwritten.yaml", "value"),
     ("data/descriptors/sociodemographic.yaml", "sociodemographic")],
)
def test_shipped_sets_cover_the_shipped_bank(root: Path, shipped_bank: QuestionBank, path: str, kind: str) -> None:
    ds = descriptors.load(root / path, shipped_bank, kind=kind)
    items = descriptors.covered_items(shipped_bank, kind)
    assert items, "the bank has items of this role"
    for item in items:
        if item.numeric:
            assert "{value}" in ds.numeric[item.id].template
        else:
            assert set(ds.items[item.id]) == set(item.codes)
    # hand-written sentences are distinct: no copy-pasted answer
    sentences = [s for per in ds.items.values() for s in per.values()]
    assert len(sentences) == len(set(sentences))


def test_valid_tiny_set_loads(tmp_path: Path, tiny_bank: QuestionBank) -> None:
    ds = descriptors.load(_write(tmp_path, value_set_dict()), tiny_bank, kind="value")
    assert ds.sentence("P3", -2) == "You sit at autonomy -2."


def test_missing_answer_is_named(tmp_path: Path, tiny_bank: QuestionBank) -> None:
    data = value_set_dict()
    del data["items"]["P2"][7]
    with pytest.raises(DataError, match=r"item P2 has no descriptor for answer 7 \(7\)"):
        descriptors.load(_write(tmp_path, data), tiny_bank, kind="value")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["items"].pop("P1"), r"item P1 \(Trust\) is missing"),
        (lambda d: d["items"].__setitem__("Q999", {1: "You x."}), r"unknown item Q999"),
        (lambda d: d["items"]["P1"].__setitem__(2, "Careful with people."), r"P1 answer 2: descriptor does not start with 'You'"),
        (lambda d: d["items"]["P1"].__setitem__(3, "You extra."), r"P1 has a descriptor for unknown answer code 3"),
    ],
)
def test_invalid_sets_fail_with_a_named_problem(tmp_path: Path, tiny_bank: QuestionBank, mutate, message: str) -> None:
    data = value_set_dict()
    mutate(data)
    with pytest.raises(DataError, match=message) as info:
        descriptors.load(_write(tmp_path, data), tiny_bank, kind="value")
    assert "\n" not in str(info.value)


def test_numeric_template_needs_value(tmp_path: Path, tiny_bank: QuestionBank) -> None:
    data = socio_set_dict()
    data["numeric"]["AGE"]["template"] = "You are an adult."
    with pytest.raises(DataError, match=r"AGE: template has no \{value\}"):
        descriptors.load(_write(tmp_path, data), tiny_bank, kind="sociodemographic")
    del data["numeric"]["AGE"]
    with pytest.raises(DataError, match=r"AGE \(Age\) is missing"):
        descriptors.load(_write(tmp_path, data), tiny_bank, kind="sociodemographic")


def test_wrong_kind_bad_yaml_bad_schema_and_absent_file(tmp_path: Path, tiny_bank: QuestionBank) -> None:
    with pytest.raises(DataError, match="has kind 'value', expected 'sociodemographic'"):
        descriptors.load(_write(tmp_path, value_set_dict()), tiny_bank, kind="sociodemographic")
    bad = tmp_path / "bad.yaml"
    bad.write_text("items: [unclosed")
    with pytest.raises(DataError, match="not valid YAML"):
        descriptors.load(bad, tiny_bank, kind="value")
    with pytest.raises(DataError, match=r"items\.P1"):
        descriptors.load(_write(tmp_path, {"name": "x", "kind": "value", "items": {"P1": "You."}}), tiny_bank, kind="value")
    with pytest.raises(DataError, match="not found"):
        descriptors.load(tmp_path / "absent.yaml", tiny_bank, kind="value")


def test_many_problems_stay_on_one_line(tiny_bank: QuestionBank) -> None:
    ds = descriptors.parse({"name": "x", "kind": "value", "items": {f"X{i}": {} for i in range(20)}}, origin="t")
    with pytest.raises(DataError, match=r"and \d+ more") as info:
        descriptors.validate(ds, tiny_bank, origin="t")
    assert "\n" not in str(info.value)


def test_dump_round_trips_atomically(tmp_path: Path, tiny_bank: QuestionBank, tiny_value_set) -> None:
    out = tmp_path / "gen" / "value.yaml"
    descriptors.dump(tiny_value_set, out)
    assert descriptors.load(out, tiny_bank, kind="value") == tiny_value_set
    assert [p.name for p in out.parent.iterdir()] == ["value.yaml"]


def test_hand_written_contrast_sets_say_they_are_not_generated(root: Path, shipped_bank: QuestionBank) -> None:
    hedged = descriptors.load(root / "data/descriptors/value_handwritten.yaml", shipped_bank, kind="value")
    for variant in ("handwritten_nohedge", "handwritten_bare"):
        path = root / f"data/descriptors/value_{variant.removeprefix('handwritten_')}_handwritten.yaml"
        ds = descriptors.load(path, shipped_bank, kind="value")
        assert ds.name == variant
        assert ds.meta["variant"] == variant
        assert "not LLM-generated" in ds.meta["written_by"]
        assert "NOT generated by an LLM" in path.read_text()
        # a contrast, not a copy: no sentence is shared with the hedged default set
        for item_id, per in ds.items.items():
            assert not set(per.values()) & set(hedged.items[item_id].values()), item_id
