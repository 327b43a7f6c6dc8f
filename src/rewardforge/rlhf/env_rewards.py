"""Built-in environment rewards for verifiable prompts (a dataset column `answer`).

Each follows TRL's reward-function signature: f(prompts, completions, answer, **kwargs) ->
one float per completion, or None where the row has no answer (TRL then leaves that function
out of the row's total). Write your own the same way; `rewardforge rlhf --env-reward
module:function` (or file.py:function) loads one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

_SPACES = re.compile(r"\s+")


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or the contents of its messages joined."""
    if isinstance(completion, str):
        return completion
    return "\n".join(str(m.get("content") or "") for m in completion)


def normalise_answer(text: Any) -> str:
    """Lower case, spaces collapsed, outer spaces and trailing punctuation (. ! ,) removed, the
    Unicode minus written as "-"; a number's trailing decimal zeros dropped (pandas' 5.0 for 5 is 5;
    2.50 is 2.5)."""
    if isinstance(text, float) and text.is_integer():
        text = int(text)
    out = _SPACES.sub(" ", str(text).replace("\u2212", "-")).strip().rstrip(".!,").strip().lower()
    if _DECIMAL.fullmatch(out):  # "5.0" (a CSV's float column) is 5, "2.50" is 2.5
        out = out.rstrip("0").rstrip(".")
    return out


_DECIMAL = re.compile(r"-?\d+\.\d+")


def _answers(answer: Sequence[Any] | None, n: int) -> list[str | None]:
    """One normalised answer per completion; a missing, NaN or blank one ("" or spaces, as a
    CSV's empty cell gives) is no answer (None): an empty target would match every completion."""
    if isinstance(answer, str | bytes):  # TRL repeats a column per completion: a list, never one text
        raise TypeError(
            f"answer must be a list with one answer per completion (TRL's column), got {type(answer).__name__}"
        )
    answers = list(answer) if answer is not None else [None] * n
    if len(answers) != n:  # zip would drop the completions past the shorter list
        raise ValueError(f"{len(answers)} answer(s) for {n} completion(s): give one answer per completion")
    return [_one_answer(a) for a in answers]


def _one_answer(answer: Any) -> str | None:
    if answer is None or (isinstance(answer, float) and math.isnan(answer)):
        return None
    return normalise_answer(answer) or None


def exact_match(prompts: Sequence[Any], completions: Sequence[Any], answer=None, **kwargs: Any):
    """1.0 if the normalised completion equals the normalised answer, else 0.0."""
    return [
        None if a is None else float(normalise_answer(completion_text(c)) == a)
        for c, a in zip(completions, _answers(answer, len(completions)))
    ]


def contains_answer(prompts: Sequence[Any], completions: Sequence[Any], answer=None, **kwargs: Any):
    """1.0 if the normalised answer appears in the completion as a whole word/number, else 0.0."""
    out = []
    for c, a in zip(completions, _answers(answer, len(completions))):
        if a is None:
            out.append(None)
            continue
        out.append(float(_whole(a).search(normalise_answer(completion_text(c))) is not None))
    return out


def _whole(target: str) -> re.Pattern[str]:
    """`target` as a whole word or number: not inside a longer one. A number is also not part of
    a negative number, a fraction or a number written with a comma (5 is not in -5, 3/5, 5,000
    or 1,5)."""
    before, after = r"(?<![\w.])", r"(?![\w]|\.\d)"
    if target[:1].isdigit():
        before += r"(?<!-)(?<!/)(?<!\d,)"
    if target[-1:].isdigit():
        after += r"(?![,/]\d)"
    body = re.escape(target)
    if target.lstrip("-").isdigit():
        body += r"(?:\.0+)?"  # 5.0 is 5
    elif _DECIMAL.fullmatch(target):
        body += "0*"  # 2.50 is 2.5
    return re.compile(before + body + after)


_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")


def complete_sentence(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any):
    """1.0 if the completion ends a sentence (. ! ? possibly followed by closing quotes or
    brackets), else 0.0: a reply that was finished, not cut off by the token limit. Needs no
    dataset column, so it applies to any prompt set (e.g. HH-RLHF prompts)."""
    return [float(_SENTENCE_END.search(completion_text(c).rstrip()) is not None) for c in completions]


BUILTIN_ENV_REWARDS = {
    "exact_match": exact_match,
    "contains_answer": contains_answer,
    "complete_sentence": complete_sentence,
}


# the prompt-record column each built-in env reward reads
BUILTIN_COLUMNS = {"exact_match": "answer", "contains_answer": "answer"}


