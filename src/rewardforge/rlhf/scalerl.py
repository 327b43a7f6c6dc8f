"""ScaleRL's loss on top of TRL's GRPOTrainer ("The Art of Scaling Reinforcement Learning Compute
for LLMs", Khatri et al. 2025, arXiv:2510.13786).

What comes from the engine (TRL 1.16 GRPOTrainer, set through GRPOConfig):
- generation, the reward functions and their weighted sum (`reward_weights`);
- batch-level advantage normalisation: A_i = (r_i - mean of r over i's prompt group) / std of r
  over the whole batch (`scale_rewards="batch"`);
- the reference model and its per-token log-probs for the KL penalty (`beta`), old log-probs
  when a batch is reused (`num_iterations`, `steps_per_generation`), vLLM's IS correction;
- the optimiser, checkpoints, logging.

What comes from us (`ScaleRLTrainer`, below):
- the per-token CISPO loss  -sg(min(rho, eps_max)) * A * log pi  (+ beta * k3 KL), written out
  here because its aggregation has to change; it is the same formula as TRL's
  `loss_type="cispo"` (a test checks the two agree when the aggregation is the same);
- prompt-level loss averaging: each prompt (group of G rollouts) weighs the same; inside a
  group, tokens are averaged over all its rollouts:
      L = 1/|P_kept| * sum_{g in P_kept} 1/T_g * sum_{i in g} sum_t l_{i,t},
  T_g = number of loss tokens of group g;
- zero-variance filtering: a prompt whose G rewards are all equal (TRL's `frac_reward_zero_std`)
  has zero advantages; it is dropped from the loss, from the KL term and from |P_kept|, instead
  of diluting the average.

Not implemented (engine features ScaleRL also uses): PipelineRL's asynchronous off-policy
generation, forced length interruptions, no-positive-resampling of solved prompts. The fp32 LM
head is TRL's `cast_lm_head_to_fp32` (untied heads only; SmolLM2's head is tied).
"""

from __future__ import annotations

from typing import Any

import torch
from trl import GRPOTrainer
from trl.trainer.utils import RepeatSampler, nanstd

from rewardforge.training.trainer import FollowsPlanOnResume

MULTIMODAL_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)


