"""Read raw records from files, saved datasets and the Hub, one at a time, with exact locations.

Readers never judge a record's content (that is `shapes`); they only turn bytes into
`(location, record)` pairs. A problem a reader finds (bad JSON, bad UTF-8, a corrupt gzip)
is yielded as a `ReadProblem` in place of the record by `read_records`, so the loader can
either raise or collect it; `iter_records` is the strict public form that raises.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardforge.data.csv_reader import has_bad_bytes, is_answer, read_csv
from rewardforge.data.errors import DataError, DataOptionError, ReadProblem, RowError, corrupt_reason
from rewardforge.data.shapes import detect_shape
from rewardforge.data.values import is_message, type_name

HF_PREFIX = "hf:"
STDIN = "-"  # standard input, read as JSONL
_HF_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
_JSON_SUFFIXES = (".json", ".json.gz")
JSON_SPLIT_KEYS = ("train", "test", "validation", "dev", "eval", "data")
SUPPORTED = ".jsonl, .jsonl.gz, .json, .json.gz, .parquet, .csv, a datasets.save_to_disk directory, hf:ORG/NAME[:split]"


def parse_hf_spec(spec: str) -> tuple[str, str | None]:
    """`hf:ORG/NAME[:split]` -> (name, split or None). Bad syntax is a DataOptionError."""
    if not spec.startswith(HF_PREFIX):
        raise DataOptionError(f"not a Hub spec (expected 'hf:ORG/NAME[:split]'): {spec!r}")
    name, sep, split = spec[len(HF_PREFIX) :].partition(":")
    if not _HF_NAME.match(name) or (sep and not split) or ":" in split:
        raise DataOptionError(f"bad Hub spec {spec!r}: expected 'hf:ORG/NAME' or 'hf:ORG/NAME:SPLIT'")
    return name, split or None


def split_local_spec(spec: str) -> tuple[str, str | None]:
    """`PATH:SPLIT` -> (PATH, SPLIT) when PATH exists and the whole spec does not; else (spec, None)."""
    if spec.startswith(HF_PREFIX) or ":" not in spec or Path(spec).exists():
        return spec, None
    base, _, split = spec.rpartition(":")
    if base and split and Path(base).exists():
        return base, split
    return spec, None


def absolute_source(spec: str | None) -> str | None:
    """A local path (or PATH:SPLIT, FILE.py:Class) made absolute, so that a saved config or model
    names the same file from any working directory; Hub ids and module names stay as they are."""
    if not spec:
        return spec
    if os.path.exists(spec):
        return os.path.abspath(spec)
    base, split = split_local_spec(spec)
    if split is None:
        base, _, split = spec.rpartition(":")  # a processor, path/to/file.py:ClassName
        if not (base.endswith(".py") and os.path.exists(base)):
            return spec
    return f"{os.path.abspath(base)}:{split}"


def read_records(
    spec: str | os.PathLike,
    split: str | None = None,
    default_split: str | None = "train",
    notes: list[str] | None = None,
) -> Iterator[tuple[str, Any]]:
    """Lenient reader: yields (location, record or ReadProblem). Whole-source problems raise DataError.

    A source with splits (a saved DatasetDict, a JSON object of lists) is read at `split`, or
    `PATH:SPLIT`; with none named, its only split, or `default_split` among several. With
    `default_split=None` several splits are an error: evaluating on whichever came first would
    hide a mistake. The split chosen among several is appended to `notes` and leads each
    location ("train:row 18"), as `PATH:SPLIT` names it when the user chose.
    """
    if isinstance(spec, os.PathLike):  # a Path, as load_pairs takes it
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise TypeError(f"a data source is a path or a string, got {type(spec).__name__}")
    if not spec:
        # Path("") is ".", which would read the working directory as a saved dataset.
        raise DataError(spec, "no data source given (empty path)")
    picker = _SplitPicker(spec, split, default_split, notes)
    for location, record in _read_source(spec, split, picker):
        yield (f"{picker.defaulted}:{location}" if picker.defaulted else location), record


def _read_source(spec: str, split: str | None, picker: _SplitPicker) -> Iterator[tuple[str, Any]]:
    notes = picker.notes
    if spec == STDIN:  # JSONL, the one format that streams
        check_stdin()
        picker.none()
        yield from _read_jsonl(spec, Path("/dev/stdin"))
        return
    if spec.startswith(HF_PREFIX):
        yield from _read_hub(spec, picker)
        return
    local, spec_split = split_local_spec(spec)
    if spec_split is not None:
        if split is not None and split != spec_split:
            raise DataOptionError(f"{spec!r} names split {spec_split!r} but split={split!r} was also given")
        picker.split = spec_split
    path = Path(local)
    if not path.exists():
        hub = re.fullmatch(r"[\w.-]+/[\w.-]+", local) and not Path(local).suffix
        raise DataError(
            spec, "no such file or directory" + (f" (a Hub dataset is hf:{local})" if hub else "")
        )
    if path.is_dir():
        yield from _read_saved_dataset(spec, path, picker)
        return
    try:
        if path.is_file():  # a pipe is opened once, by the reader: a test open would take its data
            open(path, "rb").close()
        elif not os.access(path, os.R_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:  # permission denied, a broken mount: one line, not a traceback
        raise DataError(spec, f"cannot be read ({exc.strerror or exc})") from None
    encoding = _wide_encoding(path) if path.is_file() else None
    if encoding:  # each line would be "not valid UTF-8", or malformed JSON
        raise DataError(
            spec,
            f"the file is {encoding} text; save it as UTF-8 (iconv -f {encoding} -t UTF-8)",
            location="line 1",
        )
    name = path.name.lower()
    if name.endswith(_JSONL_SUFFIXES):
        picker.none()
        yield from _read_jsonl(spec, path)
    elif name.endswith(_JSON_SUFFIXES):
        yield from _read_json(spec, path, picker)
    elif name.endswith(".parquet"):
        picker.none()
        yield from _read_parquet(spec, path)
    elif name.endswith(".csv"):
        picker.none()
        yield from read_csv(spec, path, notes)
    else:
        raise DataError(
            spec, f"unsupported file type {path.suffix or '(no extension)'!r}; supported: {SUPPORTED}"
        )


def check_stdin() -> None:
    """Standard input (`-`) must have been open when the command started: closed (`<&-`), its
    descriptor is whichever file the command opened first, maybe its own output."""
    from rewardforge import files

    if files.INHERITED_DESCRIPTORS is not None and 0 not in files.INHERITED_DESCRIPTORS:
        raise DataError(STDIN, "standard input was not open when rewardforge started")


@dataclass
class _SplitPicker:
    """Which split of a source to read: the one named, the only one, or the default among several."""

    spec: str
    split: str | None
    default: str | None
    notes: list[str] | None
    defaulted: str | None = None  # the default split, when it was picked among several

    def none(self) -> None:
        # Silently reading everything when a split was asked for would hide a mistake.
        if self.split is not None:
            raise DataError(self.spec, f"split {self.split!r} was given but this file type has no splits")

    def pick(self, available: list[str]) -> str:
        if self.split is not None:
            if not available:
                raise DataError(self.spec, f"no split {self.split!r}: it holds no list of records")
            if self.split not in available:
                raise DataError(self.spec, f"no split {self.split!r}; available: {sorted(available)}")
            return self.split
        if len(available) == 1:
            return available[0]
        if self.default is not None and self.default in available:
            if self.notes is not None:
                self.notes.append(f"split {self.default!r} (of {', '.join(sorted(available))})")
            self.defaulted = self.default
            return self.default
        if not available:
            raise DataError(self.spec, "holds no splits")
        raise DataError(
            self.spec,
            f"holds several splits ({', '.join(sorted(available))}); name one, e.g. "
            f"{self.spec}:{self.likely(sorted(available))}",
        )

    def likely(self, available: list[str]) -> str:
        """The split a user most likely means: one named like the default (train_prefs for
        training), or for evaluation a test or validation split (test_prefs), preferences first
        (UltraFeedback-binarized also has train_gen and train_sft); else the first."""
        starts = (self.default,) if self.default else ("test", "valid", "dev", "eval")
        for start in starts:
            named = sorted(
                (name for name in available if name.lower().startswith(start)), key=lambda n: "pref" not in n
            )
            if named:
                return named[0]
        return available[0]


def iter_records(
    spec: str | os.PathLike, split: str | None = None, default_split: str | None = "train"
) -> Iterator[tuple[str, Any]]:
    """Stream (location, raw record) from any supported source; the first unreadable record raises.

    Locations are "line N" (JSONL, 1-based, blank lines counted) or "row N" (every other
    format, 1-based over data records; a CSV header is not a row). An empty source raises.
    """
    count = 0
    spec = os.fspath(spec) if isinstance(spec, os.PathLike) else spec
    for location, record in read_records(spec, split, default_split):
        if isinstance(record, ReadProblem):
            raise DataError(spec, record.reason, location=location)
        count += 1
        yield location, record
    if count == 0:
        raise DataError(spec, "empty: no records at all")


GZIP_MAGIC = b"\x1f\x8b"


def _open_binary(path: Path):
    """A file's bytes, unpacked when it is gzip data, whatever its name says (a `.jsonl` that
    is gzip was read as bad UTF-8). The first bytes are peeked on the one open handle, so a
    pipe loses none of them."""
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    fh = open(path, "rb")  # noqa: SIM115 - returned open, closed by the caller's `with`
    try:
        packed = fh.peek(2)[:2] == GZIP_MAGIC
    except OSError:  # the read itself fails: the reader reports it where it happens
        packed = False
    return gzip.GzipFile(fileobj=fh, mode="rb") if packed else fh


def _wide_encoding(path: Path) -> str | None:
    """'UTF-16' or 'UTF-32' when the file's first bytes say so (a byte-order mark, or a zero byte
    beside the first character, as Windows tools write text), else None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:  # the reader meets it again and says it where it happens
        return None
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    if (len(head) == 4 and head[0] != 0 and head[1:] == b"\x00\x00\x00") or head[:3] == b"\x00\x00\x00":
        return "UTF-32"  # without a byte-order mark
    if len(head) >= 2 and head[:2] != b"\x00\x00" and (head[0] == 0) != (head[1] == 0):
        return "UTF-16"
    return None


