"""ScaleRL's loss: prompt-level weights, zero-variance filtering and the CISPO term, by hand; and
against TRL's own CISPO loss on a real batch of a tiny policy."""

from __future__ import annotations

import math

import pytest
import torch

from rewardforge.rlhf.scalerl import k3_kl, prompt_level_weights, scalerl_loss


def test_prompt_level_weights_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5, 2.0, 3.0])  # group 1 has zero variance
    lengths = torch.tensor([3, 1, 2, 2, 4, 4])
    w, keep = prompt_level_weights(rewards, lengths, 2)
    assert keep.tolist() == [True, False, True]
    # two prompts kept; group 0 has 4 tokens, group 2 has 8: 1/(2*4), 1/(2*8)
    assert w.tolist() == pytest.approx([1 / 8, 1 / 8, 0, 0, 1 / 16, 1 / 16])
    assert float((w * lengths).sum()) == pytest.approx(1.0)  # the weights average over kept tokens
    w, keep = prompt_level_weights(rewards, lengths, 2, filter_zero_variance=False)
    assert keep.tolist() == [True, True, True]
    assert w.tolist() == pytest.approx([1 / 12, 1 / 12, 1 / 12, 1 / 12, 1 / 24, 1 / 24])


def test_prompt_level_weights_edge_cases():
    # a group without loss tokens (all masked) and a group with one scorable rollout are dropped
    w, keep = prompt_level_weights(torch.tensor([1.0, 2.0, math.nan, 1.0]), torch.tensor([0, 0, 3, 3]), 2)
    assert keep.tolist() == [False, False] and w.tolist() == [0, 0, 0, 0]
    # near-equal rewards count as zero variance, as TRL's frac_reward_zero_std does
    w, keep = prompt_level_weights(torch.tensor([0.3, 0.3 + 1e-9]), torch.tensor([2, 2]), 2)
    assert keep.tolist() == [False]
    with pytest.raises(ValueError, match="groups of 3"):
        prompt_level_weights(torch.zeros(4), torch.ones(4), 3)


def _batch():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], requires_grad=True)
    adv = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    w = torch.tensor([0.25, 0.5])
    return logp, adv, mask, w


def test_cispo_loss_on_policy_by_hand():
    logp, adv, mask, w = _batch()
    loss = scalerl_loss(logp, logp.detach(), adv, mask, w, epsilon_max=5.0)
    # -A*logp per token: row 0: 1, 2; row 1: -1 (the second token is masked)
    assert loss.item() == pytest.approx(0.25 * (1 + 2) + 0.5 * (-1))
    loss.backward()
    # d/dlogp = -sg(min(rho, eps)) * A * w; rho = 1 on policy
    assert logp.grad.flatten().tolist() == pytest.approx([-0.25, -0.25, 1.0, 0.0])


def test_cispo_caps_the_importance_weight():
    logp, adv, mask, w = _batch()
    old = logp.detach().clone()
    old[0, 0] -= math.log(10.0)  # rho = 10 > eps_max = 5 on the first token
    loss = scalerl_loss(logp, old, adv, mask, w, epsilon_max=5.0)
    assert loss.item() == pytest.approx(0.25 * (5 * 1 + 2) + 0.5 * (-1))
    loss.backward()
    assert logp.grad[0, 0].item() == pytest.approx(-5 * 1 * 0.25)
    # TRL's unset epsilon_high (0.2) would scale even an on-policy token by 0.2
    logp2, *_ = _batch()
    small = scalerl_loss(logp2, logp2.detach(), adv, mask, w, epsilon_max=0.2)
    assert small.item() == pytest.approx(0.2 * (0.25 * 3 + 0.5 * (-1)))


def test_kl_term_by_hand():
    logp, adv, mask, w = _batch()
    ref = logp.detach() + torch.tensor([[0.1, 0.0], [0.2, 0.0]])
    k3 = k3_kl(ref, logp.detach())
    assert k3[0, 0].item() == pytest.approx(math.exp(0.1) - 0.1 - 1, rel=1e-4)  # float32
    loss = scalerl_loss(logp, logp.detach(), adv, mask, w, epsilon_max=5.0, beta=0.1, ref_per_token_logps=ref)
    kl = 0.25 * (math.exp(0.1) - 1.1) + 0.5 * (math.exp(0.2) - 1.2)
    assert loss.item() == pytest.approx(0.25 + 0.1 * kl, rel=1e-6)
    assert loss.item() - 0.25 == pytest.approx(0.1 * kl, rel=1e-4)


class ByPromptRM:
    """RM stub: a constant score on the first prompt (a zero-variance group), a text-dependent
    score elsewhere."""

    def score_batch(self, items, batch_size=16):
        out = []
        for prompt, response in items:
            text = response[-1]["content"]
            out.append(1.0 if "3 + 4" in prompt[-1]["content"] else float(sum(map(ord, text)) % 97) / 10)
        return out


@pytest.mark.slow
def test_scalerl_trainer_filters_and_matches_trl_cispo(tmp_path, tiny_llama_dir):
    from trl import GRPOTrainer

    from rewardforge.rlhf import make_scalerl_with_rm, prompts_dataset
    from rewardforge.rlhf.policy import load_policy
    from rewardforge.rlhf.scalerl import ScaleRLTrainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        records = [
            {"prompt": [{"role": "user", "content": "What is 3 + 4?"}]},
            {"prompt": [{"role": "user", "content": "Name a colour."}]},
        ]
        setup = make_scalerl_with_rm(
            ByPromptRM(),
            group_size=2,
            kl_coeff=0.0,
            output_dir=str(tmp_path / "ckpt"),
            max_steps=1,
            max_completion_length=6,
            use_cpu=True,
            save_strategy="no",
            shuffle_dataset=False,
            seed=0,
        )
        model, tok = load_policy(str(tiny_llama_dir))
        trainer = setup.trainer(model, prompts_dataset(records), processing_class=tok)
        trainer.train()
        log = trainer.state.log_history[0]
        # the constant group is dropped from the loss (TRL's frac_reward_zero_std cannot tell:
        # with scale_rewards="batch" it tests the batch's std, not each group's)
        assert log["scalerl/kept_prompt_frac"] == pytest.approx(0.5)
        assert math.isfinite(log["loss"])

        # With one weight per token (1 / all loss tokens) and no filtering, our loss is TRL's "cispo".
        trainer.model.train()
        trainer.current_gradient_accumulation_steps = 1
        rows = [records[0], records[0], records[1], records[1]]
        batch = trainer._generate_and_score_completions([dict(r) for r in rows])
        n_tokens = batch["completion_mask"].sum()
        assert batch[ScaleRLTrainer.WEIGHTS_KEY].tolist()[:2] == [0.0, 0.0]  # the constant group
        assert batch["advantages"][:2].abs().max().item() < 1e-5
        batch[ScaleRLTrainer.WEIGHTS_KEY] = torch.full((4,), 1.0 / n_tokens.item())
        with torch.no_grad():
            ours = trainer._compute_loss(trainer.model, batch)
            trl = GRPOTrainer._compute_loss(trainer, trainer.model, batch)
        assert ours.item() == pytest.approx(trl.item(), rel=1e-5, abs=1e-7)
    finally:
        torch.set_num_threads(threads)
