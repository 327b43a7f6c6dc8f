"""The Bradley-Terry pairwise loss and the statistics logged beside it.

loss_i = -(1 - eps) * log sigmoid(z_i) - eps * log sigmoid(-z_i) + c * (r_c + r_r)^2
with z_i = beta * (r_c - r_r) - margin_i.

`eps` is label smoothing (the chance the human label is flipped); `c` is reward centering
(pulls the mean reward of a pair to zero so scores stay comparable across prompts).
The mean is taken per pair, weighted when `weights` is given, so batches of different
sizes (length-aware batching, gradient accumulation) learn exactly like plain batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossConfig:
    beta: float = 1.0
    center_coeff: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be a finite number > 0, got {self.beta}")
        if not (math.isfinite(self.center_coeff) and self.center_coeff >= 0):
            raise ValueError(f"center_coeff must be a finite number >= 0, got {self.center_coeff}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")


def bradley_terry_loss_per_pair(
    r_chosen: torch.Tensor,
    r_rejected: torch.Tensor,
    *,
    config: LossConfig = LossConfig(),
    margin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss of every pair (shape [n]); the caller chooses how to reduce it. Rewards of two shapes
    (a model's [n, 1] logits against [n]) are refused: broadcast, they made an n x n loss."""
    if r_chosen.shape != r_rejected.shape:
        raise ValueError(
            f"r_chosen and r_rejected must have the same shape, got {tuple(r_chosen.shape)} and "
            f"{tuple(r_rejected.shape)}"
        )
    z = config.beta * (r_chosen - r_rejected)
    if margin is not None:
        margin = torch.as_tensor(margin, device=z.device).to(z.dtype)  # one number: every pair's
        if margin.numel() != 1 and margin.shape != z.shape:
            raise ValueError(
                f"margin must be one number or one per pair {tuple(z.shape)}, got {tuple(margin.shape)}"
            )
        z = z - margin
    eps = config.label_smoothing
    loss = -(1.0 - eps) * F.logsigmoid(z)
    if eps:
        loss = loss - eps * F.logsigmoid(-z)
    if config.center_coeff:
        loss = loss + config.center_coeff * (r_chosen + r_rejected) ** 2
    return loss


def bradley_terry_loss(
    r_chosen: torch.Tensor,
    r_rejected: torch.Tensor,
    *,
    config: LossConfig = LossConfig(),
    margin: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean loss over pairs (weighted mean when `weights` is given)."""
    per_pair = bradley_terry_loss_per_pair(r_chosen, r_rejected, config=config, margin=margin)
    if weights is None:
        return per_pair.mean()
    weights = weights.to(per_pair.dtype)
    return (per_pair * weights).sum() / weights.sum()


def pair_statistics(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> dict[str, float]:
    """Per-pair accuracy (ties count half), mean margin and mean rewards, for logging."""
    with torch.no_grad():
        diff = (r_chosen - r_rejected).float()
        correct = (diff > 0).float() + 0.5 * (diff == 0).float()
        return {
            "accuracy": correct.mean().item(),
            "margin": diff.mean().item(),
            "reward_chosen": r_chosen.float().mean().item(),
            "reward_rejected": r_rejected.float().mean().item(),
        }
