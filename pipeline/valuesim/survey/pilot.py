"""Pilot files: a few real respondents' answers to new questions, for PPI++ (issue 20).

A pilot file (``.csv``, ``.csv.gz`` or ``.parquet``) has one row per respondent:

- ``country`` (or ``B_COUNTRY_ALPHA``): ISO3 code;
- a respondent id: ``respondent_id`` or ``id`` (taken as written) or ``D_INTERVIEW``
  (the WVS interview number, made ``<ISO3>-<D_INTERVIEW>`` as the WVS readers make
  it, so a pilot respondent who is also in the study's source is recognised there);
- optionally ``weight`` (or ``W_WEIGHT``): positive survey weights (default 1);
- the items the method's persona is built from: for value and fewshot personas the
  bank's ``persona`` items (Y002 and Y003 are derived indexes: give the index or its
  source items, Q154/Q155 and Q8/Q14/Q15/Q17, as the WVS files do), for
  sociodemographic personas the ``sociodemographic`` items;
- one column per new question, named by its id, with the respondent's answer code.

Codes are WVS codes: a negative code or one of the item's ``missing`` codes means no
answer and becomes null, by :func:`valuesim.survey.recode.recode`, the readers'
recoding. Column names match case-insensitively (WVS files write them in capitals).

Every problem is one :class:`~valuesim.errors.DataError` line, raised before any
model is called: an unreadable file, missing columns, unknown countries, codes off an
item's scale, repeated respondent ids, fewer than :data:`MIN_RESPONDENTS` answers for
a (country, question).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from valuesim.errors import ConfigError, DataError
from valuesim.survey.bank import Item, QuestionBank
from valuesim.survey.derived import DERIVED
from valuesim.survey.readers import MAX_WEIGHT, _separator, _suffix, _to_int, check_csv_rows
from valuesim.survey.recode import recode

COUNTRY_COLUMNS = ("country", "B_COUNTRY_ALPHA")
ID_COLUMNS = ("respondent_id", "id", "D_INTERVIEW")
WEIGHT_COLUMNS = ("weight", "W_WEIGHT")
SUFFIXES = (".csv", ".csv.gz", ".parquet")
# PPI's interval is a normal approximation; below this many answers it is not one.
MIN_RESPONDENTS = 10
_ISO3 = re.compile(r"^[A-Z]{3}$")
_ROLE = {"value": "persona", "fewshot": "persona", "sociodemographic": "sociodemographic"}


@dataclass(frozen=True)
class Pilot:
    """A validated pilot: ``frame`` has country, respondent_id, weight, then one Int64
    column per persona item of the bank (both kinds; the ones the method does not use
    may be null) and per question (null: no substantive answer)."""

    frame: pl.DataFrame
    path: str
    weighted: bool  # the file gave weights (else every respondent has weight 1)
    persona_items: tuple[str, ...]  # the items the method's personas are built from
    questions: tuple[str, ...]
    countries: tuple[str, ...]  # in the order of the file, or of ``countries`` when given

    def answered(self, country: str, question: str) -> pl.DataFrame:
        """The respondents of ``country`` with an answer to ``question``."""
        return self.frame.filter((pl.col("country") == country) & pl.col(question).is_not_null())


def persona_items_for(method: str, bank: QuestionBank) -> list[Item]:
    """The bank items the personas of ``method`` describe; a one-line error for a method
    without personas (every respondent would get the same prediction)."""
    from valuesim.methods import get_method

    kind = get_method(method).persona
    if kind is None:
        raise ConfigError(
            f"a pilot needs a persona method (value, sociodemographic, fewshot ...); {method} "
            "asks once per country, so every pilot respondent would get the same prediction"
        )
    return bank.with_role(_ROLE[kind])  # type: ignore[arg-type]


def _fail(path: Path, message: str) -> DataError:
    return DataError(f"pilot file {path}: {message}")


def _read_table(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise DataError(f"pilot file {path} not found; give a .csv or .parquet file of respondents")
    kind = _suffix(path)
    if kind not in SUFFIXES:
        raise _fail(path, f"unsupported format {path.name!r}; use {', '.join(SUFFIXES)}")
    try:
        if kind == ".parquet":
            frame = pl.read_parquet(path)
        else:
            sep = _separator(path)
            check_csv_rows(path, sep)  # a row cut short would pass as missing answers
            # strings first: codes are parsed (and refused when not integers) below
            frame = pl.read_csv(path, infer_schema_length=0, separator=sep)
    except DataError as exc:
        raise _fail(path, str(exc)) from None
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError,
            pl.exceptions.PanicException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(path, f"cannot read it as {kind}: {first}") from None
    if frame.height == 0:
        raise _fail(path, "has no rows")
    return frame


def _column(by_upper: dict[str, str], names: Sequence[str]) -> str | None:
    for name in names:
        if name.upper() in by_upper:
            return by_upper[name.upper()]
    return None


def _countries(raw: pl.DataFrame, column: str, path: Path) -> pl.Series:
    s = raw.get_column(column).cast(pl.Utf8).str.strip_chars()
    if s.is_null().any() or (s == "").any():
        raise _fail(path, f"{column} is empty in {int((s.is_null() | (s == '')).sum())} rows; "
                    "every row needs an ISO3 country code")
    bad = sorted({c for c in s.unique().to_list() if not _ISO3.match(c)})
    if bad:
        raise _fail(path, f"country {bad[0]!r} is not an ISO3 code such as JPN")
    return s.alias("country")


def _ids(raw: pl.DataFrame, column: str, country: pl.Series, path: Path) -> pl.Series:
    if column.upper() == "D_INTERVIEW":
        # as the WVS readers name respondents, so they match the study's source
        ids = country + "-" + _codes(raw, {column: column}, path).to_series().cast(pl.Utf8)
    else:
        ids = raw.get_column(column).cast(pl.Utf8).str.strip_chars()
    empty = ids.is_null() | (ids == "")
    if empty.any():
        raise _fail(path, f"respondent id ({column}) is empty in {int(empty.sum())} rows")
    counts = ids.value_counts()
    repeated = counts.filter(pl.col("count") > 1).sort("count", descending=True)
    if repeated.height:
        first, times = repeated.row(0)
        raise _fail(path, f"respondent id {first} is in {times} rows ({repeated.height} ids repeat); "
                    "give each respondent one row")
    return ids.alias("respondent_id")


def _weights(raw: pl.DataFrame, column: str | None, path: Path) -> pl.Series:
    if column is None:
        return pl.Series("weight", [1.0] * raw.height, dtype=pl.Float64)
    w = raw.get_column(column)
    w = (w.str.strip_chars() if w.dtype == pl.Utf8 else w).cast(pl.Float64, strict=False)
    bad = w.is_null() | w.is_nan() | w.is_infinite() | (w <= 0) | (w > MAX_WEIGHT)
    if bad.any():
        raise _fail(path, f"weight ({column}) is missing, non-numeric, not positive or over "
                    f"{MAX_WEIGHT:g} in {int(bad.sum())} rows; weights must be positive numbers "
                    f"of survey scale (mean about 1)")
    return w.alias("weight")


def _codes(raw: pl.DataFrame, names: dict[str, str], path: Path) -> pl.DataFrame:
    """Item columns (file name -> item id) as Int64 raw codes."""
    try:
        return pl.DataFrame([_to_int(raw, col, str(path), _data_row).alias(item)
                             for item, col in names.items()])
    except DataError as exc:
        raise _fail(path, str(exc).removeprefix(f"{path} ")) from None


def _data_row(row: int) -> str:
    return f"row {row + 1}"


def _off_scale(frame: pl.DataFrame, items: Sequence[Item], ids: pl.Series, path: Path) -> None:
    """Refuse a code that is neither an answer nor a missing code (negative codes are
    missing, as in WVS files): silently dropping it would bias the mean."""
    for item in items:
        if item.numeric:
            continue
        col = frame.get_column(item.id)
        bad = col.is_not_null() & (col >= 0) & ~col.is_in(item.codes) & ~col.is_in(list(item.missing))
        if bad.any():
            code = col.filter(bad).head(1).item()
            who = ids.filter(bad).head(1).item()
            missing = ", ".join(str(c) for c in sorted(item.missing)) or "negative codes"
            raise _fail(path, f"{item.id} has code {code} in {int(bad.sum())} rows (e.g. {who}), "
                        f"which is not on its scale {item.min}..{item.max} nor a missing code "
                        f"({missing}); fix the file")


def read_pilot(
    path: str | Path,
    bank: QuestionBank,
    items: Sequence[Item],
    method: str,
    countries_known: Collection[str] | None = None,
    *,
    countries: Sequence[str] | None = None,
) -> Pilot:
    """Read and check a pilot file (module docstring) for ``items`` asked with ``method``.

    ``countries_known``: the countries of the study's source (None: not checked here);
    ``countries``: keep only these (each must be in the file). Every (country, question)
    kept needs at least :data:`MIN_RESPONDENTS` answers.
    """
    p = Path(path)
    needed = persona_items_for(method, bank)
    raw = _read_table(p)
    by_upper = {c.upper(): c for c in raw.columns}

    country_col = _column(by_upper, COUNTRY_COLUMNS)
    if country_col is None:
        raise _fail(p, "has no country column; add `country` with ISO3 codes")
    id_col = _column(by_upper, ID_COLUMNS)
    if id_col is None:
        raise _fail(p, f"has no respondent id column; add one of {', '.join(ID_COLUMNS)}")

    # which columns give each item: its own, or a derived index's source items
    sources: dict[str, str] = {}
    derived: list[str] = []
    absent: list[str] = []
    for item in needed:
        if item.id.upper() in by_upper:
            sources[item.id] = by_upper[item.id.upper()]
        elif item.id in DERIVED and all(s.upper() in by_upper for s in DERIVED[item.id][0]):
            derived.append(item.id)
            sources.update({s: by_upper[s.upper()] for s in DERIVED[item.id][0]})
        else:
            extra = f" (or its sources {', '.join(DERIVED[item.id][0])})" if item.id in DERIVED else ""
            absent.append(item.id + extra)
    if absent:
        kind = _ROLE[_kind(method)]
        raise _fail(p, f"lacks the {kind} items the {method} personas are built from: "
                    f"{', '.join(absent)}; add their columns (WVS codes)")
    unanswered = [i.id for i in items if i.id.upper() not in by_upper]
    if unanswered:
        raise _fail(p, f"has no column for question {', '.join(unanswered)}; add the pilot's "
                    "answers to every question asked (one column per question id)")
    for item in items:
        sources.setdefault(item.id, by_upper[item.id.upper()])

    country = _countries(raw, country_col, p)
    if countries_known is not None:
        unknown = sorted(set(country.to_list()) - set(countries_known))
        if unknown:
            raise _fail(p, f"countries {', '.join(unknown)} are not in the study's source; it has "
                        f"{', '.join(sorted(countries_known))}")
    in_file = list(dict.fromkeys(country.to_list()))
    if countries is not None:
        missing = [c for c in countries if c not in in_file]
        if missing:
            raise _fail(p, f"has no respondents of {', '.join(missing)}; it has {', '.join(in_file)}")
    ids = _ids(raw, id_col, country, p)
    weight = _weights(raw, _column(by_upper, WEIGHT_COLUMNS), p)

    codes = _codes(raw, sources, p)
    item_of = {i.id: i for i in (*needed, *items)}
    # derived indexes' source items are bank items too: their codes are checked as well
    checked = {**{c: bank.by_id[c] for c in codes.columns if c in bank.by_id}, **item_of}
    _off_scale(codes, [checked[c] for c in codes.columns if c in checked], ids, p)
    frame = pl.concat([pl.DataFrame([country, ids, weight]), codes], how="horizontal")
    if derived:  # the WVS definitions, on raw codes (before missing codes become nulls)
        frame = frame.with_columns([DERIVED[d][1]() for d in derived])
    used = [item_of[i] for i in dict.fromkeys([*(n.id for n in needed), *(i.id for i in items)])]
    recoded, _ = recode(frame, used, str(p))

    # the persona table needs both kinds' columns; the other kind's stay null
    persona_cols = [i.id for i in (*bank.persona_items, *bank.sociodemographic)]
    out = recoded.select(
        "country", "respondent_id", "weight",
        *[pl.col(c).cast(pl.Int64) if c in recoded.columns else pl.lit(None, pl.Int64).alias(c)
          for c in dict.fromkeys(persona_cols) if c not in {i.id for i in items}],
        *[pl.col(i.id).cast(pl.Int64) for i in items],
    )
    kept = list(countries) if countries is not None else in_file
    out = out.filter(pl.col("country").is_in(kept))
    _enough(out, kept, items, p)
    return Pilot(
        frame=out, path=str(p), weighted=_column(by_upper, WEIGHT_COLUMNS) is not None,
        persona_items=tuple(i.id for i in needed), questions=tuple(i.id for i in items),
        countries=tuple(kept),
    )


def _kind(method: str) -> str:
    from valuesim.methods import get_method

    return get_method(method).persona or ""


def _enough(frame: pl.DataFrame, countries: Sequence[str], items: Sequence[Item], path: Path) -> None:
    short = []
    for c in countries:
        rows = frame.filter(pl.col("country") == c)
        for item in items:
            k = rows.get_column(item.id).drop_nulls().len()
            if k < MIN_RESPONDENTS:
                short.append(f"{c}/{item.id} ({k})")
    if short:
        raise _fail(path, f"fewer than {MIN_RESPONDENTS} usable answers for {', '.join(short)}; "
                    f"PPI needs at least {MIN_RESPONDENTS} answers per country and question")
