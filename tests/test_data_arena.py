"""Chatbot Arena battles (lmsys/chatbot_arena_conversations, arena-human-preference-*, the
Kaggle LMSYS competition's CSV) read as preference pairs, and their ties refused by name."""

from __future__ import annotations

import csv
import json

import pytest
from _rows import assistant, jsonl, user

from rewardforge.cli import main
from rewardforge.data import DataError, load_pairs

bot = assistant


def battle(winner: str = "model_b", **extra) -> dict:
    """A lmsys/chatbot_arena_conversations row: two whole conversations and the verdict."""
    return {
        "question_id": "q1",
        "model_a": "alpha",
        "model_b": "beta",
        "winner": winner,
        "conversation_a": [user("Capital of France?"), bot("Paris.")],
        "conversation_b": [user("Capital of France?"), bot("It is Paris, on the Seine.")],
        **extra,
    }


def kaggle(winner: tuple[int, int, int] = (1, 0, 0), turns: int = 2, i: int = 0) -> dict:
    """A Kaggle LMSYS row: prompt and replies are JSON lists of turns, written as text."""
    return {
        "id": 100 + i,
        "model_a": "alpha",
        "model_b": "beta",
        "prompt": json.dumps([f"question {i}.{t}" for t in range(turns)]),
        "response_a": json.dumps([f"answer A {i}.{t}" for t in range(turns)]),
        "response_b": json.dumps([f"answer B {i}.{t}" for t in range(turns)]),
        "winner_model_a": winner[0],
        "winner_model_b": winner[1],
        "winner_tie": winner[2],
    }


def write_csv(tmp_path, rows: list[dict], name: str = "arena.csv") -> str:
    path = tmp_path / name
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def test_conversations_and_winner(tmp_path):
    loaded = load_pairs(jsonl(tmp_path, [battle("model_b"), battle("model_a", question_id="q2")]))
    assert loaded.shape == "arena"
    first, second = loaded.pairs
    assert first.prompt == [user("Capital of France?")]
    assert first.chosen == [bot("It is Paris, on the Seine.")] and first.rejected == [bot("Paris.")]
    assert second.chosen == [bot("Paris.")]
    assert (first.id, second.id) == ("q1", "q2")  # question_id when there is no id


def test_multi_turn_battles_compare_whole_conversations(tmp_path):
    row = battle(
        "model_a",
        conversation_a=[user("Hi"), bot("Hello"), user("A joke?"), bot("Knock knock.")],
        conversation_b=[user("Hi"), bot("Hey"), user("A joke?"), bot("No.")],
    )
    pair = load_pairs(jsonl(tmp_path, [row])).pairs[0]
    # the replies part at the first answer; the later user turn belongs to both completions
    assert pair.prompt == [user("Hi")]
    assert pair.chosen == [bot("Hello"), user("A joke?"), bot("Knock knock.")]
    assert pair.rejected == [bot("Hey"), user("A joke?"), bot("No.")]


def test_kaggle_csv_turn_lists_and_one_hot_winner(tmp_path):
    rows = [kaggle((0, 1, 0), turns=2, i=0), kaggle((1, 0, 0), turns=1, i=1)]
    loaded = load_pairs(write_csv(tmp_path, rows))
    assert loaded.shape == "arena"
    two_turns, one_turn = loaded.pairs
    assert two_turns.id == "100"
    assert two_turns.prompt == [user("question 0.0")]
    assert two_turns.chosen == [bot("answer B 0.0"), user("question 0.1"), bot("answer B 0.1")]
    assert two_turns.rejected == [bot("answer A 0.0"), user("question 0.1"), bot("answer A 0.1")]
    assert (one_turn.prompt, one_turn.chosen) == ([user("question 1.0")], [bot("answer A 1.0")])


