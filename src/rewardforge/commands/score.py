"""`rewardforge score`: score a file of (prompt, response) items with a reward model, streaming.

Input: any source `rewardforge.data` reads (.jsonl, .jsonl.gz, .json, .csv, .parquet, ...),
one item per record: `response` (text or chat messages; or `completion`, `messages`,
`conversations`, `text`), optional `prompt` (text or messages), optional `id`. Output: JSONL, one line per valid item in input order: {"id": ..., "score": ...}
when the item has an id, else {"location": "line 7", "score": ...}.

Records are read and scored in chunks (--chunk-size), so memory stays flat on any file size.
The output (and the rejects file) is written to a temporary file and renamed at the end: a
failed or interrupted run never leaves a partial file under the output name.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rewardforge.files import AtomicFile, commit_together

DESCRIPTION = """Score (prompt, response) items with a reward model; write one JSON line per item.

Input records: {"id": optional, "prompt": optional text or chat messages, "response": text or messages}.
The reply may also be TRL's "completion", a whole conversation in "messages" (or ShareGPT's
"conversations"), or a "text" (an HH-RLHF transcript is read as its turns).
An invalid item stops the run with exit code 2, naming the file, line and field; with --skip-invalid
it is written to the rejects file instead (source, location, field, reason, row) and the run goes on.

Examples:
  rewardforge score --model runs/rm --input items.jsonl --output scores.jsonl
  rewardforge score --model runs/rm --input items.parquet --output s.jsonl --batch-size 32 --skip-invalid
