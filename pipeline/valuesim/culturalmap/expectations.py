"""Expected Inglehart-Welzel item values from simulated answer distributions.

Figure 1 places each (model, method, country) on the cultural map with
``IWTransform.project_expected``, which needs the expected value of each of the ten
map items. Eight are asked directly; the two indexes are built from their WVS source
items exactly as the WVS builds them (``valuesim.survey.derived``):

* **Y003** (autonomy) = (Q15 + Q17) - (Q8 + Q14) on the 1 = mentioned / 2 = not
  mentioned codes, i.e. m8 + m14 - m15 - m17 with m = 1 when mentioned. By linearity
  of expectation E[Y003] = P(Q8) + P(Q14) - P(Q15) - P(Q17) (P = probability of
  "mentioned"), exact whatever the dependence between the four answers.
* **Y002** (post-materialism) is a non-linear function of the first *and* second
  choice (Q154, Q155), so it needs their joint distribution. The model is asked the
  first choice, then, in the same conversation after answering ``a``, the second
  choice among the other three aims. E[Y002] = sum_a P(a) sum_b P(b | a) y(a, b) is
  then the exact chain rule of the model's own sequential answers: no independence
  assumption is made.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from valuesim.errors import DataError

DIRECT_ITEMS: tuple[str, ...] = ("Q164", "Q184", "Q254", "Q45", "Q182", "Q209", "Q57", "Q46")
AUTONOMY_PLUS: tuple[str, ...] = ("Q8", "Q14")  # independence, determination/perseverance
AUTONOMY_MINUS: tuple[str, ...] = ("Q15", "Q17")  # religious faith, obedience
FIRST_AIM, SECOND_AIM = "Q154", "Q155"
AIMS: tuple[int, ...] = (1, 2, 3, 4)  # order, say, prices, free speech
MENTIONED = 1
# every item a map prompt asks (Q155 is asked once per possible first choice)
ASKED_ITEMS: tuple[str, ...] = (*DIRECT_ITEMS, *AUTONOMY_PLUS, *AUTONOMY_MINUS, FIRST_AIM, SECOND_AIM)


def postmaterialist_value(first: int, second: int) -> int:
    """Y002 of one (first, second) pair, as ``derived.postmaterialist_index``:
    both materialist aims (1, 3) -> 1, both post-materialist (2, 4) -> 3, a mix -> 2."""
    pair = {first, second}
    if pair == {1, 3}:
        return 1
    if pair == {2, 4}:
        return 3
    return 2


def expected_autonomy(p_mentioned: Mapping[str, float]) -> float:
    """E[Y003] from each source item's probability of "mentioned" (exact, by linearity)."""
    return sum(p_mentioned[i] for i in AUTONOMY_PLUS) - sum(p_mentioned[i] for i in AUTONOMY_MINUS)


def expected_postmaterialism(
    first: Mapping[int, float], second_given: Mapping[int, Mapping[int, float]]
) -> float:
    """E[Y002] = sum_a P(first=a) sum_b P(second=b | first=a) y(a, b).

    ``second_given[a]`` is the second-choice distribution after first choice ``a``
    (over the other three aims); a first choice with probability 0 may be absent.
    """
    total = 0.0
    for a, pa in first.items():
        if pa == 0.0:
            continue
        if a not in second_given:
            raise DataError(f"no second-choice distribution after first choice {a} (Q155 | Q154={a})")
        total += pa * sum(pb * postmaterialist_value(a, b) for b, pb in second_given[a].items())
    return total


def _expected_code(codes: list[int], probs: list[float]) -> float:
    return float(np.dot(codes, probs))


def _persona_items(rows: pl.DataFrame) -> dict[str, float]:
    """Expected map items of one persona (or country prompt) from its unflagged rows."""
    by_q: dict[tuple[str, int | None], tuple[list[int], list[float]]] = {
        (q, g): (c, p) for q, g, c, p in rows.select("question", "given", "codes", "probs").iter_rows()
    }
    out = {q: _expected_code(*by_q[(q, None)]) for q in DIRECT_ITEMS if (q, None) in by_q}
    sources = (*AUTONOMY_PLUS, *AUTONOMY_MINUS)
    if all((q, None) in by_q for q in sources):
        mentioned = {}
        for q in sources:
            codes, probs = by_q[(q, None)]
            mentioned[q] = probs[codes.index(MENTIONED)]
        out["Y003"] = expected_autonomy(mentioned)
    if (FIRST_AIM, None) in by_q and all((SECOND_AIM, a) in by_q for a in AIMS):
        first = dict(zip(*by_q[(FIRST_AIM, None)], strict=True))
        second = {a: dict(zip(*by_q[(SECOND_AIM, a)], strict=True)) for a in AIMS}
        out["Y002"] = expected_postmaterialism(first, second)
    return out


def expected_map_items(map_answers: pl.DataFrame) -> pl.DataFrame:
    """country, item, expected, n_personas: the equal-weight mean over personas of
    each persona's expected item value (= the expected value under the country's
    population distribution, by linearity). Flagged answers are left out; an index
    is left out for a persona missing any of its source answers."""
    usable = map_answers.filter(pl.col("flag") == "")
    rows = []
    for (country,), grp in usable.group_by(["country"], maintain_order=True):
        values: dict[str, list[float]] = {}
        for (_,), persona in grp.group_by(["persona_id"], maintain_order=True):
            for item, v in _persona_items(persona).items():
                values.setdefault(item, []).append(v)
        rows += [
            {"country": country, "item": item, "expected": float(np.mean(v)), "n_personas": len(v)}
            for item, v in values.items()
        ]
    schema = {"country": pl.Utf8, "item": pl.Utf8, "expected": pl.Float64, "n_personas": pl.Int64}
    return pl.DataFrame(rows, schema=schema).sort(["country", "item"])