def _decode_line(data: bytes) -> str:
    # A BOM can start any line, not just the first, when files were joined with `cat`.
    return data.decode("utf-8").removeprefix("\ufeff")


_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]|[\]}]|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')


def _json_failure(exc: ValueError | RecursionError, text: str) -> tuple[str, int | None]:
    """Why `json.loads(text)` failed, and the 1-based line of the trouble when it can be found.

    Besides `JSONDecodeError`, json raises a plain ValueError for an integer longer than
    Python's limit (4300 digits) and RecursionError for deep nesting; neither has a position,
    so the text is scanned (strings skipped) for the long number or the deepest bracket.
    """
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON: {exc.msg} (column {exc.colno})", exc.lineno
    limit = sys.get_int_max_str_digits()
    deep = isinstance(exc, RecursionError)
    depth = max_depth = digits = 0
    where: int | None = None
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        if token in ("[", "{"):
            depth += 1
            if deep and depth > max_depth:
                max_depth, where = depth, m.start()
        elif token in ("]", "}"):
            depth -= 1
        elif not deep and token.lstrip("-").isdigit() and len(token.lstrip("-")) > limit:
            digits, where = len(token.lstrip("-")), m.start()
            break
    if deep:
        what = f"nested too deeply ({max_depth} levels)"
    elif digits:
        what = f"number too long ({digits} digits; Python reads integers of at most {limit})"
    else:
        return f"malformed JSON ({exc})", None
    if where is None:
        return f"malformed JSON: {what}", None
    line = text.count("\n", 0, where) + 1
    column = where - text.rfind("\n", 0, where)
    return f"malformed JSON: {what} (column {column})", line


