"""Reading rewards out of a sequence classifier, for ordinary and for packed rows.

Decoder classifiers apply their score head to every position and then pick one; we capture
the head's full output with a forward hook and read each sequence's reward at the position we
choose (its last real token), which is what makes shared-prefix rows possible and never
depends on guessing the last token from the pad id. Encoders pool a [CLS] vector: one reward
per row, read from the ordinary logits.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from copy import deepcopy

import torch
from torch import nn

from rewardforge.attention import span_plan
from rewardforge.modeling import HEAD_NAMES


def find_head(model: nn.Module) -> nn.Module:
    """The outermost score head (a PEFT ModulesToSaveWrapper when LoRA is on)."""
    best: tuple[int, nn.Module] | None = None
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in HEAD_NAMES:
            depth = name.count(".")
            if best is None or depth < best[0]:
                best = (depth, module)
    if best is None:
        raise ValueError(f"no score head ({', '.join(HEAD_NAMES)}) found in {type(model).__name__}")
    return best[1]


# each half-precision head's fp32 copy, with the weights it was copied from (a model trained on
# between evaluations is copied again)
_FP32_HEADS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, nn.Module]] = weakref.WeakKeyDictionary()


def _fp32_hook(head: nn.Module) -> Callable | None:
    """A forward hook whose output replaces a bf16/fp16 head's: the same head on the same input,
    in fp32 (None for an fp32 head). A half-precision head's output holds about three significant
    digits, so close rewards of different responses came out equal (ties in eval, arbitrary picks
    in best-of-N). Only for scoring: training keeps the precision it was asked for."""
    weights = list(head.parameters())
    if not any(p.dtype in (torch.bfloat16, torch.float16) for p in weights):
        return None
    version = tuple((p.data_ptr(), p._version) for p in weights)
    cached = _FP32_HEADS.get(head)
    if cached is None or cached[0] != version:
        cached = _FP32_HEADS[head] = (version, deepcopy(head).float())  # (before any hook is on it)
    copy = cached[1]

    def hook(_module: nn.Module, inputs: tuple, _out: torch.Tensor) -> torch.Tensor:
        with torch.autocast(inputs[0].device.type, enabled=False):
            return copy(inputs[0].float(), *inputs[1:])

    return hook


def chunk_rewards(model: nn.Module, chunk: dict[str, torch.Tensor], *, decoder: bool) -> torch.Tensor:
    """Rewards of every read in one chunk (see rewardforge.packing.collate_chunk), as float32."""
    scoring = not torch.is_grad_enabled()
    if not decoder:
        fp32 = _fp32_hook(head := find_head(model)) if scoring else None  # (training: no head search)
        handle = head.register_forward_hook(fp32) if fp32 else None
        try:
            out = model(input_ids=chunk["input_ids"], attention_mask=chunk["attention_mask"])
        finally:
            if handle:
                handle.remove()
        return out.logits[chunk["read_row"], 0].float()
    head = find_head(model)
    fp32 = _fp32_hook(head) if scoring else None
    captured: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda m, i, out: captured.append(fp32(m, i, out) if fp32 else out))
    try:
        # a packed chunk is one row whose spans rewardforge.attention reads; others carry a mask
        layout = (
            {"packed_spans": span_plan(chunk["packed_spans"], chunk["input_ids"].device)}
            if "packed_spans" in chunk
            else {"attention_mask": chunk["attention_mask"]}
        )
        model(input_ids=chunk["input_ids"], position_ids=chunk["position_ids"], use_cache=False, **layout)
    finally:
        handle.remove()
    per_position = captured[-1]  # [rows, width, 1]
    return per_position[chunk["read_row"], chunk["read_pos"], 0].float()


def chunk_item_rewards(
    model: nn.Module, chunk: dict[str, torch.Tensor], n_sides: int, *, decoder: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one chunk; return (items, rewards [len(items), n_sides]) for the items it holds.

    Every side of each item must be in this chunk (the collators keep a pair's rows together),
    which is what lets a trainer compute and back-propagate the loss chunk by chunk."""
    values = chunk_rewards(model, chunk, decoder=decoder)
    index = chunk["read_index"].to(values.device)
    side = chunk["read_side"].to(values.device)
    items, local = torch.unique(index, sorted=True, return_inverse=True)
    if items.numel() * n_sides != values.numel():
        raise ValueError("a chunk must hold every side of each of its items")
    rewards = values.new_zeros(items.numel(), n_sides).index_put((local, side), values)
    return items, rewards


def gather_rewards(
    model: nn.Module, chunks: list[dict[str, torch.Tensor]], n_items: int, n_sides: int, *, decoder: bool
):
    """Run every chunk and return rewards as [n_items, n_sides] in item order (autograd intact)."""
    items, rewards = zip(*(chunk_item_rewards(model, c, n_sides, decoder=decoder) for c in chunks))
    flat_items = torch.cat(items)
    if flat_items.numel() != n_items:
        raise ValueError(f"chunks hold {flat_items.numel()} items, expected {n_items}")
    return torch.cat(rewards)[torch.argsort(flat_items)]
