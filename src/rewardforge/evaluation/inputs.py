"""What `rewardforge eval` evaluates: model specs (`PATH`, `base:PATH`, `NAME=...`, `--untrained`)
with their display names, the data sets read through the data layer, and each model loaded
(a base model with a fresh, seeded score head)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardforge.data.types import PreferencePair


def usage_error(message: str) -> Exception:
    """A `rewardforge.training.run.UsageError` (imported lazily: it pulls in transformers)."""
    from rewardforge.training.run import UsageError

    return UsageError(message)


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


_NAME_RE = re.compile(r"^([^=/\\:]+)=(.+)$")  # a name holds no path or Hub separators


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
    from rewardforge.modeling import ModelLoadError

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
                try:
                    _check_model_exists(base)
                except ModelLoadError as exc:  # a path the user never typed: say where it comes from
                    raise ModelLoadError(
                        f"--untrained: the base model {base!r} that {path}/rewardforge.json names is not "
                        f"there ({exc}); give the base explicitly as --model base:PATH"
                    ) from exc
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


def load_dataset(
    spec: str,
    name: str,
    *,
    columns: str | None = None,
    processor: str | None = None,
    skip_invalid: bool = False,
    limit: int | None = None,
    progress: bool = True,
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
            progress=progress,
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
