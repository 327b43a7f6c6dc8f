"""Load and save the policy (a causal LM): a folder, a .gguf file (converted once and cached, as
for reward models) or a LoRA adapter folder saved by `rewardforge rlhf --save-adapter`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from rewardforge.modeling import (
    ModelLoadError,
    load_failure,
    made_afresh,
    quiet_transformers,
    resolve_model_path,
    save_hf_folder,
)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def load_policy(spec: str, *, dtype: str = "fp32", device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) of a causal LM; the tokenizer gets a pad token (EOS) if it has none."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; choose fp32 or bf16")
    spec = os.fspath(spec)
    is_adapter = os.path.isfile(os.path.join(spec, "adapter_config.json"))
    if is_adapter and _adapter_task(spec) == "SEQ_CLS":
        raise ModelLoadError(
            f"policy {spec!r} is a reward model's LoRA adapter (a classifier), not a causal LM's: "
            "pass it as --rm, and a language model as --policy"
        )
    try:
        path = spec if is_adapter else resolve_model_path(spec)
        tokenizer = AutoTokenizer.from_pretrained(path)
        if is_adapter:
            from peft import AutoPeftModelForCausalLM

            # trainable, so `rewardforge rlhf --policy ADAPTER` goes on training the adapter
            model = AutoPeftModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype], is_trainable=True)
        else:
            with quiet_transformers():  # its load report; a missing head is said below
                model, info = AutoModelForCausalLM.from_pretrained(
                    path, dtype=DTYPES[dtype], output_loading_info=True
                )
            if made_afresh(model, info):
                raise ModelLoadError(
                    f"policy {spec!r} has no language-model head in its checkpoint (a reward model or an "
                    "encoder?): it would generate from random weights; pass a causal LM"
                )
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever went wrong, it was loading this policy
        raise ModelLoadError(f"cannot load policy {spec!r}: {load_failure(e)}") from e
    if tokenizer.eos_token is None:  # the model's own end token, as generation would use it
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = eos if eos is not None else getattr(model.config, "eos_token_id", None)
        eos = eos[0] if isinstance(eos, list) and eos else eos
        if isinstance(eos, int) and 0 <= eos < len(tokenizer):
            tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos)
    if tokenizer.eos_token is None:  # nothing would end a reply, and GRPO's masks need it
        raise ModelLoadError(
            f"policy {spec!r}: neither its tokenizer nor its config names an end-of-sequence token, so "
            "no reply it generates could end; give the tokenizer an eos_token (tokenizer_config.json)"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if device:
        model.to(device)
    return model, tokenizer


def _adapter_task(folder: str) -> str | None:
    try:
        config = json.loads(Path(folder, "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config.get("task_type") if isinstance(config, dict) else None


def check_chat_template(tokenizer: Any, spec: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(
            f"the policy {spec!r} has no chat template; prompts are chat messages and the policy's "
            "template renders them (use an instruct/chat model)"
        )


def check_prompt_room(
    tokenizer: Any,
    model: Any,
    records: list[dict[str, Any]],
    new_tokens: int,
    source: str,
    option: str,
    *,
    generation_only: bool = False,
) -> None:
    """Every prompt, in the policy's chat template, leaves room for `new_tokens` within the
    policy's positions: past them a learned position table fails with an IndexError deep in the
    model (GPT-2, OPT) and rotary models generate text they were never trained on.

    Generation never feeds its last token back, so it needs one position fewer than training,
    which runs the whole completion through the policy (`generation_only` for bon)."""
    from rewardforge.commands.checks import usage_error
    from rewardforge.modeling import position_limit

    limit = position_limit(model)
    if limit is None:
        return
    for i, record in enumerate(records, start=1):
        text = tokenizer.apply_chat_template(record["prompt"], add_generation_prompt=True, tokenize=False)
        used = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        needed = used + new_tokens - (1 if generation_only else 0)
        if needed > limit:
            raise usage_error(
                f"{source}: prompt {i} is {used} tokens in the policy's chat template; with {option} "
                f"{new_tokens} that is {needed} positions, more than the policy's {limit}: shorten "
                f"the prompt or lower {option}"
            )


def save_policy(
    model: Any, tokenizer: Any, output_dir: str | os.PathLike, *, adapter_only: bool = False
) -> None:
    """Save a plain HF folder (a LoRA policy merged) or just the adapter. Files are written to a
    staging folder and moved in one by one, so no file is ever half-written under its name."""
    save_hf_folder(model, tokenizer, output_dir, merge_lora=not adapter_only)
