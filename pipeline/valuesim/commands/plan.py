"""`valuesim plan`: requests, cache hits, tokens, cost and time of the study's simulate
runs (and of its new_questions and shapley stages when they ask anything), before
anything is sent (see valuesim.planning), or of one model's (``--model``, with
``--provider``/``--base-url`` a model params.yaml does not define); with ``--pilot-corr`` and
``--target-width``, how many pilot respondents a PPI++ interval of that width needs
(valuesim.analysis.ppi.pilot_size)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

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
        model: str | None = typer.Option(
            None, "--model",
            help="Plan the study's runs of this model only: an entry of the params' models, or "
            "with --provider the provider's model name (a model params.yaml does not define).",
        ),
        provider: str | None = typer.Option(
            None, help="With --model: its provider (see `valuesim providers`)."
        ),
        base_url: str | None = typer.Option(None, "--base-url", help="With --model: server URL."),
        option: Annotated[list[str] | None, typer.Option(
            "--option", help="With --model: a model option KEY=VALUE (repeat for several)."
        )] = None,
        estimator: str | None = typer.Option(None, help="With --model: the estimator."),
        answer_rule: str | None = typer.Option(None, "--answer-rule", help="With --model: the answer rule."),
        from_params: bool = typer.Option(
            False, "--from-params",
            help="Plan from the params alone even where the pipeline's outputs exist.",
        ),
        pilot_corr: float | None = typer.Option(
            None, "--pilot-corr",
            help="Plan a human pilot instead: the PPI correlation of answers and predictions "
            "(measured on a pilot, e.g. `valuesim ask --pilot`'s ppi_correlation).",
        ),
        target_width: float | None = typer.Option(
            None, "--target-width",
            help="With --pilot-corr: the full interval width wanted, in the unit of --sd "
            "(default: fraction of the scale range).",
        ),
        sd: float = typer.Option(
            0.5, "--sd",
            help="With --pilot-corr: the answers' standard deviation, in the unit of "
            "--target-width (0.5 of the range, the largest possible, by default).",
        ),
        level: float = typer.Option(0.9, "--level", help="With --pilot-corr: confidence level."),
        n_unlabeled: int | None = typer.Option(
            None, "--n-unlabeled",
            help="With --pilot-corr: model-only respondents per country (default: unlimited).",
        ),
    ) -> None:
        """Per (model, method): requests, cached, prompt tokens, prefix splits, cost and time;
        with --pilot-corr and --target-width: the pilot size a PPI++ interval needs."""
        from valuesim.config import load_params
        from valuesim.errors import ConfigError
        from valuesim.model_flags import ModelFlags, resolve_model, with_model
        from valuesim.planning import iter_table, plan_study, study_inputs

        if pilot_corr is not None or target_width is not None:
            if pilot_corr is None or target_width is None:
                raise ConfigError("pilot planning needs both --pilot-corr R and --target-width W")
            _plan_pilot(pilot_corr, target_width, sd, level, n_unlabeled, as_json)
            return

        if requests_per_s is not None and not requests_per_s > 0:
            raise ConfigError(f"--requests-per-s {requests_per_s}: give a positive number of requests a second")
        params = load_params(params_file)
        flags = ModelFlags(provider=provider, base_url=base_url, estimator=estimator,
                           answer_rule=answer_rule, options=tuple(option or ()))
        if model is None and flags.given():
            raise ConfigError("--provider, --base-url, --option, --estimator and --answer-rule "
                              "describe a model: name it with --model")
        if model is not None:  # that model in place of simulate.models, in memory only
            params = with_model(params, model, resolve_model(params, model, flags,
                                                             params_file=params_file))
        project = Path()
        # The pipeline's outputs were made from the project's own params.yaml: another
        # params file (a variant, the paper-scale example) is planned from its params.
        own = Path(params_file).resolve() == (project / "params.yaml").resolve()
        why_not = ("--from-params" if from_params else "" if own else
                   f"{params_file} is not the params.yaml the pipeline's outputs were made from")
        inputs = study_inputs(params, project, use_outputs=own and not from_params, why_not=why_not)
        result = plan_study(params, inputs, project=project, requests_per_s=requests_per_s,
                            models=None if model is None else [model])
        if as_json:
            typer.echo(json.dumps(result.to_json(), indent=2))
        else:
            for line in iter_table(result):
                typer.echo(line)


def _plan_pilot(
    corr: float, width: float, sd: float, level: float, n_unlabeled: int | None, as_json: bool
) -> None:
    from valuesim.analysis.ppi import pilot_size

    plan = pilot_size(corr, width, sd=sd, level=level, n_unlabeled=n_unlabeled)
    if as_json:
        out = {k: (None if v == float("inf") else v) for k, v in plan.__dict__.items()}
        typer.echo(json.dumps(out, indent=2))
        return
    pool = "unlimited" if n_unlabeled is None else f"{n_unlabeled}"
    typer.echo(
        f"PPI++ interval of full width {width:g} at level {level:g}, PPI correlation {corr:g}, "
        f"answer sd {sd:g} (width and sd in one unit: fractions of the scale range unless "
        f"--sd was given in scale points), {pool} model-only respondents:"
    )
    typer.echo(f"  pilot with PPI++: {plan.n_ppi} respondents "
               f"(worth {plan.effective_n:.0f} without the model)")
    typer.echo(f"  classical:        {plan.n_classical} respondents (pilot alone)")
