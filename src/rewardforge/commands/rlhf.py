"""`rewardforge rlhf`: optimise a policy against a reward model (GRPO or ScaleRL, TRL underneath)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

DESCRIPTION = """Cold-start RLHF: load the reward model, generate rollouts with the policy, score them with
the RM, update the policy (TRL GRPOTrainer), save it with summary.json.

Rewards: --mode replace  reward = RM score (env rewards, if any, are logged with weight 0)
         --mode bonus    reward = sum of env rewards + RM_COEFF * RM score
--algo grpo uses TRL's GRPO defaults; --algo scalerl uses CISPO (eps_max 5), batch-level advantage
normalisation, prompt-level loss averaging and zero-variance prompt filtering (docs/rlhf.md).

Prompts: one record per prompt, {"prompt": text or chat messages, ...extra columns such as "answer"},
as JSONL, JSON, Parquet, CSV, a saved dataset or - (JSONL on standard input).
--rm is a reward model folder or the URL of `rewardforge serve` (API key: --api-key or
$REWARDFORGE_API_KEY). Checkpoints are saved to OUT/checkpoints every --save-steps; --resume
continues the run in OUT from the newest one.

Examples:
  rewardforge rlhf --policy SmolLM2.gguf --rm runs/rm --prompts prompts.jsonl --output runs/rlhf --lora
  rewardforge rlhf --policy P --rm http://127.0.0.1:8000 --prompts math.jsonl --output runs/b \\
      --mode bonus --env-reward exact_match --rm-coeff 0.5 --algo scalerl --steps 30
  rewardforge rlhf ... --output runs/b --resume
