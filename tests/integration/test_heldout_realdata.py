"""Held-out validation of the conformal intervals (examples/validation/heldout_conformal.py).

The realdata test runs a SMALL real-data study in a tmp project: the real WVS-7 files,
three countries, the ``generic`` method (one prompt per item: every country gets the
same answer) through the embedded model, the study's target questions, then the
stages calibrate and evaluate (which fit the intervals), then the validation script on
ten held-out items of ``data/questions/wvs7_heldout.yaml``. It checks the script's
coverage table is consistent and that the intervals it applies were fitted without the
held-out items. The unit test applies fits of the plan's schema to a tiny hand-built
frame and checks the arithmetic by hand.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
import yaml

from tests.fixtures.paths import ROOT, SHIPPED_BANK

SCRIPT = ROOT / "examples" / "validation" / "heldout_conformal.py"
HELDOUT = ROOT / "data" / "questions" / "wvs7_heldout.yaml"
COUNTRIES = ["DEU", "COL", "ZWE"]
# ten held-out items from nine batteries, 4-, 5-, 8- and 10-point scales
SMALL = ["Q33", "Q58", "Q65", "Q112", "Q121", "Q131", "Q158", "Q172", "Q186", "Q250"]


def _load_script() -> ModuleType:
    """The example script as a module (it is not a package)."""
    spec = importlib.util.spec_from_file_location("heldout_conformal", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules["heldout_conformal"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


hc = _load_script()


def _fits(rows: list[tuple[str, str, float, int, str, float, bool]]) -> pl.DataFrame:
    """interval_fits.parquet rows (plan schema): variant, kind, level, n_personas,
    country, threshold, default; model/method m1/value."""
    return pl.DataFrame(
        [{"model": "m1", "method": "value", "kind": k, "variant": v, "level": lv,
          "n_personas": n, "country": c, "threshold": t, "n_questions": 32,
          "loqo_coverage": 0.9, "lobo_coverage": 0.8, "default": d}
         for v, k, lv, n, c, t, d in rows]
    )


def _cells() -> pl.DataFrame:
    """Three hand-made cells (INTERVAL_CELL_SCHEMA, raw): a 1-4 item in JPN and DEU, a
    1-10 item in JPN."""
    from valuesim.analysis.interval_cells import INTERVAL_CELL_SCHEMA

    common = {"model": "m1", "method": "value", "kind": "raw", "n_personas": 6}
    return pl.DataFrame([
        {**common, "country": "JPN", "question": "Q58", "battery": "trust", "lo": 1, "hi": 4,
         "n_points": 4, "sim_mean": 2.0, "human_mean": 2.8, "difficulty": 0.2,
         "boot_low": 1.9, "boot_high": 2.1},
        {**common, "country": "DEU", "question": "Q58", "battery": "trust", "lo": 1, "hi": 4,
         "n_points": 4, "sim_mean": 2.0, "human_mean": 2.05, "difficulty": 0.1,
         "boot_low": 1.9, "boot_high": 2.1},
        {**common, "country": "JPN", "question": "Q250", "battery": "culture", "lo": 1, "hi": 10,
         "n_points": 10, "sim_mean": 9.5, "human_mean": 8.0, "difficulty": 0.1,
         "boot_low": 9.4, "boot_high": 9.6},
    ], schema=INTERVAL_CELL_SCHEMA)


def test_apply_fits_by_hand() -> None:
    fits = _fits([
        ("per_country", "raw", 0.9, 6, "JPN", 0.2, True),
        ("per_country", "raw", 0.9, 6, "DEU", 0.01, True),
        ("pooled", "raw", 0.9, 6, "*", 0.1, False),
        ("normalized", "raw", 0.9, 6, "JPN", 2.0, False),
        ("normalized", "raw", 0.9, 6, "DEU", 2.0, False),
        ("joint", "raw", 0.9, 6, "*", math.inf, False),
        ("per_country", "raw", 0.9, 3, "JPN", 0.9, True),  # another N: not the one asked
        ("per_country", "calibrated", 0.9, 6, "JPN", 0.9, True),  # another kind
    ])
    table, out = hc.apply_fits(_cells(), fits)
    assert out.height == 3 * 5  # 3 cells x (4 variants at N=6 + the persona bootstrap)
    assert set(out["n_personas"]) == {6}
    assert set(out["kind"]) == {"raw"}

    def pick(variant: str, country: str, question: str) -> dict[str, object]:
        return out.filter((pl.col("variant") == variant) & (pl.col("country") == country)
                          & (pl.col("question") == question)).row(0, named=True)

    # per_country JPN Q58: 2 -/+ 0.2 * 3 = [1.4, 2.6]; the human 2.8 is above it
    r = pick("per_country", "JPN", "Q58")
    assert (r["pred_low"], r["pred_high"], r["covered"]) == (pytest.approx(1.4), pytest.approx(2.6), False)
    # DEU: 2 -/+ 0.03 does not reach 2.05
    r = pick("per_country", "DEU", "Q58")
    assert (r["pred_high"], r["covered"]) == (pytest.approx(2.03), False)
    # JPN Q250: 9.5 -/+ 0.2 * 9 = [7.7, 11.3], clipped to 10; covers 8.0
    r = pick("per_country", "JPN", "Q250")
    assert (r["pred_low"], r["pred_high"], r["covered"]) == (pytest.approx(7.7), 10.0, True)
    # pooled: one threshold for every country: DEU 2 -/+ 0.3 covers 2.05
    assert pick("pooled", "DEU", "Q58")["covered"] is True
    # normalized: threshold x difficulty: JPN Q58 2 -/+ 2 * 0.2 * 3 = [0.8 -> 1, 3.2]
    r = pick("normalized", "JPN", "Q58")
    assert (r["pred_low"], r["pred_high"], r["covered"]) == (1.0, pytest.approx(3.2), True)
    # joint at inf: the whole scale
    r = pick("joint", "JPN", "Q250")
    assert (r["pred_low"], r["pred_high"]) == (1.0, 10.0)
    # the persona bootstrap as an interval: only DEU's 2.05 lies in [1.9, 2.1]
    boot = out.filter(pl.col("variant") == "persona_bootstrap").sort("question", "country")
    assert boot["covered"].to_list() == [False, True, False]  # Q250 JPN, Q58 DEU, Q58 JPN

    per_country = table.filter(pl.col("variant") == "per_country")
    row = per_country.filter(pl.col("group_type") == "overall").row(0, named=True)
    assert (row["n_cells"], row["n_covered"], row["validation"], row["default"]) == (3, 1, "heldout", True)
    assert (row["coverage_lo"], row["coverage_hi"]) == pytest.approx((0.008403, 0.905700), abs=1e-5)
    assert row["simultaneous"] == 0.5  # Q250 covered in every country it has, Q58 not
    assert row["width_points"] == pytest.approx((1.2 + 0.06 + 2.3) / 3)
    by_battery = per_country.filter(pl.col("group_type") == "battery")
    assert dict(by_battery.select("group", "n_covered").iter_rows()) == {"trust": 0, "culture": 1}
    assert set(per_country.filter(pl.col("group_type") == "scale_length")["group"]) == {"4", "10"}

    v = hc.verdicts(table, kind="raw")
    assert [(x.run, x.variant, x.passed) for x in v] == [("m1/value", "per_country", False)]
    assert "pooled coverage 0.333 is below" in v[0].failing[0]


def test_heldout_items_are_not_in_the_bank() -> None:
    from valuesim.survey.bank import load_bank

    bank = load_bank(SHIPPED_BANK)
    items = hc.heldout_items(HELDOUT, bank)
    assert 36 <= len(items) <= 45
    assert not {i.id for i in items} & set(bank.by_id)


def _small_study(root: Path, wvs_dir: Path) -> Path:
    """A tmp real-data study of the generic method in three countries, run up to evaluate."""
    shutil.copytree(ROOT / "validation", root / "validation")  # the data contracts
    params = {
        "data": {"source": str(wvs_dir), "questions": str(SHIPPED_BANK)},
        "countries": {"select": COUNTRIES},
        "simulate": {"models": ["smollm2"], "methods": ["generic"], "cache_dir": ".cache",
                     "map_items": False},
        "analysis": {"sample_sizes": [1], "subsample_repeats": 2, "bootstrap": 100},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    questions = yaml.safe_load(HELDOUT.read_text())
    small = [i for i in questions["items"] if i["id"] in SMALL]
    (root / "heldout.yaml").write_text(yaml.safe_dump({"items": small}, sort_keys=False))
    return root


@pytest.mark.realdata
@pytest.mark.slow
def test_small_heldout_validation_on_real_files(
    tmp_path: Path, wvs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fixtures.simulate_project import write_selection
    from valuesim.config import load_params
    from valuesim.stages import calibrate, evaluate, extract, human, simulate

    study = _small_study(tmp_path, wvs_dir)
    monkeypatch.chdir(study)
    write_selection(study, questions=[], countries=COUNTRIES)  # the map stage's selection
    params = load_params("params.yaml")
    for stage in (extract, human):
        stage.run(params)
    simulate.run(params, model="smollm2", method="generic")
    calibrate.run(params)
    evaluate.run(params)
    kept_targets = json.loads(Path("data/human/kept_questions.json").read_text())["kept"]
    fits = pl.read_parquet("data/eval/interval_fits.parquet")
    fits_bytes = Path("data/eval/interval_fits.parquet").read_bytes()

    h = hc.validate(study, study / "heldout.yaml", log=lambda m: None)

    # the intervals were fitted on the study's kept targets only, and the validation
    # neither refits nor sees a held-out item in the fit
    assert not set(SMALL) & set(kept_targets)
    assert set(fits["n_questions"]) == {len(kept_targets)}
    assert Path("data/eval/interval_fits.parquet").read_bytes() == fits_bytes
    assert not set(SMALL) & set(pl.read_parquet("data/calibrated/population.parquet")["question"])

    t = h.table
    assert set(h.kept) == set(SMALL)  # every one of them passes the missing filter here
    cells = len(COUNTRIES) * len(SMALL)
    gen = t.filter((pl.col("model") == "smollm2") & (pl.col("method") == "generic"))
    overall = gen.filter(pl.col("group_type") == "overall")
    assert set(overall["n_cells"]) == {cells}
    assert set(overall["level"]) >= {0.8, 0.9, 0.95}
    assert {"raw", "calibrated"} <= set(overall["kind"])
    assert gen.filter(pl.col("default")).height > 0
    assert t.select("coverage", "coverage_lo", "coverage_hi").null_count().sum_horizontal().item() == 0
    assert t["coverage"].is_between(0, 1).all()
    assert (t["n_covered"] <= t["n_cells"]).all()
    assert ((t["coverage_lo"] <= t["coverage"]) & (t["coverage"] <= t["coverage_hi"])).all()
    # every group type partitions the same cells
    for group_type in ("battery", "country", "scale_length"):
        parts = gen.filter(pl.col("group_type") == group_type).group_by(
            "kind", "variant", "level").agg(pl.col("n_cells").sum(), pl.col("n_covered").sum())
        whole = overall.select("kind", "variant", "level", "n_cells", "n_covered")
        assert parts.join(whole, on=["kind", "variant", "level"], suffix="_all").select(
            (pl.col("n_cells") == pl.col("n_cells_all")) & (pl.col("n_covered") == pl.col("n_covered_all"))
        ).to_series().all(), group_type
    assert set(gen.filter(pl.col("group_type") == "country")["group"]) == set(COUNTRIES)
    # generic asks one prompt per item: every country gets the same simulated mean
    sim = h.cells.filter(pl.col("model") == "smollm2")
    assert sim.group_by("question").agg(pl.col("sim_mean").n_unique())["sim_mean"].max() == 1
    # the default interval at 0.9 is the one `ask` prints (valuesim.prediction)
    default = h.intervals.filter(pl.col("default") & (pl.col("kind") == "raw")
                                 & (pl.col("level") == 0.9) & (pl.col("model") == "smollm2"))
    asked = h.asked.select("country", "question", "pred_low", "pred_high")
    both = default.join(asked, on=["country", "question"], suffix="_ask")
    assert both.height == cells
    assert (both["pred_low"] - both["pred_low_ask"]).abs().max() < 1e-12
    assert (both["pred_high"] - both["pred_high_ask"]).abs().max() < 1e-12
    # the references are scored on the same cells
    ref = t.filter((pl.col("model") == "reference") & (pl.col("group_type") == "overall"))
    if ref.height:
        assert set(ref["n_cells"]) == {cells}
    text = hc.markdown(h)
    assert "## Verdict" in text
    assert "smollm2/generic" in text
