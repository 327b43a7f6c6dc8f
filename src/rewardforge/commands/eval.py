"""`rewardforge eval`: score preference pairs with one or more reward models and report.

Writes into --output: scores.jsonl (one line per pair), metrics.json, report.html (one
self-contained page) and eval_config.json (the resolved options), each atomically, and
prints a summary table. The work is done by `rewardforge.evaluation.runner`; the page by
`rewardforge.evaluation.report`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from rewardforge.commands.checks import EVAL_FILES

DESCRIPTION = """Evaluate reward models on preference pairs: accuracy (ties count half) with a 95%
bootstrap interval, margins, BT log-loss, AUROC, calibration (symmetrised ECE), length bias,
per-category accuracy and truncation counts; a self-contained HTML report.

Model specs:
  PATH | HUB_ID | FILE.gguf      a reward model (a folder saved by `rewardforge train`, or any
                                 one-output sequence classifier with a trained head)
  base:PATH                      the base model with a freshly initialised score head (seeded
                                 with --seed): the "before training" figure
  NAME=SPEC                      the same, shown as NAME (also for --data)
Data specs: any file the training data layer reads (.jsonl, .jsonl.gz, .json, .parquet, .csv,
a saved `datasets` folder, hf:ORG/NAME[:split]) or builtin:test / builtin:train. A source with
several splits (a saved DatasetDict, a JSON object of lists) needs one named: PATH:SPLIT.

Examples:
  rewardforge eval --model runs/rm --data dev.jsonl --output runs/rm/eval
  rewardforge eval --model runs/rm --untrained --diagnostics --data dev.jsonl.gz --output eval/
  rewardforge eval --model a=runs/a --model b=runs/b --data dev.jsonl --data other.csv --output cmp/
"""


def _resamples(text: str) -> int:
    """--bootstrap: a 95% interval from a handful of resamples would be noise presented as a range."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value != 0 and not 100 <= value <= MAX_RESAMPLES:
        raise argparse.ArgumentTypeError(
            f"expected 0 (no interval) or 100 to {MAX_RESAMPLES} resamples, got {value}"
        )
    return value


MAX_RESAMPLES = 100_000  # more only costs memory (a resample matrix of pairs x resamples)


def _refuse_writing_over_inputs(out: Path, data: list[str]) -> None:
    """The files eval writes (or removes) must not be one of its data files."""
    from rewardforge.commands.checks import same_path
    from rewardforge.data.readers import split_local_spec
    from rewardforge.evaluation.inputs import split_name
    from rewardforge.training.run import UsageError

    for spec in data:
        path, _ = split_local_spec(split_name(spec)[1])  # NAME=PATH:SPLIT
        if not os.path.exists(path):
            continue
        for name in EVAL_FILES:
            if same_path(path, out / name):
                raise UsageError(
                    f"--data {spec} is {out / name}, which eval writes: move the data or choose another --output"
                )


def _check_output_files(out: Path, written: list[str]) -> None:
    """Before the scoring, for the files this run writes (the others it only removes): one that
    is a link to a closed /dev/stdout, say, and two that are one file (a link, or /dev/stdout
    redirected into metrics.json), where one would replace the other."""
    from rewardforge.commands.checks import check_output_file, same_path
    from rewardforge.training.run import UsageError

    for name in written:
        if (out / name).is_symlink():
            check_output_file(out / name, "--output")
    for i, first in enumerate(written):
        for second in written[i + 1 :]:
            if same_path(out / first, out / second):
                raise UsageError(
                    f"--output {out}: {first} and {second} are one file there (a link?), and eval "
                    "writes both: remove the link or choose another --output"
                )


def build_parser() -> argparse.ArgumentParser:
    from rewardforge.commands.checks import OneLineParser, integer, path_text

    p = OneLineParser(prog="rewardforge eval", description=DESCRIPTION)
    p.add_argument(
        "--model", action="append", default=[], metavar="SPEC", help="Model to evaluate (repeat for several)."
    )
    p.add_argument(
        "--data", action="append", default=[], metavar="SPEC", help="Preference data (repeat for several)."
    )
    p.add_argument(
        "--output", required=True, type=path_text, metavar="DIR", help="Folder for the outputs (created)."
    )
    p.add_argument("--batch-size", type=int, default=16, help="Sequences per forward pass (default 16).")
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="Token budget per sequence (default: the one the model was trained with, else the "
        "tokenizer's limit, at most 4096). Prompts lose their oldest turns first.",
    )
    p.add_argument(
        "--columns",
        default=None,
        help="Rename fields: prompt=question,chosen=good,rejected=bad (prompt=context+question reads two columns as one; ignore=notes drops a column)",
    )
    p.add_argument(
        "--processor",
        default=None,
        help="Your own record parser: path/to/file.py:ClassName or module:ClassName.",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="Drop invalid rows (counted, written to rejected_rows.jsonl) instead of stopping.",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="Use only the first N pairs of each data set, in whole records: a record giving several "
        "pairs (RewardBench 2's) is never cut, so it stops before a record that would go past N, "
        "except that the first record is always read whole.",
    )
    p.add_argument(
        "--diagnostics",
        action="store_true",
        help="Shortcut checks: the length-only baseline, and every pair re-scored with chosen and "
        "rejected swapped (must mirror exactly).",
    )
    p.add_argument(
        "--untrained",
        action="store_true",
        help="Also evaluate, before each trained model, its base model (from its rewardforge.json) "
        "with a fresh score head.",
    )
    p.add_argument(
        "--seed",
        type=integer(0, 2**32 - 1),
        default=42,
        help="Seed of fresh score heads and of the bootstrap.",
    )
    p.add_argument(
        "--bootstrap",
        type=_resamples,
        default=1000,
        help="Bootstrap resamples for the 95%% CI: 0 (none), or 100 to 100000 (default: %(default)s).",
    )
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="Weight dtype.")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu).")
    p.add_argument(
        "--no-share-prefix",
        action="store_true",
        help="Decoder models: score chosen and rejected as separate sequences instead of one row "
        "that holds their common prompt once (slower; the scores agree to float rounding).",
    )
    p.add_argument("--no-report", action="store_true", help="Skip report.html (plots take a few seconds).")
    p.add_argument("--quiet", action="store_true", help="No progress bars.")
    return p


