"""Memory the tokenized training pairs hold: rewardforge's int32 arrays against lists of Python ints.

`training.run.tokenize_pairs` keeps every pair's token ids until training ends. Both forms are
measured in one run on the same pairs (tracemalloc: the bytes still allocated once the pairs are
tokenized): the arrays as `tokenize_pairs` returns them, then the same ids copied into lists,
which is how they were held before. HH-RLHF harmless train pairs by default, all-MiniLM-L6-v2's
tokenizer, max length 256.

    python bench/token_memory.py [--data ../shared/data/hh-rlhf-harmless/train.jsonl.gz] [--repeat 8]

Writes bench/results/token_memory.json.
"""

from __future__ import annotations

import argparse
import json
import tracemalloc
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/hh-rlhf-harmless/train.jsonl.gz"))
    parser.add_argument("--repeat", type=int, default=8, help="the data's pairs this many times over")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--output", default=str(ROOT / "bench/results/token_memory.json"))
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from rewardforge.data import load_pairs
    from rewardforge.files import atomic_write_text
    from rewardforge.formatting import TextFormat
    from rewardforge.training.run import default_model_path, tokenize_pairs

    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    loaded = types.SimpleNamespace(tokenizer=tokenizer, text_format=TextFormat.for_tokenizer(tokenizer))
    pairs = load_pairs(args.data, skip_invalid=True).pairs * args.repeat

    tracemalloc.start()
    dataset, _ = tokenize_pairs(pairs, loaded, args.max_length, desc="tokenize", keep_identical=True)
    arrays = tracemalloc.get_traced_memory()[0]
    items = dataset.items
    tokens = sum(len(i["chosen_ids"]) + len(i["rejected_ids"]) for i in items)
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    as_lists = [[list(i["chosen_ids"]), list(i["rejected_ids"])] for i in items]
    lists_extra = tracemalloc.get_traced_memory()[0] - before
    # the lists held instead of the arrays: the arrays' own bytes out, the lists' in
    array_bytes = sum(
        i["chosen_ids"].buffer_info()[1] * 4 + i["rejected_ids"].buffer_info()[1] * 4 for i in items
    )
    lists = arrays - array_bytes + lists_extra
    tracemalloc.stop()
    del as_lists

    result = {
        "data": args.data,
        "pairs": len(items),
        "tokens": tokens,
        "max_length": args.max_length,
        "retained_bytes_int32_arrays": arrays,
        "retained_bytes_python_lists": lists,
        "bytes_per_token_arrays": round(arrays / tokens, 2),
        "bytes_per_token_lists": round(lists / tokens, 2),
        "ratio_lists_over_arrays": round(lists / arrays, 2),
    }
    print(
        f"{len(items)} pairs, {tokens} tokens: int32 arrays {arrays / 1e6:.1f} MB "
        f"({result['bytes_per_token_arrays']} B/token), lists {lists / 1e6:.1f} MB "
        f"({result['bytes_per_token_lists']} B/token): {result['ratio_lists_over_arrays']}x"
    )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
