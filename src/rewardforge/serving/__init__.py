"""Serve a reward model over HTTP: `create_app(scorer, settings)` (FastAPI) with dynamic
micro-batching, an OpenRLHF-compatible /get_reward, Prometheus /metrics and a page at `/`.
`rewardforge serve` runs it with uvicorn; see docs/serving.md."""

from rewardforge.serving.app import create_app
from rewardforge.serving.batcher import MicroBatcher, QueueFullError, StoppingError
from rewardforge.serving.scorer import BatchFunctionScorer, ModelScorer, Scorer, as_scorer
from rewardforge.serving.settings import ServeSettings

__all__ = [
    "BatchFunctionScorer",
    "MicroBatcher",
    "ModelScorer",
    "QueueFullError",
    "Scorer",
    "ServeSettings",
    "StoppingError",
    "as_scorer",
    "create_app",
]
