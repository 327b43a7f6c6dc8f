"""Data as other tools write it, and the held-out schemas a fuzzing round found misread.

Exports: pandas' and `datasets`' `to_csv` (Python reprs of message lists), pandas' default
`to_json` and dicts of lists (columns, not records), `;`- or tab-separated `.csv` files, header
names with spaces. Before each fix the rows were misread silently or refused with a misleading
message.
"""

from __future__ import annotations

import json

import pytest
from _rows import assistant, jsonl, user

from rewardforge.data import DataError, load_pairs

PAIR = {
    "prompt": [user("What is 2+2?")],
    "chosen": [assistant("It is 4.")],
    "rejected": [assistant("It is 5.")],
}
WANT = (PAIR["prompt"], PAIR["chosen"], PAIR["rejected"])


def triple(pair) -> tuple:
    return pair.prompt, pair.chosen, pair.rejected


def test_message_lists_written_by_pandas_and_datasets_to_csv(tmp_path):
    import datasets
    import pandas as pd

    rows = [{"chosen": PAIR["prompt"] + PAIR["chosen"], "rejected": PAIR["prompt"] + PAIR["rejected"]}]
    datasets.Dataset.from_list(rows).to_csv(tmp_path / "ds.csv", index=False)  # numpy repr: no commas
    assert "'role': 'user'" in (tmp_path / "ds.csv").read_text()
    pd.DataFrame([PAIR]).to_csv(tmp_path / "pd.csv", index=False)  # Python repr
    for name in ("ds.csv", "pd.csv"):
        (pair,) = load_pairs(str(tmp_path / name)).pairs
        assert triple(pair) == WANT, name


