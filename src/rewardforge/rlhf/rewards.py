"""Reward functions for TRL's GRPOTrainer: the reward model's score (`RMReward`, logged as
`rm_score`) and the user's own environment rewards (`EnvReward` wraps any TRL reward function).

TRL calls every reward function with the raw prompts (chat messages, before the policy's chat
template), the completions (assistant message lists, or strings for text prompts) and every
extra dataset column repeated per generation. The RM formats the conversation its own way (its
saved text format), so the policy's template and the RM's format may differ.

TRL combines the functions as sum_k w_k * reward_k (`reward_weights`) and logs each under its
own name (`rewards/<name>/mean`, `rewards/<name>/std`). `RMReward` also logs the RM score's
mean, std, min and max per generation batch (`rm_score/mean` ...), puts each rollout's score in
the completions table (`log_extra("rm_score")`) and, with a `RolloutLog`, writes one JSON line
per rollout: step, prompt, completion, rm_score, each env reward and the weighted total.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

RM_REWARD_NAME = "rm_score"
TOOL_KEYS = ("tool_calls", "name", "tool_call_id")


def _messages(value: Any, role: str) -> Any:
    """Chat messages as RewardModel and the server take them (role, content, tool calls);
    strings unchanged."""
    if isinstance(value, str) or value is None:
        return value
    out = []
    for m in value:
        if not isinstance(m, dict) or "role" not in m:  # a KeyError deep in here said nothing
            raise ValueError(f"expected chat messages with a role, got {m!r:.80}")
        out.append(
            {"role": m["role"], "content": m.get("content") or "", **{k: m[k] for k in TOOL_KEYS if m.get(k)}}
        )
    return out


def score_stats(scores: Sequence[float]) -> dict[str, float]:
    """mean, std (unbiased, as TRL's nanstd), min and max of the finite scores."""
    values = torch.tensor([s for s in scores if s is not None and math.isfinite(s)], dtype=torch.float64)
    if values.numel() == 0:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    std = values.std().item() if values.numel() > 1 else 0.0
    return {
        "mean": values.mean().item(),
        "std": std,
        "min": values.min().item(),
        "max": values.max().item(),
    }


def weighted_total(per_func: dict[str, Sequence[float | None]], weights: dict[str, float]) -> list[float]:
    """TRL's combination (multi_objective_aggregation="sum_then_normalize"): for each rollout,
    sum_k w_k * r_k over the functions that gave a reward (None/NaN counts as absent: nansum);
    NaN when no function gave one. The hand-computed tests check our setups against this."""
    names = list(per_func)
    n = len(next(iter(per_func.values()))) if per_func else 0
    ragged = {k: len(v) for k, v in per_func.items() if len(v) != n}
    if ragged:
        raise ValueError(f"every reward needs one value per rollout ({n}), got {ragged}")
    missing = [k for k in names if k not in weights]
    if missing:
        raise ValueError(f"no weight for reward(s) {missing}")
    table = torch.tensor(
        [[math.nan if per_func[k][i] is None else float(per_func[k][i]) for k in names] for i in range(n)],
        dtype=torch.float32,
    ).reshape(n, len(names))
    w = torch.tensor([weights[k] for k in names], dtype=torch.float32)
    total = (table * w.unsqueeze(0)).nansum(dim=1)
    total[torch.isnan(table).all(dim=1)] = math.nan
    return total.tolist()


class RolloutLog:
    """Collects each generation batch's rewards and appends one JSON line per rollout to `path`
    (another process writes `NAME.rankN.jsonl`). The RM reward runs last and writes the batch;
    env rewards computed before it in the same batch are included. `step` is the optimizer step
    the rollouts are generated for (the trainer's global_step + 1), as in the trainer's log."""

    def __init__(self, path: str | os.PathLike | None, weights: dict[str, float] | None = None):
        self.path = Path(path) if path is not None else None
        self.weights = dict(weights or {})
        self._pending: dict[str, list[float | None]] = {}
        self._lock = threading.Lock()

    def note(self, name: str, values: Sequence[float | None]) -> None:
        with self._lock:
            self._pending[name] = list(values)

    def write_batch(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        rm_scores: Sequence[float],
        step: int | None,
    ) -> list[dict[str, Any]]:
        with self._lock:
            env = {k: v for k, v in self._pending.items() if len(v) == len(rm_scores)}
            self._pending.clear()
        per_func = {**env, RM_REWARD_NAME: list(rm_scores)}
        totals = (
            weighted_total(per_func, {k: self.weights.get(k, 1.0) for k in per_func})
            if self.weights
            else [None] * len(rm_scores)
        )
        rows = []
        for i, (p, c, s) in enumerate(zip(prompts, completions, rm_scores, strict=True)):
            row: dict[str, Any] = {"step": step, "prompt": p, "completion": c, RM_REWARD_NAME: s}
            if env:
                row["env"] = {k: v[i] for k, v in env.items()}
            if totals[i] is not None:
                row["reward"] = None if math.isnan(totals[i]) else totals[i]
            rows.append(row)
        if self.path is not None:
            path = self.path
            rank = int(os.environ.get("RANK", "0"))
            if rank:  # each process writes the rollouts it generated
                path = path.with_name(f"{path.stem}.rank{rank}{path.suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        return rows


def score_groups_with(
    rm: Any, groups: Sequence[tuple[Any, Sequence[Any]]], batch_size: int = 16
) -> list[float]:
    """Flat scores of (prompt, completions) groups (a GRPO group, one prompt's best-of-N
    candidates): each group scored together, so a long prompt is cut once for all its
    completions and they are compared on equal context. An RM object without `score_groups`
    scores each completion alone."""
    if hasattr(rm, "score_groups"):
        return [s for scores in rm.score_groups(groups, batch_size=batch_size) for s in scores]
    return list(rm.score_batch([(p, c) for p, cs in groups for c in cs], batch_size=batch_size))


def consecutive_groups(items: Sequence[tuple[Any, Any]]) -> list[tuple[Any, list[Any]]]:
    """(prompt, completion) items as groups of consecutive equal prompts: TRL repeats each prompt
    once per completion of its group, one after another."""
    groups: list[tuple[Any, list[Any]]] = []
    last = object()
    for prompt, completion in items:
        key = json.dumps(prompt, sort_keys=True, default=str)
        if key != last:
            groups.append((prompt, []))
            last = key
        groups[-1][1].append(completion)
    return groups


class RMReward:
    """The RM score of each rollout, as a TRL reward function named `rm_score`.

    One call scores the whole generation batch, each prompt's group of completions together
    (`score_groups_with`): a long prompt is cut once for the group, and in process the prompt is
    computed once per group; remote, the group travels in one request."""

    def __init__(self, rm: Any, *, batch_size: int = 16, rollout_log: RolloutLog | None = None):
        from rewardforge.inference import RewardEnsemble

        self.rm = rm.mean() if isinstance(rm, RewardEnsemble) else rm  # an ensemble rewards its mean
        self.batch_size = batch_size
        self.rollout_log = rollout_log
        self.__name__ = RM_REWARD_NAME  # TRL names the reward (and its log keys) after this
        self.last_scores: list[float] = []

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        if len(prompts) != len(completions):  # zip would score the shorter list alone
            raise ValueError(
                f"{len(prompts)} prompt(s) for {len(completions)} completion(s): TRL gives one each"
            )
        items = [(_messages(p, "user"), _messages(c, "assistant")) for p, c in zip(prompts, completions)]
        scores = [float(s) for s in score_groups_with(self.rm, consecutive_groups(items), self.batch_size)]
        if len(scores) != len(items):
            raise RuntimeError(f"the reward model returned {len(scores)} scores for {len(items)} rollouts")
        self.last_scores = scores
        log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
        if log_metric is not None:
            for key, value in score_stats(scores).items():
                log_metric(f"{RM_REWARD_NAME}/{key}", value)
        log_extra = kwargs.get("log_extra")
        if log_extra is not None:
            log_extra(RM_REWARD_NAME, scores)
        if self.rollout_log is not None:
            state = kwargs.get("trainer_state")
            step = getattr(state, "global_step", None)
            self.rollout_log.write_batch(prompts, completions, scores, None if step is None else step + 1)
        return scores


class EnvReward:
    """A user's reward function (TRL signature: f(prompts, completions, **columns) -> list of
    float or None), under its own name, with its values noted for the rollout log."""

    def __init__(self, func: Callable[..., Sequence[float | None]], rollout_log: RolloutLog | None = None):
        from trl.trainer.utils import get_callable_name

        self.func = func
        self.rollout_log = rollout_log
        self.__name__ = get_callable_name(func)
        if self.__name__ == RM_REWARD_NAME:
            raise ValueError(f"an environment reward cannot be named {RM_REWARD_NAME!r} (the RM's name)")

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any
    ) -> list[float | None]:
        values = list(self.func(prompts=prompts, completions=completions, **kwargs))
        if self.rollout_log is not None:
            self.rollout_log.note(self.__name__, values)
        return values
