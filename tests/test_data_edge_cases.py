"""Records from the wild that the shape rules must read right, or reject with a named field.

Each case came from fuzzing the loader: before the fix it crashed with a traceback, misread
the pair, or accepted a row that teaches the model nothing.
"""

from __future__ import annotations

import decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _rows import jsonl

from rewardforge.data import DataError, load_pairs


def msg(role: str, content) -> dict:
    return {"role": role, "content": content}


def only_error(path: str) -> DataError:
    with pytest.raises(DataError) as info:
        load_pairs(path)
    return info.value


GOOD_CHAT = {
    "chosen": [msg("user", "hi"), msg("assistant", "hello")],
    "rejected": [msg("user", "hi"), msg("assistant", "go")],
}


@pytest.mark.parametrize("role", [["user"], {"name": "user"}, 3])
def test_a_role_that_is_not_a_string_is_a_field_error(tmp_path, role):
    bad = {**GOOD_CHAT, "chosen": [msg("user", "hi") | {"role": role}, msg("assistant", "hello")]}
    err = only_error(jsonl(tmp_path, [GOOD_CHAT, bad]))
    assert (err.location, err.field) == ("line 2", "chosen[0].role")
    assert "expected a role name" in err.reason


def test_a_lone_surrogate_is_the_rows_error_not_a_tokenizer_crash(tmp_path):
    path = tmp_path / "d.jsonl"
    good = '{"prompt": "Q", "chosen": "good", "rejected": "bad"}'
    path.write_text(
        good + "\n" + '{"prompt": "Q\\udfff", "chosen": "good", "rejected": "bad"}\n' + good + "\n"
    )
    err = only_error(str(path))
    assert (err.location, err.field) == ("line 2", "prompt") and "lone surrogate" in err.reason
    path.write_text(good + "\n" + '{"prompt": "Q", "chosen": "good \\ud800 x", "rejected": "bad"}\n')
    got = load_pairs(str(path), skip_invalid=True)
    assert len(got.pairs) == 1 and [(r.location, r.field) for r in got.rejected] == [("line 2", "chosen")]


def test_openai_text_parts_and_role_names_are_read(tmp_path):
    row = {
        "chosen": [
            msg("developer", "be brief"),
            msg("user", [{"type": "text", "text": "hi"}]),
            msg("assistant", [{"type": "text", "text": "hello"}, {"type": "text", "text": "there"}]),
        ],
        "rejected": [
            msg("developer", "be brief"),
            msg("user", [{"type": "text", "text": "hi"}]),
            msg("assistant", "go"),
        ],
    }
    pair = load_pairs(jsonl(tmp_path, [row])).pairs[0]
    assert pair.prompt == [msg("system", "be brief"), msg("user", "hi")]
    assert pair.chosen == [msg("assistant", "hello\nthere")] and pair.rejected == [msg("assistant", "go")]
    image = {
        **row,
        "rejected": [msg("user", "hi"), msg("assistant", [{"type": "image_url", "image_url": "x"}])],
    }
    err = only_error(jsonl(tmp_path, [image], "img.jsonl"))
    assert err.field == "rejected[1].content[0]" and "only text content parts" in err.reason
    # helper 77: no parts is no text ("expected a string, got list" said otherwise): an empty reply
    empty = {**row, "rejected": [*row["rejected"][:2], msg("assistant", [])]}
    err = only_error(jsonl(tmp_path, [empty], "empty.jsonl"))
    assert err.field == "rejected" and "empty" in err.reason and "got list" not in err.reason


def test_reasoning_is_left_out_of_the_text_and_counted(tmp_path):
    """helper 97: DeepSeek's reasoning_content, gpt-oss's thinking, OpenRouter's reasoning and
    Anthropic's thinking parts vanished without a word, and a pair differing only there was
    'identical to chosen' with no reason given."""
    think = {"type": "thinking", "thinking": "let me see", "signature": "s"}
    rows = [
        {
            "prompt": [msg("user", "Is it?")],
            "chosen": [msg("assistant", "Yes.") | {"reasoning_content": "it is"}],
            "rejected": [msg("assistant", [think, {"type": "text", "text": "No."}])],
        },
        {
            "prompt": [msg("user", "Is it so?")],
            "chosen": [msg("assistant", "Yes.") | {"thinking": "A", "reasoning": "B"}],
            "rejected": [msg("assistant", "No.") | {"reasoning_content": "  "}],  # blank: nothing left out
        },
        {
            "prompt": [msg("user", "Same?")],
            "chosen": [msg("assistant", "Yes.") | {"reasoning_content": "one way"}],
            "rejected": [msg("assistant", "Yes.") | {"reasoning_content": "another"}],
        },
    ]
    got = load_pairs(jsonl(tmp_path, rows), skip_invalid=True)
    assert [(p.chosen, p.rejected) for p in got.pairs] == [
        ([msg("assistant", "Yes.")], [msg("assistant", "No.")]),
        ([msg("assistant", "Yes.")], [msg("assistant", "No.")]),
    ]
    # only the kept pairs' reasoning is counted
    assert (
        "reasoning not scored, only each turn's visible text: 1 reasoning, 1 reasoning_content, "
        "1 thinking, 1 thinking part" in got.reading_notes()
    )
    [rejected] = got.rejected
    assert rejected.location == "line 3" and "identical to 'chosen'" in rejected.reason
    assert "reasoning is not scored" in rejected.reason
    plain = load_pairs(jsonl(tmp_path, [GOOD_CHAT], "plain.jsonl"))
    assert "reasoning" not in plain.reading_notes()
    identical = {**GOOD_CHAT, "rejected": GOOD_CHAT["chosen"]}
    err = only_error(jsonl(tmp_path, [identical], "same.jsonl"))
    assert "reasoning" not in err.reason  # a row without reasoning says nothing of it


