"""One behaviour suite for every JobQueue: in-memory, database (SQLite, PostgreSQL), RabbitMQ.

The real servers come from ``BUDSTIKKE_TEST_POSTGRES_URL`` and ``BUDSTIKKE_TEST_AMQP_URL``
(skipped locally when unset, a failure in CI).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from access_point.backoff import Backoff
from access_point.worker import Idempotency, JobKind, Worker
from adapters.db.engine import create_engine
from adapters.db.schema import metadata
from adapters.queue import (
    Ack,
    DatabaseQueue,
    Dead,
    Job,
    JobQueue,
    MemoryQueue,
    Outcome,
    RabbitMQQueue,
    Retry,
)
from sbdh.errors import NoRoute, TransientDeliveryError

LEASE = timedelta(seconds=0.6)


@dataclass
class Rig:
    kind: str
    queue: JobQueue
    idempotency: Idempotency
    #: another handle on the same queue, as a second worker process would have
    other: Callable[[], Awaitable[JobQueue]]
    engine: AsyncEngine
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


async def _schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)


async def _fresh_postgres(admin_url: str, closers: list[Callable[[], Awaitable[None]]]) -> str:
    """A new database for one test (dropped by a closer), as an asyncpg SQLAlchemy URL."""
    import asyncpg

    name = f"budstikke_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    closers.append(drop)
    return admin_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["memory", "sqlite", "postgres", "rabbitmq"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    kind = request.param
    closers: list[Callable[[], Awaitable[None]]] = []
    if kind == "postgres":
        admin_url = request.getfixturevalue("postgres_admin_url")
        engine = create_engine(await _fresh_postgres(admin_url, closers))
    else:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}")
    await _schema(engine)
    queue: JobQueue
    other: Callable[[], Awaitable[JobQueue]]
    if kind == "memory":
        memory = MemoryQueue(poll_interval=0.02)
        queue = memory

        async def other_memory() -> JobQueue:
            return memory

        other = other_memory
    elif kind in ("sqlite", "postgres"):
        queue = DatabaseQueue(engine, name="test", lease=LEASE, poll_interval=0.05)

        async def other_database() -> JobQueue:
            return DatabaseQueue(engine, name="test", lease=LEASE, poll_interval=0.05)

        other = other_database
    else:
        amqp_url = request.getfixturevalue("amqp_url")
        name = f"budstikke.test.{uuid.uuid4().hex[:10]}"
        rabbit = RabbitMQQueue(amqp_url, name=name)
        await rabbit.setup()
        queue = rabbit

        async def other_rabbit() -> JobQueue:
            handle = RabbitMQQueue(amqp_url, name=name)
            closers.append(handle.close)
            return handle

        other = other_rabbit

        async def drop() -> None:
            await rabbit.delete_topology()

        closers.append(drop)
    closers.append(queue.close)
    yield Rig(kind, queue, Idempotency(engine), other, engine, closers)
    await engine.dispose()
    for close in closers:
        await close()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@dataclass
class Consumer:
    task: asyncio.Task[None]
    stop: asyncio.Event

    async def cancel(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def start(
    queue: JobQueue,
    handler: Callable[[Job], Awaitable[Outcome]],
    concurrency: int = 4,
    on_dead: Callable[[Job, str], Awaitable[None]] | None = None,
) -> Consumer:
    stop = asyncio.Event()
    task = asyncio.create_task(queue.consume(handler, concurrency, on_dead=on_dead, stop=stop))
    return Consumer(task, stop)


def job(n: int = 1, **payload: object) -> Job:
    return Job("send", f"message-{n}", dict(payload))


async def test_published_jobs_are_delivered_once_and_acked(rig: Rig) -> None:
    seen: list[Job] = []

    async def handler(j: Job) -> Outcome:
        seen.append(j)
        return Ack()

    for n in range(5):
        await rig.queue.publish(job(n, index=n))
    consumer = start(rig.queue, handler)
    await eventually(lambda: len(seen) == 5)
    await asyncio.sleep(0.3)  # nothing comes twice
    await consumer.cancel()
    assert sorted(j.message_id for j in seen) == [f"message-{n}" for n in range(5)]
    assert {j.payload["index"] for j in seen} == set(range(5))
    assert all(j.attempt == 1 and j.kind == "send" and j.id for j in seen)
    assert await rig.queue.depth() == 0


async def test_retry_waits_at_least_the_delay_and_counts_attempts(rig: Rig) -> None:
    times: dict[int, float] = {}

    async def handler(j: Job) -> Outcome:
        times[j.attempt] = time.monotonic()
        return Retry(0.5, "not yet") if j.attempt == 1 else Ack()

    consumer = start(rig.queue, handler)
    await rig.queue.publish(job())
    await eventually(lambda: 2 in times)
    await asyncio.sleep(0.2)
    await consumer.cancel()
    assert set(times) == {1, 2}
    waited = times[2] - times[1]
    assert 0.45 <= waited < 3.0, waited


async def test_delayed_publish_is_not_delivered_early(rig: Rig) -> None:
    got: list[float] = []

    async def handler(j: Job) -> Outcome:
        got.append(time.monotonic())
        return Ack()

    consumer = start(rig.queue, handler)
    sent = time.monotonic()
    await rig.queue.publish(job(), delay=0.6)
    assert await rig.queue.depth() == 1  # a delayed job is waiting, too
    await eventually(lambda: len(got) == 1)
    await consumer.cancel()
    assert got[0] - sent >= 0.55


async def test_dead_letter_is_reported_with_its_reason_and_never_retried(rig: Rig) -> None:
    calls: list[Job] = []
    dead: list[tuple[Job, str]] = []

    async def handler(j: Job) -> Outcome:
        calls.append(j)
        return Dead("no-route: 0192:999999999 is not hosted here")

    async def on_dead(j: Job, reason: str) -> None:
        dead.append((j, reason))

    consumer = start(rig.queue, handler, on_dead=on_dead)
    await rig.queue.publish(job(7))
    await eventually(lambda: len(dead) == 1)
    await asyncio.sleep(0.3)
    await consumer.cancel()
    assert len(calls) == 1
    assert dead[0][0].message_id == "message-7"
    assert dead[0][1] == "no-route: 0192:999999999 is not hosted here"
    assert await rig.queue.depth() == 0


async def test_a_failing_dead_letter_report_is_made_again(rig: Rig) -> None:
    if rig.kind == "memory":
        pytest.skip("the test double reports once")
    reports: list[str] = []

    async def handler(j: Job) -> Outcome:
        return Dead("bad")

    async def on_dead(j: Job, reason: str) -> None:
        reports.append(reason)
        if len(reports) == 1:
            raise TransientDeliveryError("database down")

    if isinstance(rig.queue, DatabaseQueue):
        from adapters.queue import database

        database._REPORT_RETRY = timedelta(seconds=0.1)  # type: ignore[attr-defined]
    consumer = start(rig.queue, handler, on_dead=on_dead)
    await rig.queue.publish(job())
    await eventually(lambda: len(reports) == 2)
    await consumer.cancel()
    if isinstance(rig.queue, DatabaseQueue):
        database._REPORT_RETRY = timedelta(seconds=5)  # type: ignore[attr-defined]


async def test_worker_sends_errors_that_cannot_succeed_straight_to_dead(rig: Rig) -> None:
    calls: list[Job] = []
    dead: list[tuple[Job, str]] = []

    async def deliver(j: Job) -> None:
        calls.append(j)
        raise NoRoute("receiver 0192:999999999 is not hosted here")

    async def mark_failed(j: Job, reason: str) -> None:
        dead.append((j, reason))

    worker = Worker(rig.queue, {"send": JobKind(deliver, on_dead=mark_failed)}, concurrency=2)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await rig.queue.publish(job())
    await eventually(lambda: len(dead) == 1)
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert len(calls) == 1
    assert dead[0][1] == "no-route: receiver 0192:999999999 is not hosted here"


async def test_worker_retries_transient_errors_with_backoff_then_gives_up(rig: Rig) -> None:
    attempts: list[tuple[int, float]] = []
    dead: list[str] = []

    async def deliver(j: Job) -> None:
        attempts.append((j.attempt, time.monotonic()))
        raise TransientDeliveryError("receiver busy")

    async def mark_failed(j: Job, reason: str) -> None:
        dead.append(reason)

    worker = Worker(
        rig.queue,
        {"send": JobKind(deliver, on_dead=mark_failed)},
        max_attempts=3,
        backoff=Backoff(base=0.3, factor=2, cap=5, jitter=False),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await rig.queue.publish(job())
    await eventually(lambda: len(dead) == 1)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert [a for a, _ in attempts] == [1, 2, 3]
    assert attempts[1][1] - attempts[0][1] >= 0.28  # backoff(1) = 0.3 s
    assert attempts[2][1] - attempts[1][1] >= 0.58  # backoff(2) = 0.6 s
    assert dead == ["gave up after 3 attempts: transient-delivery-failure: receiver busy"]


async def test_a_job_abandoned_mid_run_comes_back_and_has_its_effect_once(rig: Rig) -> None:
    effects: list[str] = []
    deliveries: list[int] = []
    crashed = asyncio.Event()

    async def crashing(j: Job) -> Outcome:
        deliveries.append(j.attempt)
        async with rig.idempotency.once(j.key) as first:
            if first:
                effects.append(j.message_id)
        crashed.set()
        await asyncio.Event().wait()  # dies here: effect recorded, never acknowledged
        return Ack()

    async def healthy(j: Job) -> Outcome:
        deliveries.append(j.attempt)
        async with rig.idempotency.once(j.key) as first:
            if first:
                effects.append(j.message_id)
        return Ack()

    await rig.queue.publish(job(3))
    first = start(rig.queue, crashing)
    await asyncio.wait_for(crashed.wait(), 10)
    await first.cancel()
    second = start(await rig.other(), healthy)
    await eventually(lambda: len(deliveries) == 2)
    await asyncio.sleep(0.3)
    await second.cancel()
    assert effects == ["message-3"]
    assert deliveries == [1, 2]  # the abandoned delivery counts as an attempt


async def test_a_handler_that_raises_is_redelivered(rig: Rig) -> None:
    deliveries: list[int] = []

    async def handler(j: Job) -> Outcome:
        deliveries.append(j.attempt)
        if j.attempt == 1:
            raise RuntimeError("bug")
        return Ack()

    consumer = start(rig.queue, handler)
    await rig.queue.publish(job())
    await eventually(lambda: len(deliveries) == 2, timeout=10 + LEASE.total_seconds())
    await consumer.cancel()
    assert deliveries == [1, 2]


async def test_concurrency_bounds_the_jobs_in_flight(rig: Rig) -> None:
    running = 0
    peak = 0
    done: list[str] = []

    async def handler(j: Job) -> Outcome:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.1)
        running -= 1
        done.append(j.message_id)
        return Ack()

    for n in range(8):
        await rig.queue.publish(job(n))
    consumer = start(rig.queue, handler, concurrency=2)
    await eventually(lambda: len(done) == 8)
    await consumer.cancel()
    assert peak == 2


async def test_depth_counts_waiting_jobs(rig: Rig) -> None:
    assert await rig.queue.depth() == 0
    await rig.queue.publish_many([job(1), job(2), job(3)])
    await rig.queue.publish(job(4), delay=30)
    assert await rig.queue.depth() == 4
    done: list[str] = []

    async def handler(j: Job) -> Outcome:
        done.append(j.message_id)
        return Ack()

    consumer = start(rig.queue, handler)
    await eventually(lambda: len(done) == 3)
    await consumer.cancel()
    await eventually_async(rig.queue.depth, 1)


async def eventually_async(probe: Callable[[], Awaitable[int]], want: int) -> None:
    deadline = time.monotonic() + 5
    while (got := await probe()) != want:
        if time.monotonic() > deadline:
            raise AssertionError(f"depth {got}, expected {want}")
        await asyncio.sleep(0.05)


async def test_stop_lets_running_jobs_finish_and_takes_no_new_ones(rig: Rig) -> None:
    started = asyncio.Event()
    finished: list[str] = []
    calls: list[str] = []

    async def handler(j: Job) -> Outcome:
        calls.append(j.message_id)
        started.set()
        await asyncio.sleep(0.4)
        finished.append(j.message_id)
        return Ack()

    await rig.queue.publish(job(1))
    consumer = start(rig.queue, handler, concurrency=1)
    await asyncio.wait_for(started.wait(), 10)
    consumer.stop.set()
    await rig.queue.publish(job(2))
    await asyncio.wait_for(consumer.task, 10)
    assert finished == ["message-1"]
    assert calls == ["message-1"]
    # the finished job was acknowledged: a new consumer gets only the other one
    later: list[str] = []

    async def record(j: Job) -> Outcome:
        later.append(j.message_id)
        return Ack()

    again = start(rig.queue, record)
    await eventually(lambda: later == ["message-2"], timeout=10 + LEASE.total_seconds())
    await asyncio.sleep(0.3)
    await again.cancel()
    assert later == ["message-2"]


async def test_database_lease_expiry_returns_a_claimed_job(rig: Rig) -> None:
    if not isinstance(rig.queue, DatabaseQueue):
        pytest.skip("leases belong to the database queue")
    await rig.queue.publish(job())
    # a worker claims the job and dies without a word: no heartbeat, no outcome
    claimed = await rig.queue._claim(1, with_dead=False)
    assert [c.job.attempt for c in claimed] == [1]
    assert await rig.queue.depth() == 0  # leased: not waiting
    got: list[tuple[int, float]] = []

    async def handler(j: Job) -> Outcome:
        got.append((j.attempt, time.monotonic()))
        return Ack()

    began = time.monotonic()
    consumer = start(await rig.other(), handler)
    await eventually(lambda: len(got) == 1)
    await consumer.cancel()
    assert got[0][0] == 2
    assert got[0][1] - began >= LEASE.total_seconds() * 0.7


async def test_database_lease_is_renewed_while_a_long_job_runs(rig: Rig) -> None:
    if not isinstance(rig.queue, DatabaseQueue):
        pytest.skip("leases belong to the database queue")
    calls: list[int] = []

    async def slow(j: Job) -> Outcome:
        calls.append(j.attempt)
        await asyncio.sleep(LEASE.total_seconds() * 2.5)
        return Ack()

    await rig.queue.publish(job())
    one = start(rig.queue, slow)
    two = start(await rig.other(), slow)
    await asyncio.sleep(LEASE.total_seconds() * 3)
    await one.cancel()
    await two.cancel()
    assert calls == [1]
