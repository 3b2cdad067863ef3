"""`valuesim view [study.db]`: browse an exported study with Datasette (valuesim.browse.viewer)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("view")
    def view(
        database: str = typer.Argument("study.db", help="the file `valuesim export --sqlite` wrote"),
        host: str = typer.Option("127.0.0.1", help="interface to serve on (the loopback one: only this machine)"),
        port: int = typer.Option(8001, help="port to serve on (0: any free port)"),
        open_browser: bool = typer.Option(True, "--open/--no-open", help="open it in the web browser"),
    ) -> None:
        """Serve the exported study with Datasette: filter and facet every table, click from a
        cell to its distributions and answers, from an answer to its persona and prompt."""
        from valuesim.browse import viewer

        db = Path(database)
        viewer.check_database(db)
        viewer.require_datasette()
        with tempfile.TemporaryDirectory(prefix="valuesim-view-") as tmp:
            meta = viewer.write_metadata(db, Path(tmp))
            cmd = viewer.datasette_command(db, meta, host=host, port=port, open_browser=open_browser)
            typer.echo(f"serving {db} at http://{host}:{port}/ (Ctrl-C stops)", err=True)
            try:
                code = subprocess.call(cmd)
            except KeyboardInterrupt:  # Datasette got the same Ctrl-C and stops itself
                code = 0
        raise typer.Exit(code)
