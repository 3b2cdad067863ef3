"""Question files: new survey items a user writes, to ask models about (issue 12).

A question file is YAML in the question bank's own item format, so an item can later
move into the bank unchanged::

    items:
    - id: AI_TRUST                      # letters, digits, _ . - ; not a WVS bank id
      label: Trust in AI systems        # optional short name (default: the text)
      text: How much do you trust decisions made by artificial intelligence systems?
      answers:                          # at least two, in ascending code order
      - {code: 1, label: Trust completely}
      - {code: 2, label: Trust somewhat}
      - {code: 3, label: Do not trust very much}
      - {code: 4, label: Do not trust at all}
      missing: {-1: dont_know}          # optional: codes that are not answers
      battery: science_technology       # optional: the questionnaire section it belongs to
      type: ordinal                     # optional: ordinal (default), nominal, binary or multi
      order: fixed                      # optional: rotate (nominal/binary) rotates per persona
    - Q164                              # a WVS item of the bank, asked as the bank words it

``type`` says how the answers relate (:mod:`valuesim.survey.question_types`):
``ordinal`` (a scale, the default), ``nominal`` (unordered categories, asked as
"Options: ..." and summarised by shares and the modal answer, with no expected value)
or ``binary`` (exactly two options, summarised by the share of the first). A nominal
or binary item lists every answer with its label; ``order: rotate`` lists them rotated
by one place per persona, to measure order effects (``fixed``, the file's order, is
the default). ``multi`` (select all that apply) lists the options, each labelled, and
is asked as one binary Yes/No item per option, ``<id>.<code>``
(:func:`valuesim.survey.question_types.expand_multi`): the file's one item is that
many items to ask, plan and report (its answers are its options; it has no
``missing`` codes and no ``order``, since no list is shown).

The file holds a list under ``items:``, a plain list, or one item mapping. An answer
without ``label`` is an unlabelled scale point: the bank writes such points (the
middle of WVS 10-point scales) with their number as label and the prompt shows only
the labelled points; an explicitly empty label is an error.

Roles: a new item gets ``roles=[]``. The bank's roles select what the study evaluates
(``target``), builds personas from (``persona``) or describes respondents with
(``sociodemographic``); a new item is none of these, so even in a bank extended with
it (:func:`extend_bank`) no study step picks it up by role. A plain WVS id resolves
to the bank's own item, roles included.

Every problem is a :class:`QuestionFileError` with one line naming the file, the item
and the field. Positions are 0-based, as in YAML paths and Python: an item is named by
its id, or ``items[0]`` for the first item when it has none; ``answers[1]`` is an
item's second answer (the ``- {code: 2, ...}`` line), whatever its code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from pydantic import ValidationError

from valuesim import safe_yaml
from valuesim.errors import ConfigError
from valuesim.names import clip, listing, question_id_problem, shorten
from valuesim.survey.bank import (
    MAX_CODE,
    Answer,
    AnswerOrder,
    Item,
    MissingReason,
    QuestionBank,
    QuestionType,
)
from valuesim.survey.question_types import MULTI, expand_multi

if TYPE_CHECKING:
    import polars as pl

    from valuesim.config import Params
    from valuesim.prompts import PromptUnit

ITEM_FIELDS = ("id", "label", "text", "answers", "missing", "battery", "type", "order")
ANSWER_FIELDS = ("code", "label")
MISSING_REASONS: tuple[str, ...] = get_args(MissingReason)
# the bank's types and multi, which a question file asks as binary items (question_types)
QUESTION_TYPES: tuple[str, ...] = (*get_args(QuestionType), MULTI)
# Ids become column values and file names downstream: valuesim.names.question_id_problem
_BATTERY = re.compile(r"^[a-z][a-z0-9_]*$")
_LABEL_FROM_TEXT = 60  # characters of the text used as label when none is given


class QuestionFileError(ConfigError):
    """A question file that cannot be used; the message names file, item and field."""


def _fail(path: Path, where: str, message: str) -> QuestionFileError:
    return QuestionFileError(f"{path}: {where}: {message}")


def _entries(raw: object, path: Path) -> list[object]:
    """The item entries of a parsed file, whichever of the three layouts it uses."""
    if isinstance(raw, Mapping) and "items" in raw:
        extra = sorted(str(k) for k in raw if k not in ("items", "version", "source"))
        if extra:
            raise _fail(path, "file", f"unknown top-level key(s) {listing(extra)}; "
                        "use `items:` (and optionally version, source)")
        raw = raw["items"]
        if not isinstance(raw, list):
            raise _fail(path, "file", "`items` must be a list of items")
    elif isinstance(raw, Mapping) and not any(k in raw for k in ITEM_FIELDS):
        keys = listing(sorted(str(k) for k in raw)) or "none"
        raise _fail(path, "file", f"unknown top-level key(s) {keys}; list the items under `items:`")
    if isinstance(raw, list):
        entries = raw
    elif isinstance(raw, Mapping | str):
        entries = [raw]
    else:
        raise _fail(path, "file", "expected `items:` with a list of items, a list, or one item mapping")
    if not entries:
        raise _fail(path, "file", "no items; add at least one")
    return entries


def _is_int(value: object) -> bool:
    # YAML `true` is a bool, which Python counts as an int: not an answer code
    return isinstance(value, int) and not isinstance(value, bool)


def _code_problem(code: object) -> str | None:
    """Why ``code`` cannot be an answer or missing code, or None."""
    if not _is_int(code):
        return f"{shorten(code)} is not an integer"
    if abs(code) > MAX_CODE:  # type: ignore[arg-type]
        return f"{shorten(code)} is out of range; codes are integers from -{MAX_CODE:,} to {MAX_CODE:,}"
    return None


def _text(value: object, where: str, field: str, path: Path, limit: int = safe_yaml.MAX_LABEL) -> str:
    if isinstance(value, bool):
        # YAML 1.1 reads an unquoted Yes/No/On/Off/True/False as a boolean, not a word
        word = "Yes" if value else "No"
        name = field.rpartition(".")[2]
        raise _fail(path, where, f"{field} is the YAML boolean {str(value).lower()}: quote it: "
                    f"{name}: '{word}'")
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, where, f"{field} is empty; write it out")
    long = safe_yaml.too_long(value.strip(), limit)
    if long:
        raise _fail(path, where, f"{field} {long}")
    return value.strip()


def _answers(raw: object, where: str, path: Path) -> list[Answer]:
    if not isinstance(raw, list):
        raise _fail(path, where, "answers must be a list of {code, label} entries")
    if len(raw) < 2:
        raise _fail(path, where, f"answers: {len(raw)} given, an item needs at least two")
    answers: list[Answer] = []
    for k, entry in enumerate(raw):  # 0-based, as every position in these messages
        at = f"answers[{k}]"
        if not isinstance(entry, Mapping):
            raise _fail(path, where, f"{at} must be a mapping with code and label")
        unknown = sorted(str(x) for x in entry if x not in ANSWER_FIELDS)
        if unknown:
            raise _fail(path, where, f"{at}: unknown field(s) {listing(unknown)}; use code and label")
        code = entry.get("code")
        problem = _code_problem(code)
        if problem:
            raise _fail(path, where, f"{at}.code {problem}")
        assert isinstance(code, int)
        if "label" in entry:
            label = entry["label"]
            if _is_int(label):  # `label: 5` on an unlabelled point
                label = str(label)
            label = _text(label, where, f"{at}.label", path)
        else:
            label = str(code)  # an unlabelled scale point, as the bank writes them
        answers.append(Answer(code=code, label=label))
    codes = [a.code for a in answers]
    dup = sorted({c for c in codes if codes.count(c) > 1})
    if dup:
        raise _fail(path, where, f"answers: code(s) {', '.join(map(str, dup))} appear twice")
    if codes != sorted(codes):
        raise _fail(path, where, f"answers: codes {codes} are not in ascending order; list the "
                    "answers in scale order, lowest code first")
    return answers


def _missing(raw: object, codes: Sequence[int], where: str, path: Path) -> dict[int, MissingReason]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(path, where, "missing must map codes to reasons, e.g. {-1: dont_know}")
    out: dict[int, Any] = {}
    for code, reason in raw.items():
        problem = _code_problem(code)
        if problem:
            raise _fail(path, where, f"missing: code {problem}")
        if reason not in MISSING_REASONS:
            raise _fail(path, where, f"missing.{code}: reason {shorten(reason)}; choose from "
                        f"{', '.join(MISSING_REASONS)}")
        if code in codes:
            raise _fail(path, where, f"missing: code {code} is also an answer code")
        out[code] = reason
    return out


def _battery(raw: object, where: str, path: Path) -> str | None:
    """An item's ``battery:`` (validation holds out whole batteries): a WVS-7 section
    name of :mod:`valuesim.survey.batteries` or a plain name of the user's own."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not _BATTERY.match(raw):
        raise _fail(path, where, f"battery {shorten(raw)} is not a plain lower-case name such as "
                    "science_technology (letters, digits, _)")
    return raw


