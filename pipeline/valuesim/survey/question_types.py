"""Question types: what a summary of an item's answers may claim.

An item's ``type`` (:class:`valuesim.survey.bank.Item`) says how its answers relate:

- ``ordinal``: points on a scale (every WVS item of the bank, and the default). The
  codes are the scale values, so the expected answer, the normalized variance, the
  mean-preserving tilt of calibration and the prediction interval of the mean apply.
- ``nominal``: unordered categories ("Television / Newspapers / Social media /
  Radio"). The codes only name the categories, so a mean or a variance of them
  means nothing: an item is summarised by the share of each category and its modal
  answer. The prompt lists the answers as "Options", not as a scale.
- ``binary``: two options ("Yes / No"), summarised by the share of the first.

All three are asked the same way otherwise: the model answers with one integer code,
so the exact answer distribution (answer_start, coverage) is the same machinery.
Calibration is skipped for nominal and binary items: the tilt keeps each persona's
expected *code*, which is no quantity on unordered categories, and on two options a
tilt that keeps the mean keeps both shares (it does nothing).

Answers are listed in the file's order; a nominal or binary item with
``order: rotate`` lists them rotated by one place per persona (the k-th persona of a
country sees the list starting at its (k mod n)-th answer), so that every answer is
listed first equally often and the share given to whichever answer comes first
(``first_listed_share``) measures the order effect.

A question file's ``multi`` item (select all that apply) is no fourth kind of answer:
it is asked as one binary item per option (:func:`expand_multi`), each an
:class:`OptionItem` that asks whether the persona selects that option (``1=Yes,
2=No``), with the id ``<item id>.<option code>`` (``MEDIA_USED.3``: a question id,
:func:`valuesim.names.question_id_problem`, stable while the codes are). The share of
"Yes" is the share selecting the option; the options' shares need not sum to one.
Asking the options one at a time is the forced-choice form of a check-all question
(every option gets an explicit answer), so an option is never "not selected" only
because it was passed over.
"""

from __future__ import annotations

from collections.abc import Sequence

from valuesim import safe_yaml
from valuesim.names import question_id_problem
from valuesim.survey.bank import Answer, Item

#: the type a question file may give besides the bank's (ordinal, nominal, binary)
MULTI = "multi"
#: what every option of a multi item is asked: selected (the share summarised) or not
YES_NO = (Answer(code=1, label="Yes"), Answer(code=2, label="No"))
# the instruction added to a multi item's text, unless the text already says it
_SELECT_ALL = "(Select all that apply.)"

#: why nominal and binary rows have no expected value, variance or interval
NO_SCALE = ("{kind} item: its codes name unordered options, so there is no expected "
            "answer, variance or prediction interval; see the shares and the modal answer")
#: why calibration leaves nominal and binary items raw
NO_TILT = ("calibration skipped for {ids} ({kinds}): the mean-preserving tilt keeps each "
           "persona's expected code, which means nothing for unordered options (and on two "
           "options keeps both shares); their shares are raw")


def has_scale(item: Item) -> bool:
    """Whether means, variances, tilts and intervals of ``item``'s codes mean anything."""
    return item.type == "ordinal"


def no_scale_reason(item_type: str) -> str:
    """One line: why a ``item_type`` row has no expected value or interval."""
    if item_type == MULTI:
        return ("multi item option: asked as Yes/No, so there is no expected answer, variance "
                "or prediction interval; the share selecting it is the share of Yes")
    return NO_SCALE.format(kind=item_type)


def listed(answers: Sequence[Answer], offset: int) -> list[Answer]:
    """``answers`` in the order a prompt lists them: rotated left by ``offset``."""
    if not answers:
        return []
    k = offset % len(answers)
    return [*answers[k:], *answers[:k]]


def modal(probs: Sequence[float]) -> tuple[int, float]:
    """The modal answer's position and share (the first of equal shares)."""
    position = max(range(len(probs)), key=probs.__getitem__)
    return position, float(probs[position])


def first_listed_share(dists: Sequence[tuple[Sequence[float], bool]]) -> float | None:
    """The mean share the usable personas of one cell gave the answer their prompt listed
    first; ``dists``: (probs in code order, flagged) in persona order, the k-th persona
    having seen the answers from the (k mod n)-th on (:func:`valuesim.prompts.plan_prompts`).
    1/n means no order effect; above it, a primacy effect. None: no usable persona."""
    shares = [float(probs[k % len(probs)]) for k, (probs, flagged) in enumerate(dists) if not flagged]
    return sum(shares) / len(shares) if shares else None


class OptionItem(Item):
    """One option of a question file's ``multi`` item, asked as a binary Yes/No item:
    ``part_of``, ``part_label`` and ``part_text`` are the multi item's id, label and
    text as the file gives them, ``option`` the option (its code and label)."""

    part_of: str
    part_label: str
    part_text: str
    option: Answer


def option_id(item_id: str, code: int) -> str:
    """The id an option of multi item ``item_id`` is asked and reported under."""
    return f"{item_id}.{code}"


def option_text(text: str, option: str) -> str:
    """The question an option of a multi item asks: the item's text (told that any
    number of options may be chosen, unless it says so) and whether this one is."""
    stem = text if "all that apply" in text.lower() else f"{text} {_SELECT_ALL}"
    return f'{stem}\nDo you select "{option}"?'


def expand_multi(
    item_id: str, label: str, text: str, options: Sequence[Answer], battery: str | None,
) -> list[OptionItem]:
    """A multi item as the binary items it is asked as, one per option, in option order.
    Raises ValueError (one line) when an option's id would not be a question id."""
    longest = option_id(item_id, max(options, key=lambda a: len(str(a.code))).code)
    if question_id_problem(longest):
        raise ValueError(f"its options are asked as {longest}-like ids, which must be at most 64 "
                         "characters; shorten the id")
    def both(option: str) -> str:  # the item's and the option's label, within a label's length
        text = f"{label}: {option}"
        return text if len(text) <= safe_yaml.MAX_LABEL else text[: safe_yaml.MAX_LABEL - 1] + "…"

    return [
        OptionItem(id=option_id(item_id, a.code), roles=[], label=both(a.label),
                   text=option_text(text, a.label), answers=list(YES_NO), battery=battery,
                   type="binary", part_of=item_id, part_label=label, part_text=text, option=a)
        for a in options
    ]


def selected_share(probs: Sequence[float] | None) -> float | None:
    """The share selecting an option of a multi item: its "Yes" (the first answer)."""
    return None if probs is None else float(probs[0])
