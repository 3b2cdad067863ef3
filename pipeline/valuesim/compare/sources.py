"""Where an experiment's per-cell errors and params come from.

Three kinds of source, all read the same two files (``data/eval/cells.parquet``, the
evaluate stage's per-cell errors, and ``params.yaml``):

* ``workspace``: the project as it is on disk;
* a result directory: any folder holding both files (a copy of a finished run);
* a Git revision or ``dvc exp`` name: the files as they were at that revision, read
  through DVC's API, which resolves experiment names (``dvc.scm.resolve_rev``: Git
  names first, then the ``refs/exps`` experiment refs) and reads DVC-tracked outputs
  from the local cache. Nothing is checked out, so the workspace is never touched.
"""

from __future__ import annotations

import fnmatch
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from valuesim import safe_yaml
from valuesim.errors import ConfigError, DataError
from valuesim.urls import redact_credentials_in

CELLS = "data/eval/cells.parquet"
PARAMS = "params.yaml"
# optional: the references and floors the figures draw as lines (compare.reference_lines)
METRICS = "reports/metrics.json"
KEY_COLUMNS = ("model", "method", "country", "question")
WORKSPACE = "workspace"
# exp show's row types of experiments (the baseline commit and the workspace are "baseline")
EXPERIMENT_ROWS = ("branch_commit", "branch_base")
# exp show's State: None for a finished experiment, else its executor's state
DONE_STATES = (None, "", "Success")


@dataclass(frozen=True)
class Experiment:
    """One compared experiment: its name, where it was read from, its cells and params."""

    name: str
    origin: str  # "workspace", "directory <path>" or "rev <sha>"
    cells: pl.DataFrame
    params: dict[str, Any]
    metrics: bytes | None = None  # reports/metrics.json as read, None where there is none


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def without_credentials(value: Any) -> Any:
    """A params tree with the credentials of every URL in it shown as ``***`` (as the
    report shows them, :func:`valuesim.llm.api_support.redact_url`).

    Applied where params are read, so neither experiments.csv, tests.csv nor index.html
    (labels, shared params) can show an older run's ``user:password@`` or ``api_key=``;
    URLs without a credential are kept as written, so labels stay as they were.
    """
    if isinstance(value, str):
        return redact_credentials_in(value)
    if isinstance(value, dict):
        return {key: without_credentials(v) for key, v in value.items()}
    if isinstance(value, list):
        return [without_credentials(v) for v in value]
    return value


def _parse(name: str, cells: bytes, params: bytes, metric: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    try:
        frame = pl.read_parquet(io.BytesIO(cells))
    except (pl.exceptions.PolarsError, OSError, pl.exceptions.PanicException) as exc:
        raise DataError(f"{name}: {CELLS} is not a parquet table ({_first_line(exc)}); "
                        "rerun its evaluate stage") from exc
    absent = [c for c in (*KEY_COLUMNS, metric) if c not in frame.columns]
    if absent:
        raise DataError(f"{name}: {CELLS} has no {', '.join(absent)} column(s); rerun its evaluate "
                        "stage with this version of valuesim, or choose another --metric")
    if frame.is_empty():
        raise DataError(f"{name}: {CELLS} has no rows; rerun its evaluate stage")
    try:  # the limits of params.yaml (valuesim.safe_yaml.PARAMS)
        loaded = safe_yaml.load_bytes(params, safe_yaml.PARAMS, f"{name}: {PARAMS}") or {}
    except safe_yaml.YamlError as exc:
        raise DataError(f"{exc}; fix or restore it") from exc
    if not isinstance(loaded, dict):
        raise DataError(f"{name}: {PARAMS} is not a mapping; fix or restore it")
    return frame.select(*KEY_COLUMNS, metric), without_credentials(loaded)


def read_directory(name: str, root: Path, metric: str, origin: str) -> Experiment:
    """The files of a directory (the workspace is the project root)."""
    cells, params = root / CELLS, root / PARAMS
    for path, fix in ((cells, "run the pipeline through the evaluate stage there (`dvc repro evaluate`)"),
                      (params, "copy the run's params.yaml beside its data/")):
        if not path.is_file():
            raise DataError(f"{name}: {path} not found; {fix}")
    frame, loaded = _parse(name, cells.read_bytes(), params.read_bytes(), metric)
    metrics = root / METRICS
    return Experiment(name=name, origin=origin, cells=frame, params=loaded,
                      metrics=metrics.read_bytes() if metrics.is_file() else None)


def _dvc_repo(repo: Path, wanted: Sequence[str] = ()) -> Any:
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(repo), uninitialized=False)
    except NotDvcRepoError as exc:
        # a mistyped directory lands here as an experiment name: name it
        what = f"no directory named {', '.join(map(repr, wanted))}, and " if wanted else ""
        raise ConfigError(f"{what}{repo.resolve()} is not a DVC project to find experiments in; "
                          "run compare in one (or pass --repo), or give result directories") from exc