def test_short_lists_and_nested_arrays_from_datasets_to_csv(tmp_path):
    """numpy prints a short list on one line (items a space apart) and a nested list as
    `array([...], dtype=object)`: tool calls inside messages are such lists."""
    import datasets

    call = {"type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}}
    rows = [
        {
            "prompt": [{"role": "system", "content": "Hi"}, user("2+2?")],
            "chosen": [{"role": "assistant", "content": None, "tool_calls": [call]}],
            "rejected": [assistant("5")],
        }
    ]
    datasets.Dataset.from_list(rows).to_csv(tmp_path / "ds.csv", index=False)
    text = (tmp_path / "ds.csv").read_text()
    assert "} {" in text and "dtype=object" in text
    (pair,) = load_pairs(str(tmp_path / "ds.csv")).pairs
    assert pair.prompt == [{"role": "system", "content": "Hi"}, user("2+2?")]
    assert pair.chosen[0]["tool_calls"][0]["function"] == {"name": "search", "arguments": {"q": "x"}}


def test_a_message_repr_that_cannot_be_read_exactly_is_refused_not_read_as_text(tmp_path):
    """A reply holding "}\n {" inside its text: splitting there would change it."""
    from rewardforge.data.csv_reader import _maybe_json_cell

    cell = "[{'role': 'user', 'content': 'a}\n {b'}\n {'role': 'assistant', 'content': 'c'}]"
    assert _maybe_json_cell(cell) == cell
    good = "[{'role': 'user', 'content': 'a'}\n {'role': 'assistant', 'content': 'c'}]"
    assert _maybe_json_cell(good) == [user("a"), assistant("c")]
    path = tmp_path / "d.csv"
    path.write_text('chosen,rejected\n"' + cell + '","' + good + '"\n')
    with pytest.raises(DataError) as err:
        load_pairs(str(path))
    assert (
        err.value.location == "row 1"
        and "column 'chosen' holds a message list written as Python" in err.value.reason
    )


def test_arena_conversations_written_by_pandas_to_csv(tmp_path):
    import pandas as pd

    row = {
        "question_id": "q1",
        "winner": "model_b",
        "conversation_a": [user("Q"), assistant("bad")],
        "conversation_b": [user("Q"), assistant("good")],
    }
    pd.DataFrame([row]).to_csv(tmp_path / "arena.csv", index=False)
    (pair,) = load_pairs(str(tmp_path / "arena.csv")).pairs
    assert triple(pair) == ([user("Q")], [assistant("good")], [assistant("bad")])


@pytest.mark.parametrize("orient", ["columns", "dict-of-lists"])
def test_json_written_by_columns(tmp_path, orient):
    import pandas as pd

    rows = [
        dict(PAIR, id="a"),
        {"prompt": [user("Hi")], "chosen": [assistant("Hello!")], "rejected": [assistant("Go.")], "id": "b"},
    ]
    frame = pd.DataFrame(rows)
    path = tmp_path / "d.json"
    if orient == "columns":
        frame.to_json(path)  # pandas' default: {"prompt": {"0": ..., "1": ...}, ...}
    else:
        path.write_text(json.dumps(frame.to_dict("list")))
    loaded = load_pairs(str(path)).pairs
    assert [p.id for p in loaded] == ["a", "b"] and triple(loaded[0]) == WANT
    assert loaded[1].source.endswith("row 2")


def test_one_conversational_record_is_not_read_as_columns(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(
        json.dumps({"chosen": [user("Q"), assistant("A")], "rejected": [user("Q"), assistant("B")]})
    )
    (pair,) = load_pairs(str(path)).pairs
    assert triple(pair) == ([user("Q")], [assistant("A")], [assistant("B")])


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_separated_csv(tmp_path, delimiter):
    path = tmp_path / "d.csv"
    path.write_text(
        delimiter.join(["prompt", "chosen", "rejected"]) + "\n" + delimiter.join(["Q", "A, yes", "B"]) + "\n"
    )
    (pair,) = load_pairs(str(path)).pairs
    assert triple(pair) == ([user("Q")], [assistant("A, yes")], [assistant("B")])


def test_header_names_with_spaces(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("prompt, chosen, rejected\nQ,A,B\n")
    (pair,) = load_pairs(str(path)).pairs
    assert triple(pair) == ([user("Q")], [assistant("A")], [assistant("B")])


def test_a_field_given_twice_in_json_or_parquet_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    line = '{"prompt": "Q", "chosen": "good", "rejected": "bad", "chosen": "worse"}\n'
    path = tmp_path / "dup.jsonl"
    path.write_text('{"prompt": "Q", "chosen": "A", "rejected": "B"}\n' + line)
    with pytest.raises(DataError) as err:
        load_pairs(str(path))
    assert err.value.location == "line 2" and "'chosen' appears twice" in err.value.reason
    assert len(load_pairs(str(path), skip_invalid=True).pairs) == 1
    (tmp_path / "dup.json").write_text("[" + line + "]")
    with pytest.raises(DataError, match="'chosen' appears twice"):
        load_pairs(str(tmp_path / "dup.json"))
    table = pa.Table.from_arrays(
        [pa.array(["Q"]), pa.array(["A"]), pa.array(["B"]), pa.array(["C"])],
        names=["prompt", "chosen", "rejected", "chosen"],
    )
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(DataError, match="'chosen' appears twice"):
        load_pairs(str(tmp_path / "dup.parquet"))


# --- held-out schemas -----------------------------------------------------------------------


@pytest.mark.parametrize("column", ["Prompt", "Question", "INSTRUCTION"])
def test_prompt_aliases_in_another_case_are_read(tmp_path, column):
    rows = [{column: "What is 2+2?", "chosen": "It is 4.", "rejected": "It is 5."}]
    loaded = load_pairs(jsonl(tmp_path, rows))
    assert triple(loaded.pairs[0]) == WANT and f"prompt={column}" in loaded.reading_notes()


@pytest.mark.parametrize("column", ["problem", "user_prompt", "Task", "original_question"])
def test_a_prompt_under_an_unread_name_is_refused_not_dropped(tmp_path, column):
    rows = [{column: "What is 2+2?", "chosen": "The answer is 4.", "rejected": "The answer is 5."}]
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, rows))
    assert err.value.field == column and f"--columns prompt={column}" in err.value.reason


def test_columns_named_like_ids_or_models_are_not_prompts(tmp_path):
    rows = [{"prompt_id": "p1", "question_model": "gpt", "chosen": "Sure: 4.", "rejected": "Sure: 5."}]
    (pair,) = load_pairs(jsonl(tmp_path, rows)).pairs
    assert pair.chosen == [assistant("Sure: 4.")]  # no prompt: the texts part mid-line


def test_mt_bench_judgements_cut_the_conversations_at_the_judged_turn(tmp_path):
    def conv(a1, a2):
        return [user("Q1"), assistant(a1), user("Q2"), assistant(a2)]

    base = {"question_id": 81, "model_a": "x", "model_b": "y", "judge": "author_2"}
    rows = [
        {
            **base,
            "turn": 1,
            "winner": "model_b",
            "conversation_a": conv("a1", "a2"),
            "conversation_b": conv("b1", "b2"),
        },
        {
            **base,
            "turn": 2,
            "winner": "model_a",
            "conversation_a": conv("a1", "a2"),
            "conversation_b": conv("b1", "b2"),
        },
        {
            **base,
            "turn": 3,
            "winner": "model_a",
            "conversation_a": conv("a1", "a2"),
            "conversation_b": conv("b1", "b2"),
        },
    ]
    loaded = load_pairs(jsonl(tmp_path, rows), skip_invalid=True)
    first, second = loaded.pairs
    assert triple(first) == ([user("Q1")], [assistant("b1")], [assistant("a1")])
    assert second.chosen == [assistant("a1"), user("Q2"), assistant("a2")]
    (bad,) = loaded.rejected
    assert bad.field == "turn" and "turn 3 of a conversation with 2 questions" in bad.reason


@pytest.mark.parametrize("grade", [7, 0.5, -100])
def test_helpsteer_grades_outside_minus_three_to_three_are_refused(tmp_path, grade):
    rows = [{"context": "Q", "response1": "A", "response2": "B", "overall_preference": grade}]
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, rows))
    assert err.value.field == "overall_preference" and "from -3 to 3" in err.value.reason


