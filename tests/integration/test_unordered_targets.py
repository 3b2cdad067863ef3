"""A nominal and a binary target item through the study, on real WVS-7 files.

A tmp project: the shipped bank with three ordinal targets (Q1, Q2, Q47), religious
denomination Q289 as a ``nominal`` target (ten options, code 0 included) and "Believe
in: God" Q165 as a ``binary`` target; three countries, three personas each, the
``country`` and ``value`` methods through the embedded model. It runs extract ->
validate -> human -> descriptors -> personas -> simulate -> calibrate -> evaluate ->
report and checks, against computations made here from the raw CSV files with NumPy
and SciPy (not with the pipeline's code):

* the human shares of Q289 and Q165 (W_WEIGHT over substantive answers) and no mean;
* calibration fits T on the ordinal items only and says why it skips the others;
* every run's total variation and Jensen-Shannon distance (base 2) per (country,
  item), the binary item's share-of-first difference, the uniform and other-countries
  references, the per-country and summary means and metrics.json's ``unordered``;
* the ordinal tables and metrics are the ones of the same study without the two items;
* the report's section shows each item per country with the modal answers' labels.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from scipy.spatial.distance import jensenshannon

from tests.fixtures.paths import ROOT, SHARED_WVS, SHIPPED_BANK

COUNTRIES = ["COL", "DEU", "ZWE"]
ORDINAL = ["Q1", "Q2", "Q47"]
NOMINAL, BINARY = "Q289", "Q165"
METHODS = ["country", "value"]
MODEL = "smollm2"
N = 3
Q165 = {
    "id": BINARY, "roles": ["target"], "label": "Believe in: God", "text": "Do you believe in God?",
    "type": "binary", "answers": [{"code": 1, "label": "Yes"}, {"code": 2, "label": "No"}],
    "missing": {-1: "dont_know", -2: "no_answer", -4: "not_asked", -5: "missing"},
}


def write_bank(path: Path) -> dict[str, list[str]]:
    """The shipped bank with ORDINAL, Q289 (nominal) and Q165 (binary) as its targets;
    returns each unordered item's labels in code order."""
    raw = yaml.safe_load(SHIPPED_BANK.read_text())
    items = []
    for item in raw["items"]:
        roles = list(item.get("roles") or [])
        if "target" in roles and item["id"] not in ORDINAL:
            continue
        if item["id"] == NOMINAL:
            item = {**item, "roles": ["target", *roles], "type": "nominal"}
        items.append(item)
    raw["items"] = [*items, Q165]
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    by_id = {i["id"]: i for i in raw["items"]}
    return {q: [a["label"] for a in by_id[q]["answers"]] for q in (NOMINAL, BINARY)}


def raw_shares(wvs_dir: Path, country: str, question: str, codes: list[int]) -> np.ndarray:
    """W_WEIGHT-weighted shares of ``codes`` among substantive answers, from the CSV."""
    frame = pl.read_csv(wvs_dir / f"{country}.csv.gz", columns=[question, "W_WEIGHT"], infer_schema_length=0)
    x = frame[question].cast(pl.Int64).to_numpy()
    w = frame["W_WEIGHT"].cast(pl.Float64).to_numpy()
    keep = np.isin(x, codes)
    return np.array([w[keep & (x == c)].sum() for c in codes]) / w[keep].sum()


def pooled_shares(wvs_dir: Path, countries: list[str], question: str, codes: list[int]) -> np.ndarray:
    """The weighted shares of the respondents of ``countries`` pooled."""
    xs, ws = [], []
    for c in countries:
        frame = pl.read_csv(wvs_dir / f"{c}.csv.gz", columns=[question, "W_WEIGHT"], infer_schema_length=0)
        xs.append(frame[question].cast(pl.Int64).to_numpy())
        ws.append(frame["W_WEIGHT"].cast(pl.Float64).to_numpy())
    x, w = np.concatenate(xs), np.concatenate(ws)
    keep = np.isin(x, codes)
    return np.array([w[keep & (x == c)].sum() for c in codes]) / w[keep].sum()


