"""`valuesim demo fit|generate`: the SYNTHETIC demo population's aggregates and samples."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from valuesim.artifacts import write_atomic, write_parquet
from valuesim.errors import ConfigError
from valuesim.output_targets import check_output_target

DEFAULT_AGGREGATES = "data/demo/aggregates.json"
DEFAULT_BANK = "data/questions/wvs7.yaml"


def _split_countries(values: list[str] | None) -> list[str] | None:
    """Accept both `--country JPN --country TWN` and `--country JPN,TWN`."""
    if not values:
        return None
    out = [c.strip().upper() for v in values for c in v.split(",") if c.strip()]
    return out or None


def register(app: typer.Typer) -> None:
    demo = typer.Typer(
        help="The SYNTHETIC demo population: fit its aggregates, or sample respondents.",
        no_args_is_help=True,
    )
    app.add_typer(demo, name="demo")

    @demo.command("fit")
    def fit_cmd(
        source: Annotated[
            str, typer.Option("--source", help="real WVS-7 files (directory or file)")
        ],
        out: Annotated[
            str, typer.Option("--out", help="aggregates JSON to write")
        ] = DEFAULT_AGGREGATES,
        countries: Annotated[
            list[str] | None,
            typer.Option("--countries", help="ISO3 codes (repeat or comma-separate); default all"),
        ] = None,
        questions: Annotated[str, typer.Option("--questions", help="question bank")] = DEFAULT_BANK,
    ) -> None:
        """Fit per-country aggregates (no rows) from real WVS files."""
        from valuesim.survey.bank import load_bank
        from valuesim.survey.demo.population import fit, write_aggregates
        from valuesim.survey.readers import read_source

        check_output_target(Path(out), "--out")  # before the (slow) read of the WVS files
        bank = load_bank(questions)
        chosen = _split_countries(countries)
        extract = read_source(source, bank)
        agg = fit(
            extract.respondents,
            bank,
            missing_counts=extract.missing_counts,
            countries=chosen,
            source=f"WVS-7 v5.0 files at {source}",
        )
        path = write_aggregates(agg, out)
        size = path.stat().st_size / 1024
        typer.echo(
            f"wrote {path} ({len(agg.countries)} countries, {len(agg.items)} items, "
            f"{size:.0f} KiB): SYNTHETIC demo aggregates, no respondent rows"
        )

    @demo.command("generate")
    def generate_cmd(
        n: Annotated[int, typer.Option("--n", help="synthetic respondents per country")] = 100,
        country: Annotated[
            list[str] | None,
            typer.Option("--country", help="ISO3 codes (repeat or comma-separate); default all"),
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
        aggregates: Annotated[
            str, typer.Option("--aggregates", help="demo aggregates JSON")
        ] = DEFAULT_AGGREGATES,
        questions: Annotated[str, typer.Option("--questions", help="question bank")] = DEFAULT_BANK,
        out: Annotated[
            str | None,
            typer.Option("--out", help="write .parquet or .csv (default: CSV to stdout)"),
        ] = None,
    ) -> None:
        """Sample a SYNTHETIC respondents frame from the demo aggregates."""
        from valuesim.survey.bank import load_bank
        from valuesim.survey.demo.population import generate

        if out is not None and Path(out).suffix not in {".parquet", ".csv"}:
            raise ConfigError(f"--out {out}: use a .parquet or .csv file name")
        if out is not None:
            check_output_target(Path(out), "--out")
        frame = generate(aggregates, load_bank(questions), n, seed, _split_countries(country))
        if out is None:
            frame.write_csv(sys.stdout)
            return
        target = Path(out)
        if target.suffix == ".parquet":
            write_parquet(frame, target)
        else:
            write_atomic(target, frame.write_csv, mode=0o644)
        typer.echo(
            f"wrote {target}: {frame.height} SYNTHETIC respondents "
            f"({frame.get_column('country').n_unique()} countries, seed {seed})",
            err=True,
        )
