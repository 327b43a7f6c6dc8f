"""Recognise the shape of a preference record and normalise it to `PreferencePair`s.

Shapes (the name is what `LoadedPairs.shape` reports; "+scores" is appended when the
record carries `score_chosen`/`score_rejected`):

- explicit_prompt: `prompt`, `chosen`, `rejected` strings.
- conversational: `prompt` (messages or a string) with `chosen`/`rejected` message lists.
- implicit_conversational: `chosen`/`rejected` message lists, no prompt; shared leading turns are the prompt.
- hh_rlhf: `chosen`/`rejected` "\\n\\nHuman: ...\\n\\nAssistant: ..." transcripts, no prompt.
- implicit_text: `chosen`/`rejected` plain texts, no prompt; the common prefix is the prompt.
- helpsteer3: `input` + `output` [{"answer", "label": {"is_preferred"}}]; one pair per non-preferred answer.
- shp: `history`, `human_ref_A`, `human_ref_B`, `labels` (1 = A preferred), `score_A`, `score_B`.
- multi_completion: RewardBench 2's `prompt` with `chosen`/`rejected` lists of texts; one pair
  per (chosen, rejected) combination, ids "ID#k".
- ranked / ranked+scores: a `prompt` with a list of rated completions, `completions`
  (openbmb/UltraFeedback: `response`, `overall_score`) or `answers` (Nectar: `answer`, `rank`, 1 =
  best); one pair per (better, worse) combination, ids "ID#k"; equal ratings give no pair.
- indexed_pair: PKU-SafeRLHF's `prompt`, `response_0`, `response_1`, `better_response_id` (0 or 1).
- arena: Chatbot Arena battles: `conversation_a`/`conversation_b` (whole conversations) or
  `prompt` with `response_a`/`response_b` (the Kaggle LMSYS set's JSON lists of turns are read as
  turns), and `winner` ("model_a", "model_b"; a tie is an invalid row) or one-hot
  `winner_model_a`/`winner_model_b`/`winner_tie`.
- graded_pair: NVIDIA HelpSteer3's `context`, `response1`, `response2`, `overall_preference`
  (-3..3, negative = response 1 better; 0, no preference, is an invalid row), or HelpSteer2's
  `prompt`, `response_1`, `response_2`, `preference_strength`; margin_from_scores takes |grade|.

Margins: an explicit `margin` field always wins. With `margin_from_scores=True` a scored
shape gets score_chosen - score_rejected (SHP: the winner's score minus the loser's, raw
upvote counts, not scaled, so they can be large); a row whose scores say the rejected side
is better is invalid, and a tie gives margin 0. Scores are also kept in `PreferencePair.extra`.
`id` and `category` (or RewardBench's `subset`) pass through as text. A `system` string
becomes the prompt's system turn. Other datasets' names for these fields (question,
chosen_response, chosen-rating, ...) are found by `columns.infer_columns` and reported.
Messages may be OpenAI-style (role/content) or ShareGPT-style (from/value).

Every problem raises `RowError(reason, field)`; the loader adds the file and location.
"""

from __future__ import annotations

import decimal
import json
import math
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from rewardforge.data.columns import RATED_LISTS, suggest_columns
from rewardforge.data.errors import RowError
from rewardforge.data.transcripts import looks_like_hh, parse_hh, split_shared, split_text
from rewardforge.data.types import CHAT_ROLES, Message, PreferencePair

# Roles other chat formats use for ours: OpenAI's "developer" is a system turn, "function" a tool.
# ShareGPT (LLaMA-Factory) names: "human", "gpt", "observation" (a tool result), "function_call".
ROLE_ALIASES = {
    "developer": "system",
    "function": "tool",
    "human": "user",
    "gpt": "assistant",
    "observation": "tool",
    "function_call": "assistant",
}

ARENA_MARKERS = ("conversation_a", "conversation_b", "response_a", "response_b", "winner_model_a")
RANKED_TEXT_KEYS = ("response", "answer", "text", "content")
RANKED_SCORE_KEYS = ("overall_score", "score", "rating")  # higher is better
RANKED_RANK_KEYS = ("rank",)  # lower is better
SCORED_SHAPES = ("shp", "graded_pair")  # shapes whose scores are built in; others need "+scores"
# graded_pair field names: HelpSteer3's first, HelpSteer2-preference's second.
GRADED_FIELDS = (
    ("context", "prompt"),
    ("response1", "response_1"),
    ("response2", "response_2"),
    ("overall_preference", "preference_strength"),
)


@dataclass
class Detected:
    """A shape and the features that decided it, to name the differing field in a mixture."""

    shape: str
    features: dict[str, str] = field(default_factory=dict)

    @property
    def has_scores(self) -> bool:
        return self.shape.endswith("+scores") or self.shape in SCORED_SHAPES


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _present(record: dict, key: str) -> bool:
    return record.get(key) is not None


