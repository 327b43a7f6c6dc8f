"""One test per record shape, plus column mapping, margins from scores and pass-through fields."""

from __future__ import annotations

import json

import pytest
from _rows import assistant, jsonl, user

from rewardforge.data import DataError, load_pairs, parse_columns
from rewardforge.data.errors import DataOptionError

bot = assistant


def test_explicit_prompt(tmp_path):
    loaded = load_pairs(jsonl(tmp_path, [{"prompt": "Q?", "chosen": "Good", "rejected": "Bad"}]))
    assert loaded.shape == "explicit_prompt"
    pair = loaded.pairs[0]
    assert (pair.prompt, pair.chosen, pair.rejected) == ([user("Q?")], [bot("Good")], [bot("Bad")])
    assert pair.margin is None and pair.id is None and pair.category is None


def test_conversational_with_prompt(tmp_path):
    record = {
        "prompt": [{"role": "system", "content": "Be nice."}, user("Hi")],
        "chosen": [bot("Hello!")],
        "rejected": [bot("What.")],
    }
    loaded = load_pairs(jsonl(tmp_path, [record]))
    assert loaded.shape == "conversational"
    assert loaded.pairs[0].prompt == record["prompt"]
    assert loaded.pairs[0].chosen == [bot("Hello!")]


def test_conversational_completions_that_repeat_the_prompt(tmp_path):
    # UltraFeedback-binarized: prompt is a string and both completions start with it.
    record = {
        "prompt": "Name a colour",
        "chosen": [user("Name a colour"), bot("Blue")],
        "rejected": [user("Name a colour"), bot("Seven")],
        "score_chosen": 8.5,
        "score_rejected": 3.0,
    }
    loaded = load_pairs(jsonl(tmp_path, [record]))
    assert loaded.shape == "conversational+scores"
    pair = loaded.pairs[0]
    assert (pair.prompt, pair.chosen, pair.rejected) == (
        [user("Name a colour")],
        [bot("Blue")],
        [bot("Seven")],
    )
    assert pair.margin is None
    assert pair.extra == {"score_chosen": 8.5, "score_rejected": 3.0}


def test_implicit_conversational(tmp_path):
    record = {
        "chosen": [user("Hi"), bot("Hello"), user("Joke?"), bot("Knock knock.")],
        "rejected": [user("Hi"), bot("Hello"), user("Joke?"), bot("No.")],
    }
    loaded = load_pairs(jsonl(tmp_path, [record]))
    assert loaded.shape == "implicit_conversational"
    pair = loaded.pairs[0]
    assert pair.prompt == record["chosen"][:3]
    assert (pair.chosen, pair.rejected) == ([bot("Knock knock.")], [bot("No.")])


def test_implicit_conversational_where_one_side_extends_the_other(tmp_path):
    record = {
        "chosen": [user("Hi"), bot("Hello"), bot("How can I help?")],
        "rejected": [user("Hi"), bot("Hello")],
    }
    pair = load_pairs(jsonl(tmp_path, [record])).pairs[0]
    assert pair.prompt == [user("Hi")]
    assert pair.chosen == [bot("Hello"), bot("How can I help?")]
    assert pair.rejected == [bot("Hello")]


def test_implicit_text_without_markers(tmp_path):
    """Texts that part mid-line have no prompt: "The capital of France is" is no question."""
    record = {"chosen": "The capital of France is Paris.", "rejected": "The capital of France is Lyon."}
    loaded = load_pairs(jsonl(tmp_path, [record]))
    assert loaded.shape == "implicit_text"
    pair = loaded.pairs[0]
    assert pair.prompt == []
    assert (pair.chosen_text, pair.rejected_text) == (record["chosen"], record["rejected"])


@pytest.mark.parametrize(
    ("chosen", "rejected"),
    [
        ("Sure! Here is a short poem about cats.", "Sure! I cannot write poems."),
        ("I think Parisians are kind", "I think Paris is big"),
        ("Sure!\n", "Sure!\nNo."),  # a shared line, but one side would be left with nothing
    ],
)
def test_implicit_text_does_not_turn_a_replys_opening_into_the_users_turn(tmp_path, chosen, rejected):
    pair = load_pairs(jsonl(tmp_path, [{"chosen": chosen, "rejected": rejected}])).pairs[0]
    assert pair.prompt == []
    assert (pair.chosen_text, pair.rejected_text) == (chosen.strip(), rejected.strip())