@pytest.mark.parametrize("role", ["User", "USER", " user"])
def test_roles_in_another_case_or_with_spaces(tmp_path, role):
    rows = [
        {"chosen": [{"role": role, "content": "Q"}, assistant("A")], "rejected": [user("Q"), assistant("B")]}
    ]
    (pair,) = load_pairs(jsonl(tmp_path, rows)).pairs
    assert pair.prompt == [user("Q")]


def test_a_nan_id_or_category_means_none(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "Q", "chosen": "A", "rejected": "B", "id": NaN, "category": NaN}\n')
    (pair,) = load_pairs(str(path)).pairs
    assert pair.id is None and pair.category is None


@pytest.mark.parametrize("damaged", ["dataset_info.json", "state.json"])
def test_a_saved_dataset_with_damaged_metadata_is_a_data_error(tmp_path, damaged):
    import datasets

    path = tmp_path / "ds"
    datasets.Dataset.from_list([{"prompt": "Q", "chosen": "A", "rejected": "B"}]).save_to_disk(str(path))
    (path / damaged).write_text("[]")
    with pytest.raises(DataError, match="unreadable saved dataset"):
        load_pairs(str(path))


def test_lists_of_completions_in_csv_are_read_as_lists(tmp_path):
    """RewardBench 2 / RM-Bench rows through pandas (Python lists) and `datasets` (numpy prints
    `['a' 'b']` with no commas, which Python would read as the one text 'ab')."""
    import datasets
    import pandas as pd

    rows = [
        {"id": "7", "prompt": "Is 7 prime?", "chosen": ["Yes."], "rejected": ["No.", "Maybe.", "It's even."]}
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "pd.csv", index=False)
    datasets.Dataset.from_list(rows).to_csv(tmp_path / "ds.csv", index=False)
    assert "'No.' 'Maybe.'" in (tmp_path / "ds.csv").read_text().replace("\n", "")
    for name in ("pd.csv", "ds.csv"):
        loaded = load_pairs(str(tmp_path / name))
        assert loaded.shape == "multi_completion", name
        assert [p.rejected[0]["content"] for p in loaded.pairs] == ["No.", "Maybe.", "It's even."]
        assert [p.id for p in loaded.pairs] == ["7#0", "7#1", "7#2"]


