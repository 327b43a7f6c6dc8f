"""Split whole transcripts into prompt and completions (implicit-prompt data such as HH-RLHF).

HH-RLHF stores each side as one string, "\\n\\nHuman: ...\\n\\nAssistant: ...", and the two sides
share every turn but the last reply. We parse turns into messages and take the shared leading
messages as the prompt, so a reward model sees the same structure as conversational data.
"""

from __future__ import annotations

import os
import re
import unicodedata

from rewardforge.data.errors import RowError
from rewardforge.data.types import Message, turn_text

# A turn marker starts the text or follows a blank line; "Assistant: Human: ..." inside a turn is content.
_BOUNDARY = r"(?:\A\s*|\n[ \t\r]*\n\s*)"
_MARKER = re.compile(_BOUNDARY + r"(Human|Assistant):")
# Copies of HH that lost the blank lines ("Human: hi\nAssistant: hello") mark turns at line
# starts. Used only when a text has no blank-line marker at all: HH itself has a few replies
# with a line starting "Assistant:" inside them.
_LINE_MARKER = re.compile(r"(?:\A\s*|\n\s*)(Human|Assistant):")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def _turn_markers(text: str) -> list[re.Match[str]]:
    """Blank-line markers if they give both a Human and an Assistant turn, else line-start ones
    when the text opens with one (so prose with a line "Human: ..." is not taken for HH)."""
    matches = list(_MARKER.finditer(text))
    if {m.group(1) for m in matches} == {"Human", "Assistant"}:
        return matches
    loose = list(_LINE_MARKER.finditer(text))
    return loose if loose and not text[: loose[0].start()].strip() else matches


def looks_like_hh(text: str) -> bool:
    """True if `text` has HH-RLHF turn markers (a Human: turn and an Assistant: turn)."""
    return {m.group(1) for m in _turn_markers(text)} == {"Human", "Assistant"}


def hh_turns(text: str) -> list[Message] | None:
    """The turns of a text that is an HH transcript from its first character, else None (no
    markers, or text before the first one: a text that quotes a dialogue)."""
    if not looks_like_hh(text):
        return None
    try:
        return parse_hh(text, "")
    except RowError:
        return None


def parse_hh(text: str, field: str) -> list[Message]:
    """Parse "\\n\\nHuman: ...\\n\\nAssistant: ..." into messages; turn text is stripped."""
    matches = _turn_markers(text)
    if not matches:
        raise RowError("no 'Human:'/'Assistant:' turns in the transcript", field)
    if text[: matches[0].start()].strip():
        raise RowError("text before the first 'Human:'/'Assistant:' turn", field)
    ends = [m.start() for m in matches[1:]] + [len(text)]
    return [
        {"role": _ROLES[m.group(1)], "content": text[m.end() : end].strip()} for m, end in zip(matches, ends)
    ]


# NeMo's turn markers, as HelpSteer2's multi-turn prompts write them: the first user turn has
# none, later turns open with "\n<extra_id_1>User\n" or "\n<extra_id_1>Assistant\n"; a
# system turn, if any, opens the text with "<extra_id_0>System\n".
_NEMO_MARKER = re.compile(r"\n?<extra_id_1>(User|Assistant)[ \t]*\n")
_NEMO_SYSTEM = re.compile(r"\A<extra_id_0>System[ \t]*\n")


def parse_nemo(text: str) -> list[Message] | None:
    """The turns of a prompt written with NeMo's <extra_id_1> markers, else None. An empty
    system turn (the template's default) is no turn."""
    if "<extra_id_1>" not in text:
        return None
    text = text.replace("\r\n", "\n")
    if not _NEMO_MARKER.search(text):
        return None
    turns: list[Message] = []
    system = _NEMO_SYSTEM.match(text)
    if system:
        first = _NEMO_MARKER.search(text, system.end())
        if first is None:
            return None
        if text[system.end() : first.start()].strip():
            turns.append({"role": "system", "content": text[system.end() : first.start()].strip()})
        text = text[first.start() :]
    pieces = _NEMO_MARKER.split(text)  # [before, role, content, role, content, ...]
    if pieces[0].strip():
        turns.append({"role": "user", "content": pieces[0].strip()})
    for role, content in zip(pieces[1::2], pieces[2::2]):
        turns.append({"role": role.lower(), "content": content.strip()})
    if turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
        turns.pop()  # the open assistant turn the replies continue
    roles = [t["role"] for t in turns if t["role"] != "system"]
    alternating = all(a != b for a, b in zip(roles, roles[1:]))
    if any(not t["content"] for t in turns) or not roles or roles[-1] != "user" or not alternating:
        return None  # not a prompt in this form (a text that mentions the markers): kept as written
    return turns