def _type(raw: object, answers: Sequence[Answer], where: str, path: Path) -> str:
    """An item's ``type:`` (default ordinal); a binary item needs exactly two answers,
    a multi item at least two options (as every item)."""
    if raw is None:
        return "ordinal"
    if raw not in QUESTION_TYPES:
        raise _fail(path, where, f"type {shorten(raw)}; choose from {', '.join(QUESTION_TYPES)}")
    if raw == "binary" and len(answers) != 2:
        raise _fail(path, where, f"type binary needs exactly two answers, {len(answers)} given; "
                    "use type nominal for more options")
    if raw != "ordinal":
        for answer in answers:  # named by code: positions are counted elsewhere
            if answer.label == str(answer.code):
                raise _fail(path, where, f"answer code {answer.code} has no label; a {raw} item "
                            "names every option")
    return raw  # type: ignore[return-value]


def _order(raw: object, kind: str, where: str, path: Path) -> AnswerOrder:
    """An item's ``order:``: fixed (the file's order, the default) or rotate."""
    if raw is None:
        return "fixed"
    if raw not in ("fixed", "rotate"):
        raise _fail(path, where, f"order {shorten(raw)}; choose fixed or rotate")
    if kind == MULTI and raw == "rotate":
        raise _fail(path, where, "order does not apply to a multi item: each option is asked on "
                    "its own (Yes/No), so no list is shown to rotate; drop order")
    if raw == "rotate" and kind == "ordinal":
        raise _fail(path, where, "order rotate is for nominal or binary items; a scale is "
                    "listed in its order (set type: nominal if the answers are unordered)")
    return raw  # type: ignore[return-value]


