"""Are rewardforge's HH models worse, or only scored differently? Both trainers' saved models
from `bench/hh_accuracy.py`, each scored with its own text format, on all dev pairs and on the
dev pairs that fit max length in both formats (no truncation, so no evaluator choice matters).

    python bench/hh_fit_eval.py --seeds 4,5,6,7,8,9,10 [--work runs/hh-accuracy]

rewardforge models are scored with `RewardModel.score_batch`; TRL models with the text TRL
trains on (transcript + EOS) and left truncation, as in `bench/trl_baseline.py`. Writes
bench/results/hh_fit_eval.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from hh_accuracy import HH, SETTINGS, minilm  # noqa: E402
from trl_baseline import load_tokenizer, trl_rewards, trl_text  # noqa: E402

from rewardforge.data import load_pairs  # noqa: E402
from rewardforge.files import atomic_write_text  # noqa: E402
from rewardforge.inference import RewardModel  # noqa: E402
from rewardforge.tokenization import tokenize_pair  # noqa: E402


def wins(chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    return (chosen > rejected) + 0.5 * (chosen == rejected)


def trl_scores(model_dir: Path, tok, texts: list[str], max_length: int) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    return trl_rewards(model, tok, texts, max_length, batch_size=16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="4,5,6,7,8,9,10")
    ap.add_argument("--work", default=str(ROOT / "runs" / "hh-accuracy"))
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "hh_fit_eval.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    max_length = SETTINGS["max_length"]
    dev = HH / "dev.jsonl.gz"
    rows = [json.loads(line) for line in gzip.open(dev, "rt")]
    pairs = load_pairs(str(dev)).pairs
    tok, eos = load_tokenizer(minilm())
    trl_fits = np.array(
        [
            all(len(tok(trl_text(r[k], eos))["input_ids"]) <= max_length for k in ("chosen", "rejected"))
            for r in rows
        ]
    )
    per_seed = {}
    for seed in [int(s) for s in a.seeds.split(",")]:
        rf_dir, trl_dir = Path(a.work) / f"rf-auto-s{seed}", Path(a.work) / f"trl-s{seed}"
        if not ((rf_dir / "model.safetensors").exists() and (trl_dir / "model.safetensors").exists()):
            print(f"seed {seed}: a saved model is missing, skipped")
            continue
        rm = RewardModel.from_pretrained(str(rf_dir))
        lengths = [tokenize_pair(rm.tokenizer, rm.text_format, p, 10**6) for p in pairs]
        fit = trl_fits & np.array(
            [max(len(t.chosen_ids), len(t.rejected_ids)) <= max_length for t in lengths]
        )
        rf = wins(
            np.array(rm.score_batch([(p.prompt, p.chosen) for p in pairs])),
            np.array(rm.score_batch([(p.prompt, p.rejected) for p in pairs])),
        )
        trl = wins(
            trl_scores(trl_dir, tok, [trl_text(r["chosen"], eos) for r in rows], max_length),
            trl_scores(trl_dir, tok, [trl_text(r["rejected"], eos) for r in rows], max_length),
        )
        per_seed[seed] = {
            "fitting_pairs": int(fit.sum()),
            "rewardforge_all": float(rf.mean()),
            "trl_all": float(trl.mean()),
            "rewardforge_fitting": float(rf[fit].mean()),
            "trl_fitting": float(trl[fit].mean()),
        }
        print(
            f"seed {seed}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in per_seed[seed].items() if k != "fitting_pairs"),
            flush=True,
        )
    keys = ("rewardforge_all", "trl_all", "rewardforge_fitting", "trl_fitting")
    means = {k: round(statistics.mean(v[k] for v in per_seed.values()), 4) for k in keys} if per_seed else {}
    result = {
        "command": "python bench/hh_fit_eval.py " + " ".join(sys.argv[1:]),
        "seeds": per_seed,
        "means": means,
    }
    atomic_write_text(a.output, json.dumps(result, indent=2) + "\n")
    print(json.dumps(means), f"\nwritten {a.output}")


if __name__ == "__main__":
    main()
