"""Bad input is never silent: one test per kind, naming file, line/row and field; skip_invalid collects."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from rewardforge.data import DataError, RejectedRow, load_pairs, write_rejected
from rewardforge.data.errors import DataOptionError

GOOD = {"prompt": "Q?", "chosen": "Good answer", "rejected": "Bad answer"}


def jsonl_with(tmp_path: Path, bad_line: str, name: str = "bad.jsonl") -> str:
    """A file whose line 1 and 3 are good and line 2 is `bad_line`."""
    path = tmp_path / name
    path.write_text("\n".join([json.dumps(GOOD), bad_line, json.dumps(GOOD)]) + "\n", encoding="utf-8")
    return str(path)


def raises_at(spec: str, location: str, field: str | None, reason: str) -> DataError:
    """load_pairs(spec) raises a DataError naming the file, the location, the field and the reason."""
    with pytest.raises(DataError) as info:
        load_pairs(spec)
    err = info.value
    assert (err.source, err.location, err.field) == (spec, location, field), str(err)
    assert re.search(reason, err.reason), err.reason
    where = f"{spec}:{location}: " + ("" if field is None else f"field '{field}': ")
    assert str(err).startswith(where), str(err)
    return err


def test_malformed_json_line(tmp_path):
    raises_at(jsonl_with(tmp_path, '{"prompt": "Q", "chosen": '), "line 2", None, "malformed JSON")


def test_a_line_cut_short_is_placed_at_its_end(tmp_path):
    """The line's own newline made json say "column 1" (of its line 2)."""
    err = raises_at(jsonl_with(tmp_path, '{"prompt": "p4", "chosen": '), "line 2", None, "malformed JSON")
    assert "Expecting value (column 28)" in str(err)


def test_record_not_an_object(tmp_path):
    raises_at(jsonl_with(tmp_path, '["Q", "A", "B"]'), "line 2", None, r"not a JSON object \(got list\)")


def test_missing_field(tmp_path):
    raises_at(
        jsonl_with(tmp_path, json.dumps({"prompt": "Q", "chosen": "A"})), "line 2", "rejected", "missing"
    )


def test_non_string_field(tmp_path):
    bad = json.dumps({"prompt": "Q", "chosen": "A", "rejected": 42})
    raises_at(jsonl_with(tmp_path, bad), "line 2", "rejected", "expected a string like 'chosen', got int")
    bad = json.dumps({"prompt": 3, "chosen": "A", "rejected": "B"})
    raises_at(
        jsonl_with(tmp_path, bad, "p.jsonl"), "line 2", "prompt", "expected a string or a list of messages"
    )


def test_message_without_role_or_content_or_with_non_string_content(tmp_path):
    base = {
        "prompt": [{"role": "user", "content": "Hi"}],
        "chosen": [{"role": "assistant", "content": "Hello"}],
    }
    first = json.dumps({**base, "rejected": [{"role": "assistant", "content": "Bye"}]})
    for name, rejected, field, reason in [
        ("role.jsonl", [{"content": "Bye"}], "rejected[0].role", "missing"),
        ("content.jsonl", [{"role": "assistant"}], "rejected[0].content", "missing"),
        (
            "type.jsonl",
            [{"role": "assistant", "content": ["Bye"]}],
            "rejected[0].content",
            "expected a string, got list",
        ),
        ("msg.jsonl", ["Bye"], "rejected[0]", "expected a message object, got str"),
    ]:
        path = tmp_path / name
        path.write_text(first + "\n" + json.dumps({**base, "rejected": rejected}) + "\n")
        raises_at(str(path), "line 2", field, reason)


def test_unknown_chat_role(tmp_path):
    bad = json.dumps(
        {
            "chosen": [{"role": "narrator", "content": "Hi"}, {"role": "assistant", "content": "A"}],
            "rejected": [],
        }
    )
    path = tmp_path / "roles.jsonl"
    path.write_text(bad + "\n")
    raises_at(str(path), "line 1", "chosen[0].role", "unknown chat role 'narrator'")


def test_empty_response(tmp_path):
    raises_at(
        jsonl_with(tmp_path, json.dumps({**GOOD, "chosen": " \n\t"})), "line 2", "chosen", "empty response"
    )


