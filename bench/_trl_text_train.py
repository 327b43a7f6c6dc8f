"""`rewardforge train` with TRL's text for BERT-style models, for bench/hh_accuracy.py --trl-text.

TRL tokenizes an HH transcript as written: "Human: ..." turns, plus the [SEP] it appends as
the end-of-sequence marker, so its sequences end [SEP] [SEP]. Our plain format writes "User:"
and ends with one [SEP]. This runs the train command with the plain format patched to TRL's
text, to tell whether those tokens explain the accuracy difference between the two pipelines.
Only for this ablation: the model's saved format stays "plain".
"""

import os
import sys

import rewardforge.formatting as formatting
from rewardforge.cli import main

PARTS = os.environ.get("RF_TRL_TEXT", "both")  # both | sep (only the [SEP]) | human (only the word)
_plain = formatting.render_plain


def with_sep(messages):
    return _plain(messages) + "[SEP]"


if PARTS in ("both", "human"):
    formatting.PLAIN_ROLE_NAMES["user"] = "Human"
if PARTS in ("both", "sep"):
    formatting.render_plain = with_sep

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
