"""Public datasets that name our fields differently, read without a mapping and said so.

Before: Intel/orca_dpo_pairs-like rows (system, question, chosen, rejected) were read as
implicit prompts, the question dropped and the answers' shared first words made the "prompt";
PKU-SafeRLHF rows failed with "field 'response2': missing"; ShareGPT messages (LLaMA-Factory)
and argilla's rating columns were not read.
"""

from __future__ import annotations

import json
import re

import pytest
from _rows import assistant, jsonl, user

from rewardforge.data import DataError, DataOptionError, load_pairs, parse_columns


def test_orca_question_and_system_columns_are_the_prompt(tmp_path):
    row = {"system": "Be brief.", "question": "What is 2+2?", "chosen": "It is 4.", "rejected": "It is 5."}
    res = load_pairs(jsonl(tmp_path, [row, row]))
    pair = res.pairs[0]
    assert res.shape == "explicit_prompt"
    assert res.inferred_columns == {"prompt": "question"}
    assert "prompt=question" in res.reading_notes()
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
    row = {"instruction": "Add.", "query": "2+2", "chosen": "4", "rejected": "5"}
    with pytest.raises(DataOptionError, match=r"instruction, query.*--columns prompt=instruction"):
        load_pairs(jsonl(tmp_path, [row]))


def test_alpaca_instruction_and_input_are_one_prompt(tmp_path):
    rows = [
        {
            "instruction": "Translate to French.",
            "input": "Good morning",
            "chosen": "Bonjour",
            "rejected": "Hola",
        },
        {"instruction": "Say hi.", "input": "", "chosen": "Hi", "rejected": "No"},
        {"instruction": "Say hi.", "chosen": "Hi", "rejected": "No"},
    ]
    res = load_pairs(jsonl(tmp_path, rows))
    assert res.inferred_columns == {"prompt": "instruction+input"}
    assert "prompt=instruction+input" in res.reading_notes()
    prompts = [pair.prompt for pair in res.pairs]
    assert prompts == [[user("Translate to French.\nGood morning")], [user("Say hi.")], [user("Say hi.")]]


def test_alpaca_input_that_is_not_text_is_that_rows_error(tmp_path):
    rows = [
        {"instruction": "Say hi.", "input": "", "chosen": "Hi", "rejected": "No"},
        {"instruction": "Say hi.", "input": 5, "chosen": "Hi", "rejected": "No"},
    ]
    with pytest.raises(DataError, match=r"line 2: field 'input': expected a string, got int"):
        load_pairs(jsonl(tmp_path, rows))


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


PKU_ROW = {"prompt": "Q", "response_0": "a", "response_1": "b"}
FARM_ROW = {"instruction": "Say hi.", "output_1": "No.", "output_2": "Hi!"}


@pytest.mark.parametrize(
    "row, field, value, reason",
    [
        (PKU_ROW, "better_response_id", 2, "expected 0 or 1"),
        (PKU_ROW, "better_response_id", None, "missing"),
        (PKU_ROW, "better_response_id", True, "expected 0 or 1"),
        (FARM_ROW, "preference", 0, "expected 1 or 2"),
        (FARM_ROW, "preference", True, "expected 1 or 2"),
        (FARM_ROW, "preference", None, "missing"),
    ],
)
def test_the_better_of_two_numbered_responses_must_be_one_of_them(tmp_path, row, field, value, reason):
    """PKU-SafeRLHF's better_response_id (0 or 1) and alpaca_farm's preference (1 or 2)."""
    with pytest.raises(DataError, match=rf"line 1: field '{field}': {reason}"):
        load_pairs(jsonl(tmp_path, [{**row, field: value}]))


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
    [
        ([], "field 'rejected'"),
        (["5", 6], "field 'rejected\\[1\\]': expected a string"),
        (["4"], "identical"),
    ],
)
def test_rewardbench2_bad_lists_name_the_item(tmp_path, rejected, where):
    row = {"prompt": "2+2?", "chosen": ["4"], "rejected": rejected}
    with pytest.raises(DataError, match=rf"line 1: .*{where}"):
        load_pairs(jsonl(tmp_path, [row]))


# ---- found by fuzzing the features above ------------------------------------------------------


def test_sharegpt_cells_in_csv_read_as_in_jsonl(tmp_path):
    import pandas as pd

    human, gpt = {"from": "human", "value": "q"}, {"from": "gpt", "value": "good"}
    rows = [
        {"prompt": "q", "chosen": json.dumps(gpt), "rejected": json.dumps({"from": "gpt", "value": "bad"})},
    ]
    transcripts = [
        {"chosen": json.dumps([human, gpt]), "rejected": json.dumps([human, {"from": "gpt", "value": "b"}])}
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame(transcripts).to_csv(tmp_path / "b.csv", index=False)
    one = load_pairs(str(tmp_path / "a.csv")).pairs[0]
    assert one.chosen == [assistant("good")] and one.rejected == [assistant("bad")]
    two = load_pairs(str(tmp_path / "b.csv")).pairs[0]
    assert two.prompt == [user("q")] and two.chosen == [assistant("good")]


def test_parquet_list_mixing_sharegpt_and_openai_messages(tmp_path):
    import pandas as pd

    sharegpt = {"chosen": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "g"}]}
    sharegpt["rejected"] = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "b"}]
    openai = {"chosen": [user("q"), assistant("g")], "rejected": [user("q"), assistant("b")]}
    pd.DataFrame([sharegpt, openai]).to_parquet(tmp_path / "m.parquet")  # Arrow: every key, some null
    pairs = load_pairs(str(tmp_path / "m.parquet")).pairs
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [
        ([user("q")], [assistant("g")], [assistant("b")])
    ] * 2


def test_an_alias_in_a_few_rows_is_an_error_not_a_lost_prompt(tmp_path):
    rows = [{"chosen": "a0", "rejected": "b0"}, {"chosen": "a1", "rejected": "b1"}]
    rows.append({"question": "IMPORTANT", "chosen": "a2", "rejected": "b2"})
    with pytest.raises(
        DataError, match=r"line 3: field 'question': this row has no 'prompt'.*--columns prompt=question"
    ):
        load_pairs(jsonl(tmp_path, rows))


