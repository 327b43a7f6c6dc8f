"""`rewardforge eval` without the command line: load models and data, score every pair, compute metrics.

The flow for each model (loaded one at a time) and each data set:

0. the models and data sets are resolved and read first (`inputs`), so bad input fails before
   any model runs;
1. every pair is tokenized with `tokenize_pair` (the same truncation rule as training);
2. all pairs are scored in length-sorted batches (`scoring.score_pairs`): decoder models run
   each pair as one row holding the shared prompt once (checked against plain scoring first);
   other models run chosen and rejected as separate sequences through
   `RewardModel.score_token_ids`. A pair whose two sequences are the same tokens (possible after
   truncation) is an exact tie, never a coin flip of padding noise;
3. the metrics come from `analysis.compute_metrics` over `metrics` (the code training uses too).

With diagnostics, the swapped pairs (rejected in the chosen role) are tokenized and scored
again by the model, for real, and the result is compared with the unswapped scores
(`analysis.swap_diagnostic`). The files are written from `documents`.

Nothing here prints except the tqdm progress bars; the CLI front is `rewardforge.commands.eval`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from rewardforge.evaluation.analysis import compute_metrics, diagnostics, swap_diagnostic
from rewardforge.evaluation.inputs import (
    DataSet,
    ModelSpec,
    load_datasets,
    load_model,
    resolve_models,
    split_name,
    usage_error,
)
from rewardforge.evaluation.scoring import (
    SHARE_TOLERANCE,
    PairScores,
    SharedPrefixScorer,
    prefix_sharing_unsupported,
    score_pairs,
)


@dataclass
class EvalOptions:
    models: list[str]
    data: list[str]
    batch_size: int = 16
    max_length: int | None = None
    columns: str | None = None
    processor: str | None = None
    skip_invalid: bool = False
    limit: int | None = None
    diagnostics: bool = False
    untrained: bool = False
    seed: int = 42
    bootstrap: int = 1000
    dtype: str = "fp32"
    device: str | None = None
    progress: bool = True
    share_prefix: bool = True


@dataclass
class RunResult:
    """One (model, data set) evaluation, with what the report needs besides the metrics."""

    model: str
    data: str
    metrics: dict[str, Any]
    scores: PairScores


@dataclass
class EvalRun:
    options: EvalOptions
    models: list[dict[str, Any]]
    datasets: list[DataSet]
    results: list[RunResult]
    timing: dict[str, Any]

    @property
    def several(self) -> bool:
        return len(self.models) > 1 or len(self.datasets) > 1

    def result(self, model: str, data: str) -> RunResult:
        return next(r for r in self.results if r.model == model and r.data == data)


def validate(options: EvalOptions) -> None:
    if not options.models:
        raise usage_error("give at least one --model")
    if not options.data:
        raise usage_error("give at least one --data")
    if options.batch_size < 1:
        raise usage_error(f"--batch-size must be at least 1, got {options.batch_size}")
    if options.max_length is not None and options.max_length < 8:
        raise usage_error(f"--max-length must be at least 8 tokens, got {options.max_length}")
    if options.limit is not None and options.limit < 1:
        raise usage_error(f"--limit must be a positive number of pairs, got {options.limit}")
    if options.bootstrap < 0:
        raise usage_error(f"--bootstrap must be 0 or more, got {options.bootstrap}")
    if options.columns and options.processor:
        raise usage_error("--columns and --processor cannot be combined: a processor maps its own fields")
    if options.dtype not in {"fp32", "bf16"}:
        raise usage_error(f"--dtype must be fp32 or bf16, got {options.dtype!r}")
    if sum(split_name(spec)[1] == "-" for spec in options.data) > 1:  # the second would find it read
        raise usage_error("--data -: standard input can be read once; give it to one --data only")


def prepare(options: EvalOptions) -> tuple[list[ModelSpec], list[DataSet], float]:
    """Everything that can fail on bad input, before any model runs: specs, then data."""
    validate(options)
    t0 = time.perf_counter()
    specs = resolve_models(options.models, untrained=options.untrained)
    datasets = load_datasets(
        options.data,
        columns=options.columns,
        processor=options.processor,
        skip_invalid=options.skip_invalid,
        limit=options.limit,
        progress=options.progress,
    )
    return specs, datasets, time.perf_counter() - t0


def sharing_info(sharer: SharedPrefixScorer | None, why_not: str | None) -> dict[str, Any]:
    """What metrics.json says about prefix sharing for one model."""
    if sharer is None or sharer.check is None:
        return {"used": False, "why_not": why_not, "check_max_rel_diff": None}
    ok = sharer.check <= SHARE_TOLERANCE
    if ok:
        reason = None
    elif sharer.error:
        reason = f"the check could not run ({sharer.error})"
    else:
        reason = f"the check found a relative difference of {sharer.check:.2e} (> {SHARE_TOLERANCE})"
    return {
        "used": ok,
        "why_not": reason,
        "check_max_rel_diff": sharer.check if math.isfinite(sharer.check) else None,
    }


def evaluate(
    options: EvalOptions, specs: list[ModelSpec], datasets: list[DataSet], *, on_model_loaded=None
) -> EvalRun:
    """Load each model in turn, score every data set with it, and compute the metrics."""
    timing: dict[str, Any] = {"models": {}}
    results: list[RunResult] = []
    model_infos: list[dict[str, Any]] = []
    for spec in specs:
        t0 = time.perf_counter()
        lm = load_model(
            spec, seed=options.seed, max_length=options.max_length, dtype=options.dtype, device=options.device
        )
        model_infos.append(lm.info)
        if on_model_loaded is not None:
            on_model_loaded(lm.info)
        mt: dict[str, Any] = {"load": time.perf_counter() - t0, "data": {}}
        sharer = None
        why_not = (
            prefix_sharing_unsupported(lm.rm) if options.share_prefix else "turned off (--no-share-prefix)"
        )
        if why_not is None:
            sharer = SharedPrefixScorer(lm.rm)
        for ds in datasets:
            desc = f"{spec.name} / {ds.name}" if (len(specs) > 1 or len(datasets) > 1) else "score"
            ps = score_pairs(
                lm.rm,
                ds.pairs,
                batch_size=options.batch_size,
                desc=desc,
                progress=options.progress,
                keep_ids=options.diagnostics,
                sharer=sharer,
            )
            t1 = time.perf_counter()
            m = compute_metrics(
                ds.pairs,
                ps,
                n_bootstrap=options.bootstrap,
                seed=options.seed,
                beta=getattr(lm.rm, "beta", 1.0),
            )
            m["scoring"] = {
                "method": ps.method,
                "tokens_run": ps.tokens_run,
                "tokens_total": ps.tokens_total,
            }
            dt: dict[str, Any] = {
                "tokenize": ps.seconds_tokenize,
                "score": ps.seconds_score,
                "metrics": time.perf_counter() - t1,
            }
            if options.diagnostics:
                swap = swap_diagnostic(
                    lm.rm,
                    ds.pairs,
                    ps,
                    batch_size=options.batch_size,
                    progress=options.progress,
                    sharer=sharer,
                )
                m["diagnostics"] = diagnostics(m, swap, ps, ds.pairs)
                dt["swap"] = swap["seconds"]
            ps.chosen_ids = ps.rejected_ids = None
            results.append(RunResult(spec.name, ds.name, m, ps))
            mt["data"][ds.name] = dt
        timing["models"][spec.name] = mt
        lm.info["prefix_sharing"] = sharing_info(sharer, why_not)
        del lm
    return EvalRun(options, model_infos, datasets, results, timing)
