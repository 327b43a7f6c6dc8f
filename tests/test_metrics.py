"""Hand-computed checks of rewardforge.evaluation.metrics on small fixtures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rewardforge.evaluation import (
    accuracy_by_length_bucket,
    format_table,
    most_confidently_wrong,
    pair_metrics,
    swap_check,
)

LN3 = math.log(3.0)


def _json_roundtrip(d: dict) -> dict:
    # allow_nan=False: NaN/inf anywhere would raise.
    return json.loads(json.dumps(d, allow_nan=False))


# --------------------------------------------------------------------------- accuracy / ties


def test_all_correct():
    m = pair_metrics([3.0, 2.0, 1.0], [0.0, 1.0, -1.0], n_bootstrap=200)
    assert m["pairs"] == 3
    assert m["accuracy"] == 1.0
    assert m["ties"] == 0
    assert m["accuracy_ci95"] == [1.0, 1.0]
    assert m["margin_mean"] == pytest.approx(2.0)  # margins 3, 1, 2
    assert m["margin_median"] == 2.0
    assert m["chosen_mean"] == 2.0
    assert m["chosen_std"] == pytest.approx(math.sqrt(2.0 / 3.0))  # population std
    assert m["rejected_mean"] == 0.0
    assert m["rejected_std"] == pytest.approx(math.sqrt(2.0 / 3.0))


def test_all_wrong():
    m = pair_metrics([0.0, 1.0, -1.0], [3.0, 2.0, 1.0], n_bootstrap=200)
    assert m["accuracy"] == 0.0
    assert m["ties"] == 0
    assert m["accuracy_ci95"] == [0.0, 0.0]
    # cross pairs chosen {0, 1, -1} x rejected {3, 2, 1}: no win, one tie (1 == 1) -> 0.5 / 9
    assert m["auroc"] == pytest.approx(0.5 / 9.0)


def test_ties_count_half():
    # correct, tie, wrong, tie
    m = pair_metrics([1.0, 2.0, 3.0, 4.0], [0.0, 2.0, 5.0, 4.0], n_bootstrap=0)
    assert m["ties"] == 2
    assert m["accuracy"] == 0.5  # (1 + 2 * 0.5) / 4
    assert m["accuracy_ci95"] is None
    m = pair_metrics([1.0, 1.0, 1.0], [0.0, 1.0, 1.0], n_bootstrap=0)
    assert m["ties"] == 2
    assert m["accuracy"] == pytest.approx(2.0 / 3.0)  # (1 + 0.5 + 0.5) / 3


def test_tie_is_exact_float_equality():
    m = pair_metrics([1.0 + 1e-15], [1.0], n_bootstrap=0)
    assert m["ties"] == 0 and m["accuracy"] == 1.0


# --------------------------------------------------------------------------- AUROC


def test_auroc_hand_computed_with_ties():
    # chosen 3 vs {1,0,2}: 3 wins; chosen 1: tie(1), win(0), loss(2) -> 1.5;
    # chosen 2: win(1), win(0), tie(2) -> 2.5. Total 7 / 9.
    m = pair_metrics([3.0, 1.0, 2.0], [1.0, 0.0, 2.0], n_bootstrap=0)
    assert m["auroc"] == pytest.approx(7.0 / 9.0)


def test_auroc_all_equal_is_half():
    m = pair_metrics([1.0, 1.0], [1.0, 1.0], n_bootstrap=0)
    assert m["auroc"] == 0.5


def test_auroc_matches_brute_force():
    rng = np.random.default_rng(3)
    c = rng.integers(0, 6, 40).astype(float)  # many ties
    r = rng.integers(0, 6, 40).astype(float)
    brute = ((c[:, None] > r[None, :]).sum() + 0.5 * (c[:, None] == r[None, :]).sum()) / (40 * 40)
    assert pair_metrics(c, r, n_bootstrap=0)["auroc"] == pytest.approx(brute, abs=1e-15)


# --------------------------------------------------------------------------- log loss


def test_bt_log_loss_by_hand():
    # -log sigmoid(0) = ln 2; -log sigmoid(ln 3) = -log(3/4) = ln(4/3)
    m = pair_metrics([LN3, 0.0], [0.0, 0.0], n_bootstrap=0)
    assert m["bt_log_loss"] == pytest.approx((math.log(2.0) + math.log(4.0 / 3.0)) / 2.0)


def test_bt_log_loss_is_stable_for_huge_margins():
    m = pair_metrics([1000.0, -1000.0], [0.0, 0.0], n_bootstrap=0)
    assert m["bt_log_loss"] == pytest.approx(500.0)  # (0 + 1000) / 2
    _json_roundtrip(m)


# --------------------------------------------------------------------------- calibration


def test_ece_hand_worked_four_pairs():
    # margins: ln3 (right, p'=.75), -ln3 (wrong, p'=.75), ln(17/3) (right, p'=.85), 0 (tie, .5 / .5)
    # 5 bins of width .1 on [.5, 1]:
    #   [.5,.6): 1 pair, conf .5, label .5 -> gap 0
    #   [.7,.8): 2 pairs, conf .75, label .5 -> (2/4) * .25 = .125
    #   [.8,.9): 1 pair, conf .85, label 1 -> (1/4) * .15 = .0375
    margins = [LN3, -LN3, math.log(17.0 / 3.0), 0.0]
    m = pair_metrics(margins, [0.0] * 4, n_bootstrap=0, n_bins=5)
    assert m["ece"] == pytest.approx(0.1625)
    rel = m["reliability"]
    assert [b["count"] for b in rel] == [1, 0, 2, 1, 0]
    assert [(b["lo"], b["hi"]) for b in rel] == pytest.approx(
        [(0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0)]
    )
    assert rel[0]["confidence"] == 0.5 and rel[0]["accuracy"] == 0.5
    assert rel[1]["confidence"] is None and rel[1]["accuracy"] is None
    assert rel[2]["confidence"] == pytest.approx(0.75) and rel[2]["accuracy"] == 0.5
    assert rel[3]["confidence"] == pytest.approx(0.85) and rel[3]["accuracy"] == 1.0
    assert rel[4]["count"] == 0
    assert sum(b["count"] for b in rel) == 4
    _json_roundtrip(m)


def test_ece_confident_and_right_is_near_zero_and_p_one_in_last_bin():
    m = pair_metrics([100.0, 200.0], [0.0, 0.0], n_bootstrap=0, n_bins=10)
    assert m["ece"] == pytest.approx(0.0, abs=1e-12)
    assert m["reliability"][-1]["count"] == 2  # p' == 1.0 falls in the closed last bin


# --------------------------------------------------------------------------- categories


def test_categories_and_unweighted_mean():
    # a: correct, correct, wrong -> 2/3 ; b: wrong -> 0 ; c: tie -> 0.5
    m = pair_metrics(
        [1.0, 1.0, 0.0, 0.0, 2.0],
        [0.0, 0.0, 1.0, 1.0, 2.0],
        categories=["a", "a", "a", "b", "c"],
        n_bootstrap=0,
    )
    assert m["per_category"] == {
        "a": {"pairs": 3, "accuracy": pytest.approx(2.0 / 3.0)},
        "b": {"pairs": 1, "accuracy": 0.0},
        "c": {"pairs": 1, "accuracy": 0.5},
    }
    assert list(m["per_category"]) == ["a", "b", "c"]
    assert m["category_weighted_accuracy"] == pytest.approx((2.0 / 3.0 + 0.0 + 0.5) / 3.0)
    assert m["accuracy"] == pytest.approx(2.5 / 5.0)  # pooled accuracy differs
    assert "length_bias" not in m


def test_categories_length_mismatch_raises():
    with pytest.raises(ValueError, match="categories"):
        pair_metrics([1.0, 2.0], [0.0, 0.0], categories=["a"], n_bootstrap=0)


# --------------------------------------------------------------------------- length bias


def test_length_bias_fields():
    # pair: 0 right/longer, 1 wrong/longer, 2 wrong/shorter, 3 tie/equal, 4 right/longer
    sc = [2.0, 1.0, 0.0, 5.0, 3.0]
    sr = [1.0, 2.0, 1.0, 5.0, 0.0]
    lc = [10, 10, 5, 7, 7]
    lr = [5, 5, 10, 7, 3]
    m = pair_metrics(sc, sr, len_chosen=lc, len_rejected=lr, n_bootstrap=0)
    lb = m["length_bias"]
    assert lb["n_chosen_longer"] == 3
    assert lb["acc_chosen_longer"] == pytest.approx(2.0 / 3.0)
    assert lb["n_chosen_shorter"] == 1
    assert lb["acc_chosen_shorter"] == 0.0
    assert lb["n_equal_length"] == 1
    ref = np.corrcoef(np.array(sc + sr), np.array(lc + lr, dtype=float))[0, 1]
    assert lb["score_length_corr"] == pytest.approx(ref)
    assert m["length_baseline_accuracy"] == pytest.approx(0.7)  # (3 + 0.5) / 5


def test_length_corr_exact_cases_and_none():
    # scores are exactly 2 * length -> correlation 1
    m = pair_metrics([2.0, 6.0], [4.0, 8.0], len_chosen=[1, 3], len_rejected=[2, 4], n_bootstrap=0)
    assert m["length_bias"]["score_length_corr"] == pytest.approx(1.0)
    # constant lengths: undefined -> None; no chosen-longer/shorter pairs -> None accuracies
    m = pair_metrics([2.0, 1.0], [1.0, 2.0], len_chosen=[5, 5], len_rejected=[5, 5], n_bootstrap=0)
    lb = m["length_bias"]
    assert lb["score_length_corr"] is None
    assert lb["acc_chosen_longer"] is None and lb["n_chosen_longer"] == 0
    assert lb["acc_chosen_shorter"] is None and lb["n_chosen_shorter"] == 0
    assert lb["n_equal_length"] == 2
    assert m["length_baseline_accuracy"] == 0.5
    _json_roundtrip(m)


def test_lengths_must_come_together():
    with pytest.raises(ValueError, match="together"):
        pair_metrics([1.0], [0.0], len_chosen=[1], n_bootstrap=0)


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_deterministic_and_contains_accuracy():
    rng = np.random.default_rng(0)
    sc = rng.normal(size=300) + 0.5
    sr = rng.normal(size=300)
    sc[:20] = sr[:20]  # some ties
    a = pair_metrics(sc, sr, n_bootstrap=500, seed=7)
    b = pair_metrics(sc, sr, n_bootstrap=500, seed=7)
    assert a["accuracy_ci95"] == b["accuracy_ci95"]
    lo, hi = a["accuracy_ci95"]
    assert lo <= a["accuracy"] <= hi
    assert 0.0 < hi - lo < 0.2
    assert a == b  # whole result deterministic


def test_bootstrap_matches_index_resampling_in_distribution():
    # The implementation draws outcome counts (multinomial); it must agree with the
    # textbook "resample pair indices" bootstrap up to Monte-Carlo noise.
    rng = np.random.default_rng(1)
    sc = rng.normal(size=200) + 0.3
    sr = rng.normal(size=200)
    outcome = np.where(sc > sr, 1.0, np.where(sc == sr, 0.5, 0.0))
    idx = np.random.default_rng(2).integers(0, 200, size=(4000, 200))
    ref = np.percentile(outcome[idx].mean(axis=1), [2.5, 97.5])
    lo, hi = pair_metrics(sc, sr, n_bootstrap=4000, seed=3)["accuracy_ci95"]
    assert lo == pytest.approx(ref[0], abs=0.02)
    assert hi == pytest.approx(ref[1], abs=0.02)


# --------------------------------------------------------------------------- helpers


def test_accuracy_by_length_bucket():
    # mean pair lengths 1..10; first 4 pairs correct, then 3 correct, 3 wrong
    lc = np.arange(1, 11, dtype=float)
    lr = lc.copy()
    sc = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0], dtype=float)
    sr = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1], dtype=float)
    buckets = accuracy_by_length_bucket(sc, sr, lc, lr, n_buckets=2)
    # median edge (inverted_cdf) = 5 -> [1, 5) and [5, 10]
    assert buckets == [
        {"lo": 1.0, "hi": 5.0, "pairs": 4, "accuracy": 1.0},
        {"lo": 5.0, "hi": 10.0, "pairs": 6, "accuracy": 0.5},
    ]
    five = accuracy_by_length_bucket(sc, sr, lc, lr, n_buckets=5)
    # quintile edges (observed values) 1, 2, 4, 6, 8, 10
    assert [(b["lo"], b["hi"], b["pairs"]) for b in five] == [
        (1.0, 2.0, 1),
        (2.0, 4.0, 2),
        (4.0, 6.0, 2),
        (6.0, 8.0, 2),
        (8.0, 10.0, 3),
    ]
    assert [b["accuracy"] for b in five] == [1.0, 1.0, 1.0, 1.0, 0.0]  # pairs 0-6 right, 7-9 wrong
    # all pairs the same length: one bucket
    same = accuracy_by_length_bucket([1.0, 0.0], [0.0, 0.0], [4, 4], [6, 6], n_buckets=5)
    assert same == [{"lo": 5.0, "hi": 5.0, "pairs": 2, "accuracy": 0.75}]


def test_most_confidently_wrong_order():
    # margins: 1, -2, -0.5, 0 (tie: not wrong), -3, -2
    sc = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    sr = [0.0, 2.0, 0.5, 0.0, 3.0, 3.0]
    assert most_confidently_wrong(sc, sr, k=10) == [4, 1, 5, 2]
    assert most_confidently_wrong(sc, sr, k=2) == [4, 1]
    assert most_confidently_wrong([1.0], [0.0]) == []


def test_swap_mirror():
    s = swap_check([1.0, 2.0, 3.0, 4.0, 0.0], [0.0, 2.0, 5.0, 4.0, -1.0])
    # correct: 0, 4 ; ties: 1, 3 ; wrong: 2 -> acc 3/5, swapped 2/5
    assert s["accuracy"] == pytest.approx(0.6)
    assert s["accuracy_swapped"] == pytest.approx(0.4)
    assert s["ties"] == 2
    assert s["mirrors"] is True
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert swap_check(a, b)["mirrors"] is True
    assert pair_metrics(b, a, n_bootstrap=0)["accuracy"] == pytest.approx(
        1 - pair_metrics(a, b, n_bootstrap=0)["accuracy"]
    )


def test_format_table():
    rows = [{"name": "all", "pairs": 10, "accuracy": 0.75}, {"name": "chat", "pairs": 3, "accuracy": None}]
    text = format_table(rows, ["name", "pairs", "accuracy"])
    assert text == (
        "name  pairs  accuracy\n----  -----  --------\nall      10    0.7500\nchat      3         -"
    )


# --------------------------------------------------------------------------- output contract


def test_output_is_plain_json():
    rng = np.random.default_rng(4)
    sc, sr = rng.normal(size=30), rng.normal(size=30)
    m = pair_metrics(
        np.float32(sc),
        sr,
        categories=["x", "y", "z"] * 10,
        len_chosen=rng.integers(1, 9, 30),
        len_rejected=rng.integers(1, 9, 30),
        n_bootstrap=50,
    )
    assert _json_roundtrip(m) == m

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        else:
            assert v is None or type(v) in (int, float, str, bool), type(v)

    walk(m)


@pytest.mark.parametrize(
    ("sc", "sr", "match"),
    [
        ([], [], "no pairs"),
        ([1.0, 2.0], [1.0], "expected 2"),
        ([float("nan")], [0.0], "not finite"),
        ([[1.0]], [[0.0]], "1-D"),
    ],
)
def test_bad_input_raises(sc, sr, match):
    with pytest.raises(ValueError, match=match):
        pair_metrics(sc, sr)


@pytest.mark.parametrize("beta", [0, -1, float("nan"), float("inf"), True, "2"])
def test_a_beta_that_is_no_positive_number_is_refused(beta):
    """helper 76: beta -1, 0 or nan gave a meaningless bt_log_loss."""
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        pair_metrics([1.0, 2.0], [0.0, 1.0], beta=beta)


def test_sign_test_by_hand():
    from rewardforge.evaluation.metrics import sign_test_p

    assert sign_test_p(1, 0) == pytest.approx(0.5)  # one right pair is a coin flip
    assert sign_test_p(5, 0) == pytest.approx(1 / 32)
    assert sign_test_p(6, 0) == pytest.approx(1 / 64)
    assert sign_test_p(7, 3) == pytest.approx(sum(math.comb(10, k) for k in range(7, 11)) / 2**10)
    assert sign_test_p(0, 4) == 1.0 and sign_test_p(0, 0) == 1.0
    assert sign_test_p(600, 400) < 1e-9  # large counts stay finite (log space)


def test_paired_sign_test_leaves_out_agreeing_pairs_and_counts_ties_half():
    from rewardforge.evaluation.metrics import pair_outcomes, paired_sign_test

    model = pair_outcomes([2.0, 1.0, 0.0, 3.0], [1.0, 1.0, 1.0, 0.0])  # right, tie, wrong, right
    assert model.tolist() == [1.0, 0.5, 0.0, 1.0]
    baseline = np.array([0.0, 0.0, 0.0, 1.0])
    # pair 1: model right, baseline wrong (win); pair 2: tie against wrong (win);
    # pair 3: both wrong; pair 4: both right
    assert paired_sign_test(model, baseline) == {"wins": 2, "losses": 0, "p_value": 0.25}
