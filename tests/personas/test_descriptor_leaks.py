"""The shipped value descriptor sets describe persona answers, never target answers.

A value descriptor is one sentence for one answer to one persona item (the ten
Inglehart-Welzel items of data/questions/wvs7.yaml). If a sentence also states or
paraphrases an answer to a *target* question (roles: target, the paper's Table 2), the
persona hands the model that answer and the evaluation scores the descriptor instead
of the simulation. For the nohedge set it also goes beyond the paper's nohedge
instruction (which only leaves broader associations unrestricted), and it biases every
hedge-vs-nohedge comparison (issue 13).

The rule, checked on every sentence of every shipped value set (data/descriptors/value_*.yaml):

1. No answer label of a target question, as a phrase (case-insensitive, on word
   boundaries). Numeric labels ("2" ... "9") and the scale words of GENERIC_LABELS are
   skipped: they are shared by many items, several of them persona items, and cannot be
   avoided.
2. No key word of a target question (TARGET_KEYWORDS: word-boundary patterns taken from
   the question's text, plus the usual paraphrases of its answers, e.g. "atheist" for
   Q173), unless
   a. the pattern also matches the persona item's own question text or answer labels
      (its own topic: "government" may appear in Y002's descriptors, since Y002 asks
      about "more say in important government decisions"; the short `label`, e.g.
      "Political action: Signing a petition", is a category name and does not count), or
   b. (set, item, answer, pattern name) is in ALLOWED: a hedged sentence whose hedge
      names the inference it denies ("... which does not mean you are especially
      interested or active in politics").

Belief in God (God, faith, believe) is the topic of the persona item Q164 and not a
key word; religious identity (Q173), religious practice (Q171) and the word "religion"
(Q6, importance of religion) are.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from valuesim.personas import descriptors
from valuesim.survey.bank import Item, QuestionBank

SETS_GLOB = "data/descriptors/value_*.yaml"

# Target answer labels that are scale words, skipped by rule 1 (lower case).
GENERIC_LABELS: frozenset[str] = frozenset({
    # importance scale, Q1-Q6; the persona item Q164 has the same end labels
    "very important", "rather important", "not very important", "not at all important",
    # agreement scale, Q28
    "agree strongly", "agree", "disagree", "strongly disagree",
    # evaluation scales, Q47 (health) and Q235-Q238 (ways of governing)
    "very good", "good", "fair", "poor", "very poor", "fairly good", "fairly bad", "very bad",
    # amount scale, Q64-Q77 (confidence) and Q48's end points
    "a great deal", "quite a lot", "not very much", "none at all",
    # justifiability scale, Q180-Q187; the persona items Q182 and Q184 use the same labels
    "never justifiable", "always justifiable",
    # political action scale, Q210/Q211; the persona item Q209 uses the same labels
    "have done", "might do", "would never do",
})

# Key words per target question: regular expressions, matched case-insensitively on
# word boundaries (r"\b(?:pattern)\b").
TARGET_KEYWORDS: dict[str, tuple[str, ...]] = {
    "Q1": (r"famil(?:y|ies)",),                                   # importance of family
    "Q2": (r"friends?", r"friendships?"),                         # importance of friends
    "Q3": (r"leisure", r"free time", r"hobb(?:y|ies)"),           # importance of leisure time
    "Q4": (r"politic\w*",),                                       # importance of politics
    "Q5": (r"work\w*", r"jobs?", r"careers?"),                    # importance of work
    "Q6": (r"religions?",),                                       # importance of religion
    "Q28": (r"mothers?",),                                        # working mother, children suffer
    "Q47": (r"health\w*",),                                       # state of health
    "Q48": (r"freedom of choice", r"control over", r"in control"),  # control over one's life
    "Q49": (r"satisf\w*", r"dissatisf\w*", r"content(?:ed|ment)?", r"(?:with|about) (?:your )?life"),
    "Q64": (r"church\w*", r"religious institutions?"),            # confidence: churches
    "Q66": (r"press", r"media", r"journalis\w*", r"newspapers?"),  # confidence: press
    "Q69": (r"police",),                                          # confidence: police
    "Q70": (r"courts?", r"justice system", r"judges", r"judiciary"),  # confidence: courts
    "Q71": (r"government\w*", r"those in power"),                 # confidence: government
    "Q73": (r"parliament\w*",),                                   # confidence: parliament
    "Q74": (r"civil serv\w*", r"bureaucra\w*"),                   # confidence: civil service
    "Q77": (r"companies", r"corporations?", r"big business"),     # confidence: major companies
    "Q106": (r"incomes?", r"inequalit\w*"),                       # income equality
    "Q107": (r"ownership", r"privati[sz]\w*", r"state-owned"),    # private vs state ownership
    "Q108": (r"provide for", r"provided for", r"welfare"),        # government vs own responsibility
    "Q109": (r"competit\w*",),                                    # competition good or harmful
    "Q171": (r"religious services?", r"attend\w*", r"worship\w*", r"pray\w*",
             r"churchgo\w*", r"mosques?", r"synagogues?", r"temples?"),  # attendance
    "Q173": (r"religious (?:person|people|identity)", r"atheis\w*", r"agnostic\w*",
             r"secular\w*", r"devout\w*", r"(?:non-?|un)?believers?", r"religiosity",
             r"pious"),                                           # religious person / atheist
    "Q180": (r"tax\w*",),                                         # cheating on taxes
    "Q181": (r"brib\w*", r"corrupt\w*"),                          # accepting a bribe
    "Q185": (r"divorc\w*",),                                      # divorce
    "Q187": (r"suicid\w*",),                                      # suicide
    "Q199": (r"politic\w*", r"public (?:issues|affairs)", r"current affairs"),  # interest in politics
    "Q210": (r"boycott\w*",),                                     # joining boycotts
    "Q211": (r"demonstrat\w*", r"protest\w*", r"march\w*"),       # attending demonstrations
    "Q235": (r"strong leaders?", r"elections?"),                  # strong leader
    "Q236": (r"experts?", r"technocra\w*"),                       # experts decide
    "Q237": (r"army", r"military"),                               # army rule
    "Q238": (r"democra\w*",),                                     # democratic system
}

# (set file name, item, answer code, pattern): hedges that name the inference they deny.
ALLOWED: frozenset[tuple[str, str, int, str]] = frozenset({
    # "... though this is about upbringing and not a general political outlook."
    ("value_handwritten.yaml", "Y003", -2, r"politic\w*"),
    # "... though this concerns upbringing and not your broader politics."
    ("value_handwritten.yaml", "Y003", 2, r"politic\w*"),
    # "... does not by itself define your wider politics or religiosity."
    ("value_handwritten.yaml", "Q184", 10, r"politic\w*"),
    ("value_handwritten.yaml", "Q184", 10, r"religiosity"),
    ("value_handwritten.yaml", "Q182", 10, r"politic\w*"),
    ("value_handwritten.yaml", "Q182", 10, r"religiosity"),
    # "... need not imply a broadly conservative or religious identity."
    ("value_handwritten.yaml", "Q182", 1, r"religious (?:person|people|identity)"),
    # the paper's own hedge example: a petition "does not mean you are especially
    # interested or active in politics" / "without being particularly drawn to political activity"
    ("value_handwritten.yaml", "Q209", 1, r"politic\w*"),
    ("value_handwritten.yaml", "Q209", 2, r"politic\w*"),
    # "... which reflects your own feelings rather than a political cause you pursue."
    ("value_handwritten.yaml", "Q254", 4, r"politic\w*"),
    # "You feel very happy with your life taken all together": close to Q46's own WVS
    # wording ("taking all things together"), but "with your life" brushes Q49 (life
    # satisfaction). Kept for now because this is the default set: rewording it changes
    # every persona prompt with Q46=1 and so every number of the shipped demo study;
    # the rewrite belongs with the rest of issue 13's descriptor pass.
    ("value_handwritten.yaml", "Q46", 1, r"(?:with|about) (?:your )?life"),
})


def _word(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE)


def _own_topic(item: Item) -> str:
    return " ".join([item.text, *(a.label for a in item.answers)])


def leaks(set_name: str, item: Item, code: int, sentence: str, bank: QuestionBank) -> list[str]:
    """Every way one sentence states or names a target answer (empty when clean)."""
    found: list[str] = []
    own = _own_topic(item)
    for target in bank.targets:
        for ans in target.answers:
            label = ans.label.strip()
            if label.isdigit() or label.lower() in GENERIC_LABELS:
                continue
            if _word(re.escape(label)).search(sentence):
                found.append(f"answer label {target.id}={ans.code} {label!r}")
        for pattern in TARGET_KEYWORDS.get(target.id, ()):
            rx = _word(pattern)
            hit = rx.search(sentence)
            if hit is None or rx.search(own) or (set_name, item.id, code, pattern) in ALLOWED:
                continue
            found.append(f"{target.id} key word {hit.group(0)!r}")
    return found


def _shipped_sets(root: Path, bank: QuestionBank) -> list[tuple[str, descriptors.DescriptorSet]]:
    paths = sorted(root.glob(SETS_GLOB))
    assert len(paths) >= 3, f"expected the hand-written value sets under {SETS_GLOB}"
    return [(p.name, descriptors.load(p, bank, kind="value")) for p in paths]


def test_no_shipped_descriptor_states_a_target_answer(root: Path, shipped_bank: QuestionBank) -> None:
    problems: list[str] = []
    for name, ds in _shipped_sets(root, shipped_bank):
        for item in descriptors.covered_items(shipped_bank, "value"):
            for code, sentence in ds.items[item.id].items():
                for leak in leaks(name, item, code, sentence, shipped_bank):
                    problems.append(f"{name} {item.id}={code}: {leak}: {sentence!r}")
    assert not problems, "descriptors name target answers:\n" + "\n".join(problems)


def test_allowlist_entries_are_all_still_needed(root: Path, shipped_bank: QuestionBank) -> None:
    sets = dict(_shipped_sets(root, shipped_bank))
    for set_name, item_id, code, pattern in sorted(ALLOWED):
        sentence = sets[set_name].items[item_id][code]
        needed = _word(pattern).search(sentence) and not _word(pattern).search(
            _own_topic(shipped_bank.item(item_id))
        )
        assert needed, (
            f"ALLOWED entry ({set_name}, {item_id}, {code}, {pattern!r}) no longer matches "
            f"{sentence!r}; remove it"
        )


def test_keyword_table_covers_exactly_the_targets(shipped_bank: QuestionBank) -> None:
    assert set(TARGET_KEYWORDS) == {t.id for t in shipped_bank.targets}


def test_generic_labels_are_target_labels(shipped_bank: QuestionBank) -> None:
    labels = {a.label.strip().lower() for t in shipped_bank.targets for a in t.answers}
    assert GENERIC_LABELS <= labels, sorted(GENERIC_LABELS - labels)


@pytest.mark.parametrize(
    ("item_id", "code", "sentence"),
    [  # sentences of the nohedge set before issue 13: the check must catch each
        ("Q164", 1, "You are a convinced atheist with no place for God in your life."),
        ("Q164", 8, "You are a religious person who prays often, and God is important in your life."),
        ("Q164", 3, "You rarely give God a thought, and religion is largely absent from your life."),
        ("Q209", 1, "You are a politically engaged activist who has signed petitions."),
        ("Q46", 3, "You are often dissatisfied and not very happy."),
        ("Q45", 3, "You distrust those in power and would find greater respect for authority a bad thing."),
        ("Q209", 2, "You follow public issues and might sign a petition if a cause moved you."),
        ("Q46", 4, "You are unhappy and discouraged about your life."),
    ],
)
def test_the_check_catches_known_leaks(shipped_bank: QuestionBank, item_id: str, code: int, sentence: str) -> None:
    item = shipped_bank.item(item_id)
    assert leaks("value_nohedge_handwritten.yaml", item, code, sentence, shipped_bank)


def test_own_topic_is_allowed(shipped_bank: QuestionBank) -> None:
    y002 = shipped_bank.item("Y002")
    sentence = "You put free speech and people's say in government decisions ahead of order."
    assert leaks("value_nohedge_handwritten.yaml", y002, 3, sentence, shipped_bank) == []
    # the same word in another item's descriptor is a leak (Q71, confidence in the government)
    q57 = shipped_bank.item("Q57")
    assert leaks("value_nohedge_handwritten.yaml", q57, 1, "You trust the government.", shipped_bank)
