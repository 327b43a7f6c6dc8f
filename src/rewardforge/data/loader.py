"""`load_pairs`: read any supported source into validated `PreferencePair`s, never silently.

Each record is renamed (column mapping) or handed to a user processor, its shape detected,
and normalised. The shape most of the first `SHAPE_SAMPLE` records have is the shape of the
whole source (so one odd first row cannot decide it); a record of another shape is an
invalid row ("mixture of shapes"). With a processor, the first valid record decides.
Invalid rows raise `DataError`, or are collected in `LoadedPairs.rejected` with
`skip_invalid=True`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from rewardforge.data.columns import (
    apply_columns,
    apply_inferred,
    check_columns,
    check_unread_aliases,
    display_field,
    infer_columns,
    parse_columns,
    positional_labels,
    positional_problem,
    read_from,
)
from rewardforge.data.errors import DataError, DataOptionError, RowError
from rewardforge.data.processor import PreferenceProcessor, load_processor, overrides_read
from rewardforge.data.readers import ReadProblem, read_records
from rewardforge.data.shapes import (
    Detected,
    UnreadPromptError,
    check_pair,
    detect_shape,
    mixture_field,
    normalise,
)
from rewardforge.data.types import PreferencePair
from rewardforge.data.values import blank, counting_unscored, normalised, unscored_note
from rewardforge.files import AtomicFile

FINGERPRINT_VERSION = "rewardforge-pairs-v1"
SHAPE_SAMPLE = 1000  # records read ahead to find the data's shape


def _blank_value(record: Any, key: str) -> str | None:
    """What is wrong with a field written but left without a value (null, NaN, blank text): a
    row's empty cell changes what its shape looks like, and "missing" says more than "mixture"."""
    if not isinstance(record, dict) or key not in record:
        return None
    value = record[key]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, str) and blank(value):
        return "empty response" if key in ("chosen", "rejected") else "empty"
    return None


@dataclass
class RejectedRow:
    """One invalid row kept aside by `skip_invalid=True`; `row` is the raw record, JSON-safe."""

    source: str
    location: str
    field: str | None
    reason: str
    row: Any


@dataclass
class LoadedPairs:
    """The pairs of one source, what was rejected, and which shape was detected."""

    pairs: list[PreferencePair]
    rejected: list[RejectedRow]
    shape: str
    source: str
    fingerprint: str
    skipped_by_processor: int = 0
    inferred_columns: dict[str, str] = field(default_factory=dict)
    split_note: str | None = None  # "split 'train' (of test, train)" when one was picked among several
    reader_notes: list[str] = field(default_factory=list)  # how the reader took the cells (CSV lists)
    equal_scores: int = 0  # pairs labelled chosen/rejected whose own scores are equal
    contrary_scores: int = 0  # ... whose own scores favour the rejected side

    def reading_notes(self) -> str:
        """What the reading chose or found, e.g. ' (columns read as prompt=question)'."""
        notes = ([self.split_note] if self.split_note else []) + self.reader_notes
        if self.inferred_columns:
            notes.append("columns read as " + ",".join(f"{k}={v}" for k, v in self.inferred_columns.items()))
        if self.equal_scores:
            notes.append(
                f"{self.equal_scores} pair(s) have equal scores for chosen and rejected: read as "
                "labelled (margin 0 with margin_from_scores)"
            )
        if self.contrary_scores:
            notes.append(
                f"{self.contrary_scores} pair(s) score rejected above chosen: read as labelled "
                "(invalid with margin_from_scores)"
            )
        return "".join(f" ({note})" for note in notes)

    def __len__(self) -> int:
        return len(self.pairs)


