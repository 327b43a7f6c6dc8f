"""RewardModel: score conversations with a trained reward model, in process.

It renders text with the format saved in `rewardforge.json` (the one used in training), sorts
work by length to cut padding, and returns results in input order.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from rewardforge.data.context import with_tools
from rewardforge.data.errors import RowError
from rewardforge.data.transcripts import hh_turns
from rewardforge.data.types import Message
from rewardforge.data.values import messages as checked_messages
from rewardforge.data.values import normalised, prompt_text_turns, reply_text, response_problem
from rewardforge.evaluation.metrics import preference_probability
from rewardforge.memory import settle_heap_thresholds
from rewardforge.modeling import (
    ModelLoadError,
    load_failure,
    load_reward_model,
    no_reward_head,
    position_limit,
)
from rewardforge.packing import (
    Row,
    collate_group,
    group_rows,
    pad_multiple,
    plain_row,
    shared_prefix_row,
)
from rewardforge.rewards import gather_rewards
from rewardforge.tokenization import TokenizedGroup, common_prefix_len, room_problem, tokenize_group

MAX_COMPLETIONS_PER_ROW = 16
# Tokens per forward pass when scoring. On CPU, 2048 rather than 8192: 64 best-of-8 responses
# (4,108 computed tokens, SmolLM2, fp32, 2 threads) scored in 5.98 s against 6.34 s (median of 5,
# interleaved in one process): a 2048-token pass keeps its activations in cache; the matrix
# products themselves are already efficient at that size. GPUs want the larger passes.
CPU_TOKENS_PER_BATCH = 2048
GPU_TOKENS_PER_BATCH = 8192

PromptLike = str | Sequence[Message] | None
ResponseLike = str | Sequence[Message]


def as_messages(value: PromptLike, default_role: str) -> list[Message]:
    """A string becomes one message of `default_role` (a prompt string is read as training reads
    it: a transcript as its turns, a blank one as no prompt); a message list is checked and copied."""
    what = "prompt" if default_role == "user" else "response"
    if value is None and what == "prompt":
        return []
    if isinstance(value, str):
        _check_encodable(value)
        if default_role == "user":
            return prompt_text_turns(value)
        return [{"role": default_role, "content": value}]
    if not isinstance(value, dict | list | tuple):  # None, 5, b"..." : not a text nor messages
        raise TypeError(f"a {what} is a string or a list of messages, got {type(value).__name__}")
    try:
        return checked_messages(value if isinstance(value, dict) else list(value), what)
    except RowError as exc:  # the data layer's checks, so a conversation reads as in training
        raise ValueError(str(exc)) from None


class CappedLengthWarning(UserWarning):
    """`from_pretrained` was asked for more tokens than the model has positions (the commands,
    which print their own note, silence it)."""


def loaded_quietly(path: Any, **kwargs: Any) -> RewardModel:
    """`RewardModel.from_pretrained` for a command: a capped length is said as a note, not a
    Python warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CappedLengthWarning)
        model = RewardModel.from_pretrained(path, **kwargs)
    note_capped_length(model, str(path))
    return model


def note_capped_length(model: Any, name: str) -> None:
    """Say so when a model was asked to read more tokens than it has positions for."""
    asked = getattr(model, "max_length_capped_from", None)
    if asked is not None and getattr(model, "max_length_asked", False):  # a default is no one's word
        print(
            f"[rewardforge] note: {name} has {model.max_length} positions, so it reads at most "
            f"{model.max_length} tokens, not {asked} (--max-length)",
            file=sys.stderr,
        )


def note_assumed_format(loaded: Any, name: str) -> None:
    """A reward model trained elsewhere (no rewardforge.json) is scored on text it may never have
    seen (TRL trains encoders on the raw dataset text): say which format is assumed."""
    if loaded.meta.get("format"):
        return
    missing = "no text format in its rewardforge.json" if loaded.meta else "no rewardforge.json"
    how = (
        "its tokenizer's chat template"
        if loaded.text_format.kind == "chat_template"
        else ('rewardforge\'s plain format ("User: ...\\n\\nAssistant: ...")')
    )
    print(
        f"[rewardforge] note: {name} has {missing}, so it is scored in {how}; "
        "a model trained on other text (TRL on raw dataset text, say) scores differently",
        file=sys.stderr,
    )


