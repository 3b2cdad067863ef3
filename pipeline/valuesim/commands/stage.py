"""`valuesim stage NAME`: the entry point DVC calls for each stage.

It parses params.yaml once into typed config and hands it to
``valuesim.stages.<name>.run(params, **options)``.
"""

from __future__ import annotations

import importlib
from contextlib import nullcontext

import typer

from valuesim.config import load_params
from valuesim.errors import ConfigError
from valuesim.names import shorten
from valuesim.parent_watch import stop_when_parent_dies, under_dvc

STAGES = (
    "extract", "validate", "map", "human", "descriptors", "personas",
    "simulate", "new_questions", "calibrate", "evaluate", "shapley", "report",
)


def register(app: typer.Typer) -> None:
    @app.command("stage")
    def stage(
        name: str = typer.Argument(..., help=f"one of: {', '.join(STAGES)}"),
        params_file: str = typer.Option("params.yaml", "--params", help="params file"),
        model: str | None = typer.Option(None, help="simulate: model name"),
        method: str | None = typer.Option(None, help="simulate: prompting method"),
        from_dvc_stage: bool = typer.Option(
            False, "--from-dvc-stage",
            help="simulate: take model and method from DVC_STAGE (what dvc.yaml runs, so that "
                 "no params value is pasted into a shell command)",
        ),
        workers: int | None = typer.Option(
            None, "--workers", help="calibrate: processes for the (model, method) fits "
            "(default: the usable cores; 1 = none, fit in this process); outputs do not depend on it",
        ),
    ) -> None:
        """Run one pipeline stage (what `dvc repro` calls)."""
        if name not in STAGES:
            raise ConfigError(f"unknown stage {shorten(name)}; choose from {', '.join(STAGES)}")
        if from_dvc_stage:
            if name != "simulate" or model is not None or method is not None:
                raise ConfigError("--from-dvc-stage is for the simulate stage, without --model/--method")
            from valuesim.stages.simulate import from_dvc_stage as dvc_entry

            model, method = dvc_entry()
        if workers is not None and name != "calibrate":
            raise ConfigError(f"--workers is for the calibrate stage; drop it for {name}")
        params = load_params(params_file)
        mod = importlib.import_module(f"valuesim.stages.{name}")
        options = {k: v for k, v in {"model": model, "method": method, "workers": workers}.items()
                   if v is not None}
        # Under `dvc repro`, a stage stops when DVC dies rather than run on as an orphan.
        with stop_when_parent_dies() if under_dvc() else nullcontext():
            mod.run(params, **options)
