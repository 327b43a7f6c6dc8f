"""Recognise the shape of a preference record and normalise it to `PreferencePair`s.

Shapes (the name is what `LoadedPairs.shape` reports; "+scores" is appended when the
record carries `score_chosen`/`score_rejected`):

- explicit_prompt: `prompt`, `chosen`, `rejected` strings.
- conversational: `prompt` (messages or a string) with `chosen`/`rejected` message lists.
- implicit_conversational: `chosen`/`rejected` message lists, no prompt; shared leading turns are the prompt.
- hh_rlhf: `chosen`/`rejected` "\\n\\nHuman: ...\\n\\nAssistant: ..." transcripts, no prompt.
- implicit_text: `chosen`/`rejected` plain texts, no prompt; the whole lines they share first are the
  prompt (texts that part mid-line are kept whole, with no prompt).
- helpsteer3: `input` + `output` [{"answer", "label": {"is_preferred"}}]; one pair per non-preferred answer.
- openai_preference: OpenAI's preference fine-tuning JSONL: `input` ({"messages", "tools"}),
  `preferred_output`, `non_preferred_output` (message lists).
- shp: `history`, `human_ref_A`, `human_ref_B`, `labels` (1 = A preferred), `score_A`, `score_B`.
- multi_completion: RewardBench 2's `prompt` with `chosen`/`rejected` lists of texts; one pair
  per (chosen, rejected) combination, ids "ID#k".
- ranked / ranked+scores: a `prompt` with a list of rated completions, `completions`
  (openbmb/UltraFeedback: `response`, `overall_score`) or `answers` (Nectar: `answer`, `rank`, 1 =
  best); one pair per (better, worse) combination, ids "ID#k"; equal ratings give no pair.
- indexed_pair: PKU-SafeRLHF's `prompt`, `response_0`, `response_1`, `better_response_id` (0 or 1).
- alpaca_farm: `instruction` (+ `input`), `output_1`, `output_2`, `preference` (1 or 2).
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
is better is invalid, and a tie gives margin 0 (the loader counts such pairs). Scores are also kept in
`PreferencePair.extra`. A chosen/rejected row the data itself marks as a tie (`status: tie`) is invalid.
`id` and `category` (or RewardBench's `subset`) pass through as text. A `system` string and
`tools` definitions become the prompt's system turn (`context`). Other datasets' names for these fields (question,
chosen_response, chosen-rating, ...) are found by `columns.infer_columns` and reported.
Messages may be OpenAI-style (role/content) or ShareGPT-style (from/value).

Every problem raises `RowError(reason, field)`; the loader adds the file and location. The
field readers live in `values`, the shapes of particular public datasets in `public_sets`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rewardforge.data import comparisons, public_sets
from rewardforge.data.columns import RATED_LISTS, holds_text, prompt_like, suggest_columns, text_within
from rewardforge.data.context import with_context
from rewardforge.data.errors import RowError
from rewardforge.data.overlap import refuse_leaked_reply, transcript, with_prompt, without_repeated_prompt
from rewardforge.data.public_sets import ARENA_MARKERS, rated_list, rating_field
from rewardforge.data.transcripts import (
    looks_like_hh,
    parse_hh,
    refuse_extension,
    split_text,
    split_transcripts,
)
from rewardforge.data.types import Message, PreferencePair
from rewardforge.data.values import (
    assistant_turn,
    check_completions,
    is_message,
    label_text,
    message_role,
    messages,
    number,
    present,
    prompt_messages,
    reply_text,
    text,
    type_name,
    unicode_text,
)

SCORED_SHAPES = (
    "shp",
    "graded_pair",
    *comparisons.SCORED,
)  # shapes whose scores are built in; others need "+scores"


@dataclass
class Detected:
    """A shape and the features that decided it, to name the differing field in a mixture."""

    shape: str
    features: dict[str, str] = field(default_factory=dict)

    @property
    def has_scores(self) -> bool:
        return self.shape.endswith("+scores") or self.shape in SCORED_SHAPES


def _text_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], str)


def _described(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {type_name(value[0])}" if value else "an empty list"
    return type_name(value)


def detect_shape(record: Any) -> Detected:
    """Decide a record's shape from which fields it has and their types."""
    if not isinstance(record, dict):
        raise RowError(f"record is not a JSON object (got {type_name(record)})")
    has_pair = present(record, "chosen") or present(record, "rejected")
    if not has_pair and any(k in record for k in public_sets.OPENAI_SIDES):
        return Detected("openai_preference", {"chosen": "absent", "preferred_output": "present"})
    if not has_pair and present(record, "output") and not isinstance(record["output"], str):
        return Detected("helpsteer3", {"chosen": "absent", "output": "present"})
    ranked = rated_list(record) if not has_pair else None
    if ranked is not None:
        return Detected(
            "ranked" + ("+scores" if rating_field(ranked[1][0])[1] == "score" else ""),
            {"chosen": "absent", ranked[0]: "list"},
        )
    if not has_pair and any(k in record for k in ("history", "human_ref_A", "human_ref_B")):
        return Detected("shp", {"chosen": "absent", "human_ref_A": "present"})
    if not has_pair and ("response_0" in record or "better_response_id" in record):
        return Detected("indexed_pair", {"chosen": "absent", "response_0": "present"})
    if not has_pair and "output_1" in record:
        return Detected("alpaca_farm", {"chosen": "absent", "output_1": "present"})
    if not has_pair and public_sets.is_numbered_battle(record):
        return Detected("arena", {"chosen": "absent", "winner": "present", "prompt": "text"})
    if not has_pair and any(k in record for k in ("response1", "response_1")):
        return Detected("graded_pair", {"chosen": "absent", "response1": "present"})
    compared = comparisons.detect(record) if not has_pair else None
    if compared is not None:
        return Detected(compared, {"chosen": "absent", compared: "present"})
    if not has_pair and any(k in record for k in ARENA_MARKERS):
        prompt_kind = "turn list" if public_sets.arena_turn_lists(record) else "text"
        return Detected("arena", {"chosen": "absent", "winner": "present", "prompt": prompt_kind})
    listed = next((name for name in RATED_LISTS if present(record, name)), None)
    if not has_pair and listed is not None:  # there, but not a list of rated completions
        raise RowError(
            "expected a list of at least two rated completions, e.g. [{response, overall_score}] "
            f"or [{{answer, rank}}]; got {_described(record[listed])}",
            listed,
        )
    if not has_pair and isinstance(record.get("output"), str):
        raise RowError(
            "is one text: a single response is no preference (instruction-tuning data?); preference "
            "rows need chosen/rejected, or a list of answers with is_preferred labels (HelpSteer3)",
            "output",
        )
    single = [k for k in SINGLE_RESPONSES if isinstance(record.get(k), str)]
    if not has_pair and len(single) == 1:
        ratings = [
            str(k)
            for k, v in record.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and not str(k).lower().endswith("id")
        ]
        rated = f", rated by {', '.join(ratings[:6])}" if ratings else ""
        raise RowError(
            f"one response per row{rated}: a single response is no preference (HelpSteer2, red-team "
            "transcripts?); preference rows need two responses to one prompt, chosen and rejected: "
            "build such pairs first (e.g. the best- and worst-rated response of each prompt)",
            single[0],
        )
    if not has_pair:
        keys = sorted(map(str, record))
        raise RowError(
            "no preference fields: expected chosen/rejected, input/output (HelpSteer3-like), "
            "context/response1/response2/overall_preference (HelpSteer3), "
            "prompt/response_0/response_1/better_response_id (PKU-SafeRLHF), "
            "instruction/output_1/output_2/preference (alpaca_farm), "
            "conversation_a/conversation_b/winner (Chatbot Arena), "
            "answer_0/answer_1/score_0/score_1 (WebGPT), conv_A/conv_B/conv_A_rating/conv_B_rating "
            "(Unified-Feedback), info/summaries/choice (summarize_from_feedback), "
            "prompt/completions[{response, overall_score}] (UltraFeedback), "
            "prompt/answers[{answer, rank}] (Nectar), "
            "input/preferred_output/non_preferred_output (OpenAI preference fine-tuning) or "
            f"history/human_ref_A/human_ref_B (SHP); found keys: {', '.join(keys[:12]) or 'none'} "
            f"(map yours with columns){suggest_columns(keys)}"
        )
    key = "chosen" if present(record, "chosen") else "rejected"
    value = record[key]
    prompt = "present" if present(record, "prompt") else ("null" if "prompt" in record else "absent")
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
        raise RowError(f"expected a string or a list of messages, got {type_name(value)}", key)
    scores = "present" if ("score_chosen" in record or "score_rejected" in record) else "absent"
    return Detected(
        shape + ("+scores" if scores == "present" else ""),
        {"prompt": prompt, "chosen": kind, "score_chosen": scores},
    )


