"""`valuesim ask --provider openai --model M --base-url URL` (issue 24): any model from
the command line, without editing params.yaml, as real CLI processes against loopback
servers that count what they are sent; and `valuesim prompt show --questions` prints
byte for byte the messages `ask` sends for the same persona and item.

The slow test serves the embedded SmolLM2's real logits on the vLLM wire format
(:mod:`valuesim.testing.fake_vllm`); the others use the OpenAI fake
(:mod:`fake_openai_server`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_openai_server import FAKE_KEY, FakeOpenAI

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "data/questions/new_items_example.yaml"
NEWS = """\
items:
- id: NEWS_SOURCE
  text: Where do you get most of your news?
  answers:
  - {code: 1, label: Television}
  - {code: 2, label: Newspapers}
  - {code: 3, label: Social media}
  - {code: 4, label: Radio}
- id: VOTED
  text: Did you vote in the last national election?
  answers:
  - {code: 1, label: 'Yes'}
  - {code: 2, label: 'No'}
"""


def _project(tmp_path: Path, **simulate: Any) -> Path:
    """A project asking the demo population: the shipped bank and descriptors, only the
    embedded model under models (the model asked is not in params.yaml), a private cache."""
    params = {
        "data": {"source": str(ROOT / "data/demo/aggregates.json"),
                 "questions": str(ROOT / "data/questions/wvs7.yaml"),
                 "demo_respondents_per_country": 40},
        "descriptors": {"path": str(ROOT / "data/descriptors/value_handwritten.yaml"),
                        "sociodemographic_path": str(ROOT / "data/descriptors/sociodemographic.yaml")},
        "simulate": {"models": ["smollm2"], "methods": ["value"], "cache_dir": ".cache", **simulate},
        "analysis": {"bootstrap": 200},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "news.yaml").write_text(NEWS)
    return tmp_path


def _cli(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from valuesim.cli import main; main()", *args]
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=600,
                          env=env if env is not None else dict(os.environ))


def _no_openai_env() -> dict[str, str]:
    """The environment without OPENAI_* (a loopback server needs no key)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}


def _sent(fake: FakeOpenAI) -> list[list[dict[str, str]]]:
    return [[{"role": m["role"], "content": m["content"]} for m in b["messages"]] for b in fake.bodies]


@pytest.mark.slow
def test_ask_any_model_from_the_command_line_against_the_fake_vllm(tmp_path: Path) -> None:
    """The issue's "done when": the fake vLLM serving SmolLM2, reached with --provider
    openai --base-url; one request per persona, item and country, none twice."""
    from valuesim.config import ModelSpec
    from valuesim.plugins import providers
    from valuesim.testing.fake_vllm import serve_fake_vllm

    project = _project(tmp_path)
    before = (project / "params.yaml").read_bytes()
    local = providers()["transformers"].create(
        ModelSpec(provider="transformers", model="embedded", precision="fp32"), state_dir=tmp_path / "state"
    )
    args = ("ask", "--provider", "openai", "--model", "some-model", "--questions", str(EXAMPLE),
            "--countries", "JPN,DEU", "--format", "json")
    with serve_fake_vllm(local.lm, model_name="some-model") as (url, fake):
        out = _cli(project, *args, "--base-url", url, env=_no_openai_env())
        assert out.returncode == 0, out.stderr[-2000:]
        done = json.loads(out.stdout)
        summary = done["summary"]
        # --n defaults to personas.n_per_country (6): the study's own personas
        assert summary["personas_per_country"] == 6
        assert len(fake.bodies) == 2 * 2 * 6 == summary["sent"] == summary["requests"]
        assert {b["model"] for b in fake.bodies} == {"some-model"}
        assert (summary["provider"], summary["provider_model"]) == ("openai", "some-model")
        rows = {(r["country"], r["question"]): r for r in done["results"]}
        assert set(rows) == {(c, q) for c in ("JPN", "DEU") for q in ("AI_TRUST", "CLIMATE_TAX")}
        assert all(r["n_personas"] == 6 and abs(sum(r["probs"]) - 1) < 1e-6 for r in rows.values())

        again = _cli(project, *args, "--base-url", url, env=_no_openai_env())
        assert again.returncode == 0, again.stderr[-2000:]
        assert len(fake.bodies) == 24  # every answer came from the response cache
        assert json.loads(again.stdout)["summary"]["cache_hits"] == 24
    assert (project / "params.yaml").read_bytes() == before  # nothing was written to params


