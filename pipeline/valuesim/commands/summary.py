"""`valuesim summary`: where the report is and its headline (the last step of `make run`)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("summary")
    def summary(
        project: str = typer.Option(".", "--project", help="the project directory (with dvc.yaml and params.yaml)"),
    ) -> None:
        """Print the report's path and, per model, the report's headline: its best method
        and how it compares with the best reference (the paired test)."""
        from valuesim.report.headline import headline_lines

        for line in headline_lines(project):
            typer.echo(line)
