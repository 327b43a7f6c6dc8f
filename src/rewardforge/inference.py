"""RewardModel: score conversations with a trained reward model, in process.

It renders text with the format saved in `rewardforge.json` (the one used in training), sorts
work by length to cut padding, and returns results in input order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from rewardforge.data.types import CHAT_ROLES, Message
from rewardforge.modeling import load_reward_model
from rewardforge.tokenization import tokenize_group
from rewardforge.training.collator import pad_sequences

PromptLike = str | Sequence[Message] | None
ResponseLike = str | Sequence[Message]


def as_messages(value: PromptLike, default_role: str) -> list[Message]:
    """A string becomes one message of `default_role`; a message list is checked and copied."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    messages = []
    for i, m in enumerate(value):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("content"), str)
            or m.get("role") not in CHAT_ROLES
        ):
            raise ValueError(f"message {i} must be {{'role': one of {sorted(CHAT_ROLES)}, 'content': str}}")
        messages.append({"role": m["role"], "content": m["content"]})
    return messages


def _item(item: Any) -> tuple[list[Message], list[Message]]:
    if isinstance(item, dict):
        return as_messages(item.get("prompt"), "user"), as_messages(item["response"], "assistant")
    prompt, response = item
    return as_messages(prompt, "user"), as_messages(response, "assistant")


class RewardModel:
    """A trained reward model. `score` returns the raw reward (a logit; higher is better)."""

    def __init__(self, loaded, *, max_length: int | None = None, device: str | None = None):
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.tokenizer = loaded.tokenizer
        self.text_format = loaded.text_format
        meta_len = loaded.meta.get("max_length")
        self.max_length = int(
            max_length or meta_len or min(getattr(self.tokenizer, "model_max_length", 4096), 4096)
        )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str,
        *,
        max_length: int | None = None,
        device: str | None = None,
        dtype: str = "fp32",
    ) -> RewardModel:
        """Load a folder saved by rewardforge (or any one-output HF classifier: then the format is
        the tokenizer's chat template if it has one, else the plain format)."""
        loaded = load_reward_model(path_or_hub_id, dtype=dtype, seed=0)
        return cls(loaded, max_length=max_length, device=device)

    @staticmethod
    def ensemble(models: Iterable[RewardModel | str]) -> RewardEnsemble:
        return RewardEnsemble(
            [m if isinstance(m, RewardModel) else RewardModel.from_pretrained(m) for m in models]
        )

    # ---- text ---------------------------------------------------------------------------
    def format_text(self, prompt: PromptLike, response: ResponseLike) -> str:
        """The exact text the model scores (what to pass to transformers.pipeline)."""
        messages = as_messages(prompt, "user") + as_messages(response, "assistant")
        return self.text_format.render(self.tokenizer, messages)

    # ---- scoring ------------------------------------------------------------------------
    def score(self, prompt: PromptLike, response: ResponseLike) -> float:
        return self.score_batch([(prompt, response)])[0]

    def score_batch(self, items: Sequence[Any], batch_size: int = 16) -> list[float]:
        """Scores of (prompt, response) pairs or {"prompt", "response"} dicts, in input order."""
        seqs = []
        for item in items:
            prompt, response = _item(item)
            seqs.append(
                tokenize_group(self.tokenizer, self.text_format, prompt, [response], self.max_length).ids[0]
            )
        return self.score_token_ids(seqs, batch_size=batch_size)

    @torch.no_grad()
    def score_token_ids(self, seqs: list[list[int]], batch_size: int = 16) -> list[float]:
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out: list[float] = [math.nan] * len(seqs)
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = pad_sequences([seqs[i] for i in idx], pad)
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            for i, value in zip(idx, logits.squeeze(-1).float().tolist()):
                out[i] = value
        return out

    def compare(self, prompt: PromptLike, a: ResponseLike, b: ResponseLike) -> float:
        """P(a preferred over b) = sigmoid(r_a - r_b) under the Bradley-Terry model."""
        r_a, r_b = self.score_batch([(prompt, a), (prompt, b)])
        return 1.0 / (1.0 + math.exp(-(r_a - r_b)))

    def rank(self, prompt: PromptLike, responses: Sequence[ResponseLike]) -> list[tuple[int, float]]:
        """(index, score) of each response, best first."""
        scores = self.score_batch([(prompt, r) for r in responses])
        return sorted(enumerate(scores), key=lambda t: -t[1])


class RewardEnsemble:
    """Several reward models: the mean score, with their standard deviation as uncertainty."""

    def __init__(self, models: list[RewardModel]):
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.models = models

    def score_batch(self, items: Sequence[Any], batch_size: int = 16) -> list[tuple[float, float]]:
        per_model = torch.tensor([m.score_batch(items, batch_size=batch_size) for m in self.models])
        mean = per_model.mean(0)
        std = per_model.std(0, unbiased=False)
        return list(zip(mean.tolist(), std.tolist()))

    def score(self, prompt: PromptLike, response: ResponseLike) -> tuple[float, float]:
        return self.score_batch([(prompt, response)])[0]
