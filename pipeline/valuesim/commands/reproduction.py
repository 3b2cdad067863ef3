"""`valuesim check-reproduction`: does this workspace reproduce a committed study?

Byte-identical outputs are guaranteed on one machine only (see
:mod:`valuesim.analysis.metric_precision`); on another, fp32 kernels move the last
bits. This command compares the workspace's ``reports/metrics.json`` with a git
revision's (default HEAD) or a file, and optionally two ``data/eval`` directories,
within a stated tolerance: exit 0 when every number is within it, 1 when not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from valuesim.analysis.metric_precision import DEFAULT_ATOL, DEFAULT_RTOL
from valuesim.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("check-reproduction")
    def check_reproduction(
        against: Annotated[
            str,
            typer.Option(
                "--against",
                help="a git revision whose committed metrics to compare with (HEAD: the "
                "commit this clone checked out), or a metrics.json file",
            ),
        ] = "HEAD",
        metrics: Annotated[
            str, typer.Option("--metrics", help="this workspace's metrics file")
        ] = "reports/metrics.json",
        eval_dir: Annotated[
            str | None,
            typer.Option(
                "--eval-dir",
                help="also compare every parquet file of data/eval with this directory "
                "(the other run's data/eval)",
            ),
        ] = None,
        atol: Annotated[
            float,
            typer.Option(
                "--atol",
                help="largest absolute difference that is noise; the default is one unit "
                "in metrics.json's last (4th) decimal",
                min=0.0,
            ),
        ] = DEFAULT_ATOL,
        rtol: Annotated[
            float, typer.Option("--rtol", help="largest relative difference that is noise", min=0.0)
        ] = DEFAULT_RTOL,
        show: Annotated[
            int, typer.Option("--show", help="how many of the largest differences to list", min=0)
        ] = 10,
    ) -> None:
        """Compare metrics (and data/eval) with a revision's, within --atol/--rtol; exit 1 beyond."""
        from valuesim.reproduction import (
            compare_eval_dirs,
            compare_metrics,
            metrics_at,
            read_metrics,
        )

        if not all(map(_finite, (atol, rtol))):
            raise ConfigError("--atol and --rtol must be finite numbers")
        ours_path = Path(metrics)
        ours = read_metrics(ours_path)
        theirs, label = metrics_at(against, Path.cwd())
        tolerance = f"atol {atol:g}, rtol {rtol:g}"
        sections = [(f"{ours_path} vs {label}", compare_metrics(ours, theirs, atol=atol, rtol=rtol))]
        if eval_dir is not None:
            from valuesim.paths import EVAL

            sections.append(
                (f"{EVAL} vs {eval_dir}", compare_eval_dirs(EVAL, Path(eval_dir), atol=atol, rtol=rtol))
            )
        beyond = 0
        for title, result in sections:
            typer.echo(
                f"{title}: {result.compared:,} values, {len(result.differences):,} differ, "
                f"{result.beyond:,} beyond the tolerance ({tolerance})"
            )
            for d in result.largest(show):
                diff = "-" if d.diff is None else f"{d.diff:.2g}"
                verdict = "beyond" if d.beyond else "within"
                typer.echo(f"  {d.where}: {_short(d.ours)} vs {_short(d.theirs)} (diff {diff}, {verdict})")
            beyond += result.beyond
        if beyond:
            what = "1 value differs" if beyond == 1 else f"{beyond:,} values differ"
            typer.echo(f"not reproduced: {what} by more than {tolerance}", err=True)
            raise typer.Exit(1)
        typer.echo(f"reproduced within {tolerance}")


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def _short(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
