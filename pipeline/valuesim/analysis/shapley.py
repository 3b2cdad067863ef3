"""Per-item Shapley values of the value persona (paper appendix B.3, Figure 7).

The players are the bank's ten persona items (the Inglehart-Welzel items). The value
of a coalition S, per (model, country), is the country's MAE (|E_pred - E_human| /
range, averaged over the kept target questions) of the value method when every
persona describes only the items in S:

* v(all items) is exactly the value method (same prompts as the simulate stage, so
  its answers come from the response cache when that stage ran);
* v(∅) is the value prompt whose persona is the nationality sentence alone ("You live
  in Japan."). Keeping the prompt's frame (guidance + "Your persona:") and the
  nationality fixed means each item's share measures its descriptor alone, not the
  switch from country prompting to persona prompting; and Σ_i φ_i = v(all) - v(∅) is
  "how much the descriptors as a whole help".

A negative Shapley value means that including the item lowers the MAE.

Estimation is by permutation sampling: for each of ``n_permutations`` random orders
of the items (the same orders for every model and country, drawn from ``seed``), the
marginal contribution of the k-th item is v(first k items) - v(first k-1 items). The
estimate is the mean over permutations; its standard error the standard deviation
over permutations / sqrt(n). Each permutation's contributions sum to v(all) - v(∅),
so the estimates satisfy efficiency exactly whatever the number of permutations. When
``n_permutations`` >= n! every order is enumerated once and the values are exact.

Cost: a permutation needs its 9 inner prefixes (∅ and all items are shared), so at
most 9·P + 2 distinct coalitions, each asked of every value persona and kept question:
≤ (9·P + 2) x personas x questions scorings. With the defaults (P = 8, 10 countries x
6 personas, ~32 kept questions) that is ≤ 74 x 60 x 32 ≈ 142,000 scorings, about 6-7
hours with the embedded model at ~6 scorings/s on a 2-core CPU. Fewer are paid in practice: prompts
repeat (singletons and pairs recur across permutations, a respondent who skipped an
item gives the same persona with and without it, v(∅) is one persona per country), the
engine sends each distinct prompt once, and the response cache makes reruns free.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import permutations as all_orders
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from numpy.typing import NDArray

from valuesim.errors import DataError
from valuesim.personas.build import build_personas
from valuesim.personas.descriptors import DescriptorSet
from valuesim.survey.bank import QuestionBank

if TYPE_CHECKING:
    from valuesim.llm.engine import Engine
    from valuesim.prompts import PromptUnit

FloatArray = NDArray[np.float64]
Coalition = frozenset[int]

ESTIMATES_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.Utf8(), "country": pl.Utf8(), "item": pl.Utf8(), "label": pl.Utf8(),
    "shapley": pl.Float64(), "se": pl.Float64(), "n_permutations": pl.Int64(),
}
VALUES_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.Utf8(), "subset": pl.Utf8(), "n_items": pl.Int64(), "country": pl.Utf8(),
    "mae": pl.Float64(), "n_questions": pl.Int64(),
}


# ---------------------------------------------------------------------------
# The estimator, independent of models: players are 0..n-1


def sample_permutations(n_players: int, n_permutations: int, seed: int) -> NDArray[np.int64]:
    """(P, n) orders of the players: P random ones, or all n! when P >= n! (exact)."""
    if n_players < 1 or n_permutations < 1:
        raise ValueError("need at least one player and one permutation")
    if n_permutations >= math.factorial(n_players):
        return np.asarray(list(all_orders(range(n_players))), dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n_players) for _ in range(n_permutations)]).astype(np.int64)


def is_exact(orders: NDArray[np.int64]) -> bool:
    """True when ``orders`` holds every permutation of its players once."""
    n = orders.shape[1]
    return orders.shape[0] == math.factorial(n) and len({tuple(o) for o in orders}) == orders.shape[0]


def coalitions(orders: NDArray[np.int64]) -> list[Coalition]:
    """Every prefix coalition the orders need (∅ and the full set included), first-seen order."""
    seen: dict[Coalition, None] = {frozenset(): None}
    for order in orders:
        for k in range(1, len(order) + 1):
            seen.setdefault(frozenset(int(i) for i in order[:k]), None)
    return list(seen)


def shapley_estimates(
    orders: NDArray[np.int64], values: Mapping[Coalition, FloatArray]
) -> tuple[FloatArray, FloatArray]:
    """Mean marginal contribution per player and its standard error, each (n, ...).

    ``values`` maps every coalition of :func:`coalitions` to an array (e.g. one value
    per country); the outputs have that shape with the players in front. The standard
    error is 0 for an exact (all orders) estimate and NaN from a single order.
    """
    n_perm, n = orders.shape
    empty = np.asarray(values[frozenset()], dtype=np.float64)
    marginals = np.zeros((n_perm, n, *empty.shape))
    for p, order in enumerate(orders):
        prev, members = empty, set[int]()
        for player in order:
            members.add(int(player))
            cur = np.asarray(values[frozenset(members)], dtype=np.float64)
            marginals[p, int(player)] = cur - prev
            prev = cur
    mean = marginals.mean(axis=0)
    if is_exact(orders):
        se = np.zeros_like(mean)
    elif n_perm > 1:
        se = marginals.std(axis=0, ddof=1) / math.sqrt(n_perm)
    else:
        se = np.full_like(mean, np.nan)
    return mean, se


# ---------------------------------------------------------------------------
# The value function: country MAE of value personas restricted to a coalition


def _no_sociodemographic() -> DescriptorSet:
    # build_personas wants a sociodemographic set; value personas never use it.
    return DescriptorSet(name="unused", kind="sociodemographic")


def coalition_personas(
    respondents: pl.DataFrame,
    bank: QuestionBank,
    value_set: DescriptorSet,
    items: Sequence[str],
) -> pl.DataFrame:
    """Value personas (with nationality) describing only ``items``; value-method ids."""
    return build_personas(
        respondents, bank, value_set, _no_sociodemographic(),
        kinds=("value",), nationality=(True,), items=items,
    )


def check_personas_current(
    personas: pl.DataFrame, respondents: pl.DataFrame, bank: QuestionBank, value_set: DescriptorSet
) -> None:
    """The full coalition must rebuild the stored value personas word for word; if it
    does not, respondents or descriptors changed since the personas stage ran."""
    rebuilt = coalition_personas(respondents, bank, value_set, [i.id for i in bank.persona_items])
    stored = dict(personas.select("persona_id", "text").iter_rows())
    for pid, text in rebuilt.select("persona_id", "text").iter_rows():
        if stored.get(pid) != text:
            raise DataError(
                f"value persona {pid} differs from one rebuilt from the respondents and "
                "descriptors; rerun the personas stage (dvc repro personas)"
            )


def human_means(
    summary: pl.DataFrame, countries: Sequence[str], questions: Sequence[str]
) -> pl.DataFrame:
    """country, question, mean for every selected country and kept question."""
    want = pl.DataFrame(
        [(c, q) for c in countries for q in questions],
        schema={"country": pl.Utf8, "question": pl.Utf8}, orient="row",
    )
    got = want.join(summary.select("country", "question", "mean"), on=["country", "question"], how="left")
    gap = got.filter(pl.col("mean").is_null() | pl.col("mean").is_nan())
    if gap.height:
        c, q = gap.row(0)[:2]
        raise DataError(
            f"no human mean for {c} {q} in data/human/summary.parquet; "
            "rerun the human stage (dvc repro human)"
        )
    return got


def country_mae(
    population: pl.DataFrame, means: pl.DataFrame, bank: QuestionBank
) -> pl.DataFrame:
    """country, mae, n_questions from a population table (country, question, codes, probs).

    Questions where every persona was flagged have no population row and are left out
    of that country's mean (n_questions says how many counted).
    """
    rows = []
    for country, question, codes, probs in population.select(
        "country", "question", "codes", "probs"
    ).iter_rows():
        item = bank.item(question)
        expected = float(np.dot(np.asarray(codes, dtype=np.float64), np.asarray(probs)))
        rows.append({"country": country, "question": question,
                     "pred": expected, "range": float(item.range)})
    frame = pl.DataFrame(rows, schema={"country": pl.Utf8, "question": pl.Utf8,
                                       "pred": pl.Float64, "range": pl.Float64})
    return (
        frame.join(means, on=["country", "question"], how="inner")
        .group_by("country")
        .agg(((pl.col("pred") - pl.col("mean")).abs() / pl.col("range")).mean().alias("mae"),
             pl.len().cast(pl.Int64).alias("n_questions"))
    )


def subset_name(items: Sequence[str]) -> str:
    return ",".join(items)


@dataclass
class ShapleyRun:
    """What :func:`run_shapley` computed for one model."""

    estimates: pl.DataFrame  # ESTIMATES_SCHEMA
    values: pl.DataFrame  # VALUES_SCHEMA
    n_coalitions: int
    prompts: int
    summary: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class CoalitionPrompts:
    """Every coalition's prompts: what :func:`run_shapley` sends (and the plan prices)."""

    coalitions: list[Coalition]
    members: list[list[str]]  # each coalition's persona items, in the bank's order
    units: list[list[PromptUnit]]  # each coalition's prompts
    personas: int

    @property
    def all_units(self) -> list[PromptUnit]:
        return [u for units in self.units for u in units]


