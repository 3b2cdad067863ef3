"""WVS-7 questionnaire sections ("batteries"): which block of related items an item is in.

The prediction intervals of :mod:`valuesim.analysis.conformal` are validated by holding
out whole batteries as well as single questions: a new item from another section of
the questionnaire is the case that breaks the exchangeability of questions.

The sections and their first and last Q-numbers are those of the WVS-7 master
questionnaire (../shared/data/wvs7/master_questionnaire.txt, one heading per section;
each range starts at the first Q of its heading and ends before the next heading's
first Q). Items past Q290 (the optional modules), items that are not Q-numbers and
anything else are ``"other"``, except the few derived and sampling variables the bank
names explicitly below. An item may set ``battery:`` itself (bank or question file);
that wins.
"""

from __future__ import annotations

import re

# (name, first Q, last Q) in questionnaire order
SECTIONS: tuple[tuple[str, int, int], ...] = (
    ("social_values", 1, 45),
    ("wellbeing", 46, 56),
    ("social_capital_trust", 57, 105),
    ("economic_values", 106, 111),
    ("corruption", 112, 120),
    ("migration", 121, 130),
    ("security", 131, 151),
    ("postmaterialism", 152, 157),
    ("science_technology", 158, 163),
    ("religious_values", 164, 175),
    ("ethical_values", 176, 198),
    ("political_participation", 199, 234),
    ("political_culture", 235, 259),
    ("demographics", 260, 290),
)
OTHER = "other"
BATTERIES: tuple[str, ...] = (*(name for name, _, _ in SECTIONS), OTHER)
# Variables of the bank that are not Q-numbers: the indexes are built from one section's
# items (Y002 from Q154/Q155, Y003 from the child qualities Q7-Q17), the urban/rural
# stratum is a sampling variable reported with the demographics.
DERIVED: dict[str, str] = {"Y002": "postmaterialism", "Y003": "social_values", "H_URBRURAL": "demographics"}
# Q-number ids: Q57, and the WVS variants Q82_AFRICANUNION, Q288R, Q33_3
_QNUMBER = re.compile(r"^Q(\d+)(?:[A-Z]?|_[A-Za-z0-9_]+)$")


def battery_of(item_id: str, explicit: str | None = None) -> str:
    """The questionnaire section of ``item_id``; ``explicit`` (an item's own
    ``battery:``) wins when given."""
    if explicit:
        return explicit
    if item_id in DERIVED:
        return DERIVED[item_id]
    match = _QNUMBER.match(item_id)
    if match is None:
        return OTHER
    number = int(match.group(1))
    for name, first, last in SECTIONS:
        if first <= number <= last:
            return name
    return OTHER
