"""Prompt files for RLHF and best-of-N: reading, building from preference pairs, env-reward loading."""

from __future__ import annotations

import json

import pytest

from rewardforge.data.errors import DataError
from rewardforge.rlhf import (
    arithmetic_prompts,
    load_env_reward,
    prompts_dataset,
    prompts_from_pairs,
    read_prompts,
)


def write(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_read_prompts_text_messages_and_extra_columns(tmp_path):
    path = write(
        tmp_path / "p.jsonl",
        [
            {"prompt": "What is 2+2?", "answer": "4"},
            "",
            {
                "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                "id": 7,
            },
        ],
    )
    recs = read_prompts(path)
    assert recs[0] == {"prompt": [{"role": "user", "content": "What is 2+2?"}], "answer": "4"}
    assert recs[1]["prompt"][0] == {"role": "system", "content": "Be brief."} and recs[1]["id"] == 7
    ds = prompts_dataset(recs)
    assert ds.column_names == ["prompt", "answer", "id"]
    assert ds[1]["answer"] is None and ds[0]["prompt"][0]["content"] == "What is 2+2?"


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "line 1: malformed JSON"),
        # bon and rlhf generated from these (helper 51)
        (
            {"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
            "ends with an assistant turn",
        ),
        ({"prompt": [{"role": "system", "content": "be nice"}]}, "has no user turn after its system turn"),
        ({"prompt": [{"role": "user", "content": " "}]}, "its last user turn is empty"),
        ({"prompt": "hi", "id": [1, 2]}, "field 'id': must be a string or an integer"),
        ({"question": "x"}, "'prompt' field"),
        ({"prompt": ""}, "field 'prompt': empty prompt"),
        ({"prompt": []}, "field 'prompt': empty prompt"),
        ({"prompt": [{"role": "robot", "content": "x"}]}, r"field 'prompt\[0\]"),
        ({"prompt": 3}, "expected a string or a list of messages"),
        ({"prompt": "\ud800"}, "field 'prompt': not valid Unicode"),  # bon: a tokenizer traceback
    ],
)
def test_read_prompts_bad_lines_name_the_place(tmp_path, line, message):
    path = write(tmp_path / "bad.jsonl", [line])
    with pytest.raises(DataError, match=message):
        read_prompts(path)


def test_read_prompts_limit_is_exact(tmp_path):
    """--max-prompts N keeps exactly N prompts; 0 or less is refused (it used to keep one)."""
    path = write(tmp_path / "p.jsonl", [{"prompt": f"q{i}"} for i in range(3)])
    assert len(read_prompts(path, limit=1)) == 1
    assert len(read_prompts(path, limit=2)) == 2
    assert len(read_prompts(path, limit=10)) == 3
    for limit in (0, -1):
        with pytest.raises(ValueError, match="at least 1"):
            read_prompts(path, limit=limit)


def test_prompts_from_pairs(tmp_path, small_data):
    train, _ = small_data
    out = tmp_path / "prompts.jsonl"
    recs = prompts_from_pairs(train, out, limit=5, shuffle_seed=1)
    assert len(recs) == 5
    assert [json.loads(line) for line in out.read_text().splitlines()] == recs
    assert all(r["prompt"] and r["prompt"][-1]["role"] != "assistant" for r in recs)
    again = read_prompts(out)
    assert [r["prompt"] for r in again] == [r["prompt"] for r in recs]
    # same seed, disjoint slices: a held-out set that shares no prompt with the training set
    held = prompts_from_pairs(train, None, skip=5, limit=5, shuffle_seed=1)
    assert not {json.dumps(r["prompt"]) for r in held} & {json.dumps(r["prompt"]) for r in recs}


def test_prompts_from_hh(tmp_path, hh_dir):
    recs = prompts_from_pairs(hh_dir / "dev.jsonl.gz", tmp_path / "hh.jsonl", limit=20, keep_chosen=True)
    assert len(recs) == 20
    assert all(r["prompt"][-1]["role"] == "user" and isinstance(r["chosen"], str) for r in recs)
    assert len({json.dumps(r["prompt"]) for r in recs}) == 20  # deduplicated


