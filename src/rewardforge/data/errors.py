"""Errors about user data: always name where (file and line or row) and what is wrong."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Any


class DataError(ValueError):
    """A record or file the data layer cannot use. The CLI turns it into exit code 2."""

    def __init__(self, source: str, reason: str, *, location: str | None = None, field: str | None = None):
        self.source = source
        self.location = location
        self.field = field
        # one line: a library's message (pyarrow's) may hold several
        self.reason = reason = " ".join(part.strip() for part in reason.splitlines() if part.strip())
        where = source if location is None else f"{source}:{location}"
        what = reason if field is None else f"field '{field}': {reason}"
        super().__init__(f"{where}: {what}")


class RowError(ValueError):
    """What is wrong with one record, raised before the caller knows the file and location.

    The loader turns it into a `DataError` (or a rejected row) by adding source and location.
    """

    def __init__(self, reason: str, field: str | None = None):
        self.reason = reason
        self.field = field
        super().__init__(reason if field is None else f"field '{field}': {reason}")


class DataOptionError(ValueError):
    """A mistake in how the data was asked for (column mapping, processor reference, Hub
    spec), not in the data itself. The CLI turns it into exit code 2."""


@dataclass
class ReadProblem:
    """A record that could not be read. `fatal` means reading cannot go on after it."""

    reason: str
    raw: Any = None
    fatal: bool = False


def corrupt_reason(exc: BaseException) -> str:
    """A failure while reading: a damaged gzip stream, or any other I/O error."""
    if isinstance(exc, EOFError | zlib.error | gzip.BadGzipFile):
        return f"truncated or corrupt compressed file ({type(exc).__name__}: {exc}); the rest of it could not be read"
    return f"read error ({type(exc).__name__}: {exc})"
