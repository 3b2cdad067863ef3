"""`valuesim providers`: every registered model provider and what it can do."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from valuesim.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("providers")
    def providers_cmd(
        fmt: str = typer.Option("table", "--format", help="table or json"),
    ) -> None:
        """List model providers: package, version and capabilities."""
        from valuesim.plugins import provider_infos

        if fmt not in ("table", "json"):
            raise ConfigError(f"unknown format {fmt!r}; use --format table or --format json")

        rows = provider_infos()
        if fmt == "json":
            typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="valuesim providers")
        for col in ("name", "package", "version", "logprobs", "top-k", "sampling", "text", "batch API", "answer rules"):
            # the list of answer rules wraps, so the other columns are never cut
            table.add_column(col, no_wrap=col != "answer rules")
        yes = {True: "yes", False: "-"}
        for r in rows:
            table.add_row(
                r.name, r.package, r.version, yes[r.logprobs],
                str(r.top_logprobs) if r.top_logprobs else "-",
                yes[r.sampling], yes[r.text_generation], yes[r.batch_api],
                ", ".join(r.answer_rules) if r.logprobs or r.top_logprobs else "-",
            )
        console = Console()
        # Piped output has no terminal width; don't squeeze the table into 80 columns.
        Console(width=max(console.width, 140)).print(table)
