"""Fixtures of the cultural-map tests: the shipped question bank, loaded once."""

from __future__ import annotations

import pytest

from tests.fixtures.paths import SHIPPED_BANK
from valuesim.survey.bank import QuestionBank, load_bank


@pytest.fixture(scope="session")
def bank() -> QuestionBank:
    return load_bank(SHIPPED_BANK)