def _cr_only_hint(text: str, exc: json.JSONDecodeError) -> str:
    # Binary lines split on "\n" only, so a CR-only file is one line with "Extra data" after a CR.
    before = text[: exc.pos]
    if exc.msg == "Extra data" and "\r" in before[len(before.rstrip()) :]:
        return "; the file seems to use CR-only line ends (old Mac): convert them to \\n"
    return ""


def _loads(text: str) -> tuple[Any, str | None]:
    """JSON text as Python, and a key that one object repeats (None if none): json keeps the
    last value silently, which would lose the first."""
    repeated: list[str] = []

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            keys = [k for k, _ in pairs]
            key = next(k for i, k in enumerate(keys) if k in keys[:i])
            repeated.append(key)
            return _RepeatedKey(obj, key=key)
        return obj

    value = json.loads(text, object_pairs_hook=unique)
    return value, repeated[0] if repeated else None


class _RepeatedKey(dict):
    """A JSON object that gave one key twice (`key`), so that a record holding one is named."""

    def __init__(self, items: dict[str, Any], *, key: str):
        super().__init__(items)
        self.key = key


def _repeat_in(value: Any) -> str | None:
    """The key some object within `value` gave twice, if any."""
    if isinstance(value, _RepeatedKey):
        return value.key
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return next((key for child in children if (key := _repeat_in(child)) is not None), None)


