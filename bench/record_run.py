"""Run one rewardforge command as written in the README and record what it reported, so the
README's figures for it have a results file: wall time, peak memory of the process, and the
run's own metrics.json (plus, for `train`, the truncation counts from rewardforge.json).

    python bench/record_run.py --output bench/results/hh_smollm2_lora.json -- \
        rewardforge train --model ... --output runs/hh-smollm2-lora
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path


def option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", required=True, help="results JSON to write")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- rewardforge train|eval ...")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if len(command) < 2 or command[0] != "rewardforge" or command[1] not in ("train", "eval"):
        parser.error("give a `rewardforge train ...` or `rewardforge eval ...` command after --")
    run_dir = option(command, "--output")
    if run_dir is None:
        parser.error("the command needs its own --output folder")
    timer = shutil.which("time") or "/usr/bin/time"
    wrapped = [timer, "-v", *command] if os.path.exists(timer) else command
    started = time.time()
    proc = subprocess.run(wrapped, stderr=subprocess.PIPE, text=True)
    wall = time.time() - started
    sys.stderr.write(proc.stderr[-4000:])
    if proc.returncode != 0:
        print(f"the command failed with exit code {proc.returncode}", file=sys.stderr)
        return proc.returncode
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    record = {
        "command": " ".join(command),
        "wall_seconds": round(wall, 1),
        "peak_rss_mb": round(int(peak.group(1)) / 1024) if peak else None,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "metrics": json.loads(Path(run_dir, "metrics.json").read_text()),
    }
    meta_path = Path(run_dir, "rewardforge.json")
    if command[1] == "train" and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        record["tokenization"] = meta.get("tokenization")
        record["data"] = meta.get("data")
        record["precision"] = meta.get("precision")
        record["lora"] = meta.get("lora")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