def mixture_field(first: Detected, now: Detected) -> str | None:
    """The field whose presence or type differs between two detections (for the error message)."""
    shared = [key for key in first.features if key in now.features]  # named by both: most telling
    for key in shared + list(first.features) + list(now.features):
        if first.features.get(key, "absent") != now.features.get(key, "absent"):
            return key
    return None


def _pair_fields(record: dict, shape: str) -> tuple[list[Message], list[Message], list[Message]]:
    """Prompt, chosen, rejected for the shapes built on `chosen`/`rejected`."""
    base = shape.removesuffix("+scores")
    if base == "explicit_prompt":
        prompt = prompt_messages(record["prompt"], "prompt")
        chosen_text, rejected_text = text(record, "chosen"), text(record, "rejected", like="chosen")
        transcripts = [transcript(chosen_text, prompt), transcript(rejected_text, prompt)]
        if any(transcripts):  # whole HH transcripts beside their prompt: read as turns, each turn once
            sides = [t or assistant_turn(raw) for t, raw in zip(transcripts, (chosen_text, rejected_text))]
            return with_prompt(prompt, *sides)
        said = prompt[-1]["content"].strip() if prompt and prompt[-1]["role"] == "user" else ""
        chosen_text, rejected_text = (reply_text(record["prompt"], t) for t in (chosen_text, rejected_text))
        sides = [assistant_turn(without_repeated_prompt(said, t)) for t in (chosen_text, rejected_text)]
        refuse_leaked_reply(prompt, sides)
        return prompt, sides[0], sides[1]
    if base in ("conversational", "implicit_conversational"):
        chosen = messages(record.get("chosen"), "chosen") if present(record, "chosen") else None
        rejected = messages(record.get("rejected"), "rejected") if present(record, "rejected") else None
        if chosen is None or rejected is None:
            raise RowError("missing", "chosen" if chosen is None else "rejected")
        if base == "implicit_conversational":
            prompt, c_rest, r_rest = split_transcripts(chosen, rejected, ("chosen", "rejected"))
            if not prompt:
                _refuse_unread_prompt(record)
            return prompt, c_rest, r_rest
        return with_prompt(prompt_messages(record["prompt"], "prompt"), chosen, rejected)
    chosen_text, rejected_text = text(record, "chosen"), text(record, "rejected", like="chosen")
    if base == "hh_rlhf":
        return split_transcripts(
            parse_hh(chosen_text, "chosen"), parse_hh(rejected_text, "rejected"), ("chosen", "rejected")
        )
    _refuse_unread_prompt(record)
    prompt_text, c, r = split_text(chosen_text, rejected_text)
    return prompt_messages(prompt_text, "prompt"), assistant_turn(c), assistant_turn(r)


