"""Column mapping: rename a user's fields to ours before shape detection.

A mapping is `{our_field: their_column}`, e.g. `{"prompt": "question", "chosen": "good"}`,
written on the command line as "prompt=question,chosen=good"; "prompt=context+question" reads
two text columns as one, a line apart.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from rewardforge.data.errors import DataOptionError, RowError
from rewardforge.data.transcripts import LOOSE_QUOTES
from rewardforge.data.types import Message
from rewardforge.data.values import blank, prompt_messages

KNOWN_FIELDS = (
    "prompt",
    "chosen",
    "rejected",
    "margin",
    "id",
    "category",
    "subset",
    "score_chosen",
    "score_rejected",
    "input",
    "output",
    "history",
    "human_ref_A",
    "human_ref_B",
    "labels",
    "score_A",
    "score_B",
    "context",
    "response1",
    "response2",
    "overall_preference",
    "response_1",
    "response_2",
    "preference_strength",
    "domain",
    "system",
    "tools",
    "response_0",
    "better_response_id",
    "conversation_a",
    "conversation_b",
    "response_a",
    "response_b",
    "winner",
    "winner_model_a",
    "winner_model_b",
    "winner_tie",
    "question_id",
    "completions",
    "answers",
    "output_1",
    "output_2",
    "preference",
    "answer_0",
    "answer_1",
    "score_0",
    "score_1",
    "conv_A",
    "conv_B",
    "conv_A_rating",
    "conv_B_rating",
    "info",
    "summaries",
    "choice",
)

ALPACA_PROMPT = ("instruction", "input")  # read together, as one prompt
JOIN = "+"  # in an inferred column: the columns joined, "instruction+input"
RATED_LISTS = ("completions", "answers")  # lists of rated completions: openbmb/UltraFeedback, Nectar
# where the responses are in rows without chosen/rejected that still take a prompt alias
RESPONSE_FIELDS = ("output_1", *RATED_LISTS)

# Other datasets' names for our fields, read without a mapping when unambiguous (and reported):
# Intel/orca_dpo_pairs (question, system), argilla's UltraFeedback and dpo-mix sets
# (instruction, chosen_response, chosen-rating, chosen_rating), LLaMA-Factory (conversations),
# openbmb/UltraInteract_pair (trajectory).
ALIASES = {
    # lvwerra/stack-exchange-paired: j; Vezora/Code-Preference-Pairs: accepted
    "chosen": ("chosen_response", "response_chosen", "response_j", "accepted"),
    "rejected": ("rejected_response", "response_rejected", "response_k"),
    "score_chosen": ("chosen_rating", "chosen-rating", "chosen_score", "rating_chosen"),
    "score_rejected": ("rejected_rating", "rejected-rating", "rejected_score", "rating_rejected"),
    "system": ("system_prompt", "system_message"),
    "tools": ("functions",),  # OpenAI's older name for the tool definitions
    "prompt": ("question", "instruction", "query", "input", "conversations", "trajectory", "context"),
}
PAIR_LABELS = ("margin", "id", "category", "subset")  # ours that are no text
SCORE_FIELDS = ("score_chosen", "score_rejected")
# Step-level DPO sets (xinlai/Math-Step-DPO-10K) give the last step as chosen/rejected and the
# whole solutions beside them: a reward model scores whole responses, so these replace them.
WHOLE_RESPONSES = {"chosen": "full_chosen", "rejected": "full_rejected"}
NOT_TEXT = ("model", "rating", "score", "id", "name", "system")  # words of a key that is not a text
# Where a prompt may hide under a name that is no alias: refused, not ignored, beside prompt-less
# texts (unless the texts hold it); so is any name with one of PROMPT_WORDS in it that is not a
# label of the row (an id, a model, a language, a source dataset).
PROMPT_LIKE = (
    "messages", "history", "dialogue", "dialog", "conversation", "post", "prompt_text", "problem",
    "task", "request", "user_input", "user_query", "utterance",
)  # fmt: skip
PROMPT_WORDS = (
    "prompt", "prompts", "question", "questions", "instruction", "instructions", "query", "article",
    "document", "doc", "passage", "text", "body", "content", "context", "input", "inputs", "message",
    "email", "code", "review", "story", "essay", "paper", "abstract", "transcript", "history",
    "premise", "scenario", "situation", "selftext", "ctx",
)  # fmt: skip
ROW_LABELS = (
    "type", "lang", "language", "url", "date", "time", "source", "license", "label", "domain",
    "category", "subset", "split", "tag", "tags", "hash", "length", "count", "num", "index", "ids",
    "tokens", "window", "quality", "preference", "tuned", "warning", "agent", "annotator", "dataset",
    "comment", "title",
)  # fmt: skip


def prompt_like(key: str) -> bool:
    """A column name under which a prompt may hide (case aside; camelCase read as words)."""
    words = set(re.split(r"[^a-z]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower()))
    if words & {*NOT_TEXT, *ROW_LABELS}:
        return False
    return key.lower() in PROMPT_LIKE or bool(words & set(PROMPT_WORDS))


# fields a pair may go without: a row that lacks the column mapped to one has no value for it
OPTIONAL_FIELDS = ("margin", "id", "category", "subset", "system", "tools")
IGNORE = "ignore"  # --columns ignore=a+b: columns dropped before reading, said to be no text of the pair


# Two responses named by their position, beside the fields that say which one won (Chatbot
# Arena, PKU-SafeRLHF, SHP, HelpSteer2/3, alpaca_farm, webgpt's and Unified-Feedback's scores).
# Mapped onto chosen/rejected, the first would be read as the preferred one in every row: about
# half the labels the wrong way round. So a row that says which won is invalid under such a
# mapping (left unmapped, its shape reads the label; `ignore=winner` says it means nothing).
POSITIONAL_PAIRS = {
    ("response_a", "response_b"): ("winner", "winner_model_a", "winner_model_b", "winner_tie"),
    ("conversation_a", "conversation_b"): ("winner", "winner_model_a", "winner_model_b", "winner_tie"),
    ("response_0", "response_1"): ("better_response_id", "safer_response_id"),
    ("human_ref_a", "human_ref_b"): ("labels", "score_a", "score_b"),
    ("response1", "response2"): ("overall_preference",),
    ("response_1", "response_2"): ("preference_strength", "overall_preference", "winner"),
    ("output_1", "output_2"): ("preference",),
    ("answer_0", "answer_1"): ("score_0", "score_1"),
    ("conv_a", "conv_b"): ("conv_a_rating", "conv_b_rating"),
}


def positional_labels(record: Any, columns: dict[str, str]) -> list[str]:
    """The fields of `record` that say which response won, when `columns` maps chosen/rejected
    onto two responses named by position ([] otherwise, or when the row leaves them empty)."""
    chosen, rejected = columns.get("chosen"), columns.get("rejected")
    if not chosen or not rejected or not isinstance(record, dict):
        return []
    named = sorted((chosen.lower(), rejected.lower()))
    labels = next((v for k, v in POSITIONAL_PAIRS.items() if sorted(k) == named), ())
    mapped = {part for theirs in columns.values() for part in theirs.split(JOIN)}
    return [
        key
        for key, value in record.items()
        if isinstance(key, str) and key.lower() in labels and key not in mapped and not blank_label(value)
    ]


def blank_label(value: Any) -> bool:
    """No label: null, NaN (pandas' empty cell) or a blank text (a CSV's)."""
    if value is None or (isinstance(value, float) and value != value):
        return True
    return isinstance(value, str) and not value.strip()


def positional_problem(keys: list[str], columns: dict[str, str]) -> str:
    chosen, rejected = columns["chosen"], columns["rejected"]
    named = " and ".join(map(repr, keys))
    return (
        f"--columns chosen={chosen},rejected={rejected} reads {chosen!r} as the preferred response in "
        f"every row, but the rows say which one won in {named}: leave chosen and rejected out of "
        f"--columns and {named} decide{'s' if len(keys) == 1 else ''}, or add ignore={JOIN.join(keys)} "
        f"if {chosen!r} is always the preferred one"
    )


def check_columns(columns: dict[str, str]) -> dict[str, str]:
    """Validate a mapping: keys must be our field names (or `ignore`), values distinct non-empty
    column names."""
    unknown = [k for k in columns if k not in KNOWN_FIELDS and k != IGNORE]
    if unknown:
        raise DataOptionError(
            f"unknown field(s) {unknown} in column mapping; known: {', '.join(KNOWN_FIELDS)}"
        )
    for ours, theirs in columns.items():
        if not isinstance(theirs, str) or not theirs:
            raise DataOptionError(
                f"column mapping for {ours!r} must be a non-empty column name, got {theirs!r}"
            )
    values = [part for theirs in columns.values() for part in theirs.split(JOIN)]
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise DataOptionError(f"column(s) {dupes} mapped to more than one field")
    return dict(columns)


def parse_columns(text: str) -> dict[str, str]:
    """Parse "prompt=question,chosen=good,rejected=bad" into {"prompt": "question", ...}."""
    mapping: dict[str, str] = {}
    for item in text.split(","):
        ours, sep, theirs = (part.strip() for part in item.partition("="))
        if not item.strip():
            raise DataOptionError(f"empty item in column mapping {text!r} (expected 'field=column,...')")
        if not sep or not ours or not theirs:
            raise DataOptionError(
                f"bad column mapping item {item.strip()!r} in {text!r}: expected 'field=column'"
            )
        if ours in mapping:
            raise DataOptionError(f"field {ours!r} is mapped twice in {text!r}")
        parts = [part.strip() for part in theirs.split(JOIN)]  # "ctx + q" is ctx and q
        if not all(parts):
            raise DataOptionError(
                f"bad column mapping item {item.strip()!r} in {text!r}: an empty column name"
            )
        mapping[ours] = JOIN.join(parts)
    return check_columns(mapping)


def _majority(records: list[dict], key: str) -> bool:
    return sum(1 for r in records if r.get(key) is not None) * 2 > len(records)


LABEL_WORDS = ("true", "false", "yes", "no", "0", "1", "y", "n")


def _texts_not_labels(records: list[dict], key: str) -> bool:
    """A column read as a reply holds replies, not flags (`accepted: True` marks a response)."""
    values = [r.get(key) for r in records if r.get(key) is not None]
    flags = [
        v for v in values if isinstance(v, bool) or (isinstance(v, str) and v.strip().lower() in LABEL_WORDS)
    ]
    return len(flags) * 2 <= len(values)


def infer_columns(sample: list[Any], columns: dict[str, str]) -> dict[str, str]:
    """Our fields the data names differently, from the records of `sample` (already mapped by
    `columns`): {field: column} for each field no record has, whose alias most records have.

    Without this, orca_dpo_pairs-like rows (question, chosen, rejected) would be read as implicit
    prompts with the question ignored. A prompt is only looked for in chosen/rejected rows or rows
    with rated completions. Alpaca's `instruction` is read with its `input` when any row has one.
    Two other candidate columns for one field is an error: guessing could train on the wrong text."""
    raw = [r for r in sample if isinstance(r, dict)]
    for ours, theirs in columns.items():  # a renamed or joined column no row has: a typo, say so
        missing = [part for part in theirs.split(JOIN) if not any(part in r for r in raw)]
        # (rows that are not objects: their own error; a column to ignore, or one of an optional
        # field, may be missing from these rows, a later part of the data, or the held-out data)
        if ours not in (IGNORE, *OPTIONAL_FIELDS) and missing and raw:
            keys = sorted({k for r in raw for k in r if isinstance(k, str)})
            raise DataOptionError(
                f"--columns {ours}={theirs}: no row has a column {missing[0]!r} (the rows have: {', '.join(keys[:20])})"
            )
    records = []
    for record in sample:
        if isinstance(record, dict):
            try:
                records.append(apply_columns(record, columns))
            except RowError:  # a mapped column missing: that row's error, reported later
                continue
    if not records:
        return {}
    used = set(columns.values())
    inferred: dict[str, str] = {}
    if not any(ours in columns for ours in WHOLE_RESPONSES) and all(
        _majority(records, theirs) for theirs in WHOLE_RESPONSES.values()
    ):
        inferred.update(WHOLE_RESPONSES)
        used.update(WHOLE_RESPONSES.values())
    for ours, aliases in ALIASES.items():
        if ours in columns or any(r.get(ours) is not None for r in records):
            continue
        if ours == "prompt":
            pair_keys = [inferred.get(k, k) for k in ("chosen", "rejected")]
            paired = all(_majority(records, k) for k in pair_keys)
            if not paired and not any(_majority(records, k) for k in RESPONSE_FIELDS):
                continue
        found = [
            a for a in aliases if a not in used and _majority(records, a) and _texts_not_labels(records, a)
        ]
        # the same names written otherwise: "Prompt", "Question", "Chosen"
        keys = dict.fromkeys(k for r in records for k in r if isinstance(k, str))
        found += [
            k
            for k in keys
            if k not in found
            and k not in used
            and k.lower() in (ours, *aliases)
            and _majority(records, k)
            and _texts_not_labels(records, k)
        ]
        instruction, extra = ALPACA_PROMPT
        if ours == "prompt" and instruction in found and any(r.get(extra) is not None for r in records):
            # Alpaca-style rows: the input belongs to the instruction, in every row that has one
            found = [JOIN.join(ALPACA_PROMPT)] + [a for a in found if a not in ALPACA_PROMPT]
        if len(found) > 1:
            options = " or ".join(f"--columns {ours}={a}" for a in found)
            raise DataOptionError(
                f"the rows have no {ours!r} field and several columns that could be it "
                f"({', '.join(found)}): say which with {options} (the other is then not read), "
                f"or read them as one, a line apart, with --columns {ours}={JOIN.join(found[:2])}"
            )
        if found:
            inferred[ours] = found[0]
            used.update(found[0].split(JOIN))
    for ours in PAIR_LABELS:  # `Margin`, `ID`: ours written another way (a margin changes the loss)
        if ours in columns or all(r.get(ours) is not None for r in records):
            continue  # (beside our own in every row, `ID` is something else: a question's, a model's)
        # read wherever a row has it (a label is often null, unlike a text), also beside rows
        # that write it our way; a row with both is an error (apply_inferred)
        keys = dict.fromkeys(k for r in records for k in r if isinstance(k, str))
        found = [
            k
            for k in keys
            if k != ours
            and k.lower() == ours
            and k not in used
            and any(r.get(k) is not None for r in records)
        ]
        if len(found) > 1:
            raise DataOptionError(
                f"the rows have no {ours!r} field and several columns that could be it "
                f"({', '.join(found)}): say which with --columns {ours}={found[0]}"
            )
        if found:
            inferred[ours] = found[0]
            used.add(found[0])
    return inferred


def apply_inferred(record: dict, inferred: dict[str, str]) -> dict:
    """Rename the columns `infer_columns` found. A row without the column is left as it is (its
    shape then tells); a row with a value under both names is an error, not a silent choice."""
    if not inferred:
        return record
    out = dict(record)
    for ours, theirs in inferred.items():
        if WHOLE_RESPONSES.get(ours) == theirs and record.get(theirs) is None:
            # the last step alone against a whole solution would be no fair comparison
            raise RowError(f"missing (this data's {ours} is the whole solution in {theirs!r})", theirs)
        parts = theirs.split(JOIN)
        if all(record.get(part) is None for part in parts):
            if ours in SCORE_FIELDS and theirs in record and ours not in record:
                out[ours] = out.pop(theirs)  # a null score: missing, not "no such column"
            continue
        if record.get(ours) is not None and WHOLE_RESPONSES.get(ours) != theirs:
            raise RowError(
                f"both {ours!r} and {parts[0]!r} have a value, and this data's {ours} is read from "
                f"{theirs!r}; say which with --columns {ours}=COLUMN",
                parts[0],
            )
        out[ours] = _joined(record, parts) if len(parts) > 1 else record[theirs]
        for part in parts:
            out.pop(part, None)
    return out


def _joined(record: dict, parts: list[str], *, first_required: bool = True) -> str | list[Message]:
    """Columns read as one text, one line apart: Alpaca's instruction and its optional input, as
    LLaMA-Factory joins them, or the user's `--columns prompt=context+question`. When a column
    holds messages the result is turns: see `_joined_turns`."""
    if any(isinstance(record.get(part), list | dict) for part in parts):
        return _joined_turns(record, parts)
    for part in parts:
        if record.get(part) is not None and not isinstance(record[part], str):
            raise RowError(f"expected a string, got {type(record[part]).__name__}", part)
    texts = [record[part] if (record.get(part) or "").strip() else "" for part in parts]
    if first_required and not texts[0] and any(texts[1:]):
        raise RowError(f"missing (this row has {parts[1]!r} for it)", parts[0])
    return "\n".join(t for t in texts if t)


def _joined_turns(record: dict, parts: list[str]) -> list[Message]:
    """Columns read as one prompt when some hold messages (a conversation and the question
    that follows it, a chat prompt and its `input`): each conversation's turns in order, and
    each text (or list of texts, a line apart) inside the user turn beside it, after it when
    the turns before end with the user, before the next user turn otherwise."""
    turns: list[Message] = []
    waiting: list[str] = []
    for part in parts:
        value = record.get(part)
        if _documents(value):  # texts or document objects: their text, a line apart
            value = "\n".join(text for _, text in _pieces(value) if text.strip())
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, str):
            now = prompt_messages(value, part)
            first_user = next((i for i, m in enumerate(now) if m["role"] != "system"), len(now))
            if waiting and first_user < len(now) and now[first_user]["role"] == "user":
                asked = now[first_user]
                now[first_user] = {**asked, "content": "\n".join([*waiting, asked["content"]])}
            elif waiting:
                now.insert(first_user, {"role": "user", "content": "\n".join(waiting)})
            waiting = []
            turns.extend(now)
        elif (asked := _asked_at(turns, value)) is not None:
            # the conversation goes on from this very question (its reply is the pair's): cut there
            turns = turns[:asked]
            waiting.append(value)
        elif turns and turns[-1]["role"] == "user" and not waiting:
            turns[-1] = {**turns[-1], "content": turns[-1]["content"] + "\n" + value}
        else:
            waiting.append(value)
    if waiting:
        turns.append({"role": "user", "content": "\n".join(waiting)})
    return turns


def _message_like(value: Any) -> bool:
    """A message in any of its spellings: it names who speaks (`role`, ShareGPT's `from`)."""
    return isinstance(value, dict) and ("role" in value or "from" in value)


def _documents(value: Any) -> bool:
    """A list of texts or of document objects (no message among them), or one document object."""
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else None
    return bool(items) and all(isinstance(v, str | dict) and not _message_like(v) for v in items)


def _asked_at(turns: list[Message], text: str) -> int | None:
    """The index of the conversation's last user turn when it asks `text` (compared loosely):
    the conversation goes on from that question. An earlier turn with the same words ("Why?")
    is history, not the question asked."""
    words = _words(text)
    last = next((i for i in range(len(turns) - 1, -1, -1) if turns[i]["role"] == "user"), None)
    if last is not None and words and _words(turns[last]["content"]) == words:
        return last
    return None


def read_from(inferred: dict[str, str]) -> set[str]:
    """The source columns `inferred` reads (a joined prompt reads two)."""
    return {part for theirs in inferred.values() for part in theirs.split(JOIN)}


def check_unread_aliases(record: dict, read: set[str], mapped: Iterable[str] = ()) -> None:
    """A prompt or system text under another name that is not being read (it is in a few rows
    only, or the data also has ours) would be dropped: that row is an error instead. Beside our
    own field (`prompt` and `input`, `prompt` and `context`) it is one only when its text is not
    already in ours, and when `--columns` did not name where ours comes from (`mapped`)."""
    pair = any(record.get(k) is not None for k in ("chosen", "rejected", *RESPONSE_FIELDS))
    for ours in ("prompt", "system", "tools"):
        if ours == "prompt" and not pair:
            continue
        value = record.get(ours)
        if value is not None and ours in mapped:
            continue
        for alias in ALIASES[ours]:
            if alias in read or record.get(alias) is None:
                continue
            if value is None:
                raise RowError(
                    f"this row has no {ours!r} but has {alias!r}, which is not read for this data; "
                    f"map it with --columns {ours}={alias}",
                    alias,
                )
            if ours == "tools":  # two lists of tools: no text to join
                if record[alias] != value:
                    raise RowError(
                        f"this row has both {ours!r} and {alias!r}: drop one with --columns "
                        f"{IGNORE}={alias} or --columns {IGNORE}={ours}",
                        alias,
                    )
                continue
            if _unread_text(record[alias], record):
                raise RowError(
                    f"this row has {alias!r} beside {ours!r}, and its text is not read: read both "
                    f"with --columns {ours}={_both(record, ours, alias)}, or {ours!r} alone with "
                    f"--columns {ours}={ours}",
                    alias,
                )
    if pair:
        _refuse_unread_neighbours(record, read, mapped)
    instruction, extra = ALPACA_PROMPT
    value = record.get(extra)
    if instruction in read and extra not in read and pair and isinstance(value, str) and value.strip():
        raise RowError(
            f"this row's {extra!r} is not read: the prompt is read from {instruction!r} alone (without "
            f"--columns prompt={instruction} the two are read together)",
            extra,
        )


# Columns that hold text a pair may need, though no shape reads them beside a prompt: earlier
# turns, or the document a question is about.
EARLIER_TURNS = ("messages", "conversation", "dialogue", "dialog")
DOCUMENTS = ("document", "documents", "passage", "passages", "article")
NEIGHBOURS = (*EARLIER_TURNS, *DOCUMENTS)
# every name a conversation goes by, read by a shape (an alias) or not: joined before a question
CONVERSATIONS = (*EARLIER_TURNS, "conversations", "history", "trajectory")
OURS_WRITTEN_OTHERWISE = ("prompt", "system", "chosen", "rejected")  # "Prompt" beside "prompt"


def _both(record: dict, ours: str, other: str) -> str:
    """The --columns value that reads two columns as one: earlier turns first, a text after."""
    value = record.get(other)
    turns = other.lower() in CONVERSATIONS or (isinstance(value, list) and any(map(_message_like, value)))
    return f"{other}{JOIN}{ours}" if turns else f"{ours}{JOIN}{other}"


def _refuse_unread_neighbours(record: dict, read: set[str], mapped: Iterable[str]) -> None:
    """Earlier turns or a document beside the pair (`messages`, `document`, ...), or one of our
    fields written a second way ("Chosen" beside "chosen"), that no shape reads: an error unless
    the pair holds its text (a document in the prompt, earlier turns in the prompt or, for their
    replies, in the pair's replies; a twin anywhere in the pair)."""
    for key, value in record.items():
        if not isinstance(key, str) or key in read or value is None or value == "" or value == []:
            continue
        lowered = key.lower()
        twin = lowered in OURS_WRITTEN_OTHERWISE and key != lowered and record.get(lowered) is not None
        if not (twin or lowered in NEIGHBOURS):
            continue
        if not twin and record.get("prompt") is None and lowered not in DOCUMENTS:
            continue  # earlier turns beside prompt-less sides: the shape's own check advises
        ours = lowered if twin else "prompt"
        if ours in mapped:
            continue
        if twin:
            if text_within(value, record, ("prompt", "system", "chosen", "rejected")):
                continue
            raise RowError(
                f"this row has {key!r} beside {ours!r}: say which is the {ours} with --columns "
                f"{ours}={key} or --columns {ours}={ours}, or drop it with --columns {IGNORE}={key}",
                key,
            )
        if not _unread_text(value, record, past_last_reply=lowered not in DOCUMENTS):
            continue
        how = (
            f"read both with --columns {ours}={_both(record, ours, key)}, or "
            if record.get("prompt") is not None
            else f"read it as the prompt with --columns prompt={key}, or "
        )
        raise RowError(
            f"this row has {key!r} beside the pair, and its text is not read: {how}drop it with "
            f"--columns {IGNORE}={key}",
            key,
        )


ASKING_ROLES = ("user", "human", "system", "developer", "prompter")
NOT_CONTENT = (  # a document's labels, not its text
    "id", "url", "uri", "href", "link", "source", "score", "type", "index", "lang", "language", "meta",
    "metadata", "title", "date", "author",
)  # fmt: skip


def _pieces(value: Any, role: str | None = None) -> list[tuple[str | None, str]]:
    """The texts a field holds, each with the role of the message it is in (None outside one):
    itself, a list's items, a message's content (`content`, `value`, `text`, `parts`; its tool
    calls as text), OpenAI text parts, a document's text fields (not its id, url or score)."""
    if isinstance(value, str):
        return [(role, value)]
    if isinstance(value, list):
        return [piece for item in value for piece in _pieces(item, role)]
    if isinstance(value, dict):
        if _message_like(value):
            speaker = str(value.get("role", value.get("from", "")) or "").lower()
            body = [value.get(k) for k in ("content", "value", "text", "parts") if value.get(k) is not None]
            calls = [value.get(k) for k in ("tool_calls", "function_call") if value.get(k)]
            return _pieces(body, speaker) + [(speaker, json.dumps(c, default=str)) for c in calls]
        if "input" in value and "output" in value:  # a turn as {input, output} (capybara)
            return _pieces(value["input"], "user") + _pieces(value["output"], "assistant")
        if value.get("type") == "text" and "text" in value:  # an OpenAI text part
            return _pieces(value["text"], role)
        return [
            piece
            for key, item in value.items()
            if not set(re.split(r"[^a-z]+", str(key).lower())) & set(NOT_CONTENT)
            for piece in _pieces(item, role)
        ]
    return [] if value is None or isinstance(value, bool) else [(role, str(value))]


HTML_TAG = re.compile(r"</?[a-z][a-z0-9]*(?:\s[^<>]*)?/?>")


def _words(text: str) -> list[str]:
    """A text's words, compared loosely: Unicode compatibility forms, case, HTML tags and escapes,
    quotes, punctuation, markdown (`_beta_`), digit groups (1,000) and hyphens (e-mail) aside."""
    text = unicodedata.normalize("NFKC", html.unescape(text)).casefold().translate(LOOSE_QUOTES)
    text = HTML_TAG.sub(" ", text)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    text = re.sub(r"(?<=[^\W_])-(?=[^\W_])", "", text)
    return re.findall(r"[^\W_]+", text)


def _marks(text: str) -> str:
    """A text without words (emoji, symbols), as the characters it is written with."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def _found(piece: list[str], read: list[str]) -> bool:
    """`piece`'s words in `read`, one after another; in text written without spaces (Chinese,
    Japanese) as characters."""
    if not piece:
        return True
    if any(ord(ch) > 0x2E7F for word in piece for ch in word):
        return "".join(piece) in "".join(read)
    n = len(piece)
    return any(read[i : i + n] == piece for i in range(len(read) - n + 1))


def _unread_text(value: Any, record: dict, *, past_last_reply: bool = False) -> bool:
    """Whether `value` holds text the pair does not: a piece (a list item, a message, a document
    field) whose words are not found, in order, in the prompt or system text (an answering
    message's text may be in a reply instead). A prompt's words inside a reply say nothing of
    the prompt; a match may not run across two fields. With `past_last_reply`, a conversation's
    final reply is passed over: it may be a third response to the pair's prompt (capybara's
    original answer), not a turn the pair needs."""

    asked_texts = [t for k in ("prompt", "system") for _, t in _pieces(record.get(k))]
    reply_pieces = [piece for k in ("chosen", "rejected") for piece in _pieces(record.get(k))]
    # a conversation's own questions, or a whole transcript when there is no prompt, ask too
    asked_texts += [
        t
        for role, t in reply_pieces
        if role in ASKING_ROLES or (role is None and record.get("prompt") is None)
    ]
    asked, asked_marks = [_words(t) for t in asked_texts], [_marks(t) for t in asked_texts]
    replies = [_words(t) for _, t in reply_pieces]
    pieces = _pieces(value)
    if past_last_reply and pieces and pieces[-1][0] is not None and pieces[-1][0] not in ASKING_ROLES:
        pieces = pieces[:-1]
    for role, piece in pieces:
        words = _words(piece)
        if not words:  # emoji or symbols alone are text too
            if _marks(piece) and not any(_marks(piece) in field for field in asked_marks):
                return True
            continue
        if any(_found(words, field) for field in asked):
            continue
        if role is not None and role not in ASKING_ROLES and any(_found(words, field) for field in replies):
            continue
        return True
    return False


def text_within(value: Any, record: dict, keys: Iterable[str], min_words: int = 0) -> bool:
    """Whether every piece of `value` is found, word for word, in one of the record's `keys`
    (a prompt column that only repeats what whole transcripts hold loses nothing). A piece of
    fewer than `min_words` words proves nothing by being found ("Why?" in a reply)."""
    fields = [_words(t) for k in keys for _, t in _pieces(record.get(k))]
    pieces = [_words(piece) for _, piece in _pieces(value)]
    return all(len(p) >= min_words and any(_found(p, field) for field in fields) for p in pieces)


def holds_text(value: Any) -> bool:
    """A value that may be a prompt: a text, a document, or a list of them (not ids or numbers)."""
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, dict):
        return any(holds_text(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_text(v) for v in value)
    return False


def suggest_columns(keys: list[str]) -> str:
    """A --columns mapping for rows with no known preference fields, from their key names
    ("good_answer" is not guessed; "answer_chosen" is; "chosen_model" is not text)."""
    picks = []
    for ours in ("prompt", "chosen", "rejected"):
        hits = [
            k
            for k in keys
            if ours in k.lower()
            and k != ours
            and k not in KNOWN_FIELDS
            and not set(re.split(r"[^a-z0-9]+", k.lower())) & set(NOT_TEXT)
        ]
        if ours == "prompt" and not hits:
            hits = [k for k in keys if k in ALIASES["prompt"]]
        if len(hits) == 1:
            picks.append(f"{ours}={hits[0]}")
    return f" (maybe --columns {','.join(picks)})" if len(picks) >= 2 else ""


def apply_columns(record: Any, columns: dict[str, str]) -> Any:
    """Return a copy of `record` with mapped columns renamed; a mapped column missing is a RowError."""
    if not columns or not isinstance(record, dict):
        return record
    out = dict(record)
    for ours, theirs in columns.items():
        parts = theirs.split(JOIN)
        for part in parts:
            if part not in record and (
                ours in (IGNORE, *OPTIONAL_FIELDS) or len(parts) > 1 or record.get(ours) is not None
            ):
                continue  # a column some rows lack: nothing to drop or join, the row has ours, or
                # a field a row may go without (its null is no value either)
            if part not in record:
                raise RowError(f"column {part!r} (mapped to {ours!r}) is not in the record", part)
            out.pop(part)
    for ours, theirs in columns.items():
        parts = theirs.split(JOIN)
        if ours == IGNORE:
            continue
        no_value = all(record.get(part) is None for part in parts)
        if no_value and not _blank(record.get(ours)):
            # this row has our own field instead (Arrow writes an absent key as null); an empty
            # text in the mapped column is the row's value (a blank reply is invalid, a blank
            # prompt is no prompt), not a reason to read ours
            continue
        if len(parts) == 1 and theirs not in record:
            continue  # neither: the row's shape tells what is missing
        if len(parts) > 1 and no_value:
            out[ours] = None  # no part has a value: as a single column's null (an empty join was no prompt)
            continue
        out[ours] = _joined(record, parts, first_required=False) if len(parts) > 1 else record[theirs]
    return out


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and blank(value))


def display_field(field: str | None, columns: dict[str, str]) -> str | None:
    """Name a field as the user knows it: with a mapping, 'chosen[0].content' -> 'good[0].content'."""
    if field is None or not columns:
        return field
    for ours, theirs in columns.items():
        if field == ours or field.startswith((ours + "[", ours + ".")):
            return theirs + field[len(ours) :]
    return field
