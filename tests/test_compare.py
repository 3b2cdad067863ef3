"""`valuesim compare` on result directories: a guidance sweep (the paper's Figure 5),
a descriptor generator x variant sweep (Figure 6), the test table (paired and clustered
by question by default, the paper's unpaired Mann-Whitney on request) against an
independent computation, and every bad input as a one-line error that writes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.stats import mannwhitneyu, permutation_test
from statsmodels.stats.multitest import multipletests

from tests.fixtures.cli import run_cli
from tests.fixtures.compare_runs import cells_frame, project_params, questions, write_result
from valuesim.cli import main

# planted per-cell shifts of the persona methods; generic never changes with guidance
GUIDANCE = {"social_science": 0.0, "minimal": 0.03, "decisive": 0.12}


@pytest.fixture
def guidance_sweep(tmp_path: Path) -> list[Path]:
    return [
        write_result(tmp_path / f"guidance-{g}", project_params(**{"prompts.guidance": g}),
                     cells_frame({"country": shift, "value": shift}, seed=i))
        for i, (g, shift) in enumerate(GUIDANCE.items())
    ]


COLUMNS = ["figure", "pair", "a", "b", "test", "n1", "n2", "n_cells", "n_questions", "n_unmatched", "diff",
           "ci_lo", "ci_hi", "U", "p", "p_BH", "stars"]


def _expected_paired(dirs: list[Path], labels: list[str], methods: set[str]) -> dict[str, tuple[float, ...]]:
    """Per pair: the mean per-question difference a - b, the sign-flip p over questions
    and its BH p, computed here from the cells files with numpy, scipy + statsmodels."""
    cube = {}  # label -> (questions, methods x countries) errors, cells in one order
    for d, lab in zip(dirs, labels, strict=True):
        frame = (pl.read_parquet(d / "data/eval/cells.parquet").filter(pl.col("method").is_in(methods))
                 .sort("question", "method", "country"))
        cube[lab] = frame["mae"].to_numpy().reshape(frame["question"].n_unique(), -1)
    medians = sorted(cube, key=lambda k: float(np.median(cube[k])))
    pairs = [(a, b) for i, a in enumerate(medians) for b in medians[i + 1:]]
    per_q = {pair: (cube[pair[0]] - cube[pair[1]]).mean(axis=1) for pair in pairs}
    # the package's fixed seed (0) and number of sign patterns
    ps = [permutation_test((per_q[pair],), np.mean, permutation_type="samples", vectorized=True,
                           n_resamples=99_999, batch=10_000, rng=np.random.default_rng(0)).pvalue for pair in pairs]
    _, bh, _, _ = multipletests(ps, method="fdr_bh")
    return {f"{a} vs {b}": (float(per_q[(a, b)].mean()), p, q, per_q[(a, b)].size, cube[a].size)
            for (a, b), p, q in zip(pairs, ps, bh, strict=True)}


def _expected_tests(dirs: list[Path], labels: list[str], methods: set[str]) -> dict[str, tuple[float, float, float]]:
    """U, p and BH p per pair, computed here from the cells files with scipy + statsmodels."""
    groups = {
        lab: pl.read_parquet(d / "data/eval/cells.parquet").filter(pl.col("method").is_in(methods))["mae"].to_numpy()
        for d, lab in zip(dirs, labels, strict=True)
    }
    medians = sorted(groups, key=lambda k: float(np.median(groups[k])))
    pairs = [(a, b) for i, a in enumerate(medians) for b in medians[i + 1:]]
    results = [mannwhitneyu(groups[a], groups[b], alternative="two-sided") for a, b in pairs]
    _, bh, _, _ = multipletests([r.pvalue for r in results], method="fdr_bh")
    return {f"{a} vs {b}": (r.statistic, r.pvalue, q) for (a, b), r, q in zip(pairs, results, bh, strict=True)}


def test_a_guidance_sweep_gives_figure_5_and_the_checked_test_table(
    guidance_sweep: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "compare"
    code, stdout, err = run_cli(["compare", *map(str, guidance_sweep), "--out", str(out)], capsys)
    assert code == 0, err
    assert "mae_by_prompts_guidance.png (Figure 5 of the paper)" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "experiments.csv", "index.html", "mae_by_prompts_guidance.png", "ranking.csv", "tests.csv"]
    assert (out / "mae_by_prompts_guidance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    experiments = pl.read_csv(out / "experiments.csv")
    assert experiments["label"].to_list() == [f"prompts.guidance={g}" for g in GUIDANCE]
    # generic's errors are the same in every experiment: left out, said so on the page
    assert "methods: country, value" in stdout
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "were left out: generic" in html
    assert html.count("data:image/png;base64,") == 1

    tests = pl.read_csv(out / "tests.csv")
    assert tests.columns == COLUMNS
    expected = _expected_paired(guidance_sweep, list(GUIDANCE), {"country", "value"})
    assert sorted(tests["pair"].to_list()) == sorted(expected)
    for row in tests.iter_rows(named=True):
        diff, p, q, n_questions, n_cells = expected[row["pair"]]
        assert row["test"] == "paired, clustered by question (sign-flip)"
        assert row["diff"] == pytest.approx(diff, rel=1e-9)
        assert row["ci_lo"] < diff < row["ci_hi"]
        assert row["p"] == pytest.approx(p, rel=1e-9)
        assert row["p_BH"] == pytest.approx(q, rel=1e-9)
        assert (row["n_questions"], row["n_cells"], row["n_unmatched"]) == (n_questions, n_cells, 0)
    # the boxes run from the lowest median: the planted order
    assert tests["pair"].to_list()[0] == "social_science vs minimal"
    stars = dict(zip(tests["pair"], tests["stars"], strict=True))
    assert stars["social_science vs decisive"] == "****"
    assert "paired test clustered by question" in html


def test_mann_whitney_on_request_is_the_papers_unpaired_test(
    guidance_sweep: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mw"
    code, _, err = run_cli(["compare", *map(str, guidance_sweep), "--test", "mann-whitney", "--out", str(out)], capsys)
    assert code == 0, err
    tests = pl.read_csv(out / "tests.csv")
    assert tests.columns == COLUMNS
    expected = _expected_tests(guidance_sweep, list(GUIDANCE), {"country", "value"})
    assert sorted(tests["pair"].to_list()) == sorted(expected)
    for row in tests.iter_rows(named=True):
        u, p, q = expected[row["pair"]]
        assert row["test"] == "Mann-Whitney U (unpaired)"
        assert row["U"] == pytest.approx(u, rel=1e-12)
        assert row["p"] == pytest.approx(p, rel=1e-9)
        assert row["p_BH"] == pytest.approx(q, rel=1e-9)
        assert row["n_cells"] is None
        assert row["ci_lo"] is None
    assert "unpaired two-sided Mann-Whitney U" in (out / "index.html").read_text(encoding="utf-8")


def test_the_paired_test_finds_a_hundredth_that_mann_whitney_misses_on_the_shared_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 0.01 of the range on every country cell; one experiment lacks ZWE (its cells are unmatched)
    plain = write_result(tmp_path / "g-a", project_params(**{"prompts.guidance": "social_science"}),
                         cells_frame({"country": 0.0}, seed=1))
    worse = write_result(tmp_path / "g-b", project_params(**{"prompts.guidance": "minimal"}),
                         cells_frame({"country": 0.01}, seed=2).filter(pl.col("country") != "ZWE"))
    found = {}
    for test in ("paired", "mann-whitney"):
        out = tmp_path / test
        code, _, err = run_cli(["compare", str(plain), str(worse), "--method", "country", "--test", test,
                                "--out", str(out)], capsys)
        assert code == 0, err
        found[test] = pl.read_csv(out / "tests.csv").row(0, named=True)
    n_q = len(questions())
    assert found["paired"]["p_BH"] < 0.001
    assert (found["paired"]["n_cells"], found["paired"]["n_unmatched"]) == (9 * n_q, n_q)
    assert abs(found["paired"]["diff"]) == pytest.approx(0.01, abs=0.003)
    assert found["mann-whitney"]["p_BH"] > 0.05  # unpaired: the shift hides in the cells' spread


def test_a_generator_by_variant_sweep_gives_figure_6(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # value personas only: the descriptors reach no other method's prompt
    shifts = {("static", "handwritten"): 0.0, ("static", "handwritten_nohedge"): 0.06,
              ("static", "handwritten_bare"): 0.01, ("other", "handwritten"): 0.0,
              ("other", "handwritten_nohedge"): 0.06, ("other", "handwritten_bare"): 0.01}
    dirs = [
        write_result(tmp_path / f"{gen}-{var}",
                     project_params(**{"descriptors.generator": gen, "descriptors.variant": var}),
                     cells_frame({"value": shift}, seed=i))
        for i, ((gen, var), shift) in enumerate(shifts.items())
    ]
    out = tmp_path / "fig6"
    code, stdout, err = run_cli(["compare", *map(str, dirs), "--out", str(out)], capsys)
    assert code == 0, err
    assert "warning" not in err  # a full 2 x 3 grid: the per-param figures are not confounded
    assert "methods: value" in stdout
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["mae_by_descriptors_generator.png", "mae_by_descriptors_variant.png",
                     "mae_by_descriptors_variant_x_descriptors_generator.png"]
    assert stdout.count("(Figure 6 of the paper)") == 3
    tests = pl.read_csv(out / "tests.csv")
    variant = tests.filter(pl.col("figure") == "mae_by_descriptors_variant.png")
    stars = dict(zip(variant["pair"], variant["stars"], strict=True))
    # the planted effects: nohedge worse than both hedged sets, which differ less
    assert stars["handwritten vs handwritten_nohedge"] == "****"
    assert stars["handwritten_bare vs handwritten_nohedge"] == "****"
    # the generators were given no difference
    generator = tests.filter(pl.col("figure") == "mae_by_descriptors_generator.png")
    assert generator["stars"].to_list() == ["ns"]
    combined = tests.filter(pl.col("figure") == "mae_by_descriptors_variant_x_descriptors_generator.png")
    assert combined.height == 15  # 6 experiments, every pair, one BH family
    assert combined["n1"].to_list() == [len(cells_frame({}, 0).filter(pl.col("method") == "value"))] * 15


def test_hue_by_method_and_a_chosen_method(guidance_sweep: list[Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, err = run_cli(["compare", *map(str, guidance_sweep), "--out", str(tmp_path / "h"),
                                 "--hue-method", "--method", "generic", "--method", "country"], capsys)
    assert code == 0, err
    assert "methods: generic, country" in stdout
    tests = pl.read_csv(tmp_path / "h" / "tests.csv")
    n_cells = cells_frame({}, 0).filter(pl.col("method") == "country").height
    assert set(tests["n1"].to_list()) == {2 * n_cells}


def test_another_metric_names_its_files_and_is_not_the_papers_figure(
    guidance_sweep: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "w"
    code, stdout, err = run_cli(["compare", *map(str, guidance_sweep), "--metric", "wasserstein_cal",
                                 "--out", str(out)], capsys)
    assert code == 0, err
    assert (out / "wasserstein_cal_by_prompts_guidance.png").exists()
    assert "Figure 5" not in stdout
    experiments = pl.read_csv(out / "experiments.csv")
    # the fixture's wasserstein_cal is 1.1 x the MAE, cell by cell
    assert experiments["mean_wasserstein_cal"][0] == pytest.approx(
        1.1 * pl.read_parquet(guidance_sweep[0] / "data/eval/cells.parquet")
        .filter(pl.col("method") != "generic")["mae"].mean(), rel=1e-12)


def test_two_sweeps_compared_together_are_flagged(guidance_sweep: list[Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    nohedge = write_result(tmp_path / "descriptors-nohedge",
                           project_params(**{"descriptors.variant": "handwritten_nohedge"}),
                           cells_frame({"value": 0.05}, seed=9))
    out = tmp_path / "mixed"
    code, _, err = run_cli(["compare", *map(str, guidance_sweep), str(nohedge), "--out", str(out)], capsys)
    assert code == 0, err
    assert "warning: the experiments vary descriptors.variant, prompts.guidance but cover only 4 of their " \
           "6 combinations" in err
    assert "cover only 4 of their 6 combinations" in (out / "index.html").read_text(encoding="utf-8")


def _one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_bad_inputs_are_one_line_errors_that_write_nothing(
    guidance_sweep: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    first, second, _ = (str(p) for p in guidance_sweep)
    # fewer than two experiments
    code, _, err = run_cli(["compare", first, "--out", str(out)], capsys)
    assert code == 2
    assert "needs at least two experiments, got 1" in _one_error(err)
    # nothing named at all
    code, _, err = run_cli(["compare", "--out", str(out)], capsys)
    assert code == 2
    assert "--all" in _one_error(err)
    # a result directory without cells.parquet
    empty = tmp_path / "no-cells"
    write_result(empty, project_params(**{"prompts.guidance": "predict"}), cells_frame({}, 0))
    (empty / "data/eval/cells.parquet").unlink()
    code, _, err = run_cli(["compare", first, str(empty), "--out", str(out)], capsys)
    assert code == 2
    assert "no-cells/data/eval/cells.parquet not found; run the pipeline through the evaluate stage" in _one_error(err)
    # no differing params
    twin = write_result(tmp_path / "twin", project_params(**{"prompts.guidance": "social_science"}),
                        cells_frame({}, 5))
    code, _, err = run_cli(["compare", first, str(twin), "--out", str(out)], capsys)
    assert code == 2
    assert "have the same params" in _one_error(err)
    # a mistyped directory, outside any DVC project, is named as such
    code, _, err = run_cli(["compare", first, str(tmp_path / "guidance-minimall"), "--repo", str(tmp_path),
                            "--out", str(out)], capsys)
    assert code == 2
    line = _one_error(err)
    assert "no directory named '" in line
    assert "guidance-minimall'" in line
    assert "is not a DVC project" in line
    # an unknown method
    code, _, err = run_cli(["compare", first, second, "--method", "fewshot", "--out", str(out)], capsys)
    assert "no experiment has method(s) fewshot; choose from country, generic, value" in _one_error(err)
    # an unknown test
    code, _, err = run_cli(["compare", first, second, "--test", "t-test", "--out", str(out)], capsys)
    assert code == 2
    assert "--test 't-test' is not a test; choose paired or mann-whitney" in _one_error(err)
    assert not out.exists()


def test_a_folder_with_other_files_is_refused(guidance_sweep: list[Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "metrics.json").write_text("{}")
    code, _, err = run_cli(["compare", *map(str, guidance_sweep), "--out", str(reports)], capsys)
    assert code == 2
    assert "holds files compare does not write (metrics.json)" in _one_error(err)
    assert sorted(p.name for p in reports.iterdir()) == ["metrics.json"]


def test_a_failure_while_drawing_keeps_the_previous_comparison(
    guidance_sweep: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "compare"
    assert run_cli(["compare", *map(str, guidance_sweep[:2]), "--out", str(out)], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    from valuesim.compare import figures

    def broken(*_args: object, **_kwargs: object) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr(figures, "draw", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        main(["compare", *map(str, guidance_sweep), "--out", str(out)])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
