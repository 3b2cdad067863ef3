"""The requests of the study's paid stages other than simulate, as those stages build them.

``dvc repro`` pays for more than the simulate matrix: the ``new_questions`` stage asks
every (model, method) the items of ``data.new_questions``, and with ``analysis.shapley``
on the ``shapley`` stage asks every model the value prompts of each item coalition.
:func:`valuesim.planning.plan_study` prices them as rows of their own, so that
``valuesim plan`` shows them and ``simulate.max_cost_usd`` bounds them with the rest
(:mod:`valuesim.spending`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import polars as pl

    from valuesim.config import Params
    from valuesim.llm.types import ChatMessage
    from valuesim.survey.bank import QuestionBank

# valuesim.planning's Prompt and StageInputs, restated: planning calls this module, so
# importing them from there (even for type checking only) would close an import circle.
Prompt = tuple[tuple["ChatMessage", ...], tuple[str, ...]]


class StageInputs(Protocol):
    """What these stages plan from: :class:`valuesim.planning.StageInputs`."""

    bank: QuestionBank
    countries: tuple[str, ...]
    personas: Callable[[str], pl.DataFrame]
    from_outputs: bool


def new_question_prompts(
    params: Params, inputs: StageInputs, project: Path, method: str
) -> list[Prompt]:
    """What the new_questions stage asks with ``method`` (:func:`valuesim.survey.new_questions.plan_items`
    with the study's personas in the study's countries)."""
    from valuesim.personas.on_demand import under
    from valuesim.survey.new_questions import load_question_files, plan_items

    items = load_question_files([under(project, f) for f in params.data.new_questions], inputs.bank)
    _, units = plan_items(params, method, inputs.personas(method), inputs.bank, items,
                          list(inputs.countries))
    return [(u.messages, u.answers) for u in units]


def coalition_inputs(params: Params) -> dict[str, Any]:
    """The arguments of :func:`valuesim.analysis.shapley.coalition_prompts`, read from
    the pipeline's outputs as the shapley stage reads them."""
    import polars as pl

    from valuesim import artifacts, paths
    from valuesim.analysis.shapley import sample_permutations
    from valuesim.personas import descriptors
    from valuesim.survey.bank import load_bank

    an = params.analysis
    bank = load_bank(params.data.questions)
    personas = artifacts.method_personas("value")
    ids = personas["respondent_id"].to_list()
    respondents = artifacts.read_parquet(paths.RESPONDENTS, "extract").filter(
        pl.col("respondent_id").is_in(ids)
    )
    return {
        "personas": personas, "respondents": respondents, "bank": bank,
        "value_set": descriptors.load(paths.GENERATED_DESCRIPTORS, bank, kind="value"),
        # Shapley values explain the error of a mean: nominal and binary targets have none
        "questions": [q for q in artifacts.kept_questions() if bank.item(q).type == "ordinal"],
        "countries": artifacts.selected_countries(),
        "guidance": params.prompts.guidance,
        "orders": sample_permutations(len(bank.persona_items), an.shapley_permutations, an.seed),
    }


def shapley_unplannable(project: Path) -> str | None:
    """Why the shapley stage's prompts cannot be planned here, or None."""
    from valuesim import paths

    needed = [paths.RESPONDENTS, paths.GENERATED_DESCRIPTORS, paths.personas_for("value")]
    missing = [str(p) for p in needed if not (project / p).exists()]
    if missing:
        return f"{', '.join(missing)} not there yet"
    if project.resolve() != Path().resolve():
        return "the stage reads the outputs of the current directory's project"
    return None


def shapley_prompts(project: Path, params: Params) -> list[Prompt] | str:
    """What the shapley stage asks every model, or why it cannot be planned here."""
    from valuesim.analysis.shapley import coalition_prompts

    if (why := shapley_unplannable(project)) is not None:
        return why
    prompts = coalition_prompts(**coalition_inputs(params))
    return [(u.messages, u.answers) for u in prompts.all_units]


def other_stage_prompts(
    params: Params, inputs: StageInputs, project: Path, notes: list[str]
) -> Iterator[tuple[str, str, Callable[[], list[Prompt]]]]:
    """(stage, method, what builds its prompts) of new_questions (per method of the study)
    and shapley (method value), each asked of every model; what cannot be planned is said
    in ``notes``. The prompts are built when asked for: a stored plan needs them only for
    a model whose cached answers changed (:mod:`valuesim.plan_cache`)."""
    if params.data.new_questions:
        for method in params.simulate.methods:
            yield "new_questions", method, partial(new_question_prompts, params, inputs, project, method)
    if params.analysis.shapley:
        if not inputs.from_outputs:
            notes.append("shapley: not planned (its coalitions are built from the pipeline's "
                         "outputs, and this plan is from params alone)")
            return
        if (why := shapley_unplannable(project)) is not None:
            notes.append(f"shapley: not planned ({why})")
            return
        yield "shapley", "value", partial(_shapley_listed, project, params)


def _shapley_listed(project: Path, params: Params) -> list[Prompt]:
    found = shapley_prompts(project, params)
    if isinstance(found, str):  # gone since it was looked at
        from valuesim.errors import DataError

        raise DataError(f"plan: shapley prompts: {found}")
    return found
