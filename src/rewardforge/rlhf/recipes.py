"""`make_grpo_with_rm` / `make_scalerl_with_rm`: everything TRL's GRPOTrainer needs to optimise a
policy against a rewardforge reward model (config, reward functions, weights, trainer class).

Reward arithmetic (TRL sums the weighted functions, then forms advantages):
- rm_mode="replace": reward = RM score. Environment rewards, if given, are still computed and
  logged (weight 0): a "monitored, not optimised" signal such as exact-match accuracy.
- rm_mode="bonus":   reward = sum of env rewards (weight 1 each) + rm_coeff * RM score.
  The combination is TRL's own `reward_weights` = [1.0 per env function..., rm_coeff], so each
  part is logged under its own name (rewards/<env>/mean, rewards/rm_score/mean) and the total as
  `reward`. An env function returning None for a rollout leaves it out of that rollout's sum.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardforge.rlhf.remote import load_rm
from rewardforge.rlhf.rewards import RM_REWARD_NAME, EnvReward, RMReward, RolloutLog

RM_MODES = ("replace", "bonus")

# Defaults that differ from GRPOConfig's, chosen for a CPU-friendly run; any can be overridden.
COMMON_DEFAULTS: dict[str, Any] = {
    "bf16": False,  # TRL defaults to bf16, which a CPU refuses unless use_cpu=True
    "disable_dropout": True,  # policy and reference log-probs from the same function
    "logging_steps": 1,
    "report_to": "none",
    "save_strategy": "steps",
    "save_steps": 10,
    "save_total_limit": 2,
}

ENGINE_PARTS_GRPO = {
    "engine (TRL GRPOTrainer)": [
        "generation with the policy's chat template",
        "weighted sum of reward functions (reward_weights)",
        "group advantages (scale_rewards)",
        "loss (loss_type), KL penalty with a reference model (beta)",
        "optimizer, checkpoints, logging",
    ],
    "rewardforge": [
        "RM score as a reward function (rm_score), in process or remote",
        "replace/bonus arithmetic via reward_weights",
        "rm_score mean/std/min/max metrics, per-rollout rm_score (completions table, rollouts.jsonl)",
    ],
}

ENGINE_PARTS_SCALERL = {
    "engine (TRL GRPOTrainer)": [
        "generation, reward functions and their weighted sum",
        "batch-level advantage normalisation (scale_rewards='batch')",
        "CISPO truncated importance weight, eps_max = epsilon_high (set to 5.0: TRL's default 0.2 would"
        " scale even on-policy gradients by 0.2)",
        "reference model and k3 KL (beta)",
        "optimizer, checkpoints, logging",
    ],
    "rewardforge (ScaleRLTrainer)": [
        "prompt-level loss averaging",
        "zero-variance prompt filtering (out of the loss, the KL and the prompt count)",
        "RM score as a reward function (rm_score), replace/bonus arithmetic",
    ],
    "not implemented": [
        "PipelineRL asynchronous off-policy generation",
        "forced length interruptions",
        "no-positive-resampling",
    ],
}


@dataclass
class RLHFSetup:
    """What `GRPOTrainer` (or `ScaleRLTrainer`) needs: build it with `.trainer(model, dataset)`."""

    algo: str
    config: Any  # trl.GRPOConfig
    reward_funcs: list[Callable[..., Any]]
    reward_weights: list[float]
    trainer_cls: type
    rm: Any
    rm_reward: RMReward
    rollout_log: RolloutLog
    rm_mode: str
    rm_coeff: float
    kl_coeff: float
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, list[str]] = field(default_factory=dict)

    @property
    def reward_names(self) -> list[str]:
        return [f.__name__ for f in self.reward_funcs]

    @property
    def env_reward_names(self) -> list[str]:
        return [n for n in self.reward_names if n != RM_REWARD_NAME]

    def weights_by_name(self) -> dict[str, float]:
        return dict(zip(self.reward_names, self.reward_weights, strict=True))

    def trainer(self, model: Any, train_dataset: Any, **kwargs: Any):
        """The trainer for `model` (a path or a loaded model) on a prompt dataset; extra kwargs
        (processing_class, peft_config, callbacks, ...) go to the trainer."""
        return self.trainer_cls(
            model=model,
            reward_funcs=self.reward_funcs,
            args=self.config,
            train_dataset=train_dataset,
            **{**self.trainer_kwargs, **kwargs},
        )

    def describe(self) -> dict[str, Any]:
        return {
            "algo": self.algo,
            "rm_mode": self.rm_mode,
            "rm_coeff": self.rm_coeff,
            "kl_coeff": self.kl_coeff,
            "reward_funcs": self.reward_names,
            "reward_weights": self.reward_weights,
            "rm": repr(self.rm)
            if not hasattr(self.rm, "loaded")
            else getattr(self.rm.loaded, "source", None),
            "parts": self.parts,
        }


def _check(rm_mode: str, rm_coeff: float, kl_coeff: float, group_size: int, env: Sequence[Any]) -> None:
    if rm_mode not in RM_MODES:
        raise ValueError(f"rm_mode must be one of {RM_MODES}, got {rm_mode!r}")
    if not math.isfinite(float(rm_coeff)):
        raise ValueError(f"rm_coeff must be a finite number, got {rm_coeff!r}")
    if not math.isfinite(float(kl_coeff)) or kl_coeff < 0:
        raise ValueError(f"kl_coeff must be a finite number >= 0, got {kl_coeff!r}")
    if int(group_size) < 2:
        raise ValueError(f"group_size must be at least 2 (advantages compare rollouts), got {group_size}")
    if rm_mode == "bonus" and not env:
        raise ValueError("rm_mode='bonus' adds the RM score to environment rewards: pass env_rewards=[...]")


def _build(
    algo: str,
    rm: Any,
    *,
    group_size: int,
    rm_mode: str,
    rm_coeff: float,
    kl_coeff: float,
    env_rewards: Sequence[Callable[..., Any]] | None,
    prompts_per_step: int,
    rm_batch_size: int,
    api_key: str | None,
    rollouts_path: str | os.PathLike | None,
    algo_defaults: dict[str, Any],
    trainer_cls: type,
    trainer_kwargs: dict[str, Any],
    parts: dict[str, list[str]],
    overrides: dict[str, Any],
) -> RLHFSetup:
    from trl import GRPOConfig

    env = list(env_rewards or [])
    _check(rm_mode, rm_coeff, kl_coeff, group_size, env)
    log = RolloutLog(rollouts_path)
    env_funcs = [EnvReward(f, log) for f in env]
    names = [f.__name__ for f in env_funcs]
    if len(set(names)) != len(names):
        raise ValueError(f"environment rewards need distinct names, got {names}")
    env_weight = 1.0 if rm_mode == "bonus" else 0.0
    rm_weight = float(rm_coeff) if rm_mode == "bonus" else 1.0
    weights = [env_weight] * len(env_funcs) + [rm_weight]
    log.weights = dict(zip(names + [RM_REWARD_NAME], weights, strict=True))

    settings: dict[str, Any] = {**COMMON_DEFAULTS, **algo_defaults}
    # no activation recomputation by default (it costs CPU time; small policies fit anyway);
    # transformers >= 5.2x calls it activation_checkpointing and warns about the old name
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    ckpt_key = (
        "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    )
    if not {"activation_checkpointing", "gradient_checkpointing"} & set(overrides):
        settings[ckpt_key] = False
    batch_keys = {"per_device_train_batch_size", "gradient_accumulation_steps", "generation_batch_size"}
    if not batch_keys & set(overrides):
        settings["per_device_train_batch_size"] = int(group_size) * int(prompts_per_step)
    settings.update(overrides)
    settings.update(num_generations=int(group_size), beta=float(kl_coeff), reward_weights=weights)
    settings.setdefault("output_dir", "runs/rlhf")
    config = GRPOConfig(**settings)  # checks the options before any model is loaded

    rm = load_rm(rm, api_key=api_key)
    rm_func = RMReward(rm, batch_size=rm_batch_size, rollout_log=log)
    return RLHFSetup(
        algo=algo,
        config=config,
        reward_funcs=[*env_funcs, rm_func],
        reward_weights=weights,
        trainer_cls=trainer_cls,
        rm=rm,
        rm_reward=rm_func,
        rollout_log=log,
        rm_mode=rm_mode,
        rm_coeff=float(rm_coeff),
        kl_coeff=float(kl_coeff),
        trainer_kwargs=trainer_kwargs,
        parts=parts,
    )


def make_grpo_with_rm(
    rm: Any,
    group_size: int = 8,
    rm_mode: str = "replace",
    rm_coeff: float = 0.5,
    kl_coeff: float = 0.0,
    *,
    env_rewards: Sequence[Callable[..., Any]] | None = None,
    prompts_per_step: int = 2,
    rm_batch_size: int = 16,
    api_key: str | None = None,
    rollouts_path: str | os.PathLike | None = None,
    **overrides: Any,
) -> RLHFSetup:
    """GRPO (TRL's defaults: group-normalised advantages, loss_type="dapo") with a reward model.

    `rm`: a RewardModel, a RemoteRewardModel, a model folder or the rewardforge server's URL
    (with `api_key`, default $REWARDFORGE_API_KEY). `env_rewards`: your TRL reward functions.
    `prompts_per_step` sets per_device_train_batch_size = group_size * prompts_per_step unless you
    pass a batch option. `rollouts_path`: a JSONL file receiving every rollout with its rm_score.
    `overrides` go to GRPOConfig (output_dir, max_completion_length, learning_rate, max_steps,
    use_cpu, bf16, ...)."""
    from rewardforge.rlhf.scalerl import GRPOTrainerFollowingPlan

    return _build(
        "grpo",
        rm,
        group_size=group_size,
        rm_mode=rm_mode,
        rm_coeff=rm_coeff,
        kl_coeff=kl_coeff,
        env_rewards=env_rewards,
        prompts_per_step=prompts_per_step,
        rm_batch_size=rm_batch_size,
        api_key=api_key,
        rollouts_path=rollouts_path,
        algo_defaults={},
        trainer_cls=GRPOTrainerFollowingPlan,
        trainer_kwargs={},
        parts=ENGINE_PARTS_GRPO,
        overrides=overrides,
    )


def make_scalerl_with_rm(
    rm: Any,
    group_size: int = 8,
    rm_mode: str = "replace",
    rm_coeff: float = 0.5,
    kl_coeff: float = 0.01,
    *,
    env_rewards: Sequence[Callable[..., Any]] | None = None,
    prompts_per_step: int = 2,
    rm_batch_size: int = 16,
    api_key: str | None = None,
    rollouts_path: str | os.PathLike | None = None,
    epsilon_max: float = 5.0,
    filter_zero_variance: bool = True,
    **overrides: Any,
) -> RLHFSetup:
    """ScaleRL (CISPO, batch-level advantage normalisation, prompt-level loss averaging,
    zero-variance prompt filtering) with a reward model and an optional KL penalty (`kl_coeff`,
    0 to turn it off). `epsilon_max` caps the CISPO importance weight (TRL's `epsilon_high`).
    Other arguments as `make_grpo_with_rm`; see rewardforge.rlhf.scalerl for what comes from TRL
    and what from us."""
    from rewardforge.rlhf.scalerl import ScaleRLTrainer

    if not (math.isfinite(epsilon_max) and epsilon_max >= 1.0):
        raise ValueError(f"epsilon_max must be >= 1 (it caps pi/pi_old), got {epsilon_max}")
    return _build(
        "scalerl",
        rm,
        group_size=group_size,
        rm_mode=rm_mode,
        rm_coeff=rm_coeff,
        kl_coeff=kl_coeff,
        env_rewards=env_rewards,
        prompts_per_step=prompts_per_step,
        rm_batch_size=rm_batch_size,
        api_key=api_key,
        rollouts_path=rollouts_path,
        algo_defaults={"loss_type": "cispo", "epsilon_high": float(epsilon_max), "scale_rewards": "batch"},
        trainer_cls=ScaleRLTrainer,
        trainer_kwargs={"filter_zero_variance": filter_zero_variance},
        parts=ENGINE_PARTS_SCALERL,
        overrides=overrides,
    )