def test_implicit_text_prompt_is_the_lines_both_texts_share(tmp_path):
    record = {
        "chosen": "SUBREDDIT: r/cats\nPOST: My cat hides.\nTL;DR: scared cat hides",
        "rejected": "SUBREDDIT: r/cats\nPOST: My cat hides.\nTL;DR: cat",
    }
    pair = load_pairs(jsonl(tmp_path, [record])).pairs[0]
    assert pair.prompt == [user("SUBREDDIT: r/cats\nPOST: My cat hides.")]
    assert (pair.chosen_text, pair.rejected_text) == ("TL;DR: scared cat hides", "TL;DR: cat")


def test_hh_rlhf_shape_is_detected(tmp_path):
    record = {
        "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!",
        "rejected": "\n\nHuman: Hi\n\nAssistant: Go away.",
    }
    loaded = load_pairs(jsonl(tmp_path, [record]))
    assert loaded.shape == "hh_rlhf"
    assert loaded.pairs[0].prompt == [user("Hi")]


def test_helpsteer3_one_pair_per_non_preferred_answer(tmp_path):
    record = {
        "id": 7,
        "input": [user("Write a haiku")],
        "output": [
            {"answer": "meh", "label": {"is_preferred": False}},
            {"answer": "old pond / frog jumps in / splash", "label": {"is_preferred": True}},
            {"answer": "no", "label": {"is_preferred": False}},
        ],
    }
    loaded = load_pairs(
        jsonl(
            tmp_path, [record, {**record, "id": 8, "input": "Plain prompt", "output": record["output"][:2]}]
        )
    )
    assert loaded.shape == "helpsteer3"
    assert [p.id for p in loaded.pairs] == ["7#0", "7#2", "8"]
    assert {p.chosen_text for p in loaded.pairs} == {"old pond / frog jumps in / splash"}
    assert [p.rejected_text for p in loaded.pairs] == ["meh", "no", "meh"]
    assert loaded.pairs[2].prompt == [user("Plain prompt")]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([True, True], "expected exactly one preferred answer, found 2"),
        ([False, False], "expected exactly one preferred answer, found 0"),
        ([True], "no non-preferred answer"),
    ],
)
def test_helpsteer3_ambiguous_is_an_error(tmp_path, labels, message):
    output = [{"answer": f"answer {i}", "label": {"is_preferred": v}} for i, v in enumerate(labels)]
    with pytest.raises(DataError, match=rf"d\.jsonl:line 1: field 'output': {message}"):
        load_pairs(jsonl(tmp_path, [{"input": "Q", "output": output}]))


def test_score_columns_margin(tmp_path):
    records = [
        {"prompt": "Q", "chosen": "A", "rejected": "B", "score_chosen": 9.5, "score_rejected": 7},
        {
            "prompt": "Q",
            "chosen": "A",
            "rejected": "C",
            "score_chosen": 8,
            "score_rejected": 2,
            "margin": 0.25,
        },
        {"prompt": "Q", "chosen": "A", "rejected": "D", "score_chosen": 4, "score_rejected": 4},
    ]
    path = jsonl(tmp_path, records)
    plain = load_pairs(path)
    assert plain.shape == "explicit_prompt+scores"
    assert [p.margin for p in plain.pairs] == [None, 0.25, None]  # an explicit margin is always honoured
    scored = load_pairs(path, margin_from_scores=True)
    assert [p.margin for p in scored.pairs] == [2.5, 0.25, 0.0]  # chosen - rejected; a tie gives 0
    assert scored.pairs[0].extra == {"score_chosen": 9.5, "score_rejected": 7.0}
    assert scored.fingerprint != plain.fingerprint


def test_scores_that_contradict_the_label_are_an_invalid_row_not_a_larger_margin(tmp_path):
    """|score_chosen - score_rejected| would push hardest on the pairs whose scores disagree with
    their label; such a row is invalid instead (SHP too: label A with score_A below score_B)."""
    path = jsonl(
        tmp_path,
        [
            {"prompt": "Q", "chosen": "A", "rejected": "B", "score_chosen": 9, "score_rejected": 1},
            {"prompt": "Q", "chosen": "A", "rejected": "C", "score_chosen": 2, "score_rejected": 9},
        ],
    )
    assert [p.margin for p in load_pairs(path).pairs] == [None, None]  # scores unused: nothing to check
    with pytest.raises(DataError, match=r"line 2: field 'score_chosen': the scores contradict"):
        load_pairs(path, margin_from_scores=True)
    shp = tmp_path / "shp.jsonl"
    row = {"history": "Q?", "human_ref_A": "a", "human_ref_B": "b", "score_A": 1, "score_B": 9}
    shp.write_text(json.dumps(row | {"labels": 1}) + "\n" + json.dumps(row | {"labels": 0}) + "\n")
    got = load_pairs(str(shp), margin_from_scores=True, skip_invalid=True)
    assert [(p.chosen_text, p.margin) for p in got.pairs] == [("b", 8.0)]
    assert [(r.location, r.field) for r in got.rejected] == [("line 1", "score_A")]


