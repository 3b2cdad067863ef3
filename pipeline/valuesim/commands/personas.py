"""`valuesim personas show`: the persona texts a country's respondents become."""

from __future__ import annotations

import polars as pl
import typer

from valuesim.config import PersonaParams, check_option, load_params
from valuesim.personas.build import check_kind
from valuesim.personas.preview import country_personas
from valuesim.survey.bank import load_bank


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Inspect personas.", no_args_is_help=True)
    app.add_typer(group, name="personas")

    @group.command("show")
    def show(
        country: str = typer.Option(..., help="ISO3 code, e.g. JPN"),
        kind: str = typer.Option("value", help="value, sociodemographic or fewshot"),
        n: int = typer.Option(3, min=1, help="how many personas"),
        nationality: bool = typer.Option(True, "--nationality/--no-nationality"),
        source: str | None = typer.Option(
            None, help="sample from this source (demo .json or WVS files) instead of "
            "data/personas/personas.parquet"
        ),
        seed: int | None = typer.Option(None, help="sampling seed (default: personas.seed)"),
        params_file: str = typer.Option("params.yaml", "--params", help="params file"),
    ) -> None:
        """Print the first N personas of a kind for one country, as the model sees them."""
        check_kind(kind)
        if seed is not None:  # the same domain as personas.seed: a one-line error, not a traceback
            seed = check_option(PersonaParams, "seed", seed, "--seed")
        params = load_params(params_file)
        bank = load_bank(params.data.questions)
        rows = country_personas(params, bank, country, source=source, seed=seed).filter(
            (pl.col("kind") == kind) & (pl.col("nationality") == nationality)
        ).head(n)
        for row in rows.iter_rows(named=True):
            missing = ", ".join(row["missing_items"]) or "none"
            typer.echo(f"# {row['persona_id']} (missing: {missing})")
            typer.echo(row["text"])
            typer.echo("")
