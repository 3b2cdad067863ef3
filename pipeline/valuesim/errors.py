"""Exceptions that the CLI turns into a one-line message and a non-zero exit.

Raise a subclass of :class:`ValuesimError` for anything a user can fix (bad input,
bad params, missing files, missing keys); its message must name the problem and
the fix. Anything else is a bug and keeps its traceback.
"""


class ValuesimError(Exception):
    """A problem the user can fix; the message is shown as one line."""

    exit_code = 2


class ConfigError(ValuesimError):
    """Invalid params or command-line options."""


class DataError(ValuesimError):
    """Input data is missing, unreadable or violates a contract."""


class ContractError(DataError):
    """A Great Expectations data contract failed."""

    exit_code = 3


class OutputError(ValuesimError):
    """An output cannot be written where asked: the path is not a regular file (a
    device, FIFO or folder), or the file system refuses (read-only, full, virtual)."""


class ProviderError(ValuesimError):
    """A model provider is unknown, misconfigured or failed for good."""

    exit_code = 4