def test_margin_from_scores_without_scores_is_an_error(tmp_path):
    with pytest.raises(
        DataError, match="margin_from_scores is set but the detected shape 'explicit_prompt' has no score"
    ):
        load_pairs(
            jsonl(tmp_path, [{"prompt": "Q", "chosen": "A", "rejected": "B"}]), margin_from_scores=True
        )


def test_shp(tmp_path):
    records = [
        {
            "history": "Best pizza?",
            "human_ref_A": "Margherita",
            "human_ref_B": "Pineapple",
            "labels": 1,
            "score_A": 120,
            "score_B": 20,
        },
        {
            "history": "Best pasta?",
            "human_ref_A": "Ketchup",
            "human_ref_B": "Carbonara",
            "labels": 0,
            "score_A": 3,
            "score_B": 45,
        },
    ]
    loaded = load_pairs(jsonl(tmp_path, records), margin_from_scores=True)
    assert loaded.shape == "shp"
    first, second = loaded.pairs
    assert (first.prompt, first.chosen_text, first.rejected_text) == (
        [user("Best pizza?")],
        "Margherita",
        "Pineapple",
    )
    assert (second.chosen_text, second.rejected_text) == ("Carbonara", "Ketchup")
    assert [first.margin, second.margin] == [100.0, 42.0]  # raw upvote differences, unscaled
    assert load_pairs(jsonl(tmp_path, records)).pairs[0].margin is None


def test_id_category_and_subset_pass_through(tmp_path):
    records = [
        {"prompt": "Q", "chosen": "A", "rejected": "B", "id": 12, "category": "math"},
        {"prompt": "Q", "chosen": "A", "rejected": "C", "id": "x", "subset": "hep-cpp"},
    ]
    pairs = load_pairs(jsonl(tmp_path, records)).pairs
    assert [(p.id, p.category) for p in pairs] == [("12", "math"), ("x", "hep-cpp")]


def test_column_mapping(tmp_path):
    records = [{"question": "Q?", "good": "Yes", "bad": "No", "prompt": "ignored"}]
    mapping = parse_columns("prompt=question, chosen=good,rejected=bad")
    assert mapping == {"prompt": "question", "chosen": "good", "rejected": "bad"}
    pair = load_pairs(jsonl(tmp_path, records), columns=mapping).pairs[0]
    assert (pair.prompt, pair.chosen_text, pair.rejected_text) == ([user("Q?")], "Yes", "No")


def test_column_mapping_to_a_missing_column(tmp_path):
    rows = [{"question": "Q?", "good": "Yes", "worse": "No"}, {"question": "Q?", "good": "Yes", "bad": "No"}]
    with pytest.raises(
        DataError, match=r"d\.jsonl:line 2: field 'worse': column 'worse' \(mapped to 'rejected'\) is not"
    ):
        load_pairs(
            jsonl(tmp_path, rows), columns={"prompt": "question", "chosen": "good", "rejected": "worse"}
        )
    # no row has it: a misspelt mapping, said once as an option error
    with pytest.raises(DataOptionError, match="--columns rejected=worse: no row has a column 'worse'"):
        load_pairs(
            jsonl(tmp_path, rows[1:]), columns={"prompt": "question", "chosen": "good", "rejected": "worse"}
        )


def test_column_mapping_errors_name_the_users_column(tmp_path):
    path = jsonl(tmp_path, [{"question": "Q?", "good": "Same", "bad": "Same"}])
    with pytest.raises(DataError, match=r"line 1: field 'bad': identical to 'chosen'"):
        load_pairs(path, columns={"prompt": "question", "chosen": "good", "rejected": "bad"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prompt", "expected 'field=column'"),
        ("prompt=", "expected 'field=column'"),
        ("=question", "expected 'field=column'"),
        ("prompt=q,,chosen=c", "empty item"),
        ("prompt=a,prompt=b", "mapped twice"),
        ("promt=q", r"unknown field\(s\) \['promt'\]"),
        ("prompt=q,chosen=q", r"column\(s\) \['q'\] mapped to more than one field"),
    ],
)
def test_parse_columns_rejects_bad_syntax(text, message):
    with pytest.raises(ValueError, match=message):
        parse_columns(text)


