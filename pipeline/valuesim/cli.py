"""The `valuesim` command.

Each command group lives in ``valuesim.commands.<name>`` and exposes
``register(app)``; this module only wires them and turns user errors into one line.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from valuesim.errors import ValuesimError

COMMAND_MODULES = (
    "human", "demo", "map", "personas", "prompt", "providers", "score", "bench", "stage",
    "cache", "ask",
    "compare",
    "plan",
    "reproduction",
    "export", "view",
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="valuesim",
        help="Simulate survey populations with calibrated value personas.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def _root(
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    ) -> None:
        if debug:
            os.environ["VALUESIM_DEBUG"] = "1"

    for name in COMMAND_MODULES:
        importlib.import_module(f"valuesim.commands.{name}").register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    from valuesim.llm.interrupt import Interrupted, handlers_installed, message

    debug = "--debug" in (argv if argv is not None else sys.argv)
    # Ctrl-C / SIGTERM / SIGHUP: the first stops running engines promptly (what finished is
    # cached) and ends here with one line and exit 128+signal; a second exits at once.
    with handlers_installed():
        try:
            app = build_app()
            # standalone mode: click itself reports usage errors (exit 2) and handles
            # --help; only our own user errors need turning into one line here.
            app(args=argv, standalone_mode=True)
        except ValuesimError as exc:
            if debug:
                raise
            typer.echo(f"error: {exc}", err=True)
            raise SystemExit(exc.exit_code) from None
        except Interrupted as exc:
            typer.echo(message(exc), err=True)
            raise SystemExit(exc.exit_code) from None
