"""The shipped demo aggregates: synthetic-labelled, aggregates only, complete, small."""

from __future__ import annotations

import json
import re

from tests.fixtures.paths import ROOT
from valuesim.config import DEFAULT_COUNTRIES
from valuesim.survey.bank import QuestionBank
from valuesim.survey.demo.population import load_aggregates

SHIPPED = ROOT / "data/demo/aggregates.json"
TOP_KEYS = {
    "synthetic_demo",
    "format",
    "description",
    "source",
    "citation",
    "fitted",
    "bank_version",
    "method",
    "items",
    "numeric_items",
    "countries",
}
COUNTRY_KEYS = {"n", "marginals", "missing", "missing_reasons", "correlation"}
# A marginal lists at most a few dozen answer codes or age bins; a list as long as a
# country's sample would be respondent-level data.
MAX_MARGINAL_LEN = 30


def test_shipped_file_is_labelled_synthetic_and_cites_wvs():
    data = json.loads(SHIPPED.read_text())
    assert data["synthetic_demo"] is True
    assert "SYNTHETIC" in data["description"]
    assert "10.14281/18241.20" in data["citation"]


def test_shipped_file_holds_aggregates_only():
    text = SHIPPED.read_text()
    data = json.loads(text)
    assert set(data) == TOP_KEYS
    p = len(data["items"])
    for iso, country in data["countries"].items():
        assert set(country) <= COUNTRY_KEYS, iso
        assert isinstance(country["n"], int)
        assert len(country["correlation"]) == p * (p - 1) // 2
        assert all(isinstance(r, float | int) for r in country["correlation"])
        assert set(country["missing"]) == set(data["items"])
        assert all(isinstance(v, float | int) for v in country["missing"].values())
        for item, m in country["marginals"].items():
            assert item in data["items"]
            if m is None:
                continue
            assert set(m) in ({"codes", "probs"}, {"bins", "probs"}), (iso, item)
            assert len(m["probs"]) <= MAX_MARGINAL_LEN
        for shares in country["missing_reasons"].values():
            assert all(isinstance(v, float | int) for v in shares.values())
    assert "respondent_id" not in text
    assert re.search(r"[A-Z]{3}-demo-\d", text) is None  # no generated rows either


def test_shipped_file_is_small():
    # a pre-stop hook flags tracked data files over 2 MB
    assert SHIPPED.stat().st_size < 1.8 * 1024 * 1024


def test_shipped_file_covers_the_bank_and_default_countries(bank: QuestionBank):
    agg = load_aggregates(SHIPPED)
    # if this fails after a bank change: valuesim demo fit --source ../shared/data/wvs7/v5
    assert [i.id for i in bank.items if i.id not in agg.items] == []
    assert set(DEFAULT_COUNTRIES) <= set(agg.countries)
    assert agg.numeric_items == [i.id for i in bank.items if i.numeric]