class Study:
    def __init__(self, root: Path, labels: dict[str, list[str]], calibrate_out: str) -> None:
        self.root, self.labels, self.calibrate_out = root, labels, calibrate_out

    def read(self, rel: str) -> pl.DataFrame:
        return pl.read_parquet(self.root / rel)

    def json(self, rel: str) -> dict:  # type: ignore[type-arg]
        return json.loads((self.root / rel).read_text())


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    from tests.fixtures.planted_e2e import inside
    from valuesim.config import load_params
    from valuesim.stages import (
        calibrate,
        descriptors,
        evaluate,
        extract,
        human,
        personas,
        report,
        simulate,
        validate,
    )

    wvs_dir = SHARED_WVS / "v5"
    if not wvs_dir.is_dir():
        pytest.skip(f"real WVS-7 files not found at {wvs_dir} (they are never shipped; see README)")
    root = tmp_path_factory.mktemp("unordered") / "study"
    root.mkdir()
    labels = write_bank(root / "bank.yaml")
    shutil.copytree(ROOT / "validation/contracts", root / "validation/contracts")
    params = {
        "data": {"source": str(wvs_dir), "questions": str(root / "bank.yaml")},
        "countries": {"select": COUNTRIES},
        "descriptors": {"path": str(ROOT / "data/descriptors/value_handwritten.yaml"),
                        "sociodemographic_path": str(ROOT / "data/descriptors/sociodemographic.yaml")},
        "personas": {"n_per_country": N, "seed": 0},
        "simulate": {"models": [MODEL], "methods": METHODS, "cache_dir": ".cache", "map_items": False},
        "calibration": {"t_grid_min": 0.5, "t_grid_max": 6.0, "t_grid_size": 12},
        "analysis": {"sample_sizes": [1, N], "subsample_repeats": 2, "bootstrap": 200, "seed": 0},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "data/map").mkdir(parents=True)
    (root / "data/map/selected_countries.json").write_text(
        json.dumps({"countries": COUNTRIES, "how": "list", "extra": []}))
    import contextlib
    import io

    with inside(root):
        p = load_params("params.yaml")
        for stage in (extract, validate, human, descriptors, personas):
            stage.run(p)
        for method in METHODS:
            simulate.run(p, model=MODEL, method=method)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            calibrate.run(p)
        evaluate.run(p)
        report.run(p)
    return Study(root, labels, out.getvalue())


def _codes(study: Study, q: str) -> list[int]:
    return [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] if q == NOMINAL else [1, 2]


@pytest.mark.realdata
@pytest.mark.slow
def test_human_shares_of_unordered_items_and_no_mean(study: Study, wvs_dir: Path) -> None:
    dist = study.read("data/human/distributions.parquet")
    summary = study.read("data/human/summary.parquet")
    for q in (NOMINAL, BINARY):
        for c in COUNTRIES:
            got = dist.filter((pl.col("country") == c) & (pl.col("question") == q)).sort("code")
            assert got["code"].to_list() == _codes(study, q)
            np.testing.assert_allclose(got["share"].to_numpy(), raw_shares(wvs_dir, c, q, _codes(study, q)),
                                       atol=1e-12)
        # the codes only name the options: no mean; the ordinal items keep theirs
        assert summary.filter(pl.col("question") == q)["mean"].null_count() == len(COUNTRIES)
    assert summary.filter(pl.col("question").is_in(ORDINAL))["mean"].null_count() == 0
    kept = study.json("data/human/kept_questions.json")["kept"]
    assert set(kept) == {*ORDINAL, NOMINAL, BINARY}
    # the data contracts (respondents and human distributions) passed with the new rows
    assert study.json("reports/validation/human_distributions.json")["success"] is True
    assert study.json("reports/validation/respondents.json")["success"] is True


@pytest.mark.realdata
@pytest.mark.slow
def test_calibration_fits_ordinal_items_only_and_says_why(study: Study) -> None:
    pop = study.read("data/calibrated/population.parquet")
    assert set(pop["question"]) == set(ORDINAL)
    temps = study.json("data/calibrated/temperatures.json")["temperatures"]
    for method in METHODS:
        assert set(temps[f"{MODEL}/{method}"]["loqo"]) == set(ORDINAL)
    assert f"calibration skipped for {NOMINAL}, {BINARY} (binary/nominal)" in study.calibrate_out
    assert "means nothing for unordered options" in study.calibrate_out