def _repeated_key(key: str) -> str:
    return f"the field {key!r} appears twice in one object: JSON keeps the last value, so one would be lost"


def _read_jsonl(spec: str, path: Path) -> Iterator[tuple[str, Any]]:
    """Line by line in binary, so a bad byte or bad line costs one row, not the file."""
    lineno = 0
    with _open_binary(path) as fh:
        lines = iter(fh)
        while True:
            try:
                data = next(lines)
            except StopIteration:
                return
            except (EOFError, OSError, zlib.error) as exc:
                yield f"line {lineno + 1}", ReadProblem(corrupt_reason(exc), fatal=True)
                return
            lineno += 1
            location = f"line {lineno}"
            try:
                text = _decode_line(data)
            except UnicodeDecodeError as exc:
                raw = data.decode("utf-8", "replace")
                yield location, ReadProblem(f"not valid UTF-8 (byte {exc.start} of the line)", raw)
                continue
            if not text.strip():
                continue
            text = text.rstrip("\r\n")  # a line cut short fails at its end, not at "line 2 column 1"
            try:
                record, repeated = _loads(text)
            except (ValueError, RecursionError) as exc:
                reason = _json_failure(exc, text)[0]
                if isinstance(exc, json.JSONDecodeError):
                    reason += _cr_only_hint(text, exc)
                yield location, ReadProblem(reason, text)
                continue
            if repeated is not None:
                yield location, ReadProblem(_repeated_key(repeated), text.rstrip("\r\n"))
                continue
            yield location, record


