"""Readers on hostile or odd bytes: a clear DataError naming where, or the right pairs; never a traceback."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from rewardforge.data import DataError, load_pairs

GOOD = {"prompt": "Q?", "chosen": "Good answer", "rejected": "Bad answer"}
HUGE = "1" * 5000  # json.loads raises a plain ValueError past Python's 4300-digit limit
DEEP = "[" * 100_000 + "]" * 100_000  # json.loads raises RecursionError


def raises(spec: str, location: str | None, reason: str, **kwargs) -> DataError:
    """load_pairs(spec) raises a DataError at `location` whose reason matches `reason`."""
    with pytest.raises(DataError) as info:
        load_pairs(spec, **kwargs)
    err = info.value
    assert (err.source, err.location) == (spec, location), str(err)
    assert re.search(reason, err.reason), err.reason
    return err


def jsonl_with(tmp_path: Path, bad_line: str) -> str:
    """Lines 1 and 3 are good, line 2 is `bad_line`."""
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join([json.dumps(GOOD), bad_line, json.dumps(GOOD)]) + "\n", encoding="utf-8")
    return str(path)


def prompt_text(pair) -> str:
    return "\n".join(m["content"] for m in pair.prompt)


def write_csv(tmp_path: Path, rows: list[list[str]], name: str = "d.csv") -> str:
    path = tmp_path / name
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return str(path)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            '{"prompt": "Q", "chosen": "A", "rejected": "B", "margin": ' + HUGE + "}",
            r"number too long \(5000",
        ),
        ('{"prompt": "Q", "chosen": ' + DEEP + ', "rejected": "B"}', r"nested too deeply"),
    ],
    ids=["huge-number", "deep-nesting"],
)
def test_jsonl_line_json_cannot_read_costs_one_line(tmp_path, bad, reason):
    """Not JSONDecodeError, so it escaped as a traceback; it is one bad line like any malformed JSON."""
    spec = jsonl_with(tmp_path, bad)
    raises(spec, "line 2", r"^malformed JSON: " + reason)
    loaded = load_pairs(spec, skip_invalid=True)
    assert [p.source.rsplit(":", 1)[1] for p in loaded.pairs] == ["line 1", "line 3"]
    assert [r.location for r in loaded.rejected] == ["line 2"]
    assert re.search(reason, loaded.rejected[0].reason)


@pytest.mark.parametrize(
    ("value", "reason"),
    [(HUGE, r"^malformed JSON: number too long"), (DEEP, r"^malformed JSON: nested too deeply")],
    ids=["huge-number", "deep-nesting"],
)
def test_json_document_json_cannot_read_names_the_line(tmp_path, value, reason):
    """A whole .json document fails as one DataError, located at the line of the trouble."""
    path = tmp_path / "d.json"
    body = json.dumps([GOOD, GOOD], indent=1).replace('"Bad answer"', value, 1)
    path.write_text(body, encoding="utf-8")
    line = body[: body.index(value[:50])].count("\n") + 1
    assert line > 1
    raises(str(path), f"line {line}", reason)


def test_csv_cells_json_cannot_read_stay_text(tmp_path):
    """A cell that only looks like JSON must not crash the CSV reader; it is the row's text."""
    spec = write_csv(tmp_path, [["prompt", "chosen", "rejected"], ["Q", f"[{HUGE}]", DEEP]])
    pair = load_pairs(spec).pairs[0]
    assert (pair.chosen_text, pair.rejected_text) == (f"[{HUGE}]", DEEP)


def test_empty_saved_dataset(tmp_path):
    """datasets.load_from_disk fails with IndexError on a split with no rows."""
    import datasets

    empty = {"prompt": [], "chosen": [], "rejected": []}
    rows = {"prompt": ["Q?"], "chosen": ["Good"], "rejected": ["Bad"]}
    datasets.Dataset.from_dict(empty).save_to_disk(str(tmp_path / "ds"))
    raises(str(tmp_path / "ds"), None, r"^empty: the saved dataset has no rows$")
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(rows), "test": datasets.Dataset.from_dict(empty)}
    ).save_to_disk(str(tmp_path / "dsd"))
    raises(
        str(tmp_path / "dsd"), None, r"^empty: split 'test' of the saved dataset has no rows$", split="test"
    )
    assert len(load_pairs(str(tmp_path / "dsd"))) == 1  # the empty split does not spoil the others
    raises(str(tmp_path / "dsd"), None, r"^no split 'dev'; available: \['test', 'train'\]$", split="dev")


