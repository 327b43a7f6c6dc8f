"""`rewardforge train` with the reply as BERT's second segment, for bench/hh_accuracy.py --segments.

Cross-encoders (and OpenAssistant's DeBERTa reward models) read a prompt and a reply as a text
pair: [CLS] prompt [SEP] reply [SEP], the reply's tokens with token type 1, which is what
`tokenizer(prompt, reply)` gives. Our plain format writes one sequence. This runs the train
command with the plain format patched to the pair form (`RF_SEGMENTS=types`, or `sep`: the [SEP]
alone, token types all 0), to tell whether an encoder reward model learns more from it. Only for
this ablation: the model's saved format stays "plain", and only BERT-style tokenizers ([SEP]) fit.
"""

import os
import sys

import rewardforge.formatting as formatting
import rewardforge.rewards as rewards
from rewardforge.cli import main

MODE = os.environ.get("RF_SEGMENTS", "types")  # types | sep
SEP_ID = 102  # [SEP] of BERT's uncased vocabulary (MiniLM's)
_plain = formatting.render_plain
_chunk_rewards = rewards.chunk_rewards


def render_pair(messages):
    """The last assistant turn as the second segment; a prompt alone stays one segment."""
    if len(messages) > 1 and messages[-1]["role"] == "assistant":
        return _plain(messages[:-1]) + " [SEP] " + _plain(messages[-1:])
    return _plain(messages)


def rewards_with_token_types(model, chunk, *, decoder):
    """Token type 1 after the first [SEP], as tokenizer(prompt, reply) gives it."""
    if decoder:
        return _chunk_rewards(model, chunk, decoder=decoder)
    ids = chunk["input_ids"]
    sep = (ids == SEP_ID).long()
    types = ((sep.cumsum(-1) - sep) >= 1).long()
    out = model(input_ids=ids, attention_mask=chunk["attention_mask"], token_type_ids=types)
    return out.logits[chunk["read_row"], 0].float()


formatting.render_plain = render_pair
if MODE == "types":
    rewards.chunk_rewards = rewards_with_token_types

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
