"""An in-memory job queue: the test double, shipped beside the real queues.

It keeps the contract of the durable queues (delays, retries, dead letters, redelivery of a job
whose consumer was cancelled mid-job, ``attempt`` counting crashes) but nothing survives the
process. Tests can look at :attr:`MemoryQueue.dead` and :attr:`MemoryQueue.acked`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from adapters.queue._pull import pull_loop
from adapters.queue.base import Ack, Dead, DeadHandler, Handler, Job, Retry

__all__ = ["MemoryQueue"]

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    job: Job  # attempt = deliveries so far
    available_at: float


class MemoryQueue:
    """A :class:`~adapters.queue.base.JobQueue` held in a heap in this process."""

    def __init__(self, *, poll_interval: float = 0.05) -> None:
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count(1)
        self._nudge = asyncio.Event()
        self._poll_interval = poll_interval
        self._closed = False
        #: jobs dead-lettered, with their reasons, in order
        self.dead: list[tuple[Job, str]] = []
        #: jobs acknowledged, in order
        self.acked: list[Job] = []

    def _push(self, entry: _Entry) -> None:
        heapq.heappush(self._heap, (entry.available_at, next(self._seq), entry))
        self._nudge.set()

    async def publish(self, job: Job, delay: float = 0.0) -> None:
        if self._closed:
            raise RuntimeError("queue is closed")
        now = asyncio.get_running_loop().time()
        job_id = job.id or f"mem-{next(self._seq)}"
        self._push(_Entry(replace(job, id=job_id), now + max(delay, 0.0)))

    async def publish_many(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            await self.publish(job)

    async def depth(self) -> int:
        return len(self._heap)

    async def close(self) -> None:
        self._closed = True

    async def consume(
        self,
        handler: Handler,
        concurrency: int,
        *,
        on_dead: DeadHandler | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        async def claim(n: int) -> list[_Entry]:
            now = asyncio.get_running_loop().time()
            taken: list[_Entry] = []
            while self._heap and len(taken) < n and self._heap[0][0] <= now:
                entry = heapq.heappop(self._heap)[2]
                entry.job = replace(entry.job, attempt=entry.job.attempt + 1)
                taken.append(entry)
            return taken

        async def run(entry: _Entry) -> None:
            job = entry.job
            try:
                outcome = await handler(job)
            except asyncio.CancelledError:
                # abandoned mid-job: back to the queue at once, the attempt counted
                self._push(_Entry(job, asyncio.get_running_loop().time()))
                raise
            except Exception:
                log.exception("handler raised for job %s; redelivering", job.id)
                self._push(_Entry(job, asyncio.get_running_loop().time()))
                return
            if isinstance(outcome, Ack):
                self.acked.append(job)
            elif isinstance(outcome, Retry):
                due = asyncio.get_running_loop().time() + max(outcome.delay, 0.0)
                self._push(_Entry(job, due))
            elif isinstance(outcome, Dead):
                self.dead.append((job, outcome.reason))
                if on_dead is not None:
                    try:
                        await on_dead(job, outcome.reason)
                    except Exception:
                        log.exception("on_dead failed for job %s", job.id)

        await pull_loop(
            claim,
            run,
            concurrency=concurrency,
            nudge=self._nudge,
            poll_interval=self._poll_interval,
            stop=stop,
        )
