"""The embedded durable queue: jobs are rows of the ``jobs`` table, claimed with a lease.

No server to install, and nothing is lost across a restart: a job is a row until it is
finished. The life of a row::

    published     available_at = now + delay, attempts = deliveries so far
    claimed       lease_owner = a fresh token, lease_until = now + lease, attempts + 1
                  (on PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets claimers pass each other; on
                  SQLite the claim is one conditional ``UPDATE … RETURNING``, atomic because
                  SQLite has one writer)
    running       the lease is renewed every lease/3 while the handler runs
    Ack           finished_at = now
    Retry         available_at = now + delay, last_error, lease cleared
    Dead          dead = true, last_error = reason; reported to ``on_dead``, then finished_at
    crash         the lease runs out and the next claim takes the row again

``attempts`` is counted at the claim, so a job that kills its worker still uses up attempts.
A dead row with ``finished_at`` still empty is a dead letter not yet reported: consumers with
an ``on_dead`` claim those too, so a report interrupted by a crash is made again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.db.schema import jobs
from adapters.queue._pull import pull_loop
from adapters.queue.base import (
    Ack,
    Dead,
    DeadHandler,
    Handler,
    Job,
    QueueUnavailable,
    Retry,
    payload_text,
)

__all__ = ["DatabaseQueue", "reading", "utc_now"]

log = logging.getLogger(__name__)

#: how soon a dead letter whose report failed is reported again
_REPORT_RETRY = timedelta(seconds=5)


def utc_now() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for queries only (on SQLite a deferred transaction, no write lock; on
    PostgreSQL autocommit, which under READ COMMITTED reads the same without BEGIN/ROLLBACK)."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            yield await conn.execution_options(sqlite_begin="DEFERRED")
        else:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")


@dataclass(frozen=True)
class _Claim:
    row_id: int
    owner: str
    dead: bool
    last_error: str | None
    job: Job


class DatabaseQueue:
    """A :class:`~adapters.queue.base.JobQueue` on the ``jobs`` table (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        name: str = "default",
        lease: timedelta = timedelta(seconds=60),
        poll_interval: float = 0.5,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if lease <= timedelta(0):
            raise ValueError("lease must be positive")
        self.engine = engine
        self.name = name
        self.lease = lease
        self.poll_interval = poll_interval
        self._clock = clock
        self._postgres = engine.dialect.name == "postgresql"
        # a publish in this process wakes local consumers at once; others find it by polling
        self._nudge = asyncio.Event()

    # ------------------------------------------------------------------ connections

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise QueueUnavailable(f"job queue database: {exc}") from exc

    # ------------------------------------------------------------------ producing

    def _row(self, job: Job, now: datetime, delay: float) -> dict[str, object]:
        return {
            "queue": self.name,
            "kind": job.kind,
            "message_id": job.message_id,
            "payload": payload_text(job.payload),
            "attempts": max(job.attempt, 0),
            "available_at": now + timedelta(seconds=max(delay, 0.0)),
            "created_at": now,
            "dead": False,
        }

    async def publish(self, job: Job, delay: float = 0.0) -> None:
        async with self._write() as conn:
            await conn.execute(jobs.insert(), [self._row(job, self._clock(), delay)])
        self._nudge.set()

    async def publish_many(self, jobs_: Sequence[Job]) -> None:
        if not jobs_:
            return
        async with self._write() as conn:
            await self.insert(conn, jobs_)
        self._nudge.set()

    async def insert(self, conn: AsyncConnection, jobs_: Sequence[Job]) -> None:
        """Add ``jobs_`` inside the caller's transaction (the relay's exactly-once path)."""
        now = self._clock()
        await conn.execute(jobs.insert(), [self._row(job, now, 0.0) for job in jobs_])

    def wake(self) -> None:
        """Tell local consumers that jobs were added (by :meth:`insert`)."""
        self._nudge.set()

    # ------------------------------------------------------------------ consuming

    async def _claim(self, limit: int, *, with_dead: bool) -> list[_Claim]:
        now = self._clock()
        owner = uuid.uuid4().hex
        free = sa.or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now)
        conditions = [
            jobs.c.queue == self.name,
            jobs.c.finished_at.is_(None),
            jobs.c.available_at <= now,
            free,
        ]
        if not with_dead:
            conditions.append(jobs.c.dead.is_(sa.false()))
        candidates = (
            sa.select(jobs.c.id)
            .where(*conditions)
            .order_by(jobs.c.available_at, jobs.c.id)
            .limit(limit)
        )
        if self._postgres:
            # a materialised CTE: the planner may otherwise run a LIMIT … SKIP LOCKED subquery
            # once per row and claim far more than ``limit``
            locked = (
                candidates.with_for_update(skip_locked=True)
                .cte("claimable")
                .prefix_with("MATERIALIZED")
            )
            chosen = jobs.c.id == locked.c.id
        else:
            chosen = jobs.c.id.in_(candidates.scalar_subquery())
        # the same conditions again on the UPDATE: on SQLite they are what makes it atomic
        statement = (
            jobs.update()
            .where(chosen, *conditions)
            .values(
                lease_owner=owner,
                lease_until=now + self.lease,
                attempts=sa.case(
                    (jobs.c.dead.is_(sa.true()), jobs.c.attempts), else_=jobs.c.attempts + 1
                ),
            )
            .returning(
                jobs.c.id,
                jobs.c.kind,
                jobs.c.message_id,
                jobs.c.payload,
                jobs.c.attempts,
                jobs.c.dead,
                jobs.c.last_error,
            )
        )
        async with self._write() as conn:
            rows = (await conn.execute(statement)).all()
        claims = []
        for row in sorted(rows, key=lambda r: r.id):
            try:
                payload = json.loads(row.payload)
            except ValueError:
                payload = {"undecodable": row.payload}
            job = Job(row.kind, row.message_id, payload, row.attempts, str(row.id))
            claims.append(_Claim(row.id, owner, bool(row.dead), row.last_error, job))
        return claims

    async def _update(self, claim: _Claim, **values: object) -> bool:
        """Change a claimed row if the claim still holds it; False when the lease was lost."""
        statement = (
            jobs.update()
            .where(jobs.c.id == claim.row_id, jobs.c.lease_owner == claim.owner)
            .values(**values)
        )
        async with self._write() as conn:
            result = await conn.execute(statement)
        if result.rowcount == 0:
            log.warning("job %s: lease lost before its outcome was written", claim.row_id)
            return False
        return True

    async def _heartbeat(self, claim: _Claim) -> None:
        period = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            try:
                await self._update(claim, lease_until=self._clock() + self.lease)
            except QueueUnavailable:
                log.warning("job %s: could not renew its lease", claim.row_id, exc_info=True)

    async def _report(self, claim: _Claim, reason: str, on_dead: DeadHandler | None) -> None:
        if on_dead is None:
            await self._update(claim, finished_at=self._clock(), lease_owner=None, lease_until=None)
            return
        try:
            await on_dead(claim.job, reason)
        except Exception:
            log.exception("job %s: on_dead failed; reporting again later", claim.row_id)
            await self._update(
                claim,
                available_at=self._clock() + _REPORT_RETRY,
                lease_owner=None,
                lease_until=None,
            )
            return
        await self._update(claim, finished_at=self._clock(), lease_owner=None, lease_until=None)

    async def _run(self, claim: _Claim, handler: Handler, on_dead: DeadHandler | None) -> None:
        if claim.dead:  # a dead letter whose report was interrupted
            await self._report(claim, claim.last_error or "dead-lettered", on_dead)
            return
        heartbeat = asyncio.create_task(self._heartbeat(claim))
        try:
            outcome = await handler(claim.job)
        except Exception:
            log.exception("handler raised for job %s; redelivering", claim.row_id)
            outcome = None
        finally:
            heartbeat.cancel()
        now = self._clock()
        try:
            if outcome is None:
                await self._update(claim, lease_owner=None, lease_until=None)
            elif isinstance(outcome, Ack):
                await self._update(claim, finished_at=now, lease_owner=None, lease_until=None)
            elif isinstance(outcome, Retry):
                await self._update(
                    claim,
                    available_at=now + timedelta(seconds=max(outcome.delay, 0.0)),
                    last_error=outcome.error,
                    lease_owner=None,
                    lease_until=None,
                )
            elif isinstance(outcome, Dead) and await self._update(
                claim, dead=True, last_error=outcome.reason
            ):
                # the lease is kept while reporting: a crash leaves an unreported dead letter
                await self._report(claim, outcome.reason, on_dead)
        except QueueUnavailable:
            log.warning("job %s: outcome not written; the lease will return it", claim.row_id)

    async def consume(
        self,
        handler: Handler,
        concurrency: int,
        *,
        on_dead: DeadHandler | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        async def claim(n: int) -> list[_Claim]:
            return await self._claim(n, with_dead=on_dead is not None)

        async def run(item: _Claim) -> None:
            await self._run(item, handler, on_dead)

        await pull_loop(
            claim,
            run,
            concurrency=concurrency,
            nudge=self._nudge,
            poll_interval=self.poll_interval,
            stop=stop,
        )

    # ------------------------------------------------------------------ looking

    async def depth(self) -> int:
        now = self._clock()
        statement = sa.select(sa.func.count()).where(
            jobs.c.queue == self.name,
            jobs.c.finished_at.is_(None),
            jobs.c.dead.is_(sa.false()),
            sa.or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now),
        )
        try:
            async with reading(self.engine) as conn:
                return int((await conn.execute(statement)).scalar_one())
        except SQLAlchemyError as exc:
            raise QueueUnavailable(f"job queue database: {exc}") from exc

    async def dead_letters(self) -> list[tuple[Job, str]]:
        """Dead-lettered jobs with their reasons, oldest first (for ops and tests)."""
        statement = (
            sa.select(jobs)
            .where(jobs.c.queue == self.name, jobs.c.dead.is_(sa.true()))
            .order_by(jobs.c.id)
        )
        async with reading(self.engine) as conn:
            rows = (await conn.execute(statement)).all()
        return [
            (
                Job(r.kind, r.message_id, json.loads(r.payload), r.attempts, str(r.id)),
                r.last_error or "",
            )
            for r in rows
        ]

    async def close(self) -> None:
        """The engine belongs to the caller; nothing to release here."""
