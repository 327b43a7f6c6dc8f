import math

import pytest
import torch

from rewardforge.losses import LossConfig, bradley_terry_loss, bradley_terry_loss_per_pair, pair_statistics


def nll(z: float) -> float:
    return math.log1p(math.exp(-z))  # -log sigmoid(z)


def test_plain_loss_matches_hand_value():
    rc, rr = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    loss = bradley_terry_loss(rc, rr)
    assert loss.item() == pytest.approx((nll(1.0) + nll(-1.0)) / 2, abs=1e-7)


def test_beta_and_margin():
    rc, rr = torch.tensor([2.0, 0.5]), torch.tensor([1.0, 1.0])
    cfg = LossConfig(beta=2.0)
    margin = torch.tensor([0.5, 1.0])
    per = bradley_terry_loss_per_pair(rc, rr, config=cfg, margin=margin)
    expected = [nll(2.0 * 1.0 - 0.5), nll(2.0 * -0.5 - 1.0)]
    assert per.tolist() == pytest.approx(expected, abs=1e-6)


def test_label_smoothing_and_centering():
    rc, rr = torch.tensor([1.5]), torch.tensor([-0.5])
    cfg = LossConfig(label_smoothing=0.1, center_coeff=0.01)
    z = 2.0
    expected = 0.9 * nll(z) + 0.1 * nll(-z) + 0.01 * (1.5 - 0.5) ** 2
    assert bradley_terry_loss(rc, rr, config=cfg).item() == pytest.approx(expected, abs=1e-6)


def test_weights_give_per_pair_mean():
    rc, rr = torch.tensor([1.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 0.0])
    w = torch.tensor([1.0, 0.0, 3.0])
    expected = (nll(1.0) * 1 + nll(-1.0) * 3) / 4
    assert bradley_terry_loss(rc, rr, weights=w).item() == pytest.approx(expected, abs=1e-6)


def test_gradients_match_closed_form():
    """d/d r_c of -(1-e) log s(z) - e log s(-z) + c (r_c + r_r)^2, z = beta (r_c - r_r) - m."""
    beta, eps, c = 1.5, 0.05, 0.02
    rc = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64, requires_grad=True)
    rr = torch.tensor([0.1, 0.4, -0.7], dtype=torch.float64, requires_grad=True)
    m = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    loss = bradley_terry_loss(
        rc, rr, config=LossConfig(beta=beta, label_smoothing=eps, center_coeff=c), margin=m
    )
    loss.backward()
    z = beta * (rc.detach() - rr.detach()) - m
    sig = torch.sigmoid(z)
    dz = (-(1 - eps) * (1 - sig) + eps * sig) / 3  # mean over 3 pairs
    center = 2 * c * (rc.detach() + rr.detach()) / 3
    assert torch.allclose(rc.grad, beta * dz + center, atol=1e-12)
    assert torch.allclose(rr.grad, -beta * dz + center, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda a, b: bradley_terry_loss(
            a, b, config=LossConfig(beta=beta, label_smoothing=eps, center_coeff=c), margin=m
        ),
        (rc.detach().requires_grad_(), rr.detach().requires_grad_()),
    )


def test_stable_for_large_margins():
    loss = bradley_terry_loss(torch.tensor([-200.0]), torch.tensor([200.0]))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(400.0, rel=1e-6)


def test_pair_statistics_counts_ties_as_half():
    stats = pair_statistics(torch.tensor([1.0, 0.0, 2.0, 0.0]), torch.tensor([0.0, 0.0, 3.0, -1.0]))
    assert stats["accuracy"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert stats["margin"] == pytest.approx((1 + 0 - 1 + 1) / 4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"beta": 0},
        {"label_smoothing": 0.5},
        {"center_coeff": -1},
        # helper 76: accepted, and every loss became nan
        {"beta": float("nan")},
        {"beta": float("inf")},
        {"center_coeff": float("nan")},
        {"center_coeff": float("inf")},
    ],
)
def test_invalid_config(kwargs):
    with pytest.raises(ValueError):
        LossConfig(**kwargs)


def test_rewards_of_two_shapes_are_refused_not_broadcast():
    """helper 76: [n, 1] logits against [n] rewards broadcast to an n x n loss, averaged without a word."""
    r = torch.tensor([1.0, 0.0, -1.0])
    with pytest.raises(ValueError, match=r"same shape, got \(3, 1\) and \(3,\)"):
        bradley_terry_loss(r[:, None], r)
    with pytest.raises(ValueError, match="margin must be one number or one per pair"):
        bradley_terry_loss(r, r, margin=torch.zeros(2))


def test_a_number_as_the_margin_is_every_pairs():
    """helper 76: margin=1.0 was an AttributeError ('float' object has no attribute 'to')."""
    rc, rr = torch.tensor([2.0, 0.5]), torch.tensor([0.0, 1.0])
    assert bradley_terry_loss(rc, rr, margin=1.0).item() == pytest.approx(
        bradley_terry_loss(rc, rr, margin=torch.tensor([1.0, 1.0])).item()
    )
    # helper 79: a one-element tensor broadcast before the shape check, and still does
    assert bradley_terry_loss(rc, rr, margin=torch.tensor([1.0])).item() == pytest.approx(
        bradley_terry_loss(rc, rr, margin=1.0).item()
    )
