"""Reading rewards out of a sequence classifier, for ordinary and for packed rows.

Decoder classifiers apply their score head to every position and then pick one; we capture
the head's full output with a forward hook and read each sequence's reward at the position we
choose (its last real token), which is what makes shared-prefix rows possible and never
depends on guessing the last token from the pad id. Encoders pool a [CLS] vector: one reward
per row, read from the ordinary logits.
"""

from __future__ import annotations

import torch
from torch import nn

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


def chunk_rewards(model: nn.Module, chunk: dict[str, torch.Tensor], *, decoder: bool) -> torch.Tensor:
    """Rewards of every read in one chunk (see rewardforge.packing.collate_chunk), as float32."""
    if not decoder:
        out = model(input_ids=chunk["input_ids"], attention_mask=chunk["attention_mask"])
        return out.logits[chunk["read_row"], 0].float()
    captured: list[torch.Tensor] = []
    handle = find_head(model).register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model(
            input_ids=chunk["input_ids"],
            attention_mask=chunk["attention_mask"],
            position_ids=chunk["position_ids"],
            use_cache=False,
        )
    finally:
        handle.remove()
    per_position = captured[-1]  # [rows, width, 1]
    return per_position[chunk["read_row"], chunk["read_pos"], 0].float()


def gather_rewards(
    model: nn.Module, chunks: list[dict[str, torch.Tensor]], n_items: int, n_sides: int, *, decoder: bool
):
    """Run every chunk and return rewards as [n_items, n_sides] in item order (autograd intact)."""
    values, keys = [], []
    for chunk in chunks:
        values.append(chunk_rewards(model, chunk, decoder=decoder))
        keys.append(chunk["read_index"] * n_sides + chunk["read_side"])
    flat = torch.cat(values)
    order = torch.argsort(torch.cat(keys).to(flat.device))
    return flat[order].view(n_items, n_sides)