def _check_encodable(text: str) -> None:
    """A lone surrogate ('\\ud800') cannot be tokenized: say so, as the server does."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"the text is not valid Unicode (a lone surrogate at {exc.start})") from None


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")


def available_devices() -> list[str]:
    """Devices torch can use on this machine, e.g. ["cpu", "cuda:0"]."""
    out = ["cpu"]
    for kind in ("cuda", "xpu"):
        backend = getattr(torch, kind, None)
        if backend is not None and backend.is_available():
            out += [f"{kind}:{i}" for i in range(backend.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device` as a torch.device that exists here (None: cuda if available, else cpu);
    ValueError naming the devices there are if it does not."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(
            f"{device!r} is not a device name; available here: {', '.join(available_devices())}"
        ) from None
    here = available_devices()  # "cpu", "cuda:0", ..., "mps"
    kinds = {d.split(":")[0] for d in here}
    exists = dev.type == "cpu" or str(dev) in here or (dev.index in (None, 0) and dev.type in kinds)
    if not exists:
        raise ValueError(
            f"{str(device)!r} is not available on this machine; available here: {', '.join(here)}"
        )
    return dev


def prompt_and_response(
    prompt: PromptLike, response: ResponseLike, tools: Any = None, *, split: bool = True
) -> tuple[list[Message], list[Message]]:
    """The messages of a scored item. A response that is a whole conversation (it opens with a
    user or system turn) already holds its prompt: a prompt given too must be how it starts,
    and is then read once; one it does not start with is a ValueError. `tools` (definitions, as
    a `tools` column in training gives them) go into the conversation's system turn. With
    `split`, the response's turns before its reply join the prompt (see below)."""
    if isinstance(response, str):
        response = reply_text(prompt, response)
    p, r = as_messages(prompt, "user"), as_messages(response, "assistant")
    if isinstance(response, str):  # a whole HH transcript, as training reads one
        r = hh_reply(response, p) or r
    problem = response_problem(r, allow_empty=True)  # an empty reply is scored (RLHF completions)
    if problem:
        raise ValueError(problem)
    if p and _whole_conversation(r):
        if normalised(r[: len(p)]) != normalised(p):
            raise ValueError("the response is a whole conversation that does not start with the prompt")
        p = []
    # The turns before the reply the response ends with (a whole conversation's history, an
    # agent's tool calls and results) join the prompt, so a cut to max_length drops the oldest of
    # them first and never the reply. The text scored is the same.
    earlier = max((i for i, m in enumerate(r) if m["role"] != "assistant"), default=-1) if split else -1
    if earlier >= 0:
        p, r = p + r[: earlier + 1], r[earlier + 1 :]
    if tools is not None:
        try:
            return at_start(p, r, lambda conversation: with_tools(conversation, tools))
        except RowError as exc:
            raise ValueError(str(exc)) from None
    return p, r


def hh_reply(text: str, prompt: list[Message]) -> list[Message] | None:
    """The turns of a response that is a whole "\\n\\nHuman: ...\\n\\nAssistant: ..." transcript
    (it opens with a Human turn, ends with an Assistant reply and starts with `prompt`, if any),
    else None: a reply that quotes a dialogue, or one about another prompt."""
    turns = hh_turns(text)
    if not turns or turns[0]["role"] != "user" or turns[-1]["role"] != "assistant":
        return None
    if not turns[-1]["content"].strip() or normalised(turns[: len(prompt)]) != normalised(prompt):
        return None
    return turns


def at_start(
    prompt: list[Message], response: list[Message], add: Callable[[list[Message]], list[Message]]
) -> tuple[list[Message], list[Message]]:
    """`add` applied to where the conversation starts: the prompt, or a response that holds it."""
    if prompt or not _whole_conversation(response):
        return add(prompt), response
    return prompt, add(response)


def _whole_conversation(response: list[Message]) -> bool:
    """A response that opens with a user or system turn holds its prompt; one that opens with a
    tool result continues the prompt's tool call."""
    return bool(response) and response[0]["role"] in ("user", "system")


ITEM_KEYS = ("prompt", "response", "tools")


def _item(item: Any) -> tuple[list[Message], list[Message]]:
    if isinstance(item, dict):
        if "response" not in item:
            raise ValueError(f"an item needs a 'response' (got keys: {', '.join(map(str, item)) or 'none'})")
        if unknown := [str(k) for k in item if k not in ITEM_KEYS]:  # "Prompt", "system": not read
            raise ValueError(
                f"unknown key(s) {', '.join(map(repr, unknown))}; an item has {', '.join(ITEM_KEYS)} "
                "(a system prompt goes into the prompt's messages)"
            )
        return prompt_and_response(item.get("prompt"), item["response"], item.get("tools"))
    if isinstance(item, str) or not isinstance(item, list | tuple) or len(item) != 2:
        raise TypeError(
            f"an item is a (prompt, response) pair or a {{'prompt', 'response'}} dict, got {item!r:.80}"
        )
    prompt, response = item
    return prompt_and_response(prompt, response)


