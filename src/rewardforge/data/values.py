"""Field readers: one record's raw values as checked messages, texts and numbers.

Every shape reads its fields through these, so a problem is reported the same way whatever the
shape: `RowError(reason, field)`, to which the loader adds the file and location.
"""

from __future__ import annotations

import decimal
import json
import math
import numbers
import unicodedata
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from rewardforge.data.errors import RowError
from rewardforge.data.transcripts import hh_turns, parse_nemo
from rewardforge.data.types import CHAT_ROLES, Message, turn_text

# Roles other chat formats use for ours: OpenAI's "developer" is a system turn, "function" a tool.
# ShareGPT (LLaMA-Factory) names: "human", "gpt", "observation" (a tool result), "function_call".
ROLE_ALIASES = {
    "developer": "system",
    "function": "tool",
    "human": "user",
    "gpt": "assistant",
    "observation": "tool",
    "function_call": "assistant",
    "model": "assistant",  # Gemini's API
    "chatbot": "assistant",  # Cohere's API
    "prompter": "user",  # OpenAssistant's trees
}


# OpenAI-style, ShareGPT, and a message's text under another key: OpenAssistant's `text`,
# Cohere's `message`, Gemini's `parts` ([{"text": ...}])
MESSAGE_KEYS = (
    ("role", "content"),
    ("from", "value"),
    ("role", "text"),
    ("role", "message"),
    ("role", "parts"),
)
OTHER_TEXT_KEYS = ("text", "message", "parts")

# A turn's reasoning (DeepSeek's and vLLM's `reasoning_content`, OpenRouter's `reasoning`,
# gpt-oss's `thinking`; Anthropic's thinking content parts) is no part of the text a reward model
# reads: it scores what the reader sees. Left out, and counted where a caller asks (`counting_unscored`).
REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")
REASONING_PARTS = ("thinking", "redacted_thinking")
_unscored: ContextVar[Counter[str] | None] = ContextVar("unscored_reasoning", default=None)


@contextmanager
def counting_unscored() -> Iterator[Counter[str]]:
    """Count, inside the block, the reasoning `messages` leaves out, by field name; the caller
    clears the counter between records (the "identical" refusal reads it for its record)."""
    counter: Counter[str] = Counter()
    token = _unscored.set(counter)
    try:
        yield counter
    finally:
        _unscored.reset(token)


def _note_unscored(field: str) -> None:
    counter = _unscored.get()
    if counter is not None:
        counter[field] += 1


def unscored_note(counts: Counter[str] | dict[str, int]) -> str:
    """One line saying how much reasoning was left out."""
    fields = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    return f"reasoning not scored, only each turn's visible text: {fields}"


def is_message(value: Any) -> bool:
    return isinstance(value, dict) and any(all(k in value for k in keys) for keys in MESSAGE_KEYS)


def message_role(message: dict) -> str:
    """Our name of a message's role, OpenAI-style or ShareGPT ("gpt" is "assistant")."""
    role = str(message.get("role", message.get("from", ""))).lower()
    return ROLE_ALIASES.get(role, role)


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def present(record: dict, key: str) -> bool:
    return record.get(key) is not None