def test_null_fields_do_not_hide_their_aliases(tmp_path):
    row = {
        "prompt": None,
        "system": None,
        "system_prompt": "SP",
        "question": "Q",
        "chosen": "a",
        "rejected": "b",
    }
    pair = load_pairs(jsonl(tmp_path, [row])).pairs[0]
    assert pair.prompt == [{"role": "system", "content": "SP"}, user("Q")]


def test_a_value_under_both_names_is_an_error(tmp_path, monkeypatch):
    import rewardforge.data.loader as loader

    monkeypatch.setattr(loader, "SHAPE_SAMPLE", 2)  # the odd row comes after the rows read ahead
    rows = [{"question": "Q", "chosen": "a", "rejected": "b"}] * 2
    rows.append({"question": "Q2", "prompt": "P2", "chosen": "a", "rejected": "b"})
    with pytest.raises(DataError, match=r"line 3: field 'question': both 'prompt' and 'question'"):
        load_pairs(jsonl(tmp_path, rows))


def test_pandas_float_labels_in_csv(tmp_path):
    import pandas as pd

    pku = [
        {"prompt": "p", "response_0": "a", "response_1": "b", "better_response_id": v} for v in (1, 0, None)
    ]
    pd.DataFrame(pku).to_csv(tmp_path / "pku.csv", index=False)  # the null makes the column float: "1.0"
    res = load_pairs(str(tmp_path / "pku.csv"), skip_invalid=True)
    assert [p.chosen[0]["content"] for p in res.pairs] == ["b", "a"] and len(res.rejected) == 1
    shp = [{"history": "h", "human_ref_A": "a", "human_ref_B": "b", "labels": v} for v in (1, 0, None)]
    pd.DataFrame(shp).to_csv(tmp_path / "shp.csv", index=False)
    res = load_pairs(str(tmp_path / "shp.csv"), skip_invalid=True)
    assert [p.chosen[0]["content"] for p in res.pairs] == ["a", "b"]


def test_integer_ids_with_nulls_keep_their_form(tmp_path):
    import pandas as pd

    rows = [
        {"id": 5, "prompt": "p", "chosen": "a", "rejected": "b"},
        {"id": None, "prompt": "p", "chosen": "c", "rejected": "d"},
    ]
    pd.DataFrame(rows).to_parquet(tmp_path / "ids.parquet")
    assert [p.id for p in load_pairs(str(tmp_path / "ids.parquet")).pairs] == ["5", None]


@pytest.mark.parametrize("field", ["margin", "chosen_rating"])
def test_an_integer_beyond_float_range_is_a_row_error(tmp_path, field):
    path = tmp_path / "big.jsonl"
    big = "1" + "0" * 400
    path.write_text(
        f'{{"prompt": "p", "chosen": "a", "rejected": "b", "{field}": {big}, "rejected_rating": 1}}\n'
    )
    with pytest.raises(
        DataError, match=rf"line 1: field '{field}': expected a finite number, got an integer of 401 digits"
    ):
        load_pairs(str(path), margin_from_scores=True)


def test_transcripts_that_part_in_a_system_turn_answer_different_prompts(tmp_path):
    row = {
        "chosen": [{"role": "system", "content": "S1"}, user("p"), assistant("a")],
        "rejected": [{"role": "system", "content": "S2"}, user("p"), assistant("b")],
    }
    with pytest.raises(DataError, match=r"field 'chosen': the transcripts differ at turn 1, a system turn"):
        load_pairs(jsonl(tmp_path, [row]))


def test_sharegpt_errors_name_from_and_value(tmp_path):
    row = {
        "prompt": "q",
        "chosen": [{"from": "gpt", "value": None}],
        "rejected": [{"from": "gpt", "value": "b"}],
    }
    with pytest.raises(DataError, match=r"field 'chosen\[0\]\.value': missing"):
        load_pairs(jsonl(tmp_path, [row]))


def test_suggestion_skips_model_and_rating_columns(tmp_path):
    row = {
        "instruction": "p",
        "answer_a": "a",
        "answer_b": "b",
        "chosen_model": "gpt",
        "rejected_model": "llama",
    }
    with pytest.raises(DataError) as info:
        load_pairs(jsonl(tmp_path, [row]))
    assert "maybe --columns" not in str(info.value)


def test_helpsteer2_row_without_prompt_names_prompt(tmp_path):
    row = {"response_1": "a", "response_2": "b", "preference_strength": 2}
    with pytest.raises(DataError, match=r"line 1: field 'prompt': missing"):
        load_pairs(jsonl(tmp_path, [row]))


@pytest.mark.parametrize("others", [{}, {"input": None}, {"input": ""}])
def test_alpaca_input_is_read_even_when_most_rows_have_none(tmp_path, others):
    rows = [{"instruction": "Say hi.", "chosen": "Hi", "rejected": "No", **others}] * 3
    rows.append(
        {"instruction": "Translate.", "input": "Good morning", "chosen": "Bonjour", "rejected": "Hola"}
    )
    res = load_pairs(jsonl(tmp_path, rows))
    assert res.inferred_columns == {"prompt": "instruction+input"}
    assert res.pairs[3].prompt == [user("Translate.\nGood morning")]


def test_alpaca_input_beside_an_output_column_is_still_read(tmp_path):
    row = {
        "instruction": "Translate.",
        "input": "Good morning",
        "output": "Bonjour",
        "chosen": "Bonjour",
        "rejected": "Hola",
    }
    assert load_pairs(jsonl(tmp_path, [row])).pairs[0].prompt == [user("Translate.\nGood morning")]


def test_alpaca_input_left_unread_by_a_mapping_or_without_instruction_is_an_error(tmp_path):
    rows = [{"instruction": "Translate.", "input": "Good morning", "chosen": "Bonjour", "rejected": "Hola"}]
    with pytest.raises(DataError, match=r"line 1: field 'input': this row's 'input' is not read"):
        load_pairs(jsonl(tmp_path, rows), columns={"prompt": "instruction"})
    rows = [{"instruction": "Say hi.", "input": "", "chosen": "Hi", "rejected": "No"}] * 2
    rows.append({"instruction": " ", "input": "Good morning", "chosen": "Bonjour", "rejected": "Hola"})
    with pytest.raises(
        DataError, match=r"line 3: field 'instruction': missing \(this row has 'input' for it\)"
    ):
        load_pairs(jsonl(tmp_path, rows))