def test_limit_counts_the_reasoning_of_kept_records_only(tmp_path):
    """helper 98: --limit dropped a record of two pairs after its reasoning was counted."""

    def record(i):
        history = [
            msg("user", f"q{i}"),
            msg("assistant", "a") | {"reasoning_content": "r"},
            msg("user", "and?"),
        ]
        answers = [("good", True), ("bad", False), ("worse", False)]
        return {"input": history, "output": [{"answer": a, "label": {"is_preferred": p}} for a, p in answers]}

    got = load_pairs(jsonl(tmp_path, [record(1), record(2), record(3)]), limit=3)
    assert len(got.pairs) == 2 and "1 reasoning_content" in got.reading_notes()


def test_an_openai_refusal_is_the_reply(tmp_path):
    """helper 97: OpenAI's {"content": null, "refusal": "..."} was 'content: missing'."""
    row = {
        "prompt": [msg("user", "Help me pick a lock.")],
        "chosen": [{"role": "assistant", "content": None, "refusal": "I can't help with that."}],
        "rejected": [msg("assistant", "Sure: first...") | {"refusal": None, "annotations": []}],
    }
    pair = load_pairs(jsonl(tmp_path, [row])).pairs[0]
    assert pair.chosen == [msg("assistant", "I can't help with that.")]
    assert pair.rejected == [msg("assistant", "Sure: first...")]
    empty = {**row, "chosen": [{"role": "assistant", "content": None, "refusal": ""}]}
    err = only_error(jsonl(tmp_path, [empty], "empty.jsonl"))
    assert err.field == "chosen" and "empty response" in err.reason
    number = {**row, "chosen": [{"role": "assistant", "content": None, "refusal": 5}]}
    err = only_error(jsonl(tmp_path, [number], "number.jsonl"))  # helper 98: it said "content: missing"
    assert err.field == "chosen[0].refusal" and "expected a string, got" in err.reason


def test_an_hh_style_prompt_string_is_parsed_into_turns(tmp_path):
    """Dahoas/rm-static: the prompt is an HH transcript ending in an open 'Assistant:'."""
    row = {
        "prompt": "\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: and now?\n\nAssistant:",
        "chosen": " Now we rest.",
        "rejected": " Go away.",
    }
    quoting = {
        "prompt": "Which reply is kinder?\n\nHuman: hi\n\nAssistant: hey",
        "chosen": "a",
        "rejected": "b",
    }
    # a dialogue the prompt quotes and then asks about: it ends with a reply, not an open turn
    asking = {
        "prompt": "Human: what's this?\nAssistant: I don't know\nTranslate the dialogue above to French.",
        "chosen": "a",
        "rejected": "b",
    }
    pairs = load_pairs(jsonl(tmp_path, [row, quoting, asking])).pairs
    assert pairs[0].prompt == [msg("user", "hi there"), msg("assistant", "hello"), msg("user", "and now?")]
    assert pairs[0].chosen == [
        msg("assistant", "Now we rest.")
    ]  # as the transcript form reads it (session 20)
    assert pairs[1].prompt == [msg("user", quoting["prompt"])]  # text before the first turn: kept whole
    assert pairs[2].prompt == [msg("user", asking["prompt"])]  # found by fuzzing: was split into turns