def number(value: Any, name: str) -> float | None:
    """A finite number, or None for null/empty; numeric strings are accepted (CSV cells)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise RowError(f"expected a number, got {type_name(value)}", name)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RowError(f"expected a number, got {value[:40]!r}", name) from None
    if isinstance(value, decimal.Decimal):  # Parquet decimal columns
        value = float(value)
    if not isinstance(value, int | float):
        raise RowError(f"expected a number, got {type_name(value)}", name)
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
    # (no parts at all is no text: "", which is an empty reply where a reply is needed)
    if isinstance(value, list) and all(isinstance(part, dict) for part in value):
        texts = []
        for j, part in enumerate(value):
            if part.get("type") in REASONING_PARTS:
                _note_unscored(f"{part['type']} part")
                continue
            if (part.get("type") or "text") != "text":  # Arrow gives an absent key as null
                raise RowError(
                    f"only text content parts are supported, got {part.get('type')!r}", f"{where}[{j}]"
                )
            if not isinstance(part.get("text"), str):
                raise RowError(f"expected a string, got {type_name(part.get('text'))}", f"{where}[{j}].text")
            texts.append(part["text"])
        value = "\n".join(texts)
    if not isinstance(value, str):
        raise RowError(f"expected a string, got {type_name(value)}", where)
    return unicode_text(value, where)


def messages(value: Any, name: str) -> list[Message]:
    """Validate a message list (or one message object); keep role and content, an assistant
    turn's tool calls and a tool turn's name and call id. ShareGPT's {"from": "human"|"gpt",
    "value": ...} messages are read as role and content; so are messages stored by key, as a
    `datasets.Sequence` of a dict gives them: {"role": [...], "content": [...]}."""
    one = isinstance(value, dict) and _by_key(value, name) is None  # one message, not a list
    if one and not any(k in value for k in ("role", "from", "content", "value", *OTHER_TEXT_KEYS)):
        keys = ", ".join(sorted(map(str, value))[:8]) or "none"
        raise RowError(
            f"expected a list of messages or one {{role, content}} message, got an object with keys {keys}",
            name,
        )
    if isinstance(value, dict):
        value = [value] if one else _by_key(value, name)
    if not isinstance(value, list):
        raise RowError(f"expected a list of messages, got {type_name(value)}", name)
    out: list[Message] = []
    for i, msg in enumerate(value):
        where = name if one else f"{name}[{i}]"
        if not isinstance(msg, dict):
            raise RowError(f"expected a message object, got {type_name(msg)}", where)
        # ShareGPT; in Parquet a list mixing both kinds has every key, the unused ones null
        sharegpt = msg.get("role") is None and msg.get("content") is None and "from" in msg
        role_key, content_key = ("from", "value") if sharegpt else ("role", "content")
        role, content = msg.get(role_key), msg.get(content_key)
        if content is None and not sharegpt:  # absent, or null as Arrow writes a key other rows have
            content_key = next((k for k in OTHER_TEXT_KEYS if msg.get(k) is not None), content_key)
            content = (
                _gemini_parts(msg[content_key], f"{where}.parts")
                if content_key == "parts"
                else msg.get(content_key)
            )
        if role is None:
            raise RowError("missing", f"{where}.{role_key}")
        if not isinstance(role, str):
            raise RowError(f"expected a role name, got {type_name(role)}", f"{where}.{role_key}")
        role = role.strip().lower()  # "User", " assistant"
        role = ROLE_ALIASES.get(role, role)
        if role not in CHAT_ROLES:
            raise RowError(
                f"unknown chat role {role!r} (expected one of {sorted(CHAT_ROLES)})", f"{where}.{role_key}"
            )
        calls = [] if sharegpt else _message_calls(msg, role, where)
        if calls and content in (None, []):  # a turn that only calls tools
            content = ""
        if content is None and msg.get("refusal") is not None:  # OpenAI's structured refusal
            content_key, content = "refusal", msg["refusal"]
            if not isinstance(content, str):
                raise RowError(f"expected a string, got {type_name(content)}", f"{where}.refusal")
        for key in REASONING_KEYS:
            if isinstance(msg.get(key), str) and not blank(msg[key]):
                _note_unscored(key)
        if content is None:
            raise RowError("missing", f"{where}.{content_key}")
        message: Message = {"role": role, "content": _content(content, f"{where}.{content_key}")}
        if calls:
            message["tool_calls"] = calls
        if role == "tool":
            for key in ("name", "tool_call_id"):
                if msg.get(key) not in (None, ""):
                    message[key] = _short_text(msg[key], f"{where}.{key}")
        out.append(message)
    return out


def _gemini_parts(parts: Any, where: str) -> Any:
    """Gemini's parts, [{"text": ...}, ...], as one text (a part that is no text is refused)."""
    if not isinstance(parts, list):
        return parts
    texts = []
    for i, part in enumerate(parts):
        text = part.get("text") if isinstance(part, dict) else part
        if not isinstance(text, str):
            raise RowError('expected a text part ({"text": ...})', f"{where}[{i}]")
        texts.append(text)
    return "".join(texts)


def _by_key(value: dict, name: str) -> list[dict] | None:
    """Messages stored by key ({"role": [r1, r2], "content": [c1, c2]}) as a list of messages, or
    None when `value` is not that."""
    if not any(all(isinstance(value.get(k), list) for k in keys) for keys in MESSAGE_KEYS):
        return None
    if not all(isinstance(v, list) for v in value.values()):
        return None
    lengths = {len(v) for v in value.values()}
    if len(lengths) != 1:
        raise RowError(f"messages stored by key have lists of different lengths ({sorted(lengths)})", name)
    return [dict(zip(value, items)) for items in zip(*value.values())]


