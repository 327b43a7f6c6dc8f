"""Prometheus text-format metrics with no dependency: counters, gauges and histograms.

Everything is updated from the event loop thread only, so no locking is needed.
"""

from __future__ import annotations

import math
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)  # (path, method, status)
        self.latency: dict[str, Histogram] = {}
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.batch_requests = Histogram(BATCH_BUCKETS)
        self.forward_seconds = Histogram(LATENCY_BUCKETS)
        self.items_scored = 0
        self.queue_full = 0
        self.failed_batches = 0
        self.in_flight = 0
        self.queue_depth = lambda: 0  # set by the app to read the live queue

    def observe_request(self, path: str, method: str, status: int, seconds: float) -> None:
        self.requests[(path, method, str(status))] += 1
        self.latency.setdefault(path, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def observe_batch(self, items: int, requests: int, seconds: float) -> None:
        self.batch_size.observe(items)
        self.batch_requests.observe(requests)
        self.forward_seconds.observe(seconds)
        self.items_scored += items

    def render(self) -> str:
        out: list[str] = []

        def head(name: str, kind: str, text: str) -> None:
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")

        def hist(name: str, h: Histogram, labels: tuple[tuple[str, str], ...] = ()) -> None:
            for bound, count in zip(h.buckets, h.counts):
                out.append(f"{name}_bucket{_labels(labels + (('le', _num(bound)),))} {count}")
            out.append(f"{name}_bucket{_labels(labels + (('le', '+Inf'),))} {h.total}")
            out.append(f"{name}_sum{_labels(labels)} {_num(h.sum)}")
            out.append(f"{name}_count{_labels(labels)} {h.total}")

        head("rewardforge_requests_total", "counter", "HTTP requests by path, method and status code.")
        for (path, method, status), n in sorted(self.requests.items()):
            labels = (("path", path), ("method", method), ("status", status))
            out.append(f"rewardforge_requests_total{_labels(labels)} {n}")
        head("rewardforge_request_duration_seconds", "histogram", "HTTP request latency by path.")
        for path, h in sorted(self.latency.items()):
            hist("rewardforge_request_duration_seconds", h, (("path", path),))
        head("rewardforge_batch_size", "histogram", "Items per model forward pass (micro-batch).")
        hist("rewardforge_batch_size", self.batch_size)
        head("rewardforge_batch_requests", "histogram", "Requests merged into one micro-batch.")
        hist("rewardforge_batch_requests", self.batch_requests)
        head("rewardforge_forward_seconds", "histogram", "Model time per micro-batch.")
        hist("rewardforge_forward_seconds", self.forward_seconds)
        head("rewardforge_items_scored_total", "counter", "Items scored by the model.")
        out.append(f"rewardforge_items_scored_total {self.items_scored}")
        head(
            "rewardforge_queue_full_total", "counter", "Requests refused with 503 because the queue was full."
        )
        out.append(f"rewardforge_queue_full_total {self.queue_full}")
        head("rewardforge_failed_batches_total", "counter", "Micro-batches whose scoring raised an error.")
        out.append(f"rewardforge_failed_batches_total {self.failed_batches}")
        head("rewardforge_queue_depth", "gauge", "Requests waiting for the model now.")
        out.append(f"rewardforge_queue_depth {self.queue_depth()}")
        head("rewardforge_in_flight_requests", "gauge", "HTTP requests being handled now.")
        out.append(f"rewardforge_in_flight_requests {self.in_flight}")
        return "\n".join(out) + "\n"