def _numbered(kind: str, index: int, read: Callable[[], Any]) -> Any:
    """`read()`, with a problem it finds named by the item it is in ("item 3: ...")."""
    try:
        return read()
    except (TypeError, ValueError) as exc:
        raise (TypeError if isinstance(exc, TypeError) else ValueError)(f"{kind} {index}: {exc}") from None


def _dtype_name(dtype: Any) -> str:
    """ "fp32"/"bf16", also given as torch.float32/torch.bfloat16 or "float32"/"bfloat16"."""
    names = {torch.float32: "fp32", torch.bfloat16: "bf16", "float32": "fp32", "bfloat16": "bf16"}
    name = names.get(dtype, dtype)
    if name not in ("fp32", "bf16"):
        raise ValueError(f"dtype must be 'fp32' or 'bf16' (or torch.float32, torch.bfloat16), got {dtype!r}")
    return name


def _check_max_length(max_length: Any) -> None:
    if max_length is not None and (
        isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
    ):
        raise ValueError(f"max_length must be a whole number >= 1, got {max_length!r}")


def preference_beta(meta: dict[str, Any]) -> float:
    """The beta of the loss a model was trained with (rewardforge.json), 1 when none is recorded."""
    loss = meta.get("loss") if isinstance(meta, dict) else None
    beta = loss.get("beta") if isinstance(loss, dict) else None
    return float(beta) if isinstance(beta, int | float) and math.isfinite(beta) and beta > 0 else 1.0