def test_alpaca_farm_numbered_outputs_and_preference(tmp_path):
    rows = [
        {
            "instruction": "Translate.",
            "input": "Good morning",
            "output_1": "Bonjour",
            "output_2": "Hola",
            "preference": 1,
        },
        {"instruction": "Say hi.", "input": "", "output_1": "No.", "output_2": "Hi!", "preference": 2.0},
    ]
    res = load_pairs(jsonl(tmp_path, rows))
    assert res.shape == "alpaca_farm" and res.inferred_columns == {"prompt": "instruction+input"}
    first, second = res.pairs
    assert (first.prompt, first.chosen, first.rejected) == (
        [user("Translate.\nGood morning")],
        [assistant("Bonjour")],
        [assistant("Hola")],
    )
    assert (second.prompt, second.chosen) == ([user("Say hi.")], [assistant("Hi!")])


def test_ultrainteract_trajectory_and_a_context_column_are_the_prompt(tmp_path):
    """openbmb/UltraInteract_pair keeps its prompt in a ShareGPT `trajectory`: it was dropped and
    the solutions' shared first step ("Step 1:") made the prompt."""
    row = {
        "task": "Math_CoT",
        "trajectory": [{"from": "user", "value": "What is 12*12?"}],
        "chosen": "Step 1: 12*12 = 144. Answer: 144",
        "rejected": "Step 1: 12*12 = 124. Answer: 124",
    }
    pair = load_pairs(jsonl(tmp_path, [row])).pairs[0]
    assert pair.prompt == [user("What is 12*12?")] and pair.chosen_text == row["chosen"]
    context = {"context": "Capital of France?", "chosen": "The capital is Paris.", "rejected": "It is Lyon."}
    loaded = load_pairs(jsonl(tmp_path, [context], "c.jsonl"))
    assert (
        loaded.pairs[0].prompt == [user("Capital of France?")] and "prompt=context" in loaded.reading_notes()
    )


@pytest.mark.parametrize(
    "extra",
    [{"messages": [{"role": "user", "content": "Capital of France?"}]}, {"dialogue": "Capital of France?"}],
)
@pytest.mark.parametrize("as_messages", [False, True])
def test_prompt_less_texts_beside_an_unread_conversation_are_refused(tmp_path, extra, as_messages):
    row = {"chosen": "The capital is Paris.", "rejected": "The capital is Lyon."} | extra
    if as_messages:  # one assistant message each: the same, written as lists
        row |= {side: [assistant(row[side])] for side in ("chosen", "rejected")}
    (key,) = extra
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [row]))
    assert f"--columns prompt={key}" in str(err.value) and f"field '{key}'" in str(err.value)
    assert load_pairs(jsonl(tmp_path, [row]), columns={"prompt": key}).pairs[0].prompt == [
        user("Capital of France?")
    ]


def test_llama_factory_alpaca_history_and_system_lead_the_prompt(tmp_path):
    row = {"instruction": "Q2", "input": "", "chosen": "good", "rejected": "bad", "system": "sys"}
    row["history"] = [["Q1", "A1"]]
    pair = load_pairs(jsonl(tmp_path, [row])).pairs[0]
    assert pair.prompt == [{"role": "system", "content": "sys"}, user("Q1"), assistant("A1"), user("Q2")]
    with pytest.raises(DataError, match=r"field 'history\[0\]': expected a \[question, answer\] pair"):
        load_pairs(jsonl(tmp_path, [row | {"history": [["Q1"]]}], "bad.jsonl"))


def test_one_score_column_and_margin_from_scores_names_the_column_to_map(tmp_path):
    """argilla/distilabel-intel-orca-dpo-pairs has `chosen_score` alone: the error named a field
    the data does not have, with no way out."""
    row = {
        "input": "What is 2+2?",
        "chosen": "4",
        "rejected": "5",
        "chosen_score": 9.0,
        "status": "unchanged",
    }
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [row]), margin_from_scores=True)
    assert "field 'score_rejected': no such column" in str(err.value)
    assert "--columns score_rejected=COLUMN" in str(err.value)


def test_step_dpo_whole_solutions_replace_the_last_step(tmp_path):
    """xinlai/Math-Step-DPO-10K: chosen/rejected are the last step; the shared earlier steps were
    dropped without a word. A reward model scores whole solutions: full_chosen/full_rejected."""
    steps = "Step 1: Let the number be x.\nStep 2: 3x + 5 = 20.\n"
    row = {
        "prompt": "Three times a number plus five is 20. Find it.",
        "initial_reason_steps": steps,
        "chosen": "Step 3: x = 5.",
        "rejected": "Step 3: x = 25/3.",
        "full_chosen": steps + "Step 3: x = 5.",
        "full_rejected": steps + "Step 3: x = 25/3.",
    }
    loaded = load_pairs(jsonl(tmp_path, [row]))
    assert (loaded.pairs[0].chosen_text, loaded.pairs[0].rejected_text) == (
        row["full_chosen"],
        row["full_rejected"],
    )
    assert "chosen=full_chosen,rejected=full_rejected" in loaded.reading_notes()
    with pytest.raises(DataError, match=r"line 2: field 'full_chosen': missing \(this data's chosen is"):
        load_pairs(jsonl(tmp_path, [row, row | {"full_chosen": None}, row], "null.jsonl"))
    mapped = load_pairs(jsonl(tmp_path, [row]), columns={"chosen": "chosen", "rejected": "rejected"})
    assert mapped.pairs[0].chosen_text == "Step 3: x = 5."  # the user's mapping wins


def test_two_prompt_columns_are_refused_and_can_be_read_as_one(tmp_path):
    """QA rows (context + question): the refusal's only advice was to pick one and lose the other."""
    row = {
        "context": "The tower is 330 m tall.",
        "question": "How tall is it?",
        "chosen": "330 m.",
        "rejected": "Tall.",
    }
    with pytest.raises(
        DataOptionError, match=r"or read them as one, a line apart, with --columns prompt=question\+context"
    ):
        load_pairs(jsonl(tmp_path, [row]))
    pair = load_pairs(jsonl(tmp_path, [row]), columns=parse_columns("prompt=context+question")).pairs[0]
    assert pair.prompt == [user("The tower is 330 m tall.\nHow tall is it?")]
    with pytest.raises(DataOptionError, match="mapped to more than one field"):
        parse_columns("prompt=context+question,system=context")