def _sim(study: Study, method: str, country: str, q: str) -> tuple[np.ndarray, int]:
    """The country's simulated shares: the mean of its usable personas' distributions."""
    answers = study.read(f"data/simulated/{MODEL}/{method}/answers.parquet")
    rows = answers.filter((pl.col("country") == country) & (pl.col("question") == q)
                          & (pl.col("flag").fill_null("") == ""))
    assert rows["codes"][0].to_list() == _codes(study, q)
    probs = np.array(rows["probs"].to_list(), dtype=float)
    return probs.mean(axis=0), probs.shape[0]


@pytest.mark.realdata
@pytest.mark.slow
def test_tv_and_js_match_scipy_on_the_raw_files(study: Study, wvs_dir: Path) -> None:
    cells = study.read("data/eval/unordered_cells.parquet")
    refs = study.read("data/eval/unordered_reference_cells.parquet")
    assert cells.height == len(METHODS) * len(COUNTRIES) * 2
    assert set(refs["method"]) == {"uniform", "other_countries"}
    for q in (NOMINAL, BINARY):
        codes = _codes(study, q)
        for c in COUNTRIES:
            h = raw_shares(wvs_dir, c, q, codes)
            for method in METHODS:
                p, n = _sim(study, method, c, q)
                row = cells.filter((pl.col("method") == method) & (pl.col("country") == c)
                                   & (pl.col("question") == q)).row(0, named=True)
                assert row["type"] == ("nominal" if q == NOMINAL else "binary")
                assert row["n_personas"] == n
                assert row["tv"] == pytest.approx(0.5 * np.abs(p - h).sum(), abs=1e-12)
                assert row["js"] == pytest.approx(float(jensenshannon(p, h, base=2)), abs=1e-9)
                assert 0 <= row["js"] <= 1
                assert row["mode_human_label"] == study.labels[q][int(np.argmax(h))]
                assert row["mode_sim_label"] == study.labels[q][int(np.argmax(p))]
                assert row["mode_human_share"] == pytest.approx(h.max(), abs=1e-12)
                if q == BINARY:  # the share of "Yes"; |difference| is the TV on two options
                    assert row["share_first_diff"] == pytest.approx(p[0] - h[0], abs=1e-12)
                    assert abs(row["share_first_diff"]) == pytest.approx(row["tv"], abs=1e-12)
                else:
                    assert row["share_first_diff"] is None
            uniform = np.full(len(codes), 1 / len(codes))
            pooled = pooled_shares(wvs_dir, [o for o in COUNTRIES if o != c], q, codes)
            for name, pred in (("uniform", uniform), ("other_countries", pooled)):
                r = refs.filter((pl.col("method") == name) & (pl.col("country") == c)
                                & (pl.col("question") == q)).row(0, named=True)
                assert r["model"] == "reference"
                assert r["tv"] == pytest.approx(0.5 * np.abs(pred - h).sum(), abs=1e-9)
                assert r["js"] == pytest.approx(float(jensenshannon(pred, h, base=2)), abs=1e-9)


@pytest.mark.realdata
@pytest.mark.slow
def test_summary_and_metrics_average_per_country_then_over_countries(study: Study) -> None:
    cells = pl.concat([study.read("data/eval/unordered_cells.parquet"),
                       study.read("data/eval/unordered_reference_cells.parquet")])
    summary = study.read("data/eval/unordered_summary.parquet")
    metrics = study.json("reports/metrics.json")
    un = metrics["unordered"]
    assert un["items"] == {NOMINAL: "nominal", BINARY: "binary"}
    runs = [f"{MODEL}/{m}" for m in METHODS] + ["reference/uniform", "reference/other_countries"]
    assert set(un["tv"]) == set(runs) == set(un["js"]) == set(un["by_country"])
    for run in runs:
        model, method = run.split("/")
        own = cells.filter((pl.col("model") == model) & (pl.col("method") == method))
        for key in ("tv", "js"):
            per_country = [np.mean(own.filter(pl.col("country") == c)[key].to_numpy()) for c in COUNTRIES]
            row = summary.filter((pl.col("model") == model) & (pl.col("method") == method)).row(0, named=True)
            assert row[key] == pytest.approx(np.mean(per_country), abs=1e-12)
            assert row[f"{key}_lo"] <= row[key] <= row[f"{key}_hi"]
            assert un[key][run] == pytest.approx(np.mean(per_country), abs=1e-4)
            assert un[f"{key}_ci"][run] == {"lo": pytest.approx(row[f"{key}_lo"], abs=1e-4),
                                            "hi": pytest.approx(row[f"{key}_hi"], abs=1e-4)}
            for c, v in zip(COUNTRIES, per_country, strict=True):
                assert un["by_country"][run][c][key] == pytest.approx(v, abs=1e-4)
    # no mean-based score of the unordered items anywhere
    for name in ("cells", "reference_cells", "per_question"):
        frame = study.read(f"data/eval/{name}.parquet")
        assert set(frame["question"].to_list()) == set(ORDINAL), name
    # the prediction intervals were fitted on the ordinal items (LOQO over three questions)
    assert set(study.read("data/eval/interval_fits.parquet")["n_questions"].to_list()) == {len(ORDINAL)}