def test_completions_that_repeat_the_conversation_leave_only_the_replies(tmp_path):
    """UltraFeedback-binarized and kin: the prompt is the last user turn, the completions the
    whole chat (with a system turn, with history, or repeated on one side only)."""
    sys_row = {
        "prompt": "hi",
        "chosen": [msg("system", "S"), msg("user", "hi"), msg("assistant", "hello")],
        "rejected": [msg("system", "S"), msg("user", "hi"), msg("assistant", "go")],
    }
    history_row = {
        "prompt": "and now?",
        "chosen": [
            msg("user", "hi"),
            msg("assistant", "hey"),
            msg("user", "and now?"),
            msg("assistant", "rest"),
        ],
        "rejected": [
            msg("user", "hi"),
            msg("assistant", "hey"),
            msg("user", "and now?"),
            msg("assistant", "run"),
        ],
    }
    one_side = {
        "prompt": "hi",
        "chosen": [msg("user", "hi"), msg("assistant", "hello")],
        "rejected": [msg("assistant", "go")],
    }
    pairs = load_pairs(jsonl(tmp_path, [sys_row, history_row, one_side])).pairs
    assert pairs[0].prompt == [msg("system", "S"), msg("user", "hi")]
    assert pairs[1].prompt == history_row["chosen"][:3] and pairs[1].chosen == [msg("assistant", "rest")]
    assert pairs[2].prompt == [msg("user", "hi")]
    assert (pairs[2].chosen, pairs[2].rejected) == ([msg("assistant", "hello")], [msg("assistant", "go")])


def test_a_prompt_and_conversations_that_overlap_keep_each_turn_once(tmp_path):
    """A prompt [system, user] with completions repeating only the user turn lost the system
    turn; a prompt whose user turn differs from the conversations' was read as two user turns."""
    pirate = {
        "prompt": [msg("system", "You are a pirate."), msg("user", "Hi")],
        "chosen": [msg("user", "Hi"), msg("assistant", "Arr!")],
        "rejected": [msg("user", "Hi"), msg("assistant", "Hello.")],
    }
    follow_up = {  # a prompt the conversations continue: both kept, in order
        "prompt": [msg("user", "Hi")],
        "chosen": [msg("assistant", "Hey"), msg("user", "More?"), msg("assistant", "Sure")],
        "rejected": [msg("assistant", "Hey"), msg("user", "More?"), msg("assistant", "No")],
    }
    pairs = load_pairs(jsonl(tmp_path, [pirate, follow_up])).pairs
    assert pairs[0].prompt == pirate["prompt"] and pairs[0].chosen == [msg("assistant", "Arr!")]
    assert pairs[1].prompt == [msg("user", "Hi"), msg("assistant", "Hey"), msg("user", "More?")]
    differs = {
        "prompt": "Hi there",
        "chosen": [msg("user", "Hi there!"), msg("assistant", "Arr!")],
        "rejected": [msg("user", "Hi there!"), msg("assistant", "Hello.")],
    }
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [pirate, differs]))
    assert "line 2" in str(err.value) and "'prompt'" in str(err.value)
    assert "do not start with ('Hi there!')" in str(err.value)


def test_text_replies_that_repeat_their_prompt_read_it_once(tmp_path):
    hh = "\n\nHuman: hi\n\nAssistant:"
    question = "Question: what is 2+2?\nAnswer:"
    short = "Hi"  # too short to tell a copy from a reply's own words: kept as written
    rows = [
        {"prompt": hh, "chosen": hh + " hello there", "rejected": hh + " go away"},
        {"prompt": question, "chosen": question + " 4", "rejected": question + " 5"},
        {"prompt": short, "chosen": "Hi there, friend.", "rejected": "Hi. Go away."},
    ]
    pairs = load_pairs(jsonl(tmp_path, rows)).pairs
    assert (pairs[0].prompt, pairs[0].chosen_text, pairs[0].rejected_text) == (
        [msg("user", "hi")],
        "hello there",
        "go away",
    )
    assert (pairs[1].chosen_text, pairs[1].rejected_text) == ("4", "5")
    assert (pairs[2].chosen_text, pairs[2].rejected_text) == ("Hi there, friend.", "Hi. Go away.")


def test_a_repeated_user_turn_keeps_the_history_before_it(tmp_path):
    """'Continue' twice in one chat: the first copy was taken for the prompt and cut away, so the
    prompt began with the assistant's turn and lost the first question (and any system turn)."""
    chat = [
        msg("system", "sys"),
        msg("user", "Continue"),
        msg("assistant", "part 1"),
        msg("user", "Continue"),
    ]
    row = {
        "prompt": "Continue",
        "chosen": chat + [msg("assistant", "x")],
        "rejected": chat + [msg("assistant", "y")],
    }
    hh = "\n\nHuman: Continue\n\nAssistant: part 1\n\nHuman: Continue\n\nAssistant:"
    text_row = {"prompt": "\n\nHuman: Continue\n\nAssistant:", "chosen": hh + " x", "rejected": hh + " y"}
    pair = load_pairs(jsonl(tmp_path, [row])).pairs[0]
    assert pair.prompt == chat and pair.chosen == [msg("assistant", "x")]
    pair = load_pairs(jsonl(tmp_path, [text_row], "hh.jsonl")).pairs[0]
    assert pair.prompt == chat[1:] and pair.rejected == [msg("assistant", "y")]


