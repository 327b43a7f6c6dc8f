"""Record shapes of particular public datasets, each read into (prompt, chosen, rejected) triples.

HelpSteer3's rated answers, OpenAI's preference fine-tuning rows, SHP, PKU-SafeRLHF, RewardBench 2's lists, HelpSteer2/3 pairwise
grades, Chatbot Arena battles and rated completion lists (openbmb/UltraFeedback, Nectar).
`shapes.detect_shape` decides which one a record is; `shapes.normalise` calls these.
"""

from __future__ import annotations

import json
from typing import Any

from rewardforge.data.columns import RATED_LISTS
from rewardforge.data.context import with_tools
from rewardforge.data.errors import RowError
from rewardforge.data.transcripts import split_transcripts
from rewardforge.data.types import Message
from rewardforge.data.values import (
    assistant_turn,
    check_completions,
    messages,
    number,
    one_of,
    present,
    prompt_messages,
    required_prompt,
    text,
    text_items,
    type_name,
    unicode_text,
)

ARENA_MARKERS = ("conversation_a", "conversation_b", "response_a", "response_b", "winner_model_a")
RANKED_TEXT_KEYS = ("response", "answer", "text", "content")
# higher is better; pm_score: HuggingFaceH4/stack-exchange-preferences
RANKED_SCORE_KEYS = ("overall_score", "score", "rating", "pm_score")
RANKED_RANK_KEYS = ("rank",)  # lower is better
# graded_pair field names: HelpSteer3's first, HelpSteer2-preference's second.
GRADED_FIELDS = (
    ("context", "prompt"),
    ("response1", "response_1"),
    ("response2", "response_2"),
    ("overall_preference", "preference_strength"),
)


OPENAI_SIDES = ("preferred_output", "non_preferred_output")


def openai_preference(record: dict) -> tuple[list[Message], list[Message], list[Message], tuple[str, str]]:
    """OpenAI's preference fine-tuning rows: `input` ({messages, tools} or messages) with
    `preferred_output` and `non_preferred_output` message lists."""
    source, name, tools = record.get("input"), "input", None
    if isinstance(source, str) and source.lstrip().startswith("{"):  # a CSV cell holds it as JSON
        try:
            source = json.loads(source)
        except ValueError:
            raise RowError("holds a text that starts like a JSON object but is no valid JSON", name) from None
    if isinstance(source, dict) and "messages" in source:
        source, name, tools = source["messages"], "input.messages", source.get("tools")
    if source is None:
        raise RowError("missing", name)
    prompt = prompt_messages(source, name)
    if tools:
        try:
            prompt = with_tools(prompt, tools)
        except RowError as exc:  # the row's field is input.tools
            raise RowError(exc.reason, f"input.{exc.field}") from None
    sides = []
    for side in OPENAI_SIDES:
        if not present(record, side):
            raise RowError("missing", side)
        sides.append(messages(record[side], side))
    return prompt, sides[0], sides[1], OPENAI_SIDES


def helpsteer3(record: dict) -> list[tuple[list[Message], list[Message], list[Message], int]]:
    """HelpSteer3-like `input` + `output` answers: the preferred one against each other one."""
    prompt = required_prompt(record, "input")
    output = record.get("output")
    if not isinstance(output, list):
        raise RowError(
            "missing" if output is None else f"expected a list of answers, got {type_name(output)}", "output"
        )
    answers: list[tuple[int, str, bool]] = []
    for i, item in enumerate(output):
        if not isinstance(item, dict):
            raise RowError(f"expected an answer object, got {type_name(item)}", f"output[{i}]")
        answer, label = item.get("answer"), item.get("label")
        if not isinstance(answer, str):
            raise RowError(
                "missing" if answer is None else f"expected a string, got {type_name(answer)}",
                f"output[{i}].answer",
            )
        preferred = label.get("is_preferred") if isinstance(label, dict) else None
        if not isinstance(preferred, bool):
            raise RowError(
                f"expected true/false, got {type_name(preferred)}", f"output[{i}].label.is_preferred"
            )
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
        chosen, rejected = assistant_turn(b_answer), assistant_turn(answer)
        check_completions(chosen, rejected, (f"output[{b_index}].answer", f"output[{i}].answer"))
        out.append((prompt, chosen, rejected, i))
    return out


