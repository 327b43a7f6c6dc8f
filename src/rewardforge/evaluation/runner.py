"""`rewardforge eval` without the command line: load models and data, score every pair, compute metrics.

The flow for each model (loaded one at a time) and each data set:

1. every pair is tokenized with `tokenize_pair` (the same truncation rule as training);
2. all pairs are scored in length-sorted batches (`rewardforge.evaluation.scoring`): decoder
   models run each pair as one row holding the shared prompt once (checked against plain
   scoring first); other models run chosen and rejected as separate sequences through
   `RewardModel.score_token_ids`. A pair whose two sequences are the same tokens (possible after
   truncation) is an exact tie, never a coin flip of padding noise;
3. the metrics come from `rewardforge.evaluation.metrics` (the code training uses too).

With diagnostics, the swapped pairs (rejected in the chosen role) are tokenized and scored
again by the model, for real, and the result is compared with the unswapped scores.

Nothing here prints except the tqdm progress bars; the CLI front is `rewardforge.commands.eval`.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardforge.data.types import PreferencePair
from rewardforge.evaluation.metrics import (
    accuracy_by_length_bucket,
    most_confidently_wrong,
    pair_metrics,
    pair_outcomes,
    paired_sign_test,
)
from rewardforge.evaluation.scoring import (
    SHARE_TOLERANCE,
    SharedPrefixScorer,
    prefix_sharing_unsupported,
    score_sequences,
)

__all__ = [
    "SHARE_TOLERANCE",
    "DataSet",
    "EvalOptions",
    "EvalRun",
    "ModelSpec",
    "PairScores",
    "RunResult",
    "SharedPrefixScorer",
    "compute_metrics",
    "evaluate",
    "load_model",
    "prefix_sharing_unsupported",
    "prepare",
    "score_pairs",
    "score_sequences",
]

UNCATEGORIZED = "uncategorized"
EXCERPT_CHARS = 160
LENGTH_UNIT = "characters"
WRONG_SHOWN = 10
SIGNIFICANCE = 0.025  # one-sided: the lower edge of a 95% interval


def usage_error(message: str) -> Exception:
    """A `rewardforge.training.run.UsageError` (imported lazily: it pulls in transformers)."""
    from rewardforge.training.run import UsageError

    return UsageError(message)


# --------------------------------------------------------------------------- specs and names


@dataclass
class ModelSpec:
    """One model to evaluate. `untrained`: the base model with a freshly initialised score head."""

    spec: str  # what the user wrote (or what --untrained derived)
    path: str  # path / hub id / .gguf handed to load_reward_model
    untrained: bool = False
    name: str = ""
    max_length: int | None = None  # an override inherited from the trained model (--untrained)
    derived_from: str | None = None  # --untrained: the trained model this base belongs to


@dataclass
class DataSet:
    name: str
    spec: str
    pairs: list[PreferencePair]
    shape: str
    source: str
    fingerprint: str
    rejected: list[Any] = field(default_factory=list)
    skipped_by_processor: int = 0

    @property
    def has_categories(self) -> bool:
        return any(p.category is not None for p in self.pairs)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": self.spec,
            "source": self.source,
            "shape": self.shape,
            "pairs": len(self.pairs),
            "rejected_rows": len(self.rejected),
            "skipped_by_processor": self.skipped_by_processor,
            "fingerprint": self.fingerprint,
            "has_categories": self.has_categories,
        }


_NAME_RE = re.compile(r"^([A-Za-z0-9_.-]+)=(.+)$")


def split_name(spec: str) -> tuple[str | None, str]:
    """`NAME=SPEC` gives an explicit display name, unless the whole string is an existing path
    (or an existing path with a `:SPLIT`)."""
    from rewardforge.data.readers import split_local_spec

    m = _NAME_RE.match(spec)
    if m and not os.path.exists(split_local_spec(spec)[0]):
        return m.group(1), m.group(2)
    return None, spec


def _base_name(spec: str) -> str:
    for prefix in ("base:", "hf:", "builtin:"):
        if spec.startswith(prefix):
            inner = _base_name(spec[len(prefix) :])
            return f"{prefix[:-1]}:{inner}" if prefix != "hf:" else inner
    name = os.path.basename(os.path.normpath(spec)) or spec
    for ext in (".gz", ".jsonl", ".json", ".parquet", ".csv", ".gguf"):
        if name.endswith(ext) and len(name) > len(ext):
            name = name[: -len(ext)]
    return name


def unique_names(specs: list[str], explicit: list[str | None]) -> list[str]:
    """Short display names: the explicit one, else the base name, widened with parent folders
    (then numbered) until every name is distinct."""
    given = [e for e in explicit if e]
    if twice := sorted({e for e in given if given.count(e) > 1}):
        raise usage_error(
            f"the name {twice[0]!r} is given to two specs; names label results, so each must differ"
        )
    names = [e or _base_name(s) for e, s in zip(explicit, specs)]
    for depth in (2, 3):
        dupes = {n for n in names if names.count(n) > 1}
        if not dupes:
            return names
        for i, n in enumerate(names):
            if n in dupes and explicit[i] is None and not specs[i].startswith(("base:", "builtin:", "hf:")):
                parts = Path(os.path.normpath(specs[i])).parts
                names[i] = "/".join(parts[-depth:]) if len(parts) >= depth else n
    seen: dict[str, int] = {}
    out = []
    for n, given in zip(names, explicit):
        if names.count(n) > 1 and not given:  # a name the user gave is kept; derived ones are numbered
            seen[n] = seen.get(n, 0) + 1
            out.append(f"{n}#{seen[n]}")
        else:
            out.append(n)
    return out


def _looks_like_path(spec: str) -> bool:
    """A local path rather than a Hub id (ORG/NAME): then a missing one is reported at once."""
    if spec.startswith((".", "/", "~")):
        return True
    return os.sep in spec and not re.match(r"^[\w.-]+/[\w.-]+$", spec)


def _check_model_exists(path: str) -> None:
    from rewardforge.modeling import ModelLoadError

    if path.endswith(".gguf") and not os.path.isfile(path):
        raise ModelLoadError(f"GGUF file not found: {path}")
    if _looks_like_path(path) and not os.path.exists(path):
        raise ModelLoadError(f"model not found: {path}")


def _trained_meta(path: str) -> dict[str, Any]:
    from rewardforge.modeling import read_meta

    return read_meta(path) if os.path.isdir(path) else {}


def resolve_models(model_args: list[str], *, untrained: bool) -> list[ModelSpec]:
    """Model specs from `--model` values (`PATH`, `base:PATH`, `NAME=...`) and `--untrained`.

    `--untrained` adds, before each trained model, the base model it was trained from (named in
    its rewardforge.json) with a fresh score head: the "before" figure beside the "after" one.
    """
    specs: list[ModelSpec] = []
    explicit: list[str | None] = []
    seen_bases: set[str] = set()
    for raw in model_args:
        name, spec = split_name(raw)
        is_base = spec.startswith("base:")
        path = spec[len("base:") :] if is_base else spec
        if not path:
            raise usage_error(f"--model {raw!r}: empty model path")
        _check_model_exists(path)
        meta = _trained_meta(path)
        if is_base and meta.get("base_model"):
            raise usage_error(
                f"--model {raw!r}: {path} is a trained reward model, not a base model; its base is "
                f"{meta['base_model']!r} (use --untrained to evaluate it beside the trained one)"
            )
        if untrained and not is_base:
            base = meta.get("base_model")
            if not base:
                raise usage_error(
                    f"--untrained: {path} has no rewardforge.json naming its base model; "
                    "give the base explicitly as --model base:PATH"
                )
            key = os.path.abspath(base) if os.path.exists(base) else base
            if key not in seen_bases:
                seen_bases.add(key)
                _check_model_exists(base)
                specs.append(
                    ModelSpec(
                        spec=f"base:{base}",
                        path=base,
                        untrained=True,
                        max_length=meta.get("max_length"),
                        derived_from=spec,
                    )
                )
                explicit.append(None)
        if is_base:
            key = os.path.abspath(path) if os.path.exists(path) else path
            seen_bases.add(key)
        specs.append(ModelSpec(spec=spec, path=path, untrained=is_base))
        explicit.append(name)
    for s, n in zip(specs, unique_names([s.spec for s in specs], explicit)):
        s.name = n
    return specs


# --------------------------------------------------------------------------- data


def load_dataset(
    spec: str,
    name: str,
    *,
    columns: str | None = None,
    processor: str | None = None,
    skip_invalid: bool = False,
    limit: int | None = None,
) -> DataSet:
    """Read one data set through the data layer (any format), or `builtin:train|test`."""
    from rewardforge.data import DataError, load_pairs, parse_columns

    if spec.startswith("builtin:"):
        from rewardforge.builtin import builtin_pairs

        split = spec[len("builtin:") :] or "test"
        if split not in {"train", "test"}:
            raise usage_error(f"--data {spec!r}: the built-in set has the splits 'train' and 'test'")
        pairs = builtin_pairs(split)[:limit] if limit else builtin_pairs(split)
        from rewardforge.data import fingerprint

        return DataSet(name, spec, pairs, "builtin", spec, fingerprint(pairs))
    try:
        mapping = parse_columns(columns) if columns else None
        loaded = load_pairs(
            spec,
            columns=mapping,
            processor=processor,
            skip_invalid=skip_invalid,
            limit=limit,
            default_split=None,  # evaluating on a 'train' split nobody named would mislead
        )
    except DataError:
        raise
    except ValueError as e:  # option problems: column mapping, processor reference, limit
        raise usage_error(str(e)) from None
    return DataSet(
        name=name,
        spec=spec,
        pairs=loaded.pairs,
        shape=loaded.shape + loaded.reading_notes(),
        source=loaded.source,
        fingerprint=loaded.fingerprint,
        rejected=list(loaded.rejected),
        skipped_by_processor=loaded.skipped_by_processor,
    )


def load_datasets(data_args: list[str], **kwargs: Any) -> list[DataSet]:
    parsed = [split_name(d) for d in data_args]
    names = unique_names([s for _, s in parsed], [n for n, _ in parsed])
    return [load_dataset(spec, name, **kwargs) for (_, spec), name in zip(parsed, names)]


# --------------------------------------------------------------------------- models


def reinit_head(model: Any, seed: int) -> None:
    """A fresh score head: normal(0, initializer_range) weights, zero bias, from `seed`."""
    import torch
    from torch import nn

    from rewardforge.modeling import head_module_names

    std = float(getattr(model.config, "initializer_range", 0.02) or 0.02)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name in head_module_names(model):
            for module in getattr(model, name).modules():
                if isinstance(module, nn.Linear):
                    module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
                    if module.bias is not None:
                        module.bias.zero_()


@dataclass
class LoadedEvalModel:
    spec: ModelSpec
    rm: Any  # rewardforge.inference.RewardModel
    info: dict[str, Any]


def load_model(
    spec: ModelSpec, *, seed: int, max_length: int | None, dtype: str = "fp32", device: str | None = None
) -> LoadedEvalModel:
    """Load one model. A base model (`untrained`) gets a fresh score head seeded with `seed`:
    exactly the starting point of training (which seeds before building the head) when the
    checkpoint has no head, and an explicit seeded re-initialisation when it has one."""
    from rewardforge.inference import RewardModel, note_assumed_format, note_capped_length
    from rewardforge.modeling import load_reward_model, no_reward_head

    loaded = load_reward_model(spec.path, dtype=dtype, seed=seed)
    head = "trained"
    if spec.untrained:
        head = f"fresh (seed {seed})"
        if not loaded.fresh_head:
            reinit_head(loaded.model, seed)
    elif loaded.fresh_head:  # its scores would be random, and reported as a trained model's
        raise usage_error(
            f"{no_reward_head(spec.spec)}; to evaluate it untrained, give --model base:{spec.path}"
        )
    else:
        note_assumed_format(loaded, spec.spec)
    limit = max_length or spec.max_length
    rm = RewardModel(loaded, max_length=limit, device=device)
    note_capped_length(rm, spec.spec)
    info = {
        "name": spec.name,
        "spec": spec.spec,
        "path": loaded.path,
        "untrained": spec.untrained,
        "derived_from": spec.derived_from,
        "score_head": head,
        "seed": seed,
        "format": loaded.text_format.to_dict(),
        "max_length": rm.max_length,
        "max_length_capped_to_positions": rm.max_length_capped_from is not None,
        "dtype": dtype,
        "is_decoder": loaded.is_decoder,
        "parameters": int(sum(p.numel() for p in loaded.model.parameters())),
    }
    return LoadedEvalModel(spec, rm, info)


# --------------------------------------------------------------------------- scoring


@dataclass
class PairScores:
    chosen: np.ndarray
    rejected: np.ndarray
    prompt_truncated: np.ndarray  # bool per pair
    response_truncated: np.ndarray
    identical: np.ndarray
    chosen_ids: list[list[int]] | None = None
    rejected_ids: list[list[int]] | None = None
    seconds_tokenize: float = 0.0
    seconds_score: float = 0.0
    method: str = "separate sequences"
    tokens_run: int = 0  # tokens the model actually ran (shared prefixes and repeats once)
    tokens_total: int = 0  # tokens of all chosen and rejected sequences


def score_pairs(
    rm: Any,
    pairs: list[PreferencePair],
    *,
    batch_size: int,
    desc: str = "score",
    progress: bool = True,
    keep_ids: bool = False,
    sharer: SharedPrefixScorer | None = None,
) -> PairScores:
    """Tokenize every pair with `tokenize_pair`, then score all of them in length-sorted batches:
    as rows sharing the prompt when `sharer` is given (and its check passed), else as separate
    sequences through `score_token_ids`."""
    from rewardforge.formatting import TemplateRefused
    from rewardforge.tokenization import tokenize_pair

    t0 = time.perf_counter()
    chosen_ids, rejected_ids, prefix_lens = [], [], []
    flags = np.zeros((3, len(pairs)), dtype=bool)
    for i, pair in enumerate(pairs):
        try:
            tok = tokenize_pair(rm.tokenizer, rm.text_format, pair, rm.max_length)
        except TemplateRefused as exc:
            raise usage_error(f"{pair.source or f'pair {i + 1}'}: {exc}") from None
        chosen_ids.append(tok.chosen_ids)
        rejected_ids.append(tok.rejected_ids)
        prefix_lens.append(tok.prefix_len)
        flags[:, i] = (tok.prompt_truncated, tok.response_truncated, tok.identical)
    t1 = time.perf_counter()
    n = len(pairs)
    if sharer is not None and sharer.check is None:
        try:
            sharer.check = sharer.verify(chosen_ids, rejected_ids, prefix_lens)
        except Exception as e:  # noqa: BLE001 - an architecture that refuses the 4-D mask: go plain
            sharer.check, sharer.error = math.inf, f"{type(e).__name__}: {e}"
    if sharer is not None and sharer.check <= SHARE_TOLERANCE:
        sc, sr = sharer.score(
            chosen_ids, rejected_ids, prefix_lens, batch_size=batch_size, desc=desc, progress=progress
        )
        scores = np.concatenate([sc, sr])
        method = "shared prefix"
        tokens = sum(
            len(c) + len(r) - min(k, len(c) - 1, len(r) - 1)
            for c, r, k in zip(chosen_ids, rejected_ids, prefix_lens)
        )
    else:
        seqs = chosen_ids + rejected_ids
        scores = score_sequences(rm, seqs, batch_size=batch_size, desc=desc, progress=progress)
        method = "separate sequences"
        tokens = sum(len(s) for s in {tuple(s): s for s in seqs}.values())
    t2 = time.perf_counter()
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        from rewardforge.modeling import ModelLoadError

        i = int(bad[0]) % n
        raise ModelLoadError(
            f"the model gave {bad.size} non-finite score(s) (first: pair {i}, id {pairs[i].id!r}); "
            "its weights may be broken or the dtype too narrow (try --dtype fp32)"
        )
    return PairScores(
        chosen=scores[:n],
        rejected=scores[n:],
        prompt_truncated=flags[0],
        response_truncated=flags[1],
        identical=flags[2],
        chosen_ids=chosen_ids if keep_ids else None,
        rejected_ids=rejected_ids if keep_ids else None,
        seconds_tokenize=t1 - t0,
        seconds_score=t2 - t1,
        method=method,
        tokens_run=int(tokens),
        tokens_total=int(sum(len(s) for s in chosen_ids + rejected_ids)),
    )


# --------------------------------------------------------------------------- metrics


def response_lengths(pairs: list[PreferencePair]) -> tuple[np.ndarray, np.ndarray]:
    """Lengths of the chosen and rejected responses in characters (model-independent, so the
    length baseline and the buckets are the same for every model)."""
    lc = np.array([len(p.chosen_text) for p in pairs], dtype=np.float64)
    lr = np.array([len(p.rejected_text) for p in pairs], dtype=np.float64)
    return lc, lr


def pair_categories(pairs: list[PreferencePair]) -> list[str] | None:
    """Each pair's category; pairs with none share a label no real category has (a category the
    data calls "uncategorized" is not merged with them)."""
    named = {str(p.category) for p in pairs if p.category is not None}
    if not named:
        return None
    none = UNCATEGORIZED
    while none in named:
        none = f"({none})"
    return [none if p.category is None else str(p.category) for p in pairs]


def compute_metrics(
    pairs: list[PreferencePair],
    scores: PairScores,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    n_buckets: int = 5,
    beta: float = 1.0,
) -> dict[str, Any]:
    """`pair_metrics` plus accuracy by length bucket, truncation counts and the worst pairs."""
    lc, lr = response_lengths(pairs)
    sc, sr = scores.chosen, scores.rejected
    m = pair_metrics(
        sc,
        sr,
        categories=pair_categories(pairs),
        len_chosen=lc,
        len_rejected=lr,
        n_bootstrap=n_bootstrap,
        seed=seed,
        beta=beta,
    )
    m["length_unit"] = LENGTH_UNIT
    m["accuracy_by_length_bucket"] = accuracy_by_length_bucket(sc, sr, lc, lr, n_buckets=n_buckets)
    m["truncation"] = {
        "prompt_truncated": int(scores.prompt_truncated.sum()),
        "response_truncated": int(scores.response_truncated.sum()),
        "identical_after_truncation": int(scores.identical.sum()),
    }
    m["most_confidently_wrong"] = [
        {"index": i, "id": pairs[i].id, "margin": float(sc[i] - sr[i])}
        for i in most_confidently_wrong(sc, sr, k=WRONG_SHOWN)
    ]
    per_record = record_accuracy(pairs, sc, sr)
    if per_record is not None:
        m["record_accuracy"] = per_record
    return m


def record_accuracy(
    pairs: list[PreferencePair], chosen: np.ndarray, rejected: np.ndarray
) -> dict[str, Any] | None:
    """For data whose records give several pairs (RewardBench 2's one chosen vs three rejected,
    HelpSteer3's answers): the share of records whose every pair is ranked right, ties wrong.
    That is RewardBench 2's own score. None when every record gave one pair."""
    groups: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        groups.setdefault(pair.source or f"pair {i}", []).append(i)
    if all(len(g) == 1 for g in groups.values()):
        return None
    right = sum(all(chosen[i] > rejected[i] for i in g) for g in groups.values())
    return {
        "records": len(groups),
        "accuracy": right / len(groups),
        "records_with_several_pairs": sum(len(g) > 1 for g in groups.values()),
    }


def _counts(chosen: np.ndarray, rejected: np.ndarray) -> tuple[int, int]:
    return int(np.count_nonzero(chosen > rejected)), int(np.count_nonzero(chosen == rejected))


def swap_diagnostic(
    rm: Any,
    pairs: list[PreferencePair],
    scores: PairScores,
    *,
    batch_size: int,
    progress: bool = True,
    sharer: SharedPrefixScorer | None = None,
) -> dict[str, Any]:
    """Score every pair again with chosen and rejected exchanged, running the model for real.

    A reward model scores each (prompt, response) on its own, so the swapped accuracy must be
    exactly `1 - accuracy` (ties count half either way). `mirrors` checks that on the integer
    counts; `max_abs_score_diff` is the largest difference between a response's score in the
    swapped run and in the original one (0.0 when scoring is order-independent and
    deterministic), and `same_tokens` whether the swapped tokenization gave the same sequences.
    """
    swapped = [
        PreferencePair(prompt=p.prompt, chosen=p.rejected, rejected=p.chosen, id=p.id, category=p.category)
        for p in pairs
    ]
    sw = score_pairs(
        rm,
        swapped,
        batch_size=batch_size,
        desc="score swapped",
        progress=progress,
        keep_ids=True,
        sharer=sharer,
    )
    n = len(pairs)
    correct, ties = _counts(scores.chosen, scores.rejected)
    correct_s, ties_s = _counts(sw.chosen, sw.rejected)
    mirrors = (2 * correct_s + ties_s) == 2 * n - (2 * correct + ties) and ties_s == ties
    diff = max(
        float(np.max(np.abs(sw.chosen - scores.rejected))),
        float(np.max(np.abs(sw.rejected - scores.chosen))),
    )
    same_tokens = None
    if scores.chosen_ids is not None and sw.chosen_ids is not None and sw.rejected_ids is not None:
        same_tokens = sw.chosen_ids == scores.rejected_ids and sw.rejected_ids == scores.chosen_ids
    return {
        "scored_for_real": True,
        "accuracy": (2 * correct + ties) / (2 * n),
        "accuracy_swapped": (2 * correct_s + ties_s) / (2 * n),
        "accuracy_swapped_expected": (2 * n - (2 * correct + ties)) / (2 * n),
        "ties": ties,
        "ties_swapped": ties_s,
        "mirrors": bool(mirrors),
        "max_abs_score_diff": diff,
        "same_tokens": same_tokens,
        "seconds": sw.seconds_tokenize + sw.seconds_score,
    }


def diagnostics(
    metrics: dict[str, Any], swap: dict[str, Any], scores: PairScores, pairs: list[PreferencePair]
):
    """Shortcut checks: does the model beat "the longer response wins" and chance? Each claim is
    an exact one-sided sign test at the 2.5% level (the lower edge of a 95% interval): a handful
    of right pairs is no evidence, however perfect."""
    acc = metrics["accuracy"]
    base = metrics.get("length_baseline_accuracy")
    model = pair_outcomes(scores.chosen, scores.rejected)
    chance = paired_sign_test(model, np.full_like(model, 0.5))
    out: dict[str, Any] = {
        "length_baseline_accuracy": base,
        "length_baseline_unit": LENGTH_UNIT,
        "accuracy_minus_length_baseline": None if base is None else acc - base,
        "beats_length_baseline": None,
        "length_baseline_test": None,
        "beats_chance": chance["p_value"] < SIGNIFICANCE,
        "chance_test": chance,
        "swap": swap,
    }
    if base is not None:
        lc, lr = response_lengths(pairs)
        versus_length = paired_sign_test(model, pair_outcomes(lc, lr))
        out["beats_length_baseline"] = versus_length["p_value"] < SIGNIFICANCE
        out["length_baseline_test"] = versus_length
    return out


# --------------------------------------------------------------------------- whole run


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


# --------------------------------------------------------------------------- outputs


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def prompt_text(pair: PreferencePair) -> str:
    """The last prompt turn (what the responses answer), or '' for a prompt-less pair."""
    return pair.prompt[-1]["content"] if pair.prompt else ""


def score_lines(run: EvalRun) -> list[str]:
    """scores.jsonl: one JSON line per pair (per model and data set when there are several)."""
    lines: list[str] = []
    for r in run.results:
        ds = next(d for d in run.datasets if d.name == r.data)
        lc, lr = response_lengths(ds.pairs)
        sc, sr = r.scores.chosen, r.scores.rejected
        for i, pair in enumerate(ds.pairs):
            c, j = float(sc[i]), float(sr[i])
            row: dict[str, Any] = {}
            if run.several:
                row["model"], row["data"] = r.model, r.data
            row |= {
                "index": i,
                "id": pair.id,
                "source": pair.source,  # file and line/row: finds a pair that has no id
                "category": pair.category,
                "prompt": excerpt(prompt_text(pair)),
                "score_chosen": c,
                "score_rejected": j,
                "margin": c - j,
                "correct": c > j,
                "tie": c == j,
                "len_chosen": int(lc[i]),
                "len_rejected": int(lr[i]),
                "prompt_truncated": bool(r.scores.prompt_truncated[i]),
                "response_truncated": bool(r.scores.response_truncated[i]),
            }
            lines.append(json.dumps(row, ensure_ascii=False, allow_nan=False))
    return lines


def metrics_document(run: EvalRun) -> dict[str, Any]:
    from rewardforge import __version__

    results: dict[str, dict[str, Any]] = {}
    for r in run.results:
        results.setdefault(r.model, {})[r.data] = r.metrics
    return {
        "rewardforge_version": __version__,
        "models": run.models,
        "data": [d.summary() for d in run.datasets],
        "results": results,
        "diagnostics": run.options.diagnostics,
        "length_unit": LENGTH_UNIT,
        "timing_seconds": run.timing,
    }


def config_document(options: EvalOptions, argv: list[str], specs: list[ModelSpec], datasets: list[DataSet]):
    import platform

    import torch
    import transformers

    from rewardforge import __version__

    return {
        "command": "rewardforge eval " + " ".join(_quote(a) for a in argv),
        "argv": list(argv),
        "options": dict(vars(options)),
        "models": [
            {
                "name": s.name,
                "spec": s.spec,
                "path": s.path,
                "untrained": s.untrained,
                "derived_from": s.derived_from,
            }
            for s in specs
        ],
        "data": [d.summary() for d in datasets],
        "versions": {
            "rewardforge": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "cwd": os.getcwd(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def dumps(doc: Any) -> str:
    """Strict JSON (no NaN/inf), indented, with a final newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
