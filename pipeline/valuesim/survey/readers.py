"""WVS-7 readers: any official distribution format -> the tidy respondents table.

Formats (by path): a directory of per-country ``.csv``/``.csv.gz`` files, the single
cross-national ``.csv`` (also gzipped), SPSS ``.sav``, Stata ``.dta`` and ``.parquet``.
Only the columns the question bank needs are read, so all 56 countries load in
about a second.

Output (the extract contract, see ``valuesim.paths.RESPONDENTS``): ``country``
(ISO3 from ``B_COUNTRY_ALPHA``), ``respondent_id`` (unique), ``weight`` (``W_WEIGHT``,
or 1.0 with a logged warning when the file has none), then one Int64 column per bank
item with the substantive code, null when missing. Missing answers are counted by
reason in ``missing_counts`` (country, item, reason, n).

Respondent identity is the file's own ``D_INTERVIEW`` (row numbers only where a country
has no usable ids). A respondent present twice, the same data in two files, and a CSV
cut off mid-row are errors: counting them would silently inflate n.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl

from valuesim.errors import DataError
from valuesim.survey.bank import QuestionBank
from valuesim.survey.derived import DERIVED
from valuesim.survey.recode import recode

log = logging.getLogger(__name__)

COUNTRY = "B_COUNTRY_ALPHA"
INTERVIEW = "D_INTERVIEW"
WEIGHT = "W_WEIGHT"
CITATION = (
    "Haerpfer, C., Inglehart, R., Moreno, A., Welzel, C., Kizilova, K., Diez-Medrano, J., "
    "Lagos, M., Norris, P., Ponarin, E. & Puranen, B. (eds.). 2022. World Values Survey: "
    "Round Seven - Country-Pooled Datafile Version 5.0. Madrid, Spain & Vienna, Austria: "
    "JD Systems Institute & WVSA Secretariat. doi:10.14281/18241.20"
)
SUFFIXES = (".csv", ".csv.gz", ".sav", ".dta", ".parquet")
# WVS-7 v5 design weights lie in 0.10-19.9 (mean 1 per country); 1,000 is 50 times the
# largest, and keeps sums of weights and codes far from overflow.
MAX_WEIGHT = 1000.0
# A raw code (answer, interview id) must be an exact integer in a float: 2^53. WVS-7's
# largest is a 9-digit D_INTERVIEW; 1e23 is no code but damage.
MAX_RAW_CODE = 2**53
# where a data row is, for messages: "line 7" in a CSV, "row 6" in other formats
Locate = Callable[[int], str]


@dataclass(frozen=True)
class ExtractResult:
    respondents: pl.DataFrame  # country, respondent_id, weight, <bank items> (Int64)
    missing_counts: pl.DataFrame  # country, item, reason, n
    source: str
    synthetic: bool = False

    @property
    def country_counts(self) -> dict[str, int]:
        counts = self.respondents.group_by("country").len().sort("country")
        return dict(zip(counts["country"].to_list(), counts["len"].to_list(), strict=True))


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".csv.gz" if name.endswith(".csv.gz") else path.suffix.lower()


def source_files(path: str | Path) -> list[Path]:
    """The data files behind ``path`` (a file, or a directory of per-country files)."""
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"WVS source {p} not found; download WVS-7 (README, 'The WVS-7 data') and set "
            f"data.source to its path"
        )
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and _suffix(f) in SUFFIXES)
        if not files:
            raise DataError(f"no WVS files ({', '.join(SUFFIXES)}) in directory {p}")
        return files
    if _suffix(p) not in SUFFIXES:
        raise DataError(
            f"unsupported WVS file format {p.name!r}; use one of {', '.join(SUFFIXES)} "
            f"or a directory of per-country CSV files"
        )
    return [p]


def _header(path: Path) -> list[str]:
    """Column names without reading the data."""
    kind = _suffix(path)
    try:
        if kind in (".csv", ".csv.gz"):
            return pl.read_csv(path, n_rows=0, separator=_separator(path)).columns
        if kind == ".parquet":
            return list(pl.read_parquet_schema(path))
        import pyreadstat  # lazy: only for the SPSS/Stata formats

        reader = pyreadstat.read_sav if kind == ".sav" else pyreadstat.read_dta
        _, meta = reader(str(path), metadataonly=True)
        return list(meta.column_names)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read {path} as {kind}: {str(exc).splitlines()[0]}") from exc


def _separator(path: Path) -> str:
    """WVS CSV exports exist with ',' and ';' separators; sniff the header line."""
    opener = gzip.open if _suffix(path) == ".csv.gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    counts = {sep: first.count(sep) for sep in (",", ";", "\t")}
    return max(counts, key=counts.__getitem__)


def _read_columns(path: Path, columns: list[str]) -> pl.DataFrame:
    """Read ``columns`` (names as in the file) from one file, all as strings or numbers."""
    kind = _suffix(path)
    try:
        if kind in (".csv", ".csv.gz"):
            # strings first: WVS CSVs mix "1" and "1.0"; numbers are parsed below
            return pl.read_csv(
                path, columns=columns, infer_schema_length=0, separator=_separator(path)
            )
        if kind == ".parquet":
            return pl.read_parquet(path, columns=columns)
        import pyreadstat

        reader = pyreadstat.read_sav if kind == ".sav" else pyreadstat.read_dta
        # user_missing=True keeps SPSS's declared missing codes (-1..-5) instead of NaN,
        # so that missing answers can still be counted by reason
        frame, _ = reader(str(path), usecols=columns, user_missing=True, apply_value_formats=False)
        return pl.from_pandas(frame)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read {path} as {kind}: {str(exc).splitlines()[0]}") from exc


def _to_int(frame: pl.DataFrame, column: str, where: str, locate: Locate) -> pl.Series:
    """Raw code column -> Int64, refusing text, fractional, non-finite and huge codes."""
    s = frame.get_column(column)
    if s.dtype == pl.Utf8:
        s = s.str.strip_chars().replace("", None)
    f = s.cast(pl.Float64, strict=False)
    bad = (f.is_null() & s.is_not_null()) | f.is_nan() | f.is_infinite()
    if bad.any():
        row = _first(bad)
        raise DataError(
            f"{where} {locate(row)}: column {column} has a non-numeric value {s[row]!r}; "
            f"fix the file"
        )
    huge = f.abs() > MAX_RAW_CODE
    if huge.any():
        row = _first(huge)
        raise DataError(
            f"{where} {locate(row)}: column {column} has code {f[row]:g}, beyond any survey "
            f"code (2^53 or more in size); fix the file"
        )
    fractional = f.is_not_null() & (f != f.round(0))
    if fractional.any():
        row = _first(fractional)
        raise DataError(f"{where} {locate(row)}: column {column} has a non-integer code {f[row]}")
    return pl.Series(column, f, dtype=pl.Float64).cast(pl.Int64)


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n:,} rows"


def _first(mask: pl.Series) -> int:
    return int(mask.fill_null(False).arg_true()[0])


def _weights(raw: pl.DataFrame, where: str, locate: Locate) -> pl.Series:
    """``W_WEIGHT`` as floats in (0, MAX_WEIGHT]: one absurd weight would decide a
    country's means (1e308 makes them inf) without any other sign of trouble."""
    w = raw.get_column(WEIGHT)
    text = w.cast(pl.Utf8).str.strip_chars() if w.dtype == pl.Utf8 else w.cast(pl.Utf8)
    w = (w.str.strip_chars() if w.dtype == pl.Utf8 else w).cast(pl.Float64, strict=False)
    bad = w.is_null() | w.is_nan() | w.is_infinite() | (w <= 0) | (w > MAX_WEIGHT)
    if bad.any():
        row = _first(bad)
        value = "empty" if text[row] in (None, "") else repr(text[row])
        raise DataError(
            f"{where} {locate(row)}: {WEIGHT} is {value} ({_rows(int(bad.sum()))} outside "
            f"(0, {MAX_WEIGHT:g}]); WVS design weights are positive and about 0.1-20, mean 1 "
            f"per country: fix the rows or rescale the weights"
        )
    return w


