"""`valuesim cache check|stats|prune`: look after the persistent response cache.

The cache (``simulate.cache_dir``/responses.sqlite) holds every answer paid for;
these commands tell whether it is intact, what it holds, and drop what is no
longer wanted, without opening it by hand.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from valuesim.errors import ConfigError, DataError

if TYPE_CHECKING:
    from valuesim.llm.cache import ResponseCache

_DAY_S = 86400.0


def _open(
    cache_dir: str | None, params_file: str, timeout_s: float, *, read_only: bool = False,
    accept_wal_loss: bool = False,
) -> ResponseCache:
    """The cache named by --cache-dir, else by the params' simulate.cache_dir.

    ``read_only``: look without writing anything (check, stats, a dry run), so these
    work on a read-only mount and never turn an empty file into a database."""
    from valuesim.llm.cache import DB_NAME, ResponseCache, resolve_cache_dir

    if cache_dir is None:
        from valuesim.config import load_params

        cache_dir = load_params(params_file).simulate.cache_dir
        where = f"simulate.cache_dir in {params_file} or pass --cache-dir"
    else:
        where = "--cache-dir"
    directory = resolve_cache_dir(cache_dir)
    path = directory / DB_NAME
    # Opening would create an empty cache: a typo in the path must not look like one.
    if not path.exists() and not path.is_symlink():
        raise DataError(f"no response cache at {path}; check {where}")
    return ResponseCache(
        directory, timeout_s=timeout_s, read_only=read_only, accept_wal_loss=accept_wal_loss
    )


def _check_format(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise ConfigError(f"unknown format {fmt!r}; use --format table or --format json")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def register(app: typer.Typer) -> None:
    cache_app = typer.Typer(
        help="Check, summarise and prune the response cache.", no_args_is_help=True
    )
    app.add_typer(cache_app, name="cache")

    cache_dir_opt = typer.Option(
        None, "--cache-dir", help="Cache directory (default: simulate.cache_dir from --params)."
    )
    params_opt = typer.Option("params.yaml", "--params", help="params file")
    format_opt = typer.Option("table", "--format", help="table or json")
    timeout_opt = typer.Option(
        60.0, "--lock-timeout", min=0.0, help="Seconds to wait for another process's lock."
    )

    @cache_app.command("check")
    def check_cmd(
        cache_dir: str | None = cache_dir_opt,
        params_file: str = params_opt,
        fmt: str = format_opt,
        lock_timeout: float = timeout_opt,
    ) -> None:
        """SQLite integrity check plus decoding every row; exit 2 when damaged."""
        _check_format(fmt)
        with _open(cache_dir, params_file, lock_timeout, read_only=True) as cache:
            report = cache.check()
        if fmt == "json":
            typer.echo(json.dumps({
                "path": str(report.path), "ok": report.ok, "rows": report.rows,
                "bad_rows": report.bad_rows, "problems": report.problems,
            }, indent=2))
        if not report.ok:
            raise DataError(report.summary())
        if fmt == "table":
            typer.echo(report.summary())

    @cache_app.command("stats")
    def stats_cmd(
        cache_dir: str | None = cache_dir_opt,
        params_file: str = params_opt,
        fmt: str = format_opt,
        lock_timeout: float = timeout_opt,
    ) -> None:
        """Rows per provider and model, with the oldest and newest answer."""
        _check_format(fmt)
        with _open(cache_dir, params_file, lock_timeout, read_only=True) as cache:
            groups = cache.stats()
            path = cache.path
        if fmt == "json":
            typer.echo(json.dumps({"path": str(path), "groups": [
                {"provider": g.provider, "model": g.model, "rows": g.rows,
                 "oldest": g.oldest, "newest": g.newest} for g in groups
            ]}, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"response cache {path}")
        for col in ("provider", "model", "rows", "oldest (UTC)", "newest (UTC)"):
            table.add_column(col, no_wrap=True)
        for g in groups:
            # Rows written before the cache recorded provider/model (schema 1).
            table.add_row(
                g.provider or "(unknown)", g.model or "(unknown)", str(g.rows),
                _when(g.oldest), _when(g.newest),
            )
        table.add_row("total", "", str(sum(g.rows for g in groups)), "", "")
        Console(width=max(Console().width, 120)).print(table)

    @cache_app.command("prune")
    def prune_cmd(
        model: str | None = typer.Option(None, "--model", help="Drop answers of this model."),
        older_than: float | None = typer.Option(
            None, "--older-than", min=0.0, help="Drop answers older than this many days."
        ),
        bad: bool = typer.Option(
            False, "--bad", help="Drop rows that do not decode or hold the wrong number of probabilities."
        ),
        wal_tail: bool = typer.Option(
            False, "--wal-tail",
            help="Drop the damaged tail of the write-ahead log (what `cache check` reports).",
        ),
        dry_run: bool = typer.Option(False, "--dry-run", help="Count, delete nothing."),
        cache_dir: str | None = cache_dir_opt,
        params_file: str = params_opt,
        fmt: str = format_opt,
        lock_timeout: float = timeout_opt,
    ) -> None:
        """Delete answers by model and/or age (criteria combine with AND)."""
        _check_format(fmt)
        if wal_tail:
            _prune_wal_tail(cache_dir, params_file, lock_timeout, fmt, dry_run)
            if model is None and older_than is None and not bad:
                return
        elif model is None and older_than is None and not bad:
            raise ConfigError(
                "nothing to prune: give --model, --older-than DAYS, --bad and/or --wal-tail"
            )
        with _open(cache_dir, params_file, lock_timeout, read_only=dry_run) as cache:
            n = cache.prune(
                model=model, older_than_s=None if older_than is None else older_than * _DAY_S,
                bad=bad, dry_run=dry_run,
            )
            path = cache.path
        if fmt == "json":
            typer.echo(json.dumps({"path": str(path), "rows": n, "dry_run": dry_run}))
        else:
            verb = "would delete" if dry_run else "deleted"
            typer.echo(f"{verb} {n} rows from {path}")


def _prune_wal_tail(
    cache_dir: str | None, params_file: str, timeout_s: float, fmt: str, dry_run: bool
) -> None:
    """Let SQLite recover what it can of a damaged log and fold it into the file."""
    with _open(cache_dir, params_file, timeout_s, read_only=True) as cache:
        wal = cache.wal
        path = cache.path
    if wal is None:
        lost = kept = 0
    else:
        lost, kept = wal.lost_commits, wal.good_commits
        if not dry_run:
            with _open(cache_dir, params_file, timeout_s, accept_wal_loss=True) as writable:
                writable.checkpoint()
    if fmt == "json":
        typer.echo(json.dumps({"path": str(path), "wal_transactions_dropped": lost,
                               "wal_transactions_kept": kept, "dry_run": dry_run}))
    elif wal is None:
        typer.echo(f"the write-ahead log of {path} is intact; nothing to drop")
    else:
        verb = "would drop" if dry_run else "dropped"
        typer.echo(f"{verb} the damaged tail of {wal.path} ({lost} committed transaction(s); "
                   f"{kept} before it kept)")
