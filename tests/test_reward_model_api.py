"""The Python API refuses wrong arguments with a clear TypeError/ValueError (helper round 39:
`rank("p", "abc")` ranked the letters, `score_batch(batch_size=0)` ran, `score("Hi", 5)` was
"'int' object is not iterable", a lone surrogate was the tokenizer's TypeError)."""

from __future__ import annotations

import pytest

from rewardforge import RewardModel


@pytest.fixture(scope="module")
def rm(tiny_bert_dir):
    return RewardModel.from_pretrained(str(tiny_bert_dir))


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda rm: rm.rank("p", "abc"), TypeError, "list of responses"),
        (lambda rm: rm.score_batch([("p", "r")], batch_size=0), ValueError, "batch_size"),
        (lambda rm: rm.score_batch([("p", "r")], batch_size=1.5), ValueError, "batch_size"),
        (lambda rm: rm.score_batch([("p", "r")], batch_size=True), ValueError, "batch_size"),
        (lambda rm: rm.score_batch("ab"), TypeError, "list of items"),
        (lambda rm: rm.score_batch([None]), TypeError, "(prompt, response) pair"),
        (lambda rm: rm.score("Hi", 5), TypeError, "a response is a string or a list of messages"),
        (lambda rm: rm.score("Hi", b"bytes"), TypeError, "got bytes"),
        (lambda rm: rm.score("Hi", "bad \ud800 text"), ValueError, "lone surrogate"),
    ],
)
def test_wrong_arguments_are_clear_errors(rm, call, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        call(rm)


@pytest.mark.parametrize("max_length", [0, 2.5, -1])
def test_a_bad_max_length_is_refused_not_replaced(tiny_bert_dir, max_length):
    with pytest.raises(ValueError, match="max_length"):
        RewardModel.from_pretrained(str(tiny_bert_dir), max_length=max_length)


def test_good_calls_still_work(rm):
    assert len(rm.rank("p", ["a", "b", "c"])) == 3
    assert rm.score_batch((("p", "r") for _ in range(2)), batch_size=1)[0] == rm.score("p", "r")


def test_a_model_trained_elsewhere_says_which_format_it_is_scored_in(tiny_bert_dir, tmp_path, capsys):
    """A TRL-trained encoder was scored in our plain format without a word (helper round 37)."""
    RewardModel.from_pretrained(str(tiny_bert_dir))
    assert "has no rewardforge.json, so it is scored in rewardforge's plain format" in capsys.readouterr().err
    (tmp_path / "rewardforge.json").write_text('{"format": {"kind": "plain"}, "max_length": 64}')
    import shutil

    shutil.copytree(tiny_bert_dir, tmp_path / "ours")
    shutil.copy(tmp_path / "rewardforge.json", tmp_path / "ours" / "rewardforge.json")
    RewardModel.from_pretrained(str(tmp_path / "ours"))
    assert "note:" not in capsys.readouterr().err