# ---- helper round 38 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["article", "document", "passage", "text", "body", "instructions", "prompts", "user_message", "email"],
)
def test_prompt_less_texts_beside_a_source_text_are_refused_not_read_without_it(tmp_path, key):
    """The article a summary answers was dropped: the pair trained with an empty prompt."""
    row = {key: "The stock market fell 3 percent today after rate fears.", "chosen": "Stocks fell 3%.",
           "rejected": "Weather nice."}  # fmt: skip
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [row]))
    assert f"--columns prompt={key}" in str(err.value)
    (pair,) = load_pairs(jsonl(tmp_path, [row]), columns=parse_columns(f"prompt={key}")).pairs
    assert pair.prompt == [user(row[key])]


def test_prompt_less_texts_keep_their_labels_and_columns_the_texts_already_hold(tmp_path):
    rows = [
        {
            "chosen": "Question: why is the sky blue?\nRayleigh scattering.",
            "rejected": "Question: why is the sky blue?\nNo idea.",
            "source": "science questions collected online",
            "language": "en",
            "text": "Question: why is the sky blue?",  # in both transcripts: nothing lost
        }
    ]
    (pair,) = load_pairs(jsonl(tmp_path, rows)).pairs
    assert pair.prompt == [user("Question: why is the sky blue?")]


def test_earlier_turns_beside_the_prompt_are_read_or_refused_never_dropped(tmp_path):
    earlier = [user("What is the capital of France?"), assistant("Paris.")]
    row = {"messages": earlier, "prompt": "And in Britain?", "chosen": "London.", "rejected": "Rome."}
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [row]))
    assert "--columns prompt=messages+prompt" in str(err.value)
    loaded = load_pairs(jsonl(tmp_path, [row]), columns=parse_columns("prompt=messages+prompt"))
    assert loaded.pairs[0].prompt == [*earlier, user("And in Britain?")]


def test_a_chat_prompt_and_its_context_are_read_together_as_the_advice_says(tmp_path):
    """The advice `--columns prompt=prompt+input` failed: 'expected a string, got list'."""
    row = {"prompt": [user("Summarise the text.")], "input": "Cats sleep a lot.", "chosen": "Cats nap.",
           "rejected": "Dogs bark."}  # fmt: skip
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [row]))
    assert "--columns prompt=prompt+input" in str(err.value)
    loaded = load_pairs(jsonl(tmp_path, [row]), columns=parse_columns("prompt=prompt+input"))
    assert loaded.pairs[0].prompt == [user("Summarise the text.\nCats sleep a lot.")]
    # a conversation as the context, then the question: a user turn after its last reply
    row = {"context": [user("Hi"), assistant("Hello!")], "prompt": "Tell me a joke.", "chosen": "Knock knock.",
           "rejected": "No."}  # fmt: skip
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [row]))
    assert "--columns prompt=context+prompt" in str(err.value)
    loaded = load_pairs(jsonl(tmp_path, [row]), columns=parse_columns("prompt=context+prompt"))
    assert loaded.pairs[0].prompt == [user("Hi"), assistant("Hello!"), user("Tell me a joke.")]


@pytest.mark.parametrize(("twin", "ours"), [("Prompt", "prompt"), ("Chosen", "chosen"), ("System", "system")])
def test_one_of_our_fields_written_a_second_way_is_not_dropped(tmp_path, twin, ours):
    row = {"prompt": "Q?", "chosen": "A.", "rejected": "B.", "system": "Be brief.", twin: "Other text here."}
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [row]))
    assert f"{twin!r} beside {ours!r}" in str(err.value)
    same = {**row, twin: row[ours]}  # a copy loses nothing
    assert len(load_pairs(jsonl(tmp_path, [same], "same.jsonl")).pairs) == 1


def test_a_document_beside_the_prompt_and_copies_the_pair_holds(tmp_path):
    row = {"prompt": "What does the text say?", "document": "The bridge closes at noon.", "chosen": "It closes.",
           "rejected": "No idea."}  # fmt: skip
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [row]))
    assert "--columns prompt=prompt+document" in str(err.value)
    # UltraFeedback-binarized: `messages` is the prompt and the chosen reply again
    row = {"prompt": "Hi?", "chosen": [user("Hi?"), assistant("Hello.")], "rejected": [user("Hi?"), assistant("Go.")],
           "messages": [user("Hi?"), assistant("Hello.")]}  # fmt: skip
    assert len(load_pairs(jsonl(tmp_path, [row], "uf.jsonl")).pairs) == 1


def test_code_preference_pairs_accepted_column_is_the_chosen_reply(tmp_path):
    row = {
        "input": "Write add(a, b).",
        "accepted": "def add(a, b):\n    return a + b",
        "rejected": "def add(a, b): pass",
    }
    (pair,) = load_pairs(jsonl(tmp_path, [row])).pairs
    assert (pair.prompt, pair.chosen_text) == ([user(row["input"])], row["accepted"])


# ---- helper round 40: the checks of round 38, checked ------------------------------------------


def test_following_the_advice_for_earlier_turns_does_not_put_the_reply_in_the_prompt(tmp_path):
    talk = [user("Hi"), assistant("Hello!"), user("What is 2+2?"), assistant("4")]
    row = {"prompt": "What is 2+2?", "messages": talk, "chosen": "4", "rejected": "5"}
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [row]))
    assert "--columns prompt=messages+prompt" in str(err.value)
    (pair,) = load_pairs(jsonl(tmp_path, [row]), columns=parse_columns("prompt=messages+prompt")).pairs
    assert pair.prompt == [user("Hi"), assistant("Hello!"), user("What is 2+2?")]
    system = {"role": "system", "content": "Be kind."}
    row = {"prompt": "Q?", "messages": [system, user("Q?")], "chosen": "A.", "rejected": "B."}
    (pair,) = load_pairs(
        jsonl(tmp_path, [row], "s.jsonl"), columns=parse_columns("prompt=messages+prompt")
    ).pairs
    assert pair.prompt == [system, user("Q?")]


