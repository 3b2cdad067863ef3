"""`valuesim bench`: speed and exactness of local scoring (see valuesim.benchmark)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
        countries: list[str] | None = typer.Option(  # noqa: B008
            None, "--countries", help="ISO3 codes (repeat the option); default: first 2 selected."
        ),
        personas: int = typer.Option(1, "--personas", min=1, help="Value personas per country."),
        questions: list[str] | None = typer.Option(  # noqa: B008
            None, "--questions", help="Question ids (repeat the option); default: all kept targets."
        ),
        model: str = typer.Option("smollm2", "--model", help="Entry of models in params.yaml."),
        naive: bool = typer.Option(
            True, "--naive/--no-naive", help="Also time the naive reference (slow)."
        ),
        naive_requests: int = typer.Option(
            4, "--naive-requests", min=0,
            help="Requests the naive reference runs on (evenly spaced; 0 = all).",
        ),
        server_exact: bool = typer.Option(
            True, "--server-exact/--no-server-exact",
            help="Also score through a fake vLLM server with the openai plugin (server_exact_max_tv).",
        ),
        params_file: str = typer.Option("params.yaml", "--params", help="params file"),
    ) -> None:
        """Time the naive reference, the fp32 engine and the bf16 engine on the same prompts;
        check the exact server path (fake vLLM + openai plugin) against fp32."""
        from valuesim.benchmark import format_result, run_bench
        from valuesim.config import load_params

        params = load_params(params_file)
        log = (lambda _m: None) if as_json else (lambda m: typer.echo(m, err=True))
        result = run_bench(
            params,
            model=model,
            countries=[c.upper() for c in countries] if countries else None,
            n_personas=personas,
            questions=questions or None,
            naive=naive,
            naive_requests=naive_requests,
            server_exact=server_exact,
            log=log,
        )
        typer.echo(result.to_json() if as_json else format_result(result))
