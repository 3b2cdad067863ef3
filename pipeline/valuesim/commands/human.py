"""`valuesim human`: weighted human answer distributions straight from WVS files."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from valuesim.config import MAX_DEMO_RESPONDENTS
from valuesim.errors import ConfigError
from valuesim.survey.bank import load_bank
from valuesim.survey.human import as_records, human_distributions
from valuesim.survey.readers import select_countries
from valuesim.survey.sources import DEMO_RESPONDENTS_PER_COUNTRY, load_source


class Format(StrEnum):
    json = "json"
    csv = "csv"
    table = "table"


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def register(app: typer.Typer) -> None:
    @app.command("human")
    def human(
        source: Annotated[
            str,
            typer.Option(
                "--source",
                "-s",
                help="WVS-7 files (directory, .csv(.gz), .sav, .dta, .parquet) or demo "
                "aggregates (.json: a synthetic population, as the pipeline's extract draws it)",
            ),
        ],
        countries: Annotated[
            str, typer.Option("--countries", "-c", help="ISO3 codes, comma-separated: JPN,TWN")
        ],
        questions: Annotated[
            str, typer.Option("--questions", "-q", help="question ids, comma-separated: Q6,Q49")
        ],
        fmt: Annotated[
            Format | None,
            typer.Option(
                "--format", "-f", help="json, csv or table (default: table in a terminal, else json)"
            ),
        ] = None,
        bank_path: Annotated[
            str, typer.Option("--bank", help="question bank")
        ] = "data/questions/wvs7.yaml",
        demo_n: Annotated[
            int,
            typer.Option(
                "--demo-n",
                help="respondents per country (demo source)",
                min=1,
                max=MAX_DEMO_RESPONDENTS,
            ),
        ] = DEMO_RESPONDENTS_PER_COUNTRY,
        drop_duplicates: Annotated[
            bool,
            typer.Option(
                "--drop-duplicates", help="drop rows identical to an earlier one (with a warning)"
            ),
        ] = False,
    ) -> None:
        """Print weighted mean, distribution, n and missing share per country and question."""
        bank = load_bank(bank_path)
        country_list = [c.upper() for c in _split(countries)]
        question_list = _split(questions)
        if not country_list or not question_list:
            raise ConfigError(
                "give at least one country (--countries JPN) and one question (--questions Q6)"
            )
        items = [bank.item(q) for q in question_list]  # unknown id -> one-line DataError
        numeric = [i.id for i in items if i.numeric]
        if numeric:
            raise ConfigError(f"{', '.join(numeric)} is numeric and has no answer distribution")
        source_result = load_source(source, bank, demo_n=demo_n, drop_duplicates=drop_duplicates)
        result = select_countries(source_result, country_list)
        distributions, summary = human_distributions(
            result.respondents, bank, items=items, countries=country_list
        )
        records = as_records(distributions, summary)
        # A table for a person at a terminal, like every other command; JSON, as before,
        # for a pipe or a file, where this command's output mostly goes.
        if fmt is None:
            fmt = Format.table if sys.stdout.isatty() else Format.json
        typer.echo(_render(records, fmt))


def _render(records: list[dict[str, object]], fmt: Format) -> str:
    if fmt is Format.json:
        return json.dumps(records, indent=2)
    if fmt is Format.csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["country", "question", "mean", "n", "missing_share", "code", "share"])
        for r in records:
            for code, share in r["distribution"].items():  # type: ignore[union-attr]
                writer.writerow(
                    [
                        r["country"],
                        r["question"],
                        r["mean"],
                        r["n"],
                        r["missing_share"],
                        code,
                        share,
                    ]
                )
        return buf.getvalue().rstrip("\n")
    lines = [f"{'country':<8}{'question':<10}{'mean':>8}{'n':>7}{'missing':>9}  distribution"]
    for r in records:
        dist = " ".join(f"{c}:{s:.3f}" for c, s in r["distribution"].items())  # type: ignore[union-attr]
        mean = "-" if r["mean"] is None else f"{r['mean']:.3f}"
        lines.append(
            f"{r['country']:<8}{r['question']:<10}{mean:>8}{r['n']:>7}{r['missing_share']:>9.3f}  {dist}"
        )
    return "\n".join(lines)