def missing_column_problem(
    specs: Sequence[str], records: Sequence[dict[str, Any]], source: str, max_prompts: int | None = None
) -> str | None:
    """Why a built-in env reward cannot score any of these prompts (no record has its column:
    every value would be None, and a bonus run would train on the RM alone without a word)."""
    for spec in specs:
        column = BUILTIN_COLUMNS.get(spec)
        if column and records and all(_one_answer(r.get(column)) is None for r in records):
            return (
                f"--env-reward {spec} compares each completion with its prompt's {column!r}, and no "
                f"record of {source}{f' (--max-prompts {max_prompts})' if max_prompts else ''} has one "
                "(a blank or NaN one is none)"
            )
    return None


class EnvRewardError(ValueError):
    """An env reward that cannot be loaded, or that gave values no trainer can use."""


def load_env_reward(spec: str):
    """A reward function by name: a built-in (exact_match, contains_answer, complete_sentence), "pkg.module:func"
    or "path/to/file.py:func". A user's function is wrapped so that a wrong number or kind of
    values is an EnvRewardError naming it, not an IndexError deep in a trainer."""
    import importlib
    import importlib.util
    import os

    if spec in BUILTIN_ENV_REWARDS:
        return BUILTIN_ENV_REWARDS[spec]
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise EnvRewardError(
            f"--env-reward {spec!r}: give a built-in ({', '.join(BUILTIN_ENV_REWARDS)}), "
            "module:function or file.py:function"
        )
    if target.endswith(".py") and not os.path.isfile(target):
        raise FileNotFoundError(f"--env-reward {spec!r}: no such file {target}")
    try:
        if target.endswith(".py"):
            mod_name = "rewardforge_env_" + os.path.splitext(os.path.basename(target))[0]
            module_spec = importlib.util.spec_from_file_location(mod_name, target)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except Exception as exc:  # noqa: BLE001 - the user's module failing to import: say so in one line
        raise EnvRewardError(
            f"--env-reward {spec!r}: cannot import {target}: {type(exc).__name__}: {exc}"
        ) from None
    func = getattr(module, name, None)
    if not callable(func):
        raise EnvRewardError(f"--env-reward {spec!r}: {target} has no function {name!r}")
    return checked(func)


def callable_name(func: Any) -> str:
    """The name TRL logs a reward function under: its own, a partial's function's, or an
    instance's class name."""
    inner = getattr(func, "func", None)  # functools.partial
    return getattr(func, "__name__", None) or getattr(inner, "__name__", None) or type(func).__name__


def checked(func):
    """`func` returning one number (or None) per completion, checked: NaN reads as None (no value,
    as TRL reads it), numpy and torch numbers are numbers, and anything else, or an exception
    inside it, is an EnvRewardError naming the function (one line, not a trainer's traceback)."""
    import math

    name = callable_name(func)

    def call(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        try:
            values = func(prompts=prompts, completions=completions, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the user's code: said in one line, with its words
            raise EnvRewardError(f"env reward {name!r} raised {type(exc).__name__}: {exc}") from exc
        if isinstance(values, str | bytes):
            raise EnvRewardError(
                f"env reward {name!r} returned {type(values).__name__}, not a list of numbers"
            )
        try:
            values = list(values)
        except TypeError:
            raise EnvRewardError(
                f"env reward {name!r} returned {type(values).__name__}, not a list of numbers"
            ) from None
        if len(values) != len(completions):
            raise EnvRewardError(
                f"env reward {name!r} returned {len(values)} values for {len(completions)} completions"
            )
        out: list[float | None] = []
        for v in values:
            number = _number(v)
            if v is not None and number is None:
                raise EnvRewardError(
                    f"env reward {name!r} returned {type(v).__name__} {v!r}; expected a number or None"
                )
            if number is not None and math.isinf(number):
                raise EnvRewardError(
                    f"env reward {name!r} returned {number}; expected a finite number or None"
                )
            out.append(None if number is None or math.isnan(number) else number)
        return out

    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(func, "__doc__", None)
    return call


def _number(value: Any) -> float | None:
    """A Python, numpy or torch number as a float; None for None and for what is no number (a
    text, a bool: True is no reward)."""
    if value is None or isinstance(value, str | bytes | bytearray | memoryview | bool | complex):
        return None
    kind = str(getattr(value, "dtype", ""))
    if "bool" in kind or "complex" in kind:
        return None  # numpy's and torch's booleans and complex numbers
    if getattr(value, "ndim", 0):  # an array of one item: np.array([1.5]) and torch alike refused
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several numbers
        return None