def _read_json(spec: str, path: Path, picker: _SplitPicker) -> Iterator[tuple[str, Any]]:
    """A whole JSON document: a list of records, or an object holding lists by split ("train", "data", ...)."""
    try:
        with _open_binary(path) as fh:
            data = fh.read()
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(spec, corrupt_reason(exc)) from exc
    try:
        text, bad_bytes = data.decode("utf-8").removeprefix("\ufeff"), None
    except UnicodeDecodeError as exc:
        # a bad byte costs the row it is in, not the file, as in JSON Lines: read on with such
        # bytes kept as lone surrogates, and name the rows that hold them
        text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
        line = data.count(b"\n", 0, exc.start) + 1
        bad_bytes = DataError(spec, "not valid UTF-8", location=f"line {line}")
    if not text.strip():
        return
    try:
        doc, repeated = _loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            # Many ".json" files are really JSON Lines; read them as such, with line numbers.
            picker.none()  # which has no splits
            yield from _read_jsonl(spec, path)
            return
        raise DataError(spec, _json_failure(exc, text)[0], location=f"line {exc.lineno}") from exc
    except (ValueError, RecursionError) as exc:  # a too long number or too deep nesting
        reason, line = _json_failure(exc, text)
        raise DataError(spec, reason, location=None if line is None else f"line {line}") from exc
    if isinstance(doc, _RepeatedKey):  # the file's own keys: {"train": [...], "train": [...]}
        raise DataError(spec, _repeated_key(doc.key))
    try:
        records = _json_records(spec, doc, picker)
    except DataError:
        if bad_bytes is not None:  # (a split's name with the bad byte, say)
            raise bad_bytes from None
        raise
    if bad_bytes is not None:
        undecodable = [_holds_undecodable(record) for record in records]
        if not any(undecodable):  # outside the records: in the file's own structure
            raise bad_bytes
    else:
        undecodable = [False] * len(records)
    repeats = [_repeat_in(record) for record in records] if repeated is not None else [None] * len(records)
    if repeated is not None and not any(repeats):
        # in a row of a split not read here: none of this run's business; else outside the
        # records (a split's columns), where it costs the file
        elsewhere = isinstance(doc, dict) and any(
            isinstance(rows, list) and rows is not records and _repeat_in(rows) for rows in doc.values()
        )
        if not elsewhere:
            raise DataError(spec, _repeated_key(repeated))
    for index, (record, key, bad) in enumerate(zip(records, repeats, undecodable), start=1):
        if bad:
            raw = json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogateescape")
            yield f"row {index}", ReadProblem("not valid UTF-8", raw.decode("utf-8", "replace"))
        elif key is None:
            yield f"row {index}", record
        else:  # one record's own key: that row is invalid, not the file
            yield f"row {index}", ReadProblem(_repeated_key(key), json.dumps(record, ensure_ascii=False))


def _holds_undecodable(value: Any) -> bool:
    """A string, key or nested value holding a byte that was not UTF-8 (read as a lone surrogate)."""
    if isinstance(value, str):
        return has_bad_bytes(value)
    if isinstance(value, dict):
        return any(_holds_undecodable(k) or _holds_undecodable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_undecodable(v) for v in value)
    return False


def _json_records(spec: str, doc: Any, picker: _SplitPicker) -> list[Any]:
    if isinstance(doc, list):
        picker.none()
        return doc
    if not isinstance(doc, dict):
        raise DataError(spec, f"expected a JSON list of objects, got {type(doc).__name__}")
    rows = _column_rows(doc) or _split_frame_rows(doc)
    if rows is not None:
        picker.none()
        return rows
    # a split may hold its rows by columns too ({"train": Dataset.to_dict(), ...})
    columnar = {k: r for k, v in doc.items() if isinstance(v, dict) and (r := _column_rows(v)) is not None}
    uneven = _uneven_columns(doc)
    if uneven:
        raise DataError(
            spec,
            f"columns of different lengths ({uneven}): a JSON object of columns needs one value per row in each",
        )
    if picker.split is not None:
        lists = [k for k, v in doc.items() if isinstance(v, list) or k in columnar]
        if picker.split in doc and picker.split not in lists:
            raise DataError(
                spec, f"{picker.split!r} holds {type_name(doc[picker.split])}, not a list of records"
            )
    elif _is_one_record(doc):  # a record, whatever its other fields hold ("data": tags, ...)
        return [doc]  # (a JSON Lines file of one line is also this)
    else:  # only the usual names: a single record's message lists are not splits
        lists = [k for k in JSON_SPLIT_KEYS if isinstance(doc.get(k), list) or k in columnar]
        if not lists and not _holds_records(doc):
            return [doc]  # let the shape check say what is wrong with it
        if not lists:
            raise DataError(
                spec,
                f"JSON object has no list of records under {', '.join(JSON_SPLIT_KEYS)} "
                f"(keys: {sorted(doc)[:10]}); name the key holding them as {spec}:KEY",
            )
    name = picker.pick(lists)
    if not doc[name]:
        raise DataError(spec, f"empty: split {name!r} has no records")
    return columnar.get(name, doc[name])