def test_chosen_identical_to_rejected(tmp_path):
    bad = json.dumps({**GOOD, "rejected": GOOD["chosen"] + "  "})
    raises_at(
        jsonl_with(tmp_path, bad),
        "line 2",
        "rejected",
        "identical to 'chosen' but for surrounding whitespace",
    )
    same = json.dumps(
        {**GOOD, "rejected": GOOD["chosen"]}
    )  # helper 84: the message said "identical" for both
    raises_at(jsonl_with(tmp_path, same), "line 2", "rejected", "identical to 'chosen'")


def test_bad_number(tmp_path):
    raises_at(
        jsonl_with(tmp_path, json.dumps({**GOOD, "margin": "big"})), "line 2", "margin", "expected a number"
    )


def test_no_preference_fields(tmp_path):
    raises_at(
        jsonl_with(tmp_path, json.dumps({"question": "Q", "note": "A"})),
        "line 2",
        None,
        "no preference fields",
    )


def test_a_single_answer_is_no_preference(tmp_path):
    raises_at(
        jsonl_with(tmp_path, json.dumps({"question": "Q", "answer": "A"})),
        "line 2",
        "answer",
        "one response per row: a single response is no preference",
    )


def test_undecodable_bytes(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    raises_at(str(path), "line 2", None, "not valid UTF-8")


def test_undecodable_bytes_in_a_json_list_cost_their_row(tmp_path):
    """Helper 91: a bad byte in a JSON list stopped the run even with --skip-invalid (the file
    failed to decode as a whole), where JSON Lines and CSV drop the row."""
    rows = [{**GOOD, "id": str(i)} for i in range(4)]
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps(rows, indent=1).encode().replace(b'"id": "2"', b'"id": "caf\xe9"'))
    raises_at(str(path), "row 3", None, "not valid UTF-8")
    loaded = load_pairs(str(path), skip_invalid=True)
    assert [p.id for p in loaded.pairs] == ["0", "1", "3"]
    (bad,) = loaded.rejected
    assert (bad.location, bad.reason) == ("row 3", "not valid UTF-8")
    assert json.loads(bad.row)["id"] == "caf\ufffd"  # written as text a rejects file can hold
    # outside the records (a split's name): the file, at its line
    path.write_bytes(b'{"tr\xe9in": ' + json.dumps(rows).encode() + b"}")
    with pytest.raises(DataError, match="line 1: not valid UTF-8"):
        load_pairs(str(path), skip_invalid=True)


def test_undecodable_bytes_in_csv(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"prompt,chosen,rejected\nQ,A,B\ncaf\xe9,A,B\n")
    raises_at(str(path), "row 2", None, "not valid UTF-8")


def test_bad_rows_in_parquet_and_csv_are_named_by_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([GOOD, {**GOOD, "chosen": ""}]), tmp_path / "d.parquet")
    raises_at(str(tmp_path / "d.parquet"), "row 2", "chosen", "empty response")
    (tmp_path / "d.csv").write_text("prompt,chosen,rejected\nQ,A,B\nQ,A,A\n")
    raises_at(str(tmp_path / "d.csv"), "row 2", "rejected", "identical")