def test_a_twin_of_our_field_is_not_advised_to_be_joined_and_can_be_ignored(tmp_path):
    row = {"prompt": "hi", "chosen": "hello", "rejected": "go away", "Chosen": "model_a"}
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [row]))
    assert "chosen+Chosen" not in str(err.value) and "--columns ignore=Chosen" in str(err.value)
    (pair,) = load_pairs(jsonl(tmp_path, [row]), columns=parse_columns("ignore=Chosen")).pairs
    assert pair.chosen_text == "hello"


def test_flags_are_not_read_as_the_chosen_reply(tmp_path):
    """`accepted: True` beside `response` became the reply "True" against "False"."""
    rows = [{"prompt": "hi", "response": "hello there", "accepted": "True", "rejected": "False"},
            {"prompt": "hey", "response": "hi", "accepted": "False", "rejected": "True"}]  # fmt: skip
    with pytest.raises(DataError):
        load_pairs(jsonl(tmp_path, rows))


def test_functions_beside_rows_with_tools_are_not_dropped(tmp_path):
    tool = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    rows = [
        {"prompt": f"weather {i}?", "chosen": "sunny", "rejected": "rain", "functions": [tool]}
        for i in range(3)
    ]
    rows.append({"prompt": "weather?", "chosen": "sunny", "rejected": "rain", "tools": [tool]})
    with pytest.raises(DataError, match="--columns tools=functions"):
        load_pairs(jsonl(tmp_path, rows))


@pytest.mark.parametrize(
    "row",
    [
        {"chosen": [user("Summarize the article."), assistant("Park grows.")],
         "rejected": [user("Summarize the article."), assistant("No.")], "article": "The city council voted for a park."},
        {"chosen": "Park grows.", "rejected": "No.", "document": {"title": "Council", "text": "The council voted."}},
        {"prompt": "Who founded Acme?", "documents": ["Acme was founded by Jane Doe."],
         "chosen": "Acme was founded by Jane Doe.", "rejected": "It was Bob."},
        {"chosen": "Because the light scatters, that is why.", "rejected": "No idea.", "task": "Why?"},
        {"chosen": "Sure.", "rejected": "No.", "promptText": "Say something nice."},
        {"chosen": "Sure.", "rejected": "No.", "chat_history": "Earlier we spoke of cats."},
    ],
    ids=["article-beside-conversations", "document-object", "document-quoted-by-a-reply", "short-task-in-a-reply",
         "camel-case", "chat-history"],
)  # fmt: skip
def test_a_document_or_prompt_the_pair_does_not_hold_is_not_dropped(tmp_path, row):
    with pytest.raises(DataError, match="--columns ignore="):
        load_pairs(jsonl(tmp_path, [row]))


@pytest.mark.parametrize(
    "key",
    ["title", "dataset_title", "human_annotator", "user", "human", "user_agent", "input_tokens", "input_ids",
     "context_window", "text_quality", "human_preference", "instruction_tuned", "content_warning"],
)  # fmt: skip
def test_labels_of_a_row_beside_prompt_less_texts_are_not_taken_for_a_prompt(tmp_path, key):
    value = [101, 2054] if key == "input_ids" else "some label of this row"
    row = {"chosen": "The answer is four.", "rejected": "It is five, I think.", key: value}
    assert len(load_pairs(jsonl(tmp_path, [row])).pairs) == 1


def test_capybara_conversation_whose_last_answer_is_a_third_response(tmp_path):
    """Its `conversation` ends with the original answer, which neither side of the pair may be."""
    chosen = [user("Q1"), assistant("A1"), user("Q2"), assistant("new answer")]
    rejected = [user("Q1"), assistant("A1"), user("Q2"), assistant("other answer")]
    row = {"prompt": "Q2", "conversation": [{"input": "Q1", "output": "A1"}, {"input": "Q2", "output": "original"}],
           "chosen": chosen, "rejected": rejected}  # fmt: skip
    (pair,) = load_pairs(jsonl(tmp_path, [row])).pairs
    assert pair.chosen == [assistant("new answer")]
    lost = {**row, "conversation": [{"input": "Q0", "output": "A0"}, *row["conversation"]]}
    with pytest.raises(DataError, match="conversation"):
        load_pairs(jsonl(tmp_path, [lost], "lost.jsonl"))


def test_a_column_some_rows_lack_joins_as_empty(tmp_path):
    rows = [{"prompt": "Q1?", "passages": "P1.", "chosen": "A.", "rejected": "B."},
            {"prompt": "Q2?", "chosen": "A.", "rejected": "B."}]  # fmt: skip
    loaded = load_pairs(jsonl(tmp_path, rows), columns=parse_columns("prompt=prompt+passages"))
    assert [p.prompt for p in loaded.pairs] == [[user("Q1?\nP1.")], [user("Q2?")]]


# ---- helper round 42 --------------------------------------------------------------------------


def test_the_advice_works_for_documents_oasst_messages_and_mixed_tools(tmp_path):
    docs = [{"doc_id": 1, "text": "The bridge closes at noon.", "metadata": {"lang": "en"}}]
    row = {"prompt": "When does it close?", "documents": docs, "chosen": "At noon.", "rejected": "Never."}
    with pytest.raises(DataError, match="prompt=prompt\\+documents"):
        load_pairs(jsonl(tmp_path, [row]))
    (pair,) = load_pairs(jsonl(tmp_path, [row]), columns=parse_columns("prompt=prompt+documents")).pairs
    assert pair.prompt == [user("When does it close?\nThe bridge closes at noon.")]
    talk = [{"role": "prompter", "text": "Hi"}, {"role": "assistant", "text": "Hello!"}]
    row = {"prompt": "And then?", "conversation": talk, "chosen": "More.", "rejected": "No."}
    with pytest.raises(DataError, match="prompt=conversation\\+prompt"):
        load_pairs(jsonl(tmp_path, [row], "o.jsonl"))
    (pair,) = load_pairs(
        jsonl(tmp_path, [row], "o.jsonl"), columns=parse_columns("prompt=conversation+prompt")
    ).pairs
    assert pair.prompt == [user("Hi"), assistant("Hello!"), user("And then?")]
    tool = {"name": "f", "parameters": {"type": "object", "properties": {}}}
    rows = [{"prompt": "a?", "chosen": "x", "rejected": "y", "functions": [tool]},
            {"prompt": "b?", "chosen": "x", "rejected": "y", "tools": [tool]}]  # fmt: skip
    loaded = load_pairs(jsonl(tmp_path, rows, "t.jsonl"), columns=parse_columns("tools=functions"))
    assert all('"name": "f"' in p.prompt[0]["content"] for p in loaded.pairs)


