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
    BERT attend both ways) and a model built as backbone + `score` head with position ids.
    """
    if not rm.loaded.is_decoder:
        return "encoder model: its prompt tokens attend to the response"
    model = rm.model
    backbone = getattr(model, str(getattr(model, "base_model_prefix", "")), None)
    if backbone is None or not hasattr(model, "score"):
        return f"{type(model).__name__} is not a backbone + score head"
    return None


class SharedPrefixScorer:
    """Score both responses of a pair in one row that holds their common prompt once.

    A row is `[prefix][chosen suffix][rejected suffix]` where the prefix is the token prefix the
    two sequences share (`prefix_len` of `tokenize_pair`). Position ids restart the rejected
    suffix at the end of the prefix, and a 4-D attention mask lets it see the prefix but not the
    chosen suffix, so each response is computed exactly as in its own sequence; the score head
    reads the last token of each suffix. On implicit-prompt data such as HH-RLHF this skips about
    40% of the tokens. The first batch is checked against plain scoring (`verify`), and the run
    falls back to plain scoring if they disagree.
    """

    def __init__(self, rm: Any):
        self.check: float | None = None  # relative difference found by `verify` (None: not yet run)
        self.error: str | None = None  # why `verify` could not run, if it failed
        self.rm = rm
        self.model = rm.model
        self.backbone = getattr(self.model, self.model.base_model_prefix)
        self.head = self.model.score
        self.device = next(self.model.parameters()).device

    @staticmethod
    def row(chosen: list[int], rejected: list[int], prefix_len: int) -> tuple[list[int], list[int], int]:
        """(token ids, position ids, start of the chosen suffix); each suffix keeps >= 1 token."""
        k = max(0, min(prefix_len, len(chosen) - 1, len(rejected) - 1))
        ids = chosen + rejected[k:]
        pos = list(range(len(chosen))) + list(range(k, len(rejected)))
        return ids, pos, k

    def score_rows(self, rows: list[tuple[list[int], list[int], int]], n_chosen: list[int]) -> np.ndarray:
        """(len(rows), 2) scores of (chosen, rejected) for a batch of rows."""
        import torch

        size = max(len(ids) for ids, _, _ in rows)
        b = len(rows)
        pad = self.rm.tokenizer.pad_token_id or 0
        input_ids = torch.full((b, size), pad, dtype=torch.long)
        position_ids = torch.zeros((b, size), dtype=torch.long)
        causal = torch.ones((size, size), dtype=torch.bool).tril_()
        mask = causal.expand(b, 1, size, size).clone()
        ends = torch.zeros((b, 2), dtype=torch.long)
        for i, ((ids, pos, k), c_len) in enumerate(zip(rows, n_chosen)):
            n = len(ids)
            input_ids[i, :n] = torch.tensor(ids)
            position_ids[i, :n] = torch.tensor(pos)
            mask[i, 0, c_len:, k:c_len] = False  # the rejected suffix does not see the chosen one
            mask[i, 0, n:, :n] = False  # padding sees only itself (no fully masked row)
            ends[i] = torch.tensor([c_len - 1, n - 1])
        with torch.no_grad():
            hidden = self.backbone(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=position_ids.to(self.device),
                use_cache=False,
            ).last_hidden_state
            picked = hidden[torch.arange(b, device=self.device)[:, None], ends.to(self.device)]
            logits = self.head(picked).squeeze(-1).float()
        return logits.cpu().numpy().astype(np.float64)

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
        rows = [self.row(c, r, k) for c, r, k in zip(chosen_ids, rejected_ids, prefix_lens)]
        order = sorted(range(n), key=lambda i: len(rows[i][0]))
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
                out[idx] = self.score_rows([rows[i] for i in idx], [len(chosen_ids[i]) for i in idx])
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