def _respondents(project: Path, country: str, n: int) -> list[str]:
    """The respondent ids of `valuesim personas show --n N`: the personas `ask --n N` asks
    (both sample with personas.seed)."""
    out = _cli(project, "personas", "show", "--country", country, "--kind", "value", "--n", str(n))
    assert out.returncode == 0, out.stderr
    return [line.split()[1].split(":")[0] for line in out.stdout.splitlines() if line.startswith("# ")]


def _shown(project: Path, *args: str) -> list[dict[str, str]]:
    out = _cli(project, "prompt", "show", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["messages"]


def test_prompt_show_prints_exactly_what_ask_sends(fake: FakeOpenAI, tmp_path: Path) -> None:
    """For every persona of the run and each item of the user's question file, the
    messages `prompt show --questions` prints are the ones the server received."""
    project = _project(tmp_path)
    out = _cli(project, "ask", "--provider", "openai", "--model", "gpt-4o-mini", "--base-url", fake.url,
               "-q", "news.yaml", "--countries", "JPN", "--n", "3", "--format", "json")
    assert out.returncode == 0, out.stderr[-2000:]
    sent = _sent(fake)
    assert len(sent) == 2 * 3
    # OPENAI_API_KEY is set (the fixture) but belongs to api.openai.com: not sent here
    assert FAKE_KEY not in "".join(fake.auth_headers)
    rids = _respondents(project, "JPN", 3)
    assert len(rids) == 3
    shown = [_shown(project, "--questions", "news.yaml", "--question", q, "--method", "value",
                    "--country", "JPN", "--respondent", r, "--format", "json")
             for r in rids for q in ("NEWS_SOURCE", "VOTED")]
    # byte for byte, as a multiset: each prompt sent is one printed, and nothing else
    key = lambda m: json.dumps(m, sort_keys=True)  # noqa: E731
    assert sorted(map(key, shown)) == sorted(map(key, sent))

    # the text form is the same messages, [Role] headed
    text = _cli(project, "prompt", "show", "-q", "news.yaml", "--question", "NEWS_SOURCE",
                "--method", "value", "--country", "JPN", "--respondent", rids[0])
    assert text.returncode == 0, text.stderr
    first = shown[0]
    assert text.stdout == "".join(f"[{m['role'].capitalize()}]\n{m['content']}\n\n" for m in first)
    assert "Social media" in first[1]["content"]

    # a country-level method: the one prompt per country
    fake.bodies.clear()
    out = _cli(project, "ask", "--provider", "openai", "--model", "gpt-4o-mini", "--base-url", fake.url,
               "-q", "news.yaml", "--countries", "DEU", "--method", "country", "--format", "json")
    assert out.returncode == 0, out.stderr[-2000:]
    shown = [_shown(project, "-q", "news.yaml", "--question", q, "--method", "country",
                    "--country", "DEU", "--format", "json") for q in ("NEWS_SOURCE", "VOTED")]
    assert sorted(map(key, shown)) == sorted(map(key, _sent(fake)))


ROTATED = """\
items:
- id: NEWS_ROTATED
  text: Where do you get most of your news?
  type: nominal
  order: rotate
  answers:
  - {code: 1, label: Television}
  - {code: 2, label: Newspapers}
  - {code: 3, label: Radio}
- id: MEDIA_USED
  text: Which of these do you use to follow the news?
  type: multi
  answers:
  - {code: 1, label: Television}
  - {code: 2, label: Radio}
"""


def test_prompt_show_prints_what_ask_sends_for_rotated_and_multi_items(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    """A rotated item's k-th persona sees the options from the k-th on and a multi item
    is one Yes/No prompt per option: `prompt show --respondent R` prints, for each
    persona and each prompt, exactly the messages the server received (4 personas:
    the rotation wraps around), and `--n` places the respondent as `ask --n` does."""
    project = _project(tmp_path)
    (project / "rotated.yaml").write_text(ROTATED)
    questions = ("NEWS_ROTATED", "MEDIA_USED.1", "MEDIA_USED.2")
    out = _cli(project, "ask", "--provider", "openai", "--model", "gpt-4o-mini", "--base-url", fake.url,
               "-q", "rotated.yaml", "--countries", "JPN", "--n", "4", "--format", "json")
    assert out.returncode == 0, out.stderr[-2000:]
    sent = _sent(fake)
    assert len(sent) == 4 * 3
    rids = _respondents(project, "JPN", 4)
    shown = [_shown(project, "-q", "rotated.yaml", "--question", q, "--method", "value", "--country",
                    "JPN", "--respondent", r, "--n", "4", "--format", "json")
             for r in rids for q in questions]
    key = lambda m: json.dumps(m, sort_keys=True)  # noqa: E731
    assert sorted(map(key, shown)) == sorted(map(key, sent))
    listed = [m[1]["content"].split("\n\n")[1] for m in shown[::3]]
    assert listed == ["Options: 1=Television, 2=Newspapers, 3=Radio",
                      "Options: 2=Newspapers, 3=Radio, 1=Television",
                      "Options: 3=Radio, 1=Television, 2=Newspapers",
                      "Options: 1=Television, 2=Newspapers, 3=Radio"]
    assert 'Do you select "Radio"?' in shown[2][1]["content"]

    # a respondent ask did not sample: where its options start is unknown, said in one line
    out = _cli(project, "prompt", "show", "-q", "rotated.yaml", "--question", "NEWS_ROTATED",
               "--method", "value", "--country", "JPN", "--respondent", rids[3], "--n", "1")
    assert out.returncode == 2
    assert "is not among the 1 personas `valuesim ask` samples for JPN" in out.stderr
    assert out.stderr.count("\n") == 1
    # the multi item itself names its options
    out = _cli(project, "prompt", "show", "-q", "rotated.yaml", "--question", "MEDIA_USED",
               "--method", "value", "--country", "JPN")
    assert (out.returncode, out.stderr) == (2, "error: rotated.yaml: MEDIA_USED is a multi item, asked "
                                            "as one Yes/No item per option: pass --question "
                                            "MEDIA_USED.1 (its options: MEDIA_USED.1, MEDIA_USED.2)\n")


def test_an_unquoted_no_label_names_the_yaml_boolean_and_sends_nothing(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    project = _project(tmp_path)
    (project / "news.yaml").write_text(NEWS.replace("label: 'No'", "label: No"))
    expected = ("error: news.yaml: item VOTED: answers[1].label is the YAML boolean false: "
                "quote it: label: 'No'\n")
    out = _cli(project, "ask", "--provider", "openai", "--model", "gpt-4o-mini", "--base-url", fake.url,
               "-q", "news.yaml", "--countries", "JPN")
    assert (out.returncode, out.stderr) == (2, expected)
    out = _cli(project, "prompt", "show", "-q", "news.yaml", "--question", "VOTED", "--method",
               "country", "--country", "JPN")
    assert (out.returncode, out.stderr) == (2, expected)
    assert fake.bodies == []


def test_the_spending_ceiling_holds_for_a_command_line_model(fake: FakeOpenAI, tmp_path: Path) -> None:
    """A remote model without a price is refused under simulate.max_cost_usd, as a
    params model is; with a price it is planned and held to the ceiling."""
    args = ("ask", "--provider", "openai", "--model", "gpt-4o-mini", "--base-url", fake.url,
            "-q", "news.yaml", "--countries", "JPN")
    out = _cli(_project(tmp_path, max_cost_usd=1.0), *args)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ask gpt-4o-mini/value: model gpt-4o-mini (openai/gpt-4o-mini) "
                                 "has no price in simulate.prices")
    assert out.stderr.count("\n") == 1

    price = {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}
    out = _cli(_project(tmp_path, max_cost_usd=1e-6, prices=price), *args)
    assert out.returncode == 2
    assert "over simulate.max_cost_usd" in out.stderr
    assert "nothing was sent" in out.stderr
    assert fake.bodies == []

    out = _cli(_project(tmp_path, max_cost_usd=1.0, prices=price), *args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(fake.bodies) == 12


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--model", "gpt-9"], 2,
         "error: model 'gpt-9' is not an entry of the models section of params.yaml (smollm2); add one "
         "there, e.g. `gpt-9: {provider: openai, model: gpt-9, base_url: \"http://127.0.0.1:8000/v1\"}`, "
         "or name its provider on the command line: --provider openai --model gpt-9 [--base-url URL]"),
        (["--provider", "openai", "--model", "m", "--base-url", "http://me:pw@127.0.0.1:9/v1"], 2,
         "error: --base-url 'http://***@127.0.0.1:9/v1' carries a user:password@ part"),
        (["--provider", "openai", "--model", "m", "--base-url", "http://127.0.0.1:9/v1?api_key=s3cret"],
         2, "carries the api_key= query parameter"),
        (["--provider", "openai", "--model", "m", "--base-url", "gpu-box:8000/v1"], 2,
         "error: --base-url: base_url 'gpu-box:8000/v1' is not an http(s) URL"),
        (["--provider", "openai", "--model", "smollm2"], 2,
         "error: --model smollm2 names the models entry of params.yaml for transformers/embedded"),
        (["--provider", "nosuch", "--model", "m"], 4, "error: unknown provider 'nosuch'"),
        (["--provider", "openai", "--model", "m", "--option", "server"], 2,
         "error: --option 'server': write KEY=VALUE"),
        (["--provider", "openai", "--model", "m", "--estimator", "psychic"], 2,
         "error: unknown estimator 'psychic'"),
    ],
)
def test_bad_model_flags_are_one_line_and_send_nothing(
    fake: FakeOpenAI, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    out = _cli(_project(tmp_path), "ask", "-q", "news.yaml", "--countries", "JPN", *args)
    assert out.returncode == code
    assert message in out.stderr
    assert out.stderr.count("\n") == 1
    assert "s3cret" not in out.stderr
    assert "pw@" not in out.stderr
    assert fake.bodies == []


def test_a_key_goes_over_plain_http_only_to_loopback(tmp_path: Path) -> None:
    """--option api_key_env names the key for a server of your own; the provider's
    rule holds for a command-line model: never over plain http to another host."""
    env = {**_no_openai_env(), "VLLM_KEY": "sk-local-DONOTLEAK"}
    out = _cli(_project(tmp_path), "ask", "--provider", "openai", "--model", "m", "--base-url",
               "http://gpu-box.invalid:8000/v1", "--option", "api_key_env=VLLM_KEY",
               "-q", "news.yaml", "--countries", "JPN", env=env)
    assert out.returncode != 0
    assert "refusing to send an API key over plain http" in out.stderr
    assert "DONOTLEAK" not in out.stderr


def test_the_key_named_by_option_reaches_a_loopback_server(fake: FakeOpenAI, tmp_path: Path) -> None:
    env = {**_no_openai_env(), "VLLM_KEY": "sk-local-key"}
    out = _cli(_project(tmp_path), "ask", "--provider", "openai", "--model", "m", "--base-url", fake.url,
               "--option", "api_key_env=VLLM_KEY", "-q", "news.yaml", "--countries", "JPN", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert set(fake.auth_headers) == {"Bearer sk-local-key"}


def test_plan_a_model_from_the_command_line(tmp_path: Path) -> None:
    out = _cli(_project(tmp_path), "plan", "--provider", "openai", "--model", "gpt-4o-mini",
               "--base-url", "http://127.0.0.1:9/v1", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout)["rows"]
    assert rows
    assert {(r["model"], r["provider"], r["provider_model"]) for r in rows} == {
        ("gpt-4o-mini", "openai", "gpt-4o-mini")}
    assert all(r["cost_usd"] is None for r in rows)  # no price: said, not guessed
