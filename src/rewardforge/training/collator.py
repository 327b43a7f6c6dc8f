"""Batches of tokenized pairs for the trainer: chosen rows first, then rejected rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from rewardforge.packing import Row, collate_group, group_rows, plain_row, shared_prefix_row


class PairDataset(Dataset):
    """Tokenized pairs as plain dicts; `index` lets evaluation map scores back to pairs."""

    def __init__(self, items: list[dict[str, Any]]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


@dataclass
class PairCollator:
    """Turns tokenized pairs into chunks for `rewardforge.rewards.gather_rewards`.

    `share_prefix` (decoders): one row per pair, the prompt computed once. Otherwise two rows per
    pair, kept in the same chunk. Rows are grouped by length under `max_tokens_per_batch` to keep
    padding small; every chunk holds whole pairs, so its loss can be back-propagated on its own.
    `packed` (decoders with rewardforge.attention): each chunk is one row with no padding.
    """

    pad_token_id: int
    share_prefix: bool = False
    max_tokens_per_batch: int | None = None
    pad_to_multiple_of: int = 1  # packing.pad_multiple(bf16)
    packed: bool = False

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        units: list[Row | list[Row]] = []
        for j, f in enumerate(features):
            chosen, rejected = list(f["chosen_ids"]), list(f["rejected_ids"])  # (kept as compact arrays)
            if self.share_prefix:
                units.append(shared_prefix_row(f["prefix_len"], [chosen, rejected], [(j, 0), (j, 1)]))
            else:
                units.append([plain_row(chosen, j, 0), plain_row(rejected, j, 1)])
        chunks = [
            collate_group(
                group, self.pad_token_id, packed=self.packed, pad_to_multiple_of=self.pad_to_multiple_of
            )
            for group in group_rows(units, self.max_tokens_per_batch, packed=self.packed)
        ]
        batch: dict[str, Any] = {
            "chunks": chunks,
            "pair_index": torch.tensor([f["index"] for f in features], dtype=torch.long),
            "pair_tokens": torch.tensor(
                [len(f["chosen_ids"]) + len(f["rejected_ids"]) for f in features]
            ).sum(),
        }
        margins = [f.get("margin") for f in features]
        if any(m is not None for m in margins):
            batch["margin"] = torch.tensor([m or 0.0 for m in margins], dtype=torch.float32)
        return batch
