"""`rewardforge bon`: best-of-N sampling with a policy and a reward model."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

DESCRIPTION = """Best-of-N: sample N responses per prompt with the policy, score them with the reward model,
keep the best. Writes one JSON line per prompt (every candidate with its score, the best, its
index) to OUTPUT and the means to OUTPUT's .summary.json (or --summary): mean_score (all candidates: what one
sample gets), mean_best_score and their difference. Both files are written atomically.

Use --n 1 (or --greedy) on held-out prompts to score a policy before and after `rewardforge rlhf`.

Examples:
  rewardforge bon --policy SmolLM2.gguf --rm runs/rm --prompts prompts.jsonl --n 8 --output bon.jsonl
  rewardforge bon --policy runs/rlhf --rm http://127.0.0.1:8000 --prompts heldout.jsonl --n 4 --output after.jsonl
"""


def build_parser() -> argparse.ArgumentParser:
    from rewardforge.commands.checks import OneLineParser, integer, number, output_file_text

    p = OneLineParser(prog="rewardforge bon", description=DESCRIPTION)
    p.add_argument("--policy", required=True, help="causal LM folder, .gguf file or LoRA adapter folder")
    p.add_argument("--rm", required=True, help="reward model folder, or http(s) URL of `rewardforge serve`")
    p.add_argument(
        "--prompts",
        required=True,
        help='prompts: {"prompt": text or messages, ...} a record, as JSONL, JSON, Parquet, CSV or a saved dataset',
    )
    p.add_argument(
        "--output",
        required=True,
        type=output_file_text,
        help="results JSONL (summary beside it: .summary.json); - is standard output",
    )
    p.add_argument(
        "--summary",
        type=output_file_text,
        default=None,
        help="summary JSON (default: OUTPUT's name with .summary.json; needed when OUTPUT is a "
        "stream such as /dev/stdout)",
    )
    p.add_argument("--n", type=integer(1), default=8, help="candidates per prompt (default: %(default)s)")
    p.add_argument(
        "--max-new-tokens",
        type=integer(1),
        default=128,
        help="longest candidate, in tokens (default: %(default)s)",
    )
    p.add_argument(
        "--temperature", type=number(above=0), default=1.0, help="sampling temperature (default: %(default)s)"
    )
    p.add_argument(
        "--top-p",
        type=number(above=0, high=1),
        default=1.0,
        help="nucleus sampling mass (default: %(default)s)",
    )
    p.add_argument("--greedy", action="store_true", help="one greedy response per prompt (n = 1)")
    p.add_argument(
        "--env-reward",
        action="append",
        default=[],
        metavar="NAME",
        help="also report an environment reward per candidate (exact_match, contains_answer, complete_sentence, "
        "module:function or path/file.py:function); "
        "the RM still picks the best",
    )
    p.add_argument("--max-prompts", type=integer(1), default=None, help="use the first N prompts only")
    p.add_argument("--prompts-per-batch", type=integer(1), default=4, help="prompts per generate() call")
    p.add_argument(
        "--rm-batch-size",
        type=integer(1),
        default=16,
        help="candidates per reward-model batch (default: %(default)s)",
    )
    p.add_argument(
        "--api-key", default=None, help="API key of the reward server (default: $REWARDFORGE_API_KEY)"
    )
    p.add_argument(
        "--seed",
        type=integer(0, 2**32 - 1),
        default=0,
        help="sampling seed: the same seed with the same prompts, --max-prompts and --prompts-per-batch "
        "gives the same candidates again (the batches draw from one random stream) (default: %(default)s)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument(
        "--threads", type=integer(1), default=None, help="torch CPU threads (default: torch's choice)"
    )
    return p


def summary_path(output: Path, summary: str | None = None) -> Path:
    if summary:
        return Path(summary)
    stem = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    return output.with_name(stem + ".summary.json")


def main(argv: list[str]) -> int:
    from rewardforge.commands.checks import (
        check_device,
        check_not_inside,
        check_output_file,
        is_stream,
        same_path,
        shown,
    )
    from rewardforge.training.run import UsageError

    args = build_parser().parse_args(argv)
    output = Path(args.output)
    summary_file = summary_path(output, args.summary)
    if not args.summary and is_stream(output):
        raise UsageError(f"--output {shown(output)} is a stream: name the summary file with --summary FILE")
    if same_path(summary_file, output):
        raise UsageError(f"--summary {summary_file} is the --output file; choose another name")
    # before any generation: a run must not do all its work and then fail to write the result
    summary_what = "--summary" if args.summary else "--output's summary file"
    for path, what in ((output, "--output"), (summary_file, summary_what)):
        for option in ("--prompts", "--policy", "--rm"):
            if same_path(path, getattr(args, option[2:])):
                raise UsageError(f"{what} {path} is the {option} file; choose another name")
        for option in ("--policy", "--rm"):
            check_not_inside(path, getattr(args, option[2:]), what, option)
        check_output_file(path, what)
    check_device(args.device)
    if args.greedy and any(a == "--n" or a.startswith("--n=") for a in argv) and args.n != 1:
        raise UsageError(f"--greedy makes one candidate per prompt; drop --n {args.n} or --greedy")
    if args.greedy:
        args.n = 1
    import torch
    from transformers import set_seed

    if args.threads:
        torch.set_num_threads(args.threads)
    from rewardforge.files import write_together
    from rewardforge.rlhf.bon import best_of_n, summarise_bon
    from rewardforge.rlhf.env_rewards import load_env_reward, missing_column_problem
    from rewardforge.rlhf.policy import check_chat_template, check_prompt_room, load_policy
    from rewardforge.rlhf.prompts import read_prompts
    from rewardforge.rlhf.remote import RemoteRMError, load_rm

    try:
        env_rewards = [load_env_reward(spec) for spec in args.env_reward]
    except ValueError as e:
        raise UsageError(str(e)) from None
    names = [f.__name__ for f in env_rewards]
    if len(set(names)) != len(names):  # results name each value by its function (rlhf refuses it too)
        raise UsageError(f"--env-reward: each needs its own function name, got {', '.join(names)}")
    records = read_prompts(args.prompts, limit=args.max_prompts)
    problem = missing_column_problem(args.env_reward, records, args.prompts, args.max_prompts)
    if problem:
        raise UsageError(problem)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    api_key = args.api_key or os.environ.get("REWARDFORGE_API_KEY") or None
    try:
        rm = load_rm(args.rm, api_key=api_key, device=device)  # a server: its limits, before generating
    except RemoteRMError as e:
        print(f"rewardforge bon: reward server error: {e}", file=sys.stderr)
        return 1
    model, tokenizer = load_policy(args.policy, device=device)
    check_chat_template(tokenizer, args.policy)
    check_prompt_room(
        tokenizer, model, records, args.max_new_tokens, args.prompts, "--max-new-tokens", generation_only=True
    )
    set_seed(args.seed)
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        rate = (time.monotonic() - started) / max(done, 1)
        print(f"bon: {done}/{total} prompts, ~{rate * (total - done):.0f}s left", file=sys.stderr, flush=True)

    try:
        results = best_of_n(
            model,
            tokenizer,
            rm,
            records,
            args.n,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            greedy=args.greedy,
            prompts_per_batch=args.prompts_per_batch,
            rm_batch_size=args.rm_batch_size,
            env_rewards=env_rewards,
            progress=progress,
        )
    except RemoteRMError as e:
        print(f"rewardforge bon: reward server error: {e}", file=sys.stderr)
        return 1
    summary = summarise_bon(
        results,
        policy=args.policy,
        rm=args.rm,
        prompts_file=args.prompts,
        n=args.n,
        greedy=args.greedy,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
        seconds=round(time.monotonic() - started, 1),
        # every option, so the record reruns the run (--top-p, --max-prompts and
        # --prompts-per-batch decide the candidates too; helper 85)
        options={k: ("***" if k == "api_key" and v else v) for k, v in sorted(vars(args).items())},
    )
    write_together(  # the results and their summary: both new, or both as they were
        {
            output: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results),
            summary_file: json.dumps(summary, indent=2) + "\n",
        }
    )
    env = "".join(
        f", {name} {_fmt(v['mean'])} (best {_fmt(v['mean_of_best'])})"
        for name, v in summary.get("env", {}).items()
    )
    print(
        f"bon: {summary['prompts']} prompts x {args.n}: mean score {summary['mean_score']:.4f}, "
        f"mean best {summary['mean_best_score']:.4f} (gain {summary['best_of_n_gain']:.4f}){env}; "
        f"wrote {output} and {summary_file}",
        file=sys.stderr,  # `--output -` is the JSONL stream on stdout
    )
    return 0


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
