"""Per-item Shapley values: the estimator, and the stage on a small made-up project.

The stage runs in-process with a provider plugin (tests/analysis/itemplugin) whose
expected answer is the sum of the shifts of the descriptor sentences in the prompt,
so each item's true effect is known. Respondents are made up (no survey rows).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.fixtures.simulate_project import write_selection
from valuesim import plugins
from valuesim.analysis.shapley import (
    coalitions,
    is_exact,
    run_shapley,
    sample_permutations,
    shapley_estimates,
)
from valuesim.config import Params
from valuesim.errors import ConfigError, DataError
from valuesim.personas import descriptors
from valuesim.personas.build import build_personas, write_persona_tables
from valuesim.survey.bank import load_bank

ROOT = Path(__file__).resolve().parents[2]
BANK = ROOT / "data" / "questions" / "wvs7.yaml"
COUNTRIES = ["JPN", "DEU"]
PER_COUNTRY = 3
QUESTIONS = ["Q1", "Q6", "Q48"]  # 4, 4 and 10 answers
# Shifts of the expected answer per persona item: Q164 and Y003 act identically,
# Q57 not at all (a dummy). They sum to 2.2 < 3, so no answer is clipped.
SHIFTS = {
    "Q164": 0.4, "Y003": 0.4, "Q184": 0.05, "Q254": 0.1, "Q45": 0.15,
    "Y002": 0.2, "Q182": 0.25, "Q209": 0.3, "Q46": 0.35, "Q57": 0.0,
}


# ---------------------------------------------------------------------------
# The estimator on games with known values


def exact_shapley(n: int, v: dict[frozenset[int], float]) -> list[float]:
    """The subset formula, independent of the permutation code."""
    out = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        total = 0.0
        for k in range(n):
            for s in combinations(others, k):
                weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                total += weight * (v[frozenset(s) | {i}] - v[frozenset(s)])
        out.append(total)
    return out


def random_game(n: int, seed: int) -> dict[frozenset[int], float]:
    rng = np.random.default_rng(seed)
    return {frozenset(s): float(rng.normal()) if s else 0.0
            for k in range(n + 1) for s in combinations(range(n), k)}


def test_all_orders_give_the_exact_shapley_value() -> None:
    game = random_game(4, seed=3)
    orders = sample_permutations(4, 24, seed=0)
    assert orders.shape == (24, 4)
    assert is_exact(orders)
    phi, se = shapley_estimates(orders, {c: np.array(game[c]) for c in coalitions(orders)})
    np.testing.assert_allclose(phi, exact_shapley(4, game), atol=1e-12)
    assert np.all(se == 0)


def test_sampled_orders_are_seeded_and_efficient() -> None:
    game = random_game(10, seed=1)
    orders = sample_permutations(10, 5, seed=7)
    assert orders.shape == (5, 10)
    assert not is_exact(orders)
    np.testing.assert_array_equal(orders, sample_permutations(10, 5, seed=7))
    assert not np.array_equal(orders, sample_permutations(10, 5, seed=8))
    assert all(sorted(o) == list(range(10)) for o in orders.tolist())
    needed = coalitions(orders)
    assert needed[0] == frozenset()
    assert frozenset(range(10)) in needed
    assert len(needed) <= 9 * 5 + 2
    phi, se = shapley_estimates(orders, {c: np.array([game[c], 2 * game[c]]) for c in needed})
    assert phi.shape == se.shape == (10, 2)
    full = game[frozenset(range(10))]
    np.testing.assert_allclose(phi.sum(axis=0), [full, 2 * full], atol=1e-12)
    assert np.all(se[:, 0] > 0)  # a random game: the orders disagree


def test_one_order_has_no_standard_error() -> None:
    orders = sample_permutations(3, 1, seed=0)
    game = random_game(3, seed=0)
    _, se = shapley_estimates(orders, {c: np.array(game[c]) for c in coalitions(orders)})
    assert np.all(np.isnan(se))


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least one"):
        sample_permutations(0, 3, seed=0)
    with pytest.raises(ValueError, match="at least one"):
        sample_permutations(3, 0, seed=0)


def test_persona_builder_filters_items() -> None:
    bank = load_bank(BANK)
    value_set = descriptors.load(ROOT / "data/descriptors/value_handwritten.yaml", bank, kind="value")
    socio = descriptors.load(ROOT / "data/descriptors/sociodemographic.yaml", bank, kind="sociodemographic")
    sample = respondents_frame(bank)
    some = build_personas(sample, bank, value_set, socio, kinds=("value",), items=["Q57", "Q46"])
    row = sample.row(0, named=True)
    text = some.filter(pl.col("nationality"))["text"][0]
    assert text == " ".join([
        "You live in Japan.", value_set.sentence("Q57", row["Q57"]), value_set.sentence("Q46", row["Q46"]),
    ])
    assert some["missing_items"][0].to_list() == []  # left-out items are not "missing"
    nothing = build_personas(sample, bank, value_set, socio, kinds=("value",), nationality=(False,), items=[])
    assert set(nothing["text"]) == {""}
    with pytest.raises(ConfigError, match="Q999 are not persona items"):
        build_personas(sample, bank, value_set, socio, items=["Q999"])


# ---------------------------------------------------------------------------
# The stage on a made-up project


def respondents_frame(bank, missing: dict[str, str] | None = None) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    """Made-up respondents: every persona item answered (except ``missing``: id -> item)."""
    missing = missing or {}
    rows = []
    for c in COUNTRIES:
        for r in range(PER_COUNTRY):
            rid = f"{c}-{r}"
            row: dict[str, object] = {"country": c, "respondent_id": rid, "weight": 1.0}
            for k, item in enumerate(bank.persona_items):
                row[item.id] = None if missing.get(rid) == item.id else item.codes[(k + r) % len(item.codes)]
            for item in bank.sociodemographic:
                row[item.id] = None
            rows.append(row)
    schema = {"country": pl.Utf8, "respondent_id": pl.Utf8, "weight": pl.Float64}
    schema |= {i.id: pl.Int64 for i in [*bank.persona_items, *bank.sociodemographic]}
    return pl.DataFrame(rows, schema=schema)


def make_project(directory: Path, *, human_at_minimum: bool, missing: dict[str, str] | None = None) -> None:
    bank = load_bank(BANK)
    generated = directory / "data/descriptors/generated/value.yaml"
    generated.parent.mkdir(parents=True)
    shutil.copy(ROOT / "data/descriptors/value_handwritten.yaml", generated)
    value_set = descriptors.load(generated, bank, kind="value")
    socio = descriptors.load(ROOT / "data/descriptors/sociodemographic.yaml", bank, kind="sociodemographic")
    sample = respondents_frame(bank, missing)
    (directory / "data/interim").mkdir(parents=True)
    sample.write_parquet(directory / "data/interim/respondents.parquet")
    write_persona_tables(build_personas(sample, bank, value_set, socio), directory / "data/personas")
    write_selection(directory, QUESTIONS, COUNTRIES)
    rows = []
    for c in COUNTRIES:
        for q in QUESTIONS:
            item = bank.item(q)
            mean = item.min if human_at_minimum else item.min + 0.55 * item.range + 0.1 * COUNTRIES.index(c)
            rows.append({"country": c, "question": q, "mean": float(mean), "n": 100,
                         "n_eff": 100.0, "missing_share": 0.0})
    pl.DataFrame(rows).write_parquet(directory / "data/human/summary.parquet")
    # every sentence of an item carries the item's shift
    effects = {s: SHIFTS[i] for i, by_code in value_set.items.items() for s in by_code.values() if SHIFTS[i]}
    sentences = [s for by_code in value_set.items.values() for s in by_code.values()]
    assert not any(a != b and a in b for a in sentences for b in sentences), "ambiguous descriptors"
    (directory / "effects.json").write_text(json.dumps(effects))


def params(permutations: int = 3, *, enabled: bool = True, provider: str = "itemprovider") -> Params:
    return Params.model_validate({
        "data": {"questions": str(BANK)},
        "countries": {"select": COUNTRIES},
        "models": {"fake": {"provider": provider, "model": "item-1"}},
        "simulate": {"models": ["fake"], "methods": ["value"], "cache_dir": ".cache", "batch_size": 32},
        "analysis": {"shapley": enabled, "shapley_permutations": permutations, "seed": 0},
    })


@pytest.fixture
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that, on sys.path, installs the item provider through an entry point."""
    d = tmp_path_factory.mktemp("itemsite")
    shutil.copy(Path(__file__).parent / "itemplugin" / "valuesim_itemprovider.py", d)
    dist = d / "valuesim_itemprovider-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: valuesim-itemprovider\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[valuesim]\nitemprovider = valuesim_itemprovider\n")
    return d


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site: Path) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("VALUESIM_PLUGINS", raising=False)
    monkeypatch.delenv("VALUESIM_BLOCK_PLUGINS", raising=False)
    monkeypatch.setenv("VALUESIM_ITEM_EFFECTS", str(tmp_path / "effects.json"))
    monkeypatch.setenv("VALUESIM_ITEM_LOG", str(tmp_path / "paid.log"))
    monkeypatch.chdir(tmp_path)
    plugins.plugin_manager.cache_clear()
    yield tmp_path
    plugins.plugin_manager.cache_clear()


