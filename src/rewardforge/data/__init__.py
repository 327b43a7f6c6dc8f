"""Data layer: read preference data in many shapes and formats into `PreferencePair`s.

Entry point: `load_pairs(spec, ...)`. `spec` is a path (.jsonl, .jsonl.gz, .json, .json.gz,
.parquet, .csv, or a `datasets.save_to_disk` directory) or `hf:ORG/NAME[:split]`.
"""

from __future__ import annotations

from rewardforge.data.columns import KNOWN_FIELDS, parse_columns
from rewardforge.data.errors import DataError, DataOptionError, RowError
from rewardforge.data.loader import (
    LoadedPairs,
    RejectedRow,
    count_reasons,
    describe_rejected,
    fingerprint,
    load_pairs,
    rejected_text,
    write_rejected,
)
from rewardforge.data.processor import PreferenceProcessor, load_processor
from rewardforge.data.readers import iter_records, parse_hf_spec
from rewardforge.data.types import CHAT_ROLES, Message, PreferencePair

__all__ = [
    "CHAT_ROLES",
    "KNOWN_FIELDS",
    "DataError",
    "DataOptionError",
    "LoadedPairs",
    "Message",
    "PreferencePair",
    "PreferenceProcessor",
    "RejectedRow",
    "RowError",
    "count_reasons",
    "describe_rejected",
    "fingerprint",
    "iter_records",
    "load_pairs",
    "load_processor",
    "parse_columns",
    "parse_hf_spec",
    "rejected_text",
    "write_rejected",
]
