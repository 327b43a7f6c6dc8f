"""CSV files, and the cells in them that hold lists: chat messages, HelpSteer3's `output` or
rated completions written as JSON or as the Python text pandas and `datasets` write."""

from __future__ import annotations

import ast
import csv
import io
import json
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rewardforge.data.columns import CONVERSATIONS
from rewardforge.data.errors import DataError, ReadProblem, corrupt_reason
from rewardforge.data.public_sets import RANKED_RANK_KEYS, RANKED_SCORE_KEYS
from rewardforge.data.values import is_message


def is_answer(value: Any) -> bool:
    """A HelpSteer3 answer or a rated completion (openbmb/UltraFeedback, Nectar; a completion
    under `text`/`content` counts only with a rating, as those keys are common elsewhere)."""
    if not isinstance(value, dict):
        return False
    rated = any(k in value for k in RANKED_SCORE_KEYS + RANKED_RANK_KEYS)
    return any(k in value for k in ("answer", "response")) or (
        rated and any(k in value for k in ("text", "content"))
    )


def _maybe_json_cell(cell: str, io_turns: bool = False) -> Any:
    """A CSV cell holding a chat message list, one message object, HelpSteer3's `output`, a
    list of rated completions or, in a conversation column (`io_turns`), Capybara's {input,
    output} turns is parsed, as JSONL would give it: written as JSON, or as the
    Python repr that pandas' and `datasets`' `to_csv` write (`[{'role': 'user', ...}]`).

    Anything else stays text, so an answer like `{"a": 1}` reads as it would from JSONL.
    """
    stripped = cell.strip()
    if (stripped[:1], stripped[-1:]) not in (("[", "]"), ("{", "}")):
        return cell
    for parse in (json.loads, python_literal, _numpy_repr):
        try:
            value = parse(stripped)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):  # also a too long number
            continue
        if is_message(value):
            return value
        # one whole message or answer is enough: the other items are then checked one by one, as
        # from JSONL (a message without content, a null), and named in the error
        if isinstance(value, list) and any(
            is_message(v) or is_answer(v) or (io_turns and _io_turn(v)) for v in value
        ):
            return value
        return cell
    return cell


def _io_turn(value: Any) -> bool:
    """A turn written as {input, output} (Capybara's `conversation`), as JSONL gives it."""
    return isinstance(value, dict) and "input" in value and "output" in value


_NUMPY_ITEM_BREAK = re.compile(r"\}\s+\{")
# a cell that starts like the Python text of a chat message list
MESSAGE_REPR = re.compile(r"\s*\[\s*\{\s*'(role|from|content)'\s*:")