def test_a_joined_conversation_is_cut_only_at_its_last_question(tmp_path):
    talk = [user("Again?"), assistant("one"), user("Tell me more"), assistant("two")]
    row = {"prompt": "Again?", "messages": talk, "chosen": "three", "rejected": "no"}
    (pair,) = load_pairs(jsonl(tmp_path, [row]), columns=parse_columns("prompt=messages+prompt")).pairs
    assert pair.prompt == [*talk, user("Again?")]


def test_earlier_turns_as_text_are_advised_before_the_question(tmp_path):
    row = {"prompt": "And now?", "dialogue": "A: hi\nB: hello", "chosen": "Fine.", "rejected": "No."}
    with pytest.raises(DataError, match="prompt=dialogue\\+prompt"):
        load_pairs(jsonl(tmp_path, [row]))


def test_a_documents_labels_are_not_text_the_prompt_must_hold(tmp_path):
    docs = [{"title": "Bridges of Town", "text": "The bridge closes at noon.", "metadata": {"lang": "en"}}]
    row = {
        "prompt": "The bridge closes at noon. When?",
        "documents": docs,
        "chosen": "Noon.",
        "rejected": "Never.",
    }
    assert len(load_pairs(jsonl(tmp_path, [row])).pairs) == 1


def test_a_renamed_column_no_row_has_is_a_typo_not_ignored(tmp_path):
    """A renamed column a row lacks keeps the row's own field; so a misspelt one must be said."""
    rows = [{"prompt": "q", "chosen": "a", "rejected": "b"}]
    with pytest.raises(DataOptionError, match="no row has a column 'questoin'"):
        load_pairs(jsonl(tmp_path, rows), columns=parse_columns("prompt=questoin"))


def test_a_renamed_column_null_in_a_row_keeps_the_rows_own_field(tmp_path):
    """Arrow writes a key other rows have as null: the row's own prompt was dropped."""
    import pandas as pd

    rows = [{"question": "Qa", "prompt": None, "chosen": "g1", "rejected": "b1"},
            {"question": None, "prompt": "Qb", "chosen": "g2", "rejected": "b2"}]  # fmt: skip
    path = tmp_path / "mixed.parquet"
    pd.DataFrame(rows).to_parquet(path)
    loaded = load_pairs(str(path), columns=parse_columns("prompt=question"))
    assert [p.prompt for p in loaded.pairs] == [[user("Qa")], [user("Qb")]]


def test_an_empty_text_in_a_renamed_column_is_that_rows_error_not_the_rows_own_field(tmp_path):
    """helper 86: with `chosen` and `good` both in the data, `--columns chosen=good` read a row
    whose `good` was "" from its `chosen`, without a word."""
    rows = [{"prompt": "Q", "chosen": "own 0", "good": "good 0", "rejected": "r", "bad": "b"},
            {"prompt": "Q", "chosen": "own 1", "good": "", "rejected": "r", "bad": "b"}]  # fmt: skip
    with pytest.raises(DataError, match="line 2: field 'good': empty response"):
        load_pairs(jsonl(tmp_path, rows), columns=parse_columns("chosen=good,rejected=bad"))
    kept = load_pairs(
        jsonl(tmp_path, rows), columns=parse_columns("chosen=good,rejected=bad"), skip_invalid=True
    )
    assert [p.chosen_text for p in kept.pairs] == ["good 0"] and len(kept.rejected) == 1


@pytest.mark.parametrize("mapping", ["prompt=foo+bar", "prompt=question+typo"])
def test_a_joined_column_no_row_has_is_a_typo_not_ignored(tmp_path, mapping):
    """A misspelt part of a joined mapping gave an empty prompt and dropped `question` silently."""
    rows = [{"question": "Q?", "good": "a", "bad": "b"}]
    missing = mapping.split("=")[1].split("+")[-1] if "question" in mapping else "foo"
    with pytest.raises(DataOptionError, match=f"no row has a column '{missing}'"):
        load_pairs(jsonl(tmp_path, rows), columns=parse_columns(f"{mapping},chosen=good,rejected=bad"))


def test_a_misspelt_column_is_an_option_error_even_when_every_row_lacks_our_field(tmp_path):
    rows = [{"question": "Q?", "good": "a", "bad": "b"}]
    with pytest.raises(DataOptionError, match="no row has a column 'questoin'"):
        load_pairs(jsonl(tmp_path, rows), columns=parse_columns("prompt=questoin,chosen=good,rejected=bad"))


def test_a_joined_mapping_null_in_a_row_keeps_the_rows_own_field(tmp_path):
    """`prompt=context+question` with both null in a row dropped that row's own prompt."""
    import pandas as pd

    rows = [{"context": "C.", "question": "Qa?", "prompt": None, "chosen": "g1", "rejected": "b1"},
            {"context": None, "question": None, "prompt": "OWN", "chosen": "g2", "rejected": "b2"}]  # fmt: skip
    path = tmp_path / "mixed.parquet"
    pd.DataFrame(rows).to_parquet(path)
    for source in (str(path), jsonl(tmp_path, rows)):
        loaded = load_pairs(source, columns=parse_columns("prompt=context+question"))
        assert [p.prompt for p in loaded.pairs] == [[user("C.\nQa?")], [user("OWN")]]


def test_our_labels_in_another_case_are_read_and_said(tmp_path):
    """`Margin`, `ID`, `Category` were dropped without a word: every pair trained with margin 0."""
    path = tmp_path / "upper.csv"
    path.write_text(
        "ID,Prompt,Chosen,Rejected,Margin,Category\na1,What is 2+2?,4,5,3.0,math\na2,Capital?,Paris,Rome,0.5,geo\n"
    )
    res = load_pairs(str(path))
    assert [(p.id, p.category, p.margin) for p in res.pairs] == [("a1", "math", 3.0), ("a2", "geo", 0.5)]
    assert "margin=Margin" in res.reading_notes() and "id=ID" in res.reading_notes()
    row = {"Id": "x", "ID": "y", "prompt": "Q", "chosen": "A", "rejected": "B"}
    with pytest.raises(DataOptionError, match="several columns that could be it \\(Id, ID\\)"):
        load_pairs(jsonl(tmp_path, [row]))


