"""The pipeline benchmark's helpers and its checks (no model needed).

The full timed runs load the local model twice and take minutes, so they are not in
the suite; `valuesim bench` is run by hand (see the docs). One slow test runs the real
command on three questions for the fields it must report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from valuesim.benchmark import country_means, reference_subset, total_variation
from valuesim.llm.types import AnswerDistribution, ChatMessage
from valuesim.prompts import PromptUnit


def test_reference_subset_is_evenly_spaced_and_total() -> None:
    assert reference_subset(10, 0) == list(range(10))
    assert reference_subset(3, 6) == [0, 1, 2]
    sub = reference_subset(100, 5)
    assert sub[0] == 0
    assert sub[-1] == 99
    assert len(sub) == 5


def test_total_variation() -> None:
    assert total_variation([1, 0], [0, 1]) == 1.0
    assert total_variation([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert total_variation([0.2, 0.8], [0.4, 0.6]) == pytest.approx(0.2)


def test_country_means_average_expected_answers_over_personas() -> None:
    msgs = (ChatMessage("user", "q"),)
    units = [
        PromptUnit("a", "JPN", "Q1", msgs, ("1", "2", "3", "4")),
        PromptUnit("b", "JPN", "Q1", msgs, ("1", "2", "3", "4")),
    ]
    dists = [
        AnswerDistribution((1.0, 0.0, 0.0, 0.0), 1.0, "logprobs"),
        AnswerDistribution((0.0, 0.0, 0.5, 0.5), 1.0, "logprobs"),
    ]
    assert country_means(units, dists) == {("JPN", "Q1"): pytest.approx((1.0 + 3.5) / 2)}


def test_bench_refuses_unknown_and_remote_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from valuesim.cli import main

    params = tmp_path / "params.yaml"
    params.write_text(
        "models:\n"
        "  smollm2: {provider: transformers, model: embedded}\n"
        "  remote: {provider: openai, model: gpt-4o-mini}\n"
    )
    for model, match in (("nope", "not defined"), ("remote", "local transformers provider")):
        with pytest.raises(SystemExit) as exc:
            main(["bench", "--params", str(params), "--model", model])
        assert exc.value.code == 2
        assert match in capsys.readouterr().err


def test_server_exact_path_is_skipped_with_a_reason_without_the_openai_plugin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import valuesim.plugins
    from valuesim.benchmark import server_exact_tv

    monkeypatch.setattr(valuesim.plugins, "providers", lambda: {})
    tv, sent, why = server_exact_tv(None, [], [])
    assert (tv, sent) == (None, 0)
    assert why is not None
    assert "openai plugin is not installed" in why


@pytest.mark.slow
def test_bench_json_reports_padding_flops_the_gemm_peak_and_the_path_before(tmp_path: Path) -> None:
    from tests.fixtures.study_files import write_ask_params

    write_ask_params(tmp_path, model="smollm2", provider=None)
    questions = [arg for q in ("Q1", "Q2", "Q3", "Q4") for arg in ("--questions", q)]
    proc = subprocess.run(
        [sys.executable, "-c", "from valuesim.cli import main; main()", "bench", "--json",
         "--countries", "JPN", *questions, "--no-naive", "--no-server-exact"],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["requests"] == 4
    assert 0.0 <= r["padding_share"] <= r["padding_share_before"] < 1.0
    assert r["gflops"] > 0
    assert r["gemm_peak_gflops"] > 0
    assert r["roofline_share"] == pytest.approx(r["gflops"] / r["gemm_peak_gflops"])
    # today's path against the one before issue 25, in the same run: float reordering only
    assert r["path_max_tv"] <= 1e-5
    assert r["path_rounds"] >= 2
    assert r["path_before_s"] > 0
    assert r["path_after_s"] > 0
    assert r["path_cpu_ratio"] > 0
    assert r["path_wall_ratio"] == pytest.approx(r["path_before_s"] / r["path_after_s"])
