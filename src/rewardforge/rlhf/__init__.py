"""Policy optimisation against a rewardforge reward model (TRL's GRPOTrainer underneath).

- `make_grpo_with_rm(rm, group_size, rm_mode, rm_coeff, kl_coeff, env_rewards=..., **GRPOConfig)`
  and `make_scalerl_with_rm(...)` return an `RLHFSetup`: config, reward functions, weights and
  the trainer class; `setup.trainer(model, dataset)` builds the trainer.
- The RM is a `RewardModel` (in process) or a `RemoteRewardModel` (the rewardforge server's URL
  and API key); `load_rm` picks by spec.
- `best_of_n` samples N responses per prompt and keeps the RM's favourite.
- `prompts_from_pairs` builds a prompt set from preference pairs (e.g. HH-RLHF);
  `arithmetic_prompts` a verifiable one for environment rewards (`exact_match`, ...).
"""

from rewardforge.rlhf.bon import best_of_n, summarise_bon
from rewardforge.rlhf.env_rewards import complete_sentence, contains_answer, exact_match, load_env_reward
from rewardforge.rlhf.prompts import arithmetic_prompts, prompts_dataset, prompts_from_pairs, read_prompts
from rewardforge.rlhf.recipes import RLHFSetup, make_grpo_with_rm, make_scalerl_with_rm
from rewardforge.rlhf.remote import RemoteRewardModel, RemoteRMError, load_rm
from rewardforge.rlhf.rewards import RM_REWARD_NAME, EnvReward, RMReward, RolloutLog, weighted_total

__all__ = [
    "RM_REWARD_NAME",
    "EnvReward",
    "RLHFSetup",
    "RMReward",
    "RemoteRMError",
    "RemoteRewardModel",
    "RolloutLog",
    "arithmetic_prompts",
    "best_of_n",
    "complete_sentence",
    "contains_answer",
    "exact_match",
    "load_env_reward",
    "load_rm",
    "make_grpo_with_rm",
    "make_scalerl_with_rm",
    "prompts_dataset",
    "prompts_from_pairs",
    "read_prompts",
    "summarise_bon",
    "weighted_total",
]
