"""Batches of tokenized pairs for the trainer: chosen rows first, then rejected rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset


class PairDataset(Dataset):
    """Tokenized pairs as plain dicts; `index` lets evaluation map scores back to pairs."""

    def __init__(self, items: list[dict[str, Any]]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def pad_sequences(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence of this batch (never to max_length)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


@dataclass
class PairCollator:
    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        seqs = [f["chosen_ids"] for f in features] + [f["rejected_ids"] for f in features]
        input_ids, attention_mask = pad_sequences(seqs, self.pad_token_id)
        margins = [f.get("margin") for f in features]
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pair_index": torch.tensor([f["index"] for f in features], dtype=torch.long),
        }
        if any(m is not None for m in margins):
            batch["margin"] = torch.tensor([m or 0.0 for m in margins], dtype=torch.float32)
        return batch