class RewardModel:
    """A trained reward model. `score` returns the raw reward (a logit; higher is better)."""

    def __init__(
        self,
        loaded,
        *,
        max_length: int | None = None,
        device: str | None = None,
        share_prefix: bool = True,
        max_tokens_per_batch: int | None = None,
    ):
        self.loaded = loaded
        self.model = loaded.model.eval()
        self.tokenizer = loaded.tokenizer
        self.text_format = loaded.text_format
        _check_max_length(max_length)
        meta_len = loaded.meta.get("max_length")
        # the loss's beta: the trained preference probability is sigmoid(beta * (r_a - r_b))
        self.beta = preference_beta(loaded.meta)
        self.max_length = int(
            max_length or meta_len or min(getattr(self.tokenizer, "model_max_length", 4096), 4096)
        )
        positions = position_limit(loaded.model)
        # a length asked for beyond the model's position embeddings (a model cannot read past
        # them), kept so that commands can say which limit they used instead
        self.max_length_capped_from: int | None = None
        self.max_length_asked = bool(max_length)
        if positions is not None and self.max_length > positions:
            self.max_length_capped_from, self.max_length = self.max_length, positions
        problem = room_problem(self.tokenizer, self.text_format, self.max_length)
        if problem:
            raise ModelLoadError(f"{problem} (max_length; --max-length on the command line)")
        self.device = resolve_device(device)
        self.share_prefix = share_prefix
        default_tokens = CPU_TOKENS_PER_BATCH if self.device.type == "cpu" else GPU_TOKENS_PER_BATCH
        self.max_tokens_per_batch = max_tokens_per_batch or default_tokens
        # chunk-width multiple for every batch this model scores (see packing.pad_multiple)
        self.pad_to_multiple_of = pad_multiple(
            next(self.model.parameters()).dtype == torch.bfloat16, positions
        )
        self.model.to(self.device)
        if self.device.type == "cpu":
            settle_heap_thresholds()  # activations reused, not faulted in afresh (see memory.py)

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | os.PathLike,
        *,
        max_length: int | None = None,
        device: str | None = None,
        dtype: str | torch.dtype = "fp32",
    ) -> RewardModel:
        """Load a folder saved by rewardforge (or any one-output HF classifier: then the format is
        the tokenizer's chat template if it has one, else the plain format). A model that cannot
        be loaded raises `ModelLoadError` naming it; a device that does not exist or an argument
        out of range, ValueError (before the slow load). A `max_length` beyond the model's
        positions is capped to them, with a warning; one too short for the format's own tokens
        (known once the tokenizer is loaded) raises ModelLoadError."""
        if isinstance(path_or_hub_id, os.PathLike):
            path_or_hub_id = os.fspath(path_or_hub_id)
        if not isinstance(path_or_hub_id, str):
            raise TypeError(
                "from_pretrained takes a model folder, a .gguf file or a Hub id (a string or a path), "
                f"got {type(path_or_hub_id).__name__}"
            )
        dtype = _dtype_name(dtype)
        _check_max_length(max_length)
        resolve_device(device)
        try:  # the caller's random state is theirs: loading draws nothing from it and seeds nothing
            with torch.random.fork_rng(devices=[]):
                loaded = load_reward_model(path_or_hub_id, dtype=dtype, seed=None)
        except ModelLoadError:
            raise
        except Exception as e:  # noqa: BLE001 - whatever went wrong, it was loading this model
            raise ModelLoadError(f"cannot load the reward model {path_or_hub_id!r}: {load_failure(e)}") from e
        if loaded.fresh_head:
            raise ModelLoadError(no_reward_head(path_or_hub_id))
        note_assumed_format(loaded, path_or_hub_id)
        model = cls(loaded, max_length=max_length, device=device)
        if model.max_length_capped_from is not None and max_length is not None:
            warnings.warn(
                f"{path_or_hub_id} has {model.max_length} positions, so it reads at most "
                f"{model.max_length} tokens, not {max_length}",
                CappedLengthWarning,
                stacklevel=2,
            )
        return model

    @staticmethod
    def ensemble(models: Iterable[RewardModel | str | os.PathLike]) -> RewardEnsemble:
        if isinstance(models, str | os.PathLike | RewardModel):  # ensemble("rm") loaded "r", "m"
            raise TypeError("ensemble takes a list of models or their paths")
        return RewardEnsemble(
            [m if isinstance(m, RewardModel) else RewardModel.from_pretrained(m) for m in models]
        )

    # ---- text ---------------------------------------------------------------------------
    def format_text(self, prompt: PromptLike, response: ResponseLike) -> str:
        """The exact text the model scores (what to pass to transformers.pipeline)."""
        p, r = prompt_and_response(prompt, response)
        return self.text_format.render(self.tokenizer, p + r)

    # ---- scoring ------------------------------------------------------------------------
    def score(self, prompt: PromptLike, response: ResponseLike) -> float:
        return self.score_batch([(prompt, response)])[0]

    def score_batch(self, items: Sequence[Any], batch_size: int = 16) -> list[float]:
        """Scores of (prompt, response) pairs or {"prompt", "response"} dicts, in input order.

        Each item is tokenized on its own (so its score never depends on its neighbours); items
        with the same prompt are then scored in one shared-prefix row on decoders, computing
        the prompt once (best-of-N and GRPO groups)."""
        _check_batch_size(batch_size)
        if isinstance(items, str | dict):
            raise TypeError("score_batch takes a list of items; for one, use score(prompt, response)")
        seqs, prompts = [], []
        for i, item in enumerate(items):
            prompt, response = _numbered("item", i, lambda item=item: _item(item))
            seqs.append(self._cut(prompt, response).ids[0])
            prompts.append(json.dumps(prompt))
        return self._score_by_prompt(seqs, prompts, batch_size)

    def encode_group(
        self, prompt: PromptLike, responses: Iterable[ResponseLike], tools: Any = None
    ) -> list[list[int]]:
        """Token ids of responses to one prompt, tokenized together as training tokenizes a
        pair: beyond max_length every response loses the same prompt turns, so their scores
        compare like for like. Responses that bring prompts of their own (whole conversations
        with different histories) are each cut as `encode` cuts them."""
        ((prompt, responses),) = checked_groups([(prompt, responses)])
        return self._tokenized_group(prompt, responses, tools, "response")[0]

    def _tokenized_group(
        self, prompt: PromptLike, responses: Iterable[ResponseLike], tools: Any, label: str
    ) -> tuple[list[list[int]], list[str]]:
        """Token ids of a group, and each one's prompt key for prefix sharing. Two or more
        responses are read as the data layer reads a pair: the turns they all start with join
        the prompt (each keeps at least its last turn), and one cut serves them all, as
        `tokenize_pair` cuts a pair in training and eval. One response is cut as `encode` cuts it."""
        if len(responses) < 2:
            items = [
                _numbered(label, i, lambda r=r: prompt_and_response(prompt, r, tools))
                for i, r in enumerate(responses)
            ]
            return [self._cut(p, r).ids[0] for p, r in items], [json.dumps(p) for p, _ in items]
        whole = [
            p + r
            for p, r in (
                _numbered(label, i, lambda r=r: prompt_and_response(prompt, r, tools, split=False))
                for i, r in enumerate(responses)
            )
        ]
        shared = common_prefix_len([normalised(c) for c in whole])
        shared = min(shared, min(len(c) for c in whole) - 1)
        group_prompt = whole[0][:shared]
        # A response with a user or system turn of its own past the shared turns (a conversation
        # with another history) would be cut at its end, its reply lost: it is cut alone, as
        # `encode` cuts it; the others share one cut.
        own = [any(m["role"] in ("user", "system") for m in c[shared:]) for c in whole]
        together = [i for i, alone in enumerate(own) if not alone]
        ids: list[list[int]] = [[] for _ in whole]
        keys = [json.dumps(group_prompt)] * len(whole)
        if together:
            cut = tokenize_group(
                self.tokenizer,
                self.text_format,
                group_prompt,
                [whole[i][shared:] for i in together],
                self.max_length,
            ).ids
            for i, seq in zip(together, cut):
                ids[i] = seq
        for i in (i for i, alone in enumerate(own) if alone):
            p, r = prompt_and_response(None, whole[i])
            ids[i] = self._cut(p, r).ids[0]
            keys[i] = json.dumps(p)
        return ids, keys

    def _cut(self, prompt: list[Message], response: list[Message]) -> TokenizedGroup:
        """One (prompt, response), cut to max_length by training's rule."""
        return tokenize_group(self.tokenizer, self.text_format, prompt, [response], self.max_length)

    def score_groups(
        self, groups: Iterable[tuple[PromptLike, Sequence[ResponseLike]]], batch_size: int = 16
    ) -> list[list[float]]:
        """Scores of several groups of responses, each group (a prompt and its responses, as in
        best-of-N or a GRPO group) tokenized together as `encode_group` does; all are scored in
        one batched pass. One list of scores per group, in input order."""
        _check_batch_size(batch_size)
        seqs: list[list[int]] = []
        keys: list[str] = []
        sizes: list[int] = []
        groups = checked_groups(groups)
        for g, (prompt, responses) in enumerate(groups):
            label = "response" if len(groups) == 1 else f"group {g} response"
            ids, group_keys = self._tokenized_group(prompt, responses, None, label)
            seqs += ids
            keys += group_keys
            sizes.append(len(ids))
        scores = self._score_by_prompt(seqs, keys, batch_size)
        out, start = [], 0
        for size in sizes:
            out.append(scores[start : start + size])
            start += size
        return out

    def score_group(
        self, prompt: PromptLike, responses: Sequence[ResponseLike], batch_size: int = 16
    ) -> list[float]:
        """Scores of responses to one prompt, tokenized together (see `encode_group`)."""
        return self.score_groups([(prompt, responses)], batch_size=batch_size)[0]

    def _score_by_prompt(self, seqs: list[list[int]], prompts: list[str], batch_size: int) -> list[float]:
        """Scores of token sequences, each distinct sequence computed once (so equal items score
        exactly alike); on decoders, sequences of one prompt share a row that computes it once."""
        index: dict[tuple[int, ...], int] = {}
        where = [index.setdefault(tuple(s), len(index)) for s in seqs]
        unique = [list(s) for s in index]
        if not self.loaded.shares_prefix or not self.share_prefix:
            scores = self.score_token_ids(unique, batch_size=batch_size)
            return [scores[j] for j in where]
        by_prompt: dict[str, list[int]] = {}
        seen: set[int] = set()
        for i, j in enumerate(where):
            if j not in seen:  # the first item with this sequence
                seen.add(j)
                by_prompt.setdefault(prompts[i], []).append(j)
        groups = []
        for members in by_prompt.values():
            for start in range(0, len(members), MAX_COMPLETIONS_PER_ROW):
                group = members[start : start + MAX_COMPLETIONS_PER_ROW]
                groups.append((group, common_prefix_len([unique[j] for j in group])))
        scores = self._score_rows(_grouped_rows(unique, groups), len(unique), batch_size)
        return [scores[j] for j in where]

    def score_token_ids(self, seqs: list[list[int]], batch_size: int = 16) -> list[float]:
        """Scores of token sequences (one sequence each), in input order."""
        _check_batch_size(batch_size)
        vocab = self.model.get_input_embeddings().num_embeddings
        positions = position_limit(self.model)
        for i, s in enumerate(seqs):
            _check_token_ids(s, i, vocab, positions)
        return self._score_rows([plain_row(s, i, 0) for i, s in enumerate(seqs)], len(seqs), batch_size)

    @torch.no_grad()
    def _score_rows(self, rows: list[Row], n: int, batch_size: int) -> list[float]:
        if n == 0:
            return []
        chunks = []
        packed = self.loaded.packed
        for group in group_rows(rows, self.max_tokens_per_batch, max_rows=batch_size, packed=packed):
            chunk = collate_group(
                group, self.tokenizer.pad_token_id, packed=packed, pad_to_multiple_of=self.pad_to_multiple_of
            )
            chunks.append({k: v.to(self.device) for k, v in chunk.items()})
        rewards = gather_rewards(self.model, chunks, n, 1, decoder=self.loaded.is_decoder)
        return rewards[:, 0].tolist()

    # ---- token ids, for callers that batch work themselves (the server) -------------------
    def encode(self, prompt: PromptLike, response: ResponseLike) -> list[int]:
        """The token ids `score(prompt, response)` runs (validated, cut to max_length the same way)."""
        return self.tokenize(prompt, response).ids[0]

    def tokenize(self, prompt: PromptLike, response: ResponseLike) -> TokenizedGroup:
        """`encode`, with whether the prompt or the response had to be cut to fit max_length."""
        return self._cut(*prompt_and_response(prompt, response))

    @functools.cached_property
    def _padding(self) -> tuple[str, tuple[str, ...], bool]:
        """What the format writes after a reply ("<|im_end|>\\n" in ChatML); the pad and
        end-of-sequence texts, longest first; whether the format's own text begins with one."""
        mark = "\u2063reply\u2063"
        try:
            rendered = self.text_format.render(
                self.tokenizer, [{"role": "user", "content": "q"}, {"role": "assistant", "content": mark}]
            )
        except Exception:  # noqa: BLE001 - a template that cannot render this: nothing to complete
            rendered = mark
        tail = rendered.rsplit(mark, 1)[-1] if mark in rendered else ""
        found = {getattr(self.tokenizer, name, None) for name in ("pad_token", "eos_token")}
        # (a BOS is never padding: a pad rewardforge chose can be the BOS, and templates open with it)
        found.discard(getattr(self.tokenizer, "bos_token", None))
        markers = tuple(sorted((m for m in found if isinstance(m, str) and m.strip()), key=len, reverse=True))
        return tail, markers, any(rendered.startswith(m) for m in markers)

    def _without_padding(self, text: str) -> str:
        """A policy's decoded output as the format writes it. OpenRLHF (and others) decode with
        skip_special_tokens=False, so the text carries the prompt's left padding and, after the
        reply, its end-of-turn token and right padding: the reward was read at a pad or at
        "<|im_end|>", not where training read it. Pad and end-of-sequence texts (and spaces
        between them) go from both ends, and a text that ended in them ends as the format ends a
        turn. A text without them is tokenized as it is: `format_text` output scores exactly as
        `score`, unless its reply itself ends in such a text (where it reads as padding)."""
        tail, markers, format_starts_with_one = self._padding
        if not markers:
            return text
        core = text
        while end := next((m for m in markers if core.rstrip().endswith(m)), None):
            core = core.rstrip()[: -len(end)]
        if not core.strip():
            raise ValueError("the text is only padding (pad and end-of-sequence tokens)")
        turn_end = next((m for m in markers if m in tail), None)
        if core != text and turn_end and not core.endswith(tail):
            # the turn's end token went with the padding: the turn ends as the format ends it
            # (ChatML "<|im_end|>\\n"; Llama 2 " </s>", whose space the reply already has)
            core = core.removesuffix(tail[: tail.index(turn_end)]) + tail
        left = core
        while not format_starts_with_one and (
            start := next((m for m in markers if left.lstrip().startswith(m)), None)
        ):
            left = left.lstrip()[len(start) :]
        return left.lstrip() if left != core else core

    def encode_text(self, text: str) -> list[int]:
        """Token ids of an already formatted conversation (e.g. `format_text` output), tokenized
        as is. A BOS the format strips is stripped here too; a text over max_length keeps its
        end (where the reward is read), after a leading special token."""
        _check_encodable(text)  # the tokenizer's own error names no text
        text = self._without_padding(text)
        fmt = self.text_format
        if fmt.strip_bos and text.startswith(fmt.strip_bos):
            text = text[len(fmt.strip_bos) :]
        ids = self.tokenizer(text, verbose=False)["input_ids"]
        if not ids:
            raise ValueError("the text has no tokens")
        if len(ids) > self.max_length:
            special = set(getattr(self.tokenizer, "all_special_ids", []) or [])
            head = ids[:1] if ids[0] in special else []
            ids = head + ids[len(ids) - (self.max_length - len(head)) :]
        return ids

    def score_token_ids_shared(self, seqs: list[list[int]], batch_size: int = 16) -> list[float]:
        """`score_token_ids` for unrelated sequences scored together (a server micro-batch): on
        decoders, neighbours in token order go (up to MAX_COMPLETIONS_PER_ROW) into shared-prefix
        rows, so a prefix they share (system prompt, prompt) is computed once. A sequence joins
        the current row when that saves more tokens than it costs the row. Same scores."""
        if not self.loaded.shares_prefix or not self.share_prefix or len(seqs) < 2:
            return self.score_token_ids(seqs, batch_size=batch_size)
        groups: list[tuple[list[int], int]] = []  # (members, length of their common prefix)
        for i in sorted(range(len(seqs)), key=lambda i: seqs[i]):
            if groups and len(groups[-1][0]) < MAX_COMPLETIONS_PER_ROW:
                members, p = groups[-1]
                q = common_prefix_len([seqs[members[-1]], seqs[i]])
                q = min(p, q) if len(members) > 1 else q
                if (p - q) * (len(members) - 1) < q:  # the row's extra tokens < the tokens i saves
                    groups[-1] = ([*members, i], q)
                    continue
            groups.append(([i], len(seqs[i])))
        return self._score_rows(_grouped_rows(seqs, groups), len(seqs), batch_size)

    def score_texts(self, texts: Sequence[str], batch_size: int = 16) -> list[float]:
        """Scores of already formatted conversations (see `encode_text`), in input order."""
        if isinstance(texts, str):  # score_texts("abc") scored the letters
            raise TypeError("score_texts takes a list of texts")
        ids = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} is {type(text).__name__}, not a string")
            try:
                ids.append(self.encode_text(text))
            except ValueError as exc:
                raise ValueError(f"text {i}: {exc}") from None
        return self.score_token_ids(ids, batch_size=batch_size)

    def compare(self, prompt: PromptLike, a: ResponseLike, b: ResponseLike) -> float:
        """P(a preferred over b) = sigmoid(beta * (r_a - r_b)) under the Bradley-Terry model, with
        the beta the model was trained with (1 unless `train --beta` said otherwise). Both
        responses are tokenized together, as training tokenizes a pair."""
        r_a, r_b = self.score_group(prompt, [a, b])
        return preference_probability(r_a - r_b, self.beta)

    def rank(self, prompt: PromptLike, responses: Sequence[ResponseLike]) -> list[tuple[int, float]]:
        """(index, score) of each response, best first (equal scores in input order). The
        responses are tokenized together: beyond max_length each loses the same prompt turns."""
        if isinstance(responses, str | dict):  # rank("p", "abc") ranked the letters
            raise TypeError("rank takes a list of responses; for one, use score(prompt, response)")
        scores = self.score_group(prompt, responses)
        return sorted(enumerate(scores), key=lambda t: -t[1])