class UnreadPromptError(RowError):
    """A column that looks like the prompt beside chosen/rejected that have none. Without other
    `advice` it is one to map as the prompt (`mappable`), which a processor does its own way."""

    def __init__(self, column: str, advice: str | None = None):
        self.column, self.mappable = column, advice is None
        advice = (
            advice or f"read it with --columns prompt={column}, or drop it with --columns ignore={column}"
        )
        super().__init__(f"{self.problem()}: {advice}", column)

    def problem(self) -> str:
        return f"chosen/rejected have no prompt, but {self.column!r} looks like one"


def _refuse_unread_prompt(record: dict) -> None:
    """Prompt-less texts beside a conversation, or a column named like a prompt, would train on
    replies to a question the model never sees: say which column to map instead."""
    for key, value in record.items():
        if key in ("chosen", "rejected"):
            continue
        conversation = isinstance(value, list) and bool(value) and all(is_message(v) for v in value)
        named = (
            isinstance(key, str)
            and prompt_like(key)
            and holds_text(value)
            and not text_within(value, record, ("chosen", "rejected"), min_words=3)
        )
        if conversation and message_role(value[-1]) == "assistant":
            raise UnreadPromptError(
                key,
                "it ends with a reply, so its turns before that are the prompt: a --processor can take them",
            )
        if named and key == "history" and isinstance(value, list) and all(isinstance(v, list) for v in value):
            raise UnreadPromptError(
                key, "it holds earlier [question, answer] turns; the question answered needs its own column"
            )
        if conversation or named:
            raise UnreadPromptError(key)  # a column to map as the prompt