def _flag(value: Any) -> int | None:
    """0 or 1 from a label or one-hot cell: ints, "1.0" text, or booleans (pandas.get_dummies;
    a CSV holds them as "True"/"False", or "true", "TRUE")."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):  # pandas, polars, R, Excel
        value = value.strip().lower() == "true"
    return 1 if value is True else 0 if value is False else one_of(value)


def _shp_a_preferred(value: Any) -> bool:
    label = _flag(value)
    if label is not None:
        return label == 1
    reason = "missing" if value is None else f"expected 1 (A preferred) or 0 (B preferred), got {value!r}"
    raise RowError(reason, "labels")


def shp(record: dict) -> tuple[list[Message], list[Message], list[Message], tuple[str, str]]:
    """SHP: returns prompt, chosen, rejected and the (chosen, rejected) suffixes, "A"/"B". The
    post is `history`, or `prompt` when a mapping named it so (`--columns prompt=post`)."""
    # SHP has no `prompt`: one is the user's mapping (`--columns prompt=post`), and it wins
    name = "prompt" if record.get("prompt") is not None else "history"
    if record.get(name) is None:
        hint = (
            ""
            if name in record
            else " (SHP's post: name the column that holds it with --columns prompt=COLUMN)"
        )
        raise RowError(f"missing{hint}", name)
    prompt = prompt_messages(text(record, name), name)
    a, b = text(record, "human_ref_A"), text(record, "human_ref_B")
    if _shp_a_preferred(record.get("labels")):
        return prompt, assistant_turn(a), assistant_turn(b), ("A", "B")
    return prompt, assistant_turn(b), assistant_turn(a), ("B", "A")


# Two numbered responses and the number of the better one: (first, second, which, its values).
NUMBERED_PAIRS = {
    "indexed_pair": ("response_0", "response_1", "better_response_id", (0, 1)),  # PKU-SafeRLHF
    "alpaca_farm": ("output_1", "output_2", "preference", (1, 2)),  # tatsu-lab/alpaca_farm
}


def numbered_pair(
    record: dict, shape: str
) -> tuple[list[Message], list[Message], list[Message], tuple[str, str]]:
    """PKU-SafeRLHF's `response_0`/`response_1` and `better_response_id` (a safety RM maps
    `better_response_id=safer_response_id`), or alpaca_farm's `output_1`/`output_2` and
    `preference` (1 or 2)."""
    one, two, which, values = NUMBERED_PAIRS[shape]
    prompt = required_prompt(record, "prompt")
    first, second = text(record, one), text(record, two, like=one)
    raw = record.get(which)
    read = one_of(raw, values)
    if read is None:
        reason = (
            "missing"
            if raw is None
            else f"expected {values[0]} or {values[1]} (the better response), got {raw!r}"
        )
        raise RowError(reason, which)
    if read == values[0]:
        return prompt, assistant_turn(first), assistant_turn(second), (one, two)
    return prompt, assistant_turn(second), assistant_turn(first), (two, one)


def multi_completion(record: dict) -> list[tuple[list[Message], list[Message], list[Message], int]]:
    """RewardBench 2: lists of better and worse completions; one pair per (better, worse)."""
    prompt = required_prompt(record, "prompt")
    better, worse = text_items(record, "chosen"), text_items(record, "rejected")
    out = []
    for i, b in enumerate(better):
        for j, w in enumerate(worse):
            chosen, rejected = assistant_turn(b), assistant_turn(w)
            check_completions(chosen, rejected, (f"chosen[{i}]", f"rejected[{j}]"))
            out.append((prompt, chosen, rejected, len(out)))
    return out


def graded_pair(record: dict) -> tuple[list[Message], list[Message], list[Message], tuple[str, str], float]:
    """HelpSteer3/HelpSteer2 pairwise grades: prompt, chosen, rejected, their field names, |grade|."""
    family = 1 if "response_1" in record or "preference_strength" in record else 0  # for "missing"
    ctx, one, two, grade_name = (
        next((n for n in names if n in record), names[family]) for names in GRADED_FIELDS
    )
    prompt = required_prompt(record, ctx)
    first, second = text(record, one), text(record, two, like=one)
    grade = number(record.get(grade_name), grade_name)
    if grade is None:
        raise RowError("missing", grade_name)
    if grade == 0:
        raise RowError("0: neither response is preferred (a tie; --skip-invalid drops ties)", grade_name)
    if not grade.is_integer() or abs(grade) > 3:  # a 1..7 Likert export would read "2 is better" always
        raise RowError(f"expected a whole grade from -3 to 3, got {grade:g}", grade_name)
    if grade < 0:  # negative: response 1 is better
        return prompt, assistant_turn(first), assistant_turn(second), (one, two), -grade
    return prompt, assistant_turn(second), assistant_turn(first), (two, one), grade


ARENA_WINNERS = {"model_a": "a", "model_b": "b", "tie": None, "tie (bothbad)": None, "both_bad": None}


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


def _arena_turns(record: dict, names: tuple[str, str]) -> tuple[list[Message], list[Message]] | None:
    """A prompt given as a list of turns, with `response_a`/`response_b` lists of one length,
    as two conversations; None when the prompt is not a turn list (one prompt, two replies)."""
    questions = _json_turns(record.get("prompt"))
    if questions is None:
        return None
    sides = []
    for side in names:
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
                    raise RowError(f"expected a string, got {type_name(value)}", f"{name}[{i}]")
                conversation.append({"role": role, "content": unicode_text(value, f"{name}[{i}]")})
        sides.append(conversation)
    return sides[0], sides[1]


def _through_turn(conversation: list[Message], turn: Any, name: str) -> list[Message]:
    """The conversation up to the reply to its `turn`-th question. lmsys/mt_bench_human_judgments
    gives both turns and judges the one `turn` names; in Chatbot Arena's battles `turn` counts
    all of them, and nothing is cut."""
    judged = number(turn, "turn")
    if judged is None or not judged.is_integer() or judged < 1:
        raise RowError(f"expected a turn number from 1, got {turn!r}", "turn")
    questions = [i for i, m in enumerate(conversation) if m["role"] == "user"]
    if judged > len(questions):
        raise RowError(f"turn {int(judged)} of a conversation with {len(questions)} questions", "turn")
    if judged == len(questions):
        return conversation
    return conversation[: questions[int(judged)]]


def is_numbered_battle(record: dict) -> bool:
    """A battle whose replies are `response_1`/`response_2` with a `winner` (lmarena-ai's PPE
    human-preference set), not HelpSteer2's graded pair, which has a preference strength."""
    graded = any(k in record for k in GRADED_FIELDS[3])
    return "winner" in record and "response_1" in record and "response_a" not in record and not graded