@pytest.mark.parametrize(
    "rejected",
    [
        [msg("user", "What is the capital of Spain?"), msg("assistant", "Madrid.")],
        [msg("assistant", "Hm."), msg("user", "And Spain?"), msg("assistant", "Madrid.")],
    ],
)
def test_a_completion_holding_another_question_is_invalid(tmp_path, rejected):
    row = {
        "prompt": "What is the capital of France?",
        "chosen": [msg("user", "What is the capital of France?"), msg("assistant", "Paris.")],
        "rejected": rejected,
    }
    if rejected[0]["role"] == "assistant":  # a continuation both sides share the start of is fine
        row["chosen"] = [msg("assistant", "Hm."), msg("user", "And Spain?"), msg("assistant", "Spain?")]
        assert load_pairs(jsonl(tmp_path, [row])).pairs[0].prompt[-1] == msg("user", "And Spain?")
        return
    with pytest.raises(
        DataError, match=r"field 'rejected': holds a user turn \('What is the capital of Spain\?'\)"
    ):
        load_pairs(jsonl(tmp_path, [row]))


def test_one_side_an_hh_transcript_and_a_list_prompt_are_read_once(tmp_path):
    question = "How do I boil an egg without cracking it?"
    rows = [
        {
            "prompt": question,
            "chosen": f"\n\nHuman: {question}\n\nAssistant: Cold water.",
            "rejected": "Drop it.",
        },
        {
            "prompt": [msg("user", question)],
            "chosen": f"{question} Cold water.",
            "rejected": f"{question} Drop it.",
        },
    ]
    for pair in load_pairs(jsonl(tmp_path, rows)).pairs:
        assert (pair.prompt, pair.chosen_text, pair.rejected_text) == (
            [msg("user", question)],
            "Cold water.",
            "Drop it.",
        )


def test_uneven_repetition_and_one_sided_text_copies_are_read_once(tmp_path):
    story = [msg("user", "Tell me a story"), msg("assistant", "Once..."), msg("user", "Go on")]
    story += [msg("assistant", "A dragon came."), msg("user", "Go on")]
    uneven = {  # chosen repeats the last turn, rejected the last three
        "prompt": story,
        "chosen": [msg("user", "Go on"), msg("assistant", "The knight won.")],
        "rejected": story[-3:] + [msg("assistant", "Nothing.")],
    }
    question = "Please explain photosynthesis in one sentence."
    one_side = {"prompt": question, "chosen": f"{question}\nPlants make sugar.", "rejected": "Magic."}
    hh_prompt = {  # the copy is of the prompt's last user turn, the prompt an HH transcript
        "prompt": f"\n\nHuman: hi\n\nAssistant: hello\n\nHuman: {question}\n\nAssistant:",
        "chosen": f"{question} Plants make sugar.",
        "rejected": f"{question} Magic.",
    }
    dialogue = {  # a reply that is a dialogue the prompt asked for stays a reply
        "prompt": "Write a two-line dialogue between a Human and an Assistant about rain.",
        "chosen": "Human: Is it going to rain today?\n\nAssistant: Yes, bring an umbrella.",
        "rejected": "No.",
    }
    pairs = (
        load_pairs(jsonl(tmp_path, [uneven])).pairs
        + load_pairs(jsonl(tmp_path, [one_side, hh_prompt, dialogue], "texts.jsonl")).pairs
    )
    assert pairs[0].prompt == story and pairs[0].rejected == [msg("assistant", "Nothing.")]
    assert (pairs[1].chosen_text, pairs[1].rejected_text) == ("Plants make sugar.", "Magic.")
    assert (pairs[2].chosen_text, pairs[2].rejected_text) == ("Plants make sugar.", "Magic.")
    assert len(pairs[2].prompt) == 3 and pairs[3].chosen_text == dialogue["chosen"]


