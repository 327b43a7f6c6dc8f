"""rewardforge: Bradley-Terry reward models from pairwise preferences: train, evaluate, serve, use."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["RewardModel", "__version__"]


def __getattr__(name: str):
    # Lazy so that `import rewardforge` (and the CLI's --help) does not pay for torch.
    if name == "RewardModel":
        from rewardforge.inference import RewardModel

        return RewardModel
    raise AttributeError(name)