def test_csv_json_looking_text_stays_text(tmp_path):
    """Only chat-message or HelpSteer3 answer lists are parsed; other JSON-like text reads as from JSONL."""
    records = [
        {"prompt": '{"q": 1}', "chosen": '{"a": 1}', "rejected": "plain"},
        {"prompt": "Give JSON", "chosen": '[{"name": "x"}]', "rejected": "[1, 2]"},
        {"prompt": "Q", "chosen": "[]", "rejected": '[{"role": "assistant"}, {"name": "x"}]'},
    ]
    rows = [["prompt", "chosen", "rejected"]] + [list(r.values()) for r in records]
    from_csv = load_pairs(write_csv(tmp_path, rows))
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    from_jsonl = load_pairs(str(path))
    assert [p.to_dict() for p in from_csv.pairs] == [p.to_dict() for p in from_jsonl.pairs]
    assert from_csv.pairs[0].chosen_text == '{"a": 1}'
    # a HelpSteer3 `output` list is still parsed
    output = [
        {"answer": "Good", "label": {"is_preferred": True}},
        {"answer": "Bad", "label": {"is_preferred": False}},
    ]
    hs = write_csv(tmp_path, [["input", "output"], ["Q?", json.dumps(output)]], name="hs.csv")
    assert load_pairs(hs).pairs[0].chosen_text == "Good"


def test_csv_unterminated_quote_is_not_folded(tmp_path):
    """csv folds the rest of the file into the open quoted cell; that is an error at the row it opened."""
    path = tmp_path / "d.csv"
    path.write_text('prompt,chosen,rejected\nq0,good0,bad0\nq,good,"bad\nq2,good2,bad2\nq3,good3,bad3\n')
    spec = str(path)
    reason = r"^unterminated quoted field starting at row 2 \(line 3\)"
    raises(spec, "row 2", reason)
    loaded = load_pairs(spec, skip_invalid=True)
    assert [prompt_text(p) for p in loaded.pairs] == ["q0"]
    assert [r.location for r in loaded.rejected] == ["row 2"]
    assert re.search(reason, loaded.rejected[0].reason)
    # the rows it swallowed are no one bad row: the reason says how much of the file is lost
    assert loaded.rejected[0].reason.endswith("lines 3-5 (the rest of the file) could not be read")
    # a closed multi-line quoted field is fine
    path.write_text('prompt,chosen,rejected\n"line 1\nline 2",good,"bad\n"\nq2,good2,bad2\n')
    assert [prompt_text(p) for p in load_pairs(spec).pairs] == ["line 1\nline 2", "q2"]


def test_csv_text_after_closing_quote_is_an_error(tmp_path):
    """`"good" extra` was silently read as `good extra`."""
    path = tmp_path / "d.csv"
    path.write_text('prompt,chosen,rejected\nq0,good0,bad0\nq,"good" extra,bad\n')
    raises(str(path), "row 2", r"^malformed CSV at line 3 \(',' expected after '\"'\)")


def test_csv_duplicate_column(tmp_path):
    """The last of two same-named columns silently won."""
    spec = write_csv(tmp_path, [["prompt", "chosen", "chosen", "rejected"], ["q", "good", "other", "bad"]])
    raises(spec, "line 1", r"^duplicate column 'chosen' in the CSV header$")