def paid(project: Path) -> int:
    log = project / "paid.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def run_stage(p: Params) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    from valuesim.stages import shapley

    shapley.run(p)
    out = Path("data/shapley")
    return (pl.read_parquet(out / "shapley.parquet"), pl.read_parquet(out / "values.parquet"),
            json.loads((out / "summary.json").read_text()))


def by_item(estimates: pl.DataFrame, country: str, column: str = "shapley") -> dict[str, float]:
    return dict(estimates.filter(pl.col("country") == country).select("item", column).iter_rows())


def test_additive_effects_give_each_item_its_own_effect(project: Path) -> None:
    make_project(project, human_at_minimum=True)
    estimates, values, summary = run_stage(params(permutations=3))
    bank = load_bank(BANK)
    assert estimates.height == len(COUNTRIES) * 10
    assert set(estimates["item"]) == set(SHIFTS)
    assert set(estimates["n_permutations"]) == {3}
    # predictions never go below the human mean: MAE is linear in the shifts
    inv_range = float(np.mean([1 / bank.item(q).range for q in QUESTIONS]))
    for c in COUNTRIES:
        phi, se = by_item(estimates, c), by_item(estimates, c, "se")
        assert phi["Q164"] == pytest.approx(phi["Y003"], abs=1e-12)  # symmetry
        assert phi["Q57"] == pytest.approx(0.0, abs=1e-12)  # dummy
        for item, shift in SHIFTS.items():
            assert phi[item] == pytest.approx(shift * inv_range, abs=1e-12)
            assert se[item] == pytest.approx(0.0, abs=1e-12)
    v = values.filter(pl.col("country") == "JPN")
    assert v.filter(pl.col("n_items") == 0)["mae"][0] == pytest.approx(0.0, abs=1e-12)
    assert v.filter(pl.col("n_items") == 10)["mae"][0] == pytest.approx(sum(SHIFTS.values()) * inv_range)
    assert set(values["n_questions"]) == {len(QUESTIONS)}
    assert len(summary["permutations"]) == 3
    assert summary["items"] == [i.id for i in bank.persona_items]
    run = summary["runs"]["fake"]
    assert run["coalitions"] == values["subset"].n_unique() <= 9 * 3 + 2
    # each distinct prompt was paid once: v(∅) is one persona per country
    assert paid(project) == run["sent"] < run["prompts"]


