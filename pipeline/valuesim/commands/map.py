"""`valuesim map`: place countries on the Inglehart-Welzel map from a data source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from valuesim.config import MAX_DEMO_RESPONDENTS
from valuesim.errors import ConfigError

if TYPE_CHECKING:  # polars and the bank load lazily: `valuesim --help` stays fast
    import polars as pl

    from valuesim.survey.bank import QuestionBank

DEFAULT_BANK = "data/questions/wvs7.yaml"
FORMATS = ("table", "json", "csv")
COLUMNS = ("country", "secular", "self_expression", "n")


def _load_respondents(source: str, bank: QuestionBank, n_demo: int, seed: int) -> pl.DataFrame:
    """Real WVS files, the extract's respondents.parquet, or demo aggregates (.json)."""
    import polars as pl

    from valuesim.survey.sources import load_source

    p = Path(source)
    if p.suffix == ".parquet" and p.is_file():
        cols = pl.read_parquet_schema(p)
        if {"country", "respondent_id", "weight"} <= set(cols):
            return pl.read_parquet(p)
    return load_source(source, bank, demo_n=n_demo, seed=seed).respondents


def _plot_path(plot: str) -> Path:
    """Where ``--plot`` writes. A missing parent folder is created (and said so) only
    when its own parent exists: one new folder is what a user asks for by naming it,
    a missing chain is more likely a typo in the path."""
    from valuesim.output_targets import check_output_target

    path = Path(plot)
    parent = path.parent
    if parent.is_dir():
        # before the map is computed: not over a device, FIFO or folder, and the folder
        # takes files (not read-only, full or /proc)
        return check_output_target(path, "--plot")
    if parent.exists():
        raise ConfigError(f"--plot {plot}: {parent} is not a directory; choose another path")
    if not parent.parent.is_dir():
        raise ConfigError(
            f"--plot {plot}: neither {parent} nor {parent.parent} exists; "
            f"create {parent} first or fix the path"
        )
    check_output_target(path, "--plot")  # the folder it goes in must take files first
    parent.mkdir()
    typer.echo(f"created directory {parent}", err=True)
    return path


def register(app: typer.Typer) -> None:
    @app.command("map")
    def map_cmd(
        source: str = typer.Option(
            ...,
            "--source",
            help="WVS-7 files (directory or file), data/interim/respondents.parquet, "
            "or demo aggregates (.json)",
        ),
        countries: str | None = typer.Option(
            None, "--countries", help="comma-separated ISO3 codes to print (the fit uses all)"
        ),
        all_countries: bool = typer.Option(False, "--all", help="print every country (default)"),
        fmt: str = typer.Option("table", "--format", help="table, json or csv"),
        plot: str | None = typer.Option(None, "--plot", help="also draw the map to this PNG"),
        questions: str = typer.Option(DEFAULT_BANK, "--questions", help="question bank"),
        min_items: int = typer.Option(3, "--min-items", help="answered items needed per axis"),
        demo_n: int = typer.Option(
            1200,
            "--demo-n",
            help="respondents per country (demo source)",
            min=1,
            max=MAX_DEMO_RESPONDENTS,
        ),
        seed: int = typer.Option(0, "--seed", help="seed (demo source)"),
    ) -> None:
        """Print each country's map position: country, secular, self_expression, n."""
        from valuesim.culturalmap.compute import build_map
        from valuesim.survey.bank import load_bank

        if fmt not in FORMATS:
            raise ConfigError(f"unknown --format {fmt!r}; choose from {', '.join(FORMATS)}")
        if countries and all_countries:
            raise ConfigError("give either --countries or --all, not both")
        chosen = [c.strip().upper() for c in countries.split(",") if c.strip()] if countries else []
        if countries is not None and not chosen:
            raise ConfigError("--countries is empty; give ISO3 codes such as JPN,TWN or use --all")
        plot_path = _plot_path(plot) if plot else None
        bank = load_bank(questions)
        respondents = _load_respondents(source, bank, demo_n, seed)
        result = build_map(respondents, bank, min_items=min_items, select=chosen or [])
        table = result.positions.select(COLUMNS)
        if chosen:
            table = table.filter(table["country"].is_in(chosen))
        if fmt == "json":
            typer.echo(json.dumps(table.to_dicts(), indent=2))
        elif fmt == "csv":
            typer.echo(table.write_csv(float_precision=4), nl=False)
        else:
            typer.echo(f"{'country':<8}{'secular':>10}{'self_expr':>11}{'n':>7}")
            for row in table.iter_rows(named=True):
                typer.echo(
                    f"{row['country']:<8}{row['secular']:>10.3f}"
                    f"{row['self_expression']:>11.3f}{row['n']:>7d}"
                )
        if plot_path is not None:
            from valuesim.culturalmap.drawing import draw_map

            draw_map(result.positions, chosen, path=plot_path)
            typer.echo(f"wrote {plot}", err=True)
