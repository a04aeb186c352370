"""The worker runtime: consume a job queue, run handlers, retry with backoff, dead-letter.

What a handler's ending means (declared by the error tree, never guessed)::

    returns                                 → Ack
    raises BusError with retry = False      → Dead at once: it cannot succeed on retry
      (InvalidInput, NoRoute, Conflict, PermanentDeliveryError, …)
    raises BusError with retry = True,      → Retry after backoff.delay(attempt), until
      or any other exception                  max_attempts; then Dead with the last error
    job.attempt already past max_attempts   → Dead (a job that kept killing its worker)
    no handler for the kind                 → Dead

Dead letters are reported to the kind's ``on_dead(job, reason)`` (for ``send``: mark the
message FEIL with the reason). A report failing with a non-retryable error is logged and
dropped (the message already ended some other way); any other failure is reported again.

Jobs come at least once; :class:`Idempotency` makes their effects happen once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from access_point.backoff import Backoff
from adapters.db.schema import processed_jobs
from adapters.queue import Ack, Dead, Job, JobQueue, OutboxRelay, Outcome, Retry
from adapters.queue.database import reading
from sbdh.errors import BusError

__all__ = ["Idempotency", "JobKind", "Worker", "every", "run_worker"]

log = logging.getLogger(__name__)

JobFunction = Callable[[Job], Awaitable[object]]
DeadCallback = Callable[[Job, str], Awaitable[object]]


@dataclass(frozen=True)
class JobKind:
    """How to run one kind of job: its handler, what to do when it dies, its attempt limit."""

    run: JobFunction
    on_dead: DeadCallback | None = None
    max_attempts: int | None = None
    #: in the outbox relay's transaction: True when jobs of this kind have nothing to do (no
    #: webhook subscription for ``status``); the relay then records their keys done there
    #: instead of publishing them. The check runs after the jobs' rows committed.
    idle: Callable[[AsyncConnection], Awaitable[bool]] | None = None


def describe(exc: BaseException) -> str:
    """A one-line reason for ops and for FEIL: the error code and its message."""
    if isinstance(exc, BusError):
        return f"{exc.code}: {exc}"
    return f"{type(exc).__name__}: {exc}"


class Worker:
    """Runs the handlers of ``kinds`` on the jobs of ``queue``."""

    def __init__(
        self,
        queue: JobQueue,
        kinds: Mapping[str, JobKind],
        *,
        concurrency: int = 8,
        max_attempts: int = 10,
        backoff: Backoff | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if concurrency < 1 or max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be at least 1")
        self.queue = queue
        self.kinds = dict(kinds)
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self._random = random

    async def handle(self, job: Job) -> Outcome:
        """Run ``job`` and say what should become of it (the queue carries it out)."""
        kind = self.kinds.get(job.kind)
        if kind is None:
            return Dead(f"no handler for job kind {job.kind!r}")
        limit = kind.max_attempts or self.max_attempts
        if job.attempt > limit:
            return Dead(f"gave up: delivered {job.attempt} times without finishing")
        try:
            await kind.run(job)
        except BusError as exc:
            if not exc.retry:
                log.info(
                    "job %s %s for %s failed for good: %s",
                    job.id,
                    job.kind,
                    job.message_id,
                    describe(exc),
                )
                return Dead(describe(exc))
            return self._retry(job, exc, limit)
        except Exception as exc:
            log.exception("job %s %s for %s raised", job.id, job.kind, job.message_id)
            return self._retry(job, exc, limit)
        return Ack()

    def _retry(self, job: Job, exc: Exception, limit: int) -> Outcome:
        reason = describe(exc)
        attempt = max(job.attempt, 1)
        if attempt >= limit:
            return Dead(f"gave up after {attempt} attempts: {reason}")
        delay = self.backoff.delay(attempt, self._random)
        log.info(
            "job %s %s: attempt %d failed (%s); again in %.1fs",
            job.id,
            job.kind,
            attempt,
            reason,
            delay,
        )
        return Retry(delay, reason)

    async def report_dead(self, job: Job, reason: str) -> None:
        """The dead-letter path: hand a dead job to its kind's ``on_dead``."""
        log.warning("job %s %s for %s dead-lettered: %s", job.id, job.kind, job.message_id, reason)
        kind = self.kinds.get(job.kind)
        if kind is None or kind.on_dead is None:
            return
        try:
            await kind.on_dead(job, reason)
        except BusError as exc:
            if exc.retry:
                raise
            log.error("job %s: dead letter not recorded (%s); dropped", job.id, describe(exc))

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until cancelled, or until ``stop`` is set and the running jobs are done."""
        await self.queue.consume(self.handle, self.concurrency, on_dead=self.report_dead, stop=stop)


class Idempotency:
    """Exactly once in effect: remembers finished effects in ``processed_jobs``.

    ::

        async with idempotency.once(job.key) as first:
            if first:
                await deliver()

    The key is recorded only when the block ends without an error, so a crash in the middle
    leaves the effect to be done again (the effect itself must tolerate a repeat of a partial
    run). Two runs of the same key at the same time wait for each other: in this process with
    a lock, across processes on PostgreSQL on the key's row, inserted (uncommitted) before the
    effect runs and committed after it.
    """

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] | None = None) -> None:
        self.engine = engine
        self._clock = clock or (lambda: datetime.now(UTC))
        self._postgres = engine.dialect.name == "postgresql"
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        insert = postgresql.insert if self._postgres else sqlite.insert
        self._claim_statement = insert(processed_jobs).on_conflict_do_nothing(
            index_elements=[processed_jobs.c.key]
        )

    @contextlib.asynccontextmanager
    async def _local(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def seen(self, key: str) -> bool:
        async with reading(self.engine) as conn:
            return await self._seen(conn, key)

    @staticmethod
    async def _seen(conn: AsyncConnection, key: str) -> bool:
        found = await conn.execute(
            sa.select(processed_jobs.c.key).where(processed_jobs.c.key == key)
        )
        return found.first() is not None

    @contextlib.asynccontextmanager
    async def once(self, key: str) -> AsyncIterator[bool]:
        """Yields True when ``key`` has not been done yet; records it when the block succeeds."""
        if len(key) > 200:
            raise ValueError("idempotency keys are at most 200 characters")
        async with self._local(key):
            if self._postgres:
                # the key's row goes in first and stays uncommitted while the effect runs: a
                # concurrent run of the same key waits on the unique index until this
                # transaction ends, then finds the key (committed) or takes over (rolled
                # back, as when the effect raised). One statement does what a lock, a look
                # and an insert did.
                async with self.engine.begin() as conn:
                    yield await self.claim(conn, key)
                return
            if await self.seen(key):
                yield False
                return
            yield True
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        processed_jobs.insert().values(key=key, processed_at=self._clock())
                    )
            except IntegrityError:
                log.info("idempotency key %s recorded twice", key)

    async def claim(self, conn: AsyncConnection, key: str) -> bool:
        """Record ``key`` in the caller's transaction; False when it was recorded already.

        The strict form of :meth:`once` for effects written to this database: the effect and
        its key commit together or not at all, so a crash can never leave one without the
        other. A concurrent claim of the same key waits for this transaction to end.
        """
        if len(key) > 200:
            raise ValueError("idempotency keys are at most 200 characters")
        result = await conn.execute(
            self._claim_statement, {"key": key, "processed_at": self._clock()}
        )
        return bool(result.rowcount == 1)

    async def claim_keys(self, conn: AsyncConnection, keys: Sequence[str]) -> set[str]:
        """Claim several keys in one statement in the caller's transaction; those claimed now
        (the others were recorded already)."""
        if not keys:
            return set()
        if any(len(key) > 200 for key in keys):
            raise ValueError("idempotency keys are at most 200 characters")
        now = self._clock()
        values = [{"key": k, "processed_at": now} for k in keys]
        statement = self._claim_statement.returning(processed_jobs.c.key)
        result = await conn.execute(statement, values[0] if len(values) == 1 else values)
        return {row.key for row in result.all()}

    async def claim_many(self, conn: AsyncConnection, keys: Sequence[str]) -> None:
        """Record ``keys`` done in the caller's transaction (those recorded already stay)."""
        if keys:
            now = self._clock()
            await conn.execute(
                self._claim_statement, [{"key": k, "processed_at": now} for k in keys]
            )

    async def run_once(self, key: str, effect: Callable[[], Awaitable[object]]) -> bool:
        """Run ``effect`` unless ``key`` was done already; True when it ran."""
        async with self.once(key) as first:
            if first:
                await effect()
            return first


