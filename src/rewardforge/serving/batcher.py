"""Dynamic micro-batching: one model thread, a bounded queue of jobs, one future per job.

A job is the prepared inputs of one request. The worker task takes the oldest job, then adds
waiting jobs until the batch holds `max_batch_size` items, or as many requests have arrived since
the model became free as its last batch answered, or `max_wait_ms` has passed since the model
became free; then it runs the whole batch in one call on the single model thread. Each job's
future gets exactly its own slice of the results. A job is never split across batches; one
larger than `max_batch_size` runs alone (the scorer cuts it into forward passes).

Guarantees: a job accepted by `submit` is answered exactly once (result, or an exception if
scoring it failed or the server is stopping); a full queue refuses at `submit` time (503),
so memory never grows without limit; a job whose client went away is skipped, not scored.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rewardforge.serving.metrics import Metrics

log = logging.getLogger("rewardforge.serving")


class QueueFullError(Exception):
    """The queue already holds `max_queue` jobs."""


class StoppingError(Exception):
    """The server is shutting down and takes no new work."""


@dataclass
class Job:
    inputs: Sequence[Any]
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher:
    def __init__(
        self,
        run: Callable[[Sequence[Any]], list[float]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        metrics: Metrics | None = None,
    ):
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.metrics = metrics or Metrics()
        self._pending: collections.deque[Job] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._busy = False
        self._stopping = False
        self._free_since = time.monotonic()  # when the model last finished a batch
        self._returns_awaited = 0  # requests the last batch answered that have not come back
        self.executor: ThreadPoolExecutor | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rewardforge-model")
        self._task = asyncio.create_task(self._worker(), name="rewardforge-batcher")

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Refuse new jobs, let queued ones finish (up to `drain_timeout`), fail any left."""
        self._stopping = True
        deadline = time.monotonic() + drain_timeout
        while (self._pending or self._busy) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        left = list(self._pending)
        self._pending.clear()
        self._fail(left, StoppingError("the server is shutting down"))
        if self.executor is not None:
            self.executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return len(self._pending)

    def call_in_model_thread(self, fn: Callable[[], Any]) -> asyncio.Future:
        assert self.executor is not None, "start() first"
        return asyncio.get_running_loop().run_in_executor(self.executor, fn)

    # ---- requests ------------------------------------------------------------------------------
    def has_room(self) -> bool:
        return not self._stopping and len(self._pending) < self.max_queue

    def submit(self, inputs: Sequence[Any]) -> asyncio.Future:
        """Queue one request's prepared inputs; the future resolves to their scores, in order."""
        if self._stopping or self._task is None:
            raise StoppingError("the server is shutting down")
        if len(self._pending) >= self.max_queue:
            self.metrics.queue_full += 1
            raise QueueFullError(f"the queue is full ({self.max_queue} requests waiting)")
        future = asyncio.get_running_loop().create_future()
        if not inputs:
            future.set_result([])
            return future
        self._pending.append(Job(list(inputs), future))
        self._returns_awaited -= 1
        assert self._wakeup is not None
        self._wakeup.set()
        return future

    # ---- the worker ----------------------------------------------------------------------------
    async def _next_job(self) -> Job:
        assert self._wakeup is not None
        while True:
            while self._pending:
                job = self._pending.popleft()
                if not job.future.done():  # skip jobs whose client went away
                    return job
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _gather(self, batch: list[Job]) -> None:
        """Add waiting jobs to `batch` (which holds the oldest job) until it has max_batch_size
        items, or as many requests have arrived since the model became free as the last batch
        answered, or max_wait has passed since the model became free.

        Counted from then, not from the oldest job's arrival: under load, the clients answered
        by the previous batch send their next request into this one, instead of the load
        splitting into half-full batches that take turns. Once they are all back there is no
        one left to wait for, so a lone client that sends one request after another never
        waits. A request that finds the model idle for longer than max_wait runs at once.
        Jobs go into `batch` as they are taken, so none is lost if the worker is cancelled."""
        assert self._wakeup is not None
        items = sum(len(j.inputs) for j in batch)
        deadline = self._free_since + self.max_wait
        while items < self.max_batch_size:
            if self._pending:
                job = self._pending[0]
                if job.future.done():
                    self._pending.popleft()
                    continue
                if items + len(job.inputs) > self.max_batch_size:
                    break  # it leads the next batch
                batch.append(self._pending.popleft())
                items += len(job.inputs)
                continue
            if self._returns_awaited <= 0:
                break  # the clients just answered are all back
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                # waiting on an Event (not on the queue) can never drop a job on timeout
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break

    async def _worker(self) -> None:
        while True:
            batch = [await self._next_job()]
            self._busy = True
            try:
                await self._gather(batch)
                await self._score(batch)
            except asyncio.CancelledError:
                self._fail(batch, StoppingError("the server is shutting down"))
                raise
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                log.exception("micro-batch worker error")
                self._fail(batch, exc)
            finally:
                self._busy = False
                self._free_since = time.monotonic()
                self._returns_awaited = len(batch)

    @staticmethod
    def _fail(batch: list[Job], exc: BaseException) -> None:
        for job in batch:
            if not job.future.done():
                job.future.set_exception(exc)
                # its request may be gone (cancelled at the graceful timeout): marked as seen, so
                # asyncio logs no "exception was never retrieved"; an awaiting request still gets it
                job.future.exception()

    async def _score(self, batch: list[Job]) -> None:
        batch = [j for j in batch if not j.future.done()]
        if not batch:
            return
        flat = [x for job in batch for x in job.inputs]
        started = time.monotonic()
        try:
            scores = await self.call_in_model_thread(lambda: self.run(flat))
            if len(scores) != len(flat):
                raise RuntimeError(f"scorer returned {len(scores)} scores for {len(flat)} inputs")
        except Exception as exc:  # noqa: BLE001 - answered to the requests, never swallowed
            self.metrics.failed_batches += 1
            if len(batch) > 1:
                # one request's input spoiled the batch: score each alone so only it fails
                for job in batch:
                    await self._score([job])
                return
            log.error("scoring failed: %s: %s", type(exc).__name__, exc)
            if not batch[0].future.done():
                batch[0].future.set_exception(exc)
            return
        self.metrics.observe_batch(len(flat), len(batch), time.monotonic() - started)
        start = 0
        for job in batch:
            end = start + len(job.inputs)
            if not job.future.done():
                job.future.set_result([float(s) for s in scores[start:end]])
            start = end
