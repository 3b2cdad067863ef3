"""The front door: the README stays short and its quickstarts run as written; the
documentation site under docs/ builds with `mkdocs build --strict` (no broken link or
anchor), and a broken anchor does fail that build."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fixtures.paths import ROOT, SHARED_WVS
from tests.fixtures.study_files import write_ask_params

README = ROOT / "README.md"
MKDOCS = Path(sys.executable).with_name("mkdocs")
EXAMPLE = "data/questions/new_items_example.yaml"


def _section(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    following = re.search(r"\n## ", text[start + 1:])
    return text[start: start + 1 + following.start()] if following else text[start:]


def _blocks(heading: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(heading), re.S)


def _commands(block: str) -> list[str]:
    """Shell commands of a block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines() if line.strip()]


def _mkdocs(docs_root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [str(MKDOCS), "build", "--strict", "-f", str(docs_root / "mkdocs.yml"), "-d", str(site)],
        capture_output=True, text=True, env=env, timeout=300,
    )


def test_readme_is_a_front_door() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    headings = [line for line in lines if line.startswith("## ")]
    for wanted in ("## Quickstart 1", "## Quickstart 2", "## Quickstart 3", "## What the report",
                   "## Commands by workflow", "## Limitations", "## Citing"):
        assert any(h.startswith(wanted) for h in headings), wanted
    # every docs page the README links to exists
    for target in re.findall(r"\]\((docs/[^)#]+)", README.read_text(encoding="utf-8")):
        assert (ROOT / target).is_file(), target


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    result = _mkdocs(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site/concepts/index.html").is_file()


def test_a_broken_anchor_fails_the_build(tmp_path: Path) -> None:
    """The strict build is what guards the links: a copy with one dead anchor fails."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs/concepts.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [nothing](results.md#no-such-heading).\n")
    result = _mkdocs(tmp_path, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-heading" in result.stderr + result.stdout


def test_every_docs_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(nav: object) -> Iterator[str]:
        if isinstance(nav, str):
            yield nav
        elif isinstance(nav, list):
            for entry in nav:
                yield from pages(entry)
        elif isinstance(nav, dict):
            for value in nav.values():
                yield from pages(value)

    listed = set(pages(config["nav"]))
    on_disk = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert listed == on_disk


def test_quickstart_1_is_the_makefile_target() -> None:
    commands = _commands(_blocks("## Quickstart 1: the demo study", "bash")[0])
    assert commands[0] == "make run"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^run: .*\n\t.*dvc repro", makefile, re.M)


def test_quickstart_2_runs_on_real_wvs_files(tmp_path: Path) -> None:
    """The `valuesim human` line as written, with the real files' path; the `dvc exp run`
    line's key exists in params.yaml (so no `+` is needed)."""
    source = SHARED_WVS / "v5"
    if not source.is_dir():
        pytest.skip(f"real WVS-7 files not found at {source} (they are never shipped)")
    commands = _commands(_blocks("## Quickstart 2: your own WVS files", "bash")[0])
    human = next(c for c in commands if c.startswith("valuesim human"))
    human = re.sub(r"--source \S+", f"--source {source}", human)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = subprocess.run(human, shell=True, cwd=ROOT, capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "JPN" in out.stdout
    assert "DEU" in out.stdout
    assert "Q49" in out.stdout
    exp = next(c for c in commands if c.startswith("dvc exp run"))
    key = re.search(r"-S (\S+?)=", exp).group(1)  # type: ignore[union-attr]
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    section, name = key.split(".")
    assert name in params[section]


@pytest.mark.slow
def test_quickstart_3_asks_a_vllm_server(tmp_path: Path) -> None:
    """The `valuesim ask` line as written, against a vLLM-wire server on loopback that
    serves the embedded model's real logits; only the port is changed, params.yaml is
    not edited."""
    from valuesim.config import ModelSpec
    from valuesim.plugins import providers
    from valuesim.testing.fake_vllm import serve_fake_vllm

    section = "## Quickstart 3: your own questions, with an API or vLLM model"
    command = _commands(_blocks(section, "bash")[0])[0]
    assert command.startswith("valuesim ask")
    assert "--provider openai" in command
    model = re.search(r"--model (\S+)", command)[1]
    (tmp_path / "data/questions").mkdir(parents=True)
    shutil.copy(ROOT / EXAMPLE, tmp_path / EXAMPLE)
    spec = ModelSpec(provider="transformers", model="embedded", precision="fp32")
    local = providers()["transformers"].create(spec, state_dir=tmp_path / "state")
    with serve_fake_vllm(local.lm, model_name=model) as (url, fake):
        served = command.replace("http://127.0.0.1:8000/v1", url)
        assert served != command  # the README's URL is the loopback default
        write_ask_params(tmp_path, model="smollm2", provider=None)
        before = (tmp_path / "params.yaml").read_bytes()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
        out = subprocess.run(served, shell=True, cwd=tmp_path, capture_output=True, text=True,
                             env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        assert len(fake.bodies) == 2 * 2 * 6  # countries x items x personas.n_per_country
    assert (tmp_path / "params.yaml").read_bytes() == before
    for needle in ("JPN", "DEU", "AI_TRUST", "CLIMATE_TAX"):
        assert needle in out.stdout


def test_the_browse_data_dictionary_is_generated() -> None:
    """docs/browse.md's data dictionary is data_dictionary()'s text, so the page and
    what Datasette shows cannot drift apart."""
    from valuesim.browse.metadata import data_dictionary

    text = (ROOT / "docs/browse.md").read_text(encoding="utf-8")
    start = text.index("<!-- data dictionary: generated -->\n") + len("<!-- data dictionary: generated -->\n")
    end = text.index("\n<!-- end data dictionary -->")
    assert text[start:end] == data_dictionary().strip()