def test_a_text_reply_that_only_looks_like_a_list_stays_text(tmp_path):
    """Decided by most rows: in a file of texts, one row of list-like replies stays text."""
    path = tmp_path / "d.csv"
    rows = [f"Q{i},answer {i},other {i}\n" for i in range(3)]
    path.write_text("prompt,chosen,rejected\n" + "".join(rows) + "Which words?,\"['a', 'I']\",\"['an']\"\n")
    pairs = load_pairs(str(path)).pairs
    assert len(pairs) == 4 and pairs[-1].chosen == [assistant("['a', 'I']")]
    path.write_text('prompt,chosen,rejected\nGive a list,"[1, 2]","[\'a\']"\n')
    (pair,) = load_pairs(str(path)).pairs
    assert pair.chosen == [assistant("[1, 2]")] and pair.rejected == [assistant("['a']")]


def test_ppe_human_preference_battles(tmp_path):
    """lmarena-ai/PPE-Human-Preference-V1 numbers its replies; HelpSteer2 does too but grades them."""
    rows = [
        {
            "question_id": "q0",
            "winner": "model_b",
            "prompt": "Name a fruit.",
            "response_1": "A chair.",
            "response_2": "An apple.",
        },
    ]
    (pair,) = load_pairs(jsonl(tmp_path, rows)).pairs
    assert triple(pair) == ([user("Name a fruit.")], [assistant("An apple.")], [assistant("A chair.")])
    graded = [{"prompt": "Q", "response_1": "A", "response_2": "B", "preference_strength": 2}]
    assert load_pairs(jsonl(tmp_path, graded, "g.jsonl")).shape == "graded_pair"


