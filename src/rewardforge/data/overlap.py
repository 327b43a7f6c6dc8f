"""A prompt given beside completions that repeat it, wholly or in part: every turn once.

UltraFeedback-binarized and kin write the whole conversation in chosen/rejected beside the
prompt; other sets repeat the prompt's text at a reply's start, or give HH transcripts as
replies. `with_prompt` joins what both sides share to the prompt and leaves each completion
its own replies; what cannot be read one way (another question inside a completion, the
answer leaked into the prompt) is an invalid row.
"""

from __future__ import annotations

from rewardforge.data.errors import RowError
from rewardforge.data.transcripts import hh_turns, refuse_extension, split_shared
from rewardforge.data.types import Message
from rewardforge.data.values import normalised


def _overlap(have: list[tuple[str, str]], then: list[tuple[str, str]]) -> int:
    """The most turns that end `have` and start `then` (a prompt and what repeats it)."""
    return next((k for k in range(min(len(have), len(then)), 0, -1) if have[-k:] == then[:k]), 0)


def _last_user(msgs: list[Message]) -> str | None:
    return next((m["content"].strip() for m in reversed(msgs) if m["role"] == "user"), None)


def _joined_prompt(prompt: list[Message], shared: list[Message]) -> list[Message]:
    """The prompt and the turns both completions share, each turn once. The shared turns replace
    the prompt when they hold it (as their tail, or its last user turn); they continue it where
    they overlap its end. A prompt ending in a user turn they do not start with is ambiguous."""
    have, both = normalised(prompt), normalised(shared)
    if not prompt:
        return shared
    overlap = _overlap(have, both)
    if overlap or shared[0]["role"] == "assistant":  # a continuation of the prompt: never a copy of it
        return prompt + shared[overlap:]
    if both[-len(have) :] == have:
        return shared
    if _last_user(shared) == _last_user(prompt):
        return shared
    if prompt[-1]["role"] == "user" and shared[0]["role"] == "user":
        raise RowError(
            f"ends with a user turn ({_excerpt(prompt[-1]['content'])!r}) that the conversations in "
            f"chosen/rejected do not start with ({_excerpt(shared[0]['content'])!r}): which one was "
            "answered is unknowable",
            "prompt",
        )
    return prompt + shared


def with_prompt(
    prompt: list[Message], chosen: list[Message], rejected: list[Message]
) -> tuple[list[Message], list[Message], list[Message]]:
    """Completions that repeat the conversation (UltraFeedback-binarized and kin), on both sides
    or one, wholly or in part: every turn once, in the prompt; each completion keeps only what
    follows the prompt. A completion still holding a user turn answers another prompt, and a
    prompt ending in one side's reply has leaked it: both are invalid rows."""
    refuse_extension(chosen, rejected, ("chosen", "rejected"))
    shared, _, _ = split_shared(chosen, rejected)
    if shared:
        prompt = _joined_prompt(prompt, shared)
    have = normalised(prompt)
    rests = [side[min(_overlap(have, normalised(side)), len(side) - 1) :] for side in (chosen, rejected)]
    for rest, name in zip(rests, ("chosen", "rejected")):
        if rest and rest[0]["role"] in ("user", "system"):
            raise RowError(
                f"holds a {rest[0]['role']} turn ({_excerpt(rest[0]['content'])!r}) after what it shares "
                "with the prompt and the other side: it answers another prompt",
                name,
            )
    refuse_leaked_reply(prompt, rests)
    return prompt, rests[0], rests[1]


def refuse_leaked_reply(prompt: list[Message], sides: list[list[Message]]) -> None:
    """A prompt ending with the very reply one side gives (a `messages` column holding prompt and
    chosen, read as the prompt) would show the model the answer."""
    if not prompt or prompt[-1]["role"] != "assistant":
        return
    last = normalised(prompt[-1:])
    for side, name in zip(sides, ("chosen", "rejected")):
        if normalised(side[-1:]) == last:
            raise RowError(
                f"the prompt ends with this side's own reply ({_excerpt(side[-1]['content'])!r}): it "
                f"holds the answer; the prompt must stop before the replies",
                name,
            )


def _excerpt(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def transcript(reply: str, prompt: list[Message]) -> list[Message] | None:
    """A reply that is a whole HH transcript holding one of the prompt's user turns, as turns;
    None for a reply (a reply may well be a dialogue the prompt asked for)."""
    turns = hh_turns(reply)
    if not turns:
        return None
    asked = {content for role, content in normalised(prompt) if role == "user"}
    repeats = any(role == "user" and content in asked for role, content in normalised(turns))
    return turns if turns[0]["role"] == "user" and repeats else None


REPEATED_PROMPT_CHARS = 20  # a shorter prompt may be a reply's own first words ("Hi there")


def without_repeated_prompt(prompt: str, reply: str) -> str:
    """A reply that opens with the whole prompt (then a space or line break) loses that copy:
    the model would read the prompt twice, and on one side only it is a shortcut to learn."""
    if len(prompt) < REPEATED_PROMPT_CHARS or not reply.lstrip().startswith(prompt):
        return reply
    rest = reply.lstrip()[len(prompt) :]
    return rest.strip() if rest[:1].isspace() and rest.strip() else reply