def test_our_labels_in_another_case_are_read_in_every_row_that_has_them(tmp_path):
    """A `Margin` in one row of four (labels are often null) or beside rows with `margin` was
    dropped without a word."""
    base = {"prompt": "q", "chosen": "a", "rejected": "b"}
    assert [
        p.margin for p in load_pairs(jsonl(tmp_path, [{**base, "Margin": 1}, base, base, base])).pairs
    ] == [1.0, None, None, None]
    mixed = [{**base, "margin": 1}, {**base, "Margin": 2}, {**base, "Margin": 3}]
    assert [p.margin for p in load_pairs(jsonl(tmp_path, mixed)).pairs] == [1.0, 2.0, 3.0]
    with pytest.raises(DataError, match="both 'id' and 'ID' have a value"):
        load_pairs(jsonl(tmp_path, [{**base, "id": "1", "ID": "2"}, {**base, "ID": "3"}]))
    # beside our own id in every row, `ID` is something else (a question's): not read
    both = [{**base, "id": "p1", "ID": "q7"}, {**base, "id": "p2", "ID": "q8"}]
    assert [p.id for p in load_pairs(jsonl(tmp_path, both)).pairs] == ["p1", "p2"]


@pytest.mark.parametrize(
    ("first", "second", "label", "values"),
    [
        ("response_a", "response_b", "winner", ["model_a", "model_b"]),
        ("response_0", "response_1", "better_response_id", [0, 1]),
        ("human_ref_A", "human_ref_B", "labels", [1, 0]),
        # helper 79: webgpt's and Unified-Feedback's scores say it too
        ("answer_0", "answer_1", "score_0", [5, 1]),
    ],
)
def test_mapping_labelled_responses_onto_chosen_rejected_is_refused(tmp_path, first, second, label, values):
    """helper 75: the label was read for ties only, so every row took the first response as the
    preferred one: half the pairs the wrong way round, without a word."""
    post = "history" if first == "human_ref_A" else "prompt"
    rows = [{post: "p", first: "a", second: "b", label: v} for v in values]
    if label == "score_0":  # the other score beside it
        rows = [{**r, "score_1": 6 - r["score_0"]} for r in rows]
    path = jsonl(tmp_path, rows)
    with pytest.raises(DataError, match=f"line 1: field '{label}': .*which one won in '{label}'"):
        load_pairs(path, columns={"chosen": first, "rejected": second})
    labels = f"{label}+score_1" if label == "score_0" else label
    with pytest.raises(DataError, match=f"ignore={re.escape(labels)}"):  # the other order too
        load_pairs(path, columns={"chosen": second, "rejected": first})
    # the label said to mean nothing here: position is the preference, as asked
    prompt = {"prompt": post} if post != "prompt" else {}
    res = load_pairs(path, columns={"chosen": first, "rejected": second, "ignore": labels, **prompt})
    assert [p.chosen[0]["content"] for p in res.pairs] == ["a", "a"]
    # left unmapped, the label decides
    native = load_pairs(path)
    assert [p.chosen[0]["content"] for p in native.pairs] == ["a", "b"]


def test_shp_post_named_as_the_prompt(tmp_path):
    """helper 75: `--columns prompt=post` on SHP rows failed with "field 'history': missing"."""
    rows = [{"post": "Which?", "human_ref_A": "a", "human_ref_B": "b", "labels": 0}]
    path = jsonl(tmp_path, rows)
    res = load_pairs(path, columns={"prompt": "post"})
    assert res.pairs[0].prompt == [user("Which?")] and res.pairs[0].chosen == [assistant("b")]
    with pytest.raises(DataError, match=r"'history': missing \(SHP's post: .*--columns prompt=COLUMN"):
        load_pairs(path)
    # helper 79: beside a `history`, the mapped post was ignored; a null history is just missing
    both = jsonl(tmp_path, [{**rows[0], "history": "hist"}], "both.jsonl")
    assert load_pairs(both, columns={"prompt": "post"}).pairs[0].prompt == [user("Which?")]
    with pytest.raises(DataError, match=r"'history': missing$"):
        load_pairs(jsonl(tmp_path, [{**rows[0], "history": None}], "null.jsonl"), columns={"ignore": "post"})


def test_a_null_rating_under_an_alias_is_missing_not_no_such_column(tmp_path):
    """helper 75: argilla's `rejected-rating: null` said "no such column" for a column it had read."""
    rows = [
        {
            "instruction": "Q",
            "chosen_response": "A.",
            "rejected_response": "B.",
            "chosen-rating": 5,
            "rejected-rating": r,
        }
        for r in (2, 1, None)
    ]
    with pytest.raises(
        DataError, match=r"line 3: field 'rejected-rating': missing \(needed for margin_from_scores\)"
    ):
        load_pairs(jsonl(tmp_path, rows), margin_from_scores=True)
    assert len(load_pairs(jsonl(tmp_path, rows)).pairs) == 3  # without the margin, no score is needed


def test_a_label_past_the_sample_is_that_rows_error_and_an_empty_one_no_label(tmp_path):
    """helper 79: the refusal read the first 1000 rows only, and an empty CSV cell (or "") was
    taken for a label."""
    import pandas as pd

    from rewardforge.data.loader import SHAPE_SAMPLE

    rows = [{"prompt": "p", "response_a": "a", "response_b": "b", "winner": None}] * SHAPE_SAMPLE
    rows += [{"prompt": "p", "response_a": "a", "response_b": "b", "winner": "model_b"}]
    columns = {"chosen": "response_a", "rejected": "response_b"}
    with pytest.raises(
        DataError, match=f"line {SHAPE_SAMPLE + 1}: field 'winner': --columns chosen=response_a"
    ):
        load_pairs(jsonl(tmp_path, rows), columns=columns)
    res = load_pairs(jsonl(tmp_path, rows), columns=columns, skip_invalid=True)
    assert len(res.pairs) == SHAPE_SAMPLE and res.rejected[0].field == "winner"
    blank = [{"prompt": "p", "response_a": "a", "response_b": "b", "winner": w} for w in ("", " ")]
    assert len(load_pairs(jsonl(tmp_path, blank, "blank.jsonl"), columns=columns).pairs) == 2
    pd.DataFrame([{"prompt": "p", "response_a": "a", "response_b": "b", "winner": None}] * 2).to_csv(
        tmp_path / "empty.csv", index=False
    )
    assert len(load_pairs(str(tmp_path / "empty.csv"), columns=columns).pairs) == 2


