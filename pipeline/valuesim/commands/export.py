"""`valuesim export --sqlite study.db`: the study below its aggregates as one SQLite file
with Datasette metadata beside it (valuesim.browse.sqlite_export); `valuesim view` opens it."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        sqlite: str = typer.Option(..., "--sqlite", help="database file to write, e.g. study.db (replaced whole)"),
        project: str = typer.Option(".", "--project", help="the project directory (with dvc.yaml and params.yaml)"),
        answers: bool = typer.Option(
            True, "--answers/--no-answers",
            help="include every persona's answer (~590 bytes each; --no-answers for a large study's aggregates)"),
    ) -> None:
        """Write the study's scoreboard, cells, distributions, per-country results, tests,
        personas, prompts and every persona's answer as SQLite tables (browse them with
        `valuesim view`, Datasette, or any SQLite tool)."""
        from valuesim.browse.sqlite_export import export_sqlite
        from valuesim.study import load_study

        done = export_sqlite(load_study(project), Path(sqlite), answers=answers)
        size = done.database.stat().st_size
        counts = ", ".join(f"{k} {v:,}" for k, v in done.rows.items())
        typer.echo(f"wrote {done.database} ({size / 1e6:.1f} MB: {counts}) and {done.metadata}")
        typer.echo(f"browse it: valuesim view {done.database}")