def checked_groups(groups: Any) -> list[tuple[Any, list[Any]]]:
    """`score_groups`' argument as a list of (prompt, list of responses), or a TypeError naming
    the group (a string of responses scored its letters)."""
    if isinstance(groups, str | dict):
        raise TypeError("score_groups takes a list of (prompt, responses) groups")
    out = []
    for g, group in enumerate(groups):
        if not (isinstance(group, tuple | list) and len(group) == 2):
            raise TypeError(f"group {g}: a group is a (prompt, responses) pair, got {group!r:.80}")
        prompt, responses = group
        if isinstance(responses, str | dict) or responses is None:
            raise TypeError(f"group {g}: a group's responses are a list, got {type(responses).__name__}")
        out.append((prompt, list(responses)))
    return out


def _grouped_rows(seqs: list[list[int]], groups: list[tuple[list[int], int]]) -> list[Row]:
    """Rows for (members, common prefix length) groups: one shared-prefix row per group of two or
    more that share a prefix, plain rows otherwise."""
    rows: list[Row] = []
    for members, prefix in groups:
        if len(members) > 1 and prefix > 0:
            rows.append(shared_prefix_row(prefix, [seqs[i] for i in members], [(i, 0) for i in members]))
        else:
            rows += [plain_row(seqs[i], i, 0) for i in members]
    return rows


INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _check_token_ids(seq: Any, i: int, vocab: int, positions: int | None) -> None:
    """Sequence `i` is non-empty whole ids the model's embeddings have, within its positions: an
    id past the vocabulary was an IndexError deep in torch, and too many tokens a shape error
    in the embeddings (learned positions) or a score read past them (rotary)."""
    if isinstance(seq, str | bytes | dict) or not (hasattr(seq, "__len__") and hasattr(seq, "__iter__")):
        raise TypeError(f"sequence {i} is {type(seq).__name__}, not a list of token ids")
    if not len(seq):
        raise ValueError(f"sequence {i} has no tokens")
    if positions is not None and len(seq) > positions:
        raise ValueError(f"sequence {i} has {len(seq)} tokens, more than the model's {positions} positions")
    try:  # in one pass in C (the server calls this per micro-batch); the messages need Python
        ids = torch.as_tensor(seq)
    except (TypeError, ValueError, RuntimeError):
        ids = None
    if ids is not None and ids.dim() == 1 and ids.dtype in INTEGER_DTYPES:
        low, high = (int(v) for v in ids.aminmax())
        if 0 <= low and high < vocab:
            return
    for token in seq.tolist() if hasattr(seq, "tolist") else seq:
        if isinstance(token, torch.Tensor) and token.dim() == 0 and not token.is_floating_point():
            token = int(token)  # a list of 0-d tensors, as iterating a tensor gives
        whole = isinstance(token, numbers.Integral) and not isinstance(token, bool)
        if not whole or not 0 <= token < vocab:
            if whole:
                raise ValueError(
                    f"sequence {i} holds token id {token}, outside the model's vocabulary (0 to {vocab - 1})"
                )
            raise TypeError(f"sequence {i} holds {token!r}, not a token id")


