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
"""

from __future__ import annotations

from collections.abc import Sequence

from valuesim.survey.bank import Answer, Item

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
