"""Pairwise-preference evaluation metrics: numpy arrays in, a plain JSON-serialisable dict out.

This one module is used both by evaluation during training and by ``rewardforge eval``, so
every function here is pure (no I/O, no global state; randomness only through an explicit
seed) and returns only plain Python ``int``/``float``/``str``/``bool``/``None``/``list``/``dict``
values. No NaN or infinity is ever returned for a statistic: where a quantity is undefined
(an empty subset, a correlation with zero variance) the value is ``None``.

Conventions shared by every function:

* ``score_chosen[i]`` and ``score_rejected[i]`` are the reward model's scores for the two
  completions of pair ``i``; ``margin = score_chosen - score_rejected``.
* A pair is *correct* when ``score_chosen > score_rejected``, *wrong* when ``<`` and a *tie*
  when the two float scores are exactly equal (no tolerance). Accuracy counts a tie as half:
  ``accuracy = (correct + ties / 2) / pairs``, computed as ``(2 * correct + ties) / (2 * pairs)``
  so it is rounded once.
* Scores and lengths must be finite, 1-D and of equal length; at least one pair is required.
  Anything else raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "accuracy_by_length_bucket",
    "format_table",
    "most_confidently_wrong",
    "pair_metrics",
    "preference_probability",
    "swap_check",
]


# --------------------------------------------------------------------------- helpers


def _as_vector(values: Any, name: str, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a sequence of numbers ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} values (one per pair), got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name}: value at index {bad} is not finite ({arr[bad]})")
    return arr


def _scores(score_chosen: Any, score_rejected: Any) -> tuple[np.ndarray, np.ndarray]:
    chosen = _as_vector(score_chosen, "score_chosen")
    if chosen.shape[0] == 0:
        raise ValueError("score_chosen: no pairs to evaluate")
    rejected = _as_vector(score_rejected, "score_rejected", chosen.shape[0])
    return chosen, rejected


def _counts(chosen: np.ndarray, rejected: np.ndarray) -> tuple[int, int, int]:
    """(correct, ties, wrong) with exact float comparisons."""
    correct = int(np.count_nonzero(chosen > rejected))
    ties = int(np.count_nonzero(chosen == rejected))
    return correct, ties, int(chosen.shape[0]) - correct - ties


def _accuracy(correct: int, ties: int, pairs: int) -> float | None:
    if pairs == 0:
        return None
    return (2 * correct + ties) / (2 * pairs)


def _subset_accuracy(chosen: np.ndarray, rejected: np.ndarray, mask: np.ndarray) -> float | None:
    correct, ties, _ = _counts(chosen[mask], rejected[mask])
    return _accuracy(correct, ties, int(np.count_nonzero(mask)))


def preference_probability(difference: float, beta: float = 1.0) -> float:
    """P(one response preferred over another) = sigmoid(beta * difference) under the
    Bradley-Terry model, without overflow for large differences."""
    x = beta * difference
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (no overflow warnings for large |x|)."""
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation, or None when either side is constant (zero variance)."""
    if x.shape[0] < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    dx = x - x.mean()
    dy = y - y.mean()
    denom = math.sqrt(float(np.dot(dx, dx))) * math.sqrt(float(np.dot(dy, dy)))
    if denom == 0.0:  # variance underflowed to zero: treat as constant
        return None
    return float(min(1.0, max(-1.0, float(np.dot(dx, dy)) / denom)))


def _auroc(chosen: np.ndarray, rejected: np.ndarray) -> float | None:
    """P(chosen score > rejected score) over all chosen x rejected cross pairs, ties as 1/2.

    This is the Mann-Whitney U statistic divided by n1 * n0. The rank of each chosen score
    among the rejected scores is found with a binary search in the sorted rejected scores
    (O(n log n)): ``left`` = number of rejected scores strictly below, ``right`` = number
    at or below, so ``left + right`` = 2 * (below + ties / 2). Summed in integers, then
    divided once, so the value is exact up to the final rounding.
    """
    n1, n0 = chosen.shape[0], rejected.shape[0]
    if n1 == 0 or n0 == 0:
        return None
    sorted_rejected = np.sort(rejected)
    left = np.searchsorted(sorted_rejected, chosen, side="left").astype(np.int64)
    right = np.searchsorted(sorted_rejected, chosen, side="right").astype(np.int64)
    twice_u = int(left.sum()) + int(right.sum())
    return twice_u / (2 * n1 * n0)


def _calibration(margin: np.ndarray, n_bins: int) -> tuple[float, list[dict[str, Any]]]:
    """Symmetrized ECE and reliability bins; see ``pair_metrics`` for the definition."""
    n = margin.shape[0]
    confidence = _sigmoid(np.abs(margin))  # p' = max(p, 1 - p) with p = sigmoid(margin)
    label = np.where(margin > 0, 1.0, np.where(margin < 0, 0.0, 0.5))
    confidence[margin == 0] = 0.5
    edges = 0.5 + 0.5 * np.arange(n_bins + 1, dtype=np.float64) / n_bins
    edges[-1] = 1.0
    # Bin i is [edges[i], edges[i+1]); the last bin also includes 1.0.
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    ece = 0.0
    bins: list[dict[str, Any]] = []
    for i in range(n_bins):
        in_bin = index == i
        count = int(np.count_nonzero(in_bin))
        lo, hi = float(edges[i]), float(edges[i + 1])
        if count == 0:
            bins.append({"lo": lo, "hi": hi, "count": 0, "confidence": None, "accuracy": None})
            continue
        conf_sum = float(confidence[in_bin].sum())
        label_sum = float(label[in_bin].sum())
        # (count / n) * |mean label - mean conf| == |label_sum - conf_sum| / n
        ece += abs(label_sum - conf_sum) / n
        bins.append(
            {
                "lo": lo,
                "hi": hi,
                "count": count,
                "confidence": conf_sum / count,
                "accuracy": label_sum / count,
            }
        )
    return float(ece), bins


def _bootstrap_ci(correct: int, ties: int, pairs: int, n_bootstrap: int, seed: int) -> list[float] | None:
    """95% percentile-bootstrap interval of the accuracy, resampling pairs with replacement.

    Accuracy depends on a resample only through how many correct / tied / wrong pairs it
    holds, and those counts are exactly Multinomial(pairs, observed proportions) under
    resampling with replacement. Drawing the counts directly is therefore the same
    bootstrap distribution as drawing ``pairs`` indices per replicate, in O(n_bootstrap)
    time and memory whatever the number of pairs.
    """
    if n_bootstrap == 0:
        return None
    rng = np.random.default_rng(seed)
    wrong = pairs - correct - ties
    pvals = np.array([correct, ties, wrong], dtype=np.float64) / pairs
    draws = rng.multinomial(pairs, pvals, size=n_bootstrap)
    accs = (2 * draws[:, 0] + draws[:, 1]) / (2 * pairs)
    lo, hi = np.percentile(accs, [2.5, 97.5])
    return [float(lo), float(hi)]


def sign_test_p(wins: int, losses: int) -> float:
    """One-sided exact sign test: the chance of `wins` or more wins in `wins + losses` fair coin
    flips. Unlike a percentile bootstrap, whose interval has no width when every pair is right,
    it cannot call one right pair out of one evidence (p = 0.5)."""
    n = wins + losses
    if wins <= 0:
        return 1.0
    k = np.arange(wins, n + 1)
    log_terms = (
        math.lgamma(n + 1)
        - np.array([math.lgamma(i + 1) + math.lgamma(n - i + 1) for i in k])
        - n * math.log(2)
    )
    return float(min(1.0, np.exp(np.logaddexp.reduce(log_terms))))


def paired_sign_test(better: np.ndarray, worse: np.ndarray) -> dict[str, Any]:
    """Does one per-pair outcome (1 right, 0.5 tie, 0 wrong) beat another on the same pairs?
    Pairs where both agree carry no evidence and are left out; of the rest, those where
    `better` does better are wins. Returns the counts and the one-sided p value."""
    diff = np.asarray(better, dtype=np.float64) - np.asarray(worse, dtype=np.float64)
    wins, losses = int(np.count_nonzero(diff > 0)), int(np.count_nonzero(diff < 0))
    return {"wins": wins, "losses": losses, "p_value": sign_test_p(wins, losses)}


def pair_outcomes(first: Any, second: Any) -> np.ndarray:
    """Per pair: 1 when `first` is higher, 0.5 when equal, 0 when lower."""
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))


# --------------------------------------------------------------------------- public API


def pair_metrics(
    score_chosen: Any,
    score_rejected: Any,
    *,
    categories: Sequence[Hashable] | None = None,
    len_chosen: Any = None,
    len_rejected: Any = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    n_bins: int = 10,
    beta: float = 1.0,
) -> dict[str, Any]:
    """All pairwise metrics for one evaluation set, as a plain JSON-serialisable dict.

    ``beta`` is the loss's beta the model was trained with: its preference probability is
    ``sigmoid(beta * margin)``, which ``bt_log_loss``, ``ece`` and ``reliability`` read.

    Keys (always present):

    * ``pairs``; ``accuracy`` (ties count half); ``ties`` (pairs whose two float scores are
      exactly equal); ``accuracy_ci95`` = ``[lo, hi]``, the 2.5/97.5 percentiles of the
      accuracy over ``n_bootstrap`` bootstrap resamples of the pairs (deterministic for a
      given ``seed``; ``None`` when ``n_bootstrap == 0``).
    * ``margin_mean``, ``margin_median`` of ``margin = chosen - rejected``.
    * ``chosen_mean``, ``chosen_std``, ``rejected_mean``, ``rejected_std`` (population std).
    * ``bt_log_loss``: mean Bradley-Terry loss ``-log sigmoid(beta * margin)``, computed stably
      as ``softplus(-margin)``.
    * ``auroc``: probability that a chosen score exceeds a rejected score over all
      chosen x rejected cross pairs (not only the matched pairs), ties counting 1/2; the
      normalised Mann-Whitney U statistic.
    * ``ece`` and ``reliability``: calibration of ``p = sigmoid(margin)`` read as the model's
      probability that the chosen completion is preferred. In the chosen-first view the
      label is always 1, which makes calibration degenerate (any model that pushes every
      margin to +inf is "perfectly calibrated"), so the pairs are **symmetrized**: each pair
      is scored from the side the model prefers, with confidence ``p' = max(p, 1 - p)`` and
      label 1 if the preferred side is the chosen one, 0 if it is the rejected one. An exact
      tie has ``p' = 0.5`` and label 0.5. ``p'`` is binned into ``n_bins`` equal-width bins on
      ``[0.5, 1.0]`` (each ``[lo, hi)``, the last one closed), and
      ``ece = sum_b (count_b / pairs) * |mean label_b - mean p'_b|``. ``reliability`` lists
      every bin as ``{"lo", "hi", "count", "confidence", "accuracy"}`` (mean ``p'`` and mean
      label); an empty bin has count 0 and ``None`` for both means.

    Only when ``len_chosen`` and ``len_rejected`` are given (response lengths, e.g. tokens):

    * ``length_bias``: ``acc_chosen_longer`` / ``n_chosen_longer`` (accuracy and count over
      pairs where the chosen response is longer), ``acc_chosen_shorter`` /
      ``n_chosen_shorter``, ``n_equal_length``, and ``score_length_corr``, the Pearson
      correlation between all scores (chosen and rejected pooled) and their lengths
      (``None`` when either is constant). Accuracies of empty subsets are ``None``.
    * ``length_baseline_accuracy``: accuracy of the rule "the longer response wins" (equal
      lengths count half), the bar a length-exploiting model clears for free.

    Only when ``categories`` is given (one label per pair; keys are ``str(label)``, sorted):

    * ``per_category``: ``{category: {"pairs", "accuracy"}}``.
    * ``category_weighted_accuracy``: the unweighted mean of the per-category accuracies
      (RewardBench-style mean over subsets, so small subsets weigh as much as large ones).
    """
    chosen, rejected = _scores(score_chosen, score_rejected)
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be a non-negative integer, got {n_bootstrap!r}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if isinstance(beta, bool) or not isinstance(beta, int | float | np.number) or not 0 < beta < math.inf:
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    n = int(chosen.shape[0])
    margin = chosen - rejected
    correct, ties, _ = _counts(chosen, rejected)
    ece, reliability = _calibration(beta * margin, int(n_bins))

    out: dict[str, Any] = {
        "pairs": n,
        "accuracy": _accuracy(correct, ties, n),
        "ties": ties,
        "accuracy_ci95": _bootstrap_ci(correct, ties, n, int(n_bootstrap), seed),
        "margin_mean": float(margin.mean()),
        "margin_median": float(np.median(margin)),
        "chosen_mean": float(chosen.mean()),
        "chosen_std": float(chosen.std()),
        "rejected_mean": float(rejected.mean()),
        "rejected_std": float(rejected.std()),
        "bt_log_loss": float(np.logaddexp(0.0, -beta * margin).mean()),
        "auroc": _auroc(chosen, rejected),
        "ece": ece,
        "reliability": reliability,
    }

    if (len_chosen is None) != (len_rejected is None):
        raise ValueError("len_chosen and len_rejected must be given together")
    if len_chosen is not None:
        lc = _as_vector(len_chosen, "len_chosen", n)
        lr = _as_vector(len_rejected, "len_rejected", n)
        longer, shorter, equal = lc > lr, lc < lr, lc == lr
        n_longer = int(np.count_nonzero(longer))
        n_shorter = int(np.count_nonzero(shorter))
        n_equal = int(np.count_nonzero(equal))
        out["length_bias"] = {
            "acc_chosen_longer": _subset_accuracy(chosen, rejected, longer),
            "n_chosen_longer": n_longer,
            "acc_chosen_shorter": _subset_accuracy(chosen, rejected, shorter),
            "n_chosen_shorter": n_shorter,
            "n_equal_length": n_equal,
            "score_length_corr": _pearson(np.concatenate([chosen, rejected]), np.concatenate([lc, lr])),
        }
        out["length_baseline_accuracy"] = _accuracy(n_longer, n_equal, n)

    if categories is not None:
        labels = [str(c) for c in categories]
        if len(labels) != n:
            raise ValueError(f"categories: expected {n} values (one per pair), got {len(labels)}")
        groups: dict[str, list[int]] = {}
        for i, label in enumerate(labels):
            groups.setdefault(label, []).append(i)
        per_category: dict[str, dict[str, Any]] = {}
        for label in sorted(groups):
            idx = np.asarray(groups[label], dtype=np.int64)
            c, t, _ = _counts(chosen[idx], rejected[idx])
            per_category[label] = {"pairs": int(idx.shape[0]), "accuracy": _accuracy(c, t, int(idx.shape[0]))}
        out["per_category"] = per_category
        accs = [v["accuracy"] for v in per_category.values()]
        out["category_weighted_accuracy"] = float(sum(accs) / len(accs))

    return out


def accuracy_by_length_bucket(
    score_chosen: Any,
    score_rejected: Any,
    len_chosen: Any,
    len_rejected: Any,
    n_buckets: int = 5,
) -> list[dict[str, Any]]:
    """Accuracy (ties half) per bucket of mean pair length ``(len_chosen + len_rejected) / 2``.

    Bucket edges are the ``0, 1/n_buckets, ..., 1`` quantiles of the mean pair lengths, taken
    as observed values (``inverted_cdf``), with duplicate edges merged, so every bucket holds
    at least one pair and heavily repeated lengths can yield fewer than ``n_buckets`` buckets.
    Each bucket is ``[lo, hi)`` except the last, which is ``[lo, hi]``; if every pair has the
    same mean length there is a single bucket with ``lo == hi``. Returns a list of
    ``{"lo", "hi", "pairs", "accuracy"}`` in increasing length order.
    """
    chosen, rejected = _scores(score_chosen, score_rejected)
    n = chosen.shape[0]
    lc = _as_vector(len_chosen, "len_chosen", n)
    lr = _as_vector(len_rejected, "len_rejected", n)
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, int | np.integer) or n_buckets < 1:
        raise ValueError(f"n_buckets must be a positive integer, got {n_buckets!r}")
    mean_len = (lc + lr) / 2.0
    # Inverted-CDF quantile at level k/B is the ceil(n*k/B)-th smallest value; integer
    # arithmetic keeps it exact (float levels such as 0.6000000000000001 would not be).
    b = int(n_buckets)
    order_stats = [max(0, (n * k + b - 1) // b - 1) for k in range(b + 1)]
    edges = np.unique(np.sort(mean_len)[order_stats])
    if edges.shape[0] == 1:
        edges = np.array([edges[0], edges[0]])
    buckets: list[dict[str, Any]] = []
    last = edges.shape[0] - 2
    for i in range(last + 1):
        lo, hi = edges[i], edges[i + 1]
        mask = (mean_len >= lo) & ((mean_len <= hi) if i == last else (mean_len < hi))
        count = int(np.count_nonzero(mask))
        if count == 0:  # cannot happen with observed-value edges; kept as a guard
            continue
        buckets.append(
            {
                "lo": float(lo),
                "hi": float(hi),
                "pairs": count,
                "accuracy": _subset_accuracy(chosen, rejected, mask),
            }
        )
    return buckets


def most_confidently_wrong(score_chosen: Any, score_rejected: Any, k: int = 10) -> list[int]:
    """Indices of up to ``k`` wrong pairs (``chosen < rejected``), most negative margin first.

    Ties are not wrong and are never returned. Equal margins keep index order.
    """
    chosen, rejected = _scores(score_chosen, score_rejected)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    margin = chosen - rejected
    wrong = np.flatnonzero(margin < 0)
    order = wrong[np.argsort(margin[wrong], kind="stable")]
    return [int(i) for i in order[: int(k)]]


def swap_check(score_chosen: Any, score_rejected: Any) -> dict[str, Any]:
    """Accuracy with the chosen/rejected roles swapped, and whether it mirrors exactly.

    With ties counted half, swapping roles must give ``accuracy_swapped == 1 - accuracy``.
    The check is done on the integer counts (``2 * correct_swapped + ties_swapped ==
    2 * pairs - (2 * correct + ties)``), so it is exact rather than up to float rounding; a
    failure means the comparisons are inconsistent (it cannot fail for finite scores, which
    is the point: it guards the pipeline against order-dependent scoring bugs).
    Returns ``{"pairs", "accuracy", "accuracy_swapped", "ties", "mirrors"}``.
    """
    chosen, rejected = _scores(score_chosen, score_rejected)
    n = int(chosen.shape[0])
    correct, ties, _ = _counts(chosen, rejected)
    correct_s, ties_s, _ = _counts(rejected, chosen)
    mirrors = (2 * correct_s + ties_s) == 2 * n - (2 * correct + ties) and ties_s == ties
    return {
        "pairs": n,
        "accuracy": _accuracy(correct, ties, n),
        "accuracy_swapped": _accuracy(correct_s, ties_s, n),
        "ties": ties,
        "mirrors": bool(mirrors),
    }


def _cell(value: Any) -> tuple[str, bool]:
    """(text, right_align) for one table cell."""
    if value is None:
        return "-", True
    if isinstance(value, bool):
        return str(value), False
    if isinstance(value, int | np.integer):
        return str(int(value)), True
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "nan", True
        return f"{v:.4f}", True
    if isinstance(value, list | tuple) and value and all(isinstance(x, int | float) for x in value):
        return "[" + ", ".join(_cell(x)[0] for x in value) + "]", False
    return str(value), False


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table: header, dashed rule, one line per row.

    Floats are shown with 4 decimals, ``None`` as ``-``, a missing key as an empty cell;
    numbers are right-aligned, everything else left-aligned. No trailing whitespace.
    """
    cells = [[_cell(row[c]) if c in row else ("", False) for c in columns] for row in rows]
    widths = [max([len(col)] + [len(r[j][0]) for r in cells]) for j, col in enumerate(columns)]
    numeric = [bool(cells) and all(r[j][1] or r[j][0] == "" for r in cells) for j in range(len(columns))]

    def line(texts: list[str], right: list[bool]) -> str:
        parts = [t.rjust(w) if r else t.ljust(w) for t, w, r in zip(texts, widths, right)]
        return "  ".join(parts).rstrip()

    out = [line(list(columns), numeric), line(["-" * w for w in widths], [False] * len(widths))]
    for r in cells:
        out.append(line([t for t, _ in r], [ra for _, ra in r]))
    return "\n".join(out)