@dataclass(frozen=True)
class JobClaim:
    """A job's idempotency key, to be claimed in the transaction of the job's effect.

    Called like any claim (True when this transaction took the key); an effect that gathers
    several jobs in one transaction (the local delivery rounds) claims their keys together
    with :meth:`Idempotency.claim_keys`.
    """

    guard: Idempotency
    key: str

    async def __call__(self, connection: AsyncConnection) -> bool:
        return await self.guard.claim(connection, self.key)


async def every(
    interval: timedelta | float,
    task: Callable[[], Awaitable[object]],
    *,
    stop: asyncio.Event | None = None,
    name: str = "periodic task",
) -> None:
    """Run ``task`` now and then every ``interval`` until cancelled or ``stop`` is set.

    A failing run is logged and the schedule goes on.
    """
    seconds = interval.total_seconds() if isinstance(interval, timedelta) else float(interval)
    if seconds <= 0:
        raise ValueError("interval must be positive")
    stop = stop if stop is not None else asyncio.Event()
    while not stop.is_set():
        try:
            await task()
        except Exception:
            log.exception("%s failed", name)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await stop.wait()


def _settler(
    engine: AsyncEngine, kinds: Mapping[str, JobKind]
) -> Callable[[AsyncConnection, Sequence[Job]], Awaitable[set[str]]] | None:
    """The relay's ``settle``: jobs of an idle kind are done in its transaction, keys and all."""
    idle = {name: kind.idle for name, kind in kinds.items() if kind.idle is not None}
    if not idle:
        return None
    idempotency = Idempotency(engine)

    async def settle(conn: AsyncConnection, jobs: Sequence[Job]) -> set[str]:
        done: list[Job] = []
        for name, check in idle.items():
            of_kind = [job for job in jobs if job.kind == name]
            if of_kind and await check(conn):
                done.extend(of_kind)
        if not done:
            return set()
        await idempotency.claim_many(conn, sorted({job.key for job in done}))
        return {job.id for job in done if job.id is not None}

    return settle