def _history_turns(record: dict) -> list[Message]:
    """LLaMA-Factory's `history`, [[question, answer], ...]: the turns before the prompt."""
    history = record.get("history")
    if history is None or history == []:
        return []
    if not isinstance(history, list):
        raise RowError(f"expected a list of [question, answer] pairs, got {type_name(history)}", "history")
    turns: list[Message] = []
    for i, item in enumerate(history):
        if not (isinstance(item, list | tuple) and len(item) == 2 and all(isinstance(t, str) for t in item)):
            raise RowError("expected a [question, answer] pair of strings", f"history[{i}]")
        for role, content in zip(("user", "assistant"), item):
            turns.append({"role": role, "content": unicode_text(content, f"history[{i}]")})
    return turns


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
        if value is None and name not in record:  # the data has one score column, not both
            raise RowError(
                f"no such column: margin_from_scores needs both scores; name yours with --columns {name}=COLUMN",
                name,
            )
        if value is None:
            raise RowError("missing (needed for margin_from_scores)", name)
    sc, sr = values
    if sc < sr:  # a label the scores contradict: which one is right is unknowable here
        raise RowError(
            f"the scores contradict the preference: {score_names[0]} {sc:g} is below {score_names[1]} {sr:g}",
            score_names[0],
        )
    return (score_margin(sc, sr, score_names[0]) if margin is None else margin), {
        "score_chosen": sc,
        "score_rejected": sr,
    }


def score_margin(chosen: float, rejected: float, name: str) -> float:
    """score_chosen - score_rejected; finite scores far apart (1e308 and -1e308) would overflow."""
    margin = chosen - rejected
    if not math.isfinite(margin):
        raise RowError(f"the scores {chosen:g} and {rejected:g} are too far apart for a margin", name)
    return margin


def _turn_lists(detected: Detected) -> bool | None:
    kind = detected.features.get("prompt")
    return None if kind not in ("turn list", "text") else kind == "turn list"


SINGLE_RESPONSES = ("response", "completion", "answer", "generation", "transcript")
# a field by which the data itself marks a row as a tie (argilla's orca pairs: status "tie")
# (not `label` or `result`: a topic, or a game's result, would refuse valid pairs)
TIE_FLAGS = ("status", "verdict", "judgement", "judgment", "preference", "winner")
TIE_VALUES = {"tie", "tied", "draw", "equal", "tie (bothbad)", "both_bad", "both bad", "bothbad"}


def refuse_marked_tie(record: dict) -> None:
    """chosen/rejected of a row marked as a tie are so only by position: no preference to learn."""
    for key in TIE_FLAGS:
        value = record.get(key)
        if isinstance(value, str) and value.strip().lower() in TIE_VALUES:
            raise RowError(f"the row is marked as a tie ({key} {value!r}): no preference to learn", key)


