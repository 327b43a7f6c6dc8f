"""What a conversation starts from besides its turns: a `system` column and a `tools` column.

Both become the prompt's system turn, so every model, chat template or plain format, sees them
as text and scoring uses the same text as training. Tool definitions (the functions an agent
may call, OpenAI's `{"type": "function", "function": {...}}` or a bare `{"name", "description",
"parameters"}`) are written after the system text, under "Available tools:", one JSON object a
line. A reward model judging a tool call needs them: without them it cannot tell a call to a
tool that exists from one to a tool that does not. Chat templates' own `tools=` rendering is
not used: many templates ignore it, and the others each write it their own way.
"""

from __future__ import annotations

import json
from typing import Any

from rewardforge.data.errors import RowError
from rewardforge.data.types import Message
from rewardforge.data.values import blank, json_object, prompt_text_turns, type_name, unicode_text

TOOLS_HEADING = "Available tools:"


def system_turn(record: dict) -> Message | None:
    """A `system` column (orca_dpo_pairs) as the prompt's system turn, or None."""
    system = record.get("system")
    if system is None or (isinstance(system, str) and blank(system)):
        return None
    if not isinstance(system, str):
        raise RowError(f"expected a string, got {type_name(system)}", "system")
    return {"role": "system", "content": unicode_text(system, "system")}


def with_system(system: Message | None, prompt: list[Message]) -> list[Message]:
    """The prompt led by the column's system turn. One already in the prompt must agree with it,
    or which one the model was meant to see is unknowable."""
    if system is None:
        return prompt
    if prompt and prompt[0]["role"] == "system":
        if prompt[0]["content"].strip() != system["content"].strip():
            raise RowError("differs from the system message in the prompt", "system")
        return prompt
    return [system, *prompt]


def _json_text(value: str, where: str) -> Any:
    """JSON text, or the Python text pandas' `to_csv` writes for a list of dicts."""
    from rewardforge.data.csv_reader import object_text

    try:
        return object_text(value)
    except ValueError:
        raise RowError("expected tool definitions as JSON text, which this is not", where) from None


def tool_specs(value: Any, where: str = "tools") -> list[dict[str, Any]]:
    """Tool definitions as objects: a list of them (or of their JSON texts), one object, or the
    JSON text of either. None, a blank text and an empty list mean no tools."""
    if value is None or (isinstance(value, str) and blank(value)):
        return []
    if isinstance(value, str):
        value = _json_text(value, where)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list | tuple):
        raise RowError(f"expected a list of tool definitions, got {type_name(value)}", where)
    specs = []
    for i, spec in enumerate(value):
        at = f"{where}[{i}]"
        if isinstance(spec, str):
            spec = _json_text(spec, at)
        if not isinstance(spec, dict):
            raise RowError(f"expected a tool definition object, got {type_name(spec)}", at)
        spec = json_object(spec, at)
        function = spec.get("function", spec)
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or blank(name):
            raise RowError("missing the tool's name (`name`, or `function.name`)", at)
        specs.append(spec)
    return specs


def tools_text(specs: list[dict[str, Any]]) -> str:
    return "\n".join([TOOLS_HEADING, *(json.dumps(s, ensure_ascii=False) for s in specs)])


def with_tools(conversation: list[Message] | str, tools: Any) -> list[Message]:
    """`conversation` (messages, or a prompt text read as training reads one) with the tool
    definitions (anything `tool_specs` reads) at the end of its system turn, or in a system turn
    of their own before it. Use it to score a prompt that had a `tools` column in training:
    `model.score(with_tools(prompt, tools), reply)`."""
    if isinstance(conversation, str):
        conversation = prompt_text_turns(conversation)
    specs = tool_specs(tools)
    if not specs:
        return conversation
    block = tools_text(specs)
    if conversation and conversation[0]["role"] == "system":
        first = dict(conversation[0])
        first["content"] = f"{first['content']}\n\n{block}" if first["content"].strip() else block
        return [first, *conversation[1:]]
    return [{"role": "system", "content": block}, *conversation]


def with_context(record: dict, prompt: list[Message]) -> list[Message]:
    """The prompt with the record's `system` and `tools` columns in its system turn."""
    return with_tools(with_system(system_turn(record), prompt), record.get("tools"))