async def run_worker(
    queue: JobQueue,
    kinds: Mapping[str, JobKind],
    *,
    engine: AsyncEngine,
    concurrency: int = 8,
    sweep: Callable[[], Awaitable[object]] | None = None,
    sweep_interval: timedelta = timedelta(seconds=60),
    wake: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    worker: Worker | None = None,
) -> None:
    """The outbox relay, the worker and the lifetime sweep together, until ``stop``.

    On ``stop`` the worker takes no new jobs and finishes the running ones; the relay and the
    sweep end after their current round. If one of the three fails, the others are stopped.
    """
    stop = stop if stop is not None else asyncio.Event()
    relay = OutboxRelay(engine, queue, wake=wake, settle=_settler(engine, kinds))
    worker = worker or Worker(queue, kinds, concurrency=concurrency)
    parts = [relay.run(stop), worker.run(stop)]
    if sweep is not None:
        parts.append(every(sweep_interval, sweep, stop=stop, name="lifetime sweep"))
    tasks = [asyncio.create_task(part) for part in parts]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        # cancelling is the abrupt way out: running jobs are abandoned and come back later
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    stop.set()  # one part failed, or stop was set: the others end gracefully
    await asyncio.wait(tasks)
    for task in tasks:
        error = task.exception()
        if error is not None:
            raise error
