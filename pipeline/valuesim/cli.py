"""The `valuesim` command.

Each command group lives in ``valuesim.commands.<name>`` and exposes
``register(app)``; this module only wires them, sorts them into the workflows that
``--help`` shows (:data:`WORKFLOWS`), and turns user errors into one line.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any

import typer

from valuesim.errors import ValuesimError

# Registration order is the order --help lists the commands in, within each panel.
COMMAND_MODULES = (
    "stage", "summary", "human", "map", "personas", "export", "view", "reproduction",
    "ask", "plan", "prompt",
    "compare",
    "providers", "score", "bench", "bench_client",
    "cache", "demo",
)

#: --help's panels, in workflow order: which commands (and command groups) each holds.
#: A command that is in none fails the CLI tests, so a new one is placed on purpose.
WORKFLOWS: dict[str, tuple[str, ...]] = {
    "Study": ("stage", "summary", "human", "map", "personas", "export", "view", "check-reproduction"),
    "Ask": ("ask", "plan", "prompt"),
    "Compare": ("compare",),
    "Models": ("providers", "score", "bench", "bench-client"),
    "Maintenance": ("cache", "demo"),
}


def _panel(name: str | None) -> str | None:
    return next((panel for panel, names in WORKFLOWS.items() if name in names), None)


def _version(value: bool) -> None:
    if value:
        from valuesim import __version__

        typer.echo(f"valuesim {__version__}")
        raise typer.Exit()


def _plain_flags(command: Any) -> Any:
    """On/off options without typer's ``<bool>`` type column in --help (a flag takes no
    value, so a type there reads as if it did), for every command and group below.
    (typer renders an option's metavar there when it has one; it vendors its own
    click, so its commands and options are matched by their attributes.)"""
    for param in command.get_params(command.context_class(command)):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub)
    return command


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
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ) -> None:
        if debug:
            os.environ["VALUESIM_DEBUG"] = "1"

    for name in COMMAND_MODULES:
        importlib.import_module(f"valuesim.commands.{name}").register(app)
    for info in (*app.registered_commands, *app.registered_groups):
        name = info.name or (info.callback.__name__ if info.callback else None)
        info.rich_help_panel = info.rich_help_panel or _panel(name)
    for command in app.registered_commands:
        # the list in --help shows a docstring's first paragraph with its source line
        # breaks (rich markup keeps them): one line each, wrapped by the terminal
        doc = command.callback.__doc__ if command.callback else None
        if command.short_help is None and command.help is None and doc:
            command.short_help = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    return app


def build_command() -> Any:
    """The click command ``valuesim`` runs: the typer app, its flags shown plainly."""
    return _plain_flags(typer.main.get_command(build_app()))


def main(argv: list[str] | None = None) -> None:
    from valuesim.llm.interrupt import Interrupted, handlers_installed, message

    debug = "--debug" in (argv if argv is not None else sys.argv)
    # Ctrl-C / SIGTERM / SIGHUP: the first stops running engines promptly (what finished is
    # cached) and ends here with one line and exit 128+signal; a second exits at once.
    with handlers_installed():
        try:
            command = build_command()
            # standalone mode: click itself reports usage errors (exit 2) and handles
            # --help; only our own user errors need turning into one line here.
            command.main(args=argv, prog_name="valuesim", standalone_mode=True)
        except ValuesimError as exc:
            if debug:
                raise
            typer.echo(f"error: {exc}", err=True)
            raise SystemExit(exc.exit_code) from None
        except Interrupted as exc:
            typer.echo(message(exc), err=True)
            raise SystemExit(exc.exit_code) from None
