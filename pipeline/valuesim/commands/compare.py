"""`valuesim compare`: the paper's Figures 5 and 6 across experiments (valuesim.compare)."""

from __future__ import annotations

from pathlib import Path

import typer

from valuesim.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare(
        sources: list[str] | None = typer.Argument(  # noqa: B008
            None, metavar="[EXPERIMENT]...", help="Experiments: `workspace`, a `dvc exp` name or Git revision, a quoted glob "
                       "over experiment names ('guidance-*'), or a directory holding "
                       "data/eval/cells.parquet and params.yaml.",
        ),
        all_experiments: bool = typer.Option(
            False, "--all", help="Also every finished experiment that `dvc exp show` lists."
        ),
        out: Path = typer.Option(Path("reports/compare"), "--out", help="Output folder (replaced whole)."),  # noqa: B008
        repo: Path = typer.Option(Path(), "--repo", help="The DVC project the experiments belong to."),  # noqa: B008
        metric: str = typer.Option("mae", "--metric", help="Per-cell column of cells.parquet to compare."),
        methods: list[str] | None = typer.Option(  # noqa: B008
            None, "--method", help="Method to include (repeat the option); default: every method "
                                   "whose errors differ between the experiments.",
        ),
        hue_method: bool = typer.Option(
            True, "--hue-method/--pool-methods", help="One box per method in each slot (default), or the "
                                                      "compared methods' cells pooled into one box.",
        ),
        test: str = typer.Option(
            "paired", "--test", help="paired: paired test clustered by question on the cells both boxes "
                                     "score (default); mann-whitney: the paper's unpaired Mann-Whitney U.",
        ),
    ) -> None:
        """Compare experiments' per-cell errors: a box plot per varying param (a box per
        method, reference lines), BH-corrected tests between the boxes (paired and clustered
        by question; --test mann-whitney for the paper's unpaired test), an HTML page, and
        a table of the experiments ranked by their error, printed here."""
        from valuesim.compare.build import compare as build
        from valuesim.compare.sources import load
        from valuesim.compare.terminal_table import print_ranking
        from valuesim.output_targets import check_output_folder

        if not sources and not all_experiments:
            raise ConfigError("name the experiments to compare (`workspace`, exp names, result "
                              "directories) or pass --all for every `dvc exp show` experiment")
        if test not in ("paired", "mann-whitney"):
            raise ConfigError(f"--test {test!r} is not a test; choose paired or mann-whitney")
        # before the experiments are read: not a file or device, and the folder above
        # takes the new one (not read-only, full or /proc)
        check_output_folder(out, "--out")
        experiments, notes = load(sources or [], all_experiments=all_experiments, repo=repo, metric=metric)
        for note in notes:
            typer.echo(note, err=True)
        result = build(experiments, out, metric=metric, methods=methods, hue_method=hue_method, notes=notes,
                       test=test)
        for warning in result.warnings:
            typer.echo(f"warning: {warning}", err=True)
        for note in result.notes:
            typer.echo(note, err=True)
        typer.echo(f"compared {len(experiments)} experiments by {', '.join(result.keys)} "
                   f"(methods: {', '.join(result.methods)})")
        print_ranking(result.ranking, metric, result.methods, test, result.references)
        for panel in result.panels:
            paper = f" ({panel.paper} of the paper)" if panel.paper else ""
            typer.echo(f"  {result.out / panel.file}{paper}")
        typer.echo(f"  {result.out / 'ranking.csv'}\n  {result.out / 'tests.csv'}\n  {result.out / 'index.html'}")