def coalition_prompts(
    *,
    personas: pl.DataFrame,
    respondents: pl.DataFrame,
    bank: QuestionBank,
    value_set: DescriptorSet,
    questions: Sequence[str],
    countries: Sequence[str],
    guidance: str,
    orders: NDArray[np.int64],
) -> CoalitionPrompts:
    """The value prompts of every coalition the permutations ``orders`` need (the
    arguments as :func:`run_shapley` takes them); the same for every model."""
    from valuesim.prompts import plan_prompts

    items = [i.id for i in bank.persona_items]
    if orders.ndim != 2 or orders.shape[1] != len(items):
        raise ValueError(f"orders must be (P, {len(items)}): one column per persona item")
    chosen = personas.filter(pl.col("country").is_in(list(countries)))
    wanted_ids = chosen.select("respondent_id").with_row_index("_order")
    absent = wanted_ids.join(respondents, on="respondent_id", how="anti")
    if absent.height:
        raise DataError(
            f"respondent {absent['respondent_id'][0]} of the value personas is not in "
            "data/interim/respondents.parquet; rerun the personas stage (dvc repro personas)"
        )
    # persona order as in the value persona table, so v(all) repeats the simulate prompts
    rows = wanted_ids.join(respondents, on="respondent_id").sort("_order").drop("_order")
    check_personas_current(chosen, rows, bank, value_set)

    wanted = coalitions(orders)
    members = [[items[i] for i in sorted(c)] for c in wanted]
    units_by: list[list[PromptUnit]] = []
    for names in members:
        table = coalition_personas(rows, bank, value_set, names)
        units_by.append(plan_prompts("value", table, bank, questions, countries, guidance))
    return CoalitionPrompts(wanted, members, units_by, chosen.height)