def arena_turn_lists(record: dict) -> bool:
    """Whether a battle's prompt is a list of turns (LMSYS's Kaggle set) rather than text."""
    return "conversation_a" not in record and _json_turns(record.get("prompt")) is not None


def arena(
    record: dict, turn_lists: bool | None = None
) -> tuple[list[Message], list[Message], list[Message], tuple[str, str]]:
    """Chatbot Arena: prompt, chosen, rejected and the (chosen, rejected) field names.

    `turn_lists` is the source's way of writing prompts, decided by most of its rows: in a set
    of turn lists a prompt that is not one is broken; in a set of texts (the WSDM Cup's) a
    prompt that looks like a JSON list is text. None decides per row."""
    winner = _arena_winner(record)
    if "conversation_a" in record or "conversation_b" in record:
        names = ("conversation_a", "conversation_b")
        a, b = (messages(record.get(n), n) if present(record, n) else None for n in names)
        if a is None or b is None:
            raise RowError("missing", names[0] if a is None else names[1])
        if present(record, "turn"):  # MT-Bench's human judgements: the turn judged
            a, b = (_through_turn(c, record["turn"], n) for c, n in zip((a, b), names))
        prompt, a_rest, b_rest = split_transcripts(a, b, names)
    else:
        names = ("response_1", "response_2") if is_numbered_battle(record) else ("response_a", "response_b")
        turns = None if turn_lists is False else _arena_turns(record, names)
        if turns is None and turn_lists:
            raise RowError("expected a list of turns as JSON text ('[\"...\"]'), as the other rows", "prompt")
        if turns is None:
            prompt = required_prompt(record, "prompt")
            a_rest, b_rest = assistant_turn(text(record, names[0])), assistant_turn(text(record, names[1]))
        else:
            prompt, a_rest, b_rest = split_transcripts(*turns, names)
    if winner == "a":
        return prompt, a_rest, b_rest, names
    return prompt, b_rest, a_rest, (names[1], names[0])


