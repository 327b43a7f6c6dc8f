"""Token ids for a prompt and its completions, cut to `max_length` without losing a pair.

Rule (the same for training, evaluation and scoring): responses are kept whole; the prompt
loses its oldest turns first (a leading system turn stays: it is instructions, not history),
then the oldest words of its last turn and of that system turn, the longer text first (what the
format writes around them stays); only when a response alone does not
fit is the response itself cut (from the right) and counted. Several completions of one
prompt are tokenized together so they lose the same prompt turns, and the length of the
token prefix they share is returned for prefix sharing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rewardforge.data.types import Message, PreferencePair
from rewardforge.formatting import TemplateRefused, TextFormat


@dataclass
class TokenizedGroup:
    ids: list[list[int]]  # one token list per completion
    prefix_len: int  # tokens every sequence shares at the front
    prompt_truncated: bool = False
    response_truncated: bool = False


@dataclass
class TokenizedPair:
    chosen_ids: list[int]
    rejected_ids: list[int]
    prefix_len: int
    margin: float | None = None
    prompt_truncated: bool = False
    response_truncated: bool = False

    @property
    def identical(self) -> bool:
        """True when truncation left chosen and rejected as the same tokens (no signal)."""
        return self.chosen_ids == self.rejected_ids


def common_prefix_len(seqs: list[list[int]]) -> int:
    if not seqs:
        return 0
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for i in range(n):
        tok = first[i]
        if any(s[i] != tok for s in seqs[1:]):
            return i
    return n


def _encode(tokenizer: Any, fmt: TextFormat, prompt: list[Message], completions: list[list[Message]]):
    # verbose=False: texts longer than the model's limit are expected here; they are cut below.
    return [tokenizer(fmt.render(tokenizer, prompt + c), verbose=False)["input_ids"] for c in completions]


def _encode_from(
    tokenizer: Any,
    fmt: TextFormat,
    prompt: list[Message],
    kept: int,
    start: int,
    completions: list[list[Message]],
) -> list[list[int]]:
    """`_encode` with the prompt's first `kept` turns and its turns from `start`, or from the next
    turn a template takes: a template that wants roles to alternate from a user turn (Gemma's)
    refuses a prompt cut to begin with the assistant's reply. The last turn is always tried."""
    for begin in range(start, len(prompt)):
        try:
            return _encode(tokenizer, fmt, prompt[:kept] + prompt[begin:], completions)
        except TemplateRefused:
            if begin >= len(prompt) - 1:
                raise
    return _encode(tokenizer, fmt, prompt[:kept] + prompt[start:], completions)


def _token_starts(tokenizer: Any, text: str) -> list[int] | None:
    """Where each of `text`'s tokens starts (None: a slow tokenizer gives no offsets to cut by)."""
    if not getattr(tokenizer, "is_fast", False):
        return None
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [start for start, _ in offsets["offset_mapping"]]


def _without_first_tokens(text: str, starts: list[int], n: int) -> str:
    """`text` after its first `n` tokens, cut where a token starts, and where a word starts when
    one does within 64 characters."""
    if n >= len(starts):
        return ""
    start = max(starts[n], 1)
    if not text[start - 1].isspace():  # inside a word (a subword token): from the next word on
        space = next((i for i, c in enumerate(text[start : start + 64]) if c.isspace()), None)
        start += space or 0
    return text[start:].lstrip()


def _level(sizes: list[int], excess: int) -> list[int]:
    """How many tokens each text loses so that together they lose `excess`, the longest first:
    every text is cut down to one common length, which shorter texts keep whole (a long system
    turn of documents loses its words before the question after it does, and a long question
    before a short system prompt)."""
    if excess >= sum(sizes):
        return list(sizes)
    lo, hi = 0, max(sizes)  # the largest common length whose cuts cover the excess
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(max(n - mid, 0) for n in sizes) >= excess:
            lo = mid
        else:
            hi = mid - 1
    return [max(n - lo, 0) for n in sizes]


def _shorten_turns(
    tokenizer: Any,
    fmt: TextFormat,
    prompt: list[Message],
    completions: list[list[Message]],
    ids: list[list[int]],
    max_length: int,
) -> tuple[list[Message], list[list[int]], bool]:
    """The prompt with its turns' texts cut from their starts (see `_level`) until every sequence
    fits or the texts are gone, its token ids, and whether a text was cut. A cut text can
    tokenize a token longer where it now begins, so the length is checked again after each cut."""
    shortened = False
    for _ in range(8):
        excess = max(len(s) for s in ids) - max_length
        if excess <= 0:
            break
        starts = [_token_starts(tokenizer, m["content"]) if m["content"] else [] for m in prompt]
        if any(t is None for t in starts) or not any(starts):  # no offsets, or no text: the raw cut below
            break
        cuts = [_without_first_tokens(m["content"], t, n) if n else m["content"]
                for m, t, n in zip(prompt, starts, _level([len(t) for t in starts], excess))]  # fmt: skip
        candidate = [{**m, "content": c} for m, c in zip(prompt, cuts)]
        try:
            ids = _encode(tokenizer, fmt, candidate, completions)
        except TemplateRefused:  # (an empty turn, to a strict template)
            break
        prompt, shortened = candidate, True
    return prompt, ids, shortened


def room_problem(tokenizer: Any, fmt: TextFormat, max_length: int) -> str | None:
    """Why `max_length` leaves no room for a reply, or None. The format's own tokens (a chat
    template's default system turn, CLS/SEP) come first, so a cut would keep them and drop
    every reply: all items would get one score."""
    reply = [{"role": "assistant", "content": "x"}]
    try:
        overhead = len(_encode(tokenizer, fmt, [], [reply])[0])
    except TemplateRefused:  # a template that wants a user turn first: the shortest it takes
        try:
            overhead = len(_encode(tokenizer, fmt, [{"role": "user", "content": "x"}], [reply])[0])
        except TemplateRefused:
            return None
    if max_length < overhead:  # a one-token reply fits exactly at `overhead`
        return (
            f"max length {max_length} leaves no room for a reply: this model's text format alone takes "
            f"{overhead} tokens with a one-token reply"
        )
    return None


# Texts up to this many characters are tokenized as they are; see `_bounded_texts`.
LONG_TEXT_FLOOR = 100_000


def _bounded_texts(
    tokenizer: Any, prompt: list[Message], completions: list[list[Message]], max_length: int
) -> tuple[list[Message], list[list[Message]]]:
    """Cut a text far longer than `max_length` tokens could hold before it is tokenized: a 50 MB
    reply (or tool-call argument) was tokenized whole several times over (gigabytes of memory,
    minutes) to keep its first tokens. The cut keeps the start of a completion's text, the end of
    a prompt's (whose oldest words go first), and at least twice `max_length` tokens of it, so the
    tokens that fit come from text left whole. It starts at twice the characters `max_length` of
    the tokenizer's longest tokens could cover (at least LONG_TEXT_FLOOR) and grows while that
    holds fewer tokens: a normalizer may drop characters, and WordPiece reads a long word (hex,
    DNA) as one [UNK]."""
    turns = [*prompt, *(m for c in completions for m in c)]
    if max(map(_longest_text, turns), default=0) <= LONG_TEXT_FLOOR:
        return prompt, completions
    limit = max(LONG_TEXT_FLOOR, 2 * max_length * max(map(len, tokenizer.get_vocab()), default=1))

    def tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def cut_text(text: str, keep_start: bool, in_json: bool) -> str:
        size = limit
        while size < len(text):
            # at a space: a word cut in two can tokenize otherwise (a fragment of a 200-character
            # word WordPiece reads as one [UNK] gives dozens of tokens the whole text has not)
            piece = _at_space(text[:size] if keep_start else text[-size:], keep_start)
            # a call's arguments are read as JSON, whose escapes can make fewer tokens ("\n" joins
            # the next word, which may pass WordPiece's word limit): count every way it is written
            forms = [piece]
            if in_json:
                forms += [json.dumps(piece, ensure_ascii=ascii)[1:-1] for ascii in (False, True)]
            if min(map(tokens, forms)) >= 2 * max_length:
                return piece
            size *= 4
        return text

    def cut_all(value: Any, keep_start: bool, in_json: bool) -> Any:  # inside a call's arguments too
        if isinstance(value, str):
            return cut_text(value, keep_start, in_json) if len(value) > LONG_TEXT_FLOOR else value
        if isinstance(value, dict):
            return {k: cut_all(v, keep_start, in_json) for k, v in value.items()}
        if isinstance(value, list):
            return [cut_all(v, keep_start, in_json) for v in value]
        return value

    def cut(message: Message, keep_start: bool) -> Message:
        if _longest_text(message) <= LONG_TEXT_FLOOR:
            return message
        out: Message = {**message, "content": cut_all(message["content"], keep_start, False)}
        if message.get("tool_calls"):
            out["tool_calls"] = cut_all(message["tool_calls"], keep_start, True)
        return out

    return [cut(m, False) for m in prompt], [[cut(m, True) for m in c] for c in completions]


def _longest_text(message: Message) -> int:
    """The length of the longest text in a turn: its content or a string in its tool calls."""
    longest = len(message["content"])
    stack: list[Any] = list(message.get("tool_calls") or ())
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            longest = max(longest, len(value))
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return longest


def _at_space(piece: str, keep_start: bool) -> str:
    """`piece` without the part word at its cut end (the end when it keeps the start), when it has
    a space to cut at."""
    if keep_start:
        space = max(piece.rfind(" "), piece.rfind("\n"))
        return piece[: space + 1] if space > 0 else piece
    space = min((i for i in (piece.find(" "), piece.find("\n")) if i >= 0), default=-1)
    return piece[space:] if 0 <= space < len(piece) - 1 else piece


def tokenize_group(
    tokenizer: Any,
    fmt: TextFormat,
    prompt: list[Message],
    completions: list[list[Message]],
    max_length: int,
) -> TokenizedGroup:
    """Tokenize `prompt + completion` for each completion, fitting all into `max_length`."""
    prompt, completions = _bounded_texts(tokenizer, prompt, completions, max_length)
    ids = _encode(tokenizer, fmt, prompt, completions)
    if max(len(s) for s in ids) <= max_length:
        return TokenizedGroup(ids, common_prefix_len(ids))

    # Drop the oldest prompt turns: find the fewest dropped (binary search; fewer turns, shorter
    # text). A system turn that opens the prompt stays: without it a chat template would put its
    # own default system prompt in its place.
    kept = 1 if len(prompt) > 1 and prompt[0]["role"] == "system" else 0
    lo, hi = kept + 1, max(len(prompt) - 1, 0)  # keep at least the last prompt turn
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        cand = _encode_from(tokenizer, fmt, prompt, kept, mid, completions)
        if max(len(s) for s in cand) <= max_length:
            best, hi = cand, mid - 1
        else:
            lo = mid + 1
    if best is not None:
        return TokenizedGroup(best, common_prefix_len(best), prompt_truncated=True)

    # Still too long with only the last turn (and the system turn): cut their texts from their
    # starts, the longer first, so what the format puts around them (BOS/CLS, role headers) stays.
    turns, text_cut = len(prompt), False
    if prompt:
        prompt = prompt[:kept] + prompt[-1:]
        ids = _encode(tokenizer, fmt, prompt, completions)
        prompt, ids, text_cut = _shorten_turns(tokenizer, fmt, prompt, completions, ids, max_length)
    # Last resort (a format whose text could not be cut so): the oldest prompt tokens go, keeping
    # a leading special token (BOS/CLS) so the model sees the start marker it was trained with.
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    head = 1 if ids and ids[0] and ids[0][0] in special else 0
    # Only prompt tokens may go here: the shared prefix can reach into responses that start alike.
    prompt_tokens = (
        len(tokenizer(fmt.render(tokenizer, prompt), add_special_tokens=False, verbose=False)["input_ids"])
        if prompt
        else 0
    )
    prompt_len = min(common_prefix_len(ids), head + prompt_tokens)
    excess = max(max(len(s) for s in ids) - max_length, 0)  # (the text cut above may have fitted it)
    removable = max(prompt_len - head, 0)
    cut = min(excess, removable)
    ids = [s[:head] + s[head + cut :] for s in ids]
    truncated_prompt = cut > 0 or len(prompt) < turns or text_cut
    response_cut = False
    if any(len(s) > max_length for s in ids):
        response_cut = True
        ids = [s[:max_length] for s in ids]
    return TokenizedGroup(
        ids, common_prefix_len(ids), prompt_truncated=truncated_prompt, response_truncated=response_cut
    )


def tokenize_pair(tokenizer: Any, fmt: TextFormat, pair: PreferencePair, max_length: int) -> TokenizedPair:
    group = tokenize_group(tokenizer, fmt, pair.prompt, [pair.chosen, pair.rejected], max_length)
    chosen, rejected = group.ids
    return TokenizedPair(
        chosen_ids=chosen,
        rejected_ids=rejected,
        prefix_len=group.prefix_len,
        margin=pair.margin,
        prompt_truncated=group.prompt_truncated,
        response_truncated=group.response_truncated,
    )