def run_shapley(
    engine: Engine,
    model: str,
    *,
    personas: pl.DataFrame,
    respondents: pl.DataFrame,
    bank: QuestionBank,
    value_set: DescriptorSet,
    questions: Sequence[str],
    countries: Sequence[str],
    summary: pl.DataFrame,
    guidance: str,
    orders: NDArray[np.int64],
    log: bool = True,
    prompts: CoalitionPrompts | None = None,
) -> ShapleyRun:
    """Shapley value of every persona item per country for one model.

    ``personas``: the value method's persona table (persona_id, respondent_id,
    country, text); ``respondents``: the rows (item codes) of its respondents;
    ``summary``: data/human/summary.parquet. All coalitions' prompts go to the engine
    in one run, so identical prompts are scored once and cached answers are reused.
    ``prompts``: :func:`coalition_prompts` of the same arguments, when the caller has
    them already (the stage plans their cost first).
    """
    from valuesim.answer_tables import answers_frame, population_frame

    if prompts is None:
        prompts = coalition_prompts(
            personas=personas, respondents=respondents, bank=bank, value_set=value_set,
            questions=questions, countries=countries, guidance=guidance, orders=orders,
        )
    items = [i.id for i in bank.persona_items]
    means = human_means(summary, countries, questions)
    wanted, members, units_by = prompts.coalitions, prompts.members, prompts.units
    all_units = prompts.all_units
    if log:
        unique = len({u.messages for u in all_units})
        print(
            f"shapley {model}: {orders.shape[0]} permutations -> {len(wanted)} item subsets x "
            f"{prompts.personas} personas x {len(questions)} questions = {len(all_units)} prompts "
            f"({unique} distinct)", flush=True,
        )
    results = engine.run([engine.request(u.messages, u.answers) for u in all_units])

    value_rows: list[dict[str, object]] = []
    by_coalition: dict[Coalition, FloatArray] = {}
    start = 0
    for coalition, names, units in zip(wanted, members, units_by, strict=True):
        part = results[start : start + len(units)]
        start += len(units)
        population = population_frame(answers_frame(units, part, bank))
        mae = dict(
            (c, (m, n)) for c, m, n in country_mae(population, means, bank).iter_rows()
        )
        missing = [c for c in countries if c not in mae]
        if missing:
            raise DataError(
                f"{model}: no usable answer for {missing[0]} with items {subset_name(names) or 'none'} "
                "(every persona flagged); check the model's coverage in data/simulated"
            )
        by_coalition[coalition] = np.asarray([mae[c][0] for c in countries])
        value_rows += [
            {"model": model, "subset": subset_name(names), "n_items": len(names), "country": c,
             "mae": mae[c][0], "n_questions": mae[c][1]}
            for c in countries
        ]
    phi, se = shapley_estimates(orders, by_coalition)
    labels = {i.id: i.label for i in bank.persona_items}
    estimates = pl.DataFrame(
        [
            {"model": model, "country": c, "item": item, "label": labels[item],
             "shapley": float(phi[k, j]), "se": float(se[k, j]), "n_permutations": orders.shape[0]}
            for j, c in enumerate(countries)
            for k, item in enumerate(items)
        ],
        schema=ESTIMATES_SCHEMA,
    )
    return ShapleyRun(
        estimates=estimates,
        values=pl.DataFrame(value_rows, schema=VALUES_SCHEMA),
        n_coalitions=len(wanted),
        prompts=len(all_units),
        summary=engine.summary.to_json(),
    )
