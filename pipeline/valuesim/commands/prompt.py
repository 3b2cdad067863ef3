"""`valuesim prompt show`: exactly the messages a model receives for one prompt."""

from __future__ import annotations

import polars as pl
import typer

from valuesim.config import load_params
from valuesim.methods import check_method, persona_kind
from valuesim.personas.preview import country_personas
from valuesim.prompts import check_guidance, render
from valuesim.survey.bank import load_bank


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Inspect prompts.", no_args_is_help=True)
    app.add_typer(group, name="prompt")

    @group.command("show")
    def show(
        method: str = typer.Option(..., help="prompting method, e.g. value or country"),
        country: str = typer.Option(..., help="ISO3 code, e.g. JPN"),
        question: str = typer.Option(..., help="question id, e.g. Q6"),
        respondent: str | None = typer.Option(None, help="respondent id (persona methods)"),
        guidance: str | None = typer.Option(None, help="guidance key (default: prompts.guidance)"),
        source: str | None = typer.Option(None, help="sample personas from this source"),
        params_file: str = typer.Option("params.yaml", "--params", help="params file"),
    ) -> None:
        """Print the system and user messages for one method, country and question."""
        check_method(method)
        params = load_params(params_file)
        key = check_guidance(guidance or params.prompts.guidance)
        bank = load_bank(params.data.questions)
        item = bank.item(question)
        kind, nationality = persona_kind(method)
        persona = None
        if kind is not None:
            rows = country_personas(
                params, bank, country, source=source, respondent=respondent
            ).filter((pl.col("kind") == kind) & (pl.col("nationality") == nationality))
            persona = rows["text"][0]
        for msg in render(method, item, country=country, guidance=key, persona=persona):
            typer.echo(f"[{msg.role.capitalize()}]\n{msg.content}\n")