def test_csv_unnamed_column_with_values(tmp_path):
    """A value under an unnamed column was dropped (here the prompt, leaving an empty one)."""
    spec = write_csv(tmp_path, [["", "chosen", "rejected"], ["", "good0", "bad0"], ["What?", "good", "bad"]])
    raises(spec, "line 1", r"^column 1 has no name in the CSV header but row 2 has a value in it")
    # empty header cells over empty columns (trailing commas) are fine
    spec = write_csv(tmp_path, [["prompt", "chosen", "rejected", ""], ["q", "good", "bad", ""]], name="t.csv")
    assert [prompt_text(p) for p in load_pairs(spec).pairs] == ["q"]
    # pandas' default to_csv writes its integer index under an unnamed first column: read as usual
    rows = [["", "prompt", "chosen", "rejected"], ["0", "q0", "good0", "bad0"], ["1", "q1", "good1", "bad1"]]
    spec = write_csv(tmp_path, rows, name="pandas.csv")
    assert [prompt_text(p) for p in load_pairs(spec).pairs] == ["q0", "q1"]


def test_empty_spec():
    """Path("") is ".", which was read as a saved dataset directory."""
    raises("", None, r"^no data source given \(empty path\)$")


def test_bom_on_later_jsonl_lines(tmp_path):
    """Files joined with `cat` carry a BOM at the start of a later line."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"".join(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n" for _ in range(3)))
    loaded = load_pairs(str(path))
    assert [p.source.rsplit(":", 1)[1] for p in loaded.pairs] == ["line 1", "line 2", "line 3"]


def test_cr_only_jsonl_says_why(tmp_path):
    """CR-only line ends make the whole file one line; the error says so."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\r".join(json.dumps(GOOD).encode() for _ in range(3)) + b"\r")
    raises(str(path), "line 1", r"^malformed JSON: Extra data .*CR-only line ends")


def test_a_file_that_cannot_be_read_is_one_line(tmp_path, monkeypatch):
    import rewardforge.data.readers as readers

    path = tmp_path / "locked.jsonl"
    path.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n')

    def refuse(file, *args, **kwargs):  # root ignores chmod 000, so refuse the way the OS would
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return open(file, *args, **kwargs)

    monkeypatch.setattr(readers, "open", refuse, raising=False)
    with pytest.raises(DataError, match=r"locked\.jsonl: cannot be read \(Permission denied\)"):
        load_pairs(str(path))


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_an_io_error_while_reading_is_a_read_error_not_a_corrupt_archive(tmp_path, suffix):
    link = tmp_path / f"eio{suffix}"
    link.symlink_to("/proc/self/mem")  # opens, then every read at offset 0 fails with EIO
    with pytest.raises(DataError) as err:
        load_pairs(str(link))
    assert "read error" in str(err.value) and "compressed" not in str(err.value)


@pytest.mark.parametrize("packed", [False, True], ids=["text", "gzip"])
def test_a_named_pipe_is_read_whole(tmp_path, packed):
    """The gzip check opened the file twice: from a pipe it lost the first rows read."""
    import gzip
    import json
    import os
    import threading

    pipe = tmp_path / "pipe.jsonl"
    os.mkfifo(pipe)
    text = "".join(
        json.dumps({"prompt": f"q{i}", "chosen": "a", "rejected": "b"}) + "\n" for i in range(3000)
    )
    data = gzip.compress(text.encode()) if packed else text.encode()
    writer = threading.Thread(target=lambda: pipe.write_bytes(data), daemon=True)
    writer.start()
    assert len(load_pairs(str(pipe)).pairs) == 3000
    writer.join(timeout=30)


def test_a_csv_from_a_named_pipe_is_read(tmp_path):
    """The CSV reader opened the file twice (a scan, then the reading): from a pipe it hung."""
    import os
    import threading

    pipe = tmp_path / "pairs.csv"
    os.mkfifo(pipe)
    text = "prompt,chosen,rejected\n" + "".join(f"q{i},good {i},bad {i}\n" for i in range(50))
    writer = threading.Thread(target=lambda: pipe.write_text(text), daemon=True)
    writer.start()
    assert len(load_pairs(str(pipe)).pairs) == 50
    writer.join(timeout=30)
