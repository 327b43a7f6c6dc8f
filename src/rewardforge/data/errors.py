"""Errors about user data: always name where (file and line or row) and what is wrong."""

from __future__ import annotations


class DataError(ValueError):
    """A record or file the data layer cannot use. The CLI turns it into exit code 2."""

    def __init__(self, source: str, reason: str, *, location: str | None = None, field: str | None = None):
        self.source = source
        self.location = location
        self.field = field
        self.reason = reason
        where = source if location is None else f"{source}:{location}"
        what = reason if field is None else f"field '{field}': {reason}"
        super().__init__(f"{where}: {what}")
