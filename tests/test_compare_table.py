"""`valuesim compare` made readable: the ranked table it prints (order, the best marked,
intervals, the difference to the best, significance marks on the BH-adjusted p-values
of the paired test, at most 100 columns), and the figures' one box per method and
reference lines (checked on the figure's artists, not its pixels)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import permutation_test
from statsmodels.stats.multitest import multipletests

from tests.fixtures.cli import run_cli
from tests.fixtures.compare_runs import cells_frame, project_params, write_result
from valuesim.compare import figures
from valuesim.compare.build import compare
from valuesim.compare.reference_lines import references
from valuesim.compare.sources import read_directory

# planted shifts of country and value prompting (generic never changes with guidance):
# "first_person" is a hair worse than the best, "decisive" far worse
GUIDANCE = {"minimal": 0.02, "social_science": 0.0, "decisive": 0.12, "first_person": 0.003}
# the references and floors each experiment's evaluate stage wrote (reports/metrics.json)
METRICS = {
    "mae": {"smollm2/country": 0.26, "smollm2/value": 0.29, "reference/midpoint": 0.20146,
            "reference/other_countries": 0.09961, "reference/uniform": 0.20146},
    "actual_answer_floor": {"smollm2/value": {"n": 6, "mae": 0.08716, "wasserstein": 0.11251}},
    "persona_information_floor": {"smollm2/value": {"n": 6, "mae": 0.02222}},
    "human_sampling_noise": {"mae": 0.00624, "wasserstein": 0.00808},
}
ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\d\.\d{3})\s+(\d\.\d{3}) to (\d\.\d{3})\s+(.*)$")


def _sweep(root: Path, metrics: dict | None = METRICS) -> list[Path]:
    dirs = []
    for i, (g, shift) in enumerate(GUIDANCE.items()):
        d = write_result(root / f"guidance-{g}", project_params(**{"prompts.guidance": g}),
                         cells_frame({"country": shift, "value": shift}, seed=i))
        if metrics is not None:
            (d / "reports").mkdir()
            (d / "reports" / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
        dirs.append(d)
    return dirs


@pytest.fixture
def sweep(tmp_path: Path) -> list[Path]:
    return _sweep(tmp_path / "runs")


def _expected(dirs: list[Path]) -> dict[str, dict[str, float]]:
    """Per experiment, from the cells files with numpy, scipy and statsmodels: its mean
    error over country and value, and against the lowest: the mean per-question
    difference, the sign-flip p over questions, BH over all the figure's pairs."""
    cube = {}
    for d in dirs:
        g = d.name.removeprefix("guidance-")
        frame = (pl.read_parquet(d / "data/eval/cells.parquet").filter(pl.col("method") != "generic")
                 .sort("question", "method", "country"))
        cube[g] = frame["mae"].to_numpy().reshape(frame["question"].n_unique(), -1)
    labels = list(cube)
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]
    ps = [permutation_test(((cube[a] - cube[b]).mean(axis=1),), np.mean, permutation_type="samples",
                           vectorized=True, n_resamples=99_999, batch=10_000,
                           rng=np.random.default_rng(0)).pvalue for a, b in pairs]
    bh = dict(zip(pairs, multipletests(ps, method="fdr_bh")[1], strict=True))
    best = min(labels, key=lambda g: cube[g].mean())
    out = {}
    for g in labels:
        q = bh.get((g, best), bh.get((best, g)))
        out[g] = {"mean": float(cube[g].mean()), "diff": float((cube[g] - cube[best]).mean(axis=1).mean()),
                  "p_BH": float("nan") if q is None else float(q)}
    return out


def _stars(p: float) -> str:
    return "****" if p < 1e-4 else "***" if p < 1e-3 else "**" if p < 1e-2 else "*" if p < 0.05 else "ns"