def fingerprint(pairs: Iterable[PreferencePair]) -> str:
    """sha256 over the normalised pairs (prompt, chosen, rejected, margin, id, category), in order.

    It does not depend on the file format or path: the same pairs from JSONL or Parquet match.
    """
    h = hashlib.sha256(FINGERPRINT_VERSION.encode() + b"\n")
    for pair in pairs:
        line = json.dumps(pair.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        h.update(line.encode("utf-8", "surrogatepass") + b"\n")
    return h.hexdigest()


def comparison_key(pair: PreferencePair) -> bytes:
    """A digest of a pair's prompt and two completions: equal for the same comparison read from
    any file, surrounding whitespace of each turn aside (margin, id and category aside too)."""
    text = json.dumps(
        [normalised(pair.prompt), normalised(pair.chosen), normalised(pair.rejected)], ensure_ascii=False
    )
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()


def jsonable(value: Any) -> Any:
    """A JSON-serialisable copy of a raw row (unknown objects become their repr)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value  # a lone surrogate stays (json_line escapes it): the row as it was read
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def count_reasons(rows: list[RejectedRow], top: int | None = None) -> dict[str, int]:
    """How many rows were rejected for each reason, most frequent first; with `top`, the rest
    summed under "(N other reasons)" (a reason may name a column: 50k malformed lines gave
    thousands of reasons, and a console line of 150 KB)."""
    counts = Counter(row.reason for row in rows).most_common()
    if top is None or len(counts) <= top:
        return dict(counts)
    rest = counts[top:]
    return dict(counts[:top]) | {f"({len(rest)} other reasons)": sum(n for _, n in rest)}


def describe_rejected(rows: list[RejectedRow]) -> str:
    """One line for the console: "2 x empty response; 1 x malformed JSON: ..." (the five most
    frequent reasons; rejected_rows.jsonl has every row)."""
    return "; ".join(f"{n} x {reason}" for reason, n in count_reasons(rows, top=5).items())


def json_line(obj: Any) -> str:
    """One JSONL line, readable UTF-8; a text that is no valid Unicode (a lone surrogate from a
    JSON escape) is written as JSON escapes, so the line reads back to exactly that text."""
    line = json.dumps(obj, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(obj, ensure_ascii=True)
    return line + "\n"


def rejected_line(row: RejectedRow) -> str:
    """A rejected row as a JSONL line: source, location, field, reason, row."""
    return json_line(asdict(row) | {"row": jsonable(row.row)})


def rejected_text(rows: list[RejectedRow]) -> str:
    """Rejected rows as JSONL."""
    return "".join(map(rejected_line, rows))


def write_rejected(rows: list[RejectedRow], path: str | os.PathLike[str]) -> None:
    """Write rejected rows as JSONL (source, location, field, reason, row), atomically, a line at
    a time (50k rejected rows made a 72 MB string)."""
    with AtomicFile(path) as fh:
        for row in rows:
            fh.write(rejected_line(row))


@dataclass
class _Load:
    """State of one `load_pairs` call."""

    source: str
    skip_invalid: bool
    margin_from_scores: bool
    columns: dict[str, str]
    processor: PreferenceProcessor | None
    pairs: list[PreferencePair] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    skipped: int = 0
    shape: Detected | None = None
    shape_location: str = ""
    inferred: dict[str, str] = field(default_factory=dict)
    read_columns: set[str] = field(default_factory=set)  # source columns read under our names

    def bad(self, location: str, field_name: str | None, reason: str, raw: Any) -> None:
        if not self.skip_invalid:
            raise DataError(self.source, reason, location=location, field=field_name)
        self.rejected.append(RejectedRow(self.source, location, field_name, reason, jsonable(raw)))

    def _from_processor(self, location: str, record: Any) -> Any:
        assert self.processor is not None
        try:
            out = self.processor.to_pair(record)
        except RowError:
            raise
        except DataError as exc:
            raise RowError(exc.reason, exc.field) from exc
        except ValueError as exc:
            raise RowError(str(exc) or type(exc).__name__) from exc
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - user code failing on this record: a bad row
            raise RowError(
                f"{type(self.processor).__name__}.to_pair raised {type(exc).__name__}: {exc}"
            ) from exc
        if out is not None and not isinstance(out, PreferencePair | dict):
            raise RowError(f"to_pair returned {type(out).__name__}; expected PreferencePair, dict or None")
        return out

    def to_pairs(self, location: str, record: Any) -> list[PreferencePair]:
        try:
            return self._to_pairs(location, record)
        except UnreadPromptError as exc:  # --columns cannot be given with a processor: its own advice
            if self.processor is None or not exc.mappable:
                raise
            raise RowError(
                f"{exc.problem()}: return it as 'prompt' from {type(self.processor).__name__}.to_pair (other "
                f"datasets' names are read from files only), or leave {exc.column} out",
                exc.field,
            ) from None

    def _to_pairs(self, location: str, record: Any) -> list[PreferencePair]:
        if self.processor is not None:
            record = self._from_processor(location, record)
            if record is None:
                self.skipped += 1
                return []
            if isinstance(record, PreferencePair):
                if self.margin_from_scores and record.margin is None:  # (it trained as margin 0)
                    raise RowError(
                        "margin_from_scores is set but to_pair returned a PreferencePair without a margin: "
                        "set its margin, or return a dict with the score columns",
                        "margin",
                    )
                return [check_pair(record)]
        else:
            labels = positional_labels(record, self.columns)
            if labels:  # position is no preference: a row that says which won is invalid
                raise RowError(positional_problem(labels, self.columns), labels[0])
            record = self.rename(record)
            if isinstance(record, dict):
                check_unread_aliases(record, self.read_columns, self.columns)
        detected = detect_shape(record)
        if (
            self.shape is not None
            and detected.shape != self.shape.shape
            and detected.features.get("prompt") in ("null", "absent")
            and self.shape.features.get("chosen") == "messages"
        ):
            # a conversation's prompt is optional: left out of a row, or null (as Arrow writes an
            # absent one), the row is read as with [] (a text prompt is required: null there is a
            # missing field)
            if detect_shape({**record, "prompt": []}).shape == self.shape.shape:
                record = {**record, "prompt": []}
                detected = detect_shape(record)
        if self.shape is not None and detected.shape != self.shape.shape:
            differs = mixture_field(self.shape, detected)
            blank = _blank_value(record, differs) if differs is not None else None
            if blank is not None:  # an empty cell is no other shape (CSV, Parquet), if the rest fits
                record, detected = self._without_blank(record, detected, differs, blank)
            if detected.shape != self.shape.shape:
                what = "" if differs is None else f" ({differs}: {detected.features.get(differs, 'absent')})"
                raise RowError(
                    f"mixture of shapes: this row is '{detected.shape}'{what} but the data is "
                    f"'{self.shape.shape}' ({self.shape_location})",
                    differs,
                )
        if self.shape is None:
            pairs = normalise(record, detected, margin_from_scores=self.margin_from_scores)
            self._lock(detected, f"first valid row at {location}")
            return pairs
        # the source's detection: how its rows write a field is decided once (arena prompts)
        return normalise(record, self.shape, margin_from_scores=self.margin_from_scores)

    def _without_blank(
        self, record: dict, detected: Detected, key: str, problem: str
    ) -> tuple[dict, Detected]:
        """A row whose `key` is written without a value (null, NaN, blank). In a field the data's
        rows do not have, it is no field: the row goes on without it (as Parquet and CSV write a
        column some rows lack). In one they have, the row is invalid for that field ("missing",
        "empty response") when a value there would make it the data's shape; else it is a
        mixture of shapes, said as such."""
        assert self.shape is not None
        expected = self.shape.features.get(key, "absent")
        if expected in ("absent", "null"):
            trial = {k: v for k, v in record.items() if k != key}
        else:  # a stand-in value: the other reply's (an HH transcript is no "x"), else a plain one
            other = {"chosen": "rejected", "rejected": "chosen"}.get(key)
            role = "user" if key == "prompt" else "assistant"
            plain = [{"role": role, "content": "x"}] if expected == "messages" else "x"
            trial = {
                **record,
                key: record[other] if other in record and not _blank_value(record, other) else plain,
            }
        try:
            found = detect_shape(trial)
        except RowError:
            return record, detected
        if found.shape != self.shape.shape:
            return record, detected
        if expected in ("absent", "null"):
            return trial, found
        raise RowError(problem, key)

    def settle_shape(self, sample: list[tuple[str, Any]]) -> None:
        """Fix the shape most records of `sample` have, before any is normalised."""
        if self.processor is not None:
            return
        records = [record for _, record in sample if not isinstance(record, ReadProblem)]
        self.inferred = infer_columns(records, self.columns)
        self.read_columns = set(self.columns.values()) | read_from(self.inferred)
        found: dict[str, list[Detected]] = {}
        for _, record in sample:
            if isinstance(record, ReadProblem):
                continue
            try:
                detected = detect_shape(self.rename(record))
            except RowError:
                continue
            found.setdefault(detected.shape, []).append(detected)
        if found:
            shape = max(found, key=lambda name: len(found[name]))  # ties: the first seen
            kinds = [tuple(sorted(d.features.items())) for d in found[shape]]
            common = Counter(kinds).most_common(1)[0][0]  # ties: the first seen
            typical = found[shape][kinds.index(common)]
            self._lock(typical, f"the shape of {len(found[shape])} of the first {len(sample)} rows")

    def rename(self, record: Any) -> Any:
        """The user's column mapping, then the names `infer_columns` found."""
        record = apply_columns(record, self.columns)
        return apply_inferred(record, self.inferred) if isinstance(record, dict) else record

    def display(self, field_name: str | None) -> str | None:
        return display_field(field_name, {**self.inferred, **self.columns})

    def _lock(self, detected: Detected, where: str) -> None:
        if self.margin_from_scores and not detected.has_scores:
            raise DataError(
                self.source,
                f"margin_from_scores is set but the detected shape '{detected.shape}' has no score columns "
                "(score_chosen/score_rejected, SHP's score_A/score_B, HelpSteer grades, WebGPT or "
                "Unified-Feedback scores, rated completions: see the README's Data section)"
                + (
                    "; --columns maps chosen/rejected, which reads them as given, without the data's "
                    "scores: leave those out of the mapping to read them"
                    if self.columns and any(k in ("chosen", "rejected") for k in self.columns)
                    else ""
                ),
            )
        self.shape, self.shape_location = detected, where

    def shape_name(self) -> str:
        detected = self.shape.shape if self.shape else None
        if self.processor is None:
            return detected or "unknown"
        name = f"processor:{type(self.processor).__name__}"
        return f"{name}/{detected}" if detected else name


def _records(
    spec: str,
    split: str | None,
    default_split: str | None,
    processor: PreferenceProcessor | None,
    notes: list[str],
) -> Iterable[tuple[str, Any]]:
    if processor is None or not overrides_read(processor):
        yield from read_records(spec, split, default_split, notes)
        return
    name = type(processor).__name__
    try:
        for item in processor.read(spec):
            if not (isinstance(item, tuple) and len(item) == 2):
                raise DataError(spec, f"{name}.read() must yield (location, record) tuples")
            yield item
    except (DataError, DataOptionError):
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code: any failure is this file's error
        raise DataError(spec, f"{name}.read() raised {type(exc).__name__}: {exc}") from exc


def _checked_arguments(
    spec: Any, columns: Any, skip_invalid: Any, margin_from_scores: Any, limit: Any
) -> tuple[str, dict[str, str] | None]:
    """`load_pairs`'s arguments as it uses them: a TypeError or DataOptionError for a wrong one
    (`limit="1"` failed deep inside, `skip_invalid="no"` read as yes). `columns` may be given
    as the command line writes it, "prompt=question,chosen=good"."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise TypeError(f"spec is a path or 'hf:ORG/NAME' as a string or a path, got {type(spec).__name__}")
    for name, flag in (("skip_invalid", skip_invalid), ("margin_from_scores", margin_from_scores)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} is True or False, got {flag!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataOptionError(f"limit must be a positive whole number of pairs, got {limit!r}")
    if isinstance(columns, str):
        columns = parse_columns(columns)
    if columns is not None and not isinstance(columns, dict):
        raise TypeError(
            f"columns is a dict such as {{'prompt': 'question'}} (or the text 'prompt=question'), "
            f"got {type(columns).__name__}"
        )
    return spec, columns


def load_pairs(
    spec: str,
    *,
    columns: dict[str, str] | None = None,
    processor: str | PreferenceProcessor | type[PreferenceProcessor] | None = None,
    skip_invalid: bool = False,
    margin_from_scores: bool = False,
    split: str | None = None,
    default_split: str | None = "train",
    limit: int | None = None,
    progress: bool = True,
) -> LoadedPairs:
    """Load preference pairs from a path or `hf:ORG/NAME[:split]`.

    - `columns` renames user fields to ours ({"prompt": "question"}); not with `processor`,
      which maps its own fields. `processor` is "file.py:Class" or "pkg.module:Class" (in Python,
      also a PreferenceProcessor instance or subclass).
    - `skip_invalid` collects invalid rows in `.rejected` instead of raising at the first. An
      empty source, a source with no valid row, or a config mistake still raises `DataError`;
      after a truncated/corrupt gzip the rows before the damage are kept and it is rejected.
    - `margin_from_scores` sets margin = |score_chosen - score_rejected| (SHP: raw upvote
      difference) unless the row has an explicit `margin`; data without scores is an error.
    - `split` picks a split of a saved DatasetDict, a JSON object or the Hub (or `PATH:SPLIT`).
      With none named: the only split, else `default_split` (None: several splits are an error).
    - `limit` stops after that many pairs, at a record's end: a record giving several pairs is
      kept whole or left out (whole, if it is the first).
    - `progress` shows a row count on stderr when reading takes more than a few seconds.
    """
    spec, columns = _checked_arguments(spec, columns, skip_invalid, margin_from_scores, limit)
    if columns and processor:
        raise DataOptionError("columns and processor cannot be combined: a processor maps its own fields")
    proc = load_processor(processor) if processor is not None else None
    state = _Load(spec, skip_invalid, margin_from_scores, check_columns(columns or {}), proc)
    n_records = 0
    notes: list[str] = []
    records = iter(_records(spec, split, default_split, proc, notes))
    sample = list(itertools.islice(records, SHAPE_SAMPLE))
    state.settle_shape(sample)
    unscored: Counter[str] = Counter()  # reasoning the kept pairs carry, left out of their text
    reading = tqdm(  # shown only once reading takes a while (200k rows: a minute or more)
        desc=f"reading {os.path.basename(spec.rstrip('/')) or spec}",
        unit=" rows",
        delay=3,
        mininterval=2,
        disable=not progress,
        file=sys.stderr,
    )
    with counting_unscored() as in_row, reading:
        for location, record in itertools.chain(sample, records):
            reading.update()  # (before a --limit break: every row read is counted)
            n_records += 1
            if isinstance(record, ReadProblem):
                state.bad(location, None, record.reason, record.raw)
                if record.fatal:
                    break
                continue
            in_row.clear()
            try:
                new = state.to_pairs(location, record)
            except RowError as exc:
                state.bad(location, state.display(exc.field), exc.reason, record)
                continue
            for pair in new:
                pair.source = f"{spec}:{location}"
            if limit is not None and state.pairs and len(state.pairs) + len(new) > limit:
                break  # a record is never cut: its pairs are scored together (record accuracy)
            state.pairs.extend(new)
            unscored.update(in_row)  # (only a record whose pairs are kept)
            if limit is not None and len(state.pairs) >= limit:
                break
    _check_result(state, n_records)
    if unscored:
        notes.append(unscored_note(unscored))
    scored = [both for both in map(_scores, state.pairs) if both is not None]
    return LoadedPairs(
        pairs=state.pairs,
        rejected=state.rejected,
        shape=state.shape_name(),
        source=spec,
        fingerprint=fingerprint(state.pairs),
        skipped_by_processor=state.skipped,
        inferred_columns=state.inferred,
        split_note=next((n for n in notes if n.startswith("split ")), None),
        reader_notes=[n for n in notes if not n.startswith("split ")],
        equal_scores=sum(chosen == rejected for chosen, rejected in scored),
        contrary_scores=sum(chosen < rejected for chosen, rejected in scored),
    )


def _scores(pair: PreferencePair) -> tuple[float, float] | None:
    """The pair's own scores of chosen and rejected, when its data gives both."""
    chosen, rejected = pair.extra.get("score_chosen"), pair.extra.get("score_rejected")
    return None if chosen is None or rejected is None else (chosen, rejected)


def _check_result(state: _Load, n_records: int) -> None:
    if n_records == 0:
        raise DataError(state.source, "empty: no records at all")
    if state.pairs:
        return
    if state.rejected:
        first = state.rejected[0]
        counts = Counter(r.reason.split(":")[0] for r in state.rejected).most_common()  # kinds, not details
        tally = (
            ""
            if len(counts) < 2
            else " ("
            + ", ".join(f"{n} {why}" for why, n in counts[:5])
            + (", ..." if len(counts) > 5 else "")
            + ")"
        )
        reason = f"no valid rows: all {len(state.rejected)} are invalid{tally}; the first: {first.reason}"
        raise DataError(state.source, reason, location=first.location, field=first.field)
    raise DataError(state.source, f"no pairs: the processor skipped all {state.skipped} records")