def _text_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], str)


def detect_shape(record: Any) -> Detected:
    """Decide a record's shape from which fields it has and their types."""
    if not isinstance(record, dict):
        raise RowError(f"record is not a JSON object (got {_type(record)})")
    has_pair = _present(record, "chosen") or _present(record, "rejected")
    if not has_pair and _present(record, "output"):
        return Detected("helpsteer3", {"output": "present"})
    ranked = _ranked_list(record) if not has_pair else None
    if ranked is not None:
        return Detected(
            "ranked" + ("+scores" if _rating_key(ranked[1][0])[1] == "score" else ""), {ranked[0]: "list"}
        )
    if not has_pair and any(k in record for k in ("history", "human_ref_A", "human_ref_B")):
        return Detected("shp", {"human_ref_A": "present"})
    if not has_pair and ("response_0" in record or "better_response_id" in record):
        return Detected("indexed_pair", {"response_0": "present"})
    if not has_pair and any(k in record for k in ("response1", "response_1")):
        return Detected("graded_pair", {"response1": "present"})
    if not has_pair and any(k in record for k in ARENA_MARKERS):
        return Detected("arena", {"winner": "present"})
    if not has_pair:
        keys = sorted(map(str, record))
        raise RowError(
            "no preference fields: expected chosen/rejected, input/output (HelpSteer3-like), "
            "context/response1/response2/overall_preference (HelpSteer3), "
            "prompt/response_0/response_1/better_response_id (PKU-SafeRLHF), "
            "conversation_a/conversation_b/winner (Chatbot Arena), "
            "prompt/completions[{response, overall_score}] (UltraFeedback), "
            "prompt/answers[{answer, rank}] (Nectar) or "
            f"history/human_ref_A/human_ref_B (SHP); found keys: {', '.join(keys[:12]) or 'none'} "
            f"(map yours with columns){suggest_columns(keys)}"
        )
    key = "chosen" if _present(record, "chosen") else "rejected"
    value = record[key]
    prompt = "present" if _present(record, "prompt") else ("null" if "prompt" in record else "absent")
    other = record.get("rejected" if key == "chosen" else "chosen")
    if _text_list(value) or (value == [] and _text_list(other)):
        kind, shape = "texts", "multi_completion"  # RewardBench 2: ["best"] vs ["worse", ...]
    elif isinstance(value, list | dict):  # dict: one message (LLaMA-Factory's ShareGPT pairs)
        kind, shape = "messages", ("conversational" if prompt == "present" else "implicit_conversational")
    elif isinstance(value, str):
        if prompt == "present":
            kind, shape = "text", "explicit_prompt"
        elif looks_like_hh(value):
            kind, shape = "transcript", "hh_rlhf"
        else:
            kind, shape = "text", "implicit_text"
    else:
        raise RowError(f"expected a string or a list of messages, got {_type(value)}", key)
    scores = "present" if ("score_chosen" in record or "score_rejected" in record) else "absent"
    return Detected(
        shape + ("+scores" if scores == "present" else ""),
        {"prompt": prompt, "chosen": kind, "score_chosen": scores},
    )


def mixture_field(first: Detected, now: Detected) -> str | None:
    """The field whose presence or type differs between two detections (for the error message)."""
    for key in list(first.features) + list(now.features):
        if first.features.get(key, "absent") != now.features.get(key, "absent"):
            return key
    return None


def number(value: Any, name: str) -> float | None:
    """A finite number, or None for null/empty; numeric strings are accepted (CSV cells)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RowError(f"expected a number, got {_type(value)}", name)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RowError(f"expected a number, got {value[:40]!r}", name) from None
    if isinstance(value, decimal.Decimal):  # Parquet decimal columns
        value = float(value)
    if not isinstance(value, int | float):
        raise RowError(f"expected a number, got {_type(value)}", name)
    try:
        value = float(value)
    except OverflowError:  # an integer beyond float range (JSON allows any length)
        raise RowError(
            f"expected a finite number, got an integer of {len(str(abs(value)))} digits", name
        ) from None
    if not math.isfinite(value):
        raise RowError(f"expected a finite number, got {value}", name)
    return value


def unicode_text(value: str, name: str) -> str:
    """A string that can be written as UTF-8: a lone surrogate ("\\ud800" in JSON) cannot be
    tokenized, so it is this row's error here rather than a crash deep in the tokenizer."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RowError(f"not valid Unicode (lone surrogate at character {exc.start})", name) from None
    return value


