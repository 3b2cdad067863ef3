"""Question types (issue 24): nominal and binary items are read from question files, asked
as "Options" (not a scale) with the same answer format, rotated per persona when asked
to; ordinal items, the bank's, keep today's prompts to the byte."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from valuesim.errors import ConfigError
from valuesim.prompts import plan_prompts, user_message
from valuesim.survey.bank import load_bank
from valuesim.survey.new_questions import QuestionFileError, load_question_file
from valuesim.survey.question_types import first_listed_share

EXAMPLE = "data/questions/question_types_example.yaml"
NEWS = {"id": "NEWS", "text": "Where do you get most of your news?", "type": "nominal",
        "answers": [{"code": 1, "label": "Television"}, {"code": 2, "label": "Newspapers"},
                    {"code": 3, "label": "Social media"}, {"code": 4, "label": "Radio"}]}


@pytest.fixture(scope="module")
def bank(root: Path):  # type: ignore[no-untyped-def]
    return load_bank(root / "data/questions/wvs7.yaml")


def _write(tmp_path: Path, *items: dict[str, object]) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"items": list(items)}, sort_keys=False))
    return path


def test_the_example_file_has_one_item_of_each_type_and_their_prompts(root: Path, bank) -> None:  # type: ignore[no-untyped-def]
    news, voted, *media, trust = load_question_file(root / EXAMPLE, bank)
    assert [(i.id, i.type) for i in (news, voted, trust)] == [
        ("NEWS_SOURCE", "nominal"), ("VOTED_LAST", "binary"), ("AI_TRUST", "ordinal")]
    # the multi item: one binary item per option
    assert [(i.id, i.type, getattr(i, "part_of", None)) for i in media] == [
        (f"MEDIA_USED.{k}", "binary", "MEDIA_USED") for k in (1, 2, 3, 4)]
    assert user_message(news) == (
        "Question:\nWhere do you get most of your news?\n\n"
        "Options: 1=Television, 2=Newspapers, 3=Social media, 4=Radio\n\n"
        "Respond with ONLY the single integer (1-4):")
    assert user_message(voted) == (
        "Question:\nDid you vote in the last national election?\n\n"
        "Options: 1=Yes, 2=No\n\nRespond with ONLY the single integer (1-2):")
    # ordinal: today's prompt, to the byte (the string the engine sent before types existed)
    assert user_message(trust) == (
        "Question:\nHow much would you trust a decision about your life that was made by an "
        "artificial intelligence system?\n\n"
        "Scale: 1=Trust it completely, 2=Trust it somewhat, 3=Not trust it very much, "
        "4=Not trust it at all\n\nRespond with ONLY the single integer (1-4):")
    assert user_message(bank.item("Q164")) == (
        "Question:\nHow important is God in your life?\n\n"
        "Scale: 1=Not at all important, 10=Very important\n\n"
        "Respond with ONLY the single integer (1-10):")
    assert all(i.type == "ordinal" and i.order == "fixed" for i in bank.items)


@pytest.mark.parametrize(("change", "message"), [
    ({"type": "categorical"}, "item NEWS: type 'categorical'; choose from ordinal, nominal, binary, multi"),
    ({"type": "binary"}, "item NEWS: type binary needs exactly two answers, 4 given; use type nominal"),
    ({"answers": [{"code": 1, "label": "Television"}, {"code": 2}]},
     "item NEWS: answer code 2 has no label; a nominal item names every option"),
    ({"type": "ordinal", "order": "rotate"}, "item NEWS: order rotate is for nominal or binary items"),
    ({"order": "shuffle"}, "item NEWS: order 'shuffle'; choose fixed or rotate"),
])
def test_a_bad_type_or_order_is_one_line_naming_item_and_field(
    tmp_path: Path, bank, change: dict[str, object], message: str  # type: ignore[no-untyped-def]
) -> None:
    path = _write(tmp_path, {**NEWS, **change})
    with pytest.raises(QuestionFileError) as err:
        load_question_file(path, bank)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_the_bank_refuses_a_nominal_persona_item_and_takes_a_nominal_target(tmp_path: Path, root: Path) -> None:
    raw = yaml.safe_load((root / "data/questions/wvs7.yaml").read_text())
    persona = next(i for i in raw["items"] if "persona" in i["roles"])
    persona["type"] = "nominal"
    path = tmp_path / "bank.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_bank(path)
    message = str(err.value)
    assert message == (
        f"question bank {path} is invalid: items ['{persona['id']}'] are not ordinal: personas are "
        "built from ordinal items only (their answers are placed on a scale); drop their type or "
        "their persona role")
    assert "\n" not in message
    # a nominal target is scored by total variation and Jensen-Shannon (evaluate)
    persona["type"] = "ordinal"
    target = next(i for i in raw["items"] if i["roles"] == ["target"])
    target["type"] = "nominal"
    path.write_text(yaml.safe_dump(raw))
    assert load_bank(path).item(target["id"]).type == "nominal"


def test_rotate_lists_the_options_from_the_kth_on_for_the_kth_persona(tmp_path: Path, bank) -> None:  # type: ignore[no-untyped-def]
    news, = load_question_file(_write(tmp_path, {**NEWS, "order": "rotate"}), bank)
    personas = pl.DataFrame({
        "persona_id": ["J0", "J1", "J2", "J3", "J4", "D0", "D1"],
        "country": ["JPN"] * 5 + ["DEU"] * 2, "kind": ["value"] * 7,
        "nationality": [True] * 7, "text": ["a persona"] * 7})
    from valuesim.survey.new_questions import extend_bank

    asked = extend_bank(bank, [news])
    units = plan_prompts("value", personas, asked, ["NEWS", "Q164"], ["JPN", "DEU"])
    options = {u.persona_id: u.messages[1].content.split("\n\n")[1]
               for u in units if u.question == "NEWS"}
    assert options == {
        "J0": "Options: 1=Television, 2=Newspapers, 3=Social media, 4=Radio",
        "J1": "Options: 2=Newspapers, 3=Social media, 4=Radio, 1=Television",
        "J2": "Options: 3=Social media, 4=Radio, 1=Television, 2=Newspapers",
        "J3": "Options: 4=Radio, 1=Television, 2=Newspapers, 3=Social media",
        "J4": "Options: 1=Television, 2=Newspapers, 3=Social media, 4=Radio",
        "D0": "Options: 1=Television, 2=Newspapers, 3=Social media, 4=Radio",  # per country
        "D1": "Options: 2=Newspapers, 3=Social media, 4=Radio, 1=Television",
    }
    # the answers stay the codes in code order, so scoring does not change with the listing
    assert {u.answers for u in units if u.question == "NEWS"} == {("1", "2", "3", "4")}
    # an ordinal item in the same plan is as it always was
    assert {u.messages[1].content for u in units if u.question == "Q164"} == {
        user_message(bank.item("Q164"))}


def test_the_plans_prompt_pairs_are_the_stages_prompts_rotation_included(tmp_path: Path, bank) -> None:  # type: ignore[no-untyped-def]
    # `valuesim plan` counts plan_prompt_messages, the simulate stage sends plan_prompts:
    # the same messages in the same order, a rotated item's per-offset text included, and
    # one shared message object per text (not two new ones per prompt)
    from valuesim.prompts import plan_prompt_messages
    from valuesim.survey.new_questions import extend_bank

    news, = load_question_file(_write(tmp_path, {**NEWS, "order": "rotate"}), bank)
    personas = pl.DataFrame({
        "persona_id": ["J0", "J1", "J2", "J3", "J4", "D0", "D1"],
        "country": ["JPN"] * 5 + ["DEU"] * 2, "kind": ["value"] * 7,
        "nationality": [True] * 7, "text": ["a persona", "b", "c", "d", "e", "f", "a persona"]})
    asked = extend_bank(bank, [news])
    args = ("value", personas, asked, ["NEWS", "Q164", "Q1"], ["JPN", "DEU"])
    units = plan_prompts(*args)
    pairs = plan_prompt_messages(*args)
    assert pairs == [(u.messages, u.answers) for u in units]
    assert len({u.messages[1].content for u in units if u.question == "NEWS"}) == 4
    assert len({id(m[1]) for m, _ in pairs}) == 5 + 2  # NEWS at offsets 0-4, Q164, Q1


def test_first_listed_share_reads_each_persona_at_its_own_first_option() -> None:
    # persona k saw the list from its (k mod 3)-th answer; the flagged one is left out
    dists = [([0.6, 0.2, 0.2], False), ([0.1, 0.7, 0.2], False), ([0.5, 0.5, 0.0], True),
             ([0.4, 0.3, 0.3], False)]
    assert first_listed_share(dists) == pytest.approx((0.6 + 0.7 + 0.4) / 3)
    assert first_listed_share([([0.5, 0.5], True)]) is None


MEDIA = {**NEWS, "id": "MEDIA_USED", "label": "News media used",
         "text": "Which of these do you use to follow the news?", "type": "multi"}


def test_a_multi_item_is_asked_as_one_yes_no_item_per_option(tmp_path: Path, bank) -> None:  # type: ignore[no-untyped-def]
    from valuesim.survey.question_types import OptionItem

    items = load_question_file(_write(tmp_path, MEDIA, NEWS), bank)
    options, news = items[:4], items[4]
    assert [i.id for i in options] == ["MEDIA_USED.1", "MEDIA_USED.2", "MEDIA_USED.3", "MEDIA_USED.4"]
    assert news.id == "NEWS"
    for item, label in zip(options, ("Television", "Newspapers", "Social media", "Radio"), strict=True):
        assert isinstance(item, OptionItem)
        assert (item.type, item.order, item.roles) == ("binary", "fixed", [])
        assert (item.part_of, item.part_label, item.option.label) == ("MEDIA_USED", "News media used", label)
        assert item.label == f"News media used: {label}"
        assert [(a.code, a.label) for a in item.answers] == [(1, "Yes"), (2, "No")]
    assert user_message(options[2]) == (
        "Question:\nWhich of these do you use to follow the news? (Select all that apply.)\n"
        'Do you select "Social media"?\n\n'
        "Options: 1=Yes, 2=No\n\nRespond with ONLY the single integer (1-2):")
    # a text that already says so is not told twice
    said = load_question_file(_write(tmp_path, {**MEDIA, "text": "Which do you use? Select all that apply."}), bank)
    assert user_message(said[0]).startswith(
        'Question:\nWhich do you use? Select all that apply.\nDo you select "Television"?\n\n')
    # the ids are question ids: they become file names and column values downstream
    from valuesim.names import question_id_problem

    assert all(question_id_problem(i.id) is None for i in options)
    # order: fixed (the default) is harmless: each option is asked alone anyway
    assert len(load_question_file(_write(tmp_path, {**MEDIA, "order": "fixed"}), bank)) == 4


@pytest.mark.parametrize(("change", "message"), [
    ({"answers": [{"code": 1, "label": "Television"}]},
     "item MEDIA_USED: answers: 1 given, a multi item needs at least two options; ask a single "
     "option as a binary item ('Yes'/'No')"),
    ({"answers": [{"code": 1, "label": "Television"}, {"code": 2}]},
     "item MEDIA_USED: answer code 2 has no label; a multi item names every option"),
    ({"order": "rotate"}, "item MEDIA_USED: order does not apply to a multi item: each option is "
     "asked on its own (Yes/No), so no list is shown to rotate; drop order"),
    ({"missing": {-1: "dont_know"}}, "item MEDIA_USED: missing does not apply to a multi item: each "
     "option is asked as Yes/No, and not selecting it is No; drop missing"),
    ({"id": "M" * 63}, "its options are asked as " + "M" * 63 + ".1-like ids, which must be at most "
     "64 characters; shorten the id"),
])
def test_a_bad_multi_item_is_one_line_naming_the_fix(
    tmp_path: Path, bank, change: dict[str, object], message: str  # type: ignore[no-untyped-def]
) -> None:
    path = _write(tmp_path, {**MEDIA, **change})
    with pytest.raises(QuestionFileError) as err:
        load_question_file(path, bank)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_a_multi_options_id_that_clashes_is_refused(tmp_path: Path, bank) -> None:  # type: ignore[no-untyped-def]
    path = _write(tmp_path, MEDIA, {**NEWS, "id": "MEDIA_USED.2"})
    with pytest.raises(QuestionFileError) as err:
        load_question_file(path, bank)
    assert "item MEDIA_USED.2: id appears twice in the file" in str(err.value)
