"""Reading rewards out of a sequence classifier, for ordinary and for packed rows.

Decoder classifiers apply their score head to every position and then pick one; we capture
the head's full output with a forward hook and read each sequence's reward at the position we
choose (its last real token), which is what makes shared-prefix rows possible and never
depends on guessing the last token from the pad id. Encoders pool a [CLS] vector: one reward
per row, read from the ordinary logits.
"""

from __future__ import annotations

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


def _head_needs_fp32(head: nn.Module) -> bool:
    """A bf16/fp16 head's output holds about three significant digits, so close rewards of
    different responses come out equal (ties in eval, arbitrary picks in best-of-N). Scoring
    (no gradient) runs the head in fp32 instead; training keeps the precision it was asked for."""
    return not torch.is_grad_enabled() and any(
        p.dtype in (torch.bfloat16, torch.float16) for p in head.parameters()
    )


def _fp32_head(head: nn.Module):
    """A forward hook whose output replaces the head's: the same head on the same input, in fp32."""
    copy = deepcopy(head).float()  # before the hook is registered: the copy has none

    def hook(_module: nn.Module, inputs: tuple, _out: torch.Tensor) -> torch.Tensor:
        with torch.autocast(inputs[0].device.type, enabled=False):
            return copy(inputs[0].float(), *inputs[1:])

    return hook


def chunk_rewards(model: nn.Module, chunk: dict[str, torch.Tensor], *, decoder: bool) -> torch.Tensor:
    """Rewards of every read in one chunk (see rewardforge.packing.collate_chunk), as float32."""
    head = find_head(model)
    fp32 = _fp32_head(head) if _head_needs_fp32(head) else None
    if not decoder:
        handle = head.register_forward_hook(fp32) if fp32 else None
        try:
            out = model(input_ids=chunk["input_ids"], attention_mask=chunk["attention_mask"])
        finally:
            if handle:
                handle.remove()
        return out.logits[chunk["read_row"], 0].float()
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
