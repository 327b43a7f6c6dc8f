"""What `rewardforge eval` writes: scores.jsonl lines, metrics.json and config.json, as strict JSON."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from rewardforge.data.types import PreferencePair
from rewardforge.evaluation.analysis import LENGTH_UNIT, response_lengths
from rewardforge.evaluation.inputs import DataSet, ModelSpec
from rewardforge.evaluation.runner import EvalOptions, EvalRun

EXCERPT_CHARS = 160


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