def test_a_prompt_ending_with_a_sides_own_reply_is_invalid(tmp_path):
    """`--columns prompt=messages` on UltraFeedback-binarized-like rows put the chosen reply in
    the prompt: the model saw the answer."""
    conversation = [msg("user", "Capital of France?"), msg("assistant", "Paris.")]
    row = {"chosen": "Paris.", "rejected": "Lyon.", "messages": conversation}
    with pytest.raises(DataError, match="it ends with a reply, so its turns before that are the prompt"):
        load_pairs(jsonl(tmp_path, [row]))
    with pytest.raises(DataError, match="field 'chosen': the prompt ends with this side's own reply"):
        load_pairs(jsonl(tmp_path, [row]), columns={"prompt": "messages"})
    as_lists = {"prompt": conversation, "chosen": conversation, "rejected": [msg("assistant", "Lyon.")]}
    with pytest.raises(DataError, match="the prompt ends with this side's own reply"):
        load_pairs(jsonl(tmp_path, [as_lists], "lists.jsonl"))


def test_a_continuation_ending_with_the_prompts_last_question_extends_the_prompt(tmp_path):
    """Completions that continue the prompt and end with its last user text ('Continue' again)
    replaced the whole prompt: the first request and reply were lost."""
    prompt = [msg("user", "Write a story."), msg("assistant", "Once upon"), msg("user", "Continue")]
    more = [msg("assistant", "a time"), msg("user", "Continue")]
    row = {
        "prompt": prompt,
        "chosen": more + [msg("assistant", "The end A")],
        "rejected": more + [msg("assistant", "B")],
    }
    hh = "\n\nHuman: How do I bake bread?\n\nAssistant: flour\n\nHuman: thanks\n\nAssistant:"
    later = {
        "prompt": "thanks",
        "chosen": hh + " welcome",
        "rejected": hh + " go away",
    }  # the prompt: its last turn
    pair = load_pairs(jsonl(tmp_path, [row])).pairs[0]
    assert pair.prompt == prompt + more and pair.chosen == [msg("assistant", "The end A")]
    pair = load_pairs(jsonl(tmp_path, [later], "hh.jsonl")).pairs[0]
    assert [m["content"] for m in pair.prompt] == ["How do I bake bread?", "flour", "thanks"]
    assert (pair.chosen_text, pair.rejected_text) == ("welcome", "go away")


def test_a_response_must_end_with_the_assistants_reply(tmp_path):
    row = {
        "prompt": [msg("user", "hi")],
        "chosen": [msg("assistant", "a"), msg("user", "more?")],
        "rejected": [msg("assistant", "b")],
    }
    err = only_error(jsonl(tmp_path, [row]))
    assert err.field == "chosen" and "ends with a 'user' message" in err.reason


@pytest.mark.parametrize(
    "chosen, rejected",
    [
        ("\n\nHuman: hi\n\nAssistant: same", "\n\nHuman: hello\n\nAssistant: same"),
        (
            "\n\nHuman: hi\n\nAssistant: ok\n\nHuman: a\n\nAssistant: x",
            "\n\nHuman: hi\n\nAssistant: ok\n\nHuman: b\n\nAssistant: y",
        ),
    ],
)
def test_transcripts_that_part_in_a_user_turn_are_not_a_preference(tmp_path, chosen, rejected):
    err = only_error(jsonl(tmp_path, [{"chosen": chosen, "rejected": rejected}]))
    assert err.field == "chosen" and "a user turn: they answer different prompts" in err.reason


def test_parquet_float_labels_and_decimal_numbers_are_numbers(tmp_path):
    table = pa.table(
        {
            "history": ["Q1?", "Q2?"],
            "human_ref_A": ["a1", "a2"],
            "human_ref_B": ["b1", "b2"],
            "labels": pa.array([1.0, 0.0]),  # pandas writes int labels with nulls as floats
            "score_A": pa.array([decimal.Decimal("5.5"), decimal.Decimal("1")], pa.decimal128(5, 2)),
            "score_B": pa.array([decimal.Decimal("2"), decimal.Decimal("4")], pa.decimal128(5, 2)),
        }
    )
    path = tmp_path / "shp.parquet"
    pq.write_table(table, path)
    pairs = load_pairs(str(path), margin_from_scores=True).pairs
    assert [(p.chosen_text, p.rejected_text, p.margin) for p in pairs] == [
        ("a1", "b1", 3.5),
        ("b2", "a2", 3.0),
    ]


def test_a_reply_of_control_characters_is_empty(tmp_path):
    rows = [
        {"prompt": "Q", "chosen": "ok", "rejected": "no"},
        {"prompt": "Q", "chosen": "\u0000\u0001\u200b ", "rejected": "no"},
    ]
    err = only_error(jsonl(tmp_path, rows))
    assert (err.location, err.field, err.reason) == ("line 2", "chosen", "empty response")