def test_truncated_gzip(tmp_path):
    path = tmp_path / "cut.jsonl.gz"
    data = gzip.compress("".join(json.dumps({**GOOD, "id": i}) + "\n" for i in range(2000)).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        load_pairs(str(path))
    err = info.value
    assert str(err).startswith(f"{path}:line ") and err.field is None
    assert "truncated or corrupt compressed file" in err.reason
    loaded = load_pairs(str(path), skip_invalid=True)  # rows before the cut are kept, the cut is reported
    assert 0 < len(loaded.pairs) < 2000
    assert [r.location for r in loaded.rejected] == [err.location] == [f"line {len(loaded.pairs) + 1}"]
    assert loaded.rejected[0].reason.endswith("the rest of it could not be read")


@pytest.mark.parametrize("name", ["packed.jsonl", "packed.json"])
def test_gzip_data_under_a_plain_name_is_read(tmp_path, name):
    """A gzip file named .jsonl was 'not valid UTF-8 (byte 1 of the line)'."""
    rows = [{**GOOD, "id": i} for i in range(3)]
    text = "".join(json.dumps(r) + "\n" for r in rows) if name.endswith("l") else json.dumps(rows)
    (tmp_path / name).write_bytes(gzip.compress(text.encode()))
    assert [p.id for p in load_pairs(str(tmp_path / name)).pairs] == ["0", "1", "2"]
    cut = tmp_path / "cut.jsonl"
    data = gzip.compress("".join(json.dumps({**GOOD, "id": i}) + "\n" for i in range(2000)).encode())
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt compressed file"):
        load_pairs(str(cut))


def test_other_chat_apis_role_names_are_read(tmp_path):
    """Gemini's "model", Cohere's "chatbot" and OpenAssistant's "prompter" were unknown roles."""
    path = tmp_path / "roles.jsonl"
    rows = [
        {"chosen": [{"role": asker, "content": "hi"}, {"role": answerer, "content": "yo"}],
         "rejected": [{"role": asker, "content": "hi"}, {"role": answerer, "content": "no"}]}
        for asker, answerer in [("user", "model"), ("user", "chatbot"), ("prompter", "assistant")]
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for pair in load_pairs(str(path)).pairs:
        assert [m["role"] for m in [*pair.prompt, *pair.chosen]] == ["user", "assistant"]


def test_not_a_gzip_file(tmp_path):
    path = tmp_path / "plain.jsonl.gz"
    path.write_text(json.dumps(GOOD) + "\n")
    raises_at(str(path), "line 1", None, "truncated or corrupt compressed file")
    with pytest.raises(DataError, match="no valid rows"):
        load_pairs(str(path), skip_invalid=True)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("e.jsonl", ""),
        ("blank.jsonl", "\n  \r\n\n"),
        ("e.json", "[]"),
        ("e.csv", "prompt,chosen,rejected\n"),
        ("z.csv", ""),
    ],
)
def test_empty_file_is_an_error_even_with_skip_invalid(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    for skip in (False, True):
        with pytest.raises(DataError, match=rf"{re.escape(name)}: empty: no records at all"):
            load_pairs(str(path), skip_invalid=skip)


def test_empty_gzip_is_an_error(tmp_path):
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match="empty: no records"):
        load_pairs(str(path), skip_invalid=True)


def test_mixture_of_shapes(tmp_path):
    other = json.dumps({"prompt": "Q", "chosen": [{"role": "assistant", "content": "A"}], "rejected": []})
    err = raises_at(jsonl_with(tmp_path, other), "line 2", "chosen", "mixture of shapes")
    assert "'conversational'" in err.reason and "'explicit_prompt'" in err.reason
    assert "the shape of 2 of the first 3 rows" in err.reason


def test_shape_is_the_one_most_rows_have(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"prompt": "Q", "chosen": "A"}, {"chosen": "x y", "rejected": "x z"}, GOOD]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = load_pairs(str(path), skip_invalid=True)
    assert loaded.shape == "explicit_prompt"
    assert [(r.location, r.field) for r in loaded.rejected] == [("line 1", "rejected"), ("line 2", "prompt")]