def _content(value: Any, where: str) -> str:
    """Message content: a string, or OpenAI-style text parts [{"type": "text", "text": ...}]."""
    if isinstance(value, list) and value and all(isinstance(part, dict) for part in value):
        texts = []
        for j, part in enumerate(value):
            if (part.get("type") or "text") != "text":  # Arrow gives an absent key as null
                raise RowError(
                    f"only text content parts are supported, got {part.get('type')!r}", f"{where}[{j}]"
                )
            if not isinstance(part.get("text"), str):
                raise RowError(f"expected a string, got {_type(part.get('text'))}", f"{where}[{j}].text")
            texts.append(part["text"])
        value = "\n".join(texts)
    if not isinstance(value, str):
        raise RowError(f"expected a string, got {_type(value)}", where)
    return unicode_text(value, where)


def messages(value: Any, name: str) -> list[Message]:
    """Validate a message list (or one message object); keep only role and content. ShareGPT's
    {"from": "human"|"gpt", "value": ...} messages are read as role and content."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowError(f"expected a list of messages, got {_type(value)}", name)
    out: list[Message] = []
    for i, msg in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(msg, dict):
            raise RowError(f"expected a message object, got {_type(msg)}", where)
        # ShareGPT; in Parquet a list mixing both kinds has every key, the unused ones null
        sharegpt = msg.get("role") is None and msg.get("content") is None and "from" in msg
        role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
        role, content = msg.get(role_key), msg.get(content_key)
        if role is None:
            raise RowError("missing", f"{where}.{role_key}")
        if not isinstance(role, str):
            raise RowError(f"expected a role name, got {_type(role)}", f"{where}.{role_key}")
        role = ROLE_ALIASES.get(role, role)
        if role not in CHAT_ROLES:
            raise RowError(
                f"unknown chat role {role!r} (expected one of {sorted(CHAT_ROLES)})", f"{where}.{role_key}"
            )
        if content is None:
            raise RowError("missing", f"{where}.{content_key}")
        out.append({"role": role, "content": _content(content, f"{where}.{content_key}")})
    return out


def text(record: dict, name: str, like: str | None = None) -> str:
    """A required string field."""
    value = record.get(name)
    if value is None:
        raise RowError("missing", name)
    if not isinstance(value, str):
        hint = f" like '{like}'" if like else ""
        raise RowError(f"expected a string{hint}, got {_type(value)}", name)
    return unicode_text(value, name)


def _hh_turns(value: str, name: str) -> list[Message] | None:
    """The turns of a prompt that is an HH transcript from its first character, else None."""
    if not looks_like_hh(value):
        return None
    try:
        turns = parse_hh(value, name)
    except RowError:  # text before the first turn: a prompt that quotes a dialogue
        return None
    if turns and turns[-1]["role"] == "assistant":
        if turns[-1]["content"].strip():  # ends with a reply: text that quotes a dialogue
            return None
        turns.pop()  # the open "Assistant:" that the replies continue
    return turns


def prompt_messages(value: Any, name: str) -> list[Message]:
    """A prompt string is one user message (none if blank), or its turns if it is written in
    HH-RLHF's "\\n\\nHuman: ...\\n\\nAssistant:" form (as in Dahoas/rm-static); a list is messages."""
    if isinstance(value, str):
        value = unicode_text(value, name)
        turns = _hh_turns(value, name)
        if turns:
            return turns
        return [{"role": "user", "content": value}] if value.strip() else []
    if isinstance(value, list):
        return messages(value, name)
    raise RowError(f"expected a string or a list of messages, got {_type(value)}", name)


def _assistant(content: str) -> list[Message]:
    return [{"role": "assistant", "content": content}]


