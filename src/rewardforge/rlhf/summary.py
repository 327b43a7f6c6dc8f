"""summary.json of an RLHF run, from the trainer's log history (restored with a checkpoint, so a
resumed run's summary covers every step)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rewardforge.rlhf.rewards import RM_REWARD_NAME


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def step_records(log_history: Sequence[dict[str, Any]], env_names: Sequence[str]) -> list[dict[str, Any]]:
    """One record per logged training step: the RM score's mean/std/min/max, each env reward's
    mean, env_reward (their sum, unweighted), the total reward TRL optimised, KL, loss, entropy,
    completion length and step time."""
    out = []
    for entry in log_history:
        if "step" not in entry or "loss" not in entry and f"{RM_REWARD_NAME}/mean" not in entry:
            continue
        rec: dict[str, Any] = {"step": entry["step"]}
        for key in ("mean", "std", "min", "max"):
            rec[f"rm_score_{key}"] = _num(entry.get(f"{RM_REWARD_NAME}/{key}"))
        env = {name: _num(entry.get(f"rewards/{name}/mean")) for name in env_names}
        if env:
            rec["env"] = env
            values = [v for v in env.values() if v is not None]
            rec["env_reward"] = sum(values) if values else None
        rec["reward"] = _num(entry.get("reward"))
        rec["kl"] = _num(entry.get("kl"))
        for key, name in (
            ("loss", "loss"),
            ("entropy", "entropy"),
            ("frac_reward_zero_std", "frac_reward_zero_std"),
            ("completions/mean_length", "completion_mean_length"),
            ("step_time", "step_time_s"),
            ("scalerl/kept_prompt_frac", "kept_prompt_frac"),
        ):
            if key in entry:
                rec[name] = _num(entry[key])
        out.append(rec)
    return out


def summarise(
    log_history: Sequence[dict[str, Any]], env_names: Sequence[str], **extra: Any
) -> dict[str, Any]:
    steps = step_records(log_history, env_names)

    def first_last(key: str) -> dict[str, float | None]:
        values = [s[key] for s in steps if s.get(key) is not None]
        return {"first": values[0] if values else None, "last": values[-1] if values else None}

    out: dict[str, Any] = {**extra, "steps_logged": len(steps)}
    out["rm_score_mean"] = first_last("rm_score_mean")
    if env_names:
        out["env_reward"] = first_last("env_reward")
    out["kl"] = first_last("kl")
    out["per_step"] = steps
    return out
