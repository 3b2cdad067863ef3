"""Run the data contracts in ``validation/contracts/*.yaml`` with Great Expectations.

A contract file names a suite and, per table, a list of GX expectations (type and
kwargs, with ``{placeholders}`` filled from the question bank and params). This module
builds each table from our polars frames, converts it to pandas (GX does not take
polars; this is the only place pandas is used), validates it in an ephemeral GX
context, writes ``reports/validation/<suite>.json`` whether or not it passed, and
raises :class:`ContractError` with a one-line summary when any expectation fails.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from valuesim.artifacts import write_json
from valuesim.errors import ConfigError, ContractError
from valuesim.survey.bank import QuestionBank

CONTRACTS_DIR = Path("validation/contracts")
_PLACEHOLDER = re.compile(r"^\{(\w+)\}$")
# Shares are computed in floating point; a sum may differ from 1 by rounding.
TOLERANCE = 1e-9
# a country with fewer respondents than this can't give usable distributions
MIN_ROWS_PER_COUNTRY = 100


@dataclass
class ContractReport:
    suite: str
    success: bool
    evaluated: int
    failures: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        for f in self.failures[:4]:
            what = f["kwargs"].get("column") or ",".join(
                str(v) for k, v in f["kwargs"].items() if k.startswith("column")
            )
            detail = (
                f" ({f['unexpected_count']} rows, e.g. {f['examples'][:3]})"
                if f["unexpected_count"]
                else ""
            )
            parts.append(f"{f['table']}.{what or 'table'} {f['expectation']}{detail}")
        more = f" and {len(self.failures) - 4} more" if len(self.failures) > 4 else ""
        return f"{len(self.failures)} of {self.evaluated} expectations failed: {'; '.join(parts)}{more}"


def load_contract(name: str, contracts_dir: Path = CONTRACTS_DIR) -> dict[str, Any]:
    path = contracts_dir / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"data contract {path} not found; it ships in validation/contracts/")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"data contract {path} is not valid YAML: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("tables"), dict):
        raise ConfigError(f"data contract {path} needs a 'tables' mapping")
    return spec


def _fill(value: Any, values: Mapping[str, Any]) -> Any:
    """Replace ``"{name}"`` strings (whole-string placeholders) by ``values[name]``."""
    if isinstance(value, str):
        m = _PLACEHOLDER.match(value)
        if m:
            if m.group(1) not in values:
                raise ConfigError(f"data contract uses unknown placeholder {value}")
            return values[m.group(1)]
        return value
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def _expectations(
    table: Mapping[str, Any], values: Mapping[str, Any], bank: QuestionBank | None
) -> list[dict[str, Any]]:
    out = [_fill(e, values) for e in table.get("expectations", [])]
    per_item = table.get("per_item")
    if per_item:
        if bank is None:
            raise ConfigError("a contract with per_item expectations needs the question bank")
        for item in bank.items:
            kind = "numeric" if item.numeric else "categorical"
            item_values = {
                **values,
                "item": item.id,
                "codes": item.codes,
                "min": item.min if item.codes else 0,
            }
            out.extend(_fill(e, item_values) for e in per_item.get(kind, []))
    return out


def _gx_validate(
    frames: Mapping[str, pl.DataFrame],
    spec: Mapping[str, Any],
    values: Mapping[str, Any],
    bank: QuestionBank | None,
) -> ContractReport:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx  # lazy: slow import, only needed here
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("valuesim")
    suite_name = str(spec.get("suite", "contract"))
    evaluated = 0
    failures: list[dict[str, Any]] = []
    for table_name, table in spec["tables"].items():
        if table_name not in frames:
            raise ConfigError(
                f"contract {suite_name} names table {table_name!r}, which the runner does not build"
            )
        suite = gx.ExpectationSuite(name=f"{suite_name}.{table_name}")
        for e in _expectations(table, values, bank):
            suite.add_expectation_configuration(
                ExpectationConfiguration(type=e["type"], kwargs=e.get("kwargs", {}))
            )
        batch = (
            source.add_dataframe_asset(table_name)
            .add_batch_definition_whole_dataframe("all")
            .get_batch(batch_parameters={"dataframe": frames[table_name].to_pandas()})
        )
        result = batch.validate(suite, result_format="BASIC")
        for r in result.results:
            evaluated += 1
            if r.success:
                continue
            kwargs = {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"}
            info = r.exception_info or {}
            failures.append(
                {
                    "table": table_name,
                    "expectation": r.expectation_config.type,
                    "kwargs": _jsonable(kwargs),
                    "unexpected_count": r.result.get("unexpected_count") or 0,
                    "examples": _jsonable(r.result.get("partial_unexpected_list") or [])[:10],
                    "observed": _jsonable(r.result.get("observed_value")),
                    "error": info.get("exception_message")
                    if info.get("raised_exception")
                    else None,
                }
            )
    return ContractReport(
        suite=suite_name, success=not failures, evaluated=evaluated, failures=failures
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _write_report(report: ContractReport, report_dir: Path, context: Mapping[str, Any]) -> Path:
    path = report_dir / f"{report.suite}.json"
    body = {
        "suite": report.suite,
        "success": report.success,
        "evaluated": report.evaluated,
        "failed": len(report.failures),
        "failures": report.failures,
        **context,
    }
    write_json(body, path, indent=2)
    return path


def _finish(
    report: ContractReport, report_dir: Path, context: Mapping[str, Any], hint: str = ""
) -> ContractReport:
    path = _write_report(report, report_dir, context)
    if not report.success:
        raise ContractError(
            f"data contract {report.suite} failed, {hint}{report.summary()}; details in {path}"
        )
    return report


def validate_respondents(
    respondents: pl.DataFrame,
    bank: QuestionBank,
    *,
    expected_counts: Mapping[str, int] | None = None,
    contracts_dir: Path = CONTRACTS_DIR,
    report_dir: Path = Path("reports/validation"),
) -> ContractReport:
    """Check the extracted respondents against ``respondents.yaml``."""
    spec = load_contract("respondents", contracts_dir)
    # copies of a respondent beyond the first, per country: the reader refuses them, so
    # any here mean a respondents table that did not come from a current extract
    counts = (
        respondents.group_by("country")
        .agg(
            n=pl.len().cast(pl.Int64),
            duplicated=(pl.len() - pl.col("respondent_id").n_unique()).cast(pl.Int64),
        )
        .sort("country")
    )
    expected = expected_counts if expected_counts is not None else dict(counts.iter_rows())
    counts = counts.with_columns(
        expected_n=pl.col("country").replace_strict(
            dict(expected), default=None, return_dtype=pl.Int64
        )
    )
    frames = {"respondents": respondents, "country_counts": counts}
    values = {"min_rows": MIN_ROWS_PER_COUNTRY}
    report = _gx_validate(frames, spec, values, bank)
    duplicated = dict(
        counts.filter(pl.col("duplicated") > 0).select("country", "duplicated").iter_rows()
    )
    context = {
        "rows": respondents.height,
        "countries": dict(counts.select("country", "n").iter_rows()),
        "duplicated": duplicated,
    }
    hint = (
        "duplicated respondents: "
        + ", ".join(f"{c} {n}" for c, n in duplicated.items())
        + " (remove them from the source, or set data.drop_duplicates: true, and rerun "
        "extract); "
        if duplicated
        else ""
    )
    return _finish(report, report_dir, context, hint)


def validate_human(
    distributions: pl.DataFrame,
    summary: pl.DataFrame,
    kept: Mapping[str, Any],
    countries: list[str],
    *,
    contracts_dir: Path = CONTRACTS_DIR,
    report_dir: Path = Path("reports/validation"),
) -> ContractReport:
    """Check the human stage's outputs against ``human_distributions.yaml``."""
    spec = load_contract("human_distributions", contracts_dir)
    sums = distributions.group_by("country", "question").agg(total=pl.col("share").sum())
    kept_summary = summary.filter(
        pl.col("question").is_in(list(kept["kept"])) & pl.col("country").is_in(countries)
    )
    frames = {
        "distributions": distributions,
        "distribution_sums": sums,
        "summary": summary.with_columns(n_eff_excess=pl.col("n_eff") - pl.col("n")),
        "kept_summary": kept_summary,
    }
    values = {
        "max_missing": float(kept["max_missing"]),
        "tolerance": TOLERANCE,
        "sum_min": 1 - TOLERANCE,
        "sum_max": 1 + TOLERANCE,
    }
    report = _gx_validate(frames, spec, values, None)
    context = {
        "kept": list(kept["kept"]),
        "max_missing": kept["max_missing"],
        "countries": countries,
    }
    return _finish(report, report_dir, context)
