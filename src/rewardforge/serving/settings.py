"""Server settings: limits and batching knobs, shared by `rewardforge serve` and `create_app`."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

MiB = 1024 * 1024
MAX_WAIT_MS_LIMIT = 60_000.0  # a batch never waits longer than a minute for company


@dataclass(frozen=True)
class ServeSettings:
    """Everything `create_app` needs besides the scorer. Defaults suit a CPU box."""

    api_key: str | None = None  # bearer token; None or "" = no authentication
    max_batch_size: int = 32  # items per forward pass (micro-batch)
    # how long a batch may wait for more requests once the model is free; the wait ends sooner
    # once the clients the last batch answered are back (bench/serve_overhead.py: 32 loopback
    # clients fill batches of about 29 within it)
    max_wait_ms: float = 25.0
    max_queue: int = 256  # requests waiting (being tokenized or queued); one more is answered 503
    max_items: int = 256  # items (or responses, or queries) in one request; more is 413
    max_body_bytes: int = 4 * MiB  # request body size; more is 413
    max_text_chars: int = 100_000  # one prompt, response, message or query text
    max_messages: int = 1024  # messages (and tool calls of one message) in one prompt or response
    share_prefix: bool = True  # decoders: a prefix shared inside a micro-batch is computed once
    graceful_timeout_s: float = 30.0  # on SIGTERM: time left to in-flight requests
    model_name: str = "reward-model"  # reported by /health and in responses

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_queue", "max_items", "max_body_bytes", "max_text_chars"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {self.max_messages}")
        if not (math.isfinite(self.max_wait_ms) and 0 <= self.max_wait_ms <= MAX_WAIT_MS_LIMIT):
            raise ValueError(f"max_wait_ms must be from 0 to {MAX_WAIT_MS_LIMIT:g}, got {self.max_wait_ms}")
        if not (math.isfinite(self.graceful_timeout_s) and self.graceful_timeout_s >= 0):
            raise ValueError(
                f"graceful_timeout_s must be a finite number >= 0, got {self.graceful_timeout_s}"
            )

    @property
    def auth_required(self) -> bool:
        return bool(self.api_key)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
