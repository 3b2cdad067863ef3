"""The end of a study run in a few lines: where the report is and what it found first.

``valuesim summary`` (the last step of ``make run``) prints these. Each model's
headline is the report's own verdict's first sentence (:func:`valuesim.report.verdict.model_verdict`
on :func:`valuesim.report.scoreboard.scoreboard`'s frame), and the line after it is the
best method against the best reference by the paired test, as the scoreboard has it:
nothing here decides anything the report does not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from valuesim import artifacts, paths
from valuesim.errors import ValuesimError

#: the scoreboard's verdicts against the best reference, in a headline's words
_VERDICT_WORDS = {"better": "better", "worse": "worse", "no difference": "no different"}


def _temperatures(project: Path) -> dict[str, Any]:
    path = project / paths.CALIBRATED / "temperatures.json"
    try:
        return dict(json.loads(path.read_text()).get("temperatures") or {})
    except (OSError, ValueError, AttributeError):
        return {}  # only the verdict's calibration sentence needs them, never the headline


def _model_names(project: Path) -> dict[str, str]:
    from valuesim.config import load_params
    from valuesim.report.captions import model_names

    try:
        return model_names(load_params(project / "params.yaml"))
    except ValuesimError:
        return {}  # the params' own names are still the scoreboard's


def _synthetic(project: Path) -> bool:
    try:
        return bool(json.loads((project / paths.EXTRACT_META).read_text()).get("synthetic"))
    except (OSError, ValueError, AttributeError):
        return False


def headline_lines(project: str | Path = ".") -> list[str]:
    """``report: reports/index.html``, then per model its verdict's first sentence and
    its best method against the best reference (DataError naming the missing file and
    the stage that writes it when the study has not been evaluated)."""
    from valuesim.report.scoreboard import REFERENCE_LABELS
    from valuesim.report.verdict import SYNTHETIC_BANNER, model_verdict
    from valuesim.study import load_study

    root = Path(project)
    study = load_study(root)
    board = study.scoreboard()
    paired_path = study.path(paths.EVAL / "paired_tests.parquet")
    paired = artifacts.read_parquet(paired_path, "evaluate") if paired_path.exists() else None
    report = root / paths.REPORT_HTML  # "reports/index.html" from the project directory
    where = str(report) if report.exists() else f"{report} (not written yet: run `dvc repro report`)"
    lines = [f"report: {where}"]
    names = _model_names(root)
    temps = _temperatures(root)
    methods = board.filter(board["kind"] == "method")
    for model in methods["model"].unique(maintain_order=True).to_list():
        name = names.get(model, model)
        lines.append(f"{name}: {model_verdict(model, name, board, paired, temps)[0]}")
        best = methods.filter(methods["model"] == model).row(0, named=True)
        ref = best["best_reference"]
        if ref is None or best["vs_best_reference"] is None:
            continue
        ref_mae = board.filter((board["model"] == model) & (board["method"] == ref) & (board["kind"] == "reference"))
        ref_name = REFERENCE_LABELS.get(str(ref), str(ref)).removeprefix("reference: ")
        ref_err = f" (error {ref_mae['mae'][0]:.3f})" if ref_mae.height else ""
        lines.append(
            f"  vs the best reference, {ref_name}{ref_err}: "
            f"{_VERDICT_WORDS.get(best['vs_best_reference_verdict'], best['vs_best_reference_verdict'])}, "
            f"{best['vs_best_reference']:+.3f} (95% CI {best['vs_best_reference_lo']:+.3f} to "
            f"{best['vs_best_reference_hi']:+.3f}), p_BH {best['vs_best_reference_p_bh']:.2g}"
        )
    if _synthetic(root):
        lines.append(f"note: {SYNTHETIC_BANNER}")
    return lines
