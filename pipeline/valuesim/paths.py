"""Where each stage writes. dvc.yaml declares the same paths; keep them in step."""

from __future__ import annotations

from pathlib import Path

from valuesim.names import check_name

INTERIM = Path("data/interim")
RESPONDENTS = INTERIM / "respondents.parquet"  # country, respondent_id, weight, <items...>
MISSING_COUNTS = INTERIM / "missing_counts.parquet"  # country, item, reason, n
EXTRACT_META = INTERIM / "extract_meta.json"  # source, synthetic flag, counts

VALIDATION_DIR = Path("reports/validation")

HUMAN = Path("data/human")
HUMAN_DISTRIBUTIONS = HUMAN / "distributions.parquet"  # country, question, code, share
HUMAN_SUMMARY = HUMAN / "summary.parquet"  # country, question, mean, n, n_eff, missing_share
KEPT_QUESTIONS = HUMAN / "kept_questions.json"  # {"kept": [...], "dropped": [...]}

MAP = Path("data/map")
MAP_TRANSFORM = MAP / "transform.json"
MAP_POSITIONS = MAP / "positions.csv"  # country, secular, self_expression, se_*, n
SELECTED_COUNTRIES = MAP / "selected_countries.json"  # {"countries": [...], "how": ...}

GENERATED_DESCRIPTORS = Path("data/descriptors/generated/value.yaml")

PERSONAS = Path("data/personas/personas.parquet")  # every kind x nationality flag
# One file per prompting method (base methods: just the countries), so that DVC reruns
# only the simulate entries whose personas changed (e.g. value* after a descriptor change).
PERSONAS_BY_METHOD = Path("data/personas/methods")

SIMULATED = Path("data/simulated")  # <model>/<method>/{answers,population}.parquet, summary.json
# The new_questions stage: questions.json (the items asked) and, per <model>/<method>,
# {answers,population}.parquet and summary.json; never evaluated (no human answers)
NEW_QUESTIONS = Path("data/new_questions")
CALIBRATED = Path("data/calibrated")
EVAL = Path("data/eval")
# Per-item Shapley values (analysis.shapley): shapley.parquet, values.parquet, summary.json,
# or only disabled.json. Not under data/eval: DVC outputs of two stages must not nest.
SHAPLEY = Path("data/shapley")

REPORTS = Path("reports")
METRICS = REPORTS / "metrics.json"
FIGURES = REPORTS / "figures"
PLOTS = REPORTS / "plots"
REPORT_HTML = REPORTS / "index.html"


def personas_for(method: str) -> Path:
    return PERSONAS_BY_METHOD / f"{check_name(method, 'method')}.parquet"


def simulated_dir(model: str, method: str) -> Path:
    # params are checked when read (valuesim.config); this keeps any other caller in too
    return SIMULATED / check_name(model, "model") / check_name(method, "method")
