"""Column mapping: rename a user's fields to ours before shape detection.

A mapping is `{our_field: their_column}`, e.g. `{"prompt": "question", "chosen": "good"}`,
written on the command line as "prompt=question,chosen=good".
"""

from __future__ import annotations

from typing import Any

from rewardforge.data.errors import DataOptionError, RowError

KNOWN_FIELDS = (
    "prompt",
    "chosen",
    "rejected",
    "margin",
    "id",
    "category",
    "subset",
    "score_chosen",
    "score_rejected",
    "input",
    "output",
    "history",
    "human_ref_A",
    "human_ref_B",
    "labels",
    "score_A",
    "score_B",
    "context",
    "response1",
    "response2",
    "overall_preference",
    "response_1",
    "response_2",
    "preference_strength",
    "domain",
)


def check_columns(columns: dict[str, str]) -> dict[str, str]:
    """Validate a mapping: keys must be our field names, values distinct non-empty column names."""
    unknown = [k for k in columns if k not in KNOWN_FIELDS]
    if unknown:
        raise DataOptionError(
            f"unknown field(s) {unknown} in column mapping; known: {', '.join(KNOWN_FIELDS)}"
        )
    for ours, theirs in columns.items():
        if not isinstance(theirs, str) or not theirs:
            raise DataOptionError(
                f"column mapping for {ours!r} must be a non-empty column name, got {theirs!r}"
            )
    values = list(columns.values())
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise DataOptionError(f"column(s) {dupes} mapped to more than one field")
    return dict(columns)


def parse_columns(text: str) -> dict[str, str]:
    """Parse "prompt=question,chosen=good,rejected=bad" into {"prompt": "question", ...}."""
    mapping: dict[str, str] = {}
    for item in text.split(","):
        ours, sep, theirs = (part.strip() for part in item.partition("="))
        if not item.strip():
            raise DataOptionError(f"empty item in column mapping {text!r} (expected 'field=column,...')")
        if not sep or not ours or not theirs:
            raise DataOptionError(
                f"bad column mapping item {item.strip()!r} in {text!r}: expected 'field=column'"
            )
        if ours in mapping:
            raise DataOptionError(f"field {ours!r} is mapped twice in {text!r}")
        mapping[ours] = theirs
    return check_columns(mapping)


def apply_columns(record: Any, columns: dict[str, str]) -> Any:
    """Return a copy of `record` with mapped columns renamed; a mapped column missing is a RowError."""
    if not columns or not isinstance(record, dict):
        return record
    out = dict(record)
    for ours, theirs in columns.items():
        if theirs not in record:
            raise RowError(f"column {theirs!r} (mapped to {ours!r}) is not in the record", theirs)
        out.pop(theirs)
    for ours, theirs in columns.items():
        out[ours] = record[theirs]
    return out


def display_field(field: str | None, columns: dict[str, str]) -> str | None:
    """Name a field as the user knows it: with a mapping, 'chosen[0].content' -> 'good[0].content'."""
    if field is None or not columns:
        return field
    for ours, theirs in columns.items():
        if field == ours or field.startswith((ours + "[", ours + ".")):
            return theirs + field[len(ours) :]
    return field