def parse(argv: list[str]):
    from rewardforge.evaluation.runner import EvalOptions
    from rewardforge.training.run import UsageError

    parser = build_parser()
    # The parser exits 2 itself with one line on unknown or malformed options (OneLineParser);
    # a missing --model/--data becomes our own message.
    args = parser.parse_args(argv)
    if not args.model:
        raise UsageError("give at least one --model (see rewardforge eval --help)")
    if not args.data:
        raise UsageError("give at least one --data (see rewardforge eval --help)")
    options = EvalOptions(
        models=args.model,
        data=args.data,
        batch_size=args.batch_size,
        max_length=args.max_length,
        columns=args.columns,
        processor=args.processor,
        skip_invalid=args.skip_invalid,
        limit=args.limit,
        diagnostics=args.diagnostics,
        untrained=args.untrained,
        seed=args.seed,
        bootstrap=args.bootstrap,
        dtype=args.dtype,
        device=args.device,
        progress=not args.quiet,
        share_prefix=not args.no_share_prefix,
    )
    return args, options


def main(argv: list[str]) -> int:
    from rewardforge.commands.checks import check_device, check_output_dir, held_output_dir, holds_model
    from rewardforge.training.run import UsageError

    args, options = parse(argv)
    out = Path(args.output)

    if args.output == "-":  # it made a folder named "-"
        raise UsageError("--output is a folder for eval's files; - (standard output) cannot hold them")
    check_output_dir(out)  # a read-only place fails now, not after the scoring

    if holds_model(out):
        # A model folder: its metrics.json (training) would be overwritten by eval's.
        raise UsageError(f"--output {out} holds a model; write the evaluation to another folder")
    _refuse_writing_over_inputs(out, args.data)
    check_device(args.device)
    # a run stopped by a model or data that fails to load leaves no empty folder behind
    with held_output_dir(out, single_process=True):
        return _evaluate_into(out, args, options, argv)


def _evaluate_into(out: Path, args: argparse.Namespace, options: Any, argv: list[str]) -> int:
    """Load, score, and write every document together into `out` (held by the caller)."""
    from rewardforge.evaluation import report
    from rewardforge.evaluation.documents import config_document, dumps, metrics_document, score_lines
    from rewardforge.evaluation.runner import evaluate, prepare
    from rewardforge.files import write_together

    started = time.perf_counter()
    specs, datasets, load_seconds = prepare(options)
    config = config_document(options, argv, specs, datasets)
    for ds in datasets:
        extra = ""
        if ds.rejected:
            from rewardforge.data import describe_rejected

            extra = f", {len(ds.rejected)} invalid rows skipped ({describe_rejected(ds.rejected)})"
        print(f"[rewardforge] data {ds.name}: {len(ds.pairs)} pairs ({ds.shape}){extra}", file=sys.stderr)
    rejected = [row for ds in datasets for row in ds.rejected]
    written = (
        ["scores.jsonl", "metrics.json"] + ([] if args.no_report else ["report.html"]) + ["eval_config.json"]
    )
    if rejected:
        written.append("rejected_rows.jsonl")
    _check_output_files(out, written)

    def loaded(info):
        print(
            f"[rewardforge] model {info['name']}: {info['spec']} (score head {info['score_head']}, "
            f"max length {info['max_length']})",
            file=sys.stderr,
        )

    run = evaluate(options, specs, datasets, on_model_loaded=loaded)
    run.timing["load_data"] = load_seconds
    t0 = time.perf_counter()
    page = None if args.no_report else report.build_html(run, config["command"])
    run.timing["report"] = time.perf_counter() - t0
    run.timing["total"] = time.perf_counter() - started
    # Every document is built first and written together (renamed into place with Ctrl-C/SIGTERM
    # held): a run that stops leaves an earlier run's files as they were, never half of each.
    from rewardforge.data import rejected_text

    write_together(
        {
            out / "scores.jsonl": "\n".join(score_lines(run)) + "\n",
            out / "report.html": page,  # None: an earlier run's report would describe other results
            out / "metrics.json": dumps(metrics_document(run)),
            out / "rejected_rows.jsonl": rejected_text(rejected) if rejected else None,
            out / "eval_config.json": dumps(config),
        }
    )

    print(report.console_table(run))
    print(f"[rewardforge] wrote {', '.join(written)} to {out}")
    return 0
