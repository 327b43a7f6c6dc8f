"""What the server needs from a scorer, and adapters that give it from a `RewardModel` or any
object with a `score_batch` method.

The server works in two steps so that one bad request can never spoil a micro-batch:

- `prepare(prompt, response)` / `prepare_text(text)` run per request, before queueing, on a
  single preparation thread (formatting and tokenization). They raise `ValueError` for input
  the model cannot take; the request is then answered 422 and nothing reaches the model.
- `run(prepared)` runs on the one model thread with the prepared inputs of several requests
  and returns one float per input, in order: one forward pass per micro-batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Scorer(Protocol):
    def prepare(self, prompt: Any, response: Any) -> Any: ...

    def prepare_text(self, text: str) -> Any: ...

    def run(self, prepared: Sequence[Any]) -> list[float]: ...


class ModelScorer:
    """A `RewardModel` (or anything with `encode`, `encode_text`, `score_token_ids`): token ids
    are prepared per request, and `run` scores a whole micro-batch in one forward pass. With
    `share_prefix` (and a decoder), sequences of a batch that share a prefix, such as a system
    prompt or a prompt, compute it once (`RewardModel.score_token_ids_shared`); scores do not change."""

    def __init__(self, model: Any, max_batch_size: int = 32, share_prefix: bool = True):
        self.model = model
        self.max_batch_size = max_batch_size
        shared = getattr(model, "score_token_ids_shared", None) if share_prefix else None
        self._score = shared if callable(shared) else model.score_token_ids
        if not callable(getattr(model, "encode_group", None)):
            self.prepare_group = None  # the app prepares a group's responses one by one

    def prepare(self, prompt: Any, response: Any) -> list[int]:
        return self.model.encode(prompt, response)

    def prepare_text(self, text: str) -> list[int]:
        return self.model.encode_text(text)

    def prepare_group(self, prompt: Any, responses: list[Any], tools: Any = None) -> list[list[int]]:
        """Responses to one prompt cut together (`/v1/compare`), as `RewardModel.compare` cuts them
        (a model without `encode_group` has none: the app then prepares them one by one)."""
        return self.model.encode_group(prompt, responses, tools)

    def run(self, prepared: Sequence[list[int]]) -> list[float]:
        if not prepared:
            return []
        return self._score(list(prepared), batch_size=self.max_batch_size)

    def warm_up(self) -> None:
        self.run([self.prepare("Hello", "Hi! How can I help?")])


class BatchFunctionScorer:
    """Any object with `score_batch(items) -> list[float]` (items are {"prompt", "response"}
    dicts) and optionally `score_texts(texts) -> list[float]`."""

    def __init__(self, obj: Any):
        self.obj = obj

    def prepare(self, prompt: Any, response: Any) -> tuple[str, Any]:
        return ("pair", {"prompt": prompt, "response": response})

    def prepare_text(self, text: str) -> tuple[str, Any]:
        if not hasattr(self.obj, "score_texts"):
            raise ValueError("this model cannot score raw texts (its scorer has no score_texts)")
        return ("text", text)

    def run(self, prepared: Sequence[tuple[str, Any]]) -> list[float]:
        out: list[float] = [math.nan] * len(prepared)
        for kind, method in (("pair", "score_batch"), ("text", "score_texts")):
            idx = [i for i, (k, _) in enumerate(prepared) if k == kind]
            if idx:
                values = getattr(self.obj, method)([prepared[i][1] for i in idx])
                for i, v in zip(idx, values, strict=True):
                    out[i] = float(v)
        return out


class EnsembleScorer:
    """A RewardEnsemble served as its mean score: each request is prepared for every model
    (each reads text its own way), a group's responses are cut together per model as
    `RewardModel.compare` cuts them, and `run` averages the models' scores of a micro-batch."""

    def __init__(self, models: Sequence[Any], max_batch_size: int = 32, share_prefix: bool = True):
        self.scorers = [ModelScorer(m, max_batch_size, share_prefix) for m in models]
        if any(s.prepare_group is None for s in self.scorers):
            self.prepare_group = None

    def prepare(self, prompt: Any, response: Any) -> tuple[Any, ...]:
        return tuple(s.prepare(prompt, response) for s in self.scorers)

    def prepare_text(self, text: str) -> tuple[Any, ...]:
        return tuple(s.prepare_text(text) for s in self.scorers)

    def prepare_group(self, prompt: Any, responses: list[Any], tools: Any = None) -> list[tuple[Any, ...]]:
        per_model = [s.prepare_group(prompt, responses, tools) for s in self.scorers]
        return [tuple(ids) for ids in zip(*per_model, strict=True)]

    def run(self, prepared: Sequence[tuple[Any, ...]]) -> list[float]:
        per_model = [s.run([p[k] for p in prepared]) for k, s in enumerate(self.scorers)]
        return [sum(scores) / len(scores) for scores in zip(*per_model, strict=True)]

    def warm_up(self) -> None:
        for s in self.scorers:
            s.warm_up()


def as_scorer(obj: Any, max_batch_size: int = 32, share_prefix: bool = True) -> Scorer:
    """Wrap a model or scorer-like object in the two-step interface above."""
    if isinstance(obj, Scorer):
        return obj
    from rewardforge.inference import EnsembleMean, RewardEnsemble

    if isinstance(obj, RewardEnsemble | EnsembleMean):  # served as its mean score
        return EnsembleScorer(obj.models, max_batch_size=max_batch_size, share_prefix=share_prefix)
    if all(hasattr(obj, m) for m in ("encode", "encode_text", "score_token_ids")):
        return ModelScorer(obj, max_batch_size=max_batch_size, share_prefix=share_prefix)
    if hasattr(obj, "score_batch"):
        return BatchFunctionScorer(obj)
    raise TypeError(
        f"{type(obj).__name__} is not a scorer: it needs prepare/prepare_text/run, "
        "encode/encode_text/score_token_ids (a RewardModel) or score_batch"
    )
