"""Rated completion lists (openbmb/UltraFeedback's `completions`, Nectar's ranked `answers`) read
as one pair per (better, worse) combination."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _rows import assistant, jsonl, user

from rewardforge.data import DataError, load_pairs

bot = assistant


def ultrafeedback(scores=(8.5, 3.0, 8.5), **extra) -> dict:
    """An openbmb/UltraFeedback row: an instruction and completions rated by `overall_score`."""
    replies = ("Blue", "Seven", "Red", "Green")
    return {
        "source": "evol_instruct",
        "instruction": "Name a colour",
        "models": ["m0", "m1", "m2"],
        "completions": [
            {"model": f"m{i}", "response": replies[i], "overall_score": s, "annotations": {"x": 1}}
            for i, s in enumerate(scores)
        ],
        **extra,
    }


def nectar() -> dict:
    """A Nectar row: an HH-style prompt and answers ranked 1 (best) to N."""
    return {
        "prompt": "\n\nHuman: Hi there\n\nAssistant:",
        "answers": [
            {"answer": "Hello! How can I help?", "model": "a", "rank": 1},
            {"answer": "What.", "model": "b", "rank": 3},
            {"answer": "Hey.", "model": "c", "rank": 2},
        ],
        "turns": 1,
        "num_responses": 3,
    }


def triples(loaded) -> list[tuple[str, str]]:
    return [(p.chosen[0]["content"], p.rejected[0]["content"]) for p in loaded.pairs]


def test_ultrafeedback_completions_give_every_better_worse_pair(tmp_path):
    loaded = load_pairs(jsonl(tmp_path, [ultrafeedback(id="u1")]))
    assert loaded.shape == "ranked+scores" and loaded.inferred_columns == {"prompt": "instruction"}
    # Blue and Red tie at 8.5: no pair between them; each beats Seven
    assert triples(loaded) == [("Blue", "Seven"), ("Red", "Seven")]
    assert all(p.prompt == [user("Name a colour")] for p in loaded.pairs)
    assert [p.id for p in loaded.pairs] == ["u1#0", "u1#1"]
    assert loaded.pairs[0].extra == {"score_chosen": 8.5, "score_rejected": 3.0}
    assert loaded.pairs[0].margin is None


def test_margins_from_scores_are_per_pair(tmp_path):
    loaded = load_pairs(jsonl(tmp_path, [ultrafeedback((9, 3, 6))]), margin_from_scores=True)
    assert triples(loaded) == [("Blue", "Seven"), ("Blue", "Red"), ("Red", "Seven")]
    assert [p.margin for p in loaded.pairs] == [6.0, 3.0, 3.0]


def test_nectar_ranks_one_is_best(tmp_path):
    loaded = load_pairs(jsonl(tmp_path, [nectar()]))
    assert loaded.shape == "ranked"
    assert loaded.pairs[0].prompt == [user("Hi there")]  # the HH-style prompt is parsed
    assert triples(loaded) == [
        ("Hello! How can I help?", "What."),
        ("Hello! How can I help?", "Hey."),
        ("Hey.", "What."),
    ]
    assert loaded.pairs[2].extra == {"rank_chosen": 2.0, "rank_rejected": 3.0}


def test_ranks_give_no_margin(tmp_path):
    with pytest.raises(DataError, match="no score columns"):
        load_pairs(jsonl(tmp_path, [nectar()]), margin_from_scores=True)


def test_parquet_lists_of_structs_read_like_jsonl(tmp_path):
    rows = [ultrafeedback((9, 3, 6)), ultrafeedback((1, 2, 3))]
    path = tmp_path / "uf.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert triples(load_pairs(str(path))) == triples(load_pairs(jsonl(tmp_path, rows)))


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"completions": [{"response": "A", "overall_score": 5}]}, "completions", "at least two"),
        (
            {"completions": [{"response": "A", "overall_score": 5}, {"response": "B", "overall_score": 5}]},
            "completions",
            "same overall_score",
        ),
        (
            {"completions": [{"response": "A", "overall_score": 5}, {"response": "B"}]},
            "completions[1].overall_score",
            "missing",
        ),
        (
            {
                "completions": [
                    {"response": "A", "overall_score": 5},
                    {"response": "B", "overall_score": "N/A"},
                ]
            },
            "completions[1].overall_score",
            "expected a number",
        ),
        (
            {"completions": [{"response": "A", "overall_score": 5}, {"overall_score": 2}]},
            "completions[1].response",
            "missing",
        ),
        (
            {"completions": [{"response": "A", "overall_score": 5}, {"response": "A ", "overall_score": 2}]},
            "completions[1].response",
            "the same text as completions[0] with another overall_score (5 there, 2 here)",
        ),
        (
            {"completions": [{"response": "A", "overall_score": 5}, "B"]},
            "completions[1]",
            "expected a completion object",
        ),
    ],
)
def test_bad_rated_lists_name_the_field(tmp_path, change, field, message):
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [ultrafeedback(), {**ultrafeedback(), **change}]))
    text = str(err.value)
    assert "line 2" in text and f"'{field}'" in text and message in text


# Found by fuzzing: each was a traceback, a silent choice or a misleading message before.


def test_ranks_through_a_processor_with_margins_are_one_line(tmp_path):
    proc = tmp_path / "proc.py"
    proc.write_text(
        "from rewardforge.data import PreferenceProcessor\n\n"
        "class Passthrough(PreferenceProcessor):\n"
        "    def to_pair(self, record):\n"
        "        return record  # a dict in a built-in shape\n"
    )
    with pytest.raises(DataError, match=r"margin_from_scores needs scores, and these completions are ranked"):
        load_pairs(jsonl(tmp_path, [nectar()]), processor=f"{proc}:Passthrough", margin_from_scores=True)


def test_arrow_null_keys_do_not_hide_the_real_ones(tmp_path):
    rows = [
        {
            "prompt": "P1",
            "completions": [{"response": "x", "overall_score": 5}, {"response": "y", "overall_score": 3}],
        },
        {
            "prompt": "P2",
            "completions": [{"text": "x", "overall_score": 5}, {"text": "y", "overall_score": 3}],
        },
    ]
    path = tmp_path / "mixed_keys.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)  # row 2's items get "response": null
    assert triples(load_pairs(str(path))) == [("x", "y"), ("x", "y")]


@pytest.mark.parametrize(
    "record, field, message",
    [
        (
            {
                "prompt": "P",
                "answers": [{"answer": "x", "score": 5, "rank": 2}, {"answer": "y", "score": 3, "rank": 1}],
            },
            "answers[0]",
            "rated by both 'score' and 'rank'",
        ),
        (
            {
                "prompt": "P",
                "completions": [{"response": "x", "overall_score": 1}, {"response": "y", "overall_score": 2}],
                "answers": [{"answer": "x", "rank": 1}, {"answer": "y", "rank": 2}],
            },  # fmt: skip
            "answers",
            "both 'completions' and 'answers'",
        ),
    ],
)
def test_two_sources_of_the_order_are_an_error(tmp_path, record, field, message):
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [record]))
    assert f"'{field}'" in str(err.value) and message in str(err.value)


def test_a_completion_repeated_with_its_rating_counts_once(tmp_path):
    record = {"id": "q", "prompt": "P", "completions": [
        {"response": "a", "overall_score": 5}, {"response": "a", "overall_score": 5}, {"response": "b", "overall_score": 1},
    ]}  # fmt: skip
    loaded = load_pairs(jsonl(tmp_path, [record]))
    assert triples(loaded) == [("a", "b")] and loaded.pairs[0].id == "q"
    record["completions"][1]["overall_score"] = 2  # the same text rated twice, differently
    with pytest.raises(
        DataError, match=r"'completions\[1\].response': the same text as completions\[0\] with another"
    ):
        load_pairs(jsonl(tmp_path, [record], "twice.jsonl"))


def test_csv_cells_with_text_keyed_rated_completions_read_as_from_jsonl(tmp_path):
    items = [{"text": "good", "score": 5}, {"text": "bad", "score": 3}]
    path = tmp_path / "r.csv"
    path.write_text("prompt,completions\nP," + '"' + json.dumps(items).replace('"', '""') + '"\n')
    assert triples(load_pairs(str(path))) == [("good", "bad")]


def test_a_mixture_with_pair_rows_names_chosen(tmp_path):
    rows = [{"prompt": "P", "chosen": "a", "rejected": "b"}] * 2 + [ultrafeedback(prompt="Name a colour")]
    with pytest.raises(DataError, match=r"line 3: field 'chosen': mixture of shapes: .*\(chosen: absent\)"):
        load_pairs(jsonl(tmp_path, rows))


@pytest.mark.parametrize("limit, expect", [(1, 3), (3, 3), (4, 3), (5, 3), (6, 6), (7, 6)])
def test_limit_never_cuts_a_record(tmp_path, limit, expect):
    """Record accuracy counts a record's pairs together, so --limit stops at a record's end."""
    rows = [nectar() | {"id": "a"}, nectar() | {"id": "b"}, nectar() | {"id": "c"}]
    loaded = load_pairs(jsonl(tmp_path, rows), limit=limit)
    assert len(loaded) == expect  # each Nectar row above gives 3 pairs


@pytest.mark.parametrize(
    "value, got",
    [([], "an empty list"), (["Blue", "Red"], "a list of str"), ("Blue", "str"), ({"a": 1}, "dict")],
)
def test_a_completions_field_that_is_not_a_rated_list_is_named(tmp_path, value, got):
    with pytest.raises(DataError) as err:
        load_pairs(jsonl(tmp_path, [ultrafeedback(), ultrafeedback() | {"completions": value}]))
    text = str(err.value)
    assert "line 2" in text and "completions" in text and "rated completions" in text and got in text


def test_stack_exchange_answers_rated_by_pm_score(tmp_path):
    """HuggingFaceH4/stack-exchange-preferences: every row failed with 'overall_score: missing'."""
    answer = {"answer_id": 10, "author": "a", "selected": True, "pm_score": 4, "text": "Use reversed()."}
    other = {"answer_id": 11, "author": "b", "selected": False, "pm_score": 1, "text": "Loop backwards."}
    row = {"qid": 1, "question": "How do I reverse a list?", "answers": [other, answer], "date": "2008/07/31"}
    path = tmp_path / "se.parquet"
    pq.write_table(pa.Table.from_pylist([row]), path)
    pair = load_pairs(str(path), margin_from_scores=True).pairs[0]
    assert (pair.chosen_text, pair.rejected_text, pair.margin) == ("Use reversed().", "Loop backwards.", 3.0)
