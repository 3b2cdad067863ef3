"""`valuesim bench-client`: the API client's requests/s and CPU per request (see valuesim.client_bench)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("bench-client")
    def bench_client(
        as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
        answers: int = typer.Option(1000, "--answers", min=1, help="Answers per path and fleet size."),
        servers: list[int] | None = typer.Option(  # noqa: B008
            None, "--servers", min=1, help="Fleet sizes (repeat the option); default: 1 and 4."
        ),
        concurrency: int = typer.Option(8, "--concurrency", min=1, help="Requests in flight per server."),
        batch_size: int = typer.Option(32, "--batch-size", min=1, help="Requests per engine chunk."),
        paths: list[str] | None = typer.Option(  # noqa: B008
            None, "--path", help="sdk-create, sdk-post, provider or engine (repeat); default: all."
        ),
    ) -> None:
        """Time the openai plugin's client (bare SDK calls, the provider, the engine with its
        cache) against zero-latency vLLM-like servers in their own processes."""
        from valuesim.client_bench import PATHS, format_result, run_client_bench

        log = (lambda _m: None) if as_json else (lambda m: typer.echo(m, err=True))
        result = run_client_bench(
            answers=answers, servers=servers or (1, 4), concurrency=concurrency,
            batch_size=batch_size, paths=paths or PATHS, log=log,
        )
        typer.echo(result.to_json() if as_json else format_result(result))