def test_plain_prompt_and_replies(tmp_path):
    row = {"prompt": "Hi", "response_a": "Hello!", "response_b": "Go away.", "winner": "model_a"}
    pair = load_pairs(jsonl(tmp_path, [row])).pairs[0]
    assert (pair.prompt, pair.chosen, pair.rejected) == ([user("Hi")], [bot("Hello!")], [bot("Go away.")])


def test_a_reply_that_looks_like_a_list_stays_text_when_the_prompt_is_not_one(tmp_path):
    row = {"prompt": "List two numbers", "response_a": "[1, 2]", "response_b": "[3]", "winner": "model_b"}
    pair = load_pairs(jsonl(tmp_path, [row])).pairs[0]
    assert (pair.chosen, pair.rejected) == ([bot("[3]")], [bot("[1, 2]")])


@pytest.mark.parametrize("winner", ["tie", "tie (bothbad)", "both_bad"])
def test_a_tie_is_an_invalid_row_named_by_its_field(tmp_path, winner):
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [battle(), battle(winner)]))
    assert "line 2" in str(err.value) and "winner" in str(err.value) and "tie" in str(err.value)


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"winner": "model_c"}, "winner", "expected one of"),
        ({"winner": None}, "winner", "missing"),
        ({"conversation_b": None}, "conversation_b", "missing"),
        (
            {"conversation_b": [user("Something else"), bot("Paris.")]},
            "conversation_a",
            "answer different prompts",
        ),
        ({"conversation_b": [user("Capital of France?"), bot("Paris.")]}, "conversation_a", "identical"),
        ({"conversation_a": [user("Capital of France?")]}, "conversation_a", "empty response"),
    ],
)
def test_bad_battles_name_the_field(tmp_path, change, field, message):
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [battle(), {**battle(), **change}]))
    text = str(err.value)
    assert "line 2" in text and message in text
    assert field in text or (message == "identical" and "conversation_b" in text)


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"winner_tie": 1, "winner_model_a": 0}, "winner_tie", "a tie"),
        ({"winner_model_b": 1}, "winner_model_a", "exactly one"),
        ({"winner_model_b": "yes"}, "winner_model_b", "expected 0 or 1"),
        ({"response_b": json.dumps(["only one"])}, "response_b", "1 replies for 2 prompt turns"),
        ({"response_a": json.dumps(["fine", None])}, "response_a[1]", "expected a string, got null"),
        ({"prompt": '["hi"'}, "prompt", "expected a list of turns as JSON text"),
        ({"prompt": "[]"}, "prompt", "expected a list of turns as JSON text"),
    ],
)
def test_bad_kaggle_rows_name_the_field(tmp_path, change, field, message):
    with pytest.raises(DataError) as err:
        load_pairs(write_csv(tmp_path, [kaggle(), {**kaggle(), **change}]))
    text = str(err.value)
    assert "row 2" in text and field in text and message in text


def test_train_stops_on_a_tie_and_skip_invalid_drops_ties(tmp_path, capsys, tiny_llama_dir):
    rows = [kaggle((i % 2, 1 - i % 2, 0), i=i) for i in range(6)] + [kaggle((0, 0, 1), i=6)]
    data = write_csv(tmp_path, rows)
    argv = ["train", "--model", str(tiny_llama_dir), "--data", data, "--max-steps", "1",
            "--batch-size", "2", "--save_strategy", "no", "--disable_tqdm", "true"]  # fmt: skip
    assert main([*argv, "--output", str(tmp_path / "stop")]) == 2
    err = capsys.readouterr().err
    assert "arena.csv" in err and "row 7" in err and "winner_tie" in err and "Traceback" not in err

    out = tmp_path / "skip"
    assert main([*argv, "--skip-invalid", "--output", str(out)]) == 0
    rejects = [json.loads(line) for line in (out / "rejected_rows.jsonl").read_text().splitlines()]
    assert [r["location"] for r in rejects] == ["row 7"] and "a tie" in rejects[0]["reason"]
    meta = json.loads((out / "rewardforge.json").read_text())
    assert meta["data"]["train"]["pairs"] == 6 and meta["data"]["train"]["shape"] == "arena"