def _new_item(entry: Mapping[Any, Any], index: int, path: Path, bank: QuestionBank) -> list[Item]:
    """The item of one entry, or a multi item's one binary item per option."""
    item_id = entry.get("id")
    where = f"items[{index}]"
    if isinstance(item_id, bool):
        raise _fail(path, where, f"id is the YAML boolean {str(item_id).lower()}: quote it, or "
                    "choose an id such as AI_TRUST")
    if not isinstance(item_id, str) or not item_id.strip():
        raise _fail(path, where, "id is missing or empty; give every item an id")
    where = f"item {clip(item_id, 40)}"  # a long id is cut short here, and refused next
    problem = question_id_problem(item_id)
    if problem:
        raise _fail(path, where, problem)
    if item_id in bank.by_id:
        raise _fail(path, where, f"id clashes with the WVS item {item_id} of the question bank; "
                    f"write `- {item_id}` to ask the bank's item, or choose another id")
    unknown = sorted(str(k) for k in entry if k not in ITEM_FIELDS)
    if unknown:
        raise _fail(path, where, f"unknown field(s) {listing(unknown)}; an item has "
                    f"{', '.join(ITEM_FIELDS)}")
    text = _text(entry.get("text"), where, "text", path, safe_yaml.MAX_QUESTION_TEXT)
    given = entry.get("answers")
    if entry.get("type") == MULTI and isinstance(given, list) and len(given) < 2:
        raise _fail(path, where, f"answers: {len(given)} given, a multi item needs at least two "
                    "options; ask a single option as a binary item ('Yes'/'No')")
    answers = _answers(given, where, path)
    missing = _missing(entry.get("missing"), [a.code for a in answers], where, path)
    battery = _battery(entry.get("battery"), where, path)
    kind = _type(entry.get("type"), answers, where, path)
    order = _order(entry.get("order"), kind, where, path)
    if entry.get("label") is None:
        label = text if len(text) <= _LABEL_FROM_TEXT else text[: _LABEL_FROM_TEXT - 1] + "…"
    else:
        label = _text(entry.get("label"), where, "label", path)
    try:
        if kind == MULTI:
            if missing:
                raise _fail(path, where, "missing does not apply to a multi item: each option is "
                            "asked as Yes/No, and not selecting it is No; drop missing")
            return _options(expand_multi(item_id, label, text, answers, battery), where, path, bank)
        return [Item(id=item_id, roles=[], label=label, text=text, answers=answers, missing=missing,
                     battery=battery, type=kind, order=order)]  # type: ignore[arg-type]
    except ValidationError as exc:  # the checks above should have caught it; stay one line
        raise _fail(path, where, str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from exc
    except ValueError as exc:  # expand_multi: an option id that would be too long
        raise _fail(path, where, str(exc)) from exc


def _options(options: list[Item], where: str, path: Path, bank: QuestionBank) -> list[Item]:
    """A multi item's options, refused when one's id is an item of the bank."""
    for option in options:
        if option.id in bank.by_id:
            raise _fail(path, where, f"its option {option.id} clashes with the item of the same id "
                        "of the question bank; choose another id")
    return options


def _bank_item(item_id: str, path: Path, bank: QuestionBank) -> Item:
    where = f"item {clip(item_id, 40)}"
    item = bank.by_id.get(item_id.strip())
    if item is None:
        raise _fail(path, where, "not a WVS item of the question bank; write the item out "
                    "(id, text, answers) or use a bank id such as Q164")
    if item.numeric:
        raise _fail(path, where, "is numeric (no answer scale) and cannot be asked")
    return item


def parse_items(raw: object, path: str | Path, bank: QuestionBank) -> list[Item]:
    """The items of an already parsed question file (``path`` names it in errors)."""
    p = Path(path)
    items: list[Item] = []
    for index, entry in enumerate(_entries(raw, p)):  # 0-based: items[0] is the first
        if isinstance(entry, str):
            items.append(_bank_item(entry, p, bank))
        elif isinstance(entry, Mapping):
            items += _new_item(entry, index, p, bank)
        else:
            raise _fail(p, f"items[{index}]", "an item is a mapping (id, text, answers) or a WVS id")
    _refuse_duplicates(items, p)
    return items


def load_question_file(path: str | Path, bank: QuestionBank) -> list[Item]:
    """The items of one question file, validated (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise QuestionFileError(f"question file {p} not found; check the path")
    try:  # 5 MB, 20 levels, 2,000 characters a value, aliases within a budget (valuesim.safe_yaml)
        raw = safe_yaml.load_file(p, safe_yaml.QUESTION_FILE)
    except safe_yaml.YamlError as exc:
        raise QuestionFileError(str(exc)) from exc
    return parse_items(raw, p, bank)


def load_question_files(paths: Iterable[str | Path], bank: QuestionBank) -> list[Item]:
    """The items of several files in order; an id in two files is an error naming both."""
    items: list[Item] = []
    origin: dict[str, Path] = {}
    for path in paths:
        for item in load_question_file(path, bank):
            if item.id in origin:
                raise QuestionFileError(
                    f"{path}: item {item.id}: id duplicates the item of the same id in "
                    f"{origin[item.id]}; give one of them another id"
                )
            origin[item.id] = Path(path)
            items.append(item)
    if not items:
        raise QuestionFileError("no question files given; pass at least one")
    return items


def _refuse_duplicates(items: Sequence[Item], path: Path) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise _fail(path, f"item {item.id}", "id appears twice in the file; ids must be unique")
        seen.add(item.id)


def is_new(item: Item, bank: QuestionBank) -> bool:
    """Whether ``item`` is a user's new item rather than an item of the bank."""
    return item.id not in bank.by_id


def extend_bank(bank: QuestionBank, items: Iterable[Item]) -> QuestionBank:
    """``bank`` plus the new ones of ``items`` (bank items are already in it), so that
    prompt planning, which looks items up by id, can ask them."""
    new = [i for i in items if is_new(i, bank)]
    if not new:
        return bank
    return QuestionBank(version=bank.version, source=bank.source, items=[*bank.items, *new])


def plan_items(
    params: Params, method: str, personas: pl.DataFrame, bank: QuestionBank,
    items: Sequence[Item], countries: Sequence[str],
) -> tuple[QuestionBank, list[PromptUnit]]:
    """The bank extended with the new items, and every prompt of ``items`` for
    ``personas`` (or, for a country-level method, each country), as simulate plans them."""
    from valuesim.prompts import plan_prompts

    asked = extend_bank(bank, items)
    units = plan_prompts(method, personas, asked, [i.id for i in items], list(countries),
                         params.prompts.guidance)
    return asked, units