def _split_frame_rows(doc: dict) -> list[dict] | None:
    """pandas' `to_json(orient="split")`: {"columns": [...], "index": [...], "data": [[...], ...]}."""
    columns, data = doc.get("columns"), doc.get("data")
    if not (
        set(doc) <= {"columns", "index", "data"} and isinstance(columns, list) and isinstance(data, list)
    ):
        return None
    if not data or not all(isinstance(c, str) for c in columns):
        return None
    if not all(isinstance(row, list) and len(row) == len(columns) for row in data):
        return None
    return [dict(zip(columns, row)) for row in data]


def _uneven_columns(doc: dict) -> str | None:
    """The lengths, when `doc` is columns of lists (chosen and rejected among them) that differ."""
    if not ({"chosen", "rejected"} <= doc.keys()) or not all(isinstance(v, list) for v in doc.values()):
        return None
    if any(is_message(x) for v in doc.values() for x in v):
        return None
    lengths = {k: len(v) for k, v in doc.items()}
    return None if len(set(lengths.values())) == 1 else ", ".join(f"{k}: {n}" for k, n in lengths.items())


def _column_rows(doc: dict) -> list[dict] | None:
    """The rows of data written by columns, or None: pandas' `to_json()` default ({"chosen":
    {"0": ..., "1": ...}, ...}, keyed by whatever index the frame has) or a dict of lists (`Dataset.to_dict()`, `DataFrame.to_dict("list")`),
    told by `chosen` and `rejected` among the columns (or, for items to score and prompts to
    answer, `prompt`, `response` or `completion`), all of one length, holding no chat message
    itself (one record's message lists do)."""
    told = {"chosen", "rejected"} <= doc.keys() or bool({"prompt", "response", "completion"} & doc.keys())
    if not told or not doc or not all(isinstance(v, dict | list) for v in doc.values()):
        return None
    if all(isinstance(v, dict) for v in doc.values()):  # keyed by the row index
        keys = list(next(iter(doc.values())))
        if not keys or any(list(v) != keys for v in doc.values()):
            return None
        if not all(k.isdigit() for k in keys) and any(is_message(v) for v in doc.values()):
            return None  # {chosen: {role, content}} is one record; other labels are a frame's index
        doc = {name: [column[k] for k in keys] for name, column in doc.items()}
    lengths = {len(v) if isinstance(v, list) else -1 for v in doc.values()}
    if len(lengths) != 1 or lengths == {0} or any(is_message(x) for v in doc.values() for x in v):
        return None
    return [dict(zip(doc, row)) for row in zip(*doc.values())]


def _is_one_record(doc: dict) -> bool:
    """The object is a preference record of a known shape (its lists are part of it)."""

    try:
        detect_shape(doc)
    except RowError:
        return False
    return True


def _holds_records(doc: dict) -> bool:
    """A value that is a list of objects other than chat messages or rated answers: records.
    An object with a prompt is a record, though its `response` makes it look like an answer."""
    return any(
        isinstance(v, list)
        and any(isinstance(x, dict) and ("prompt" in x or not (is_message(x) or is_answer(x))) for x in v)
        for v in doc.values()
    )


