"""The paper's missing-data filter: keep a target question only if fewer than
``max_missing`` of its answers are missing in *every* selected country."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from valuesim.errors import DataError


@dataclass(frozen=True)
class KeptQuestions:
    kept: list[str]
    dropped: list[dict[str, Any]] = field(
        default_factory=list
    )  # question, country, missing_share, reason
    max_missing: float = 0.20

    def to_json(self) -> dict[str, Any]:
        return {"kept": self.kept, "dropped": self.dropped, "max_missing": self.max_missing}


def filter_questions(
    summary: pl.DataFrame,
    questions: Sequence[str],
    countries: Sequence[str],
    max_missing: float,
) -> KeptQuestions:
    """Apply the filter to ``summary`` (country, question, missing_share, ...).

    ``dropped`` has one entry per failing (question, country) pair, so a reader sees
    every country that pushed a question out.
    """
    rows = summary.filter(
        pl.col("country").is_in(list(countries)) & pl.col("question").is_in(list(questions))
    )
    have = {
        (r["country"], r["question"])
        for r in rows.select("country", "question").iter_rows(named=True)
    }
    lacking = [f"{c}/{q}" for q in questions for c in countries if (c, q) not in have]
    if lacking:
        raise DataError(
            f"no human summary for {', '.join(lacking[:5])}{' ...' if len(lacking) > 5 else ''}; "
            f"rerun the human stage for these countries"
        )
    share = {(r["country"], r["question"]): r["missing_share"] for r in rows.iter_rows(named=True)}
    kept: list[str] = []
    dropped: list[dict[str, Any]] = []
    for q in questions:
        failing = [c for c in countries if share[(c, q)] >= max_missing]
        for c in failing:
            reason = (
                "not asked or no substantive answers"
                if share[(c, q)] >= 1.0
                else f"missing share {share[(c, q)]:.3f} >= max_missing {max_missing}"
            )
            dropped.append(
                {
                    "question": q,
                    "country": c,
                    "missing_share": round(share[(c, q)], 6),
                    "reason": reason,
                }
            )
        if not failing:
            kept.append(q)
    return KeptQuestions(kept=kept, dropped=dropped, max_missing=max_missing)
