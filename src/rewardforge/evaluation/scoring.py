"""Running a reward model over many token sequences or pairs, fast.

* `score_sequences`: separate sequences, each distinct one once, in length-sorted batches through
  `RewardModel.score_token_ids` (any model).
* `SharedPrefixScorer`: decoder models score a pair as one row `[shared prefix][chosen][rejected]`
  with a 4-D attention mask, so the prompt runs once per pair (checked against plain scoring).
* `score_pairs`: every pair tokenized with training's truncation rule, then scored by one of
  the two (a pair whose two sequences are the same tokens is an exact tie).
"""

from __future__ import annotations

import math
import sys
import time
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

from rewardforge.data.types import PreferencePair
from rewardforge.evaluation.inputs import usage_error


def score_sequences(
    rm: Any, seqs: list[list[int]], *, batch_size: int, desc: str = "score", progress: bool = True
) -> np.ndarray:
    """Scores of token sequences in input order; each distinct sequence is run once.

    Sequences are sorted by length over the whole set and fed in sorted chunks to
    `score_token_ids` (which batches them in that order), so batches pad little; the chunks
    only drive the progress bar.
    """
    from tqdm.auto import tqdm

    where: dict[bytes | tuple[int, ...], int] = {}
    unique: list[list[int]] = []
    index = np.empty(len(seqs), dtype=np.int64)
    for i, s in enumerate(seqs):
        key = s.tobytes() if isinstance(s, array) else tuple(s)  # 4 bytes a token, not 8 + an int
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
    if not rm.loaded.shares_prefix:
        return "sliding-window or softcapped attention: a shared row's mask would not keep it"
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


@dataclass
class PairScores:
    chosen: np.ndarray
    rejected: np.ndarray
    prompt_truncated: np.ndarray  # bool per pair
    response_truncated: np.ndarray
    identical: np.ndarray
    chosen_ids: list[array] | None = None  # int32 token ids per pair (with keep_ids)
    rejected_ids: list[array] | None = None
    seconds_tokenize: float = 0.0
    seconds_score: float = 0.0
    method: str = "separate sequences"
    tokens_run: int = 0  # tokens the model actually ran (shared prefixes and repeats once)
    tokens_total: int = 0  # tokens of all chosen and rejected sequences


def score_pairs(
    rm: Any,
    pairs: list[PreferencePair],
    *,
    batch_size: int,
    desc: str = "score",
    progress: bool = True,
    keep_ids: bool = False,
    sharer: SharedPrefixScorer | None = None,
) -> PairScores:
    """Tokenize every pair with `tokenize_pair`, then score all of them in length-sorted batches:
    as rows sharing the prompt when `sharer` is given (and its check passed), else as separate
    sequences through `score_token_ids`."""
    from tqdm.auto import tqdm

    from rewardforge.formatting import TemplateRefused
    from rewardforge.tokenization import tokenize_pair

    t0 = time.perf_counter()
    chosen_ids: list[array] = []
    rejected_ids: list[array] = []
    prefix_lens: list[int] = []
    flags = np.zeros((3, len(pairs)), dtype=bool)
    bar = tqdm(  # tokenizing can take longer than scoring (a third of eval's time at 50k pairs)
        pairs,
        desc="tokenize",
        unit="pair",
        disable=(not progress) or len(pairs) < 1000,
        mininterval=1.0,
        file=sys.stderr,
    )
    for i, pair in enumerate(bar):
        try:
            tok = tokenize_pair(rm.tokenizer, rm.text_format, pair, rm.max_length)
        except TemplateRefused as exc:
            raise usage_error(f"{pair.source or f'pair {i + 1}'}: {exc}") from None
        # as int32 arrays, as training keeps them: a list costs 36 bytes a token (eval of 50k
        # pairs took 1.4 GB), and only the batches being scored need lists
        chosen_ids.append(array("i", tok.chosen_ids))
        rejected_ids.append(array("i", tok.rejected_ids))
        prefix_lens.append(tok.prefix_len)
        flags[:, i] = (tok.prompt_truncated, tok.response_truncated, tok.identical)
    t1 = time.perf_counter()
    n = len(pairs)
    if sharer is not None and sharer.check is None:
        try:
            sharer.check = sharer.verify(chosen_ids, rejected_ids, prefix_lens)
        except Exception as e:  # noqa: BLE001 - an architecture that refuses the 4-D mask: go plain
            sharer.check, sharer.error = math.inf, f"{type(e).__name__}: {e}"
    if sharer is not None and sharer.check <= SHARE_TOLERANCE:
        sc, sr = sharer.score(
            chosen_ids, rejected_ids, prefix_lens, batch_size=batch_size, desc=desc, progress=progress
        )
        scores = np.concatenate([sc, sr])
        method = "shared prefix"
        tokens = sum(
            len(c) + len(r) - min(k, len(c) - 1, len(r) - 1)
            for c, r, k in zip(chosen_ids, rejected_ids, prefix_lens)
        )
    else:
        seqs = chosen_ids + rejected_ids
        scores = score_sequences(rm, seqs, batch_size=batch_size, desc=desc, progress=progress)
        method = "separate sequences"
        tokens = sum({s.tobytes(): len(s) for s in seqs}.values())
    t2 = time.perf_counter()
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        from rewardforge.modeling import ModelLoadError

        i = int(bad[0]) % n
        raise ModelLoadError(
            f"the model gave {bad.size} non-finite score(s) (first: pair {i}, id {pairs[i].id!r}); "
            "its weights may be broken or the dtype too narrow (try --dtype fp32)"
        )
    return PairScores(
        chosen=scores[:n],
        rejected=scores[n:],
        prompt_truncated=flags[0],
        response_truncated=flags[1],
        identical=flags[2],
        chosen_ids=chosen_ids if keep_ids else None,
        rejected_ids=rejected_ids if keep_ids else None,
        seconds_tokenize=t1 - t0,
        seconds_score=t2 - t1,
        method=method,
        tokens_run=int(tokens),
        tokens_total=int(sum(len(s) for s in chosen_ids + rejected_ids)),
    )