def test_efficiency_holds_exactly_with_interactions(project: Path) -> None:
    # human means inside the scale: |E_pred - E_human| is not additive; a respondent
    # skipped an item, so with and without it are the same persona for them
    make_project(project, human_at_minimum=False, missing={"JPN-1": "Q46"})
    estimates, values, _ = run_stage(params(permutations=4))
    for c in COUNTRIES:
        v = values.filter(pl.col("country") == c)
        full = v.filter(pl.col("n_items") == 10)["mae"][0]
        empty = v.filter(pl.col("n_items") == 0)["mae"][0]
        total = estimates.filter(pl.col("country") == c)["shapley"].sum()
        assert total == pytest.approx(full - empty, abs=1e-12)
        assert by_item(estimates, c)["Q57"] == pytest.approx(0.0, abs=1e-12)
    # the interaction shows: orders disagree on some item's contribution
    assert estimates["se"].max() > 0


def test_rerun_and_the_value_method_come_from_the_cache(project: Path) -> None:
    from valuesim.stages import simulate

    make_project(project, human_at_minimum=False)
    first = run_stage(params(permutations=2))
    before = paid(project)
    assert before > 0
    second = run_stage(params(permutations=2))
    assert paid(project) == before  # zero provider calls on the rerun
    assert first[0].equals(second[0])
    assert first[1].equals(second[1])
    assert second[2]["runs"]["fake"]["sent"] == 0
    # v(all items) asked exactly the value method's prompts: simulating it is free
    simulate.run(params(), model="fake", method="value")
    assert paid(project) == before