def _norm(msgs: list[Message]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"].strip()) for m in msgs]


def _blank(text: str) -> bool:
    """Nothing a reader would see: whitespace, control and format characters only."""
    return not any(unicodedata.category(ch)[0] not in "CZ" for ch in text)


def response_problem(msgs: list[Message], *, allow_empty: bool = False) -> str | None:
    """Why `msgs` cannot be a response, or None: it must end with a visible reply from the
    assistant. Training, `rewardforge score` and the server all ask here. The server passes
    `allow_empty`: a policy's completion may be empty, and the RLHF reward must score it."""
    if not msgs or (not allow_empty and _blank(msgs[-1]["content"])):
        return "empty response"
    if msgs[-1]["role"] != "assistant":
        return (
            f"the response ends with a {msgs[-1]['role']!r} message; it must end with the assistant's reply"
        )
    return None


def check_completions(chosen: list[Message], rejected: list[Message], names: tuple[str, str]) -> None:
    """Both sides need a visible final reply from the assistant, and must differ (ignoring
    surrounding whitespace)."""
    for msgs, name in zip((chosen, rejected), names):
        problem = response_problem(msgs)
        if problem:
            raise RowError(problem, name)
    if _norm(chosen) == _norm(rejected):
        raise RowError(f"identical to '{names[0]}'", names[1])


def _drop_prompt(prompt: list[Message], msgs: list[Message]) -> list[Message]:
    """`msgs` without the prompt turns it repeats at its start (if it does)."""
    n = len(prompt)
    return msgs[n:] if n and len(msgs) > n and _norm(msgs[:n]) == _norm(prompt) else msgs


def _last_user(msgs: list[Message]) -> str | None:
    return next((m["content"].strip() for m in reversed(msgs) if m["role"] == "user"), None)


def _with_prompt(
    prompt: list[Message], chosen: list[Message], rejected: list[Message]
) -> tuple[list[Message], list[Message], list[Message]]:
    """Completions that repeat the conversation (UltraFeedback-binarized and kin): turns both
    sides share move to the prompt. They replace the given prompt when they end with its last
    user turn (the shared turns then hold it, with any system turn or earlier history)."""
    chosen, rejected = _drop_prompt(prompt, chosen), _drop_prompt(prompt, rejected)
    shared, c_rest, r_rest = split_shared(chosen, rejected)
    if not shared:
        return prompt, chosen, rejected
    if not prompt or _last_user(shared) == _last_user(prompt):
        return shared, c_rest, r_rest
    return prompt + shared, c_rest, r_rest


def _split_transcripts(
    chosen: list[Message], rejected: list[Message], names: tuple[str, str]
) -> tuple[list[Message], list[Message], list[Message]]:
    """Implicit prompt: shared leading turns are the prompt. Transcripts that part in a user
    turn answer different prompts, which is no preference between replies."""
    for msgs, name in zip((chosen, rejected), names):
        if not msgs:
            raise RowError("empty conversation", name)
    prompt, c_rest, r_rest = split_shared(chosen, rejected)
    for rest, name in zip((c_rest, r_rest), names):
        if rest and rest[0]["role"] in ("user", "system"):
            raise RowError(
                f"the transcripts differ at turn {len(prompt) + 1}, a {rest[0]['role']} turn: they answer "
                "different prompts, not one prompt with two replies",
                name,
            )
    return prompt, c_rest, r_rest


def _pair_fields(record: dict, shape: str) -> tuple[list[Message], list[Message], list[Message]]:
    """Prompt, chosen, rejected for the shapes built on `chosen`/`rejected`."""
    base = shape.removesuffix("+scores")
    if base == "explicit_prompt":
        prompt = prompt_messages(record["prompt"], "prompt")
        return prompt, _assistant(text(record, "chosen")), _assistant(text(record, "rejected", like="chosen"))
    if base in ("conversational", "implicit_conversational"):
        chosen = messages(record.get("chosen"), "chosen") if _present(record, "chosen") else None
        rejected = messages(record.get("rejected"), "rejected") if _present(record, "rejected") else None
        if chosen is None or rejected is None:
            raise RowError("missing", "chosen" if chosen is None else "rejected")
        if base == "implicit_conversational":
            return _split_transcripts(chosen, rejected, ("chosen", "rejected"))
        return _with_prompt(prompt_messages(record["prompt"], "prompt"), chosen, rejected)
    chosen_text, rejected_text = text(record, "chosen"), text(record, "rejected", like="chosen")
    if base == "hh_rlhf":
        return _split_transcripts(
            parse_hh(chosen_text, "chosen"), parse_hh(rejected_text, "rejected"), ("chosen", "rejected")
        )
    prompt_text, c, r = split_text(chosen_text, rejected_text)
    return prompt_messages(prompt_text, "prompt"), _assistant(c), _assistant(r)


def _required_prompt(record: dict, name: str) -> list[Message]:
    if not _present(record, name):
        raise RowError("missing", name)
    return prompt_messages(record[name], name)


def _helpsteer3(record: dict) -> list[tuple[list[Message], list[Message], list[Message], int]]:
    prompt = _required_prompt(record, "input")
    output = record.get("output")
    if not isinstance(output, list):
        raise RowError(
            "missing" if output is None else f"expected a list of answers, got {_type(output)}", "output"
        )
    answers: list[tuple[int, str, bool]] = []
    for i, item in enumerate(output):
        if not isinstance(item, dict):
            raise RowError(f"expected an answer object, got {_type(item)}", f"output[{i}]")
        answer, label = item.get("answer"), item.get("label")
        if not isinstance(answer, str):
            raise RowError(
                "missing" if answer is None else f"expected a string, got {_type(answer)}",
                f"output[{i}].answer",
            )
        preferred = label.get("is_preferred") if isinstance(label, dict) else None
        if not isinstance(preferred, bool):
            raise RowError(f"expected true/false, got {_type(preferred)}", f"output[{i}].label.is_preferred")
        answers.append((i, answer, preferred))
    best = [a for a in answers if a[2]]
    if len(best) != 1:
        raise RowError(f"expected exactly one preferred answer, found {len(best)}", "output")
    others = [a for a in answers if not a[2]]
    if not others:
        raise RowError("no non-preferred answer to pair the preferred one with", "output")
    b_index, b_answer, _ = best[0]
    out = []
    for i, answer, _ in others:
        chosen, rejected = _assistant(b_answer), _assistant(answer)
        check_completions(chosen, rejected, (f"output[{b_index}].answer", f"output[{i}].answer"))
        out.append((prompt, chosen, rejected, i))
    return out


def _zero_or_one(value: Any) -> int | None:
    """0 or 1 from what `number` reads (pandas turns an int column with nulls into floats, and
    CSV then holds "1.0"); None for anything else."""
    try:
        read = number(value, "")
    except RowError:
        return None
    return int(read) if read in (0, 1) else None


def _shp_a_preferred(value: Any) -> bool:
    label = 1 if value is True else 0 if value is False else _zero_or_one(value)
    if label is not None:
        return label == 1
    reason = "missing" if value is None else f"expected 1 (A preferred) or 0 (B preferred), got {value!r}"
    raise RowError(reason, "labels")


def _shp(record: dict) -> tuple[list[Message], list[Message], list[Message], tuple[str, str]]:
    """SHP: returns prompt, chosen, rejected and the (chosen, rejected) suffixes, "A"/"B"."""
    prompt = prompt_messages(text(record, "history"), "history")
    a, b = text(record, "human_ref_A"), text(record, "human_ref_B")
    if _shp_a_preferred(record.get("labels")):
        return prompt, _assistant(a), _assistant(b), ("A", "B")
    return prompt, _assistant(b), _assistant(a), ("B", "A")


def _indexed_pair(record: dict) -> tuple[list[Message], list[Message], list[Message], tuple[str, str]]:
    """PKU-SafeRLHF: `response_0`, `response_1` and `better_response_id` (0 or 1); a safety RM
    maps `better_response_id=safer_response_id`."""
    prompt = _required_prompt(record, "prompt")
    first, second = text(record, "response_0"), text(record, "response_1", like="response_0")
    raw = record.get("better_response_id")
    better = _zero_or_one(raw)
    if better is None:
        reason = "missing" if raw is None else f"expected 0 or 1 (the better response), got {raw!r}"
        raise RowError(reason, "better_response_id")
    if better == 0:
        return prompt, _assistant(first), _assistant(second), ("response_0", "response_1")
    return prompt, _assistant(second), _assistant(first), ("response_1", "response_0")


def _texts(record: dict, name: str) -> list[str]:
    value = record.get(name)
    if value is None:
        raise RowError("missing", name)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise RowError(f"expected a non-empty list of texts, got {_type(value)}", name)
    if not value:
        raise RowError("expected a non-empty list of texts, got an empty list", name)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise RowError(f"expected a string, got {_type(item)}", f"{name}[{i}]")
        unicode_text(item, f"{name}[{i}]")
    return value


def _multi_completion(record: dict) -> list[tuple[list[Message], list[Message], list[Message], int]]:
    """RewardBench 2: lists of better and worse completions; one pair per (better, worse)."""
    prompt = _required_prompt(record, "prompt")
    better, worse = _texts(record, "chosen"), _texts(record, "rejected")
    out = []
    for i, b in enumerate(better):
        for j, w in enumerate(worse):
            chosen, rejected = _assistant(b), _assistant(w)
            check_completions(chosen, rejected, (f"chosen[{i}]", f"rejected[{j}]"))
            out.append((prompt, chosen, rejected, len(out)))
    return out


ARENA_WINNERS = {"model_a": "a", "model_b": "b", "tie": None, "tie (bothbad)": None, "both_bad": None}


def _flag(value: Any) -> int | None:
    """0 or 1 from a one-hot cell: ints, "1.0" text, or booleans (pandas.get_dummies)."""
    return 1 if value is True else 0 if value is False else _zero_or_one(value)


def _one_hot_winner(record: dict) -> tuple[str | None, str] | None:
    """The Kaggle set's winner_model_a/winner_model_b/winner_tie: ("a" | "b" | None for a tie,
    the field that is 1), or None when the row has none of them."""
    names = ("winner_model_a", "winner_model_b", "winner_tie")
    if all(record.get(name) is None for name in names):
        return None
    flags = []
    for name in names:
        raw = record.get(name)
        flag = _flag(raw)
        if flag is None:
            raise RowError("missing" if raw is None else f"expected 0 or 1, got {raw!r}", name)
        flags.append(flag)
    if sum(flags) != 1:
        raise RowError(f"expected exactly one of {', '.join(names)} to be 1, got {flags}", names[0])
    return ("a", "b", None)[flags.index(1)], names[flags.index(1)]


def _named_winner(record: dict) -> tuple[str | None, str] | None:
    """`winner`: ("a" | "b" | None for a tie, "winner"), or None when the row has no value."""
    raw = record.get("winner")
    if raw is None:
        return None
    if not isinstance(raw, str) or raw.strip().lower() not in ARENA_WINNERS:
        raise RowError(f"expected one of {', '.join(map(repr, ARENA_WINNERS))}, got {raw!r}", "winner")
    return ARENA_WINNERS[raw.strip().lower()], "winner"


def _arena_winner(record: dict) -> str:
    """Which side won, "a" or "b". A tie is no preference, and a `winner` that the one-hot
    columns contradict cannot be trusted: both are invalid rows."""
    named, one_hot = _named_winner(record), _one_hot_winner(record)
    if named is None and one_hot is None:
        raise RowError("missing", "winner_model_a" if "winner_model_a" in record else "winner")
    if named is not None and one_hot is not None and named[0] != one_hot[0]:
        raise RowError(f"{record['winner']!r} contradicts {one_hot[1]} = 1", "winner")
    side, name = named or one_hot
    if side is None:
        said = record.get(name)
        raise RowError(f"{said!r}: neither response is preferred (a tie; --skip-invalid drops ties)", name)
    return side


def _json_turns(value: Any) -> list[str | None] | None:
    """A list of turns (texts; null where a model gave none), also written as JSON text, as the
    Kaggle LMSYS set writes them ('["hi", "and then?"]'); None for anything else."""
    if isinstance(value, str) and value.strip().startswith("[") and value.strip().endswith("]"):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    if isinstance(value, list) and value and all(v is None or isinstance(v, str) for v in value):
        return value
    return None


def _arena_turns(record: dict) -> tuple[list[Message], list[Message]] | None:
    """A prompt given as a list of turns, with `response_a`/`response_b` lists of one length,
    as two conversations; None when the prompt is not a turn list (one prompt, two replies)."""
    questions = _json_turns(record.get("prompt"))
    if questions is None:
        return None
    sides = []
    for side in ("response_a", "response_b"):
        answers = _json_turns(record.get(side))
        if answers is None:
            raw = record.get(side)
            reason = "missing" if raw is None else "expected a list of replies, one per turn of 'prompt'"
            raise RowError(reason, side)
        if len(answers) != len(questions):
            raise RowError(f"{len(answers)} replies for {len(questions)} prompt turns", side)
        conversation: list[Message] = []
        for i, (question, answer) in enumerate(zip(questions, answers)):
            for value, name, role in ((question, "prompt", "user"), (answer, side, "assistant")):
                if not isinstance(value, str):
                    raise RowError(f"expected a string, got {_type(value)}", f"{name}[{i}]")
                conversation.append({"role": role, "content": unicode_text(value, f"{name}[{i}]")})
        sides.append(conversation)
    return sides[0], sides[1]


def _arena(record: dict) -> tuple[list[Message], list[Message], list[Message], tuple[str, str]]:
    """Chatbot Arena: prompt, chosen, rejected and the (chosen, rejected) field names."""
    winner = _arena_winner(record)
    if "conversation_a" in record or "conversation_b" in record:
        names = ("conversation_a", "conversation_b")
        a, b = (messages(record.get(n), n) if _present(record, n) else None for n in names)
        if a is None or b is None:
            raise RowError("missing", names[0] if a is None else names[1])
        prompt, a_rest, b_rest = _split_transcripts(a, b, names)
    else:
        names = ("response_a", "response_b")
        turns = _arena_turns(record)
        if turns is None:
            prompt = _required_prompt(record, "prompt")
            a_rest, b_rest = _assistant(text(record, names[0])), _assistant(text(record, names[1]))
        else:
            prompt, a_rest, b_rest = _split_transcripts(*turns, names)
    if winner == "a":
        return prompt, a_rest, b_rest, names
    return prompt, b_rest, a_rest, (names[1], names[0])


def _ranked_list(record: dict) -> tuple[str, list] | None:
    """The list of rated completions (its field name and items), or None."""
    for name in RATED_LISTS:
        items = record.get(name)
        if isinstance(items, list) and items and isinstance(items[0], dict):
            return name, items
    return None


def _rating_key(item: Any) -> tuple[str | None, str]:
    """Which key rates a completion, and whether it is a "score" (higher is better) or a "rank"."""
    if isinstance(item, dict):
        for key in RANKED_SCORE_KEYS:
            if key in item:
                return key, "score"
        for key in RANKED_RANK_KEYS:
            if key in item:
                return key, "rank"
    return None, "score"


def _ranked(record: dict) -> list[tuple[list[Message], list[Message], list[Message], int, dict[str, float]]]:
    """Rated completions: one pair per (better, worse) combination, with both ratings."""
    found = _ranked_list(record)
    name, items = found if found else (RATED_LISTS[0], record.get(RATED_LISTS[0]))
    if not isinstance(items, list) or len(items) < 2:
        raise RowError("expected a list of at least two rated completions", name)
    prompt = _required_prompt(record, "prompt")
    rating_key, kind = _rating_key(items[0])
    rated: list[tuple[int, str, str, float]] = []
    for i, item in enumerate(items):
        where = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise RowError(f"expected a completion object, got {_type(item)}", where)
        text_key = next((k for k in RANKED_TEXT_KEYS if k in item), RANKED_TEXT_KEYS[0])
        try:
            reply = text(item, text_key)  # "missing" names the first expected key
        except RowError as exc:
            raise RowError(exc.reason, f"{where}.{exc.field}") from None
        if rating_key is None or rating_key not in item:
            keys = RANKED_SCORE_KEYS + RANKED_RANK_KEYS if rating_key is None else (rating_key,)
            raise RowError(f"missing (expected one of {', '.join(keys)})", f"{where}.{rating_key or keys[0]}")
        rating = number(item[rating_key], f"{where}.{rating_key}")
        if rating is None:
            raise RowError("missing", f"{where}.{rating_key}")
        rated.append((i, f"{where}.{text_key}", reply, rating if kind == "score" else -rating))
    out = []
    for _, i_name, better, i_rating in sorted(rated, key=lambda r: -r[3]):
        for _, j_name, worse, j_rating in rated:
            if j_rating < i_rating:
                chosen, rejected = _assistant(better), _assistant(worse)
                check_completions(chosen, rejected, (i_name, j_name))
                sign = 1 if kind == "score" else -1
                ratings = {f"{kind}_chosen": sign * i_rating, f"{kind}_rejected": sign * j_rating}
                out.append((prompt, chosen, rejected, len(out), ratings))
    if not out:
        raise RowError(f"every completion has the same {rating_key}: no preference", name)
    return out


def _system_turn(record: dict) -> Message | None:
    """A `system` column (orca_dpo_pairs) as the prompt's system turn, or None."""
    system = record.get("system")
    if system is None or (isinstance(system, str) and _blank(system)):
        return None
    if not isinstance(system, str):
        raise RowError(f"expected a string, got {_type(system)}", "system")
    return {"role": "system", "content": unicode_text(system, "system")}


def _with_system(system: Message | None, prompt: list[Message]) -> list[Message]:
    """The prompt led by the column's system turn. One already in the prompt must agree with it,
    or which one the model was meant to see is unknowable."""
    if system is None:
        return prompt
    if prompt and prompt[0]["role"] == "system":
        if prompt[0]["content"].strip() != system["content"].strip():
            raise RowError("differs from the system message in the prompt", "system")
        return prompt
    return [system, *prompt]


def _graded_pair(record: dict) -> tuple[list[Message], list[Message], list[Message], tuple[str, str], float]:
    """HelpSteer3/HelpSteer2 pairwise grades: prompt, chosen, rejected, their field names, |grade|."""
    family = 1 if "response_1" in record or "preference_strength" in record else 0  # for "missing"
    ctx, one, two, grade_name = (
        next((n for n in names if n in record), names[family]) for names in GRADED_FIELDS
    )
    prompt = _required_prompt(record, ctx)
    first, second = text(record, one), text(record, two, like=one)
    grade = number(record.get(grade_name), grade_name)
    if grade is None:
        raise RowError("missing", grade_name)
    if grade == 0:
        raise RowError("0: neither response is preferred (a tie; --skip-invalid drops ties)", grade_name)
    if grade < 0:  # negative: response 1 is better
        return prompt, _assistant(first), _assistant(second), (one, two), -grade
    return prompt, _assistant(second), _assistant(first), (two, one), grade


def _readable_scores(raw: list[Any], score_names: tuple[str, str]) -> dict[str, float]:
    """Scores kept in `extra` for reference; unused, so unreadable ones are not an error."""
    kept = {}
    for key, value, name in zip(("score_chosen", "score_rejected"), raw, score_names):
        try:
            score = number(value, name)
        except RowError:
            continue
        if score is not None:
            kept[key] = score
    return kept


def _margin_and_scores(
    record: dict, detected: Detected, score_names: tuple[str, str], margin_from_scores: bool
) -> tuple[float | None, dict[str, Any]]:
    """An explicit `margin` always wins; else score_chosen - score_rejected if asked for."""
    margin = number(record.get("margin"), "margin")
    if not detected.has_scores:
        return margin, {}
    raw = [record.get(name) for name in score_names]
    if not margin_from_scores:
        return margin, _readable_scores(raw, score_names)
    values = [number(value, name) for value, name in zip(raw, score_names)]
    for value, name in zip(values, score_names):
        if value is None:
            raise RowError("missing (needed for margin_from_scores)", name)
    sc, sr = values
    if sc < sr:  # a label the scores contradict: which one is right is unknowable here
        raise RowError(
            f"the scores contradict the preference: {score_names[0]} {sc:g} is below {score_names[1]} {sr:g}",
            score_names[0],
        )
    return (sc - sr if margin is None else margin), {"score_chosen": sc, "score_rejected": sr}


def _label(value: Any, name: str) -> str | None:
    """An id or category as text; null and "" (an empty CSV cell) mean none."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RowError(f"expected a string or a number, got {_type(value)}", name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # an int column with nulls, read by pandas: 5.0 is id 5
    return unicode_text(value, name) if isinstance(value, str) else str(value)


def normalise(record: dict, detected: Detected, *, margin_from_scores: bool = False) -> list[PreferencePair]:
    """Turn one record of a detected shape into one pair (several for helpsteer3, multi_completion
    and ranked)."""
    shape = detected.shape
    score_names = ("score_chosen", "score_rejected")
    ratings: list[dict[str, float]] = []  # ranked: each pair's own two ratings
    if shape == "helpsteer3":
        triples = _helpsteer3(record)
    elif shape == "shp":
        p, c, r, (win, lose) = _shp(record)
        check_completions(c, r, (f"human_ref_{win}", f"human_ref_{lose}"))
        triples = [(p, c, r, None)]
        score_names = (f"score_{win}", f"score_{lose}")
    elif shape == "graded_pair":
        p, c, r, names, strength = _graded_pair(record)
        check_completions(c, r, names)
        triples = [(p, c, r, None)]
    elif shape.removesuffix("+scores") == "multi_completion":
        triples = _multi_completion(record)
    elif shape.removesuffix("+scores") == "ranked":
        rated = _ranked(record)
        triples, ratings = [t[:4] for t in rated], [t[4] for t in rated]
    elif shape in ("indexed_pair", "arena"):
        p, c, r, names = (_indexed_pair if shape == "indexed_pair" else _arena)(record)
        check_completions(c, r, names)
        triples = [(p, c, r, None)]
    else:
        p, c, r = _pair_fields(record, shape)
        check_completions(c, r, ("chosen", "rejected"))
        triples = [(p, c, r, None)]
    if shape == "graded_pair":
        margin = number(record.get("margin"), "margin")
        margin = strength if margin is None and margin_from_scores else margin
        extra: dict[str, Any] = {"preference_strength": strength}
    elif ratings:
        margin, extra = number(record.get("margin"), "margin"), {}
    else:
        margin, extra = _margin_and_scores(record, detected, score_names, margin_from_scores)

    id_name = "question_id" if shape == "arena" and record.get("id") in (None, "") else "id"
    raw_id = _label(record.get(id_name), id_name)
    domain = record.get("domain")  # HelpSteer3, SHP: only used when it is text
    category = (
        _label(record.get("category"), "category")
        or _label(record.get("subset"), "subset")
        or (unicode_text(domain, "domain") if isinstance(domain, str) and domain else None)
    )
    system = _system_turn(record)
    pairs = []
    for k, (p, c, r, answer_index) in enumerate(triples):
        pair_id = raw_id
        if raw_id is not None and answer_index is not None and len(triples) > 1:
            pair_id = f"{raw_id}#{answer_index}"  # helpsteer3, multi_completion, ranked: one id per pair
        pair_margin, pair_extra = margin, dict(extra)
        if ratings:
            pair_extra = ratings[k]
            if margin is None and margin_from_scores:
                pair_margin = pair_extra["score_chosen"] - pair_extra["score_rejected"]
        prompt = [dict(m) for m in _with_system(system, p)]  # pairs of one record share no list
        pairs.append(
            PreferencePair(prompt, c, r, margin=pair_margin, id=pair_id, category=category, extra=pair_extra)
        )
    return pairs


def check_pair(pair: PreferencePair) -> PreferencePair:
    """Validate a pair built by user code as strictly as a record read from a file."""
    prompt = messages(pair.prompt, "prompt")
    chosen, rejected = messages(pair.chosen, "chosen"), messages(pair.rejected, "rejected")
    check_completions(chosen, rejected, ("chosen", "rejected"))
    pair.prompt, pair.chosen, pair.rejected = prompt, chosen, rejected
    pair.margin = number(pair.margin, "margin")
    return pair