def test_helpsteer3_graded_pairs_pick_the_better_response_by_the_sign_of_the_grade(tmp_path):
    """nvidia/HelpSteer3 preference rows: -3..-1 = response 1 better, 1..3 = response 2 better."""
    ctx = [user("Write a haiku"), {"role": "assistant", "content": "About what?"}, user("Rain")]
    rows = [
        {
            "domain": "general",
            "context": ctx,
            "response1": "r1 good",
            "response2": "r2 bad",
            "overall_preference": -2,
        },
        {
            "domain": "code",
            "context": "fix it",
            "response1": "r1 bad",
            "response2": "r2 good",
            "overall_preference": 3,
        },
    ]
    loaded = load_pairs(jsonl(tmp_path, rows))
    assert loaded.shape == "graded_pair"
    first, second = loaded.pairs
    assert first.prompt == ctx and (first.chosen_text, first.rejected_text) == ("r1 good", "r2 bad")
    assert second.prompt == [user("fix it")] and (second.chosen_text, second.rejected_text) == (
        "r2 good",
        "r1 bad",
    )
    assert [p.category for p in loaded.pairs] == ["general", "code"] and first.margin is None
    assert [p.margin for p in load_pairs(jsonl(tmp_path, rows), margin_from_scores=True).pairs] == [2.0, 3.0]


def test_helpsteer2_names_and_a_tie(tmp_path):
    rows = [
        {"prompt": "Q", "response_1": "one", "response_2": "two", "preference_strength": 1},
        {"prompt": "Q", "response_1": "uno", "response_2": "dos", "preference_strength": 0},
    ]
    with pytest.raises(
        DataError, match=r"line 2: field 'preference_strength': 0: neither response is preferred"
    ):
        load_pairs(jsonl(tmp_path, rows))
    got = load_pairs(jsonl(tmp_path, rows), skip_invalid=True)
    assert [(p.chosen_text, p.rejected_text) for p in got.pairs] == [("two", "one")] and len(
        got.rejected
    ) == 1


def test_helpsteer2_multi_turn_prompts_with_nemo_markers_are_read_as_turns(tmp_path):
    """HelpSteer2's preference set writes earlier turns with <extra_id_1> markers inside the
    prompt text: they were one user message holding the markers and the assistant's reply."""
    prompt = "What is X?\n<extra_id_1>Assistant\nX is a letter.\n<extra_id_1>User\nAnd Y?"
    row = {"prompt": prompt, "response_1": "Y is too.", "response_2": "No idea", "preference_strength": -1}
    system = {
        **row,
        "prompt": "<extra_id_0>System\nBe brief.\n\n<extra_id_1>User\nAnd Y?\n<extra_id_1>Assistant\n",
    }
    quoted = {**row, "prompt": "What does <extra_id_1>User\nmean in NeMo prompts?"}  # no alternating turns
    variants = [  # the template's empty system turn, CRLF line ends, a space after the role
        {**row, "prompt": "<extra_id_0>System\n\n<extra_id_1>User\n" + prompt + "\n<extra_id_1>Assistant\n"},
        {**row, "prompt": prompt.replace("\n", "\r\n")},
        {**row, "prompt": prompt.replace("<extra_id_1>Assistant\n", "<extra_id_1>Assistant \n")},
    ]
    for pair in load_pairs(jsonl(tmp_path, variants, "variants.jsonl")).pairs:
        assert [m["content"] for m in pair.prompt] == ["What is X?", "X is a letter.", "And Y?"]
    pairs = load_pairs(jsonl(tmp_path, [row, system, quoted])).pairs
    assert [(m["role"], m["content"]) for m in pairs[0].prompt] == [
        ("user", "What is X?"),
        ("assistant", "X is a letter."),
        ("user", "And Y?"),
    ]
    assert pairs[0].chosen_text == "Y is too."  # preference_strength < 0: response 1 is better
    assert [m["role"] for m in pairs[1].prompt] == ["system", "user"]
    assert pairs[2].prompt == [{"role": "user", "content": quoted["prompt"]}]