def test_disabled_writes_a_marker_and_calls_no_model(project: Path) -> None:
    from valuesim.stages import shapley

    stale = project / "data/shapley/shapley.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_text("old results")
    # an unknown provider: any attempt to build an engine would fail
    shapley.run(params(enabled=False, provider="no-such-provider"))
    assert sorted(p.name for p in (project / "data/shapley").iterdir()) == ["disabled.json"]
    assert json.loads((project / "data/shapley/disabled.json").read_text())["enabled"] is False
    assert paid(project) == 0


def test_stale_personas_are_refused(project: Path) -> None:
    make_project(project, human_at_minimum=False)
    path = project / "data/personas/methods/value.parquet"
    table = pl.read_parquet(path)
    table.with_columns(pl.col("text") + " Edited.").write_parquet(path)
    with pytest.raises(DataError, match="rerun the personas stage"):
        run_stage(params(permutations=1))
    assert paid(project) == 0
    assert not (project / "data/shapley").exists()


def test_missing_human_mean_is_refused(project: Path) -> None:
    make_project(project, human_at_minimum=False)
    path = project / "data/human/summary.parquet"
    pl.read_parquet(path).filter(~((pl.col("country") == "DEU") & (pl.col("question") == "Q6"))).write_parquet(path)
    with pytest.raises(DataError, match="no human mean for DEU Q6"):
        run_stage(params(permutations=1))
    assert paid(project) == 0


def test_missing_respondent_is_refused(project: Path) -> None:
    make_project(project, human_at_minimum=False)
    path = project / "data/interim/respondents.parquet"
    pl.read_parquet(path).filter(pl.col("respondent_id") != "DEU-2").write_parquet(path)
    with pytest.raises(DataError, match=r"respondent DEU-2 .* not in"):
        run_stage(params(permutations=1))


def test_missing_inputs_name_the_stage_to_run(project: Path) -> None:
    make_project(project, human_at_minimum=False)
    (project / "data/personas/methods/value.parquet").unlink()
    with pytest.raises(DataError, match="dvc repro personas"):
        run_stage(params(permutations=1))


def test_orders_must_cover_the_persona_items(project: Path) -> None:
    from valuesim.llm.engine import Engine

    make_project(project, human_at_minimum=False)
    bank = load_bank(BANK)
    with Engine.from_params(params(), "fake") as engine, pytest.raises(ValueError, match="one column per"):
        run_shapley(
            engine, "fake", personas=pl.read_parquet("data/personas/methods/value.parquet"),
            respondents=pl.read_parquet("data/interim/respondents.parquet"), bank=bank,
            value_set=descriptors.load("data/descriptors/generated/value.yaml", bank, kind="value"),
            questions=QUESTIONS, countries=COUNTRIES,
            summary=pl.read_parquet("data/human/summary.parquet"), guidance="social_science",
            orders=sample_permutations(3, 2, seed=0),
        )


def test_stage_reads_only_the_params_dvc_declares(project: Path) -> None:
    """The enabled path, which the unit suite's DVC declaration test cannot run."""
    import yaml

    from tests.integration.test_dvc_declarations import (
        Record,
        _covered,
        _declared_params,
        _spy_model,
    )
    from valuesim.stages import shapley

    make_project(project, human_at_minimum=False)
    record = Record()
    shapley.run(_spy_model(params(permutations=1), "", record))  # type: ignore[arg-type]
    declared = _declared_params(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["shapley"])
    assert "analysis.shapley" in record.params
    assert "models" in record.params
    assert sorted(k for k in record.params if not _covered(k, declared)) == []