def test_the_report_shows_record_accuracy(tmp_path, tiny_bert_dir):
    from rewardforge.cli import main

    rows = [
        {"id": str(i), "prompt": f"Q{i}", "chosen": ["good"], "rejected": ["bad", "worse", "worst"]}
        for i in range(3)
    ]
    out = tmp_path / "ev"
    assert (
        main(["eval", "--model", str(tiny_bert_dir), "--data", jsonl(tmp_path, rows), "--output", str(out)])
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    record = metrics["results"][tiny_bert_dir.name]["d"]["record_accuracy"]["accuracy"]
    html = (out / "report.html").read_text()
    assert "record acc." in html and f'<td class="num">{record:.4f}</td>' in html


def test_completion_lists_under_other_column_names(tmp_path):
    import datasets

    rows = [{"q": f"Q{i}", "good": [f"yes {i}"], "bad": [f"no {i}", f"never {i}"]} for i in range(3)]
    datasets.Dataset.from_list(rows).to_csv(tmp_path / "ds.csv", index=False)
    loaded = load_pairs(
        str(tmp_path / "ds.csv"), columns={"prompt": "q", "chosen": "good", "rejected": "bad"}
    )
    assert loaded.shape == "multi_completion" and len(loaded.pairs) == 6


def test_pandas_csv_rows_of_missing_values_ids_and_booleans(tmp_path):
    """pandas writes a row of missing values as ",," (it vanished, and every later row number was
    one short), an int id column with nulls as "1.0" (ids differed from the same frame's
    Parquet), and booleans as "True" (refused as labels)."""
    import pandas as pd

    frame = pd.DataFrame(
        {"id": [1, None, 3, 4], "prompt": ["Q1", None, "Q3", "Q4"], "chosen": ["A", None, "C", "E"],
         "rejected": ["B", None, "D", None]}
    )  # fmt: skip
    frame.to_csv(tmp_path / "f.csv", index=False)
    frame.to_parquet(tmp_path / "f.parquet")
    with pytest.raises(DataError, match=r"f\.csv:row 2: every cell of this row is empty"):
        load_pairs(str(tmp_path / "f.csv"))
    from_csv = load_pairs(str(tmp_path / "f.csv"), skip_invalid=True)
    assert [r.location for r in from_csv.rejected] == ["row 2", "row 4"]
    from_parquet = load_pairs(str(tmp_path / "f.parquet"), skip_invalid=True)
    assert [p.id for p in from_csv.pairs] == [p.id for p in from_parquet.pairs] == ["1", "3"]
    assert from_csv.fingerprint == from_parquet.fingerprint

    shp = pd.DataFrame({"history": ["Why?", "How?"], "human_ref_A": ["a", "b"], "human_ref_B": ["c", "d"],
                        "labels": [True, False], "score_A": [5, 1], "score_B": [1, 6]})  # fmt: skip
    shp.to_csv(tmp_path / "shp.csv", index=False)
    first, second = load_pairs(str(tmp_path / "shp.csv")).pairs
    assert (first.chosen_text, second.chosen_text) == ("a", "d")


def test_csv_ids_are_read_as_floats_only_in_a_column_pandas_wrote_as_floats(tmp_path):
    """ "1.5" beside "1.0" and "2.0" made ids 1, 1.5, 2, and "1.0" beside "1" two ids 1."""
    path = tmp_path / "ids.csv"
    path.write_text("id,prompt,chosen,rejected\n1.0,Q,A,B\n1.5,Q,A,B\n2.0,Q,A,B\n")
    assert [p.id for p in load_pairs(str(path)).pairs] == ["1.0", "1.5", "2.0"]
    path.write_text("id,prompt,chosen,rejected\n1.0,Q,A,B\n1,Q,A,B\n")
    assert [p.id for p in load_pairs(str(path)).pairs] == ["1.0", "1"]
    path.write_text("id,prompt,chosen,rejected\n1.0,Q,A,B\n,Q,A,B\n3.0,Q,A,B\n")  # pandas: ints with a gap
    assert [p.id for p in load_pairs(str(path)).pairs] == ["1", None, "3"]


def test_csv_cells_read_as_completion_lists_are_said(tmp_path):
    """Replies that are Python list literals became RewardBench-style pairs without a word."""
    path = tmp_path / "lists.csv"
    path.write_text("id,prompt,chosen,rejected\nt1,Words?,\"['hello', 'world']\",['hello world']\n")
    loaded = load_pairs(str(path))
    assert loaded.shape == "multi_completion"
    assert "(CSV cells of chosen, rejected read as lists of completions)" in loaded.reading_notes()
    path.write_text("id,prompt,chosen,rejected\nt1,Words?,hello world,hello\n")
    assert load_pairs(str(path)).reading_notes() == ""


# ---- helper round 45: public layouts --------------------------------------------------------
def test_a_row_the_data_marks_as_a_tie_is_refused(tmp_path):
    """argilla/distilabel-intel-orca-dpo-pairs: `status: tie` rows were trained as preferences."""
    rows = [
        {"system": "", "input": "2+2?", "chosen": "4.", "rejected": "5.", "status": "chosen", "chosen_score": 9.0},
        {"system": "", "input": "Sky?", "chosen": "Blue.", "rejected": "Azure.", "status": "tie", "chosen_score": 8.0},
    ]  # fmt: skip
    loaded = load_pairs(jsonl(tmp_path, rows), skip_invalid=True)
    assert len(loaded.pairs) == 1 and loaded.pairs[0].chosen == [assistant("4.")]
    (bad,) = loaded.rejected
    assert bad.location == "line 2" and bad.field == "status" and "marked as a tie" in bad.reason


def test_equal_scores_of_a_labelled_pair_are_said(tmp_path):
    rows = [
        {"prompt": "2+2?", "chosen": "4.", "rejected": "5.", "score_chosen": 9, "score_rejected": 2},
        {"prompt": "Sky?", "chosen": "Blue.", "rejected": "Azure.", "score_chosen": 7, "score_rejected": 7},
        {"prompt": "Sea?", "chosen": "Salty.", "rejected": "Sweet.", "score_chosen": 3, "score_rejected": 8},
    ]
    loaded = load_pairs(jsonl(tmp_path, rows))
    assert len(loaded.pairs) == 3 and (loaded.equal_scores, loaded.contrary_scores) == (1, 1)
    notes = loaded.reading_notes()
    assert "1 pair(s) have equal scores for chosen and rejected" in notes
    assert "1 pair(s) score rejected above chosen: read as labelled" in notes


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (
            {"prompt": "Hi?", "response": "Hello.", "helpfulness": 3, "correctness": 4},
            "response",
        ),  # HelpSteer2
        (
            {"transcript": "\n\nHuman: x\n\nAssistant: y", "rating": 2.0, "red_team_member_id": 5},
            "transcript",
        ),
    ],
)
def test_one_rated_response_per_row_is_said_to_be_no_pair(tmp_path, row, field):
    """HelpSteer2 got the list of every layout and 'map yours with columns', which led nowhere."""
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [row]))
    message = str(err.value)
    assert f"field '{field}': one response per row, rated by" in message and "no preference" in message
    assert "red_team_member_id" not in message