def test_an_odd_first_row_is_the_invalid_one_not_every_row_after_it(tmp_path):
    """A null prompt on line 1 used to make the file 'implicit_text': the error blamed line 2,
    and --skip-invalid trained on the odd row and dropped the five valid ones."""
    path = tmp_path / "d.jsonl"
    rows = [{**GOOD, "prompt": None}] + [{**GOOD, "id": str(i)} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    raises_at(str(path), "line 1", "prompt", "^missing$")  # (was "mixture of shapes ... (prompt: null)")
    loaded = load_pairs(str(path), skip_invalid=True)
    assert loaded.shape == "explicit_prompt" and [p.id for p in loaded.pairs] == ["0", "1", "2", "3", "4"]
    assert [r.location for r in loaded.rejected] == ["line 1"]


def test_malformed_json_document(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n  {"prompt": "Q", "chosen": "A", "rejected": "B"},\n  {"prompt": \n]\n')
    raises_at(str(path), "line 4", None, "malformed JSON")


def test_skip_invalid_collects_and_write_rejected_writes(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps(GOOD),
        "{not json",
        json.dumps({**GOOD, "chosen": ""}),
        "",
        json.dumps([1, 2]),
        json.dumps({**GOOD, "rejected": GOOD["chosen"]}),
        json.dumps({**GOOD, "id": "last"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    loaded = load_pairs(str(path), skip_invalid=True)
    assert [p.source.rsplit(":", 1)[1] for p in loaded.pairs] == ["line 1", "line 7"]
    assert [(r.location, r.field) for r in loaded.rejected] == [
        ("line 2", None),
        ("line 3", "chosen"),
        ("line 5", None),
        ("line 6", "rejected"),
    ]
    assert loaded.rejected[0].row == "{not json"
    assert loaded.rejected[2].row == [1, 2]

    out = tmp_path / "out" / "rejected.jsonl"
    out.parent.mkdir()
    out.write_text("old content\n")
    write_rejected(loaded.rejected, out)
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert written[1] == {
        "source": str(path),
        "location": "line 3",
        "field": "chosen",
        "reason": "empty response",
        "row": {**GOOD, "chosen": ""},
    }
    assert len(written) == 4
    assert [p.name for p in out.parent.iterdir()] == ["rejected.jsonl"]  # no temp file left behind


def test_write_rejected_makes_rows_json_safe(tmp_path):
    rows = [RejectedRow("s", "row 1", None, "r", {"a": b"\xff", "b": float("nan"), "c": object, 3: ("x",)})]
    write_rejected(rows, tmp_path / "r.jsonl")
    row = json.loads((tmp_path / "r.jsonl").read_text(encoding="utf-8"))["row"]
    assert row["a"] == "\ufffd" and row["b"] == "nan" and row["3"] == ["x"]


def test_every_row_invalid_raises_even_with_skip_invalid(tmp_path):
    path = tmp_path / "all_bad.jsonl"
    path.write_text("{oops\n" + json.dumps({**GOOD, "chosen": ""}) + "\n")
    # each kind of problem counted, so thousands of bad rows are not known by the first alone
    with pytest.raises(
        DataError,
        match=r"all_bad\.jsonl:line 1: no valid rows: all 2 are invalid \(1 malformed JSON, 1 empty response\); the first: malformed",
    ):
        load_pairs(str(path), skip_invalid=True)


def test_a_hub_name_without_the_hf_prefix_is_told_the_prefix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        DataError, match=r"no such file or directory \(a Hub dataset is hf:trl-lib/ultrafeedback_binarized\)"
    ):
        load_pairs("trl-lib/ultrafeedback_binarized")
    with pytest.raises(DataError) as err:
        load_pairs("missing.jsonl")
    assert "hf:" not in str(err.value)


def test_a_null_content_beside_another_text_key_reads_that_text(tmp_path):
    """Arrow gives {"content": None, "text": "C"} for a message written with `text` only."""
    path = tmp_path / "t.jsonl"
    row = {"prompt": "Q?", "chosen": [{"role": "assistant", "content": None, "text": "C"}],
           "rejected": [{"role": "assistant", "content": "D"}]}  # fmt: skip
    path.write_text(json.dumps(row) + "\n")
    assert load_pairs(str(path)).pairs[0].chosen_text == "C"


def test_a_rejected_row_keeps_a_lone_surrogate_exactly(tmp_path):
    """rejected_rows.jsonl had "Q?" for the row's "Q\\ud800": the row as read was lost."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "Q\\ud800", "chosen": "A", "rejected": "B"}\n' + json.dumps(GOOD) + "\n")
    loaded = load_pairs(str(path), skip_invalid=True)
    write_rejected(loaded.rejected, tmp_path / "r.jsonl")
    (line,) = (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["row"]["prompt"] == "Q\ud800"


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [  # helper round 60: a list of columns failed deep inside; "no" read as yes; "1" as a limit
        ({"columns": ["prompt"]}, TypeError, "columns is a dict"),
        ({"limit": "1"}, DataOptionError, "limit must be a positive whole number"),
        ({"limit": 1.5}, DataOptionError, "limit must be a positive whole number"),
        ({"limit": True}, DataOptionError, "limit must be a positive whole number"),
        ({"skip_invalid": "no"}, TypeError, "skip_invalid is True or False"),
        ({"margin_from_scores": 1}, TypeError, "margin_from_scores is True or False"),
    ],
)
def test_load_pairs_refuses_arguments_of_the_wrong_kind(tmp_path, kwargs, error, words):
    path = jsonl_with(tmp_path, json.dumps(GOOD))
    with pytest.raises(error, match=words):
        load_pairs(path, **kwargs)


def test_load_pairs_takes_columns_as_the_command_line_writes_them(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "Q?", "chosen": "yes", "rejected": "no"}) + "\n")
    assert load_pairs(path, columns="prompt=question").pairs[0].prompt == [{"role": "user", "content": "Q?"}]
    with pytest.raises(TypeError, match="a path or 'hf:ORG/NAME'"):
        load_pairs(bytes(path))


def test_a_csv_syntax_error_says_the_rest_of_the_file_is_unread(tmp_path):
    """helper 69: with skip_invalid, a bad quote dropped every later row as "1 invalid row"."""
    path = tmp_path / "quote.csv"
    path.write_text('prompt,chosen,rejected\nq0,a0,b0\nq1,"Here is how"x,No\nq2,a2,b2\n\nq3,a3,b3\n')
    loaded = load_pairs(str(path), skip_invalid=True)
    assert len(loaded.pairs) == 1
    (bad,) = loaded.rejected
    assert bad.location == "row 2"
    assert "lines 3-6 (the rest of the file) could not be read" in bad.reason


def test_a_processor_that_exits_is_a_clear_error(tmp_path):
    """helper 69: sys.exit in a processor ended the run with its code and no word."""
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(7)\n")
    (tmp_path / "record_exits.py").write_text(
        "import sys\nfrom rewardforge.data import PreferenceProcessor\n"
        "class P(PreferenceProcessor):\n"
        "    def to_pair(self, record):\n"
        "        if record['prompt'] == 'q1':\n"
        "            sys.exit(5)\n"
        "        return record\n"
    )
    rows = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(3)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataOptionError, match="raised on import: SystemExit: 7"):
        load_pairs(str(data), processor=f"{tmp_path / 'exits.py'}:P")
    loaded = load_pairs(str(data), processor=f"{tmp_path / 'record_exits.py'}:P", skip_invalid=True)
    assert len(loaded.pairs) == 2
    assert [(r.location, r.reason) for r in loaded.rejected] == [("line 2", "P.to_pair raised SystemExit: 5")]


def test_a_key_repeated_in_one_record_of_a_json_list_names_its_row(tmp_path):
    """helper 69: the whole file was refused with no row named."""
    path = tmp_path / "dup.json"
    path.write_text(
        '[{"prompt": "q0", "chosen": "a", "rejected": "b"},'
        ' {"prompt": "q1", "chosen": "a", "chosen": "c", "rejected": "b"},'
        ' {"prompt": "q2", "chosen": [{"role": "assistant", "content": "x", "content": "y"}], "rejected": "b"}]'
    )
    raises_at(str(path), "row 2", None, "the field 'chosen' appears twice")
    loaded = load_pairs(str(path), skip_invalid=True)
    assert len(loaded.pairs) == 1 and [r.location for r in loaded.rejected] == ["row 2", "row 3"]
    splits = tmp_path / "splits.json"
    splits.write_text('{"train": [{"prompt": "q", "chosen": "a", "rejected": "b"}], "train": []}')
    with pytest.raises(DataError, match="the field 'train' appears twice"):
        load_pairs(str(splits))


@pytest.mark.parametrize("text", ["\ufe0f", "\u0301", " \u3164 ", "\u2800", "\u200b\u0301"])
def test_a_response_of_invisible_marks_is_empty(tmp_path, text):
    """helper 69: a lone variation selector or accent passed as a reply (the tokenizer drops it)."""
    raises_at(
        jsonl_with(tmp_path, json.dumps({"prompt": "Q?", "chosen": text, "rejected": "b"})),
        "line 2",
        "chosen",
        "empty response",
    )
    assert (
        len(
            load_pairs(
                jsonl_with(tmp_path, json.dumps({**GOOD, "chosen": "e\u0301t\u00e9 \U0001f600\ufe0f"}))
            ).pairs
        )
        == 3
    )


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_utf16_file_is_named_as_such(tmp_path, encoding):
    """helper 69: UTF-16 JSONL read as 'not valid UTF-8' on every line, or as malformed JSON."""
    path = tmp_path / "wide.jsonl"
    path.write_bytes((json.dumps(GOOD) + "\n").encode(encoding))
    err = raises_at(str(path), "line 1", None, "the file is UTF-(16|32) text; save it as UTF-8")
    assert encoding[:6].upper() in str(err)


def test_a_damaged_parquet_file_or_saved_dataset_is_one_line(tmp_path):
    """helper 69: pyarrow's message took several lines; a damaged shard of a saved dataset was
    called not a saved dataset."""
    import datasets
    import pandas as pd

    rows = [{"prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}"} for i in range(50)]
    parquet = tmp_path / "d.parquet"
    pd.DataFrame(rows).to_parquet(parquet)
    data = bytearray(parquet.read_bytes())
    data[8:200] = b"\xff" * 192
    parquet.write_bytes(bytes(data))
    with pytest.raises(DataError) as info:
        load_pairs(str(parquet))
    assert "\n" not in str(info.value) and "unreadable Parquet file" in str(info.value)
    saved = tmp_path / "saved"
    datasets.Dataset.from_list(rows).save_to_disk(str(saved))
    (shard,) = saved.glob("*.arrow")
    shard.write_bytes(shard.read_bytes()[:300])
    with pytest.raises(
        DataError, match="unreadable saved dataset: one of its files is damaged or missing"
    ) as info:
        load_pairs(str(saved))
    assert "\n" not in str(info.value)


def test_a_key_repeated_in_a_split_not_read_is_not_this_runs_business(tmp_path):
    """helper 72: a repeat in a `test` row refused the whole file when `train` was read."""
    path = tmp_path / "splits.json"
    path.write_text(
        '{"train": [{"prompt": "q", "chosen": "a", "rejected": "b"}],'
        ' "test": [{"prompt": "q", "chosen": "a", "chosen": "c", "rejected": "b"}]}'
    )
    assert len(load_pairs(str(path), split="train").pairs) == 1
    with pytest.raises(DataError, match="row 1: the field 'chosen' appears twice"):
        load_pairs(str(path), split="test")


def test_an_empty_cell_is_a_missing_field_not_a_mixture_of_shapes(tmp_path):
    """Helper 91: an empty `chosen` cell in a CSV of message lists was "mixture of shapes: this row
    is 'explicit_prompt' (chosen: text) but the data is 'conversational'", and a null prompt in
    an explicit Parquet file "mixture of shapes ... (prompt: null)"; the same rows elsewhere are
    "missing" or "empty response"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    turn = json.dumps([{"role": "assistant", "content": "A"}]).replace('"', '""')
    other = json.dumps([{"role": "assistant", "content": "B"}]).replace('"', '""')
    lines = ["chosen,rejected"] + [f'"{turn}","{other}"'] * 3 + [f',"{other}"', f'"{turn}",  ']
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    raises_at(str(tmp_path / "c.csv"), "row 4", "chosen", "^(missing|empty response)$")
    loaded = load_pairs(str(tmp_path / "c.csv"), skip_invalid=True)
    assert loaded.shape == "implicit_conversational" and len(loaded.pairs) == 3
    assert [(r.location, r.field) for r in loaded.rejected] == [("row 4", "chosen"), ("row 5", "rejected")]
    assert all("mixture" not in r.reason for r in loaded.rejected)

    pq.write_table(pa.Table.from_pylist([GOOD, GOOD, {**GOOD, "prompt": None}]), tmp_path / "p.parquet")
    raises_at(str(tmp_path / "p.parquet"), "row 3", "prompt", "^missing$")


@pytest.mark.parametrize(
    ("rows", "odd", "expected"),
    [
        # message-list data, a row of text replies with a null prompt: text is the mixture
        ([{"prompt": [], "chosen": [{"role": "assistant", "content": f"a{i}"}],
           "rejected": [{"role": "assistant", "content": f"b{i}"}]} for i in range(4)],
         {"prompt": None, "chosen": "a", "rejected": "b"}, "mixture of shapes"),
        # text data, a row of message lists with a null prompt
        ([{**GOOD, "id": str(i)} for i in range(4)],
         {"prompt": None, "chosen": [{"role": "assistant", "content": "A"}],
          "rejected": [{"role": "assistant", "content": "B"}]}, "mixture of shapes"),
        # HH transcripts (no prompt field): a null prompt is no field; the row is read as the others
        ([{"chosen": f"\n\nHuman: q{i}\n\nAssistant: a{i}", "rejected": f"\n\nHuman: q{i}\n\nAssistant: b{i}"}
          for i in range(4)],
         {"prompt": None, "chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"}, None),
        # data without scores, one row with a null score: read as the rows without one (as Parquet does)
        ([{**GOOD, "id": str(i)} for i in range(4)], {**GOOD, "id": "x", "score_chosen": None}, None),
        # helper 94: HH transcripts, a blank chosen: an empty response, not a mixture
        ([{"chosen": f"\n\nHuman: q{i}\n\nAssistant: a{i}", "rejected": f"\n\nHuman: q{i}\n\nAssistant: b{i}"}
          for i in range(4)],
         {"chosen": "  ", "rejected": "\n\nHuman: q\n\nAssistant: b"}, "^empty response$"),
    ],
)  # fmt: skip
def test_a_blank_field_is_missing_only_where_a_value_would_fit_the_data(tmp_path, rows, odd, expected):
    """Helper 93: after the fix above, genuine mixtures with a null prompt were "prompt: missing",
    and a null score in data without scores rejected its row."""
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, odd]))
    if expected is None:
        assert len(load_pairs(str(path)).pairs) == len(rows) + 1
    else:
        raises_at(
            str(path),
            "line 5",
            "chosen" if "chosen" in odd and not str(odd["chosen"]).strip() else "prompt",
            expected,
        )


def test_many_kinds_of_reason_make_a_short_summary_and_every_row_is_written(tmp_path):
    """helper 96: 50k malformed lines gave thousands of reasons (each names its column), a
    150 KB console line and a 153 KB rewardforge.json entry; rejected_rows.jsonl has them all."""
    from rewardforge.data import count_reasons, describe_rejected, write_rejected

    bad = ['{"prompt": "p", ' + " " * i + '"chosen": "c' for i in range(12)]  # each its own column
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(['{"prompt": "p", "chosen": "c", "rejected": "r"}', *bad, *bad[:1]]) + "\n")
    got = load_pairs(str(path), skip_invalid=True)
    assert len(got.rejected) == 13 and len(count_reasons(got.rejected)) == 12
    line = describe_rejected(got.rejected)
    assert (
        line.startswith("2 x malformed JSON")
        and line.count(" x ") == 6
        and line.endswith("7 x (7 other reasons)")
    )
    capped = count_reasons(got.rejected, top=3)
    assert list(capped.values()) == [2, 1, 1, 9] and sum(capped.values()) == 13
    write_rejected(got.rejected, tmp_path / "rejected.jsonl")
    lines = (tmp_path / "rejected.jsonl").read_text().splitlines()
    assert [json.loads(x)["location"] for x in lines] == [f"line {i}" for i in range(2, 15)]


def test_a_long_read_shows_a_row_count(tmp_path, monkeypatch, capsys):
    """helper 96: loading 200k rows ran for a minute or more without a word."""
    import rewardforge.data.loader as loader

    bar = loader.tqdm
    monkeypatch.setattr(
        loader, "tqdm", lambda *a, **k: bar(*a, **{**k, "delay": 0, "mininterval": 0})
    )  # as if slow
    rows = [{"prompt": f"p{i}", "chosen": "c", "rejected": "r"} for i in range(300)]
    path = tmp_path / "big.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(load_pairs(str(path)).pairs) == 300
    err = capsys.readouterr().err
    assert "reading big.jsonl" in err and "300" in err
    load_pairs(str(path), progress=False)
    assert "reading" not in capsys.readouterr().err
    load_pairs(str(path), limit=100)  # helper 100: the row the limit stopped at was not counted
    assert "100 rows" in capsys.readouterr().err
