"""The shipped demo aggregates file: its typed schema, loader and writer.

The file holds *aggregates only*: per country and item the weighted answer shares,
the missing share (and how it splits by reason), and the latent correlation matrix
of a Gaussian copula. The schema forbids anything else, so a respondent-level field
can never slip into the shipped file unnoticed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from valuesim.artifacts import write_text
from valuesim.errors import DataError
from valuesim.survey.bank import MissingReason

FORMAT = "valuesim-demo-aggregates/1"
_SUM_TOLERANCE = 1e-3  # shares are rounded in the file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoricalMarginal(_Strict):
    """Weighted shares of the substantive answer codes (scale order)."""

    codes: list[int]
    probs: list[float]

    @model_validator(mode="after")
    def _check(self) -> CategoricalMarginal:
        _check_probs(self.probs, len(self.codes), "codes")
        return self


class BinnedMarginal(_Strict):
    """Weighted shares of numeric values (age) in inclusive [low, high] bins."""

    bins: list[tuple[int, int]]
    probs: list[float]

    @model_validator(mode="after")
    def _check(self) -> BinnedMarginal:
        _check_probs(self.probs, len(self.bins), "bins")
        for lo, hi in self.bins:
            if lo > hi:
                raise ValueError(f"bin [{lo}, {hi}] is empty")
        return self


def _check_probs(probs: list[float], n: int, what: str) -> None:
    if len(probs) != n:
        raise ValueError(f"{len(probs)} probs for {n} {what}")
    if any(not (0 <= p <= 1) for p in probs):
        raise ValueError("probs must lie in [0, 1]")
    if abs(sum(probs) - 1) > _SUM_TOLERANCE:
        raise ValueError(f"probs sum to {sum(probs):.4f}, not 1")


class CountryAggregates(_Strict):
    n: int = Field(gt=0)  # real respondents the aggregates were computed from
    # None: the item was never answered in this country (e.g. not asked)
    marginals: dict[str, CategoricalMarginal | BinnedMarginal | None]
    missing: dict[str, float]
    # share of the missing answers by reason (sums to 1) for items with any missing
    missing_reasons: dict[str, dict[MissingReason, float]] = Field(default_factory=dict)
    # latent copula correlations: strict upper triangle, row-major, in `items` order
    correlation: list[float]


class DemoAggregates(_Strict):
    synthetic_demo: Literal[True]
    format: Literal["valuesim-demo-aggregates/1"]
    description: str
    source: str
    citation: str
    fitted: str  # ISO date
    bank_version: str
    method: str
    items: list[str]
    numeric_items: list[str] = Field(default_factory=list)
    countries: dict[str, CountryAggregates]

    @model_validator(mode="after")
    def _check(self) -> DemoAggregates:
        if not self.countries:
            raise ValueError("no countries")
        p = len(self.items)
        expected = p * (p - 1) // 2
        items = set(self.items)
        for iso, c in self.countries.items():
            if set(c.marginals) != items or set(c.missing) != items:
                raise ValueError(f"{iso}: marginals/missing must cover exactly `items`")
            if len(c.correlation) != expected:
                raise ValueError(
                    f"{iso}: correlation has {len(c.correlation)} entries, expected {expected}"
                )
            if any(not (math.isfinite(r) and -1 <= r <= 1) for r in c.correlation):
                raise ValueError(f"{iso}: correlations must lie in [-1, 1]")
            for item, share in c.missing.items():
                if not 0 <= share <= 1:
                    raise ValueError(f"{iso}/{item}: missing share {share} not in [0, 1]")
                if share < 1 and c.marginals[item] is None:
                    raise ValueError(f"{iso}/{item}: answered but has no marginal")
            for item, m in c.marginals.items():
                numeric = item in self.numeric_items
                if m is not None and isinstance(m, BinnedMarginal) != numeric:
                    kind = "binned" if numeric else "categorical"
                    raise ValueError(f"{iso}/{item}: marginal must be {kind}")
        return self


def load_aggregates(path: str | Path) -> DemoAggregates:
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"demo aggregates {p} not found; use the shipped data/demo/aggregates.json "
            "or fit one with `valuesim demo fit --source DIR`"
        )
    try:
        return DemoAggregates.model_validate_json(p.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "top level"
        raise DataError(
            f"demo aggregates {p} are malformed ({where}: {first['msg']}); "
            "refit with `valuesim demo fit --source DIR`"
        ) from exc


def write_aggregates(aggregates: DemoAggregates, path: str | Path) -> Path:
    """Write ``aggregates`` to ``path`` atomically and return the path.

    The file is shipped and shared, so it gets ordinary 0o644 permissions (the
    artifact writer's default), not the owner-only mode of a bare temporary file.
    """
    p = Path(path)
    write_text(p, _render(aggregates.model_dump(mode="json")), mode=0o644)
    return p


def _render(data: dict) -> str:
    """Metadata indented, then one compact line per country: the file is shipped, so
    it must stay small, and a refit then shows as one changed line per country."""
    compact = {"separators": (",", ":")}
    head = {k: v for k, v in data.items() if k != "countries"}
    lines = ["{"]
    lines += [f"  {json.dumps(k)}: {json.dumps(v, **compact)}," for k, v in head.items()]
    lines.append('  "countries": {')
    body = [
        f"    {json.dumps(k)}: {json.dumps(v, **compact)}" for k, v in data["countries"].items()
    ]
    lines.append(",\n".join(body))
    lines += ["  }", "}", ""]
    return "\n".join(lines)