def _read_parquet(spec: str, path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        repeated = next((name for i, name in enumerate(names) if name in names[:i]), None)
        if repeated is not None:
            raise DataError(
                spec, f"the column {repeated!r} appears twice: which one holds the data is unknowable"
            )
        batches = parquet.iter_batches(batch_size=1024)
        index = 0
        for batch in batches:
            for record in batch.to_pylist():
                index += 1
                yield f"row {index}", record
    except (pa.ArrowException, OSError) as exc:
        raise DataError(spec, f"unreadable Parquet file ({exc})") from exc


def _iter_dataset(ds: Any) -> Iterator[tuple[str, Any]]:
    for index, record in enumerate(ds, start=1):
        yield f"row {index}", record


def _read_saved_dataset(spec: str, path: Path, picker: _SplitPicker) -> Iterator[tuple[str, Any]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except IndexError as exc:  # datasets cannot load a saved split with no rows (it has no Arrow file)
        ds = _load_split_alone(spec, path, picker, exc)
    except (FileNotFoundError, ValueError, OSError) as exc:
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            # it is one: what failed is a file of it (a truncated Arrow shard)
            raise DataError(
                spec,
                f"unreadable saved dataset: one of its files is damaged or missing ({type(exc).__name__}: {exc})",
            ) from exc
        raise DataError(spec, f"directory is not a dataset saved with save_to_disk ({exc})") from exc
    except (TypeError, AttributeError, KeyError) as exc:  # its JSON metadata is not what datasets wrote
        raise DataError(
            spec, f"unreadable saved dataset: damaged metadata ({type(exc).__name__}: {exc})"
        ) from exc
    else:
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[picker.pick(list(ds))]
        else:
            picker.none()
    yield from _iter_dataset(ds)


def _no_rows(path: Path) -> bool:
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("_data_files") == []


def _load_split_alone(spec: str, path: Path, picker: _SplitPicker, exc: IndexError) -> Any:
    """After `load_from_disk` failed on an empty split: say so, or load the wanted split by itself."""
    import datasets

    if not (path / "dataset_dict.json").is_file():
        picker.none()
        if _no_rows(path):
            raise DataError(spec, "empty: the saved dataset has no rows") from exc
        raise DataError(spec, f"unreadable saved dataset (IndexError: {exc})") from exc
    try:
        splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(spec, f"unreadable dataset_dict.json ({err})") from err
    if not isinstance(splits, list):
        raise DataError(spec, f"unreadable dataset_dict.json (splits is {type(splits).__name__})")
    want = picker.pick([str(s) for s in splits])
    if _no_rows(path / want):
        raise DataError(spec, f"empty: split {want!r} of the saved dataset has no rows") from exc
    try:
        return datasets.load_from_disk(str(path / want))
    except (IndexError, FileNotFoundError, ValueError, OSError, TypeError, AttributeError, KeyError) as err:
        raise DataError(spec, f"unreadable split {want!r} of the saved dataset ({err})") from err


def _read_hub(spec: str, picker: _SplitPicker) -> Iterator[tuple[str, Any]]:
    name, spec_split = parse_hf_spec(spec)
    if picker.split is not None and spec_split is not None and picker.split != spec_split:
        raise DataOptionError(
            f"{spec!r} names split {spec_split!r} but split={picker.split!r} was also given"
        )
    want = picker.split or spec_split or picker.default
    if want is None:  # listing a Hub dataset's splits needs the network; the user knows them
        raise DataError(spec, f"name the split to read, e.g. {spec}:test")
    import datasets

    try:
        ds = datasets.load_dataset(name, split=want)
    except Exception as exc:  # noqa: BLE001 - the Hub fails in many ways; all mean "could not load"
        hint = (
            " (is the Hub reachable? HF_HUB_OFFLINE may be set)" if isinstance(exc, ConnectionError) else ""
        )
        raise DataError(spec, f"could not load from the Hugging Face Hub{hint}: {exc}") from exc
    yield from _iter_dataset(ds)
