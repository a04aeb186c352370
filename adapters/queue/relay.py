"""The outbox relay: hands the jobs written in the store's transactions to the job queue.

A business operation writes its state change and an ``outbox`` row in one transaction; the
relay reads unpublished rows in id order, publishes them and sets ``published_at``. It is
**at least once**: it publishes first and marks afterwards, so a crash in between publishes
the rows again and handlers must be idempotent (they are, on ``Job.key``).

* On PostgreSQL the batch is read ``FOR UPDATE SKIP LOCKED`` in the transaction that marks it,
  so relays in several processes share the work instead of publishing the same rows.
* When the queue is the :class:`~adapters.queue.database.DatabaseQueue` on the same database,
  the jobs are inserted and the rows marked in **one** transaction: exactly once.
* ``settle`` (optional) takes the batch's jobs inside the relay's transaction and returns the
  ids of those it finished there (``status`` jobs while no webhook subscription exists: their
  idempotency keys are recorded in that transaction). Those are marked published and never
  reach the queue; it runs after the rows committed, so nothing written after a subscription
  was created is settled without it.
* It wakes as soon as ``wake`` is set (the service sets it after a commit) and polls every
  ``poll_interval`` for rows written by other processes: 1 s by default on the embedded
  database queue, 50 ms with a broker, where separate ``budstikke serve --no-workers``
  processes write most rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.db.schema import outbox
from adapters.queue.base import Job, JobQueue
from adapters.queue.database import DatabaseQueue, reading, utc_now

__all__ = ["OutboxRelay"]

log = logging.getLogger(__name__)

#: finishes some of a batch's jobs in the relay's transaction; returns their ids
Settle = Callable[[AsyncConnection, Sequence[Job]], Awaitable[set[str]]]


def _job(row: Any) -> Job:
    try:
        payload = json.loads(row.payload) if row.payload else {}
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        log.error("outbox row %s has a payload that is not a JSON object; sent empty", row.id)
        payload = {}
    return Job(row.kind, row.message_id, payload, 0, _job_id(row.id))


def _job_id(outbox_id: int) -> str:
    return f"outbox-{outbox_id}"


class OutboxRelay:
    """Publishes unpublished ``outbox`` rows to a :class:`~adapters.queue.base.JobQueue`."""

    def __init__(
        self,
        engine: AsyncEngine,
        queue: JobQueue,
        *,
        wake: asyncio.Event | None = None,
        batch_size: int = 200,
        poll_interval: float | None = None,
        clock: Callable[[], datetime] = utc_now,
        settle: Settle | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.engine = engine
        self.queue = queue
        self.wake = wake if wake is not None else asyncio.Event()
        self.batch_size = batch_size
        self._clock = clock
        self._settle = settle
        self._postgres = engine.dialect.name == "postgresql"
        self._same_database = isinstance(queue, DatabaseQueue) and queue.engine is engine
        if poll_interval is None:
            # with a broker, the rows mostly come from API processes that run no relay and
            # cannot wake this one: the poll is what hands their jobs over, so it is short
            # (an index probe that finds nothing costs next to nothing)
            poll_interval = 1.0 if self._same_database else 0.05
        self.poll_interval = poll_interval

    def _select(self) -> sa.Select[Any]:
        statement = (
            sa.select(outbox.c.id, outbox.c.kind, outbox.c.message_id, outbox.c.payload)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.id)
            .limit(self.batch_size)
        )
        if self._postgres:
            statement = statement.with_for_update(skip_locked=True)
        return statement

    async def _mark(self, conn: AsyncConnection, ids: Sequence[int]) -> None:
        await conn.execute(
            outbox.update()
            .where(outbox.c.id.in_(ids), outbox.c.published_at.is_(None))
            .values(published_at=self._clock())
        )

    async def _unsettled(self, conn: AsyncConnection, jobs: list[Job]) -> list[Job]:
        """The jobs still to publish once ``settle`` has finished what it could."""
        if self._settle is None:
            return jobs
        settled = await self._settle(conn, jobs)
        if not settled:
            return jobs
        return [job for job in jobs if job.id not in settled]

    async def relay_once(self) -> int:
        """Publish one batch; how many rows it published (0 when the outbox is empty).

        Raises :class:`~adapters.queue.base.QueueUnavailable` (nothing marked) when the queue
        refuses; the rows stay unpublished and the next round tries them again.
        """
        if self._same_database:
            assert isinstance(self.queue, DatabaseQueue)
            async with self.engine.begin() as conn:
                rows = (await conn.execute(self._select())).all()
                if rows:
                    jobs = await self._unsettled(conn, [_job(r) for r in rows])
                    if jobs:
                        await self.queue.insert(conn, jobs)
                    await self._mark(conn, [r.id for r in rows])
            if rows:
                self.queue.wake()
            return len(rows)
        if self._postgres:
            # rows stay locked while they are published: other relays skip them
            async with self.engine.begin() as conn:
                rows = (await conn.execute(self._select())).all()
                if rows:
                    jobs = await self._unsettled(conn, [_job(r) for r in rows])
                    if jobs:
                        await self.queue.publish_many(jobs)
                    await self._mark(conn, [r.id for r in rows])
            return len(rows)
        # SQLite: read without the write lock, publish, then mark in a short transaction
        async with reading(self.engine) as conn:
            rows = (await conn.execute(self._select())).all()
        if not rows:
            return 0
        jobs = [_job(r) for r in rows]
        settled: list[int] = []
        if self._settle is not None:
            # settled and marked in a short transaction; the rest published, then marked
            async with self.engine.begin() as conn:
                jobs = await self._unsettled(conn, jobs)
                left = {job.id for job in jobs}
                settled = [r.id for r in rows if _job_id(r.id) not in left]
                if settled:
                    await self._mark(conn, settled)
            rows = [r for r in rows if _job_id(r.id) in left]
        if jobs:
            await self.queue.publish_many(jobs)
            async with self.engine.begin() as conn:
                await self._mark(conn, [r.id for r in rows])
        return len(rows) + len(settled)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Relay until cancelled or ``stop`` is set."""
        stop = stop if stop is not None else asyncio.Event()
        while not stop.is_set():
            self.wake.clear()
            try:
                published = await self.relay_once()
            except Exception:
                log.exception("outbox relay failed; trying again in %.1fs", self.poll_interval)
                published = 0
            if published >= self.batch_size:
                continue  # more are waiting
            await _first(self.wake, stop, timeout=self.poll_interval)


async def _first(*events: asyncio.Event, timeout: float) -> None:
    """Wait until one of ``events`` is set or ``timeout`` passes."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)
