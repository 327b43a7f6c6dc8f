"""The figures of one model on one data set: `pair_metrics` plus length buckets, truncation
counts, the worst pairs and per-record accuracy; with diagnostics, the swapped-pair check and
exact sign tests against chance and the length baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

from rewardforge.data.types import PreferencePair
from rewardforge.evaluation.metrics import (
    accuracy_by_length_bucket,
    most_confidently_wrong,
    pair_metrics,
    pair_outcomes,
    paired_sign_test,
)
from rewardforge.evaluation.scoring import PairScores, SharedPrefixScorer, score_pairs

UNCATEGORIZED = "uncategorized"
LENGTH_UNIT = "characters"
WRONG_SHOWN = 10
SIGNIFICANCE = 0.025  # one-sided: the lower edge of a 95% interval


def response_lengths(pairs: list[PreferencePair]) -> tuple[np.ndarray, np.ndarray]:
    """Lengths of the chosen and rejected responses in characters (model-independent, so the
    length baseline and the buckets are the same for every model)."""
    lc = np.array([len(p.chosen_text) for p in pairs], dtype=np.float64)
    lr = np.array([len(p.rejected_text) for p in pairs], dtype=np.float64)
    return lc, lr


def pair_categories(pairs: list[PreferencePair]) -> list[str] | None:
    """Each pair's category; pairs with none share a label no real category has (a category the
    data calls "uncategorized" is not merged with them)."""
    named = {str(p.category) for p in pairs if p.category is not None}
    if not named:
        return None
    none = UNCATEGORIZED
    while none in named:
        none = f"({none})"
    return [none if p.category is None else str(p.category) for p in pairs]


def compute_metrics(
    pairs: list[PreferencePair],
    scores: PairScores,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    n_buckets: int = 5,
    beta: float = 1.0,
) -> dict[str, Any]:
    """`pair_metrics` plus accuracy by length bucket, truncation counts and the worst pairs."""
    lc, lr = response_lengths(pairs)
    sc, sr = scores.chosen, scores.rejected
    m = pair_metrics(
        sc,
        sr,
        categories=pair_categories(pairs),
        len_chosen=lc,
        len_rejected=lr,
        n_bootstrap=n_bootstrap,
        seed=seed,
        beta=beta,
    )
    m["length_unit"] = LENGTH_UNIT
    m["accuracy_by_length_bucket"] = accuracy_by_length_bucket(sc, sr, lc, lr, n_buckets=n_buckets)
    m["truncation"] = {
        "prompt_truncated": int(scores.prompt_truncated.sum()),
        "response_truncated": int(scores.response_truncated.sum()),
        "identical_after_truncation": int(scores.identical.sum()),
    }
    m["most_confidently_wrong"] = [
        {"index": i, "id": pairs[i].id, "margin": float(sc[i] - sr[i])}
        for i in most_confidently_wrong(sc, sr, k=WRONG_SHOWN)
    ]
    per_record = record_accuracy(pairs, sc, sr)
    if per_record is not None:
        m["record_accuracy"] = per_record
    return m


def record_accuracy(
    pairs: list[PreferencePair], chosen: np.ndarray, rejected: np.ndarray
) -> dict[str, Any] | None:
    """For data whose records give several pairs (RewardBench 2's one chosen vs three rejected,
    HelpSteer3's answers): the share of records whose every pair is ranked right, ties wrong.
    That is RewardBench 2's own score. None when every record gave one pair."""
    groups: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        groups.setdefault(pair.source or f"pair {i}", []).append(i)
    if all(len(g) == 1 for g in groups.values()):
        return None
    right = sum(all(chosen[i] > rejected[i] for i in g) for g in groups.values())
    return {
        "records": len(groups),
        "accuracy": right / len(groups),
        "records_with_several_pairs": sum(len(g) > 1 for g in groups.values()),
    }


def _counts(chosen: np.ndarray, rejected: np.ndarray) -> tuple[int, int]:
    return int(np.count_nonzero(chosen > rejected)), int(np.count_nonzero(chosen == rejected))


def swap_diagnostic(
    rm: Any,
    pairs: list[PreferencePair],
    scores: PairScores,
    *,
    batch_size: int,
    progress: bool = True,
    sharer: SharedPrefixScorer | None = None,
) -> dict[str, Any]:
    """Score every pair again with chosen and rejected exchanged, running the model for real.

    A reward model scores each (prompt, response) on its own, so the swapped accuracy must be
    exactly `1 - accuracy` (ties count half either way). `mirrors` checks that on the integer
    counts; `max_abs_score_diff` is the largest difference between a response's score in the
    swapped run and in the original one (0.0 when scoring is order-independent and
    deterministic), and `same_tokens` whether the swapped tokenization gave the same sequences.
    """
    swapped = [
        PreferencePair(prompt=p.prompt, chosen=p.rejected, rejected=p.chosen, id=p.id, category=p.category)
        for p in pairs
    ]
    sw = score_pairs(
        rm,
        swapped,
        batch_size=batch_size,
        desc="score swapped",
        progress=progress,
        keep_ids=True,
        sharer=sharer,
    )
    n = len(pairs)
    correct, ties = _counts(scores.chosen, scores.rejected)
    correct_s, ties_s = _counts(sw.chosen, sw.rejected)
    mirrors = (2 * correct_s + ties_s) == 2 * n - (2 * correct + ties) and ties_s == ties
    diff = max(
        float(np.max(np.abs(sw.chosen - scores.rejected))),
        float(np.max(np.abs(sw.rejected - scores.chosen))),
    )
    same_tokens = None
    if scores.chosen_ids is not None and sw.chosen_ids is not None and sw.rejected_ids is not None:
        same_tokens = sw.chosen_ids == scores.rejected_ids and sw.rejected_ids == scores.chosen_ids
    return {
        "scored_for_real": True,
        "accuracy": (2 * correct + ties) / (2 * n),
        "accuracy_swapped": (2 * correct_s + ties_s) / (2 * n),
        "accuracy_swapped_expected": (2 * n - (2 * correct + ties)) / (2 * n),
        "ties": ties,
        "ties_swapped": ties_s,
        "mirrors": bool(mirrors),
        "max_abs_score_diff": diff,
        "same_tokens": same_tokens,
        "seconds": sw.seconds_tokenize + sw.seconds_score,
    }


def diagnostics(
    metrics: dict[str, Any], swap: dict[str, Any], scores: PairScores, pairs: list[PreferencePair]
):
    """Shortcut checks: does the model beat "the longer response wins" and chance? Each claim is
    an exact one-sided sign test at the 2.5% level (the lower edge of a 95% interval): a handful
    of right pairs is no evidence, however perfect."""
    acc = metrics["accuracy"]
    base = metrics.get("length_baseline_accuracy")
    model = pair_outcomes(scores.chosen, scores.rejected)
    chance = paired_sign_test(model, np.full_like(model, 0.5))
    out: dict[str, Any] = {
        "length_baseline_accuracy": base,
        "length_baseline_unit": LENGTH_UNIT,
        "accuracy_minus_length_baseline": None if base is None else acc - base,
        "beats_length_baseline": None,
        "length_baseline_test": None,
        "beats_chance": chance["p_value"] < SIGNIFICANCE,
        "chance_test": chance,
        "swap": swap,
    }
    if base is not None:
        lc, lr = response_lengths(pairs)
        versus_length = paired_sign_test(model, pair_outcomes(lc, lr))
        out["beats_length_baseline"] = versus_length["p_value"] < SIGNIFICANCE
        out["length_baseline_test"] = versus_length
    return out