def test_capybara_conversation_in_csv_reads_as_in_jsonl(tmp_path):
    """The CSV cell of Capybara's {input, output} turns stayed text and the row was refused."""
    import pandas as pd

    talk = [
        {"input": "Boiling point of water?", "output": "100 C."},
        {"input": "On Everest?", "output": "70 C."},
    ]
    history = [user("Boiling point of water?"), assistant("100 C."), user("On Everest?")]
    row = {
        "source": "Airoboros",
        "conversation": talk,
        "prompt": "On Everest?",
        "chosen": [*history, assistant("About 70 C.")],
        "rejected": [*history, assistant("100 C.")],
    }
    from_jsonl = load_pairs(jsonl(tmp_path, [row]))
    path = tmp_path / "capy.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    from_csv = load_pairs(str(path))
    assert from_csv.fingerprint == from_jsonl.fingerprint
    assert from_csv.pairs[0].prompt == history and from_csv.pairs[0].chosen == [assistant("About 70 C.")]


def test_webgpt_question_renamed_to_prompt_is_read(tmp_path):
    """`--columns prompt=question` on WebGPT gave "field 'question': missing"."""
    from rewardforge.data.columns import parse_columns

    row = {"question": {"full_text": "Why is the sky blue?"}, "answer_0": "Rayleigh scattering.",
           "answer_1": "Paint.", "score_0": 1.0, "score_1": -1.0}  # fmt: skip
    path = jsonl(tmp_path, [row])
    plain, mapped = load_pairs(path), load_pairs(path, columns=parse_columns("prompt=question"))
    assert mapped.fingerprint == plain.fingerprint and mapped.pairs[0].prompt == [
        user("Why is the sky blue?")
    ]


def test_a_reply_that_is_a_json_list_of_input_output_objects_stays_text_in_csv(tmp_path):
    """Capybara's turns are parsed only in a conversation column: a reply whose text is such a
    list was parsed into turns and refused."""
    import pandas as pd

    reply = json.dumps([{"input": "1 2", "output": "3"}, {"input": "2 2", "output": "4"}])
    row = {"prompt": "Give examples as JSON.", "chosen": reply, "rejected": "No."}
    path = tmp_path / "io.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    assert load_pairs(str(path)).fingerprint == load_pairs(jsonl(tmp_path, [row])).fingerprint


@pytest.mark.parametrize("extra", [{"result": "draw"}, {"label": "tie"}, {"category": "tie"}])
def test_a_draw_or_tie_in_a_column_that_is_no_verdict_is_no_tie(tmp_path, extra):
    row = {"prompt": "Best move?", "chosen": "Nf3", "rejected": "Qh5??", **extra}
    assert len(load_pairs(jsonl(tmp_path, [row])).pairs) == 1


def test_pandas_default_to_json_of_a_frame_with_any_index_is_read_by_columns(tmp_path):
    """helper 83: a frame indexed by ids ("a".."e", after set_index) written with `to_json()` was
    read as one record; one record whose fields are message objects still is one."""
    import pandas as pd

    frame = pd.DataFrame(
        [{"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)],
        index=list("abcde"),
    )
    path = tmp_path / "frame.json"
    frame.to_json(path)
    loaded = load_pairs(str(path))
    assert [p.chosen_text for p in loaded.pairs] == [f"good {i}" for i in range(5)]
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"prompt": user("q"), "chosen": assistant("a"), "rejected": assistant("b")}))
    assert [p.chosen_text for p in load_pairs(str(one)).pairs] == ["a"]
