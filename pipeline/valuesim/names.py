"""Names that become paths, file names or shell words, and values echoed in errors.

One pattern for every name valuesim turns into a path, a file name or a word of a
command line: the keys of ``models``, the entries of ``simulate.models`` and
``simulate.methods``, ``descriptors.generator_model``, question ids (the bank's and
question files') and countries (ISO3 codes, a subset). A model called
``../../../victim`` would otherwise make ``data/simulated/<model>/`` a folder outside
the project, and one called ``m;touch pwned;#`` a shell command under ``dvc repro``::

    [A-Za-z0-9][A-Za-z0-9_.-]{0,63}

1 to 64 characters, letters, digits, ``_``, ``.`` and ``-``, starting with a letter or
a digit (so never ``.``, ``..``, a hidden file, an option such as ``-rf``, a path
separator, a space or a shell metacharacter). It is checked where the name is read
(``valuesim.config`` for params), with one line naming the key, the value and the
pattern.

:func:`shorten` is how an error shows a value the user gave: its ``repr`` cut to about
80 characters with an ellipsis, so that a 50 MB value never becomes a 50 MB error line.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Iterable

from valuesim.errors import ConfigError

NAME_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
NAME_MAX = 64
NAME_RULE = "1-64 letters, digits, _ . -, starting with a letter or digit"
_NAME = re.compile(NAME_PATTERN)
# question ids: the name pattern, starting with a letter (Q164, AI_TRUST)
QUESTION_ID_PATTERN = "[A-Za-z][A-Za-z0-9_.-]{0,63}"
_QUESTION_ID = re.compile(QUESTION_ID_PATTERN)

ECHO_LIMIT = 80
_REPR = reprlib.Repr()
_REPR.maxstring = ECHO_LIMIT
_REPR.maxother = ECHO_LIMIT
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxdict = 6
_REPR.maxlevel = 3


def shorten(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` in at most ``limit`` characters (an ellipsis marks a cut).

    The work is bounded too: a huge string is cut before ``repr``, and containers are
    rendered by :mod:`reprlib`, which looks at a few elements and levels only.
    """
    text = repr(value[: limit + 1]) if isinstance(value, str) else _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` as it is when short and on one line, else :func:`shorten`'s form."""
    if len(text) <= limit and text.isprintable():
        return text
    return shorten(text, limit)


def name_problem(value: object, pattern: re.Pattern[str] = _NAME, text: str = NAME_PATTERN) -> str | None:
    """Why ``value`` cannot be a name (one line), or None when it can."""
    if isinstance(value, str) and pattern.fullmatch(value):
        return None
    kind = "" if isinstance(value, str) else f" (a {type(value).__name__})"
    return f"{shorten(value)}{kind} is not a valid name: use {NAME_RULE} ({text})"


def check_name(value: object, what: str) -> str:
    """``value`` when it is a name, else a one-line ConfigError naming ``what``."""
    problem = name_problem(value)
    if problem:
        raise ConfigError(f"{what} {problem}")
    assert isinstance(value, str)
    return value


def question_id_problem(value: object) -> str | None:
    """Why ``value`` cannot be a question id (one line, without the value, which the
    caller names the item by, cut short with :func:`clip`), or None when it can.

    Question ids become column values and file names (``new_<id>.png`` in the
    report), so they follow the name pattern and start with a letter."""
    if isinstance(value, str) and _QUESTION_ID.fullmatch(value):
        return None
    return ("id must start with a letter and use only letters, digits, _ . -, at most 64 "
            f"characters ({QUESTION_ID_PATTERN})")


def listing(values: Iterable[object], limit: int = 5) -> str:
    """``a, b, c and 12 more``: at most ``limit`` values, each cut short with :func:`clip`."""
    shown: list[str] = []
    rest = 0
    for value in values:
        if len(shown) < limit:
            shown.append(clip(str(value), 40))
        else:
            rest += 1
    return ", ".join(shown) + (f" and {rest} more" if rest else "")