def test_labelled_rows_under_a_positional_mapping_are_skipped_wherever_they_are(tmp_path):
    """helper 81: in the first 1000 rows such a row stopped the whole run, naming no line, even
    with skip_invalid; past them it was skipped."""
    rows = [
        {"prompt": "p", "response_a": "a", "response_b": "b", "winner": w} for w in ("", None, "model_b", "")
    ]
    res = load_pairs(
        jsonl(tmp_path, rows), columns={"chosen": "response_a", "rejected": "response_b"}, skip_invalid=True
    )
    assert len(res.pairs) == 3 and [r.location for r in res.rejected] == ["line 3"]


def test_column_mapping_spaces_around_plus_and_ignored_names_are_checked(tmp_path):
    """helper 86: `prompt=ctx + qq` looked for a column 'ctx '; `ignore=+` was "mapped to more
    than one field"."""
    rows = [{"ctx": "C", "qq": "Q", "good": "a", "bad": "b", "notes": "n"}]
    loaded = load_pairs(
        jsonl(tmp_path, rows), columns=parse_columns("prompt=ctx + qq,chosen=good,rejected=bad")
    )
    assert loaded.pairs[0].prompt[0]["content"] == "C\nQ"
    # helper 87: a column to ignore may be missing from these rows (the held-out data, say)
    ignored = load_pairs(
        jsonl(tmp_path, rows),
        columns=parse_columns("prompt=ctx,chosen=good,rejected=bad,ignore=notes+nosuch"),
    )
    assert len(ignored.pairs) == 1
    with pytest.raises(DataOptionError, match="an empty column name"):
        parse_columns("ignore=+")


def test_columns_as_a_yaml_mapping_in_a_config(tmp_path):
    """helper 86: `columns: {prompt: q}` in a config was refused with a garbled message."""
    from rewardforge.commands.train import parse

    config = tmp_path / "run.yaml"
    config.write_text("data: x.jsonl\ncolumns:\n  prompt: q\n  chosen: good\n  ignore: [a, b]\n")
    args, _ = parse(["--config", str(config)])
    assert args.columns == "prompt=q,chosen=good,ignore=a+b"
    from rewardforge.training.run import UsageError

    for bad in (
        "margin: null",
        "chosen: {a: good}",
        "ignore: []",
    ):  # helper 87: read as 'None' and "{'a': ...}"
        config.write_text(f"data: x.jsonl\ncolumns:\n  {bad}\n")
        with pytest.raises(UsageError, match="expected a column name or a list of them"):
            parse(["--config", str(config)])


def test_a_row_without_the_column_mapped_to_an_optional_field_has_no_value_for_it(tmp_path):
    """helper 86: with `--columns margin=m`, a row lacking `m` was invalid ("column 'm' is not in
    the record") while `m: null` and an unmapped row without `margin` were fine."""
    rows = [{"prompt": "Q", "chosen": "a", "rejected": "b", "m": 2.0, "tag": "x"},
            {"prompt": "Q2", "chosen": "c", "rejected": "d"}]  # fmt: skip
    loaded = load_pairs(jsonl(tmp_path, rows), columns=parse_columns("margin=m,category=tag"))
    assert [(p.margin, p.category) for p in loaded.pairs] == [(2.0, "x"), (None, None)]
    with pytest.raises(DataError, match="line 2: .*column 'good'"):  # a required field still is
        load_pairs(jsonl(tmp_path, [{"prompt": "Q", "good": "a", "rejected": "b"}, {"prompt": "Q", "rejected": "d"}]),
                   columns=parse_columns("chosen=good"))  # fmt: skip


def test_a_joined_prompt_with_no_part_in_a_row_is_that_rows_error_as_one_column_is(tmp_path):
    """helper 86: `prompt=ctx+qq` on a row where both are null gave a pair with no prompt,
    silently; `prompt=ctx` on a null ctx is an invalid row."""
    rows = [{"ctx": "C", "qq": "Q", "good": "a", "bad": "b"}, {"ctx": None, "qq": None, "good": "c", "bad": "d"},
            {"ctx": None, "qq": "Q3", "good": "e", "bad": "f"}]  # fmt: skip
    loaded = load_pairs(jsonl(tmp_path, rows), columns=parse_columns("prompt=ctx+qq,chosen=good,rejected=bad"),
                        skip_invalid=True)  # fmt: skip
    assert [p.chosen_text for p in loaded.pairs] == ["a", "e"]
    assert [r.location for r in loaded.rejected] == ["line 2"]


def test_margins_refused_under_a_chosen_rejected_mapping_say_what_to_leave_out(tmp_path):
    """helper 86: SHP with --columns chosen=human_ref_A,... and --margin-from-scores was told its
    shape has no score columns, naming only two of the score forms the README lists."""
    rows = [
        {"history": "Q?", "human_ref_A": "a", "human_ref_B": "b", "labels": 1, "score_A": 5, "score_B": 2}
    ]
    path = jsonl(tmp_path, rows)
    with pytest.raises(DataError, match="HelpSteer grades.*leave those out of the mapping"):
        load_pairs(
            path, columns=parse_columns("chosen=human_ref_A,rejected=human_ref_B"), margin_from_scores=True
        )
    assert load_pairs(path, margin_from_scores=True).pairs[0].margin == 3


def test_an_optional_column_first_seen_past_the_sample_is_no_typo(tmp_path):
    """helper 87: `--columns margin=m` with `m` only after the first 1000 rows was "no row has a
    column 'm'"."""
    rows = [{"prompt": f"Q{i}", "chosen": "a", "rejected": "b"} for i in range(1100)]
    rows.append({"prompt": "last", "chosen": "a", "rejected": "b", "m": 2.0})
    loaded = load_pairs(jsonl(tmp_path, rows), columns=parse_columns("margin=m"))
    assert loaded.pairs[-1].margin == 2.0 and loaded.pairs[0].margin is None