def test_arithmetic_prompts_are_verifiable(tmp_path):
    recs = arithmetic_prompts(3, tmp_path / "a.jsonl", seed=2)
    for r in recs:
        a, b = map(int, r["prompt"][0]["content"].removeprefix("What is ").split("?")[0].split(" + "))
        assert r["answer"] == str(a + b)
    assert read_prompts(tmp_path / "a.jsonl")[0]["answer"] == recs[0]["answer"]


def test_load_env_reward(tmp_path):
    assert load_env_reward("exact_match").__name__ == "exact_match"
    f = tmp_path / "my_rewards.py"
    f.write_text("def short(prompts, completions, **kw):\n    return [1.0] * len(completions)\n")
    assert load_env_reward(f"{f}:short")(prompts=[], completions=["a"]) == [1.0]
    assert load_env_reward("rewardforge.rlhf.env_rewards:contains_answer").__name__ == "contains_answer"
    with pytest.raises(ValueError, match="built-in"):
        load_env_reward("nonsense")
    with pytest.raises(ValueError, match="no function"):
        load_env_reward(f"{f}:missing")


def test_prompts_from_pairs_with_invalid_rows(tmp_path):
    src = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "p1", "chosen": "a", "rejected": "b"},
        {"prompt": "p2", "chosen": "", "rejected": "b"},  # empty chosen: invalid
        {"prompt": "p3", "chosen": "a", "rejected": "c"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="line 2"):
        prompts_from_pairs(src)
    recs = prompts_from_pairs(src, skip_invalid=True)
    assert [r["prompt"][0]["content"] for r in recs] == ["p1", "p3"]


def test_read_prompts_bad_bytes_and_a_cut_gzip_name_the_line(tmp_path):
    """bon and rlhf stopped with a UnicodeDecodeError traceback."""
    import gzip

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "ok"}\n{"prompt": "ok \xff"}\n')
    with pytest.raises(DataError, match=r"line 2: not valid UTF-8"):
        read_prompts(bad)
    whole = gzip.compress(b"".join(b'{"prompt": "question %d"}\n' % i for i in range(2000)))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="truncated or corrupt compressed file"):
        read_prompts(cut)


@pytest.mark.parametrize("kind", ["json", "parquet", "csv", "dataset"])
def test_read_prompts_reads_every_data_format(tmp_path, kind):
    """Prompts were JSONL only: a Parquet file was 'not valid UTF-8', a folder 'no such file'."""
    import pandas as pd

    frame = pd.DataFrame({"prompt": ["What is 2+2?", "Say hi"], "answer": ["4", "hi"]})
    path = tmp_path / f"p.{kind}"
    if kind == "json":
        frame.to_json(path, orient="records")
    elif kind == "parquet":
        frame.to_parquet(path)
    elif kind == "csv":
        frame.to_csv(path, index=False)
    else:
        from datasets import Dataset

        Dataset.from_pandas(frame).save_to_disk(str(path))
    recs = read_prompts(path)
    assert [r["prompt"] for r in recs] == [
        [{"role": "user", "content": "What is 2+2?"}],
        [{"role": "user", "content": "Say hi"}],
    ]
    assert [r["answer"] for r in recs] == ["4", "hi"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"skip": -1}, "skip must be"), ({"limit": -5}, "limit must be"), ({"limit": 0}, "limit must be")],
)
def test_a_negative_skip_or_limit_is_refused(tmp_path, kwargs, message):
    """helper 76: skip=-1 gave the last prompt and limit=-5 all but five, sliced from the end."""
    from rewardforge.rlhf.prompts import prompts_from_pairs

    with pytest.raises(ValueError, match=message):
        prompts_from_pairs([], **kwargs)
