"""rewardforge: Bradley-Terry reward models from pairwise preferences: train, evaluate, serve, use."""

from __future__ import annotations

__version__ = "0.1.0"

# Loaded on first use, so that `import rewardforge` (and the CLI's --help) does not pay for torch.
_LAZY = {
    "RewardModel": "rewardforge.inference",
    "RewardEnsemble": "rewardforge.inference",
    "ModelLoadError": "rewardforge.modeling",
}

__all__ = ["ModelLoadError", "RewardEnsemble", "RewardModel", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rewardforge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
