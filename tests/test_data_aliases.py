"""Public datasets that name our fields differently, read without a mapping and said so.

Before: Intel/orca_dpo_pairs-like rows (system, question, chosen, rejected) were read as
implicit prompts, the question dropped and the answers' shared first words made the "prompt";
PKU-SafeRLHF rows failed with "field 'response2': missing"; ShareGPT messages (LLaMA-Factory)
and argilla's rating columns were not read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardforge.data import DataError, DataOptionError, load_pairs


def jsonl(tmp_path: Path, rows: list, name: str = "d.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def test_orca_question_and_system_columns_are_the_prompt(tmp_path):
    row = {"system": "Be brief.", "question": "What is 2+2?", "chosen": "It is 4.", "rejected": "It is 5."}
    res = load_pairs(jsonl(tmp_path, [row, row]))
    pair = res.pairs[0]
    assert res.shape == "explicit_prompt"
    assert res.inferred_columns == {"prompt": "question"}
    assert "prompt=question" in res.describe_columns()
    assert pair.prompt == [{"role": "system", "content": "Be brief."}, user("What is 2+2?")]
    assert pair.chosen == [assistant("It is 4.")] and pair.rejected == [assistant("It is 5.")]


def test_argilla_names_and_ratings_give_a_margin(tmp_path):
    row = {
        "instruction": "Name a colour.",
        "chosen_response": "Blue.",
        "rejected_response": "Seven.",
        "chosen-rating": 5,
        "rejected-rating": 2,
    }
    res = load_pairs(jsonl(tmp_path, [row]), margin_from_scores=True)
    assert res.inferred_columns == {
        "chosen": "chosen_response",
        "rejected": "rejected_response",
        "score_chosen": "chosen-rating",
        "score_rejected": "rejected-rating",
        "prompt": "instruction",
    }
    pair = res.pairs[0]
    assert pair.prompt == [user("Name a colour.")] and pair.chosen == [assistant("Blue.")]
    assert pair.margin == 3.0


def test_two_prompt_like_columns_are_an_error_that_names_both(tmp_path):
    row = {"instruction": "Add.", "input": "2+2", "chosen": "4", "rejected": "5"}
    with pytest.raises(DataOptionError, match=r"instruction, input.*--columns prompt=instruction"):
        load_pairs(jsonl(tmp_path, [row]))


def test_a_mapping_wins_over_aliases(tmp_path):
    row = {"instruction": "Add.", "query": "What is 2+2?", "chosen": "4", "rejected": "5"}
    res = load_pairs(jsonl(tmp_path, [row]), columns={"prompt": "query"})
    assert res.pairs[0].prompt == [user("What is 2+2?")]
    assert res.inferred_columns == {}


def test_an_alias_column_missing_in_a_later_row_names_that_row(tmp_path):
    row = {"question": "Q?", "chosen": "yes", "rejected": "no"}
    odd = {"chosen": "yes", "rejected": "no"}
    with pytest.raises(DataError, match=r"line 3.*'question'"):
        load_pairs(jsonl(tmp_path, [row, row, odd]))


def test_helpsteer3_input_is_not_taken_for_a_prompt_alias(tmp_path):
    row = {
        "input": [user("Q?")],
        "output": [
            {"answer": "good", "label": {"is_preferred": True}},
            {"answer": "bad", "label": {"is_preferred": False}},
        ],
    }
    res = load_pairs(jsonl(tmp_path, [row]))
    assert res.shape == "helpsteer3" and res.inferred_columns == {}


def test_pku_saferlhf_better_and_safer_response(tmp_path):
    rows = [
        {
            "prompt": "Q1",
            "response_0": "a",
            "response_1": "b",
            "better_response_id": 1,
            "safer_response_id": 0,
        },
        {
            "prompt": "Q2",
            "response_0": "c",
            "response_1": "d",
            "better_response_id": "0",
            "safer_response_id": 1,
        },
    ]
    path = jsonl(tmp_path, rows)
    res = load_pairs(path)
    assert res.shape == "indexed_pair"
    assert [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in res.pairs] == [("b", "a"), ("c", "d")]
    safer = load_pairs(path, columns={"better_response_id": "safer_response_id"})
    assert [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in safer.pairs] == [
        ("a", "b"),
        ("d", "c"),
    ]


@pytest.mark.parametrize(
    "value, reason", [(2, "expected 0 or 1"), (None, "missing"), (True, "expected 0 or 1")]
)
def test_pku_bad_better_response_id_names_the_field(tmp_path, value, reason):
    row = {"prompt": "Q", "response_0": "a", "response_1": "b", "better_response_id": value}
    with pytest.raises(DataError, match=rf"line 1: field 'better_response_id': {reason}"):
        load_pairs(jsonl(tmp_path, [row]))


def test_sharegpt_messages_and_single_message_completions(tmp_path):
    row = {
        "conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "Hi"}],
        "chosen": {"from": "gpt", "value": "Hello!"},
        "rejected": {"from": "gpt", "value": "Go away."},
    }
    res = load_pairs(jsonl(tmp_path, [row]))
    assert res.shape == "conversational" and res.inferred_columns == {"prompt": "conversations"}
    pair = res.pairs[0]
    assert pair.prompt == [{"role": "system", "content": "Be kind."}, user("Hi")]
    assert pair.chosen == [assistant("Hello!")] and pair.rejected == [assistant("Go away.")]


def test_system_column_that_contradicts_the_prompt_is_an_invalid_row(tmp_path):
    row = {
        "system": "Be brief.",
        "prompt": [{"role": "system", "content": "Be verbose."}, user("Q")],
        "chosen": [assistant("a")],
        "rejected": [assistant("b")],
    }
    with pytest.raises(DataError, match=r"line 1: field 'system': differs"):
        load_pairs(jsonl(tmp_path, [row]))
    same = {**row, "system": "Be verbose."}
    assert load_pairs(jsonl(tmp_path, [same])).pairs[0].prompt[0]["content"] == "Be verbose."
    with pytest.raises(DataError, match=r"field 'system': expected a string"):
        load_pairs(jsonl(tmp_path, [{**row, "system": 3}]))


def test_unknown_fields_error_suggests_a_mapping(tmp_path):
    row = {"question": "Q?", "answer_chosen": "yes", "answer_rejected": "no"}
    with pytest.raises(
        DataError, match=r"maybe --columns prompt=question,chosen=answer_chosen,rejected=answer_rejected"
    ):
        load_pairs(jsonl(tmp_path, [row]))


def test_rewardbench2_lists_of_texts_give_one_pair_per_combination(tmp_path):
    row = {"id": "q1", "prompt": "2+2?", "chosen": ["4"], "rejected": ["5", "6", "22"], "subset": "Math"}
    res = load_pairs(jsonl(tmp_path, [row]))
    assert res.shape == "multi_completion"
    got = [(p.id, p.chosen[0]["content"], p.rejected[0]["content"], p.category) for p in res.pairs]
    assert got == [("q1#0", "4", "5", "Math"), ("q1#1", "4", "6", "Math"), ("q1#2", "4", "22", "Math")]
    ties = load_pairs(jsonl(tmp_path, [{**row, "chosen": ["4", "four"], "rejected": ["5"]}]))
    assert [p.chosen[0]["content"] for p in ties.pairs] == ["4", "four"]


@pytest.mark.parametrize(
    "rejected, where",
    [([], "field 'rejected'"), (["5", 6], "field 'rejected\\[1\\]': expected a string"), (["4"], "identical")],
)
def test_rewardbench2_bad_lists_name_the_item(tmp_path, rejected, where):
    row = {"prompt": "2+2?", "chosen": ["4"], "rejected": rejected}
    with pytest.raises(DataError, match=rf"line 1: .*{where}"):
        load_pairs(jsonl(tmp_path, [row]))