@pytest.mark.realdata
@pytest.mark.slow
def test_ordinal_results_are_those_of_the_study_without_the_items(study: Study) -> None:
    """evaluate() on the same inputs less the two items gives the same ordinal tables."""
    from valuesim.analysis.evaluation import evaluate
    from valuesim.config import load_params
    from valuesim.stages.evaluate import unordered_targets

    params = load_params(study.root / "params.yaml")
    drop = pl.col("question").is_in([NOMINAL, BINARY])
    human = study.read("data/human/distributions.parquet")
    kept = study.json("data/human/kept_questions.json")["kept"]
    answers = {(MODEL, m): study.read(f"data/simulated/{MODEL}/{m}/answers.parquet") for m in METHODS}
    common = {"population": study.read("data/calibrated/population.parquet"),
              "respondents": study.read("data/interim/respondents.parquet"),
              "persona_methods": {"value"}, "an": params.analysis, "persona_seed": 0}
    # a population calibrated before types existed, with the binary item tilted like a
    # scale: evaluate still leaves it out of every mean-based score
    pop = common["population"]
    stale = pop.filter(pl.col("question") == ORDINAL[0]).with_columns(
        pl.lit(BINARY).alias("question"), pl.lit([1, 2]).alias("codes"),
        *(pl.lit([0.5, 0.5]).alias(c) for c in ("probs_raw", "probs_cal", "probs_plain")))
    with_items = evaluate(human=human, kept=kept, answers=answers, unordered=unordered_targets(params),
                          **{**common, "population": pl.concat([pop, stale.select(pop.columns)])})
    without = evaluate(human=human.filter(~drop), kept=[q for q in kept if q in ORDINAL],
                       answers={k: a.filter(~drop) for k, a in answers.items()}, **common)
    assert set(with_items.tables) - set(without.tables) == {
        "unordered_cells.parquet", "unordered_reference_cells.parquet", "unordered_by_country.parquet",
        "unordered_summary.parquet"}
    for name, frame in without.tables.items():
        if name == "summary.parquet":  # coverage counts every answer row, the items' included
            frame, other = frame.drop("coverage_mean", "coverage_p5"), with_items.tables[name].drop(
                "coverage_mean", "coverage_p5")
        else:
            other = with_items.tables[name]
        assert frame.equals(other), name
    skip = {"coverage", "unordered"}
    assert {k: v for k, v in with_items.metrics.items() if k not in skip} == {
        k: v for k, v in without.metrics.items() if k not in skip}


@pytest.mark.realdata
@pytest.mark.slow
def test_report_shows_each_item_per_country_with_labels(study: Study) -> None:
    page = (study.root / "reports/index.html").read_text()
    assert "Nominal and binary items" in page
    assert f"{NOMINAL} (nominal)" in page
    assert f"{BINARY} (binary)" in page
    cells = study.read("data/eval/unordered_cells.parquet")
    for row in cells.iter_rows(named=True):
        label = html.escape(f"{row['mode_human_label']} ({row['mode_human_share']:.0%})")
        assert label in page
        assert f"<td>{row['tv']:.3f}</td>" in page
        assert f"<td>{row['js']:.3f}</td>" in page
    assert not math.isnan(cells["js"].sum())
