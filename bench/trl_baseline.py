#!/usr/bin/env python
"""Baseline: train TRL's ``RewardTrainer`` the way a user would, then score a held-out file.

The goal is a fair reference point for rewardforge: TRL defaults everywhere except the flags
exposed on the command line, TRL's own preprocessing (EOS appending, tokenization, length
filtering), and an evaluation on *every* dev pair (left truncation, no pair dropped).

Example::

    python bench/trl_baseline.py --model DIR \
        --train ../shared/data/hh-rlhf-harmless/train.jsonl.gz \
        --dev ../shared/data/hh-rlhf-harmless/dev.jsonl.gz \
        --max-length 256 --batch-size 8 --lr 5e-5 --epochs 1 --seed 42 \
        --output /tmp/trl_minilm --json bench/results/trl_baseline_minilm.json

Data format: gzip (or plain) JSONL rows ``{"chosen": transcript, "rejected": transcript}`` with
the prompt implicit in both transcripts (HH-RLHF style).  ``RewardTrainer`` accepts this
"implicit prompt" preference format directly: when a ``prompt`` column exists it simply
concatenates ``prompt + chosen`` / ``prompt + rejected`` back together before tokenizing, so
running ``trl.data_utils.maybe_extract_prompt`` first would be a round trip that changes
nothing.  We therefore hand TRL the raw rows.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402
from trl import RewardConfig, RewardTrainer  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="local model folder (AutoModelForSequenceClassification)")
    p.add_argument("--train", required=True, help="train JSONL(.gz) with chosen/rejected transcripts")
    p.add_argument("--dev", required=True, help="held-out JSONL(.gz) with chosen/rejected transcripts")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps (smoke tests)")
    p.add_argument(
        "--no-gradient-checkpointing",
        action="store_true",
        help="disable gradient checkpointing (TRL's RewardConfig enables it by default)",
    )
    p.add_argument("--bf16", action="store_true", help="bf16 mixed precision (off unless given)")
    p.add_argument("--eval-batch-size", type=int, default=32, help="batch size for dev scoring only")
    p.add_argument("--output", required=True, help="RewardConfig.output_dir (final model is saved here)")
    p.add_argument("--json", required=True, help="where to write the result JSON")
    return p.parse_args(argv)


def read_pairs(path: str) -> list[dict[str, str]]:
    opener = gzip.open if str(path).endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            if not isinstance(row.get("chosen"), str) or not isinstance(row.get("rejected"), str):
                raise ValueError(f"{path}:{line_no}: expected string 'chosen' and 'rejected' fields")
            rows.append({"chosen": row["chosen"], "rejected": row["rejected"]})
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def load_tokenizer(model_dir: str):
    tok = AutoTokenizer.from_pretrained(model_dir)
    eos_fallback = None
    if tok.eos_token is None:
        # BERT-style tokenizers (e.g. all-MiniLM-L6-v2) have no eos_token.  TRL's RewardTrainer
        # appends `processing_class.eos_token` to every non-conversational transcript and crashes
        # with `TypeError: endswith first arg must be str ... not NoneType` when it is None.  The
        # natural end-of-sequence marker for these models is [SEP], so a user has to set it.
        if tok.sep_token is None:
            raise ValueError("tokenizer has neither eos_token nor sep_token; cannot run RewardTrainer")
        tok.eos_token = tok.sep_token
        eos_fallback = tok.sep_token
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, eos_fallback


def load_model(model_dir: str, seed: int):
    torch.manual_seed(seed)
    transformers.set_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    return model


def trl_text(text: str, eos_token: str) -> str:
    """The string TRL actually tokenizes for a non-conversational transcript (its `add_eos` map)."""
    return text if text.endswith(eos_token) else text + eos_token


@torch.no_grad()
def trl_rewards(model, tokenizer, texts: list[str], max_length: int, batch_size: int) -> np.ndarray:
    """Rewards of whole texts, left-truncated to max_length (keeps the end of a transcript)."""
    model.eval()
    device = next(model.parameters()).device
    tokenizer.truncation_side = "left"
    tokenizer.padding_side = "right"
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[i : i + batch_size],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        ).to(device)
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        out.append(logits.squeeze(-1).float().cpu().numpy())
    return np.concatenate(out)


def score_pairs(model, tokenizer, pairs, max_length: int, batch_size: int, eos_token: str) -> dict:
    """Reward every pair (none dropped): left truncation keeps the end of the transcript."""

    def rewards(texts: list[str]) -> np.ndarray:
        return trl_rewards(model, tokenizer, texts, max_length, batch_size)

    rc = rewards([trl_text(p["chosen"], eos_token) for p in pairs])
    rr = rewards([trl_text(p["rejected"], eos_token) for p in pairs])
    acc = float(np.mean((rc > rr) + 0.5 * (rc == rr)))
    n_trunc = sum(
        len(tokenizer(trl_text(p[k], eos_token))["input_ids"]) > max_length
        for p in pairs
        for k in ("chosen", "rejected")
    )
    return {
        "accuracy": acc,
        "ties": int(np.sum(rc == rr)),
        "mean_margin": float(np.mean(rc - rr)),
        "truncated_sequences": int(n_trunc),
    }


def trl_style_fits(tokenizer, pair: dict[str, str], max_length: int) -> bool:
    """TRL's length filter, re-derived: a pair stays iff both tokenized sides are <= max_length."""
    return all(
        len(tokenizer(text=trl_text(pair[k], tokenizer.eos_token))["input_ids"]) <= max_length
        for k in ("chosen", "rejected")
    )


