"""The study's plan kept between the paid stages' cost checks (``simulate.max_cost_usd``).

Each paid stage of a ``dvc repro`` checks the whole study's unsent cost before its
first request (:mod:`valuesim.spending`). The prompts' counts depend only on what the
plan reads: the params, the pipeline's outputs it plans from (selected countries, kept
questions, persona tables, the new-question files, Shapley's inputs), the question bank
and valuesim's own code. So they are kept in ``<simulate.cache_dir>/plan.json`` under a
digest of all of that, and a later check with the same digest counts nothing again.

What a model still has to send also depends on the response cache: it is kept per model
with a fingerprint of the cache's rows of that model (count and age range, and the key
of a probe request); a model whose rows changed (a stage just paid for its answers) is
looked up again, the others are not. A missing, damaged or foreign file is just a plan
to make again; the file is replaced atomically, so a killed check leaves the old one or
the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valuesim.prompt_counts import MethodCounts, SendCounts

if TYPE_CHECKING:
    from collections.abc import Iterable

    from valuesim.config import Params

FILE_NAME = "plan.json"
#: Bumped when the file's layout changes (the code digest covers what the counts mean).
FORMAT = 1


@dataclass
class StoredPlan:
    """What a plan counted, to be used again while the inputs are the same."""

    sources: list[tuple[str, str]] | None = None  # (stage, method) in plan order
    notes: list[str] = field(default_factory=list)  # the notes the other stages made
    methods: dict[str, MethodCounts] = field(default_factory=dict)  # by "stage/method"
    # model -> (fingerprint of its cached answers, SendCounts by "stage/method")
    models: dict[str, tuple[str, dict[str, SendCounts]]] = field(default_factory=dict)

    def send(self, model: str, fingerprint: str, key: str) -> SendCounts | None:
        kept = self.models.get(model)
        return kept[1].get(key) if kept is not None and kept[0] == fingerprint else None

    def keep_send(self, model: str, fingerprint: str, key: str, counts: SendCounts) -> None:
        kept = self.models.get(model)
        if kept is None or kept[0] != fingerprint:
            kept = self.models[model] = (fingerprint, {})
        kept[1][key] = counts

    def to_json(self) -> dict[str, Any]:
        return {
            "sources": self.sources, "notes": self.notes,
            "methods": {k: asdict(v) for k, v in self.methods.items()},
            "models": {m: [fp, {k: asdict(v) for k, v in rows.items()}]
                       for m, (fp, rows) in self.models.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredPlan:
        """The plan of :meth:`to_json`; ValueError (or KeyError, TypeError) when ``data``
        is not one: a damaged file must not reach the ceiling as numbers."""
        sources = data["sources"]
        return cls(
            sources=None if sources is None else [(_text(s), _text(m)) for s, m in sources],
            notes=[_text(n) for n in data["notes"]],
            methods={_text(k): _counts(MethodCounts, v) for k, v in data["methods"].items()},
            models={_text(m): (_text(fp), {_text(k): _counts(SendCounts, v) for k, v in rows.items()})
                    for m, (fp, rows) in data["models"].items()},
        )


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not a string: {value!r}")
    return value


def _counts(kind: type[Any], data: dict[str, Any]) -> Any:
    """``kind`` (MethodCounts or SendCounts) from its fields, each of its type."""
    names = {f.name: f.type for f in fields(kind)}
    if set(data) != set(names):
        raise ValueError(f"{kind.__name__} fields {sorted(data)}")
    for name, value in data.items():
        want = str if names[name] in ("str", str) else int
        if type(value) is not want or (want is int and value < 0):
            raise ValueError(f"{kind.__name__}.{name} = {value!r}")
    return kind(**data)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@cache
def code_digest() -> str:
    """A digest of valuesim's source and package data: prompts are rendered (and counted)
    by this code, so another version of it plans anew."""
    root = Path(str(importlib.resources.files("valuesim")))
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".pyc"):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(_sha256(path).encode())
    return digest.hexdigest()


def plan_files(params: Params) -> list[Path]:
    """The files a plan from the pipeline's outputs reads (relative to the project): the
    question bank, the selected countries, the kept questions, the methods' persona
    tables, the new-question files and, with ``analysis.shapley``, the shapley stage's
    inputs (the files the plan would read anyway: hashing them is cheap beside that)."""
    from valuesim import paths

    methods = [*params.simulate.methods, *(["value"] if params.analysis.shapley else [])]
    shapley = [paths.RESPONDENTS, paths.GENERATED_DESCRIPTORS] if params.analysis.shapley else []
    return [
        Path(params.data.questions), paths.SELECTED_COUNTRIES, paths.KEPT_QUESTIONS,
        *(paths.personas_for(m) for m in dict.fromkeys(methods)),
        *map(Path, params.data.new_questions), *shapley,
    ]


def inputs_digest(params: Params, project: Path, files: Iterable[Path] | None = None) -> str:
    """A digest of everything the plan's counts depend on: this code, the params (all but
    ``simulate.max_cost_usd``) and the content of every file the plan reads (a missing
    one too)."""
    digest = hashlib.sha256()
    digest.update(f"{FORMAT}\0{code_digest()}\0{project.resolve()}\0".encode())
    # every param but the ceiling (what the counts are compared with, not what they count:
    # raising it after it stopped a stage must not plan again)
    raw = params.model_dump(mode="json")
    raw["simulate"].pop("max_cost_usd", None)
    digest.update(json.dumps(raw, sort_keys=True).encode())
    for name in plan_files(params) if files is None else files:
        path = name if name.is_absolute() else project / name
        digest.update(f"\0{name}\0".encode())
        digest.update((_sha256(path) if path.is_file() else "absent").encode())
    return digest.hexdigest()


def load(path: Path, key: str) -> StoredPlan:
    """The plan kept at ``path`` for ``key``; an empty one when there is none, it was made
    from other inputs, or it does not read (damaged: made again, and replaced)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") == FORMAT and data.get("key") == key:
            return StoredPlan.from_json(data["plan"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass
    return StoredPlan()


def save(path: Path, key: str, stored: StoredPlan) -> None:
    """Write ``stored`` atomically (a temporary file beside it, then a rename). A plan
    that cannot be kept (read-only or full disk) is not an error: the next check plans
    again."""
    text = json.dumps({"format": FORMAT, "key": key, "plan": stored.to_json()})
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        Path(tmp).chmod(0o644)  # mkstemp's owner-only mode is wrong for a shared cache
        Path(tmp).replace(path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def cache_path(params: Params, project: Path) -> Path:
    from valuesim.llm.cache import resolve_cache_dir

    return resolve_cache_dir(params.simulate.cache_dir, cwd=project) / FILE_NAME
