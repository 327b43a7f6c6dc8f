"""Two candidates compared by a score each or by a choice: WebGPT, Unified-Feedback,
summarize_from_feedback, and StackExchange's paired answers. Each failed with "no preference
fields" before."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _rows import assistant, jsonl, user

from rewardforge.data import DataError, load_pairs


def parquet(tmp_path, rows, name="d.parquet") -> str:
    path = tmp_path / name
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def webgpt(score_0=-1.0, score_1=1.0) -> dict:
    return {
        "question": {"dataset": "eli5", "id": "q1", "full_text": "Why is the sky blue?"},
        "quotes_0": {"title": ["Sky"], "extract": ["Rayleigh"]},
        "answer_0": "Magic.",
        "tokens_0": ["Mag"],
        "score_0": score_0,
        "quotes_1": {"title": [], "extract": []},
        "answer_1": "Rayleigh scattering.",
        "tokens_1": ["Ray"],
        "score_1": score_1,
    }


def test_webgpt_comparisons_the_higher_score_is_chosen(tmp_path):
    loaded = load_pairs(parquet(tmp_path, [webgpt()]), margin_from_scores=True)
    pair = loaded.pairs[0]
    assert loaded.shape == "scored_answers"
    assert (pair.prompt, pair.chosen_text, pair.rejected_text) == (
        [user("Why is the sky blue?")],
        "Rayleigh scattering.",
        "Magic.",
    )
    assert pair.margin == 2.0
    with pytest.raises(DataError, match=r"row 2: field 'score_0': equal to score_1 \(0\): a tie"):
        load_pairs(parquet(tmp_path, [webgpt(), webgpt(0.0, 0.0)], "tie.parquet"))


def test_unified_feedback_rated_conversations(tmp_path):
    row = {
        "id": "u1",
        "conv_A": [user("Q"), assistant("bad")],
        "conv_B": [user("Q"), assistant("good")],
        "conv_A_rating": 0.0,
        "conv_B_rating": 1.0,
        "num_turns": 1,
        "source": "hh-rlhf",
    }
    pair = load_pairs(jsonl(tmp_path, [row])).pairs[0]
    assert (pair.prompt, pair.chosen_text, pair.rejected_text, pair.id) == ([user("Q")], "good", "bad", "u1")
    with pytest.raises(DataError, match="field 'conv_A_rating': missing"):
        load_pairs(jsonl(tmp_path, [{**row, "conv_A_rating": None}], "m.jsonl"))


def test_summarize_from_feedback_comparisons(tmp_path):
    row = {
        "info": {"id": "t3_x", "post": "Long post", "title": "Title", "subreddit": "tifu", "site": None},
        "summaries": [
            {"text": " summary a", "policy": "sup2", "note": None},
            {"text": " summary b", "policy": "ref"},
        ],
        "choice": 1,
        "worker": "w1",
        "extra": {"confidence": 8},
    }
    article = {**row, "info": {"article": "A news story.", "post": None}, "choice": 0}
    pairs = load_pairs(parquet(tmp_path, [row, article])).pairs
    assert pairs[0].prompt == [user("SUBREDDIT: r/tifu\nTITLE: Title\nPOST: Long post\n\nTL;DR:")]
    assert (pairs[0].chosen_text, pairs[0].rejected_text) == ("summary b", "summary a")
    assert (
        pairs[1].prompt == [user("ARTICLE: A news story.\n\nTL;DR:")] and pairs[1].chosen_text == "summary a"
    )
    with pytest.raises(DataError, match=r"field 'choice': expected 0 or 1 \(the better summary\), got 2"):
        load_pairs(jsonl(tmp_path, [{**row, "choice": 2}]))


def test_stack_exchange_paired_j_is_chosen(tmp_path):
    row = {
        "qid": 1,
        "question": "How?",
        "date": "2008",
        "metadata": ["x"],
        "response_j": "good",
        "response_k": "bad",
    }
    loaded = load_pairs(parquet(tmp_path, [row]))
    pair = loaded.pairs[0]
    assert (pair.prompt, pair.chosen_text, pair.rejected_text) == ([user("How?")], "good", "bad")
    assert "chosen=response_j" in loaded.reading_notes() and "prompt=question" in loaded.reading_notes()


def test_nested_columns_written_to_csv_by_pandas_are_read(tmp_path):
    """pandas.to_csv writes a nested column as its Python repr: WebGPT's question became the
    prompt "{'dataset': 'eli5', ...}"."""
    import pandas as pd

    summary = {
        "info": {"post": "Long post", "title": "Title", "subreddit": "tifu"},
        "summaries": [{"text": "a"}, {"text": "b"}],
        "choice": 1,
    }
    unified = {
        "conv_A": [user("Q"), assistant("bad")],
        "conv_B": [user("Q"), assistant("good")],
        "conv_A_rating": 0,
        "conv_B_rating": 1,
    }
    for name, row in (("webgpt", webgpt()), ("summary", summary), ("unified", unified)):
        pd.DataFrame([row]).to_csv(tmp_path / f"{name}.csv", index=False)
        pair = load_pairs(str(tmp_path / f"{name}.csv")).pairs[0]
        assert "{" not in pair.prompt[0]["content"] and pair.chosen_text in (
            "Rayleigh scattering.",
            "b",
            "good",
        )
