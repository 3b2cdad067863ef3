"""``valuesim view``: serve an exported study with Datasette (the optional ``browse`` extra).

Datasette runs as its own process (``python -m datasette``, the interpreter valuesim
runs in), read-only (``--immutable``) and on the loopback interface unless told
otherwise, with the metadata of :mod:`valuesim.browse.metadata` for this file's name.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from valuesim.browse.metadata import datasette_metadata
from valuesim.errors import ConfigError, DataError

INSTALL_HINT = "pip install 'valuesim[browse]'"


def require_datasette() -> None:
    if importlib.util.find_spec("datasette") is None:
        raise ConfigError(f"Datasette is not installed; {INSTALL_HINT} (or open the .db file with any SQLite tool)")


def check_database(database: Path) -> None:
    if not database.is_file():
        raise DataError(f"{database} not found; write it first with `valuesim export --sqlite {database}`")
    with database.open("rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise DataError(f"{database} is not a SQLite database; write it with `valuesim export --sqlite {database}`")


def write_metadata(database: Path, directory: Path) -> Path:
    """The metadata for ``database`` (keyed by its file stem, as Datasette names it) in ``directory``."""
    path = directory / "metadata.json"
    path.write_text(json.dumps(datasette_metadata(database.stem)), encoding="utf-8")
    return path


def datasette_command(
    database: Path, metadata: Path, *, host: str, port: int, open_browser: bool, extra: Sequence[str] = (),
) -> list[str]:
    cmd = [sys.executable, "-m", "datasette", "serve", "--immutable", str(database), "--metadata", str(metadata),
           "--host", host, "--port", str(port), "--setting", "facet_time_limit_ms", "1000"]
    if open_browser:
        cmd.append("--open")
    return [*cmd, *extra]