"""


def build_parser() -> argparse.ArgumentParser:
    from rewardforge.commands.checks import OneLineParser, integer, output_file_text, path_text

    p = OneLineParser(
        prog="rewardforge score",
        description=DESCRIPTION,
    )
    p.add_argument(
        "--model",
        required=True,
        type=path_text,
        help="reward model folder (saved by rewardforge or any one-output classifier)",
    )
    p.add_argument(
        "--input",
        required=True,
        type=path_text,
        help="items file: .jsonl, .jsonl.gz, .json, .csv, .parquet, ...; - reads JSONL from standard input",
    )
    p.add_argument(
        "--output",
        required=True,
        type=output_file_text,
        help="scores file (JSONL), written atomically; - or /dev/stdout streams the scores out",
    )
    p.add_argument(
        "--batch-size", type=integer(1), default=16, help="items per forward pass (default: %(default)s)"
    )
    p.add_argument(
        "--chunk-size",
        type=integer(1),
        default=256,
        help="items read and scored at a time (default: %(default)s)",
    )
    p.add_argument(
        "--skip-invalid", action="store_true", help="write invalid items to the rejects file and go on"
    )
    p.add_argument(
        "--rejects",
        default=None,
        type=output_file_text,
        help="rejects file with --skip-invalid (default: OUTPUT.rejected.jsonl)",
    )
    p.add_argument(
        "--summary",
        default=None,
        type=output_file_text,
        help="the run's record: its options, the model and how it reads text, counts (scored, rejected, "
        "cut) and score statistics; written with the scores (default: OUTPUT.summary.json; none when "
        "OUTPUT is a stream, unless named)",
    )
    p.add_argument(
        "--max-length", type=integer(1), default=None, help="tokens per scored text (default: the model's)"
    )
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="weights dtype")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


RESPONSE_FIELDS = ("response", "completion", "messages", "conversations", "text")


def _holds_a_pair(record: dict) -> bool:
    """Both `chosen` and `rejected` hold a reply (a non-blank text or messages): one side, or an
    empty one, is no pair, just a column that happens to have the name."""

    def reply(value: Any) -> bool:
        return (
            bool(value.strip()) if isinstance(value, str) else isinstance(value, list | dict) and bool(value)
        )

    return reply(record.get("chosen")) and reply(record.get("rejected"))


def _response_field(record: dict) -> str:
    """The field that holds the scored reply: ours, or TRL's prompt-completion (`completion`),
    conversation (`messages`, ShareGPT's `conversations`) and plain-text (`text`) formats."""
    from rewardforge.data.errors import RowError

    for name in RESPONSE_FIELDS:
        if record.get(name) is not None:
            if _holds_a_pair(record):  # UltraFeedback's `messages` is its chosen conversation
                raise RowError(
                    f"this looks like a preference pair ('chosen' and 'rejected' beside {name!r}): "
                    "`rewardforge eval --model M --data FILE` scores both sides of each pair; to score "
                    f"{name!r} alone, leave 'chosen' and 'rejected' out of the file",
                    name,
                )
            return name
    if record.get("chosen") is not None or record.get("rejected") is not None:
        raise RowError(
            "missing: this looks like a preference pair; `rewardforge eval --model M --data FILE` "
            "scores both sides of each pair (scores.jsonl in its output)",
            "response",
        )
    keys = ", ".join(sorted(map(str, record))[:12]) or "none"
    raise RowError(
        f"missing (found keys: {keys}; the reply can be in {', '.join(RESPONSE_FIELDS)})", "response"
    )


def parse_item(record: Any) -> tuple[list[dict], list[dict], str | int | None]:
    """(prompt messages, response messages, id) of one record; `RowError(reason, field)` if invalid.

    Prompts follow the training rules (a blank prompt text means no prompt; `system` and `tools`
    columns join the system turn). A response in the HH-RLHF transcript form is read as its
    turns, as training reads it: a `text` whenever it is one, a `response` or `completion` when
    it is a whole one (from a Human turn to an Assistant reply) that starts with the prompt."""
    from rewardforge.data.context import with_context
    from rewardforge.data.errors import RowError
    from rewardforge.data.transcripts import hh_turns
    from rewardforge.data.values import messages, prompt_messages, reply_text, response_problem, unicode_text
    from rewardforge.inference import at_start, hh_reply, prompt_and_response

    if not isinstance(record, dict):
        kind = "null" if record is None else type(record).__name__
        raise RowError(f"record is not a JSON object (got {kind})")
    item_id = record.get("id")
    if item_id == "":  # an empty CSV cell: no id, so the line is located instead
        item_id = None
    elif isinstance(item_id, float) and item_id.is_integer():  # an int column with nulls, via pandas
        item_id = int(item_id)
    if item_id is not None and (isinstance(item_id, bool) or not isinstance(item_id, str | int)):
        raise RowError(f"expected a string or an integer, got {type(item_id).__name__}", "id")
    name = _response_field(record)
    response = record[name]
    prompt = record.get("prompt")
    prompt_msgs = [] if prompt is None else prompt_messages(prompt, "prompt")
    if isinstance(response, str):
        text = unicode_text(response, name)
        turns = hh_turns(text) if name == "text" else hh_reply(text, prompt_msgs)  # None: a plain reply
        response_msgs = turns or [{"role": "assistant", "content": reply_text(prompt, text)}]
    elif isinstance(response, list | dict):
        response_msgs = messages(response, name)
        if not response_msgs:
            raise RowError("empty list of messages", name)
    else:
        raise RowError(f"expected a string or a list of messages, got {type(response).__name__}", name)
    problem = response_problem(response_msgs)  # what training refuses is refused here too
    if problem:
        raise RowError(problem, name)
    try:  # a whole conversation holds its prompt: read once, as RewardModel and the server do
        prompt_msgs, response_msgs = prompt_and_response(prompt_msgs, response_msgs)
    except ValueError:
        raise RowError(
            f"'{name}' is a whole conversation that does not start with 'prompt'; give one or the other",
            "prompt",
        ) from None
    # the `system` and `tools` columns, as training reads them
    prompt_msgs, response_msgs = at_start(prompt_msgs, response_msgs, lambda c: with_context(record, c))
    return prompt_msgs, response_msgs, item_id


def main(argv: list[str]) -> int:
    from rewardforge.commands.checks import (
        check_device,
        check_not_inside,
        check_output_file,
        is_stream,
        same_path,
        shown,
        usage_error,
    )
    from rewardforge.data.errors import DataError
    from rewardforge.data.readers import STDIN, check_stdin, split_local_spec
    from rewardforge.data.values import unscored_note

    args = build_parser().parse_args(argv)
    source = args.input
    local = not source.startswith("hf:") and source != STDIN
    if source == STDIN:
        check_stdin()  # before the model loads
    if local and not Path(split_local_spec(source)[0]).exists():
        raise DataError(source, "no such file or directory")
    output = Path(args.output)
    if local and same_path(output, source):
        raise usage_error("--output is the input file; choose another name")
    rejects = Path(args.rejects) if args.rejects else output.with_name(output.name + ".rejected.jsonl")
    if args.rejects and not args.skip_invalid:
        raise usage_error("--rejects only applies with --skip-invalid")
    if args.skip_invalid and not args.rejects and is_stream(output):
        raise usage_error(f"--output {shown(output)} is a stream: name the rejects file with --rejects FILE")
    if args.skip_invalid:
        # the rejects file replaces whatever is at its path: never the input or the scores
        if local and same_path(rejects, source):
            raise usage_error(f"--rejects {rejects} is the input file; choose another name")
        if same_path(rejects, output):
            raise usage_error(f"--rejects {rejects} is the --output file; choose another name")
    summary = Path(args.summary) if args.summary else None
    if summary is None and not is_stream(output):
        summary = output.with_name(output.name + ".summary.json")
    if summary is not None:
        taken = [("--output", output)] + ([("--rejects", rejects)] if args.skip_invalid else [])
        if local and same_path(summary, source):
            raise usage_error(f"--summary {summary} is the input file; choose another name")
        named = "--summary" if args.summary else "the summary file (default: OUTPUT.summary.json)"
        for option, path in taken:
            if same_path(summary, path):
                raise usage_error(f"{named} {summary} is the {option} file; choose another name")
    for path, option in ((output, "--output"), (rejects, "--rejects"), (summary, "--summary")):
        if path is None:
            continue
        if option == "--output" or option == "--summary" or args.skip_invalid:
            if same_path(path, args.model):
                raise usage_error(f"{option} {path} is the --model file; choose another name")
            check_not_inside(path, args.model, option, "--model")
    # before any work: a run must not score everything and then fail to write the result
    check_output_file(output, "--output")
    if args.skip_invalid:
        check_output_file(rejects, "--rejects")
    if summary is not None:
        check_output_file(summary, "--summary")
    check_device(args.device)

    from rewardforge.inference import loaded_quietly

    started = time.monotonic()
    model = loaded_quietly(args.model, max_length=args.max_length, device=args.device, dtype=args.dtype)
    stats = score_file(
        model,
        source,
        output,
        rejects if args.skip_invalid else None,
        args,
        summary=summary,
        started=started,
        argv=argv,
    )
    took = time.monotonic() - started
    msg = f"rewardforge score: {stats['scored']} items scored -> {output} ({took:.1f} s)"
    if args.skip_invalid:
        msg += f"; {stats['rejected']} rejected -> {rejects}"
    if summary is not None:
        msg += f"; summary -> {summary}"
    print(msg, file=sys.stderr)
    if stats.get("stopped"):
        print(
            f"[rewardforge] warning: reading {source} stopped at {stats['stopped']}; the items after it "
            "were not scored",
            file=sys.stderr,
        )
    if stats["prompt_cut"] or stats["response_cut"]:  # eval counts these too; a cut end is lost text
        print(
            f"[rewardforge] note: past max length {model.max_length}, {stats['prompt_cut']} item(s) had "
            f"their prompt cut (oldest turns first) and {stats['response_cut']} their response cut "
            "(its end is not scored)",
            file=sys.stderr,
        )
    if stats["reasoning_not_scored"]:
        print(f"[rewardforge] note: {unscored_note(stats['reasoning_not_scored'])}", file=sys.stderr)
    return 0


def run_summary(
    model: Any, source: str, args: argparse.Namespace, stats: dict[str, Any], seconds: float, argv: list[str]
) -> dict[str, Any]:
    """What a score run was and what it gave: its options, how the model read the text, the
    counts and the scores' statistics (the config and metrics every run writes beside its output)."""
    from rewardforge import __version__

    scored = stats["scored"]
    mean = stats["score_sum"] / scored if scored else None
    variance = max(stats["score_sq_sum"] / scored - mean * mean, 0.0) if scored else None
    return {
        "rewardforge_version": __version__,
        "command": ["rewardforge", "score", *argv],
        "input": source,
        "model": {
            "path": args.model,
            "format": model.text_format.to_dict(),
            "max_length": model.max_length,
            "dtype": args.dtype,
        },
        "options": {k: v for k, v in vars(args).items() if k not in ("model", "input")},
        "counts": {k: stats[k] for k in ("records", "scored", "rejected", "prompt_cut", "response_cut")}
        | {"reasoning_not_scored": dict(stats["reasoning_not_scored"])},
        "stopped_reading": stats.get("stopped"),  # where a damaged source could not be read on
        "scores": {
            "mean": mean,
            "std": None if variance is None else math.sqrt(variance),
            "min": stats["score_min"] if scored else None,
            "max": stats["score_max"] if scored else None,
        },
        "seconds": round(seconds, 2),
    }


def score_file(
    model: Any,
    source: str,
    output: Path,
    rejects: Path | None,
    args: argparse.Namespace,
    *,
    summary: Path | None = None,
    started: float | None = None,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """Stream `source` through `model` into `output` (and invalid rows into `rejects`, if given;
    the run's summary into `summary`, if given: all three are put in place together)."""
    from tqdm.auto import tqdm

    from rewardforge.data.errors import DataError, RowError
    from rewardforge.data.loader import RejectedRow, json_line, jsonable
    from rewardforge.data.readers import ReadProblem, iter_records, read_records
    from rewardforge.data.values import counting_unscored

    out: AtomicFile | None = None
    rej: AtomicFile | None = None
    written: AtomicFile | None = None  # the summary
    stats: dict[str, Any] = {"records": 0, "scored": 0, "rejected": 0, "prompt_cut": 0, "response_cut": 0}
    stats.update(score_sum=0.0, score_sq_sum=0.0, score_min=math.inf, score_max=-math.inf)
    stats["reasoning_not_scored"] = unscored = Counter()  # by field, as training counts it
    started = time.monotonic() if started is None else started
    first_reject: RejectedRow | None = None
    chunk: list[tuple[str, Any, list[int]]] = []  # (location, id, token ids)

    def bad(location: str, field: str | None, reason: str, raw: Any) -> None:
        nonlocal first_reject
        if rej is None:  # (no --skip-invalid)
            raise DataError(source, reason, location=location, field=field)
        row = RejectedRow(source, location, field, reason, jsonable(raw))
        first_reject = first_reject or row
        rej.write(json_line(asdict(row)))
        stats["rejected"] += 1

    def flush() -> None:
        if not chunk:
            return
        scores = model.score_token_ids([ids for _, _, ids in chunk], batch_size=args.batch_size)
        for (location, item_id, _), s in zip(chunk, scores):
            if not math.isfinite(s):
                from rewardforge.modeling import ModelLoadError

                raise ModelLoadError(
                    f"the model gave a non-finite score ({s}) for {source}:{location}; "
                    "its weights may be broken or the dtype too narrow (try --dtype fp32)"
                )
            out.write(
                json_line(
                    {"id": item_id, "score": s} if item_id is not None else {"location": location, "score": s}
                )
            )
            stats["score_sum"] += s
            stats["score_sq_sum"] += s * s
            stats["score_min"] = min(stats["score_min"], s)
            stats["score_max"] = max(stats["score_max"], s)
        stats["scored"] += len(chunk)
        bar.update(len(chunk))
        chunk.clear()

    records = (
        read_records(source, default_split=None) if rejects is not None else iter_records(source, None, None)
    )
    bar = tqdm(unit=" items", desc="scoring", disable=True if args.no_progress else None, dynamic_ncols=True)
    try:
        # opened inside the try: a signal any time after leaves no temporary file behind
        out = AtomicFile(output)
        rej = AtomicFile(rejects) if rejects is not None else None
        with counting_unscored() as in_item:
            for location, record in records:
                stats["records"] += 1
                if isinstance(record, ReadProblem):  # only the lenient reader (--skip-invalid) yields these
                    bad(location, None, record.reason, record.raw)
                    if record.fatal:  # the rest of the source cannot be read: said, not only rejected
                        stats["stopped"] = f"{location}: {record.reason}"
                        break
                    continue
                in_item.clear()
                try:
                    prompt, response, item_id = parse_item(record)
                except RowError as e:
                    bad(location, e.field, e.reason, record)
                    continue
                try:
                    tokens = model.tokenize(prompt, response)
                except Exception as e:  # noqa: BLE001 - a template that cannot render this item
                    bad(
                        location,
                        None,
                        f"cannot be formatted for this model ({type(e).__name__}: {e})",
                        record,
                    )
                    continue
                unscored.update(in_item)
                stats["prompt_cut"] += tokens.prompt_truncated
                stats["response_cut"] += tokens.response_truncated
                chunk.append((location, item_id, tokens.ids[0]))
                if len(chunk) >= args.chunk_size:
                    flush()
        flush()
        if stats["records"] == 0:
            raise DataError(source, "empty: no records at all")
        if stats["scored"] == 0 and first_reject is not None:
            raise DataError(
                source,
                f"no valid items: all {stats['rejected']} are invalid; the first: {first_reject.reason}",
                location=first_reject.location,
                field=first_reject.field,
            )
        if summary is not None:
            written = AtomicFile(summary)
            about = run_summary(model, source, args, stats, time.monotonic() - started, argv or [])
            written.write(json.dumps(about, indent=2, default=str) + "\n")
        # the scores, the rejects and the summary: all new
        commit_together([f for f in (out, rej, written) if f is not None])
    except BaseException:
        for file in (out, rej, written):
            if file is not None:
                file.discard()
        raise
    finally:
        bar.close()
    return stats
