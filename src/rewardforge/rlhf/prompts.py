"""Prompt sets for RLHF and best-of-N: one prompt a record (JSONL, one a line, or any data format).

    {"prompt": "What is 2+2?", "answer": "4"}
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}

`prompt` is a string (one user message) or a list of chat messages; `system` and `tools`
(tool definitions) columns join its system turn, as in training data, and stay columns. Every
column besides `prompt` (e.g. `answer` for an environment reward, `id`, `tools`) is kept and
handed to the reward functions, repeated per generation. Prompts are always passed on as
message lists, so the policy's chat template is applied by the trainer and the RM applies its
own format.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable
from typing import Any

from rewardforge.data.context import with_context
from rewardforge.data.errors import DataError, RowError
from rewardforge.data.types import PreferencePair, turn_text
from rewardforge.files import atomic_write_text


def prompt_messages(value: Any, source: str = "prompt", location: str | None = None) -> list[dict[str, str]]:
    """A prompt as a non-empty list of messages, read as training reads prompts (a transcript
    string as its turns, ShareGPT messages, valid Unicode); DataError naming where if not."""
    from rewardforge.data.values import prompt_messages as read_prompt

    try:
        messages = read_prompt(value, "prompt")
    except RowError as e:
        raise DataError(source, e.reason, location=location, field=e.field) from None
    if not messages:
        raise DataError(source, "empty prompt", location=location, field="prompt")
    return messages


def read_prompts(path: str | os.PathLike, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Records of a prompts source, in any format the data layer reads (JSONL, JSON, Parquet,
    CSV, a saved dataset, `hf:`, `-` for standard input), with `prompt` as message lists; every
    other column kept. A bad record raises DataError naming the file, line or row, and field."""
    from rewardforge.data.readers import iter_records

    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    source = os.fspath(path)
    records: list[dict[str, Any]] = []
    for where, rec in iter_records(source):
        if limit is not None and len(records) >= limit:
            break
        if not isinstance(rec, dict) or "prompt" not in rec:
            raise DataError(source, "expected a record with a 'prompt' field", location=where)
        rec = dict(rec)
        rec["prompt"] = prompt_messages(rec["prompt"], source, where)
        try:  # `system` and `tools` columns join the system turn, as in training data
            rec["prompt"] = with_context(rec, rec["prompt"])
        except RowError as e:
            raise DataError(source, e.reason, location=where, field=e.field) from None
        problem = _generation_problem(rec)
        if problem:
            raise DataError(source, problem[1], location=where, field=problem[0])
        records.append(rec)
    return records


def _generation_problem(rec: dict[str, Any]) -> tuple[str, str] | None:
    """(field, why) when a policy cannot answer this prompt: the next turn must be the assistant's,
    after something to answer."""
    from rewardforge.data.values import blank

    prompt = rec["prompt"]
    last = prompt[-1]
    if last["role"] == "assistant":
        return "prompt", "ends with an assistant turn: the policy would answer its own reply"
    if last["role"] == "system":
        return "prompt", "has no user turn after its system turn: nothing to answer"
    if last["role"] == "user" and blank(last["content"]):
        return "prompt", "its last user turn is empty: nothing to answer"
    ident = rec.get("id")
    if ident is not None and (isinstance(ident, bool) or not isinstance(ident, str | int)):
        return "id", f"must be a string or an integer, got {type(ident).__name__}"
    return None


def prompts_dataset(records: list[dict[str, Any]]):
    """A `datasets.Dataset` for GRPOTrainer (columns: prompt + the extra columns). A column Arrow
    cannot hold unchanged (`answer` 4 in one row and "Paris" or 2.5 in the next would fail or
    become 4.0; objects with other keys would get each other's keys; lists of numbers and of texts
    fail) becomes texts as written: a number as Python writes it, anything else as JSON."""
    from datasets import Dataset

    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys]
    rows = [{k: r.get(k) for k in keys} for r in records]
    for key in keys:
        if key != "prompt" and not _arrow_keeps([row[key] for row in rows]):
            for row in rows:
                row[key] = _as_text(row[key])
    return Dataset.from_list(rows)


def _arrow_keeps(values: list[Any]) -> bool:
    """Whether an Arrow column of `values` reads back as the same values (NaN as NaN)."""
    import pyarrow as pa

    try:
        back = pa.array(values).to_pylist()
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return False
    return json.dumps(back, sort_keys=True, default=str) == json.dumps(values, sort_keys=True, default=str)


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def prompts_from_pairs(
    source: str | os.PathLike | Iterable[PreferencePair],
    output: str | os.PathLike | None = None,
    *,
    limit: int | None = None,
    skip: int = 0,
    shuffle_seed: int | None = None,
    dedupe: bool = True,
    max_prompt_chars: int | None = 2000,
    keep_chosen: bool = False,
    skip_invalid: bool = False,
) -> list[dict[str, Any]]:
    """A prompt set from preference pairs (e.g. HH-RLHF): each pair's prompt (its conversation up
    to the last user turn). Empty prompts are dropped; duplicates too (`dedupe`); so are prompts
    longer than `max_prompt_chars` (None: keep all). `shuffle_seed` shuffles before `skip`/
    `limit` (use the same seed and disjoint skip/limit for train and held-out sets). With
    `keep_chosen`, the preferred response is kept as a `chosen` column (a reference). Written as
    JSONL to `output` (atomically) when given; returned either way. A file with invalid rows is an
    error (`rewardforge.data.DataError`) unless `skip_invalid`, which leaves those rows out."""
    from rewardforge.data import load_pairs

    for name, value, least in (("skip", skip, 0), ("limit", limit, 1)):  # -1 counted from the end
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
            raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
    pairs = (
        list(load_pairs(os.fspath(source), skip_invalid=skip_invalid).pairs)
        if isinstance(source, str | os.PathLike)
        else list(source)
    )
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for pair in pairs:
        prompt = [dict(m) for m in pair.prompt]  # tool calls and a tool turn's name kept
        if not prompt or prompt[-1]["role"] == "assistant":
            continue
        if max_prompt_chars is not None and sum(len(turn_text(m)) for m in prompt) > max_prompt_chars:
            continue
        key = json.dumps(prompt, sort_keys=True)
        if dedupe and key in seen:
            continue
        seen.add(key)
        rec: dict[str, Any] = {"prompt": prompt}
        if pair.id is not None:
            rec["id"] = pair.id
        if keep_chosen:
            rec["chosen"] = pair.chosen_text
        records.append(rec)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(records)
    records = records[skip:]
    if limit is not None:
        records = records[:limit]
    if output is not None:
        write_jsonl(output, records)
    return records


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def arithmetic_prompts(
    n: int, output: str | os.PathLike | None = None, *, seed: int = 0, low: int = 2, high: int = 30
) -> list[dict[str, Any]]:
    """Verifiable prompts ("What is 12 + 7? Reply with the number only.", answer "19") for an
    environment reward such as `exact_match` or `contains_answer`."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        a, b = rng.randint(low, high), rng.randint(low, high)
        records.append(
            {
                "id": f"add-{seed}-{i}",
                "prompt": [{"role": "user", "content": f"What is {a} + {b}? Reply with the number only."}],
                "answer": str(a + b),
            }
        )
    if output is not None:
        write_jsonl(output, records)
    return records