def rated_list(record: dict) -> tuple[str, list] | None:
    """The list of rated completions (its field name and items), or None. Two such lists in one
    record are an error: which one holds the preferences is unknowable."""
    found = [
        (name, items)
        for name in RATED_LISTS
        if isinstance(items := record.get(name), list) and items and isinstance(items[0], dict)
    ]
    if len(found) > 1:
        raise RowError(f"both {found[0][0]!r} and {found[1][0]!r} are lists of completions", found[1][0])
    return found[0] if found else None


def _rating_keys(item: dict) -> list[str]:
    """The rating keys an item has a value under (Arrow gives absent keys as null)."""
    return [key for key in RANKED_SCORE_KEYS + RANKED_RANK_KEYS if item.get(key) is not None]


def rating_field(item: Any) -> tuple[str | None, str]:
    """Which key rates a completion, and whether it is a "score" (higher is better) or a "rank"."""
    keys = _rating_keys(item) if isinstance(item, dict) else []
    if not keys:
        return None, "score"
    return keys[0], ("rank" if keys[0] in RANKED_RANK_KEYS else "score")


def ranked(record: dict) -> list[tuple[list[Message], list[Message], list[Message], int, dict[str, float]]]:
    """Rated completions: one pair per (better, worse) combination, with both ratings. A
    completion repeated with the same rating counts once (its pairs would be duplicates)."""
    found = rated_list(record)
    name, items = found if found else (RATED_LISTS[0], record.get(RATED_LISTS[0]))
    if not isinstance(items, list) or len(items) < 2:
        raise RowError("expected a list of at least two rated completions", name)
    prompt = required_prompt(record, "prompt")
    rating_key, kind = rating_field(items[0])
    rated: list[tuple[str, str, float]] = []
    seen: dict[str, tuple[str, float]] = {}  # text -> where it came first, its rating
    for i, item in enumerate(items):
        where = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise RowError(f"expected a completion object, got {type_name(item)}", where)
        text_key = next((k for k in RANKED_TEXT_KEYS if item.get(k) is not None), RANKED_TEXT_KEYS[0])
        try:
            reply = text(item, text_key)  # "missing" names the first expected key
        except RowError as exc:
            raise RowError(exc.reason, f"{where}.{exc.field}") from None
        keys = _rating_keys(item)
        if len(keys) > 1:
            raise RowError(
                f"rated by both {keys[0]!r} and {keys[1]!r}: which one orders the completions is unknowable",
                where,
            )
        if rating_key is None or item.get(rating_key) is None:
            expected = RANKED_SCORE_KEYS + RANKED_RANK_KEYS if rating_key is None else (rating_key,)
            reason = f"missing (expected {'one of ' if len(expected) > 1 else ''}{', '.join(expected)})"
            named = rating_key or next((k for k in expected if k in item), expected[0])  # a null one: it
            raise RowError(reason, f"{where}.{named}")
        rating = number(item[rating_key], f"{where}.{rating_key}")
        if reply.strip() in seen:
            first, first_rating = seen[reply.strip()]
            if first_rating == rating:
                continue
            raise RowError(
                f"the same text as {first} with another {rating_key} ({first_rating:g} there, "
                f"{rating:g} here): which is better is unknowable",
                f"{where}.{text_key}",
            )
        seen[reply.strip()] = (where, rating)
        rated.append((f"{where}.{text_key}", reply, rating if kind == "score" else -rating))
    out = []
    for i_name, better, i_rating in sorted(rated, key=lambda r: -r[2]):
        for j_name, worse, j_rating in rated:
            if j_rating < i_rating:
                chosen, rejected = assistant_turn(better), assistant_turn(worse)
                check_completions(chosen, rejected, (i_name, j_name))
                sign = 1 if kind == "score" else -1
                ratings = {f"{kind}_chosen": sign * i_rating, f"{kind}_rejected": sign * j_rating}
                out.append((prompt, chosen, rejected, len(out), ratings))
    if not out:
        raise RowError(f"every completion has the same {rating_key}: no preference", name)
    return out