class RewardEnsemble:
    """Several reward models: the mean score, with their standard deviation as uncertainty."""

    def __init__(self, models: list[RewardModel]):
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.models = models

    def score_batch(self, items: Sequence[Any], batch_size: int = 16) -> list[tuple[float, float]]:
        """(mean, standard deviation) of the models' scores of each item."""
        per_model = torch.tensor([m.score_batch(items, batch_size=batch_size) for m in self.models])
        if per_model.numel() == 0:
            return []
        mean = per_model.mean(0)
        std = per_model.std(0, unbiased=False)
        return list(zip(mean.tolist(), std.tolist()))

    def score(self, prompt: PromptLike, response: ResponseLike) -> tuple[float, float]:
        return self.score_batch([(prompt, response)])[0]

    @property
    def beta(self) -> float:
        """The loss's beta the models share, for compare's probabilities (1.0 if they differ)."""
        betas = {getattr(m, "beta", 1.0) for m in self.models}
        return betas.pop() if len(betas) == 1 else 1.0

    def mean(self) -> EnsembleMean:
        """The ensemble as one reward model whose score is the mean: what `serve`'s
        `create_app` and the RLHF reward `RMReward` take (they are given it when handed the
        ensemble itself)."""
        return EnsembleMean(self)


class EnsembleMean:
    """A RewardEnsemble's mean score behind RewardModel's scoring methods (score_batch,
    score_texts, score_groups), so servers and reward functions use it as one model."""

    def __init__(self, ensemble: RewardEnsemble):
        self.models = ensemble.models
        self.beta = ensemble.beta

    def _mean(self, per_model: list[list[float]]) -> list[float]:
        return [sum(column) / len(column) for column in zip(*per_model)]

    def score_batch(self, items: Sequence[Any], batch_size: int = 16) -> list[float]:
        return self._mean([m.score_batch(items, batch_size=batch_size) for m in self.models])

    def score_texts(self, texts: Sequence[str], batch_size: int = 16) -> list[float]:
        return self._mean([m.score_texts(texts, batch_size=batch_size) for m in self.models])

    def score_groups(
        self, groups: Iterable[tuple[PromptLike, Sequence[ResponseLike]]], batch_size: int = 16
    ) -> list[list[float]]:
        groups = list(groups)
        per_model = [m.score_groups(groups, batch_size=batch_size) for m in self.models]
        return [self._mean(list(scores)) for scores in zip(*per_model)]
