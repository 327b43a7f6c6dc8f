"""Two candidates compared by a score each, or by the index of the better one.

- `scored_answers`: openai/webgpt_comparisons, `question` ({full_text} or text), `answer_0`/
  `answer_1` and `score_0`/`score_1` (the higher is preferred).
- `rated_conversations`: llm-blender/Unified-Feedback, whole conversations `conv_A`/`conv_B`
  rated by `conv_A_rating`/`conv_B_rating`.
- `summary_comparison`: openai/summarize_from_feedback's comparisons, `info` (the Reddit post or
  the article), two `summaries` and `choice` (0 or 1).

Equal scores are a tie: no preference, an invalid row (as Arena ties are).
"""

from __future__ import annotations

from typing import Any

from rewardforge.data.errors import RowError
from rewardforge.data.transcripts import split_transcripts
from rewardforge.data.types import Message
from rewardforge.data.values import (
    assistant_turn,
    messages,
    number,
    one_of,
    present,
    prompt_messages,
    text,
    type_name,
    unicode_text,
)

# shape -> (candidate fields, score fields)
SCORED = {
    "scored_answers": (("answer_0", "answer_1"), ("score_0", "score_1")),
    "rated_conversations": (("conv_A", "conv_B"), ("conv_A_rating", "conv_B_rating")),
}
Triple = tuple[list[Message], list[Message], list[Message]]


def detect(record: dict) -> str | None:
    """Which of these shapes a record without chosen/rejected is, if any."""
    if "answer_0" in record or "answer_1" in record:
        return "scored_answers"
    if "conv_A" in record or "conv_B" in record:
        return "rated_conversations"
    if "summaries" in record and "choice" in record:
        return "summary_comparison"
    return None


def _object_cell(value: Any) -> Any:
    """An object or list written as text by a CSV export (JSON, or pandas' Python repr)."""
    from rewardforge.data.csv_reader import object_text  # csv_reader reads shapes' names

    if not (isinstance(value, str) and value.lstrip().startswith(("{", "["))):
        return value
    try:
        parsed = object_text(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, dict | list) else value


def _webgpt_prompt(record: dict) -> list[Message]:
    # `question`, or `prompt` when the user's --columns prompt=question renamed it
    name = "prompt" if "question" not in record and "prompt" in record else "question"
    question = _object_cell(record.get(name))
    if isinstance(question, dict):
        if not present(question, "full_text"):
            raise RowError("missing", f"{name}.full_text")
        return prompt_messages(question["full_text"], f"{name}.full_text")
    if question is None:
        raise RowError("missing", name)
    return prompt_messages(question, name)


def scored(record: dict, shape: str) -> tuple[Triple, tuple[str, str], tuple[str, str]]:
    """(prompt, chosen, rejected), the (chosen, rejected) field names and their score fields."""
    names, score_names = SCORED[shape]
    if shape == "scored_answers":
        prompt = _webgpt_prompt(record)
        sides = [
            assistant_turn(text(record, names[0])),
            assistant_turn(text(record, names[1], like=names[0])),
        ]
    else:
        convs = []
        for name in names:
            if not present(record, name):
                raise RowError("missing", name)
            convs.append(messages(_object_cell(record[name]), name))
        prompt, a_rest, b_rest = split_transcripts(convs[0], convs[1], names)
        sides = [a_rest, b_rest]
    scores = []
    for name in score_names:
        score = number(record.get(name), name)
        if score is None:
            raise RowError("missing", name)
        scores.append(score)
    if scores[0] == scores[1]:
        raise RowError(f"equal to {score_names[1]} ({scores[0]:g}): a tie is no preference", score_names[0])
    win = 0 if scores[0] > scores[1] else 1
    lose = 1 - win
    triple = (prompt, sides[win], sides[lose])
    return triple, (names[win], names[lose]), (score_names[win], score_names[lose])


def _post_prompt(info: Any) -> list[Message]:
    """The text the summaries summarise, in the TL;DR form the summarisation papers used."""
    if not isinstance(info, dict):
        raise RowError("missing" if info is None else f"expected an object, got {type_name(info)}", "info")
    parts = {key: info.get(key) for key in ("subreddit", "title", "post", "article")}
    for key, value in parts.items():
        if value is not None and not isinstance(value, str):
            raise RowError(f"expected a string, got {type_name(value)}", f"info.{key}")
    if parts["post"] and parts["post"].strip():
        lines = [f"SUBREDDIT: r/{parts['subreddit']}"] if parts["subreddit"] else []
        lines += [f"TITLE: {parts['title']}"] if parts["title"] else []
        lines.append(f"POST: {parts['post'].strip()}")
    elif parts["article"] and parts["article"].strip():
        lines = [f"ARTICLE: {parts['article'].strip()}"]
    else:
        raise RowError("missing (neither a post nor an article)", "info.post")
    return [{"role": "user", "content": unicode_text("\n".join(lines) + "\n\nTL;DR:", "info")}]


def summary_comparison(record: dict) -> tuple[Triple, tuple[str, str]]:
    prompt = _post_prompt(_object_cell(record.get("info")))
    summaries = _object_cell(record.get("summaries"))
    if not isinstance(summaries, list) or len(summaries) != 2:
        got = "missing" if summaries is None else f"got {type_name(summaries)}"
        if isinstance(summaries, list):
            got = f"got {len(summaries)}"
        raise RowError(f"expected two summaries ({got})", "summaries")
    texts = []
    for i, item in enumerate(summaries):
        name = f"summaries[{i}]"
        if not isinstance(item, dict):
            raise RowError(f"expected an object with a text, got {type_name(item)}", name)
        try:
            texts.append(text(item, "text").strip())
        except RowError as exc:
            raise RowError(exc.reason, f"{name}.{exc.field}") from None
    choice = one_of(record.get("choice"), (0, 1))
    if choice is None:
        raw = record.get("choice")
        raise RowError(
            "missing" if raw is None else f"expected 0 or 1 (the better summary), got {raw!r}", "choice"
        )
    names = (f"summaries[{choice}].text", f"summaries[{1 - choice}].text")
    return (prompt, assistant_turn(texts[choice]), assistant_turn(texts[1 - choice])), names