def object_text(text: str) -> Any:
    """A value written as JSON text, or as the Python text pandas' `to_csv` writes (numpy arrays
    too); ValueError if it is neither."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return python_literal(text)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise ValueError("neither JSON nor Python literal text") from None


def python_literal(cell: str) -> Any:
    """`ast.literal_eval`, also reading numpy's `array([...], dtype=object)` as its list (pandas
    writes nested lists of a Parquet-backed frame so)."""
    return _literal(ast.parse(cell.strip(), mode="eval").body)


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
    ):
        return -node.operand.value  # type: ignore[operator]
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "array" and len(node.args) == 1:
        return _literal(node.args[0])
    raise ValueError(f"not a literal: {type(node).__name__}")


SCAN_ROWS = 1000


def _scan(path: Path) -> tuple[str, set[str], set[str]]:
    """One look at the file's head: its delimiter ("," unless the header is one column holding ";"
    or tabs, a European or tab-separated export) and its columns of completion lists: those most
    of whose first rows hold lists of texts, when there are two or more of them (RewardBench 2's
    and RM-Bench's chosen and rejected, under any name; CSV has no other way to hold them).
    Decided for the file: a reply that only looks like a list (`['a', 'I']` to a coding
    question) in a file of texts stays text. Also the id columns pandas wrote as floats (every
    id of the head ends in ".0": an integer column with missing values), whose "5.0" is id 5;
    in any other column "1.0" and "1.5" are ids as written."""
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        try:
            head = fh.readline()
            first = next(csv.reader([head]), [])
        except (csv.Error, OSError):
            return ",", set(), set()  # reported when the file is read
        delimiter = next((d for d in ("\t", ";") if d in first[0]), ",") if len(first) == 1 else ","
        header = [name.strip() for name in next(csv.reader([head], delimiter=delimiter), [])]
        rows, lists = 0, [0] * len(header)
        ids = {i: True for i, name in enumerate(header) if _is_id_column(name)}  # all ".0" so far
        try:
            for cells in csv.reader(fh, delimiter=delimiter):
                rows += 1
                for i, cell in enumerate(cells[: len(header)]):
                    lists[i] += _text_list(cell) is not None
                    if i in ids and cell.strip() and not _FLOAT_INTEGER.match(cell):
                        ids[i] = False
                if rows >= SCAN_ROWS:
                    break
        except (csv.Error, OSError):
            return delimiter, set(), set()
    found = {name for name, count in zip(header, lists) if name and count * 2 > rows}
    float_ids = {header[i] for i, all_float in ids.items() if all_float}
    return delimiter, found if len(found) >= 2 else set(), float_ids


def _cell(cell: str | None, completion_list: bool, an_id: bool = False, io_turns: bool = False) -> Any:
    """A cell as JSONL would give it: a completion list, a message list or answers, else text.
    An id written "5.0" is 5: pandas writes an integer column with missing values as floats."""
    if cell is None:
        return None
    if an_id and _FLOAT_INTEGER.match(cell):
        return cell.strip().split(".")[0]
    return (_text_list(cell) if completion_list else None) or _maybe_json_cell(cell, io_turns)


_FLOAT_INTEGER = re.compile(r"\s*-?\d+\.0+\s*$")


def _is_id_column(name: str) -> bool:
    return "id" in re.split(r"[^a-z]+", name.lower())


def _text_list(cell: Any) -> list[str] | None:
    """A list of texts written as JSON, as Python (pandas) or as numpy prints one (`datasets`:
    `['a' 'b']`, no commas, which Python itself would read as the one text 'ab')."""
    stripped = cell.strip() if isinstance(cell, str) else ""
    if not (stripped.startswith("[") and stripped.endswith("]")):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        value = _string_tokens(stripped)
    ok = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
    return value if ok else None


def _string_tokens(cell: str) -> list[str] | None:
    """`[` string literals `]`, a comma or only space between them; None for anything else."""
    try:
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(cell).readline)
            if t.type
            not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
        ]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    if len(tokens) < 3 or tokens[0].string != "[" or tokens[-1].string != "]":
        return None
    texts: list[str] = []
    expect_string = True
    for token in tokens[1:-1]:
        if token.type == tokenize.STRING:
            try:
                text = ast.literal_eval(token.string)
            except (ValueError, SyntaxError):
                return None
            if not isinstance(text, str):
                return None  # bytes
            texts.append(text)
            expect_string = False
        elif token.string == "," and not expect_string:
            expect_string = True
        else:
            return None
    return texts or None


def _numpy_repr(cell: str) -> Any:
    """`datasets`' to_csv writes a list of dicts as numpy prints it: items split by a space or
    a line break, no comma. Read only when each break is one between items (none inside a text)."""
    breaks = len(_NUMPY_ITEM_BREAK.findall(cell))
    if not breaks:
        raise ValueError("not a numpy repr")
    value = python_literal(_NUMPY_ITEM_BREAK.sub("}, {", cell))
    if not isinstance(value, list) or len(value) != breaks + 1:
        raise ValueError("a break inside a text")
    return value


def has_bad_bytes(text: str) -> bool:
    # surrogateescape maps each undecodable byte to U+DC80..U+DCFF, which valid UTF-8 never yields.
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _csv_error(exc: csv.Error, what: str, start_line: int, line: int, last_line: int | None = None) -> str:
    """Say what a CSV syntax error costs: reading stops there (a reader resumed after it could
    start inside a quoted cell and take its lines for rows), so the rest of the file is unread."""
    if str(exc) == "unexpected end of data":
        # Without strict=True, csv folds everything after the open quote into one cell.
        return (
            f"unterminated quoted field starting at {what} (line {start_line}): its closing quote is "
            f"missing, so lines {start_line}-{line} (the rest of the file) could not be read"
        )
    if last_line is None:
        return f"malformed CSV at line {line} ({exc})"
    rest = f"line {start_line}" if last_line <= start_line else f"lines {start_line}-{last_line}"
    return f"malformed CSV at line {line} ({exc}); reading stops there, so {rest} (the rest of the file) could not be read"


def _check_header(spec: str, header: list[str]) -> list[int]:
    """Raise on a duplicate column name; return the indexes of unnamed columns."""
    seen: set[str] = set()
    for name in header:
        if name.strip() and name in seen:
            raise DataError(spec, f"duplicate column {name!r} in the CSV header", location="line 1")
        seen.add(name)
    return [i for i, name in enumerate(header) if not name.strip()]


def read_csv(spec: str, path: Path, notes: list[str] | None = None) -> Iterator[tuple[str, Any]]:
    if path.exists() and not path.is_file():  # a pipe reads once; the scan and the reader each open
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / path.name
            with open(path, "rb") as src, open(copy, "wb") as dst:
                shutil.copyfileobj(src, dst)
            yield from read_csv(spec, copy, notes)
        return
    csv.field_size_limit(2**31 - 1)  # long responses exceed the 128 KiB default
    delimiter, list_columns, id_columns = _scan(path)
    replies = sorted(list_columns & {"chosen", "rejected"})
    if replies and notes is not None:  # a reply that is a list literal is read so too: said
        notes.append(f"CSV cells of {', '.join(replies)} read as lists of completions")
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        # strict: an unterminated quote or text after a closing quote is an error, not a merged cell
        reader = csv.reader(fh, strict=True, delimiter=delimiter)
        try:
            header = next(reader, None)
        except OSError as exc:
            raise DataError(spec, corrupt_reason(exc), location="line 1") from exc
        except csv.Error as exc:
            raise DataError(
                spec, _csv_error(exc, "the header", 1, reader.line_num), location="line 1"
            ) from exc
        if header is None:
            return
        if has_bad_bytes("".join(header)):
            raise DataError(spec, "CSV header is not valid UTF-8", location="line 1")
        header = [name.strip() for name in header]  # "prompt, chosen, rejected"
        unnamed = _check_header(spec, header)
        index = 0
        while True:
            start_line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                line = reader.line_num
                last_line = line + sum(1 for _ in fh)
                reason = _csv_error(exc, f"row {index + 1}", start_line, line, last_line)
                yield f"row {index + 1}", ReadProblem(reason, fatal=True)
                return
            except OSError as exc:
                yield f"row {index + 1}", ReadProblem(corrupt_reason(exc), fatal=True)
                return
            if len(cells) <= 1 and not "".join(cells).strip():
                continue  # a blank line
            index += 1
            location = f"row {index}"
            if not any(c.strip() for c in cells):  # pandas' row of missing values: ",,"
                yield location, ReadProblem("every cell of this row is empty", cells)
                continue
            for i in unnamed:
                value = cells[i].strip() if i < len(cells) else ""
                if value and not (i == 0 and value.lstrip("-").isdigit()):  # 0: pandas' index column
                    raise DataError(
                        spec,
                        f"column {i + 1} has no name in the CSV header but {location} has a value in it; "
                        "name the column",
                        location="line 1",
                    )
            raw_text = delimiter.join(cells)
            if has_bad_bytes(raw_text):
                clean = raw_text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                yield location, ReadProblem("not valid UTF-8", clean)
            elif len(cells) > len(header):
                yield location, ReadProblem(f"{len(cells)} cells but the header has {len(header)}", cells)
            else:
                cells += [None] * (len(header) - len(cells))
                record = {
                    # {input, output} lists are turns only in a conversation column (Capybara's);
                    # elsewhere such a list is a reply's text, as JSONL gives it
                    h: _cell(c, h in list_columns, h in id_columns, h.lower() in CONVERSATIONS)
                    for h, c in zip(header, cells)
                }
                unread = next(
                    (h for h, v in record.items() if isinstance(v, str) and MESSAGE_REPR.match(v)), None
                )
                if unread is None:
                    yield location, record
                else:
                    yield (
                        location,
                        ReadProblem(
                            f"column {unread!r} holds a message list written as Python text that cannot be "
                            "read back exactly (numpy's print of nested lists); save the data as JSONL or Parquet",
                            cells,
                        ),
                    )