@pytest.mark.parametrize("field, value", [("id", [1, 2]), ("category", {"a": 1}), ("id", True)])
def test_an_id_or_category_must_be_text_or_a_number(tmp_path, field, value):
    rows = [
        {"prompt": "Q", "chosen": "ok", "rejected": "no", "id": 7},
        {"prompt": "Q", "chosen": "ok", "rejected": "no", field: value},
    ]
    err = only_error(jsonl(tmp_path, rows))
    assert (err.location, err.field) == ("line 2", field) and "expected a string or a number" in err.reason
    assert load_pairs(jsonl(tmp_path, rows[:1], "ok.jsonl")).pairs[0].id == "7"


@pytest.mark.parametrize(
    "row",
    [
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello", "rejected": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: What?\n\nAssistant: Bye"},
        {"chosen": [msg("user", "Hi"), msg("assistant", "Hello")],
         "rejected": [msg("user", "Hi"), msg("assistant", "Hello"), msg("user", "What?"), msg("assistant", "Bye")]},
        {"prompt": "Hi", "chosen": [msg("assistant", "Hello")],
         "rejected": [msg("assistant", "Hello"), msg("user", "What?"), msg("assistant", "Bye")]},
    ],
    ids=["hh-text", "messages", "prompt-and-messages"],
)  # fmt: skip
def test_a_side_that_is_the_other_going_on_with_another_question_is_invalid(tmp_path, row):
    """Before, one transcript that was the other going on (its reply, then a new user turn)
    became a pair whose last replies answer different questions."""
    err = only_error(jsonl(tmp_path, [row]))
    assert err.field == "rejected" and "going on with a user turn ('What?')" in err.reason


def test_trajectories_judged_whole_may_run_for_several_turns(tmp_path):
    """Arena conversations, and agent trajectories where a simulated user answers each side:
    the sides part at their first reply and each runs on (not refused, as the check above was
    at first)."""
    arena = {
        "chosen": [msg("user", "Hi"), msg("assistant", "Hello"), msg("user", "Why?"), msg("assistant", "A")],
        "rejected": [msg("user", "Hi"), msg("assistant", "Go"), msg("user", "Why?"), msg("assistant", "B")],
    }
    agent = {
        "prompt": [msg("user", "cancel my order")],
        "chosen": [
            msg("assistant", "Which order id?"),
            msg("user", "#123"),
            msg("assistant", "Cancelled #123."),
        ],
        "rejected": [msg("assistant", "Cancelled your most recent order.")],
    }
    (first,) = load_pairs(jsonl(tmp_path, [arena])).pairs
    (second,) = load_pairs(jsonl(tmp_path, [agent], "agent.jsonl")).pairs
    assert first.prompt == [msg("user", "Hi")] and len(first.chosen) == len(first.rejected) == 3
    assert second.prompt == agent["prompt"] and len(second.chosen) == 3


@pytest.mark.parametrize("alias", ["input", "context", "question"])
def test_a_second_prompt_column_beside_prompt_is_not_dropped(tmp_path, alias):
    """Before, `input` (or a RAG `context`) beside `prompt` was dropped without a word."""
    from rewardforge.data import parse_columns

    rows = [
        {"prompt": "Translate to French.", alias: "Good evening", "chosen": "Bonsoir", "rejected": "Bonjour"}
    ]
    path = jsonl(tmp_path, rows)
    err = only_error(path)
    assert err.field == alias and f"--columns prompt=prompt+{alias}" in err.reason
    both = load_pairs(path, columns=parse_columns(f"prompt=prompt+{alias}")).pairs[0]
    assert both.prompt == [msg("user", "Translate to French.\nGood evening")]
    alone = load_pairs(path, columns=parse_columns("prompt=prompt")).pairs[0]
    assert alone.prompt == [msg("user", "Translate to French.")]
    # text the pair already holds (orpo-dpo-mix's prompt and question; a RAG context quoted in
    # the prompt, as a list; case, spacing and HTML escapes aside) loses nothing
    same = [
        {"prompt": "Say  hi.", alias: "say hi.", "chosen": "Hi", "rejected": "No"},
        {"prompt": "Documents:\n1. Paris is in France.\n2. Rome &amp; Italy.\nQ: where?", alias: ["Paris is in France.", "Rome & Italy."], "chosen": "Hi", "rejected": "No"},
    ]  # fmt: skip
    loaded = load_pairs(jsonl(tmp_path, same, "same.jsonl")).pairs
    assert loaded[0].prompt == [msg("user", "Say  hi.")] and len(loaded) == 2


def test_finite_scores_too_far_apart_for_a_margin_are_invalid(tmp_path):
    row = {"prompt": "Q", "chosen": "A", "rejected": "B", "score_chosen": 1.7e308, "score_rejected": -1.7e308}
    with pytest.raises(DataError, match="line 1: field 'score_chosen': the scores .* too far apart"):
        load_pairs(jsonl(tmp_path, [row]), margin_from_scores=True)
    ranked = {"prompt": "Q", "answers": [{"text": "A", "score": 1.7e308}, {"text": "B", "score": -1.7e308}]}
    with pytest.raises(DataError, match="too far apart"):
        load_pairs(jsonl(tmp_path, [ranked], "ranked.jsonl"), margin_from_scores=True)