def test_implicit_text_does_not_split_inside_a_code_block_and_keeps_indentation(tmp_path):
    fence = "```"
    record = {
        "chosen": f"{fence}python\ndef f():\n    return 1\n{fence}",
        "rejected": f"{fence}python\ndef f():\n    return 2\n{fence}",
    }
    pair = load_pairs(jsonl(tmp_path, [record])).pairs[0]
    assert pair.prompt == [] and pair.chosen_text == record["chosen"]
    record = {"chosen": "Fix this:\n    x = 1", "rejected": "Fix this:\n    x = 2"}
    pair = load_pairs(jsonl(tmp_path, [record], "b.jsonl")).pairs[0]
    assert pair.prompt == [user("Fix this:")] and pair.chosen_text == "    x = 1"


def test_openai_preference_fine_tuning_rows(tmp_path):
    """OpenAI's DPO fine-tuning JSONL was "no preference fields", and mapping its columns gave
    `input[0].role: missing` for an object that is no list (helper round 62)."""
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    row = {
        "input": {"messages": [{"role": "system", "content": "Be brief."}, user("Hi")], "tools": [tool]},
        "preferred_output": [bot("Hello!")],
        "non_preferred_output": [bot("Go away.")],
    }
    loaded = load_pairs(jsonl(tmp_path, [row, {**row, "input": {"messages": [user("Yo")], "tools": []}}]))
    assert loaded.shape == "openai_preference"
    first, second = loaded.pairs
    assert first.prompt[0]["role"] == "system" and first.prompt[0]["content"].startswith("Be brief.")
    assert "get_weather" in first.prompt[0]["content"] and first.prompt[1:] == [user("Hi")]
    assert (first.chosen, first.rejected) == ([bot("Hello!")], [bot("Go away.")])
    assert second.prompt == [user("Yo")]
    same = {**row, "non_preferred_output": [bot("Hello!")]}
    with pytest.raises(DataError, match="field 'non_preferred_output': identical to 'preferred_output'"):
        load_pairs(jsonl(tmp_path, [row, same], name="same.jsonl"))


@pytest.mark.parametrize(
    ("chosen", "words"),
    [
        (
            {"messages": [bot("x")]},
            "field 'chosen': expected a list of messages or one {role, content} message",
        ),
        ({"content": "x"}, "field 'chosen.role': missing"),  # one message: no made-up [0]
    ],
)
def test_an_object_where_messages_belong_is_named_as_it_is(tmp_path, chosen, words):
    row = {"prompt": "q", "chosen": chosen, "rejected": [bot("y")]}
    with pytest.raises(DataError) as info:
        load_pairs(jsonl(tmp_path, [row]))
    assert words in str(info.value)


def test_openai_rows_from_csv_and_their_tool_errors(tmp_path):
    """A CSV of OpenAI rows read the `input` cell's JSON text as the user's words; a bad tool was
    named `tools[0]`, not the row's `input.tools[0]` (helper round 64)."""
    import pandas as pd

    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    row = {
        "input": {"messages": [user("Weather?")], "tools": [tool]},
        "preferred_output": [bot("Sunny.")],
        "non_preferred_output": [bot("No idea.")],
    }
    pd.DataFrame([{k: json.dumps(v) for k, v in row.items()}]).to_csv(tmp_path / "o.csv", index=False)
    (pair,) = load_pairs(str(tmp_path / "o.csv")).pairs
    assert pair.prompt[0]["role"] == "system" and "get_weather" in pair.prompt[0]["content"]
    assert pair.prompt[1:] == [user("Weather?")]
    bad = {**row, "input": {"messages": [user("Weather?")], "tools": [1]}}
    with pytest.raises(DataError, match=r"field 'input.tools\[0\]'"):
        load_pairs(jsonl(tmp_path, [bad]))


def test_a_processor_instance_or_class_is_taken(tmp_path):
    from rewardforge.data import PreferenceProcessor

    class Upper(PreferenceProcessor):
        def to_pair(self, record):
            return {"prompt": record["q"], "chosen": record["good"].upper(), "rejected": record["bad"]}

    path = jsonl(tmp_path, [{"q": "Hi?", "good": "hello", "bad": "go away"}])
    for processor in (Upper(), Upper):
        assert load_pairs(path, processor=processor).pairs[0].chosen == [bot("HELLO")]
    with pytest.raises(TypeError, match="processor is 'path/to/file.py:ClassName'"):
        load_pairs(path, processor=5)