def resolve_revs(repo: Path, names: Sequence[str]) -> dict[str, str]:
    """Each Git revision or experiment name as a full commit sha; an unknown name is
    a one-line error that says how to list the known ones."""
    from dvc.scm import NoSCM, RevError, resolve_rev

    dvc_repo = _dvc_repo(repo, names)
    try:
        if isinstance(dvc_repo.scm, NoSCM):
            raise ConfigError(f"{repo} is not a Git repository, so it has no experiments; "
                              "give result directories or `workspace`")
        shas = {}
        for name in names:
            try:
                shas[name] = resolve_rev(dvc_repo.scm, name)
            except RevError as exc:
                raise ConfigError(
                    f"no experiment, Git revision or directory named {name!r} ({_first_line(exc)}); "
                    "list experiments with `dvc exp show`"
                ) from exc
        return shas
    finally:
        dvc_repo.close()


def read_revision(name: str, repo: Path, sha: str, metric: str) -> Experiment:
    """The files at a commit (an experiment's), DVC outputs from the local cache."""
    from dvc.exceptions import DvcException
    from dvc.fs.dvc import DVCFileSystem
    from dvc.repo import Repo

    found: dict[str, bytes] = {}
    with Repo.open(str(repo), rev=sha, subrepos=True, uninitialized=True) as dvc_repo:
        fs = DVCFileSystem(repo=dvc_repo, subrepos=True)
        for path in (CELLS, PARAMS):
            try:
                with fs.open(path, mode="rb") as handle:
                    found[path] = handle.read()
            except (FileNotFoundError, DvcException) as exc:
                raise DataError(
                    f"{name} (rev {sha[:7]}) has no readable {path} ({_first_line(exc)}); run the "
                    f"evaluate stage in that experiment, or fetch its outputs (`dvc exp pull`, `dvc pull`)"
                ) from exc
        try:
            with fs.open(METRICS, mode="rb") as handle:
                found[METRICS] = handle.read()
        except (FileNotFoundError, DvcException):
            pass  # an experiment without metrics: its figure has no reference lines
    frame, loaded = _parse(name, found[CELLS], found[PARAMS], metric)
    return Experiment(name=name, origin=f"rev {sha[:7]}", cells=frame, params=loaded,
                      metrics=found.get(METRICS))


def list_experiments(repo: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """``dvc exp show``'s experiments of the current baseline, as (name, rev), and
    the ones left out because they are queued, running or failed (as "name (State)")."""
    import dvc.api

    _dvc_repo(repo).close()  # the one-line error for a folder that is not a DVC project
    rows = dvc.api.exp_show(repo=str(repo))
    done, skipped = [], []
    for row in rows:
        if row.get("typ") not in EXPERIMENT_ROWS:
            continue
        name = str(row.get("Experiment") or row["rev"])
        if row.get("State") in DONE_STATES:
            done.append((name, str(row["rev"])))
        else:
            skipped.append(f"{name} ({row['State']})")
    return done, skipped


def _is_pattern(source: str) -> bool:
    return any(ch in source for ch in "*?[")


def load(
    sources: Sequence[str], *, all_experiments: bool, repo: Path, metric: str,
) -> tuple[list[Experiment], list[str]]:
    """Read every source: ``workspace``, an existing directory, a glob pattern over the
    names of ``dvc exp show``'s finished experiments (``'guidance-*'``), or else a
    revision or experiment name; ``all_experiments`` is the pattern ``*``. Returns the
    experiments (each once, in the order given) and notes on what was left out."""
    notes: list[str] = []
    patterns = [s for s in sources if _is_pattern(s) and not Path(s).is_dir()]
    wanted: dict[str, tuple[str, str]] = {}  # name -> (kind, where)
    listed: list[tuple[str, str]] = []
    if patterns or all_experiments:
        listed, skipped = list_experiments(repo)
        notes += [f"left out {s}: not a finished experiment" for s in skipped]
    for source in sources:
        if source == WORKSPACE:
            wanted.setdefault(WORKSPACE, ("workspace", str(repo)))
        elif Path(source).is_dir():
            wanted.setdefault(source, ("directory", source))
        elif source in patterns:
            matched = [(n, r) for n, r in listed if fnmatch.fnmatchcase(n, source)]
            if not matched:
                raise ConfigError(f"no finished experiment matches {source!r}; list them with `dvc exp show`")
            for name, rev in matched:
                wanted.setdefault(name, ("rev", rev))
        else:
            wanted.setdefault(source, ("rev", source))
    if all_experiments:
        for name, rev in listed:
            wanted.setdefault(name, ("rev", rev))
    if len(wanted) < 2:
        given = f" ({', '.join(wanted)})" if wanted else ""
        raise ConfigError(
            f"compare needs at least two experiments, got {len(wanted)}{given}; name more, or run a "
            "sweep first (`dvc exp run -S prompts.guidance=minimal`) and use --all"
        )
    revs = [where for kind, where in wanted.values() if kind == "rev"]
    shas = resolve_revs(repo, revs) if revs else {}
    experiments = []
    for name, (kind, where) in wanted.items():
        if kind == "rev":
            experiments.append(read_revision(name, repo, shas[where], metric))
        else:
            origin = "workspace" if kind == "workspace" else f"directory {where}"
            experiments.append(read_directory(name, Path(where), metric, origin))
    return experiments, notes