def prompt_level_weights(
    rewards: torch.Tensor,
    lengths: torch.Tensor,
    num_generations: int,
    *,
    filter_zero_variance: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-rollout loss weights for prompt-level averaging, and which prompt groups are kept.

    `rewards` (N,) are the combined rewards (NaN = unscorable), `lengths` (N,) the loss tokens of
    each rollout; rollouts of one prompt are consecutive (N = groups * G). A kept group g gives
    each of its rollouts the weight 1 / (|kept| * T_g); a dropped group gives 0. A group is
    dropped when its rewards have zero variance (with `filter_zero_variance`) or it has no loss
    token. Sum over rollouts of weight * tokens = 1 whenever a group is kept."""
    g = int(num_generations)
    if rewards.numel() % g:
        raise ValueError(f"{rewards.numel()} rollouts do not form groups of {g}")
    grouped = rewards.float().view(-1, g)
    tokens = lengths.float().view(-1, g).sum(dim=1)
    keep = tokens > 0
    if filter_zero_variance:
        std = nanstd(grouped, dim=1) if g > 1 else torch.zeros(grouped.size(0), device=grouped.device)
        zero = torch.isclose(std, torch.zeros_like(std)) | torch.isnan(std)
        keep = keep & ~zero
    n_kept = keep.sum()
    per_group = torch.where(
        keep, 1.0 / (n_kept.clamp(min=1) * tokens.clamp(min=1.0)), torch.zeros_like(tokens)
    )
    return per_group.repeat_interleave(g), keep


def cispo_per_token_loss(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    advantages: torch.Tensor,
    epsilon_max: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CISPO: -sg(min(rho, eps_max)) * A * log pi per token (rho = pi / pi_old), and rho."""
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    ratio = torch.exp(per_token_logps - old_per_token_logps)
    clipped = torch.clamp(ratio, max=epsilon_max).detach()
    return -clipped * advantages * per_token_logps, ratio


def k3_kl(ref_per_token_logps: torch.Tensor, per_token_logps: torch.Tensor) -> torch.Tensor:
    """The k3 estimator of KL(pi || pi_ref) per token, as TRL computes it."""
    d = ref_per_token_logps - per_token_logps
    return torch.exp(d) - d - 1


def scalerl_loss(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor,
    *,
    epsilon_max: float,
    beta: float = 0.0,
    ref_per_token_logps: torch.Tensor | None = None,
    is_ratio: torch.Tensor | None = None,
) -> torch.Tensor:
    """sum_i w_i * sum_t mask_{i,t} * (cispo_{i,t} [* is_ratio] + beta * kl_{i,t}).

    With the weights of `prompt_level_weights` over a whole batch this is the prompt-level
    average; a micro-batch gives its share of it."""
    per_token, _ = cispo_per_token_loss(per_token_logps, old_per_token_logps, advantages, epsilon_max)
    if is_ratio is not None:
        per_token = per_token * is_ratio
    if beta != 0.0:
        if ref_per_token_logps is None:
            raise ValueError("beta != 0 needs the reference log-probs")
        per_token = per_token + beta * k3_kl(ref_per_token_logps, per_token_logps)
    return (per_token * mask * weights.unsqueeze(1)).sum()


class EpochOrderedRepeatSampler(RepeatSampler):
    """TRL's RepeatSampler, whose prompt order for an epoch is the same however the run got
    there. TRL's draws each epoch's order from one generator seeded once, so a resumed run (a
    new sampler) replayed the first epoch's order in its current epoch, after skipping the steps
    done: some prompts twice, others never. The Trainer names each epoch (`set_epoch`) before it
    iterates; the generator is set to where that epoch's draw starts."""

    @classmethod
    def of(cls, sampler: RepeatSampler) -> EpochOrderedRepeatSampler:
        ordered = cls.__new__(cls)
        ordered.__dict__.update(sampler.__dict__)
        ordered.start_state = sampler.generator.get_state() if sampler.shuffle else None
        return ordered

    def set_epoch(self, epoch: int) -> None:
        if not self.shuffle:
            return
        self.generator.set_state(self.start_state)
        for _ in range(epoch):  # each epoch before draws one order
            torch.randperm(self.num_samples, generator=self.generator)


class ResumesInPromptOrder:
    """A GRPOTrainer mixin: the train sampler is an `EpochOrderedRepeatSampler`."""

    def _get_train_sampler(self, *args: Any, **kwargs: Any):
        sampler = super()._get_train_sampler(*args, **kwargs)  # type: ignore[misc]
        return EpochOrderedRepeatSampler.of(sampler) if type(sampler) is RepeatSampler else sampler


class GRPOTrainerFollowingPlan(FollowsPlanOnResume, ResumesInPromptOrder, GRPOTrainer):
    """TRL's GRPOTrainer whose resume with more `--steps` follows the new plan's schedule (it ran
    the first new step at learning rate 0 on the linear schedule) and goes on in the prompt order
    an uninterrupted run has."""


class ScaleRLTrainer(FollowsPlanOnResume, ResumesInPromptOrder, GRPOTrainer):
    """GRPOTrainer with ScaleRL's loss aggregation (see the module docstring). Use it with
    `loss_type="cispo"`, `scale_rewards="batch"` and a deliberate `epsilon_high` (eps_max);
    `make_scalerl_with_rm` sets all three."""

    WEIGHTS_KEY = "scalerl_weights"

    def __init__(self, *args: Any, filter_zero_variance: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.filter_zero_variance = filter_zero_variance
        self._scalerl_rewards_per_func: torch.Tensor | None = None
        a = self.args
        problems = []
        if a.loss_type != "cispo":
            problems.append(f"loss_type={a.loss_type!r} (ScaleRL uses 'cispo')")
        if a.importance_sampling_level != "token":
            problems.append("importance_sampling_level must be 'token'")
        if a.multi_objective_aggregation != "sum_then_normalize":
            problems.append("multi_objective_aggregation must be 'sum_then_normalize'")
        if a.top_entropy_quantile < 1.0 or a.off_policy_mask_threshold is not None:
            problems.append("top_entropy_quantile / off_policy_mask_threshold are not supported")
        if self._entropy_bonus_enabled or self.aux_loss_enabled:
            problems.append("entropy bonus and MoE aux loss are not supported")
        if problems:
            raise ValueError("ScaleRLTrainer: " + "; ".join(problems))

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._scalerl_rewards_per_func = rewards_per_func  # gathered over processes, in batch order
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        num_generations = self.num_generations if mode == "train" else self.num_generations_eval
        rpf = self._scalerl_rewards_per_func
        rewards = (rpf * self.reward_weights.to(rpf.device).unsqueeze(0)).nansum(dim=1)
        rewards[torch.isnan(rpf).all(dim=1)] = torch.nan
        loss_mask = output["completion_mask"]
        if output.get("tool_mask") is not None:
            loss_mask = loss_mask * output["tool_mask"]
        local_lengths = loss_mask.sum(dim=1).float()
        lengths = self.accelerator.gather(local_lengths)
        weights, keep = prompt_level_weights(
            rewards.to(lengths.device),
            lengths,
            num_generations,
            filter_zero_variance=self.filter_zero_variance,
        )
        n_local = local_lengths.size(0)
        start = self.accelerator.process_index * n_local
        output[self.WEIGHTS_KEY] = weights[start : start + n_local].to(loss_mask.device)
        self._metrics[mode]["scalerl/kept_prompt_frac"].append(keep.float().mean().item())
        return output

    def _compute_loss(self, model, inputs):
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        logits_to_keep = completion_ids.size(1)
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        per_token_logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            compute_entropy=True,
            **{k: inputs.get(k) for k in MULTIMODAL_KEYS},
        )
        advantages = inputs["advantages"]
        old = inputs.get("old_per_token_logps")
        old = per_token_logps.detach() if old is None else old
        is_ratio = (
            inputs["importance_sampling_ratio"]
            if self.use_vllm and self.vllm_importance_sampling_correction
            else None
        )
        weights = inputs[self.WEIGHTS_KEY]
        loss = scalerl_loss(
            per_token_logps,
            old,
            advantages,
            mask,
            weights,
            epsilon_max=self.epsilon_high,
            beta=self.beta,
            ref_per_token_logps=inputs.get("ref_per_token_logps"),
            is_ratio=is_ratio,
        )
        # The weights sum to 1 over the global generation batch; one optimizer step sees
        # gradient_accumulation_steps of its steps_per_generation micro-batches, and gradients
        # are averaged over processes: rescale so each optimizer step carries the full average
        # (the same rescaling TRL applies to its "cispo"/"dapo" token normaliser).
        mode = "train" if self.model.training else "eval"
        scale = float(self.accelerator.num_processes)
        if mode == "train":
            scale *= self.args.steps_per_generation / self.current_gradient_accumulation_steps
        loss = loss * scale

        kept = mask * (weights > 0).unsqueeze(1).to(mask.dtype)

        def global_masked_mean(x: torch.Tensor) -> float:
            totals = self.accelerator.reduce(
                torch.stack([(x * kept).sum(), kept.sum().float()]).detach(), reduction="sum"
            )
            return (totals[0] / totals[1].clamp(min=1.0)).item()

        if self.beta != 0.0:
            self._metrics[mode]["kl"].append(
                global_masked_mean(k3_kl(inputs["ref_per_token_logps"], per_token_logps))
            )
        self._metrics[mode]["entropy"].append(global_masked_mean(entropies))
        ratio = torch.exp(per_token_logps - old)
        adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
        clipped = ((ratio > self.epsilon_high) & (adv > 0)).float()
        self._metrics[mode]["cispo_clip_ratio"].append(global_masked_mean(clipped))
        return loss