def test_messages_stored_by_key_are_read(tmp_path):
    """A `datasets.Sequence` of a dict stores a message list as {"role": [...], "content": [...]}."""
    by_key = {"role": ["user", "assistant"], "content": ["Hi", "Hello"]}
    row = {"chosen": by_key, "rejected": {"role": ["user", "assistant"], "content": ["Hi", "Go"]}}
    (pair,) = load_pairs(jsonl(tmp_path, [row])).pairs
    assert pair.prompt == [msg("user", "Hi")] and pair.chosen == [msg("assistant", "Hello")]
    row["rejected"] = {"role": ["user", "assistant"], "content": ["Hi"]}
    assert "different lengths" in only_error(jsonl(tmp_path, [row], "bad.jsonl")).reason


def test_a_prompt_as_one_message_or_stored_by_key(tmp_path):
    """The server took one message object as a prompt; training and `score` refused it."""
    rows = [
        {"prompt": msg("user", "Hi"), "chosen": [msg("assistant", "Hello")], "rejected": [msg("assistant", "Go")]},
        {"prompt": {"role": ["user"], "content": ["Hi"]}, "chosen": [msg("assistant", "Hello")], "rejected": [msg("assistant", "Go")]},
    ]  # fmt: skip
    first, second = load_pairs(jsonl(tmp_path, rows)).pairs
    assert first.prompt == second.prompt == [msg("user", "Hi")]


def test_lowercase_booleans_label_shp_rows(tmp_path):
    """polars writes true/false, R and Excel TRUE/FALSE."""
    path = tmp_path / "shp.csv"
    path.write_text("history,human_ref_A,human_ref_B,labels\nWhy?,a,c,true\nHow?,b,d,FALSE\n")
    first, second = load_pairs(str(path)).pairs
    assert (first.chosen_text, second.chosen_text) == ("a", "d")


@pytest.mark.parametrize(
    "row",
    [
        {"prompt": "Answer briefly.", "question": "Paris", "chosen": "The capital of France is Paris.", "rejected": "Lyon."},
        {"prompt": "Name the animal.", "question": "cat", "chosen": "It is a concatenation.", "rejected": "dog"},
        {"prompt": "Tell me about", "question": "about Paris", "chosen": "Paris is nice", "rejected": "no"},
        {"prompt": "Who founded it?", "context": [{"title": "Acme", "text": "Acme was founded by Jane Roe."}],
         "chosen": "Jane Roe.", "rejected": "John Doe."},
    ],
    ids=["in-a-reply", "inside-a-word", "across-fields", "documents"],
)  # fmt: skip
def test_a_prompt_column_is_not_read_by_a_reply_that_quotes_it(tmp_path, row):
    """The check counted text found in a reply, inside a word or across two fields as read."""
    alias = "question" if "question" in row else "context"
    err = only_error(jsonl(tmp_path, [row]))
    assert err.field == alias and "not read" in err.reason


