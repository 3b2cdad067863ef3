"""`valuesim score`: the answer distribution of one prompt, from any provider.

The prompt is the one ``valuesim prompt show`` prints for the same options; it goes
through the engine, so the answer is cached like any other (a repeat is free).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from valuesim.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("score")
    def score(
        model: str = typer.Option(
            ..., help="model name for --provider, or an entry of the params' models section"
        ),
        provider: str | None = typer.Option(None, help="provider (see `valuesim providers`)"),
        base_url: str | None = typer.Option(None, "--base-url", help="server URL (OpenAI-compatible etc.)"),
        method: str = typer.Option("value", help="prompting method"),
        country: str | None = typer.Option(None, help="ISO3 code (default: first selected country)"),
        question: str | None = typer.Option(None, help="question id (default: the first target)"),
        respondent: str | None = typer.Option(None, help="respondent id (persona methods)"),
        guidance: str | None = typer.Option(None, help="guidance key (default: prompts.guidance)"),
        estimator: str | None = typer.Option(None, help="logprobs, top_logprobs, sampling, verbalized"),
        answer_rule: str | None = typer.Option(
            None, "--answer-rule",
            help=(
                "what a probability measures: answer_start (default), answer_eot, first_token, "
                "leading_integer"
            ),
        ),
        option: Annotated[list[str] | None, typer.Option(
            "--option", help="a model option KEY=VALUE as under options: in params.yaml "
            "(e.g. api_key_env=VLLM_KEY); repeat for several"
        )] = None,
        source: str | None = typer.Option(None, help="sample personas from this source"),
        fmt: str = typer.Option("table", "--format", help="table or json"),
        params_file: str = typer.Option("params.yaml", "--params", help="params file"),
    ) -> None:
        """Score one prompt: probability of each answer, coverage and estimator."""
        import polars as pl

        from valuesim.config import load_params
        from valuesim.llm.engine import Engine
        from valuesim.methods import check_method, persona_kind
        from valuesim.model_flags import ModelFlags, resolve_model, with_model
        from valuesim.personas.preview import country_personas
        from valuesim.prompts import check_guidance, render
        from valuesim.spending import plan_and_check
        from valuesim.survey.bank import load_bank

        if fmt not in ("table", "json"):
            raise ConfigError(f"unknown format {fmt!r}; use --format table or --format json")
        check_method(method)
        params = load_params(params_file)
        flags = ModelFlags(provider=provider, base_url=base_url, estimator=estimator,
                           answer_rule=answer_rule, options=tuple(option or ()))
        params = with_model(params, model, resolve_model(params, model, flags,
                                                         params_file=params_file))
        spec = params.models[model]
        key = check_guidance(guidance or params.prompts.guidance)
        bank = load_bank(params.data.questions)
        item = bank.item(question) if question is not None else bank.targets[0]
        if country is None:
            select = params.countries.select
            country = select[0] if isinstance(select, list) and select else "JPN"
        kind, nationality = persona_kind(method)
        persona_text, persona_id = None, f"{country}:{method}"
        if kind is not None:
            rows = country_personas(
                params, bank, country, source=source, respondent=respondent
            ).filter((pl.col("kind") == kind) & (pl.col("nationality") == nationality))
            persona_text, persona_id = rows["text"][0], rows["persona_id"][0]
        messages = render(method, item, country=country, guidance=key, persona=persona_text)

        with Engine(
            spec.provider, spec, params.simulate.cache_dir,
            batch_size=1, max_retries=params.simulate.max_retries,
            timeout_s=params.simulate.timeout_s, prices=params.simulate.prices,
            progress=False, log=lambda _: None,
        ) as engine:
            answers = tuple(str(c) for c in item.codes)
            request = engine.request(messages, answers)
            # simulate.max_cost_usd holds here too: planned before it is sent (valuesim.spending)
            plan_and_check(params, engine, model, method, [request], stage="score",
                           label=f"score {model}", fix="score with a cheaper model")
            (dist,) = engine.run([request])
            cached = engine.summary.cache_hits == 1

        result = {
            "distribution": {str(c): p for c, p in zip(item.codes, dist.probs, strict=True)},
            "coverage": dist.coverage,
            "estimator": dist.estimator,
            "answer_rule": dist.answer_rule,
            "flag": dist.flag,
            "floored": list(dist.floored),
            "provider": spec.provider,
            "model": spec.model,
            "method": method,
            "country": country,
            "question": item.id,
            "persona_id": persona_id,
            "cached": cached,
        }
        if fmt == "json":
            typer.echo(json.dumps(result, indent=2))
            return
        _print_table(result, {a.code: a.label for a in item.answers})


def _print_table(result: dict[str, object], labels: dict[int, str]) -> None:
    from rich.console import Console
    from rich.table import Table

    title = (
        f"{result['provider']}/{result['model']} · {result['method']} · {result['country']} · "
        f"{result['question']} · coverage {result['coverage']:.3f} · {result['estimator']} · "
        f"{result['answer_rule']}"
    )
    table = Table(title=title)
    for col in ("answer", "label", "probability", ""):
        table.add_column(col)
    dist: dict[str, float] = result["distribution"]  # type: ignore[assignment]
    for code, p in dist.items():
        table.add_row(code, labels.get(int(code), ""), f"{p:.4f}", "█" * round(p * 40))
    console = Console()
    Console(width=max(console.width, 100)).print(table)
    if result["flag"]:
        console.print(f"flagged: {result['flag']}")
