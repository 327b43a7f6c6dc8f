#!/usr/bin/env bash
# Set up (dev) and run the whole test suite. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -m ruff check src tests bench
python3 -m pytest -q -p no:cacheprovider "$@"
