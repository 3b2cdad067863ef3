"""`valuesim ask`: simulated answers to new survey items (or WVS items) per country.

A thin wrapper around :func:`valuesim.asking.run_ask`: the answers go through the engine
and the study's response cache, so asking the same thing again costs nothing. The
engine reports progress on stderr (a bar on a terminal); results go to stdout. Every
run is planned before its first request (refused over ``simulate.max_cost_usd``; a
large or paid run prints the plan on stderr); ``--dry-run`` prints the plan and sends
nothing.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Annotated

import typer

from valuesim.errors import ConfigError
from valuesim.model_flags import ModelFlags

if TYPE_CHECKING:
    import polars as pl

    from valuesim.asking import AskResult, AskSummary
    from valuesim.config import ModelSpec
    from valuesim.pilot_asking import PilotSummary

FORMATS = ("table", "json", "csv")
_SPARK = "▁▂▃▄▅▆▇█"
CSV_COLUMNS = (
    "country", "question", "label", "new", "codes", "probs", "expected", "normalized_variance",
    "pred_low", "pred_high", "pred_level", "persona_ci_low", "persona_ci_high", "persona_sd",
    "n_personas", "flagged", "mean_coverage", "estimator", "answer_rule", "method", "model",
    "temperature", "pred_source",
    # the answers' labels and type-aware summaries (valuesim.asking.LABEL_SCHEMA)
    "type", "labels", "mode", "mode_label", "mode_share", "first_listed_share",
    "no_expected_reason", "part_of", "option",
)


def register(app: typer.Typer) -> None:
    @app.command("ask")
    def ask(
        questions: Annotated[list[str], typer.Option(
            "--questions", "-q",
            help="question file (YAML, the bank's item format) or WVS item ids; repeat the "
            "option or give a comma list",
        )],
        countries: str = typer.Option(..., help="ISO3 codes, e.g. JPN,DEU"),
        method: str = typer.Option("value", help="prompting method"),
        model: str = typer.Option(
            "smollm2", help="an entry of the params' models section, or with --provider the "
            "provider's model name (e.g. gpt-4o-mini)"
        ),
        provider: str | None = typer.Option(
            None, help="ask a model params.yaml does not define: its provider (see `valuesim "
            "providers`); keys come from the environment"
        ),
        base_url: str | None = typer.Option(
            None, "--base-url", help="server URL (OpenAI-compatible, vLLM, SGLang, a proxy)"
        ),
        option: Annotated[list[str] | None, typer.Option(
            "--option", help="a model option KEY=VALUE as under options: in params.yaml, "
            "e.g. api_key_env=VLLM_KEY or server=vllm; repeat for several"
        )] = None,
        estimator: str | None = typer.Option(
            None, help="logprobs, top_logprobs, sampling, verbalized (default: the provider's)"
        ),
        answer_rule: str | None = typer.Option(
            None, "--answer-rule", help="answer_start (default), answer_eot, first_token, "
            "leading_integer"
        ),
        n: int | None = typer.Option(
            None, help="personas per country (persona methods); default personas.n_per_country, "
            "the study's own personas, whose answers the study may already have cached"
        ),
        source: str | None = typer.Option(
            None, help="sample personas from these respondents (demo .json or WVS files) "
            "instead of the study's population"
        ),
        calibrate: bool = typer.Option(
            False, "--calibrate", help="apply the temperature the study fitted for (model, method)"
        ),
        level: float = typer.Option(
            0.9, help="level of the prediction interval: 0.8, 0.9 or 0.95 (the levels the "
            "study fitted); with --pilot, the level of the PPI++ interval (any in (0, 1))"
        ),
        pilot: str | None = typer.Option(
            None, "--pilot", help="pilot file (CSV or parquet) of real respondents' answers to "
            "the questions: prints PPI++ estimates and intervals of each country mean"
        ),
        pilot_unlabeled: int | None = typer.Option(
            None, "--pilot-unlabeled", help="with --pilot: model-only respondents per country "
            "(default personas.n_per_country)"
        ),
        fmt: str = typer.Option("table", "--format", help="table, json or csv"),
        params_file: str = typer.Option("params.yaml", "--params", help="params file"),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="print the plan (requests, cached, to send, tokens, cost, "
            "time) and send nothing"
        ),
    ) -> None:
        """Ask survey items of any countries: distribution, expected answer, prediction interval.

        The prediction interval (pred_low-pred_high) is where the population's mean answer
        lies at --level, from the study's own questions held out one at a time; the
        persona interval is simulation noise only.
        """
        from valuesim.asking import run_ask

        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; use --format table, json or csv")
        given = [q.strip() for entry in questions for q in entry.split(",") if q.strip()]
        spec = _model_spec(model, params_file, ModelFlags(
            provider=provider, base_url=base_url, estimator=estimator, answer_rule=answer_rule,
            options=tuple(option or ()),
        ))
        if pilot is not None:
            if n is not None:
                raise ConfigError("--n is not used with --pilot (the pilot's respondents are the "
                                  "personas); set the unlabeled set's size with --pilot-unlabeled")
            from valuesim.pilot_asking import print_pilot, run_pilot

            done = run_pilot(pilot, given, countries, method=method, model=model,
                             n_unlabeled=pilot_unlabeled, level=level, source=source,
                             params_path=params_file, dry_run=dry_run, spec=spec)
            if dry_run:
                print_plan(done.summary, fmt)
            else:
                print_pilot(done, fmt)
            return
        result = run_ask(
            given, countries, method=method, model=model, n=n, source=source,
            calibrate=calibrate, level=level, params_path=params_file, dry_run=dry_run, spec=spec,
        )
        if dry_run:
            print_plan(result.summary, fmt)
            return
        if fmt == "json":
            typer.echo(json.dumps(
                {"results": result.frame.to_dicts(), "summary": result.summary.to_json()}, indent=2
            ))
        elif fmt == "csv":
            typer.echo(to_csv(result.frame), nl=False)
        else:
            print_table(result)
        if fmt != "json":  # json carries them in its summary
            for note in result.summary.notes:
                typer.echo(f"note: {note}", err=True)
            typer.echo(result.summary.line(), err=True)


def _model_spec(model: str, params_file: str, flags: ModelFlags) -> ModelSpec | None:
    """The model of the command line (valuesim.model_flags), checked before anything runs;
    None: the params entry ``model`` as it is."""
    from valuesim.config import load_params
    from valuesim.model_flags import resolve_model

    return resolve_model(load_params(params_file), model, flags, params_file=params_file)


def print_plan(summary: AskSummary | PilotSummary, fmt: str) -> None:
    """A dry run: the plan on stdout (one line, or the summary as JSON), notes on stderr."""
    from valuesim.pilot_asking import PilotSummary
    from valuesim.spending import plan_line

    assert summary.plan is not None
    label = f"{'pilot' if isinstance(summary, PilotSummary) else 'ask'} {summary.model}/{summary.method}"
    if fmt == "json":
        typer.echo(json.dumps({"summary": summary.to_json()}, indent=2))
        return
    typer.echo(plan_line(summary.plan, label))
    for note in summary.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(summary.line(), err=True)


def _csv_cell(column: str, value: object) -> object:
    if value is None:
        return ""
    if column == "labels":  # labels are free text (";" included): a JSON list keeps them exact
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return ";".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in value)
    return value


def to_csv(frame: pl.DataFrame) -> str:
    """One row per (country, question); ``codes`` and ``probs`` as ';'-joined lists,
    ``labels`` as a JSON list."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in frame.iter_rows(named=True):
        writer.writerow([_csv_cell(c, row.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue()


def sparkline(probs: list[float]) -> str:
    """The distribution's shape in one line of block characters (tallest = the mode)."""
    top = max(probs) or 1.0
    return "".join(_SPARK[min(int(p / top * (len(_SPARK) - 1) + 0.5), len(_SPARK) - 1)] for p in probs)


def print_table(result: AskResult) -> None:
    from rich.console import Console
    from rich.table import Table

    s = result.summary
    cal = s.calibration.line() if s.calibration is not None else "raw (not calibrated)"
    sources = sorted({r for r in result.frame["pred_source"].to_list() if r is not None})
    pred = ("prediction interval: " + "; ".join(sources)) if sources else "no prediction interval"
    table = Table(
        title=f"{s.provider}/{s.provider_model} · {s.method} · {s.personas_per_country} personas "
        f"per country · {s.estimator} · {s.answer_rule}",
        caption=f"personas from {s.source}; {cal}\n{pred}\npersona 95%: bootstrap over personas, "
        "simulation noise only (not where the population's answer lies)" + unordered_caption(result),
    )
    levels = {r for r in result.frame["pred_level"].to_list() if r is not None}
    pred_head = f"{max(levels):.0%} prediction" if levels else "prediction"
    labelled = "type" in result.frame.columns and any(t in (*UNORDERED, "multi")
                                                      for t in result.frame["type"])
    for col, justify in (
        ("country", "left"), ("question", "left"), ("expected", "right"), (pred_head, "right"),
        ("persona 95%", "right"), ("norm. var", "right"), ("coverage", "right"),
        ("distribution", "left"), ("mode", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in grouped_rows(result.frame):
        codes = row["codes"]
        if row.get("type") == "multi":
            table.add_row(row["country"], f"{row['part_of']} (multi)", "-", "-", "-", "-",
                          row["coverage_text"], row["selected_text"], "")
            continue
        if row["probs"] is None:
            table.add_row(row["country"], row["question"], "-", "-", "-", "-", "-",
                          "no usable answers", "")
            continue
        probs = row["probs"]
        if row.get("type") in UNORDERED:
            table.add_row(row["country"], f"{row['question']}" + ("" if row["new"] else " (WVS)")
                          + f" ({row['type']})", "-", "-", "-", "-", f"{row['mean_coverage']:.3f}",
                          shares(row["labels"], probs), modal_answer(row))
            continue
        mode = max(range(len(probs)), key=probs.__getitem__)
        table.add_row(
            row["country"], f"{row['question']}" + ("" if row["new"] else " (WVS)"),
            f"{row['expected']:.2f}",
            "none" if row["pred_low"] is None else f"{row['pred_low']:.2f}-{row['pred_high']:.2f}",
            f"{row['persona_ci_low']:.2f}-{row['persona_ci_high']:.2f}",
            f"{row['normalized_variance']:.3f}", f"{row['mean_coverage']:.3f}",
            f"{codes[0]} {sparkline(probs)} {codes[-1]}", f"{codes[mode]} ({probs[mode]:.0%})",
        )
    console = Console()
    width = 110
    if labelled:  # a line per labelled option: as wide as the table needs, no label cut
        width = Console(width=250).measure(table).maximum
    Console(width=max(console.width, width)).print(table)


UNORDERED = ("nominal", "binary")


def grouped_rows(frame: pl.DataFrame) -> list[dict[str, object]]:
    """The frame's rows for the table, the options of a multi item (consecutive rows of
    one country) as one row: ``selected_text``, each option's label and the share
    selecting it, and ``coverage_text``, their mean coverage."""
    from itertools import groupby

    rows: list[dict[str, object]] = []
    for (_, part_of), group in groupby(frame.iter_rows(named=True),
                                        key=lambda r: (r["country"], r.get("part_of"))):
        options = list(group)
        if part_of is None:
            rows += options
            continue
        covered = [r["mean_coverage"] for r in options if r["mean_coverage"] is not None]
        rows.append({**options[0], "type": "multi", "selected_text": "\n".join(
            f"{r['option']} " + ("-" if r["probs"] is None else f"{r['probs'][0]:.0%}") for r in options),
            "coverage_text": f"{sum(covered) / len(covered):.3f}" if covered else "-"})
    return rows


def unordered_caption(result: AskResult) -> str:
    """Why nominal, binary and multi rows have no expected answer, variance or interval."""
    present = set(result.frame["type"].to_list()) if "type" in result.frame.columns else set()
    kinds = sorted(present & set(UNORDERED))
    text = ""
    if kinds:
        text += (f"\n{' and '.join(kinds)} items: unordered options, so no expected answer, "
                 "variance or interval (-); the shares of each option and the modal answer instead")
    if "multi" in present:
        text += ("\nmulti items: the share selecting each option, each option asked on its own "
                 "as Yes/No (the shares need not sum to 100%; --format json has a row per option)")
    return text


def shares(labels: list[str], probs: list[float]) -> str:
    """A nominal or binary row's distribution: every option's label and share."""
    return "\n".join(f"{label} {p:.0%}" for label, p in zip(labels, probs, strict=True))


def modal_answer(row: dict[str, object]) -> str:
    """``1 Television (42%)``; a rotated item adds the share its first-listed answer got."""
    text = f"{row['mode']} {row['mode_label']} ({row['mode_share']:.0%})"
    first = row.get("first_listed_share")
    if isinstance(first, float):
        text += f"\nlisted first: {first:.0%} (1/{len(row['labels'])} if no order effect)"  # type: ignore[arg-type]
    return text
