"""Every stage reads only the files and params its dvc.yaml entry declares.

The cheap stages run in order in a tmp copy of the project (on the demo population).
While each runs, an audit hook records every file opened for reading (plus the paths
handed to polars' readers, which open files in Rust, out of the audit hook's sight),
and a spy subclass of Params records every section and key the stage touches. A read
of a project file outside the entry's deps/outs, or a param outside its ``params``,
fails the test. Stages whose module doesn't exist yet are skipped, saying so.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from pydantic import BaseModel

from valuesim.config import Params, load_params

ROOT = Path(__file__).resolve().parents[2]
# Stages cheap enough to run in the unit suite, in dependency order.
# shapley is cheap with analysis.shapley off (the default): it writes a marker only
# new_questions too: with data.new_questions empty (params.yaml) it loads no model
CHEAP = ("extract", "validate", "map", "human", "descriptors", "personas", "new_questions", "shapley")
COPY = ("data/questions", "data/demo", "data/descriptors", "validation", "params.yaml", "dvc.yaml")
POLARS_READERS = (
    "read_parquet",
    "scan_parquet",
    "read_csv",
    "scan_csv",
    "read_json",
    "read_ndjson",
    "read_parquet_schema",
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND


@dataclass
class Record:
    reads: set[Path] = field(default_factory=set)
    params: set[str] = field(default_factory=set)


_active: Record | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _active is None or event != "open" or not args:
        return
    path, mode, flags = [*list(args), None, None][:3]
    if not isinstance(path, (str, os.PathLike)):
        return  # a file descriptor
    if isinstance(mode, str) and any(m in mode for m in "wax+"):
        return
    if isinstance(flags, int) and flags & _WRITE_FLAGS:
        return
    _active.reads.add(Path(os.fsdecode(path)).resolve())


_hooked = False


def _install_hook() -> None:
    global _hooked
    if not _hooked:  # audit hooks can't be removed; this one is inert unless _active is set
        sys.addaudithook(_audit)
        _hooked = True


def _spy_model(model: BaseModel, prefix: str, record: Record) -> BaseModel:
    """A copy of ``model`` whose class records each field read as ``prefix.field``
    (and ``prefix`` for whole-model use such as model_dump)."""
    cls = type(model)
    fields = set(cls.model_fields)
    whole = {"model_dump", "model_dump_json", "model_copy", "__iter__"}

    def getattribute(self: Any, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name in fields:
            key = f"{prefix}.{name}" if prefix else name
            if isinstance(value, BaseModel):  # a section: record the keys read from it
                return _spy_model(value, key, record)
            record.params.add(key)
        elif name in whole and prefix:
            record.params.add(prefix)
        return value

    spy_cls = type(f"Spy{cls.__name__}", (cls,), {"__getattribute__": getattribute})
    return spy_cls.model_construct(**{k: getattr(model, k) for k in fields})


# Params that can only stop a stage before it sends anything (valuesim.spending), never
# change what it writes: declared, a changed ceiling would rerun every paid stage.
STOP_ONLY = ("simulate.max_cost_usd",)


def _covered(key: str, declared: set[str]) -> bool:
    """``data.questions`` is covered by ``data`` or ``data.questions``."""
    if "*" in declared or key in STOP_ONLY:
        return True
    parts = key.split(".")
    return any(".".join(parts[:i]) in declared for i in range(1, len(parts) + 1))


def _interpolate(value: str, params: dict[str, Any]) -> str:
    def lookup(m: re.Match[str]) -> str:
        node: Any = params
        for part in m.group(1).split("."):
            node = node[part]
        return str(node)

    return re.sub(r"\$\{([^}]+)\}", lookup, value)


def _declared_params(entry: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for p in entry.get("params", []) or []:
        if isinstance(p, str):
            out.add(p)
        elif isinstance(p, dict):
            for file, keys in p.items():
                if file == "params.yaml" and not keys:
                    out.add("*")  # the whole params file
                else:
                    out.update(keys or [])
    return out


def _paths(items: list[Any], params: dict[str, Any], root: Path) -> list[Path]:
    out = []
    for d in items or []:
        name = d if isinstance(d, str) else next(iter(d))
        out.append((root / _interpolate(name, params)).resolve())
    return out


def _stage_exists(name: str) -> bool:
    return importlib.util.find_spec(f"valuesim.stages.{name}") is not None


@dataclass
class Outcome:
    record: Record | None = None
    error: str | None = None
    skipped: str | None = None


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Outcome]]]:
    root = tmp_path_factory.mktemp("dvc_project")
    for rel in COPY:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, root / rel)
        elif src.exists():
            shutil.copy2(src, root / rel)
    _install_hook()
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    old = Path.cwd()
    os.chdir(root)
    mp = pytest.MonkeyPatch()
    for fn in POLARS_READERS:
        original: Callable[..., Any] = getattr(pl, fn)

        def wrapped(source: Any, *a: Any, __orig: Callable[..., Any] = original, **k: Any) -> Any:
            if _active is not None and isinstance(source, (str, os.PathLike)):
                _active.reads.add(Path(source).resolve())
            return __orig(source, *a, **k)

        mp.setattr(pl, fn, wrapped)
    results: dict[str, Outcome] = {}
    global _active
    try:
        params = load_params("params.yaml")
        values = params.model_dump()
        for name in CHEAP:
            if not _stage_exists(name):
                results[name] = Outcome(skipped=f"valuesim.stages.{name} does not exist yet")
                continue
            deps = set(_paths(dvc[name].get("deps", []), values, root))
            broken = [
                n
                for n, o in results.items()
                if (o.error or o.skipped)
                and deps & set(_paths(dvc[n].get("outs", []), values, root))
            ]
            if broken:
                results[name] = Outcome(
                    skipped=f"needs the outputs of {', '.join(broken)}, which did not run"
                )
                continue
            record = Record()
            spy = _spy_model(params, "", record)
            module = importlib.import_module(f"valuesim.stages.{name}")
            _active = record
            try:
                module.run(spy)
                results[name] = Outcome(record=record)
            except Exception as exc:
                results[name] = Outcome(record=record, error=f"{type(exc).__name__}: {exc}")
            finally:
                _active = None
        yield root.resolve(), results
    finally:
        _active = None
        mp.undo()
        os.chdir(old)


def _stage_names() -> list[str]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return list(stages)


@pytest.mark.parametrize("stage", _stage_names())
def test_stage_reads_only_what_it_declares(
    stage: str, outcomes: tuple[Path, dict[str, Outcome]]
) -> None:
    if stage not in CHEAP:
        pytest.skip(f"{stage} needs a model run; not run in the unit suite")
    proj, results = outcomes
    outcome = results[stage]
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    assert outcome.error is None, f"stage {stage} failed in the tmp project: {outcome.error}"
    assert outcome.record is not None
    _check_declared(stage, outcome.record, proj, load_params(proj / "params.yaml").model_dump())


def _check_declared(stage: str, record: Record, proj: Path, values: dict[str, Any]) -> None:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    allowed = _paths(dvc.get("deps", []), values, proj) + _paths(dvc.get("outs", []), values, proj)
    undeclared_files = sorted(
        str(p.relative_to(proj))
        for p in record.reads
        # paths that don't exist are import-machinery probes (path hooks), not data reads
        if p.is_relative_to(proj)
        and p.exists()
        and not any(p == a or p.is_relative_to(a) for a in allowed)
    )
    assert not undeclared_files, f"{stage} reads files not in its dvc.yaml deps: {undeclared_files}"
    declared = _declared_params(dvc)
    undeclared_params = sorted(k for k in record.params if not _covered(k, declared))
    assert not undeclared_params, (
        f"{stage} reads params not declared in dvc.yaml: {undeclared_params}"
    )


def test_new_questions_with_a_question_file_reads_only_what_it_declares(
    outcomes: tuple[Path, dict[str, Outcome]], testplugin_site: Path,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """The stage with the shipped example file and the test provider: every file it
    reads (the question file under the declared data/questions) and param is declared."""
    from valuesim import plugins

    proj, results = outcomes
    if any(results[s].error or results[s].skipped for s in ("map", "personas")):
        pytest.skip("needs the map and personas outputs, which did not run")
    monkeypatch.syspath_prepend(str(testplugin_site))
    for var in ("VALUESIM_PLUGINS", "VALUESIM_BLOCK_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    plugins.plugin_manager.cache_clear()
    raw = yaml.safe_load((proj / "params.yaml").read_text())
    raw["data"]["new_questions"] = ["data/questions/new_items_example.yaml"]
    raw["models"]["fake"] = {"provider": "testprovider", "model": "hash-1"}
    # the response cache is outside DVC by design: keep it out of the audited project
    raw["simulate"].update(models=["fake"], cache_dir=str(tmp_path / "cache"))
    params = Params.model_validate(raw)
    record = Record()
    global _active
    _active = record
    try:
        importlib.import_module("valuesim.stages.new_questions").run(_spy_model(params, "", record))
    finally:
        _active = None
        plugins.plugin_manager.cache_clear()
    assert (proj / "data/questions/new_items_example.yaml").resolve() in record.reads
    assert "data.new_questions" in record.params
    population = pl.read_parquet(proj / "data/new_questions/fake/value/population.parquet")
    assert set(population["question"]) == {"AI_TRUST", "CLIMATE_TAX"}
    _check_declared("new_questions", record, proj, params.model_dump())

    # the stage scores as `valuesim.ask` does: the same personas (n_per_country of the
    # study's extract), the same numbers, and every answer from the cache the stage filled
    from valuesim.asking import run_ask

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    countries = sorted(set(population["country"]))
    asked = run_ask("data/questions/new_items_example.yaml", countries, method="value", model="fake",
                    n=params.personas.n_per_country, params_path=tmp_path / "params.yaml",
                    project_dir=proj, progress=False)
    assert asked.summary.sent == 0
    assert asked.summary.cache_hits == asked.summary.requests > 0
    order = ["country", "question"]
    # ask adds the answers' labels (valuesim.asking.LABEL_SCHEMA) to the stage's columns
    assert asked.frame.select(population.columns).sort(order).equals(population.sort(order))


def test_new_questions_stage_asks_each_question_type_and_the_report_shows_it(
    outcomes: tuple[Path, dict[str, Outcome]], testplugin_site: Path,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """The shipped example of the question types through the real stage (test provider)
    and the report's section: questions.json carries the types (the multi item once,
    its options asked as Yes/No items), nominal, binary and multi rows have shares but
    no expected answer or interval, a rotated item has its first-listed share, the
    section labels them, and the numbers are those `valuesim ask` gives."""
    from valuesim import plugins
    from valuesim.asking import run_ask
    from valuesim.report.intervals_section import new_question_figures
    from valuesim.report.new_questions import new_questions_section

    proj, results = outcomes
    if any(results[s].error or results[s].skipped for s in ("map", "personas")):
        pytest.skip("needs the map and personas outputs, which did not run")
    monkeypatch.syspath_prepend(str(testplugin_site))
    for var in ("VALUESIM_PLUGINS", "VALUESIM_BLOCK_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    plugins.plugin_manager.cache_clear()
    raw = yaml.safe_load((proj / "params.yaml").read_text())
    rotated = proj / "data/questions/rotated_news.yaml"
    rotated.write_text(yaml.safe_dump({"items": [{
        "id": "NEWS_ROTATED", "text": "Where do you get most of your news?", "type": "nominal",
        "order": "rotate", "answers": [{"code": c, "label": label} for c, label in
                                       enumerate(("Television", "Newspapers", "Radio"), start=1)]}]}))
    files = ["data/questions/question_types_example.yaml", "data/questions/rotated_news.yaml"]
    raw["data"]["new_questions"] = files
    raw["models"]["fake"] = {"provider": "testprovider", "model": "hash-1"}
    raw["simulate"].update(models=["fake"], cache_dir=str(tmp_path / "cache"))
    params = Params.model_validate(raw)
    monkeypatch.chdir(proj)
    try:
        importlib.import_module("valuesim.stages.new_questions").run(params)
    finally:
        plugins.plugin_manager.cache_clear()
    out = proj / "data/new_questions"
    questions = json.loads((out / "questions.json").read_text())["questions"]
    # ordinal: as before (no type key); the multi item is one record
    assert [q.get("type") for q in questions] == ["nominal", "binary", "multi", None, "nominal"]
    assert questions[2]["asked_as"] == [f"MEDIA_USED.{k}" for k in (1, 2, 3, 4)]
    population = pl.read_parquet(out / "fake/value/population.parquet")
    assert population["question"].unique(maintain_order=True).to_list() == [
        "NEWS_SOURCE", "VOTED_LAST", *questions[2]["asked_as"], "AI_TRUST", "NEWS_ROTATED"]
    unordered = population.filter(pl.col("question") != "AI_TRUST")
    assert unordered.height == population.height * 7 // 8 > 0
    # the share personas gave the option listed first: only where the listing rotates
    first = population.filter(pl.col("question") == "NEWS_ROTATED")["first_listed_share"]
    assert first.is_not_null().all()
    assert all(0 < v < 1 for v in first)
    assert population.filter(pl.col("question") != "NEWS_ROTATED")["first_listed_share"].is_null().all()
    assert unordered["expected"].is_null().all()
    assert unordered["pred_low"].is_null().all()
    assert all(abs(sum(p) - 1) < 1e-9 for p in unordered["probs"])
    assert population.filter(pl.col("question") == "AI_TRUST")["expected"].is_not_null().all()

    figures = tmp_path / "figures"
    figures.mkdir()
    _, body = new_questions_section(out, {}, params, figures)  # type: ignore[misc]
    assert ">1=Television</th>" in body
    assert ">1=Yes</th>" in body
    assert "Nominal and binary items (NEWS_SOURCE, nominal; VOTED_LAST, binary; NEWS_ROTATED, nominal)" in body
    assert "Multi items (select all that apply: MEDIA_USED)" in body
    assert body.count("<h3>MEDIA_USED") == 1
    assert ">listed first</th>" in body[body.index("<h3>NEWS_ROTATED"):]
    assert "1/n for n options means no order effect" in body
    trust = "\n".join(new_question_figures(out, figures, proj))
    assert ("NEWS_SOURCE (nominal), VOTED_LAST (binary), MEDIA_USED (multi), NEWS_ROTATED "
            "(nominal): unordered options") in trust
    assert sorted(p.name for p in figures.glob("intervals_new_*")) == ["intervals_new_AI_TRUST.png"]

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    countries = sorted(set(population["country"]))
    asked = run_ask(files, countries, method="value",
                    model="fake", n=params.personas.n_per_country,
                    params_path=tmp_path / "params.yaml", project_dir=proj, progress=False)
    assert asked.summary.sent == 0
    order = ["country", "question"]
    assert asked.frame.select(population.columns).sort(order).equals(population.sort(order))
    assert set(asked.frame["type"]) == {"nominal", "binary", "multi", "ordinal"}


def test_spy_records_keys() -> None:
    """The spy itself: a typo'd declaration would be caught."""
    record = Record()
    spy = _spy_model(Params(), "", record)
    assert isinstance(spy, Params)
    _ = spy.data.questions, spy.filter.max_missing, spy.models
    assert record.params == {"data.questions", "filter.max_missing", "models"}
    _ = spy.map.model_dump()
    assert "map" in record.params
    assert _covered("data.questions", {"data"})
    assert _covered("data.questions", {"data.questions"})
    assert not _covered("data.source", {"data.questions"})
    assert not _covered("filter.max_missing", {"map"})
