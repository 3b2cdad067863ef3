"""`valuesim plan`: requests, cache hits, tokens, cost and time of the study's simulate
runs, before anything is sent (see valuesim.planning)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan(
        params_file: str = typer.Option("params.yaml", "--params", help="params file to plan"),
        as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
        requests_per_s: float | None = typer.Option(
            None, "--requests-per-s",
            help="Throughput to assume for models this project has no runs of (reports/runs).",
        ),
        from_params: bool = typer.Option(
            False, "--from-params",
            help="Plan from the params alone even where the pipeline's outputs exist.",
        ),
    ) -> None:
        """Per (model, method): requests, cached, prompt tokens, prefix splits, cost and time."""
        from valuesim.config import load_params
        from valuesim.errors import ConfigError
        from valuesim.planning import iter_table, plan_study, study_inputs

        if requests_per_s is not None and not requests_per_s > 0:
            raise ConfigError(f"--requests-per-s {requests_per_s}: give a positive number of requests a second")
        params = load_params(params_file)
        project = Path()
        # The pipeline's outputs were made from the project's own params.yaml: another
        # params file (a variant, the paper-scale example) is planned from its params.
        own = Path(params_file).resolve() == (project / "params.yaml").resolve()
        why_not = ("--from-params" if from_params else "" if own else
                   f"{params_file} is not the params.yaml the pipeline's outputs were made from")
        inputs = study_inputs(params, project, use_outputs=own and not from_params, why_not=why_not)
        result = plan_study(params, inputs, project=project, requests_per_s=requests_per_s)
        if as_json:
            typer.echo(json.dumps(result.to_json(), indent=2))
        else:
            for line in iter_table(result):
                typer.echo(line)