def test_a_question_repeating_a_prompt_of_text_parts_is_read(tmp_path):
    row = {"prompt": [{"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]}],
           "question": "What is 2+2?", "chosen": "4", "rejected": "5"}  # fmt: skip
    (pair,) = load_pairs(jsonl(tmp_path, [row])).pairs
    assert pair.prompt == [msg("user", "What is 2+2?")]


def test_a_conversation_going_on_is_found_through_other_spacing(tmp_path):
    row = {
        "chosen": [
            msg("user", "q1"),
            msg("assistant", "a1 is  good"),
            msg("user", "q2"),
            msg("assistant", "a2"),
        ],
        "rejected": [msg("user", "q1"), msg("assistant", "a1 is good")],
    }
    err = only_error(jsonl(tmp_path, [row]))
    assert err.field == "chosen" and "going on with a user turn ('q2')" in err.reason


YES_NO = {"chosen": "Yes.", "rejected": "No."}


@pytest.mark.parametrize(
    "row",
    [
        {"prompt": "What is the capital of France", "question": "What is the capital of France?", **YES_NO},
        {"prompt": "What's \"love\"?", "question": "What’s “love”?", **YES_NO},
        {"prompt": "Qu'est-ce qu'un caf\u00e9?", "question": "Qu'est-ce qu'un cafe\u0301?", **YES_NO},
        {"prompt": "请问这是什么？", "question": "这是什么", **YES_NO},
        {"prompt": "hi", "conversations": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], **YES_NO},
        {"prompt": "Acme\nAcme was founded by Jane Roe. Who?",
         "context": [{"id": 7, "url": "http://x", "title": "Acme", "text": "Acme was founded by Jane Roe."}], **YES_NO},
        {"prompt": "hi", "conversations": [{"from": "human", "value": "hi"}, {"from": "chatgpt", "value": "Yes."}], **YES_NO},
        {"prompt": "What is **x**?", "question": "What is x?", **YES_NO},
    ],
    ids=["punctuation", "curly-quotes", "nfd", "cjk", "text-parts", "document-id-url", "other-answer-role", "markdown"],
)  # fmt: skip
def test_a_prompt_column_holding_the_prompts_words_is_read(tmp_path, row):
    """Helper round 36: these were refused although every word is in the prompt."""
    assert len(load_pairs(jsonl(tmp_path, [row])).pairs) == 1


@pytest.mark.parametrize(
    "conversations",
    [
        [{"role": "user", "text": "SECRET second question"}],
        [{"role": "user", "parts": ["SECRET second question"]}],
        [{"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "get_weather", "arguments": "{}"}}]}],
    ],
    ids=["text-key", "parts-key", "tool-call"],
)  # fmt: skip
def test_a_conversation_beside_prompt_in_other_message_forms_is_not_dropped(tmp_path, conversations):
    err = only_error(jsonl(tmp_path, [{"prompt": "hi", "conversations": conversations, **YES_NO}]))
    assert err.field == "conversations" and "not read" in err.reason


@pytest.mark.parametrize("shared", ["It’s ok", "a1\u200b"], ids=["curly-quote", "zero-width-space"])
def test_a_conversation_going_on_is_found_through_other_quotes(tmp_path, shared):
    plain = shared.replace("’", "'").replace("\u200b", "")
    row = {"chosen": [msg("user", "q1"), msg("assistant", shared), msg("user", "q2"), msg("assistant", "a2")],
           "rejected": [msg("user", "q1"), msg("assistant", plain)]}  # fmt: skip
    assert "going on with a user turn ('q2')" in only_error(jsonl(tmp_path, [row])).reason


# ---- helper round 38 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [
        {"prompt": "What does it say? The bridge closes at noon.", "context": "<p>The bridge <b>closes</b> at noon.</p>", **YES_NO},
        {"prompt": "Is 1000 enough?", "input": "1,000", **YES_NO},
        {"prompt": "What is _beta_ here?", "input": "beta", **YES_NO},
        {"prompt": "Send an email to Bob.", "input": "e-mail", **YES_NO},
    ],
    ids=["html-tags", "digit-groups", "markdown-underscores", "hyphen"],
)  # fmt: skip
def test_a_context_the_prompt_holds_written_otherwise_is_read(tmp_path, row):
    assert len(load_pairs(jsonl(tmp_path, [row])).pairs) == 1


@pytest.mark.parametrize("extra", ["😭🔥", "(()]"])
def test_a_context_of_symbols_alone_is_not_dropped(tmp_path, extra):
    """A context without word characters counted as read: it was dropped."""
    err = only_error(jsonl(tmp_path, [{"prompt": "React to this.", "input": extra, **YES_NO}]))
    assert err.field == "input" and "not read" in err.reason
    assert (
        len(
            load_pairs(
                jsonl(tmp_path, [{"prompt": f"React to this: {extra}", "input": extra, **YES_NO}], "ok.jsonl")
            ).pairs
        )
        == 1
    )


def test_a_null_prompt_among_conversation_prompts_is_read_as_an_absent_one(tmp_path):
    """Arrow writes an absent prompt as null: such a row was a "mixture of shapes", while the
    same row with [] was read (a null text prompt stays a missing field: see test_data_bad_input)."""
    from _rows import assistant, user

    first = {"chosen": [user("Q"), assistant("A")], "rejected": [user("Q"), assistant("B")]}
    rows = [
        first,
        *({"prompt": [user(q)], "chosen": [assistant("A")], "rejected": [assistant("B")]} for q in "34"),
    ]
    as_null = load_pairs(jsonl(tmp_path, [{"prompt": None, **first}, *rows[1:]]))
    as_empty = load_pairs(jsonl(tmp_path, [{"prompt": [], **first}, *rows[1:]]))
    assert len(as_null.pairs) == 3 and as_null.fingerprint == as_empty.fingerprint
    assert as_null.pairs[0].prompt == [user("Q")]
    left_out = load_pairs(jsonl(tmp_path, [first, *rows[1:]]))  # no prompt key at all: the same
    assert left_out.fingerprint == as_empty.fingerprint
