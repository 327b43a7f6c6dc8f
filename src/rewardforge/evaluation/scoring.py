"""Running a reward model over many token sequences or pairs, fast.

* `score_sequences`: separate sequences, each distinct one once, in length-sorted batches through
  `RewardModel.score_token_ids` (any model).
* `SharedPrefixScorer`: decoder models score a pair as one row `[shared prefix][chosen][rejected]`
  with a 4-D attention mask, so the prompt runs once per pair (checked against plain scoring).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def score_sequences(
    rm: Any, seqs: list[list[int]], *, batch_size: int, desc: str = "score", progress: bool = True
) -> np.ndarray:
    """Scores of token sequences in input order; each distinct sequence is run once.

    Sequences are sorted by length over the whole set and fed in sorted chunks to
    `score_token_ids` (which batches them in that order), so batches pad little; the chunks
    only drive the progress bar.
    """
    from tqdm.auto import tqdm

    where: dict[tuple[int, ...], int] = {}
    unique: list[list[int]] = []
    index = np.empty(len(seqs), dtype=np.int64)
    for i, s in enumerate(seqs):
        key = tuple(s)
        j = where.get(key)
        if j is None:
            j = where[key] = len(unique)
            unique.append(s)
        index[i] = j
    order = sorted(range(len(unique)), key=lambda i: len(unique[i]))
    scores = np.empty(len(unique), dtype=np.float64)
    chunk = batch_size * 4
    with tqdm(
        total=len(unique),
        desc=desc,
        unit="seq",
        disable=(not progress) or len(unique) < 2 * chunk,
        mininterval=1.0,
        file=sys.stderr,
    ) as bar:
        for start in range(0, len(order), chunk):
            idx = order[start : start + chunk]
            scores[idx] = rm.score_token_ids([unique[i] for i in idx], batch_size=batch_size)
            bar.update(len(idx))
    return scores[index]


def prefix_sharing_unsupported(rm: Any) -> str | None:
    """Why a model cannot share the prompt between the two responses of a pair, or None if it can.

    Sharing needs causal attention (a prompt token must not see the responses: encoders such as
    BERT attend both ways) and a score head whose per-position output can be read.
    """
    from rewardforge.rewards import find_head

    if not rm.loaded.is_decoder:
        return "encoder model: its prompt tokens attend to the response"
    try:
        find_head(rm.model)
    except ValueError as e:
        return str(e)
    return None


class SharedPrefixScorer:
    """Score both responses of a pair in one row that holds their common prompt once.

    The rows are the training rows (`rewardforge.packing.shared_prefix_row`: position ids of the
    rejected response restart after the prompt, a 4-D mask keeps it from seeing the chosen one)
    and the rewards are read the training way (`rewardforge.rewards.gather_rewards`). The first
    batch is checked against plain scoring (`verify`), and the run falls back to plain scoring
    if they disagree.
    """

    def __init__(self, rm: Any):
        self.check: float | None = None  # relative difference found by `verify` (None: not yet run)
        self.error: str | None = None  # why `verify` could not run, if it failed
        self.rm = rm

    def score_rows(self, features: list[dict[str, Any]]) -> np.ndarray:
        """(len(features), 2) scores of (chosen, rejected) for one batch of tokenized pairs."""
        import torch

        from rewardforge.rewards import gather_rewards
        from rewardforge.training.collator import PairCollator

        batch = PairCollator(
            self.rm.tokenizer.pad_token_id,
            share_prefix=True,
            pad_to_multiple_of=self.rm.pad_to_multiple_of,
            packed=self.rm.loaded.packed,
        )(features)
        chunks = [{k: v.to(self.rm.device) for k, v in c.items()} for c in batch["chunks"]]
        with torch.no_grad():
            rewards = gather_rewards(self.rm.model, chunks, len(features), 2, decoder=True)
        return rewards.cpu().numpy().astype(np.float64)

    def score(
        self,
        chosen_ids: list[list[int]],
        rejected_ids: list[list[int]],
        prefix_lens: list[int],
        *,
        batch_size: int,
        desc: str = "score",
        progress: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        from tqdm.auto import tqdm

        n = len(chosen_ids)
        feats = [
            {"chosen_ids": c, "rejected_ids": r, "prefix_len": k}
            for c, r, k in zip(chosen_ids, rejected_ids, prefix_lens)
        ]
        order = sorted(range(n), key=lambda i: len(chosen_ids[i]) + len(rejected_ids[i]) - prefix_lens[i])
        per_batch = max(1, batch_size // 2)  # a row holds about two sequences' worth of work
        out = np.empty((n, 2), dtype=np.float64)
        with tqdm(
            total=n,
            desc=desc,
            unit="pair",
            disable=(not progress) or n < 8 * per_batch,
            mininterval=1.0,
            file=sys.stderr,
        ) as bar:
            for start in range(0, n, per_batch):
                idx = order[start : start + per_batch]
                out[idx] = self.score_rows([{**feats[i], "index": j} for j, i in enumerate(idx)])
                bar.update(len(idx))
        # A pair whose two sequences are the same tokens is an exact tie, whatever the rounding.
        for i in range(n):
            if chosen_ids[i] == rejected_ids[i]:
                out[i, 1] = out[i, 0]
        return out[:, 0], out[:, 1]

    def verify(
        self, chosen_ids: list[list[int]], rejected_ids: list[list[int]], prefix_lens: list[int], k: int = 4
    ) -> float:
        """Largest |shared - plain| score difference on the `k` pairs with the longest shared prefix."""
        idx = sorted(range(len(chosen_ids)), key=lambda i: -prefix_lens[i])[:k]
        c, r, p = ([x[i] for i in idx] for x in (chosen_ids, rejected_ids, prefix_lens))
        shared_c, shared_r = self.score(c, r, p, batch_size=2 * len(idx), progress=False)
        plain = np.asarray(self.rm.score_token_ids(c + r, batch_size=len(idx)), dtype=np.float64)
        scale = max(1.0, float(np.max(np.abs(plain))))
        return float(np.max(np.abs(np.concatenate([shared_c, shared_r]) - plain))) / scale


SHARE_TOLERANCE = 1e-3  # relative to max(1, |score|): far above fp32 rounding, far below a real bug