def _same(a: Message, b: Message) -> bool:
    return a["role"] == b["role"] and turn_text(a).strip() == turn_text(b).strip()


def split_shared(
    chosen: list[Message], rejected: list[Message]
) -> tuple[list[Message], list[Message], list[Message]]:
    """Shared leading messages become the prompt, the rest the two completions.

    If one side would be left with nothing (one transcript extends the other), the prompt
    is shortened to end before the last run of assistant turns, so both sides keep a reply.
    """
    n = 0
    while n < min(len(chosen), len(rejected)) and _same(chosen[n], rejected[n]):
        n += 1
    if n == len(chosen) or n == len(rejected):
        while n > 0 and chosen[n - 1]["role"] == "assistant":
            n -= 1
    return chosen[:n], chosen[n:], rejected[n:]


def split_text(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Two whole texts and no prompt: the lines they share before they part are the prompt, the
    rest the two replies (all parts stripped). A prefix that parts mid-line ("Sure! Here is" vs
    "Sure! I cannot", "The cat" vs "The dog") is the replies' own opening, not a question: the
    texts are then kept whole, with no prompt, rather than a reply's words relabelled as the user's.
    """
    p = len(os.path.commonprefix([chosen, rejected]))
    for cut in (i + 1 for i in range(p - 1, -1, -1) if chosen[i] == "\n"):
        if chosen[:cut].count("```") % 2:  # inside a code block both replies open alike
            continue
        if chosen[:cut].strip() and chosen[cut:].strip() and rejected[cut:].strip():
            # a reply keeps its first line's indentation (code)
            return chosen[:cut].strip(), _reply(chosen[cut:]), _reply(rejected[cut:])
    return "", chosen.strip(), rejected.strip()


def _reply(text: str) -> str:
    return text.lstrip("\r\n").rstrip()


def split_transcripts(
    chosen: list[Message], rejected: list[Message], names: tuple[str, str]
) -> tuple[list[Message], list[Message], list[Message]]:
    """Implicit prompt: shared leading turns are the prompt. Transcripts that part in a user
    turn answer different prompts, which is no preference between replies."""
    for msgs, name in zip((chosen, rejected), names):
        if not msgs:
            raise RowError("empty conversation", name)
    refuse_extension(chosen, rejected, names)
    prompt, c_rest, r_rest = split_shared(chosen, rejected)
    for rest, name in zip((c_rest, r_rest), names):
        if rest and rest[0]["role"] in ("user", "system"):
            raise RowError(
                f"the transcripts differ at turn {len(prompt) + 1}, a {rest[0]['role']} turn: they answer "
                "different prompts, not one prompt with two replies",
                name,
            )
    return prompt, c_rest, r_rest


# typographic quotes and zero-width spaces, which copies of one text differ by
LOOSE_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u200b": None})


def refuse_extension(a: list[Message], b: list[Message], names: tuple[str, str]) -> None:
    """One side that is the other's whole conversation going on with a new user (or system) turn
    is no second reply to the same prompt: its last reply answers a later question. Sides that
    part earlier may each run on for several turns (whole trajectories, judged whole)."""

    def loose(m: Message) -> list[str]:  # one reply copied with other spacing or quotes is still one
        text = unicodedata.normalize("NFKC", turn_text(m)).translate(LOOSE_QUOTES)
        return text.split()

    def same(x: Message, y: Message) -> bool:
        return x["role"] == y["role"] and loose(x) == loose(y)

    n = 0
    while n < min(len(a), len(b)) and same(a[n], b[n]):
        n += 1
    if len(a) == len(b) or n < min(len(a), len(b)):
        return
    longer, name = (a, names[0]) if len(a) > len(b) else (b, names[1])
    turn = longer[n]
    if turn["role"] in ("user", "system"):
        excerpt = " ".join(turn["content"].split())[:40]
        raise RowError(
            f"is the other side's whole conversation going on with a {turn['role']} turn ({excerpt!r}): "
            "its last reply answers a later question, not the same prompt",
            name,
        )