def test_the_printed_table_ranks_the_sweep_against_the_best_within_100_columns(
    sweep: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # a wide terminal: the table still keeps to 100 columns
    out = tmp_path / "compare"
    code, stdout, err = run_cli(["compare", *map(str, sweep), "--out", str(out)], capsys)
    assert code == 0, err
    lines = stdout.splitlines()
    # the table and its legend (the files' paths below it are as long as the paths)
    assert max(len(line) for line in lines if not line.startswith(f"  {out}")) <= 100
    rows = [m for m in map(ROW.match, lines) if m]
    expected = _expected(sweep)
    # lowest mean first: the planted order, generic left out
    assert [m[2] for m in rows] == ["social_science", "first_person", "minimal", "decisive"]
    assert [int(m[1]) for m in rows] == [1, 2, 3, 4]
    ranking = pl.read_csv(out / "ranking.csv")
    tests = pl.read_csv(out / "tests.csv")
    for m in rows:
        g, rest = m[2], m[6].split()
        mean, lo, hi = float(m[3]), float(m[4]), float(m[5])
        assert mean == pytest.approx(expected[g]["mean"], abs=5e-4)
        assert lo < mean < hi
        if g == "social_science":
            assert rest == ["best"]
            continue
        # "+0.003 +0.002 to +0.004 2e-05 ****": this minus the best, its CI, p_BH, mark
        diff, d_lo, _, d_hi, p_bh, mark = rest
        assert float(diff) == pytest.approx(expected[g]["diff"], abs=5e-4)
        assert float(d_lo) <= float(diff) <= float(d_hi)
        assert float(p_bh) == pytest.approx(expected[g]["p_BH"], rel=0.05)
        assert mark == _stars(expected[g]["p_BH"])
        # the same numbers as the figure's test table, turned to read "this minus the best"
        pair = tests.filter(((pl.col("a") == g) & (pl.col("b") == "social_science"))
                            | ((pl.col("b") == g) & (pl.col("a") == "social_science"))).row(0, named=True)
        sign = 1.0 if pair["a"] == g else -1.0
        row = ranking.filter(pl.col("experiment") == g).row(0, named=True)
        assert row["diff_to_best"] == pytest.approx(sign * pair["diff"], rel=1e-12)
        assert sorted((row["diff_ci_lo"], row["diff_ci_hi"])) == pytest.approx(
            sorted((sign * pair["ci_lo"], sign * pair["ci_hi"])), rel=1e-12)
        assert (row["p_BH"], row["stars"]) == (pair["p_BH"], mark)
    assert ranking["best"].to_list() == [True, False, False, False]
    # the figure's per-method boxes as numbers: each method's own mean
    for d in sweep:
        g = d.name.removeprefix("guidance-")
        cells = pl.read_parquet(d / "data/eval/cells.parquet")
        row = ranking.filter(pl.col("experiment") == g).row(0, named=True)
        for method in ("country", "value"):
            assert row[f"mean_{method}"] == pytest.approx(
                cells.filter(pl.col("method") == method)["mae"].mean(), rel=1e-12)
    # the references under the table, the midpoint and uniform answers on one line
    assert "scale midpoint = uniform answers 0.201" in stdout
    assert "human sampling noise 0.006" in " ".join(stdout.split())
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "Lowest mean MAE: social_science (" in html
    assert "3 of 3 others differ from it at BH-adjusted p &lt; 0.05" in html
    assert "actual-answer floor (value, N=6) 0.087" in html


def test_a_narrow_terminal_gets_a_narrower_table(
    sweep: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "72")
    code, stdout, err = run_cli(["compare", *map(str, sweep[:2]), "--out", str(tmp_path / "c")], capsys)
    assert code == 0, err
    table = stdout.split("(methods: country, value)\n", 1)[1].split("  " + str(tmp_path / "c"), 1)[0]
    assert max(len(line) for line in table.splitlines()) <= 72
    assert "best" in table


def test_mann_whitney_has_no_interval_of_the_difference(
    sweep: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mw"
    code, stdout, err = run_cli(["compare", *map(str, sweep), "--test", "mann-whitney", "--out", str(out)], capsys)
    assert code == 0, err
    ranking = pl.read_csv(out / "ranking.csv")
    tests = pl.read_csv(out / "tests.csv")
    assert ranking["diff_ci_lo"].null_count() == ranking.height
    for row in ranking.filter(~pl.col("best")).iter_rows(named=True):
        pair = tests.filter(pl.col("pair").str.contains(row["experiment"])
                            & pl.col("pair").str.contains("social_science")).row(0, named=True)
        assert (row["p_BH"], row["stars"]) == (pair["p_BH"], pair["stars"])
    assert "Mann-Whitney U (unpaired), no interval" in " ".join(stdout.split())


def _boxes_by_gid(ax) -> dict[str, int]:
    found: dict[str, int] = {}
    for patch in ax.patches:
        gid = patch.get_gid() or ""
        if gid.startswith("box:"):
            found[gid] = found.get(gid, 0) + 1
    return found


def test_the_figure_has_a_box_per_method_and_the_reference_lines(sweep: list[Path], tmp_path: Path) -> None:
    experiments = [read_directory(d.name, d, "mae", f"directory {d}") for d in sweep]
    result = compare(experiments, tmp_path / "c")
    (panel,) = result.panels
    lines = result.references
    fig, _ = figures.figure(panel, "mae", True, lines)
    ax = fig.axes[0]
    # one box per method in each of the four slots, each box that method's cells alone
    assert _boxes_by_gid(ax) == {"box:country": 4, "box:value": 4}
    # each box's quartiles are its method's cells' alone (matplotlib's default percentiles)
    for method in ("country", "value"):
        drawn = sorted((float(p.get_path().vertices[:, 1].min()), float(p.get_path().vertices[:, 1].max()))
                       for p in ax.patches if p.get_gid() == f"box:{method}")
        quartiles = sorted(tuple(float(q) for q in np.percentile(b.by_method[method], [25, 75]))
                           for b in panel.boxes)
        assert np.allclose(drawn, quartiles, rtol=0, atol=1e-12)
    # the reference lines at the metrics file's values, the equal midpoint and uniform as one
    refs = {line.get_gid().removeprefix("reference:"): float(line.get_ydata()[0])
            for line in ax.lines if (line.get_gid() or "").startswith("reference:")}
    assert refs == {
        "scale midpoint = uniform answers": 0.20146,
        "other countries' answers": 0.09961,
        "actual-answer floor (value, N=6)": 0.08716,
        "persona-information floor (value, N=6)": 0.02222,
        "human sampling noise": 0.00624,
    }
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:2] == ["country", "value"]
    assert "human sampling noise (0.006)" in legend
    # pooled on request: one box per slot
    fig, _ = figures.figure(panel, "mae", False, lines)
    assert _boxes_by_gid(fig.axes[0]) == {"box:pooled": 4}


def test_one_method_keeps_one_box_per_slot_and_wasserstein_reads_its_floors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = _sweep(tmp_path / "runs")
    out = tmp_path / "w"
    code, stdout, err = run_cli(["compare", *map(str, dirs), "--method", "value", "--metric", "wasserstein_cal",
                                 "--out", str(out)], capsys)
    assert code == 0, err
    assert "wasserstein_cal by experiment" in stdout
    experiments = [read_directory(d.name, d, "wasserstein_cal", "d") for d in dirs]
    lines, notes = references(experiments, "wasserstein_cal", [("smollm2", "value")])
    # no reference/* keys under wasserstein_cal in this file; the floors' Wasserstein values
    assert {r.label: r.value for r in lines} == {"actual-answer floor (value, N=6)": 0.11251,
                                                 "human sampling noise": 0.00808}
    assert notes == []
    result = compare(experiments, tmp_path / "w2", metric="wasserstein_cal", methods=["value"])
    fig, _ = figures.figure(result.panels[0], "wasserstein_cal", True, result.references)
    assert _boxes_by_gid(fig.axes[0]) == {"box:pooled": 4}


def test_references_that_differ_or_are_unreadable_are_left_out_and_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = _sweep(tmp_path / "runs")
    other = json.loads(json.dumps(METRICS))
    other["mae"]["reference/other_countries"] = 0.12  # run on other data
    (dirs[1] / "reports/metrics.json").write_text(json.dumps(other), encoding="utf-8")
    (dirs[2] / "reports/metrics.json").write_text("{not json", encoding="utf-8")
    (dirs[3] / "reports/metrics.json").unlink()
    out = tmp_path / "c"
    code, stdout, err = run_cli(["compare", *map(str, dirs), "--out", str(out)], capsys)
    assert code == 0, err
    assert "reference line \"other countries' answers\" left out: it differs between the experiments " \
           "(0.0996 to 0.1200" in err
    assert "guidance-decisive: reports/metrics.json is not JSON" in err
    assert re.search(r"none in \S*guidance-first_person$", err, re.MULTILINE)
    assert "scale midpoint = uniform answers 0.201" in stdout
    assert "other countries" not in stdout
    # nothing to draw from: the comparison still runs, without lines, and says why
    bare = _sweep(tmp_path / "bare", metrics=None)
    code, stdout, err = run_cli(["compare", *map(str, bare), "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    assert "no reference lines: no experiment has a readable reports/metrics.json" in err
    assert "references (same cells)" not in stdout


def test_a_two_param_sweep_ranks_its_experiments_on_the_combined_panel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shifts = {("static", "handwritten"): 0.0, ("static", "handwritten_nohedge"): 0.06,
              ("other", "handwritten"): 0.01, ("other", "handwritten_nohedge"): 0.07}
    dirs = [write_result(tmp_path / f"{gen}-{var}",
                         project_params(**{"descriptors.generator": gen, "descriptors.variant": var}),
                         cells_frame({"value": shift}, seed=i))
            for i, ((gen, var), shift) in enumerate(shifts.items())]
    out = tmp_path / "fig6"
    code, stdout, err = run_cli(["compare", *map(str, dirs), "--out", str(out)], capsys)
    assert code == 0, err
    ranking = pl.read_csv(out / "ranking.csv")
    assert ranking.height == 4
    assert ranking["experiment"][0] == "descriptors.variant=handwritten, descriptors.generator=static"
    # the table shows the values under a heading that names the params
    assert "descriptors.variant, descriptors.generator" in stdout
    assert re.search(r"^\s*1\s+handwritten, static\s", stdout, re.MULTILINE)
    combined = pl.read_csv(out / "tests.csv").filter(pl.col("figure").str.contains("_x_"))
    assert set(ranking.filter(~pl.col("best"))["p_BH"].to_list()) <= set(combined["p_BH"].to_list())
