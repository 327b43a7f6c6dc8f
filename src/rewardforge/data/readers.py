"""Read raw records from files, saved datasets and the Hub, one at a time, with exact locations.

Readers never judge a record's content (that is `shapes`); they only turn bytes into
`(location, record)` pairs. A problem a reader finds (bad JSON, bad UTF-8, a corrupt gzip)
is yielded as a `ReadProblem` in place of the record by `read_records`, so the loader can
either raise or collect it; `iter_records` is the strict public form that raises.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardforge.data.errors import DataError

HF_PREFIX = "hf:"
_HF_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
_JSON_SUFFIXES = (".json", ".json.gz")
SUPPORTED = ".jsonl, .jsonl.gz, .json, .json.gz, .parquet, .csv, a datasets.save_to_disk directory, hf:ORG/NAME[:split]"


@dataclass
class ReadProblem:
    """A record that could not be read. `fatal` means reading cannot go on after it."""

    reason: str
    raw: Any = None
    fatal: bool = False


def parse_hf_spec(spec: str) -> tuple[str, str | None]:
    """`hf:ORG/NAME[:split]` -> (name, split or None). Bad syntax is a ValueError."""
    if not spec.startswith(HF_PREFIX):
        raise ValueError(f"not a Hub spec (expected 'hf:ORG/NAME[:split]'): {spec!r}")
    name, sep, split = spec[len(HF_PREFIX) :].partition(":")
    if not _HF_NAME.match(name) or (sep and not split) or ":" in split:
        raise ValueError(f"bad Hub spec {spec!r}: expected 'hf:ORG/NAME' or 'hf:ORG/NAME:SPLIT'")
    return name, split or None


def read_records(spec: str, split: str | None = None) -> Iterator[tuple[str, Any]]:
    """Lenient reader: yields (location, record or ReadProblem). Whole-source problems raise DataError."""
    if spec.startswith(HF_PREFIX):
        yield from _read_hub(spec, split)
        return
    path = Path(spec)
    if not path.exists():
        raise DataError(spec, "no such file or directory")
    if path.is_dir():
        yield from _read_saved_dataset(spec, path, split)
        return
    name = path.name.lower()
    if name.endswith(_JSONL_SUFFIXES):
        _no_split(spec, split)
        yield from _read_jsonl(spec, path)
    elif name.endswith(_JSON_SUFFIXES):
        yield from _read_json(spec, path, split)
    elif name.endswith(".parquet"):
        _no_split(spec, split)
        yield from _read_parquet(spec, path)
    elif name.endswith(".csv"):
        _no_split(spec, split)
        yield from _read_csv(spec, path)
    else:
        raise DataError(
            spec, f"unsupported file type {path.suffix or '(no extension)'!r}; supported: {SUPPORTED}"
        )


def iter_records(spec: str, split: str | None = None) -> Iterator[tuple[str, Any]]:
    """Stream (location, raw record) from any supported source; the first unreadable record raises.

    Locations are "line N" (JSONL, 1-based, blank lines counted) or "row N" (every other
    format, 1-based over data records; a CSV header is not a row). An empty source raises.
    """
    count = 0
    for location, record in read_records(spec, split):
        if isinstance(record, ReadProblem):
            raise DataError(spec, record.reason, location=location)
        count += 1
        yield location, record
    if count == 0:
        raise DataError(spec, "empty: no records at all")


def _no_split(spec: str, split: str | None) -> None:
    # Silently reading everything when a split was asked for would hide a mistake.
    if split is not None:
        raise DataError(spec, f"split {split!r} was given but this file type has no splits")


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _corrupt(exc: BaseException) -> str:
    return f"truncated or corrupt compressed file ({type(exc).__name__}: {exc})"


def _decode_line(data: bytes, first: bool) -> str:
    text = data.decode("utf-8")
    return text.removeprefix("\ufeff") if first else text


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
                yield f"line {lineno + 1}", ReadProblem(_corrupt(exc), fatal=True)
                return
            lineno += 1
            location = f"line {lineno}"
            try:
                text = _decode_line(data, lineno == 1)
            except UnicodeDecodeError as exc:
                raw = data.decode("utf-8", "replace")
                yield location, ReadProblem(f"not valid UTF-8 (byte {exc.start} of the line)", raw)
                continue
            if not text.strip():
                continue
            try:
                yield location, json.loads(text)
            except json.JSONDecodeError as exc:
                yield (
                    location,
                    ReadProblem(f"malformed JSON: {exc.msg} (column {exc.colno})", text.rstrip("\r\n")),
                )


def _read_json(spec: str, path: Path, split: str | None) -> Iterator[tuple[str, Any]]:
    """A whole JSON document: a list of records, or an object holding one (`split`, "data", "train")."""
    try:
        with _open_binary(path) as fh:
            data = fh.read()
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(spec, _corrupt(exc)) from exc
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(spec, "not valid UTF-8", location=f"line {line}") from exc
    if not text.strip():
        return
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and split is None and text.lstrip().startswith("{"):
            # Many ".json" files are really JSON Lines; read them as such, with line numbers.
            yield from _read_jsonl(spec, path)
            return
        raise DataError(
            spec, f"malformed JSON: {exc.msg} (column {exc.colno})", location=f"line {exc.lineno}"
        ) from exc
    for index, record in enumerate(_json_records(spec, doc, split), start=1):
        yield f"row {index}", record


def _json_records(spec: str, doc: Any, split: str | None) -> list[Any]:
    if isinstance(doc, list):
        _no_split(spec, split)
        return doc
    if isinstance(doc, dict):
        keys = [split] if split is not None else ["data", "train"]
        for key in keys:
            if isinstance(doc.get(key), list):
                return doc[key]
        want = " or ".join(repr(k) for k in keys)
        raise DataError(spec, f"JSON object has no {want} list of records (keys: {sorted(doc)[:10]})")
    raise DataError(spec, f"expected a JSON list of objects, got {type(doc).__name__}")


def _read_parquet(spec: str, path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
        index = 0
        for batch in batches:
            for record in batch.to_pylist():
                index += 1
                yield f"row {index}", record
    except (pa.ArrowException, OSError) as exc:
        raise DataError(spec, f"unreadable Parquet file ({exc})") from exc


def _maybe_json_cell(cell: str) -> Any:
    """A CSV cell holding a JSON object or message list is parsed; anything else stays text."""
    stripped = cell.strip()
    if not stripped or stripped[0] not in "[{":
        return cell
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        return cell
    if isinstance(value, dict) or (
        isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
    ):
        return value
    return cell


def _has_bad_bytes(text: str) -> bool:
    # surrogateescape maps each undecodable byte to U+DC80..U+DCFF, which valid UTF-8 never yields.
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _read_csv(spec: str, path: Path) -> Iterator[tuple[str, Any]]:
    csv.field_size_limit(2**31 - 1)  # long responses exceed the 128 KiB default
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise DataError(spec, f"malformed CSV header ({exc})", location="line 1") from exc
        if header is None:
            return
        if _has_bad_bytes("".join(header)):
            raise DataError(spec, "CSV header is not valid UTF-8", location="line 1")
        index = 0
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield f"row {index + 1}", ReadProblem(f"malformed CSV ({exc})", fatal=True)
                return
            if not any(c.strip() for c in cells):
                continue
            index += 1
            location = f"row {index}"
            raw_text = ",".join(cells)
            if _has_bad_bytes(raw_text):
                clean = raw_text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                yield location, ReadProblem("not valid UTF-8", clean)
            elif len(cells) > len(header):
                yield location, ReadProblem(f"{len(cells)} cells but the header has {len(header)}", cells)
            else:
                cells += [None] * (len(header) - len(cells))
                yield location, {h: (c if c is None else _maybe_json_cell(c)) for h, c in zip(header, cells)}


def _iter_dataset(ds: Any) -> Iterator[tuple[str, Any]]:
    for index, record in enumerate(ds, start=1):
        yield f"row {index}", record


def _pick_split(spec: str, dsd: Any, split: str | None) -> Any:
    want = split or "train"
    if want not in dsd:
        raise DataError(spec, f"no split {want!r}; available: {sorted(dsd)}")
    return dsd[want]


def _read_saved_dataset(spec: str, path: Path, split: str | None) -> Iterator[tuple[str, Any]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataError(spec, f"directory is not a dataset saved with save_to_disk ({exc})") from exc
    if isinstance(ds, datasets.DatasetDict):
        ds = _pick_split(spec, ds, split)
    else:
        _no_split(spec, split)
    yield from _iter_dataset(ds)


def _read_hub(spec: str, split: str | None) -> Iterator[tuple[str, Any]]:
    name, spec_split = parse_hf_spec(spec)
    if split is not None and spec_split is not None and split != spec_split:
        raise ValueError(f"{spec!r} names split {spec_split!r} but split={split!r} was also given")
    import datasets

    want = split or spec_split or "train"
    try:
        ds = datasets.load_dataset(name, split=want)
    except Exception as exc:  # noqa: BLE001 - the Hub fails in many ways; all mean "could not load"
        hint = (
            " (is the Hub reachable? HF_HUB_OFFLINE may be set)" if isinstance(exc, ConnectionError) else ""
        )
        raise DataError(spec, f"could not load from the Hugging Face Hub{hint}: {exc}") from exc
    yield from _iter_dataset(ds)
