"""Every file format reads to the same pairs; locations are exact; oddities that are valid read fine."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rewardforge.data import DataError, iter_records, load_pairs, parse_hf_spec

RECORDS = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "id": "a"},
    {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon", "id": "b"},
    {"prompt": "Say hi", "chosen": "Hi! 👋", "rejected": "No.", "id": "c"},
]


def write_jsonl(path: Path, records: list, *, gz: bool = False) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    path = write_jsonl(tmp_path_factory.mktemp("ref") / "ref.jsonl", RECORDS)
    return load_pairs(str(path))


def check_same(loaded, reference) -> None:
    assert loaded.shape == "explicit_prompt"
    assert [p.to_dict() for p in loaded.pairs] == [p.to_dict() for p in reference.pairs]
    assert loaded.fingerprint == reference.fingerprint  # independent of the format
    assert loaded.rejected == []


def test_jsonl(reference):
    assert reference.shape == "explicit_prompt"
    first = reference.pairs[0]
    assert first.prompt == [{"role": "user", "content": "What is 2+2?"}]
    assert first.chosen == [{"role": "assistant", "content": "4"}]
    assert first.rejected == [{"role": "assistant", "content": "5"}]
    assert first.id == "a"
    assert first.source.endswith("ref.jsonl:line 1")
    assert len(reference.fingerprint) == 64


def test_jsonl_gz(tmp_path, reference):
    check_same(load_pairs(str(write_jsonl(tmp_path / "d.jsonl.gz", RECORDS, gz=True))), reference)


def test_json_gz_holding_a_list(tmp_path, reference):
    path = tmp_path / "d.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(RECORDS, fh)
    check_same(load_pairs(str(path)), reference)


def test_json_list_and_object_forms(tmp_path, reference):
    (tmp_path / "list.json").write_text(json.dumps(RECORDS), encoding="utf-8")
    (tmp_path / "obj.json").write_text(json.dumps({"data": RECORDS}), encoding="utf-8")
    (tmp_path / "splits.json").write_text(
        json.dumps({"train": RECORDS, "test": RECORDS[:1]}), encoding="utf-8"
    )
    check_same(load_pairs(str(tmp_path / "list.json")), reference)
    check_same(load_pairs(str(tmp_path / "obj.json")), reference)
    check_same(load_pairs(str(tmp_path / "splits.json")), reference)  # "train" by default, and said
    assert load_pairs(str(tmp_path / "splits.json")).split_note == "split 'train' (of test, train)"
    assert load_pairs(str(tmp_path / "obj.json")).split_note is None  # the only one: nothing to choose
    assert len(load_pairs(str(tmp_path / "splits.json"), split="test")) == 1
    assert len(load_pairs(str(tmp_path / "splits.json:test"))) == 1
    assert load_pairs(str(tmp_path / "list.json")).pairs[1].source.endswith("list.json:row 2")


def test_json_file_that_is_really_json_lines(tmp_path, reference):
    loaded = load_pairs(str(write_jsonl(tmp_path / "lines.json", RECORDS)))
    check_same(loaded, reference)
    assert loaded.pairs[2].source.endswith(":line 3")


def test_parquet(tmp_path, reference):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(RECORDS), tmp_path / "d.parquet")
    check_same(load_pairs(str(tmp_path / "d.parquet")), reference)


def test_csv(tmp_path, reference):
    path = tmp_path / "d.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["prompt", "chosen", "rejected", "id"])
        writer.writeheader()
        writer.writerows(RECORDS)
    check_same(load_pairs(str(path)), reference)


def test_csv_message_list_cells_are_parsed(tmp_path):
    path = tmp_path / "conv.csv"
    chosen = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    rejected = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["chosen", "rejected", "margin"])
        writer.writerow([json.dumps(chosen), json.dumps(rejected), "0.5"])
        writer.writerow(
            [json.dumps(chosen), json.dumps(rejected[:1] + [{"role": "assistant", "content": "[1, 2]"}]), ""]
        )
    loaded = load_pairs(str(path))
    assert loaded.shape == "implicit_conversational"
    assert loaded.pairs[0].prompt == [{"role": "user", "content": "Hi"}]
    assert loaded.pairs[0].margin == 0.5
    assert loaded.pairs[1].margin is None
    assert loaded.pairs[1].rejected_text == "[1, 2]"


def test_datasets_save_to_disk(tmp_path, reference):
    import datasets

    datasets.Dataset.from_list(RECORDS).save_to_disk(str(tmp_path / "ds"))
    check_same(load_pairs(str(tmp_path / "ds")), reference)
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(RECORDS), "test": datasets.Dataset.from_list(RECORDS[:2])}
    ).save_to_disk(str(tmp_path / "dsd"))
    check_same(load_pairs(str(tmp_path / "dsd")), reference)  # "train" by default
    assert len(load_pairs(str(tmp_path / "dsd"), split="test")) == 2
    assert len(load_pairs(str(tmp_path / "dsd:test"))) == 2
    with pytest.raises(DataError, match=r"no split 'dev'; available: \['test', 'train'\]"):
        load_pairs(str(tmp_path / "dsd"), split="dev")


def test_bom_crlf_and_blank_lines(tmp_path, reference):
    lines = [json.dumps(r, ensure_ascii=False) for r in RECORDS]
    body = "\ufeff" + lines[0] + "\r\n\r\n   \r\n" + lines[1] + "\r\n" + "\n" + lines[2] + "\r\n\r\n"
    path = tmp_path / "odd.jsonl"
    path.write_bytes(body.encode("utf-8"))
    loaded = load_pairs(str(path))
    check_same(loaded, reference)
    # blank lines are skipped but still counted
    assert [p.source.rsplit(":", 1)[1] for p in loaded.pairs] == ["line 1", "line 4", "line 6"]


def test_csv_with_bom_and_crlf(tmp_path, reference):
    rows = ["prompt,chosen,rejected,id"] + [",".join(r.values()) for r in RECORDS[:2]]
    (tmp_path / "bom.csv").write_bytes(("\ufeff" + "\r\n".join(rows) + "\r\n\r\n").encode("utf-8"))
    loaded = load_pairs(str(tmp_path / "bom.csv"))
    assert [p.to_dict() for p in loaded.pairs] == [p.to_dict() for p in reference.pairs[:2]]


def test_iter_records_streams_with_locations(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n" + json.dumps(RECORDS[0]) + "\n\n" + json.dumps(RECORDS[1]) + "\n")
    assert [loc for loc, _ in iter_records(str(path))] == ["line 2", "line 4"]
    assert next(iter(iter_records(str(path))))[1] == RECORDS[0]


def test_limit_counts_pairs(tmp_path):
    loaded = load_pairs(str(write_jsonl(tmp_path / "d.jsonl", RECORDS)), limit=2)
    assert [p.id for p in loaded.pairs] == ["a", "b"]
    with pytest.raises(ValueError, match="limit"):
        load_pairs(str(tmp_path / "d.jsonl"), limit=0)


def test_unsupported_extension_and_missing_path(tmp_path):
    (tmp_path / "d.txt").write_text("hello")
    with pytest.raises(DataError, match=r"d\.txt: unsupported file type '\.txt'; supported: \.jsonl"):
        load_pairs(str(tmp_path / "d.txt"))
    with pytest.raises(DataError, match=r"nope\.jsonl: no such file or directory"):
        load_pairs(str(tmp_path / "nope.jsonl"))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="not a dataset saved with save_to_disk"):
        load_pairs(str(tmp_path / "empty_dir"))


def test_split_on_a_file_without_splits_is_an_error(tmp_path):
    with pytest.raises(DataError, match="split 'test' was given but this file type has no splits"):
        load_pairs(str(write_jsonl(tmp_path / "d.jsonl", RECORDS)), split="test")


def test_hf_spec_parsing():
    assert parse_hf_spec("hf:Anthropic/hh-rlhf") == ("Anthropic/hh-rlhf", None)
    assert parse_hf_spec("hf:trl-lib/ultrafeedback_binarized:test") == (
        "trl-lib/ultrafeedback_binarized",
        "test",
    )
    assert parse_hf_spec("hf:imdb") == ("imdb", None)
    for bad in ("hf:", "hf:org/name:", "hf:a/b/c", "hf:org/name:x:y", "org/name"):
        with pytest.raises(ValueError):
            parse_hf_spec(bad)


def test_hf_goes_through_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, split=None):
        calls.append((name, split))
        return datasets.Dataset.from_list(RECORDS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = load_pairs("hf:org/prefs:test")
    assert calls == [("org/prefs", "test")]
    assert loaded.source == "hf:org/prefs:test" and len(loaded) == 3
    assert loaded.pairs[0].source == "hf:org/prefs:test:row 1"
    load_pairs("hf:org/prefs")
    assert calls[-1] == ("org/prefs", "train")
    with pytest.raises(ValueError, match="names split 'test' but split='train'"):
        load_pairs("hf:org/prefs:test", split="train")


def test_hf_offline_is_a_clear_data_error(tmp_path):
    # A child process with the Hub switched off: no network is touched.
    code = (
        "from rewardforge.data import load_pairs, DataError\n"
        "try:\n    load_pairs('hf:rewardforge-test/does-not-exist')\n"
        "except DataError as e:\n    print('DATAERROR', e)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert (
        "DATAERROR hf:rewardforge-test/does-not-exist: could not load from the Hugging Face Hub" in out.stdout
    ), out.stdout + out.stderr


def test_json_objects_of_columns_under_a_split_or_as_pandas_split_frames(tmp_path):
    """{"data": Dataset.to_dict()} was "no preference fields", {"train": columns} "holds dict", and
    pandas' orient="split" "record is not a JSON object"; uneven columns blamed 'prompt[0]'."""
    import pandas as pd
    from _rows import jsonl

    columns = {"prompt": ["Q1", "Q2"], "chosen": ["A", "C"], "rejected": ["B", "D"]}
    (tmp_path / "data.json").write_text(json.dumps({"data": columns}))
    (tmp_path / "splits.json").write_text(json.dumps({"train": columns, "test": columns}))
    pd.DataFrame(columns).to_json(tmp_path / "frame.json", orient="split")
    expected = load_pairs(
        jsonl(tmp_path, [dict(zip(columns, row)) for row in zip(*columns.values())])
    ).fingerprint
    for name in ("data.json", "splits.json", "frame.json"):
        assert load_pairs(str(tmp_path / name)).fingerprint == expected, name
    (tmp_path / "uneven.json").write_text(json.dumps({**columns, "rejected": ["B"]}))
    with pytest.raises(
        DataError, match=r"columns of different lengths \(prompt: 2, chosen: 2, rejected: 1\)"
    ):
        load_pairs(str(tmp_path / "uneven.json"))