def trl_style_kept(tokenizer, pairs, max_length: int) -> int:
    return sum(trl_style_fits(tokenizer, p, max_length) for p in pairs)


def atomic_write_json(path: str, obj: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", *(sys.argv if argv is None else ["bench/trl_baseline.py", *argv])])

    train_rows = read_pairs(args.train)
    dev_rows = read_pairs(args.dev)

    tokenizer, eos_fallback = load_tokenizer(args.model)
    eos_token = tokenizer.eos_token

    # "Before" figure: the untrained model, built fresh with the same seed (same random head).
    untrained = load_model(args.model, args.seed)
    before = score_pairs(untrained, tokenizer, dev_rows, args.max_length, args.eval_batch_size, eos_token)
    del untrained

    use_cuda = torch.cuda.is_available()
    config_kwargs = dict(
        output_dir=args.output,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        num_train_epochs=args.epochs,
        seed=args.seed,
        max_length=args.max_length,
        report_to="none",
        logging_steps=10,
        save_strategy="no",
        eval_strategy="no",
        use_cpu=not use_cuda,
        # RewardConfig defaults bf16 to True (whenever fp16 is unset); we only want it on request.
        bf16=bool(args.bf16),
    )
    if args.max_steps is not None:
        config_kwargs["max_steps"] = args.max_steps
    if args.no_gradient_checkpointing:
        config_kwargs["gradient_checkpointing"] = False
    training_args = RewardConfig(**config_kwargs)

    model = load_model(args.model, args.seed)
    model_dtype = str(model.dtype)
    trainer = RewardTrainer(
        model=model,
        args=training_args,
        train_dataset=Dataset.from_list(train_rows),
        processing_class=tokenizer,
    )

    train_pairs_total = len(train_rows)
    train_pairs_used = len(trainer.train_dataset)  # TRL's dataset after its own >max_length filter
    train_pairs_dropped = train_pairs_total - train_pairs_used
    independent_kept = trl_style_kept(tokenizer, train_rows, args.max_length)
    if independent_kept != train_pairs_used:
        print(
            f"WARNING: TRL kept {train_pairs_used} pairs but the independent recount keeps {independent_kept}",
            file=sys.stderr,
        )

    t0 = time.perf_counter()
    train_output = trainer.train()
    train_seconds = time.perf_counter() - t0

    logged_losses = [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]
    final_train_loss = logged_losses[-1][1] if logged_losses else float(train_output.training_loss)
    logged_acc = [h["accuracy"] for h in trainer.state.log_history if "accuracy" in h and "loss" in h]

    trainer.save_model(args.output)

    after = score_pairs(trainer.model, tokenizer, dev_rows, args.max_length, args.eval_batch_size, eos_token)

    steps = int(trainer.state.global_step)
    pairs_trained = train_pairs_used * args.epochs
    if args.max_steps is not None:  # a truncated run does not see every pair
        pairs_trained = min(pairs_trained, steps * args.batch_size)
    ta = trainer.args
    result = {
        "trainer": "trl.RewardTrainer",
        "trl_version": trl.__version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "model": args.model,
        "train_file": args.train,
        "dev_file": args.dev,
        "settings": {
            "max_length": args.max_length,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "epochs": args.epochs,
            "seed": args.seed,
            "max_steps": args.max_steps,
            "gradient_checkpointing": bool(ta.gradient_checkpointing),
            "bf16": bool(ta.bf16),
            "use_cpu": bool(ta.use_cpu),
            "device": str(ta.device),
            "torch_threads": torch.get_num_threads(),
            "model_dtype": model_dtype,
            "disable_dropout": bool(ta.disable_dropout),
            "optim": getattr(ta.optim, "value", str(ta.optim)),
            "weight_decay": ta.weight_decay,
            "lr_scheduler_type": getattr(ta.lr_scheduler_type, "value", str(ta.lr_scheduler_type)),
            "warmup_steps": ta.warmup_steps,
            "gradient_accumulation_steps": ta.gradient_accumulation_steps,
            "max_grad_norm": ta.max_grad_norm,
            "center_rewards_coefficient": ta.center_rewards_coefficient,
            "logging_steps": ta.logging_steps,
            "eos_token": eos_token,
            "eos_token_fallback_from_sep": eos_fallback is not None,
            "pad_token": tokenizer.pad_token,
            "train_text_format": "raw transcript + eos_token appended by TRL (add_eos), tokenized with special tokens",
            "dev_scoring": "same text as TRL trains on; truncation_side=left, truncation=True, max_length; right padding",
        },
        "train_pairs_total": train_pairs_total,
        "train_pairs_used": train_pairs_used,
        "train_pairs_dropped": train_pairs_dropped,
        "train_pairs_dropped_recount": train_pairs_total - independent_kept,
        "train_steps": steps,
        "train_seconds": round(train_seconds, 3),
        "pairs_per_second": round(pairs_trained / train_seconds, 3) if train_seconds > 0 else None,
        "final_train_loss": final_train_loss,
        "mean_train_loss": float(train_output.training_loss),
        "logged_train_losses": logged_losses,
        "final_logged_train_accuracy": logged_acc[-1] if logged_acc else None,
        "dev_pairs": len(dev_rows),
        "dev_accuracy": after["accuracy"],
        "dev_accuracy_untrained": before["accuracy"],
        "dev_ties": after["ties"],
        "dev_ties_untrained": before["ties"],
        "dev_mean_margin": after["mean_margin"],
        "dev_sequences_truncated": after["truncated_sequences"],
        "command": command,
    }
    for v in (result["dev_accuracy"], result["dev_accuracy_untrained"], result["final_train_loss"]):
        if not (isinstance(v, float) and math.isfinite(v)):
            raise RuntimeError(f"non-finite result value: {v!r}")
    atomic_write_json(args.json, result)

    rows = [
        ("trainer", f"trl.RewardTrainer (trl {trl.__version__}, transformers {transformers.__version__})"),
        ("train pairs used/total", f"{train_pairs_used}/{train_pairs_total} (dropped {train_pairs_dropped})"),
        ("steps", str(steps)),
        ("train seconds", f"{train_seconds:.1f}"),
        ("pairs/second", f"{result['pairs_per_second']}"),
        ("final train loss", f"{final_train_loss:.4f} (mean {result['mean_train_loss']:.4f})"),
        ("dev pairs", str(len(dev_rows))),
        ("dev accuracy untrained", f"{before['accuracy']:.4f}"),
        ("dev accuracy trained", f"{after['accuracy']:.4f}"),
        ("result json", args.json),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
