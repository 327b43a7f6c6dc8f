"""Which split of a source with several is read: named, the only one, or refused when unclear."""

import json
import re

import pytest
from _rows import jsonl

from rewardforge.data import DataError, load_pairs

ROW = {"prompt": "Q?", "chosen": "Good answer.", "rejected": "Bad answer."}


def rows(n: int) -> list[dict]:
    return [ROW | {"id": f"r{i}"} for i in range(n)]


@pytest.fixture
def sources(tmp_path):
    import datasets

    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows(3)), "test": datasets.Dataset.from_list(rows(2))}
    ).save_to_disk(str(tmp_path / "dd"))
    datasets.DatasetDict({"test": datasets.Dataset.from_list(rows(2))}).save_to_disk(str(tmp_path / "only"))
    (tmp_path / "s.json").write_text(json.dumps({"train": rows(3), "test": rows(2)}), encoding="utf-8")
    (tmp_path / "both.json").write_text(json.dumps({"data": rows(4), "train": rows(3)}), encoding="utf-8")
    (tmp_path / "odd.json").write_text(json.dumps({"meta": {}, "items": rows(5)}), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("name", ["dd", "s.json", "both.json"])
def test_several_splits_without_a_default_are_refused_with_the_names(sources, name):
    with pytest.raises(DataError, match=r"holds several splits \((.+), (.+)\); name one, e.g. .+:"):
        load_pairs(str(sources / name), default_split=None)


def test_the_named_split_is_read_in_either_syntax(sources):
    for name in ("dd", "s.json"):
        assert len(load_pairs(str(sources / f"{name}:test"), default_split=None)) == 2
        assert len(load_pairs(str(sources / name), split="test", default_split=None)) == 2
    assert len(load_pairs(str(sources / "both.json:data"))) == 4
    assert len(load_pairs(str(sources / "odd.json:items"))) == 5  # any key, when named


def test_a_single_split_is_read_whatever_its_name(sources):
    loaded = load_pairs(str(sources / "only"), default_split=None)
    assert len(loaded) == 2 and loaded.split_note is None
    assert len(load_pairs(str(sources / "only"))) == 2  # no 'train': the only split, not an error


def test_the_default_among_several_is_reported(sources):
    assert load_pairs(str(sources / "both.json")).split_note == "split 'train' (of data, train)"
    assert "split 'train' (of test, train)" in load_pairs(str(sources / "dd")).reading_notes()


def test_bad_split_names(sources):
    with pytest.raises(DataError, match=r"no split 'dev'; available: \['test', 'train'\]"):
        load_pairs(str(sources / "dd:dev"))
    with pytest.raises(ValueError, match="names split 'test' but split='train'"):
        load_pairs(str(sources / "dd:test"), split="train")
    with pytest.raises(DataError, match="no list of records under .*name the key holding them"):
        load_pairs(str(sources / "odd.json"))
    with pytest.raises(DataError, match="this file type has no splits"):
        load_pairs(jsonl(sources, rows(2)) + ":test")


def test_a_path_with_a_colon_that_exists_is_a_path(tmp_path):
    assert len(load_pairs(jsonl(tmp_path, rows(2), "a:b.jsonl"))) == 2


def test_hub_without_a_split_and_no_default_asks_for_one():
    with pytest.raises(DataError, match=r"name the split to read, e.g. hf:org/prefs:test"):
        load_pairs("hf:org/prefs", default_split=None)


def test_a_json_file_of_one_record_is_that_record(tmp_path):
    """SHP ships JSON Lines as .json; one with a single line is a JSON object: one record."""
    conversation = {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    conversation["rejected"] = [conversation["chosen"][0], {"role": "assistant", "content": "Go away."}]
    rated = {
        "instruction": "Name a colour",
        "completions": [{"response": "Blue", "overall_score": 8}, {"response": "Seven", "overall_score": 2}],
    }
    summaries = {  # openai/summarize_from_feedback: a list of objects that are part of the record
        "info": {"post": "A long post.", "title": "T", "subreddit": "tifu"},
        "summaries": [{"text": "short"}, {"text": "shorter"}],
        "choice": 0,
    }
    tagged = ROW | {
        "data": ["tag1", "tag2"],
        "eval": [{"judge": "gpt-4", "score": 9}],
    }  # split names as fields
    cases = (("plain", ROW), ("conversation", conversation), ("rated", rated), ("summaries", summaries))
    cases += (("tagged", tagged),)
    for name, record in cases:
        (tmp_path / f"{name}.json").write_text(json.dumps(record) + "\n", encoding="utf-8")
        loaded = load_pairs(str(tmp_path / f"{name}.json"))
        assert len(loaded) == 1 and loaded.pairs[0].source.endswith(f"{name}.json:row 1")


def test_eval_reads_a_path_with_an_equals_sign_and_a_split_as_a_path(tmp_path, monkeypatch):
    """`eval --data run=2.json:test` was read as NAME=SPEC ('run' named '2.json:test')."""
    from rewardforge.evaluation.inputs import split_name

    monkeypatch.chdir(tmp_path)
    (tmp_path / "run=2.json").write_text(json.dumps({"train": rows(2), "test": rows(1)}), encoding="utf-8")
    assert split_name("run=2.json:test") == (None, "run=2.json:test")
    assert split_name("run=2.json") == (None, "run=2.json")
    assert split_name("dev=other.json:test") == ("dev", "other.json:test")  # no such path: a name
    assert len(load_pairs("run=2.json:test", default_split=None)) == 1


def test_unclear_split_errors_say_what_is_wrong(tmp_path):
    (tmp_path / "nested.json").write_text(json.dumps({"train": {"data": rows(2)}}), encoding="utf-8")
    (tmp_path / "hollow.json").write_text(json.dumps({"train": [], "test": rows(1)}), encoding="utf-8")
    (tmp_path / "lines.json").write_text(json.dumps(ROW) + "\n" + json.dumps(ROW) + "\n", encoding="utf-8")
    (tmp_path / "sft.jsonl").write_text(json.dumps({"instruction": "Hi", "output": "Hello"}) + "\n")
    for spec, message in (
        ("nested.json:train", "'train' holds dict, not a list of records"),
        ("hollow.json", "empty: split 'train' has no records"),
        ("lines.json:train", "split 'train' was given but this file type has no splits"),
        ("sft.jsonl", "field 'output': is one text: a single response is no preference"),
    ):
        with pytest.raises(DataError, match=re.escape(message)):
            load_pairs(str(tmp_path / spec))


def test_small_wordings_and_a_given_name_kept(tmp_path):
    from rewardforge.evaluation.inputs import unique_names

    assert unique_names(["flat.json", "p.jsonl"], ["p", None]) == ["p", "p#1"]  # the given name stays
    (tmp_path / "one.json").write_text(json.dumps(ROW), encoding="utf-8")
    with pytest.raises(DataError, match="no split 'train': it holds no list of records"):
        load_pairs(str(tmp_path / "one.json") + ":train")
    answers = [{"text": "a", "pm_score": None}, {"text": "b", "pm_score": 1}]
    (tmp_path / "se.jsonl").write_text(json.dumps({"question": "Q?", "answers": answers}) + "\n")
    with pytest.raises(DataError, match=r"field 'answers\[0\]\.pm_score': missing"):
        load_pairs(str(tmp_path / "se.jsonl"))


@pytest.mark.parametrize("name", ["dd", "s.json"])
def test_a_split_picked_by_default_is_named_where_a_row_is_bad(tmp_path, name):
    """`dd:row 3` did not say which split row 3 is in, when train was picked by default (helper
    round 62); `dd:train:row 3` is how the location reads when the user names it."""
    import datasets

    bad = rows(3)
    bad[2] = ROW | {"rejected": ROW["chosen"]}
    if name == "dd":
        datasets.DatasetDict(
            {"train": datasets.Dataset.from_list(bad), "test": datasets.Dataset.from_list(rows(2))}
        ).save_to_disk(str(tmp_path / name))
    else:
        (tmp_path / name).write_text(json.dumps({"train": bad, "test": rows(2)}), encoding="utf-8")
    spec = str(tmp_path / name)
    with pytest.raises(DataError, match=re.escape(f"{spec}:train:") + r"(row|item|record) 3"):
        load_pairs(spec)
    loaded = load_pairs(spec, skip_invalid=True)
    assert loaded.rejected[0].location.startswith("train:")
    assert loaded.pairs[0].source.startswith(f"{spec}:train:")


@pytest.mark.parametrize(("default", "suggested"), [("train", "train_prefs"), (None, "test_prefs")])
def test_the_suggested_split_is_the_likely_one(tmp_path, default, suggested):
    """UltraFeedback-binarized's splits: "e.g. :test_gen" was suggested for training (helper round 62)."""
    import datasets

    names = ("test_gen", "test_prefs", "test_sft", "train_gen", "train_prefs", "train_sft")
    datasets.DatasetDict({n: datasets.Dataset.from_list(rows(2)) for n in names}).save_to_disk(
        str(tmp_path / "uf")
    )
    with pytest.raises(DataError, match=re.escape(f"e.g. {tmp_path / 'uf'}:{suggested}")):
        load_pairs(str(tmp_path / "uf"), default_split=default)


def test_score_items_under_other_keys_are_records_to_name(tmp_path):
    """`score --input` read {"a": [items], "b": [items]} as one record and said "field 'response':
    missing"; train and eval said to name the key (helper round 61)."""
    from rewardforge.data import iter_records

    path = tmp_path / "items.json"
    path.write_text(
        json.dumps({"a": [{"prompt": "x", "response": "y"}], "b": [{"prompt": "x", "response": "z"}]})
    )
    with pytest.raises(DataError, match="name the key holding them as .*items.json:KEY"):
        list(iter_records(str(path)))
    assert [r["response"] for _, r in iter_records(f"{path}:b")] == ["z"]
