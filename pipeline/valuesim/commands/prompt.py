"""`valuesim prompt show`: exactly the messages a model receives for one prompt, for an
item of the bank or of a question file (``--questions``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from valuesim.errors import ConfigError

if TYPE_CHECKING:
    from valuesim.config import Params
    from valuesim.survey.bank import Item, QuestionBank


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Inspect prompts.", no_args_is_help=True)
    app.add_typer(group, name="prompt")

    @group.command("show")
    def show(
        method: str = typer.Option(..., help="prompting method, e.g. value or country"),
        country: str = typer.Option(..., help="ISO3 code, e.g. JPN"),
        question: str = typer.Option(..., help="question id, e.g. Q6, or an item of --questions"),
        questions: str | None = typer.Option(
            None, "--questions", "-q",
            help="question file (YAML) holding --question: shows the item as `valuesim ask "
            "--questions FILE` sends it",
        ),
        respondent: str | None = typer.Option(None, help="respondent id (persona methods)"),
        n: int | None = typer.Option(
            None, help="personas per country, as given to `valuesim ask --n` (default "
            "personas.n_per_country): an `order: rotate` item lists its options from the "
            "persona's place among them"
        ),
        guidance: str | None = typer.Option(None, help="guidance key (default: prompts.guidance)"),
        source: str | None = typer.Option(None, help="sample personas from this source"),
        fmt: str = typer.Option(
            "text", "--format", help="text, or json: the messages and the answers scored"
        ),
        params_file: str = typer.Option("params.yaml", "--params", help="params file"),
    ) -> None:
        """Print the system and user messages for one method, country and question."""
        import polars as pl

        from valuesim.config import load_params
        from valuesim.methods import check_method, persona_kind
        from valuesim.personas.preview import country_personas
        from valuesim.prompts import answer_strings, check_guidance, render
        from valuesim.survey.bank import load_bank

        if fmt not in ("text", "json"):
            raise ConfigError(f"unknown format {fmt!r}; use --format text or --format json")
        check_method(method)
        params = load_params(params_file)
        key = check_guidance(guidance or params.prompts.guidance)
        bank = load_bank(params.data.questions)
        item = _item(bank, question, questions)
        kind, nationality = persona_kind(method)
        persona, offset = None, 0  # a country-level method: one prompt per country, offset 0
        if kind is not None:
            rows = country_personas(
                params, bank, country, source=source, respondent=respondent, n=n
            ).filter((pl.col("kind") == kind) & (pl.col("nationality") == nationality))
            persona = rows["text"][0]
            if item.order == "rotate" and respondent is not None:
                offset = _place(params, bank, country, respondent, source, n, kind, nationality)
        messages = render(method, item, country=country, guidance=key, persona=persona, offset=offset)
        if fmt == "json":
            typer.echo(json.dumps({
                "messages": [{"role": m.role, "content": m.content} for m in messages],
                "answers": list(answer_strings(item)),
            }, indent=2, ensure_ascii=False))
            return
        for msg in messages:
            typer.echo(f"[{msg.role.capitalize()}]\n{msg.content}\n")


def _place(
    params: Params, bank: QuestionBank, country: str, respondent: str, source: str | None,
    n: int | None, kind: str, nationality: bool,
) -> int:
    """``respondent``'s place among the ``n`` personas `ask` samples for ``country``: the
    k-th persona's prompt lists a rotated item's options from the (k mod options)-th on
    (valuesim.prompts.plan_prompts)."""
    import polars as pl

    from valuesim.personas.preview import country_personas

    rows = country_personas(params, bank, country, source=source, n=n).filter(
        (pl.col("kind") == kind) & (pl.col("nationality") == nationality))
    ids = rows["respondent_id"].to_list()
    if respondent not in ids:
        size = params.personas.n_per_country if n is None else n
        raise ConfigError(
            f"respondent {respondent!r} is not among the {size} personas `valuesim ask` samples "
            f"for {country}, so where its rotated options start is unknown; pass --n as given "
            f"to ask, or a respondent of `valuesim personas show --country {country} --n {size}`")
    return ids.index(respondent)


def _item(bank: QuestionBank, question: str, questions: str | None) -> Item:
    """``question`` of the bank, or of the question file ``questions`` (validated as
    ``valuesim ask`` validates it: a file's errors are the same one line)."""
    if questions is None:
        if question not in bank.by_id:
            from valuesim.names import shorten

            raise ConfigError(
                f"unknown question id {shorten(question)}; see data/questions/wvs7.yaml for the "
                "bank's ids, or pass --questions FILE for an item of your own question file"
            )
        return bank.item(question)
    from valuesim.asking import resolve_questions

    items = resolve_questions([questions], bank)
    for item in items:
        if item.id == question:
            return item
    options = [i.id for i in items if getattr(i, "part_of", None) == question]
    if options:  # a multi item: each option is a prompt of its own
        raise ConfigError(f"{questions}: {question} is a multi item, asked as one Yes/No item per "
                          f"option: pass --question {options[0]} (its options: {', '.join(options)})")
    ids = ", ".join(i.id for i in items)
    raise ConfigError(f"{questions}: no item {question!r}; its items are {ids}")