def _row_number(row: int) -> str:
    return f"row {row + 1}"


def _line_number(layout: CsvLayout) -> Locate:
    return lambda row: f"line {layout.line(row)}"


def _read_file(path: Path, bank: QuestionBank) -> pl.DataFrame:
    """One file -> country, D_INTERVIEW (Utf8 or null), weight, raw Int64 codes."""
    locate: Locate = _row_number
    if _suffix(path) in (".csv", ".csv.gz"):
        # first: polars would read short rows as missing answers
        locate = _line_number(check_csv_rows(path, _separator(path)))
    header = _header(path)
    # official CSV/SAV use upper-case names; some Stata exports are lower-case
    by_upper = {c.upper(): c for c in header if c}
    item_ids = [i.id for i in bank.items]
    wanted = [COUNTRY, *item_ids]
    for derived, (sources, _) in DERIVED.items():
        if derived in item_ids and derived.upper() not in by_upper:
            wanted.extend(s for s in sources if s not in wanted)
    absent = [c for c in wanted if c.upper() not in by_upper and c not in DERIVED]
    if absent:
        raise DataError(f"{path} lacks required columns {', '.join(absent)}; is it a WVS-7 file?")
    present = [c for c in wanted if c.upper() in by_upper]
    optional = [c for c in (INTERVIEW, WEIGHT) if c in by_upper]
    raw = _read_columns(path, [by_upper[c.upper()] for c in (*present, *optional)])
    raw = raw.rename({by_upper[c.upper()]: c for c in (*present, *optional)})

    where = str(path)
    if raw.height == 0:
        raise DataError(f"{where} has no respondents, only a header; copy or download it again")
    country = raw.get_column(COUNTRY).cast(pl.Utf8).str.strip_chars()
    if country.is_null().any() or (country == "").any():
        raise DataError(f"{where}: {COUNTRY} is empty for some rows; every row needs a country")
    columns: list[pl.Series] = [country.alias("country")]
    if INTERVIEW in raw.columns:
        iv = raw.get_column(INTERVIEW)
        iv = (
            _to_int(raw, INTERVIEW, where, locate).cast(pl.Utf8)
            if iv.dtype != pl.Utf8
            else iv.str.strip_chars()
        )
        columns.append(iv.alias(INTERVIEW))
    else:
        columns.append(pl.Series(INTERVIEW, [None] * raw.height, dtype=pl.Utf8))
    if WEIGHT in raw.columns:
        columns.append(_weights(raw, where, locate).alias("weight"))
    else:
        log.warning("%s has no %s column; every respondent gets weight 1", where, WEIGHT)
        columns.append(pl.Series("weight", [1.0] * raw.height, dtype=pl.Float64))
    columns.extend(_to_int(raw, c, where, locate) for c in present if c != COUNTRY)
    frame = pl.DataFrame(columns)
    for derived, (sources, expr) in DERIVED.items():
        if derived in item_ids and derived not in frame.columns:
            log.info("%s: computing %s from %s", where, derived, ", ".join(sources))
            frame = frame.with_columns(expr())
    return frame