def _message_calls(msg: dict, role: str, where: str) -> list[dict[str, Any]]:
    """The tool calls a message makes: OpenAI's `tool_calls` list, or its older single
    `function_call`. Only the assistant calls tools."""
    calls = _tool_calls(msg.get("tool_calls"), f"{where}.tool_calls")
    if msg.get("function_call") is not None:
        calls += _tool_calls([msg["function_call"]], f"{where}.function_call")
    if calls and role != "assistant":
        raise RowError(
            f"a {role!r} turn cannot make tool calls; only the assistant's can", f"{where}.tool_calls"
        )
    return calls


def _tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    """Tool calls as chat templates take them: {"type": "function", "function": {"name",
    "arguments"}}, plus the call's id when given. Accepts OpenAI's nested form and the flat
    {"name", "arguments"} many datasets use."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RowError(f"expected a list of tool calls, got {type_name(value)}", where)
    calls = []
    for j, call in enumerate(value):
        at = f"{where}[{j}]"
        if not isinstance(call, dict):
            raise RowError(f"expected a tool call object, got {type_name(call)}", at)
        nested = call.get("function") is not None
        function, at = (call["function"], f"{at}.function") if nested else (call, at)
        if not isinstance(function, dict):
            raise RowError(f"expected an object with the function's name, got {type_name(function)}", at)
        if not isinstance(function.get("name"), str) or blank(function["name"]):
            raise RowError("missing the called function's name", f"{at}.name")
        arguments = function.get("arguments", function.get("parameters"))
        read: dict[str, Any] = {
            "type": "function",
            "function": {
                "name": unicode_text(function["name"], f"{at}.name"),
                "arguments": _arguments(arguments, f"{at}.arguments"),
            },
        }
        if call.get("id") not in (None, ""):
            read["id"] = _short_text(call["id"], f"{where}[{j}].id")
        calls.append(read)
    return calls


def _arguments(value: Any, where: str) -> dict[str, Any] | str:
    """A call's arguments as an object (templates write them with `tojson`); OpenAI sends them
    as JSON text. Text that is not a JSON object stays text: a malformed call may well be the
    rejected side, and it must read as written."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict):
            return unicode_text(value, where)
        value = parsed
    if not isinstance(value, dict):
        raise RowError(f"expected an object or JSON text, got {type_name(value)}", where)
    return json_object(value, where)


