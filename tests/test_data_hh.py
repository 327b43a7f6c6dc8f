"""HH-RLHF transcripts: a literal example, and the real harmless-base file from /work/shared."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from rewardforge.data import DataError, load_pairs

HH_TRAIN = Path(__file__).parents[2] / "shared" / "data" / "hh-rlhf-harmless" / "train.jsonl.gz"
needs_hh = pytest.mark.skipif(not HH_TRAIN.exists(), reason=f"{HH_TRAIN} is not available")

CHOSEN = (
    "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour, water, yeast and salt.  "
    "\n\nHuman: Then what?\n\nAssistant:  Knead it, let it rise, and bake at 230°C.\n"
)
REJECTED = (
    "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour, water, yeast and salt.  "
    "\n\nHuman: Then what?\n\nAssistant: Human: I don't know, buy some."
)


def test_hh_literal_example(tmp_path):
    path = tmp_path / "hh.jsonl"
    path.write_text(json.dumps({"chosen": CHOSEN, "rejected": REJECTED}) + "\n", encoding="utf-8")
    loaded = load_pairs(str(path))
    assert loaded.shape == "hh_rlhf"
    pair = loaded.pairs[0]
    assert pair.prompt == [
        {"role": "user", "content": "How do I bake bread?"},
        {"role": "assistant", "content": "Mix flour, water, yeast and salt."},
        {"role": "user", "content": "Then what?"},
    ]
    assert pair.chosen == [{"role": "assistant", "content": "Knead it, let it rise, and bake at 230°C."}]
    # "Human:" inside a reply (not after a blank line) is content, not a new turn
    assert pair.rejected == [{"role": "assistant", "content": "Human: I don't know, buy some."}]


def test_hh_empty_reply_and_identical_sides_are_invalid(tmp_path):
    path = tmp_path / "hh.jsonl"
    rows = [
        {"chosen": CHOSEN, "rejected": REJECTED},
        {"chosen": "\n\nHuman: Hi\n\nAssistant:", "rejected": "\n\nHuman: Hi\n\nAssistant: Hello"},
        {"chosen": CHOSEN, "rejected": CHOSEN + "  "},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match=r"hh\.jsonl:line 2: field 'chosen': empty response"):
        load_pairs(str(path))
    loaded = load_pairs(str(path), skip_invalid=True)
    assert len(loaded.pairs) == 1
    assert [(r.location, r.field, r.reason) for r in loaded.rejected] == [
        ("line 2", "chosen", "empty response"),
        ("line 3", "rejected", "identical to 'chosen'"),
    ]


@needs_hh
def test_hh_first_50_real_rows(tmp_path):
    with gzip.open(HH_TRAIN, "rt", encoding="utf-8") as fh:
        head = list(itertools.islice(fh, 50))
    path = tmp_path / "head.jsonl"  # a temporary slice only; the data set is never copied into the repo
    path.write_text("".join(head), encoding="utf-8")
    loaded = load_pairs(str(path))
    assert loaded.shape == "hh_rlhf" and len(loaded.pairs) == 50 and not loaded.rejected
    for pair in loaded.pairs:
        assert any(m["role"] == "user" for m in pair.prompt)
        assert pair.prompt[-1]["role"] == "user"
        assert all(m["role"] == "assistant" for m in pair.chosen + pair.rejected)
        assert pair.chosen_text.strip() and pair.rejected_text.strip()
        assert pair.chosen != pair.rejected


@needs_hh
def test_hh_whole_real_file_rejects_only_the_empty_replies():
    with pytest.raises(DataError, match=r"train\.jsonl\.gz:line 87: field 'chosen': empty response"):
        load_pairs(str(HH_TRAIN))
    loaded = load_pairs(str(HH_TRAIN), skip_invalid=True)
    assert len(loaded.pairs) == 1796
    assert [r.location for r in loaded.rejected] == ["line 87", "line 517", "line 926", "line 1104"]


def test_rm_statics_explicit_prompt_reads_as_the_same_conversation_as_the_transcript_form(tmp_path):
    """helper 84: Dahoas/rm-static's reply " Boil water" (continuing "Assistant:") kept its space,
    which the whole-transcript form of the same conversation drops: another text to a decoder."""
    question = "\n\nHuman: How do I boil an egg?\n\nAssistant:"
    explicit = tmp_path / "rm_static.jsonl"
    explicit.write_text(
        json.dumps({"prompt": question, "chosen": " Boil water, add the egg.", "rejected": " No. "}) + "\n"
    )
    whole = tmp_path / "hh.jsonl"
    whole.write_text(
        json.dumps({"chosen": question + " Boil water, add the egg.", "rejected": question + " No. "}) + "\n"
    )
    a, b = load_pairs(str(explicit)), load_pairs(str(whole))
    assert a.pairs[0].chosen == [{"role": "assistant", "content": "Boil water, add the egg."}]
    assert a.pairs[0].to_dict() == b.pairs[0].to_dict() and a.fingerprint == b.fingerprint


def test_scoring_an_rm_static_item_reads_the_reply_as_training_does(tiny_bert_dir):
    """The reply's space that continues "Assistant:" goes in scoring as in training."""
    from rewardforge.inference import RewardModel

    rm = RewardModel.from_pretrained(str(tiny_bert_dir))
    question = "\n\nHuman: How do I boil an egg?\n\nAssistant:"
    assert rm.format_text(question, " Boil water.") == rm.format_text(question, "Boil water.")
    assert rm.encode(question, " Boil water.") == rm.encode(question, "Boil water.")
