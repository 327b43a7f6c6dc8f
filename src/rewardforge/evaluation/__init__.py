"""Evaluation of reward models on preference pairs: pure metric functions (see ``metrics``)."""

from __future__ import annotations

from rewardforge.evaluation.metrics import (
    accuracy_by_length_bucket,
    format_table,
    most_confidently_wrong,
    pair_metrics,
    swap_check,
)

__all__ = [
    "accuracy_by_length_bucket",
    "format_table",
    "most_confidently_wrong",
    "pair_metrics",
    "swap_check",
]