@dataclass(frozen=True)
class CsvLayout:
    """What the row check learnt of a CSV: its width and where records span lines."""

    width: int
    # (data row index, extra lines) of records holding a quoted newline; WVS files have none
    multiline: tuple[tuple[int, int], ...] = ()

    def line(self, row: int) -> int:
        """The file line where data row ``row`` (0-based, after the header) starts."""
        extra = sum(n for r, n in self.multiline if r < row)
        return row + 2 + extra


def _records(fh: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes) of every record of a CSV byte stream: lines, joined
    where a quoted field holds a newline (an odd count of quotes so far: RFC 4180's
    doubled quotes count twice, so parity is enough)."""
    tail, pending, lineno, start = b"", b"", 0, 1
    for block in iter(lambda: fh.read(1 << 20), b""):
        lines = (tail + block).split(b"\n")
        tail = lines.pop()
        for line in lines:
            lineno += 1
            record = pending + line if pending else line
            if b'"' in line and record.count(b'"') % 2:  # `in` first: memchr, no count
                pending = record + b"\n"
                continue
            yield start, record
            pending, start = b"", lineno + 1
    rest = pending + tail
    if rest:
        yield start, rest


def _field_count(record: bytes, sep: bytes, separator: str) -> int:
    if b'"' not in record:  # the fast path: every WVS row but a few text cells
        return record.count(sep) + 1
    return len(next(csv.reader([record.decode("utf-8", errors="replace")], delimiter=separator)))


def check_csv_rows(path: Path, separator: str) -> CsvLayout:
    """Refuse a CSV (plain or gzipped) with a row of the wrong width, or a gzip stream
    that ends early; a record per line, counted in one streaming pass. For all 56 WVS-7
    country files that pass takes 1.5 s against 0.9 s for the check of the last row it
    replaces (a loaded 2-core machine; about 10 ms more per country file).

    polars fills a short row with nulls without a word, so rows cut short in the
    middle of a file (a damaged copy, a bad merge) or an interrupted copy or download
    would pass as missing answers. A blank line is a short row too: polars reads it as
    a respondent with every value null.
    """
    opener = gzip.open if _suffix(path) == ".csv.gz" else open
    width: int | None = None
    multiline: list[tuple[int, int]] = []
    row = -1
    sep = separator.encode()
    try:
        with opener(path, "rb") as fh:
            for lineno, record in _records(fh):  # type: ignore[arg-type]
                if record.endswith(b"\r"):  # CRLF files
                    record = record[:-1]
                fields = _field_count(record, sep, separator)
                if width is None:
                    width = fields
                    continue
                row += 1
                if b"\n" in record:
                    multiline.append((row, record.count(b"\n")))
                if fields < width:
                    raise DataError(
                        f"{path} line {lineno} has {fields} of {width} fields: the file is cut "
                        f"off or damaged; copy or download it again"
                    )
                if fields > width:
                    raise DataError(
                        f"{path} line {lineno} has {fields} fields, the header {width}: the file "
                        f"is damaged; copy or download it again"
                    )
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is damaged or cut off ({exc}); copy or download it again") from exc
    return CsvLayout(width or 0, tuple(multiline))


def _usable_ids(frame: pl.DataFrame) -> bool:
    """Interview ids identify respondents when every row has one and they are not one
    value for the whole file (URY's v5.0 file has one id for all 1,000 rows)."""
    iv = frame.get_column(INTERVIEW)
    return iv.null_count() == 0 and (iv.n_unique() > 1 or frame.height <= 1)


def _fingerprint(frame: pl.DataFrame) -> str:
    """Order-independent digest of a file's respondents: country + interview ids where
    usable, else every value read, so that a renamed or re-compressed copy matches."""
    cols = ["country", INTERVIEW] if _usable_ids(frame) else frame.columns
    hashes = frame.select(cols).hash_rows(seed=0).sort()
    return hashlib.sha256(hashes.to_numpy().tobytes()).hexdigest()


def _refuse_repeated_files(files: list[Path], frames: list[pl.DataFrame]) -> None:
    """The same data read twice (one country file under two names) is an error."""
    seen: dict[str, Path] = {}
    for path, frame in zip(files, frames, strict=True):
        key = _fingerprint(frame)
        if key in seen:
            raise DataError(f"{seen[key]} and {path} hold the same respondents; remove one of them")
        seen[key] = path


def _deduplicate(frame: pl.DataFrame, where: str, drop_duplicates: bool) -> pl.DataFrame:
    """Find respondents present more than once; drop identical rows on request.

    Identity is country + ``D_INTERVIEW`` where the ids are usable, else the whole row
    (countries numbered by row, see :func:`_respondent_ids`). A repeated id whose rows
    differ is never dropped: which row is right can't be told from the file.
    """
    values = [c for c in frame.columns if c != "_file"]
    usable = {c: _usable_ids(part) for (c,), part in frame.group_by("country", maintain_order=True)}
    frame = frame.with_columns(
        _key=pl.when(pl.col("country").replace_strict(usable, return_dtype=pl.Boolean))
        .then(pl.concat_str(pl.col("country"), pl.col(INTERVIEW), separator="\x1f"))
        .otherwise(pl.struct(values).hash(seed=0).cast(pl.Utf8))
    )
    flags = {
        "_repeated": ~pl.col("_key").is_first_distinct(),
        "_identical": ~pl.struct(values).is_first_distinct(),
    }
    frame = frame.with_columns(**flags)
    if drop_duplicates:
        dropped = frame.filter("_identical")
        if dropped.height:
            log.warning(
                "dropped %d identical duplicate rows (data.drop_duplicates): %s",
                dropped.height,
                _per_country(dropped),
            )
            frame = frame.filter(~pl.col("_identical")).with_columns(**flags)
    dups = frame.filter("_repeated")
    if dups.height:
        first = dups.row(0, named=True)
        conflicting = dups.filter(~pl.col("_identical")).height
        what = (
            f"{conflicting} repeat an interview id (D_INTERVIEW) with different answers"
            if conflicting
            else "identical rows"
        )
        fix = (
            "fix or remove them in the file"
            if drop_duplicates or conflicting
            else "remove them from the file, or drop identical rows with params "
            "data.drop_duplicates: true (`valuesim human --drop-duplicates`)"
        )
        raise DataError(
            f"duplicated respondents in {where}: {_per_country(dups)} "
            f"(e.g. {first['_file']}; {what}); {fix}"
        )
    return frame.drop("_key", "_repeated", "_identical")


def _per_country(frame: pl.DataFrame) -> str:
    counts = frame.group_by("country").len().sort("country")
    return ", ".join(f"{c} {n}" for c, n in counts.iter_rows())


def _respondent_ids(frame: pl.DataFrame) -> pl.DataFrame:
    """``<ISO3>-<D_INTERVIEW>``; per country, the row number where the file has no
    usable interview ids (absent, or one value for all rows as in URY's v5.0 file)."""
    usable = {c: _usable_ids(part) for (c,), part in frame.group_by("country", maintain_order=True)}
    row = pl.int_range(pl.len()).over("country") + 1
    ids = (
        pl.when(pl.col("country").replace_strict(usable, return_dtype=pl.Boolean))
        .then(pl.col("country") + "-" + pl.col(INTERVIEW))
        .otherwise(pl.col("country") + "-row" + row.cast(pl.Utf8).str.zfill(6))
    )
    fallback = sorted(c for c, ok in usable.items() if not ok)
    if fallback:
        log.warning(
            "no usable interview ids (D_INTERVIEW absent, empty or one value for all rows) "
            "for %s; respondents are numbered by row and duplicates found as identical rows",
            ", ".join(fallback),
        )
    return frame.with_columns(ids.alias("respondent_id")).drop(INTERVIEW)


def read_source(
    path: str | Path, bank: QuestionBank, *, drop_duplicates: bool = False
) -> ExtractResult:
    """Read real WVS-7 data at ``path`` into the extract contract's tables.

    Duplicated respondents are an error naming the country and count, unless
    ``drop_duplicates`` (params ``data.drop_duplicates``) is set, which drops rows
    identical to an earlier one with a warning. The same data in two files is always
    an error naming both.
    """
    files = source_files(path)
    frames = [_read_file(f, bank) for f in files]
    _refuse_repeated_files(files, frames)
    try:
        frame = pl.concat(
            [f.with_columns(_file=pl.lit(p.name)) for p, f in zip(files, frames, strict=True)],
            how="vertical",
        )
    except pl.exceptions.PolarsError as exc:  # e.g. a file whose column types differ
        raise DataError(f"files in {path} do not fit together: {str(exc).splitlines()[0]}") from exc
    frame = _respondent_ids(_deduplicate(frame, str(path), drop_duplicates)).drop("_file")
    items = bank.items
    recoded, counts = recode(frame, items, str(path))
    respondents = recoded.select(
        "country", "respondent_id", "weight", *[pl.col(i.id).cast(pl.Int64) for i in items]
    ).sort("country", maintain_order=True)
    return ExtractResult(respondents=respondents, missing_counts=counts, source=str(path))


def select_countries(result: ExtractResult, countries: list[str]) -> ExtractResult:
    """Keep only ``countries``; a code the data doesn't have is an error naming those it has."""
    have = set(result.respondents.get_column("country").unique().to_list())
    unknown = [c for c in countries if c not in have]
    if unknown:
        raise DataError(
            f"countries {', '.join(unknown)} not in {result.source}; it has {', '.join(sorted(have))}"
        )
    keep = pl.col("country").is_in(countries)
    return ExtractResult(
        respondents=result.respondents.filter(keep),
        missing_counts=result.missing_counts.filter(keep),
        source=result.source,
        synthetic=result.synthetic,
    )