# Found by fuzzing: each of these was read silently wrong or named the wrong field.


def test_a_winner_the_one_hot_columns_contradict_is_invalid_and_a_null_winner_defers_to_them(tmp_path):
    row = {**kaggle((0, 1, 0), turns=1), "winner": "model_a"}
    with pytest.raises(DataError, match=r"field 'winner': 'model_a' contradicts winner_model_b = 1"):
        load_pairs(jsonl(tmp_path, [row]))
    pair = load_pairs(jsonl(tmp_path, [{**row, "winner": None}])).pairs[0]
    assert pair.chosen == [bot("answer B 0.0")]


def test_one_hot_booleans_as_pandas_get_dummies_writes_them(tmp_path):
    row = {**kaggle(turns=1), "winner_model_a": False, "winner_model_b": True, "winner_tie": False}
    assert load_pairs(jsonl(tmp_path, [row])).pairs[0].chosen == [bot("answer B 0.0")]


def test_an_empty_id_falls_back_to_question_id(tmp_path):
    row = {"id": "", **battle()}
    path = write_csv(tmp_path, [{k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}])
    assert load_pairs(path).pairs[0].id == "q1"


def test_a_prompt_turn_list_needs_reply_lists(tmp_path):
    row = {"prompt": '["What is 2+2?"]', "response_a": '["4"]', "response_b": "5", "winner": "model_a"}
    with pytest.raises(DataError, match=r"field 'response_b': expected a list of replies"):
        load_pairs(jsonl(tmp_path, [row]))


def test_an_empty_conversation_is_named(tmp_path):
    with pytest.raises(DataError, match=r"field 'conversation_a': empty conversation"):
        load_pairs(jsonl(tmp_path, [battle(conversation_a=[])]))


def test_content_parts_without_a_type_read_alike_from_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = {"role": "assistant", "content": [{"text": "It is Paris."}]}  # no "type": Arrow gives null
    question = {"role": "user", "content": [{"text": "Capital of France?"}]}
    row = battle(conversation_b=[question, parts])
    path = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist([row]), path)
    from_parquet, from_jsonl = load_pairs(str(path)).pairs[0], load_pairs(jsonl(tmp_path, [row])).pairs[0]
    assert from_parquet.chosen == from_jsonl.chosen == [bot("It is Paris.")]


def test_a_csv_conversation_with_one_bad_turn_names_that_turn(tmp_path):
    row = {**battle(), "conversation_a": json.dumps([user("Capital of France?"), None])}
    row["conversation_b"] = json.dumps(row["conversation_b"])
    with pytest.raises(DataError, match=r"field 'conversation_a\[1\]': expected a message object, got null"):
        load_pairs(write_csv(tmp_path, [row]))


def test_a_prompt_is_read_the_way_most_rows_write_it(tmp_path):
    """The WSDM Cup's battles are text; a reply (or prompt) that happens to be a JSON list of
    strings stays text there, while in LMSYS's turn-list set a prompt that is not one is broken."""
    plain = [
        {"id": str(i), "prompt": f"Say {i}", "response_a": f"{i}", "response_b": "no", "winner": "model_a"}
        for i in range(3)
    ]
    listy = {
        "id": "x",
        "prompt": '["a", "b"]',
        "response_a": '["c"]',
        "response_b": '["d"]',
        "winner": "model_b",
    }
    pairs = load_pairs(jsonl(tmp_path, [*plain, listy])).pairs
    assert (pairs[3].prompt, pairs[3].chosen, pairs[3].rejected) == (
        [user('["a", "b"]')],
        [bot('["d"]')],
        [bot('["c"]')],
    )
    turn_lists = [kaggle(), kaggle(), {**kaggle(), "prompt": "plain text"}]
    with pytest.raises(DataError) as err:
        load_pairs(write_csv(tmp_path, turn_lists))
    assert "row 3" in str(err.value) and "prompt" in str(err.value) and "as the other rows" in str(err.value)
