"""`valuesim score --provider openai --base-url ...` end to end against the fake server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from fake_openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[3]


def _params(tmp_path: Path) -> Path:
    """The project's params with a private response cache (a shared one would answer)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["simulate"]["cache_dir"] = str(tmp_path / "cache")
    out = tmp_path / "params.yaml"
    out.write_text(yaml.safe_dump(params))
    return out


def _score(fake: FakeOpenAI, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable, "-c", "from valuesim.cli import main; main()",
        "score", "--provider", "openai", "--model", "gpt-4o-mini", "--base-url", fake.url,
        "--method", "value", "--country", "JPN", "--question", "Q6",
        "--params", str(_params(tmp_path)), *extra,
    ]
    # runs in the project root so the shipped bank, descriptors and demo population are used
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_score_prints_distribution_coverage_estimator(fake: FakeOpenAI, tmp_path: Path) -> None:
    out = _score(fake, tmp_path, "--format", "json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) >= {"distribution", "coverage", "estimator"}
    assert result["estimator"] == "top_logprobs"
    assert sorted(result["distribution"], key=int) == ["1", "2", "3", "4"]
    assert abs(sum(result["distribution"].values()) - 1.0) < 1e-9
    assert 0 < result["coverage"] <= 1
    # the persona reached the server: the system message carries "Your persona:"
    system = fake.bodies[-1]["messages"][0]["content"]
    assert "Your persona:" in system


def test_score_without_key_fails_in_one_line(fake: FakeOpenAI, tmp_path: Path) -> None:
    env_key = os.environ.pop("OPENAI_API_KEY", None)
    try:
        cmd = [
            sys.executable, "-c", "from valuesim.cli import main; main()",
            "score", "--provider", "openai", "--model", "gpt-4o-mini",
            "--method", "country", "--country", "JPN", "--question", "Q6",
            "--params", str(_params(tmp_path)),
        ]
        env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    finally:
        if env_key is not None:
            os.environ["OPENAI_API_KEY"] = env_key
    assert out.returncode != 0
    assert "OPENAI_API_KEY" in out.stderr
    assert "Traceback" not in out.stderr
    assert fake.bodies == []