def json_object(value: dict[str, Any], where: str) -> dict[str, Any]:
    """`value` without its null members (Arrow gives every object of a Parquet column every
    other object's keys, as nulls), checked to be writable as JSON text."""
    try:
        value = _without_nulls(value)
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RowError(
            f"not valid Unicode (lone surrogate at character {exc.start} of its JSON)", where
        ) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise RowError(f"cannot be written as JSON ({type(exc).__name__}: {str(exc)[:80]})", where) from None
    return value


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _short_text(value: Any, where: str) -> str:
    """A name or id: a string, or a number written as one."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError(f"expected a string, got {type_name(value)}", where)
    return unicode_text(str(value), where)


def text(record: dict, name: str, like: str | None = None) -> str:
    """A required string field."""
    value = record.get(name)
    if value is None:
        raise RowError("missing", name)
    if not isinstance(value, str):
        hint = f" like '{like}'" if like else ""
        raise RowError(f"expected a string{hint}, got {type_name(value)}", name)
    return unicode_text(value, name)


def _hh_turns(value: str) -> list[Message] | None:
    """The turns of a prompt that is an HH transcript from its first character, else None."""
    turns = hh_turns(value)  # None: no transcript, or a prompt that quotes a dialogue
    if turns is None:
        return None
    if turns and turns[-1]["role"] == "assistant":
        if turns[-1]["content"].strip():  # ends with a reply: text that quotes a dialogue
            return None
        turns.pop()  # the open "Assistant:" that the replies continue
    return turns


def reply_text(prompt: Any, text: str) -> str:
    """A reply as training reads it: after a prompt string that is an HH transcript (Dahoas/
    rm-static), the space that continues its open "Assistant:" is no part of it, as the
    whole-transcript form of the same conversation reads the turn."""
    return text.strip() if isinstance(prompt, str) and _hh_turns(prompt) is not None else text


def prompt_text_turns(value: str) -> list[Message]:
    """A prompt string as training reads it: its turns when it is a transcript, else one user
    message, or none when blank. Scoring and serving read prompt strings here too."""
    turns = _hh_turns(value) or parse_nemo(value)
    if turns:
        return turns
    return [{"role": "user", "content": value}] if value.strip() else []


def prompt_messages(value: Any, name: str) -> list[Message]:
    """A prompt string is one user message (none if blank), or its turns if it is written in
    HH-RLHF's "\\n\\nHuman: ...\\n\\nAssistant:" form (as in Dahoas/rm-static) or with NeMo's
    <extra_id_1> markers (HelpSteer2's multi-turn prompts); a list is messages."""
    if isinstance(value, str):
        return prompt_text_turns(unicode_text(value, name))
    if isinstance(value, list | dict):  # a dict: one message, or messages stored by key
        return messages(value, name)
    raise RowError(f"expected a string or a list of messages, got {type_name(value)}", name)


def assistant_turn(content: str) -> list[Message]:
    return [{"role": "assistant", "content": content}]


def normalised(msgs: list[Message]) -> list[tuple[str, str]]:
    """Turns as (role, text) to compare: surrounding whitespace aside, tool calls included."""
    return [(m["role"], turn_text(m).strip()) for m in msgs]


# letters and symbols that show nothing: Hangul fillers (default ignorable) and the braille blank
INVISIBLE_GRAPHICS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def blank(text: str) -> bool:
    """Nothing a reader would see: whitespace, control and format characters, combining marks
    with nothing to mark (a lone accent, a variation selector) and invisible fillers only."""
    return all(_invisible(ch) for ch in text)


def _invisible(ch: str) -> bool:
    kind = unicodedata.category(ch)
    return kind[0] in "CZ" or kind in ("Mn", "Me") or ch in INVISIBLE_GRAPHICS


def response_problem(msgs: list[Message], *, allow_empty: bool = False) -> str | None:
    """Why `msgs` cannot be a response, or None: it must end with a visible reply from the
    assistant. Training, `rewardforge score` and the server all ask here. The server passes
    `allow_empty`: a policy's completion may be empty, and the RLHF reward must score it."""
    if not msgs or (not allow_empty and blank(msgs[-1]["content"]) and not msgs[-1].get("tool_calls")):
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
    if normalised(chosen) == normalised(rejected):  # no preference between the texts, only spacing
        same = chosen == rejected
        unscored = _unscored.get()
        raise RowError(
            f"identical to '{names[0]}'"
            + ("" if same else " but for surrounding whitespace")
            + (" (reasoning is not scored; only the turns' visible text is compared)" if unscored else ""),
            names[1],
        )


def required_prompt(record: dict, name: str) -> list[Message]:
    if not present(record, name):
        raise RowError("missing", name)
    return prompt_messages(record[name], name)


def one_of(value: Any, allowed: tuple[int, ...] = (0, 1)) -> int | None:
    """One of the `allowed` whole numbers, from what `number` reads (pandas turns an int column
    with nulls into floats, and CSV then holds "1.0"); None for anything else, booleans too."""
    try:
        read = number(value, "")
    except RowError:
        return None
    return int(read) if read in allowed else None


def text_items(record: dict, name: str) -> list[str]:
    value = record.get(name)
    if value is None:
        raise RowError("missing", name)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise RowError(f"expected a non-empty list of texts, got {type_name(value)}", name)
    if not value:
        raise RowError("expected a non-empty list of texts, got an empty list", name)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise RowError(f"expected a string, got {type_name(item)}", f"{name}[{i}]")
        unicode_text(item, f"{name}[{i}]")
    return value


def label_text(value: Any, name: str) -> str | None:
    """An id or category as text; null and "" (an empty CSV cell) mean none."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = int(value)  # numpy's int64 from a processor or a DataFrame
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return None  # NaN: pandas' missing value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RowError(f"expected a string or a number, got {type_name(value)}", name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # an int column with nulls, read by pandas: 5.0 is id 5
    return unicode_text(value, name) if isinstance(value, str) else str(value)