def normalise(record: dict, detected: Detected, *, margin_from_scores: bool = False) -> list[PreferencePair]:
    """Turn one record of a detected shape into one pair (several for helpsteer3, multi_completion
    and ranked)."""
    shape = detected.shape
    score_names = ("score_chosen", "score_rejected")
    ratings: list[dict[str, float]] = []  # ranked: each pair's own two ratings
    if shape == "helpsteer3":
        triples = public_sets.helpsteer3(record)
    elif shape == "shp":
        p, c, r, (win, lose) = public_sets.shp(record)
        check_completions(c, r, (f"human_ref_{win}", f"human_ref_{lose}"))
        triples = [(p, c, r, None)]
        score_names = (f"score_{win}", f"score_{lose}")
    elif shape == "graded_pair":
        p, c, r, names, strength = public_sets.graded_pair(record)
        check_completions(c, r, names)
        triples = [(p, c, r, None)]
    elif shape.removesuffix("+scores") == "multi_completion":
        triples = public_sets.multi_completion(record)
    elif shape.removesuffix("+scores") == "ranked":
        rated = public_sets.ranked(record)
        triples, ratings = [t[:4] for t in rated], [t[4] for t in rated]
    elif shape in comparisons.SCORED:
        (p, c, r), names, score_names = comparisons.scored(record, shape)
        check_completions(c, r, names)
        triples = [(p, c, r, None)]
    elif shape == "summary_comparison":
        (p, c, r), names = comparisons.summary_comparison(record)
        check_completions(c, r, names)
        triples = [(p, c, r, None)]
    elif shape == "openai_preference":
        p, c, r, names = public_sets.openai_preference(record)
        check_completions(c, r, names)
        triples = [(p, c, r, None)]
    elif shape in ("indexed_pair", "alpaca_farm", "arena"):
        if shape == "arena":
            p, c, r, names = public_sets.arena(record, _turn_lists(detected))
        else:
            p, c, r, names = public_sets.numbered_pair(record, shape)
        check_completions(c, r, names)
        triples = [(p, c, r, None)]
    else:
        refuse_marked_tie(record)
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
    raw_id = label_text(record.get(id_name), id_name)
    domain = record.get("domain")  # HelpSteer3, SHP: only used when it is text
    category = (
        label_text(record.get("category"), "category")
        or label_text(record.get("subset"), "subset")
        or (unicode_text(domain, "domain") if isinstance(domain, str) and domain else None)
    )
    history = _history_turns(record) if shape != "shp" else []  # SHP's `history` is its prompt
    pairs = []
    for k, (p, c, r, answer_index) in enumerate(triples):
        pair_id = raw_id
        if raw_id is not None and answer_index is not None and len(triples) > 1:
            pair_id = f"{raw_id}#{answer_index}"  # helpsteer3, multi_completion, ranked: one id per pair
        pair_margin, pair_extra = margin, dict(extra)
        if ratings:
            pair_extra = ratings[k]
            if margin is None and margin_from_scores:
                if "score_chosen" not in pair_extra:  # a processor's record skips the shape check
                    raise RowError(
                        "margin_from_scores needs scores, and these completions are ranked", "margin"
                    )
                pair_margin = score_margin(pair_extra["score_chosen"], pair_extra["score_rejected"], "margin")
        prompt = [dict(m) for m in with_context(record, history + p)]  # pairs of one record share no list
        pairs.append(
            PreferencePair(prompt, c, r, margin=pair_margin, id=pair_id, category=category, extra=pair_extra)
        )
    return pairs


def check_pair(pair: PreferencePair) -> PreferencePair:
    """Validate a pair built by user code as strictly as a record read from a file."""
    prompt = messages(pair.prompt, "prompt")
    chosen, rejected = messages(pair.chosen, "chosen"), messages(pair.rejected, "rejected")
    check_completions(chosen, rejected, ("chosen", "rejected"))
    refuse_extension(chosen, rejected, ("chosen", "rejected"))
    pair.prompt, pair.chosen, pair.rejected = prompt, chosen, rejected
    pair.margin = number(pair.margin, "margin")
    pair.id, pair.category = label_text(pair.id, "id"), label_text(pair.category, "category")
    if not isinstance(pair.extra, dict):
        raise RowError(f"expected a dict, got {type_name(pair.extra)}", "extra")
    return pair
