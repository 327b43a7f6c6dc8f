"""Best-of-N: sample N responses per prompt with the policy, score them with the RM, keep the best.

The policy renders each prompt with its own chat template; the RM scores (prompt, response) with
its own text format, each prompt's N candidates in one group (the prompt is computed once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rewardforge.rlhf.rewards import score_groups_with


@torch.no_grad()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[list[dict[str, str]]],
    n: int,
    *,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_p: float = 1.0,
    greedy: bool = False,
) -> list[list[str]]:
    """N sampled completions (text, special tokens removed) for each prompt."""
    texts = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    if greedy:
        kwargs.update(do_sample=False, num_return_sequences=1)
    else:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0, num_return_sequences=n)
    out = model.generate(**enc, **kwargs)
    new = out[:, enc["input_ids"].shape[1] :]
    decoded = tokenizer.batch_decode(new, skip_special_tokens=True)
    per = 1 if greedy else n
    return [[d.strip() for d in decoded[i * per : (i + 1) * per]] for i in range(len(prompts))]


def best_of_n(
    model: Any,
    tokenizer: Any,
    rm: Any,
    records: Sequence[dict[str, Any]],
    n: int = 8,
    *,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    top_p: float = 1.0,
    greedy: bool = False,
    prompts_per_batch: int = 4,
    rm_batch_size: int = 16,
    env_rewards: Sequence[Callable[..., Sequence[float | None]]] = (),
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """One result per prompt record ({"prompt": messages, ...}): every candidate with its score,
    the best one (highest RM score; the first on ties) and its index. `greedy` takes one greedy
    response (n is then 1). `env_rewards` (TRL reward functions, e.g. exact_match, reading the
    record's other columns) are reported per candidate under "env"; they do not pick the best."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    model.eval()
    results: list[dict[str, Any]] = []
    for start in range(0, len(records), prompts_per_batch):
        chunk = records[start : start + prompts_per_batch]
        prompts = [r["prompt"] for r in chunk]
        candidates = generate(
            model,
            tokenizer,
            prompts,
            n,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            greedy=greedy,
        )
        # each record's candidates as one group: compared on equal context, as rank compares them
        scores = score_groups_with(rm, list(zip(prompts, candidates)), batch_size=rm_batch_size)
        broken = next((i for i, x in enumerate(scores) if not math.isfinite(float(x))), None)
        if broken is not None:  # a mean or a best of NaN is no result (and NaN is no JSON)
            from rewardforge.modeling import ModelLoadError

            raise ModelLoadError(
                f"the reward model gave a non-finite score ({float(scores[broken])}) to a candidate of "
                f"prompt {start + [i for i, cands in enumerate(candidates) for _ in cands][broken]}; its "
                "weights may be broken or the dtype too narrow (try --dtype fp32)"
            )
        env = _env_values(env_rewards, chunk, candidates)
        k = 0
        for offset, (rec, cands) in enumerate(zip(chunk, candidates)):
            cand_scores = [float(s) for s in scores[k : k + len(cands)]]
            k += len(cands)
            best = max(range(len(cands)), key=lambda i: (cand_scores[i], -i))  # the first on ties
            out: dict[str, Any] = {"index": start + offset}
            if rec.get("id") is not None:
                out["id"] = rec["id"]
            out.update(
                prompt=rec["prompt"],
                best=cands[best],
                best_score=cand_scores[best],
                best_index=best,
                candidates=[{"text": c, "score": s} for c, s in zip(cands, cand_scores)],
            )
            for name, values in env.items():
                for j, cand in enumerate(out["candidates"]):
                    cand.setdefault("env", {})[name] = values[k - len(cands) + j]
            results.append(out)
        if progress is not None:
            progress(len(results), len(records))
    return results


def _env_values(
    env_rewards: Sequence[Callable[..., Sequence[float | None]]],
    records: Sequence[dict[str, Any]],
    candidates: Sequence[Sequence[str]],
) -> dict[str, list[float | None]]:
    """Each env reward over all candidates of a chunk, called as TRL calls it (completions as
    assistant messages, the record's other columns repeated per candidate)."""
    if not env_rewards:
        return {}
    from trl.trainer.utils import get_callable_name

    rows = [(rec, c) for rec, cands in zip(records, candidates) for c in cands]
    columns = {k for rec in records for k in rec if k != "prompt"}
    kwargs = {k: [rec.get(k) for rec, _ in rows] for k in columns}
    prompts = [rec["prompt"] for rec, _ in rows]
    completions = [[{"role": "assistant", "content": c}] for _, c in rows]
    return {
        get_callable_name(f): list(f(prompts=prompts, completions=completions, **kwargs)) for f in env_rewards
    }


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def summarise_bon(results: Sequence[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Mean score of all candidates (what one sample gets on average), of the best, and the gain;
    the same for each env reward (best = the RM's pick)."""
    all_scores = [c["score"] for r in results for c in r["candidates"]]
    best = [r["best_score"] for r in results]
    mean_all = sum(all_scores) / len(all_scores) if all_scores else math.nan
    mean_best = sum(best) / len(best) if best else math.nan
    out = {
        **extra,
        "prompts": len(results),
        "candidates": len(all_scores),
        "mean_score": mean_all,
        "mean_best_score": mean_best,
        "best_of_n_gain": mean_best - mean_all,
    }
    names = sorted({n for r in results for c in r["candidates"] for n in c.get("env", {})})
    if names:
        out["env"] = {
            n: {
                "mean": _mean([c.get("env", {}).get(n) for r in results for c in r["candidates"]]),
                "mean_of_best": _mean(
                    [r["candidates"][r["best_index"]].get("env", {}).get(n) for r in results]
                ),
            }
            for n in names
        }
    return out
