#!/usr/bin/env bash
# Set up and run the main job: train all-MiniLM-L6-v2 on rewardforge's built-in preference set
# and print its held-out accuracy (about 1-2 minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
rewardforge train --output "${1:-runs/default}" --overwrite  # a rerun replaces the previous demo run