"""


def _kv(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    if value.strip().lower() in ("true", "false"):  # True/False, as HfArgumentParser takes them
        return key.replace("-", "_"), value.strip().lower() == "true"
    try:
        return key.replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.replace("-", "_"), value


def build_parser() -> argparse.ArgumentParser:
    from rewardforge.commands.checks import OneLineParser, integer, number, path_text

    p = OneLineParser(prog="rewardforge rlhf", description=DESCRIPTION)
    p.add_argument("--policy", required=True, help="causal LM folder, .gguf file or LoRA adapter folder")
    p.add_argument("--rm", required=True, help="reward model folder, or http(s) URL of `rewardforge serve`")
    p.add_argument(
        "--prompts",
        required=True,
        help='prompts: {"prompt": text or messages, ...} a record, as JSONL, JSON, Parquet, CSV or a saved dataset',
    )
    p.add_argument(
        "--output", required=True, type=path_text, help="run folder: policy, summary.json, checkpoints/"
    )
    p.add_argument(
        "--mode",
        choices=["replace", "bonus"],
        default="replace",
        help="what the reward is (see Rewards above)",
    )
    p.add_argument(
        "--rm-coeff", type=float, default=0.5, help="RM weight in bonus mode (default: %(default)s)"
    )
    p.add_argument(
        "--kl-coeff", type=float, default=None, help="KL penalty beta (default: grpo 0.0, scalerl 0.01)"
    )
    p.add_argument("--algo", choices=["grpo", "scalerl"], default="grpo", help="the loss (see above)")
    p.add_argument("--steps", type=int, default=30, help="optimizer steps (default: %(default)s)")
    p.add_argument("--group-size", type=int, default=4, help="rollouts per prompt (default: %(default)s)")
    p.add_argument("--prompts-per-step", type=int, default=2, help="prompts per step (default: %(default)s)")
    p.add_argument("--max-completion-length", type=int, default=128, help="tokens per rollout (default: 128)")
    p.add_argument("--temperature", type=number(above=0), default=1.0, help="sampling temperature")
    p.add_argument(
        "--learning-rate", type=number(above=0), default=None, help="default: 1e-5, or 1e-4 with --lora"
    )
    p.add_argument(
        "--env-reward",
        action="append",
        default=[],
        metavar="NAME",
        help="environment reward: exact_match, contains_answer, complete_sentence, module:function or file.py:function "
        "(repeatable; reads dataset columns such as 'answer')",
    )
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter (r 16, all linear layers)")
    p.add_argument(
        "--lora-r", type=integer(1), default=16, help="with --lora: the adapters' rank (default 16)"
    )
    p.add_argument(
        "--lora-alpha",
        type=integer(1),
        default=32,
        help="with --lora: the adapters' scale alpha (default 32)",
    )
    p.add_argument(
        "--save-adapter", action="store_true", help="save only the LoRA adapter, not a merged model"
    )
    p.add_argument("--use-vllm", action="store_true", help="generate with vLLM (GPU; needs vllm installed)")
    p.add_argument(
        "--api-key", default=None, help="API key of the reward server (default: $REWARDFORGE_API_KEY)"
    )
    p.add_argument("--rm-batch-size", type=integer(1), default=16, help="RM forward batch (in process)")
    p.add_argument("--max-prompts", type=integer(1), default=None, help="use the first N prompts only")
    p.add_argument(
        "--save-steps", type=int, default=10, help="checkpoint every N steps (default: %(default)s)"
    )
    p.add_argument(
        "--seed", type=integer(0, 2**32 - 1), default=42, help="seed of sampling, LoRA init and data order"
    )
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for training forward passes")
    p.add_argument(
        "--epsilon-max",
        type=number(above=0),
        default=5.0,
        help="scalerl: CISPO importance-weight cap (default 5)",
    )
    p.add_argument(
        "--threads", type=integer(1), default=None, help="torch CPU threads (default: torch's choice)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --output from its last checkpoint"
    )
    p.add_argument(
        "--grpo-arg",
        action="append",
        default=[],
        type=_kv,
        metavar="KEY=VALUE",
        help="any other GRPOConfig option, e.g. --grpo-arg top_p=0.9 --grpo-arg mask_truncated_completions=true "
        "(an option rewardforge sets, such as max_steps or learning_rate, is refused: use its own flag)",
    )
    return p


def main(argv: list[str]) -> int:
    from rewardforge.training.run import UsageError

    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from rewardforge.rlhf.remote import RemoteRMError
    from rewardforge.rlhf.run import RLHFOptions, run_rlhf

    opts = RLHFOptions(
        policy=args.policy,
        rm=args.rm,
        prompts=args.prompts,
        output=args.output,
        mode=args.mode,
        rm_coeff=args.rm_coeff,
        kl_coeff=args.kl_coeff,
        algo=args.algo,
        steps=args.steps,
        group_size=args.group_size,
        prompts_per_step=args.prompts_per_step,
        max_completion_length=args.max_completion_length,
        temperature=args.temperature,
        learning_rate=args.learning_rate,
        lora=args.lora,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        save_adapter=args.save_adapter,
        use_vllm=args.use_vllm,
        env_rewards=list(args.env_reward),
        api_key=args.api_key or os.environ.get("REWARDFORGE_API_KEY") or None,
        rm_batch_size=args.rm_batch_size,
        max_prompts=args.max_prompts,
        save_steps=args.save_steps,
        seed=args.seed,
        bf16=args.bf16,
        resume=args.resume,
        epsilon_max=args.epsilon_max,
        grpo_overrides=dict(args.grpo_arg),
    )
    try:
        run_rlhf(opts)
    except RemoteRMError as e:
        print(f"rewardforge rlhf: reward server error: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as e:
        # option values the config refuses (e.g. a batch not divisible by the group size): exit 2
        if not isinstance(e, UsageError) and _from_config(e):
            raise UsageError(str(e)) from None
        raise
    return 0


def _from_config(exc: BaseException) -> bool:
    """True if the error was raised while checking options (GRPOConfig, TrainingArguments, ours)."""
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith(("grpo_config.py", "training_args.py", "env_rewards.py", "recipes.py")):
            return True
        tb = tb.tb_next
    return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
